//! Streamable HTTP at `/mcp`, served by rmcp: one `StreamableHttpService` per role.
//!
//! rmcp's service factory gets no request, so it cannot learn the caller's role; instead each
//! role has its own service (made on first use) whose factory builds sessions of that role. Its
//! session manager keeps the `Mcp-Session-Id`s of that role only, so a session id is useless
//! with a token of another role (404).
//!
//! rmcp does the protocol: sessions and their ids, 404 for unknown or expired ones, DELETE,
//! SSE response streams with priming events and `Last-Event-ID` replay from its per-session
//! cache, keep-alive pings, idle expiry, and the stateless 2026-07-28 path. Host and Origin are
//! checked by our guard in front (against the live config), so rmcp's own checks are off.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::byte_path::Registry;
use super::guard::Admitted;
use crate::gateway::{Gateway, SessionHandle};
use crate::session::{HttpRegistry, Session};

type RoleService = StreamableHttpService<Session, LocalSessionManager>;
/// A role's service and its session manager (the byte path tells it about activity).
type ForRole = (RoleService, Arc<LocalSessionManager>);

/// The per-role services, made lazily.
pub(super) struct Services {
    gateway: Arc<Gateway>,
    /// Cancelled with the daemon's sessions: ends every HTTP session and stream.
    cancel: CancellationToken,
    /// Fixed at start, like the listen address.
    idle_timeout: Duration,
    /// Initialized sessions of every role, by `Mcp-Session-Id`, for the byte path.
    sessions: Arc<Registry>,
    /// Sessions alive now, in all and per role, and how many may be.
    places: Arc<Places>,
    /// Sessions created and (maybe) not yet through their handshake: their role and when
    /// (see `make_room`).
    unconfirmed: Mutex<HashMap<String, (Option<String>, Instant)>>,
    by_role: Mutex<HashMap<Option<String>, ForRole>>,
}

impl Services {
    pub(super) fn new(
        gateway: Arc<Gateway>,
        cancel: CancellationToken,
        http: &crate::config::HttpConfig,
    ) -> Self {
        Self {
            gateway,
            cancel,
            idle_timeout: http.session_idle_timeout,
            sessions: Arc::default(),
            places: Arc::new(Places {
                max: http.max_sessions,
                per_role: http.max_sessions_per_role,
                live: Mutex::default(),
            }),
            unconfirmed: Mutex::default(),
            by_role: Mutex::default(),
        }
    }

    /// Makes room for a new session of `role` if there is none. The cap that binds picks the
    /// role to take it from: the role's own, or (the total) the role holding the most places,
    /// so that one role's clients cannot lock out another's. Ended is, of that role, a session
    /// whose client left its handshake unfinished for [`handshake_grace`], else its least
    /// recently used session with nothing in flight (its client gets 404 on its next request
    /// and starts a new one, as the protocol says). Then waits a little for the place.
    async fn make_room(&self, role: Option<&str>, new_session: bool) {
        let Some(victim) = self.places.to_make_room_for(role) else {
            return;
        };
        if !new_session && victim.as_deref() != role {
            // A stateless request holds its place for a moment: it may not end another
            // role's session for that.
            return;
        }
        let (_, manager) = self.for_role(victim.clone());
        let victim = victim.as_deref();
        let abandoned = {
            let live: HashSet<String> = {
                let known = manager.sessions.read().await;
                known.keys().map(|id| id.to_string()).collect()
            };
            let mut unconfirmed = self.unconfirmed.lock().unwrap();
            unconfirmed.retain(|id, (of, _)| {
                of.as_deref() != victim || (live.contains(id) && !self.sessions.knows(id))
            });
            unconfirmed
                .iter()
                .filter(|(_, (of, at))| {
                    of.as_deref() == victim && at.elapsed() >= handshake_grace()
                })
                .min_by_key(|(_, (_, at))| *at)
                .map(|(id, _)| id.clone())
        };
        let Some(id) = abandoned.or_else(|| self.sessions.take_least_recently_used_idle(victim))
        else {
            return;
        };
        self.unconfirmed.lock().unwrap().remove(&id);
        let (max, per_role) = (self.places.max, self.places.per_role);
        tracing::info!(
            role = victim.unwrap_or(crate::config::DEFAULT_ROLE),
            "ending an idle HTTP session of the role to make room for a new one \
             (`http.max_sessions` {max}, `http.max_sessions_per_role` {per_role})"
        );
        let _ = manager.close_session(&id.as_str().into()).await;
        let deadline = tokio::time::Instant::now() + ROOM_WAIT;
        while !self.places.room_for(role) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Notes a session rmcp just created (its handshake is not finished yet), and when. Past
    /// twice `max_sessions` notes, those of sessions that finished their handshake or no longer
    /// live are dropped: a live unconfirmed session holds a place, so at most `max_sessions`
    /// stay, however many sessions clients create.
    async fn created(&self, id: &str, role: Option<&str>) {
        if self.unconfirmed.lock().unwrap().len() >= 2 * self.places.max {
            let managers: Vec<_> = {
                let by_role = self.by_role.lock().unwrap();
                by_role
                    .values()
                    .map(|(_, manager)| manager.clone())
                    .collect()
            };
            let mut live = HashSet::new();
            for manager in managers {
                live.extend(
                    manager
                        .sessions
                        .read()
                        .await
                        .keys()
                        .map(|id| id.to_string()),
                );
            }
            let mut unconfirmed = self.unconfirmed.lock().unwrap();
            unconfirmed.retain(|id, _| live.contains(id) && !self.sessions.knows(id));
        }
        let note = (role.map(str::to_string), Instant::now());
        self.unconfirmed
            .lock()
            .unwrap()
            .insert(id.to_string(), note);
    }

    /// The role's service and its session manager.
    fn for_role(&self, role: Option<String>) -> ForRole {
        let mut by_role = self.by_role.lock().unwrap();
        by_role
            .entry(role.clone())
            .or_insert_with(|| {
                let mut manager = LocalSessionManager::default();
                // A session in use only through the byte path tells rmcp so at most every
                // quarter timeout: the margin keeps it from expiring in between.
                manager.session_config.keep_alive = (!self.idle_timeout.is_zero())
                    .then(|| self.idle_timeout + self.idle_timeout / 4);
                let manager = Arc::new(manager);
                let config = StreamableHttpServerConfig::default()
                    .disable_allowed_hosts()
                    .disable_allowed_origins()
                    .with_cancellation_token(self.cancel.child_token());
                let gateway = self.gateway.clone();
                let registry: Arc<dyn HttpRegistry> = self.sessions.clone();
                let places = self.places.clone();
                let service = StreamableHttpService::new(
                    move || {
                        // Each session holds a gateway session, and rmcp keeps an idle one for
                        // `session_idle_timeout`: a client that only initializes must not grow
                        // the daemon without end.
                        let slot: Box<dyn Send + Sync> = Box::new(places.take(role.as_deref())?);
                        Ok(Session::http(
                            gateway.clone(),
                            role.clone(),
                            registry.clone(),
                            slot,
                        ))
                    },
                    manager.clone(),
                    config,
                );
                (service, manager)
            })
            .clone()
    }
}

/// How long a new session waits for the place of the session ended to make room for it.
const ROOM_WAIT: Duration = Duration::from_secs(2);
/// How long a client may take between `initialize` and `initialized` before its session may
/// be ended to make room (clients connecting together at the cap must not end each other's):
/// 10 s; `MCPGW_HANDSHAKE_GRACE_MS` overrides it.
fn handshake_grace() -> Duration {
    static GRACE: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *GRACE.get_or_init(|| {
        Duration::from_millis(crate::gateway::env_limit(
            "MCPGW_HANDSHAKE_GRACE_MS",
            10_000,
        ))
    })
}

/// Places for sessions: at most `max` in all (`http.max_sessions`) and `per_role` of one role
/// (`http.max_sessions_per_role`), so that one role's clients cannot take every place.
struct Places {
    max: usize,
    per_role: usize,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    total: usize,
    by_role: HashMap<Option<String>, usize>,
}

impl Places {
    fn room_for(&self, role: Option<&str>) -> bool {
        let live = self.live.lock().unwrap();
        let of_role = live.by_role.get(&role.map(str::to_string)).copied();
        live.total < self.max && of_role.unwrap_or(0) < self.per_role
    }

    /// When a new session of `role` has no place: the role to end a session of.
    fn to_make_room_for(&self, role: Option<&str>) -> Option<Option<String>> {
        let live = self.live.lock().unwrap();
        let role = role.map(str::to_string);
        let own = live.by_role.get(&role).copied().unwrap_or(0);
        if own >= self.per_role {
            return Some(role);
        }
        if live.total < self.max {
            return None;
        }
        // The role's own session first when it holds as many as any other.
        let (largest, most) = live.by_role.iter().max_by_key(|(_, n)| **n)?;
        Some(if own >= *most { role } else { largest.clone() })
    }

    fn take(self: &Arc<Self>, role: Option<&str>) -> std::io::Result<Place> {
        let mut live = self.live.lock().unwrap();
        let role = role.map(str::to_string);
        let of_role = live.by_role.get(&role).copied().unwrap_or(0);
        if live.total >= self.max || of_role >= self.per_role {
            let (max, per_role) = (self.max, self.per_role);
            return Err(std::io::Error::other(format!(
                "too many HTTP sessions, none of them idle (`http.max_sessions` {max}, \
                 `http.max_sessions_per_role` {per_role}); end some"
            )));
        }
        live.total += 1;
        *live.by_role.entry(role.clone()).or_default() += 1;
        Ok(Place {
            places: self.clone(),
            role,
        })
    }
}

/// A session's place under the caps, given back when the session ends.
struct Place {
    places: Arc<Places>,
    role: Option<String>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut live = self.places.live.lock().unwrap();
        live.total -= 1;
        if let Some(n) = live.by_role.get_mut(&self.role) {
            *n -= 1;
            if *n == 0 {
                live.by_role.remove(&self.role);
            }
        }
    }
}

/// `/mcp`, any method: hands the admitted request to its role's service.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Admitted>,
    mut request: Request,
) -> Response {
    let (service, manager) = shared.mcp.for_role(caller.role.clone());
    let session_id = request.headers().get("mcp-session-id");
    let asked_for_session = session_id.is_some();
    let named = match session_id {
        Some(id) => id
            .to_str()
            .ok()
            .and_then(|id| shared.mcp.sessions.requested(id, caller.role.as_deref())),
        None if request.method() == Method::POST
            && shared
                .mcp
                .places
                .to_make_room_for(caller.role.as_deref())
                .is_some() =>
        {
            // A new session, or a stateless request (which holds a session while it runs), at
            // a cap: room is made for a JSON-RPC request only, never for junk or a
            // notification. (Below the caps the body is not looked at here.)
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, super::MAX_BODY)
                .await
                .unwrap_or_default();
            let envelope = crate::wire::Envelope::parse(&body).filter(|e| e.id.is_some());
            if let Some(method) = envelope.and_then(|e| e.method) {
                let new_session = method == "initialize";
                shared
                    .mcp
                    .make_room(caller.role.as_deref(), new_session)
                    .await;
            }
            request = Request::from_parts(parts, Body::from(body));
            None
        }
        None => None,
    };
    let cx = super::byte_path::Context {
        gateway: &shared.gateway,
        sessions: &shared.mcp.sessions,
        role: caller.role.as_deref(),
        activity: super::byte_path::Activity {
            manager,
            idle_timeout: shared.mcp.idle_timeout,
        },
        stop: &shared.cancel,
    };
    let request = match past_capacity(named, request).await {
        Ok(refused) => return refused,
        Err(request) => request,
    };
    let request = match super::byte_path::serve(cx, request).await {
        Ok(response) => return response,
        Err(request) => request,
    };
    let (request, put_back) = super::members::prepare(request).await;
    let mut response = service.handle(request).await.map(Body::new);
    if let Some(put_back) = put_back {
        response = put_back.apply(response).await;
    }
    if !asked_for_session
        && let Some(id) = response.headers().get("mcp-session-id")
        && let Ok(id) = id.to_str()
    {
        shared.mcp.created(id, caller.role.as_deref()).await;
    }
    response
}

/// A POST of a new request in a session that already has as many in flight as it may is
/// answered here with the JSON-RPC error a socket session gets (`SessionHandle::refusal`);
/// anything else is given back as it came. Costs nothing below the bound: the body is read
/// only at it.
async fn past_capacity(
    session: Option<Arc<SessionHandle>>,
    request: Request,
) -> Result<Response, Request> {
    let handle = session.filter(|handle| request.method() == Method::POST && handle.at_capacity());
    let Some(handle) = handle else {
        return Err(request);
    };
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, super::MAX_BODY).await else {
        return Ok((
            StatusCode::PAYLOAD_TOO_LARGE,
            "Payload Too Large: the request body is over the limit",
        )
            .into_response());
    };
    match handle.refusal(&body) {
        Some(error) => Ok((
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(error),
        )
            .into_response()),
        None => Err(Request::from_parts(parts, Body::from(body))),
    }
}
