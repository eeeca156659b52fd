//! The session side of the fast path: a client's identity and its forwarded calls, used by the
//! socket pump (reads a socket session's lines, takes what it can, hands every other line to
//! rmcp) and by HTTP (one POST body at a time, `http/fast.rs`).

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use rmcp::model::ProtocolVersion;
use rmcp::service::{Peer, RoleServer};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::CallIndex;
use super::link::Call;
use crate::backend::call::Caller;
use crate::gateway::{Gateway, ListKind};
use crate::table::{Target, pages};
use crate::wire::{self, Envelope, Frame, FrameTx, Line, RawMembers};

/// Protocol versions whose sessions may use the fast path: those with an initialize handshake,
/// whose results rmcp passes through unchanged.
const INITIALIZE_ERA: [ProtocolVersion; 4] = [
    ProtocolVersion::V_2024_11_05,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

/// One session, as the fast path knows it.
pub struct Client {
    pub id: u64,
    pub role: Option<String>,
    pub gateway: Arc<Gateway>,
    /// The session's rmcp peer, set once it is initialized.
    pub peer: Arc<OnceLock<Peer<RoleServer>>>,
    pub calls: Arc<CallIndex>,
}

impl Client {
    /// Reads the client's lines until it disconnects or the daemon stops; the lines the fast
    /// path does not take are written to `rmcp` (rmcp's reading end). A line longer than `max`
    /// is dropped and logged; the session goes on.
    pub async fn pump(
        &self,
        out: FrameTx,
        mut read: impl AsyncBufRead + Unpin,
        mut rmcp: impl AsyncWrite + Unpin,
        max: usize,
        stop: CancellationToken,
    ) {
        let mut line = Vec::new();
        loop {
            let result = tokio::select! {
                r = wire::read_line(&mut read, &mut line, max) => r,
                () = stop.cancelled() => break,
            };
            match result {
                Ok(Line::Complete) => {}
                Ok(Line::TooLong) => {
                    tracing::error!(
                        session = self.id,
                        max_line_length = max,
                        "a client message exceeded the maximum line length; discarding it"
                    );
                    continue;
                }
                Ok(Line::Eof) | Err(_) => break,
            }
            if super::enabled() && self.take(&line, &out) {
                continue;
            }
            if rmcp.write_all(&line).await.is_err() {
                break;
            }
        }
        // Whatever is still in flight was this client's: cancel it upstream.
        let calls: Vec<_> = self.calls.lock().unwrap().drain().collect();
        for (_, (link, n)) in calls {
            if let Some(link) = link.upgrade() {
                link.cancel(n, "the client disconnected");
            }
        }
    }

    /// Takes `line` if the fast path serves it; answers go to `out`.
    pub fn take(&self, line: &[u8], out: &FrameTx) -> bool {
        if memchr::memmem::find(line, b"tools/call").is_some() {
            return self.call(line, out).is_some();
        }
        if memchr::memmem::find(line, b"tools/list").is_some() {
            return self.list_tools(line, out);
        }
        if memchr::memmem::find(line, b"notifications/cancelled").is_some() {
            return self.cancelled(line);
        }
        false
    }

    /// Forwards a `tools/call` if it can take the fast path (see the module docs) and returns
    /// its key in the call index. Its answer and progress go to `out`.
    pub fn call(&self, line: &[u8], out: &FrameTx) -> Option<Box<str>> {
        let envelope = Envelope::parse(line)?;
        let (Some("tools/call"), Some(id), Some(params)) =
            (envelope.method.as_deref(), envelope.id, envelope.params)
        else {
            return None;
        };
        let peer = self.initialized()?;
        let params = RawMembers::parse(params)?;
        let name = params
            .get("name")
            .and_then(|name| serde_json::from_str::<Cow<str>>(name.get()).ok())?;
        let key = wire::id_key(id)?;
        let progress_token = progress_token(&params);
        if params.get("task").is_some() {
            return None;
        }

        let table = self.gateway.table();
        let Some(Target::Backend { backend, original }) =
            table.catalog.tools.get(name.as_ref()).map(|e| &e.target)
        else {
            return None;
        };
        if !table.roles.allows(self.role.as_deref(), &name) {
            return None;
        }
        let caller = Caller {
            session: self.id,
            peer: peer.clone(),
            progress_token: None,
            last_progress: None,
            // Forwarded with the request's bytes.
            meta: None,
        };
        let instance = self.gateway.instance_for(backend, &caller);
        let link = instance.fast_link()?;
        let n = link.reserve();
        {
            let mut calls = self.calls.lock().unwrap();
            if calls.contains_key(&key) {
                // The client reused the id of a call in flight: rmcp answers that.
                return None;
            }
            calls.insert(key.clone(), (Arc::downgrade(&link), n));
        }
        let call = Call {
            out: out.clone(),
            key: key.clone(),
            progress_token,
            index: Arc::downgrade(&self.calls),
        };
        if link.send_call(n, &instance, caller, call, &params, original) {
            return Some(key);
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
    pub fn list_tools(&self, line: &[u8], out: &FrameTx) -> bool {
        #[derive(serde::Deserialize)]
        struct Params {
            cursor: Option<String>,
        }
        let Some(envelope) = Envelope::parse(line) else {
            return false;
        };
        let (Some("tools/list"), Some(id)) = (envelope.method.as_deref(), envelope.id) else {
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
        let table = self.gateway.table();
        if self.gateway.discovery_pending(&table) {
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
        self.gateway.mark_seen(self.id, &view, ListKind::Tools);
        let head = wire::response_head(&key);
        let _ = out.send(Frame::Spliced { head, body });
        true
    }

    /// Cancels a call forwarded here; a cancel of anything else is rmcp's.
    pub fn cancelled(&self, line: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Params<'a> {
            #[serde(rename = "requestId", borrow)]
            request_id: &'a RawValue,
        }
        let Some(envelope) = Envelope::parse(line) else {
            return false;
        };
        let (Some("notifications/cancelled"), Some(params)) =
            (envelope.method.as_deref(), envelope.params)
        else {
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

fn progress_token(params: &RawMembers) -> Option<serde_json::Value> {
    #[derive(serde::Deserialize)]
    struct Meta {
        #[serde(rename = "progressToken")]
        progress_token: Option<serde_json::Value>,
    }
    let meta = params.get("_meta")?;
    serde_json::from_str::<Meta>(meta.get())
        .ok()?
        .progress_token
}
