//! Reloading the config: parse → validate → build a new table → swap, or keep the old one.
//!
//! Triggers: a change of the file (watched through its directory, so editors that save by
//! rename or truncate-and-write, and a file briefly missing, are all seen), SIGHUP, and
//! `mcpgwctl reload`. Backends whose spec is unchanged are carried over untouched; removed and
//! changed ones are retired, drained and stopped in the background.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify::{RecursiveMode, Watcher};

use crate::gateway::{Gateway, new_backend};
use crate::protocol::ReloadStatus;
use crate::table::Table;

/// Editors write a file in several steps; wait for this much quiet before reading it.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How long a removed or changed backend may finish its in-flight calls before it is stopped.
pub const RETIRE_GRACE: Duration = Duration::from_secs(10);

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
        let generation = self.generation.load(Ordering::Relaxed);
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
                *self.last_reload.lock().unwrap() = Some(status.clone());
                return Err(status);
            }
            Ok(next) => {
                let summary = retire_replaced(&prev, &next);
                for warning in &next.config.warnings {
                    tracing::warn!("{warning}");
                }
                let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
                self.publish(next);
                self.prune_instances();
                tracing::info!("config generation {generation} live: {summary}");
                // Connected clients can only learn the tools of a new server if someone starts
                // it once; do it now rather than on the next list, so list_changed reaches them.
                if let Some(gateway) = self.myself.upgrade() {
                    tokio::spawn(async move { gateway.discover_missing().await });
                }
                record(true, generation, summary)
            }
        };
        *self.last_reload.lock().unwrap() = Some(status.clone());
        Ok(status)
    }

    fn build_next(&self, prev: &Table) -> Result<Table, String> {
        let config = crate::config::load(&prev.config.path).map_err(|e| e.to_string())?;
        let config = Arc::new(config);
        Table::build(config.clone(), Some(prev), |spec| {
            new_backend(spec, &config, self.cache_arc(), &self.myself)
        })
    }
}

/// Retires the backends of `prev` that `next` does not carry over, and describes the change.
fn retire_replaced(prev: &Table, next: &Table) -> String {
    let (mut added, mut restarted, mut removed) = (Vec::new(), Vec::new(), Vec::new());
    for (name, backend) in &next.backends {
        match prev.backends.get(name) {
            None => added.push(name.as_str()),
            Some(old) if !Arc::ptr_eq(old, backend) => restarted.push(name.as_str()),
            Some(_) => {}
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

/// Watches the config file and reloads on change. The returned watcher must be kept alive.
pub fn watch(gateway: Arc<Gateway>) -> Option<notify::RecommendedWatcher> {
    let path = gateway.table().config.path.clone();
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir.to_path_buf(), name.to_os_string()),
        _ => return None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let watched = name.clone();
    let handler = move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event
            .paths
            .iter()
            .any(|p| p.file_name() == Some(watched.as_os_str()))
        {
            let _ = tx.send(());
        }
    };
    let mut watcher = match notify::recommended_watcher(handler) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch the config for changes ({e}); use `mcpgwctl reload`");
            return None;
        }
    };
    // The directory, not the file: a rename-on-save replaces the file's inode, which would
    // silently end a watch on the file itself.
    if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), "cannot watch the config directory ({e}); use `mcpgwctl reload`");
        return None;
    }
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        while rx.recv().await.is_some() {
            if !quiet(&mut rx).await {
                return;
            }
            let Some(now) = read_settled(&path).await else {
                tracing::warn!(path = %path.display(), "config file is missing; keeping the live config");
                continue;
            };
            if last.as_ref() == Some(&now) {
                continue;
            }
            last = Some(now);
            let _ = gateway.reload();
        }
    });
    Some(watcher)
}

/// Waits until no event arrived for [`DEBOUNCE`]; false when the channel closed.
async fn quiet(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>) -> bool {
    loop {
        match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
            Ok(Some(())) => continue,
            Ok(None) => return false,
            Err(_) => return true,
        }
    }
}

/// The file's bytes; a file that is briefly missing (delete-then-create saves) gets a moment
/// to come back.
async fn read_settled(path: &Path) -> Option<Vec<u8>> {
    for _ in 0..5 {
        if let Ok(bytes) = std::fs::read(path) {
            return Some(bytes);
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
    None
}
