//! The daemon's life: start (config, socket, readiness), serve, and one shutdown path.
//!
//! SIGTERM, SIGINT and `mcpgwctl stop` all end up in the same sequence: stop accepting, let
//! in-flight calls finish (bounded), close sessions, stop every backend's process group, remove
//! the socket. SIGHUP reloads the config like `mcpgwctl reload` and a file change do.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::backend::cache::SchemaCache;
use crate::gateway::Gateway;
use crate::ipc::listener::Listener;

/// How long a shutdown waits for in-flight calls before stopping backends under them.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The config could not be used; the message lists every problem with its location.
#[derive(Debug, thiserror::Error)]
#[error("invalid config:\n{0}")]
pub struct ConfigInvalid(pub String);

/// Where the daemon listens, which config it serves, and the tools of its own.
pub struct Options {
    pub config_path: PathBuf,
    pub socket: PathBuf,
    pub cache_dir: PathBuf,
    /// What the daemon keeps across runs: the servers' pinned tool definitions (`pins/`).
    pub state_dir: PathBuf,
    /// Tools served from this process beside the config's (for embedders; see
    /// [`crate::tools`]).
    pub tools: crate::tools::Tools,
}

/// Raises the soft limit on open descriptors to the hard one: the daemon holds three pipes per
/// backend and a socket per client, and the common soft default (1024) is reached long before
/// the hard one; HTTP connections are capped well below it (`http.max_connections`). Backends
/// get the limit back (`process::restore_descriptor_limit`).
fn raise_descriptor_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let started_with = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            // macOS refuses an unlimited soft limit (EINVAL): at most OPEN_MAX there.
            #[cfg(target_os = "macos")]
            {
                limit.rlim_cur = limit.rlim_cur.min(10_240);
            }
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                crate::process::STARTED_WITH_NOFILE
                    .store(started_with as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Where the daemon keeps its state ([`crate::paths::state_dir`]), else a per-user
/// directory under the temp dir (no home: the pins dir's checks guard it).
pub fn default_state_dir() -> PathBuf {
    crate::paths::state_dir().unwrap_or_else(|| {
        // SAFETY: getuid has no preconditions and cannot fail.
        #[cfg(unix)]
        let uid = unsafe { libc::getuid() };
        #[cfg(not(unix))]
        let uid = 0;
        std::env::temp_dir().join(format!("mcpgw-state-{uid}"))
    })
}

/// Where schemas are cached: `$MCPGW_CACHE_DIR`, else the platform cache dir.
pub fn default_cache_dir() -> PathBuf {
    SchemaCache::default_dir()
}

/// What the daemon logs unless `MCPGW_LOG` says otherwise: its own records from `info` up,
/// the MCP SDK's only from `warn` (at `info` it records every session's start and end).
pub const DEFAULT_LOG: &str = "info,rmcp=warn";

/// Whether standard error is the systemd journal: `JOURNAL_STREAM` (`<device>:<inode>`, set
/// by systemd for a unit's output) names the file descriptor 2 has. A variable merely
/// inherited by a process whose stderr went elsewhere does not count.
pub fn stderr_is_journal() -> bool {
    #[cfg(unix)]
    {
        let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
            return false;
        };
        let Some((dev, ino)) = stream.to_str().and_then(|s| s.split_once(':')) else {
            return false;
        };
        let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
            return false;
        };
        // SAFETY: fstat of descriptor 2 into a zeroed stat owned here.
        let mut stat = unsafe { std::mem::zeroed::<libc::stat>() };
        if unsafe { libc::fstat(2, &mut stat) } != 0 {
            return false;
        }
        stat.st_dev as u64 == dev && stat.st_ino as u64 == ino
    }
    #[cfg(not(unix))]
    false
}

/// The daemon's log writer: standard error, with every URL cut to its origin. Libraries (rmcp's
/// HTTP client, reqwest) log the URLs they fail on in their own spelling, and a remote
/// server's URL may carry a key in its path, query or user info.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogEvent;

    fn make_writer(&'a self) -> LogEvent {
        LogEvent(Vec::new())
    }
}

/// One log event, redacted and written to stderr whole when dropped.
pub struct LogEvent(Vec<u8>);

impl std::io::Write for LogEvent {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogEvent {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let redacted = crate::config::redact_urls(&text);
        let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), redacted.as_bytes());
    }
}

/// Resolves on SIGINT or SIGTERM (Ctrl-C elsewhere).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
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

/// Runs the daemon until `shutdown` resolves or a client asks it to stop.
pub async fn run(options: Options, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    raise_descriptor_limit();
    // Remote backends over https: one process-wide TLS provider (ring; see Cargo.toml). An
    // embedder may have installed its own already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config =
        crate::config::load(&options.config_path).map_err(|e| ConfigInvalid(e.to_string()))?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let pins = crate::pins::Pins::new(options.state_dir.join("pins"));
    let gateway = Gateway::new(
        config,
        SchemaCache::new(options.cache_dir),
        options.tools,
        pins,
    )
    .map_err(ConfigInvalid)?;
    // Signal handlers are installed when their futures are first polled: do it before the
    // socket appears, so that a SIGTERM or SIGHUP sent as soon as it does is handled, not fatal.
    // (A shutdown future that is already complete ends the daemon before it binds anything.)
    tokio::pin!(shutdown);
    if futures::FutureExt::now_or_never(&mut shutdown).is_some() {
        return Ok(());
    }
    #[cfg(unix)]
    let hup = crate::watch::sighup();
    let listener = match crate::service::inherited_listener()? {
        Some(inherited) => Listener::inherited(inherited, options.socket.clone()),
        None => Listener::bind(&options.socket).await?,
    };
    let sessions = CancellationToken::new();
    let http = crate::http::HttpServer::start(&gateway, &sessions).await?;
    let _watcher = crate::watch::config_file(gateway.clone());
    #[cfg(unix)]
    if let Some(hup) = hup {
        tokio::spawn(crate::watch::reload_on_sighup(hup, gateway.clone()));
    }
    tracing::info!(
        socket = %listener.path().display(),
        config = %options.config_path.display(),
        "mcpgwd ready"
    );
    if let Some(http) = &http {
        tracing::info!(url = http.url(), "serving MCP over HTTP");
    }
    crate::service::notify_ready();

    let tracker = tokio_util::task::TaskTracker::new();
    let mut accept_errors = crate::throttle::RateLimit::new(1, Duration::from_secs(10));
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            () = gateway.stopping() => break,
            accepted = listener.accept() => match accepted {
                Ok(stream) => {
                    let gateway = gateway.clone();
                    let stop = sessions.child_token();
                    tracker.spawn(crate::connection::serve(gateway, stream, stop));
                }
                Err(e) => {
                    // Out of descriptors, most likely: wait rather than spin, and say so only
                    // now and then.
                    if accept_errors.allow() {
                        tracing::warn!("accepting a local connection failed: {e}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    tracing::info!("shutting down");
    crate::service::notify_stopping();
    drop(listener);
    if let Some(http) = &http {
        http.stop_accepting();
    }
    gateway.drain(DRAIN_GRACE).await;
    sessions.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
    if let Some(http) = http {
        http.stopped(Duration::from_secs(2)).await;
    }
    gateway.stop_backends().await;
    tracing::info!("stopped");
    Ok(())
}
