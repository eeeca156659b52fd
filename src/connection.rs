//! One accepted local connection: reads the hello, then hands the stream to a session or to
//! the control handler.
//!
//! Nothing a client sends can take the daemon down: a bad hello gets a refusal line, an
//! oversized or silent one is cut off, and every connection runs on its own task.

use std::sync::Arc;
use std::time::Duration;

use interprocess::local_socket::tokio::Stream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::ipc::listener::{Reader, Writer};
use crate::protocol::{self, Hello, HelloKind, HelloReply, PROTOCOL_VERSION};

/// A hello is a few hundred bytes; anything much longer is not a hello.
const MAX_HELLO: u64 = 64 * 1024;
/// A peer that connects and says nothing is dropped after this.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn serve(gateway: Arc<Gateway>, stream: Stream, stop: CancellationToken) {
    let (recv, mut send) = tokio::io::split(stream);
    let mut reader = BufReader::new(recv);
    let hello = match read_hello(&mut reader).await {
        Ok(hello) => hello,
        Err(message) => {
            tracing::debug!("bad hello: {message}");
            let _ = reply(&mut send, Err(message)).await;
            return;
        }
    };
    if hello.v != PROTOCOL_VERSION {
        let message = format!(
            "protocol version mismatch: the client speaks version {}, this mcpgwd (v{}) speaks \
             version {PROTOCOL_VERSION}; use a shim and mcpgwctl from the same release as the \
             daemon (restart the daemon after upgrading)",
            hello.v,
            env!("CARGO_PKG_VERSION"),
        );
        refuse(hello.kind, reader, send, message).await;
        return;
    }
    match hello.kind {
        HelloKind::Session => {
            let table = gateway.table();
            if let Err(message) = table.roles.check(hello.role.as_deref()) {
                drop(table);
                refuse(hello.kind, reader, send, message).await;
                return;
            }
            drop(table);
            if reply(&mut send, Ok(())).await.is_err() {
                return;
            }
            crate::session::socket::serve(gateway, hello, reader, send, stop).await;
        }
        HelloKind::Control => {
            if reply(&mut send, Ok(())).await.is_err() {
                return;
            }
            crate::control::serve(gateway, reader, send, stop).await;
        }
    }
}

async fn read_hello(reader: &mut Reader) -> Result<Hello, String> {
    let mut line = Vec::new();
    let read = async {
        let mut limited = (&mut *reader).take(MAX_HELLO);
        limited.read_until(b'\n', &mut line).await
    };
    match tokio::time::timeout(HELLO_TIMEOUT, read).await {
        Err(_) => return Err("no hello within 10 s".into()),
        Ok(Err(e)) => return Err(format!("reading the hello failed: {e}")),
        Ok(Ok(0)) => return Err("connection closed before the hello".into()),
        Ok(Ok(_)) => {}
    }
    if line.last() != Some(&b'\n') {
        return Err("the hello line is too long".into());
    }
    serde_json::from_slice(&line).map_err(|e| {
        format!("expected an mcpgw hello line (is this an MCP client talking to the socket directly? use mcpgw-shim): {e}")
    })
}

async fn reply(send: &mut Writer, result: Result<(), String>) -> std::io::Result<()> {
    let reply = HelloReply {
        v: PROTOCOL_VERSION,
        ok: result.is_ok(),
        error: result.err(),
    };
    send.write_all(&protocol::to_line(&reply)).await?;
    send.flush().await
}

/// Refuses a hello. A refused session still gets its first MCP request answered with the
/// message as a JSON-RPC error, so the user sees why in their MCP client instead of a hang.
async fn refuse(kind: HelloKind, mut reader: Reader, mut send: Writer, message: String) {
    tracing::info!("refused a {kind:?} connection: {message}");
    if reply(&mut send, Err(message.clone())).await.is_err() || kind != HelloKind::Session {
        return;
    }
    let mut line = Vec::new();
    let read = async {
        let mut limited = (&mut reader).take(16 * 1024 * 1024);
        limited.read_until(b'\n', &mut line).await
    };
    if !matches!(tokio::time::timeout(HELLO_TIMEOUT, read).await, Ok(Ok(n)) if n > 0) {
        return;
    }
    let id = serde_json::from_slice::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("id").cloned())
        .unwrap_or(serde_json::Value::Null);
    let error = serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": -32600, "message": format!("mcpgw: {message}")},
    });
    let mut out = serde_json::to_vec(&error).unwrap_or_default();
    out.push(b'\n');
    let _ = send.write_all(&out).await;
    let _ = send.flush().await;
}
