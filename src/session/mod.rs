//! Downstream: one connected MCP client, whatever its transport.
//!
//! - this file: [`Session`], the rmcp `ServerHandler` of one client. It holds the client's
//!   [`SessionHandle`] and nothing else: every request goes to the gateway, which loads the
//!   current routing table, so a reload is seen by the next request without reconnecting.
//!   Lists are paged with opaque gateway cursors.
//! - [`socket`]: a socket session's pump (reads the client's lines beneath rmcp) and writer.
//! - [`byte_path`]: what the pump (and HTTP) serve without rmcp: hot `tools/call`s as bytes,
//!   `tools/list` from serialized pages.
//!
//! **Architecture invariant:** a session decides nothing about routing; it hands requests to
//! the gateway with its role and handle.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

pub mod byte_path;
mod service;
pub mod socket;

pub use service::{Missing, PutBack, SessionService};

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{RequestContext, RoleServer, SubscriptionContext};
use rmcp::{ErrorData as McpError, ServerHandler};

use crate::backend::listed::ResultMembers;
use crate::backend::{Caller, EnvOf};
use crate::gateway::{Gateway, ListKind, SessionHandle};
use crate::protocol::SessionTransport;
use crate::table::pages::page;

/// Where a Streamable HTTP session registers under its `Mcp-Session-Id` once initialized, so
/// that the HTTP byte path can serve its calls (the HTTP listener's registry).
pub trait HttpRegistry: Send + Sync {
    fn register(&self, mcp_session_id: &str, handle: Arc<SessionHandle>);
    /// The session ended: what it has in flight on the byte path is cancelled.
    fn remove(&self, mcp_session_id: &str);
}

/// The most resources one `subscriptions/listen` may name; a listen naming more is
/// acknowledged for none of them (the client sees that in the acknowledgment).
const MAX_LISTENED_RESOURCES: usize = 1024;
/// The longest resource URI a listen is acknowledged for.
const MAX_LISTENED_URI: usize = 4096;

/// A request's extension of type `T`: in its own extensions, or over HTTP in the HTTP
/// request's (which rmcp puts in the request's).
fn extension<T: Clone + Send + Sync + 'static>(context: &RequestContext<RoleServer>) -> Option<T> {
    let extensions = &context.extensions;
    extensions.get::<T>().cloned().or_else(|| {
        let http = extensions.get::<axum::http::request::Parts>()?;
        http.extensions.get::<T>().cloned()
    })
}

/// Notes the view a list is answered from, for what is put back into the answer.
fn used_view(context: &RequestContext<RoleServer>, view: &Arc<crate::table::RoleView>) {
    if let Some(used) = extension::<service::UsedView>(context) {
        used.set(view);
    }
}

/// One MCP client of any transport. Registered with the gateway while it exists.
pub struct Session {
    handle: Arc<SessionHandle>,
    gateway: Arc<Gateway>,
    /// Streamable HTTP sessions: the registry and the `Mcp-Session-Id`, once initialized.
    http: Option<(Arc<dyn HttpRegistry>, OnceLock<String>)>,
    _slot: Option<Box<dyn Send + Sync>>,
}

impl Session {
    /// A session for a client with `role` (already checked against the table's roles).
    pub fn new(
        gateway: Arc<Gateway>,
        role: Option<String>,
        pid: Option<u32>,
        transport: SessionTransport,
    ) -> Self {
        let handle = gateway.join(role, pid, transport);
        Self {
            handle,
            gateway,
            http: None,
            _slot: None,
        }
    }

    /// A Streamable HTTP session, registered with `registry` once initialized.
    /// `slot` is whatever must live exactly as long as the session (its place under the HTTP
    /// listener's cap).
    pub fn http(
        gateway: Arc<Gateway>,
        role: Option<String>,
        registry: Arc<dyn HttpRegistry>,
        slot: Box<dyn Send + Sync>,
    ) -> Self {
        let mut session = Self::new(gateway, role, None, SessionTransport::Http);
        session.http = Some((registry, OnceLock::new()));
        session._slot = Some(slot);
        session
    }

    pub fn handle(&self) -> &Arc<SessionHandle> {
        &self.handle
    }

    /// What the gateway reads of a request it forwards (in the request's own extensions, where
    /// the bridge and [`Session::caller`] look): where its result's unknown members are wanted
    /// (put there by [`SessionService`], or over HTTP in the HTTP request's extensions, which
    /// rmcp puts in the request's: moved up), and whose environment its per-client instances
    /// take.
    fn forwarding(&self, context: &mut RequestContext<RoleServer>) {
        if context.extensions.get::<ResultMembers>().is_none()
            && let Some(slot) = extension::<ResultMembers>(context)
        {
            context.extensions.insert(slot);
        }
        context.extensions.insert(EnvOf(self.handle.id));
    }

    fn role(&self) -> Option<&str> {
        self.handle.role.as_deref()
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Caller {
        Caller::new(
            self.handle.id,
            context.peer.clone(),
            context.meta.get_progress_token(),
            crate::backend::forwarded_meta(&context.meta),
        )
        .of_stateless_client(self.stateless_client(context))
        .keeping_result_members(context.extensions.get::<ResultMembers>().cloned())
    }

    /// For a request of an HTTP client without a session (each of its requests is a session
    /// of its own): the id of the client's identity, which its per-client instances belong
    /// to, so that they are started once per client rather than once per request.
    fn stateless_client(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Option<crate::gateway::ClientIdentity> {
        let (_, registered) = self.http.as_ref()?;
        if registered.get().is_some() {
            return None;
        }
        let parts = context.extensions.get::<axum::http::request::Parts>()?;
        parts
            .extensions
            .get::<crate::gateway::ClientIdentity>()
            .copied()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some((registry, Some(id))) = self.http.as_ref().map(|(r, id)| (r, id.get())) {
            registry.remove(id);
        }
        self.gateway.leave(self.handle.id);
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .enable_prompts()
            .enable_prompts_list_changed()
            .enable_resources()
            .enable_resources_list_changed()
            .enable_resources_subscribe()
            .enable_completions()
            .enable_logging()
            .build();
        let mut info = InitializeResult::new(capabilities);
        info.server_info = Implementation::new("mcpgw", env!("CARGO_PKG_VERSION"));
        // From the current table without discovering: a server not yet known has no
        // instructions to relay, and the handshake must not wait for it.
        info.instructions = Some(self.gateway.table().view(self.role()).instructions.clone());
        info
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let client = format!(
            "{} {}",
            request.client_info.name, request.client_info.version
        );
        self.gateway
            .initialized(&self.handle, context.peer.clone(), client);
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        used_view(&context, &view);
        self.gateway
            .mark_seen(self.handle.id, &view, ListKind::Tools);
        let (tools, next) = page(&view.tools, request, "tools")?;
        let tools = tools.into_iter().map(|listed| listed.item).collect();
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let _busy = self.handle.busy()?;
        self.forwarding(&mut context);
        if crate::gateway::bridge::applies(&context) {
            return Box::pin(self.gateway.bridged_call_tool(
                self.role(),
                self.stateless_client(&context),
                request,
                &context,
            ))
            .await;
        }
        let caller = self.caller(&context);
        // Boxed: rmcp spawns a task per request holding this future, and moving a future of
        // this size into and around the task was the daemon's largest per-call cost (memcpy).
        Box::pin(
            self.gateway
                .call_tool(self.role(), request, caller, context.ct.clone()),
        )
        .await
    }

    async fn list_prompts(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        used_view(&context, &view);
        self.gateway
            .mark_seen(self.handle.id, &view, ListKind::Prompts);
        let (prompts, next) = page(&view.prompts, request, "prompts")?;
        let prompts = prompts.into_iter().map(|listed| listed.item).collect();
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let _busy = self.handle.busy()?;
        self.forwarding(&mut context);
        if crate::gateway::bridge::applies(&context) {
            return Box::pin(self.gateway.bridged_get_prompt(
                self.role(),
                self.stateless_client(&context),
                request,
                &context,
            ))
            .await;
        }
        let caller = self.caller(&context);
        Box::pin(
            self.gateway
                .get_prompt(self.role(), request, caller, context.ct.clone()),
        )
        .await
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        used_view(&context, &view);
        self.gateway
            .mark_seen(self.handle.id, &view, ListKind::Resources);
        let (resources, next) = page(&view.resources, request, "resources")?;
        let resources = resources.into_iter().map(|listed| listed.item).collect();
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        used_view(&context, &view);
        self.gateway
            .mark_seen(self.handle.id, &view, ListKind::Resources);
        let (templates, next) = page(&view.templates, request, "templates")?;
        let templates = templates.into_iter().map(|listed| listed.item).collect();
        let mut result = ListResourceTemplatesResult::with_all_items(templates);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let _busy = self.handle.busy()?;
        self.forwarding(&mut context);
        if crate::gateway::bridge::applies(&context) {
            return Box::pin(self.gateway.bridged_read_resource(
                self.role(),
                self.stateless_client(&context),
                request,
                &context,
            ))
            .await;
        }
        let caller = self.caller(&context);
        Box::pin(
            self.gateway
                .read_resource(self.role(), request, caller, context.ct.clone()),
        )
        .await
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let _busy = self.handle.busy()?;
        let caller = self.caller(&context);
        self.gateway
            .subscribe(self.role(), request.uri, caller, context.ct.clone())
            .await
            .map(drop)
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let _busy = self.handle.busy()?;
        let caller = self.caller(&context);
        self.gateway
            .unsubscribe(self.role(), caller, &request.uri)
            .await
    }

    /// A 2026-07-28 client's `subscriptions/listen`: every list change the gateway sends, and
    /// updates of the resources it names that its role may see (rmcp acknowledges this filter,
    /// narrowed to what the client asked for). Before discovery has run (no schema cache) a
    /// URI cannot be checked yet; it is accepted, and one no server serves stays silent.
    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        let mut accepted = SubscriptionFilter::new();
        accepted.tools_list_changed = Some(true);
        accepted.prompts_list_changed = Some(true);
        accepted.resources_list_changed = Some(true);
        // Bounded: each accepted URI is a subscription upstream and a comparison per update,
        // and this runs on the daemon's one thread. A longer list gets none: rmcp matches
        // every requested URI against the accepted ones (duplicates included), so taking a
        // part of it would still cost its length times ours.
        accepted.resource_subscriptions = requested
            .resource_subscriptions
            .as_ref()
            .filter(|uris| uris.len() <= MAX_LISTENED_RESOURCES)
            .map(|uris| {
                uris.iter()
                    .filter(|uri| uri.len() <= MAX_LISTENED_URI)
                    .filter(|uri| self.gateway.may_see_resource(self.role(), uri))
                    .cloned()
                    .collect()
            });
        Some(accepted)
    }

    /// Holds the subscription open until the client cancels it or leaves: the gateway sends
    /// its changes through the sink, and each accepted resource is subscribed upstream as a
    /// handshake-era `resources/subscribe` would be. An open listen counts as a request in
    /// flight, so a client cannot hold unboundedly many.
    async fn listen(&self, subscription: SubscriptionContext) -> Result<(), McpError> {
        let _busy = self.handle.busy()?;
        let context = subscription.request_context();
        let sink = subscription.sink().clone();
        self.gateway.listening(self.handle.id, sink.clone());
        let mut subscribed = Vec::new();
        let (mut failures, mut first_failure) = (0, None);
        for uri in sink.accepted().resource_subscriptions.iter().flatten() {
            let caller = self.caller(context);
            let ct = context.ct.clone();
            match self
                .gateway
                .subscribe(self.role(), uri.clone(), caller, ct)
                .await
            {
                Ok(backend) => subscribed.push((uri, backend)),
                Err(e) => {
                    failures += 1;
                    first_failure.get_or_insert(e.message);
                }
            }
        }
        // One line per listen, however many URIs the client named: the first error only (a
        // URI it quotes is at most 4 KiB, URLs cut to their origin).
        if let Some(first) = first_failure {
            tracing::warn!(
                session = self.handle.id,
                "{failures} resource(s) of a subscriptions/listen could not be subscribed; the \
                 first: {}",
                crate::config::redact_urls(&first)
            );
        }
        subscription.cancelled().await;
        let still_held = self.gateway.stopped_listening(self.handle.id, sink.id());
        for (uri, backend) in subscribed {
            if !still_held.contains(uri) {
                let caller = self.caller(context);
                self.gateway.release(&backend, caller, uri).await;
            }
        }
        Ok(())
    }

    /// An HTTP session is registered by its `Mcp-Session-Id` (first seen on this notification)
    /// so that the byte path can serve its calls.
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        let Some((registry, registered)) = &self.http else {
            return;
        };
        let session_id = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|value| value.to_str().ok());
        if let Some(session_id) = session_id
            && registered.set(session_id.to_string()).is_ok()
        {
            registry.register(session_id, self.handle.clone());
        }
    }

    async fn on_roots_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<RoleServer>,
    ) {
        self.gateway.roots_changed(self.handle.id).await;
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        mut context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
        let _busy = self.handle.busy()?;
        self.forwarding(&mut context);
        let caller = self.caller(&context);
        Box::pin(
            self.gateway
                .complete(self.role(), request, caller, context.ct.clone()),
        )
        .await
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.gateway
            .set_log_level(self.handle.id, request.level)
            .await;
        Ok(())
    }
}
