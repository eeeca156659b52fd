//! What triggers a reload besides `mcpgwctl reload`: a change of the config file (watched
//! through its directory, so editors that save by rename or truncate-and-write, and a file
//! briefly missing, are all seen) and SIGHUP. Both end in [`Gateway::reload`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::gateway::Gateway;

/// Editors write a file in several steps; wait for this much quiet before reading it.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// Watches the config file and reloads on change. The returned watcher must be kept alive.
pub fn config_file(gateway: Arc<Gateway>) -> Option<notify::RecommendedWatcher> {
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

/// Handles SIGHUP from now on; [`reload_on_sighup`] then reloads on each one. Installing the
/// handler early (before the socket appears) keeps an early SIGHUP from ending the daemon by
/// the signal's default action; one that comes before the daemon is ready waits until then.
#[cfg(unix)]
pub fn sighup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(hup) => Some(hup),
        Err(e) => {
            tracing::warn!("cannot handle SIGHUP ({e}); use `mcpgwctl reload`");
            None
        }
    }
}

/// Reloads on every SIGHUP received by `hup`.
#[cfg(unix)]
pub async fn reload_on_sighup(mut hup: tokio::signal::unix::Signal, gateway: Arc<Gateway>) {
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading the config");
        let _ = gateway.reload();
    }
}
