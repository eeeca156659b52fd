//! The fast path for Streamable HTTP: a POST of one `tools/call` (or `tools/list`) in an
//! initialized session is forwarded as bytes like a socket session's (`crate::fast`) and
//! answered on a resumable SSE stream of our own (a list: plain JSON); everything else goes to
//! rmcp's service untouched.
//!
//! It applies only where rmcp would do nothing but decode, route and encode: the session is
//! known (its `Mcp-Session-Id` was registered when it initialized, for this role), the request
//! carries the session's negotiated `MCP-Protocol-Version` and none of the 2026-07-28 standard
//! headers. A `notifications/cancelled` for a forwarded call cancels it; hanging up does not
//! (as with rmcp's streams): a `GET` with the `Last-Event-ID` of our priming event resumes the
//! stream, for the last answered calls of the session.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use rmcp::model::{ClientJsonRpcMessage, ClientNotification, CustomNotification};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::fast::session::{Client, Taken};
use crate::wire::Frame;

/// How many answered calls of a session can still be resumed.
const REPLAYABLE: usize = 64;
/// A comment line this often keeps a long call's stream open through proxies (as rmcp's do).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What a client waits before reconnecting to a broken stream (rmcp's default).
const RETRY_MS: u64 = 3000;

/// Initialized HTTP sessions by `Mcp-Session-Id`.
#[derive(Default)]
pub struct Clients(Mutex<HashMap<String, Arc<HttpSession>>>);

impl Clients {
    pub fn insert(&self, session_id: String, client: Client) {
        let session = Arc::new(HttpSession {
            id: session_id.clone(),
            client,
            streams: Mutex::default(),
            told_rmcp: Mutex::new(Instant::now()),
        });
        self.0.lock().unwrap().insert(session_id, session);
    }

    /// The session ended: what it still has in flight on the fast path is cancelled, as the
    /// end of rmcp's session cancels its requests.
    pub fn remove(&self, session_id: &str) {
        let removed = self.0.lock().unwrap().remove(session_id);
        if let Some(session) = removed {
            session.client.cancel_all("the session ended");
        }
    }

    fn contains(&self, session: &Arc<HttpSession>) -> bool {
        let sessions = self.0.lock().unwrap();
        sessions
            .get(&session.id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
    }

    fn get(&self, session_id: &str) -> Option<Arc<HttpSession>> {
        self.0.lock().unwrap().get(session_id).cloned()
    }
}

/// An HTTP session on the fast path: its client, and the answers of its forwarded calls, kept
/// so that a client that lost a call's stream can resume it with `Last-Event-ID`.
pub struct HttpSession {
    id: String,
    client: Client,
    streams: Mutex<Streams>,
    /// When rmcp's session last heard of activity here (see [`keep_alive`]).
    told_rmcp: Mutex<Instant>,
}

#[derive(Default)]
struct Streams {
    next: u64,
    /// Stream number → its answer event, once the backend answered.
    answers: BTreeMap<u64, watch::Receiver<Option<Vec<Bytes>>>>,
}

impl HttpSession {
    /// A new stream's number and the sender of its answer; old answered streams are dropped.
    fn open_stream(&self) -> (u64, watch::Sender<Option<Vec<Bytes>>>) {
        let mut streams = self.streams.lock().unwrap();
        // Calls that ended without an answer (cancelled) have nothing to resume.
        streams
            .answers
            .retain(|_, answer| answer.borrow().is_some() || answer.has_changed().is_ok());
        let answered: Vec<u64> = streams
            .answers
            .iter()
            .filter(|(_, answer)| answer.borrow().is_some())
            .map(|(n, _)| *n)
            .collect();
        for n in answered
            .iter()
            .take(answered.len().saturating_sub(REPLAYABLE))
        {
            streams.answers.remove(n);
        }
        streams.next += 1;
        let n = streams.next;
        let (tx, rx) = watch::channel(None);
        streams.answers.insert(n, rx);
        (n, tx)
    }

    fn answer(&self, n: u64) -> Option<watch::Receiver<Option<Vec<Bytes>>>> {
        self.streams.lock().unwrap().answers.get(&n).cloned()
    }
}

/// What the fast path needs of the HTTP listener.
pub(super) struct Context<'a> {
    pub clients: &'a Clients,
    pub role: Option<&'a str>,
    /// The role's rmcp session manager: told when a session is used (see [`keep_alive`]).
    pub manager: &'a LocalSessionManager,
    /// The sessions' idle timeout (zero: none).
    pub idle_timeout: Duration,
    /// Cancelled when the daemon stops: ends our streams as rmcp's end.
    pub stop: &'a CancellationToken,
}

/// Serves `request` if the fast path can; otherwise gives it back, as it came.
pub(super) async fn serve(cx: Context<'_>, request: Request) -> Result<Response, Request> {
    let Some(session) = eligible(cx.clients, cx.role, &request) else {
        return Err(request);
    };
    keep_alive(&cx, &session).await;
    if request.method() == Method::GET {
        return match header_str(request.headers(), "last-event-id").and_then(our_event) {
            Some((n, 0)) => Ok(resume(&session, n, cx.stop)),
            // The client saw the answer already; or not one of ours.
            Some(_) => Ok(plain(StatusCode::NOT_FOUND, "Not Found: no such stream")),
            None => Err(request),
        };
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, super::MAX_BODY).await {
        Ok(body) => body,
        Err(_) => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Payload Too Large: the request body is over the limit",
            ));
        }
    };
    if !cx.clients.contains(&session) {
        // The session ended while the body was read.
        return Err(Request::from_parts(parts, Body::from(body)));
    }
    let (out, mut answers) = mpsc::unbounded_channel();
    match session.client.take(&body, &out) {
        Taken::No => Err(Request::from_parts(parts, Body::from(body))),
        Taken::Cancel => Ok(plain(StatusCode::ACCEPTED, "")),
        Taken::List => Ok(json(answers.recv().await)),
        Taken::Call => {
            // The call holds the only sender now: the channel closes after its answer.
            drop(out);
            Ok(call_stream(&session, answers, cx.stop.clone()))
        }
    }
}

/// rmcp expires a session that its worker has not heard from for the idle timeout; requests
/// the fast path serves never reach it. So a used session tells rmcp, with a notification
/// that is ignored (at most a few times per timeout).
async fn keep_alive(cx: &Context<'_>, session: &HttpSession) {
    if cx.idle_timeout.is_zero() {
        return;
    }
    {
        let mut told = session.told_rmcp.lock().unwrap();
        if told.elapsed() < cx.idle_timeout / 4 {
            return;
        }
        *told = Instant::now();
    }
    let active = CustomNotification::new("notifications/mcpgw/active", None);
    let message =
        ClientJsonRpcMessage::notification(ClientNotification::CustomNotification(active));
    let id: SessionId = session.id.as_str().into();
    let _ = cx.manager.accept_message(&id, message).await;
}

/// The SSE stream of a forwarded call: a priming event (so that a client that loses the
/// stream can resume it), progress and keep-alive comments while the backend works, then the
/// answer (progress is not replayed on resumption; the answer is). A
/// client that hangs up does not cancel the call (Streamable HTTP: only notifications/cancelled
/// does); its answer stays resumable.
fn call_stream(
    session: &HttpSession,
    mut answers: mpsc::UnboundedReceiver<Frame>,
    stop: CancellationToken,
) -> Response {
    let (n, answered) = session.open_stream();
    let (chunks, body) = mpsc::unbounded_channel::<Bytes>();
    let priming = format!("id: mcpgw-{n}-0\nretry: {RETRY_MS}\ndata:\n\n");
    let _ = chunks.send(Bytes::from(priming));
    tokio::spawn(async move {
        let answer = loop {
            tokio::select! {
                frame = answers.recv() => match frame {
                    Some(Frame::Notification(line)) => {
                        let data = data_line(Bytes::from(line));
                        for chunk in [Bytes::from_static(b"data: "), data, Bytes::from_static(b"\n\n")] {
                            let _ = chunks.send(chunk);
                        }
                    }
                    answer => break answer,
                },
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    let _ = chunks.send(Bytes::from_static(b":\n\n"));
                }
                () = stop.cancelled() => return,
            }
        };
        let Some(answer) = answer else {
            return;
        };
        let event = event(n, answer);
        for chunk in &event {
            let _ = chunks.send(chunk.clone());
        }
        let _ = answered.send(Some(event));
    });
    sse(body)
}

/// `GET` with `Last-Event-ID: mcpgw-<n>-0`: the rest of forwarded call `n`'s stream (keep-alive
/// comments until the answer, then the answer); 404 if the stream is unknown or gone.
fn resume(session: &HttpSession, n: u64, stop: &CancellationToken) -> Response {
    let Some(mut answer) = session.answer(n) else {
        return plain(StatusCode::NOT_FOUND, "Not Found: no such stream");
    };
    let (chunks, body) = mpsc::unbounded_channel::<Bytes>();
    let stop = stop.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                event = answer.wait_for(Option::is_some) => {
                    if let Ok(event) = event
                        && let Some(event) = event.as_ref()
                    {
                        for chunk in event {
                            let _ = chunks.send(chunk.clone());
                        }
                    }
                    return;
                }
                () = tokio::time::sleep(KEEP_ALIVE) => {
                    if chunks.send(Bytes::from_static(b":\n\n")).is_err() {
                        return;
                    }
                }
                () = stop.cancelled() => return,
            }
        }
    });
    sse(body)
}

/// `(n, seen)` of an event id `mcpgw-<n>-<seen>`.
fn our_event(id: &str) -> Option<(u64, u64)> {
    let (n, seen) = id.strip_prefix("mcpgw-")?.split_once('-')?;
    Some((n.parse().ok()?, seen.parse().ok()?))
}

/// The answer as the SSE event `mcpgw-<n>-1`, in chunks (a backend's result is sent from the
/// bytes it was read into).
fn event(n: u64, answer: Frame) -> Vec<Bytes> {
    let head = Bytes::from(format!("id: mcpgw-{n}-1\ndata: "));
    let (first, body) = match answer {
        Frame::Line(line) | Frame::Notification(line) => (Bytes::new(), Bytes::from(line)),
        Frame::Spliced { head, body } => (Bytes::from(head), body),
    };
    vec![head, first, data_line(body), Bytes::from_static(b"\n\n")]
}

/// A JSON message's last part without its line end, safe as one SSE `data:` line: a bare CR
/// (only possible as whitespace between JSON tokens) would end the line early, so it becomes
/// a space.
fn data_line(body: Bytes) -> Bytes {
    let end = body.len()
        - body
            .iter()
            .rev()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
    let body = body.slice(..end);
    if memchr::memchr(b'\r', &body).is_none() {
        return body;
    }
    Bytes::from(
        body.iter()
            .map(|b| if *b == b'\r' { b' ' } else { *b })
            .collect::<Vec<u8>>(),
    )
}

fn sse(chunks: mpsc::UnboundedReceiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), chunks))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .expect("a valid response")
}

/// The session a request may be served for on the fast path, from its headers alone.
fn eligible(clients: &Clients, role: Option<&str>, request: &Request) -> Option<Arc<HttpSession>> {
    let method = request.method();
    if (method != Method::POST && method != Method::GET) || !crate::fast::enabled() {
        return None;
    }
    let headers = request.headers();
    let session = clients.get(header_str(headers, "mcp-session-id")?)?;
    let client = &session.client;
    if client.role.as_deref() != role {
        return None;
    }
    let negotiated = client.peer.get()?.peer_info()?.protocol_version.clone();
    let standard_headers = headers.keys().any(|name| {
        let name = name.as_str();
        name == "mcp-method" || name == "mcp-name" || name.starts_with("mcp-param-")
    });
    let accepts = |mime: &str| {
        headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| {
                v.split(',')
                    .any(|m| m.split(';').next().unwrap_or("").trim() == mime)
            })
    };
    let json_body = header_str(headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|t| t.split(';').next().unwrap_or("").trim() == "application/json");
    let ok = header_str(headers, "mcp-protocol-version") == Some(negotiated.as_str())
        && !standard_headers
        && accepts("text/event-stream")
        && (method == Method::GET || (accepts("application/json") && json_body));
    ok.then_some(session)
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// A list page as a JSON response (a daemon stopping meanwhile answers 503).
fn json(answer: Option<Frame>) -> Response {
    let parts = match answer {
        Some(Frame::Line(line) | Frame::Notification(line)) => vec![Bytes::from(line)],
        Some(Frame::Spliced { head, body }) => vec![Bytes::from(head), body],
        None => return plain(StatusCode::SERVICE_UNAVAILABLE, "the gateway is stopping"),
    };
    let length: usize = parts.iter().map(Bytes::len).sum();
    let body = Body::from_stream(futures::stream::iter(
        parts.into_iter().map(Ok::<_, std::convert::Infallible>),
    ));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .expect("a valid response")
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    Response::builder()
        .status(status)
        .body(Body::from(text))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_one_sse_event() {
        let answer = Frame::Spliced {
            head: b"{\"id\":1".to_vec(),
            body: Bytes::from_static(b",\"result\":{}}\r\n"),
        };
        let event: Vec<u8> = event(7, answer).concat();
        assert_eq!(event, b"id: mcpgw-7-1\ndata: {\"id\":1,\"result\":{}}\n\n");
        assert_eq!(
            data_line(Bytes::from_static(b"{\r}\n")),
            Bytes::from_static(b"{ }")
        );
        assert_eq!(our_event("mcpgw-12-0"), Some((12, 0)));
        assert_eq!(our_event("0"), None);
    }
}
