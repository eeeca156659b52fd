//! The daemon's side of the local socket: claiming the path safely and accepting peers.
//!
//! Binding never pushes aside a live daemon: an existing path is first connected to, and only
//! removed when nothing answers. The socket's directory is private to the user (0700) and the
//! socket itself 0600; on top of that every accepted peer's uid is checked, so another user can
//! never reach this daemon even through a misconfigured path.

use std::io;
use std::path::{Path, PathBuf};

use interprocess::local_socket::tokio::{Listener as TokioListener, Stream};
use interprocess::local_socket::ListenerOptions;
use interprocess::local_socket::tokio::prelude::*;

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("mcpgwd is already running on {0}")]
    AlreadyRunning(PathBuf),
    #[error("cannot use socket directory {path}: {reason}")]
    Directory { path: PathBuf, reason: String },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: PathBuf },
    #[error("cannot listen on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

pub struct Listener {
    inner: TokioListener,
    path: PathBuf,
}

impl Listener {
    /// Claims `path`: fails if a daemon answers there, replaces a stale socket file.
    pub async fn bind(path: &Path) -> Result<Self, BindError> {
        #[cfg(unix)]
        prepare_dir(path)?;
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
        })
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
#[cfg(unix)]
fn prepare_dir(path: &Path) -> Result<(), BindError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
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
        .map_err(|e| fail(e.to_string()))?;
    let meta = std::fs::metadata(dir).map_err(|e| fail(e.to_string()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(fail(format!(
            "it belongs to uid {}, not to us (uid {me})",
            meta.uid()
        )));
    }
    // A directory we own but others can enter or write would let them swap the socket.
    if meta.permissions().mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail(format!("cannot make it private: {e}")))?;
    }
    Ok(())
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
