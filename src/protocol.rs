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
    /// A session's environment (the shim's), of which the daemon keeps only what the
    /// session's `scope: per-client` instances take (`pass_env`). Optional both ways: an older
    /// daemon ignores it, an older shim sends none.
    #[serde(default, skip_serializing_if = "ClientEnv::is_empty")]
    pub env: ClientEnv,
}

/// The variables of a client's environment, by name. Its `Debug` shows names only: values
/// are often secrets.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct ClientEnv(pub std::collections::BTreeMap<String, String>);

impl ClientEnv {
    /// Largest environment a shim sends (in bytes of names and values); variables past it are
    /// left out, so that the hello stays well under the daemon's 64 KiB bound.
    pub const MAX_BYTES: usize = 32 * 1024;

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The variables of `vars` that are UTF-8 and fit in [`Self::MAX_BYTES`] (smallest first,
    /// so that one huge variable does not crowd out the rest).
    pub fn bounded(vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> Self {
        // Sized as written in the hello: JSON escapes can make a value six times its length.
        let written = |text: &str| serde_json::to_string(text).map_or(usize::MAX, |s| s.len());
        let mut vars: Vec<(usize, String, String)> = vars
            .filter_map(|(k, v)| {
                let (k, v) = (k.into_string().ok()?, v.into_string().ok()?);
                Some((written(&k).saturating_add(written(&v)) + 2, k, v))
            })
            .collect();
        vars.sort_by_key(|(size, _, _)| *size);
        let mut kept = std::collections::BTreeMap::new();
        let mut bytes: usize = 0;
        for (size, name, value) in vars {
            bytes = bytes.saturating_add(size);
            if bytes > Self::MAX_BYTES {
                break;
            }
            kept.insert(name, value);
        }
        Self(kept)
    }
}

impl std::fmt::Debug for ClientEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
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

/// A request from mcpgwctl. Servers and roles are named as in the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ControlRequest {
    Status,
    /// Re-read the config now; answered once the new table is live or the edit was rejected.
    Reload,
    /// Stop the server's running process now; the next call that needs it starts it again.
    Kill {
        server: String,
    },
    /// Start the server now if it is not running (warm it up before the first call).
    Start {
        server: String,
    },
    /// Shut the daemon down gracefully. Answered first; the daemon then closes the connection
    /// when it stops serving, and exits once its backends are stopped.
    Stop,
    /// The tools a session of `role` sees (`None`: a session that names no role).
    List {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// The newest `lines` lines the server wrote to its stderr.
    Logs {
        server: String,
        lines: usize,
    },
    /// The tools held back (or, with `pin: warn`, served) although they differ from their
    /// pins: of `server`, or of every server.
    Diff {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
    },
    /// Pins the definitions of `server`'s tools as `diff` showed them, each only if it is
    /// still what the server lists (all or nothing): what is approved is what was reviewed.
    Approve {
        server: String,
        tools: Vec<Reviewed>,
    },
}

/// The daemon's answer to one [`ControlRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum ControlResponse {
    Status(Status),
    /// The outcome of a reload, accepted (`ok`) or rejected.
    Reloaded(ReloadStatus),
    /// Answers `kill`: the process that was stopped, if one was running.
    Killed(ServerProcess),
    /// Answers `start`: the process now running.
    Started(ServerProcess),
    /// Answers `stop`: the daemon (this pid) is shutting down.
    Stopping {
        pid: u32,
    },
    Tools(ToolList),
    Logs(LogTail),
    /// Answers `diff` (a struct variant: the tag needs an object to go in).
    Changes {
        changes: Vec<ToolChange>,
    },
    /// Answers `approve`: the tools (the server's names) now pinned as they are.
    Approved {
        server: String,
        tools: Vec<String>,
    },
    /// The request failed; nothing was done.
    Error {
        message: String,
    },
}

/// A changed tool as `diff` showed it, for `approve`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Reviewed {
    /// Its name on its server.
    pub tool: String,
    /// The definition reviewed ([`ToolChange::current`]).
    pub definition: serde_json::Value,
}

/// A tool whose definition differs from the one pinned, for `diff`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolChange {
    pub server: String,
    /// Its name on its server (what `approve` takes).
    pub tool: String,
    /// The name clients would see it under.
    pub exposed: String,
    /// Held back (`pin: quarantine`), or served with a warning (`pin: warn`).
    pub held: bool,
    /// The members that differ (`description`, `inputSchema`, …), or `new`.
    pub what: Vec<String>,
    /// The pinned definition (absent for a new tool) and the current one, as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<serde_json::Value>,
    pub current: serde_json::Value,
}

/// A server and its process, for `kill` and `start`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerProcess {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Whether a process was running before the request.
    pub was_running: bool,
}

/// What a role sees, for `list`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ToolList {
    /// The role asked for (`None`: a session that names no role).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Full MCP tool objects under their exposed names, as `tools/list` gives them. Kept as
    /// JSON so that this module needs no MCP types.
    pub tools: Vec<serde_json::Value>,
    /// Servers whose tools are missing from the list because they failed to start before
    /// they ever listed, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<ServerFailure>,
}

/// A server that could not be started, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerFailure {
    pub server: String,
    pub reason: String,
}

/// A server's captured stderr, for `logs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogTail {
    pub server: String,
    /// Oldest first.
    pub lines: Vec<String>,
}

/// A snapshot of the daemon for `mcpgwctl status` and the `gateway_status` tool.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Status {
    pub version: String,
    pub pid: u32,
    pub uptime_ms: u64,
    pub config_path: String,
    /// Number of configs loaded so far (1 = the one the daemon started with).
    pub generation: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reload: Option<ReloadStatus>,
    /// Non-fatal problems of the live config (e.g. a server disabled by a missing variable).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_warnings: Vec<String>,
    pub sessions: Vec<SessionStatus>,
    pub backends: Vec<BackendStatus>,
}

/// The outcome of the last reload attempt.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReloadStatus {
    /// When it happened, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    pub ok: bool,
    /// The generation live after it (unchanged when the edit was rejected).
    pub generation: u64,
    /// What changed (`added: x; restarted: y; …`) or, when rejected, every error with its
    /// `file:line:col`.
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionStatus {
    pub id: u64,
    pub role: Option<String>,
    pub client: Option<String>,
    pub pid: Option<u32>,
    #[serde(default)]
    pub transport: SessionTransport,
}

/// How a session reaches the daemon.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum SessionTransport {
    /// Through `mcpgw-shim` on the local socket.
    #[default]
    Socket,
    /// Streamable HTTP at `/mcp`.
    Http,
    /// The legacy HTTP+SSE transport.
    Sse,
}

impl std::fmt::Display for SessionTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Socket => "socket",
            Self::Http => "http",
            Self::Sse => "sse",
        })
    }
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
    /// Resident memory of the backend's own process (its direct child: for `npx` the wrapper,
    /// not the server it starts), when known (Linux). `group_rss_bytes` is the whole server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    /// Linux only: resident memory of every process in the backend's process group (its child
    /// and whatever that started and left in the group: `npx` → `node`), summed per process
    /// as `ps` does, so pages the processes share count once for each. Read in one pass over
    /// `/proc` per status for all backends. Absent elsewhere, from older daemons, and for a
    /// backend that is not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_rss_bytes: Option<u64>,
    /// Linux only: how many processes the backend's process group holds (see
    /// `group_rss_bytes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_processes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_ms: Option<u64>,
    /// Milliseconds since the last call started, when it was ever used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_ms: Option<u64>,
    pub calls: u64,
    pub errors: u64,
    /// Requests forwarded to it and not answered yet.
    #[serde(default)]
    pub inflight: u64,
    /// Tools known for it (from the running server or the schema cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit: Option<String>,
    /// What its stderr said when the process of `reason` (a failed start) or, otherwise, of
    /// `last_exit` ended abnormally: the line that looks like the error
    /// (`ModuleNotFoundError: No module named 'x'`, not Node's closing `Node.js v20.20.2`), else
    /// its last lines joined with ` | `; at most 300 characters, URLs cut to their origin.
    /// Like `stderr_tail`, for the local user only: `gateway_status` leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_note: Option<String>,
    /// Newest lines of its stderr.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stderr_tail: Vec<String>,
    /// What the server said is wrong with it when it last listed (a plugin host: the modules
    /// that did not import, with the Python traceback's last line). For the local user only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Tools held back because they changed since they were approved, each as
    /// `name (what changed)`. For the local user only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<String>,
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
            env: ClientEnv::default(),
        };
        assert_eq!(
            String::from_utf8(to_line(&hello)).unwrap(),
            "{\"v\":1,\"kind\":\"session\",\"role\":\"readonly\",\"pid\":42}\n"
        );
        // A shim's environment: optional both ways, and never shown by `Debug`.
        let with_env = Hello {
            env: ClientEnv([("TOKEN".to_string(), "s3cret".to_string())].into()),
            ..hello.clone()
        };
        let line = String::from_utf8(to_line(&with_env)).unwrap();
        assert!(
            line.ends_with(",\"env\":{\"TOKEN\":\"s3cret\"}}\n"),
            "{line}"
        );
        let old: Hello = serde_json::from_str(r#"{"v":1,"kind":"session"}"#).unwrap();
        assert!(old.env.is_empty());
        let shown = format!("{with_env:?}");
        assert!(
            shown.contains("TOKEN") && !shown.contains("s3cret"),
            "{shown}"
        );
        let reply: HelloReply = serde_json::from_str(r#"{"v":7,"ok":false,"error":"x"}"#).unwrap();
        assert_eq!(reply.error.as_deref(), Some("x"));
    }

    #[test]
    fn a_shims_environment_is_bounded_smallest_first() {
        let huge = "x".repeat(ClientEnv::MAX_BYTES);
        let vars = [("HUGE", huge.as_str()), ("A", "1"), ("PATH", "/bin")]
            .map(|(k, v)| (std::ffi::OsString::from(k), std::ffi::OsString::from(v)));
        let env = ClientEnv::bounded(vars.into_iter());
        assert_eq!(env.0.keys().collect::<Vec<_>>(), ["A", "PATH"]);
        // Counted as written: control characters take six bytes each in JSON.
        let escaped = "\u{1}".repeat(ClientEnv::MAX_BYTES / 4);
        let vars = [("ESC", escaped.as_str()), ("B", "2")]
            .map(|(k, v)| (std::ffi::OsString::from(k), std::ffi::OsString::from(v)));
        let env = ClientEnv::bounded(vars.into_iter());
        assert_eq!(env.0.keys().collect::<Vec<_>>(), ["B"]);
        assert!(serde_json::to_string(&env).unwrap().len() <= ClientEnv::MAX_BYTES);
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

    fn wire<T: Serialize>(msg: &T) -> String {
        String::from_utf8(to_line(msg)).unwrap()
    }

    #[test]
    fn control_request_wire_shapes_are_stable() {
        let cases = [
            (ControlRequest::Reload, r#"{"op":"reload"}"#),
            (
                ControlRequest::Kill {
                    server: "fs".into(),
                },
                r#"{"op":"kill","server":"fs"}"#,
            ),
            (
                ControlRequest::Start {
                    server: "fs".into(),
                },
                r#"{"op":"start","server":"fs"}"#,
            ),
            (ControlRequest::Stop, r#"{"op":"stop"}"#),
            (ControlRequest::List { role: None }, r#"{"op":"list"}"#),
            (
                ControlRequest::List {
                    role: Some("ro".into()),
                },
                r#"{"op":"list","role":"ro"}"#,
            ),
            (
                ControlRequest::Logs {
                    server: "fs".into(),
                    lines: 50,
                },
                r#"{"op":"logs","server":"fs","lines":50}"#,
            ),
            (ControlRequest::Diff { server: None }, r#"{"op":"diff"}"#),
            (
                ControlRequest::Approve {
                    server: "fs".into(),
                    tools: vec![Reviewed {
                        tool: "read".into(),
                        definition: serde_json::json!({"name": "read"}),
                    }],
                },
                r#"{"op":"approve","server":"fs","tools":[{"tool":"read","definition":{"name":"read"}}]}"#,
            ),
        ];
        for (request, json) in cases {
            assert_eq!(wire(&request), format!("{json}\n"));
            assert_eq!(
                serde_json::from_str::<ControlRequest>(json).unwrap(),
                request
            );
        }
    }

    /// Fields added to status since version 1 are optional both ways, so they need no
    /// version bump: an older peer's record reads without them, and one without them is
    /// written as before (an older ctl ignores what it does not know).
    #[test]
    fn added_status_fields_are_optional() {
        let old = r#"{"name":"fs","state":"ready","pid":7,"rss_bytes":1024,"calls":0,"errors":0,"inflight":0}"#;
        let status: BackendStatus = serde_json::from_str(old).unwrap();
        assert_eq!(status.group_rss_bytes, None);
        assert_eq!(status.group_processes, None);
        assert_eq!(status.stderr_note, None);
        assert_eq!(wire(&status), format!("{old}\n"));
        let new = BackendStatus {
            group_rss_bytes: Some(4096),
            group_processes: Some(2),
            stderr_note: Some("Error: boom".into()),
            ..status
        };
        let line = wire(&new);
        assert!(
            line.contains(r#""group_rss_bytes":4096,"group_processes":2"#)
                && line.contains(r#""stderr_note":"Error: boom""#),
            "{line}"
        );
    }

    #[test]
    fn control_response_wire_shapes_are_stable() {
        let cases = [
            (
                ControlResponse::Reloaded(ReloadStatus {
                    at_unix_ms: 5,
                    ok: false,
                    generation: 2,
                    message: "gateway.yaml:3:5: unknown key".into(),
                }),
                r#"{"result":"reloaded","at_unix_ms":5,"ok":false,"generation":2,"message":"gateway.yaml:3:5: unknown key"}"#,
            ),
            (
                ControlResponse::Killed(ServerProcess {
                    server: "fs".into(),
                    pid: Some(7),
                    was_running: true,
                }),
                r#"{"result":"killed","server":"fs","pid":7,"was_running":true}"#,
            ),
            (
                ControlResponse::Started(ServerProcess {
                    server: "fs".into(),
                    pid: None,
                    was_running: false,
                }),
                r#"{"result":"started","server":"fs","was_running":false}"#,
            ),
            (
                ControlResponse::Stopping { pid: 9 },
                r#"{"result":"stopping","pid":9}"#,
            ),
            (
                ControlResponse::Changes {
                    changes: vec![ToolChange {
                        server: "fs".into(),
                        tool: "read".into(),
                        exposed: "fs_read".into(),
                        held: true,
                        what: vec!["new".into()],
                        pinned: None,
                        current: serde_json::json!({"name": "read"}),
                    }],
                },
                r#"{"result":"changes","changes":[{"server":"fs","tool":"read","exposed":"fs_read","held":true,"what":["new"],"current":{"name":"read"}}]}"#,
            ),
            (
                ControlResponse::Approved {
                    server: "fs".into(),
                    tools: vec!["read".into()],
                },
                r#"{"result":"approved","server":"fs","tools":["read"]}"#,
            ),
            (
                ControlResponse::Tools(ToolList {
                    role: Some("ro".into()),
                    tools: vec![serde_json::json!({"name": "fs_read"})],
                    failed: vec![],
                }),
                r#"{"result":"tools","role":"ro","tools":[{"name":"fs_read"}]}"#,
            ),
            (
                ControlResponse::Logs(LogTail {
                    server: "fs".into(),
                    lines: vec!["a".into()],
                }),
                r#"{"result":"logs","server":"fs","lines":["a"]}"#,
            ),
        ];
        for (response, json) in cases {
            assert_eq!(wire(&response), format!("{json}\n"));
            assert_eq!(
                serde_json::from_str::<ControlResponse>(json).unwrap(),
                response
            );
        }
    }
}
