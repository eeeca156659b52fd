//! The shim: an MCP client's stdio, relayed byte for byte to the daemon's local socket.
//!
//! It parses no MCP: after the hello it only pumps bytes, so it starts in about a millisecond
//! and stays a few MB. Nothing but bytes from the daemon ever reaches stdout; every message of
//! its own goes to stderr.

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

mod autostart;

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
    let socket = crate::paths::resolve_socket(args.socket.as_deref());
    let hello = Hello {
        v: PROTOCOL_VERSION,
        kind: HelloKind::Session,
        role: args.role,
        pid: Some(std::process::id()),
    };
    let mut connected = ipc::connect(&socket, &hello);
    if matches!(connected, Err(ConnectError::NotRunning(_))) && !args.no_autostart {
        connected = match autostart::start(&socket, args.config.as_deref()) {
            Ok(()) => ipc::connect(&socket, &hello),
            Err(message) => {
                eprintln!("mcpgw-shim: {message}");
                return 1;
            }
        };
    }
    match connected {
        Ok(conn) => pump(conn, None),
        Err(ConnectError::Refused(msg, conn)) => {
            eprintln!("mcpgw-shim: {msg}");
            // The daemon answers the client's first request with the same message, so the
            // MCP client shows it too; relay until the daemon closes.
            pump(conn, Some(1))
        }
        Err(ConnectError::NotRunning(_)) => {
            eprintln!(
                "mcpgw-shim: no mcpgw daemon is running at {}; start one with `mcpgwd` \
                 (or enable the mcpgwd user service, or drop --no-autostart)",
                socket.display()
            );
            1
        }
        Err(ConnectError::Io(e)) => {
            eprintln!(
                "mcpgw-shim: cannot reach the daemon at {}: {e}",
                socket.display()
            );
            1
        }
        Err(ConnectError::Untrusted(message)) => {
            eprintln!("mcpgw-shim: {message}");
            1
        }
    }
}

/// Relays stdin → daemon on a thread and daemon → stdout here, until the daemon closes.
fn pump(conn: Connection, exit_code: Option<i32>) -> i32 {
    static STDIN_CLOSED: AtomicBool = AtomicBool::new(false);
    let Connection { mut reader, writer } = conn;
    std::thread::spawn(move || {
        let mut writer = writer;
        let mut stdin = io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if writer.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            }
        }
        STDIN_CLOSED.store(true, Ordering::SeqCst);
        // The client is done: let the daemon finish and close its side, which ends the pump.
        writer.shutdown_write();
    });
    let mut stdout = io::stdout().lock();
    loop {
        let chunk = match reader.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let n = chunk.len();
        if stdout
            .write_all(chunk)
            .and_then(|()| stdout.flush())
            .is_err()
        {
            // The client stopped reading: nothing left to do for it.
            return 0;
        }
        reader.consume(n);
    }
    if let Some(code) = exit_code {
        return code;
    }
    if STDIN_CLOSED.load(Ordering::SeqCst) {
        0
    } else {
        eprintln!("mcpgw-shim: the daemon closed the connection");
        1
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

    #[test]
    fn bad_arguments_are_reported() {
        assert_eq!(parse(&["--nope"]).unwrap_err(), "unknown argument `--nope`");
        assert_eq!(parse(&["--role"]).unwrap_err(), "--role needs a value");
    }
}
