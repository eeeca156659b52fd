//! Forwarding one session's request to a backend, and keeping track of who is waiting.
//!
//! Every forwarded request registers its caller for its lifetime: progress notifications and
//! server→client requests (sampling, elicitation) raised while it runs are routed back to that
//! session. A request that ends any way other than with a response — the client cancelled, the
//! client disconnected (the future is dropped), the gateway timed it out — is cancelled upstream.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CancelledNotificationParam, ClientRequest, ProgressToken, RequestId, RequestMetaObject,
    ServerResult,
};
use rmcp::service::{Peer, PeerRequestOptions, RoleClient, RoleServer, ServiceError};
use tokio_util::sync::CancellationToken;

use super::{Backend, BackendError, Running};

/// The session a request came from.
#[derive(Clone)]
pub struct Caller {
    pub session: u64,
    pub peer: Peer<RoleServer>,
    /// The client's own progress token for this request, if it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The last progress value passed on: older, out-of-order updates are dropped.
    pub last_progress: Option<f64>,
    /// What the client sent in the request's `_meta` for the server (see [`forwarded_meta`]).
    pub meta: Option<RequestMetaObject>,
}

/// The part of a client's request `_meta` that is meant for the server: everything but the
/// progress token (the gateway gives the server its own) and the 2026-07-28 per-request
/// protocol keys (they describe the client's exchange with the gateway, not the gateway's
/// with the server).
pub fn forwarded_meta(meta: &RequestMetaObject) -> Option<RequestMetaObject> {
    const NOT_FORWARDED: [&str; 5] = [
        "progressToken",
        "io.modelcontextprotocol/protocolVersion",
        "io.modelcontextprotocol/clientInfo",
        "io.modelcontextprotocol/clientCapabilities",
        "io.modelcontextprotocol/logLevel",
    ];
    let kept: rmcp::model::JsonObject = meta
        .0
        .iter()
        .filter(|(key, _)| !NOT_FORWARDED.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!kept.is_empty()).then(|| RequestMetaObject(kept.into()))
}

impl Backend {
    /// Forwards `request` (already rewritten to the server's own names) and returns the
    /// server's result. Starts the server if needed.
    pub async fn request(
        self: &Arc<Self>,
        request: ClientRequest,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<ServerResult, McpError> {
        let is_call = matches!(request, ClientRequest::CallToolRequest(_));
        if is_call {
            self.count_call();
        }
        let mut options = PeerRequestOptions::no_options();
        options.meta = caller.meta.clone();
        let mut guard = InFlight::new(self, caller);
        let result = self.forward(request, options, &mut guard, ct).await;
        guard.failed = is_call
            && match &result {
                Ok(ServerResult::CallToolResult(r)) => r.is_error == Some(true),
                Ok(_) => false,
                Err(_) => true,
            };
        result
    }

    pub(crate) fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// Registers a request in flight for `caller` (where its progress and server→client
    /// requests go; idle stop and drains wait for it). Returns its entry, for
    /// [`end_request`](Self::end_request).
    pub(crate) fn begin_request(&self, caller: Caller) -> u64 {
        self.touch();
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let seq = self.next_call.fetch_add(1, Ordering::Relaxed);
        self.callers.lock().unwrap().insert(seq, caller);
        seq
    }

    /// `failed`: a tool call that failed, counted in status.
    pub(crate) fn end_request(&self, seq: u64, failed: bool) {
        self.callers.lock().unwrap().remove(&seq);
        self.inflight.fetch_sub(1, Ordering::SeqCst);
        self.touch();
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn forward(
        self: &Arc<Self>,
        request: ClientRequest,
        options: PeerRequestOptions,
        guard: &mut InFlight<'_>,
        ct: CancellationToken,
    ) -> Result<ServerResult, McpError> {
        let running = tokio::select! {
            r = self.ensure_running() => r?,
            () = ct.cancelled() => return Err(cancelled()),
        };
        let handle = match running
            .peer
            .send_request_with_option(request, options)
            .await
        {
            Ok(handle) => handle,
            Err(e) => return Err(self.service_error(&running, e).await),
        };
        guard.sent(
            handle.id.clone(),
            handle.progress_token.clone(),
            running.peer.clone(),
        );
        let limit = self.call_timeout_ms.load(Ordering::Relaxed);
        let timeout = async {
            match limit {
                0 => std::future::pending().await,
                ms => tokio::time::sleep(std::time::Duration::from_millis(ms)).await,
            }
        };
        // Returning early drops `guard` with the request pending: it is cancelled upstream.
        let response = tokio::select! {
            r = handle.await_response() => r,
            () = ct.cancelled() => return Err(cancelled()),
            () = running.gone.cancelled() => return Err(self.gone_error(&running).await.into()),
            () = timeout => {
                let message = format!(
                    "server `{}` did not answer within {:.1}s (call_timeout); the request was cancelled",
                    self.name,
                    limit as f64 / 1000.0
                );
                return Err(McpError::internal_error(message, None));
            }
        };
        guard.answered();
        // Progress notifications are handled on their own tasks; let those already received
        // reach the client before the response does.
        tokio::task::yield_now().await;
        tokio::task::yield_now().await;
        match response {
            Ok(result) => Ok(result),
            Err(e) => Err(self.service_error(&running, e).await),
        }
    }

    async fn service_error(&self, running: &Running, e: ServiceError) -> McpError {
        match e {
            ServiceError::McpError(e) => e,
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => {
                self.gone_error(running).await.into()
            }
            other => BackendError::Protocol {
                name: self.name.clone(),
                message: other.to_string(),
            }
            .into(),
        }
    }

    async fn gone_error(&self, running: &Running) -> BackendError {
        let exit = tokio::time::timeout(std::time::Duration::from_secs(1), running.exited())
            .await
            .unwrap_or_else(|_| "no exit status yet".into());
        BackendError::Gone {
            name: self.name.clone(),
            exit,
        }
    }

    /// The session whose request has been waiting longest: where a server→client request
    /// raised now is sent. With several sessions in flight on one shared backend the server's
    /// request cannot be attributed for sure (stdio carries no "related request"); oldest-first
    /// is deterministic and matches the common case of one call waiting on user input.
    pub(super) fn oldest_caller(&self) -> Option<Caller> {
        if let Some((session, peer)) = &self.owner {
            // A per-client instance has exactly one client, busy or not.
            return Some(Caller {
                session: *session,
                peer: peer.clone(),
                progress_token: None,
                last_progress: None,
                meta: None,
            });
        }
        self.callers.lock().unwrap().values().next().cloned()
    }

    /// The caller a progress notification belongs to, with its last value updated; None when
    /// the request is gone or the update is older than one already passed on.
    pub(super) fn progress_caller(&self, token: &ProgressToken, progress: f64) -> Option<Caller> {
        let seq = *self.progress.lock().unwrap().get(token)?;
        let mut callers = self.callers.lock().unwrap();
        let caller = callers.get_mut(&seq)?;
        if caller.last_progress.is_some_and(|last| progress <= last) {
            return None;
        }
        caller.last_progress = Some(progress);
        Some(caller.clone())
    }
}

pub(super) fn cancelled() -> McpError {
    McpError::new(
        rmcp::model::ErrorCode::INTERNAL_ERROR,
        "request cancelled",
        None,
    )
}

/// Book-keeping for one forwarded request, undone on drop however the request ends.
struct InFlight<'a> {
    backend: &'a Backend,
    seq: u64,
    progress_token: Option<ProgressToken>,
    /// Set once the request went out and until its response came back: dropping the guard
    /// in between cancels it upstream.
    pending: Option<(RequestId, Peer<RoleClient>)>,
    failed: bool,
}

impl<'a> InFlight<'a> {
    fn new(backend: &'a Backend, caller: Caller) -> Self {
        Self {
            backend,
            seq: backend.begin_request(caller),
            progress_token: None,
            pending: None,
            failed: false,
        }
    }

    fn sent(&mut self, id: RequestId, token: ProgressToken, peer: Peer<RoleClient>) {
        self.backend
            .progress
            .lock()
            .unwrap()
            .insert(token.clone(), self.seq);
        self.progress_token = Some(token);
        self.pending = Some((id, peer));
    }

    fn answered(&mut self) {
        self.pending = None;
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if let Some(token) = &self.progress_token {
            self.backend.progress.lock().unwrap().remove(token);
        }
        self.backend.end_request(self.seq, self.failed);
        if let Some((id, peer)) = self.pending.take() {
            // The caller gave up (cancelled, disconnected, timed out): so does the server.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let reason = Some("cancelled by the client".to_string());
                    let _ = peer
                        .notify_cancelled(CancelledNotificationParam::new(Some(id), reason))
                        .await;
                });
            }
        }
    }
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
