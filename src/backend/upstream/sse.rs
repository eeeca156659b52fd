//! The legacy HTTP+SSE client transport (protocol 2024-11-05), which rmcp 3 no longer has.
//!
//! `GET <url>` opens an event stream whose first `endpoint` event names where to POST; every
//! `message` event is one server message. It is bridged to rmcp as a pair of byte streams:
//! events become lines to read, lines written become POSTs.

use std::collections::BTreeMap;

use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream};

use super::Limits;

/// Opens the stream and waits for its endpoint. Returns (read side, write side) for rmcp.
pub(super) async fn connect(
    url: &str,
    headers: &BTreeMap<String, String>,
    limits: Limits,
) -> Result<(DuplexStream, DuplexStream), String> {
    let origin = reqwest::Url::parse(url)
        .map_err(|e| format!("bad url: {e}"))?
        .origin();
    // The configured headers (keys, tokens) go to the configured origin only: not through a
    // redirect elsewhere, nor to an endpoint the stream names elsewhere.
    let same_origin = origin.clone();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.url().origin() != same_origin {
                attempt.error("a redirect to another origin")
            } else if attempt.previous().len() >= 10 {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let mut get = client.get(url).header("Accept", "text/event-stream");
    for (name, value) in headers {
        get = get.header(name, value);
    }
    let response = get
        .send()
        .await
        .map_err(|e| format!("GET failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("GET answered {}", response.status()));
    }
    let base = response.url().clone();
    let mut events = EventStream::new(response.bytes_stream().boxed(), limits);
    let endpoint = loop {
        match events.next().await? {
            Some((event, data)) if event == "endpoint" => break data,
            Some(_) => continue,
            None => return Err("the event stream ended before naming its endpoint".into()),
        }
    };
    let endpoint = base
        .join(endpoint.trim())
        .map_err(|_| "the endpoint event is not a URL".to_string())?;
    if endpoint.origin() != origin {
        return Err(format!(
            "the event stream names an endpoint of another origin ({}): the configured headers \
             are sent to {} only",
            endpoint.origin().ascii_serialization(),
            origin.ascii_serialization()
        ));
    }

    let (ours_in, rmcp_reads) = tokio::io::duplex(64 * 1024);
    let (rmcp_writes, ours_out) = tokio::io::duplex(64 * 1024);
    tokio::spawn(pump_events(events, ours_in));
    tokio::spawn(pump_posts(client, endpoint, headers.clone(), ours_out));
    Ok((rmcp_reads, rmcp_writes))
}

/// Server → rmcp: each `message` event's data as one line.
async fn pump_events(mut events: EventStream, mut out: DuplexStream) {
    while let Ok(Some((event, data))) = events.next().await {
        if event != "message" {
            continue;
        }
        // JSON text has no raw newlines; strip any the data lines were split on.
        let line = data.replace('\n', "");
        if out.write_all(line.as_bytes()).await.is_err() || out.write_all(b"\n").await.is_err() {
            return;
        }
    }
    // Dropping `out` is end-of-stream for rmcp: the backend is gone.
}

/// rmcp → server: each line written is POSTed to the endpoint.
async fn pump_posts(
    client: reqwest::Client,
    endpoint: reqwest::Url,
    headers: BTreeMap<String, String>,
    input: DuplexStream,
) {
    let mut lines = BufReader::new(input).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut post = client
            .post(endpoint.clone())
            .header("Content-Type", "application/json")
            .body(line);
        for (name, value) in &headers {
            post = post.header(name, value);
        }
        match post.send().await {
            Ok(r) if r.status().is_success() => {}
            // Logged by origin only: the endpoint's query names the session.
            Ok(r) => {
                tracing::warn!(endpoint = %endpoint.origin().ascii_serialization(), status = %r.status(), "SSE backend refused a message")
            }
            Err(e) => {
                tracing::warn!(endpoint = %endpoint.origin().ascii_serialization(), "posting to the SSE backend failed: {}", e.without_url());
                return;
            }
        }
    }
}

/// A minimal `text/event-stream` reader: yields (event name, data) per dispatched event. An
/// event over `max_message` ends the stream (with the reason in the limits' fault) rather
/// than buffer without bound.
struct EventStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    parser: Parser,
    limits: Limits,
}

impl EventStream {
    fn new(
        body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        limits: Limits,
    ) -> Self {
        Self {
            body,
            parser: Parser::default(),
            limits,
        }
    }

    async fn next(&mut self) -> Result<Option<(String, String)>, String> {
        loop {
            let max = self.limits.max_message();
            match self.parser.next_event(max) {
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
                Err(OverLimit) => return Err(self.limits.exceeded(max)),
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.parser.feed(&chunk),
                Some(Err(e)) => return Err(format!("event stream broke: {}", e.without_url())),
                None => return Ok(None),
            }
        }
    }
}

/// What the server sent is over `max_message`.
#[derive(Debug, PartialEq)]
struct OverLimit;

/// The event-stream parser itself, without I/O: bytes in, events out.
///
/// Each byte is searched for a line end once: a server that sends a long line in many small
/// pieces (or never ends it) costs time in proportion to what it sent, not its square. The
/// line in progress plus the event's data so far is bounded by `max_message`.
#[derive(Default)]
struct Parser {
    buffer: Vec<u8>,
    /// Where the line in progress starts in `buffer` (what is before it was parsed).
    start: usize,
    /// How far `buffer` was searched for a line end: the next search starts there.
    scanned: usize,
    event: String,
    data: String,
    /// Bytes searched for a line end so far (a test hook: the search must be linear).
    #[cfg(test)]
    examined: usize,
}

impl Parser {
    fn feed(&mut self, chunk: &[u8]) {
        // Parsed lines go before the buffer grows: only the line in progress moves, and once
        // (it is at the front until it ends).
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        self.buffer.extend_from_slice(chunk);
    }

    /// The next event complete in what was fed, or None until more is fed. A line (ended or
    /// not) that with the event's data so far is over `max` is an error.
    fn next_event(&mut self, max: usize) -> Result<Option<(String, String)>, OverLimit> {
        loop {
            let found = memchr::memchr(b'\n', &self.buffer[self.scanned..]);
            #[cfg(test)]
            {
                self.examined += found.map_or(self.buffer.len() - self.scanned, |i| i + 1);
            }
            let end = match found {
                Some(i) => self.scanned + i,
                None => self.buffer.len(),
            };
            if end - self.start + self.data.len() > max {
                return Err(OverLimit);
            }
            if found.is_none() {
                self.scanned = end;
                return Ok(None);
            }
            let mut line = &self.buffer[self.start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            self.start = end + 1;
            self.scanned = self.start;
            if let Some(event) = self.field(&line) {
                return Ok(Some(event));
            }
        }
    }

    /// Applies one line; returns an event when the line ends one.
    fn field(&mut self, line: &str) -> Option<(String, String)> {
        if line.is_empty() {
            if self.data.is_empty() && self.event.is_empty() {
                return None;
            }
            let event = std::mem::take(&mut self.event);
            let data = std::mem::take(&mut self.data);
            let event = if event.is_empty() {
                "message".to_string()
            } else {
                event
            };
            return Some((event, data));
        }
        if line.starts_with(':') {
            return None;
        }
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match name {
            "event" => self.event = value.to_string(),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(bytes: usize) -> Limits {
        Limits {
            server: "remote".into(),
            max_message: std::sync::Arc::new(bytes.into()),
            fault: super::super::Fault::default(),
            stop: None,
        }
    }

    proptest::proptest! {
        /// Whatever a server streams, in whatever pieces: events or one error, never a panic,
        /// and no event's data longer than the limit.
        #[test]
        fn prop_any_event_stream_parses_within_its_limit(
            chunks in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::prelude::any::<u8>(),
                        proptest::sample::select(b"\r\n: data event message endpoint".to_vec()),
                    ],
                    0..300,
                ),
                0..12,
            ),
            limit in 16usize..2048,
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let chunks: Vec<reqwest::Result<bytes::Bytes>> =
                chunks.into_iter().map(|c| Ok(bytes::Bytes::from(c))).collect();
            let mut events = EventStream::new(futures::stream::iter(chunks).boxed(), limits(limit));
            runtime.block_on(async {
                while let Ok(Some((_, data))) = events.next().await {
                    proptest::prop_assert!(data.len() <= limit);
                }
                Ok(())
            })?;
        }
    }

    /// A server that sends one long event in small pieces costs time in proportion to its
    /// size: each piece is searched for a line end once, never the whole buffer again.
    #[test]
    fn a_long_event_in_small_chunks_is_searched_once() {
        const SIZE: usize = 8 << 20;
        let mut parser = Parser::default();
        let mut fed = 0;
        parser.feed(b"data: ");
        fed += 6;
        let chunk = [b'x'; 64];
        while fed < SIZE {
            parser.feed(&chunk);
            fed += chunk.len();
            assert_eq!(parser.next_event(SIZE * 2), Ok(None));
            assert!(
                parser.examined <= fed,
                "{} bytes searched for a line end after {fed} were fed",
                parser.examined
            );
        }
        parser.feed(b"\n\n");
        let (event, data) = parser.next_event(SIZE * 2).unwrap().unwrap();
        assert_eq!((event.as_str(), data.len()), ("message", fed - 6));
        assert!(parser.examined <= fed + 2, "{}", parser.examined);
    }

    /// A line with no end is refused as soon as it is over the limit: what is buffered stays
    /// within `max_message` and one piece.
    #[test]
    fn a_line_without_an_end_is_refused_at_the_limit() {
        let mut parser = Parser::default();
        let mut fed = 0;
        let outcome = loop {
            parser.feed(b"y");
            fed += 1;
            match parser.next_event(1024) {
                Ok(None) => assert!(fed <= 1024, "{fed} bytes buffered"),
                other => break other,
            }
        };
        assert_eq!((outcome, fed), (Err(OverLimit), 1025));
    }

    /// The limit is on one event, not on what one chunk carries: many small events arriving
    /// together, more than `max_message` in all, are all delivered.
    #[tokio::test]
    async fn small_events_arriving_together_are_not_over_the_limit() {
        let many = "data: {\"n\":1}\n\n".repeat(1000);
        let chunks: Vec<reqwest::Result<bytes::Bytes>> = vec![Ok(bytes::Bytes::from(many))];
        let mut events = EventStream::new(futures::stream::iter(chunks).boxed(), limits(1024));
        let mut count = 0;
        while let Some((_, data)) = events.next().await.unwrap() {
            assert_eq!(data, "{\"n\":1}");
            count += 1;
        }
        assert_eq!(count, 1000);
    }

    #[tokio::test]
    async fn an_event_over_max_message_ends_the_stream_and_says_why() {
        let big = format!("data: {}\n\n", "x".repeat(4096));
        let chunks: Vec<reqwest::Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(b"data: small\n\n")),
            Ok(bytes::Bytes::from(big)),
        ];
        let limits = limits(2048);
        let fault = limits.fault.clone();
        let mut events = EventStream::new(futures::stream::iter(chunks).boxed(), limits);
        assert_eq!(
            events.next().await.unwrap(),
            Some(("message".into(), "small".into()))
        );
        let error = events.next().await.unwrap_err();
        assert_eq!(error, "sent a message over max_message (2 KiB)");
        assert_eq!(fault.get(), Some(error.as_str()));
    }

    #[tokio::test]
    async fn parses_events_split_across_chunks() {
        let chunks: Vec<reqwest::Result<bytes::Bytes>> = vec![
            Ok(bytes::Bytes::from_static(
                b": ping\r\nevent: endpoint\r\ndata: /msg?x=1\r\n\r\n",
            )),
            Ok(bytes::Bytes::from_static(b"data: {\"a\":")),
            Ok(bytes::Bytes::from_static(
                b"1}\n\nevent: message\ndata: x\ndata: y\n\n",
            )),
        ];
        let mut events = EventStream::new(futures::stream::iter(chunks).boxed(), limits(1 << 20));
        assert_eq!(
            events.next().await.unwrap(),
            Some(("endpoint".into(), "/msg?x=1".into()))
        );
        assert_eq!(
            events.next().await.unwrap(),
            Some(("message".into(), "{\"a\":1}".into()))
        );
        assert_eq!(
            events.next().await.unwrap(),
            Some(("message".into(), "x\ny".into()))
        );
        assert_eq!(events.next().await.unwrap(), None);
    }
}
