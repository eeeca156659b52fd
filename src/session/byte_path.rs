//! The byte path (the "fast path"), session side: a client's `tools/call` forwarded to a
//! running stdio backend as bytes, its `tools/list` answered from pages serialized once per
//! table and role, its cancel of a forwarded call. Used by the socket pump (`socket.rs`, every
//! line of a socket session) and by HTTP (one POST body at a time, `http/byte_path.rs`).
//!
//! rmcp's typed service layer costs the daemon ~140 µs of CPU per small call (a task per
//! message, every message decoded into typed enums and encoded again, on both sides) and
//! copies big results several times. The hot message does not need any of that: the gateway
//! only has to read the envelope (id, method, tool name, progress token), check the role,
//! rewrite the id, the name and the token, and pass the rest of the bytes on. A line this
//! module does not take goes to rmcp unchanged, which keeps owning everything where protocol
//! semantics matter (handshakes, version negotiation, other lists, every other request,
//! server→client requests). A call takes the byte path only when all of these hold, else rmcp
//! serves it exactly as before:
//! - the session negotiated an initialize-era protocol (2024-11-05 … 2025-11-25), over the
//!   local socket or Streamable HTTP; 2026-07-28 clients stay on rmcp;
//! - the tool is a backend's, visible to the session's role, and the call is not a task;
//! - its progress token, if any, is one rmcp accepts as one (a string or an integer); the
//!   client's own token is sent back with progress in rmcp's spelling of it;
//! - the backend (or the session's per-client instance) is a stdio server already running —
//!   the first call starts it through rmcp.
//!
//! What the rmcp path guarantees holds here too, because both keep the same record of a call
//! in flight (`backend::inflight`); see `backend/upstream/stdio.rs` for the backend side.
//!
//! `tools/list` takes the byte path when the session is initialized (initialize era), no server
//! waits to be discovered and the cursor is absent or one the gateway issued: the page is the
//! role view's, serialized on first use (`table::pages`), the same bytes rmcp would write.
//!
//! `MCPGW_FAST_PATH=0` turns the byte path off (for comparison and as an escape hatch).

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{ProgressToken, ProtocolVersion};
use rmcp::service::{Peer, RoleServer};
use serde_json::value::RawValue;

use crate::backend::Caller;
use crate::backend::upstream::stdio::{Outgoing, ReplyTo};
use crate::gateway::{Gateway, ListKind, SessionHandle};
use crate::table::{Target, pages};
use crate::wire::{self, Envelope, Frame, FrameTx, RawMembers};

/// Whether the byte path is on (`MCPGW_FAST_PATH=0` turns it off).
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("MCPGW_FAST_PATH").map_or(true, |v| v != "0"))
}

/// Protocol versions whose sessions may use the byte path: those with an initialize handshake,
/// whose results rmcp passes through unchanged.
const INITIALIZE_ERA: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2024_11_05,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

/// What [`SessionHandle::serve_line`] did with a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// Nothing: the message is rmcp's.
    No,
    /// Forwarded a `tools/call`.
    Call,
    /// Answered a `tools/list` page.
    List,
    /// Cancelled a forwarded call.
    Cancel,
}

impl SessionHandle {
    /// Serves `line` if the byte path takes it (answers go to `out`) and says what it was.
    pub fn serve_line(&self, gateway: &Gateway, line: &[u8], out: &FrameTx) -> Taken {
        let candidate = [
            &b"tools/call"[..],
            b"tools/list",
            b"notifications/cancelled",
        ]
        .iter()
        .any(|method| memchr::memmem::find(line, method).is_some());
        if !candidate {
            return Taken::No;
        }
        let Some(envelope) = Envelope::parse(line) else {
            return Taken::No;
        };
        // Only what rmcp would accept as is: a JSON-RPC 2.0 message whose request carries no
        // 2026-07-28 per-request protocol metadata (rmcp routes and shapes those differently).
        let modern = envelope.params.is_some_and(|p| {
            memchr::memmem::find(p.get().as_bytes(), b"io.modelcontextprotocol/").is_some()
        });
        if envelope.jsonrpc.as_deref() != Some("2.0") || modern {
            return Taken::No;
        }
        let taken = match envelope.method.as_deref() {
            Some("tools/call") => self.call(gateway, &envelope, out).map(|()| Taken::Call),
            Some("tools/list") => self
                .list_tools(gateway, &envelope, out)
                .then_some(Taken::List),
            Some("notifications/cancelled") => self.cancelled(&envelope).then_some(Taken::Cancel),
            _ => None,
        };
        taken.unwrap_or(Taken::No)
    }

    /// The error line (newline-terminated) that answers `message` when it is a new request
    /// and the session already has as many in flight as it may; `None` to serve it. Answers
    /// and notifications always pass, so that the calls in flight can finish. The check the
    /// byte path needs (its calls are counted as it forwards them, one line at a time); on
    /// the rmcp path [`SessionHandle::busy`] counts and checks at once.
    pub fn refusal(&self, message: &[u8]) -> Option<Vec<u8>> {
        if !self.at_capacity() {
            return None;
        }
        let envelope = wire::Envelope::parse(message)?;
        envelope.method.as_ref()?;
        let mut error = wire::response_head(&request_id_key(envelope.id?)?);
        let message = crate::gateway::TOO_MANY_REQUESTS;
        error.extend_from_slice(
            format!(",\"error\":{{\"code\":-32000,\"message\":\"{message}\"}}}}\n").as_bytes(),
        );
        Some(error)
    }

    /// Cancels upstream whatever this client still has in flight (it left).
    pub fn cancel_all(&self, reason: &str) {
        let calls: Vec<_> = self.calls.lock().unwrap().drain().collect();
        for (_, (link, n)) in calls {
            if let Some(link) = link.upgrade() {
                link.cancel(n, reason);
            }
        }
    }

    /// Forwards a `tools/call` if it can take the byte path (see the module docs). Its answer
    /// and progress go to `out`.
    fn call(&self, gateway: &Gateway, envelope: &Envelope, out: &FrameTx) -> Option<()> {
        let (Some(id), Some(params)) = (envelope.id, envelope.params) else {
            return None;
        };
        let peer = self.initialized()?;
        let params = RawMembers::parse(params)?;
        let name = params
            .get("name")
            .and_then(|name| serde_json::from_str::<Cow<str>>(name.get()).ok())?;
        let key = wire::id_key(id)?;
        // Parsed once: the client's progress token is read from it here, and the link writes
        // it upstream with ours in its place.
        let meta = params.get("_meta").and_then(|meta| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(meta.get()).ok()
        });
        // A token rmcp would not take as one is rmcp's to answer.
        let progress_token = match meta.as_ref().and_then(|meta| meta.get("progressToken")) {
            None | Some(serde_json::Value::Null) => None,
            Some(token) => Some(serde_json::from_value::<ProgressToken>(token.clone()).ok()?),
        };
        if params.get("task").is_some() {
            return None;
        }

        let table = gateway.table();
        let entry = table.catalog.tools.get(name.as_ref())?;
        let Target::Backend { backend, original } = &entry.target else {
            return None;
        };
        if !table.roles.allows_tool(self.role.as_deref(), &entry.item) {
            return None;
        }
        // The client's _meta is forwarded with the request's bytes.
        let caller = Caller::new(self.id, peer.clone(), progress_token, None);
        let instance = gateway.instance_for(backend, &caller);
        let link = instance.stdio_link()?;
        if instance.not_offered(original).is_some() {
            // rmcp's path answers it, with why.
            return None;
        }
        let n = link.reserve();
        {
            let mut calls = self.calls.lock().unwrap();
            if calls.contains_key(&key) {
                // The client reused the id of a call in flight: rmcp answers that.
                return None;
            }
            calls.insert(key.clone(), (Arc::downgrade(&link), n));
        }
        let reply = ReplyTo {
            out: out.clone(),
            key: key.clone(),
            index: Arc::downgrade(&self.calls),
        };
        let request = Outgoing {
            params: &params,
            meta,
            original,
        };
        if link.send_call(n, &instance, caller, reply, request) {
            return Some(());
        }
        self.calls.lock().unwrap().remove(&key);
        None
    }

    /// The session's peer, once it is initialized with an initialize-era protocol.
    fn initialized(&self) -> Option<&Peer<RoleServer>> {
        let peer = self.peer.get()?;
        let era = peer
            .peer_info()
            .is_some_and(|info| INITIALIZE_ERA.contains(&info.protocol_version));
        era.then_some(peer)
    }

    /// Answers `tools/list` from the view's serialized pages, when no server needs discovering
    /// first and the cursor is one the gateway issued; anything else is rmcp's (which also
    /// answers a bad cursor with the error).
    fn list_tools(&self, gateway: &Gateway, envelope: &Envelope, out: &FrameTx) -> bool {
        #[derive(serde::Deserialize)]
        struct Params {
            cursor: Option<String>,
        }
        let Some(id) = envelope.id else {
            return false;
        };
        let cursor = match envelope
            .params
            .map(|p| serde_json::from_str::<Params>(p.get()))
        {
            None => None,
            Some(Ok(params)) => params.cursor,
            Some(Err(_)) => return false,
        };
        let (Some(_), Some(key)) = (self.initialized(), wire::id_key(id)) else {
            return false;
        };
        let table = gateway.table();
        if gateway.discovery_pending(&table) {
            return false;
        }
        let view = table.view(self.role.as_deref());
        let size = pages::page_size();
        let page = match cursor.map(|c| pages::decode_cursor(&c, "tools")) {
            None => 0,
            Some(Some(offset)) if offset % size == 0 && offset < view.tools.len() => offset / size,
            Some(_) => return false,
        };
        let Some(body) = view.tool_pages().get(page).cloned() else {
            return false;
        };
        gateway.mark_seen(self.id, &view, ListKind::Tools);
        let head = wire::response_head(&key);
        let _ = out.send(Frame::Spliced { head, body });
        true
    }

    /// Cancels a call forwarded here; a cancel of anything else is rmcp's.
    fn cancelled(&self, envelope: &Envelope) -> bool {
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(rename = "requestId", borrow)]
            request_id: &'a RawValue,
        }
        let (None, Some(params)) = (envelope.id, envelope.params) else {
            return false;
        };
        let Some(key) = serde_json::from_str::<Params>(params.get())
            .ok()
            .and_then(|p| wire::id_key(p.request_id))
        else {
            return false;
        };
        let Some((link, n)) = self.calls.lock().unwrap().remove(&key) else {
            return false;
        };
        if let Some(link) = link.upgrade() {
            link.cancel(n, "cancelled by the client");
        }
        true
    }
}

/// The id of a request as rmcp will answer it: rmcp also reads `1e3` or `1.0` as an integer
/// and answers with its canonical spelling, so a refusal keyed on the id as written would not
/// stop those (and a client could pass the bound with them). `None` for what rmcp rejects.
fn request_id_key(raw: &serde_json::value::RawValue) -> Option<Box<str>> {
    wire::id_key(raw).or_else(|| {
        let id: rmcp::model::RequestId = serde_json::from_str(raw.get()).ok()?;
        Some(serde_json::to_string(&id).ok()?.into_boxed_str())
    })
}
