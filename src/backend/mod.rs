//! One backend MCP server, shared by every session: started on first use, stopped when idle.
//!
//! A [`Backend`] is created per configured server when a routing table is built and reused by
//! later tables while its spec is unchanged. It owns at most one running instance at a time:
//! concurrent first calls share one start, a crash turns into an error for the calls that needed
//! it (the next call starts it again), and the idle watcher stops it after `idle_timeout`.
//! It never blocks the daemon: a backend that fails only fails its own calls.
//!
//! Forwarding requests lives in [`call`], what the server sends us in [`handler`].

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

pub mod cache;
pub mod call;
pub mod child;
mod handler;
pub(crate) mod upstream;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    ClientRequest, LoggingLevel, LoggingMessageNotificationParam, ProgressToken,
    ResourceUpdatedNotificationParam, SetLevelRequest, SetLevelRequestParams, SubscribeRequest,
    SubscribeRequestParams,
};
use rmcp::service::{Peer, RoleClient, RoleServer, RunningServiceCancellationToken};
use tokio_util::sync::CancellationToken;

use crate::config::ServerConfig;
use crate::protocol::{BackendState, BackendStatus};
use cache::{CachedSchema, SchemaCache};
use call::Caller;
use child::{ChildHandle, StderrLog};

/// What a backend reports to the gateway. Held weakly: the gateway owns the backends.
pub trait Events: Send + Sync {
    /// The backend's lists (tools, prompts, resources, templates) changed.
    fn schema_changed(&self);
    /// `owner` is the session of a per-client instance: only it may hear from its instance.
    fn resource_updated(
        &self,
        backend: &str,
        owner: Option<u64>,
        params: ResourceUpdatedNotificationParam,
    );
    fn log_message(
        &self,
        backend: &str,
        owner: Option<u64>,
        params: LoggingMessageNotificationParam,
    );
    /// The most verbose log level any session asked for, to set on backends that start.
    fn log_level(&self) -> Option<LoggingLevel>;
}

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

pub struct Backend {
    pub name: String,
    pub spec: ServerConfig,
    spec_hash: u64,
    idle_timeout_ms: AtomicU64,
    /// 0 = no limit.
    call_timeout_ms: AtomicU64,
    startup_timeout: Duration,
    cache: Arc<SchemaCache>,
    events: Weak<dyn Events>,
    epoch: Instant,
    live: ArcSwapOption<Running>,
    start_lock: Arc<tokio::sync::Mutex<()>>,
    phase: Mutex<Phase>,
    schema: ArcSwapOption<CachedSchema>,
    calls: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since `epoch` when the last call started or ended; 0 = never used.
    last_used_ms: AtomicU64,
    inflight: AtomicUsize,
    stderr: Arc<StderrLog>,
    /// Sessions with a request in flight here, oldest first: where progress and server→client
    /// requests go.
    callers: Mutex<BTreeMap<u64, Caller>>,
    next_call: AtomicU64,
    /// rmcp's progress token of each in-flight request → its entry in `callers`.
    progress: Mutex<HashMap<ProgressToken, u64>>,
    /// Resource URIs subscribed upstream (on behalf of one or more sessions).
    subscriptions: Mutex<BTreeSet<String>>,
    retired: AtomicBool,
    /// For an instance of a `scope: per-client` server: the one session it serves. Its roots
    /// are that client's, and server→client requests always go to it.
    owner: Option<(u64, Peer<RoleServer>)>,
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
    /// Closes the MCP connection (for stdio: the child's stdin).
    close: Mutex<Option<RunningServiceCancellationToken>>,
    /// Cancelled when rmcp's service loop ended: the connection is closed.
    ended: CancellationToken,
    /// The process, for stdio backends.
    child: Option<ChildHandle>,
    started: Instant,
    /// Cancelled when this instance is finished (stopped or died).
    gone: CancellationToken,
    /// The fast path's side of the connection (stdio only).
    fast: Option<Arc<upstream::stdio::Link>>,
}

impl Running {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid)
    }

    /// Waits until the instance is over: its process exited, or (remote) its connection closed.
    async fn exited(&self) -> String {
        match &self.child {
            Some(child) => child.wait().await,
            None => {
                self.ended.cancelled().await;
                "connection closed".into()
            }
        }
    }
}

impl Backend {
    pub fn new(
        spec: ServerConfig,
        config: &crate::config::Config,
        cache: Arc<SchemaCache>,
        events: Weak<dyn Events>,
        owner: Option<(u64, Peer<RoleServer>)>,
    ) -> Arc<Self> {
        let spec_hash = spec.spec_hash();
        let idle_timeout = spec.effective_idle_timeout(config.idle_timeout);
        let call_timeout = spec.effective_call_timeout(config.call_timeout);
        let cached = spec
            .enabled
            .then(|| cache.load(&spec.name, spec_hash))
            .flatten();
        Arc::new(Self {
            name: spec.name.clone(),
            spec,
            spec_hash,
            idle_timeout_ms: AtomicU64::new(0),
            call_timeout_ms: AtomicU64::new(0),
            startup_timeout: config.startup_timeout,
            cache,
            events,
            epoch: Instant::now(),
            live: ArcSwapOption::empty(),
            start_lock: Arc::default(),
            phase: Mutex::default(),
            schema: ArcSwapOption::new(cached.map(Arc::new)),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
            inflight: AtomicUsize::new(0),
            stderr: Arc::default(),
            callers: Mutex::default(),
            next_call: AtomicU64::new(0),
            progress: Mutex::default(),
            subscriptions: Mutex::default(),
            retired: AtomicBool::new(false),
            owner,
        })
        .with_timeouts(idle_timeout, call_timeout)
    }

    fn with_timeouts(self: Arc<Self>, idle: Duration, call: Duration) -> Arc<Self> {
        self.set_timeouts(idle, call);
        self
    }

    pub fn spec_hash(&self) -> u64 {
        self.spec_hash
    }

    /// Sets the idle and call timeouts (again, for a backend kept across a reload). The idle
    /// timeout takes effect at the watcher's next check, the call timeout for the next request.
    pub fn set_timeouts(&self, idle: Duration, call: Duration) {
        self.idle_timeout_ms
            .store(idle.as_millis() as u64, Ordering::Relaxed);
        self.call_timeout_ms
            .store(call.as_millis() as u64, Ordering::Relaxed);
    }

    /// What this server lists (from the cache or the running server), if known yet.
    pub fn schema(&self) -> Option<Arc<CachedSchema>> {
        self.schema.load_full()
    }

    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::SeqCst)
    }

    /// Takes a backend that a reload removed or replaced (or a departed session's instance)
    /// out of service: it never starts again, so a request that still routes to it cannot
    /// resurrect the old spec; in the background its in-flight calls get `grace` to finish,
    /// then it is stopped.
    pub fn retire(self: Arc<Self>, grace: Duration) {
        self.retired.store(true, Ordering::SeqCst);
        tokio::spawn(async move {
            self.drain(grace).await;
            self.stop().await;
        });
    }

    /// Waits until no request is in flight here, or `grace` has passed.
    pub async fn drain(&self, grace: Duration) {
        let deadline = tokio::time::Instant::now() + grace;
        while self.inflight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the server now, if it is not running, and returns once it has answered its lists
    /// (`mcpgwctl start`, and discovery of servers that have no cache yet).
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

    /// The running instance's fast path, if it is a stdio server that is up.
    pub(crate) fn fast_link(&self) -> Option<Arc<upstream::stdio::Link>> {
        self.live_instance()
            .and_then(|running| running.fast.clone())
    }

    /// 0 = no limit.
    pub(crate) fn call_timeout_ms(&self) -> u64 {
        self.call_timeout_ms.load(Ordering::Relaxed)
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
                tracing::info!(server = %self.name, pid = ?running.pid(), "backend ready");
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
        let upstream::Connected {
            service,
            child,
            fast,
        } = upstream::connect(self).await?;
        let peer = service.peer().clone();
        let close = service.cancellation_token();
        let ended = CancellationToken::new();
        let on_end = ended.clone();
        tokio::spawn(async move {
            let _ = service.waiting().await;
            on_end.cancel();
        });
        let schema = match fetch_schema(&peer).await {
            Ok(schema) => schema,
            Err(e) => {
                close.cancel();
                let exit = match &child {
                    Some(child) => child.stop().await,
                    None => "connection closed".into(),
                };
                return Err(BackendError::Start {
                    name: self.name.clone(),
                    reason: format!("listing its capabilities failed: {e} ({exit})"),
                });
            }
        };
        let running = Arc::new(Running {
            peer,
            close: Mutex::new(Some(close)),
            ended,
            child,
            started: Instant::now(),
            gone: CancellationToken::new(),
            fast,
        });
        self.resume_session_state(&running).await;
        self.set_schema(schema);
        self.live.store(Some(running.clone()));
        self.touch();
        tokio::spawn(self.clone().watch(running.clone()));
        Ok(running)
    }

    /// Re-applies what sessions asked of this server before it (re)started: the log level and
    /// resource subscriptions.
    async fn resume_session_state(&self, running: &Running) {
        let capabilities = running
            .peer
            .peer_info()
            .map(|info| info.capabilities.clone());
        let supports_logging = capabilities.as_ref().is_some_and(|c| c.logging.is_some());
        if let (true, Some(level)) = (
            supports_logging,
            self.events.upgrade().and_then(|e| e.log_level()),
        ) {
            let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(
                SetLevelRequestParams::new(level),
            ));
            if let Err(e) = running.peer.send_request(request).await {
                tracing::debug!(server = %self.name, "logging/setLevel failed: {e}");
            }
        }
        let uris: Vec<String> = self.subscriptions.lock().unwrap().iter().cloned().collect();
        for uri in uris {
            let request = ClientRequest::SubscribeRequest(SubscribeRequest::new(
                SubscribeRequestParams::new(uri),
            ));
            if let Err(e) = running.peer.send_request(request).await {
                tracing::warn!(server = %self.name, "re-subscribing after a restart failed: {e}");
            }
        }
    }

    /// Follows one running instance: notices its exit, and stops it when idle.
    async fn watch(self: Arc<Self>, running: Arc<Running>) {
        loop {
            let idle_ms = self.idle_timeout_ms.load(Ordering::Relaxed);
            let check = if idle_ms == 0 {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(idle_ms.saturating_sub(self.idle_for_ms()).max(10))
            };
            tokio::select! {
                exit = running.exited() => {
                    // A stop takes the close handle first: an exit then is the one we asked for.
                    if running.close.lock().unwrap().is_some() {
                        tracing::warn!(server = %self.name, "backend exited: {exit}");
                    } else {
                        tracing::info!(server = %self.name, "backend stopped: {exit}");
                    }
                    self.finish(&running, exit);
                    return;
                }
                () = running.gone.cancelled() => return,
                () = tokio::time::sleep(check) => {}
            }
            let idle_ms = self.idle_timeout_ms.load(Ordering::Relaxed);
            // A subscription is a standing request for updates: the server must keep running.
            let quiet = self.inflight.load(Ordering::SeqCst) == 0
                && self.subscriptions.lock().unwrap().is_empty();
            if idle_ms > 0 && self.idle_for_ms() >= idle_ms && quiet {
                tracing::info!(server = %self.name, "stopping idle backend");
                self.stop_instance(&running).await;
                return;
            }
        }
    }

    fn idle_for_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_used_ms.load(Ordering::Relaxed))
    }

    fn finish(&self, running: &Arc<Running>, exit: String) {
        running.gone.cancel();
        if let Some(link) = &running.fast {
            let gone = BackendError::Gone {
                name: self.name.clone(),
                exit: exit.clone(),
            };
            link.fail_all(&gone.into());
        }
        self.phase.lock().unwrap().last_exit = Some(exit);
        // Only clear the slot if it still holds this instance (a new one may already be there).
        let current = self.live.load_full();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, running)) {
            self.live.store(None);
        }
    }

    async fn stop_instance(&self, running: &Arc<Running>) {
        // Closing the MCP connection closes the child's stdin: the polite way to ask it to exit.
        if let Some(close) = running.close.lock().unwrap().take() {
            close.cancel();
        }
        let exit = match &running.child {
            Some(child) => child.stop().await,
            None => {
                let _ =
                    tokio::time::timeout(Duration::from_secs(2), running.ended.cancelled()).await;
                "stopped".into()
            }
        };
        self.finish(running, exit);
    }

    /// Stops the running instance, if any, and waits until its processes are gone.
    pub async fn stop(&self) {
        if let Some(running) = self.live.load_full() {
            self.stop_instance(&running).await;
        }
    }

    fn set_schema(&self, schema: CachedSchema) {
        let unchanged = self
            .schema
            .load()
            .as_deref()
            .is_some_and(|old| *old == schema);
        if unchanged {
            return;
        }
        self.cache.store(&self.name, self.spec_hash, &schema);
        self.schema.store(Some(Arc::new(schema)));
        if let Some(events) = self.events.upgrade() {
            events.schema_changed();
        }
    }

    /// Re-lists what the server offers (after it said its lists changed).
    async fn refresh_schema(&self, peer: &Peer<RoleClient>) {
        match fetch_schema(peer).await {
            Ok(schema) => self.set_schema(schema),
            Err(e) => tracing::warn!(server = %self.name, "refreshing lists failed: {e}"),
        }
    }

    /// The session a per-client instance serves.
    pub fn owner_session(&self) -> Option<u64> {
        self.owner.as_ref().map(|(session, _)| *session)
    }

    /// Tells the running server that its client's roots changed (per-client instances only).
    pub async fn roots_changed(&self) {
        if self.owner.is_none() {
            return;
        }
        if let Some(running) = self.live_instance() {
            let _ = running.peer.notify_roots_list_changed().await;
        }
    }

    /// Forwards a session's log level to the running server, if it logs.
    pub async fn set_log_level(&self, level: LoggingLevel) {
        let Some(running) = self.live_instance() else {
            return;
        };
        let logs = running
            .peer
            .peer_info()
            .is_some_and(|info| info.capabilities.logging.is_some());
        if logs {
            let request = ClientRequest::SetLevelRequest(SetLevelRequest::new(
                SetLevelRequestParams::new(level),
            ));
            let _ = running.peer.send_request(request).await;
        }
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
        let pid = running.as_ref().and_then(|r| r.pid());
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
            idle_ms: (last_used > 0).then(|| self.idle_for_ms()),
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            inflight: self.inflight.load(Ordering::SeqCst) as u64,
            tools: self.schema().map(|s| s.tools.len()),
            last_exit: phase.last_exit.clone(),
            stderr_tail: self.stderr.tail(5),
        }
    }

    pub fn stderr_tail(&self, n: usize) -> Vec<String> {
        self.stderr.tail(n)
    }
}

/// Lists everything the server's capabilities say it has.
async fn fetch_schema(
    peer: &Peer<RoleClient>,
) -> Result<CachedSchema, rmcp::service::ServiceError> {
    let capabilities = peer.peer_info().map(|info| info.capabilities.clone());
    let has =
        |f: fn(&rmcp::model::ServerCapabilities) -> bool| capabilities.as_ref().is_some_and(f);
    let (tools, prompts, resources, templates) = tokio::join!(
        async {
            if has(|c| c.tools.is_some()) {
                peer.list_all_tools().await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if has(|c| c.prompts.is_some()) {
                peer.list_all_prompts().await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if has(|c| c.resources.is_some()) {
                peer.list_all_resources().await
            } else {
                Ok(Vec::new())
            }
        },
        async {
            if has(|c| c.resources.is_some()) {
                peer.list_all_resource_templates().await
            } else {
                Ok(Vec::new())
            }
        },
    );
    Ok(CachedSchema {
        capabilities,
        tools: tools?,
        prompts: prompts?,
        resources: resources?,
        resource_templates: templates?,
    })
}
