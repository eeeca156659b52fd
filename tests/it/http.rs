//! The HTTP listener: Streamable HTTP at `/mcp` with real rmcp clients, raw HTTP for the
//! guard (tokens, Host, Origin) and session handling, the legacy SSE transport, config
//! rejection, status, reload and shutdown. The helpers `mrtr` and `fast_http` share are here.

use std::process::Stdio;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::ProtocolVersion;
use rmcp::service::{ClientLifecycleMode, RoleClient, RunningService, serve_client_with_lifecycle};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};

use crate::harness::*;

pub(crate) const ADMIN: &str = "admin-s3cret-token";
pub(crate) const READONLY: &str = "readonly-s3cret-token";
/// The admin token comes from this variable, set in the daemon's environment.
const ADMIN_VAR: &str = "MCPGW_IT_ADMIN_TOKEN";

/// The config used by most tests: `alpha`, two roles, two tokens (one through `${VAR}`).
pub(crate) fn config(env: &Env, port: u16, extra_http: &str) -> String {
    format!(
        "servers:\n{}roles:\n  admin: null\n  readonly: [\"alpha_echo\", \"alpha_pid\", \"gateway_status\"]\n\
         http:\n  listen: \"127.0.0.1:{port}\"\n  tokens:\n    - token: \"${{{ADMIN_VAR}}}\"\n      role: admin\n\
         \x20   - token: {READONLY}\n      role: readonly\n  allowed_origins: [\"http://localhost:*\"]\n{extra_http}",
        env.fixture_server("alpha", &[]),
    )
}

/// A daemon serving HTTP on a free port. The port can be taken by someone else between
/// `free_port` and the daemon's bind: then the daemon exits naming the address, and this
/// tries again with another port.
pub(crate) struct HttpDaemon {
    daemon: Daemon,
    pub(crate) port: u16,
}

impl HttpDaemon {
    pub(crate) async fn start(env: &Env, make_config: impl Fn(u16) -> String) -> Self {
        Self::start_with_vars(env, make_config, &[]).await
    }

    /// Like [`start`](Self::start), with extra variables in the daemon's environment.
    pub(crate) async fn start_with_vars(
        env: &Env,
        make_config: impl Fn(u16) -> String,
        vars: &[(&str, &str)],
    ) -> Self {
        for _ in 0..5 {
            let port = free_port();
            env.write_config(&make_config(port));
            let mut daemon = start_daemon(env, vars);
            let start = Instant::now();
            loop {
                if let Some(status) = daemon.child.try_wait().unwrap() {
                    let log = daemon.log();
                    assert!(
                        log.contains("cannot listen for HTTP on"),
                        "mcpgwd exited early ({status}):\n{log}"
                    );
                    break;
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && std::os::unix::net::UnixStream::connect(env.socket()).is_ok()
                {
                    return Self { daemon, port };
                }
                assert!(
                    start.elapsed() < DEADLINE,
                    "no HTTP listener:\n{}",
                    daemon.log()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        panic!("no free port after 5 tries");
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Like `Env::start_daemon`, with the admin token's variable (and `vars`) set.
fn start_daemon(env: &Env, vars: &[(&str, &str)]) -> Daemon {
    let log = env.path(&format!("mcpgwd-http-{}.log", free_port()));
    let mut cmd = env.command(&bin("mcpgwd"));
    cmd.envs(vars.iter().copied());
    cmd.arg("--config")
        .arg(env.config_path())
        .env(ADMIN_VAR, ADMIN)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    Daemon {
        child: cmd.spawn().expect("spawn mcpgwd"),
        log,
    }
}

pub(crate) type HttpClient = RunningService<RoleClient, Recorder>;

/// A real MCP client over Streamable HTTP, with the handshake of 2025-11-25 (sessions).
pub(crate) async fn http_client(url: &str, token: Option<&str>) -> Result<HttpClient, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url);
    if let Some(token) = token {
        config = config.auth_header(token);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    Recorder::default()
        .serve(transport)
        .await
        .map_err(|e| e.to_string())
}

/// A 2026-07-28 client over `/mcp` (server/discover, no session), answering with `recorder`.
pub(crate) async fn modern_client(
    http: &HttpDaemon,
    token: &str,
    recorder: Recorder,
) -> HttpClient {
    let config = StreamableHttpClientTransportConfig::with_uri(http.url("/mcp")).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    serve_client_with_lifecycle(recorder, transport, lifecycle)
        .await
        .expect("server/discover over HTTP")
}

async fn names(client: &HttpClient) -> Vec<String> {
    let mut names: Vec<String> = client
        .peer()
        .list_all_tools()
        .await
        .expect("tools/list")
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

pub(crate) async fn call(client: &HttpClient, name: &str, args: Value) -> Result<String, String> {
    let mut params = rmcp::model::CallToolRequestParams::new(name.to_string());
    if let Value::Object(map) = args {
        params = params.with_arguments(map);
    }
    client
        .peer()
        .call_tool(params)
        .await
        .map(|result| text_of(&result))
        .map_err(|e| e.to_string())
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": ProtocolVersion::V_2025_06_18.as_str(), "capabilities": {},
        "clientInfo": {"name": "raw-http", "version": "0"}}})
}

/// A raw Streamable HTTP POST, with what a conforming client sends.
pub(crate) fn post_mcp(port: u16, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(body.to_string())
}

/// The JSON messages in an SSE body (`data:` lines).
pub(crate) fn sse_messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str(data.trim()).ok())
        .collect()
}

/// A POST in an admin session, as a conforming 2025-06-18 client sends it.
pub(crate) fn in_session(port: u16, session: &str, body: &Value) -> reqwest::RequestBuilder {
    post_mcp(port, body)
        .bearer_auth(ADMIN)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
}

/// A GET resuming an admin session's stream after `last_event_id`.
pub(crate) fn resume_get(
    http: &HttpDaemon,
    session: &str,
    last_event_id: &str,
) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .get(http.url("/mcp"))
        .bearer_auth(ADMIN)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-06-18")
        .header("last-event-id", last_event_id)
}

/// An initialized admin session's id.
pub(crate) async fn open_session(port: u16) -> String {
    let response = post_mcp(port, &initialize())
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let messages = sse_messages(&response.text().await.unwrap());
    assert!(
        messages
            .iter()
            .any(|m| m["id"] == 1 && m["result"].is_object()),
        "{messages:?}"
    );
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let response = in_session(port, &session, &initialized)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    session
}

/// The backend's inflight count in status.
pub(crate) fn alpha_inflight(env: &Env) -> u64 {
    let status = env.status_json();
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "alpha")
        .map(|b| b["inflight"].as_u64().unwrap())
        .unwrap_or_else(|| panic!("no alpha in {status}"))
}

#[tokio::test]
async fn tokens_pick_roles_that_filter_lists_and_calls() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let admin = http_client(&http.url("/mcp"), Some(ADMIN)).await.unwrap();
    let readonly = http_client(&http.url("/mcp"), Some(READONLY))
        .await
        .unwrap();

    let admin_names = names(&admin).await;
    for expected in ["alpha_add", "alpha_echo", "alpha_pid", "gateway_status"] {
        assert!(
            admin_names.contains(&expected.to_string()),
            "{admin_names:?}"
        );
    }
    assert_eq!(
        names(&readonly).await,
        ["alpha_echo", "alpha_pid", "gateway_status"]
    );
    assert_eq!(
        call(&admin, "alpha_add", json!({"a": 2, "b": 3})).await,
        Ok("5".into())
    );
    assert_eq!(
        call(&readonly, "alpha_echo", json!({"text": "hi"})).await,
        Ok("hi".into())
    );
    let refused = call(&readonly, "alpha_add", json!({"a": 1, "b": 1}))
        .await
        .unwrap_err();
    assert!(
        refused.contains("unknown tool `alpha_add` (role `readonly`)"),
        "{refused}"
    );

    // Both HTTP sessions are in status with their role, beside a socket client; all three use
    // the one backend process.
    let socket = env.client(None).await;
    let status = env.status_json();
    let mut roles: Vec<Value> = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["role"].clone())
        .collect();
    roles.sort_by_key(|r| r.to_string());
    assert_eq!(
        roles,
        [json!("admin"), json!("readonly"), Value::Null],
        "{status}"
    );
    let mut transports: Vec<String> = status["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["transport"].as_str().unwrap_or("?").to_string())
        .collect();
    transports.sort();
    assert_eq!(transports, ["http", "http", "socket"], "{status}");
    let pid = socket.call_text("alpha_pid", json!({})).await;
    assert_eq!(call(&admin, "alpha_pid", json!({})).await, Ok(pid.clone()));
    assert_eq!(call(&readonly, "alpha_pid", json!({})).await, Ok(pid));

    // Tokens stay out of the log and of status.
    let log = http.daemon.log();
    assert!(!log.contains(ADMIN) && !log.contains(READONLY), "{log}");
    assert!(!status.to_string().contains(ADMIN));

    let _ = admin.cancel().await;
    wait_for("the admin HTTP session to leave status", || {
        env.status_json()["sessions"].as_array().unwrap().len() == 2
    })
    .await;
    let _ = readonly.cancel().await;
    socket.close().await;

    // A 2026-07-28 client (no handshake, no session: every request stands alone) works too.
    let config =
        StreamableHttpClientTransportConfig::with_uri(http.url("/mcp")).auth_header(READONLY);
    let transport = StreamableHttpClientTransport::from_config(config);
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    let stateless = serve_client_with_lifecycle(Recorder::default(), transport, lifecycle)
        .await
        .expect("server/discover over HTTP");
    assert_eq!(
        names(&stateless).await,
        ["alpha_echo", "alpha_pid", "gateway_status"]
    );
    assert_eq!(
        call(&stateless, "alpha_echo", json!({"text": "modern"})).await,
        Ok("modern".into())
    );
    let _ = stateless.cancel().await;
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let none = post_mcp(http.port, &initialize()).send().await.unwrap();
    assert_eq!(none.status(), 401);
    let challenge = none.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let wrong = post_mcp(http.port, &initialize())
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let sse = reqwest::get(http.url("/sse")).await.unwrap();
    assert_eq!(sse.status(), 401, "legacy SSE has the same guard");
    let client = http_client(&http.url("/mcp"), Some("nope")).await;
    assert!(client.is_err(), "an rmcp client with a wrong token fails");
    let ok = post_mcp(http.port, &initialize())
        .bearer_auth(READONLY)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn host_and_origin_are_checked() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "  allowed_hosts: [\"mcp.example\"]\n")
    })
    .await;
    let with = |headers: &[(&str, &str)]| {
        let mut request = post_mcp(http.port, &initialize()).bearer_auth(ADMIN);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send()
    };
    let cases: [(&[(&str, &str)], u16); 6] = [
        (&[("origin", "http://evil.example")], 403),
        (&[("origin", "https://localhost:3000")], 403),
        (&[("origin", "http://localhost:3000")], 200),
        (&[("host", "evil.example")], 403),
        (&[("host", "mcp.example:1234")], 200),
        (&[("host", "localhost")], 200),
    ];
    for (headers, status) in cases {
        let response = with(headers).await.unwrap();
        assert_eq!(response.status(), status, "{headers:?}");
    }
    // A browser's CORS preflight from an allowed Origin is answered without a token, and
    // responses to it carry the CORS headers.
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, http.url("/mcp"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("Authorization"), "{allowed}");
    let from_browser = with(&[("origin", "http://localhost:5173")]).await.unwrap();
    assert_eq!(
        from_browser.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let exposed = from_browser.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("Mcp-Session-Id"), "{exposed}");
    // The Origin check comes before the token: a browser page learns nothing from a 401.
    let anonymous = post_mcp(http.port, &initialize())
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 403);
}

#[tokio::test]
async fn sessions_404_when_unknown_end_on_delete_and_expire_when_idle() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "  session_idle_timeout: 2s\n")
    })
    .await;
    let port = http.port;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let unknown = in_session(port, "no-such-session", &list)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);

    let id = open_session(port).await;
    let listed = in_session(port, &id, &list).send().await.unwrap();
    assert_eq!(listed.status(), 200);
    let messages = sse_messages(&listed.text().await.unwrap());
    assert!(messages.iter().any(|m| m["id"] == 2), "{messages:?}");
    // A response stream is resumable: after a disconnect, `Last-Event-ID` (here the priming
    // event's) reattaches to it and the call's response still arrives.
    let slow = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "alpha_slow", "arguments": {"ms": 1500, "steps": 1}}});
    let mut call = SseStream::new(in_session(port, &id, &slow).send().await.unwrap());
    let (_, _, priming) = call.next_with_id().await.expect("a priming event");
    drop(call);
    let resumed = resume_get(&http, &id, &priming).send().await.unwrap();
    assert_eq!(resumed.status(), 200);
    let response = SseStream::new(resumed).response(3).await;
    assert_eq!(
        response["result"]["content"][0]["text"], "slept 1500 ms",
        "{response}"
    );
    // A session is bound to its role: another token's role does not know it.
    let other_role = post_mcp(port, &list)
        .bearer_auth(READONLY)
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .unwrap();
    assert_eq!(other_role.status(), 404);

    let deleted = reqwest::Client::new()
        .delete(http.url("/mcp"))
        .bearer_auth(ADMIN)
        .header("mcp-session-id", &id)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    assert_eq!(
        in_session(port, &id, &list).send().await.unwrap().status(),
        404
    );

    // Idle expiry: nothing for longer than `session_idle_timeout`.
    let id = open_session(port).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        in_session(port, &id, &list).send().await.unwrap().status(),
        404
    );
    wait_for("expired sessions to leave status", || {
        env.status_json()["sessions"].as_array().unwrap().is_empty()
    })
    .await;
}

/// An SSE stream being read event by event.
pub(crate) struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    async fn open(url: &str, token: &str) -> Self {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        Self::new(response)
    }

    /// The next event as (event name, data), skipping keep-alive comments and priming events.
    async fn next(&mut self) -> Option<(String, String)> {
        loop {
            let (event, data, _) = self.next_with_id().await?;
            if !(event.is_empty() && data.is_empty()) {
                return Some((event, data));
            }
        }
    }

    /// The next event as (event name, data, id), skipping keep-alive comments.
    pub(crate) async fn next_with_id(&mut self) -> Option<(String, String, String)> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut event, mut data, mut id) = (String::new(), String::new(), String::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    } else if let Some(value) = line.strip_prefix("id:") {
                        id = value.trim().to_owned();
                    }
                }
                if event.is_empty() && data.is_empty() && id.is_empty() {
                    continue;
                }
                return Some((event, data, id));
            }
            let chunk = tokio::time::timeout(DEADLINE, self.response.chunk())
                .await
                .expect("an SSE event before the deadline")
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads `message` events until the response with `id`.
    pub(crate) async fn response(&mut self, id: i64) -> Value {
        loop {
            let (event, data) = self.next().await.expect("the stream ended");
            assert!(event.is_empty() || event == "message", "{event}: {data}");
            let message: Value = serde_json::from_str(&data).unwrap();
            if message["id"] == id {
                return message;
            }
        }
    }
}

#[tokio::test]
async fn legacy_sse_endpoint_messages_and_responses() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let mut stream = SseStream::open(&http.url("/sse"), ADMIN).await;
    let (event, endpoint) = stream.next().await.unwrap();
    assert_eq!(event, "endpoint");
    assert!(endpoint.starts_with("/messages?sessionId="), "{endpoint}");
    let post = |body: String, token: &str| {
        reqwest::Client::new()
            .post(http.url(&endpoint))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let send = |message: Value| post(message.to_string(), ADMIN);

    // Pretty-printed JSON is fine: it is re-encoded on one line for the session.
    let init = serde_json::to_string_pretty(&initialize()).unwrap();
    assert_eq!(post(init, ADMIN).await.unwrap().status(), 202);
    let reply = stream.response(1).await;
    assert_eq!(reply["result"]["serverInfo"]["name"], "mcpgw", "{reply}");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(send(initialized).await.unwrap().status(), 202);

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    assert_eq!(send(list).await.unwrap().status(), 202);
    let tools = stream.response(2).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"alpha_add"), "{names:?}");

    let add = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "alpha_add", "arguments": {"a": 20, "b": 22}}});
    assert_eq!(send(add).await.unwrap().status(), 202);
    let result = stream.response(3).await;
    assert_eq!(result["result"]["content"][0]["text"], "42", "{result}");

    // The session is in status, with its role.
    let sessions = env.status_json()["sessions"].clone();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions[0]["role"], "admin");

    // Refusals: malformed, not JSON-RPC, unknown session, another role's session, no id.
    assert_eq!(post("{not json".into(), ADMIN).await.unwrap().status(), 400);
    assert_eq!(post("[1, 2]".into(), ADMIN).await.unwrap().status(), 400);
    assert_eq!(post("{}".into(), READONLY).await.unwrap().status(), 404);
    let unknown = reqwest::Client::new()
        .post(http.url("/messages?sessionId=nope"))
        .bearer_auth(ADMIN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let no_id = reqwest::Client::new()
        .post(http.url("/messages"))
        .bearer_auth(ADMIN)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(no_id.status(), 400);

    // Closing the stream ends the session.
    drop(stream);
    wait_for("the SSE session to leave status", || {
        env.status_json()["sessions"].as_array().unwrap().is_empty()
    })
    .await;
    let ping = json!({"jsonrpc": "2.0", "id": 4, "method": "ping"});
    assert_eq!(send(ping).await.unwrap().status(), 404);
}

#[tokio::test]
async fn a_public_listen_address_without_tokens_is_rejected() {
    let env = Env::new();
    let yaml = format!(
        "servers:\n{}http:\n  listen: \"0.0.0.0:{}\"\n",
        env.fixture_server("alpha", &[]),
        free_port()
    );
    env.write_config(&yaml);
    let out = env
        .command(&bin("mcpgwd"))
        .arg("--config")
        .arg(env.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:6:11: listening on 0.0.0.0:",
        env.config_path().display()
    );
    assert!(
        stderr.contains(&expected) && stderr.contains("requires tokens"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reloaded_tokens_apply_to_the_next_request() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let status = |token: &'static str| post_mcp(http.port, &initialize()).bearer_auth(token).send();
    assert_eq!(status(READONLY).await.unwrap().status(), 200);
    let rotated = config(&env, http.port, "").replace(READONLY, "rotated-token");
    env.write_config(&rotated);
    let out = env.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status(READONLY).await.unwrap().status(), 401);
    assert_eq!(status("rotated-token").await.unwrap().status(), 200);
    assert_eq!(status(ADMIN).await.unwrap().status(), 200);
    wait_for("the reload of the tokens to be logged", || {
        http.daemon
            .log()
            .contains("HTTP tokens and allowed hosts/origins reloaded")
    })
    .await;

    // A new listen address needs a restart: it is logged, and the old one keeps serving.
    let other_port = free_port();
    env.write_config(&config(&env, other_port, ""));
    assert!(env.ctl(&["reload"]).status.success());
    wait_for("the listen change to be logged", || {
        http.daemon
            .log()
            .contains(&format!("`http.listen` changed to 127.0.0.1:{other_port}"))
    })
    .await;
    assert_eq!(status(READONLY).await.unwrap().status(), 200);

    // So do the bounds on connections, requests and sessions: each change is logged.
    let bounds = "  max_connections: 9\n  header_timeout: 3s\n  body_timeout: 4s\n  max_sessions: 7\n\
                  \x20 max_sessions_per_role: 5\n";
    env.write_config(&config(&env, http.port, bounds));
    assert!(env.ctl(&["reload"]).status.success());
    for key in [
        "max_connections",
        "header_timeout",
        "body_timeout",
        "max_sessions",
        "max_sessions_per_role",
    ] {
        let logged = format!("`http.{key}` changed: it applies after a restart");
        wait_for(&logged, || http.daemon.log().contains(&logged)).await;
    }
    assert_eq!(status(READONLY).await.unwrap().status(), 200);

    // Without the `http` section, the listener refuses everything until the restart.
    let servers_only = format!("servers:\n{}", env.fixture_server("alpha", &[]));
    env.write_config(&servers_only);
    assert!(env.ctl(&["reload"]).status.success());
    assert_eq!(status(ADMIN).await.unwrap().status(), 503);
}

#[tokio::test]
async fn sigterm_closes_http_sessions_and_releases_the_port() {
    let env = Env::new();
    let mut http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let client = http_client(&http.url("/mcp"), Some(ADMIN)).await.unwrap();
    assert_eq!(
        call(&client, "alpha_echo", json!({"text": "x"})).await,
        Ok("x".into())
    );
    let mut stream = SseStream::open(&http.url("/sse"), READONLY).await;
    assert_eq!(stream.next().await.unwrap().0, "endpoint");

    let status = http.daemon.stop().await;
    assert!(status.success(), "{status}:\n{}", http.daemon.log());
    assert!(stream.next().await.is_none(), "the SSE stream ends");
    std::net::TcpListener::bind(("127.0.0.1", http.port)).expect("the port is free again");
    let log = http.daemon.log();
    assert!(log.contains("serving MCP over HTTP"), "{log}");
    drop(client);
}

/// Loopback is every local user's: without tokens an HTTP client is the `default` role, never
/// the role-less session that sees every tool, and the config warns that anyone can connect.
#[tokio::test]
async fn without_tokens_http_clients_get_only_the_default_role() {
    let env = Env::new();
    let make = |port: u16, default: &str| {
        format!(
            "servers:\n{}roles:\n  admin: null\n{default}http:\n  listen: \"127.0.0.1:{port}\"\n",
            env.fixture_server("alpha", &[])
        )
    };
    let http = HttpDaemon::start(&env, |port| make(port, "")).await;
    let client = http_client(&http.url("/mcp"), None).await.unwrap();
    assert!(
        names(&client).await.is_empty(),
        "no `default` role: nothing"
    );
    let _ = client.cancel().await;
    let warnings = env.status_json()["config_warnings"].to_string();
    assert!(
        warnings.contains("any local user can connect"),
        "{warnings}"
    );

    env.write_config(&make(http.port, "  default: [\"alpha_echo\"]\n"));
    assert_eq!(env.ctl(&["reload"]).status.code(), Some(0));
    let client = http_client(&http.url("/mcp"), None).await.unwrap();
    assert_eq!(names(&client).await, ["alpha_echo"]);
    let _ = client.cancel().await;
}

/// Connections that never send a request cannot exhaust the daemon: at most
/// `max_connections` are open at once, each is closed if its first request head does not
/// come within `header_timeout`, and the local socket keeps answering throughout.
#[tokio::test]
async fn idle_connections_are_capped_and_timed_out() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "  max_connections: 20\n  header_timeout: 1s\n")
    })
    .await;
    let pid = env.status_json()["pid"].as_u64().unwrap();
    let fds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let before = fds();
    let idle: Vec<std::net::TcpStream> = (0..60)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", http.port)).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        fds() <= before + 20,
        "{} descriptors open, {before} before",
        fds()
    );
    let start = Instant::now();
    assert!(env.ctl(&["status"]).status.success());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        start.elapsed()
    );

    // The idle ones are closed; a real client then gets in.
    wait_for("the idle connections to be closed", || fds() <= before + 2).await;
    drop(idle);
    let client = http_client(&http.url("/mcp"), Some(READONLY))
        .await
        .unwrap();
    assert!(!names(&client).await.is_empty());
    let _ = client.cancel().await;
}

/// A raw connection to the daemon's HTTP port; a read gives up after 20 s (so a connection the
/// daemon never answers or closes fails the test instead of hanging it).
fn raw_connection(port: u16) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// One response with a `Content-Length` body (or none), head and body.
fn read_response(stream: &mut std::net::TcpStream) -> String {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0; 4096];
    loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
            if bytes.len() >= end + 4 + length {
                return String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        let so_far = String::from_utf8_lossy(&bytes).into_owned();
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed before a whole response: {so_far:?}"),
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no whole response ({e}): {so_far:?}"),
        }
    }
}

/// True once the daemon closes `stream` (end of stream or reset), false if it stays open for
/// the read timeout. Bytes the daemon still sends are skipped.
fn closed_by_the_daemon(stream: &mut std::net::TcpStream) -> bool {
    use std::io::{ErrorKind, Read};
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
}

/// A kept-alive connection is timed like a new one (`header_timeout`) from the end of each
/// response: one that idles after its answer, or stalls in its next request's head, is closed,
/// so such connections cannot hold every `max_connections` place. It takes no token: a refused
/// request (401) leaves the connection open too.
#[tokio::test]
async fn kept_alive_idle_connections_are_closed() {
    use std::io::Write;
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "  max_connections: 4\n  header_timeout: 1s\n")
    })
    .await;
    let request = format!("GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", http.port);
    let mut held = Vec::new();
    for i in 0..4 {
        let mut stream = raw_connection(http.port);
        stream.write_all(request.as_bytes()).unwrap();
        let response = read_response(&mut stream);
        assert!(response.starts_with("HTTP/1.1 401"), "{response}");
        assert!(
            !response.to_lowercase().contains("connection: close"),
            "{response}"
        );
        if i % 2 == 1 {
            // The next request's head, never finished.
            stream.write_all(b"GET /mcp HTTP/1.1\r\nHost: 127").unwrap();
        }
        held.push(stream);
    }

    // Every place is held, until the daemon closes them: a real client gets in.
    let client = tokio::time::timeout(
        Duration::from_secs(20),
        http_client(&http.url("/mcp"), Some(READONLY)),
    )
    .await
    .expect("a new client was locked out by kept-alive connections")
    .unwrap();
    assert!(!names(&client).await.is_empty());
    let _ = client.cancel().await;
    for (i, stream) in held.iter_mut().enumerate() {
        let how = if i % 2 == 1 {
            "stalled in its second head"
        } else {
            "idle"
        };
        assert!(
            closed_by_the_daemon(stream),
            "a kept-alive connection {how} was not closed"
        );
    }
    assert!(env.ctl(&["status"]).status.success());
}

/// A request whose body does not come within `http.body_timeout` gets 408 and its connection
/// is closed; one announcing a body over the limit is refused (413) without waiting for it.
/// The local socket and the listener keep working.
#[tokio::test]
async fn a_slow_body_is_timed_out() {
    use std::io::Write;
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "  body_timeout: 1s\n")).await;
    let head = |length: usize| {
        format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {READONLY}\r\n\
             Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\n\r\n",
            http.port
        )
    };
    let mut slow = raw_connection(http.port);
    // 10 bytes of the 1000 announced, then nothing.
    slow.write_all(format!("{}{{\"jsonrpc\"", head(1000)).as_bytes())
        .unwrap();
    let response = read_response(&mut slow);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("the request body did not arrive within `http.body_timeout` (1s)"),
        "{response}"
    );
    assert!(
        closed_by_the_daemon(&mut slow),
        "the connection stayed open after the 408"
    );

    let mut large = raw_connection(http.port);
    large.write_all(head(5 << 20).as_bytes()).unwrap();
    let response = read_response(&mut large);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(closed_by_the_daemon(&mut large));

    assert!(env.ctl(&["status"]).status.success());
    let client = http_client(&http.url("/mcp"), Some(READONLY))
        .await
        .unwrap();
    assert!(!names(&client).await.is_empty());
    let _ = client.cancel().await;
}

/// Streamable HTTP sessions are capped in all (`http.max_sessions`) and per role
/// (`http.max_sessions_per_role`). At a cap a new session of a role ends the role's least
/// recently used idle session (its client gets 404 and may start anew); a session with a request
/// in flight is never ended, so when all of the role's are busy a new one is refused; another
/// role keeps its places; an ended session frees its place.
#[tokio::test]
async fn http_sessions_are_capped_and_the_least_recently_used_idle_one_makes_room() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(
            &env,
            port,
            "  max_sessions: 4\n  max_sessions_per_role: 2\n",
        )
    })
    .await;
    let port = http.port;
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let status = |session: String| {
        let list = list.clone();
        async move {
            let response = in_session(port, &session, &list).send().await.unwrap();
            response.status().as_u16()
        }
    };
    let (a, b) = (open_session(port).await, open_session(port).await);
    assert_eq!(status(a.clone()).await, 200);
    // The readonly role has its own places.
    let mut readonly = Vec::new();
    for _ in 0..2 {
        readonly.push(
            http_client(&http.url("/mcp"), Some(READONLY))
                .await
                .unwrap(),
        );
    }

    // `b` is the admin role's least recently used: a third admin session ends it.
    let c = open_session(port).await;
    assert_eq!(
        status(b).await,
        404,
        "the least recently used session was kept"
    );
    assert_eq!(status(a.clone()).await, 200);
    assert_eq!(status(c.clone()).await, 200);
    for client in &readonly {
        assert!(
            !names(client).await.is_empty(),
            "another role lost its session"
        );
    }

    // Sessions with a call in flight are not ended: with both busy, a new one is refused.
    let slow = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "alpha_slow", "arguments": {"ms": 4000}}});
    let busy_a = in_session(port, &a, &slow).send();
    let busy_c = in_session(port, &c, &slow).send();
    let busy = tokio::spawn(async move { (busy_a.await, busy_c.await) });
    wait_for("two calls in flight", || alpha_inflight(&env) == 2).await;
    let refused = post_mcp(port, &initialize())
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_ne!(
        refused.status(),
        200,
        "a session with a call in flight was ended"
    );
    let (done_a, done_c) = busy.await.unwrap();
    for done in [done_a, done_c] {
        assert!(
            done.unwrap()
                .text()
                .await
                .unwrap()
                .contains("slept 4000 ms")
        );
    }

    // An ended session frees its place.
    let deleted = reqwest::Client::new()
        .delete(http.url("/mcp"))
        .bearer_auth(ADMIN)
        .header("mcp-session-id", &a)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success());
    let d = open_session(port).await;
    assert_eq!(
        status(c).await,
        200,
        "a place was freed, yet a session was ended"
    );
    assert_eq!(status(d).await, 200);
}

/// An HTTP session, like a socket session, may hold only so many requests open at once
/// (`MCPGW_MAX_CALLS_PER_SESSION`), on either path: past it a new request is answered with
/// the same error, and the session goes on.
#[tokio::test]
async fn an_http_session_holds_only_so_many_requests_open() {
    for fast in ["1", "0"] {
        let env = Env::new();
        let vars = [
            ("MCPGW_MAX_CALLS_PER_SESSION", "2"),
            ("MCPGW_FAST_PATH", fast),
        ];
        let http = HttpDaemon::start_with_vars(&env, |port| config(&env, port, ""), &vars).await;
        let client = http_client(&http.url("/mcp"), Some(ADMIN)).await.unwrap();
        assert_eq!(
            call(&client, "alpha_echo", json!({"text": "warm"}))
                .await
                .unwrap(),
            "warm"
        );
        let slow: Vec<_> = (0..2)
            .map(|_| {
                let peer = client.peer().clone();
                tokio::spawn(async move {
                    let params = rmcp::model::CallToolRequestParams::new("alpha_slow")
                        .with_arguments(json!({"ms": 3000}).as_object().unwrap().clone());
                    peer.call_tool(params).await.map_err(|e| e.to_string())
                })
            })
            .collect();
        wait_for("two calls in flight", || {
            env.status_json()["backends"][0]["inflight"].as_u64() == Some(2)
        })
        .await;
        let refused = call(&client, "alpha_echo", json!({"text": "one too many"})).await;
        assert!(
            refused
                .as_ref()
                .is_err_and(|e| e.contains("too many requests in flight")),
            "fast={fast}: {refused:?}"
        );
        for call in slow {
            call.await.unwrap().expect("the calls in flight finish");
        }
        assert_eq!(
            call(&client, "alpha_echo", json!({"text": "again"})).await,
            Ok("again".to_string()),
            "fast={fast}"
        );
        let _ = client.cancel().await;
    }
}

/// A legacy SSE session is bounded like every other: of 6 slow calls, 2 run and 4 are refused.
#[tokio::test]
async fn a_legacy_sse_session_holds_only_so_many_requests_open() {
    let env = Env::new();
    let vars = [("MCPGW_MAX_CALLS_PER_SESSION", "2")];
    let http = HttpDaemon::start_with_vars(&env, |port| config(&env, port, ""), &vars).await;
    let mut stream = SseStream::open(&http.url("/sse"), ADMIN).await;
    let (_, endpoint) = stream.next().await.unwrap();
    let send = |message: Value| {
        reqwest::Client::new()
            .post(http.url(&endpoint))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(message.to_string())
            .send()
    };
    assert_eq!(send(initialize()).await.unwrap().status(), 202);
    stream.response(1).await;
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    send(initialized).await.unwrap();
    for id in 10..16 {
        let slow = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "alpha_slow", "arguments": {"ms": 2000}}});
        assert_eq!(send(slow).await.unwrap().status(), 202);
    }
    let (mut refused, mut ran) = (0, 0);
    while refused + ran < 6 {
        let (_, data) = stream.next().await.expect("the stream ended");
        let answer: Value = serde_json::from_str(&data).unwrap();
        if answer.get("id").is_none() {
            continue;
        }
        match answer["error"]["message"].as_str() {
            Some(m) if m.contains("too many requests in flight") => refused += 1,
            _ => ran += 1,
        }
    }
    assert_eq!((ran, refused), (2, 4));
}

/// When the total cap (`http.max_sessions`) binds, room is made in the role holding the most
/// places, not refused: one role's clients cannot lock another's out. And clients connecting
/// together at a cap do not end each other's handshakes: a session between `initialize` and
/// `initialized` is spared for a while, an idle one is ended instead.
#[tokio::test]
async fn http_session_caps_spare_other_roles_and_unfinished_handshakes() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(
            &env,
            port,
            "  max_sessions: 3\n  max_sessions_per_role: 2\n",
        )
    })
    .await;
    let port = http.port;
    let list = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list"});
    let status = |session: &str| {
        let request = in_session(port, session, &list);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // Between `initialize` and `initialized`.
    let begin = || async move {
        let response = post_mcp(port, &initialize())
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "initialize refused");
        let session = response.headers()["mcp-session-id"]
            .to_str()
            .unwrap()
            .to_owned();
        let _ = response.text().await;
        session
    };
    let finish = |session: String| async move {
        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let response = in_session(port, &session, &initialized)
            .send()
            .await
            .unwrap();
        response.status().as_u16()
    };

    let (a, b) = (open_session(port).await, open_session(port).await);
    let readonly = http_client(&http.url("/mcp"), Some(READONLY))
        .await
        .unwrap();
    // The total binds (3): the admin role holds the most places and gives one up.
    let second_readonly = http_client(&http.url("/mcp"), Some(READONLY)).await;
    let refused = second_readonly.as_ref().err();
    assert!(refused.is_none(), "locked out by another role: {refused:?}");
    assert!(!names(&readonly).await.is_empty());
    let left = [status(&a).await, status(&b).await];
    assert!(left.contains(&404) && left.contains(&200), "{left:?}");
    let kept = if left[0] == 200 { a } else { b };

    // The admin role (1 of 2 places, total 3 of 3) connects two clients at once: the first
    // takes a place of the readonly role (which holds the most), the second finds the admin
    // role full and ends its idle session, not the first's unfinished handshake.
    let c = begin().await;
    let d = begin().await;
    assert_eq!(finish(c).await, 202, "an unfinished handshake was ended");
    assert_eq!(finish(d).await, 202);
    assert_eq!(status(&kept).await, 404, "the idle session was kept");
}

/// A session whose client left its handshake unfinished makes room once its grace is over,
/// counted from when it was created, for either role.
#[tokio::test]
async fn abandoned_handshakes_make_room_once_their_grace_is_over() {
    let env = Env::new();
    let vars = [("MCPGW_HANDSHAKE_GRACE_MS", "500")];
    let http = HttpDaemon::start_with_vars(
        &env,
        |port| {
            config(
                &env,
                port,
                "  max_sessions: 4\n  max_sessions_per_role: 2\n",
            )
        },
        &vars,
    )
    .await;
    let initialize_with = |token: &'static str| {
        let request = post_mcp(http.port, &initialize()).bearer_auth(token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    for token in [ADMIN, ADMIN, READONLY, READONLY] {
        assert_eq!(initialize_with(token).await, 200);
    }
    // Every place is held by an unfinished handshake; once the grace is over, each role's
    // next client gets in at its first try, whichever role asked before.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    for token in [READONLY, ADMIN, READONLY, ADMIN] {
        assert_eq!(
            initialize_with(token).await,
            200,
            "an abandoned handshake kept its place"
        );
    }
}

/// A client that stops reading a response cannot hold its connection's place (and the answer)
/// for as long as it keeps the connection open: once a write has made no progress for
/// `http.write_timeout` the connection is closed, and a new client gets in.
#[tokio::test]
async fn a_client_that_stops_reading_loses_its_connection() {
    use std::io::Write;
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "  max_connections: 2\n  write_timeout: 1s\n")
    })
    .await;
    let session = open_session(http.port).await;
    let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "alpha_big", "arguments": {"bytes": 30_000_000}}})
    .to_string();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Accept: application/json, text/event-stream\r\nContent-Type: application/json\r\n\
         Mcp-Session-Id: {session}\r\nMcp-Protocol-Version: 2025-06-18\r\n\
         Content-Length: {}\r\n\r\n{body}",
        http.port,
        body.len()
    );
    let held: Vec<_> = (0..2)
        .map(|_| {
            let mut stream = raw_connection(http.port);
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    let client = tokio::time::timeout(
        Duration::from_secs(30),
        http_client(&http.url("/mcp"), Some(READONLY)),
    )
    .await
    .expect("a new client was locked out by clients that do not read")
    .unwrap();
    assert!(!names(&client).await.is_empty());
    let _ = client.cancel().await;
    drop(held);
}
