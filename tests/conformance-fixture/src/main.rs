//! mcpgw-conformance-fixture: a clean-room MCP server with the tools, resources and prompts that
//! the official conformance suite's server scenarios (`@modelcontextprotocol/conformance`) call.
//!
//! The names and behaviours follow the scenario descriptions the suite prints
//! (`conformance list --server` and each scenario's requirements); the code is ours, on rmcp.
//! `tests/it/conformance.rs` runs the suite against it directly over HTTP and through the
//! gateway (as a stdio backend) and compares the two.
//!
//! Flags (hand-parsed, anything else exits 2):
//!   --stdio              serve one client on stdin/stdout (a gateway backend); the default
//!   --http ADDR          serve Streamable HTTP at `http://ADDR/mcp` (port 0 picks one); prints
//!                        `listening on http://HOST:PORT/mcp` to stderr once it accepts
//!   --marker STRING      ignored; lets tests find their processes by command line

mod http;
mod prompts;
mod resources;
mod server;
mod tools;

use rmcp::ServiceExt;

enum Mode {
    Stdio,
    Http(String),
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Mode, String> {
    let mut mode = Mode::Stdio;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--stdio" => mode = Mode::Stdio,
            "--http" => mode = Mode::Http(value()?),
            "--marker" => {
                value()?;
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(mode)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mode = match parse_args(std::env::args().skip(1)) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("mcpgw-conformance-fixture: {e}");
            std::process::exit(2);
        }
    };
    match mode {
        Mode::Stdio => {
            let service = server::Conformance::new(None)
                .serve(rmcp::transport::stdio())
                .await?;
            service.waiting().await?;
        }
        Mode::Http(addr) => http::serve(&addr).await?,
    }
    Ok(())
}
