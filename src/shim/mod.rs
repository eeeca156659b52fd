//! The shim: an MCP client's stdio, relayed line for line to the daemon's local socket.
//!
//! It parses no MCP: after the hello it pumps whole lines, reading of each only its top-level
//! `id` and `method` (and whether it answers), so that a daemon that goes away can be replaced
//! under the client ([`relay`], [`memory`], [`peek`]). It starts in about a millisecond and stays
//! a few MB. Stdout gets the daemon's lines and, only when the daemon went away, lines of the
//! shim's own (errors for the requests it did not answer, list changes); every other message
//! of the shim goes to stderr.

use std::path::PathBuf;

mod autostart;
mod daemon_env;
mod memory;
mod peek;
mod relay;

use crate::ipc::{self, ConnectError, Connection};
use crate::protocol::{Hello, HelloKind, PROTOCOL_VERSION};

/// Environment variables naming the role, in order of precedence after `--role`.
/// `MCP_GATEWAY_ROLE` is the one mcp-unify users already have set.
pub const ROLE_ENVS: [&str; 2] = ["MCPGW_ROLE", "MCP_GATEWAY_ROLE"];

#[derive(Debug, Default, PartialEq)]
pub struct Args {
    pub socket: Option<PathBuf>,
    pub role: Option<String>,
    /// Config for a daemon this shim starts (else the daemon's own discovery).
    pub config: Option<PathBuf>,
    pub no_autostart: bool,
    /// `--version`: print it and exit.
    pub version: bool,
}

/// Also the shim's man page and completions: `cli::shim` reads its flag lines (`  --flag VALUE`,
/// two spaces, help; help continued further indented), and its tests hold `Args::parse` to
/// exactly the flags listed here.
pub const USAGE: &str = "\
usage: mcpgw-shim [--socket PATH] [--role ROLE] [--config FILE] [--no-autostart] [--version]

Connects an MCP client's stdio to the mcpgw daemon, starting the daemon if none runs.
  --socket PATH    daemon socket (default: $MCPGW_SOCKET, else the per-user runtime socket)
  --role ROLE      role whose tools this session sees (default: $MCPGW_ROLE, $MCP_GATEWAY_ROLE)
  --config FILE    config for a daemon started by this shim (default: $MCPGW_CONFIG, else
                   the user's config dir; never the working directory)
  --no-autostart   fail instead of starting a daemon when none runs
  -V, --version    print the version and exit
";

impl Args {
    /// Parses the command line (without the program name). Hand-rolled: three flags do not
    /// justify an argument parser in a process started once per client session.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut out = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag.as_str() {
                "--socket" => out.socket = Some(PathBuf::from(value("--socket")?)),
                "--role" => out.role = Some(value("--role")?),
                "--config" => out.config = Some(PathBuf::from(value("--config")?)),
                "--no-autostart" if inline.is_none() => out.no_autostart = true,
                "-h" | "--help" => return Err(String::new()),
                "-V" | "--version" if inline.is_none() => out.version = true,
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if out.role.is_none() {
            out.role = ROLE_ENVS
                .iter()
                .filter_map(|var| std::env::var(var).ok())
                .find(|role| !role.is_empty());
        }
        Ok(out)
    }
}

/// Runs the shim to completion and returns the process exit code.
pub fn run(args: Args) -> i32 {
    let dialer = Dialer {
        socket: crate::paths::resolve_socket(args.socket.as_deref()),
        hello: Hello {
            v: PROTOCOL_VERSION,
            kind: HelloKind::Session,
            role: args.role,
            pid: Some(std::process::id()),
            // The daemon keeps only what per-client servers take (`pass_env`).
            env: crate::protocol::ClientEnv::bounded(std::env::vars_os()),
        },
        autostart: !args.no_autostart,
        config: args.config,
    };
    match dialer.dial() {
        Ok(conn) => relay::run(conn, Some(&dialer), 0),
        Err(Failure {
            refused: Some(conn),
            message,
            ..
        }) => {
            eprintln!("mcpgw-shim: {message}");
            // The daemon answers the client's first request with the same message, so the MCP
            // client shows it too; relay until the daemon closes.
            relay::run(conn, None, 1)
        }
        Err(failure) => {
            eprintln!("mcpgw-shim: {}", failure.message);
            answer_first_request(
                std::io::BufReader::new(std::io::stdin()),
                &mut std::io::stdout().lock(),
                &format!("mcpgw-shim: {}", failure.message),
                FIRST_REQUEST_PATIENCE,
            );
            1
        }
    }
}

/// How long the shim waits for the client's first request when it has only an error for it.
const FIRST_REQUEST_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// When no daemon can be reached or started, the client's first request (its `initialize`,
/// or a 2026-07-28 client's first request) gets the reason as a JSON-RPC error: MCP clients
/// show that, where few show a server's stderr. Bounded: at most 16 lines of at most 1 MiB
/// are read, for at most `patience`; then the shim gives up silently (it exits either way).
fn answer_first_request(
    input: impl std::io::BufRead + Send + 'static,
    output: &mut impl std::io::Write,
    message: &str,
    patience: std::time::Duration,
) {
    use std::io::{BufRead, Read};
    const MAX_LINE: u64 = 1 << 20;
    let (found, first) = std::sync::mpsc::channel();
    // Reading stdin blocks; a thread lets the wait end (the thread ends with the process).
    std::thread::spawn(move || {
        let mut input = input;
        let mut line = Vec::new();
        for _ in 0..16 {
            line.clear();
            match (&mut input).take(MAX_LINE).read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if !line.ends_with(b"\n") && line.len() as u64 >= MAX_LINE => return,
                Ok(_) => {}
            }
            let peeked = peek::client(&line);
            if let (Some(id), Some(_)) = (peeked.id, peeked.method) {
                let _ = found.send(id);
                return;
            }
        }
    });
    if let Ok(id) = first.recv_timeout(patience) {
        let _ = output.write_all(&memory::error_frame(&id, message));
        let _ = output.flush();
    }
}

/// How the shim reaches a daemon: at start, and again when one went away.
pub(crate) struct Dialer {
    socket: PathBuf,
    hello: Hello,
    autostart: bool,
    /// Config for a daemon this shim starts.
    config: Option<PathBuf>,
}

/// Why [`Dialer::dial`] found no daemon to talk to.
pub(crate) struct Failure {
    message: String,
    /// Worth trying again later (no daemon yet, or one not answering yet).
    retry: bool,
    /// The daemon refused the hello: the connection still relays its answer.
    refused: Option<Connection>,
}

impl Dialer {
    /// Connects and says hello, starting a daemon first when none runs and autostart is
    /// allowed (only after not-found/refused).
    fn dial(&self) -> Result<Connection, Failure> {
        let mut connected = ipc::connect(&self.socket, &self.hello);
        if matches!(connected, Err(ConnectError::NotRunning(_))) && self.autostart {
            connected = match autostart::start(&self.socket, self.config.as_deref()) {
                Ok(()) => ipc::connect(&self.socket, &self.hello),
                Err(message) => {
                    return Err(Failure {
                        message,
                        retry: true,
                        refused: None,
                    });
                }
            };
        }
        let (message, retry, refused) = match connected {
            Ok(conn) => return Ok(conn),
            Err(ConnectError::Refused(message, conn)) => (message, false, Some(conn)),
            Err(ConnectError::NotRunning(_)) => (
                format!(
                    "no mcpgw daemon is running at {}; start one with `mcpgwd` (or enable the \
                     mcpgwd user service, or drop --no-autostart)",
                    self.socket.display()
                ),
                true,
                None,
            ),
            Err(ConnectError::Io(e)) => (
                format!("cannot reach the daemon at {}: {e}", self.socket.display()),
                true,
                None,
            ),
            Err(ConnectError::Untrusted(message)) => (message, false, None),
        };
        Err(Failure {
            message,
            retry,
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flags_in_both_spellings() {
        let a = parse(&["--socket", "/s", "--role=readonly"]).unwrap();
        assert_eq!(a.socket, Some(PathBuf::from("/s")));
        assert_eq!(a.role.as_deref(), Some("readonly"));
    }

    fn first_answer(input: &str) -> String {
        let mut out = Vec::new();
        let input = std::io::Cursor::new(input.as_bytes().to_vec());
        answer_first_request(
            input,
            &mut out,
            "mcpgw-shim: no daemon",
            std::time::Duration::from_secs(10),
        );
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_first_request_gets_the_reason_no_daemon_answered() {
        let answer = first_answer(
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}\n\
             {\"jsonrpc\":\"2.0\",\"id\":\"a\\\"b\",\"method\":\"initialize\",\"params\":{}}\n",
        );
        let value: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(value["id"], "a\"b");
        assert_eq!(value["error"]["code"], -32000);
        assert_eq!(value["error"]["message"], "mcpgw-shim: no daemon");
        assert!(answer.ends_with('\n'));
        // No request before the input ends: nothing is written.
        assert_eq!(first_answer("{\"method\":\"notifications/x\"}\n"), "");
        assert_eq!(first_answer(""), "");
    }

    #[test]
    fn bad_arguments_are_reported() {
        assert_eq!(parse(&["--nope"]).unwrap_err(), "unknown argument `--nope`");
        assert_eq!(parse(&["--role"]).unwrap_err(), "--role needs a value");
    }
}
