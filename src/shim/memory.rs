//! What the shim remembers of its client's session, so that a new daemon can take it over
//! when the old one goes away (a restart, an upgrade, a crash).
//!
//! Kept as bytes, exactly as the client sent them: the `initialize` request and the
//! `notifications/initialized` line (handshake era), and every open `subscriptions/listen`
//! request (2026-07-28) until its answer or its cancellation. Besides, the id and method of
//! each request in flight, so that the client gets an error for those the old daemon never
//! answered instead of waiting forever. Everything here is bounded.
//!
//! It reads lines only through [`super::peek`], and parses a whole line only for the client's
//! `notifications/cancelled` (a small line) and, after a reconnect, the new daemon's
//! acknowledgements of the replayed listens.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use super::peek::{self, Answer, Compact, Id};

/// Requests in flight remembered; past it the oldest is forgotten (and gets no error if the
/// daemon goes away: it is that old).
pub const MAX_IN_FLIGHT: usize = 4096;

/// Open `subscriptions/listen` requests kept for replay (the daemon's own cap per session);
/// more are tracked as plain requests in flight.
pub const MAX_LISTENS: usize = 256;

/// The largest line kept for replay. An `initialize` longer than this cannot be replayed, so a
/// restart ends the session as before; a longer listen is tracked as a plain request.
pub const MAX_KEPT_LINE: usize = 1 << 20;

/// Client lines parsed whole (`notifications/cancelled`) and daemon lines (acknowledgements)
/// are at most this long; a longer one is not read.
const MAX_PARSED_LINE: usize = 64 * 1024;

const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// What the relay does with a line from the daemon.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Relay,
    /// The client has had this one already (the answer to a replayed `initialize`).
    Drop,
    /// A replayed listen's new acknowledgement: the client has had one; these lines instead
    /// (list changes of the kinds it acknowledges, for the client to list again).
    Replace(Vec<u8>),
}

/// What a new daemon is sent before the client's own lines.
#[derive(Debug, Default, PartialEq)]
pub struct Replay {
    /// The client's `initialize`: its answer is awaited (and dropped) before `rest`.
    pub initialize: Option<Vec<u8>>,
    /// `notifications/initialized` and the open listens.
    pub rest: Vec<u8>,
}

#[derive(Default)]
pub struct Memory {
    handshake: Option<Handshake>,
    initialized: Option<Vec<u8>>,
    listens: Vec<(Id, Vec<u8>)>,
    in_flight: InFlight,
    /// The client's `initialize` was too long to keep: a restart cannot be hidden.
    unresumable: bool,
    /// The id of the replayed `initialize` whose answer is still to be dropped.
    replayed_initialize: Option<Id>,
    /// The new daemon answered the replayed `initialize` with this error.
    refused: Option<String>,
    /// Replayed listens whose new acknowledgement is still to be dropped.
    unacknowledged: Vec<Id>,
}

struct Handshake {
    line: Vec<u8>,
    id: Id,
    /// A result answered it: the client is initialized.
    done: bool,
}

impl Memory {
    /// Notes a line the client sends, before it goes to the daemon.
    pub fn client_line(&mut self, line: &[u8]) {
        let peeked = peek::client(line);
        let Some(method) = peeked.method else {
            // A request whose method comes after a value longer than the head.
            if let Some(id) = peeked.id
                && peeked.answer.is_none()
            {
                self.in_flight.insert(id, b"");
            }
            return;
        };
        match (method, peeked.id) {
            (b"initialize", Some(id)) => {
                if line.len() <= MAX_KEPT_LINE {
                    self.handshake = Some(Handshake {
                        line: line.to_vec(),
                        id: id.clone(),
                        done: false,
                    });
                } else {
                    self.unresumable = true;
                }
                self.initialized = None;
                self.in_flight.insert(id, method);
            }
            (b"notifications/initialized", None) if line.len() <= MAX_KEPT_LINE => {
                self.initialized = Some(line.to_vec());
            }
            (b"subscriptions/listen", Some(id))
                if self.listens.len() < MAX_LISTENS && line.len() <= MAX_KEPT_LINE =>
            {
                self.listens.retain(|(open, _)| *open != id);
                self.listens.push((id, line.to_vec()));
            }
            (b"notifications/cancelled", None) => {
                if let Some(id) = cancelled_request(line) {
                    self.listens.retain(|(open, _)| *open != id);
                    self.in_flight.remove(&id);
                }
            }
            (_, Some(id)) => self.in_flight.insert(id, method),
            (_, None) => {}
        }
    }

    /// Notes a line the daemon sends and says what to do with it.
    pub fn daemon_line(&mut self, line: &[u8]) -> Verdict {
        self.daemon(peek::daemon(line), Some(line))
    }

    /// Notes a line the daemon sent that was too long to hold (it is written already), by its
    /// head and its end.
    pub fn daemon_long_line(&mut self, head: &[u8], tail: &[u8]) {
        self.daemon(peek::daemon_cut(head, tail), None);
    }

    fn daemon(&mut self, peeked: peek::Peek<'_>, line: Option<&[u8]>) -> Verdict {
        if let Some(id) = peeked.response_id() {
            if self.replayed_initialize.as_ref() == Some(id) {
                self.replayed_initialize = None;
                if peeked.answer == Some(Answer::Error) {
                    self.refused = Some(line.map_or_else(|| "an error".into(), error_message));
                }
                return Verdict::Drop;
            }
            if let Some(handshake) = &mut self.handshake
                && handshake.id == *id
                && !handshake.done
            {
                handshake.done = peeked.answer == Some(Answer::Result);
            }
            self.in_flight.remove(id);
            if !self.listens.is_empty() {
                self.listens.retain(|(open, _)| open != id);
            }
            return Verdict::Relay;
        }
        if !self.unacknowledged.is_empty()
            && peeked.method == Some(b"notifications/subscriptions/acknowledged")
            && let Some((id, kinds)) = line.and_then(acknowledgement)
            && let Some(at) = self.unacknowledged.iter().position(|open| *open == id)
        {
            self.unacknowledged.swap_remove(at);
            return Verdict::Replace(list_changed(&kinds, Some(&id)));
        }
        Verdict::Relay
    }

    /// The daemon is gone: error responses for the requests it did not answer (the open
    /// listens excepted: they are replayed), which are forgotten. An `initialize` not yet
    /// answered is one of them, and the handshake is forgotten with it.
    pub fn lost(&mut self, reason: &str) -> Vec<u8> {
        if self.handshake.as_ref().is_some_and(|h| !h.done) {
            self.handshake = None;
            self.initialized = None;
        }
        self.replayed_initialize = None;
        self.refused = None;
        self.unacknowledged.clear();
        let mut lines = Vec::new();
        for (id, method) in self.in_flight.drain() {
            lines.extend_from_slice(&error_line(&id, &method, reason));
        }
        lines
    }

    /// Whether a restart can be hidden from the client.
    pub fn resumable(&self) -> bool {
        !self.unresumable
    }

    /// Whether the client finished the handshake (a 2026-07-28 client has none).
    pub fn initialized(&self) -> bool {
        self.handshake.as_ref().is_some_and(|h| h.done)
    }

    /// What to send a new daemon, and from now on which of its answers to drop.
    pub fn replay(&mut self) -> Replay {
        let mut replay = Replay::default();
        if let Some(handshake) = self.handshake.as_ref().filter(|h| h.done) {
            replay.initialize = Some(handshake.line.clone());
            self.replayed_initialize = Some(handshake.id.clone());
            if let Some(line) = &self.initialized {
                replay.rest.extend_from_slice(line);
            }
        }
        self.unacknowledged.clear();
        for (id, line) in &self.listens {
            replay.rest.extend_from_slice(line);
            self.unacknowledged.push(id.clone());
        }
        replay
    }

    /// The replayed `initialize` has not been answered yet.
    pub fn awaiting_initialize(&self) -> bool {
        self.replayed_initialize.is_some()
    }

    /// Why the new daemon refused the replayed `initialize` (the session cannot go on there).
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }
}

/// An error response's message, for the shim's stderr.
fn error_message(line: &[u8]) -> String {
    let parsed = (line.len() <= MAX_PARSED_LINE)
        .then(|| serde_json::from_slice::<serde_json::Value>(line).ok())
        .flatten();
    parsed
        .as_ref()
        .and_then(|v| v.get("error")?.get("message")?.as_str())
        .unwrap_or("an error")
        .to_string()
}

/// The list changes a client is told of after a restart (the new daemon's config may differ):
/// each kind, or the kinds a listen acknowledged (then with its subscription id).
pub fn list_changed(kinds: &[&str], subscription: Option<&Id>) -> Vec<u8> {
    let mut lines = Vec::new();
    for kind in kinds {
        let method = format!("notifications/{kind}/list_changed");
        let line = match subscription {
            None => serde_json::json!({"jsonrpc": "2.0", "method": method}),
            Some(id) => {
                let id: serde_json::Value = serde_json::from_str(&id.to_json()).unwrap_or_default();
                serde_json::json!({"jsonrpc": "2.0", "method": method,
                    "params": {"_meta": {SUBSCRIPTION_ID: id}}})
            }
        };
        lines.extend_from_slice(line.to_string().as_bytes());
        lines.push(b'\n');
    }
    lines
}

/// Every kind of list a handshake-era client may hold.
pub const ALL_LISTS: [&str; 3] = ["tools", "prompts", "resources"];

/// The error a request the daemon did not answer gets.
fn error_line(id: &Id, method: &Compact, reason: &str) -> Vec<u8> {
    let method = String::from_utf8_lossy(method.as_bytes());
    let request = if method.is_empty() {
        "this request".to_string()
    } else {
        format!("this {method} request")
    };
    error_frame(
        id,
        &format!("{reason} before answering {request}: it was not completed"),
    )
}

/// A whole JSON-RPC error line answering `id` with `message` (code -32000).
pub fn error_frame(id: &Id, message: &str) -> Vec<u8> {
    let mut line = format!(
        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32000,"message":{}}}}}"#,
        id.to_json(),
        serde_json::Value::from(message)
    )
    .into_bytes();
    line.push(b'\n');
    line
}

/// The request a `notifications/cancelled` names.
fn cancelled_request(line: &[u8]) -> Option<Id> {
    if line.len() > MAX_PARSED_LINE {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    Id::from_value(value.get("params")?.get("requestId")?)
}

/// A listen acknowledgement's subscription id and the list kinds it accepts.
fn acknowledgement(line: &[u8]) -> Option<(Id, Vec<&'static str>)> {
    if line.len() > MAX_PARSED_LINE {
        return None;
    }
    let value: serde_json::Value = serde_json::from_slice(line).ok()?;
    let params = value.get("params")?;
    let id = Id::from_value(params.get("_meta")?.get(SUBSCRIPTION_ID)?)?;
    let accepted = params.get("notifications");
    let kinds = ALL_LISTS
        .into_iter()
        .filter(|kind| {
            accepted
                .and_then(|a| a.get(format!("{kind}ListChanged")))
                .and_then(serde_json::Value::as_bool)
                == Some(true)
        })
        .collect();
    Some((id, kinds))
}

/// A multiply-and-rotate hash (as rustc's FxHasher): ids are few, and come from the client
/// the shim serves; SipHash's resistance to chosen keys buys nothing here.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(byte.into());
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn write_i64(&mut self, word: i64) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Requests in flight by id, oldest first, at most [`MAX_IN_FLIGHT`]. No allocation per
/// request once warm (ids and methods are inline), one hash lookup per request and answer.
#[derive(Default)]
struct InFlight {
    by_id: HashMap<Id, (u64, Compact), BuildHasherDefault<IdHasher>>,
    /// Insertion order; entries whose request was answered are skipped (and dropped from the
    /// front as they reach it).
    order: VecDeque<(u64, Id)>,
    next: u64,
}

impl InFlight {
    fn insert(&mut self, id: Id, method: &[u8]) {
        if self.by_id.len() >= MAX_IN_FLIGHT {
            while let Some((seq, old)) = self.order.pop_front() {
                if self.live(seq, &old) {
                    self.by_id.remove(&old);
                    break;
                }
            }
        }
        self.next += 1;
        self.by_id
            .insert(id.clone(), (self.next, Compact::new(method)));
        self.order.push_back((self.next, id));
        if self.order.len() > 2 * MAX_IN_FLIGHT {
            let by_id = &self.by_id;
            self.order
                .retain(|(seq, id)| by_id.get(id).is_some_and(|(s, _)| s == seq));
        }
    }

    fn remove(&mut self, id: &Id) {
        if self.by_id.remove(id).is_some() {
            while let Some((seq, front)) = self.order.front() {
                if self.live(*seq, front) {
                    break;
                }
                self.order.pop_front();
            }
        }
    }

    fn live(&self, seq: u64, id: &Id) -> bool {
        self.by_id.get(id).is_some_and(|(s, _)| *s == seq)
    }

    /// Every request in flight, oldest first; none is left.
    fn drain(&mut self) -> Vec<(Id, Compact)> {
        let mut all = Vec::with_capacity(self.by_id.len());
        for (seq, id) in self.order.drain(..) {
            if let Some((s, _)) = self.by_id.get(&id)
                && *s == seq
                && let Some((_, method)) = self.by_id.remove(&id)
            {
                all.push((id, method));
            }
        }
        self.by_id.clear();
        all
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_id.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REASON: &str = "the daemon restarted";

    fn line(value: serde_json::Value) -> Vec<u8> {
        let mut line = value.to_string().into_bytes();
        line.push(b'\n');
        line
    }

    fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    fn initialize(id: serde_json::Value) -> Vec<u8> {
        line(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}}}),
        )
    }

    fn initialized() -> Vec<u8> {
        line(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    }

    fn result(id: serde_json::Value) -> Vec<u8> {
        line(serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {}}))
    }

    fn call(id: serde_json::Value) -> Vec<u8> {
        // The TypeScript SDK's member order: the id last.
        line(
            serde_json::json!({"method": "tools/call", "params": {"name": "x"}})
                .as_object()
                .map(|m| {
                    let mut m = m.clone();
                    m.insert("jsonrpc".into(), "2.0".into());
                    m.insert("id".into(), id);
                    serde_json::Value::Object(m)
                })
                .unwrap(),
        )
    }

    fn listen(id: serde_json::Value) -> Vec<u8> {
        line(
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen",
            "params": {"notifications": {"toolsListChanged": true}}}),
        )
    }

    fn acknowledged(id: serde_json::Value) -> Vec<u8> {
        line(serde_json::json!({"jsonrpc": "2.0",
            "method": "notifications/subscriptions/acknowledged",
            "params": {"_meta": {SUBSCRIPTION_ID: id},
                "notifications": {"toolsListChanged": true, "promptsListChanged": false}}}))
    }

    #[test]
    fn a_handshake_is_replayed_and_its_new_answer_dropped() {
        let mut memory = Memory::default();
        memory.client_line(&initialize(0.into()));
        assert_eq!(memory.daemon_line(&result(0.into())), Verdict::Relay);
        memory.client_line(&initialized());
        assert!(memory.initialized());
        memory.client_line(&call(1.into()));
        assert_eq!(memory.daemon_line(&result(1.into())), Verdict::Relay);

        assert!(memory.lost(REASON).is_empty(), "nothing was in flight");
        let replay = memory.replay();
        assert_eq!(replay.initialize, Some(initialize(0.into())));
        assert_eq!(replay.rest, initialized());
        assert!(memory.awaiting_initialize());
        assert_eq!(memory.daemon_line(&result(0.into())), Verdict::Drop);
        assert!(!memory.awaiting_initialize());
        assert_eq!(memory.refused(), None);
        // A later answer with the same id is the client's.
        assert_eq!(memory.daemon_line(&result(0.into())), Verdict::Relay);
    }

    #[test]
    fn a_new_daemon_refusing_the_replayed_handshake_is_noted() {
        let mut memory = Memory::default();
        memory.client_line(&initialize(0.into()));
        memory.daemon_line(&result(0.into()));
        memory.lost(REASON);
        memory.replay();
        let refusal = line(serde_json::json!({"jsonrpc": "2.0", "id": 0,
            "error": {"code": -32602, "message": "unsupported protocol version"}}));
        assert_eq!(memory.daemon_line(&refusal), Verdict::Drop);
        assert_eq!(memory.refused(), Some("unsupported protocol version"));
    }

    #[test]
    fn requests_in_flight_get_an_error_and_are_forgotten() {
        let mut memory = Memory::default();
        memory.client_line(&initialize("init".into()));
        memory.daemon_line(&result("init".into()));
        for id in 1..=3 {
            memory.client_line(&call(id.into()));
        }
        memory.client_line(&call("s".into()));
        memory.daemon_line(&result(2.into()));
        // A cancelled request gets no answer, and no error either.
        memory.client_line(&line(serde_json::json!({"jsonrpc": "2.0",
            "method": "notifications/cancelled", "params": {"requestId": 3}})));
        let errors = lines(&memory.lost(REASON));
        let ids: Vec<_> = errors.iter().map(|e| e["id"].clone()).collect();
        assert_eq!(ids, [serde_json::json!(1), serde_json::json!("s")]);
        assert_eq!(errors[0]["error"]["code"], -32000);
        let message = errors[0]["error"]["message"].as_str().unwrap();
        assert!(
            message.contains(REASON) && message.contains("tools/call"),
            "{message}"
        );
        assert!(memory.lost(REASON).is_empty());
        assert!(memory.initialized(), "the handshake stays");
    }

    #[test]
    fn a_request_whose_method_is_past_the_head_is_tracked_by_its_id() {
        let mut memory = Memory::default();
        let big = "x".repeat(2 * peek::HEAD);
        let request = format!(
            r#"{{"params":{{"pad":"{big}"}},"method":"tools/call","jsonrpc":"2.0","id":5}}"#
        );
        memory.client_line(request.as_bytes());
        let errors = lines(&memory.lost(REASON));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["id"], 5);
        let message = errors[0]["error"]["message"].as_str().unwrap();
        assert!(message.contains("this request"), "{message}");
    }

    #[test]
    fn an_unanswered_initialize_is_failed_not_replayed() {
        let mut memory = Memory::default();
        memory.client_line(&initialize(0.into()));
        let errors = lines(&memory.lost(REASON));
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0]["id"], 0);
        assert_eq!(memory.replay(), Replay::default());
        // Nor one the daemon refused.
        memory.client_line(&initialize(1.into()));
        memory.daemon_line(&line(serde_json::json!({"jsonrpc": "2.0", "id": 1,
            "error": {"code": -32600, "message": "unknown role"}})));
        assert!(!memory.initialized());
        assert_eq!(memory.replay().initialize, None);
    }

    #[test]
    fn open_listens_are_replayed_and_their_new_acknowledgement_replaced() {
        let mut memory = Memory::default();
        memory.client_line(&listen(7.into()));
        memory.client_line(&listen("b".into()));
        memory.client_line(&listen(9.into()));
        assert_eq!(memory.daemon_line(&acknowledged(7.into())), Verdict::Relay);
        // One ends with its answer, one is cancelled.
        memory.daemon_line(&result(9.into()));
        memory.client_line(&line(serde_json::json!({"jsonrpc": "2.0",
            "method": "notifications/cancelled", "params": {"requestId": "b"}})));

        assert!(memory.lost(REASON).is_empty(), "a listen gets no error");
        let replay = memory.replay();
        assert_eq!(replay.initialize, None);
        assert_eq!(replay.rest, listen(7.into()));
        assert!(!memory.initialized());
        let Verdict::Replace(instead) = memory.daemon_line(&acknowledged(7.into())) else {
            panic!("the new acknowledgement is not relayed");
        };
        assert_eq!(
            lines(&instead),
            [
                serde_json::json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                "params": {"_meta": {SUBSCRIPTION_ID: 7}}})
            ]
        );
        // Only once.
        assert_eq!(memory.daemon_line(&acknowledged(7.into())), Verdict::Relay);
    }

    #[test]
    fn in_flight_is_bounded_oldest_forgotten_first() {
        let mut memory = Memory::default();
        for id in 0..(MAX_IN_FLIGHT as i64 + 10) {
            memory.client_line(&call(id.into()));
            if id % 2 == 1 {
                memory.daemon_line(&result((id - 1).into()));
            }
        }
        assert!(memory.in_flight.len() <= MAX_IN_FLIGHT);
        assert!(memory.in_flight.order.len() <= 2 * MAX_IN_FLIGHT + 1);
        let errors = lines(&memory.lost(REASON));
        assert_eq!(
            errors.last().unwrap()["id"],
            MAX_IN_FLIGHT as i64 + 9,
            "the newest is kept"
        );
        let mut full = Memory::default();
        for id in 0..(MAX_IN_FLIGHT as i64 + 10) {
            full.client_line(&call(id.into()));
        }
        let errors = lines(&full.lost(REASON));
        assert_eq!(errors.len(), MAX_IN_FLIGHT);
        assert_eq!(errors[0]["id"], 10, "the oldest went first");
    }

    #[test]
    fn a_too_long_initialize_makes_the_session_unresumable() {
        let mut memory = Memory::default();
        let pad = "p".repeat(MAX_KEPT_LINE);
        memory.client_line(&line(serde_json::json!({"jsonrpc": "2.0", "id": 0,
            "method": "initialize", "params": {"pad": pad}})));
        assert!(!memory.resumable());
    }

    #[test]
    fn list_changed_lines_are_whole_json_lines() {
        let all = list_changed(&ALL_LISTS, None);
        assert!(all.ends_with(b"\n"));
        let methods: Vec<_> = lines(&all)
            .iter()
            .map(|l| l["method"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            methods,
            [
                "notifications/tools/list_changed",
                "notifications/prompts/list_changed",
                "notifications/resources/list_changed"
            ]
        );
    }
}
