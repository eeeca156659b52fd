//! The plugin host: a stdlib-only Python program (`plugin_host.py`) shipped inside mcpgw that
//! runs mcp-unify-style plugin modules and serves their tools over MCP on stdio.
//!
//! It is a separate process, supervised like any stdio server, rather than Python embedded in
//! the daemon: a plugin that crashes, leaks or segfaults in a C extension takes down its host,
//! not the daemon and every other session; the GIL never serialises the daemon; and the user's
//! own interpreter (a venv's) runs their plugins with their packages.
//!
//! The program travels in the host's environment ([`SOURCE_VAR`]) and runs with `python -c`
//! ([`BOOTSTRAP`], which pops it first so that nothing the plugins start inherits it): there is
//! no file to write, keep current or guard against other users, and a new mcpgw never runs an
//! old host. Being in the spec's `env`, the program is in the spec hash, so an upgraded host
//! is a changed server.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The host program.
pub const SOURCE: &str = include_str!("plugin_host.py");

/// The variable the program is passed in.
pub const SOURCE_VAR: &str = "MCPGW_PLUGIN_HOST";

/// What `python -c` runs: take the current directory off the import path (so that no file
/// where the host was started shadows a module it imports), then run the program.
pub const BOOTSTRAP: &str = "import sys;sys.path[:]=[p for p in sys.path if p not in('','.')];\
import os;exec(compile(os.environ.pop('MCPGW_PLUGIN_HOST'),'<mcpgw plugin host>','exec'))";

/// What one host loads: its one argument after [`BOOTSTRAP`].
#[derive(Debug, Clone, PartialEq)]
pub struct Launch {
    pub modules: Vec<String>,
    pub search_path: Vec<PathBuf>,
    /// Import, report and exit instead of serving.
    pub check: bool,
}

impl Launch {
    /// The interpreter's arguments: `-E` (no `PYTHONPATH`, `PYTHONSTARTUP` or the like from
    /// wherever the daemon was started: import directories are the config's `path`), `-B` (no
    /// `__pycache__` written into the plugins' directories: a bytecode file written in the same
    /// second as a same-sized edit would be taken for the edit's, since Python checks only
    /// mtime seconds and size), `-c`, the bootstrap, then what to load as JSON.
    pub fn args(&self) -> Vec<String> {
        let paths: Vec<String> = self
            .search_path
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let mut spec = serde_json::json!({ "modules": self.modules, "paths": paths });
        if self.check {
            spec["check"] = true.into();
        }
        vec![
            "-E".to_owned(),
            "-B".to_owned(),
            "-c".to_owned(),
            BOOTSTRAP.to_owned(),
            spec.to_string(),
        ]
    }
}

/// What a host in check mode found.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct Report {
    /// Tool names, sorted.
    #[serde(default)]
    pub tools: Vec<ReportedTool>,
    /// A module that did not import (`plugin module `x` failed to import: NameError: …`), a
    /// tool that was skipped.
    #[serde(default)]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReportedTool {
    pub name: String,
    pub module: String,
}

/// How much of a failed host's stderr a message quotes.
const STDERR_TAIL: usize = 2000;

/// How to run a host: the interpreter, the environment it adds (the program among it), where.
pub struct Interpreter<'a> {
    pub python: &'a str,
    pub env: &'a BTreeMap<String, String>,
    pub cwd: Option<&'a Path>,
}

/// Runs a plugin host in check mode (`launch.check` is set here): imports its modules and
/// reports their tools and problems, without serving. An error when the host itself cannot
/// run (no interpreter, a Python too old, a timeout).
pub fn check(
    interpreter: &Interpreter<'_>,
    launch: &Launch,
    timeout: Duration,
) -> Result<Report, String> {
    let launch = Launch {
        check: true,
        ..launch.clone()
    };
    let python = interpreter.python;
    let mut command = Command::new(python);
    command
        .args(launch.args())
        .envs(interpreter.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = interpreter.cwd {
        command.current_dir(dir);
    }
    // Its own group: what a plugin starts at import (a helper process) goes with it.
    #[cfg(unix)]
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run `{python}` for the plugins: {e}"))?;
    let group = Group(child.id());
    let deadline = Instant::now() + timeout;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    // The report is the first line: once it is read nothing else is waited for (a plugin's
    // thread or child may keep the interpreter or the pipes alive).
    let report = read_in_thread(move || {
        let mut line = Vec::new();
        let _ = std::io::BufReader::new(stdout)
            .take(16 << 20)
            .read_until(b'\n', &mut line);
        line
    });
    let said = read_in_thread(move || {
        let mut bytes = Vec::new();
        let _ = stderr.take(1 << 20).read_to_end(&mut bytes);
        bytes
    });
    let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
    let Ok(line) = report.recv_timeout(left(deadline)) else {
        drop(group);
        let _ = child.wait();
        return Err(format!(
            "the plugins did not finish importing within {}s",
            timeout.as_secs()
        ));
    };
    if let Ok(report) = serde_json::from_slice::<Report>(&line) {
        drop(group);
        let _ = child.wait();
        return Ok(report);
    }
    // No report: the host failed (an interpreter too old, no such program); its stderr says
    // why once it has ended.
    let stderr = said
        .recv_timeout(left(deadline).max(Duration::from_millis(500)))
        .unwrap_or_default();
    drop(group);
    let status = child
        .wait()
        .map_or_else(|e| e.to_string(), |s| s.to_string());
    let stderr = String::from_utf8_lossy(&stderr);
    let tail = stderr.trim_end();
    let mut start = tail.len().saturating_sub(STDERR_TAIL);
    while !tail.is_char_boundary(start) {
        start += 1;
    }
    let tail = &tail[start..];
    Err(format!(
        "the plugin host did not run with `{python}` ({status}){}",
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {}", last_line(tail))
        }
    ))
}

/// Runs `read` on a thread of its own; its result arrives on the channel.
fn read_in_thread(
    read: impl FnOnce() -> Vec<u8> + Send + 'static,
) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read());
    });
    rx
}

/// Kills the check's process group when dropped.
struct Group(u32);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Ok(pid) = i32::try_from(self.0) {
            // SAFETY: killpg has no memory effects; the group is the child's own.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

/// A Python traceback's last line is what went wrong.
fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or(text)
        .trim()
}
