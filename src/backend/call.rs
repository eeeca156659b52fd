//! Forwarding one session's request through rmcp's client (every request the byte path does
//! not take), and the subscriptions a backend keeps across restarts.
//!
//! The request's record is an [`InFlight`]: its session is the backend's caller while it runs
//! (progress and server→client requests go back to it), and a request that ends any way other
//! than with a response — the client cancelled, disconnected (the future is dropped), or the
//! gateway timed it out — is withdrawn upstream.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::model::{ClientRequest, ServerResult};
use rmcp::service::{PeerRequestOptions, ServiceError};
use tokio_util::sync::CancellationToken;

use super::inflight::{self, Caller, InFlight, Sent};
use super::lifecycle::Running;
use super::listed::{ResultMembers, known_result_members};
use super::{Backend, BackendError};

impl Backend {
    /// Forwards `request` (already rewritten to the server's own names) and returns the
    /// server's result. Starts the server if needed.
    pub async fn request(
        self: &Arc<Self>,
        request: ClientRequest,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<ServerResult, McpError> {
        let tool_call = matches!(request, ClientRequest::CallToolRequest(_));
        let mut options = PeerRequestOptions::no_options();
        options.meta = caller.meta.clone();
        let members = caller
            .result_members
            .clone()
            .zip(known_result_members(request.method()));
        // Dropped with this future however it ends: a client that disconnects withdraws it.
        let mut inflight = InFlight::begin(self, caller, tool_call);
        let result = self
            .forward(request, options, &mut inflight, members, ct)
            .await;
        let failed = tool_call
            && match &result {
                Ok(ServerResult::CallToolResult(r)) => r.is_error == Some(true),
                Ok(_) => false,
                Err(_) => true,
            };
        inflight.finish(failed);
        result
    }

    async fn forward(
        self: &Arc<Self>,
        request: ClientRequest,
        options: PeerRequestOptions,
        inflight: &mut InFlight,
        members: Option<(ResultMembers, &'static [&'static str])>,
        ct: CancellationToken,
    ) -> Result<ServerResult, McpError> {
        let running = tokio::select! {
            r = self.ensure_running() => r?,
            () = ct.cancelled() => return Err(cancelled()),
        };
        if let ClientRequest::CallToolRequest(call) = &request
            && let Some(refused) = self.not_offered(&call.params.name)
        {
            return Err(refused);
        }
        // The result as written, for what rmcp's types do not know (stdio only: rmcp's HTTP
        // client parses before a byte is ours).
        let mut watch = members
            .as_ref()
            .zip(running.link.as_ref())
            .map(|((_, known), link)| link.watch(known));
        let handle = match running
            .peer
            .send_request_with_option(request, options)
            .await
        {
            Ok(handle) => handle,
            Err(e) => return Err(self.service_error(&running, e).await),
        };
        if let Some(watch) = &mut watch {
            watch.sent(&handle.id);
        }
        let sent = Sent::Rmcp(handle.id.clone(), running.peer.clone());
        inflight.sent(sent, Some(handle.progress_token.clone()));
        let limit = self.call_timeout();
        let timeout = async {
            match limit {
                None => std::future::pending().await,
                Some(limit) => tokio::time::sleep(limit).await,
            }
        };
        let response = tokio::select! {
            r = handle.await_response() => r,
            () = ct.cancelled() => {
                inflight.withdraw("cancelled by the client");
                return Err(cancelled());
            }
            () = running.gone.cancelled() => {
                let gone = inflight::gone(&self.name, &running.fault, running.exited()).await;
                return Err(gone.into());
            }
            () = timeout => {
                inflight.withdraw("call_timeout");
                return Err(inflight::timed_out(&self.name, limit.unwrap_or_default()));
            }
        };
        // Answered (or failed): nothing to withdraw from here on, whatever happens to this future.
        inflight.finish(false);
        // Progress notifications are handled on their own tasks; let those already received
        // reach the client before the response does.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        if let (Some((slot, _)), Some(unknown)) = (&members, watch.and_then(|w| w.take())) {
            slot.set(unknown);
        }
        match response {
            Ok(result) => Ok(result),
            Err(e) => Err(self.service_error(&running, e).await),
        }
    }

    /// A call to a tool a per-client instance does not list: its server offers it only to
    /// clients with capabilities this one lacks (the lists clients see are discovered with all
    /// of them). Answered here with why, rather than with the server's "unknown tool".
    /// Shared servers: never (their errors are their own); costs nothing then.
    pub fn not_offered(&self, name: &str) -> Option<McpError> {
        self.owner.as_ref()?;
        let schema = self.schema()?;
        if schema.tools.iter().any(|tool| tool.name == name) {
            return None;
        }
        let declared = super::handler::capabilities_for(self);
        let lacks: Vec<&str> = [
            ("sampling", declared.sampling.is_none()),
            ("elicitation", declared.elicitation.is_none()),
            ("roots", declared.roots.is_none()),
        ]
        .into_iter()
        .filter_map(|(what, lacking)| lacking.then_some(what))
        .collect();
        let why = match lacks.is_empty() {
            true => "it does not list it for this client".to_string(),
            false => format!(
                "it lists it only to clients with capabilities this client did not declare \
                 (it lacks {})",
                lacks.join(", ")
            ),
        };
        Some(McpError::invalid_params(
            format!(
                "tool `{name}` of server `{}` is not offered to this client: {why}",
                self.name
            ),
            None,
        ))
    }

    async fn service_error(&self, running: &Running, e: ServiceError) -> McpError {
        match e {
            ServiceError::McpError(e) => e,
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                inflight::gone(&self.name, &running.fault, running.exited())
                    .await
                    .into()
            }
            other => BackendError::Protocol {
                name: self.name.clone(),
                message: crate::config::redact_urls(&other.to_string()).into_owned(),
            }
            .into(),
        }
    }

    /// The session whose request has been waiting longest: where a server→client request
    /// raised now is sent. With several sessions in flight on one shared backend the server's
    /// request cannot be attributed for sure (stdio carries no "related request"); oldest-first
    /// is deterministic and matches the common case of one call waiting on user input.
    pub(super) fn oldest_caller(&self) -> Option<Caller> {
        if let Some(owner) = self.owner.as_ref().filter(|o| !o.follows_calls) {
            // A session's per-client instance has exactly one client, busy or not.
            return Some(Caller::session(owner.session, owner.peer.clone()));
        }
        self.callers.oldest()
    }
}

pub(super) fn cancelled() -> McpError {
    McpError::new(
        rmcp::model::ErrorCode::INTERNAL_ERROR,
        "request cancelled",
        None,
    )
}

impl Backend {
    /// Subscribes upstream to `uri`; kept across restarts until [`unsubscribe`](Self::unsubscribe).
    pub async fn subscribe(
        self: &Arc<Self>,
        uri: String,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<(), McpError> {
        let params = rmcp::model::SubscribeRequestParams::new(uri.clone());
        let request = ClientRequest::SubscribeRequest(rmcp::model::SubscribeRequest::new(params));
        self.request(request, caller, ct).await?;
        self.subscriptions.lock().unwrap().insert(uri);
        Ok(())
    }

    pub async fn unsubscribe(&self, uri: &str) {
        self.subscriptions.lock().unwrap().remove(uri);
        let Some(running) = self.live_instance() else {
            return;
        };
        let params = rmcp::model::UnsubscribeRequestParams::new(uri.to_string());
        let request =
            ClientRequest::UnsubscribeRequest(rmcp::model::UnsubscribeRequest::new(params));
        if let Err(e) = running.peer.send_request(request).await {
            tracing::debug!(server = %self.name, "unsubscribe failed: {e}");
        }
    }
}
