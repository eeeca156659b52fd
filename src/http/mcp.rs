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

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::transport::StreamableHttpService;
use rmcp::transport::streamable_http_server::StreamableHttpServerConfig;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::byte_path::Registry;
use super::guard::Admitted;
use crate::gateway::Gateway;
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
    /// Sessions alive now (of every role), and how many may be (`http.max_sessions`).
    live: Arc<std::sync::atomic::AtomicUsize>,
    max_sessions: usize,
    by_role: Mutex<HashMap<Option<String>, ForRole>>,
}

impl Services {
    pub(super) fn new(
        gateway: Arc<Gateway>,
        cancel: CancellationToken,
        idle_timeout: Duration,
        max_sessions: usize,
    ) -> Self {
        Self {
            gateway,
            cancel,
            idle_timeout,
            sessions: Arc::default(),
            live: Arc::default(),
            max_sessions,
            by_role: Mutex::default(),
        }
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
                let (live, max) = (self.live.clone(), self.max_sessions);
                let service = StreamableHttpService::new(
                    move || {
                        // Each session holds a gateway session, and rmcp keeps an idle one for
                        // `session_idle_timeout`: a client that only initializes must not grow
                        // the daemon without end.
                        let slot = Slot::take(&live, max).ok_or_else(|| {
                            std::io::Error::other(format!(
                                "too many HTTP sessions ({max}, `http.max_sessions`); end some"
                            ))
                        })?;
                        let slot: Box<dyn Send + Sync> = Box::new(slot);
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

/// A session's place under `http.max_sessions`, given back when the session ends.
struct Slot(Arc<std::sync::atomic::AtomicUsize>);

impl Slot {
    fn take(live: &Arc<std::sync::atomic::AtomicUsize>, max: usize) -> Option<Self> {
        use std::sync::atomic::Ordering;
        live.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
            (n < max).then_some(n + 1)
        })
        .ok()?;
        Some(Self(live.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `/mcp`, any method: hands the admitted request to its role's service.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Admitted>,
    request: Request,
) -> Response {
    let (service, manager) = shared.mcp.for_role(caller.role.clone());
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
    let request = match past_capacity(&shared.mcp.sessions, caller.role.as_deref(), request).await {
        Ok(refused) => return refused,
        Err(request) => request,
    };
    let request = match super::byte_path::serve(cx, request).await {
        Ok(response) => return response,
        Err(request) => request,
    };
    service.handle(request).await.map(Body::new)
}

/// A POST of a new request in a session that already has as many in flight as it may is
/// answered here with the JSON-RPC error a socket session gets (`SessionHandle::refusal`);
/// anything else is given back as it came. Costs nothing below the bound: the body is read
/// only at it.
async fn past_capacity(
    sessions: &Registry,
    role: Option<&str>,
    request: Request,
) -> Result<Response, Request> {
    let handle = (request.method() == Method::POST)
        .then(|| request.headers().get("mcp-session-id")?.to_str().ok())
        .flatten()
        .and_then(|id| sessions.handle(id))
        .filter(|handle| handle.role.as_deref() == role && handle.at_capacity());
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
