//! The wire protocol between the daemon and its local clients (shim, mcpgwctl).
//!
//! Every local connection starts with one JSON line from the client (a [`Hello`]) and one JSON
//! line back from the daemon (a [`HelloReply`]). After that a session connection carries MCP
//! JSON-RPC lines untouched, and a control connection carries [`ControlRequest`] /
//! [`ControlResponse`] lines. These types are shared by daemon, shim and ctl; nothing may copy them.
//!
//! Compatibility rule: the hello and its reply are the only messages whose shape must survive a
//! version bump, so that a mismatch is always reported instead of hanging. Bump [`PROTOCOL_VERSION`]
//! whenever anything after the hello changes incompatibly.

use serde::{Deserialize, Serialize};

/// Version of everything that follows the hello line.
pub const PROTOCOL_VERSION: u32 = 1;

/// First line a client sends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    /// The client's [`PROTOCOL_VERSION`].
    pub v: u32,
    pub kind: HelloKind,
    /// Role asked for by a session; `None` means the config's `default` role, or everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Process id of the client (the shim), for `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HelloKind {
    /// An MCP session: MCP JSON-RPC lines follow.
    Session,
    /// mcpgwctl: control request/response lines follow.
    Control,
}

/// The daemon's answer to a [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HelloReply {
    /// The daemon's [`PROTOCOL_VERSION`].
    pub v: u32,
    pub ok: bool,
    /// Why the hello was refused (unknown role, version mismatch). For a refused session the
    /// daemon still answers the client's first MCP request with this message as a JSON-RPC error,
    /// so an MCP client shows it instead of hanging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A request from mcpgwctl.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
}

/// The daemon's answer to one [`ControlRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ControlResponse {
    Status(Status),
    Error { message: String },
}

/// A snapshot of the daemon for `mcpgwctl status` and the `gateway_status` tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_ms: u64,
    pub config_path: String,
    pub sessions: Vec<SessionStatus>,
    pub backends: Vec<BackendStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionStatus {
    pub id: u64,
    pub role: Option<String>,
    pub client: Option<String>,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    Disabled,
    Stopped,
    Starting,
    Ready,
    Failed,
}

impl std::fmt::Display for BackendState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Disabled => "disabled",
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendStatus {
    pub name: String,
    pub state: BackendState,
    /// Why it is disabled or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Resident memory of the backend's process, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// Milliseconds since the last call started, when it was ever used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    pub calls: u64,
    pub errors: u64,
    /// Tools known for it (from the running server or the schema cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// Newest lines of its stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
}

/// Encodes one protocol message as a JSON line.
pub fn to_line<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut line = serde_json::to_vec(msg).expect("protocol types always serialize");
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_wire_shape_is_stable() {
        let hello = Hello {
            v: 1,
            kind: HelloKind::Session,
            role: Some("readonly".into()),
            pid: Some(42),
        };
        assert_eq!(
            String::from_utf8(to_line(&hello)).unwrap(),
            "{\"v\":1,\"kind\":\"session\",\"role\":\"readonly\",\"pid\":42}\n"
        );
        let reply: HelloReply = serde_json::from_str(r#"{"v":7,"ok":false,"error":"x"}"#).unwrap();
        assert_eq!(reply.error.as_deref(), Some("x"));
    }

    #[test]
    fn control_round_trip() {
        let req: ControlRequest = serde_json::from_str(r#"{"op":"status"}"#).unwrap();
        assert_eq!(req, ControlRequest::Status);
        let resp = ControlResponse::Error {
            message: "no".into(),
        };
        let back: ControlResponse = serde_json::from_slice(&to_line(&resp)).unwrap();
        assert_eq!(back, resp);
    }
}
