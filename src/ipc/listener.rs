//! The daemon's side of the local socket: claiming the path safely and accepting peers.
//!
//! Binding never pushes aside a live daemon: an existing path is first connected to, and only
//! removed when nothing answers. The socket's directory is private to the user (0700) and the
//! socket itself 0600; on top of that every accepted peer's uid is checked, so another user can
//! never reach this daemon even through a misconfigured path.

use std::io;
use std::path::{Path, PathBuf};

use interprocess::local_socket::ListenerOptions;
use interprocess::local_socket::tokio::prelude::*;
use interprocess::local_socket::tokio::{Listener as TokioListener, Stream};

/// The read side of an accepted connection, buffered: it may hold bytes sent right after the
/// hello.
pub type Reader =
    tokio::io::BufReader<tokio::io::ReadHalf<interprocess::local_socket::tokio::Stream>>;
/// The write side of an accepted connection.
pub type Writer = tokio::io::WriteHalf<interprocess::local_socket::tokio::Stream>;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("mcpgwd is already running on {0}")]
    AlreadyRunning(PathBuf),
    /// `reason` names the directory and says what to do.
    #[error("{reason}")]
    Directory { path: PathBuf, reason: String },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub struct Listener {
    inner: TokioListener,
    path: PathBuf,
    /// Held for the daemon's lifetime: the kernel drops it when the process dies, however.
    _lock: Option<std::fs::File>,
}

impl Listener {
    /// Claims `path`: fails if a daemon answers there, replaces a stale socket file.
    pub async fn bind(path: &Path) -> Result<Self, BindError> {
        #[cfg(unix)]
        prepare_dir(path)?;
        // Two daemons starting at once (racing shims) could otherwise both find the path free,
        // or one could take the other's just-bound socket for stale between bind and listen.
        let lock = lock_instance(path)?;
        if claim_existing(path).await? {
            tracing::info!(path = %path.display(), "replaced a stale socket");
        }
        let io_err = |source| BindError::Io {
            path: path.to_path_buf(),
            source,
        };
        let name = super::to_name(path).map_err(io_err)?;
        let options = ListenerOptions::new().name(name);
        #[cfg(unix)]
        let options = {
            use interprocess::os::unix::local_socket::ListenerOptionsExt;
            options.mode(0o600)
        };
        let inner = options.create_tokio().map_err(io_err)?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// Wraps a listener a service manager created and passed to us (systemd socket activation,
    /// see [`crate::service::inherited_listener`]). `path` is where the daemon expected to
    /// listen; when the socket is really bound elsewhere, that path is used and the mismatch
    /// logged, since clients looking at `path` will not find this daemon.
    ///
    /// The service manager owns the socket file, so dropping this listener never removes it:
    /// interprocess arms its name reclamation (unlink on drop) only for listeners it binds
    /// itself, as in [`bind`](Self::bind), never for one made from an fd; it is disarmed here
    /// again so that stays true whatever the caller built `inner` from.
    pub fn inherited(mut inner: TokioListener, path: PathBuf) -> Self {
        inner.do_not_reclaim_name_on_drop();
        let path = match bound_path(&inner) {
            Some(bound) if !same_file(&bound, &path) => {
                tracing::warn!(
                    expected = %path.display(),
                    bound = %bound.display(),
                    "the inherited socket is not at the configured socket path; clients using \
                     the configured path will not reach this daemon"
                );
                bound
            }
            _ => path,
        };
        Self {
            inner,
            path,
            _lock: None,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next peer of our own uid; peers of other users are refused and logged.
    pub async fn accept(&self) -> io::Result<Stream> {
        loop {
            let stream = self.inner.accept().await?;
            match peer_is_us(&stream) {
                Ok(true) => return Ok(stream),
                Ok(false) => tracing::warn!("refused a connection from another user"),
                Err(e) => tracing::warn!("refused a connection whose peer is unknown: {e}"),
            }
        }
    }
}

/// The filesystem path a listener is bound to, if it has one.
#[cfg(unix)]
fn bound_path(listener: &TokioListener) -> Option<PathBuf> {
    let TokioListener::UdSocket(uds) = listener;
    let addr = uds.inner().local_addr().ok()?;
    addr.as_pathname().map(Path::to_path_buf)
}

#[cfg(not(unix))]
fn bound_path(_listener: &TokioListener) -> Option<PathBuf> {
    None
}

/// Whether two spellings (relative, through symlinks) name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(a), Ok(b)) if a == b
        )
}

#[cfg(unix)]
fn peer_is_us(stream: &Stream) -> io::Result<bool> {
    let creds = stream.peer_creds()?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    Ok(creds.euid() == Some(me))
}

#[cfg(not(unix))]
fn peer_is_us(_stream: &Stream) -> io::Result<bool> {
    // Named pipes are created with the default DACL of the daemon's user, which already
    // refuses other users.
    Ok(true)
}

/// Creates the socket's directory private to this user, or checks that an existing one is.
/// An existing directory is never changed: one that others can use is refused (it may be a
/// directory of the user's own, named with `--socket`, whose mode is theirs to choose).
#[cfg(unix)]
fn prepare_dir(path: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::DirBuilderExt;
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    let fail = |reason: String| BindError::Directory {
        path: dir.to_path_buf(),
        reason,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| {
            fail(format!(
                "cannot create the socket directory {}: {e}",
                dir.display()
            ))
        })?;
    super::check_private_dir(dir).map_err(fail)
}

/// Takes an exclusive lock on `<socket>.lock`, or reports the daemon that holds it.
fn lock_instance(path: &Path) -> Result<Option<std::fs::File>, BindError> {
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| BindError::Io {
                path: PathBuf::from(&lock_path),
                source,
            })?;
        // SAFETY: flock on an fd we own; LOCK_NB makes it return at once.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(BindError::AlreadyRunning(path.to_path_buf()));
        }
        Ok(Some(file))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(None)
    }
}

/// Returns Ok(true) when a stale socket was removed, Ok(false) when the path was free.
async fn claim_existing(path: &Path) -> Result<bool, BindError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(BindError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Ok(meta) if !meta.file_type().is_socket() => {
                return Err(BindError::NotASocket {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => {}
        }
    }
    let name = super::to_name(path).map_err(|source| BindError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    match Stream::connect(name).await {
        Ok(_) => Err(BindError::AlreadyRunning(path.to_path_buf())),
        Err(e) if super::is_not_running(&e) => {
            #[cfg(unix)]
            if let Err(source) = std::fs::remove_file(path)
                && source.kind() != io::ErrorKind::NotFound
            {
                return Err(BindError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Ok(cfg!(unix))
        }
        // Permission denied and the like: someone else's socket; never remove it.
        Err(source) => Err(BindError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
