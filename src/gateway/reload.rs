//! The reload pipeline: parse → validate → build a new table → swap, or keep the old one and
//! record why.
//!
//! Triggered by `crate::watch` (a change of the file, SIGHUP) and `mcpgwctl reload`. Backends
//! whose spec is unchanged are carried over untouched; removed and changed ones are retired,
//! drained and stopped in the background.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Gateway, RETIRE_GRACE, new_backend};
use crate::protocol::ReloadStatus;
use crate::table::Table;

/// The config generation (bumped by every successful (re)load; 1 for the config the daemon
/// started with) and the last reload's outcome, for status.
pub(super) struct Reloads {
    generation: AtomicU64,
    last: Mutex<Option<ReloadStatus>>,
    /// The live generation, for who follows the config (the watch of the plugins' files).
    live: tokio::sync::watch::Sender<u64>,
}

impl Default for Reloads {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(1),
            last: Mutex::new(None),
            live: tokio::sync::watch::Sender::new(1),
        }
    }
}

impl Reloads {
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn last(&self) -> Option<ReloadStatus> {
        self.last.lock().unwrap().clone()
    }
}

impl Gateway {
    /// Changes whenever a reload makes a new config live, however it was asked for.
    pub fn config_generations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.live.subscribe()
    }
}

impl Gateway {
    /// Re-reads the config file and swaps in a new table. On error the old table stays live
    /// and the error (every problem with its `file:line:col`) is returned and kept for status.
    pub fn reload(&self) -> Result<ReloadStatus, ReloadStatus> {
        crate::service::notify_reloading();
        // Whatever the outcome, the daemon is serving again afterwards.
        let result = self.reload_inner();
        crate::service::notify_ready();
        result
    }

    fn reload_inner(&self) -> Result<ReloadStatus, ReloadStatus> {
        let _guard = self.rebuild.lock().unwrap();
        let prev = self.table();
        let outcome = self.build_next(&prev);
        let generation = self.reloads.generation();
        let record = |ok: bool, generation: u64, message: String| ReloadStatus {
            at_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            ok,
            generation,
            message,
        };
        let status = match outcome {
            Err(message) => {
                tracing::error!("config rejected, keeping generation {generation}:\n{message}");
                let status = record(false, generation, message);
                *self.reloads.last.lock().unwrap() = Some(status.clone());
                return Err(status);
            }
            Ok(next) => {
                let summary = retire_replaced(&prev, &next);
                for warning in &next.config.warnings {
                    tracing::warn!("{warning}");
                }
                let mut summary = summary;
                for warning in next.surface_warnings() {
                    tracing::warn!("{warning}");
                    summary.push_str(&format!("; warning: {warning}"));
                }
                let generation = self.reloads.generation.fetch_add(1, Ordering::Relaxed) + 1;
                self.publish(next);
                self.reloads.live.send_replace(generation);
                self.prune_instances();
                tracing::info!("config generation {generation} live: {summary}");
                // Connected clients can only learn the tools of a new server if someone starts
                // it once; do it now rather than on the next list, so list_changed reaches them.
                if let Some(gateway) = self.myself.upgrade() {
                    tokio::spawn(async move { gateway.discover_missing(None).await });
                }
                record(true, generation, summary)
            }
        };
        *self.reloads.last.lock().unwrap() = Some(status.clone());
        Ok(status)
    }

    fn build_next(&self, prev: &Table) -> Result<Table, String> {
        let config = crate::config::load(&prev.config.path).map_err(|e| e.to_string())?;
        if config.servers.is_empty() && !config.servers_written && !prev.config.servers.is_empty() {
            // An editor's truncate-then-write, a failed save, a wrong file: not a wish to stop
            // every backend, which a file says with `servers: {}`.
            return Err(format!(
                "{}: the edit leaves no servers (the file is empty or has no `servers` mapping); \
                 keeping the {} live servers — write `servers: {{}}` to remove them all",
                config.path.display(),
                prev.config.servers.len()
            ));
        }
        let config = Arc::new(config);
        let (tools, pins) = (prev.tools.clone(), prev.pins.clone());
        Table::build(config.clone(), Some(prev), tools, pins, |spec| {
            new_backend(spec, &config, &self.cache, &self.myself)
        })
    }
}

/// A server's `tools:` and `prompts:` in `table`'s config.
fn shaping<'t>(
    table: &'t Table,
    server: &str,
) -> Option<(&'t crate::config::Shaping, &'t crate::config::Shaping)> {
    let spec = table.config.servers.get(server)?;
    Some((&spec.tools, &spec.prompts))
}

/// Retires the backends of `prev` that `next` does not carry over, and describes the change.
fn retire_replaced(prev: &Table, next: &Table) -> String {
    let (mut added, mut restarted, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    let mut reshaped = Vec::new();
    for (name, backend) in &next.backends {
        match prev.backends.get(name) {
            None => added.push(name.as_str()),
            Some(old) if !Arc::ptr_eq(old, backend) => restarted.push(name.as_str()),
            Some(_) => {
                // Kept running; a new `tools:`/`prompts:` applies to it all the same.
                if shaping(prev, name) != shaping(next, name) {
                    reshaped.push(name.as_str());
                }
            }
        }
    }
    for (name, old) in &prev.backends {
        let kept = next.backends.get(name).is_some_and(|b| Arc::ptr_eq(b, old));
        if kept {
            continue;
        }
        if !next.backends.contains_key(name) {
            removed.push(name.as_str());
        }
        old.clone().retire(RETIRE_GRACE);
    }
    let mut parts = Vec::new();
    for (label, names) in [
        ("added", &added),
        ("restarted", &restarted),
        ("reshaped", &reshaped),
        ("removed", &removed),
    ] {
        if !names.is_empty() {
            parts.push(format!("{label}: {}", names.join(", ")));
        }
    }
    if parts.is_empty() {
        "no backend changed".into()
    } else {
        parts.join("; ")
    }
}
