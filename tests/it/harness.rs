//! The test bench: a temp dir with its own runtime/cache/config dirs, the real binaries, the
//! fixture server, and a real rmcp client speaking through `mcpgw-shim`.
//!
//! Everything waits by polling a condition against a generous deadline: CI is two noisy cores.

#![allow(dead_code)]
// Logging and sampling are deprecated for the 2026-07-28 protocol; the tests exercise them on
// the versions that have them.
#![allow(deprecated)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    ProgressNotificationParam, Tool,
};
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};

pub const DEADLINE: Duration = Duration::from_secs(60);

pub fn bin(name: &str) -> PathBuf {
    match name {
        "mcpgwd" => PathBuf::from(env!("CARGO_BIN_EXE_mcpgwd")),
        "mcpgw-shim" => PathBuf::from(env!("CARGO_BIN_EXE_mcpgw-shim")),
        // Binaries of other workspace packages sit beside ours in the target dir.
        other => {
            let path = Path::new(env!("CARGO_BIN_EXE_mcpgwd")).with_file_name(other);
            assert!(
                path.exists(),
                "{} is missing: build the workspace first (`cargo build --workspace`)",
                path.display()
            );
            path
        }
    }
}

pub fn fixture() -> PathBuf {
    bin("mcpgw-fixture")
}

/// Polls `cond` until it holds or the deadline passes (then panics with `what`).
pub async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// An isolated world for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
    /// Unique string put on every fixture command line, to find this test's processes.
    pub marker: String,
}

impl Env {
    pub fn new() -> Self {
        // reqwest is built without a default TLS provider (the daemon installs ring); test
        // clients need one too before they build an HTTP client.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::Builder::new()
            .prefix("mcpgw-it-")
            .tempdir()
            .unwrap();
        let marker = format!("mk-{}", dir.path().file_name().unwrap().to_string_lossy());
        for sub in ["runtime", "cache", "home", "config"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        Self { dir, marker }
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

    pub fn write_config(&self, yaml: &str) {
        std::fs::write(self.config_path(), yaml).unwrap();
    }

    /// The user's own config (`$XDG_CONFIG_HOME/mcpgw/gateway.yaml`): what a daemon the shim
    /// starts serves.
    pub fn user_config_path(&self) -> PathBuf {
        self.path("config/mcpgw/gateway.yaml")
    }

    pub fn write_user_config(&self, yaml: &str) {
        std::fs::create_dir_all(self.path("config/mcpgw")).unwrap();
        std::fs::write(self.user_config_path(), yaml).unwrap();
    }

    /// A `servers:` entry running the fixture, tagged with this env's marker.
    pub fn fixture_server(&self, name: &str, extra_args: &[&str]) -> String {
        let mut args = vec![
            "--marker".to_string(),
            self.marker.clone(),
            "--name".into(),
            name.into(),
        ];
        args.extend(extra_args.iter().map(|s| s.to_string()));
        format!(
            "  {name}:\n    command: {:?}\n    args: {}\n",
            fixture().display().to_string(),
            serde_json::to_string(&args).unwrap()
        )
    }

    /// A command with this env's isolated dirs, nothing inherited that could leak in.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.path("home"))
            .env("XDG_RUNTIME_DIR", self.path("runtime"))
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("MCPGW_LOG", "info,mcpgw=debug")
            // Lists wait for every server's discovery, as on a machine that is not this busy;
            // `discovery::` tests set `discovery_wait` in their config.
            .env("MCPGW_DISCOVERY_WAIT_MS", "60000")
            .current_dir(self.dir.path());
        cmd
    }

    pub fn start_daemon(&self) -> Daemon {
        self.start_daemon_with(&[])
    }

    /// Starts the daemon with extra environment variables (not waiting for it).
    pub fn start_daemon_with(&self, envs: &[(&str, &str)]) -> Daemon {
        let log = self.path(&format!("mcpgwd-{}.log", unique()));
        let mut cmd = self.command(&bin("mcpgwd"));
        cmd.envs(envs.iter().copied());
        cmd.arg("--config")
            .arg(self.config_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("spawn mcpgwd");
        Daemon { child, log }
    }

    /// Starts the daemon and waits until it accepts connections.
    pub async fn daemon(&self) -> Daemon {
        let mut daemon = self.start_daemon();
        let socket = self.socket();
        let start = Instant::now();
        loop {
            if let Some(status) = daemon.child.try_wait().unwrap() {
                panic!("mcpgwd exited early ({status}):\n{}", daemon.log());
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return daemon;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "mcpgwd never listened:\n{}",
                daemon.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs mcpgwctl with this env's socket.
    pub fn ctl(&self, args: &[&str]) -> Output {
        self.command(&bin("mcpgwctl"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .output()
            .expect("run mcpgwctl")
    }

    /// Runs the shim on this env's socket with `args` and no input, to its end.
    pub fn shim_output(&self, args: &[&str]) -> Output {
        self.command(&bin("mcpgw-shim"))
            .arg("--socket")
            .arg(self.socket())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run mcpgw-shim")
    }

    pub fn status_json(&self) -> serde_json::Value {
        let out = self.ctl(&["status", "--json"]);
        assert!(
            out.status.success(),
            "status failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Connects a real MCP client through a new shim.
    pub async fn client(&self, role: Option<&str>) -> Client {
        self.try_client(role).await.expect("client initializes")
    }

    pub async fn try_client(&self, role: Option<&str>) -> Result<Client, String> {
        self.try_client_with(role, Recorder::default()).await
    }

    /// Connects a real MCP client with a given handler (e.g. [`Recorder::incapable`]).
    pub async fn try_client_with(
        &self,
        role: Option<&str>,
        recorder: Recorder,
    ) -> Result<Client, String> {
        let role: Vec<&str> = role.map(|role| vec!["--role", role]).unwrap_or_default();
        self.try_shim_client(&role, &[], recorder).await
    }

    /// Connects a real MCP client through a shim started with `args` and `envs`.
    pub async fn shim_client(&self, args: &[&str], envs: &[(&str, &str)]) -> Client {
        self.try_shim_client(args, envs, Recorder::default())
            .await
            .expect("client initializes")
    }

    pub async fn try_shim_client(
        &self,
        args: &[&str],
        envs: &[(&str, &str)],
        recorder: Recorder,
    ) -> Result<Client, String> {
        let stderr = self.path(&format!("shim-{}.log", unique()));
        let mut cmd = tokio::process::Command::from(self.command(&bin("mcpgw-shim")));
        cmd.arg("--socket").arg(self.socket());
        cmd.args(args).envs(envs.iter().copied());
        let transport = TokioChildProcess::builder(cmd)
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .map(|(t, _)| t)
            .map_err(|e| e.to_string())?;
        match recorder.clone().serve(transport).await {
            Ok(service) => Ok(Client {
                service,
                recorder,
                stderr,
            }),
            Err(e) => Err(format!(
                "{e}; shim stderr: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            )),
        }
    }

    /// Connects a 2026-07-28 client (no handshake: `server/discover`, then per-request
    /// `_meta`) through a new shim, as Claude Code does.
    pub async fn modern_client(&self, role: Option<&str>) -> Client {
        self.modern_client_with(role, &[]).await
    }

    /// [`Env::modern_client`] whose shim has `envs` in its environment too.
    pub async fn modern_client_with(&self, role: Option<&str>, envs: &[(&str, &str)]) -> Client {
        let stderr = self.path(&format!("shim-{}.log", unique()));
        let mut cmd = tokio::process::Command::from(self.command(&bin("mcpgw-shim")));
        cmd.arg("--socket").arg(self.socket());
        cmd.envs(envs.iter().copied());
        if let Some(role) = role {
            cmd.arg("--role").arg(role);
        }
        let (transport, _) = TokioChildProcess::builder(cmd)
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn the shim");
        let recorder = Recorder::default();
        let lifecycle = rmcp::service::ClientLifecycleMode::Discover {
            preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
        };
        let service =
            rmcp::service::serve_client_with_lifecycle(recorder.clone(), transport, lifecycle)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "server/discover through the shim: {e}; shim stderr: {}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    )
                });
        Client {
            service,
            recorder,
            stderr,
        }
    }

    /// Whether any daemon log of this env mentions `needle`.
    pub fn daemon_log_contains(&self, needle: &str) -> bool {
        std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("mcpgwd-"))
            .any(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .contains(needle)
            })
    }

    /// Pids of live processes whose command line carries this env's marker.
    pub fn backend_pids(&self) -> Vec<u32> {
        processes_with(&self.marker)
    }
}

impl Drop for Env {
    /// A daemon a test's shim autostarted is not owned by a `Daemon`: stop it here, so a
    /// failing test leaves nothing running.
    fn drop(&mut self) {
        if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
            let _ = self.ctl(&["stop"]);
        }
    }
}

/// A TCP port nothing listens on right now (the OS picks it; tests bind it soon after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Live (not zombie) processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) && pid_alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// True if the process exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Waits until the daemon accepts connections on `env`'s socket.
    pub async fn wait_ready(&mut self, env: &Env) {
        let socket = env.socket();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("mcpgwd exited early ({status}):\n{}", self.log());
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "mcpgwd never listened:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait for exit.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        kill(self.child.id(), libc::SIGTERM);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "mcpgwd did not stop:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            kill(self.child.id(), libc::SIGTERM);
            let start = Instant::now();
            while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < DEADLINE {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn kill(pid: u32, sig: i32) {
    // SAFETY: plain syscall on a pid this test owns.
    unsafe { libc::kill(pid as i32, sig) };
}

/// What a test client received from the gateway, and how it answers server requests.
#[derive(Clone, Default)]
pub struct Recorder {
    pub tools_changed: Arc<Mutex<usize>>,
    pub prompts_changed: Arc<Mutex<usize>>,
    pub resources_changed: Arc<Mutex<usize>>,
    pub progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    pub logs: Arc<Mutex<Vec<rmcp::model::LoggingMessageNotificationParam>>>,
    pub updated: Arc<Mutex<Vec<String>>>,
    /// Sampling prompts this client was asked to answer.
    pub sampled: Arc<Mutex<Vec<String>>>,
    /// Declare no sampling/elicitation support (a client that cannot be asked).
    pub incapable: bool,
    /// The one root it gives (a `file://` URI); `file:///mcpgw-it-root` if none.
    pub root: Option<String>,
}

impl Recorder {
    pub fn incapable() -> Self {
        Self {
            incapable: true,
            ..Self::default()
        }
    }
}

impl ClientHandler for Recorder {
    fn get_info(&self) -> ClientConfig {
        let mut capabilities = ClientCapabilities::default();
        if !self.incapable {
            capabilities.sampling = Some(Default::default());
            capabilities.elicitation = Some(Default::default());
            capabilities.roots = Some(Default::default());
        }
        ClientConfig::new(capabilities, Implementation::new("mcpgw-it", "0"))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.tools_changed.lock().unwrap() += 1;
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.prompts_changed.lock().unwrap() += 1;
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        *self.resources_changed.lock().unwrap() += 1;
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }

    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.logs.lock().unwrap().push(params);
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updated.lock().unwrap().push(params.uri);
    }

    /// Answers every sampling request with "pong to <prompt>".
    async fn create_message(
        &self,
        params: rmcp::model::CreateMessageRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::CreateMessageResult, rmcp::ErrorData> {
        let prompt =
            serde_json::to_value(&params.messages).unwrap_or_default()[0]["content"]["text"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        self.sampled.lock().unwrap().push(prompt.clone());
        serde_json::from_value(serde_json::json!({
            "role": "assistant",
            "content": {"type": "text", "text": format!("pong to {prompt}")},
            "model": "test-model",
        }))
        .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
    }

    /// One root: `file:///mcpgw-it-root`, or the one it was given.
    async fn list_roots(
        &self,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ListRootsResult, rmcp::ErrorData> {
        let root = self.root.as_deref().unwrap_or("file:///mcpgw-it-root");
        serde_json::from_value(serde_json::json!({"roots": [{"uri": root}]}))
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
    }

    /// Accepts every elicitation with `{"answer": "42"}`.
    async fn create_elicitation(
        &self,
        _params: rmcp::model::ElicitRequestParams,
        _context: rmcp::service::RequestContext<RoleClient>,
    ) -> Result<rmcp::model::ElicitResult, rmcp::ErrorData> {
        serde_json::from_value(serde_json::json!({"action": "accept", "content": {"answer": "42"}}))
            .map_err(|e| rmcp::ErrorData::internal_error(e.to_string(), None))
    }
}

pub struct Client {
    pub service: RunningService<RoleClient, Recorder>,
    pub recorder: Recorder,
    pub stderr: PathBuf,
}

impl Client {
    pub async fn tools(&self) -> Vec<Tool> {
        self.service
            .peer()
            .list_all_tools()
            .await
            .expect("tools/list")
    }

    pub async fn tool_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .tools()
            .await
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    }

    pub async fn call(
        &self,
        name: &str,
        args: serde_json::Value,
    ) -> Result<CallToolResult, String> {
        let mut params = CallToolRequestParams::new(name.to_string());
        if let serde_json::Value::Object(map) = args {
            params = params.with_arguments(map);
        }
        self.service
            .peer()
            .call_tool(params)
            .await
            .map_err(|e| e.to_string())
    }

    /// Calls a tool that must succeed and returns its first text content.
    pub async fn call_text(&self, name: &str, args: serde_json::Value) -> String {
        let result = self
            .call(name, args)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_ne!(
            result.is_error,
            Some(true),
            "{name} returned a tool error: {result:?}"
        );
        text_of(&result)
    }

    pub async fn close(mut self) {
        let _ = self.service.close().await;
    }
}

pub fn text_of(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.clone()))
        .unwrap_or_default()
}

/// A client that speaks raw JSON-RPC lines through a shim, for what typed clients hide
/// (their own ids and progress tokens, malformed input).
pub struct RawClient {
    /// The protocol version the gateway agreed to.
    pub negotiated: String,
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl RawClient {
    pub async fn connect(env: &Env, role: Option<&str>) -> Self {
        Self::connect_version(env, role, "2025-06-18").await
    }

    pub async fn connect_version(env: &Env, role: Option<&str>, version: &str) -> Self {
        let role: Vec<&str> = role.map(|role| vec!["--role", role]).unwrap_or_default();
        Self::connect_with(env, &role, &[], version, None).await
    }

    /// A client declaring `capabilities` (through a plain shim, 2025-06-18).
    pub async fn connect_declaring(env: &Env, capabilities: serde_json::Value) -> Self {
        Self::connect_inner(env, &[], &[], "2025-06-18", None, capabilities).await
    }

    /// Through a shim started with `args` and `envs`, its stderr into `stderr` (else nowhere).
    pub async fn connect_with(
        env: &Env,
        args: &[&str],
        envs: &[(&str, &str)],
        version: &str,
        stderr: Option<&Path>,
    ) -> Self {
        Self::connect_inner(env, args, envs, version, stderr, serde_json::json!({})).await
    }

    async fn connect_inner(
        env: &Env,
        args: &[&str],
        envs: &[(&str, &str)],
        version: &str,
        stderr: Option<&Path>,
        capabilities: serde_json::Value,
    ) -> Self {
        let mut cmd = tokio::process::Command::from(env.command(&bin("mcpgw-shim")));
        cmd.arg("--socket").arg(env.socket());
        cmd.args(args).envs(envs.iter().copied());
        let stderr = match stderr {
            Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
            None => Stdio::null(),
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        use tokio::io::AsyncBufReadExt;
        let mut raw = Self {
            negotiated: String::new(),
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
        };
        raw.send(serde_json::json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": capabilities, "clientInfo": {"name": "raw", "version": "0"}}}))
            .await;
        let init = raw.recv().await;
        assert_eq!(init["id"], "init", "{init}");
        raw.negotiated = init["result"]["protocolVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        raw.send(serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        raw
    }

    pub async fn send(&mut self, msg: serde_json::Value) {
        let mut line = serde_json::to_vec(&msg).unwrap();
        line.push(b'\n');
        self.send_bytes(&line).await;
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(bytes).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next message from the gateway (panics at the deadline or on EOF).
    pub async fn recv(&mut self) -> serde_json::Value {
        let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("a message before the deadline")
            .unwrap()
            .expect("the gateway closed the stream");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Reads messages until the response with `id`, returning it and what came before it.
    pub async fn until_response(
        &mut self,
        id: &serde_json::Value,
    ) -> (serde_json::Value, Vec<serde_json::Value>) {
        let mut before = Vec::new();
        loop {
            let msg = self.recv().await;
            if msg.get("id") == Some(id) && msg.get("method").is_none() {
                return (msg, before);
            }
            before.push(msg);
        }
    }

    /// Waits for the shim to exit on its own (its stdin stays open).
    pub async fn exit_status(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("shim exits")
            .unwrap()
    }

    pub async fn close(mut self) -> std::process::ExitStatus {
        drop(self.stdin);
        tokio::time::timeout(DEADLINE, self.child.wait())
            .await
            .expect("shim exits")
            .unwrap()
    }
}

/// The per-request `_meta` of a 2026-07-28 request (no session: every request says who it is).
pub fn modern_meta() -> serde_json::Value {
    serde_json::json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"},
    })
}
