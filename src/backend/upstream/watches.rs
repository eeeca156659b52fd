//! Reading the result of one of rmcp's requests to a stdio server as written, for the members
//! rmcp's result types do not know (see `backend::listed`).
//!
//! A request that wants them takes a [`Watch`] before rmcp sends it, and registers rmcp's id
//! once sent. The reader offers each response line rmcp is about to get ([`Watches::offer`]):
//! a registered id's result is read for its unknown members (once, on the reader), which the
//! request takes after rmcp's answer. The id is found at the line's head (rmcp, Python) or tail
//! (TypeScript) without parsing; a line with it elsewhere is parsed only if small. A response
//! can come between the send and the registration only in theory, but then its line is kept
//! (at most [`MAX_UNCLAIMED`] bytes, while some watch is unregistered) and read on
//! registration.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rmcp::model::{NumberOrString, RequestId};

use crate::backend::listed::{Members, unknown_members_of_response};
use crate::wire::Envelope;

/// Bytes of responses to ids nobody registered kept while a watch is not registered yet.
const MAX_UNCLAIMED: usize = 4 * 1024 * 1024;

/// A line whose id is neither at its head nor its tail is parsed to find it only up to this
/// size (servers write ids at one end; this keeps a flood from costing parses).
const PARSE_FOR_ID_UP_TO: usize = 64 * 1024;

#[derive(Default)]
pub struct Watches(Mutex<State>);

#[derive(Default)]
struct State {
    /// Watches not registered yet (their request is being sent).
    unregistered: usize,
    /// Registered ids and the members their result's type knows.
    ids: HashMap<i64, &'static [&'static str]>,
    /// What came for registered ids: the unknown members, if any.
    found: HashMap<i64, Option<Members>>,
    /// Responses to ids not registered, while some watch is not.
    unclaimed: HashMap<i64, Bytes>,
    unclaimed_bytes: usize,
}

/// One request's interest in its result's unknown members; see the module docs.
pub struct Watch {
    watches: Arc<Watches>,
    known: &'static [&'static str],
    id: Option<i64>,
}

impl Watches {
    /// A watch for a request about to be sent whose result's type knows `known`.
    pub fn watch(self: &Arc<Self>, known: &'static [&'static str]) -> Watch {
        self.0.lock().unwrap().unregistered += 1;
        Watch {
            watches: self.clone(),
            known,
            id: None,
        }
    }

    /// A line the reader is about to hand to rmcp.
    pub fn offer(&self, line: &Bytes) {
        {
            let state = self.0.lock().unwrap();
            if state.ids.is_empty() && state.unregistered == 0 {
                return;
            }
        }
        let Some(id) = response_id(line) else {
            return;
        };
        let known = {
            let mut state = self.0.lock().unwrap();
            match state.ids.get(&id) {
                Some(known) => *known,
                None => {
                    if state.unregistered > 0 && state.unclaimed_bytes + line.len() <= MAX_UNCLAIMED
                    {
                        state.unclaimed_bytes += line.len();
                        state.unclaimed.insert(id, line.clone());
                    }
                    return;
                }
            }
        };
        let members = members_of(line, known);
        let mut state = self.0.lock().unwrap();
        if state.ids.contains_key(&id) {
            state.found.insert(id, members);
        }
    }
}

impl Watch {
    /// The request was sent as rmcp's request `id`.
    pub fn sent(&mut self, id: &RequestId) {
        let NumberOrString::Number(id) = id else {
            return;
        };
        let mut state = self.watches.0.lock().unwrap();
        state.unregistered -= 1;
        state.ids.insert(*id, self.known);
        self.id = Some(*id);
        let early = state.unclaimed.remove(id);
        if state.unregistered == 0 {
            state.unclaimed.clear();
            state.unclaimed_bytes = 0;
        }
        if let Some(line) = early {
            state.found.insert(*id, members_of(&line, self.known));
        }
    }

    /// The unknown members of the request's result, once rmcp has its answer.
    pub fn take(&self) -> Option<Members> {
        let id = self.id?;
        self.watches.0.lock().unwrap().found.remove(&id).flatten()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut state = self.watches.0.lock().unwrap();
        match self.id {
            Some(id) => {
                state.ids.remove(&id);
                state.found.remove(&id);
            }
            None => {
                state.unregistered -= 1;
                if state.unregistered == 0 {
                    state.unclaimed.clear();
                    state.unclaimed_bytes = 0;
                }
            }
        }
    }
}

/// The unknown members of the result in a response line.
fn members_of(line: &[u8], known: &[&str]) -> Option<Members> {
    unknown_members_of_response(line, known)
}

/// The numeric id of a response line (one with a `result`), found at its head
/// (`{"jsonrpc":"2.0","id":7,"result"…`), at its tail (`{"result":…,"id":7}`), or by parsing a
/// small one.
fn response_id(line: &[u8]) -> Option<i64> {
    if let Some(id) = written_response_id(line) {
        return Some(id);
    }
    if line.len() > PARSE_FOR_ID_UP_TO {
        return None;
    }
    let envelope = Envelope::parse(line)?;
    if envelope.method.is_some() || envelope.result.is_none() {
        return None;
    }
    envelope.id?.get().parse().ok()
}

/// The numeric id of a response line found where SDKs write it, at its head or tail, without
/// parsing (see [`response_id`]); `None` says nothing about other lines.
pub(super) fn written_response_id(line: &[u8]) -> Option<i64> {
    let digits = |bytes: &[u8]| -> Option<i64> {
        let text = std::str::from_utf8(bytes).ok()?;
        text.parse().ok()
    };
    if let Some(rest) = line.strip_prefix(b"{\"jsonrpc\":\"2.0\",\"id\":") {
        let end = rest
            .iter()
            .position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
        return rest[end..]
            .starts_with(b",\"result\":")
            .then(|| digits(&rest[..end]))
            .flatten();
    }
    let trimmed = line.trim_ascii_end();
    if let Some(rest) = trimmed.strip_suffix(b"}") {
        let start = rest
            .iter()
            .rposition(|b| !(b.is_ascii_digit() || *b == b'-'))
            .map_or(0, |p| p + 1);
        if rest[..start].ends_with(b",\"id\":") && line.starts_with(b"{\"result\":") {
            return digits(&rest[start..]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_ids_are_found_at_either_end_or_by_parsing_a_small_line() {
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Some(7)
        );
        assert_eq!(
            response_id(b"{\"result\":{\"x\":1},\"jsonrpc\":\"2.0\",\"id\":12}\n"),
            Some(12)
        );
        assert_eq!(
            response_id(br#"{"id":3,"jsonrpc":"2.0","result":{}}"#),
            Some(3)
        );
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":7,"error":{"code":1,"message":"x"}}"#),
            None
        );
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","method":"ping","id":4}"#),
            None
        );
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":"mcpgw:1","result":{}}"#),
            None
        );
    }

    #[test]
    fn only_registered_ids_are_read_and_nothing_outlives_its_watch() {
        let watches = Arc::new(Watches::default());
        let line = |id: i64| {
            Bytes::from(format!(
                r#"{{"jsonrpc":"2.0","id":{id},"result":{{"content":[],"x-new":{id}}}}}"#
            ))
        };
        // Nothing watches: nothing is kept.
        watches.offer(&line(1));
        assert!(watches.0.lock().unwrap().unclaimed.is_empty());

        let mut watch = watches.watch(&["content"]);
        // A response that beats the registration is kept, and read when it comes.
        watches.offer(&line(2));
        watches.offer(&line(9));
        watch.sent(&NumberOrString::Number(2));
        assert!(watches.0.lock().unwrap().unclaimed.is_empty());
        assert_eq!(watch.take().unwrap()["x-new"], 2);
        drop(watch);

        let mut watch = watches.watch(&["content"]);
        watch.sent(&NumberOrString::Number(3));
        watches.offer(&line(4));
        watches.offer(&line(3));
        assert_eq!(watch.take().unwrap()["x-new"], 3);
        drop(watch);
        let state = watches.0.lock().unwrap();
        assert!(state.ids.is_empty() && state.found.is_empty() && state.unclaimed.is_empty());
        assert_eq!(state.unregistered, 0);
    }
}
