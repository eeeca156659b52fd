//! The HTTP listener (`http:` in the config): MCP over Streamable HTTP at `/mcp`, and the legacy
//! HTTP+SSE transport at `/sse` + `/messages`, for clients that cannot launch the shim.
//!
//! Every request passes the guard first (`guard.rs`: Host, Origin, bearer token → role), which
//! reads the current config, so a reload applies new tokens and allow-lists to the next request.
//! The listen address, the session idle timeout and the bounds on connections, requests and
//! sessions are read once, at start (a reload that changes one logs that it needs a restart).
//! HTTP sessions are ordinary [`Session`](crate::session::Session)s: they are listed in status,
//! see the tools of their role, and end with the daemon's other sessions.
//!
//! - `serve` — the accept loop and connections: the connection cap, each request head's
//!   timeout, graceful shutdown.
//! - `guard` — who may call, and with which role.
//! - `body` — a request's body, read whole within its size limit and `http.body_timeout`.
//! - `mcp` — `/mcp`, rmcp's Streamable HTTP service, one per role.
//! - `byte_path` — `/mcp` POSTs of `tools/call` and `tools/list` answered without rmcp.
//! - `sse` — `/sse` and `/messages`, the 2024-11-05 transport, written here over rmcp's
//!   line transport.

mod body;
mod byte_path;
mod guard;
mod mcp;
mod members;
mod serve;
mod sse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::http::header::ORIGIN;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::guard::Admission;
use crate::config::{Config, HttpConfig};
use crate::gateway::Gateway;

/// The largest request body accepted (rmcp's limit for `/mcp` is the same).
const MAX_BODY: usize = 4 * 1024 * 1024;
/// How often the listener looks for a reloaded config, to say what needs a restart.
const CONFIG_POLL: Duration = Duration::from_secs(1);

/// A running HTTP listener.
pub struct HttpServer {
    url: String,
    stop_accepting: CancellationToken,
    task: JoinHandle<()>,
}

/// What the handlers share.
struct Shared {
    gateway: Arc<Gateway>,
    /// The address actually bound (the config's `listen` may change on reload).
    bound: SocketAddr,
    /// The daemon's session token: cancelled, it ends every HTTP session and stream.
    cancel: CancellationToken,
    /// How long a request body may take to arrive (read once, at start).
    body_timeout: Duration,
    mcp: mcp::Services,
    sse: sse::Sessions,
}

impl HttpServer {
    /// Binds the config's `http.listen` and serves it, if the config has an `http` section.
    /// `sessions` is the daemon's session token: its cancellation ends every HTTP session.
    pub async fn start(
        gateway: &Arc<Gateway>,
        sessions: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        let config = gateway.table().config.clone();
        let Some(http) = config.http.clone() else {
            return Ok(None);
        };
        let listener = tokio::net::TcpListener::bind(http.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen for HTTP on {} (`http.listen` in {})",
                    http.listen,
                    config.path.display()
                )
            })?;
        let bound = listener.local_addr()?;
        let cancel = sessions.child_token();
        let shared = Arc::new(Shared {
            gateway: gateway.clone(),
            bound,
            mcp: mcp::Services::new(gateway.clone(), cancel.clone(), &http),
            sse: sse::Sessions::default(),
            cancel,
            body_timeout: http.body_timeout,
        });
        let app = router(shared);
        let stop_accepting = CancellationToken::new();
        // Read once, like the address: a reload logs that they need a restart.
        let limits = serve::Limits {
            max_connections: http.max_connections,
            header_timeout: http.header_timeout,
            write_timeout: http.write_timeout,
        };
        let task = tokio::spawn(serve::serve(listener, app, limits, stop_accepting.clone()));
        tokio::spawn(watch_config(
            gateway.clone(),
            config,
            http,
            bound,
            stop_accepting.clone(),
        ));
        Ok(Some(Self {
            url: format!("http://{bound}/mcp"),
            stop_accepting,
            task,
        }))
    }

    /// The Streamable HTTP endpoint, with the port actually bound.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Closes the listening socket; requests in progress go on, then their connections close.
    pub fn stop_accepting(&self) {
        self.stop_accepting.cancel();
    }

    /// Waits for the open connections to finish, at most `grace`. Call it after cancelling the
    /// sessions, which ends their streams.
    pub async fn stopped(self, grace: Duration) {
        self.stop_accepting.cancel();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            tracing::warn!("HTTP connections still open after {grace:?}; leaving them");
        }
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/mcp", any(mcp::handle))
        .route("/sse", get(sse::open))
        .route("/messages", post(sse::post))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .route_layer(axum::middleware::from_fn_with_state(shared.clone(), admit))
        .with_state(shared)
}

/// The guard in front of every route: refuses, answers a CORS preflight, or records the
/// caller's role for the handler and reads the request's body whole (`body.rs`).
async fn admit(State(shared): State<Arc<Shared>>, mut request: Request, next: Next) -> Response {
    let table = shared.gateway.table();
    let admitted = guard::admit(
        table.config.http.as_ref(),
        !table.config.roles.is_empty(),
        shared.bound,
        request.method(),
        request.uri(),
        request.headers(),
    );
    drop(table);
    let origin = request.headers().get(ORIGIN).cloned();
    let (mut response, cors, preflight) = match admitted {
        Ok(Admission::Admitted(caller)) => {
            // Read by sessions (through rmcp, which hands them the request's parts).
            if let Some(identity) = caller.identity {
                request.extensions_mut().insert(identity);
            }
            request.extensions_mut().insert(caller);
            match body::read_whole(request, MAX_BODY, shared.body_timeout).await {
                Ok(request) => (next.run(request).await, true, false),
                Err(refusal) => (refusal, true, false),
            }
        }
        Ok(Admission::Preflight) => (StatusCode::NO_CONTENT.into_response(), true, true),
        Err(refusal) => {
            let cors = refusal.origin_allowed();
            (refusal.into_response(), cors, false)
        }
    };
    if let Some(origin) = origin
        && cors
    {
        guard::allow_cors(&mut response, origin, preflight);
    }
    response
}

/// The `http` keys read once, at start (besides `listen`), each with its value.
const READ_AT_START: &[(&str, Setting)] = &[
    ("session_idle_timeout", |h| {
        h.session_idle_timeout.as_nanos()
    }),
    ("max_connections", |h| h.max_connections as u128),
    ("header_timeout", |h| h.header_timeout.as_nanos()),
    ("body_timeout", |h| h.body_timeout.as_nanos()),
    ("write_timeout", |h| h.write_timeout.as_nanos()),
    ("max_sessions", |h| h.max_sessions as u128),
    ("max_sessions_per_role", |h| h.max_sessions_per_role as u128),
];

/// One `http` setting's value, as a number to compare (durations in nanoseconds).
type Setting = fn(&HttpConfig) -> u128;

/// Logs, after a reload, what of a changed `http` section applies now and what needs a restart.
async fn watch_config(
    gateway: Arc<Gateway>,
    mut seen: Arc<Config>,
    started: HttpConfig,
    bound: SocketAddr,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(CONFIG_POLL);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stop.cancelled() => return,
        }
        let config = gateway.table().config.clone();
        if Arc::ptr_eq(&config, &seen) {
            continue;
        }
        let (before, after) = (seen.http.as_ref(), config.http.as_ref());
        match after {
            None if before.is_some() => tracing::warn!(
                "the config no longer has an `http` section: HTTP requests are refused (503) \
                 until mcpgwd restarts, which closes {bound}"
            ),
            None => {}
            Some(after) => {
                if after.listen != started.listen && before.map(|b| b.listen) != Some(after.listen)
                {
                    tracing::warn!(
                        "`http.listen` changed to {}: restart mcpgwd to listen there (still \
                         listening on {bound})",
                        after.listen
                    );
                }
                for (key, value) in READ_AT_START {
                    if value(after) != value(&started) && before.map(value) != Some(value(after)) {
                        tracing::warn!("`http.{key}` changed: it applies after a restart");
                    }
                }
                let policy = |h: &HttpConfig| {
                    (
                        h.tokens.clone(),
                        h.allowed_origins.clone(),
                        h.allowed_hosts.clone(),
                    )
                };
                if before.map(policy) != Some(policy(after)) {
                    tracing::info!(
                        tokens = after.tokens.len(),
                        "HTTP tokens and allowed hosts/origins reloaded"
                    );
                }
            }
        }
        seen = config;
    }
}
