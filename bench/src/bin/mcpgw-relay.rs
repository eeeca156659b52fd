//! mcpgw-relay: the benchmark's physical floor, two trivial byte-forwarding processes.
//!
//! It has the shape of shim → daemon → backend with no MCP work at all:
//!
//! ```text
//! client ──stdio── mcpgw-relay connect SOCK ──Unix socket── mcpgw-relay listen SOCK -- CMD… ──stdio── CMD
//! ```
//!
//! `connect` relays its stdio to the socket (the shim's job); `listen` accepts connections and,
//! for each, spawns `CMD` and relays the connection to the child's stdio (the daemon's job, minus
//! everything the daemon does with the bytes). Each direction is one blocking thread doing
//! `read` into a 64 KiB buffer and `write_all` straight to the file descriptor: no line
//! splitting, no user-space buffering, nothing parsed. Whatever a gateway process pair adds on
//! top of this is its own cost.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, ExitCode, Stdio};

const USAGE: &str =
    "usage: mcpgw-relay connect SOCKET | mcpgw-relay listen SOCKET -- COMMAND [ARGS…]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["connect", socket] => connect(socket),
        ["listen", socket, "--", command, rest @ ..] => listen(socket, command, rest),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgw-relay: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Client side: stdin → socket on a thread, socket → stdout here.
fn connect(socket: &str) -> io::Result<()> {
    let stream = UnixStream::connect(socket)?;
    let to_socket = stream.try_clone()?;
    // SAFETY: fds 0 and 1 are open for the life of the process and owned by nothing else here.
    let (stdin, stdout) = unsafe { (File::from_raw_fd(0), File::from_raw_fd(1)) };
    std::thread::spawn(move || {
        pump(stdin, &to_socket);
        let _ = to_socket.shutdown(std::net::Shutdown::Write);
    });
    pump(&stream, stdout);
    Ok(())
}

/// Server side: one child per accepted connection, relayed both ways.
fn listen(socket: &str, command: &str, args: &[&str]) -> io::Result<()> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)?;
    for stream in listener.incoming() {
        let stream = stream?;
        let mut child = Command::new(command)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let (Some(child_in), Some(child_out)) = (child.stdin.take(), child.stdout.take()) else {
            unreachable!("both pipes were requested");
        };
        let from_socket = stream.try_clone()?;
        std::thread::spawn(move || {
            // Closing the child's stdin (dropping it after the pump) tells it to exit.
            pump(&from_socket, child_in);
        });
        std::thread::spawn(move || {
            pump(child_out, &stream);
            let _ = stream.shutdown(std::net::Shutdown::Both);
            let _ = child.wait();
        });
    }
    Ok(())
}

/// Copies until EOF or an error on either side.
fn pump(mut from: impl Read, mut to: impl Write) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
