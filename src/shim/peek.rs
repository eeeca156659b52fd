//! What the shim reads of a JSON-RPC line: its top-level `id`, its `method`, and whether it
//! answers (has a `result` or an `error`). Nothing else, and never by parsing the whole line.
//!
//! The members are walked from the line's start, skipping the values of other members, within
//! its first [`HEAD`] bytes; a line whose `id` comes after a value that does not end there (the
//! TypeScript and Python SDKs write `{"method":…,"params":{…},"jsonrpc":"2.0","id":7}`) is read
//! from its end instead: the `id` is taken when it is the object's last member. A line whose id
//! is neither (a big value before it and another member after it) is not tracked. Ids are kept
//! as JSON-RPC compares them: a number as its integer, a string by its decoded text.

/// How much of a line's start is walked.
pub const HEAD: usize = 4096;

/// How much of a line's end is read for a last-member id.
pub const TAIL: usize = 256;

/// What was found at the top level of one line.
#[derive(Debug, Default, PartialEq)]
pub struct Peek<'a> {
    pub id: Option<Id>,
    /// The method's raw text (between the quotes, escapes not decoded).
    pub method: Option<&'a [u8]>,
    /// The line's `result` or `error` member, if it has one: a response.
    pub answer: Option<Answer>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Result,
    Error,
}

impl Peek<'_> {
    /// The id of a response (a line that answers and names no method).
    pub fn response_id(&self) -> Option<&Id> {
        if self.answer.is_some() && self.method.is_none() {
            self.id.as_ref()
        } else {
            None
        }
    }
}

/// A line the client sent: its method and, for a request, its id.
pub fn client(line: &[u8]) -> Peek<'_> {
    peek(head(line), line, line.len() <= HEAD, false)
}

/// A line the daemon sent: the id of a response; for a request or notification only its method
/// (the walk stops there).
pub fn daemon(line: &[u8]) -> Peek<'_> {
    peek(head(line), line, line.len() <= HEAD, true)
}

/// A daemon line too long to be held, by its first [`HEAD`] bytes and its last bytes (at
/// least [`TAIL`] of them, or all).
pub fn daemon_cut<'a>(head: &'a [u8], tail: &[u8]) -> Peek<'a> {
    peek(head, tail, false, true)
}

/// The part of a line that is walked.
pub fn head(line: &[u8]) -> &[u8] {
    &line[..line.len().min(HEAD)]
}

/// Walks `window`, the line's head (`whole`: all of it), and reads `tail`, the line's end, for
/// an id it did not reach.
fn peek<'a>(window: &'a [u8], tail: &[u8], whole: bool, stop_at_method: bool) -> Peek<'a> {
    let mut found = Peek::default();
    let mut at = Cursor {
        bytes: window,
        at: 0,
        whole,
    };
    let mut closed = false;
    at.space();
    if at.eat(b'{') {
        loop {
            at.space();
            let Some(key) = at.string() else { break };
            at.space();
            if !at.eat(b':') {
                break;
            }
            at.space();
            let read = match key {
                b"id" => at.id().map(|id| found.id = id),
                b"method" => match at.string() {
                    Some(method) => {
                        found.method = Some(method);
                        Some(())
                    }
                    None => at.skip(),
                },
                b"result" | b"error" => {
                    found.answer = Some(if key == b"result" {
                        Answer::Result
                    } else {
                        Answer::Error
                    });
                    if found.id.is_some() {
                        break;
                    }
                    at.skip()
                }
                _ => at.skip(),
            };
            if read.is_none() {
                break;
            }
            if found.method.is_some() && (stop_at_method || found.id.is_some()) {
                break;
            }
            at.space();
            if at.eat(b',') {
                continue;
            }
            closed = at.eat(b'}');
            break;
        }
    }
    // A daemon line's id matters only in an answer; a client line's in any request, whatever
    // stands before its method.
    let wants_id = found.answer.is_some() || !stop_at_method;
    if found.id.is_none() && wants_id && !closed {
        found.id = last_member_id(tail);
    }
    found
}

/// The id when it is the last member of the line's object: `…,"id":7}` or `…,"id":"a"}`
/// (`line` may be only the line's end).
/// Sound for valid JSON: the last `}` closes the top-level object, so what stands right before
/// it is that object's last member.
pub fn last_member_id(line: &[u8]) -> Option<Id> {
    let tail = &line[line.len().saturating_sub(TAIL)..];
    let mut end = trim_end(tail, tail.len());
    end = end.checked_sub(1).filter(|&e| tail[e] == b'}')?;
    end = trim_end(tail, end);
    let (start, id) = if tail[..end].ends_with(b"\"") {
        // The opening quote: the nearest `"` before the closing one that is not escaped.
        let mut quote = end - 1;
        loop {
            quote = tail[..quote].iter().rposition(|&b| b == b'"')?;
            let slashes = tail[..quote]
                .iter()
                .rev()
                .take_while(|&&b| b == b'\\')
                .count();
            if slashes % 2 == 0 {
                break;
            }
        }
        (quote, Id::from_json_string(&tail[quote..end])?)
    } else {
        let start = tail[..end]
            .iter()
            .rposition(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
            .map_or(0, |p| p + 1);
        if start == end {
            return None;
        }
        (start, Id::from_number(&tail[start..end]))
    };
    end = trim_end(tail, start);
    end = end.checked_sub(1).filter(|&e| tail[e] == b':')?;
    end = trim_end(tail, end);
    end = end
        .checked_sub(4)
        .filter(|&e| &tail[e..e + 4] == b"\"id\"")?;
    end = trim_end(tail, end);
    let before = *tail.get(end.checked_sub(1)?)?;
    (before == b',' || before == b'{').then_some(id)
}

fn trim_end(bytes: &[u8], mut end: usize) -> usize {
    while end > 0 && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

/// A walk over the head of a line. Every reader returns `None` when the value does not end
/// within the window (or is not JSON): the walk stops there.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The window is the whole line: a scalar may end at its end.
    whole: bool,
}

impl<'a> Cursor<'a> {
    fn space(&mut self) {
        while self.bytes.get(self.at).is_some_and(u8::is_ascii_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.bytes.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// A string's raw text, between its quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        if !self.eat(b'"') {
            return None;
        }
        let start = self.at;
        while let Some(&byte) = self.bytes.get(self.at) {
            match byte {
                b'"' => {
                    self.at += 1;
                    return Some(&self.bytes[start..self.at - 1]);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
        None
    }

    /// A number, `true`, `false` or `null`: up to the next delimiter.
    fn scalar(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        while let Some(&byte) = self.bytes.get(self.at) {
            if matches!(byte, b',' | b'}' | b']') || byte.is_ascii_whitespace() {
                break;
            }
            self.at += 1;
        }
        let ended = self.at < self.bytes.len() || self.whole;
        (ended && self.at > start).then(|| &self.bytes[start..self.at])
    }

    /// Steps over one value of any kind.
    fn skip(&mut self) -> Option<()> {
        match self.bytes.get(self.at)? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let mut depth = 0usize;
                while let Some(&byte) = self.bytes.get(self.at) {
                    match byte {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.at += 1;
                                return Some(());
                            }
                        }
                        _ => {}
                    }
                    self.at += 1;
                }
                None
            }
            _ => self.scalar().map(drop),
        }
    }

    /// An id: `Some(None)` for `null` or a value no id can be.
    fn id(&mut self) -> Option<Option<Id>> {
        match self.bytes.get(self.at)? {
            b'"' => {
                let start = self.at;
                self.string()?;
                Some(Id::from_json_string(&self.bytes[start..self.at]))
            }
            b'-' | b'0'..=b'9' => self.scalar().map(|n| Some(Id::from_number(n))),
            _ => self.skip().map(|()| None),
        }
    }
}

/// A JSON-RPC request id, as the daemon compares it: a number by its integer value, a string
/// by its decoded text. Short ones (all a client makes in practice) are kept without an
/// allocation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Id {
    Num(i64),
    Str(Compact),
    /// A number that is no `i64` (a fraction, an exponent, a huge one), by its text.
    OtherNum(Compact),
}

impl Id {
    /// From a JSON string token, quotes included (escapes decoded, which is rare).
    fn from_json_string(token: &[u8]) -> Option<Self> {
        let raw = &token[1..token.len() - 1];
        if !raw.contains(&b'\\') {
            return Some(Id::Str(Compact::new(raw)));
        }
        let text: String = serde_json::from_slice(token).ok()?;
        Some(Id::Str(Compact::new(text.as_bytes())))
    }

    fn from_number(text: &[u8]) -> Self {
        std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<i64>().ok())
            .map_or_else(|| Id::OtherNum(Compact::new(text)), Id::Num)
    }

    /// From a parsed JSON value (a cancelled request's id, a subscription id).
    pub fn from_value(value: &serde_json::Value) -> Option<Self> {
        match value {
            serde_json::Value::String(s) => Some(Id::Str(Compact::new(s.as_bytes()))),
            serde_json::Value::Number(n) => Some(match n.as_i64() {
                Some(n) => Id::Num(n),
                None => Id::OtherNum(Compact::new(n.to_string().as_bytes())),
            }),
            _ => None,
        }
    }

    /// The id as JSON, to write it back to the client.
    pub fn to_json(&self) -> String {
        match self {
            Id::Num(n) => n.to_string(),
            Id::OtherNum(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
            Id::Str(text) => {
                serde_json::Value::from(String::from_utf8_lossy(text.as_bytes())).to_string()
            }
        }
    }
}

/// Bytes kept inline up to [`Compact::INLINE`], else on the heap. One value has one
/// representation, so the derived equality and hash are by content.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Compact {
    Inline(u8, [u8; Compact::INLINE]),
    Heap(Box<[u8]>),
}

impl Compact {
    /// A UUID (36) fits.
    pub const INLINE: usize = 38;

    pub fn new(bytes: &[u8]) -> Self {
        if bytes.len() <= Self::INLINE {
            let mut inline = [0; Self::INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Compact::Inline(bytes.len() as u8, inline)
        } else {
            Compact::Heap(bytes.into())
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Compact::Inline(len, bytes) => &bytes[..*len as usize],
            Compact::Heap(bytes) => bytes,
        }
    }
}

impl std::fmt::Debug for Compact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: i64) -> Option<Id> {
        Some(Id::Num(n))
    }

    fn text(s: &str) -> Option<Id> {
        Some(Id::Str(Compact::new(s.as_bytes())))
    }

    #[test]
    fn requests_in_every_sdks_member_order() {
        // rmcp: id first.
        let rmcp = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}"#;
        let p = client(rmcp);
        assert_eq!((p.id, p.method), (num(1), Some(&b"tools/call"[..])));
        // TypeScript and Python: method first, id last.
        let ts = br#"{"method":"initialize","params":{"protocolVersion":"2025-06-18"},"jsonrpc":"2.0","id":0}"#;
        let p = client(ts);
        assert_eq!((p.id, p.method), (num(0), Some(&b"initialize"[..])));
        // Spaces and a line end.
        let spaced = b"{ \"id\" : \"a-1\" , \"method\" : \"subscriptions/listen\" }\r\n";
        let p = client(spaced);
        assert_eq!(
            (p.id, p.method),
            (text("a-1"), Some(&b"subscriptions/listen"[..]))
        );
    }

    #[test]
    fn an_id_after_a_value_longer_than_the_head_is_read_from_the_end() {
        let big = "x".repeat(HEAD * 3);
        let line = format!(
            r#"{{"method":"tools/call","params":{{"arguments":{{"text":"{big}"}}}},"jsonrpc":"2.0","id":42}}"#
        );
        let p = client(line.as_bytes());
        assert_eq!((p.id, p.method), (num(42), Some(&b"tools/call"[..])));
        let answer = format!(r#"{{"result":{{"text":"{big}"}},"jsonrpc":"2.0","id":"q\"7"}}"#);
        assert_eq!(
            daemon(answer.as_bytes()).response_id().cloned(),
            text("q\"7")
        );
        // An id in the middle, after the big value, with a member after it: not found.
        let middle = format!(r#"{{"method":"x","params":"{big}","id":3,"jsonrpc":"2.0"}}"#);
        assert_eq!(client(middle.as_bytes()).id, None);
    }

    #[test]
    fn notifications_have_no_id() {
        let p = client(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
        assert_eq!(
            (p.id, p.method),
            (None, Some(&b"notifications/initialized"[..]))
        );
        // Not even one in a string that looks like a last member.
        let p = client(br#"{"method":"n","params":{"note":",\"id\":5}"}}"#);
        assert_eq!(p.id, None);
        let p = client(br#"{"method":"n","params":{"id":5}}"#);
        assert_eq!(p.id, None, "a nested id is not the message's");
    }

    #[test]
    fn daemon_lines_stop_at_the_method() {
        let request = br#"{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{}}"#;
        let p = daemon(request);
        assert_eq!(p.method, Some(&b"sampling/createMessage"[..]));
        assert_eq!(p.response_id(), None);
        let response = br#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#;
        assert_eq!(daemon(response).response_id(), num(3).as_ref());
        let error = br#"{"jsonrpc":"2.0","id":"s","error":{"code":-1,"message":"no"}}"#;
        assert_eq!(daemon(error).response_id(), text("s").as_ref());
    }

    #[test]
    fn ids_compare_as_json_rpc_does() {
        // An escaped string is its decoded text; -0 is 0; a number is not its string.
        let escaped = client(br#"{"id":"a\/b","method":"m"}"#).id;
        assert_eq!(escaped, text("a/b"));
        assert_eq!(client(br#"{"id":-0,"method":"m"}"#).id, num(0));
        assert_ne!(client(br#"{"id":"7","method":"m"}"#).id, num(7));
        let huge = client(br#"{"id":1e400,"method":"m"}"#).id;
        assert_eq!(huge, Some(Id::OtherNum(Compact::new(b"1e400"))));
        assert_eq!(client(br#"{"id":null,"method":"m"}"#).id, None);
        let long = "u".repeat(100);
        let line = format!(r#"{{"id":"{long}","method":"m"}}"#);
        assert_eq!(client(line.as_bytes()).id, text(&long));
        assert_eq!(
            Id::from_value(&serde_json::json!("a/b")),
            escaped,
            "a parsed id equals a peeked one"
        );
    }

    #[test]
    fn ids_are_written_back_as_json() {
        assert_eq!(Id::Num(-4).to_json(), "-4");
        assert_eq!(text("a\"b").unwrap().to_json(), r#""a\"b""#);
        assert_eq!(Id::OtherNum(Compact::new(b"1.5")).to_json(), "1.5");
    }

    #[test]
    fn junk_is_not_read() {
        for junk in [
            &b""[..],
            b"\n",
            b"[1,2]",
            b"not json",
            b"{\"id\":",
            b"{\"id\"",
            b"{\"method\":\"unterminated",
            b"}",
            b"\"id\":1}",
            b"{\"a\":[}}}}],\"id\":1}",
        ] {
            let p = client(junk);
            assert_eq!(p.method, None, "{junk:?}");
            let _ = daemon(junk);
        }
    }

    #[test]
    fn a_number_cut_by_the_window_is_not_taken() {
        let line = format!(
            r#"{{"method":"m","pad":"{}","id":12345}}"#,
            "p".repeat(HEAD - 30)
        );
        // The head ends inside the number; the end of the line has it whole.
        assert_eq!(client(line.as_bytes()).id, num(12345));
    }
}

#[cfg(test)]
mod props {
    use proptest::prelude::*;

    use super::*;

    /// Arbitrary bytes that often look like JSON-RPC: punctuation, keys, escapes.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let junk = || {
            prop::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    prop::sample::select(b"{}[]\":,\n\r\\ 0123456789-.eE".to_vec()),
                ],
                0..256,
            )
        };
        let piece = prop::sample::select(vec![
            &b"\"id\":"[..],
            b"\"method\":\"m\"",
            b"\"result\":",
            b"{\"id\":1,",
        ]);
        (junk(), piece, junk()).prop_map(|(mut head, piece, tail)| {
            head.extend_from_slice(piece);
            head.extend_from_slice(&tail);
            head
        })
    }

    /// A string with what makes scanning hard: quotes, escapes, braces, a fake id.
    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "\"", "\\", "{", "}", ",\"id\":5}", "é", " "]),
            0..16,
        )
        .prop_map(|parts| parts.concat())
    }

    fn id() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            any::<i64>().prop_map(serde_json::Value::from),
            text().prop_map(serde_json::Value::from),
            Just(serde_json::Value::Null),
        ]
    }

    proptest! {
        /// Any bytes are peeked without a panic, and a method found is text of the line.
        #[test]
        fn prop_peeks_of_any_bytes(data in bytes()) {
            for peeked in [client(&data), daemon(&data)] {
                if let Some(method) = peeked.method {
                    prop_assert!(data.windows(method.len()).any(|w| w == method));
                }
            }
        }

        /// In a JSON-RPC message with its members in any order and values of any size, the
        /// id peeked is the message's own (never one inside a value), and it is found when
        /// it stands within the head or last.
        #[test]
        fn prop_peeked_ids_are_the_messages_own(
            id in id(),
            note in text(),
            pad in 0usize..3 * HEAD,
            order in Just([0usize, 1, 2, 3]).prop_shuffle(),
            answer in any::<bool>(),
        ) {
            let mut params = serde_json::Map::new();
            params.insert("note".into(), note.into());
            params.insert("pad".into(), "x".repeat(pad).into());
            let params = serde_json::Value::Object(params);
            let members: [(&str, serde_json::Value); 4] = [
                ("jsonrpc", "2.0".into()),
                ("id", id.clone()),
                if answer { ("result", params.clone()) } else { ("method", "tools/call".into()) },
                if answer { ("n", 1.into()) } else { ("params", params) },
            ];
            let mut line = String::from("{");
            for (at, &which) in order.iter().enumerate() {
                let (key, value) = &members[which];
                if at > 0 {
                    line.push(',');
                }
                line.push_str(&format!("{}:{}", serde_json::Value::from(*key), value));
            }
            line.push_str("}\n");
            let truth = Id::from_value(&id);
            let peeked = if answer { daemon(line.as_bytes()) } else { client(line.as_bytes()) };
            if let Some(found) = &peeked.id {
                prop_assert_eq!(Some(found), truth.as_ref(), "{}", line);
            }
            let id_at = line.find("\"id\":").unwrap();
            let last = order[3] == 1;
            if truth.is_some() && (last || id_at + 64 < HEAD.min(line.find("\"pad\"").unwrap())) {
                prop_assert_eq!(peeked.id, truth, "{}", line);
            }
            let method_first = order.iter().position(|&m| m == 2) < order.iter().position(|&m| m == 3);
            if !answer && (method_first || pad + 256 < HEAD) {
                prop_assert_eq!(peeked.method, Some(&b"tools/call"[..]));
            }
        }
    }
}
