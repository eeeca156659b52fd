//! Starting a daemon when a shim finds none (the sccache pattern).
//!
//! Only a connect that failed with not-found/refused leads here. The daemon is started detached
//! (own session, stdio away from the client), the shim waits for its socket with a deadline and
//! stops waiting if it died. Losing a race to another shim is success: the other daemon answers.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::Discovery;

/// How long a freshly started daemon has to listen (it loads the config and binds: milliseconds,
/// but CI machines are slow).
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// A log over this size when a new daemon starts is moved to `mcpgwd.log.1` (replacing the one
/// there) and a new one begun: the log of past daemons is never more than twice this.
const LOG_ROTATE_AT: u64 = 1 << 20;

/// How much of the log's end is read to show why a daemon did not start, and how many lines.
const TAIL_BYTES: u64 = 8 * 1024;
const TAIL_LINES: usize = 5;

/// Starts `mcpgwd` for `socket` and waits until something listens there.
pub fn start(socket: &Path, config: Option<&Path>) -> Result<(), String> {
    let daemon = daemon_binary();
    let log = log_path(socket);
    let config = resolve_config(config)?;
    let mut cmd = Command::new(&daemon);
    cmd.arg("--socket").arg(socket).arg("--config").arg(&config);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    // The daemon outlives this client: it gets a documented part of its environment, not
    // all of it (see `daemon_env`).
    cmd.env_clear()
        .envs(super::daemon_env::for_daemon(std::env::vars_os(), &config));
    let logged = match open_log(&log) {
        Some(file) => {
            cmd.stderr(file);
            true
        }
        None => {
            cmd.stderr(Stdio::null());
            false
        }
    };
    // A log we could not open (or would not: see `open_log`) is not ours to show.
    let tail = || {
        if logged {
            log_tail(&log)
        } else {
            String::new()
        }
    };
    // The daemon must not live in the client's working directory or session: it outlives them.
    if let Some(dir) = config.parent() {
        cmd.current_dir(dir);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: setsid and close_inherited_on_exec are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                // The daemon gets none of the descriptors the MCP client left open.
                crate::process::close_inherited_on_exec();
                Ok(())
            });
        }
    }
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "no daemon is running and `{}` could not be started: {e}",
            daemon.display()
        )
    })?;
    let started = Instant::now();
    loop {
        if listening(socket) {
            // Reap later: the daemon runs on; a shim never waits for it.
            std::mem::forget(child);
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            // It may have lost a race to a daemon another shim started: that one will answer.
            if wait_listening(socket, Duration::from_secs(2)) {
                return Ok(());
            }
            return Err(format!(
                "started `{}` but it exited ({status}){}",
                daemon.display(),
                tail()
            ));
        }
        if started.elapsed() > READY_DEADLINE {
            return Err(format!(
                "started `{}` (pid {}) but it did not listen on {} within {}s{}",
                daemon.display(),
                child.id(),
                socket.display(),
                READY_DEADLINE.as_secs(),
                tail()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn listening(socket: &Path) -> bool {
    #[cfg(unix)]
    {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    }
    #[cfg(not(unix))]
    {
        let hello = crate::protocol::Hello {
            v: crate::protocol::PROTOCOL_VERSION,
            kind: crate::protocol::HelloKind::Control,
            role: None,
            pid: None,
            env: Default::default(),
        };
        crate::ipc::connect(socket, &hello).is_ok()
    }
}

fn wait_listening(socket: &Path, within: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < within {
        if listening(socket) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// `mcpgwd` next to this shim (how `cargo install` and packages lay them out), else from PATH.
fn daemon_binary() -> PathBuf {
    let name = format!("mcpgwd{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)))
        .filter(|path| path.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// The config for the daemon, made absolute so the daemon can run from its directory: never
/// one found in the working directory, which is the MCP client's project (see
/// [`Discovery::UserOnly`]).
fn resolve_config(explicit: Option<&Path>) -> Result<PathBuf, String> {
    match crate::paths::discover(explicit, Discovery::UserOnly) {
        Ok(path) => Ok(std::path::absolute(&path).unwrap_or(path)),
        Err(e) => Err(format!("no daemon is running and none can be started: {e}")),
    }
}

fn log_path(socket: &Path) -> PathBuf {
    socket.with_file_name("mcpgwd.log")
}

/// The daemon's log beside its socket, in the same private directory (checked as a client
/// checks it: another user's directory could hold a symlink that makes the daemon append to
/// any file of ours), opened without following a symlink, 0600. One over [`LOG_ROTATE_AT`] is
/// rotated first.
fn open_log(path: &Path) -> Option<std::fs::File> {
    let dir = path.parent()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok()?;
        crate::ipc::check_private_dir(dir).ok()?;
        rotate_log(path);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .ok()
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).ok()?;
        rotate_log(path);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    }
}

/// Moves a log (a plain file: a symlink stays, and fails to open) over [`LOG_ROTATE_AT`] to
/// `<name>.1`, replacing the one there. Only the shim rotates, when it starts a daemon, so a
/// running daemon's log grows until the next one starts.
fn rotate_log(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() && meta.len() > LOG_ROTATE_AT {
        let mut old = path.as_os_str().to_owned();
        old.push(".1");
        let _ = std::fs::rename(path, old);
    }
}

/// The end of the log, for an error: read from its last [`TAIL_BYTES`], never the whole file.
fn log_tail(log: &Path) -> String {
    let Ok(file) = std::fs::File::open(log) else {
        return String::new();
    };
    let lines = last_lines(file, TAIL_BYTES, TAIL_LINES);
    if lines.is_empty() {
        String::new()
    } else {
        format!(
            "; its log ({}) ends with:\n{}",
            log.display(),
            lines.join("\n")
        )
    }
}

/// The last `count` lines within the last `bytes` of `file`, reading only those (and the
/// byte before them, to know whether the first one is whole): a line cut there is left out,
/// unless it is all there is, then it is shown marked `…`.
fn last_lines(mut file: impl Read + Seek, bytes: u64, count: usize) -> Vec<String> {
    let Ok(len) = file.seek(SeekFrom::End(0)) else {
        return Vec::new();
    };
    let from = len.saturating_sub(bytes + 1);
    let mut window = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_err()
        || file.take(bytes + 1).read_to_end(&mut window).is_err()
    {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&window);
    let text = if from == 0 {
        text.into_owned()
    } else {
        match text.split_once('\n') {
            Some((_, whole)) => whole.to_string(),
            None => format!("…{text}"),
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..]
        .iter()
        .map(|line| line.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 MiB log (an undecodable byte at its start, as a crashed write leaves): its last
    /// lines are shown, and the message stays small.
    fn big_log(path: &Path) {
        let mut text = b"\xff\xfe a torn first line\n".to_vec();
        let filler = b"2026-01-01T00:00:00Z  INFO mcpgw: a line of an earlier daemon's log\n";
        while text.len() < 20 << 20 {
            text.extend_from_slice(filler);
        }
        for n in 1..=6 {
            text.extend_from_slice(format!("last words {n}\n").as_bytes());
        }
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn the_tail_of_a_20_mib_log_is_its_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mcpgwd.log");
        big_log(&log);
        let tail = log_tail(&log);
        let expected: Vec<String> = (2..=6).map(|n| format!("last words {n}")).collect();
        assert!(
            tail.ends_with(&format!("ends with:\n{}", expected.join("\n"))),
            "{tail:?}"
        );
        assert!(tail.len() < 1024, "{} bytes", tail.len());
    }

    /// Reads what it counts, to show that only the end of the log is read.
    struct Counting<R> {
        inner: R,
        read: u64,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl<R: Seek> Seek for Counting<R> {
        fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(to)
        }
    }

    #[test]
    fn only_the_end_of_the_log_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("mcpgwd.log");
        big_log(&log);
        let mut file = Counting {
            inner: std::fs::File::open(&log).unwrap(),
            read: 0,
        };
        let lines = last_lines(&mut file, TAIL_BYTES, TAIL_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("last words 6"));
        assert_eq!(lines.len(), TAIL_LINES);
        assert!(file.read <= TAIL_BYTES + 1, "{} bytes read", file.read);
    }

    #[test]
    fn a_cut_first_line_is_left_out_unless_it_is_all_there_is() {
        let text = b"abcdef\nghij\nklm\n".to_vec();
        let lines = |bytes| last_lines(std::io::Cursor::new(&text), bytes, 5);
        assert_eq!(lines(100), ["abcdef", "ghij", "klm"]);
        // The window starts on a line's first byte: that line is whole.
        assert_eq!(lines(9), ["ghij", "klm"]);
        assert_eq!(lines(8), ["klm"]);
        let long = b"x".repeat(100);
        let lines = last_lines(std::io::Cursor::new(&long), 10, 5);
        assert_eq!(lines, [format!("…{}", "x".repeat(11))]);
    }

    /// A directory only the user can use, as the socket's must be.
    fn private_dir() -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn a_log_over_the_size_is_rotated_when_a_daemon_starts() {
        let dir = private_dir();
        let log = dir.path().join("mcpgwd.log");
        let rotated = dir.path().join("mcpgwd.log.1");
        std::fs::write(&rotated, "the oldest log\n").unwrap();
        std::fs::write(&log, vec![b'x'; LOG_ROTATE_AT as usize + 1]).unwrap();
        assert!(open_log(&log).is_some());
        assert_eq!(std::fs::metadata(&log).unwrap().len(), 0);
        assert_eq!(
            std::fs::metadata(&rotated).unwrap().len(),
            LOG_ROTATE_AT + 1
        );
    }

    #[test]
    fn a_log_within_the_size_is_appended_to() {
        use std::io::Write;
        let dir = private_dir();
        let log = dir.path().join("mcpgwd.log");
        std::fs::write(&log, "an earlier daemon\n").unwrap();
        open_log(&log).unwrap().write_all(b"this one\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "an earlier daemon\nthis one\n"
        );
        assert!(!dir.path().join("mcpgwd.log.1").exists());
    }
}
