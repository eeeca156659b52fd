//! Where the daemon listens and how local clients reach it.
//!
//! Where the socket is, is [`crate::paths`]' business; this module knows how a path maps to an
//! interprocess name (a Unix socket file, or a Windows named pipe). The blocking client side lives here because the shim and mcpgwctl use
//! it without an async runtime; the daemon's listener is in [`listener`].

#[cfg(feature = "daemon")]
pub mod listener;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::Path;

use interprocess::local_socket::{Stream, prelude::*};

use crate::protocol::{self, Hello, HelloReply};

/// The process listening at `path` must run as this user: the directory checks cannot see a
/// socket that another user's process bound before losing its rights, nor a path given with
/// `--socket` in a shared place.
#[cfg(unix)]
fn check_peer(stream: &Stream, path: &Path) -> Result<(), ConnectError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let peer = stream.peer_creds().map_err(|e| {
        ConnectError::Untrusted(format!(
            "cannot tell who listens at {} ({e}); refusing to talk to it",
            path.display()
        ))
    })?;
    match peer.euid() {
        Some(uid) if uid == me => Ok(()),
        other => Err(ConnectError::Untrusted(format!(
            "the process listening at {} runs as uid {}, not as you (uid {me}); refusing to \
             talk to it (choose a private directory with --socket or MCPGW_SOCKET)",
            path.display(),
            other.map_or("unknown".to_string(), |uid| uid.to_string())
        ))),
    }
}

fn to_name(path: &Path) -> io::Result<interprocess::local_socket::Name<'_>> {
    #[cfg(windows)]
    {
        use interprocess::local_socket::GenericNamespaced;
        let file = path.file_name().unwrap_or(path.as_os_str());
        file.to_ns_name::<GenericNamespaced>()
    }
    #[cfg(not(windows))]
    {
        use interprocess::local_socket::GenericFilePath;
        path.to_fs_name::<GenericFilePath>()
    }
}

/// Checks that `dir`, a socket's directory, is one only this user controls: a real directory
/// (not a symbolic link), owned by us, with no permissions for group or others. Anyone else who
/// controls it could put their own listener there, read what clients send and answer with
/// forged results. The error says what is wrong and what to do.
#[cfg(unix)]
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    let problem = match private_dir(dir) {
        Ok(()) => return Ok(()),
        Err(NotPrivate::Uninspectable(e)) => {
            return Err(format!(
                "cannot inspect the socket directory {}: {e}",
                dir.display()
            ));
        }
        Err(problem) => problem,
    };
    let fix = match problem {
        NotPrivate::Owner { .. } => "have it removed",
        NotPrivate::Open { .. } => "`chmod 700` it",
        _ => "remove it",
    };
    Err(format!(
        "refusing the socket directory {}: it {problem}, so another user could listen there in \
         mcpgw's place; {fix}, or choose a private directory with --socket or MCPGW_SOCKET",
        dir.display()
    ))
}

/// Why a directory is not one only this user controls (see [`private_dir`]); displayed as
/// what follows "it": "it is a symbolic link".
#[cfg(unix)]
#[derive(Debug)]
pub enum NotPrivate {
    Uninspectable(io::Error),
    Symlink,
    NotADirectory,
    Owner {
        uid: u32,
        me: u32,
    },
    /// Owned by us, with these permission bits (group or others have some).
    Open {
        mode: u32,
    },
}

#[cfg(unix)]
impl std::fmt::Display for NotPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uninspectable(e) => write!(f, "cannot be inspected ({e})"),
            Self::Symlink => f.write_str("is a symbolic link"),
            Self::NotADirectory => f.write_str("is not a directory"),
            Self::Owner { uid, me } => write!(f, "belongs to uid {uid}, not to you (uid {me})"),
            Self::Open { mode } => write!(f, "can be used by other users (mode {mode:o})"),
        }
    }
}

/// Whether `dir` is one only this user controls: a real directory (not a symbolic link, which
/// is not followed), owned by us, with no permissions for group or others.
#[cfg(unix)]
pub fn private_dir(dir: &Path) -> Result<(), NotPrivate> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(NotPrivate::Uninspectable)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.file_type().is_symlink() {
        Err(NotPrivate::Symlink)
    } else if !meta.is_dir() {
        Err(NotPrivate::NotADirectory)
    } else if meta.uid() != me {
        Err(NotPrivate::Owner {
            uid: meta.uid(),
            me,
        })
    } else if meta.mode() & 0o077 != 0 {
        Err(NotPrivate::Open {
            mode: meta.mode() & 0o7777,
        })
    } else {
        Ok(())
    }
}

/// True when a connect error means "no daemon is there" (as opposed to e.g. permission denied).
pub fn is_not_running(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
    )
}

/// A connection to the daemon after a successful hello.
pub struct Connection {
    /// Buffered read side: may already hold bytes the daemon sent after its hello reply.
    pub reader: BufReader<StreamRef>,
    pub writer: StreamRef,
}

/// A shared handle to the stream, usable as the read side and the write side from two threads.
#[derive(Clone)]
pub struct StreamRef(std::sync::Arc<Stream>);

impl Read for StreamRef {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl Write for StreamRef {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

impl StreamRef {
    /// Tells the daemon we will send nothing more, keeping the read side open so responses
    /// already in flight still arrive. Named pipes have no half-close; there the caller just
    /// stops writing.
    pub fn shutdown_write(&self) {
        #[cfg(unix)]
        self.shut(libc::SHUT_WR);
    }

    /// Ends the connection both ways, waking a reader blocked on it (the shim's, after a
    /// write to the daemon failed).
    pub fn shutdown(&self) {
        #[cfg(unix)]
        self.shut(libc::SHUT_RDWR);
    }

    #[cfg(unix)]
    fn shut(&self, how: libc::c_int) {
        use std::os::fd::{AsFd, AsRawFd};
        let Stream::UdSocket(socket) = &*self.0;
        // SAFETY: the fd is owned by the stream and stays open for this call.
        unsafe { libc::shutdown(socket.as_fd().as_raw_fd(), how) };
    }
}

/// Why a hello did not produce a connection.
#[derive(Debug)]
pub enum ConnectError {
    /// Nothing listens at the path (no daemon).
    NotRunning(io::Error),
    /// Any other I/O failure.
    Io(io::Error),
    /// The daemon answered and refused; the connection is still usable to relay the refusal.
    Refused(String, Connection),
    /// The socket's directory or the process listening there is not this user's: nothing was
    /// sent (see [`check_private_dir`]).
    Untrusted(String),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotRunning(e) | Self::Io(e) => e.fmt(f),
            Self::Refused(msg, _) | Self::Untrusted(msg) => f.write_str(msg),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connection")
    }
}

/// Connects to the daemon at `path` and exchanges the hello, after making sure that the
/// socket's directory and the listening process are this user's.
pub fn connect(path: &Path, hello: &Hello) -> Result<Connection, ConnectError> {
    #[cfg(unix)]
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        match std::fs::symlink_metadata(dir) {
            // No directory, no daemon (a daemon creates it, private).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ConnectError::NotRunning(e));
            }
            _ => check_private_dir(dir).map_err(ConnectError::Untrusted)?,
        }
    }
    let stream = to_name(path).and_then(Stream::connect).map_err(|e| {
        if is_not_running(&e) {
            ConnectError::NotRunning(e)
        } else {
            ConnectError::Io(e)
        }
    })?;
    #[cfg(unix)]
    check_peer(&stream, path)?;
    let stream = StreamRef(std::sync::Arc::new(stream));
    let mut writer = stream.clone();
    writer
        .write_all(&protocol::to_line(hello))
        .map_err(ConnectError::Io)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).map_err(ConnectError::Io)?;
    if line.is_empty() {
        return Err(ConnectError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the daemon closed the connection before answering the hello",
        )));
    }
    let reply: HelloReply = serde_json::from_str(&line).map_err(|e| {
        ConnectError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the daemon's hello reply is not understood ({e}): is something else listening there?"),
        ))
    })?;
    let conn = Connection { reader, writer };
    if reply.ok {
        Ok(conn)
    } else {
        let msg = reply
            .error
            .unwrap_or_else(|| "refused by the daemon".into());
        Err(ConnectError::Refused(msg, conn))
    }
}
