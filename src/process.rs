//! What a process we start inherits: only its standard streams.
//!
//! The shim runs with whatever descriptors its MCP client left open without close-on-exec
//! (editors and clients leak sockets, pipes and files), and the daemon may hold a socket
//! systemd passed it: a daemon the shim starts, and every backend the daemon starts, would
//! otherwise inherit them, keep them open for their whole life and could use them.

/// Marks every descriptor above stderr close-on-exec. Call it in `pre_exec` (after `fork`,
/// before `exec`): it only makes system calls, so it is safe there; the standard streams were
/// already set up, and the ones the standard library itself opened are close-on-exec already.
#[cfg(unix)]
pub fn close_inherited_on_exec() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes descriptor flags.
        let done = unsafe {
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC as libc::c_uint,
            )
        };
        if done == 0 {
            return;
        }
    }
    // Older kernels and other systems (macOS has no close_range): one fcntl per possible
    // descriptor, up to the soft limit but at most 65536, so a descriptor numbered above that
    // stays inheritable (ARCHITECTURE.md, limits). `closefrom` would close, not mark: it would
    // take the standard library's exec-error pipe too. Listing /dev/fd allocates, which a
    // forked child of a threaded daemon must not.
    // SAFETY: sysconf and fcntl are async-signal-safe; fcntl on a closed descriptor just fails.
    unsafe {
        let max = match libc::sysconf(libc::_SC_OPEN_MAX) {
            n if n > 0 => n.min(65_536) as libc::c_int,
            _ => 1024,
        };
        for fd in 3..max {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
                libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
            }
        }
    }
}

/// The soft descriptor limit the daemon was started with, when it raised its own (0: never).
#[cfg(all(unix, feature = "daemon"))]
pub static STARTED_WITH_NOFILE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Gives a child the soft descriptor limit the daemon was started with: programs written for
/// the usual 1024 (`select`) must not get more just because the daemon needed it. Call it in
/// `pre_exec`: it only reads an atomic and makes system calls.
#[cfg(all(unix, feature = "daemon"))]
pub fn restore_descriptor_limit() {
    let soft = STARTED_WITH_NOFILE.load(std::sync::atomic::Ordering::Relaxed);
    if soft == 0 {
        return;
    }
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut limit = std::mem::zeroed::<libc::rlimit>();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = soft as libc::rlim_t;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
