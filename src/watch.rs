//! What triggers a reload besides `mcpgwctl reload`: a change of the config file (watched
//! through its directory, so editors that save by rename or truncate-and-write, and a file
//! briefly missing, are all seen), of an env file it names (`env_file:`, watched the same
//! way, through its directory and, for a symlink, its target's; named by the live config or
//! by the file as it is now, so that one a rejected edit named is seen once created), of a plugin's source files
//! (their package directory, or their file's directory), and SIGHUP. All end in
//! [`Gateway::reload`]; a plugin edit is a changed server there because its files are hashed
//! into its spec, an env file edit because the values it expands to are.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::config::PluginWatched;
use crate::gateway::Gateway;

/// Editors write a file in several steps; wait for this much quiet before reading it.
const DEBOUNCE: Duration = Duration::from_millis(150);

/// However busy a watched directory is, a change waits no longer than this.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// The watch of the config file and the plugins' sources; it ends when dropped.
pub struct ConfigWatch {
    _watcher: Arc<Mutex<notify::RecommendedWatcher>>,
}

/// What the events of one debounce touched.
#[derive(Default)]
struct Touched {
    config: bool,
    plugin: bool,
    /// An env file: its bytes are not compared here (reading it is the reload's business).
    env_file: bool,
}

impl Touched {
    fn any(&self) -> bool {
        self.config || self.plugin || self.env_file
    }
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
    // A link in a plugin's package (to the home directory, say) is not a reason to watch
    // what it points to.
    let options = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = match notify::RecommendedWatcher::new(handler, options) {
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
        // Weak: the task must not keep the watcher (and with it its own channel) alive, or
        // dropping the `ConfigWatch` would end nothing.
        watcher: Arc::downgrade(&watcher),
        config: path.clone(),
        config_name: name,
        watched: Vec::new(),
        env_files: Vec::new(),
        dirs: BTreeSet::new(),
    };
    plugins.follow(&gateway, false);
    let mut generations = gateway.config_generations();
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        loop {
            let paths = tokio::select! {
                paths = rx.recv() => match paths {
                    Some(paths) => paths,
                    None => return,
                },
                // A reload however asked for (`mcpgwctl reload`, SIGHUP, this watch): what
                // to watch follows the live config.
                changed = generations.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    plugins.follow(&gateway, false);
                    continue;
                }
            };
            let mut touched = Touched::default();
            plugins.add_touched(&paths, &mut touched);
            if !touched.any() {
                continue;
            }
            if !quiet(&mut rx, &mut touched, &plugins).await {
                return;
            }
            let Some(now) = read_settled(&path).await else {
                tracing::warn!(path = %path.display(), "config file is missing; keeping the live config");
                continue;
            };
            if last.as_ref() == Some(&now) && !touched.plugin && !touched.env_file {
                continue;
            }
            last = Some(now);
            if touched.plugin {
                tracing::info!("a plugin's source changed: reloading");
            }
            if touched.env_file {
                tracing::info!("an env file changed: reloading");
            }
            // A reload that takes is a new generation, and `follow` runs on it (above): even
            // for an unchanged config, since a replaced package directory needs its watch again.
            // One that fails leaves the old config live, but the file may name an env file
            // that is yet to be created (the reason it failed): that is followed now.
            if gateway.reload().is_err() {
                plugins.follow(&gateway, true);
            }
        }
    });
    Some(ConfigWatch { _watcher: watcher })
}

/// The plugins' files and the env files being watched, kept in step with the live config.
struct PluginWatches {
    watcher: std::sync::Weak<Mutex<notify::RecommendedWatcher>>,
    config: PathBuf,
    config_name: std::ffi::OsString,
    watched: Vec<PluginWatched>,
    /// The env files the config names, and for each that is a symlink the file it leads to
    /// (what an edit through the link changes).
    env_files: Vec<PathBuf>,
    /// Directories watched for them: a package recursively, and the directory holding a
    /// package, a module file or an env file (to see the file replaced, or the package
    /// directory).
    dirs: BTreeSet<(PathBuf, bool)>,
}

impl PluginWatches {
    /// Watches what the live config's plugin hosts and `${VAR}`s are read from, and no longer
    /// what they are not. Every directory is watched again each time: one replaced since (a
    /// checkout that swaps the package directory) lost its watch with its inode, and a link
    /// may lead elsewhere now. After a rejected edit (`rejected`) the env files the file names
    /// now are watched too: the live config's are those of the text it was loaded from.
    fn follow(&mut self, gateway: &Gateway, rejected: bool) {
        let table = gateway.table();
        let watched: Vec<PluginWatched> = table
            .config
            .servers
            .values()
            .filter_map(|s| s.plugin.as_ref())
            .flat_map(|p| p.sources.watched.iter().cloned())
            .collect();
        let config_dir = self.config.parent().map(Path::to_path_buf);
        let mut dirs: BTreeSet<(PathBuf, bool)> = BTreeSet::new();
        for w in &watched {
            if w.package {
                dirs.insert((w.path.clone(), true));
            }
            if let Some(parent) = w.path.parent() {
                dirs.insert((parent.to_path_buf(), false));
            }
        }
        // The live config's env files, and those the file names now: after a rejected edit
        // they differ, and one named before it exists must be seen when it is created.
        let mut named = table.config.env_files.clone();
        if rejected && let Ok(text) = std::fs::read_to_string(&self.config) {
            let env = |name: &str| std::env::var(name).ok();
            for path in crate::config::named_env_files(&text, &self.config, &env) {
                if !named.contains(&path) {
                    named.push(path);
                }
            }
        }
        let mut env_files = Vec::new();
        for path in named {
            if let Ok(target) = std::fs::canonicalize(&path)
                && target != path
            {
                env_files.push(target);
            }
            env_files.push(path);
        }
        for path in &env_files {
            // A directory that is not there (yet) cannot be watched; creating it and the file
            // in it needs a reload (`mcpgwctl reload`, or any edit of the config).
            if let Some(parent) = path.parent().filter(|p| p.is_dir()) {
                dirs.insert((parent.to_path_buf(), false));
            }
        }
        // The config's own directory is watched already (not recursively).
        dirs.retain(|(dir, recursive)| *recursive || Some(dir) != config_dir.as_ref());
        let Some(watcher) = self.watcher.upgrade() else {
            return;
        };
        let mut watcher = watcher.lock().unwrap();
        for (dir, _) in self.dirs.difference(&dirs) {
            let _ = watcher.unwatch(dir);
        }
        for (dir, recursive) in &dirs {
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
        self.env_files = env_files;
    }

    /// Adds what the paths of one event touched: the config file, an env file, or a plugin's
    /// source (a `.py` file of a package outside `__pycache__`, a package directory itself, a
    /// module's file).
    fn add_touched(&self, paths: &[PathBuf], touched: &mut Touched) {
        for path in paths {
            if self.env_files.contains(path) {
                touched.env_file = true;
            } else if path.file_name() == Some(self.config_name.as_os_str()) {
                touched.config = true;
            } else if self.is_source(path) {
                touched.plugin = true;
            }
        }
    }

    fn is_source(&self, path: &Path) -> bool {
        self.watched.iter().any(|w| {
            if w.package {
                path == w.path
                    || (path.starts_with(&w.path)
                        && path.extension().is_some_and(|e| e == "py")
                        && !path.components().any(|c| c.as_os_str() == "__pycache__"))
            } else {
                path == w.path
            }
        })
    }
}

/// Waits until no event that matters arrived for [`DEBOUNCE`] (or [`MAX_DEBOUNCE`] passed:
/// a directory someone writes a log into all the time must not hold a change back), adding
/// what the events touched; false when the channel closed.
async fn quiet(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<Vec<PathBuf>>,
    touched: &mut Touched,
    plugins: &PluginWatches,
) -> bool {
    let give_up = tokio::time::Instant::now() + MAX_DEBOUNCE;
    let mut until = tokio::time::Instant::now() + DEBOUNCE;
    loop {
        match tokio::time::timeout_at(until.min(give_up), rx.recv()).await {
            Ok(Some(paths)) => {
                let mut now = Touched::default();
                plugins.add_touched(&paths, &mut now);
                if now.any() {
                    touched.config |= now.config;
                    touched.plugin |= now.plugin;
                    touched.env_file |= now.env_file;
                    until = tokio::time::Instant::now() + DEBOUNCE;
                }
            }
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
