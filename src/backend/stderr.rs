//! A backend's stderr, drained into a bounded ring of its newest lines (for `status` and
//! `logs`).
//!
//! Servers write anything there: `\r` progress bars that never end a line (npx, tqdm),
//! megabytes without a newline, bytes that are not UTF-8. The drain must keep reading through
//! all of it (a backend whose stderr pipe fills or closes blocks or dies on its next write), and
//! must never hold more than one capped line in progress, however long the line.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Lines kept.
const LINES: usize = 200;
/// Bytes kept of one line; the rest of a longer line is dropped and the line marked with `…`.
const LINE_MAX: usize = 4096;
/// What one read takes from the pipe.
const READ_BUF: usize = 64 * 1024;

/// The newest lines a backend wrote to stderr, over all its instances.
#[derive(Debug, Default)]
pub struct StderrLog(Mutex<Ring>);

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<String>,
    /// Lines pushed so far, kept or not: where an instance's lines start.
    pushed: u64,
}

impl StderrLog {
    fn push(&self, line: String) {
        let mut ring = self.0.lock().unwrap();
        if ring.lines.len() == LINES {
            ring.lines.pop_front();
        }
        ring.lines.push_back(line);
        ring.pushed += 1;
    }

    pub fn tail(&self, n: usize) -> Vec<String> {
        let ring = self.0.lock().unwrap();
        ring.lines
            .iter()
            .skip(ring.lines.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// A mark for [`since`](Self::since): taken when an instance starts, it tells its lines
    /// from those of the instances before it.
    pub fn mark(&self) -> u64 {
        self.0.lock().unwrap().pushed
    }

    /// The newest `n` lines pushed after `mark` (fewer if fewer were, or were kept).
    pub fn since(&self, mark: u64, n: usize) -> Vec<String> {
        let ring = self.0.lock().unwrap();
        let new = usize::try_from(ring.pushed.saturating_sub(mark)).unwrap_or(usize::MAX);
        ring.lines
            .iter()
            .skip(ring.lines.len().saturating_sub(n.min(new)))
            .cloned()
            .collect()
    }
}

/// Reads `stderr` as bytes until it closes (not on the first bad byte: a drain that stops
/// leaves the backend to die of a full or broken pipe), keeping its lines in `log`.
pub async fn drain(mut stderr: impl AsyncRead + Unpin, log: &StderrLog) {
    let mut splitter = Splitter::default();
    let mut buf = vec![0; READ_BUF];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => splitter.feed(&buf[..n], |line| log.push(line)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    splitter.finish(|line| log.push(line));
}

/// Cuts a byte stream into lines of at most [`LINE_MAX`] bytes.
///
/// `\n` ends a line (`\r\n` too). A `\r` not followed by `\n` starts the line in progress over,
/// as on a terminal: a progress bar redrawn a thousand times becomes the one line it last showed
/// when it ends, instead of a thousand lines that push everything else out of the ring. A line
/// that reaches the cap is kept at once, cut and marked `…`, and the rest of it up to its `\n`
/// is dropped as it arrives.
#[derive(Default)]
struct Splitter {
    line: Vec<u8>,
    /// The current line was already kept (cut): drop bytes until its end.
    skipping: bool,
    /// The last byte was a `\r`: whether it ends a line or rewinds one depends on the next.
    after_cr: bool,
}

impl Splitter {
    fn feed(&mut self, mut bytes: &[u8], mut emit: impl FnMut(String)) {
        while let Some(&first) = bytes.first() {
            // Only text after a `\r` overwrites the line: `\r\n` ends it, `\r\r` is one `\r`.
            if std::mem::take(&mut self.after_cr) && first != b'\n' && first != b'\r' {
                self.rewind();
            }
            let end = memchr::memchr2(b'\n', b'\r', bytes).unwrap_or(bytes.len());
            self.take(&bytes[..end], &mut emit);
            match bytes.get(end) {
                Some(b'\n') => self.end_line(&mut emit),
                Some(_) => self.after_cr = true,
                None => {}
            }
            bytes = &bytes[(end + 1).min(bytes.len())..];
        }
    }

    /// The stream ended: a last line without `\n` is still a line.
    fn finish(&mut self, mut emit: impl FnMut(String)) {
        if !self.line.is_empty() {
            self.end_line(&mut emit);
        }
    }

    fn take(&mut self, bytes: &[u8], emit: &mut impl FnMut(String)) {
        if self.skipping {
            return;
        }
        let room = LINE_MAX - self.line.len();
        // Exactly full is not yet too long: only a further byte makes it so.
        if bytes.len() <= room {
            self.line.extend_from_slice(bytes);
            return;
        }
        self.line.extend_from_slice(&bytes[..room]);
        let kept = complete_chars(&self.line);
        let mut line = String::from_utf8_lossy(kept).into_owned();
        line.push('…');
        emit(line);
        self.line.clear();
        self.skipping = true;
    }

    fn end_line(&mut self, emit: &mut impl FnMut(String)) {
        if !std::mem::take(&mut self.skipping) {
            emit(String::from_utf8_lossy(&self.line).into_owned());
        }
        self.line.clear();
    }

    /// A bare `\r`: what follows overwrites the line in progress. A line already kept as cut
    /// stays kept; the bytes after the `\r` start a new one.
    fn rewind(&mut self) {
        self.line.clear();
        self.skipping = false;
    }
}

/// `bytes` without a last character the cap cut in half (it would show as `�`).
fn complete_chars(bytes: &[u8]) -> &[u8] {
    // The start of the last character: at most 3 continuation bytes back.
    let Some(start) = (bytes.len().saturating_sub(4)..bytes.len())
        .rev()
        .find(|&i| bytes[i] & 0xC0 != 0x80)
    else {
        return bytes;
    };
    let needed = match bytes[start] {
        b if b < 0x80 => 1,
        b if b >= 0xF0 => 4,
        b if b >= 0xE0 => 3,
        b if b >= 0xC0 => 2,
        _ => 1,
    };
    if bytes.len() - start < needed {
        &bytes[..start]
    } else {
        bytes
    }
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        /// Whatever a backend writes, in whatever pieces: the line in progress never passes the
        /// cap, and a kept line is at most the cap (each byte at most one U+FFFD) and its `…`.
        #[test]
        fn prop_stderr_lines_stay_bounded(
            chunks in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::prop_oneof![
                        proptest::prelude::any::<u8>(),
                        proptest::sample::select(b"\r\nx".to_vec()),
                    ],
                    0..2500,
                ),
                0..6,
            )
        ) {
            let mut splitter = Splitter::default();
            let mut lines = Vec::new();
            for chunk in &chunks {
                splitter.feed(chunk, |line| lines.push(line));
                proptest::prop_assert!(splitter.line.len() <= LINE_MAX);
            }
            splitter.finish(|line| lines.push(line));
            for line in &lines {
                proptest::prop_assert!(line.len() <= 3 * LINE_MAX + '…'.len_utf8());
            }
        }
    }

    use super::*;

    fn split(chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = Splitter::default();
        let mut lines = Vec::new();
        for chunk in chunks {
            splitter.feed(chunk, |line| lines.push(line));
        }
        splitter.finish(|line| lines.push(line));
        lines
    }

    #[test]
    fn lines_end_at_newlines_in_any_chunking() {
        assert_eq!(
            split(&[b"a\nbc\n", b"d", b"e\n\nf"]),
            ["a", "bc", "de", "", "f"]
        );
        assert_eq!(
            split(&[b"crlf\r\n", b"split\r", b"\nnext\n"]),
            ["crlf", "split", "next"]
        );
        assert_eq!(split(&[b"twice\r\r\n"]), ["twice"]);
    }

    #[test]
    fn a_carriage_return_starts_the_line_over() {
        assert_eq!(
            split(&[b"\r 10%\r 50%", b"\r100%\n", b"after\n"]),
            ["100%", "after"]
        );
        // A bar that never ends leaves its last state for the end of the stream.
        assert_eq!(split(&[b"1/3\r2/3\r", b"3/3"]), ["3/3"]);
    }

    #[test]
    fn a_long_line_is_cut_once_and_the_rest_dropped() {
        let long = vec![b'x'; LINE_MAX * 3];
        let lines = split(&[b"before\n", &long[..5000], &long[5000..], b"tail\nafter\n"]);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "before");
        assert_eq!(lines[1], format!("{}…", "x".repeat(LINE_MAX)));
        assert_eq!(lines[2], "after");
        // Exactly the cap is a whole line.
        let full = vec![b'y'; LINE_MAX];
        assert_eq!(split(&[&full, b"\n"]), ["y".repeat(LINE_MAX)]);
        // A `\r` after a cut line starts a new one.
        assert_eq!(split(&[&long, b"\rnew\n"]).last().unwrap(), "new");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        let mut line = vec![b'x'; LINE_MAX - 1];
        line.extend_from_slice("é and more".as_bytes());
        let lines = split(&[&line, b"\n"]);
        assert_eq!(lines, [format!("{}…", "x".repeat(LINE_MAX - 1))]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_lossily() {
        assert_eq!(
            split(&[b"bad \xff\xfe byte\n", b"ok\n"]),
            ["bad \u{fffd}\u{fffd} byte", "ok"]
        );
    }

    #[tokio::test]
    async fn an_instance_reads_only_its_own_lines_since_its_mark() {
        let log = StderrLog::default();
        drain(&b"old 1\nold 2\n"[..], &log).await;
        let mark = log.mark();
        assert!(log.since(mark, 10).is_empty());
        drain(&b"new 1\nnew 2\nnew 3\n"[..], &log).await;
        assert_eq!(log.since(mark, 10), ["new 1", "new 2", "new 3"]);
        assert_eq!(log.since(mark, 2), ["new 2", "new 3"]);
        assert_eq!(log.since(0, 10).len(), 5);
        // Past the ring's size, only what it kept.
        let input = "x\n".repeat(LINES + 5);
        drain(input.as_bytes(), &log).await;
        assert_eq!(log.since(0, usize::MAX).len(), LINES);
    }

    #[tokio::test]
    async fn the_drain_reads_through_everything_and_keeps_the_newest_lines() {
        let mut input = Vec::new();
        for i in 0..LINES + 10 {
            input.extend_from_slice(format!("line {i}\n").as_bytes());
        }
        input.extend_from_slice(b"\xff\n");
        input.extend_from_slice(&vec![b'z'; 1 << 20]);
        input.extend_from_slice(b"\nlast");
        let log = StderrLog::default();
        drain(&input[..], &log).await;
        let tail = log.tail(3);
        assert_eq!(tail[0], "\u{fffd}");
        assert_eq!(tail[1].len(), LINE_MAX + '…'.len_utf8());
        assert_eq!(tail[2], "last");
        assert_eq!(log.tail(1000).len(), LINES);
    }
}
