//! What a backend's process group holds, for status: the resident memory and number of every
//! process in the group, read in one scan of the system's processes for all backends at once.
//!
//! A backend's child leads a process group of its own ([`super::child`]), and what it starts
//! stays in that group: `npx` → `node`, `uvx` → `python`, a shell wrapper → the server. The
//! direct child alone is often the smaller part (a wrapper of a few MB in front of a server of
//! a hundred), so status sums the group.
//!
//! Linux only: one pass over `/proc/<pid>/stat` (one small file per process, which carries the
//! group and the resident pages, so nothing else is read), grouped by process group id. Its cost
//! grows with the number of processes on the machine, not with the number of backends: it runs
//! at most once per status request, on a blocking thread, and a scan less than a second old is
//! reused ([`Scans`]). Elsewhere the scan finds nothing and status shows no memory, as before.
//!
//! The sum counts pages shared between the group's processes (libraries, a forked parent's
//! memory) once per process, as `ps` and `top` do; a process that moved itself to another group
//! (a daemonizing grandchild) is not counted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a scan answers later status requests for the same groups at least: whatever calls
/// status (`gateway_status` is any client's to call), the machine's processes are read at most
/// once in this time.
const REUSE: Duration = Duration::from_secs(1);
/// And at least this many times as long as the scan took, so that on a machine of very many
/// processes scans take at most a twentieth of a core.
const REUSE_PER_SCAN_TIME: u32 = 20;

/// Resident memory and size of one process group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Resident memory of every process in the group, summed.
    pub rss_bytes: u64,
    /// Resident memory of the group's leader (the backend's direct child) alone.
    pub leader_rss_bytes: Option<u64>,
    pub processes: u32,
}

/// The usage of some process groups, from one scan.
#[derive(Debug, Default)]
pub struct Groups(HashMap<u32, Usage>);

impl Groups {
    /// Scans the system's processes once for the groups led by `leaders` (a backend's group id
    /// is its child's pid). Empty when `leaders` is, and on platforms without `/proc`.
    pub fn scan(leaders: impl IntoIterator<Item = u32>) -> Self {
        let mut groups: HashMap<u32, Usage> = leaders
            .into_iter()
            .map(|pgid| (pgid, Usage::default()))
            .collect();
        if groups.is_empty() {
            return Self(groups);
        }
        #[cfg(target_os = "linux")]
        {
            let page = page_size();
            for_each_process(|stat| {
                if let Some((pid, pgid, rss_pages)) = parse_stat(stat)
                    && let Some(usage) = groups.get_mut(&pgid)
                {
                    let bytes = rss_pages * page;
                    usage.rss_bytes += bytes;
                    usage.processes += 1;
                    if pid == pgid {
                        usage.leader_rss_bytes = Some(bytes);
                    }
                }
            });
        }
        groups.retain(|_, usage| usage.processes > 0);
        Self(groups)
    }

    /// The usage of the group led by `pgid`, if the scan found any process of it.
    pub fn of(&self, pgid: u32) -> Option<Usage> {
        self.0.get(&pgid).copied()
    }
}

/// The scans of the daemon's status requests: one at a time, off the async runtime (the daemon
/// has one thread, and a scan of 2000 processes takes 20 ms and more), and reused for
/// [`REUSE`] or twenty times as long as it took.
#[derive(Default)]
pub struct Scans(tokio::sync::Mutex<Option<Scan>>);

struct Scan {
    /// When it ended.
    at: Instant,
    /// How long it answers for.
    reuse: Duration,
    /// The groups it looked for, sorted.
    leaders: Vec<u32>,
    groups: Arc<Groups>,
}

impl Scans {
    /// The usage of the groups led by `leaders`, from a scan made now or in the last
    /// [`REUSE`] for the same groups.
    pub async fn groups(&self, mut leaders: Vec<u32>) -> Arc<Groups> {
        leaders.sort_unstable();
        leaders.dedup();
        if leaders.is_empty() {
            return Arc::default();
        }
        let mut last = self.0.lock().await;
        if let Some(scan) = last.as_ref()
            && scan.leaders == leaders
            && scan.at.elapsed() < scan.reuse
        {
            return scan.groups.clone();
        }
        let wanted = leaders.clone();
        let started = Instant::now();
        let groups = tokio::task::spawn_blocking(move || Groups::scan(wanted))
            .await
            .map(Arc::new)
            .unwrap_or_default();
        *last = Some(Scan {
            at: Instant::now(),
            reuse: REUSE.max(started.elapsed() * REUSE_PER_SCAN_TIME),
            leaders,
            groups: groups.clone(),
        });
        groups
    }
}

#[cfg(target_os = "linux")]
fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).unwrap_or(4096)
}

/// Calls `each` with the contents of `/proc/<pid>/stat` of every process. A process that ends
/// during the scan is skipped.
#[cfg(target_os = "linux")]
fn for_each_process(mut each: impl FnMut(&[u8])) {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;

    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    let mut path = Vec::with_capacity(32);
    // A stat line is at most 52 numbers and a 16-byte name, well under this; the kernel makes
    // it whole on the first read, so one read takes it (a second, to see the end, would cost a
    // syscall per process).
    let mut buf = [0; 4096];
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.as_bytes();
        if name.is_empty() || !name.iter().all(u8::is_ascii_digit) {
            continue;
        }
        path.clear();
        path.extend_from_slice(b"/proc/");
        path.extend_from_slice(name);
        path.extend_from_slice(b"/stat");
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(&path));
        let Ok(mut file) = std::fs::File::open(path) else {
            continue;
        };
        if let Ok(n @ 1..4096) = file.read(&mut buf) {
            each(&buf[..n]);
        }
    }
}

/// Process id, process group id and resident pages from one `/proc/<pid>/stat` line:
/// `pid (comm) state ppid pgrp … rss …` (proc(5): pgrp is field 5, rss field 24). The command
/// name may hold spaces and parentheses, so the fields are counted from its last `)`.
fn parse_stat(stat: &[u8]) -> Option<(u32, u32, u64)> {
    let open = memchr::memchr(b'(', stat)?;
    let close = memchr::memrchr(b')', stat)?;
    if close < open {
        return None;
    }
    let pid = number(stat[..open].trim_ascii())?;
    let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state (3), ppid (4), pgrp (5), …, rss (24).
    let pgrp = fields.nth(2)?.parse().ok()?;
    let rss = fields.nth(18)?.parse().ok()?;
    Some((u32::try_from(pid).ok()?, pgrp, rss))
}

fn number(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line (`cat /proc/self/stat`) with the name swapped for `name`.
    fn stat_line(pid: u32, name: &str, pgrp: u32, rss: u64) -> String {
        format!(
            "{pid} ({name}) S 1 {pgrp} {pgrp} 0 -1 4194560 1234 0 0 0 12 3 0 0 20 0 1 0 \
             987654 10473472 {rss} 18446744073709551615 94000000000000 94000000100000 \
             140730000000000 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94000000200000 94000000210000 \
             94000001000000 140730000001000 140730000001100 140730000001100 140730000002000 0\n"
        )
    }

    #[test]
    fn a_stat_line_gives_pid_group_and_resident_pages() {
        assert_eq!(
            parse_stat(stat_line(1234, "node", 1200, 19000).as_bytes()),
            Some((1234, 1200, 19000))
        );
    }

    #[test]
    fn a_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        for name in ["my (weird) name", "a) S 1 2 3", ")", "((", "x y z", ""] {
            assert_eq!(
                parse_stat(stat_line(1234, name, 1234, 77).as_bytes()),
                Some((1234, 1234, 77)),
                "{name:?}"
            );
        }
    }

    #[test]
    fn a_cut_or_foreign_line_gives_nothing() {
        let line = stat_line(5, "sh", 5, 10);
        for cut in [0, 3, 8, 20, 60] {
            assert_eq!(parse_stat(&line.as_bytes()[..cut]), None, "cut at {cut}");
        }
        assert_eq!(parse_stat(b"no parentheses here"), None);
        assert_eq!(parse_stat(b"x (sh) S 1 2"), None);
        assert_eq!(parse_stat(b") sh ( S 1 2 3"), None);
    }

    #[test]
    fn nothing_is_scanned_without_groups() {
        assert_eq!(Groups::scan([]).of(1), None);
    }

    #[tokio::test]
    async fn a_scan_is_reused_for_the_same_groups_only() {
        let scans = Scans::default();
        assert!(scans.groups(vec![]).await.0.is_empty());
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() } as u32;
        let first = scans.groups(vec![pgid, pgid]).await;
        assert!(Arc::ptr_eq(&first, &scans.groups(vec![pgid]).await));
        let other = scans.groups(vec![pgid, 1]).await;
        assert!(!Arc::ptr_eq(&first, &other));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_scan_finds_this_process_group() {
        // SAFETY: getpgrp has no preconditions.
        let pgid = unsafe { libc::getpgrp() } as u32;
        let usage = Groups::scan([pgid])
            .of(pgid)
            .expect("our own group is found");
        assert!(usage.processes >= 1, "{usage:?}");
        // This test process alone is resident for more than a MiB.
        assert!(usage.rss_bytes > 1 << 20, "{usage:?}");
    }
}
