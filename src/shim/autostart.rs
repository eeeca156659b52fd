//! Starting a daemon when a shim finds none (the sccache pattern).
//!
//! Only a connect that failed with not-found/refused leads here. The daemon is started detached
//! (own session, stdio away from the client), the shim waits for its socket with a deadline and
//! stops waiting if it died. Losing a race to another shim is success: the other daemon answers.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::paths::Discovery;

/// How long a freshly started daemon has to listen (it loads the config and binds: milliseconds,
/// but CI machines are slow).
const READY_DEADLINE: Duration = Duration::from_secs(15);

/// Starts `mcpgwd` for `socket` and waits until something listens there.
pub fn start(socket: &Path, config: Option<&Path>) -> Result<(), String> {
    let daemon = daemon_binary();
    let log = log_path(socket);
    let config = resolve_config(config)?;
    let mut cmd = Command::new(&daemon);
    cmd.arg("--socket").arg(socket).arg("--config").arg(&config);
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    match open_log(&log) {
        Some(file) => cmd.stderr(file),
        None => cmd.stderr(Stdio::null()),
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
                log_tail(&log)
            ));
        }
        if started.elapsed() > READY_DEADLINE {
            return Err(format!(
                "started `{}` (pid {}) but it did not listen on {} within {}s{}",
                daemon.display(),
                child.id(),
                socket.display(),
                READY_DEADLINE.as_secs(),
                log_tail(&log)
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
/// any file of ours), opened without following a symlink, 0600.
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
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    }
}

fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    if lines.is_empty() {
        String::new()
    } else {
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        format!(
            "; its log ({}) ends with:\n{}",
            log.display(),
            tail.join("\n")
        )
    }
}
