//! The connected clients: one [`SessionHandle`] per client, shared by everything that serves
//! it, and the gateway's registry of them (role, peer, log level, what each has listed).
//!
//! After each table publication every session whose visible tools, prompts or resources
//! changed is told so, but only for the kinds it has listed: a session of the handshake era
//! through its peer, a 2026-07-28 client through each `subscriptions/listen` it holds open
//! (its [`Listener`]s), which rmcp's sink filters by what the client asked for.

// Logging is deprecated by SEP-2577 for the 2026-07-28 protocol; earlier versions have it and
// sessions on them keep their own log level.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use rmcp::model::{LoggingLevel, RequestId};
use rmcp::service::{Peer, RoleServer, SubscriptionSink};

use super::Gateway;
use crate::backend::upstream::stdio::CallIndex;
use crate::protocol::{SessionStatus, SessionTransport};
use crate::table::RoleView;

/// One client, as every part of the daemon knows it: held by its rmcp session, by the socket
/// pump or the HTTP byte path that reads its requests, and by the gateway's registry.
pub struct SessionHandle {
    pub id: u64,
    pub role: Option<String>,
    pub transport: SessionTransport,
    /// The client's rmcp peer, set once it is initialized.
    pub peer: OnceLock<Peer<RoleServer>>,
    /// Its calls in flight on the byte path, so that its cancel or its departure reaches them.
    pub calls: Arc<CallIndex>,
    /// Its requests forwarded through rmcp and not answered yet (see [`SessionHandle::busy`]).
    forwarded: Arc<std::sync::atomic::AtomicUsize>,
}

/// A session's requests to backends in flight at once, on both paths; past it a new request
/// is answered with an error (a client cannot hold unbounded work open). 256;
/// `MCPGW_MAX_CALLS_PER_SESSION` overrides it.
fn max_calls_per_session() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| super::env_limit("MCPGW_MAX_CALLS_PER_SESSION", 256) as usize)
}

/// What a request past its session's bound is answered with.
pub const TOO_MANY_REQUESTS: &str =
    "too many requests in flight for this session; wait for some to finish";

/// A forwarded request's place among its session's requests in flight.
pub struct Busy(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SessionHandle {
    /// Counts a request forwarded through rmcp while the returned guard lives; past the
    /// session's bound, the error to answer it with instead. Counted and checked at once:
    /// rmcp runs a client's pipelined requests concurrently, so a check made before they are
    /// counted would let a burst through.
    pub fn busy(&self) -> Result<Busy, rmcp::ErrorData> {
        let before = self.forwarded.fetch_add(1, Ordering::SeqCst);
        let busy = Busy(self.forwarded.clone());
        if before + self.calls.lock().unwrap().len() >= max_calls_per_session() {
            return Err(rmcp::ErrorData::new(
                rmcp::model::ErrorCode(-32000),
                TOO_MANY_REQUESTS,
                None,
            ));
        }
        Ok(busy)
    }

    /// Its requests to backends in flight, on both paths.
    pub fn in_flight(&self) -> usize {
        let byte_path = self.calls.lock().unwrap().len();
        byte_path + self.forwarded.load(Ordering::SeqCst)
    }

    /// Whether the session already has as many requests in flight as it may.
    pub fn at_capacity(&self) -> bool {
        self.in_flight() >= max_calls_per_session()
    }
}

/// The registry: what the gateway keeps of each session besides its handle.
#[derive(Default)]
pub(super) struct Sessions {
    by_id: std::sync::Mutex<std::collections::BTreeMap<u64, Entry>>,
    next: std::sync::atomic::AtomicU64,
}

pub(super) struct Entry {
    pub handle: Arc<SessionHandle>,
    pid: Option<u32>,
    client: Option<String>,
    pub log_level: Option<LoggingLevel>,
    /// Fingerprints of what this session saw last; a change sends the matching list_changed.
    seen: Seen,
    /// The `subscriptions/listen` requests it holds open (2026-07-28 clients).
    pub listeners: Vec<SubscriptionSink>,
    /// The client's values of the variables per-client servers take (`pass_env`), as its hello
    /// gave them; nothing else of its environment is kept.
    env: BTreeMap<String, String>,
}

impl Entry {
    pub fn peer(&self) -> Option<&Peer<RoleServer>> {
        self.handle.peer.get()
    }
}

/// Fingerprints of the lists a session has fetched. `None` until it lists that kind: a client
/// that never listed has no view to invalidate, so it is not told of changes (that also keeps
/// its own first list, which may discover servers, from bouncing back as list_changed).
#[derive(Clone, Copy, PartialEq, Default)]
struct Seen {
    tools: Option<u64>,
    prompts: Option<u64>,
    resources: Option<u64>,
}

/// The lists a session can fetch, for [`Gateway::mark_seen`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

impl Sessions {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Entry>> {
        self.by_id.lock().unwrap()
    }

    /// A session id never given to a client (ids start at 1).
    pub fn new_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }
}

impl Gateway {
    /// Registers a client; returns its handle. The caller must [`Gateway::leave`].
    pub fn join(
        &self,
        role: Option<String>,
        pid: Option<u32>,
        transport: SessionTransport,
    ) -> Arc<SessionHandle> {
        let handle = Arc::new(SessionHandle {
            id: self.sessions.new_id(),
            role,
            transport,
            peer: OnceLock::new(),
            calls: Arc::default(),
            forwarded: Arc::default(),
        });
        let entry = Entry {
            handle: handle.clone(),
            pid,
            client: None,
            log_level: None,
            seen: Seen::default(),
            listeners: Vec::new(),
            env: BTreeMap::new(),
        };
        self.sessions.lock().insert(handle.id, entry);
        handle
    }

    /// Keeps of a session's environment (its shim's) the variables some per-client server of
    /// the current config takes (`pass_env`); a server that takes more after a reload gets
    /// them from sessions that join after it.
    pub fn keep_client_env(&self, session: u64, env: crate::protocol::ClientEnv) {
        let table = self.table();
        let wanted: std::collections::BTreeSet<&str> = table
            .config
            .servers
            .values()
            .flat_map(|s| s.pass_env.iter().map(String::as_str))
            .collect();
        let kept: BTreeMap<String, String> = env
            .0
            .into_iter()
            // A value no process can be given (a NUL byte) is left out, not a failed start.
            .filter(|(name, value)| wanted.contains(name.as_str()) && !value.contains('\0'))
            .collect();
        if let Some(entry) = self.sessions.lock().get_mut(&session) {
            entry.env = kept;
        }
    }

    /// A session's values of `names` (a per-client server's `pass_env`), `None` for each it
    /// lacks (the instance must then not get the daemon's value: that is another client's).
    pub(super) fn client_env(
        &self,
        session: u64,
        names: &[String],
    ) -> Vec<(String, Option<String>)> {
        let sessions = self.sessions.lock();
        let env = sessions.get(&session).map(|entry| &entry.env);
        names
            .iter()
            .map(|name| (name.clone(), env.and_then(|env| env.get(name)).cloned()))
            .collect()
    }

    /// Records the session's MCP peer once it has initialized, so it can be notified and its
    /// calls can take the byte path.
    pub fn initialized(&self, handle: &SessionHandle, peer: Peer<RoleServer>, client: String) {
        let _ = handle.peer.set(peer);
        if let Some(entry) = self.sessions.lock().get_mut(&handle.id) {
            entry.client = Some(client);
        }
    }

    /// Records that a session has just fetched a list from `view`, so that later changes
    /// notify it.
    pub fn mark_seen(&self, id: u64, view: &RoleView, kind: ListKind) {
        let [tools, prompts, resources] = view.fingerprints;
        if let Some(entry) = self.sessions.lock().get_mut(&id) {
            match kind {
                ListKind::Tools => entry.seen.tools = Some(tools),
                ListKind::Prompts => entry.seen.prompts = Some(prompts),
                ListKind::Resources => entry.seen.resources = Some(resources),
            }
        }
    }

    /// A `subscriptions/listen` of the session is open: its changes reach `sink` from now on.
    /// A kind the session has not listed counts as seen in the current table (what it would
    /// list now, without discovering anything), for a listening client is told of changes
    /// whether or not it listed first. (Without a schema cache, the first list's discovery is
    /// then such a change: one list_changed more, rather than one missed.)
    pub fn listening(&self, id: u64, sink: SubscriptionSink) {
        let table = self.table.load();
        let mut sessions = self.sessions.lock();
        if let Some(entry) = sessions.get_mut(&id) {
            let [tools, prompts, resources] = table.view(entry.handle.role.as_deref()).fingerprints;
            entry.seen.tools.get_or_insert(tools);
            entry.seen.prompts.get_or_insert(prompts);
            entry.seen.resources.get_or_insert(resources);
            entry.listeners.push(sink);
        }
    }

    /// The session's `subscriptions/listen` `request` ended. Returns the resource URIs its
    /// other listens still hold, which must stay subscribed.
    pub fn stopped_listening(&self, id: u64, request: &RequestId) -> Vec<String> {
        let mut sessions = self.sessions.lock();
        let Some(entry) = sessions.get_mut(&id) else {
            return Vec::new();
        };
        entry.listeners.retain(|sink| sink.id() != request);
        entry
            .listeners
            .iter()
            .flat_map(|sink| sink.accepted().resource_subscriptions.iter().flatten())
            .cloned()
            .collect()
    }

    pub fn leave(&self, id: u64) {
        self.sessions.lock().remove(&id);
        self.drop_subscriptions(id);
        self.drop_instances(id);
    }

    /// Sends list_changed to every session whose visible tools, prompts or resources differ
    /// from what it last listed: through its peer once it is initialized, and through every
    /// `subscriptions/listen` it holds open.
    pub(super) fn notify_sessions(&self) {
        let table = self.table.load();
        let mut sessions = self.sessions.lock();
        for entry in sessions.values_mut() {
            let peer = entry.peer().cloned();
            if (peer.is_none() && entry.listeners.is_empty()) || entry.seen == Seen::default() {
                continue;
            }
            let [tools, prompts, resources] = table.view(entry.handle.role.as_deref()).fingerprints;
            let changed = |seen: &mut Option<u64>, now: u64| match seen {
                Some(before) if *before != now => {
                    *seen = Some(now);
                    true
                }
                _ => false,
            };
            let kinds = [
                changed(&mut entry.seen.tools, tools),
                changed(&mut entry.seen.prompts, prompts),
                changed(&mut entry.seen.resources, resources),
            ];
            if kinds == [false; 3] {
                continue;
            }
            let listeners = entry.listeners.clone();
            tokio::spawn(async move {
                if let Some(peer) = peer {
                    if kinds[0] {
                        let _ = peer.notify_tool_list_changed().await;
                    }
                    if kinds[1] {
                        let _ = peer.notify_prompt_list_changed().await;
                    }
                    if kinds[2] {
                        let _ = peer.notify_resource_list_changed().await;
                    }
                }
                // The sink refuses what its client did not ask for; that is no error here.
                for sink in listeners {
                    if kinds[0] {
                        let _ = sink.notify_tool_list_changed().await;
                    }
                    if kinds[1] {
                        let _ = sink.notify_prompt_list_changed().await;
                    }
                    if kinds[2] {
                        let _ = sink.notify_resource_list_changed().await;
                    }
                }
            });
        }
    }

    pub(super) fn session_status(&self) -> Vec<SessionStatus> {
        self.sessions
            .lock()
            .iter()
            .map(|(id, s)| SessionStatus {
                id: *id,
                role: s.handle.role.clone(),
                client: s.client.clone(),
                pid: s.pid,
                transport: s.handle.transport,
            })
            .collect()
    }
}
