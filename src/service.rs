//! Running under a service manager: systemd's readiness notifications (the `sd_notify`
//! protocol, written by hand) and socket activation (a listening socket handed to us as fd 3).
//!
//! Both are opt-in through the environment systemd sets (`NOTIFY_SOCKET`, `LISTEN_PID`,
//! `LISTEN_FDS`); without it every function here does nothing, so a daemon started from a
//! terminal or by launchd behaves as before. This module never names the gateway socket:
//! what an inherited socket is called is [`crate::ipc::listener::Listener::inherited`]'s business.
//!
//! The environment is read, never changed: [`inherited_listener`] runs inside the async runtime,
//! where other threads may read the environment at the same time, and `remove_var` would then be
//! unsound. Instead, backends must not be handed these variables: see [`SERVICE_MANAGER_ENV`].

use std::io;

/// Variables systemd sets for the daemon's process only. A backend spawner should remove them
/// (`Command::env_remove`): they describe the daemon, not the backend. Left in place they are
/// harmless, which is why nothing breaks before a spawner removes them: `LISTEN_PID` names the
/// daemon's pid, so a socket-activation-aware backend ignores `LISTEN_FDS` (and fd 3 is
/// close-on-exec anyway), and systemd ignores notifications from any process but the main one
/// (the default `NotifyAccess=main`).
pub const SERVICE_MANAGER_ENV: [&str; 4] = [
    "NOTIFY_SOCKET",
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
];

/// Tells systemd the daemon accepts connections. Call it once the listener exists (bound or
/// inherited), and again after each reload announced with [`notify_reloading`].
pub fn notify_ready() {
    notify(&format!("READY=1\nMAINPID={}", std::process::id()));
}

/// Tells systemd a reload has begun; it waits for the next [`notify_ready`], which must follow
/// whether the reload succeeded or not (a failed reload keeps the old config and is still ready).
pub fn notify_reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// Tells systemd the daemon is shutting down (backends are being stopped).
pub fn notify_stopping() {
    notify("STOPPING=1");
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to systemd as one datagram on
/// `$NOTIFY_SOCKET`. Does nothing when the variable is unset; a failure is logged and otherwise
/// ignored, since notification is advisory and must never stop the daemon.
pub fn notify(state: &str) {
    #[cfg(unix)]
    {
        let Some(socket) = std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()) else {
            return;
        };
        if let Err(e) = unix::send_datagram(&socket, state.as_bytes()) {
            tracing::warn!(
                notify_socket = %socket.to_string_lossy(),
                "cannot notify the service manager ({}): {e}",
                state.lines().next().unwrap_or_default()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = state;
}

/// The listening socket systemd passed us (socket activation), if it passed one.
///
/// Takes fd 3 (`SD_LISTEN_FDS_START`) when `LISTEN_PID` is our pid and `LISTEN_FDS` ≥ 1, marks
/// it (and any further passed fds) close-on-exec so backends do not inherit it, checks it is a
/// listening Unix stream socket, and wraps it for the async runtime: call it from within the
/// runtime. It hands the fd out at most once per process; later calls return `Ok(None)`.
/// Errors mean systemd passed something unusable (a socket unit with the wrong kind of socket):
/// the daemon should exit rather than bind a socket of its own at the path systemd owns.
///
/// Always `Ok(None)` on platforms other than Unix.
pub fn inherited_listener() -> io::Result<Option<interprocess::local_socket::tokio::Listener>> {
    #[cfg(unix)]
    {
        unix::inherited_listener()
    }
    #[cfg(not(unix))]
    {
        Ok(None)
    }
}

/// Microseconds of `CLOCK_MONOTONIC`, the clock systemd's `MONOTONIC_USEC` is read against.
fn monotonic_usec() -> u64 {
    #[cfg(unix)]
    {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid, writable timespec; CLOCK_MONOTONIC exists on every Unix we
        // build for, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1_000
    }
    #[cfg(not(unix))]
    {
        0
    }
}

#[cfg(unix)]
mod unix {
    use std::ffi::OsStr;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
    use std::os::unix::net::UnixDatagram;
    use std::sync::atomic::{AtomicBool, Ordering};

    use interprocess::local_socket::tokio::Listener;
    use interprocess::os::unix::uds_local_socket::tokio::Listener as UdsListener;

    /// `SD_LISTEN_FDS_START`: systemd passes sockets as fds 3, 4, …
    const LISTEN_FDS_START: RawFd = 3;

    /// Set once fd 3 has been wrapped: a second wrap would own (and close) the same fd twice.
    static TAKEN: AtomicBool = AtomicBool::new(false);

    pub(super) fn send_datagram(socket: &OsStr, message: &[u8]) -> io::Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let datagram = UnixDatagram::unbound()?;
        let sent = match socket.as_bytes().strip_prefix(b"@") {
            Some(abstract_name) => send_abstract(&datagram, abstract_name, message)?,
            None => datagram.send_to(message, socket)?,
        };
        if sent != message.len() {
            return Err(io::Error::other(format!(
                "sent {sent} of {} bytes",
                message.len()
            )));
        }
        Ok(())
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn send_abstract(datagram: &UnixDatagram, name: &[u8], message: &[u8]) -> io::Result<usize> {
        #[cfg(target_os = "android")]
        use std::os::android::net::SocketAddrExt;
        #[cfg(target_os = "linux")]
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        datagram.send_to_addr(message, &addr)
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn send_abstract(_: &UnixDatagram, _: &[u8], _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "abstract socket addresses exist only on Linux",
        ))
    }

    pub(super) fn inherited_listener() -> io::Result<Option<Listener>> {
        let Some(count) = passed_fd_count()? else {
            return Ok(None);
        };
        if TAKEN.swap(true, Ordering::SeqCst) {
            return Ok(None);
        }
        for fd in LISTEN_FDS_START..LISTEN_FDS_START.saturating_add(count) {
            set_cloexec(fd)?;
        }
        if count > 1 {
            tracing::warn!(
                "systemd passed {count} sockets; only the first (fd {LISTEN_FDS_START}) is used"
            );
        }
        // SAFETY: fd 3 is open (set_cloexec succeeded on it) and nothing else in this process
        // refers to it: systemd passed it to this very process (LISTEN_PID is ours) for it to
        // own, and TAKEN guarantees it is wrapped only once.
        let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
        check_listening_unix_stream(&fd)?;
        let listener = UdsListener::try_from(fd)?;
        Ok(Some(Listener::from(listener)))
    }

    /// `LISTEN_FDS` when `LISTEN_PID` names this process and at least one fd was passed.
    fn passed_fd_count() -> io::Result<Option<RawFd>> {
        let pid = std::env::var("LISTEN_PID").ok();
        if pid.as_deref().map(str::trim) != Some(&std::process::id().to_string()) {
            // Unset, or meant for another process (e.g. inherited from our own parent).
            return Ok(None);
        }
        let fds = std::env::var("LISTEN_FDS").unwrap_or_default();
        match fds.trim().parse::<RawFd>() {
            Ok(0) => Ok(None),
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("LISTEN_FDS is {fds:?}, not a number of passed sockets"),
            )),
        }
    }

    fn set_cloexec(fd: RawFd) -> io::Result<()> {
        // SAFETY: F_GETFD/F_SETFD only read and set the descriptor's flags; an fd that is not
        // open makes them fail with EBADF, which is reported.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("socket activation: fd {fd} is not usable: {e}"),
                ));
            }
        }
        Ok(())
    }

    /// Checks what `sd_is_socket_unix(fd, SOCK_STREAM, 1, …)` checks: a Unix stream socket that
    /// is listening. A socket unit with `ListenDatagram=` or `Accept=yes` fails here with a
    /// message instead of the daemon hanging in accept.
    fn check_listening_unix_stream(fd: &OwnedFd) -> io::Result<()> {
        let raw = fd.as_raw_fd();
        let wrong = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "socket activation: fd {raw} is {what}, not a listening Unix stream socket \
                     (check the socket unit: ListenStream=, Accept=no)"
                ),
            )
        };
        let int_opt = |level, name| -> io::Result<libc::c_int> {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: value and len are valid for writes and len is value's size.
            let rc = unsafe {
                libc::getsockopt(raw, level, name, (&raw mut value).cast(), &raw mut len)
            };
            if rc < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(value)
        };
        let kind = match int_opt(libc::SOL_SOCKET, libc::SO_TYPE) {
            Ok(kind) => kind,
            Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => {
                return Err(wrong("not a socket"));
            }
            Err(e) => return Err(e),
        };
        if kind != libc::SOCK_STREAM {
            return Err(wrong("a datagram or sequential-packet socket"));
        }
        // SAFETY: sockaddr_storage is plain data for which all-zero bytes are valid.
        let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: addr and len are valid for writes and len is addr's size.
        let rc = unsafe { libc::getsockname(raw, (&raw mut addr).cast(), &raw mut len) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::c_int::from(addr.ss_family) != libc::AF_UNIX {
            return Err(wrong("a network socket"));
        }
        if int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
            return Err(wrong("a connected (not listening) socket"));
        }
        Ok(())
    }
}
