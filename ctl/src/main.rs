//! `mcpgwctl`: the operator's view of a running mcpgw daemon.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 usage, 3 no daemon running. No verb ever
//! starts a daemon.

mod client;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcpgw::protocol::{ControlRequest, ControlResponse};

#[derive(Parser)]
#[command(version, about = "Control a running mcpgw daemon")]
struct Args {
    /// Daemon socket (default: $MCPGW_SOCKET, else the per-user runtime socket).
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Machine-readable JSON output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Daemon, sessions and every backend with its state, pid, memory, calls and errors.
    Status,
}

pub const EXIT_FAILED: u8 = 1;
pub const EXIT_NO_DAEMON: u8 = 3;

fn main() -> ExitCode {
    let args = Args::parse();
    let socket = mcpgw::ipc::resolve_socket(args.socket.as_deref());
    let request = match args.verb {
        Verb::Status => ControlRequest::Status,
    };
    let response = match client::request(&socket, &request) {
        Ok(response) => response,
        Err(client::Error::NotRunning) => {
            eprintln!(
                "mcpgwctl: no mcpgw daemon is running at {} (start one with `mcpgwd`, or \
                 `systemctl --user start mcpgwd`)",
                socket.display()
            );
            return ExitCode::from(EXIT_NO_DAEMON);
        }
        Err(client::Error::Other(message)) => {
            eprintln!("mcpgwctl: {message}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match response {
        ControlResponse::Status(status) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&status).expect("status serializes"));
            } else {
                print!("{}", render::status(&status));
            }
            ExitCode::SUCCESS
        }
        ControlResponse::Error { message } => {
            eprintln!("mcpgwctl: {message}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
