//! A socket session: the client's lines are read here, beneath rmcp; the byte path takes what
//! it serves and every other line goes to rmcp unchanged. Both write through one frame queue,
//! so messages never interleave mid-line. The peer is a shim: when the daemon stops, rmcp
//! answers nothing that is still open (the shim carries the session to the next daemon).

use std::sync::Arc;
use std::time::Duration;

use rmcp::transport::async_rw::AsyncRwTransport;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::Session;
use super::byte_path::{self, Taken};
use crate::gateway::{Gateway, SessionHandle};
use crate::ipc::listener::{Reader, Writer};
use crate::protocol::{Hello, SessionTransport};
use crate::throttle::RateLimit;
use crate::wire::{self, Frame, FrameTx, Line, LineSink};

/// Bytes of responses and notifications waiting for a client to read them (one message of any
/// size always fits). A client that stops reading while its calls keep answering overflows it,
/// and its session ends, logged; no other session is affected. Past 64 MiB the queue takes more
/// only while the client keeps up (its writer took a message, or had none to take, in the last
/// 10 s), so that several large answers arriving at once do not end a working client; past
/// 128 MiB, never.
pub const CLIENT_QUEUE: wire::Bound = wire::Bound {
    soft: 64 * 1024 * 1024,
    hard: 128 * 1024 * 1024,
    patience: std::time::Duration::from_secs(10),
};

/// The largest message a client may send. Requests are small (results flow the other way and
/// are not limited); the bound keeps one broken or hostile client from growing the daemon's
/// memory without end. A longer line is dropped and logged, the session goes on.
pub const MAX_CLIENT_MESSAGE: usize = 64 * 1024 * 1024;

/// Serves one session until the client disconnects or the daemon stops: the byte path reads
/// the client's lines and passes what it does not take to rmcp; both write through one queue.
pub async fn serve(
    gateway: Arc<Gateway>,
    hello: Hello,
    reader: Reader,
    writer: Writer,
    stop: CancellationToken,
) {
    let session = Session::new(
        gateway.clone(),
        hello.role,
        hello.pid,
        SessionTransport::Socket,
    );
    let handle = session.handle().clone();
    gateway.keep_client_env(handle.id, hello.env);
    let id = handle.id;
    let (out, frames) = wire::frame_queue(CLIENT_QUEUE);
    tokio::spawn(crate::wire::write_frames(writer, frames));
    let (rmcp_read, rmcp_feed) = tokio::io::duplex(64 * 1024);
    // When the daemon stops, rmcp's answers to what is still open (a listen's final result,
    // "request cancelled") are not sent: the peer is a shim, which answers unfinished requests
    // itself and opens the listens again on the next daemon, so that the client sees no end.
    let sink = LineSink::new(out.clone()).until(stop.clone());
    let transport = AsyncRwTransport::new_server(rmcp_read, sink).with_max_line_length(usize::MAX);
    // The client hanging up ends the pump, which ends rmcp's input; rmcp ending (the daemon
    // stops, the handshake failed) ends the pump.
    let done = stop.child_token();
    let pump = pump(
        &handle,
        &gateway,
        out,
        reader,
        rmcp_feed,
        MAX_CLIENT_MESSAGE,
        done.clone(),
    );
    let rmcp = async move {
        match rmcp::service::serve_server_with_ct(
            super::SessionService::new(session),
            transport,
            stop,
        )
        .await
        {
            Ok(running) => {
                let _ = running.waiting().await;
            }
            Err(e) => tracing::debug!(session = id, "session ended before initializing: {e}"),
        }
        done.cancel();
    };
    tokio::join!(pump, rmcp);
}

/// Reads the client's lines until it disconnects or the daemon stops; the lines the byte
/// path does not take are written to `rmcp` (rmcp's reading end). A line longer than `max`
/// is dropped and logged; the session goes on.
async fn pump(
    handle: &SessionHandle,
    gateway: &Gateway,
    out: FrameTx,
    mut read: impl AsyncBufRead + Unpin,
    mut rmcp: impl AsyncWrite + Unpin,
    max: usize,
    stop: CancellationToken,
) {
    let mut line = Vec::new();
    let mut parse_errors = RateLimit::new(PARSE_ERRORS_PER_SECOND, Duration::from_secs(1));
    loop {
        let result = tokio::select! {
            r = wire::read_line(&mut read, &mut line, max) => r,
            () = stop.cancelled() => break,
            () = out.overflowed() => {
                let (_, bound) = out.queued();
                tracing::warn!(
                    session = handle.id,
                    limit_bytes = bound.soft,
                    patience_s = bound.patience.as_secs(),
                    "ending a session whose client does not read its responses"
                );
                break;
            }
        };
        match result {
            Ok(Line::Complete) => {}
            Ok(Line::TooLong) => {
                tracing::error!(
                    session = handle.id,
                    max_line_length = max,
                    "a client message exceeded the maximum line length; discarding it"
                );
                continue;
            }
            Ok(Line::Eof) | Err(_) => break,
        }
        if let Some(error) = handle.refusal(&line) {
            // A new request past the session's bound: refused, the session goes on.
            let _ = out.send(Frame::Line(error));
            continue;
        }
        if byte_path::enabled() && handle.serve_line(gateway, &line, &out) != Taken::No {
            continue;
        }
        if !wire::is_json_or_blank(&line) {
            // rmcp ignores what it cannot parse; JSON-RPC 2.0 asks for a Parse error (id
            // null). A peer that answers errors with more garbage could make that a storm:
            // past a few a second they are only counted.
            if parse_errors.allow() {
                let _ = out.send(Frame::json(&parse_error()));
            }
            continue;
        }
        if rmcp.write_all(&line).await.is_err() {
            break;
        }
    }
    if parse_errors.dropped > 0 {
        tracing::warn!(
            session = handle.id,
            unanswered = parse_errors.dropped,
            "a client sent more unparsable messages than are answered"
        );
    }
    // Whatever is still in flight was this client's: cancel it upstream.
    handle.cancel_all("the client disconnected");
}

/// Parse errors answered per second and session; more are dropped (and counted).
const PARSE_ERRORS_PER_SECOND: u32 = 10;

/// JSON-RPC's Parse error, for a line that is not JSON: no id can be known.
fn parse_error() -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {"code": -32700, "message": "Parse error: the message is not valid JSON"},
    })
}
