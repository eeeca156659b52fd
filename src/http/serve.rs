//! The HTTP accept loop and its connections, with the bounds that keep slow or idle clients
//! from exhausting the daemon: how many connections may be open at once, and how long each
//! request head may take.
//!
//! Without them a few hundred connections that never send a byte (or send it slowly, or send
//! one request and then idle on keep-alive) exhaust the daemon's file descriptors, and then the
//! local socket stops accepting too. At the cap the listener stops accepting (new connections
//! wait in the kernel's backlog) until one closes. hyper times every request head: on a new
//! connection, and on a kept-alive one from the end of its last response; a connection whose
//! head is not complete in time is closed. While a request is being answered the connection is
//! the client's: a Streamable HTTP stream legitimately sends nothing for as long as the call or
//! session runs. (A request's body has its own timeout: `body.rs`.)
//!
//! This is `axum::serve` written out, for hyper's header timeout (axum sets no timer) and the
//! cap: hyper's HTTP/1 connection serving the axum `Router` as a tower service.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::throttle::RateLimit;

/// What bounds the connections (read once, at start).
pub(super) struct Limits {
    /// Open connections at once.
    pub max_connections: usize,
    /// How long each request head may take.
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` is cancelled, then closes the listener, asks the
/// open connections to end after their current request, and returns once they all have.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let open = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connections = TaskTracker::new();
    // Accept errors are logged at most every ten seconds.
    let mut errors = RateLimit::new(1, Duration::from_secs(10));
    loop {
        let accepted = async {
            let permit = open
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            (accept(&listener, &mut errors).await, permit)
        };
        let (tcp, permit) = tokio::select! {
            accepted = accepted => accepted,
            () = stop.cancelled() => break,
        };
        // Server-sent events are small writes that must go out at once.
        let _ = tcp.set_nodelay(true);
        let connection =
            http.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app.clone()));
        connections.spawn(serve_connection(connection, permit, stop.clone()));
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// The next connection. Out of descriptors, or a connection reset before it was accepted: wait
/// (longer and longer) rather than spin, and say so now and then.
async fn accept(listener: &TcpListener, errors: &mut RateLimit) -> TcpStream {
    let mut backoff = Duration::from_millis(50);
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => return tcp,
            Err(e) => {
                if errors.allow() {
                    tracing::warn!("accepting an HTTP connection failed: {e}");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

type Connection = http1::Connection<TokioIo<TcpStream>, TowerToHyperService<Router>>;

/// Runs one connection, holding its place under the cap (`_permit`) until it closes. On `stop`
/// it ends after the request in progress (at once if idle).
async fn serve_connection(
    connection: Connection,
    _permit: OwnedSemaphorePermit,
    stop: CancellationToken,
) {
    let mut connection = std::pin::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    // A timed-out head, a reset, a malformed request: the client's business, not the log's.
    if let Err(e) = ended {
        tracing::debug!("an HTTP connection ended: {e}");
    }
}
