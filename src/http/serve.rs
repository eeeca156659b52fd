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
//! session runs — but a response write that makes no progress for `http.write_timeout` (the
//! client stopped reading) closes the connection. (A request's body has its own timeout:
//! `body.rs`.)
//!
//! This is `axum::serve` written out, for hyper's header timeout (axum sets no timer) and the
//! cap: hyper's HTTP/1 connection serving the axum `Router` as a tower service.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// How long a response write may make no progress.
    pub write_timeout: Duration,
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
        let io = TokioIo::new(Stalls::new(tcp, limits.write_timeout));
        let connection = http.serve_connection(io, TowerToHyperService::new(app.clone()));
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
            // One connection's trouble, not the listener's: take the next at once.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                ) => {}
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

type Connection = http1::Connection<TokioIo<Stalls>, TowerToHyperService<Router>>;

/// A connection whose writes fail once one has made no progress for `limit`: a client that
/// stops reading a response (or its stream) would otherwise hold its place under the cap, and
/// the answer in memory, for as long as it keeps the connection open. A stream with nothing to
/// send writes nothing and is not affected.
pub(super) struct Stalls {
    tcp: TcpStream,
    limit: Duration,
    /// Since when the pending write has waited, while one waits.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Stalls {
    fn new(tcp: TcpStream, limit: Duration) -> Self {
        Self {
            tcp,
            limit,
            stalled: None,
        }
    }

    /// `polled` is a write's outcome: progress ends the wait, a pending one starts or goes on
    /// with it, and one pending too long becomes an error.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = None;
            return polled;
        }
        let limit = self.limit;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if stalled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing within `http.write_timeout`",
            )));
        }
        Poll::Pending
    }
}

impl AsyncRead for Stalls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stalls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.tcp).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.tcp).poll_shutdown(cx);
        self.watch(cx, polled)
    }
}

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
