//! `mcpgwctl`: the operator's view of a running mcpgw daemon.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 usage, 3 no daemon running. No verb ever
//! starts a daemon; `check`, `completions`, `man`, `import` and `connect` do not even talk to
//! one (`import` and `connect` work on files: gateway.yaml, its env file and the MCP clients'
//! configs). With `--json` every verb prints exactly one JSON document on stdout
//! (`{"error": "..."}` when it fails).

mod check;
mod client;
mod clients;
mod connect;
mod diff;
mod docs;
mod files;
mod import;
mod jsonc;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand};
use mcpgw::protocol::{ControlRequest, ControlResponse};
use serde::Serialize;

#[derive(Parser)]
#[command(version, about = "Control a running mcpgw daemon")]
struct Args {
    /// Daemon socket (default: $MCPGW_SOCKET, else the per-user runtime socket).
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Machine-readable output: one JSON document on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Daemon, config generation, sessions and every backend with its state, pid, memory,
    /// calls and errors.
    Status,
    /// Re-read the config now; prints what changed, or every error (the old config stays live).
    Reload,
    /// Stop a server's process now; the next call that needs it starts it again.
    Kill {
        /// Server name, as in the config.
        server: String,
    },
    /// Start a server now, before any call needs it.
    Start {
        /// Server name, as in the config.
        server: String,
    },
    /// Shut the daemon down gracefully and wait until it has exited.
    Stop,
    /// The tools a client sees: exposed name and the first line of the description.
    List {
        /// The client's role (default: what a client naming no role sees).
        #[arg(long)]
        role: Option<String>,
    },
    /// What a server wrote to its stderr (newest lines, kept across its restarts).
    Logs {
        /// Server name, as in the config.
        server: String,
        /// How many lines.
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 50)]
        lines: usize,
    },
    /// Validate a config file without a daemon: every error with its file:line:col. Python
    /// plugins are imported (in the plugin host) and their tools listed.
    Check {
        /// Config file (default: ./gateway.yaml, ./mcp-gateway.yaml,
        /// ~/.config/mcpgw/gateway.yaml, like mcpgwd).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// The tools whose definitions changed since they were pinned (approved), old and new
    /// side by side: held back (`pin: quarantine`) or served with a warning (`pin: warn`).
    Diff {
        /// Only this server's (default: every server's).
        server: Option<String>,
    },
    /// Accept changed tools as they are now: they are pinned again and served.
    Approve {
        /// Server name, as in the config.
        server: String,
        /// The tools to accept (the server's names, as `diff` shows them, or the exposed ones).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        tools: Vec<String>,
        /// Accept every changed tool of the server.
        #[arg(long)]
        all: bool,
    },
    /// Print mcpgwctl's completion script for a shell.
    ///
    /// E.g. `mcpgwctl completions bash > ~/.local/share/bash-completion/completions/mcpgwctl`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print mcpgwctl's man page, or write every page into a directory.
    ///
    /// With --dir: the pages of mcpgwctl, each of its verbs, mcpgwd and mcpgw-shim, listed as
    /// they are written.
    Man {
        /// Directory to write every page into (created if missing), e.g. ~/.local/share/man/man1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Read MCP clients' configs (every one found, or FILE) and print the gateway.yaml
    /// servers they hold; with --write, add them to gateway.yaml. Secrets go to its env file.
    Import {
        /// A client's config file, imported as it is (default: every client's user-level
        /// config found).
        file: Option<PathBuf>,
        /// Whose format FILE is, or the one client to look for.
        #[arg(long, value_enum)]
        from: Option<clients::Client>,
        /// Add the servers to gateway.yaml (keeping a backup of it), not only print them.
        #[arg(long)]
        write: bool,
        /// Read the current project's configs too (.mcp.json, .cursor/mcp.json,
        /// .vscode/mcp.json, .codex/config.toml): only for a project you trust. Of Claude
        /// Code's .mcp.json, only the servers approved in Claude Code.
        #[arg(long, conflicts_with = "file")]
        project: bool,
        /// The gateway config to add to (default: $MCPGW_CONFIG, else
        /// ~/.config/mcpgw/gateway.yaml, created; never a gateway.yaml of the current
        /// directory).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Make a client use the gateway: its servers, once imported, are replaced by one entry
    /// running mcpgw-shim (the original is kept); --undo puts the original back.
    ///
    /// Quit the client first: a running client (Claude Code rewrites ~/.claude.json) may
    /// write its old servers back from memory.
    Connect {
        /// The client whose config is changed.
        #[arg(value_enum)]
        client: clients::Client,
        /// The role the client gets (`mcpgw-shim --role ROLE`).
        #[arg(long)]
        role: Option<String>,
        /// Put the client's config back as it was before `connect`.
        #[arg(long, conflicts_with = "role")]
        undo: bool,
        /// The gateway config the client's servers must be in (as for `import`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_NO_DAEMON: u8 = 3;

/// How long `stop` waits for the daemon to exit (it drains calls and stops every backend).
const STOP_WAIT: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args = Args::parse();
    let out = Out { json: args.json };
    // `approve` is made from the daemon's `diff` once connected: what it approves is what
    // `diff` shows, each definition as shown.
    let mut approval = None;
    let request = match args.verb {
        Verb::Check { config } => return check::run(config.as_deref(), out),
        Verb::Completions { shell } => return docs::completions(shell, out),
        Verb::Man { dir } => return docs::man(dir.as_deref(), out),
        Verb::Import {
            file,
            from,
            write,
            project,
            config,
        } => {
            let args = import::Args {
                file,
                from,
                write,
                config,
                project,
            };
            return import::run(args, out);
        }
        Verb::Connect {
            client,
            role,
            undo,
            config,
        } => {
            let args = connect::Args {
                client,
                role,
                undo,
                config,
            };
            return connect::run(args, out);
        }
        Verb::Status => ControlRequest::Status,
        Verb::Reload => ControlRequest::Reload,
        Verb::Kill { server } => ControlRequest::Kill { server },
        Verb::Start { server } => ControlRequest::Start { server },
        Verb::Stop => ControlRequest::Stop,
        Verb::List { role } => ControlRequest::List { role },
        Verb::Diff { server } => ControlRequest::Diff { server },
        Verb::Approve { server, tools, all } => {
            approval = Some(diff::Selection { server, tools, all });
            ControlRequest::Status
        }
        Verb::Logs { server, lines } => ControlRequest::Logs { server, lines },
    };
    let socket = mcpgw::paths::resolve_socket(args.socket.as_deref());
    let connected = client::Client::connect(&socket).and_then(|mut client| {
        let request = match approval {
            Some(selection) => selection.request(&mut client)?,
            None => request,
        };
        let response = client.request(&request)?;
        Ok((client, response))
    });
    let (client, response) = match connected {
        Ok(answered) => answered,
        Err(client::Error::NotRunning) => {
            return out.fail(
                EXIT_NO_DAEMON,
                &format!(
                    "no mcpgw daemon is running at {} (start one with `mcpgwd`, or \
                     `systemctl --user start mcpgwd`)",
                    socket.display()
                ),
            );
        }
        Err(client::Error::Other(message)) => return out.fail(EXIT_FAILED, &message),
    };
    match response {
        ControlResponse::Status(status) => {
            out.print(&status, || render::status(&status, now_unix_ms()))
        }
        ControlResponse::Reloaded(reload) => {
            if reload.ok {
                out.print(&reload, || render::reload(&reload))
            } else {
                // The errors go to stderr in both modes; --json also gets the document.
                eprint!("mcpgwctl: {}", render::printable(&render::reload(&reload)));
                if out.json {
                    out.document(&reload);
                }
                ExitCode::from(EXIT_FAILED)
            }
        }
        ControlResponse::Killed(p) => out.print(&p, || render::killed(&p)),
        ControlResponse::Started(p) => out.print(&p, || render::started(&p)),
        ControlResponse::Stopping { pid } => stop(client, pid, out),
        ControlResponse::Tools(list) => out.print(&list, || render::list(&list)),
        ControlResponse::Logs(tail) => {
            if tail.lines.is_empty() && !out.json {
                let server = render::printable(&tail.server);
                eprintln!("mcpgwctl: `{server}` has written nothing to stderr");
            }
            out.print(&tail, || {
                tail.lines.iter().map(|l| format!("{l}\n")).collect()
            })
        }
        ControlResponse::Changes { changes } => {
            let changes = diff::Changes(changes);
            out.print(&changes, || changes.side_by_side(diff::terminal_width()))
        }
        ControlResponse::Approved { server, tools } => {
            let approved = serde_json::json!({ "server": server, "approved": tools });
            out.print(&approved, || diff::approved(&server, &tools))
        }
        ControlResponse::Error { message } => out.fail(EXIT_FAILED, &message),
    }
}

/// The daemon acknowledged `stop`: wait for it to close our connection (it stopped serving),
/// then for its process to be gone (backends stopped, socket removed).
fn stop(client: client::Client, pid: u32, out: Out) -> ExitCode {
    let deadline = Instant::now() + STOP_WAIT;
    if !client.wait_closed(deadline) || !client::wait_exited(pid, deadline) {
        return out.fail(
            EXIT_FAILED,
            &format!(
                "mcpgwd (pid {pid}) is still running {}s after it was asked to stop",
                STOP_WAIT.as_secs()
            ),
        );
    }
    #[derive(Serialize)]
    struct Stopped {
        stopped: bool,
        pid: u32,
    }
    out.print(&Stopped { stopped: true, pid }, || {
        format!("mcpgwd (pid {pid}) stopped\n")
    })
}

/// Where results go: human text, or one JSON document.
#[derive(Clone, Copy)]
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Prints a successful result and exits 0.
    pub fn print<T: Serialize>(self, value: &T, human: impl FnOnce() -> String) -> ExitCode {
        if self.json {
            self.document(value);
        } else {
            // Backend text (stderr, tool descriptions, reasons) may hold terminal escapes.
            print!("{}", render::printable(&human()));
        }
        ExitCode::SUCCESS
    }

    pub fn document<T: Serialize>(self, value: &T) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).expect("output serializes")
        );
    }

    /// Reports a failure on stderr (and as `{"error": …}` with --json) and exits with `code`.
    pub fn fail(self, code: u8, message: &str) -> ExitCode {
        eprintln!("mcpgwctl: {}", render::printable(message));
        if self.json {
            self.document(&serde_json::json!({ "error": message }));
        }
        ExitCode::from(code)
    }
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
