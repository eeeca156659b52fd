//! The daemon's shared state: the current routing table, the connected sessions, and `run`.
//!
//! Writers (config loads, tool-list changes) serialize on `rebuild` and publish a new table with
//! one atomic store; readers never lock. After each publication every session whose visible
//! tools changed is sent `notifications/tools/list_changed`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ProgressToken, Tool};
use rmcp::service::{Peer, RoleServer};
use tokio_util::sync::CancellationToken;

use crate::backend::cache::SchemaCache;
use crate::backend::{Backend, ProgressRoute, ToolsChanged};
use crate::config::{Config, ServerConfig};
use crate::protocol::{ReloadStatus, SessionStatus, Status};
use crate::table::{Table, Target};

/// How long after a failed start a `tools/list` does not try to discover that server again.
const DISCOVERY_BACKOFF: Duration = Duration::from_secs(30);

pub struct Gateway {
    table: ArcSwap<Table>,
    /// Serializes writers of `table` (reloads, tool-list changes).
    pub(crate) rebuild: Mutex<()>,
    sessions: Mutex<BTreeMap<u64, SessionEntry>>,
    next_session: AtomicU64,
    started: Instant,
    cache: Arc<SchemaCache>,
    pub(crate) myself: Weak<Gateway>,
    /// Bumped by every successful (re)load; 1 for the config the daemon started with.
    pub(crate) generation: AtomicU64,
    pub(crate) last_reload: Mutex<Option<ReloadStatus>>,
    stop: CancellationToken,
}

struct SessionEntry {
    role: Option<String>,
    pid: Option<u32>,
    client: Option<String>,
    peer: Option<Peer<RoleServer>>,
    /// Fingerprint of the tools this session saw last; a change triggers list_changed.
    seen: u64,
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

    /// Rebuilds the exposed-name catalog after a backend's tools changed.
    fn tools_changed(&self) {
        let _guard = self.rebuild.lock().unwrap();
        let fresh = self.table.load().with_fresh_catalog();
        self.publish(fresh);
    }

    /// Sends list_changed to every initialized session whose visible tools differ from what it
    /// saw last.
    fn notify_sessions(&self) {
        let table = self.table.load();
        let mut sessions = self.sessions.lock().unwrap();
        for entry in sessions.values_mut() {
            let Some(peer) = &entry.peer else { continue };
            let now = fingerprint(&table, entry.role.as_deref());
            if now != entry.seen {
                entry.seen = now;
                let peer = peer.clone();
                tokio::spawn(async move {
                    let _ = peer.notify_tool_list_changed().await;
                });
            }
        }
    }

    /// Registers a session at hello; returns its id. The caller must [`Gateway::leave`].
    pub fn join(&self, role: Option<String>, pid: Option<u32>) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let seen = fingerprint(&self.table.load(), role.as_deref());
        self.sessions.lock().unwrap().insert(
            id,
            SessionEntry {
                role,
                pid,
                client: None,
                peer: None,
                seen,
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

    /// Records that a session has just listed the current tools, so that only later changes
    /// send it list_changed.
    pub fn mark_seen(&self, id: u64, role: Option<&str>) {
        let now = fingerprint(&self.table.load(), role);
        if let Some(entry) = self.sessions.lock().unwrap().get_mut(&id) {
            entry.seen = now;
        }
    }

    pub fn leave(&self, id: u64) {
        self.sessions.lock().unwrap().remove(&id);
    }

    /// Tools visible to `role`, discovering servers that have no cached schema yet.
    pub async fn list_tools(&self, role: Option<&str>) -> Vec<Tool> {
        self.discover_missing().await;
        let table = self.table();
        table.visible(role).map(|e| e.tool.clone()).collect()
    }

    /// Starts every enabled server whose tools are unknown, in parallel, each bounded by its
    /// startup timeout; failures are logged and skipped (the server is just not listed).
    pub(crate) async fn discover_missing(&self) {
        let table = self.table();
        let missing: Vec<Arc<Backend>> = table
            .backends
            .values()
            .filter(|b| b.spec.enabled && b.tools().is_none() && b.discovery_due(DISCOVERY_BACKOFF))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let results = futures::future::join_all(missing.iter().map(|b| b.discover())).await;
        for (backend, result) in missing.iter().zip(results) {
            if let Err(e) = result {
                tracing::warn!(server = %backend.name, "discovery failed: {e}");
            }
        }
    }

    /// Routes one `tools/call` from a session of `role`.
    pub async fn call_tool(
        &self,
        role: Option<&str>,
        mut params: CallToolRequestParams,
        progress: Option<(Peer<RoleServer>, ProgressToken)>,
        ct: CancellationToken,
    ) -> Result<CallToolResponse, McpError> {
        let mut table = self.table();
        if table.catalog.get(&params.name).is_none() {
            // The client may call a tool it knows from an earlier session before listing.
            self.discover_missing().await;
            table = self.table();
        }
        let Some(exposed) = table.catalog.get(&params.name) else {
            return Err(McpError::invalid_params(
                format!("unknown tool `{}`", params.name),
                None,
            ));
        };
        if !table.roles.allows(role, &params.name) {
            return Err(McpError::invalid_params(
                format!(
                    "tool `{}` is not available to role `{}`",
                    params.name,
                    role.unwrap_or(crate::table::DEFAULT_ROLE)
                ),
                None,
            ));
        }
        match &exposed.target {
            Target::Builtin(builtin) => Ok(CallToolResponse::Complete(builtin.call(self).await)),
            Target::Backend { backend, original } => {
                params.name = original.clone().into();
                let backend = backend.clone();
                drop(table);
                let route = progress.map(|(peer, token)| ProgressRoute { peer, token });
                backend.call_tool(params, route, ct).await
            }
        }
    }

    /// Waits until no call is in flight on any backend, or `grace` has passed.
    pub async fn drain(&self, grace: Duration) {
        let table = self.table();
        let deadline = tokio::time::Instant::now() + grace;
        while table.backends.values().any(|b| b.inflight() > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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
            backends: table.backends.values().map(|b| b.status()).collect(),
        }
    }

    /// Stops every backend and waits for their processes to be gone.
    pub async fn stop_backends(&self) {
        let table = self.table();
        futures::future::join_all(table.backends.values().map(|b| b.stop())).await;
    }
}

pub(crate) fn new_backend(
    spec: &ServerConfig,
    config: &Config,
    cache: &Arc<SchemaCache>,
    gateway: &Weak<Gateway>,
) -> Arc<Backend> {
    let gateway = gateway.clone();
    let on_change: ToolsChanged = Arc::new(move || {
        if let Some(gateway) = gateway.upgrade() {
            gateway.tools_changed();
        }
    });
    Backend::new(
        spec.clone(),
        spec.effective_idle_timeout(config.idle_timeout),
        config.startup_timeout,
        cache.clone(),
        on_change,
    )
}

/// A cheap fingerprint of what `role` sees: names and schemas of its visible tools.
fn fingerprint(table: &Table, role: Option<&str>) -> u64 {
    let mut bytes = Vec::new();
    for exposed in table.visible(role) {
        let _ = serde_json::to_writer(&mut bytes, &exposed.tool);
        bytes.push(0);
    }
    crate::config::fnv1a64(&bytes)
}
