//! A backend's child process: spawned in its own process group, its stderr drained into a
//! bounded log ([`super::stderr`]), and stopped as a group (stdin closed → grace → SIGTERM →
//! SIGKILL). Its exit is reported once the group is gone and what it wrote to stderr is read,
//! so that status can say why it ended ([`super::exit_note`]).
//!
//! The group matters because servers are often launched through wrappers (`npx` → `node`,
//! `uvx` → `python`): signalling only the direct child would leave the real server behind.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::stderr::{self, StderrLog};
use crate::config::ServerConfig;

/// How long a backend gets to exit on its own after stdin closes, and again after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// How long an exit waits for the stderr drain to read the group's last words (its pipe
/// closes when the group is gone, unless something that left the group still holds it).
const STDERR_SETTLE: Duration = Duration::from_millis(500);

/// A running child. Dropping it does not stop the process: call [`ChildHandle::stop`].
pub struct ChildHandle {
    pub pid: Option<u32>,
    stop: CancellationToken,
    /// Becomes `Some` once the process has exited, its group is gone and its stderr is read.
    exited: watch::Receiver<Option<Exited>>,
}

/// How the process ended.
struct Exited {
    /// `exit code 3`, `killed by signal 9`.
    description: String,
    /// Exit code 0.
    success: bool,
}

impl ChildHandle {
    /// Asks the process to stop and waits until it and its group are gone. The caller closes
    /// the MCP connection (the child's stdin) first, so a well-behaved server exits on its own.
    pub async fn stop(&self) -> String {
        self.stop.cancel();
        self.wait().await
    }

    /// Starts stopping the process without waiting, for its transport: cancelling the token
    /// is [`stop`](Self::stop) without the wait.
    pub fn stopper(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Waits for the process to exit (by itself or by [`stop`](Self::stop)).
    pub async fn wait(&self) -> String {
        self.exit().await
    }

    /// The exit description, as a future that does not borrow the handle.
    pub fn exit(&self) -> impl Future<Output = String> + Send + 'static {
        let mut exited = self.exited.clone();
        async move {
            match exited.wait_for(Option::is_some).await {
                Ok(exit) => exit
                    .as_ref()
                    .map(|e| e.description.clone())
                    .unwrap_or_default(),
                Err(_) => "unknown".into(),
            }
        }
    }

    /// Whether the process exited with code 0; `None` while it runs.
    pub fn succeeded(&self) -> Option<bool> {
        self.exited.borrow().as_ref().map(|exit| exit.success)
    }
}

/// Spawns `spec` with piped stdio; the returned pipes carry MCP.
/// Starts `spec`'s process. `client_env` (a per-client instance's: its client's values of the
/// server's `pass_env`) goes over `env` and the daemon's own; a variable the client lacks is
/// the server's `env` value if it has one, else not set at all (the daemon's would be the value
/// of the client that started it).
pub fn spawn(
    spec: &ServerConfig,
    client_env: &[(String, Option<String>)],
    stderr: Arc<StderrLog>,
) -> std::io::Result<(ChildStdout, ChildStdin, ChildHandle)> {
    let mut cmd = Command::new(&spec.command);
    cmd.args(&spec.args).envs(&spec.env);
    for (name, value) in client_env {
        match value {
            Some(value) => {
                cmd.env(name, value);
            }
            None if !spec.env.contains_key(name) => {
                cmd.env_remove(name);
            }
            None => {}
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A safety net for paths that forget to stop it; the supervisor stops it properly.
        .kill_on_drop(true);
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    // Our service manager's handshake variables are ours, not the backend's.
    for var in crate::service::SERVICE_MANAGER_ENV {
        cmd.env_remove(var);
    }
    #[cfg(unix)]
    cmd.process_group(0);
    #[cfg(unix)]
    // SAFETY: prctl and close_inherited_on_exec are async-signal-safe; nothing allocates.
    unsafe {
        cmd.pre_exec(|| {
            // If the daemon dies without stopping us (SIGKILL), the kernel stops the backend.
            #[cfg(target_os = "linux")]
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // The backend gets its three pipes, none of the daemon's descriptors.
            crate::process::close_inherited_on_exec();
            crate::process::restore_descriptor_limit();
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout is piped");
    let stdin = child.stdin.take().expect("stdin is piped");
    let drained = child
        .stderr
        .take()
        .map(|err| tokio::spawn(async move { stderr::drain(err, &stderr).await }));
    let stop = CancellationToken::new();
    let (tx, exited) = watch::channel(None);
    tokio::spawn(supervise(child, pid, drained, stop.clone(), tx));
    Ok((stdout, stdin, ChildHandle { pid, stop, exited }))
}

async fn supervise(
    mut child: tokio::process::Child,
    pid: Option<u32>,
    drained: Option<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
    exited: watch::Sender<Option<Exited>>,
) {
    let status = tokio::select! {
        status = child.wait() => status,
        () = stop.cancelled() => match tokio::time::timeout(STOP_GRACE, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                signal_group(pid, Signal::Term);
                match tokio::time::timeout(STOP_GRACE, child.wait()).await {
                    Ok(status) => status,
                    Err(_) => {
                        signal_group(pid, Signal::Kill);
                        child.wait().await
                    }
                }
            }
        },
    };
    // The leader is gone; whatever it spawned into its group must not outlive it.
    reap_group(pid).await;
    // Whoever reads the exit may want to know what the process said last (status's note).
    if let Some(drained) = drained {
        let _ = tokio::time::timeout(STDERR_SETTLE, drained).await;
    }
    let exit = match status {
        Ok(status) => Exited {
            description: describe(status),
            success: status.success(),
        },
        Err(e) => Exited {
            description: format!("unknown ({e})"),
            success: false,
        },
    };
    let _ = exited.send(Some(exit));
}

fn describe(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("killed by signal {signal}");
        }
    }
    match status.code() {
        Some(code) => format!("exit code {code}"),
        None => "exited".into(),
    }
}

#[derive(Clone, Copy)]
enum Signal {
    Term,
    Kill,
}

/// Sends a signal to the whole process group led by `pid`. Returns false when no process of
/// the group is left.
fn signal_group(pid: Option<u32>, signal: Signal) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = pid else { return false };
        let sig = match signal {
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        };
        // SAFETY: plain syscall; a negative pid addresses the group we created for the child.
        unsafe { libc::kill(-(pid as libc::pid_t), sig) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = (pid, signal);
        false
    }
}

/// Stops what is left of the group after its leader exited: SIGTERM, a short wait, SIGKILL.
async fn reap_group(pid: Option<u32>) {
    if !signal_group(pid, Signal::Term) {
        return;
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if !group_alive(pid) {
            return;
        }
    }
    signal_group(pid, Signal::Kill);
}

fn group_alive(pid: Option<u32>) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = pid else { return false };
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(-(pid as libc::pid_t), 0) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}
