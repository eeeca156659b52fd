//! One connected MCP client, served with rmcp's `ServerHandler`.
//!
//! The session knows its id and role and nothing else: every request goes to the gateway,
//! which loads the current routing table, so a reload is seen by the next request without
//! reconnecting. Lists are paged with opaque gateway cursors.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::sync::{Arc, OnceLock};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CompleteRequestParams, CompleteResult,
    GetPromptRequestParams, GetPromptResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListPromptsResult, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse,
    ServerCapabilities, ServerConfig, SetLevelRequestParams, SubscribeRequestParams,
    UnsubscribeRequestParams,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio_util::sync::CancellationToken;

use crate::backend::call::Caller;
use crate::connection::{Reader, Writer};
use crate::fast::session::Client;
use crate::gateway::{Gateway, ListKind};
use crate::protocol::{Hello, SessionTransport};
use crate::table::pages::page;
use crate::wire::LineSink;

/// The largest message a client may send. Requests are small (results flow the other way and
/// are not limited); the bound keeps one broken or hostile client from growing the daemon's
/// memory without end. A longer line is dropped and logged, the session goes on.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024 * 1024;

/// Serves one session until the client disconnects or the daemon stops: the fast path reads
/// the client's lines and passes what it does not take to rmcp; both write through one queue.
pub async fn serve(
    gateway: Arc<Gateway>,
    hello: Hello,
    reader: Reader,
    writer: Writer,
    stop: CancellationToken,
) {
    let session = Session::new(
        gateway.clone(),
        hello.role.clone(),
        hello.pid,
        SessionTransport::Socket,
    );
    let id = session.id;
    let (out, frames) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(crate::wire::write_frames(writer, frames));
    let (rmcp_read, rmcp_feed) = tokio::io::duplex(64 * 1024);
    let fast = Client {
        id,
        role: hello.role,
        gateway,
        peer: session.peer.clone(),
        calls: Arc::default(),
    };
    let transport = AsyncRwTransport::new_server(rmcp_read, LineSink::new(out.clone()))
        .with_max_line_length(usize::MAX);
    // The client hanging up ends the pump, which ends rmcp's input; rmcp ending (the daemon
    // stops, the handshake failed) ends the pump.
    let done = stop.child_token();
    let pump = fast.pump(out, reader, rmcp_feed, MAX_CLIENT_MESSAGE, done.clone());
    let rmcp = async move {
        match rmcp::service::serve_server_with_ct(session, transport, stop).await {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => tracing::debug!(session = id, "session ended before initializing: {e}"),
        }
        done.cancel();
    };
    tokio::join!(pump, rmcp);
}

/// One MCP client of any transport. Registered with the gateway while it exists.
pub struct Session {
    id: u64,
    role: Option<String>,
    gateway: Arc<Gateway>,
    /// Set when initialized: the fast path routes calls of this client through it.
    peer: Arc<OnceLock<Peer<RoleServer>>>,
    transport: SessionTransport,
    /// An HTTP session's `Mcp-Session-Id`, once initialized (registered for the fast path).
    http_id: OnceLock<String>,
}

impl Session {
    /// A session for a client with `role` (already checked against the table's roles).
    pub fn new(
        gateway: Arc<Gateway>,
        role: Option<String>,
        pid: Option<u32>,
        transport: SessionTransport,
    ) -> Self {
        let id = gateway.join(role.clone(), pid, transport);
        Self {
            id,
            role,
            gateway,
            peer: Arc::default(),
            transport,
            http_id: OnceLock::new(),
        }
    }

    fn role(&self) -> Option<&str> {
        self.role.as_deref()
    }

    fn caller(&self, context: &RequestContext<RoleServer>) -> Caller {
        Caller {
            session: self.id,
            peer: context.peer.clone(),
            progress_token: context.meta.get_progress_token(),
            last_progress: None,
            meta: crate::backend::call::forwarded_meta(&context.meta),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(http_id) = self.http_id.get() {
            self.gateway.http_clients.remove(http_id);
        }
        self.gateway.leave(self.id);
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
        info.instructions = Some(
            "mcpgw gateway: the tools and prompts of several MCP servers, each named <server>_<name>."
                .into(),
        );
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
            .initialized(self.id, context.peer.clone(), client);
        let _ = self.peer.set(context.peer.clone());
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        self.gateway.mark_seen(self.id, &view, ListKind::Tools);
        let (tools, next) = page(&view.tools, request, "tools")?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        if crate::gateway::bridge::applies(&context) {
            return Box::pin(
                self.gateway
                    .bridged_call_tool(self.role(), request, &context),
            )
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
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        self.gateway.mark_seen(self.id, &view, ListKind::Prompts);
        let (prompts, next) = page(&view.prompts, request, "prompts")?;
        let mut result = ListPromptsResult::with_all_items(prompts);
        result.next_cursor = next;
        Ok(result)
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        if crate::gateway::bridge::applies(&context) {
            return Box::pin(
                self.gateway
                    .bridged_get_prompt(self.role(), request, &context),
            )
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
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        self.gateway.mark_seen(self.id, &view, ListKind::Resources);
        let (resources, next) = page(&view.resources, request, "resources")?;
        let mut result = ListResourcesResult::with_all_items(resources);
        result.next_cursor = next;
        Ok(result)
    }

    async fn list_resource_templates(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let view = self.gateway.view(self.role()).await;
        self.gateway.mark_seen(self.id, &view, ListKind::Resources);
        let (templates, next) = page(&view.templates, request, "templates")?;
        let mut result = ListResourceTemplatesResult::with_all_items(templates);
        result.next_cursor = next;
        Ok(result)
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        if crate::gateway::bridge::applies(&context) {
            return Box::pin(
                self.gateway
                    .bridged_read_resource(self.role(), request, &context),
            )
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
        let caller = self.caller(&context);
        self.gateway
            .subscribe(self.role(), request.uri, caller, context.ct.clone())
            .await
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let caller = self.caller(&context);
        self.gateway
            .unsubscribe(self.role(), caller, &request.uri)
            .await
    }

    /// An HTTP session is registered by its `Mcp-Session-Id` (first seen on this notification)
    /// so that the fast path can serve its calls.
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        if self.transport != SessionTransport::Http {
            return;
        }
        let session_id = context
            .extensions
            .get::<axum::http::request::Parts>()
            .and_then(|parts| parts.headers.get("mcp-session-id"))
            .and_then(|value| value.to_str().ok());
        if let Some(session_id) = session_id
            && self.http_id.set(session_id.to_string()).is_ok()
        {
            let client = Client {
                id: self.id,
                role: self.role.clone(),
                gateway: self.gateway.clone(),
                peer: self.peer.clone(),
                calls: Arc::default(),
            };
            self.gateway
                .http_clients
                .insert(session_id.to_string(), client);
        }
    }

    async fn on_roots_list_changed(
        &self,
        _context: rmcp::service::NotificationContext<RoleServer>,
    ) {
        self.gateway.roots_changed(self.id).await;
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, McpError> {
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
        self.gateway.set_log_level(self.id, request.level).await;
        Ok(())
    }
}
