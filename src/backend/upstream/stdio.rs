//! The stdio transport: a child's pipes, shared by rmcp's client and the byte path.
//!
//! One task writes the child's stdin from a frame queue (rmcp's messages and forwarded calls);
//! one task reads its stdout: responses to forwarded calls and their progress go straight to
//! the calling session's writer, everything else to rmcp. Forwarded requests carry ids and
//! progress tokens `"mcpgw:<n>"`, which rmcp (numbering its own) never uses.
//!
//! The reader holds at most `max_message` of a line. A longer line's response id is in the
//! bytes it would have to buffer to find it, and on rmcp's path no call could be failed by id
//! anyway, so the line ends the instance: the reader stops reading, says why ([`Limits`]) and
//! stops the process, and every call in flight fails with that reason; the next call starts
//! the server again.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use rmcp::ErrorData as McpError;
use rmcp::service::RoleClient;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};

use super::Limits;
use super::asks::Asks;
use super::watches::{Watch, Watches};
use crate::backend::Backend;
use crate::backend::inflight::{self, Caller, InFlight, Sent};
use crate::wire::{self, Envelope, Frame, FrameTx, Line, LineSink, RawMembers, WeakFrameTx};

/// The transport rmcp speaks to a stdio backend through.
pub type Transport = AsyncRwTransport<RoleClient, DuplexStream, LineSink>;

/// Bytes of requests waiting for a backend to read its stdin. A backend that stops reading
/// while clients keep sending overflows it: its stdin is closed (it exits, its calls fail as
/// gone) rather than the daemon growing.
const MAX_QUEUED_TO_SERVER: usize = 256 * 1024 * 1024;

/// Prefix of the ids and progress tokens of requests forwarded on the byte path.
const ID_PREFIX: &str = "mcpgw:";

/// Results up to this size are parsed to see whether the tool failed (status counts errors);
/// past it only their last bytes are looked at.
const PARSE_RESULTS_UP_TO: usize = 64 * 1024;

/// A client's calls in flight on stdio links, by the client's request id (canonical JSON): kept
/// by the session so that its cancel or its departure reaches the link.
pub type CallIndex = Mutex<HashMap<Box<str>, (Weak<Link>, u64)>>;

/// One running stdio backend's byte path.
pub struct Link {
    name: String,
    /// rmcp's `LineSink` holds the only strong sender: when rmcp closes the connection the
    /// queue closes and the writer closes the child's stdin.
    to_server: WeakFrameTx,
    pending: Mutex<HashMap<u64, Pending>>,
    /// Requests of the gateway's own ([`Link::ask`]), by number: where each response line goes.
    asked: Mutex<Asked>,
    /// rmcp's requests that want their result's members rmcp does not know.
    watches: Arc<Watches>,
    /// The server's own sampling and elicitation requests, as written.
    asks: Asks,
    next: AtomicU64,
}

#[derive(Default)]
struct Asked {
    waiting: HashMap<u64, tokio::sync::oneshot::Sender<Bytes>>,
    /// The server is gone: nothing asked now would be answered.
    closed: bool,
}

/// A `tools/call` to forward.
pub struct Outgoing<'a> {
    /// The client's params, values unparsed.
    pub params: &'a RawMembers<'a>,
    /// Its `_meta`, parsed by the caller (which read the progress token from it); `None` when
    /// absent or not an object, and then the raw member is passed on as it is.
    pub meta: Option<serde_json::Map<String, serde_json::Value>>,
    /// The server's own name of the tool.
    pub original: &'a str,
}

/// Where a forwarded call's response goes.
pub struct ReplyTo {
    pub out: FrameTx,
    /// The client's request id, canonical JSON: written back as the response's id.
    pub key: Box<str>,
    /// The client's calls in flight, where this one is until it ends.
    pub index: Weak<CallIndex>,
}

struct Pending {
    reply: ReplyTo,
    /// The call's record (its caller, progress filter, withdrawal); dropped when it ends.
    inflight: InFlight,
    timer: Option<tokio::task::AbortHandle>,
}

/// Connects rmcp and the byte path to a child's stdio. `exited` resolves to the child's exit
/// description.
pub(in crate::backend) fn connect(
    stdout: impl AsyncRead + Unpin + Send + 'static,
    stdin: impl AsyncWrite + Unpin + Send + 'static,
    exited: impl Future<Output = String> + Send + 'static,
    limits: Limits,
) -> (Transport, Arc<Link>) {
    let (to_server, frames) = wire::frame_queue(wire::Bound::strict(MAX_QUEUED_TO_SERVER));
    tokio::spawn(wire::write_frames(stdin, frames));
    let link = Arc::new(Link {
        name: limits.server.clone(),
        to_server: to_server.downgrade(),
        pending: Mutex::default(),
        asked: Mutex::default(),
        watches: Arc::default(),
        asks: Asks::default(),
        next: AtomicU64::new(1),
    });
    let (rmcp_read, feed) = tokio::io::duplex(64 * 1024);
    tokio::spawn(link.clone().pump(stdout, feed, exited, limits));
    // rmcp's line limit is off: the reader has enforced `max_message` before rmcp sees a line
    // (rmcp's 16 MiB default would drop a longer line silently and hang the call).
    let transport = AsyncRwTransport::new_client(rmcp_read, LineSink::new(to_server))
        .with_max_line_length(usize::MAX);
    (transport, link)
}

impl Link {
    /// Reserves the upstream number of a call about to be sent.
    pub fn reserve(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Forwards `tools/call` as call `n`: the client's params with the server's tool name and,
    /// if the client asked for progress, our token. False if the backend's stdin is closed.
    pub fn send_call(
        self: &Arc<Self>,
        n: u64,
        backend: &Arc<Backend>,
        caller: Caller,
        reply: ReplyTo,
        request: Outgoing,
    ) -> bool {
        let Outgoing {
            params,
            meta,
            original,
        } = request;
        let Some(to_server) = self.to_server.upgrade() else {
            return false;
        };
        let mut line =
            Vec::with_capacity(128 + params.0.iter().map(|(_, v)| v.get().len()).sum::<usize>());
        line.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":\"");
        line.extend_from_slice(ID_PREFIX.as_bytes());
        line.extend_from_slice(n.to_string().as_bytes());
        line.extend_from_slice(b"\",\"method\":\"tools/call\",\"params\":");
        let name = serde_json::to_string(original).expect("a string serializes");
        let meta = meta.map(|mut meta| {
            if meta.contains_key("progressToken") {
                meta.insert("progressToken".into(), format!("{ID_PREFIX}{n}").into());
            }
            serde_json::Value::Object(meta).to_string()
        });
        let members = params.0.iter().map(|(key, value)| {
            let value = match key.as_ref() {
                "name" => name.as_str(),
                "_meta" => meta.as_deref().unwrap_or(value.get()),
                _ => value.get(),
            };
            (key.as_ref(), value)
        });
        wire::write_object(&mut line, members);
        line.extend_from_slice(b"}\n");

        let mut inflight = InFlight::begin(backend, caller, true);
        inflight.sent(Sent::Line(Arc::downgrade(self), n), None);
        let timer = backend.call_timeout().map(|limit| {
            let link = Arc::downgrade(self);
            let task = tokio::spawn(async move {
                tokio::time::sleep(limit).await;
                if let Some(link) = link.upgrade() {
                    link.time_out(n, limit);
                }
            });
            task.abort_handle()
        });
        let pending = Pending {
            reply,
            inflight,
            timer,
        };
        self.pending.lock().unwrap().insert(n, pending);
        if to_server.send(Frame::Line(line)).is_err() {
            if let Some(mut pending) = self.pending.lock().unwrap().remove(&n) {
                pending.inflight.finish(false);
                settle(pending);
            }
            return false;
        }
        true
    }

    /// Sends request `method` of the gateway's own and waits for the server's response line,
    /// as written (so that nothing rmcp's types do not know is lost); `None` if the server
    /// went away first. Dropping the future forgets the request (a late answer is dropped).
    pub async fn ask(&self, method: &str, params: serde_json::Value) -> Option<Bytes> {
        let n = self.reserve();
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let mut asked = self.asked.lock().unwrap();
            if asked.closed {
                return None;
            }
            asked.waiting.insert(n, tx);
        }
        let forget = Forget(self, n);
        let request = serde_json::json!({
            "jsonrpc": "2.0",
            "id": format!("{ID_PREFIX}{n}"),
            "method": method,
            "params": params,
        });
        let to_server = self.to_server.upgrade()?;
        to_server.send(Frame::json(&request)).ok()?;
        drop(to_server);
        let line = rx.await.ok();
        drop(forget);
        line
    }

    /// Reads the result of the rmcp request about to be sent, whose type knows `known`, for
    /// the rest (see [`watches`](super::watches)); taken before the request is sent.
    /// The params of the server's request `id` of `method` as written (see
    /// [`asks`](super::asks)), if kept.
    pub fn take_ask(&self, id: &rmcp::model::RequestId, method: &str) -> Option<serde_json::Value> {
        self.asks.take(id, method)
    }

    pub fn watch(&self, known: &'static [&'static str]) -> Watch {
        self.watches.watch(known)
    }

    /// The client withdrew call `n` (cancelled, disconnected): so does the server. The client
    /// gets no response, as the protocol asks.
    pub fn cancel(&self, n: u64, reason: &str) {
        let Some(mut pending) = self.pending.lock().unwrap().remove(&n) else {
            return;
        };
        pending.inflight.withdraw(reason);
        pending.inflight.finish(true);
        settle(pending);
    }

    fn time_out(&self, n: u64, limit: Duration) {
        let Some(mut pending) = self.pending.lock().unwrap().remove(&n) else {
            return;
        };
        pending.inflight.withdraw("call_timeout");
        pending.inflight.finish(true);
        let error = inflight::timed_out(&self.name, limit);
        let _ = pending
            .reply
            .out
            .send(error_frame(&pending.reply.key, &error));
        settle(pending);
    }

    /// Fails every call in flight (the backend is gone).
    pub fn fail_all(&self, error: &McpError) {
        {
            let mut asked = self.asked.lock().unwrap();
            asked.closed = true;
            asked.waiting.clear();
        }
        let pending: Vec<Pending> = self
            .pending
            .lock()
            .unwrap()
            .drain()
            .map(|(_, p)| p)
            .collect();
        for mut pending in pending {
            let _ = pending
                .reply
                .out
                .send(error_frame(&pending.reply.key, error));
            pending.inflight.finish(true);
            settle(pending);
        }
    }

    /// Tells the server that request `n` is withdrawn (the call's [`InFlight`] does this).
    pub(in crate::backend) fn withdraw(&self, n: u64, reason: &str) {
        if let Some(to_server) = self.to_server.upgrade() {
            let cancel = serde_json::json!({
                "jsonrpc": "2.0",
                "method": "notifications/cancelled",
                "params": {"requestId": format!("{ID_PREFIX}{n}"), "reason": reason},
            });
            let _ = to_server.send(Frame::json(&cancel));
        }
    }

    async fn pump(
        self: Arc<Self>,
        stdout: impl AsyncRead + Unpin,
        mut feed: DuplexStream,
        exited: impl Future<Output = String>,
        limits: Limits,
    ) {
        let mut read = BufReader::with_capacity(64 * 1024, stdout);
        let mut rmcp_open = true;
        loop {
            // A fresh buffer per line: it becomes the `Bytes` a response is passed on in.
            let mut line = Vec::new();
            let max = limits.max_message();
            match wire::read_line_within(&mut read, &mut line, max).await {
                Ok(Line::Complete) => {}
                Ok(Line::TooLong) => {
                    limits.exceeded(max);
                    break;
                }
                Ok(Line::Eof) | Err(_) => break,
            }
            let line = Bytes::from(line);
            if self.route_line(&line) {
                continue;
            }
            self.watches.offer(&line);
            self.asks.offer(&line);
            if rmcp_open && feed.write_all(&line).await.is_err() {
                rmcp_open = false;
            }
        }
        // Closing our end of its stdout unblocks a server stuck writing the rest of a line.
        drop(read);
        drop(feed);
        let gone = inflight::gone(&self.name, &limits.fault, exited).await;
        self.fail_all(&gone.into());
    }

    /// Handles a line from the server if it belongs to a forwarded call.
    fn route_line(&self, line: &Bytes) -> bool {
        // Servers built on rmcp write responses as `{"jsonrpc":"2.0","id":…,"result"…`: for
        // those only the id is replaced, nothing else is looked at (a big result is never
        // scanned).
        if let Some((n, body_at)) = rmcp_style_response(line) {
            let body = line.slice(body_at..);
            let failed = body.starts_with(b",\"error\"")
                || match line.len() <= PARSE_RESULTS_UP_TO {
                    true => response_says_error(line),
                    false => tail_says_error(line),
                };
            self.respond(n, body, failed, line);
            return true;
        }
        if memchr::memmem::find(line, b"\"mcpgw:").is_none() {
            return false;
        }
        let Some(envelope) = Envelope::parse(line) else {
            return false;
        };
        if envelope.method.is_none() {
            let Some(n) = envelope.id.and_then(|id| our_number(id.get())) else {
                return false;
            };
            let (member, value, failed) = match (envelope.result, envelope.error) {
                (Some(result), _) => ("result", result, is_error(result)),
                (None, Some(error)) => ("error", error, true),
                (None, None) => return true,
            };
            let mut body = Vec::with_capacity(value.get().len() + 16);
            body.extend_from_slice(b",\"");
            body.extend_from_slice(member.as_bytes());
            body.extend_from_slice(b"\":");
            body.extend_from_slice(value.get().as_bytes());
            body.extend_from_slice(b"}\n");
            self.respond(n, Bytes::from(body), failed, line);
            return true;
        }
        match (envelope.method.as_deref(), envelope.params) {
            (Some("notifications/progress"), Some(params)) => self.progress(params),
            _ => false,
        }
    }

    /// Passes the response to call `n` on (`body`: what follows its id), or the whole `line`
    /// to what asked request `n`.
    fn respond(&self, n: u64, body: Bytes, failed: bool, line: &Bytes) {
        let Some(mut pending) = self.pending.lock().unwrap().remove(&n) else {
            // A response to a call already cancelled or timed out is dropped.
            if let Some(asker) = self.asked.lock().unwrap().waiting.remove(&n) {
                let _ = asker.send(line.clone());
            }
            return;
        };
        let head = wire::response_head(&pending.reply.key);
        let _ = pending.reply.out.send(Frame::Spliced { head, body });
        pending.inflight.finish(failed);
        settle(pending);
    }

    /// Passes progress of a forwarded call on with the client's own token; older updates than
    /// one already passed on are dropped. False if the token is not ours.
    fn progress(&self, params: &RawValue) -> bool {
        let Ok(mut params) =
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(params.get())
        else {
            return false;
        };
        let Some(n) = params
            .get("progressToken")
            .and_then(|t| t.as_str())
            .and_then(|t| t.strip_prefix(ID_PREFIX))
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return false;
        };
        let Some(progress) = params.get("progress").and_then(|p| p.as_f64()) else {
            return true;
        };
        let calls = self.pending.lock().unwrap();
        let Some(pending) = calls.get(&n) else {
            return true;
        };
        let Some(token) = pending
            .inflight
            .progress(progress)
            .and_then(|caller| caller.progress_token)
        else {
            return true;
        };
        params.insert("progressToken".into(), token.0.into_json_value());
        let notification = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/progress",
            "params": params,
        });
        let _ = pending
            .reply
            .out
            .send(Frame::Notification(wire::json_line(&notification)));
        true
    }
}

/// Forgets asked request `n` when its asker stops waiting, however it stops.
struct Forget<'a>(&'a Link, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        // Still waiting: the asker gave up (a timeout), so the server may stop working on it.
        if self
            .0
            .asked
            .lock()
            .unwrap()
            .waiting
            .remove(&self.1)
            .is_some()
        {
            self.0.withdraw(self.1, "no longer wanted");
        }
    }
}

/// `n` from an id or token `"mcpgw:<n>"` in its JSON spelling.
fn our_number(raw: &str) -> Option<u64> {
    raw.strip_prefix('"')?
        .strip_suffix('"')?
        .strip_prefix(ID_PREFIX)?
        .parse()
        .ok()
}

/// Undoes a finished call's book-keeping: its timer, its entry in the client's index, and (by
/// dropping it) its record.
fn settle(pending: Pending) {
    if let Some(timer) = &pending.timer {
        timer.abort();
    }
    if let Some(index) = pending.reply.index.upgrade() {
        index.lock().unwrap().remove(&pending.reply.key);
    }
}

/// `(n, where the body after the id starts)` for `{"jsonrpc":"2.0","id":"mcpgw:<n>",` followed
/// by `"result"` or `"error"`.
fn rmcp_style_response(line: &[u8]) -> Option<(u64, usize)> {
    const HEAD: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":\"mcpgw:";
    let rest = line.strip_prefix(HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let n = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let after = &rest[digits..];
    (after.starts_with(b"\",\"result\":") || after.starts_with(b"\",\"error\":"))
        .then_some((n, HEAD.len() + digits + 1))
}

/// A tool result's `isError`, all that is read of it.
#[derive(serde::Deserialize)]
struct Flag {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

fn is_error(result: &RawValue) -> bool {
    serde_json::from_str::<Flag>(result.get()).is_ok_and(|f| f.is_error == Some(true))
}

/// Whether a whole response line carries a failed tool result, in one pass over it.
fn response_says_error(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Response {
        #[serde(default)]
        result: Option<Flag>,
    }
    serde_json::from_slice::<Response>(line)
        .is_ok_and(|r| r.result.is_some_and(|f| f.is_error == Some(true)))
}

/// A big result's `isError` is found where servers write it: after the content.
fn tail_says_error(line: &[u8]) -> bool {
    let tail = &line[line.len().saturating_sub(256)..];
    memchr::memmem::find(tail, b"\"isError\":true").is_some()
}

fn error_frame(key: &str, error: &McpError) -> Frame {
    let mut line = wire::response_head(key);
    line.extend_from_slice(b",\"error\":");
    serde_json::to_writer(&mut line, error).expect("an error serializes");
    line.extend_from_slice(b"}\n");
    Frame::Line(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_ids_are_recognised() {
        assert_eq!(our_number(r#""mcpgw:17""#), Some(17));
        assert_eq!(our_number("17"), None);
        assert_eq!(our_number(r#""mcpgw:x""#), None);
        assert_eq!(our_number(r#""other:1""#), None);
    }

    #[test]
    fn rmcp_style_responses_are_found_without_parsing() {
        let line = br#"{"jsonrpc":"2.0","id":"mcpgw:42","result":{"content":[]}}"#;
        let (n, at) = rmcp_style_response(line).unwrap();
        assert_eq!(n, 42);
        assert_eq!(&line[at..], br#","result":{"content":[]}}"#);
        assert!(
            rmcp_style_response(br#"{"jsonrpc":"2.0","id":"mcpgw:42","method":"x"}"#).is_none()
        );
        assert!(rmcp_style_response(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#).is_none());
    }

    #[test]
    fn tool_errors_are_recognised() {
        let raw: &RawValue = serde_json::from_str(r#"{"content":[],"isError":true}"#).unwrap();
        assert!(is_error(raw));
        let raw: &RawValue = serde_json::from_str(r#"{"content":[]}"#).unwrap();
        assert!(!is_error(raw));
        assert!(tail_says_error(
            br#"{"content":[{"text":"..."}],"isError":true}}"#
        ));
        assert!(response_says_error(
            br#"{"jsonrpc":"2.0","id":"mcpgw:1","result":{"content":[],"isError":true}}"#
        ));
        assert!(!response_says_error(
            br#"{"jsonrpc":"2.0","id":"mcpgw:1","result":{"content":[]}}"#
        ));
    }
}
