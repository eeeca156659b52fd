//! `mcpgwd`'s arguments: parsed by the daemon's binary, rendered by `mcpgwctl man`.

use std::path::PathBuf;

/// One MCP gateway per user: owns every configured MCP server and shares it with all clients.
///
/// Runs in the foreground, logging to stderr, and serves MCP clients on its socket (through
/// mcpgw-shim) and, with an `http` section in the config, over HTTP. It re-reads the config
/// when the file changes, on SIGHUP and on `mcpgwctl reload`; a rejected edit leaves the old
/// config live.
#[derive(clap::Parser, Debug)]
#[command(name = "mcpgwd", version)]
pub struct Args {
    /// Config file (default: $MCPGW_CONFIG, ./gateway.yaml, ./mcp-gateway.yaml,
    /// ~/.config/mcpgw/gateway.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Socket to listen on (default: $MCPGW_SOCKET, else $XDG_RUNTIME_DIR/mcpgw/mcpgw.sock).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// Exit code for an unusable config (sysexits EX_USAGE-style, as in watchexec/linkerd).
pub const EXIT_CONFIG: u8 = 64;

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_valid_and_named_for_its_binary() {
        // The derive would name it after the package (`mcpgw`), which is no binary.
        let command = super::Args::command();
        command.clone().debug_assert();
        assert_eq!(command.get_name(), "mcpgwd");
    }
}
