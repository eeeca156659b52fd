//! The loopback: an in-process rmcp server/client pair standing in for a bridged call's client,
//! so that a backend's server→client requests become input requests of the call.

// Sampling and roots are deprecated by SEP-2577 for the 2026-07-28 protocol; the bridge exists
// to serve backends that still use them.
#![allow(deprecated)]

use rmcp::model::{
    ClientResult, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult,
    CustomRequest, CustomResult, ElicitRequest, ElicitRequestParams, ElicitResult, Implementation,
    InitializeRequestParams, InputRequest, ListRootsResult, ProgressNotificationParam,
    ProtocolVersion,
};
use rmcp::service::{NotificationContext, RequestContext, RoleClient, RoleServer, RunningService};
use rmcp::{ClientHandler, ErrorData as McpError, ServerHandler};
use tokio::sync::{mpsc, oneshot};

use super::abandoned;
use super::call::{Ask, ProgressTarget};

/// Both sides of a call's loopback, kept as long as the call: dropping them ends it.
pub(super) type Loopback = (
    RunningService<RoleServer, Nobody>,
    RunningService<RoleClient, Asker>,
);

/// The loopback: an initialize-era client with the capabilities this client declared. What
/// the backend asks it is sent on `asks`; its progress goes where `progress` says.
pub(super) fn connect(
    context: &RequestContext<RoleServer>,
    asks: mpsc::UnboundedSender<Ask>,
    progress: ProgressTarget,
) -> Loopback {
    let (to_client, from_server) = futures::channel::mpsc::channel(16);
    let (to_server, from_client) = futures::channel::mpsc::channel(16);
    let client_info = context
        .client_info()
        .unwrap_or_else(|| Implementation::new("unknown", "0"));
    let info = InitializeRequestParams::new(
        context.client_capabilities().unwrap_or_default(),
        client_info,
    )
    .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
    let server = rmcp::service::serve_directly(Nobody, (to_client, from_client), Some(info));
    let asker = Asker { asks, progress };
    let client = rmcp::service::serve_directly(asker, (to_server, from_server), None);
    (server, client)
}

/// The loopback's server side: never asked anything (its peer is only used to send).
pub(super) struct Nobody;

impl ServerHandler for Nobody {}

/// The loopback's client side: what a backend asks the call's client becomes an input request.
pub(super) struct Asker {
    asks: mpsc::UnboundedSender<Ask>,
    progress: ProgressTarget,
}

impl Asker {
    async fn ask(
        &self,
        request: InputRequest,
        context: &RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        let (reply, answer) = oneshot::channel();
        self.asks
            .send(Ask { request, reply })
            .map_err(|_| abandoned())?;
        tokio::select! {
            answer = answer => answer.unwrap_or_else(|_| Err(McpError::internal_error(
                "mcpgw: the client did not answer (its request was abandoned or timed out)",
                None,
            ))),
            // The backend withdrew its request: so is the input request (dropping `answer`).
            () = context.ct.cancelled() => Err(abandoned()),
        }
    }
}

fn wrong_answer(result: ClientResult) -> McpError {
    McpError::internal_error(
        format!("mcpgw: unexpected answer from the client: {result:?}"),
        None,
    )
}

impl ClientHandler for Asker {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
        match self.ask(request, &context).await? {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            other => Err(wrong_answer(other)),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let request = InputRequest::Elicitation(ElicitRequest::new(params));
        match self.ask(request, &context).await? {
            ClientResult::ElicitResult(result) => Ok(result),
            other => Err(wrong_answer(other)),
        }
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        let request = InputRequest::ListRoots(Default::default());
        match self.ask(request, &context).await? {
            ClientResult::ListRootsResult(result) => Ok(result),
            other => Err(wrong_answer(other)),
        }
    }

    /// A backend's request relayed as its server wrote it (see `backend::upstream::asks`):
    /// an input request is typed, so it is read as the typed request here.
    async fn on_custom_request(
        &self,
        request: CustomRequest,
        context: RequestContext<RoleClient>,
    ) -> Result<CustomResult, McpError> {
        let params = request.params.unwrap_or_default();
        let invalid = |e: serde_json::Error| McpError::invalid_params(e.to_string(), None);
        let result = match request.method.as_str() {
            "sampling/createMessage" => {
                let params = serde_json::from_value(params).map_err(invalid)?;
                serde_json::to_value(self.create_message(params, context).await?)
            }
            "elicitation/create" => {
                let params = serde_json::from_value(params).map_err(invalid)?;
                serde_json::to_value(self.create_elicitation(params, context).await?)
            }
            other => {
                return Err(McpError::new(
                    rmcp::model::ErrorCode::METHOD_NOT_FOUND,
                    format!("mcpgw: `{other}` cannot be asked of a 2026-07-28 client"),
                    None,
                ));
            }
        };
        result
            .map(CustomResult::new)
            .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let target = self.progress.lock().unwrap().clone();
        if let Some((peer, token)) = target {
            params.progress_token = token;
            let _ = peer.notify_progress(params).await;
        }
    }
}
