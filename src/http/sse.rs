//! The legacy HTTP+SSE transport of MCP 2024-11-05, which rmcp 3 no longer has: `GET /sse`
//! opens a stream whose first event (`endpoint`) says where to POST; each client message is
//! `POST /messages?sessionId=<id>` (202 Accepted), each server message an `event: message`.
//!
//! Each SSE session is a `Session` served by rmcp over one end of an in-memory duplex pipe, as
//! if it were a socket client: a POST writes its message as a line into the other end, and the
//! SSE stream reads the server's lines from it. The session ends when the stream closes (the
//! client went away) or the daemon stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::guard::Admitted;
use crate::protocol::SessionTransport;
use crate::session::{Session, SessionService};

/// Room in each direction of a session's pipe; a full pipe makes the writer wait.
const PIPE_BUFFER: usize = 256 * 1024;

/// The open SSE sessions, by id.
#[derive(Default)]
pub(super) struct Sessions {
    open: Mutex<HashMap<String, Arc<Open>>>,
}

/// One open SSE session, as the POST handler needs it.
struct Open {
    /// Only a caller with the same role may post into it.
    role: Option<String>,
    /// The client's end of the pipe: what is written here, the session reads.
    to_session: tokio::sync::Mutex<WriteHalf<DuplexStream>>,
    /// Cancelled when the session ends, so that a POST waiting on a full pipe returns.
    stop: CancellationToken,
}

/// `GET /sse`: starts a session and streams what it sends.
pub(super) async fn open(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Admitted>,
) -> Response {
    let id = rmcp::transport::common::server_side_http::session_id().to_string();
    let (client_end, session_end) = tokio::io::duplex(PIPE_BUFFER);
    let (from_session, to_session) = tokio::io::split(client_end);
    let stop = shared.cancel.child_token();

    let session = Session::new(
        shared.gateway.clone(),
        caller.role.clone(),
        None,
        SessionTransport::Sse,
    );
    let (read, write) = tokio::io::split(session_end);
    let transport = AsyncRwTransport::new_server(read, write).with_max_line_length(usize::MAX);
    let serve_stop = stop.clone();
    let log_id = id.clone();
    tokio::spawn(async move {
        match rmcp::service::serve_server_with_ct(
            SessionService::new(session),
            transport,
            serve_stop,
        )
        .await
        {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => {
                tracing::debug!(sse_session = %log_id, "SSE session ended before initializing: {e}")
            }
        }
    });

    let open = Arc::new(Open {
        role: caller.role,
        to_session: tokio::sync::Mutex::new(to_session),
        stop: stop.clone(),
    });
    shared.sse.open.lock().unwrap().insert(id.clone(), open);
    tracing::debug!(sse_session = %id, "SSE session opened");
    let closer = Closer {
        shared: shared.clone(),
        id: id.clone(),
        stop: stop.clone(),
    };
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/messages?sessionId={id}"));
    let stream = futures::stream::once(async move { Ok(endpoint) }).chain(messages(
        from_session,
        stop,
        closer,
    ));
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// The session's messages as `message` events, until it ends or the daemon stops.
fn messages(
    from_session: ReadHalf<DuplexStream>,
    stop: CancellationToken,
    closer: Closer,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let lines = BufReader::new(from_session).lines();
    futures::stream::unfold(
        (lines, stop, closer),
        |(mut lines, stop, closer)| async move {
            let line = tokio::select! {
                line = lines.next_line() => line,
                () = stop.cancelled() => return None,
            };
            match line {
                Ok(Some(line)) => {
                    let event = Event::default().event("message").data(line);
                    Some((Ok(event), (lines, stop, closer)))
                }
                _ => None,
            }
        },
    )
}

/// Ends the session when its stream is dropped: the client disconnected or the stream ended.
struct Closer {
    shared: Arc<Shared>,
    id: String,
    stop: CancellationToken,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.shared.sse.open.lock().unwrap().remove(&self.id);
        self.stop.cancel();
        tracing::debug!(sse_session = %self.id, "SSE session closed");
    }
}

/// `POST /messages?sessionId=<id>`: one JSON-RPC message for the session; its answer comes on
/// the session's stream.
pub(super) async fn post(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Admitted>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let Some(id) = session_param(&uri) else {
        let message = "Bad Request: missing `sessionId` query parameter";
        return (StatusCode::BAD_REQUEST, message).into_response();
    };
    let open = shared.sse.open.lock().unwrap().get(id).cloned();
    // A session of another role is as unknown as a closed one.
    let Some(open) = open.filter(|open| open.role == caller.role) else {
        return (StatusCode::NOT_FOUND, "Not Found: unknown SSE session").into_response();
    };
    let value: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(e) => {
            let message = format!("Bad Request: the body is not JSON: {e}");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    if let Err(e) = serde_json::from_value::<ClientJsonRpcMessage>(value.clone()) {
        let message = format!("Bad Request: not a JSON-RPC message from a client: {e}");
        return (StatusCode::BAD_REQUEST, message).into_response();
    }
    // Re-encoded on one line: the session reads line-delimited JSON.
    let mut line = serde_json::to_vec(&value).expect("a JSON value encodes");
    line.push(b'\n');
    let written = async {
        let mut to_session = open.to_session.lock().await;
        to_session.write_all(&line).await?;
        to_session.flush().await
    };
    let written = tokio::select! {
        written = written => written.is_ok(),
        () = open.stop.cancelled() => false,
    };
    if written {
        (StatusCode::ACCEPTED, "Accepted").into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            "Not Found: the SSE session has ended",
        )
            .into_response()
    }
}

fn session_param(uri: &Uri) -> Option<&str> {
    uri.query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "sessionId")
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}
