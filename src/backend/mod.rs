//! One backend MCP server, shared by every session: started on first use, stopped when idle.
//!
//! A [`Backend`] is created per configured server when a routing table is built and reused by
//! later tables while its spec is unchanged. It owns at most one running instance at a time:
//! concurrent first calls share one start, a crash turns into an error for the calls that needed
//! it (the next call starts it again), and the idle reaper stops it after `idle_timeout`.
//! It never blocks the daemon: a backend that fails only fails its own calls.

pub mod cache;
pub mod child;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, CancelledNotificationParam,
    ClientCapabilities, ClientConfig, ClientRequest, Implementation, ProgressNotificationParam,
    ProgressToken, ProtocolVersion, ServerResult, Tool,
};
use rmcp::service::{
    NotificationContext, Peer, PeerRequestOptions, RoleClient, RoleServer, RunningService,
};
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{ClientHandler, ErrorData as McpError, ServiceExt};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::protocol::{BackendState, BackendStatus};
use cache::{CachedSchema, SchemaCache};
use child::{ChildHandle, StderrLog};

/// Lines on stdio are not limited by the gateway: a backend's answer is passed on whole or not
/// at all, and rmcp's default (16 MiB, dropping longer lines silently) would hang the call.
const MAX_LINE: usize = usize::MAX;

/// Called when the tools a backend offers may have changed (discovered, refreshed, list_changed).
pub type ToolsChanged = Arc<dyn Fn() + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("server `{0}` is disabled: {1}")]
    Disabled(String, String),
    #[error("server `{name}` failed to start: {reason}")]
    Start { name: String, reason: String },
    #[error("server `{name}` did not start within {secs:.1}s")]
    StartTimeout { name: String, secs: f64 },
    #[error("server `{name}` closed the connection (it may have crashed: {exit})")]
    Gone { name: String, exit: String },
    #[error("server `{name}`: {message}")]
    Protocol { name: String, message: String },
    #[error("server `{0}` was reconfigured by a reload; retry the call")]
    Retired(String),
}

impl From<BackendError> for McpError {
    fn from(e: BackendError) -> Self {
        McpError::internal_error(e.to_string(), None)
    }
}

/// Where progress for one in-flight call goes: the calling session and its own token.
#[derive(Clone)]
pub struct ProgressRoute {
    pub peer: Peer<RoleServer>,
    pub token: ProgressToken,
}

pub struct Backend {
    pub name: String,
    pub spec: ServerConfig,
    spec_hash: u64,
    idle_timeout_ms: AtomicU64,
    startup_timeout: Duration,
    cache: Arc<SchemaCache>,
    tools_changed: ToolsChanged,
    epoch: Instant,
    live: ArcSwapOption<Running>,
    start_lock: Arc<tokio::sync::Mutex<()>>,
    phase: Mutex<Phase>,
    tools: ArcSwapOption<Vec<Tool>>,
    calls: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since `epoch` when the last call started; 0 = never used.
    last_used_ms: AtomicU64,
    inflight: AtomicUsize,
    stderr: Arc<StderrLog>,
    progress: Mutex<HashMap<ProgressToken, ProgressRoute>>,
    retired: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Phase {
    starting: bool,
    failure: Option<String>,
    failed_at: Option<Instant>,
    last_exit: Option<String>,
}

struct Running {
    peer: Peer<RoleClient>,
    service: Mutex<Option<RunningService<RoleClient, Handler>>>,
    child: ChildHandle,
    started: Instant,
    /// Cancelled when this instance is finished (stopped or died).
    gone: CancellationToken,
}

impl Backend {
    pub fn new(
        spec: ServerConfig,
        idle_timeout: Duration,
        startup_timeout: Duration,
        cache: Arc<SchemaCache>,
        tools_changed: ToolsChanged,
    ) -> Arc<Self> {
        let spec_hash = spec.spec_hash();
        let cached = spec
            .enabled
            .then(|| cache.load(&spec.name, spec_hash))
            .flatten();
        Arc::new(Self {
            name: spec.name.clone(),
            spec,
            spec_hash,
            idle_timeout_ms: AtomicU64::new(idle_timeout.as_millis() as u64),
            startup_timeout,
            cache,
            tools_changed,
            epoch: Instant::now(),
            live: ArcSwapOption::empty(),
            start_lock: Arc::default(),
            phase: Mutex::default(),
            tools: ArcSwapOption::new(cached.map(|c| Arc::new(c.tools))),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            stderr: Arc::default(),
            progress: Mutex::default(),
            retired: Default::default(),
        })
    }

    pub fn spec_hash(&self) -> u64 {
        self.spec_hash
    }

    /// Changes the idle timeout of a backend kept across a reload (takes effect at the next check).
    pub fn set_idle_timeout(&self, timeout: Duration) {
        self.idle_timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    /// The tools known for this server (from the cache or the running server), if any.
    pub fn tools(&self) -> Option<Arc<Vec<Tool>>> {
        self.tools.load_full()
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Marks a backend that a reload removed or replaced: it finishes what it is doing but never
    /// starts again, so a request that still routes to it cannot resurrect the old spec.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
    }

    /// Starts the server now (e.g. `mcpgwctl start`), if it is not running.
    pub async fn start_now(self: &Arc<Self>) -> Result<(), BackendError> {
        self.ensure_running().await.map(|_| ())
    }

    /// False while a recent failed start should keep lists from retrying it on every call.
    pub fn discovery_due(&self, backoff: Duration) -> bool {
        let phase = self.phase.lock().unwrap();
        phase.failed_at.is_none_or(|at| at.elapsed() >= backoff)
    }

    pub fn is_running(&self) -> bool {
        self.live_instance().is_some()
    }

    /// Starts the server if needed and waits until it has answered `tools/list`, so that its
    /// tools are known. Used to discover servers that have no cache yet.
    pub async fn discover(self: &Arc<Self>) -> Result<Arc<Vec<Tool>>, BackendError> {
        self.ensure_running().await?;
        self.tools().ok_or_else(|| BackendError::Protocol {
            name: self.name.clone(),
            message: "listed no tools".into(),
        })
    }

    /// Calls a tool on the server (started if needed), with the server's own tool name.
    /// Cancelling `ct` cancels the request upstream; progress goes to `route`.
    pub async fn call_tool(
        self: &Arc<Self>,
        mut params: CallToolRequestParams,
        route: Option<ProgressRoute>,
        ct: CancellationToken,
    ) -> Result<CallToolResponse, McpError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.touch();
        self.inflight.fetch_add(1, Ordering::SeqCst);
        let result = self.call_inner(&mut params, route, ct).await;
        self.inflight.fetch_sub(1, Ordering::SeqCst);
        self.touch();
        let failed = match &result {
            Ok(CallToolResponse::Complete(r)) => r.is_error == Some(true),
            Ok(_) => false,
            Err(_) => true,
        };
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn call_inner(
        self: &Arc<Self>,
        params: &mut CallToolRequestParams,
        route: Option<ProgressRoute>,
        ct: CancellationToken,
    ) -> Result<CallToolResponse, McpError> {
        let running = tokio::select! {
            r = self.ensure_running() => r?,
            () = ct.cancelled() => return Err(cancelled()),
        };
        // rmcp sets its own progress token on every request; the client's is kept in the route.
        if let Some(meta) = params.meta.as_mut() {
            meta.remove("progressToken");
        }
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params.clone()));
        let handle = match running
            .peer
            .send_request_with_option(request, PeerRequestOptions::no_options())
            .await
        {
            Ok(handle) => handle,
            Err(e) => return Err(self.service_error(&running, e).await),
        };
        let token = handle.progress_token.clone();
        let request_id = handle.id.clone();
        let _route = route.map(|r| ProgressGuard::new(self, token, r));
        let response = tokio::select! {
            r = handle.await_response() => r,
            () = ct.cancelled() => {
                let peer = running.peer.clone();
                tokio::spawn(async move {
                    let _ = peer.notify_cancelled(CancelledNotificationParam::new(
                        Some(request_id),
                        Some("cancelled by the client".into()),
                    )).await;
                });
                return Err(cancelled());
            }
            () = running.gone.cancelled() => {
                return Err(self.gone_error(&running).await.into());
            }
        };
        match response {
            Ok(ServerResult::CallToolResult(r)) => Ok(CallToolResponse::Complete(r)),
            Ok(ServerResult::InputRequiredResult(r)) => Ok(CallToolResponse::InputRequired(r)),
            Ok(ServerResult::CreateTaskResult(r)) => Ok(CallToolResponse::Task(r)),
            Ok(other) => Err(McpError::internal_error(
                format!(
                    "server `{}` answered tools/call with an unexpected result: {other:?}",
                    self.name
                ),
                None,
            )),
            Err(e) => Err(self.service_error(&running, e).await),
        }
    }

    async fn service_error(&self, running: &Running, e: rmcp::service::ServiceError) -> McpError {
        match e {
            rmcp::service::ServiceError::McpError(e) => e,
            rmcp::service::ServiceError::TransportClosed
            | rmcp::service::ServiceError::TransportSend(_) => {
                self.gone_error(running).await.into()
            }
            other => BackendError::Protocol {
                name: self.name.clone(),
                message: other.to_string(),
            }
            .into(),
        }
    }

    async fn gone_error(&self, running: &Running) -> BackendError {
        let exit = tokio::time::timeout(Duration::from_secs(1), running.child.wait())
            .await
            .unwrap_or_else(|_| "no exit status yet".into());
        BackendError::Gone {
            name: self.name.clone(),
            exit,
        }
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_used_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Returns the running instance, starting one if there is none. Concurrent callers share
    /// one start; the start runs on its own task so a caller that goes away cannot abort it
    /// halfway for the others.
    async fn ensure_running(self: &Arc<Self>) -> Result<Arc<Running>, BackendError> {
        if let Some(running) = self.live_instance() {
            return Ok(running);
        }
        if !self.spec.enabled {
            return Err(BackendError::Disabled(
                self.name.clone(),
                self.spec
                    .disabled_reason
                    .clone()
                    .unwrap_or_else(|| "disabled in config".into()),
            ));
        }
        let guard = self.start_lock.clone().lock_owned().await;
        if let Some(running) = self.live_instance() {
            return Ok(running);
        }
        if self.retired.load(Ordering::SeqCst) {
            return Err(BackendError::Retired(self.name.clone()));
        }
        let this = self.clone();
        tokio::spawn(async move {
            let result = this.start().await;
            drop(guard);
            result
        })
        .await
        .unwrap_or_else(|e| {
            Err(BackendError::Start {
                name: self.name.clone(),
                reason: format!("start task failed: {e}"),
            })
        })
    }

    /// The running instance, unless it is finished or its connection broke (a crash the exit
    /// watcher has not processed yet must not swallow the next call).
    fn live_instance(&self) -> Option<Arc<Running>> {
        self.live
            .load_full()
            .filter(|running| !running.gone.is_cancelled() && !running.peer.is_transport_closed())
    }

    async fn start(self: &Arc<Self>) -> Result<Arc<Running>, BackendError> {
        {
            let mut phase = self.phase.lock().unwrap();
            phase.starting = true;
            phase.failure = None;
        }
        let timeout = self.startup_timeout;
        let result = match tokio::time::timeout(timeout, self.spawn_and_initialize()).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::StartTimeout {
                name: self.name.clone(),
                secs: timeout.as_secs_f64(),
            }),
        };
        let mut phase = self.phase.lock().unwrap();
        phase.starting = false;
        match result {
            Ok(running) => {
                tracing::info!(server = %self.name, pid = ?running.child.pid, "backend ready");
                Ok(running)
            }
            Err(e) => {
                tracing::warn!(server = %self.name, "{e}");
                phase.failure = Some(e.to_string());
                phase.failed_at = Some(Instant::now());
                self.errors.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    async fn spawn_and_initialize(self: &Arc<Self>) -> Result<Arc<Running>, BackendError> {
        let start_error = |reason: String| BackendError::Start {
            name: self.name.clone(),
            reason,
        };
        let (stdout, stdin, child) = child::spawn(&self.spec, self.stderr.clone())
            .map_err(|e| start_error(format!("cannot run `{}`: {e}", self.spec.command)))?;
        let transport = AsyncRwTransport::new_client(stdout, stdin).with_max_line_length(MAX_LINE);
        let handler = Handler {
            backend: Arc::downgrade(self),
        };
        let service = match handler.serve(transport).await {
            Ok(service) => service,
            Err(e) => {
                let exit = child.stop().await;
                let tail = self.stderr.tail(3).join(" | ");
                let detail = if tail.is_empty() {
                    String::new()
                } else {
                    format!("; stderr: {tail}")
                };
                return Err(start_error(format!("{e} ({exit}){detail}")));
            }
        };
        let peer = service.peer().clone();
        let tools = match peer.list_all_tools().await {
            Ok(tools) => tools,
            Err(e) => {
                drop(service);
                let exit = child.stop().await;
                return Err(start_error(format!("tools/list failed: {e} ({exit})")));
            }
        };
        let running = Arc::new(Running {
            peer,
            service: Mutex::new(Some(service)),
            child,
            started: Instant::now(),
            gone: CancellationToken::new(),
        });
        self.set_tools(tools);
        self.live.store(Some(running.clone()));
        self.touch();
        tokio::spawn(self.clone().watch(running.clone()));
        Ok(running)
    }

    /// Follows one running instance: notices its exit, and stops it when idle.
    async fn watch(self: Arc<Self>, running: Arc<Running>) {
        loop {
            let idle_ms = self.idle_timeout_ms.load(Ordering::Relaxed);
            let check = if idle_ms == 0 {
                Duration::from_secs(3600)
            } else {
                let since = self.epoch.elapsed().as_millis() as u64
                    - self.last_used_ms.load(Ordering::Relaxed);
                Duration::from_millis(idle_ms.saturating_sub(since).max(10))
            };
            tokio::select! {
                exit = running.child.wait() => {
                    tracing::warn!(server = %self.name, "backend exited: {exit}");
                    self.finish(&running, exit);
                    return;
                }
                () = running.gone.cancelled() => return,
                () = tokio::time::sleep(check) => {}
            }
            let idle_ms = self.idle_timeout_ms.load(Ordering::Relaxed);
            let since =
                self.epoch.elapsed().as_millis() as u64 - self.last_used_ms.load(Ordering::Relaxed);
            if idle_ms > 0 && since >= idle_ms && self.inflight.load(Ordering::SeqCst) == 0 {
                tracing::info!(server = %self.name, "stopping idle backend");
                self.stop_instance(&running).await;
                return;
            }
        }
    }

    fn finish(&self, running: &Arc<Running>, exit: String) {
        running.gone.cancel();
        self.phase.lock().unwrap().last_exit = Some(exit);
        // Only clear the slot if it still holds this instance (a new one may already be there).
        let current = self.live.load_full();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, running)) {
            self.live.store(None);
        }
    }

    async fn stop_instance(&self, running: &Arc<Running>) {
        let service = running.service.lock().unwrap().take();
        // Closing the MCP connection closes the child's stdin: the polite way to ask it to exit.
        if let Some(mut service) = service {
            let _ = service.close_with_timeout(Duration::from_millis(100)).await;
        }
        let exit = running.child.stop().await;
        self.finish(running, exit);
    }

    /// Stops the running instance, if any, and waits until its processes are gone.
    pub async fn stop(&self) {
        if let Some(running) = self.live.load_full() {
            self.stop_instance(&running).await;
        }
    }

    fn set_tools(&self, tools: Vec<Tool>) {
        let unchanged = self
            .tools
            .load()
            .as_deref()
            .is_some_and(|old| *old == tools);
        if unchanged {
            return;
        }
        let schema = CachedSchema { tools };
        self.cache.store(&self.name, self.spec_hash, &schema);
        self.tools.store(Some(Arc::new(schema.tools)));
        (self.tools_changed)();
    }

    pub fn status(&self) -> BackendStatus {
        let running = self.live_instance();
        let phase = self.phase.lock().unwrap();
        let state = if !self.spec.enabled {
            BackendState::Disabled
        } else if running.is_some() {
            BackendState::Ready
        } else if phase.starting {
            BackendState::Starting
        } else if phase.failure.is_some() {
            BackendState::Failed
        } else {
            BackendState::Stopped
        };
        let reason = match state {
            BackendState::Disabled => self.spec.disabled_reason.clone(),
            BackendState::Failed => phase.failure.clone(),
            _ => None,
        };
        let pid = running.as_ref().and_then(|r| r.child.pid);
        let last_used = self.last_used_ms.load(Ordering::Relaxed);
        BackendStatus {
            name: self.name.clone(),
            state,
            reason,
            pid,
            rss_bytes: pid.and_then(child::rss_bytes),
            uptime_ms: running
                .as_ref()
                .map(|r| r.started.elapsed().as_millis() as u64),
            idle_ms: (last_used > 0)
                .then(|| (self.epoch.elapsed().as_millis() as u64).saturating_sub(last_used)),
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            tools: self.tools().map(|t| t.len()),
            last_exit: phase.last_exit.clone(),
            stderr_tail: self.stderr.tail(5),
        }
    }

    pub fn stderr_tail(&self, n: usize) -> Vec<String> {
        self.stderr.tail(n)
    }
}

fn cancelled() -> McpError {
    McpError::new(
        rmcp::model::ErrorCode::INTERNAL_ERROR,
        "request cancelled",
        None,
    )
}

/// Registers a progress route for the lifetime of one call.
struct ProgressGuard<'a> {
    backend: &'a Backend,
    token: ProgressToken,
}

impl<'a> ProgressGuard<'a> {
    fn new(backend: &'a Backend, token: ProgressToken, route: ProgressRoute) -> Self {
        backend
            .progress
            .lock()
            .unwrap()
            .insert(token.clone(), route);
        Self { backend, token }
    }
}

impl Drop for ProgressGuard<'_> {
    fn drop(&mut self) {
        self.backend.progress.lock().unwrap().remove(&self.token);
    }
}

/// What a backend sends us: progress for a session's call, changes to its tool list.
struct Handler {
    backend: Weak<Backend>,
}

impl ClientHandler for Handler {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("mcpgw", env!("CARGO_PKG_VERSION")),
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let Some(backend) = self.backend.upgrade() else {
            return;
        };
        let route = backend
            .progress
            .lock()
            .unwrap()
            .get(&params.progress_token)
            .cloned();
        if let Some(route) = route {
            let mut params = params;
            params.progress_token = route.token;
            let _ = route.peer.notify_progress(params).await;
        }
    }

    async fn on_tool_list_changed(&self, context: NotificationContext<RoleClient>) {
        let Some(backend) = self.backend.upgrade() else {
            return;
        };
        match context.peer.list_all_tools().await {
            Ok(tools) => backend.set_tools(tools),
            Err(e) => tracing::warn!(server = %backend.name, "refreshing tools failed: {e}"),
        }
    }
}
