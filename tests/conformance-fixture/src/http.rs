//! Streamable HTTP at `/mcp` (rmcp's tower service under axum), with rmcp's defaults for what the
//! suite checks at the transport level: loopback-only `Host` (DNS rebinding), session ids, SSE
//! priming events with a `retry` field, resumption with `Last-Event-ID`.
//!
//! The one addition is SEP-1699 polling for `test_reconnection` (the `server-sse-polling`
//! scenario): [`PollingSessions`] wraps rmcp's local session manager and, right after a
//! `test_reconnection` call opened its SSE stream, closes that stream with rmcp's own
//! `close_sse_stream` (which sends a priming event with `retry` first). The tool answers only once
//! the client has resumed the stream with `Last-Event-ID` ([`Resumptions`]), so the answer
//! reaches it on the resumed stream. rmcp removes a request's stream once its answer is sent, so
//! answering earlier would make the resume fail.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ServerJsonRpcMessage};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    ServerSseMessage, SessionId, SessionManager,
};
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::Notify;

use crate::server::Conformance;

/// The `retry` sent with the priming event that precedes the server-side close.
const RECONNECT_RETRY: Duration = Duration::from_millis(500);

/// Serves until the process is killed.
pub async fn serve(addr: &str) -> anyhow::Result<()> {
    let resumptions = Arc::new(Resumptions::default());
    let sessions = Arc::new(PollingSessions {
        inner: LocalSessionManager::default(),
        resumptions: resumptions.clone(),
    });
    let service = StreamableHttpService::new(
        move || Ok(Conformance::new(Some(resumptions.clone()))),
        sessions,
        // Loopback `Host` values only (rmcp's default), which is what the
        // `dns-rebinding-protection` scenario asks of a localhost server.
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    eprintln!("listening on http://{}/mcp", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}

/// The HTTP session a request arrived on (rmcp puts the request's HTTP parts in its extensions).
pub fn session_of(ctx: &RequestContext<RoleServer>) -> Option<String> {
    let parts = ctx.extensions.get::<axum::http::request::Parts>()?;
    let id = parts.headers.get("mcp-session-id")?.to_str().ok()?;
    Some(id.to_owned())
}

/// Per session, a signal that the client resumed a request stream the server closed.
#[derive(Default)]
pub struct Resumptions {
    pending: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Resumptions {
    /// Registers that `session` is about to have a stream closed on it.
    fn expect(&self, session: &str) {
        self.pending
            .lock()
            .unwrap()
            .insert(session.to_owned(), Arc::new(Notify::new()));
    }

    fn resumed(&self, session: &str) {
        if let Some(notify) = self.pending.lock().unwrap().get(session) {
            // Stores a permit if the tool is not waiting yet.
            notify.notify_one();
        }
    }

    /// Waits until `session` resumed (true), or `timeout` passed (false). True at once when
    /// nothing was closed on that session.
    pub async fn wait(&self, session: &str, timeout: Duration) -> bool {
        let notify = self.pending.lock().unwrap().get(session).cloned();
        let Some(notify) = notify else {
            return true;
        };
        let resumed = tokio::time::timeout(timeout, notify.notified())
            .await
            .is_ok();
        self.pending.lock().unwrap().remove(session);
        resumed
    }
}

/// rmcp's [`LocalSessionManager`], closing the stream of every `test_reconnection` call early.
pub struct PollingSessions {
    inner: LocalSessionManager,
    resumptions: Arc<Resumptions>,
}

type SseStream = Pin<Box<dyn Stream<Item = ServerSseMessage> + Send + Sync>>;

fn is_reconnection_call(message: &ClientJsonRpcMessage) -> bool {
    matches!(message, ClientJsonRpcMessage::Request(req)
        if matches!(&req.request, ClientRequest::CallToolRequest(call)
            if call.params.name == "test_reconnection"))
}

/// The request-stream number in an rmcp event id (`<index>/<stream>`).
fn stream_of(event_id: &str) -> Option<u64> {
    event_id.split_once('/')?.1.parse().ok()
}

impl SessionManager for PollingSessions {
    type Error = LocalSessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        self.inner.create_session().await
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        self.inner.initialize_session(id, message).await
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        self.inner.has_session(id).await
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        self.inner.close_session(id).await
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        if !is_reconnection_call(&message) {
            let stream: SseStream = Box::pin(self.inner.create_stream(id, message).await?);
            return Ok(stream);
        }
        self.resumptions.expect(id);
        let mut stream = Box::pin(self.inner.create_stream(id, message).await?);
        // The first event is the stream's priming event; its id names the stream.
        let first = stream.next().await;
        let http_request = first
            .as_ref()
            .and_then(|event| event.event_id.as_deref())
            .and_then(stream_of);
        let handle = self.inner.sessions.read().await.get(id).cloned();
        if let (Some(http_request), Some(handle)) = (http_request, handle) {
            handle
                .close_sse_stream(http_request, Some(RECONNECT_RETRY))
                .await?;
        } else {
            eprintln!("test_reconnection: no priming event to find its stream by; not closing it");
        }
        let stream: SseStream = Box::pin(futures::stream::iter(first).chain(stream));
        Ok(stream)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        self.inner.accept_message(id, message).await
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(Box::pin(self.inner.create_standalone_stream(id).await?))
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        let request_stream = stream_of(&last_event_id).is_some();
        let stream = self.inner.resume(id, last_event_id).await?;
        if request_stream {
            self.resumptions.resumed(id);
        }
        Ok(Box::pin(stream))
    }
}
