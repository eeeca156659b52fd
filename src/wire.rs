//! Newline-delimited JSON-RPC below rmcp: reading lines, writing frames, and reading just the
//! envelope of a message.
//!
//! The byte path (`session::byte_path`, `backend::upstream::stdio`) reads every line of a session and of a stdio backend
//! itself, handles the few it owns, and hands the rest to rmcp unchanged. Writers are shared
//! the same way: one task per pipe writes whole frames from a queue that rmcp (through
//! [`LineSink`]) and the byte path both feed, so their messages never interleave mid-line.

use std::borrow::Cow;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;

/// One message to write: a whole line, or a line assembled from a head and a body borrowed
/// from a line read elsewhere (a backend's result, passed on without copying it).
pub enum Frame {
    Line(Vec<u8>),
    Spliced {
        head: Vec<u8>,
        body: Bytes,
    },
    /// A notification about a request still in flight (progress): on HTTP it goes on the
    /// request's stream ahead of the answer.
    Notification(Vec<u8>),
}

impl Frame {
    /// `value` as one line.
    pub fn json(value: &impl serde::Serialize) -> Self {
        Frame::Line(json_line(value))
    }

    fn len(&self) -> usize {
        match self {
            Frame::Line(line) | Frame::Notification(line) => line.len(),
            Frame::Spliced { head, body } => head.len() + body.len(),
        }
    }
}

/// How many bytes a [`frame_queue`] holds for its reader.
#[derive(Clone, Copy, Debug)]
pub struct Bound {
    /// Past this many bytes waiting, a frame is taken only while the reader keeps up: it took a
    /// frame (or had none to take) within `patience`.
    pub soft: usize,
    /// Past this, never.
    pub hard: usize,
    pub patience: std::time::Duration,
}

impl Bound {
    /// A queue that never holds more than `limit` bytes (besides one message of any size).
    pub const fn strict(limit: usize) -> Self {
        Self {
            soft: limit,
            hard: limit,
            patience: std::time::Duration::ZERO,
        }
    }
}

/// A queue of frames to one pipe, bounded by the bytes waiting in it: a peer that does not
/// read what it is sent cannot grow the daemon. A frame that would take the queue past its
/// bound (unless the queue is empty: one message of any size always fits) *overflows* it: the
/// frame is refused, the queue closes, and [`FrameTx::overflowed`] resolves, so that the
/// pipe's owner ends that peer alone. Between [`Bound::soft`] and [`Bound::hard`] the bound is
/// whether the reader keeps up, not the size: a client that reads while several large answers
/// arrive at once is not ended for it.
pub fn frame_queue(bound: Bound) -> (FrameTx, FrameRx) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = std::sync::Arc::new(Queued {
        bytes: std::sync::atomic::AtomicUsize::new(0),
        bound,
        epoch: std::time::Instant::now(),
        kept_up_ms: std::sync::atomic::AtomicU64::new(0),
        overflow: tokio_util::sync::CancellationToken::new(),
    });
    (
        FrameTx {
            tx,
            state: state.clone(),
        },
        FrameRx { rx, state },
    )
}

struct Queued {
    bytes: std::sync::atomic::AtomicUsize,
    bound: Bound,
    /// When the reader last took a frame or had none to take, in ms after `epoch`.
    epoch: std::time::Instant,
    kept_up_ms: std::sync::atomic::AtomicU64,
    overflow: tokio_util::sync::CancellationToken,
}

impl Queued {
    fn kept_up_now(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.kept_up_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether `len` more bytes, on top of `before`, are too many.
    fn too_many(&self, before: usize, len: usize) -> bool {
        let after = before + len;
        if before == 0 || after <= self.bound.soft {
            return false;
        }
        let kept_up = self.kept_up_ms.load(std::sync::atomic::Ordering::Relaxed);
        let behind = (self.epoch.elapsed().as_millis() as u64).saturating_sub(kept_up);
        after > self.bound.hard || behind > self.bound.patience.as_millis() as u64
    }
}

/// The sending side of a [`frame_queue`].
#[derive(Clone)]
pub struct FrameTx {
    tx: mpsc::UnboundedSender<Frame>,
    state: std::sync::Arc<Queued>,
}

/// The frame could not be queued: the writer is gone or the queue overflowed.
#[derive(Debug)]
pub struct Closed;

impl FrameTx {
    pub fn send(&self, frame: Frame) -> Result<(), Closed> {
        use std::sync::atomic::Ordering;
        if self.state.overflow.is_cancelled() {
            return Err(Closed);
        }
        let len = frame.len();
        let before = self.state.bytes.fetch_add(len, Ordering::SeqCst);
        if self.state.too_many(before, len) {
            self.state.bytes.fetch_sub(len, Ordering::SeqCst);
            self.state.overflow.cancel();
            return Err(Closed);
        }
        if before == 0 {
            // The reader had nothing to take: it is not behind.
            self.state.kept_up_now();
        }
        self.tx.send(frame).map_err(|_| {
            self.state.bytes.fetch_sub(len, Ordering::SeqCst);
            Closed
        })
    }

    /// A sender that does not keep the queue open.
    pub fn downgrade(&self) -> WeakFrameTx {
        WeakFrameTx {
            tx: self.tx.downgrade(),
            state: self.state.clone(),
        }
    }

    /// Resolves once the queue overflowed.
    pub async fn overflowed(&self) {
        self.state.overflow.cancelled().await;
    }

    /// Bytes waiting now, and the bound.
    pub fn queued(&self) -> (usize, Bound) {
        let bytes = self.state.bytes.load(std::sync::atomic::Ordering::SeqCst);
        (bytes, self.state.bound)
    }
}

/// A [`FrameTx`] that does not keep the queue open (the writer ends with the last strong one).
pub struct WeakFrameTx {
    tx: mpsc::WeakUnboundedSender<Frame>,
    state: std::sync::Arc<Queued>,
}

impl WeakFrameTx {
    pub fn upgrade(&self) -> Option<FrameTx> {
        Some(FrameTx {
            tx: self.tx.upgrade()?,
            state: self.state.clone(),
        })
    }
}

/// The receiving side of a [`frame_queue`]; taking a frame frees its bytes.
pub struct FrameRx {
    rx: mpsc::UnboundedReceiver<Frame>,
    state: std::sync::Arc<Queued>,
}

impl FrameRx {
    /// The next frame; `None` once every sender is gone or the queue overflowed.
    pub async fn recv(&mut self) -> Option<Frame> {
        let frame = tokio::select! {
            biased;
            () = self.state.overflow.cancelled() => None,
            frame = self.rx.recv() => frame,
        }?;
        self.taken(&frame);
        Some(frame)
    }

    fn try_recv(&mut self) -> Option<Frame> {
        if self.state.overflow.is_cancelled() {
            return None;
        }
        let frame = self.rx.try_recv().ok()?;
        self.taken(&frame);
        Some(frame)
    }

    fn taken(&self, frame: &Frame) {
        self.state
            .bytes
            .fetch_sub(frame.len(), std::sync::atomic::Ordering::SeqCst);
        self.state.kept_up_now();
    }
}

/// Whether `line` is one JSON value (or only white space, which rmcp skips), checked without
/// building anything.
pub fn is_json_or_blank(line: &[u8]) -> bool {
    line.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// `value` serialized, with its line end.
pub fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut line = serde_json::to_vec(value).unwrap_or_default();
    line.push(b'\n');
    line
}

/// Writes frames until every sender is gone or the pipe breaks, then shuts the pipe down (for
/// a backend: closes its stdin, the polite request to exit). Frames already queued are written
/// together and flushed once.
pub async fn write_frames<W: AsyncWrite + Unpin>(write: W, mut frames: FrameRx) {
    let mut out = BufWriter::with_capacity(64 * 1024, write);
    'outer: while let Some(frame) = frames.recv().await {
        let mut next = Some(frame);
        while let Some(frame) = next {
            let written = match &frame {
                Frame::Line(line) | Frame::Notification(line) => out.write_all(line).await,
                Frame::Spliced { head, body } => match out.write_all(head).await {
                    Ok(()) => out.write_all(body).await,
                    Err(e) => Err(e),
                },
            };
            if written.is_err() {
                break 'outer;
            }
            next = frames.try_recv();
        }
        if out.flush().await.is_err() {
            break;
        }
    }
    let _ = out.shutdown().await;
}

/// rmcp's writing end: collects what rmcp writes and queues each complete line as a frame.
pub struct LineSink {
    frames: FrameTx,
    partial: Vec<u8>,
    /// Once cancelled, the sink takes nothing more (rmcp is told the pipe is broken).
    closed: Option<tokio_util::sync::CancellationToken>,
}

impl LineSink {
    pub fn new(frames: FrameTx) -> Self {
        Self {
            frames,
            partial: Vec::new(),
            closed: None,
        }
    }

    /// A sink that takes nothing more once `closed` is cancelled.
    pub fn until(mut self, closed: tokio_util::sync::CancellationToken) -> Self {
        self.closed = Some(closed);
        self
    }
}

impl AsyncWrite for LineSink {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.closed.as_ref().is_some_and(|c| c.is_cancelled()) {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        let mut rest = buf;
        while let Some(end) = memchr::memchr(b'\n', rest) {
            let line = if this.partial.is_empty() {
                rest[..=end].to_vec()
            } else {
                this.partial.extend_from_slice(&rest[..=end]);
                std::mem::take(&mut this.partial)
            };
            if this.frames.send(Frame::Line(line)).is_err() {
                return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
            }
            rest = &rest[end + 1..];
        }
        this.partial.extend_from_slice(rest);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

pub enum Line {
    /// `buf` holds one line, with its `\n`.
    Complete,
    /// A line longer than the limit went by; it was dropped.
    TooLong,
    Eof,
}

/// Reads one line into `buf` (cleared first) without ever holding more than `max` bytes of it.
/// A last line without `\n` before EOF is dropped, as rmcp does.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    let mut too_long = false;
    loop {
        let available = read.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long { Line::TooLong } else { Line::Eof });
        }
        let newline = memchr::memchr(b'\n', available);
        let take = newline.map_or(available.len(), |i| i + 1);
        if !too_long {
            if buf.len().saturating_add(take) > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&available[..take]);
            }
        }
        read.consume(take);
        if newline.is_some() {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

/// Reads one line into `buf` (cleared first) whose content (without its `\n`) is at most `max`
/// bytes; a longer one ends the read at once with [`Line::TooLong`], the rest of it unread,
/// for a peer whose over-long line ends the connection (a backend: it may never send the `\n`
/// that [`read_line`] would wait for). A last line without `\n` before EOF is dropped.
pub async fn read_line_within<R: AsyncBufRead + Unpin>(
    read: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    buf.clear();
    loop {
        let available = read.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let newline = memchr::memchr(b'\n', available);
        let content = newline.unwrap_or(available.len());
        if buf.len().saturating_add(content) > max {
            buf.clear();
            return Ok(Line::TooLong);
        }
        let take = newline.map_or(available.len(), |i| i + 1);
        buf.extend_from_slice(&available[..take]);
        read.consume(take);
        if newline.is_some() {
            return Ok(Line::Complete);
        }
    }
}

/// The start of a response with the id `key` (canonical JSON), up to where its `,"result"` or
/// `,"error"` member goes.
pub fn response_head(key: &str) -> Vec<u8> {
    let mut head = Vec::with_capacity(24 + key.len());
    head.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
    head.extend_from_slice(key.as_bytes());
    head
}

/// The members of a JSON-RPC message that decide where it goes; the rest stays unparsed.
#[derive(Deserialize)]
pub struct Envelope<'a> {
    #[serde(borrow, default)]
    pub jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub error: Option<&'a RawValue>,
}

impl<'a> Envelope<'a> {
    /// The envelope of a JSON object; `None` for anything else. (serde would also read a
    /// struct from an array of its fields in order, which is no JSON-RPC message.)
    pub fn parse(line: &'a [u8]) -> Option<Self> {
        let first = line.iter().find(|b| !b.is_ascii_whitespace())?;
        if *first != b'{' {
            return None;
        }
        serde_json::from_slice(line).ok()
    }
}

/// A JSON object's members in order, values unparsed: rewrite one member, pass the others on
/// byte for byte.
pub struct RawMembers<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> RawMembers<'a> {
    pub fn parse(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawMembers<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Members<'a> {
            type Value = RawMembers<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut members = Vec::new();
                while let Some(entry) = map.next_entry::<Cow<'a, str>, &'a RawValue>()? {
                    members.push(entry);
                }
                Ok(RawMembers(members))
            }
        }
        deserializer.deserialize_map(Members(std::marker::PhantomData))
    }
}

/// Writes `"key":value` members as a JSON object into `out`.
pub fn write_object<'k>(out: &mut Vec<u8>, members: impl IntoIterator<Item = (&'k str, &'k str)>) {
    out.push(b'{');
    for (i, (key, value)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Keys came from a parsed object: re-escaping them cannot fail.
        serde_json::to_writer(&mut *out, key).expect("a string serializes");
        out.push(b':');
        out.extend_from_slice(value.as_bytes());
    }
    out.push(b'}');
}

/// A request id in one canonical spelling, so that `"a"` and `"\u0061"` are the same id.
pub fn id_key(raw: &RawValue) -> Option<Box<str>> {
    // Only ids the byte path can echo exactly as rmcp would: strings and integers within i64
    // (rmcp also reads `1e3` as 1000, answering with the canonical spelling; those, and
    // anything else, are left to it).
    let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    match &value {
        serde_json::Value::Number(n) if n.is_i64() => Some(value.to_string().into_boxed_str()),
        serde_json::Value::String(_) => Some(value.to_string().into_boxed_str()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_an_object_is_an_envelope() {
        let array = br#"["2.0", 5, "tools/call", {"name": "x"}]"#;
        assert!(super::Envelope::parse(array).is_none());
        let object = br#" {"jsonrpc":"2.0","id":5,"method":"tools/call","params":{}}"#;
        let envelope = super::Envelope::parse(object).unwrap();
        assert_eq!(envelope.method.as_deref(), Some("tools/call"));
    }

    use super::*;

    #[test]
    fn members_keep_order_and_raw_values() {
        let raw: &RawValue =
            serde_json::from_str(r#"{"name":"a\u0062","arguments":{"x": [1, 2]},"_meta":{}}"#)
                .unwrap();
        let members = RawMembers::parse(raw).unwrap();
        let keys: Vec<&str> = members.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["name", "arguments", "_meta"]);
        assert_eq!(members.get("arguments").unwrap().get(), r#"{"x": [1, 2]}"#);
        let mut out = Vec::new();
        write_object(
            &mut out,
            members.0.iter().map(|(k, v)| (k.as_ref(), v.get())),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"name":"a\u0062","arguments":{"x": [1, 2]},"_meta":{}}"#
        );
    }

    #[test]
    fn ids_are_canonical() {
        let a: &RawValue = serde_json::from_str(r#""\u0061""#).unwrap();
        let b: &RawValue = serde_json::from_str(r#""a""#).unwrap();
        assert_eq!(id_key(a), id_key(b));
        let n: &RawValue = serde_json::from_str("7").unwrap();
        assert_eq!(id_key(n).as_deref(), Some("7"));
        let null: &RawValue = serde_json::from_str("null").unwrap();
        assert_eq!(id_key(null), None);
        let float: &RawValue = serde_json::from_str("1e3").unwrap();
        assert_eq!(id_key(float), None);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_sinks_split_lines() {
        let data = b"short\nthis one is too long\nok\ntail".to_vec();
        let mut read = tokio::io::BufReader::with_capacity(4, &data[..]);
        let mut buf = Vec::new();
        assert!(matches!(
            read_line(&mut read, &mut buf, 8).await.unwrap(),
            Line::Complete
        ));
        assert_eq!(buf, b"short\n");
        assert!(matches!(
            read_line(&mut read, &mut buf, 8).await.unwrap(),
            Line::TooLong
        ));
        assert!(matches!(
            read_line(&mut read, &mut buf, 8).await.unwrap(),
            Line::Complete
        ));
        assert_eq!(buf, b"ok\n");
        assert!(matches!(
            read_line(&mut read, &mut buf, 8).await.unwrap(),
            Line::Eof
        ));

        // Within: the limit counts the content, not the `\n`; past it the read stops there.
        let data = b"12345\n123456789\nrest\n".to_vec();
        let mut read = tokio::io::BufReader::with_capacity(4, &data[..]);
        assert!(matches!(
            read_line_within(&mut read, &mut buf, 5).await.unwrap(),
            Line::Complete
        ));
        assert_eq!(buf, b"12345\n");
        assert!(matches!(
            read_line_within(&mut read, &mut buf, 5).await.unwrap(),
            Line::TooLong
        ));
        assert!(buf.is_empty());
        assert!(matches!(
            read_line_within(&mut read, &mut buf, 100).await.unwrap(),
            Line::Complete
        ));
        assert_eq!(
            buf, b"3456789\n",
            "the rest of the long line was left unread"
        );
        let mut unterminated = &b"no newline"[..];
        assert!(matches!(
            read_line_within(&mut unterminated, &mut buf, 100)
                .await
                .unwrap(),
            Line::Eof
        ));

        let (tx, mut rx) = frame_queue(Bound::strict(1024));
        let mut sink = LineSink::new(tx);
        sink.write_all(b"{\"a\":1}\n{\"b\"").await.unwrap();
        sink.write_all(b":2}\n").await.unwrap();
        let mut lines = Vec::new();
        while let Some(Frame::Line(line)) = rx.try_recv() {
            lines.push(String::from_utf8(line).unwrap());
        }
        assert_eq!(lines, ["{\"a\":1}\n", "{\"b\":2}\n"]);

        let closed = tokio_util::sync::CancellationToken::new();
        let (tx, mut rx) = frame_queue(Bound::strict(1024));
        let mut sink = LineSink::new(tx).until(closed.clone());
        sink.write_all(b"{\"a\":1}\n").await.unwrap();
        closed.cancel();
        assert!(sink.write_all(b"{\"b\":2}\n").await.is_err());
        assert!(rx.try_recv().is_some());
        assert!(rx.try_recv().is_none(), "nothing after the close");
    }

    #[test]
    fn a_frame_queue_is_bounded_in_bytes_but_takes_any_one_message() {
        let (tx, mut rx) = frame_queue(Bound::strict(10));
        tx.send(Frame::Line(vec![b'x'; 50])).unwrap();
        assert_eq!(tx.queued().0, 50);
        assert!(rx.try_recv().is_some());
        tx.send(Frame::Line(vec![b'x'; 6])).unwrap();
        assert!(
            tx.send(Frame::Line(vec![b'x'; 6])).is_err(),
            "past the bound"
        );
        assert!(
            tx.send(Frame::Line(vec![b'x'; 1])).is_err(),
            "overflowed: closed"
        );
        assert!(rx.try_recv().is_none());
    }

    #[test]
    fn past_its_soft_bound_a_frame_queue_takes_frames_while_its_reader_keeps_up() {
        let bound = Bound {
            soft: 10,
            hard: 30,
            patience: std::time::Duration::from_secs(3600),
        };
        let (tx, mut rx) = frame_queue(bound);
        for _ in 0..3 {
            tx.send(Frame::Line(vec![b'x'; 8])).unwrap();
        }
        assert!(rx.try_recv().is_some());
        tx.send(Frame::Line(vec![b'x'; 8])).unwrap();
        assert!(
            tx.send(Frame::Line(vec![b'x'; 8])).is_err(),
            "past the hard bound"
        );

        // A reader that has not taken anything for longer than the patience is behind.
        let bound = Bound {
            patience: std::time::Duration::ZERO,
            ..bound
        };
        let (tx, _rx) = frame_queue(bound);
        tx.send(Frame::Line(vec![b'x'; 8])).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(tx.send(Frame::Line(vec![b'x'; 8])).is_err(), "behind");
    }
}
