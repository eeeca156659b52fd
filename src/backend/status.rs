//! What status shows of a backend: counters kept as requests come and go, and the record
//! `mcpgwctl status` prints.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::Backend;
use super::groups::Groups;
use crate::protocol::{BackendState, BackendStatus};

pub(super) struct Stats {
    epoch: Instant,
    calls: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since `epoch` when the last call started or ended; 0 = never used.
    last_used_ms: AtomicU64,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_used_ms: AtomicU64::new(0),
        }
    }
}

impl Stats {
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A failed tool call or start.
    pub fn count_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The backend is in use now.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_used_ms.store(ms.max(1), Ordering::Relaxed);
    }

    pub fn idle_for_ms(&self) -> u64 {
        (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.last_used_ms.load(Ordering::Relaxed))
    }

    fn used(&self) -> bool {
        self.last_used_ms.load(Ordering::Relaxed) > 0
    }
}

impl Backend {
    /// The process id of the running instance (the leader of its process group), if any.
    pub fn pid(&self) -> Option<u32> {
        self.live_instance().and_then(|running| running.pid())
    }

    /// The status record; its memory comes from `groups`, one scan for all backends (see
    /// [`Groups::scan`]).
    pub fn status(&self, groups: &Groups) -> BackendStatus {
        let running = self.live_instance();
        let phase = self.life.phase.lock().unwrap();
        let state = if !self.spec.enabled {
            BackendState::Disabled
        } else if running.is_some() {
            BackendState::Ready
        } else if phase.starting {
            BackendState::Starting
        } else if phase.failure.is_some() {
            BackendState::Failed
        } else {
            BackendState::Stopped
        };
        // The note goes with what status shows: the failure, else the last exit.
        let (reason, stderr_note) = match state {
            BackendState::Disabled => (self.spec.disabled_reason.clone(), None),
            BackendState::Failed => (phase.failure.clone(), phase.failure_note.clone()),
            _ => (None, phase.exit_note.clone()),
        };
        let pid = running.as_ref().and_then(|r| r.pid());
        let group = pid.and_then(|pid| groups.of(pid));
        BackendStatus {
            name: self.name.clone(),
            state,
            reason,
            pid,
            rss_bytes: group.and_then(|g| g.leader_rss_bytes),
            group_rss_bytes: group.map(|g| g.rss_bytes),
            group_processes: group.map(|g| g.processes),
            uptime_ms: running
                .as_ref()
                .map(|r| r.started.elapsed().as_millis() as u64),
            idle_ms: self.stats.used().then(|| self.stats.idle_for_ms()),
            calls: self.stats.calls.load(Ordering::Relaxed),
            errors: self.stats.errors.load(Ordering::Relaxed),
            inflight: self.callers.count() as u64,
            tools: self.schema().map(|s| s.tools.len()),
            last_exit: phase.last_exit.clone(),
            stderr_note,
            stderr_tail: self.stderr.tail(5),
            problems: self
                .schema()
                .map(|schema| schema.problems.clone())
                .unwrap_or_default(),
            // The routing table's to know (`Gateway::status` fills it in).
            held: Vec::new(),
        }
    }
}
