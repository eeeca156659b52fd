//! The byte path for Streamable HTTP: a POST of one `tools/call` (or `tools/list`) in an
//! initialized session is forwarded as bytes like a socket session's (`session::byte_path`) and
//! answered on a resumable SSE stream of our own (a list: plain JSON); everything else goes to
//! rmcp's service untouched.
//!
//! It applies only where rmcp would do nothing but decode, route and encode: the session is
//! known (its `Mcp-Session-Id` was registered when it initialized, for this role), the request
//! carries the session's negotiated `MCP-Protocol-Version` and none of the 2026-07-28 standard
//! headers. A `notifications/cancelled` for a forwarded call cancels it; hanging up does not
//! (as with rmcp's streams): a `GET` with the `Last-Event-ID` of our priming event resumes the
//! stream, for a minute after the answer (rmcp keeps its finished streams as long).
//!
//! rmcp still owns the session's life: it expires a session its worker has not heard from for
//! the idle timeout, and requests served here never reach that worker, so a session in use
//! here — a request, or a forwarded call still streaming — tells it so (an ignored
//! notification, at most a few times per timeout); the end of the session cancels its calls.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
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

use crate::gateway::{Gateway, SessionHandle};
use crate::session::HttpRegistry;
use crate::session::byte_path::{self, Taken};
use crate::wire::Frame;

/// At most this many answered calls of a session can be resumed…
const REPLAYABLE: usize = 64;
/// …for this long after their answer, and at most this many bytes of them.
const REPLAY_FOR: Duration = Duration::from_secs(60);
const REPLAYABLE_BYTES: usize = 64 * 1024 * 1024;
/// A comment line this often keeps a long call's stream open through proxies (as rmcp's do).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// What a client waits before reconnecting to a broken stream (rmcp's default).
const RETRY_MS: u64 = 3000;

/// Initialized HTTP sessions by `Mcp-Session-Id`: every `Session` of `/mcp` registers here.
#[derive(Default)]
pub struct Registry(Mutex<HashMap<String, Arc<HttpSession>>>);

impl HttpRegistry for Registry {
    fn register(&self, mcp_session_id: &str, handle: Arc<SessionHandle>) {
        let session = Arc::new(HttpSession {
            id: mcp_session_id.to_string(),
            handle,
            streams: Mutex::default(),
            told_rmcp: Mutex::new(Instant::now()),
            last_request: Mutex::new(Instant::now()),
        });
        self.0
            .lock()
            .unwrap()
            .insert(mcp_session_id.to_string(), session);
    }

    /// The session ended: what it still has in flight on the byte path is cancelled, as the
    /// end of rmcp's session cancels its requests.
    fn remove(&self, mcp_session_id: &str) {
        let removed = self.0.lock().unwrap().remove(mcp_session_id);
        if let Some(session) = removed {
            session.handle.cancel_all("the session ended");
        }
    }
}

impl Registry {
    fn contains(&self, session: &Arc<HttpSession>) -> bool {
        let sessions = self.0.lock().unwrap();
        sessions
            .get(&session.id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
    }

    fn get(&self, session_id: &str) -> Option<Arc<HttpSession>> {
        self.0.lock().unwrap().get(session_id).cloned()
    }

    /// The handle of the initialized session of `role` with this `Mcp-Session-Id`, which has
    /// a request now (for [`Registry::take_least_recently_used_idle`]).
    pub(super) fn requested(
        &self,
        session_id: &str,
        role: Option<&str>,
    ) -> Option<Arc<SessionHandle>> {
        let sessions = self.0.lock().unwrap();
        let session = sessions
            .get(session_id)
            .filter(|s| s.handle.role.as_deref() == role)?;
        *session.last_request.lock().unwrap() = Instant::now();
        Some(session.handle.clone())
    }

    /// Whether a session with this `Mcp-Session-Id` finished its handshake (and lives).
    pub(super) fn knows(&self, session_id: &str) -> bool {
        self.0.lock().unwrap().contains_key(session_id)
    }

    /// Of the role's sessions with nothing in flight, the one whose last request is the
    /// oldest: taken out (the byte path no longer serves it) and its `Mcp-Session-Id` given
    /// back, to end it when the role needs room for a new session.
    pub(super) fn take_least_recently_used_idle(&self, role: Option<&str>) -> Option<String> {
        let mut sessions = self.0.lock().unwrap();
        let id = sessions
            .values()
            .filter(|s| s.handle.role.as_deref() == role && s.handle.in_flight() == 0)
            .min_by_key(|s| *s.last_request.lock().unwrap())
            .map(|s| s.id.clone())?;
        sessions.remove(&id);
        Some(id)
    }
}

/// An HTTP session on the byte path: its handle, and the answers of its forwarded calls, kept
/// so that a client that lost a call's stream can resume it with `Last-Event-ID`.
struct HttpSession {
    /// Its `Mcp-Session-Id`.
    id: String,
    handle: Arc<SessionHandle>,
    streams: Mutex<Streams>,
    /// When rmcp's session last heard of activity here (see [`Activity`]).
    told_rmcp: Mutex<Instant>,
    /// When the client last sent a request naming this session.
    last_request: Mutex<Instant>,
}

/// A call's answer event, once the backend answered.
type Answer = Option<(Instant, Vec<Bytes>)>;

#[derive(Default)]
struct Streams {
    next: u64,
    answers: BTreeMap<u64, watch::Receiver<Answer>>,
}

impl Streams {
    /// Drops what can no longer be resumed, and of the answered streams all but the newest
    /// `count`, holding at most `bytes` of answers.
    fn prune(&mut self, count: usize, bytes: usize) {
        self.answers.retain(|_, answer| resumable(answer));
        let answered: Vec<(u64, usize)> = self
            .answers
            .iter()
            .filter_map(|(n, answer)| {
                let answer = answer.borrow();
                let (_, event) = answer.as_ref()?;
                Some((*n, event.iter().map(Bytes::len).sum()))
            })
            .collect();
        let mut kept = (0, 0);
        for (n, size) in answered.into_iter().rev() {
            kept = (kept.0 + 1, kept.1 + size);
            if kept.0 > count || kept.1 > bytes {
                self.answers.remove(&n);
            }
        }
    }
}

impl HttpSession {
    /// A new stream's number and the sender of its answer; finished streams past their time
    /// (or past the count) are dropped, and so are calls that ended without an answer.
    fn open_stream(&self) -> (u64, watch::Sender<Answer>) {
        let mut streams = self.streams.lock().unwrap();
        streams.prune(REPLAYABLE, REPLAYABLE_BYTES);
        streams.next += 1;
        let n = streams.next;
        let (tx, rx) = watch::channel(None);
        streams.answers.insert(n, rx);
        (n, tx)
    }

    fn answer(&self, n: u64) -> Option<watch::Receiver<Answer>> {
        let answer = self.streams.lock().unwrap().answers.get(&n).cloned()?;
        resumable(&answer).then_some(answer)
    }
}

/// A stream can be resumed while its call runs and for a while after its answer; not once
/// its call ended without one (cancelled).
fn resumable(answer: &watch::Receiver<Answer>) -> bool {
    match &*answer.borrow() {
        Some((at, _)) => at.elapsed() < REPLAY_FOR,
        None => answer.has_changed().is_ok(),
    }
}

/// Tells rmcp's session worker that a session is in use.
#[derive(Clone)]
pub(super) struct Activity {
    pub manager: Arc<LocalSessionManager>,
    /// The sessions' idle timeout (zero: none).
    pub idle_timeout: Duration,
}

impl Activity {
    /// At most four times per idle timeout, on its own task: the worker's queue is bounded
    /// and may be waiting on a slow client of one of rmcp's streams.
    fn tell(&self, session: &HttpSession) {
        if self.idle_timeout.is_zero() {
            return;
        }
        {
            let mut told = session.told_rmcp.lock().unwrap();
            if told.elapsed() < self.idle_timeout / 4 {
                return;
            }
            *told = Instant::now();
        }
        let manager = self.manager.clone();
        let id: SessionId = session.id.as_str().into();
        tokio::spawn(async move {
            let active = CustomNotification::new("notifications/mcpgw/active", None);
            let message =
                ClientJsonRpcMessage::notification(ClientNotification::CustomNotification(active));
            let _ = manager.accept_message(&id, message).await;
        });
    }

    /// How often a waiting stream looks in: the keep-alive period, or more often when the
    /// idle timeout is short.
    fn tick(&self) -> Duration {
        match self.idle_timeout.is_zero() {
            true => KEEP_ALIVE,
            false => KEEP_ALIVE.min(self.idle_timeout / 4),
        }
    }
}

/// What the byte path needs of the HTTP listener.
pub(super) struct Context<'a> {
    pub gateway: &'a Gateway,
    pub sessions: &'a Registry,
    pub role: Option<&'a str>,
    pub activity: Activity,
    /// Cancelled when the daemon stops: ends our streams as rmcp's end.
    pub stop: &'a CancellationToken,
}

/// Serves `request` if the byte path can; otherwise gives it back, as it came.
pub(super) async fn serve(cx: Context<'_>, request: Request) -> Result<Response, Request> {
    let Some(session) = eligible(cx.sessions, cx.role, &request) else {
        return Err(request);
    };
    cx.activity.tell(&session);
    if request.method() == Method::GET {
        return match header_str(request.headers(), "last-event-id").and_then(our_event) {
            Some((n, seen)) => Ok(resume(&session, n, seen, &cx)),
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
    if !cx.sessions.contains(&session) {
        // The session ended while the body was read.
        return Err(Request::from_parts(parts, Body::from(body)));
    }
    // One call's answer and its progress; the stream task drains it into the response body
    // (`Chunks`, bounded too).
    let (out, mut answers) = crate::wire::frame_queue(crate::session::socket::CLIENT_QUEUE);
    match session.handle.serve_line(cx.gateway, &body, &out) {
        Taken::No => Err(Request::from_parts(parts, Body::from(body))),
        Taken::Cancel => Ok(plain(StatusCode::ACCEPTED, "")),
        Taken::List => Ok(json(answers.recv().await)),
        Taken::Call => {
            // The call holds the only sender now: the channel closes after its answer.
            drop(out);
            Ok(call_stream(session, answers, &cx))
        }
    }
}

/// The SSE stream of a forwarded call: a priming event (so that a client that loses the
/// stream can resume it), progress and keep-alive comments while the backend works, then the
/// answer (progress is not replayed on resumption; the answer is). A client that hangs up
/// does not cancel the call (Streamable HTTP: only notifications/cancelled does).
fn call_stream(
    session: Arc<HttpSession>,
    mut answers: crate::wire::FrameRx,
    cx: &Context<'_>,
) -> Response {
    let (n, answered) = session.open_stream();
    let (chunks, body) = Chunks::new();
    let priming = format!("id: mcpgw-{n}-0\nretry: {RETRY_MS}\ndata:\n\n");
    chunks.offer(&[Bytes::from(priming)]);
    let (activity, stop) = (cx.activity.clone(), cx.stop.clone());
    tokio::spawn(async move {
        let answer = loop {
            tokio::select! {
                frame = answers.recv() => match frame {
                    Some(Frame::Notification(line)) => {
                        let data = data_line(Bytes::from(line));
                        chunks.offer(&[Bytes::from_static(b"data: "), data, Bytes::from_static(b"\n\n")]);
                    }
                    answer => break answer,
                },
                () = tokio::time::sleep(activity.tick()) => {
                    chunks.offer(&[Bytes::from_static(b":\n\n")]);
                    activity.tell(&session);
                }
                () = stop.cancelled() => return,
            }
        };
        let Some(answer) = answer else {
            return;
        };
        // Resumable from now on, whether or not this stream's client reads it.
        let event = event(n, answer);
        let _ = answered.send(Some((Instant::now(), event.clone())));
        tokio::select! {
            _ = chunks.send(event) => {}
            () = stop.cancelled() => {}
        }
    });
    sse(body)
}

/// `GET` with `Last-Event-ID: mcpgw-<n>-<seen>`: the rest of forwarded call `n`'s stream
/// (keep-alive comments until the answer, then the answer). A stream that is gone, or whose
/// answer the client saw, resumes empty, as rmcp's do (a 404 would tell the client its
/// session is gone).
fn resume(session: &Arc<HttpSession>, n: u64, seen: u64, cx: &Context<'_>) -> Response {
    let (chunks, body) = Chunks::new();
    let (Some(mut answer), 0) = (session.answer(n), seen) else {
        return sse(body);
    };
    let (session, activity, stop) = (session.clone(), cx.activity.clone(), cx.stop.clone());
    tokio::spawn(async move {
        let event = loop {
            tokio::select! {
                event = answer.wait_for(Option::is_some) => {
                    break event.ok().and_then(|event| Some(event.as_ref()?.1.clone()));
                }
                () = tokio::time::sleep(activity.tick()) => {
                    if !chunks.offer(&[Bytes::from_static(b":\n\n")]) {
                        return;
                    }
                    activity.tell(&session);
                }
                () = stop.cancelled() => return,
            }
        };
        if let Some(event) = event {
            tokio::select! {
                _ = chunks.send(event) => {}
                () = stop.cancelled() => {}
            }
        }
    });
    sse(body)
}

/// What one of our SSE streams has queued for its client, bounded: a client that keeps the
/// connection open and stops reading must not make the daemon hold a busy call's progress.
/// Progress and keep-alives are *offered*: dropped while more than [`BACKLOG`] bytes wait (a
/// client that does not read cannot miss them); the answer is *sent*: it waits for room.
struct Chunks {
    tx: mpsc::Sender<Bytes>,
    /// Bytes queued and not yet taken by the response body.
    queued: Arc<AtomicUsize>,
}

/// Progress bytes that may wait for a client of one stream before more are dropped.
const BACKLOG: usize = 256 * 1024;
/// Chunks in a stream's queue (an event is at most four).
const QUEUED_CHUNKS: usize = 64;

impl Chunks {
    /// The queue, and the response body that drains it.
    fn new() -> (Self, Body) {
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUED_CHUNKS);
        let queued = Arc::new(AtomicUsize::new(0));
        let taken = queued.clone();
        let stream = futures::stream::unfold(rx, move |mut rx| {
            let taken = taken.clone();
            async move {
                let chunk = rx.recv().await?;
                taken.fetch_sub(chunk.len(), Ordering::Relaxed);
                Some((Ok::<_, std::convert::Infallible>(chunk), rx))
            }
        });
        (Self { tx, queued }, Body::from_stream(stream))
    }

    /// Queues `event` whole if there is room; false once the client is gone.
    fn offer(&self, event: &[Bytes]) -> bool {
        if self.tx.is_closed() {
            return false;
        }
        if self.queued.load(Ordering::Relaxed) > BACKLOG || self.tx.capacity() < event.len() {
            return true;
        }
        for chunk in event {
            // Cannot fail: this is the only sender, and it checked the room.
            self.queued.fetch_add(chunk.len(), Ordering::Relaxed);
            let _ = self.tx.try_send(chunk.clone());
        }
        true
    }

    /// Queues `event`, waiting for room; an error once the client is gone.
    async fn send(&self, event: Vec<Bytes>) -> Result<(), mpsc::error::SendError<Bytes>> {
        for chunk in event {
            self.queued.fetch_add(chunk.len(), Ordering::Relaxed);
            self.tx.send(chunk).await?;
        }
        Ok(())
    }
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
/// a space; bytes that are not UTF-8 (which an SSE parser rejects, making the client reconnect
/// forever) become U+FFFD, as they would in any JSON decoder that accepts them.
fn data_line(body: Bytes) -> Bytes {
    let end = body.len()
        - body
            .iter()
            .rev()
            .take_while(|b| **b == b'\n' || **b == b'\r')
            .count();
    let body = body.slice(..end);
    let body = match std::str::from_utf8(&body) {
        Ok(_) => body,
        Err(_) => Bytes::from(String::from_utf8_lossy(&body).into_owned()),
    };
    if memchr::memchr(b'\r', &body).is_none() {
        return body;
    }
    Bytes::from(
        body.iter()
            .map(|b| if *b == b'\r' { b' ' } else { *b })
            .collect::<Vec<u8>>(),
    )
}

fn sse(body: Body) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        // As rmcp's streams: proxies such as nginx would otherwise hold progress back.
        .header("x-accel-buffering", "no")
        .body(body)
        .expect("a valid response")
}

/// The session a request may be served for on the byte path, from its headers alone.
fn eligible(
    sessions: &Registry,
    role: Option<&str>,
    request: &Request,
) -> Option<Arc<HttpSession>> {
    let method = request.method();
    if (method != Method::POST && method != Method::GET) || !byte_path::enabled() {
        return None;
    }
    let headers = request.headers();
    let session = sessions.get(header_str(headers, "mcp-session-id")?)?;
    let handle = &session.handle;
    if handle.role.as_deref() != role {
        return None;
    }
    let negotiated = handle.peer.get()?.peer_info()?.protocol_version.clone();
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
        assert_eq!(
            data_line(Bytes::from_static(b"{\"a\":\"\xff\"}\n")),
            Bytes::from("{\"a\":\"\u{fffd}\"}")
        );
        assert_eq!(our_event("mcpgw-12-0"), Some((12, 0)));
        assert_eq!(our_event("0"), None);
    }

    #[test]
    fn resumable_answers_are_bounded_in_number_and_bytes() {
        let mut streams = Streams::default();
        let mut senders = Vec::new();
        for (n, size) in [(1, 10), (2, 10), (3, 10), (4, 30), (5, 5)] {
            let (tx, rx) = watch::channel(None);
            tx.send_replace(Some((Instant::now(), vec![Bytes::from(vec![b'x'; size])])));
            streams.answers.insert(n, rx);
            senders.push(tx);
        }
        let (running, rx) = watch::channel(None);
        streams.answers.insert(6, rx);
        streams.prune(3, 40);
        let kept: Vec<u64> = streams.answers.keys().copied().collect();
        // 5 and 4 fit (35 bytes), 3 would pass 40; 6 has no answer yet and stays.
        assert_eq!(kept, [4, 5, 6]);
        streams.prune(1, 1000);
        assert_eq!(streams.answers.keys().copied().collect::<Vec<_>>(), [5, 6]);
        drop(running);
    }
}
