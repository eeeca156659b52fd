//! Upstream: one backend MCP server, shared by every session: started on first use, stopped
//! when idle.
//!
//! A [`Backend`] is created per configured server when a routing table is built and reused by
//! later tables while its spec is unchanged. It owns at most one running instance at a time:
//! concurrent first calls share one start, a crash turns into an error for the calls that needed
//! it (the next call starts it again), and the idle watcher stops it after `idle_timeout`.
//! It never blocks the daemon: a backend that fails only fails its own calls. The files:
//! - [`lifecycle`]: start, watch, idle stop, stop, retire, drain, re-listing; [`listing`]:
//!   asking a server for its lists;
//! - [`inflight`]: the one record of a request in flight, whichever path forwards it;
//! - [`call`]: forwarding a request through rmcp's client (the byte path's side is
//!   [`upstream::stdio`]);
//! - [`handler`]: what the server sends us (progress, logs, server→client requests);
//! - [`upstream`]: one file per transport; [`child`]: the process; [`stderr`]: its stderr's
//!   newest lines; [`cache`]: the schema cache, of [`listed`] items (what rmcp's types do
//!   not know kept aside); [`status`]: counters and the status record,
//!   with [`groups`] (the memory of each backend's process group, one scan for all) and
//!   [`exit_note`] (the stderr line that says why a process ended).
//!
//! **Architecture invariant:** nothing here knows sessions, HTTP or the gateway: what the
//! gateway must hear goes through the [`BackendEvents`] trait, and a request's client is a [`Caller`].

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

pub mod cache;
mod call;
mod child;
pub mod command;
mod exit_note;
pub mod groups;
mod handler;
mod inflight;
mod lifecycle;
pub mod listed;
mod listing;
mod roots;
mod status;
mod stderr;
pub(crate) mod upstream;

pub use inflight::{Caller, ClientIdentity, EnvOf, Owner, forwarded_meta};

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use rmcp::ErrorData as McpError;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};

use crate::config::ServerConfig;
use cache::{CachedSchema, SchemaCache};
use stderr::StderrLog;

/// What a backend reports to the gateway. Held weakly: the gateway owns the backends.
pub trait BackendEvents: Send + Sync {
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
    /// The gateway ended the connection itself, `why` being what the server did ("sent a
    /// message over max_message (64 MiB)").
    #[error("server `{name}` {why} and was stopped ({exit}); the next call starts it again")]
    Stopped {
        name: String,
        why: String,
        exit: String,
    },
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
    /// Timeouts and sizes, which a reload may change.
    limits: Limits,
    /// What the server lists (tools, prompts, resources, templates), once known.
    schema: ArcSwapOption<CachedSchema>,
    cache: Arc<SchemaCache>,
    /// The running instance and how it got there, see [`lifecycle`].
    life: lifecycle::Life,
    /// Requests in flight, oldest first, see [`inflight`].
    callers: inflight::Callers,
    /// Counters for status, see [`status`].
    stats: status::Stats,
    stderr: Arc<StderrLog>,
    /// Resource URIs subscribed upstream (on behalf of one or more sessions).
    subscriptions: Mutex<BTreeSet<String>>,
    events: Weak<dyn BackendEvents>,
    /// For an instance of a `scope: per-client` server: the one client it serves. Its roots
    /// are that client's, and server→client requests go to it.
    owner: Option<Owner>,
    /// A per-client instance's roots, see [`roots`].
    roots: roots::Roots,
}

struct Limits {
    idle_timeout_ms: AtomicU64,
    /// 0 = no limit.
    call_timeout_ms: AtomicU64,
    startup_timeout: Duration,
    /// The longest message the server may send; shared with its running transport, which
    /// reads it for every message (so a reload's change applies at once).
    max_message: Arc<AtomicUsize>,
}

impl Backend {
    pub fn new(
        spec: ServerConfig,
        config: &crate::config::Config,
        cache: Arc<SchemaCache>,
        events: Weak<dyn BackendEvents>,
        owner: Option<Owner>,
    ) -> Arc<Self> {
        let spec_hash = spec.spec_hash();
        // A session's own instance holds that session's state (a browser, a shell, a thought
        // history): it lives as long as the session, unless the server sets its own
        // idle_timeout. A stateless client's has no end but idleness.
        let idle_timeout = match &owner {
            Some(owner) if !owner.follows_calls && spec.idle_timeout.is_none() => Duration::ZERO,
            _ => spec.effective_idle_timeout(config.idle_timeout),
        };
        let call_timeout = spec.effective_call_timeout(config.call_timeout);
        let max_message = spec.effective_max_message(config.max_message);
        let cached = spec
            .enabled
            .then(|| cache.load(&spec.name, spec_hash))
            .flatten();
        Arc::new(Self {
            name: spec.name.clone(),
            spec,
            spec_hash,
            limits: Limits {
                idle_timeout_ms: AtomicU64::new(0),
                call_timeout_ms: AtomicU64::new(0),
                startup_timeout: config.startup_timeout,
                max_message: Arc::new(AtomicUsize::new(max_message)),
            },
            schema: ArcSwapOption::new(cached.map(Arc::new)),
            cache,
            life: lifecycle::Life::default(),
            callers: inflight::Callers::default(),
            stats: status::Stats::default(),
            stderr: Arc::default(),
            subscriptions: Mutex::default(),
            events,
            owner,
            roots: roots::Roots::default(),
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
        self.limits
            .idle_timeout_ms
            .store(idle.as_millis() as u64, Ordering::Relaxed);
        self.limits
            .call_timeout_ms
            .store(call.as_millis() as u64, Ordering::Relaxed);
    }

    /// Sets the message size limit (again, for a backend kept across a reload); it applies from
    /// the next message on.
    pub fn set_max_message(&self, bytes: usize) {
        self.limits.max_message.store(bytes, Ordering::Relaxed);
    }

    /// What this server lists (from the cache or the running server), if known yet.
    pub fn schema(&self) -> Option<Arc<CachedSchema>> {
        self.schema.load_full()
    }

    pub fn inflight(&self) -> usize {
        self.callers.count()
    }

    pub fn is_running(&self) -> bool {
        self.live_instance().is_some()
    }

    /// The running instance's stdio link (the byte path), if it is a stdio server that is up.
    pub(crate) fn stdio_link(&self) -> Option<Arc<upstream::stdio::Link>> {
        self.live_instance()
            .and_then(|running| running.link.clone())
    }

    /// The call timeout, if there is one.
    pub(crate) fn call_timeout(&self) -> Option<Duration> {
        match self.limits.call_timeout_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// The session a per-client instance serves.
    pub fn owner_session(&self) -> Option<u64> {
        self.owner.as_ref().map(|owner| owner.session)
    }

    pub fn stderr_tail(&self, n: usize) -> Vec<String> {
        self.stderr.tail(n)
    }
}
