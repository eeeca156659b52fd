//! The fast path: `tools/call` from a socket session to a running stdio backend, forwarded as
//! bytes; `tools/list` answered from pages serialized once per routing table and role.
//!
//! rmcp's typed service layer costs the daemon ~140 µs of CPU per small call (a task per
//! message, every message decoded into typed enums and encoded again, on both sides) and
//! copies big results several times. The hot message does not need any of that: the gateway
//! only has to read the envelope (id, method, tool name, progress token), check the role,
//! rewrite the id, the name and the token, and pass the rest of the bytes on.
//!
//! So both the session's socket and the backend's stdio are read line by line here
//! ([`session::FastSession::pump`], [`link::Link`]'s reader): a line the fast path owns is
//! handled on the spot, every other line goes to rmcp unchanged, which keeps owning everything
//! where protocol semantics matter (handshakes, version negotiation, lists, every other
//! request, server→client requests). A call takes the fast path only when all of these hold,
//! else rmcp serves it exactly as before:
//! - the session negotiated an initialize-era protocol (2024-11-05 … 2025-11-25), over the
//!   local socket or Streamable HTTP (`crate::http::fast`, where a call asking for progress
//!   stays on rmcp's SSE stream); 2026-07-28 clients stay on rmcp;
//! - the tool is a backend's, visible to the session's role, and the call is not a task;
//! - the backend (or the session's per-client instance) is a stdio server already running —
//!   the first call starts it through rmcp.
//!
//! What the slow path guarantees holds here too: the call is registered as the backend's
//! caller for its lifetime (server→client requests reach this client, idle stop waits, status
//! counts it); progress reaches only this client, with its own token, in order, before the
//! response (both are written by the backend's reader, in the order the backend sent them);
//! a client's cancel, a disconnect and `call_timeout` cancel upstream; a backend that dies
//! fails the call with its exit status. Forwarded requests carry ids and progress tokens
//! `"mcpgw:<n>"`, which rmcp (numbering its own) never uses.
//!
//! `tools/list` takes the fast path when the session is initialized (initialize era), no server
//! waits to be discovered and the cursor is absent or one the gateway issued: the page is the
//! role view's, serialized on first use (`table::pages`), the same bytes rmcp would write.
//!
//! `MCPGW_FAST_PATH=0` turns the fast path off (for comparison and as an escape hatch).

pub mod link;
pub mod session;

use std::collections::HashMap;
use std::sync::{Mutex, Weak};

/// Prefix of the ids and progress tokens of requests forwarded on the fast path.
const ID_PREFIX: &str = "mcpgw:";

/// A session's calls in flight on fast links, by the client's request id (canonical JSON).
pub type CallIndex = Mutex<HashMap<Box<str>, (Weak<link::Link>, u64)>>;

pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("MCPGW_FAST_PATH").map_or(true, |v| v != "0"))
}

/// `n` from an id or token `"mcpgw:<n>"` in its JSON spelling.
fn our_number(raw: &str) -> Option<u64> {
    raw.strip_prefix('"')?
        .strip_suffix('"')?
        .strip_prefix(ID_PREFIX)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_ids_are_recognised() {
        assert_eq!(super::our_number(r#""mcpgw:17""#), Some(17));
        assert_eq!(super::our_number("17"), None);
        assert_eq!(super::our_number(r#""mcpgw:x""#), None);
        assert_eq!(super::our_number(r#""other:1""#), None);
    }
}
