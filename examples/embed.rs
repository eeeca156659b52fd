//! A daemon with a tool of its own: mcpgw embedded in a Rust program that adds `word_count`,
//! served in the daemon's process beside every server of the config (no IPC, no server to
//! write). Run it as you would run `mcpgwd`:
//!
//! ```sh
//! cargo run --example embed -- --config gateway.yaml
//! ```
//!
//! Clients reach it through `mcpgw-shim` (which finds it on the usual socket) or over HTTP,
//! and see `word_count` next to the servers' tools.

use std::path::PathBuf;
use std::process::ExitCode;

use mcpgw::tools::Tools;

/// The tool's arguments: their JSON Schema (what clients are shown) comes from this type, the
/// doc comments becoming the descriptions.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct WordCount {
    /// The text whose words to count.
    text: String,
    /// Count only words at least this long (default: every word).
    #[serde(default)]
    min_length: usize,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(mcpgw::daemon::LogWriter)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPGW_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let (mut config, mut socket) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" => config = args.next().map(PathBuf::from),
            "--socket" => socket = args.next().map(PathBuf::from),
            other => {
                eprintln!(
                    "embed: unknown argument `{other}` (expected --config FILE, --socket PATH)"
                );
                return ExitCode::from(2);
            }
        }
    }
    let config_path = match mcpgw::config::discover(config.as_deref()) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("embed: {e}");
            return ExitCode::from(64);
        }
    };

    let mut tools = Tools::new();
    tools.add_typed(
        "word_count",
        "Counts the words of a text",
        |args: WordCount| async move {
            let words = args
                .text
                .split_whitespace()
                .filter(|word| word.chars().count() >= args.min_length)
                .count();
            Ok(serde_json::json!({ "words": words }))
        },
    );

    let options = mcpgw::daemon::Options {
        config_path,
        socket: mcpgw::paths::resolve_socket(socket.as_deref()),
        cache_dir: mcpgw::daemon::default_cache_dir(),
        state_dir: mcpgw::daemon::default_state_dir(),
        tools,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(mcpgw::daemon::run(
        options,
        mcpgw::daemon::shutdown_signal(),
    )) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("embed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
