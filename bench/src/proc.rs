//! Processes as Linux's /proc shows them: finding them by command line, their memory.

/// Live (not zombie) processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) && alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// True if the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Resident set size in KiB (`VmRSS`), 0 if the process is gone.
pub fn rss_kib(pid: u32) -> f64 {
    field_kib(&format!("/proc/{pid}/status"), "VmRSS:")
}

/// Peak resident set size in KiB (`VmHWM`), 0 if the process is gone.
pub fn hwm_kib(pid: u32) -> f64 {
    field_kib(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// Resets the process's peak resident set size (`VmHWM`) to its current one, so a later
/// [`hwm_kib`] is the peak since now. False where the kernel does not allow it.
pub fn reset_hwm(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Open file descriptors of the process, 0 if the process is gone.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

/// Proportional set size in KiB (shared pages divided among their users), 0 if unknown.
pub fn pss_kib(pid: u32) -> f64 {
    field_kib(&format!("/proc/{pid}/smaps_rollup"), "Pss:")
}

fn field_kib(path: &str, key: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l[key.len()..].split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

/// Memory of a set of processes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Mem {
    pub rss_kib: f64,
    pub pss_kib: f64,
    pub processes: usize,
}

impl Mem {
    pub fn of(pids: &[u32]) -> Self {
        Self {
            rss_kib: pids.iter().map(|&p| rss_kib(p)).sum(),
            pss_kib: pids.iter().map(|&p| pss_kib(p)).sum(),
            processes: pids.len(),
        }
    }

    pub fn plus(self, other: Self) -> Self {
        Self {
            rss_kib: self.rss_kib + other.rss_kib,
            pss_kib: self.pss_kib + other.pss_kib,
            processes: self.processes + other.processes,
        }
    }
}

pub fn signal(pid: u32, sig: i32) {
    // SAFETY: a plain syscall on a pid this process started.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Raises the soft open-file limit to the hard one, so hundreds of sessions fit (the daemon,
/// started by us, inherits it).
pub fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// CPU time the process has used so far, in ns: the sum of its live threads' run time
/// (`/proc/PID/task/*/schedstat`, nanosecond resolution). 0 if the process is gone.
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// The process's command name (its executable's first 15 bytes).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}
