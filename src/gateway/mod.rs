//! The core: the daemon's shared state (the current routing table, the connected sessions,
//! subscriptions, per-client instances, parked MRTR calls), each part in the file that manages
//! it; the fields are private to this module and its files.
//!
//! Writers (config loads, list changes) serialize on `rebuild` and publish a new table with one
//! atomic store; readers never lock. The files:
//! - [`sessions`]: one handle per client and the registry, list_changed fan-out;
//! - [`route`]: lists, calls, prompts, reads and completions routed by role and name;
//! - [`builtin`]: the `gateway_*` tools;
//! - [`notify`]: what backends report (logs, resource updates) and subscriptions;
//! - [`instances`]: `scope: per-client` servers, one backend per session;
//! - [`reload`]: the reload pipeline (load → build → swap, or keep and record);
//! - [`bridge`]: multi round-trip requests of 2026-07-28 clients.
//!
//! **Architecture invariant:** nothing here knows a transport: no socket, no HTTP, no bytes.

pub mod bridge;
mod builtin;
mod instances;
mod notify;
mod reload;
mod route;
mod sessions;

pub use crate::backend::ClientIdentity;
pub use sessions::{ListKind, SessionHandle, TOO_MANY_REQUESTS};

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;

use crate::backend::cache::SchemaCache;
use crate::backend::{Backend, BackendEvents};
use crate::config::{Config, ServerConfig};
use crate::protocol::{BackendStatus, Reviewed, Status, ToolChange};
use crate::table::Table;

/// How long a backend a reload removed or changed, or a departed session's instance, may finish
/// its in-flight calls before it is stopped.
const RETIRE_GRACE: Duration = Duration::from_secs(10);

pub struct Gateway {
    table: ArcSwap<Table>,
    /// Serializes writers of `table` (reloads, list changes).
    rebuild: Mutex<()>,
    /// The connected clients, see [`sessions`].
    sessions: sessions::Sessions,
    /// Config generation and the last reload's outcome, see [`reload`].
    reloads: reload::Reloads,
    /// Resource subscriptions: (server, uri) → sessions subscribed, see [`notify`].
    subscriptions: notify::Subscriptions,
    /// Instances of `scope: per-client` servers, see [`instances`].
    instances: instances::Instances,
    identities: instances::Identities,
    /// Calls of 2026-07-28 clients waiting for their retry, see [`bridge`].
    bridges: bridge::Bridges,
    started: Instant,
    /// Status's scans of the backends' process groups.
    scans: crate::backend::groups::Scans,
    cache: Arc<SchemaCache>,
    myself: Weak<Gateway>,
    stop: CancellationToken,
}

impl Gateway {
    pub fn new(
        config: Config,
        cache: SchemaCache,
        tools: crate::tools::Tools,
        pins: crate::pins::Pins,
    ) -> Result<Arc<Self>, String> {
        // Roles are the only part of a table that can fail to build; check them first so the
        // construction below, which needs the gateway's address for backend callbacks, cannot.
        crate::table::Roles::compile(&config.roles)?;
        let config = Arc::new(config);
        let cache = Arc::new(cache);
        Ok(Arc::new_cyclic(|myself: &Weak<Gateway>| {
            let table = Table::build(config.clone(), None, tools, Arc::new(pins), |spec| {
                new_backend(spec, &config, &cache, myself)
            })
            .expect("roles were compiled above");
            Gateway {
                table: ArcSwap::from_pointee(table),
                rebuild: Mutex::new(()),
                sessions: sessions::Sessions::default(),
                reloads: reload::Reloads::default(),
                subscriptions: notify::Subscriptions::default(),
                instances: instances::Instances::default(),
                identities: instances::Identities::default(),
                bridges: bridge::Bridges::default(),
                started: Instant::now(),
                scans: Default::default(),
                cache,
                myself: myself.clone(),
                stop: CancellationToken::new(),
            }
        }))
    }

    /// The current routing table. Load it once per request.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    /// Publishes a new table. Callers hold `rebuild`.
    fn publish(&self, table: Table) {
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

    /// The tools that differ from their pins, of `server` or of every server.
    pub fn pin_changes(&self, server: Option<&str>) -> Result<Vec<ToolChange>, String> {
        let table = self.table();
        if let Some(server) = server {
            known_server(&table, server)?;
        }
        let changes = (table.catalog.pin_changes.iter())
            .filter(|c| server.is_none_or(|s| s == c.server))
            .map(|c| ToolChange {
                server: c.server.clone(),
                tool: c.change.tool.clone(),
                exposed: c.exposed.clone(),
                held: c.held,
                what: c.change.what(),
                pinned: c.change.pinned.clone(),
                current: c.change.current.clone(),
            })
            .collect();
        Ok(changes)
    }

    /// Pins `server`'s tools as `diff` showed them (`reviewed`), if each is still what the
    /// server lists, and serves them: list_changed goes out as for any change.
    pub fn approve(&self, server: &str, reviewed: &[Reviewed]) -> Result<Vec<String>, String> {
        let _guard = self.rebuild.lock().unwrap();
        let table = self.table.load_full();
        let backend = known_server(&table, server)?;
        let Some(schema) = backend.schema() else {
            return Err(format!(
                "server `{server}` has never listed its tools: there is nothing to approve"
            ));
        };
        let reviewed: Vec<(String, serde_json::Value)> = (reviewed.iter())
            .map(|r| (r.tool.clone(), r.definition.clone()))
            .collect();
        let approved = table.pins.approve(server, &schema.tools, &reviewed)?;
        self.publish(table.with_fresh_catalog());
        Ok(approved)
    }

    /// Waits until no call is in flight on any backend, or `grace` has passed.
    /// Calls waiting for a client's retry are cancelled first: no retry can come any more.
    pub async fn drain(&self, grace: Duration) {
        self.bridges.close();
        let table = self.table();
        futures::future::join_all(table.backends.values().map(|b| b.drain(grace))).await;
    }

    /// The daemon's status. Every backend's memory comes from one scan of the processes.
    pub async fn status(&self) -> Status {
        let table = self.table();
        let backends: Vec<(String, Arc<Backend>)> = table
            .backends
            .values()
            .map(|b| (b.name.clone(), b.clone()))
            .chain(self.named_instances())
            .collect();
        let leaders = backends.iter().filter_map(|(_, b)| b.pid()).collect();
        let groups = self.scans.groups(leaders).await;
        let sessions = self.session_status();
        let held = |server: &str| -> Vec<String> {
            (table.catalog.pin_changes.iter())
                .filter(|c| c.held && c.server == server)
                .map(|c| format!("{} ({})", c.change.tool, c.change.what().join(", ")))
                .collect()
        };
        Status {
            version: env!("CARGO_PKG_VERSION").into(),
            pid: std::process::id(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
            config_path: table.config.path.display().to_string(),
            generation: self.reloads.generation(),
            last_reload: self.reloads.last(),
            config_warnings: table
                .config
                .warnings
                .iter()
                .cloned()
                .chain(table.surface_warnings().iter().cloned())
                .collect(),
            sessions,
            backends: backends
                .into_iter()
                .map(|(name, backend)| BackendStatus {
                    held: held(&name),
                    name,
                    ..backend.status(&groups)
                })
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

/// A positive number from environment variable `var` (limits tests set low), else `default`.
/// Each limit reads it once, on first use.
pub(crate) fn env_limit(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

fn new_backend(
    spec: &ServerConfig,
    config: &Config,
    cache: &Arc<SchemaCache>,
    gateway: &Weak<Gateway>,
) -> Arc<Backend> {
    let events: Weak<dyn BackendEvents> = gateway.clone();
    Backend::new(spec.clone(), config, cache.clone(), events, None)
}

/// The backend of the configured server `server`, or an error naming the configured ones.
pub fn known_server<'t>(table: &'t Table, server: &str) -> Result<&'t Arc<Backend>, String> {
    table.backends.get(server).ok_or_else(|| {
        let known: Vec<&str> = table.backends.keys().map(String::as_str).collect();
        if known.is_empty() {
            format!("unknown server `{server}`: the gateway config defines no servers")
        } else {
            format!(
                "unknown server `{server}`; known servers: {}",
                known.join(", ")
            )
        }
    })
}
