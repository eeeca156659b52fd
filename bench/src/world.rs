//! An isolated world for one figure: a temp dir with its own runtime, cache and config dirs, the
//! shipped binaries, a daemon on a private socket, and the processes found by a marker argument.
//!
//! The bench speaks only wire formats to the gateway (the YAML config, the hello line, control
//! lines, MCP), never its library, so it measures exactly what users run.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::proc;

/// How long a daemon may take to listen, or to stop, before the bench gives up.
const DAEMON_DEADLINE: Duration = Duration::from_secs(60);

/// The directory holding the binaries under test (`target/release` or `target/debug`).
#[derive(Debug)]
pub struct Bins {
    dir: PathBuf,
    /// Command put before the daemon's (a profiler), if any.
    daemon_wrapper: Vec<String>,
}

/// Every binary the bench runs.
const NEEDED: [&str; 5] = [
    "mcpgwd",
    "mcpgw-shim",
    "mcpgwctl",
    "mcpgw-fixture",
    "mcpgw-relay",
];

impl Bins {
    /// `--bin-dir`, else the directory of this executable (the bench sits beside the binaries it
    /// measures when the workspace is built as a whole).
    pub fn locate(explicit: Option<PathBuf>, daemon_wrapper: Vec<String>) -> Result<Self> {
        let dir = match explicit {
            Some(dir) => dir,
            None => std::env::current_exe()
                .context("locating the bench executable")?
                .parent()
                .map(Path::to_path_buf)
                .ok_or_else(|| anyhow!("the bench executable has no parent directory"))?,
        };
        let missing: Vec<&str> = NEEDED
            .iter()
            .copied()
            .filter(|name| !dir.join(name).is_file())
            .collect();
        if !missing.is_empty() {
            bail!(
                "missing in {}: {}; build them with `cargo build --release --workspace` \
                 (or pass --bin-dir)",
                dir.display(),
                missing.join(", ")
            );
        }
        Ok(Self {
            dir,
            daemon_wrapper,
        })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True when these are debug builds (the figures then mean little).
    pub fn is_debug(&self) -> bool {
        self.dir.file_name().is_some_and(|n| n == "debug")
    }
}

pub struct World {
    dir: tempfile::TempDir,
    /// Unique string on every fixture command line of this world, to count its processes.
    pub marker: String,
    pub bins: Arc<Bins>,
}

impl World {
    pub fn new(bins: &Arc<Bins>, label: &str) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("mcpgw-bench-{label}-"))
            .tempdir()
            .context("creating a temp dir")?;
        let marker = format!(
            "mk-{}",
            dir.path().file_name().unwrap_or_default().to_string_lossy()
        );
        for sub in ["runtime", "cache", "home", "config"] {
            std::fs::create_dir_all(dir.path().join(sub))?;
        }
        Ok(Self {
            dir,
            marker,
            bins: bins.clone(),
        })
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn socket(&self) -> PathBuf {
        self.path("runtime/mcpgw/mcpgw.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("gateway.yaml")
    }

    pub fn write_config(&self, yaml: &str) -> Result<()> {
        std::fs::write(self.config_path(), yaml).context("writing the config")
    }

    /// The fixture's command line, tagged with this world's marker.
    pub fn fixture_args(&self, name: &str, extra: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--marker".to_owned(),
            self.marker.clone(),
            "--name".to_owned(),
            name.to_owned(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    }

    /// A `servers:` entry running the fixture.
    pub fn fixture_server(&self, name: &str, extra: &[&str]) -> String {
        let args = self.fixture_args(name, extra);
        server_entry(name, &self.bins.path("mcpgw-fixture"), &args)
    }

    /// A command with this world's isolated dirs and nothing else inherited but `PATH`.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("runtime"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("MCPGW_CACHE_DIR", self.path("cache/mcpgw"))
            .current_dir(self.dir.path());
        cmd
    }

    /// Starts `mcpgwd` on this world's config and waits until it accepts connections.
    pub fn start_daemon(&self) -> Result<Daemon> {
        self.try_start_daemon().map_err(|e| match e {
            DaemonStart::Exited { code, log } => {
                anyhow!("mcpgwd exited early (code {code:?}):\n{log}")
            }
            DaemonStart::Failed(e) => e,
        })
    }

    pub fn try_start_daemon(&self) -> Result<Daemon, DaemonStart> {
        let log = self.path(&format!("mcpgwd-{}.log", unique()));
        let stderr = std::fs::File::create(&log).map_err(|e| DaemonStart::Failed(e.into()))?;
        let daemon = self.bins.path("mcpgwd");
        let mut cmd = match self.bins.daemon_wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = self.command(Path::new(program));
                cmd.args(args).arg(&daemon);
                cmd
            }
            None => self.command(&daemon),
        };
        let child = cmd
            .arg("--config")
            .arg(self.config_path())
            .arg("--socket")
            .arg(self.socket())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| DaemonStart::Failed(anyhow!("spawning mcpgwd: {e}")))?;
        let mut daemon = Daemon { child, log };
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                return Err(DaemonStart::Exited {
                    code: status.code(),
                    log: daemon.log(),
                });
            }
            if UnixStream::connect(self.socket()).is_ok() {
                return Ok(daemon);
            }
            if start.elapsed() > DAEMON_DEADLINE {
                return Err(DaemonStart::Failed(anyhow!(
                    "mcpgwd never listened:\n{}",
                    daemon.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Starts the daemon on `yaml` plus an `http:` listener when the daemon accepts one.
    /// Returns the daemon, the `/mcp` URL if HTTP is served, and a note when it is not.
    pub fn start_daemon_with_http(&self, yaml: &str) -> Result<(Daemon, Option<String>)> {
        let port = free_port()?;
        let with_http = format!("{yaml}http:\n  listen: \"127.0.0.1:{port}\"\n");
        self.write_config(&with_http)?;
        match self.try_start_daemon() {
            Ok(daemon) => {
                // The HTTP listener may come up a moment after the local socket.
                let start = Instant::now();
                while start.elapsed() < Duration::from_secs(5) {
                    if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                        return Ok((daemon, Some(format!("http://127.0.0.1:{port}/mcp"))));
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                eprintln!(
                    "  note: HTTP not measured: the daemon accepted `http:` but nothing listens \
                     on 127.0.0.1:{port}"
                );
                Ok((daemon, None))
            }
            Err(DaemonStart::Exited { log, .. }) => {
                let why = log
                    .lines()
                    .find(|l| l.contains("http"))
                    .unwrap_or("no reason given")
                    .trim()
                    .to_owned();
                eprintln!(
                    "  note: HTTP not measured: this mcpgwd rejects the `http:` key ({why}); \
                     running without it"
                );
                self.write_config(yaml)?;
                Ok((self.start_daemon()?, None))
            }
            Err(DaemonStart::Failed(e)) => Err(e),
        }
    }

    /// Live processes of this world's fixtures.
    pub fn backend_pids(&self) -> Vec<u32> {
        proc::processes_with(&self.marker)
    }

    /// The live fixture process of this world started with `--name name`.
    pub fn fixture_pid(&self, name: &str) -> Option<u32> {
        proc::processes_with(&format!("{}\0--name\0{name}\0", self.marker))
            .into_iter()
            .find(|&pid| proc::comm(pid) == "mcpgw-fixture")
    }

    /// Runs `mcpgwctl` on this world's socket.
    pub fn ctl(&self, args: &[&str]) -> Result<std::process::Output> {
        self.command(&self.bins.path("mcpgwctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running mcpgwctl")
    }

    /// A shim command for an MCP client to spawn (never autostarts a daemon).
    pub fn shim_command(&self) -> tokio::process::Command {
        let mut cmd = self.command(&self.bins.path("mcpgw-shim"));
        cmd.arg("--socket").arg(self.socket()).arg("--no-autostart");
        tokio::process::Command::from(cmd)
    }

    /// A control connection to the daemon (what mcpgwctl does, without its process start).
    pub fn control(&self) -> Result<Control> {
        Control::connect(&self.socket())
    }
}

/// Why a daemon did not come up.
pub enum DaemonStart {
    /// It exited (e.g. 64 for a config it rejects), with its log.
    Exited {
        code: Option<i32>,
        log: String,
    },
    Failed(anyhow::Error),
}

pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then wait for the exit (the daemon stops its backends first).
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        proc::signal(self.child.id(), libc::SIGTERM);
        let start = Instant::now();
        while self.child.try_wait()?.is_none() {
            if start.elapsed() > DAEMON_DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("mcpgwd did not stop within {DAEMON_DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// A `servers:` entry.
pub fn server_entry(name: &str, command: &Path, args: &[String]) -> String {
    format!(
        "  {name}:\n    command: {}\n    args: {}\n",
        json!(command.display().to_string()),
        json!(args)
    )
}

/// A raw control connection: the hello, then one JSON request and one JSON response per line.
pub struct Control {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Control {
    pub fn connect(socket: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket).context("connecting to the daemon")?;
        let mut control = Self {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let reply = control.request(&json!({"v": 1, "kind": "control"}))?;
        if reply["ok"] != true {
            bail!("control hello refused: {reply}");
        }
        Ok(control)
    }

    pub fn request(&mut self, request: &Value) -> Result<Value> {
        let mut line = serde_json::to_vec(request)?;
        line.push(b'\n');
        self.writer.write_all(&line)?;
        let mut reply = String::new();
        if self.reader.read_line(&mut reply)? == 0 {
            bail!("the daemon closed the control connection");
        }
        Ok(serde_json::from_str(&reply)?)
    }

    pub fn status(&mut self) -> Result<Value> {
        let status = self.request(&json!({"op": "status"}))?;
        if status["result"] != "status" {
            bail!("status failed: {status}");
        }
        Ok(status)
    }

    pub fn generation(&mut self) -> Result<u64> {
        self.status()?["generation"]
            .as_u64()
            .ok_or_else(|| anyhow!("status has no generation"))
    }
}

/// A TCP port nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
