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
        return Err(match (line.len() as u64) < MAX_HELLO {
            true => "connection closed in the middle of the hello".into(),
            false => "the hello line is too long".into(),
        });
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

#[cfg(all(test, unix))]
mod tests {
    //! Property tests of the hello, the first thing the daemon parses from every connection
    //! (run with the others: `cargo test -p mcpgw --lib prop_`).

    use std::os::fd::OwnedFd;

    use interprocess::os::unix::uds_local_socket::tokio::Stream as UdsStream;
    use proptest::prelude::*;

    use super::*;

    /// What `read_hello` made of a connection whose peer sent `bytes` and closed its side, and
    /// every byte the reader still held or had not read after it (what a session reads next).
    fn hello_of(bytes: &[u8]) -> (Result<Hello, String>, Vec<u8>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
            let ours = OwnedFd::from(ours.into_std().unwrap());
            let stream = Stream::from(UdsStream::try_from(ours).unwrap());
            let (recv, _send) = tokio::io::split(stream);
            let mut reader = BufReader::new(recv);
            // Read on after the hello while the peer writes, so a long input never blocks it.
            let read = async {
                let hello = read_hello(&mut reader).await;
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await.unwrap();
                (hello, rest)
            };
            let write = async {
                theirs.write_all(bytes).await.unwrap();
                theirs.shutdown().await.unwrap();
            };
            tokio::join!(read, write).0
        })
    }

    /// How many bytes `read_hello` may take from `bytes`: the first line, at most `MAX_HELLO`.
    fn hello_extent(bytes: &[u8]) -> usize {
        let line = bytes
            .iter()
            .position(|b| *b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        line.min(MAX_HELLO as usize)
    }

    fn hello() -> impl Strategy<Value = Hello> {
        (
            prop_oneof![Just(PROTOCOL_VERSION), any::<u32>()],
            prop_oneof![Just(HelloKind::Session), Just(HelloKind::Control)],
            proptest::option::of(".{0,40}"),
            proptest::option::of(any::<u32>()),
            proptest::collection::btree_map("[A-Z_]{1,8}", ".{0,20}", 0..4),
        )
            .prop_map(|(v, kind, role, pid, env)| Hello {
                v,
                kind,
                role,
                pid,
                env: crate::protocol::ClientEnv(env),
            })
    }

    /// A byte that often means something in a hello.
    fn hello_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            any::<u8>(),
            prop::sample::select(b"{}[]\":,\n\r\\ 0123456789-.eEnulltruefalse".to_vec()),
        ]
    }

    /// A valid hello line with a few bytes replaced, inserted or removed; or arbitrary bytes.
    fn hello_like_bytes() -> impl Strategy<Value = Vec<u8>> {
        let edit = (any::<prop::sample::Index>(), 0u8..3, hello_byte());
        prop_oneof![
            (hello(), prop::collection::vec(edit, 0..4)).prop_map(|(hello, edits)| {
                let mut line = protocol::to_line(&hello);
                for (at, op, byte) in edits {
                    let i = at.index(line.len() + 1);
                    match op {
                        0 if i < line.len() => line[i] = byte,
                        1 => line.insert(i, byte),
                        _ if i < line.len() => {
                            line.remove(i);
                        }
                        _ => {}
                    }
                }
                line
            }),
            prop::collection::vec(hello_byte(), 0..512),
        ]
    }

    proptest! {
        /// Whatever a peer sends first: no panic; the daemon takes the first line and not a
        /// byte more, never more than `MAX_HELLO`; it accepts exactly what parses as a hello,
        /// and what it accepts is a hello that round-trips.
        #[test]
        fn prop_hello_of_any_bytes_takes_one_bounded_line(
            first in hello_like_bytes(),
            rest in prop::collection::vec(hello_byte(), 0..64),
        ) {
            let sent = [first.as_slice(), rest.as_slice()].concat();
            let (hello, left) = hello_of(&sent);
            let taken = hello_extent(&sent);
            prop_assert_eq!(&left[..], &sent[taken..], "took {} bytes", sent.len() - left.len());
            let line = &sent[..taken];
            let expected = if line.last() == Some(&b'\n') {
                serde_json::from_slice::<Hello>(line).ok()
            } else {
                None
            };
            prop_assert_eq!(hello.as_ref().ok(), expected.as_ref());
            if let Ok(hello) = hello {
                let again: Hello = serde_json::from_slice(&protocol::to_line(&hello)).unwrap();
                prop_assert_eq!(again, hello);
            }
        }

        /// A valid hello, with whatever the client sends right after it: the same hello comes
        /// out, and everything after its line is left for the session.
        #[test]
        fn prop_valid_hellos_round_trip(
            sent in hello(),
            rest in prop::collection::vec(hello_byte(), 0..256),
        ) {
            let line = protocol::to_line(&sent);
            let (hello, left) = hello_of(&[line.as_slice(), rest.as_slice()].concat());
            prop_assert_eq!(hello, Ok(sent));
            prop_assert_eq!(left, rest);
        }

        /// A hello that is valid JSON but longer than `MAX_HELLO` is refused after reading
        /// `MAX_HELLO` bytes of it (all the daemon buffers of it); one of exactly `MAX_HELLO`
        /// bytes, newline included, is not.
        #[test]
        fn prop_a_hello_over_its_limit_is_refused(
            sent in hello(),
            len in prop_oneof![
                (MAX_HELLO as usize - 2)..=(MAX_HELLO as usize + 2),
                (MAX_HELLO as usize - 32)..(MAX_HELLO as usize + 4096),
            ],
        ) {
            // Whitespace inside the object keeps it valid JSON at any length.
            let compact = protocol::to_line(&sent);
            let padding = len.saturating_sub(compact.len());
            let mut line = compact[..compact.len() - 2].to_vec();
            line.resize(line.len() + padding, b' ');
            line.extend_from_slice(b"}\n");
            prop_assume!(line.len() == len);
            let (hello, left) = hello_of(&line);
            let max = MAX_HELLO as usize;
            prop_assert_eq!(left.len(), len - len.min(max), "read past the limit");
            if len <= max {
                prop_assert_eq!(hello, Ok(sent));
            } else {
                prop_assert_eq!(hello, Err("the hello line is too long".to_owned()));
            }
        }
    }
}
