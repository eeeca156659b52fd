//! The daemon's shared state: the current routing table, the connected sessions, and `run`.
//!
//! Writers (config loads, tool-list changes) serialize on `rebuild` and publish a new table with
//! one atomic store; readers never lock. After each publication every session whose visible
//! tools changed is sent `notifications/tools/list_changed`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rmcp::model::{CallToolRequestParams, CallToolResponse, ErrorCode, ProgressToken, Tool};
use rmcp::service::{Peer, RoleServer};
use rmcp::ErrorData as McpError;
use tokio_util::sync::CancellationToken;

use crate::backend::cache::SchemaCache;
use crate::backend::{Backend, ProgressRoute, ToolsChanged};
use crate::config::{Config, ServerConfig};
use crate::ipc::listener::Listener;
use crate::protocol::{SessionStatus, Status};
use crate::table::{Table, Target};

/// How long after a failed start a `tools/list` does not try to discover that server again.
const DISCOVERY_BACKOFF: Duration = Duration::from_secs(30);

pub struct Gateway {
    table: ArcSwap<Table>,
    rebuild: Mutex<()>,
    sessions: Mutex<BTreeMap<u64, SessionEntry>>,
    next_session: AtomicU64,
    started: Instant,
    cache: Arc<SchemaCache>,
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
            }
        }))
    }

    /// The current routing table. Load it once per request.
    pub fn table(&self) -> Arc<Table> {
        self.table.load_full()
    }

    pub fn cache(&self) -> &SchemaCache {
        &self.cache
    }

    /// Rebuilds the exposed-name catalog after a backend's tools changed.
    fn tools_changed(&self) {
        let _guard = self.rebuild.lock().unwrap();
        let fresh = self.table.load().with_fresh_catalog();
        self.table.store(Arc::new(fresh));
        self.notify_sessions();
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
    async fn discover_missing(&self) {
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

fn new_backend(
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

/// Error for a request that the gateway refuses outright.
pub fn refused(message: impl Into<String>) -> McpError {
    McpError::new(ErrorCode::INVALID_REQUEST, message.into(), None)
}

/// The config could not be used; the message lists every problem with its location.
#[derive(Debug, thiserror::Error)]
#[error("invalid config:\n{0}")]
pub struct ConfigInvalid(pub String);

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere): the one trigger for a graceful stop.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Where the daemon listens and which config it serves.
pub struct Options {
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub cache_dir: PathBuf,
}

/// Runs the daemon until `shutdown` resolves: loads the config, claims the socket, serves
/// sessions and control connections, then stops every backend and removes the socket.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let config = crate::config::load(&options.config_path)
        .map_err(|e| ConfigInvalid(e.to_string()))?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let gateway =
        Gateway::new(config, SchemaCache::new(options.cache_dir)).map_err(ConfigInvalid)?;
    let listener = Listener::bind(&options.socket).await?;
    tracing::info!(
        socket = %listener.path().display(),
        config = %options.config_path.display(),
        "mcpgwd ready"
    );
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let gateway = gateway.clone();
                    let stop = stop.child_token();
                    tokio::spawn(async move {
                        crate::connection::serve(gateway, stream, stop).await;
                    });
                }
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    tracing::info!("shutting down");
    stop.cancel();
    drop(listener);
    gateway.stop_backends().await;
    Ok(())
}
