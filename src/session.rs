//! One connected MCP client, served with rmcp's `ServerHandler`.
//!
//! The session knows its role and nothing else: every request loads the current routing table
//! from the gateway, so a reload is seen by the next request without reconnecting.

use std::sync::Arc;

use crate::connection::{Reader, Writer};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ErrorData as McpError, ServerHandler};
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::protocol::Hello;

/// Serves one session until the client disconnects or the daemon stops.
pub async fn serve(
    gateway: Arc<Gateway>,
    hello: Hello,
    reader: Reader,
    writer: Writer,
    stop: CancellationToken,
) {
    let id = gateway.join(hello.role.clone(), hello.pid);
    let session = Session {
        id,
        role: hello.role,
        gateway: gateway.clone(),
    };
    // No line limit: a tool result is relayed whole, whatever its size.
    let transport = AsyncRwTransport::new_server(reader, writer).with_max_line_length(usize::MAX);
    match rmcp::service::serve_server_with_ct(session, transport, stop).await {
        Ok(running) => {
            let _ = running.waiting().await;
        }
        Err(e) => tracing::debug!(session = id, "session ended before initializing: {e}"),
    }
    gateway.leave(id);
}

struct Session {
    id: u64,
    role: Option<String>,
    gateway: Arc<Gateway>,
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        let mut info = InitializeResult::new(capabilities);
        info.server_info = Implementation::new("mcpgw", env!("CARGO_PKG_VERSION"));
        info.instructions =
            Some("mcpgw gateway: tools of several MCP servers, each named <server>_<tool>.".into());
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
        self.negotiate_initialize(&request)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        let tools = self.gateway.list_tools(self.role.as_deref()).await;
        self.gateway.mark_seen(self.id, self.role.as_deref());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (context.peer.clone(), token));
        self.gateway
            .call_tool(self.role.as_deref(), request, progress, context.ct.clone())
            .await
    }
}
