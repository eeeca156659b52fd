//! The one record of a request in flight on a backend, kept alike by both forwarding paths:
//! rmcp's (`call.rs`) and the byte path (`upstream/stdio.rs`).
//!
//! From [`InFlight::begin`] until the record is dropped, however the request ends, its session
//! is one of the backend's callers: progress and server→client requests raised meanwhile go to
//! it, idle stop and drains wait for it, status counts it. A request sent and not answered when
//! its record goes is withdrawn upstream (`notifications/cancelled`). The call-timeout error,
//! the wait for a gone backend's exit status and the progress filter are written here and
//! nowhere else.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::{CancelledNotificationParam, ProgressToken, RequestId, RequestMetaObject};
use rmcp::service::{Peer, RoleClient, RoleServer};

use super::listed::ResultMembers;
use super::upstream::Fault;
use super::upstream::stdio::Link;
use super::{Backend, BackendError};

/// The session a request came from.
#[derive(Clone)]
pub struct Caller {
    pub session: u64,
    pub peer: Peer<RoleServer>,
    /// The client's own progress token for this request, if it asked for progress.
    pub progress_token: Option<ProgressToken>,
    /// The last progress value passed on: older, out-of-order updates are dropped.
    last_progress: Option<f64>,
    /// What the client sent in the request's `_meta` for the server (see [`forwarded_meta`]).
    /// The byte path forwards the request's own bytes and leaves this empty.
    pub meta: Option<RequestMetaObject>,
    /// For a client without a session of its own (a stateless HTTP client): the identity its
    /// per-client instances belong to, instead of `session`.
    pub stateless_client: Option<ClientIdentity>,
    /// Where the members of the request's result that rmcp's types do not know go (read from
    /// the response as written, where the transport allows it).
    pub result_members: Option<ResultMembers>,
    /// The session whose environment its per-client instances take (`pass_env`), when it is
    /// not `session`: a bridged call is a session of its own, its client's is this one.
    pub env_of: Option<u64>,
}

/// A request's extension naming the client's session (see [`Caller::env_of`]).
#[derive(Clone, Copy)]
pub struct EnvOf(pub u64);

/// Who a client without a session is, for its per-client instances: a fingerprint of its
/// credentials (one instance per token, not one per request). Put in the request by the
/// transport that knows the credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientIdentity(pub u64);

/// Whom a per-client instance serves.
pub struct Owner {
    /// The session (or stateless client identity) it belongs to: only it hears from it.
    pub session: u64,
    /// Its client: whether it has roots decides whether the instance advertises them.
    pub peer: Peer<RoleServer>,
    /// A stateless client's instance: each of its requests has a peer of its own, so a
    /// server→client request goes to the one in flight (as on a shared backend), not `peer`.
    pub follows_calls: bool,
    /// The client's values of the server's `pass_env` variables, for the process; `None` for
    /// one the client lacks (removed, unless the server's `env` sets it).
    pub env: Vec<(String, Option<String>)>,
    /// The table's backend it is an instance of, which holds the lists clients see.
    pub template: std::sync::Weak<Backend>,
}

impl Caller {
    pub fn new(
        session: u64,
        peer: Peer<RoleServer>,
        progress_token: Option<ProgressToken>,
        meta: Option<RequestMetaObject>,
    ) -> Self {
        Self {
            session,
            peer,
            progress_token,
            last_progress: None,
            meta,
            stateless_client: None,
            result_members: None,
            env_of: None,
        }
    }

    /// The same caller, whose per-client instances belong to a stateless client's identity.
    pub fn of_stateless_client(self, identity: Option<ClientIdentity>) -> Self {
        Self {
            stateless_client: identity,
            ..self
        }
    }

    pub fn taking_env_of(self, session: Option<u64>) -> Self {
        Self {
            env_of: session,
            ..self
        }
    }

    pub fn keeping_result_members(self, slot: Option<ResultMembers>) -> Self {
        Self {
            result_members: slot,
            ..self
        }
    }

    /// A caller that is a whole session (a per-client instance's owner), not one request.
    pub fn session(session: u64, peer: Peer<RoleServer>) -> Self {
        Self::new(session, peer, None, None)
    }
}

/// The part of a client's request `_meta` that is meant for the server: everything but the
/// progress token (the gateway gives the server its own) and the 2026-07-28 per-request
/// protocol keys (they describe the client's exchange with the gateway, not the gateway's
/// with the server).
pub fn forwarded_meta(meta: &RequestMetaObject) -> Option<RequestMetaObject> {
    const NOT_FORWARDED: [&str; 5] = [
        "progressToken",
        "io.modelcontextprotocol/protocolVersion",
        "io.modelcontextprotocol/clientInfo",
        "io.modelcontextprotocol/clientCapabilities",
        "io.modelcontextprotocol/logLevel",
    ];
    let kept: rmcp::model::JsonObject = meta
        .0
        .iter()
        .filter(|(key, _)| !NOT_FORWARDED.contains(&key.as_str()))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!kept.is_empty()).then(|| RequestMetaObject(kept.into()))
}

/// A backend's requests in flight, oldest first.
#[derive(Default)]
pub(super) struct Callers {
    by_seq: Mutex<BTreeMap<u64, Caller>>,
    next: AtomicU64,
    /// rmcp's progress token of each request it sent → the request's entry.
    by_token: Mutex<HashMap<ProgressToken, u64>>,
    count: AtomicUsize,
}

impl Callers {
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// The caller whose request has been waiting longest.
    pub fn oldest(&self) -> Option<Caller> {
        self.by_seq.lock().unwrap().values().next().cloned()
    }

    /// The caller of request `seq` if progress `value` is news to it: older updates than one
    /// already passed on are dropped, as are updates of a request that is over.
    fn progress(&self, seq: u64, value: f64) -> Option<Caller> {
        let mut callers = self.by_seq.lock().unwrap();
        let caller = callers.get_mut(&seq)?;
        if caller.last_progress.is_some_and(|last| value <= last) {
            return None;
        }
        caller.last_progress = Some(value);
        Some(caller.clone())
    }

    /// [`progress`](Self::progress) for rmcp's progress token of a request.
    pub fn progress_by_token(&self, token: &ProgressToken, value: f64) -> Option<Caller> {
        let seq = *self.by_token.lock().unwrap().get(token)?;
        self.progress(seq, value)
    }
}

/// How a request that ends without a response is withdrawn from its server.
pub(crate) enum Sent {
    /// Sent by rmcp's client under rmcp's id.
    Rmcp(RequestId, Peer<RoleClient>),
    /// Written on a stdio link as its request `n`.
    Line(Weak<Link>, u64),
}

/// One request in flight; see the module docs.
pub(crate) struct InFlight {
    backend: Weak<Backend>,
    seq: u64,
    token: Option<ProgressToken>,
    sent: Option<Sent>,
    failed: bool,
}

impl InFlight {
    /// Registers a request of `caller`; a `tools/call` is also counted as a call.
    pub fn begin(backend: &Arc<Backend>, caller: Caller, tool_call: bool) -> Self {
        if tool_call {
            backend.stats.count_call();
        }
        backend.stats.touch();
        let callers = &backend.callers;
        callers.count.fetch_add(1, Ordering::SeqCst);
        let seq = callers.next.fetch_add(1, Ordering::Relaxed);
        callers.by_seq.lock().unwrap().insert(seq, caller);
        Self {
            backend: Arc::downgrade(backend),
            seq,
            token: None,
            sent: None,
            failed: false,
        }
    }

    /// The request went out: withdrawn upstream if it ends without a response. `token` is the
    /// progress token rmcp gave it, where it has one of its own.
    pub fn sent(&mut self, sent: Sent, token: Option<ProgressToken>) {
        if let Some(token) = &token
            && let Some(backend) = self.backend.upgrade()
        {
            let mut by_token = backend.callers.by_token.lock().unwrap();
            by_token.insert(token.clone(), self.seq);
        }
        self.token = token;
        self.sent = Some(sent);
    }

    /// The request is over for its server (answered, withdrawn, or the server is gone):
    /// nothing (more) to withdraw. `failed`: a tool call that failed, counted in status.
    pub fn finish(&mut self, failed: bool) {
        self.sent = None;
        self.failed = failed;
    }

    /// The caller, if progress `value` of this request is news to it (see [`Callers`]).
    pub fn progress(&self, value: f64) -> Option<Caller> {
        self.backend.upgrade()?.callers.progress(self.seq, value)
    }

    /// Withdraws the request from its server now, saying why (the client cancelled, left, or
    /// the call timed out); the record stays until dropped.
    pub fn withdraw(&mut self, reason: &str) {
        match self.sent.take() {
            Some(Sent::Rmcp(id, peer)) => {
                let reason = Some(reason.to_string());
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    runtime.spawn(async move {
                        let param = CancelledNotificationParam::new(Some(id), reason);
                        let _ = peer.notify_cancelled(param).await;
                    });
                }
            }
            Some(Sent::Line(link, n)) => {
                if let Some(link) = link.upgrade() {
                    link.withdraw(n, reason);
                }
            }
            None => {}
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // The caller gave up (cancelled, disconnected, timed out): so does the server.
        self.withdraw_if_sent();
        let Some(backend) = self.backend.upgrade() else {
            return;
        };
        let callers = &backend.callers;
        if let Some(token) = &self.token {
            callers.by_token.lock().unwrap().remove(token);
        }
        callers.by_seq.lock().unwrap().remove(&self.seq);
        callers.count.fetch_sub(1, Ordering::SeqCst);
        backend.stats.touch();
        if self.failed {
            backend.stats.count_error();
        }
    }
}

impl InFlight {
    fn withdraw_if_sent(&mut self) {
        if self.sent.is_some() {
            self.withdraw("cancelled by the client");
        }
    }
}

/// The error of a request the server did not answer within `limit` (`call_timeout`); the
/// request is withdrawn upstream.
pub(crate) fn timed_out(server: &str, limit: Duration) -> McpError {
    let message = format!(
        "server `{server}` did not answer within {:.1}s (call_timeout); the request was cancelled",
        limit.as_secs_f64()
    );
    McpError::internal_error(message, None)
}

/// The error of the requests in flight on a server that went away, with its exit status if it
/// comes within a second, and why the gateway stopped it if it did (`fault`).
pub(crate) async fn gone(
    server: &str,
    fault: &Fault,
    exited: impl Future<Output = String>,
) -> BackendError {
    let exit = tokio::time::timeout(Duration::from_secs(1), exited)
        .await
        .unwrap_or_else(|_| "no exit status yet".into());
    gone_now(server, fault, exit)
}

/// [`gone`] with the exit status in hand.
pub(crate) fn gone_now(server: &str, fault: &Fault, exit: String) -> BackendError {
    let name = server.to_string();
    match fault.get() {
        Some(why) => BackendError::Stopped {
            name,
            why: why.to_string(),
            exit,
        },
        None => BackendError::Gone { name, exit },
    }
}
