//! A backend's life: the shared lazy start (on its own task), the watcher that notices an exit
//! and stops the idle instance, stop, retire and drain, and keeping what the server lists
//! current (schema cache, re-listing after list_changed, re-applying log level and
//! subscriptions after a restart).

// Logging and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28 protocol, but
// every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use rmcp::model::{
    ClientRequest, LoggingLevel, SetLevelRequest, SetLevelRequestParams, SubscribeRequest,
    SubscribeRequestParams,
};
use rmcp::service::{Peer, RoleClient, RunningServiceCancellationToken};
use tokio_util::sync::CancellationToken;

use super::cache::CachedSchema;
use super::child::ChildHandle;
use super::exit_note;
use super::listing::fetch_schema;
use super::upstream::{self, stdio::Link};
use super::{Backend, BackendError, inflight};

/// The running instance, if any, and what happened to the last one.
#[derive(Default)]
pub(super) struct Life {
    pub live: ArcSwapOption<Running>,
    start_lock: Arc<tokio::sync::Mutex<()>>,
    pub phase: Mutex<Phase>,
    /// Set once a reload replaced this backend (or its session left): it never starts again.
    retired: AtomicBool,
}

#[derive(Default)]
pub(super) struct Phase {
    pub starting: bool,
    pub failure: Option<String>,
    /// What the process of the failed start said on stderr ([`exit_note`]).
    pub failure_note: Option<String>,
    pub failed_at: Option<Instant>,
    pub last_exit: Option<String>,
    /// What the last process said on stderr, if it ended abnormally ([`exit_note`]).
    pub exit_note: Option<String>,
}

pub(super) struct Running {
    pub peer: Peer<RoleClient>,
    /// Closes the MCP connection (for stdio: the child's stdin).
    pub close: Mutex<Option<RunningServiceCancellationToken>>,
    /// Cancelled when rmcp's service loop ended: the connection is closed.
    pub ended: CancellationToken,
    /// The process, for stdio backends.
    pub child: Option<ChildHandle>,
    pub started: Instant,
    /// Cancelled when this instance is finished (stopped or died).
    pub gone: CancellationToken,
    /// The byte path's side of the connection (stdio only).
    pub link: Option<Arc<Link>>,
    /// Why the gateway ended the connection itself, if it did (see [`upstream::Fault`]).
    pub fault: upstream::Fault,
    /// Where this instance's stderr lines start in the backend's log.
    pub stderr_mark: u64,
}

impl Running {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.pid)
    }

    /// Waits until the instance is over: its process exited, or (remote) its connection closed.
    pub async fn exited(&self) -> String {
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
    /// Takes a backend that a reload removed or replaced (or a departed session's instance)
    /// out of service: it never starts again, so a request that still routes to it cannot
    /// resurrect the old spec; in the background its in-flight calls get `grace` to finish,
    /// then it is stopped.
    pub fn retire(self: Arc<Self>, grace: Duration) {
        self.life.retired.store(true, Ordering::SeqCst);
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
        let phase = self.life.phase.lock().unwrap();
        phase.failed_at.is_none_or(|at| at.elapsed() >= backoff)
    }

    /// Returns the running instance, starting one if there is none. Concurrent callers share
    /// one start; the start runs on its own task so a caller that goes away cannot abort it
    /// halfway for the others.
    pub(super) async fn ensure_running(self: &Arc<Self>) -> Result<Arc<Running>, BackendError> {
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
        let guard = self.life.start_lock.clone().lock_owned().await;
        if let Some(running) = self.live_instance() {
            return Ok(running);
        }
        if self.life.retired.load(Ordering::SeqCst) {
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
    pub(super) fn live_instance(&self) -> Option<Arc<Running>> {
        self.life
            .live
            .load_full()
            .filter(|running| !running.gone.is_cancelled() && !running.peer.is_transport_closed())
    }

    /// Why its last start failed, while no instance has started since.
    pub fn failure(&self) -> Option<String> {
        if self.live_instance().is_some() {
            return None;
        }
        self.life.phase.lock().unwrap().failure.clone()
    }

    async fn start(self: &Arc<Self>) -> Result<Arc<Running>, BackendError> {
        {
            let mut phase = self.life.phase.lock().unwrap();
            phase.starting = true;
            phase.failure = None;
        }
        let timeout = self.limits.startup_timeout;
        let mark = self.stderr.mark();
        let result = match tokio::time::timeout(timeout, self.spawn_and_initialize(mark)).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::StartTimeout {
                name: self.name.clone(),
                secs: timeout.as_secs_f64(),
            }),
        };
        let mut phase = self.life.phase.lock().unwrap();
        phase.starting = false;
        match result {
            Ok(running) => {
                tracing::info!(server = %self.name, pid = ?running.pid(), "backend ready");
                Ok(running)
            }
            Err(e) => {
                tracing::warn!(server = %self.name, "{e}");
                // Shown in status and to MCP clients ("unknown tool"): a start error may quote
                // the server's own answer (up to max_message) or a URL with its keys.
                phase.failure = Some(bounded_failure(&e.to_string()));
                phase.failure_note = self.exit_note(mark);
                phase.failed_at = Some(Instant::now());
                self.stats.count_error();
                Err(e)
            }
        }
    }

    async fn spawn_and_initialize(
        self: &Arc<Self>,
        stderr_mark: u64,
    ) -> Result<Arc<Running>, BackendError> {
        let roots_before = self.roots_answers();
        self.roots.starting.store(true, Ordering::Relaxed);
        self.prefetch_roots();
        let upstream::Connected {
            service,
            child,
            link,
            fault,
        } = upstream::connect(self).await?;
        let peer = service.peer().clone();
        let close = service.cancellation_token();
        let ended = CancellationToken::new();
        let on_end = ended.clone();
        tokio::spawn(async move {
            let _ = service.waiting().await;
            on_end.cancel();
        });
        let plugin_host = self.spec.plugin.is_some();
        let schema = match fetch_schema(&self.name, &peer, link.as_deref(), plugin_host).await {
            Ok(schema) => schema,
            Err(e) => {
                close.cancel();
                let exit = match &child {
                    Some(child) => child.stop().await,
                    None => "connection closed".into(),
                };
                let why = fault.get().map(|why| format!("; it {why}"));
                return Err(BackendError::Start {
                    name: self.name.clone(),
                    reason: crate::config::redact_urls(&format!(
                        "listing its capabilities failed: {e} ({exit}){}",
                        why.unwrap_or_default()
                    ))
                    .into_owned(),
                });
            }
        };
        self.wait_for_roots(roots_before).await;
        let running = Arc::new(Running {
            peer,
            close: Mutex::new(Some(close)),
            ended,
            child,
            started: Instant::now(),
            gone: CancellationToken::new(),
            link,
            fault,
            stderr_mark,
        });
        self.resume_session_state(&running).await;
        self.set_schema(schema);
        self.life.live.store(Some(running.clone()));
        self.stats.touch();
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
            let idle_ms = self.limits.idle_timeout_ms.load(Ordering::Relaxed);
            let check = if idle_ms == 0 {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(idle_ms.saturating_sub(self.stats.idle_for_ms()).max(10))
            };
            tokio::select! {
                exit = running.exited() => {
                    // A stop takes the close handle first: an exit then is the one we asked for.
                    let mut note = None;
                    if let Some(why) = running.fault.get() {
                        tracing::warn!(server = %self.name, "backend stopped, it {why}: {exit}");
                    } else if running.close.lock().unwrap().is_some() {
                        let crashed = running
                            .child
                            .as_ref()
                            .is_some_and(|child| child.succeeded() == Some(false));
                        // Not logged: stderr is the server's text, and may carry its secrets.
                        note = crashed.then(|| self.exit_note(running.stderr_mark)).flatten();
                        tracing::warn!(server = %self.name, "backend exited: {exit}");
                    } else {
                        tracing::info!(server = %self.name, "backend stopped: {exit}");
                    }
                    self.finish(&running, exit, note);
                    return;
                }
                () = running.gone.cancelled() => return,
                () = tokio::time::sleep(check) => {}
            }
            let idle_ms = self.limits.idle_timeout_ms.load(Ordering::Relaxed);
            // A subscription is a standing request for updates: the server must keep running.
            let quiet = self.callers.count() == 0 && self.subscriptions.lock().unwrap().is_empty();
            if idle_ms > 0 && self.stats.idle_for_ms() >= idle_ms && quiet {
                tracing::info!(server = %self.name, "stopping idle backend");
                self.stop_instance(&running).await;
                return;
            }
        }
    }

    /// What the instance whose stderr starts at `mark` said that looks like an error.
    fn exit_note(&self, mark: u64) -> Option<String> {
        exit_note::pick(&self.stderr.since(mark, exit_note::LINES))
    }

    /// Records the end of `running`: `exit` as status's last exit, with `note` if it ended
    /// abnormally of itself.
    fn finish(&self, running: &Arc<Running>, exit: String, note: Option<String>) {
        running.gone.cancel();
        if let Some(link) = &running.link {
            let gone = inflight::gone_now(&self.name, &running.fault, exit.clone());
            link.fail_all(&gone.into());
        }
        let exit = match running.fault.get() {
            Some(why) => format!("{exit} (stopped: it {why})"),
            None => exit,
        };
        let mut phase = self.life.phase.lock().unwrap();
        phase.last_exit = Some(exit);
        phase.exit_note = note;
        drop(phase);
        // Only clear the slot if it still holds this instance (a new one may already be there).
        let current = self.life.live.load_full();
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, running)) {
            self.life.live.store(None);
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
        self.finish(running, exit, None);
    }

    /// Stops the running instance, if any, and waits until its processes are gone.
    pub async fn stop(&self) {
        if let Some(running) = self.life.live.load_full() {
            self.stop_instance(&running).await;
        }
    }

    pub(super) fn set_schema(&self, mut schema: CachedSchema) {
        schema.asks_roots |= self.roots.asked.load(Ordering::Relaxed)
            || self.schema().is_some_and(|old| old.asks_roots);
        let unchanged = self
            .schema
            .load()
            .as_deref()
            .is_some_and(|old| *old == schema);
        if unchanged {
            return;
        }
        // Not their text: an exception's message may carry what should stay out of the log.
        if !schema.problems.is_empty() {
            tracing::warn!(
                server = %self.name,
                problems = schema.problems.len(),
                "plugins that do not import or tools skipped: `mcpgwctl status` names them"
            );
        }
        // The cache holds what the table's backend discovers (with every capability a client
        // may have); a per-client instance's lists follow its one client's. An instance that
        // lists a tool its table's backend does not know (the server was upgraded) has that
        // backend discover again, so that clients see it.
        match &self.owner {
            None => self.cache.store(&self.name, self.spec_hash, &schema),
            Some(owner) => {
                if let Some(template) = owner.template.upgrade()
                    && let Some(known) = template.schema()
                    && schema
                        .tools
                        .iter()
                        .any(|t| !known.tools.iter().any(|k| k.name == t.name))
                {
                    tracing::info!(
                        server = %self.name,
                        "an instance lists tools the lists clients see lack: discovering again"
                    );
                    tokio::spawn(async move {
                        let _ = template.start_now().await;
                    });
                }
            }
        }
        self.schema.store(Some(Arc::new(schema)));
        if let Some(events) = self.events.upgrade() {
            events.schema_changed();
        }
    }

    /// Re-lists what the server offers (after it said its lists changed).
    pub(super) async fn refresh_schema(&self, peer: &Peer<RoleClient>, link: Option<&Link>) {
        match fetch_schema(&self.name, peer, link, self.spec.plugin.is_some()).await {
            Ok(schema) => self.set_schema(schema),
            Err(e) => tracing::warn!(server = %self.name, "refreshing lists failed: {e}"),
        }
    }

    /// Tells the running server that its client's roots changed (per-client instances only).
    pub async fn roots_changed(&self) {
        if self.owner.is_none() {
            return;
        }
        self.forget_client_roots();
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
}

/// A start failure as it is kept: URLs cut to their origin, at most 1 KiB.
fn bounded_failure(text: &str) -> String {
    const MAX: usize = 1024;
    let text = crate::config::redact_urls(text);
    if text.len() <= MAX {
        return text.into_owned();
    }
    format!("{}…", crate::config::cut_at(&text, MAX))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_start_failure_is_kept_redacted_and_bounded() {
        let kept = super::bounded_failure("cannot connect to https://h/mcp?token=SECRET");
        assert!(!kept.contains("SECRET"), "{kept}");
        let long = super::bounded_failure(&"é".repeat(2000));
        assert!(long.len() <= 1024 + "…".len(), "{}", long.len());
        assert!(long.ends_with('…'));
    }
}
