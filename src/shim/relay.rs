//! The two pumps, line by line, and what happens when the daemon goes away under them.
//!
//! A thread reads the client's stdin and writes whole lines to the daemon; this thread reads
//! the daemon and writes whole lines to stdout. Lines are found with std's `read_until`
//! (memchr) and written in batches: as many whole lines as have arrived, one write. A line is
//! written only once it is whole, so stdout never gets part of one, and the lines the shim
//! writes itself fall between the daemon's.
//!
//! When the daemon's connection ends while stdin is open, the shim answers the requests in
//! flight with an error, connects again (as at start, autostart included) within a bound,
//! replays what [`Memory`] kept, and goes on relaying; the client sees the restart only as
//! those errors and the list changes it is told of.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use super::Dialer;
use super::memory::{self, Memory, Verdict};
use super::peek;
use crate::ipc::{Connection, StreamRef};

/// Read size on both sides (and a batch of lines is written once it reaches it).
const CHUNK: usize = 64 * 1024;

/// A line buffer grown past this by a large message is given back once that line is out.
const KEEP: usize = 1 << 20;

/// A daemon line up to this long is held until its end before it is written, so stdout never
/// gets part of one. A longer one (an 8 MiB result) is written as it arrives, not to delay the
/// client by a copy of it: if the daemon goes away in its middle, the client has part of a
/// line, so the shim can write nothing more and ends as it did before it reconnected.
const HOLD: u64 = 1 << 20;

/// The error message's start for requests the daemon did not answer.
const GONE: &str = "the mcpgw daemon restarted or stopped";
/// The longest line taken from the client: the daemon's own limit (`MAX_CLIENT_MESSAGE`,
/// 64 MiB), which drops anything longer. A longer line is dropped here, up to its end, so
/// that a client that never ends a line cannot grow the shim.
const MAX_CLIENT_LINE: usize = 64 << 20;

/// How long the shim tries to reach a daemon again after one went away, unless
/// `MCPGW_RECONNECT_MS` says otherwise (0: not at all).
pub const RECONNECT: Duration = Duration::from_secs(30);
pub const RECONNECT_ENV: &str = "MCPGW_RECONNECT_MS";

/// A connection that ends sooner than this after the shim reconnected does not start a new
/// bound: a daemon that accepts and drops the session again and again is given up on.
const STABLE: Duration = Duration::from_secs(5);

/// The state both pumps share: the daemon's write side while there is one, and the memory of
/// the session. Held only for bookkeeping, never across I/O.
struct Shared {
    state: Mutex<State>,
    /// Signalled when a connection is installed.
    connected: Condvar,
}

struct State {
    /// `None` while reconnecting: the stdin pump waits.
    writer: Option<StreamRef>,
    /// Counts installed connections, so the stdin pump can wait for one newer than the one it
    /// saw fail.
    generation: u64,
    stdin_closed: bool,
    memory: Memory,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic on the other thread ends the process anyway; its state is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Relays until the client or the daemon is done; returns the exit code. Without a dialer (a
/// refused hello) the relay ends with the connection and returns `ended`.
pub fn run(conn: Connection, dialer: Option<&Dialer>, ended: i32) -> i32 {
    let Connection { reader, writer } = conn;
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            writer: Some(writer),
            generation: 0,
            stdin_closed: false,
            memory: Memory::default(),
        }),
        connected: Condvar::new(),
    });
    {
        let shared = shared.clone();
        thread::spawn(move || pump_stdin(&shared));
    }
    let mut out = Output {
        stdout: io::stdout().lock(),
        lines: Vec::with_capacity(CHUNK),
    };
    let mut reader = BufReader::with_capacity(CHUNK, reader);
    let mut episode: Option<Episode> = None;
    loop {
        let connected = Instant::now();
        match pump_daemon(&shared, &mut reader, &mut out, false) {
            // The client stopped reading: nothing left to do for it.
            Pumped::ClientGone => return 0,
            Pumped::Cut => {
                eprintln!(
                    "mcpgw-shim: the daemon closed the connection in the middle of a message"
                );
                return 1;
            }
            Pumped::Closed | Pumped::Initialized => {}
        }
        let Some(dialer) = dialer else {
            return ended;
        };
        let (errors, stdin_closed, resumable) = {
            let mut state = shared.lock();
            state.writer = None;
            let errors = state.memory.lost(GONE);
            (errors, state.stdin_closed, state.memory.resumable())
        };
        if !out.write_now(&errors) {
            return 0;
        }
        if stdin_closed {
            return 0;
        }
        let bound = reconnect_bound();
        if bound.is_zero() || !resumable {
            eprintln!("mcpgw-shim: the daemon closed the connection");
            return 1;
        }
        let mut retry = match episode.take() {
            Some(episode) if connected.elapsed() < STABLE => episode,
            _ => Episode::new(bound),
        };
        match resume(&shared, dialer, &mut retry, &mut out) {
            Resumed::Reading(next) => reader = next,
            Resumed::Done(code) => return code,
        }
        episode = Some(retry);
    }
}

/// One stretch of reconnecting: its deadline and backoff.
struct Episode {
    started: Instant,
    deadline: Instant,
    pause: Duration,
    dials: u32,
}

impl Episode {
    fn new(bound: Duration) -> Self {
        let started = Instant::now();
        Self {
            started,
            deadline: started + bound,
            pause: Duration::from_millis(50),
            dials: 0,
        }
    }

    /// Waits before the next dial (not before the first); false once the deadline passed.
    fn wait(&mut self) -> bool {
        if self.dials > 0 {
            let now = Instant::now();
            if now >= self.deadline {
                return false;
            }
            thread::sleep(self.pause.min(self.deadline - now));
            self.pause = (self.pause * 2).min(Duration::from_secs(1));
        }
        self.dials += 1;
        true
    }
}

fn reconnect_bound() -> Duration {
    std::env::var(RECONNECT_ENV)
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(RECONNECT, Duration::from_millis)
}

/// The daemon's read side: `ipc`'s reader (which may hold bytes after the hello reply) read
/// in larger chunks.
type Reader = BufReader<BufReader<StreamRef>>;

enum Resumed {
    Reading(Reader),
    Done(i32),
}

/// Connects again until the episode's deadline, replays the session and installs the
/// connection.
fn resume(shared: &Shared, dialer: &Dialer, episode: &mut Episode, out: &mut Stdout) -> Resumed {
    let mut last = String::from("no daemon answered");
    while episode.wait() {
        if shared.lock().stdin_closed {
            return Resumed::Done(0);
        }
        last = match dialer.dial() {
            Ok(conn) => match replay(shared, conn, out) {
                Replayed::Reading(reader) => return Resumed::Reading(reader),
                Replayed::ClientGone => return Resumed::Done(0),
                Replayed::Fatal(why) => {
                    eprintln!("mcpgw-shim: {why}");
                    return Resumed::Done(1);
                }
                Replayed::Lost => {
                    let errors = shared.lock().memory.lost(GONE);
                    if !out.write_now(&errors) {
                        return Resumed::Done(0);
                    }
                    "the new daemon closed the connection while the session was replayed".into()
                }
            },
            Err(failure) if !failure.retry => {
                eprintln!(
                    "mcpgw-shim: the daemon closed the connection; {}",
                    failure.message
                );
                return Resumed::Done(1);
            }
            Err(failure) => failure.message,
        };
    }
    eprintln!(
        "mcpgw-shim: the daemon closed the connection and none answered again within {:.1}s: \
         {last}",
        episode.started.elapsed().as_secs_f64()
    );
    Resumed::Done(1)
}

enum Replayed {
    Reading(Reader),
    ClientGone,
    Lost,
    /// The session cannot go on (the new daemon refused the replayed `initialize`): why.
    Fatal(String),
}

/// Sends a new daemon the session the client has (its `initialize`, whose answer is awaited
/// and dropped, then `notifications/initialized` and its open listens), installs it for the
/// stdin pump and tells a handshake-era client its lists may have changed.
fn replay(shared: &Shared, conn: Connection, out: &mut Stdout) -> Replayed {
    let Connection { reader, mut writer } = conn;
    let mut reader = BufReader::with_capacity(CHUNK, reader);
    let replay = shared.lock().memory.replay();
    if let Some(initialize) = &replay.initialize {
        if writer.write_all(initialize).is_err() {
            return Replayed::Lost;
        }
        match pump_daemon(shared, &mut reader, out, true) {
            Pumped::Initialized => {}
            Pumped::ClientGone => return Replayed::ClientGone,
            Pumped::Closed => return Replayed::Lost,
            Pumped::Cut => {
                return Replayed::Fatal(
                    "the daemon closed the connection in the middle of a message".into(),
                );
            }
        }
        if let Some(why) = shared.lock().memory.refused() {
            return Replayed::Fatal(format!(
                "the daemon closed the connection, and the new one refused the session's \
                 initialize: {why}"
            ));
        }
    }
    if writer.write_all(&replay.rest).is_err() {
        return Replayed::Lost;
    }
    let initialized = {
        let mut state = shared.lock();
        if state.stdin_closed {
            // The client is done: let the daemon finish, as the stdin pump does at its end.
            writer.shutdown_write();
        }
        state.writer = Some(writer);
        state.generation += 1;
        shared.connected.notify_all();
        state.memory.initialized()
    };
    if initialized && !out.write_now(&memory::list_changed(&memory::ALL_LISTS, None)) {
        return Replayed::ClientGone;
    }
    Replayed::Reading(reader)
}

/// Where stdout's lines gather until they are written.
type Stdout = Output<io::StdoutLock<'static>>;

struct Output<W> {
    stdout: W,
    lines: Vec<u8>,
}

impl<W: Write> Output<W> {
    /// Writes the whole lines gathered so far; false if the client stopped reading.
    fn flush(&mut self) -> bool {
        if self.lines.is_empty() {
            return true;
        }
        let written = self
            .stdout
            .write_all(&self.lines)
            .and_then(|()| self.stdout.flush())
            .is_ok();
        self.lines.clear();
        if self.lines.capacity() > KEEP {
            self.lines = Vec::with_capacity(CHUNK);
        }
        written
    }

    /// Writes the shim's own whole lines after those gathered.
    fn write_now(&mut self, lines: &[u8]) -> bool {
        self.lines.extend_from_slice(lines);
        self.flush()
    }
}

#[derive(PartialEq)]
enum Pumped {
    /// The daemon's connection ended (a line it cut short is dropped, never written).
    Closed,
    /// The daemon's connection ended in the middle of a line longer than [`HOLD`], part of
    /// which is written: nothing can follow it.
    Cut,
    /// The client stopped reading stdout.
    ClientGone,
    /// The replayed `initialize` was answered (only when asked to stop there).
    Initialized,
}

/// Daemon → stdout, whole lines only, until the connection ends (or, with
/// `until_initialized`, until the replayed `initialize` is answered). A line longer than
/// [`HOLD`] is the exception: it is written as it arrives.
fn pump_daemon<R: Read, W: Write>(
    shared: &Shared,
    reader: &mut BufReader<R>,
    out: &mut Output<W>,
    until_initialized: bool,
) -> Pumped {
    loop {
        // Nothing more to read right now: hand over what is whole before blocking.
        if (reader.buffer().is_empty() || out.lines.len() >= CHUNK) && !out.flush() {
            return Pumped::ClientGone;
        }
        let start = out.lines.len();
        match (&mut *reader).take(HOLD).read_until(b'\n', &mut out.lines) {
            Ok(_) if out.lines[start..].ends_with(b"\n") => {}
            Ok(read) if read as u64 == HOLD => match pass_long_line(shared, reader, out, start) {
                Pumped::Closed => continue,
                ended => return ended,
            },
            _ => {
                out.lines.truncate(start);
                return if out.flush() {
                    Pumped::Closed
                } else {
                    Pumped::ClientGone
                };
            }
        }
        let (verdict, awaiting) = {
            let mut state = shared.lock();
            let verdict = state.memory.daemon_line(&out.lines[start..]);
            (verdict, state.memory.awaiting_initialize())
        };
        match verdict {
            Verdict::Relay => {}
            Verdict::Drop => out.lines.truncate(start),
            Verdict::Replace(lines) => {
                out.lines.truncate(start);
                out.lines.extend_from_slice(&lines);
            }
        }
        if until_initialized && !awaiting {
            return if out.flush() {
                Pumped::Initialized
            } else {
                Pumped::ClientGone
            };
        }
    }
}

/// Writes a line longer than [`HOLD`] whose first [`HOLD`] bytes are at `start` in the
/// batch: those at once, the rest as it arrives (straight from the read buffer, until the
/// chunk holding its end), then notes it by its head and its end. `Closed` means the line is
/// done and relaying goes on.
fn pass_long_line<R: Read, W: Write>(
    shared: &Shared,
    reader: &mut BufReader<R>,
    out: &mut Output<W>,
    start: usize,
) -> Pumped {
    let head = peek::head(&out.lines[start..]).to_vec();
    let mut tail = Tail::default();
    tail.push(&out.lines[start..]);
    if !out.flush() {
        return Pumped::ClientGone;
    }
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) | Err(_) => return Pumped::Cut,
            Ok(chunk) => chunk,
        };
        if chunk.contains(&b'\n') {
            break;
        }
        let n = chunk.len();
        tail.push(chunk);
        if out.stdout.write_all(chunk).is_err() {
            return Pumped::ClientGone;
        }
        reader.consume(n);
    }
    // The line's end is in the buffer: it goes out with the lines after it.
    if reader.read_until(b'\n', &mut out.lines).is_err() {
        return Pumped::Cut;
    }
    tail.push(&out.lines);
    shared.lock().memory.daemon_long_line(&head, &tail.0);
    Pumped::Closed
}

/// The last [`peek::TAIL`] bytes seen of a line (up to twice that, between trims).
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        let bytes = &bytes[bytes.len().saturating_sub(peek::TAIL)..];
        self.0.extend_from_slice(bytes);
        if self.0.len() > 2 * peek::TAIL {
            self.0.drain(..self.0.len() - peek::TAIL);
        }
    }
}

/// Stdin → daemon, whole lines, each noted in the session's memory before it is sent. While
/// the shim reconnects it waits; a line that could not be sent is not sent again (a request
/// among them is in flight, and gets its error).
fn pump_stdin(shared: &Shared) {
    let mut input = BufReader::with_capacity(CHUNK, io::stdin().lock());
    let mut batch = Vec::with_capacity(CHUNK);
    let mut ends = Vec::new();
    let mut failed = None;
    loop {
        batch.clear();
        ends.clear();
        let eof = loop {
            let start = batch.len();
            match (&mut input)
                .take(MAX_CLIENT_LINE as u64 + 1)
                .read_until(b'\n', &mut batch)
            {
                Ok(0) | Err(_) => break true,
                Ok(n) if n > MAX_CLIENT_LINE => {
                    batch.truncate(start);
                    eprintln!(
                        "mcpgw-shim: dropped a message over {} MiB from the client",
                        MAX_CLIENT_LINE >> 20
                    );
                    if !skip_line(&mut input) {
                        break true;
                    }
                }
                Ok(_) => ends.push(batch.len()),
            }
            // Gather what has arrived whole; never wait for more while holding some.
            if batch.len() >= CHUNK || !input.buffer().contains(&b'\n') {
                break false;
            }
        };
        if !batch.is_empty() {
            let (writer, generation) = {
                let mut state = shared.lock();
                while state.writer.is_none() || failed == Some(state.generation) {
                    state = shared
                        .connected
                        .wait(state)
                        .unwrap_or_else(|e| e.into_inner());
                }
                let mut start = 0;
                for &end in &ends {
                    state.memory.client_line(&batch[start..end]);
                    start = end;
                }
                (state.writer.clone(), state.generation)
            };
            if let Some(mut writer) = writer
                && writer.write_all(&batch).is_err()
            {
                // Wait for a newer connection; make sure the reader sees this one end.
                failed = Some(generation);
                writer.shutdown();
            }
            if batch.capacity() > KEEP {
                batch = Vec::with_capacity(CHUNK);
            }
        }
        if eof {
            let mut state = shared.lock();
            state.stdin_closed = true;
            // The client is done: let the daemon finish and close its side, which ends the
            // relay.
            if let Some(writer) = &state.writer {
                writer.shutdown_write();
            }
            return;
        }
    }
}

/// Reads and forgets the rest of a line, in bounded pieces; false at the input's end.
fn skip_line(input: &mut impl BufRead) -> bool {
    loop {
        let (done, used) = match input.fill_buf() {
            Ok([]) | Err(_) => return false,
            Ok(buffer) => match buffer.iter().position(|&b| b == b'\n') {
                Some(at) => (true, at + 1),
                None => (false, buffer.len()),
            },
        };
        input.consume(used);
        if done {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skipped_line_ends_at_its_newline() {
        let mut input = io::Cursor::new(b"xxxxxxxx\nnext\n".to_vec());
        assert!(skip_line(&mut input));
        let mut rest = String::new();
        input.read_line(&mut rest).unwrap();
        assert_eq!(rest, "next\n");
        assert!(!skip_line(&mut io::Cursor::new(b"no end".to_vec())));
    }

    fn shared() -> Shared {
        Shared {
            state: Mutex::new(State {
                writer: None,
                generation: 0,
                stdin_closed: false,
                memory: Memory::default(),
            }),
            connected: Condvar::new(),
        }
    }

    fn answer(id: u32, text: &str) -> Vec<u8> {
        format!("{{\"jsonrpc\":\"2.0\",\"id\":{id},\"result\":{{\"text\":\"{text}\"}}}}\n")
            .into_bytes()
    }

    /// Relays `input` (read `capacity` bytes at a time) as the daemon's lines, after the client
    /// sent `requests`; returns stdout, how the pump ended and the errors owed when it did.
    fn relay(requests: &[u32], input: &[u8], capacity: usize) -> (Vec<u8>, Pumped, Vec<u8>) {
        let shared = shared();
        for id in requests {
            let call = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call"}}"#);
            shared.lock().memory.client_line(call.as_bytes());
        }
        let mut reader = BufReader::with_capacity(capacity, input);
        let mut out = Output {
            stdout: Vec::new(),
            lines: Vec::new(),
        };
        let ended = pump_daemon(&shared, &mut reader, &mut out, false);
        let owed = shared.lock().memory.lost("gone");
        (out.stdout, ended, owed)
    }

    #[test]
    fn lines_of_any_length_go_out_whole_and_answer_their_requests() {
        let long = "x".repeat(3 * HOLD as usize);
        let mut input = answer(1, "short");
        input.extend_from_slice(&answer(2, &long));
        input.extend_from_slice(&answer(3, "after"));
        for capacity in [7, CHUNK] {
            let (stdout, ended, owed) = relay(&[1, 2, 3, 4], &input, capacity);
            assert!(stdout == input, "relayed as sent ({capacity})");
            assert!(ended == Pumped::Closed);
            let owed = String::from_utf8(owed).unwrap();
            assert_eq!(owed.lines().count(), 1, "{owed}");
            assert!(owed.contains(r#""id":4"#), "{owed}");
        }
    }

    #[test]
    fn a_line_cut_short_is_not_written() {
        let mut input = answer(1, "whole");
        input.extend_from_slice(&answer(2, "cut")[..20]);
        let (stdout, ended, owed) = relay(&[1, 2], &input, CHUNK);
        assert_eq!(stdout, answer(1, "whole"));
        assert!(ended == Pumped::Closed);
        assert!(String::from_utf8(owed).unwrap().contains(r#""id":2"#));
        // Past the hold, its start is out: nothing may follow.
        let long = answer(3, &"x".repeat(2 * HOLD as usize));
        let (stdout, ended, _) = relay(&[3], &long[..long.len() - 10], CHUNK);
        assert!(stdout.len() > HOLD as usize && !stdout.contains(&b'\n'));
        assert!(ended == Pumped::Cut);
    }

    #[test]
    fn the_tail_keeps_the_end() {
        let mut tail = Tail::default();
        tail.push(&[b'a'; 1000]);
        for _ in 0..100 {
            tail.push(b"bc");
        }
        tail.push(b"}");
        assert!(tail.0.len() <= 2 * peek::TAIL);
        assert!(tail.0.ends_with(b"bcbc}"));
    }
}
