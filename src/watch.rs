//! What triggers a reload besides `mcpgwctl reload`: a change of the config file (watched
//! through its directory, so editors that save by rename or truncate-and-write, and a file
//! briefly missing, are all seen), a change of a plugin's source files (their package
//! directory, or their file's directory), and SIGHUP. All end in [`Gateway::reload`]; a plugin
//! edit is a changed server there because its files are hashed into its spec.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::config::PluginWatched;
use crate::gateway::Gateway;

/// Editors write a file in several steps; wait for this much quiet before reading it.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// The watch of the config file and the plugins' sources; it ends when dropped.
pub struct ConfigWatch {
    _watcher: Arc<Mutex<notify::RecommendedWatcher>>,
}

/// What an event touched.
enum Touched {
    Config,
    Plugin,
}

/// Watches the config file and the plugins' files and reloads on change.
pub fn config_file(gateway: Arc<Gateway>) -> Option<ConfigWatch> {
    let path = gateway.table().config.path.clone();
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir.to_path_buf(), name.to_os_string()),
        _ => return None,
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |event: notify::Result<notify::Event>| {
        // Reading a file is an event too (the reload reads every plugin source): only what
        // changes one counts.
        if let Ok(event) = event
            && !event.kind.is_access()
            && !event.kind.is_other()
        {
            let _ = tx.send(event.paths);
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
    let watcher = Arc::new(Mutex::new(watcher));
    let mut plugins = PluginWatches {
        watcher: watcher.clone(),
        config_dir: dir,
        watched: Vec::new(),
        dirs: BTreeSet::new(),
    };
    plugins.follow(&gateway);
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        while let Some(paths) = rx.recv().await {
            let mut touched = plugins.touched(&paths, &name);
            if !quiet(&mut rx, &mut touched, &plugins, &name).await {
                return;
            }
            let (config, plugin) = (
                touched.iter().any(|t| matches!(t, Touched::Config)),
                touched.iter().any(|t| matches!(t, Touched::Plugin)),
            );
            if !config && !plugin {
                continue;
            }
            let Some(now) = read_settled(&path).await else {
                tracing::warn!(path = %path.display(), "config file is missing; keeping the live config");
                continue;
            };
            if last.as_ref() == Some(&now) && !plugin {
                continue;
            }
            last = Some(now);
            if plugin {
                tracing::info!("a plugin's source changed: reloading");
            }
            let _ = gateway.reload();
            plugins.follow(&gateway);
        }
    });
    Some(ConfigWatch { _watcher: watcher })
}

/// The plugins' files being watched, kept in step with the live config.
struct PluginWatches {
    watcher: Arc<Mutex<notify::RecommendedWatcher>>,
    config_dir: PathBuf,
    watched: Vec<PluginWatched>,
    /// Directories watched for them (a module file's directory, a package recursively).
    dirs: BTreeSet<(PathBuf, bool)>,
}

impl PluginWatches {
    /// Watches what the live config's plugin hosts are read from, and no longer what they
    /// are not.
    fn follow(&mut self, gateway: &Gateway) {
        let table = gateway.table();
        let watched: Vec<PluginWatched> = table
            .config
            .servers
            .values()
            .filter_map(|s| s.plugin.as_ref())
            .flat_map(|p| p.sources.watched.iter().cloned())
            .collect();
        let dirs: BTreeSet<(PathBuf, bool)> = watched
            .iter()
            .filter_map(|w| {
                if w.package {
                    Some((w.path.clone(), true))
                } else {
                    w.path.parent().map(|dir| (dir.to_path_buf(), false))
                }
            })
            // The config's own directory is watched already (not recursively).
            .filter(|(dir, recursive)| *recursive || *dir != self.config_dir)
            .collect();
        let mut watcher = self.watcher.lock().unwrap();
        for (dir, _) in self.dirs.difference(&dirs) {
            let _ = watcher.unwatch(dir);
        }
        for (dir, recursive) in dirs.difference(&self.dirs) {
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            if let Err(e) = watcher.watch(dir, mode) {
                tracing::warn!(dir = %dir.display(), "cannot watch a plugin's files ({e}); use `mcpgwctl reload` after editing them");
            }
        }
        self.dirs = dirs;
        self.watched = watched;
    }

    /// What the paths of one event touched: the config file, a plugin's source (a `.py` file
    /// of a package outside `__pycache__`, or a module's file), or nothing of interest.
    fn touched(&self, paths: &[PathBuf], config_name: &std::ffi::OsStr) -> Vec<Touched> {
        paths
            .iter()
            .filter_map(|path| {
                if path.file_name() == Some(config_name) {
                    return Some(Touched::Config);
                }
                self.is_source(path).then_some(Touched::Plugin)
            })
            .collect()
    }

    fn is_source(&self, path: &Path) -> bool {
        self.watched.iter().any(|w| {
            if w.package {
                path.starts_with(&w.path)
                    && path.extension().is_some_and(|e| e == "py")
                    && !path.components().any(|c| c.as_os_str() == "__pycache__")
            } else {
                path == w.path
            }
        })
    }
}

/// Waits until no event arrived for [`DEBOUNCE`], adding what the events touched; false when
/// the channel closed.
async fn quiet(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>,
    touched: &mut Vec<Touched>,
    plugins: &PluginWatches,
    config_name: &std::ffi::OsStr,
) -> bool {
    loop {
        match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
            Ok(Some(paths)) => touched.extend(plugins.touched(&paths, config_name)),
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
