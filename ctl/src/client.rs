//! One control request over the daemon's local socket.

use std::io::{BufRead, Write};
use std::path::Path;

use mcpgw::ipc::{self, ConnectError};
use mcpgw::protocol::{self, ControlRequest, ControlResponse, Hello, HelloKind, PROTOCOL_VERSION};

pub enum Error {
    NotRunning,
    Other(String),
}

pub fn request(socket: &Path, request: &ControlRequest) -> Result<ControlResponse, Error> {
    let hello = Hello {
        v: PROTOCOL_VERSION,
        kind: HelloKind::Control,
        role: None,
        pid: Some(std::process::id()),
    };
    let mut conn = match ipc::connect(socket, &hello) {
        Ok(conn) => conn,
        Err(ConnectError::NotRunning(_)) => return Err(Error::NotRunning),
        Err(e) => return Err(Error::Other(format!("{}: {e}", socket.display()))),
    };
    conn.writer
        .write_all(&protocol::to_line(request))
        .map_err(|e| Error::Other(format!("sending the request failed: {e}")))?;
    let mut line = String::new();
    conn.reader
        .read_line(&mut line)
        .map_err(|e| Error::Other(format!("reading the answer failed: {e}")))?;
    if line.is_empty() {
        return Err(Error::Other("the daemon closed the connection without answering".into()));
    }
    serde_json::from_str(&line)
        .map_err(|e| Error::Other(format!("the daemon's answer is not understood: {e}")))
}
