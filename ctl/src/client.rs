//! The control connection to the daemon: connect with a hello, then request/response lines.
//!
//! Connecting never starts a daemon: nothing there is [`Error::NotRunning`].

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use mcpgw::ipc::{self, ConnectError, Connection};
use mcpgw::protocol::{self, ControlRequest, ControlResponse, Hello, HelloKind, PROTOCOL_VERSION};

pub enum Error {
    NotRunning,
    Other(String),
}

pub struct Client {
    conn: Connection,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Self, Error> {
        let hello = Hello {
            v: PROTOCOL_VERSION,
            kind: HelloKind::Control,
            role: None,
            pid: Some(std::process::id()),
            env: Default::default(),
        };
        match ipc::connect(socket, &hello) {
            Ok(conn) => Ok(Self { conn }),
            Err(ConnectError::NotRunning(_)) => Err(Error::NotRunning),
            Err(e) => Err(Error::Other(format!("{}: {e}", socket.display()))),
        }
    }

    /// Sends one request and reads its answer.
    pub fn request(&mut self, request: &ControlRequest) -> Result<ControlResponse, Error> {
        self.conn
            .writer
            .write_all(&protocol::to_line(request))
            .map_err(|e| Error::Other(format!("sending the request failed: {e}")))?;
        let mut line = String::new();
        self.conn
            .reader
            .read_line(&mut line)
            .map_err(|e| Error::Other(format!("reading the answer failed: {e}")))?;
        if line.is_empty() {
            return Err(Error::Other(
                "the daemon closed the connection without answering".into(),
            ));
        }
        serde_json::from_str(&line)
            .map_err(|e| Error::Other(format!("the daemon's answer is not understood: {e}")))
    }

    /// Waits until the daemon closes the connection, at most until `deadline`; false if it
    /// was still open then.
    pub fn wait_closed(self, deadline: Instant) -> bool {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut reader = self.conn.reader;
        // A blocking read has no portable timeout; a thread reads and the caller waits on it
        // with one. At the deadline the thread is left behind (the process is about to exit).
        std::thread::spawn(move || {
            let mut sink = [0u8; 1024];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
            let _ = tx.send(());
        });
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).is_ok()
    }
}

/// Whether process `pid` still exists (and, where that can be told, is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name, which is in parentheses and may hold spaces.
            Ok(stat) => {
                stat.rsplit(')')
                    .next()
                    .and_then(|s| s.split_whitespace().next())
                    != Some("Z")
            }
            Err(_) => false,
        }
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        // SAFETY: signal 0 only checks that the process exists; nothing is sent.
        let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Polls until `pid` is gone or `deadline` passes; false if it was still alive then.
pub fn wait_exited(pid: u32, deadline: Instant) -> bool {
    loop {
        if !process_alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
