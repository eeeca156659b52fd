//! The daemon's shared state: the current routing table and the connected sessions.
//!
//! Writers (config loads, list changes) serialize on `rebuild` and publish a new table with one
//! atomic store; readers never lock. After each publication every session whose visible tools,
//! prompts or resources changed is told so. Routing requests lives in [`route`], what backends
//! report (logs, resource updates, subscriptions) in [`notify`].

// Logging is deprecated by SEP-2577 for the 2026-07-28 protocol; earlier versions have it and
// sessions on them keep their own log level.
#![allow(deprecated)]

pub mod bridge;
mod instances;
mod notify;
mod route;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rmcp::model::LoggingLevel;
use rmcp::service::{Peer, RoleServer};
use tokio_util::sync::CancellationToken;

use crate::backend::cache::SchemaCache;
use crate::backend::{Backend, Events};
use crate::config::{Config, ServerConfig};
use crate::protocol::{ReloadStatus, SessionStatus, SessionTransport, Status};
use crate::table::{RoleView, Table};

pub struct Gateway {
    table: ArcSwap<Table>,
    /// Serializes writers of `table` (reloads, list changes).
    pub(crate) rebuild: Mutex<()>,
    sessions: Mutex<BTreeMap<u64, SessionEntry>>,
    next_session: AtomicU64,
    started: Instant,
    cache: Arc<SchemaCache>,
    pub(crate) myself: Weak<Gateway>,
    /// Bumped by every successful (re)load; 1 for the config the daemon started with.
    pub(crate) generation: AtomicU64,
    pub(crate) last_reload: Mutex<Option<ReloadStatus>>,
    /// Resource subscriptions: (server, uri) → sessions subscribed.
    subscriptions: Mutex<BTreeMap<(String, String), std::collections::BTreeSet<u64>>>,
    /// Instances of `scope: per-client` servers, see [`instances`].
    instances: Mutex<std::collections::HashMap<instances::InstanceKey, Arc<Backend>>>,
    /// Calls of 2026-07-28 clients waiting for their retry, see [`bridge`].
    bridges: bridge::Bridges,
    /// Initialized Streamable HTTP sessions, for the fast path (`http/fast.rs`).
    pub(crate) http_clients: crate::http::fast::Clients,
    stop: CancellationToken,
}

struct SessionEntry {
    role: Option<String>,
    pid: Option<u32>,
    transport: SessionTransport,
    client: Option<String>,
    peer: Option<Peer<RoleServer>>,
    log_level: Option<LoggingLevel>,
    /// Fingerprints of what this session saw last; a change sends the matching list_changed.
    seen: Seen,
}

/// Fingerprints of the lists a session has fetched. `None` until it lists that kind: a client
/// that never listed has no view to invalidate, so it is not told of changes (that also keeps
/// its own first list, which may discover servers, from bouncing back as list_changed).
#[derive(Clone, Copy, PartialEq, Default)]
struct Seen {
    tools: Option<u64>,
    prompts: Option<u64>,
    resources: Option<u64>,
}

/// The lists a session can fetch, for [`Gateway::mark_seen`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl Gateway {
    pub fn new(config: Config, cache: SchemaCache) -> Result<Arc<Self>, String> {
        // Roles are the only part of a table that can fail to build; check them first so the
        // construction below, which needs the gateway's address for backend callbacks, cannot.
        crate::table::Roles::compile(&config.roles)?;
        let config = Arc::new(config);
        let cache = Arc::new(cache);
        Ok(Arc::new_cyclic(|myself: &Weak<Gateway>| {
            let table = Table::build(config.clone(), None, |spec| {
                new_backend(spec, &config, &cache, myself)
            })
            .expect("roles were compiled above");
            Gateway {
                table: ArcSwap::from_pointee(table),
                rebuild: Mutex::new(()),
                sessions: Mutex::default(),
                next_session: AtomicU64::new(1),
                started: Instant::now(),
                cache,
                myself: myself.clone(),
                generation: AtomicU64::new(1),
                last_reload: Mutex::new(None),
                subscriptions: Mutex::default(),
                instances: Mutex::default(),
                bridges: bridge::Bridges::default(),
                http_clients: Default::default(),
                stop: CancellationToken::new(),
            }
        }))
    }

    /// The current routing table. Load it once per request.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    pub(crate) fn cache_arc(&self) -> &Arc<SchemaCache> {
        &self.cache
    }

    /// Publishes a new table. Callers hold `rebuild`.
    pub(crate) fn publish(&self, table: Table) {
        self.table.store(Arc::new(table));
        self.notify_sessions();
    }

    /// Asks the daemon to shut down (`mcpgwctl stop`); the same path as SIGTERM.
    pub fn request_stop(&self) {
        self.stop.cancel();
    }

    /// Resolves once a stop was requested.
    pub async fn stopping(&self) {
        self.stop.cancelled().await;
    }

    /// Rebuilds the catalog after a backend's lists changed.
    fn lists_changed(&self) {
        let _guard = self.rebuild.lock().unwrap();
        let fresh = self.table.load().with_fresh_catalog();
        self.publish(fresh);
    }

    /// Sends list_changed to every initialized session whose visible tools, prompts or
    /// resources differ from what it last listed.
    fn notify_sessions(&self) {
        let table = self.table.load();
        let mut sessions = self.sessions.lock().unwrap();
        for entry in sessions.values_mut() {
            let Some(peer) = &entry.peer else { continue };
            if entry.seen == Seen::default() {
                continue;
            }
            let [tools, prompts, resources] = table.view(entry.role.as_deref()).fingerprints;
            let changed = |seen: &mut Option<u64>, now: u64| match seen {
                Some(before) if *before != now => {
                    *seen = Some(now);
                    true
                }
                _ => false,
            };
            let kinds = [
                changed(&mut entry.seen.tools, tools),
                changed(&mut entry.seen.prompts, prompts),
                changed(&mut entry.seen.resources, resources),
            ];
            if kinds == [false; 3] {
                continue;
            }
            let peer = peer.clone();
            tokio::spawn(async move {
                if kinds[0] {
                    let _ = peer.notify_tool_list_changed().await;
                }
                if kinds[1] {
                    let _ = peer.notify_prompt_list_changed().await;
                }
                if kinds[2] {
                    let _ = peer.notify_resource_list_changed().await;
                }
            });
        }
    }

    /// Registers a session; returns its id. The caller must [`Gateway::leave`].
    pub fn join(&self, role: Option<String>, pid: Option<u32>, transport: SessionTransport) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        self.sessions.lock().unwrap().insert(
            id,
            SessionEntry {
                role,
                pid,
                transport,
                client: None,
                peer: None,
                log_level: None,
                seen: Seen::default(),
            },
        );
        id
    }

    /// Records the session's MCP peer once it has initialized, so it can be notified.
    pub fn initialized(&self, id: u64, peer: Peer<RoleServer>, client: String) {
        if let Some(entry) = self.sessions.lock().unwrap().get_mut(&id) {
            entry.peer = Some(peer);
            entry.client = Some(client);
        }
    }

    /// Records that a session has just fetched a list from `view`, so that later changes
    /// notify it.
    pub fn mark_seen(&self, id: u64, view: &RoleView, kind: ListKind) {
        let [tools, prompts, resources] = view.fingerprints;
        if let Some(entry) = self.sessions.lock().unwrap().get_mut(&id) {
            match kind {
                ListKind::Tools => entry.seen.tools = Some(tools),
                ListKind::Prompts => entry.seen.prompts = Some(prompts),
                ListKind::Resources => entry.seen.resources = Some(resources),
            }
        }
    }

    pub fn leave(&self, id: u64) {
        self.sessions.lock().unwrap().remove(&id);
        self.drop_subscriptions(id);
        self.drop_instances(id);
    }

    /// Waits until no call is in flight on any backend, or `grace` has passed.
    /// Calls waiting for a client's retry are cancelled first: no retry can come any more.
    pub async fn drain(&self, grace: Duration) {
        self.bridges.close();
        let table = self.table();
        futures::future::join_all(table.backends.values().map(|b| b.drain(grace))).await;
    }

    pub fn status(&self) -> Status {
        let table = self.table();
        let sessions = self
            .sessions
            .lock()
            .unwrap()
            .iter()
            .map(|(id, s)| SessionStatus {
                id: *id,
                role: s.role.clone(),
                client: s.client.clone(),
                pid: s.pid,
                transport: s.transport,
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            config_path: table.config.path.display().to_string(),
            generation: self.generation.load(Ordering::Relaxed),
            last_reload: self.last_reload.lock().unwrap().clone(),
            config_warnings: table.config.warnings.clone(),
            sessions,
            backends: table
                .backends
                .values()
                .map(|b| b.status())
                .chain(self.instance_status())
                .collect(),
        }
    }

    /// Stops every backend and waits for their processes to be gone.
    pub async fn stop_backends(&self) {
        let table = self.table();
        let all = table.backends.values().cloned().chain(self.all_instances());
        futures::future::join_all(all.map(|b| async move { b.stop().await })).await;
    }
}

pub(crate) fn new_backend(
    spec: &ServerConfig,
    config: &Config,
    cache: &Arc<SchemaCache>,
    gateway: &Weak<Gateway>,
) -> Arc<Backend> {
    let events: Weak<dyn Events> = gateway.clone();
    Backend::new(spec.clone(), config, cache.clone(), events, None)
}
