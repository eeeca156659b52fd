//! Bounds on HTTP connections: how many may be open at once, and how long a new one may take
//! to send its first request's head.
//!
//! Without them a few hundred connections that never send a byte (or send it slowly) exhaust
//! the daemon's file descriptors, and then the local socket stops accepting too. At the cap the
//! listener stops accepting (new connections wait in the kernel's backlog) until one closes; a
//! connection that has not sent a complete request head in time is closed. After the first
//! head a connection is the client's: a Streamable HTTP stream legitimately sends nothing for
//! as long as the call or session runs.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::throttle::RateLimit;

/// A TCP listener that keeps at most `max` connections open.
pub(super) struct Limited {
    inner: TcpListener,
    open: Arc<Semaphore>,
    head_timeout: Duration,
    /// Accept errors are logged at most every ten seconds.
    errors: RateLimit,
}

impl Limited {
    pub fn new(inner: TcpListener, max: usize, head_timeout: Duration) -> Self {
        Self {
            inner,
            open: Arc::new(Semaphore::new(max.max(1))),
            head_timeout,
            errors: RateLimit::new(1, Duration::from_secs(10)),
        }
    }
}

impl axum::serve::Listener for Limited {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Connection, SocketAddr) {
        let permit = self
            .open
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.inner.accept().await {
                Ok((tcp, addr)) => {
                    // Server-sent events are small writes that must go out at once.
                    let _ = tcp.set_nodelay(true);
                    let deadline = tokio::time::Instant::now() + self.head_timeout;
                    let connection = Connection {
                        tcp,
                        head: Some(Head::new(deadline)),
                        _permit: permit,
                    };
                    return (connection, addr);
                }
                Err(e) => {
                    // Out of descriptors, or a connection reset before it was accepted: wait
                    // (longer and longer) rather than spin, and say so now and then.
                    if self.errors.allow() {
                        tracing::warn!("accepting an HTTP connection failed: {e}");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: holds its place under the cap until it closes.
pub(super) struct Connection {
    tcp: TcpStream,
    /// Until the first request head is complete: its deadline, and how much of its end
    /// (`\r\n\r\n`) the last bytes matched.
    head: Option<Head>,
    _permit: OwnedSemaphorePermit,
}

struct Head {
    deadline: Pin<Box<tokio::time::Sleep>>,
    matched: usize,
}

impl Head {
    fn new(deadline: tokio::time::Instant) -> Self {
        Self {
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            matched: 0,
        }
    }

    /// Follows `bytes`; true once they complete the head (`\r\n\r\n`).
    fn complete(&mut self, bytes: &[u8]) -> bool {
        const END: &[u8] = b"\r\n\r\n";
        for byte in bytes {
            self.matched = match (*byte, self.matched) {
                (b, n) if b == END[n] => n + 1,
                (b'\r', _) => 1,
                _ => 0,
            };
            if self.matched == END.len() {
                return true;
            }
        }
        false
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        let Some(head) = this.head.as_mut() else {
            return polled;
        };
        if let Poll::Ready(Ok(())) = &polled {
            if head.complete(&buf.filled()[before..]) {
                this.head = None;
            }
            return polled;
        }
        if head.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head in time",
            )));
        }
        polled
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::Head;

    #[tokio::test]
    async fn the_head_ends_at_the_first_blank_line_however_it_is_split() {
        let mut head = Head::new(tokio::time::Instant::now());
        assert!(!head.complete(b"GET / HTTP/1.1\r\nHost: x\r"));
        assert!(!head.complete(b"\n\r"));
        assert!(head.complete(b"\nbody"));
        let mut head = Head::new(tokio::time::Instant::now());
        assert!(!head.complete(b"\r\r\n\r"));
        assert!(head.complete(b"\n"));
    }
}
