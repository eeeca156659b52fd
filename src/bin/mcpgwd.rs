//! `mcpgwd`: the mcpgw daemon. Parses arguments (`mcpgw::cli::mcpgwd`, which `mcpgwctl man` renders
//! too), sets up logging, and runs the gateway.

use std::process::ExitCode;

use clap::Parser;
use mcpgw::cli::mcpgwd::{Args, EXIT_CONFIG};

fn main() -> ExitCode {
    let args = Args::parse();
    init_logging();
    let config_path = match mcpgw::config::discover(args.config.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("mcpgwd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // First thing said: which file this daemon serves, and whether it came from the directory
    // it was started in (only ever for a daemon a person starts: the shim names its config).
    let absolute = std::path::absolute(&config_path).unwrap_or_else(|_| config_path.clone());
    let named = args.config.is_some()
        || std::env::var_os(mcpgw::paths::CONFIG_ENV).is_some_and(|v| !v.is_empty());
    let origin = if config_path.is_relative() && !named {
        " (found in the working directory)"
    } else {
        ""
    };
    tracing::info!(
        "mcpgwd {} serving {}{origin}",
        env!("CARGO_PKG_VERSION"),
        absolute.display()
    );
    let options = mcpgw::daemon::Options {
        config_path,
        socket: mcpgw::paths::resolve_socket(args.socket.as_deref()),
        cache_dir: mcpgw::daemon::default_cache_dir(),
        state_dir: mcpgw::daemon::default_state_dir(),
        tools: mcpgw::tools::Tools::new(),
    };
    // One thread: the daemon's work per message is small and mostly waiting; a second worker
    // only adds cross-thread wake-ups (measured: most of the daemon's CPU was kernel time in
    // futex and scheduling). It also keeps every backend spawned from the main thread, which
    // is what PR_SET_PDEATHSIG ties the child's life to.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcpgwd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcpgw::daemon::run(
        options,
        mcpgw::daemon::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcpgwd: {e:#}");
            if e.downcast_ref::<mcpgw::daemon::ConfigInvalid>().is_some() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs fit where they go: colour only on a terminal (the autostart log and the journal show
/// escapes raw), no timestamps of ours in the journal (it has its own). The MCP SDK's records
/// of every session (its handshake, with the client's capabilities, and its end) are routine:
/// at `info` only when `MCPGW_LOG` asks for them.
fn init_logging() {
    use std::io::IsTerminal;
    let journal = mcpgw::daemon::stderr_is_journal();
    let filter = tracing_subscriber::EnvFilter::try_from_env("MCPGW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(mcpgw::daemon::DEFAULT_LOG));
    let logs = tracing_subscriber::fmt()
        .with_writer(mcpgw::daemon::LogWriter)
        .with_ansi(std::io::stderr().is_terminal() && !journal)
        .with_env_filter(filter);
    if journal {
        logs.without_time().init();
    } else {
        logs.init();
    }
}
