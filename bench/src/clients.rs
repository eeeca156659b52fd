//! The MCP clients the figures use: rmcp's typed client over a spawned process (the fixture
//! directly, the shim, the relay) or over Streamable HTTP, and a raw JSON-RPC session on the
//! daemon's socket for what a typed client would hide or cost.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{Peer, RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// A connected, initialized rmcp client with no handler of its own.
pub type Client = RunningService<RoleClient, ()>;

/// Spawns `cmd` and initializes an MCP client over its stdio. Returns the client and the pid of
/// the spawned process.
pub async fn spawn(cmd: tokio::process::Command) -> Result<(Client, u32)> {
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .context("spawning the client's server process")?;
    let pid = transport.id().unwrap_or(0);
    let client = ().serve(transport).await.context("initialize")?;
    Ok((client, pid))
}

/// The fixture with `args`, as a client spawns it when there is no gateway.
pub fn fixture_command(fixture: &Path, args: &[String]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(fixture);
    cmd.args(args);
    cmd
}

/// A client of the daemon's Streamable HTTP endpoint.
pub async fn http(url: &str) -> Result<Client> {
    let transport = StreamableHttpClientTransport::from_uri(url.to_owned());
    ().serve(transport)
        .await
        .with_context(|| format!("initialize over HTTP at {url}"))
}

/// `tools/call` of an echo tool with a small text.
pub fn echo(tool: &str, text: &str) -> CallToolRequestParams {
    params(tool, json!({ "text": text }))
}

/// `tools/call` of the fixture's `big` tool (a text of `bytes` 'x').
pub fn big(tool: &str, bytes: usize) -> CallToolRequestParams {
    params(tool, json!({ "bytes": bytes }))
}

fn params(tool: &str, args: Value) -> CallToolRequestParams {
    let Value::Object(map) = args else {
        unreachable!("arguments are written as objects")
    };
    CallToolRequestParams::new(tool.to_owned()).with_arguments(map)
}

/// One call that must succeed (a tool error counts as a failure).
pub async fn call(
    peer: &Peer<RoleClient>,
    params: CallToolRequestParams,
) -> Result<CallToolResult> {
    let name = params.name.clone();
    let result = peer
        .call_tool(params)
        .await
        .map_err(|e| anyhow!("{name}: {e}"))?;
    if result.is_error == Some(true) {
        bail!("{name} returned a tool error: {:?}", result.content);
    }
    Ok(result)
}

/// The first text content of a result.
pub fn text_of(result: &CallToolResult) -> &str {
    result
        .content
        .iter()
        .find_map(|c| c.as_text().map(|t| t.text.as_str()))
        .unwrap_or_default()
}

/// One call, timed.
pub async fn timed_call(
    peer: &Peer<RoleClient>,
    params: CallToolRequestParams,
) -> Result<Duration> {
    let start = Instant::now();
    call(peer, params).await?;
    Ok(start.elapsed())
}

/// A session on the daemon's socket spoken by hand: the hello, `initialize`, then raw
/// JSON-RPC lines. Costs the daemon exactly what a shim session costs it, without a process.
pub struct RawSession {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_id: u64,
    line: Vec<u8>,
}

impl RawSession {
    pub async fn connect(socket: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket)
            .await
            .context("connecting to the daemon")?;
        let (read, writer) = stream.into_split();
        let mut session = Self {
            reader: BufReader::new(read),
            writer,
            next_id: 0,
            line: Vec::new(),
        };
        session
            .send(&json!({"v": 1, "kind": "session", "pid": std::process::id()}))
            .await?;
        let reply: Value = serde_json::from_slice(session.read_line().await?)?;
        if reply["ok"] != true {
            bail!("session hello refused: {reply}");
        }
        let init = session
            .request(
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "mcpgw-bench-raw", "version": "0"},
                }),
            )
            .await?;
        let init: Value = serde_json::from_slice(init)?;
        if init.get("result").is_none() {
            bail!("initialize failed: {init}");
        }
        session
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        Ok(session)
    }

    async fn send(&mut self, msg: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(msg)?;
        line.push(b'\n');
        self.writer.write_all(&line).await?;
        Ok(())
    }

    async fn read_line(&mut self) -> Result<&[u8]> {
        self.line.clear();
        if self.reader.read_until(b'\n', &mut self.line).await? == 0 {
            bail!("the daemon closed the session");
        }
        Ok(&self.line)
    }

    /// Sends a request and does not wait for its response (a client that never reads).
    pub async fn send_request(&mut self, method: &str, params: Value) -> Result<()> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await
    }

    /// Sends a request and returns the raw response line, skipping notifications. The response
    /// is told apart by its envelope alone (`"method"` among the first bytes marks a
    /// notification or a request), so a large response is not parsed inside the timing.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<&[u8]> {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await?;
        loop {
            let line = self.read_line().await?;
            let head = &line[..line.len().min(48)];
            if !head.windows(8).any(|w| w == b"\"method\"") {
                break;
            }
        }
        Ok(&self.line)
    }
}
