//! A per-client instance's roots: its one client's, given to the server before the instance
//! takes its first call.
//!
//! A server that works within its client's roots (server-filesystem) asks for them once it is
//! initialized and applies them when the answer comes. An instance is started by a call, so
//! without care that call reaches the server before the roots do and runs with the server's
//! wider command-line directories. So the client's roots are asked for as the instance starts
//! (in parallel with the spawn), the server's own `roots/list` is answered from them without a
//! round trip to the client, and an instance whose server is known to ask at its start (the
//! schema cache remembers) is not used until it has asked and been answered (at most
//! [`ROOTS_WAIT`]) and has then written a line to stderr, as servers do when they apply roots
//! (at most [`ROOTS_SETTLE`]: answered is not applied, and nothing in MCP says when it is).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::ListRootsResult;

use super::Backend;

/// The longest an instance's start waits for its server to ask for the roots, and for its
/// client to give them.
pub(super) const ROOTS_WAIT: Duration = Duration::from_secs(5);

/// An ask for roots within this time of a discovery start counts as an ask at start.
const DISCOVERY_WINDOW: Duration = Duration::from_secs(2);

/// The longest an instance's start waits, after answering its server's roots, for the server to
/// say (on stderr) that it applied them.
const ROOTS_SETTLE: Duration = Duration::from_millis(500);

#[derive(Default)]
pub(super) struct Roots {
    /// The client's roots as last asked, and the generation they were asked in (a change of
    /// the client's roots starts a new one, so that an answer asked before it is not kept).
    known: std::sync::Mutex<(u64, Option<ListRootsResult>)>,
    /// The server has asked for roots as it started (learned into its cached schema).
    pub asked: AtomicBool,
    /// The instance is starting: an ask for roots now is an ask at its start.
    pub starting: AtomicBool,
    /// Answers given to the server, and a wake-up for a start waiting for the first.
    answered: AtomicU64,
    answer: tokio::sync::Notify,
    /// The server's stderr line count when it was last answered.
    stderr_at_answer: AtomicU64,
}

impl Backend {
    /// Whether this backend's roots are one client's own, to ask it for (a session's
    /// per-client instance whose client has roots; a stateless client's instance follows each
    /// request's client instead).
    pub(super) fn has_client_roots(&self) -> bool {
        self.owner.as_ref().is_some_and(|owner| {
            !owner.follows_calls
                && owner
                    .peer
                    .peer_info()
                    .is_some_and(|info| info.capabilities.roots.is_some())
        })
    }

    /// The client's roots, asked at most [`ROOTS_WAIT`] and kept until they change. No lock is
    /// held while the client is asked (a prefetch and the server's own ask may both ask).
    pub(super) async fn client_roots(&self) -> Result<ListRootsResult, McpError> {
        let owner = self.owner.as_ref().ok_or_else(super::call::cancelled)?;
        let generation = {
            let known = self.roots.known.lock().unwrap();
            if let Some(roots) = &known.1 {
                return Ok(roots.clone());
            }
            known.0
        };
        let roots = tokio::time::timeout(ROOTS_WAIT, owner.peer.list_roots())
            .await
            .map_err(|_| {
                McpError::internal_error("mcpgw: the client did not give its roots in time", None)
            })?
            .map_err(|e| McpError::internal_error(format!("mcpgw: {e}"), None))?;
        let mut known = self.roots.known.lock().unwrap();
        if known.0 == generation {
            known.1 = Some(roots.clone());
        }
        Ok(roots)
    }

    /// Asks the client for its roots now, so that the server's question is answered at once
    /// (only for a server known to ask as it starts: asking a 2026-07-28 client costs it a
    /// round of its call).
    pub(super) fn prefetch_roots(self: &Arc<Self>) {
        if !self.has_client_roots() || !self.schema().is_some_and(|s| s.asks_roots) {
            return;
        }
        let backend = self.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(ROOTS_WAIT, backend.client_roots()).await;
        });
    }

    /// The server asks for roots: if it does so as it starts, learned into its schema (and so
    /// the cache), once. (One that asks only while it serves a call gets its answer then; a
    /// start need not wait for it.)
    pub(super) fn asked_for_roots(&self) {
        // The table's backend of a per-client server takes no calls: any ask soon after its
        // start (servers ask once initialized, maybe after its lists were taken) is one at
        // start. An instance's counts only before it takes its first call.
        let discovering = self.owner.is_none()
            && self.spec.scope == crate::config::Scope::PerClient
            && self
                .life
                .live
                .load()
                .as_ref()
                .is_none_or(|running| running.started.elapsed() < DISCOVERY_WINDOW);
        let at_start = discovering || self.roots.starting.load(Ordering::Relaxed);
        if !at_start || self.roots.asked.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(schema) = self.schema().filter(|s| !s.asks_roots) {
            self.set_schema((*schema).clone());
        }
    }

    /// The server asked for roots and was answered.
    pub(super) fn roots_answered(&self) {
        self.roots
            .stderr_at_answer
            .store(self.stderr.mark(), Ordering::Relaxed);
        self.roots.answered.fetch_add(1, Ordering::Relaxed);
        self.roots.answer.notify_waiters();
    }

    /// The client's roots changed: the next answer asks it again.
    pub(super) fn forget_client_roots(&self) {
        let mut known = self.roots.known.lock().unwrap();
        known.0 += 1;
        known.1 = None;
    }

    /// Before a starting instance takes calls: if its server is known to ask for roots, waits
    /// (at most [`ROOTS_WAIT`]) until it has been answered since `answered_before`.
    pub(super) async fn wait_for_roots(&self, answered_before: u64) {
        let _started = Started(self);
        if !self.has_client_roots() {
            return;
        }
        let asks =
            self.roots.asked.load(Ordering::Relaxed) || self.schema().is_some_and(|s| s.asks_roots);
        if !asks {
            return;
        }
        let answered = async {
            loop {
                let notified = self.roots.answer.notified();
                if self.roots.answered.load(Ordering::Relaxed) > answered_before {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(ROOTS_WAIT, answered).await.is_err() {
            tracing::debug!(server = %self.name, "the server did not ask for roots in time");
            return;
        }
        // Answered is not applied: a server applies its roots on its own time (server-filesystem
        // resolves each directory first). Servers log the roots they take; their next stderr
        // line after the answer, or ROOTS_SETTLE, is when the instance takes calls.
        let mark = self.roots.stderr_at_answer.load(Ordering::Relaxed);
        let settled = async {
            while self.stderr.mark() <= mark {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let _ = tokio::time::timeout(ROOTS_SETTLE, settled).await;
    }

    /// How many times the server was answered roots so far (see [`Self::wait_for_roots`]).
    pub(super) fn roots_answers(&self) -> u64 {
        self.roots.answered.load(Ordering::Relaxed)
    }
}

/// Marks the end of an instance's start (asks for roots after it are not asks at start).
struct Started<'a>(&'a Backend);

impl Drop for Started<'_> {
    fn drop(&mut self) {
        self.0.roots.starting.store(false, Ordering::Relaxed);
    }
}
