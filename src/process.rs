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
    // Older kernels and other systems: one fcntl per possible descriptor.
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
