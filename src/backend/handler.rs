//! What a backend sends the gateway: progress, log messages, resource updates, list changes,
//! and server→client requests (sampling, elicitation, roots), each routed to the right session.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::sync::{Arc, Weak};

use rmcp::ClientHandler;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    ClientCapabilities, ClientConfig, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, CustomRequest, ElicitRequest,
    ElicitRequestParams, ElicitResult, ErrorCode, Implementation, ListRootsResult,
    LoggingMessageNotificationParam, ProgressNotificationParam, ProtocolVersion,
    ResourceUpdatedNotificationParam, ServerRequest,
};
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RoleClient};

use super::Backend;
use super::Caller;
use super::call::cancelled;
use super::upstream::stdio::Link;

pub(super) struct Handler {
    backend: Weak<Backend>,
    /// The stdio link of this connection: re-listing reads the server's lists as written
    /// through it (the backend's live instance may not be this one yet while it starts).
    link: Option<Weak<Link>>,
}

impl Handler {
    /// The server's request `method` as the server wrote it, to relay instead of rmcp's typed
    /// one (see `upstream::asks`); `None` when not kept (not a stdio server, a long line).
    fn as_written(
        &self,
        context: &RequestContext<RoleClient>,
        method: &str,
    ) -> Option<ServerRequest> {
        let link = self.link.as_ref()?.upgrade()?;
        let params = link.take_ask(&context.id, method)?;
        Some(ServerRequest::CustomRequest(CustomRequest::new(
            method,
            Some(params),
        )))
    }

    pub(super) fn new(backend: Weak<Backend>, link: Option<&Arc<Link>>) -> Self {
        Self {
            backend,
            link: link.map(Arc::downgrade),
        }
    }

    /// Sends a server→client request to the session whose call raised it, and its answer back.
    async fn relay(
        &self,
        request: ServerRequest,
        capable: fn(&ClientCapabilities) -> bool,
        what: &str,
        context: &RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        let backend = self.backend.upgrade().ok_or_else(cancelled)?;
        let Some(Caller { peer, .. }) = backend.oldest_caller() else {
            return Err(McpError::new(
                ErrorCode::INVALID_REQUEST,
                format!(
                    "mcpgw: no client request is in flight on `{}` to ask for {what}",
                    backend.name
                ),
                None,
            ));
        };
        let supported = peer
            .peer_info()
            .is_some_and(|info| capable(&info.capabilities));
        if !supported {
            // A shared server offers its tools for the gateway's capabilities, not this
            // client's: say what the client lacks, and how to give the server the client's own.
            let shared = match backend.owner {
                None => format!(
                    "; `{}` is shared, so it offers its tools to every client alike (`scope: \
                     per-client` gives it each client's own capabilities)",
                    backend.name
                ),
                Some(_) => String::new(),
            };
            return Err(McpError::new(
                ErrorCode::INVALID_REQUEST,
                format!(
                    "mcpgw: server `{}` asked for {what}, which this client did not declare{shared}",
                    backend.name
                ),
                None,
            ));
        }
        let handle = peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
            .map_err(|e| McpError::internal_error(format!("mcpgw: {e}"), None))?;
        let id = handle.id.clone();
        tokio::select! {
            result = handle.await_response() => result.map_err(|e| match e {
                rmcp::service::ServiceError::McpError(e) => e,
                other => McpError::internal_error(format!("mcpgw: {other}"), None),
            }),
            () = context.ct.cancelled() => {
                // The server withdrew its request: withdraw ours from the client.
                let param = rmcp::model::CancelledNotificationParam::new(Some(id), None);
                let _ = peer.notify_cancelled(param).await;
                Err(cancelled())
            }
        }
    }
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        let capabilities = self
            .backend
            .upgrade()
            .map(|backend| capabilities_for(&backend))
            .unwrap_or_default();
        ClientConfig::new(
            capabilities,
            Implementation::new("mcpgw", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let request = self
            .as_written(&context, "sampling/createMessage")
            .unwrap_or_else(|| {
                ServerRequest::CreateMessageRequest(CreateMessageRequest::new(params))
            });
        match self
            .relay(request, |c| c.sampling.is_some(), "sampling", &context)
            .await?
        {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            other => typed_answer(other),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let request = self
            .as_written(&context, "elicitation/create")
            .unwrap_or_else(|| ServerRequest::ElicitRequest(ElicitRequest::new(params)));
        match self
            .relay(
                request,
                |c| c.elicitation.is_some(),
                "elicitation",
                &context,
            )
            .await?
        {
            ClientResult::ElicitResult(result) => Ok(result),
            other => typed_answer(other),
        }
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        let backend = self.backend.upgrade().ok_or_else(cancelled)?;
        backend.asked_for_roots();
        if backend.has_client_roots() {
            // A per-client instance's: its client's, asked as it started (see `roots`).
            let roots = tokio::select! {
                roots = backend.client_roots() => roots?,
                () = context.ct.cancelled() => return Err(cancelled()),
            };
            backend.roots_answered();
            return Ok(roots);
        }
        let request = ServerRequest::ListRootsRequest(Default::default());
        match self
            .relay(request, |c| c.roots.is_some(), "roots", &context)
            .await
        {
            Ok(ClientResult::ListRootsResult(result)) => Ok(result),
            // Not advertised, so not owed: a server asking anyway gets no roots.
            _ => Ok(ListRootsResult::default()),
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let Some(backend) = self.backend.upgrade() else {
            return;
        };
        let Some(caller) = backend
            .callers
            .progress_by_token(&params.progress_token, params.progress)
        else {
            return;
        };
        let Some(token) = caller.progress_token else {
            return;
        };
        let mut params = params;
        params.progress_token = token;
        let _ = caller.peer.notify_progress(params).await;
    }

    async fn on_logging_message(
        &self,
        params: LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let Some(backend) = self.backend.upgrade() else {
            return;
        };
        // The table's backend of a per-client server only discovers its lists: it serves no
        // client, so what it logs (server-everything's "Roots updated: 0 root(s)") is no
        // client's to see.
        if backend.spec.scope == crate::config::Scope::PerClient && backend.owner.is_none() {
            tracing::debug!(server = %backend.name, "a discovery instance's log message dropped");
            return;
        }
        if let Some(events) = backend.events.upgrade() {
            events.log_message(&backend.name, backend.owner_session(), params);
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(backend) = self.backend.upgrade()
            && let Some(events) = backend.events.upgrade()
        {
            events.resource_updated(&backend.name, backend.owner_session(), params);
        }
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.refresh(context).await;
    }

    async fn on_prompt_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.refresh(context).await;
    }

    async fn on_resource_list_changed(&self, context: NotificationContext<RoleClient>) {
        self.refresh(context).await;
    }
}

impl Handler {
    async fn refresh(&self, context: NotificationContext<RoleClient>) {
        if let Some(backend) = self.backend.upgrade() {
            let link = self.link.as_ref().and_then(Weak::upgrade);
            backend.refresh_schema(&context.peer, link.as_deref()).await;
        }
    }
}

/// What the gateway declares to a server, which decides what it offers (servers list tools
/// that need sampling, elicitation or roots only to clients that have them):
/// - a per-client instance: exactly its client's own sampling, elicitation and roots;
/// - a shared server: sampling and elicitation (delivered to the client whose call is in
///   flight; a client without them gets an error saying so), never roots (a client's own);
/// - the table's backend of a per-client server, which only discovers its lists: all three, so
///   that the lists hold everything any client may be offered (a call to what a client's own
///   instance does not offer is answered with why).
pub(super) fn capabilities_for(backend: &Backend) -> ClientCapabilities {
    let mut capabilities = ClientCapabilities::default();
    let roots = || {
        let mut roots = rmcp::model::RootsCapabilities::default();
        roots.list_changed = Some(true);
        roots
    };
    match &backend.owner {
        Some(owner) => {
            let Some(client) = owner.peer.peer_info() else {
                return capabilities;
            };
            let client = &client.capabilities;
            capabilities.sampling = client.sampling.clone();
            capabilities.elicitation = client.elicitation.clone();
            capabilities.roots = client.roots.as_ref().map(|_| roots());
        }
        None => {
            capabilities.sampling = Some(Default::default());
            capabilities.elicitation = Some(Default::default());
            if backend.spec.scope == crate::config::Scope::PerClient {
                capabilities.roots = Some(roots());
            }
        }
    }
    capabilities
}

/// A client's answer to a request relayed as written, which rmcp may read as a custom result.
fn typed_answer<T: serde::de::DeserializeOwned>(result: ClientResult) -> Result<T, McpError> {
    match result {
        ClientResult::CustomResult(custom) => serde_json::from_value(custom.0).map_err(|e| {
            McpError::internal_error(format!("mcpgw: the client's answer: {e}"), None)
        }),
        other => Err(unexpected(other)),
    }
}

fn unexpected(result: ClientResult) -> McpError {
    McpError::internal_error(
        format!("mcpgw: unexpected answer from the client: {result:?}"),
        None,
    )
}
