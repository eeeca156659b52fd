//! mcpgw-bench: every figure of the performance issue in one run, side by side with direct
//! connections and the physical floor, as markdown tables (or `--json`), and the daemon's memory
//! while clients and backends abuse it.
//!
//! It drives the shipped binaries from outside (`mcpgwd`, `mcpgw-shim`, `mcpgwctl`, the
//! `mcpgw-fixture` backend and this crate's `mcpgw-relay` floor), each figure in its own
//! isolated temp world. See BENCHMARKS.md for what each figure means.
//!
//! ```text
//! cargo build --release --workspace && target/release/mcpgw-bench [--smoke] [--only FIGURE] [--json]
//! ```

mod clients;
mod figures;
mod proc;
mod report;
mod stats;
mod world;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use serde_json::json;

use report::{Report, Section};
use world::Bins;

/// Benchmarks the mcpgw gateway against direct connections and a two-process byte relay.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Directory of mcpgwd, mcpgw-shim, mcpgwctl, mcpgw-fixture and mcpgw-relay
    /// (default: the directory of this executable).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Every figure with tiny counts (seconds): shows that the bench runs, measures nothing.
    #[arg(long)]
    smoke: bool,
    /// Run only this figure (repeatable).
    #[arg(long, value_enum)]
    only: Vec<Figure>,
    /// Print one JSON document instead of markdown.
    #[arg(long)]
    json: bool,
    /// node_modules holding @modelcontextprotocol/server-filesystem, for the realistic memory
    /// figure (default: tests/npm/node_modules of this source tree).
    #[arg(long)]
    npm_dir: Option<PathBuf>,
    /// Small-payload calls per run and path in the latency figure (default 2000; 20 with
    /// --smoke).
    #[arg(long)]
    calls: Option<usize>,
    /// Size of the big payload in bytes (default 8 MiB; 256 KiB with --smoke).
    #[arg(long)]
    big_bytes: Option<usize>,
    /// Do not measure the daemon's HTTP endpoint (e.g. to profile the shim path alone).
    #[arg(long)]
    no_http: bool,
    /// Prefix the daemon's command line with this command (split at spaces), e.g.
    /// "valgrind --tool=callgrind" to count its instructions.
    #[arg(long)]
    wrap_daemon: Option<String>,
    /// mcp-unify 0.2.0's `mcp-gateway` console script, for the plugins figure's comparison
    /// (`pip install mcp-unify==0.2.0 'mcp<2'` in a venv).
    #[arg(long)]
    mcp_unify: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Figure {
    #[value(alias = "1")]
    Latency,
    #[value(alias = "2")]
    Throughput,
    #[value(alias = "3")]
    ColdStart,
    #[value(alias = "4")]
    Memory,
    #[value(alias = "5")]
    Reload,
    #[value(alias = "6")]
    Scale,
    #[value(alias = "7")]
    Bounds,
    #[value(alias = "8")]
    Plugins,
}

const ALL: [Figure; 8] = [
    Figure::Latency,
    Figure::Throughput,
    Figure::ColdStart,
    Figure::Memory,
    Figure::Reload,
    Figure::Scale,
    Figure::Bounds,
    Figure::Plugins,
];

/// Counts and sizes of one run: the full run, or the smoke pass.
pub struct Params {
    pub smoke: bool,
    /// Latency: repeated runs, calls per run and path, warm-up calls per path.
    pub rounds: usize,
    pub small_calls: usize,
    pub warmup: usize,
    pub big_bytes: usize,
    pub big_calls: usize,
    /// Throughput: concurrent sessions, seconds per measurement, repeated runs.
    pub sessions: Vec<usize>,
    pub throughput_secs: f64,
    pub throughput_rounds: usize,
    /// Cold start: configured servers, measured starts per count.
    pub cold_servers: Vec<usize>,
    pub cold_runs: usize,
    /// Memory: connected sessions.
    pub memory_sessions: Vec<usize>,
    /// Reload: reloads and calling sessions.
    pub reloads: usize,
    pub reload_sessions: usize,
    /// Scale: backends, tools per backend, measured lists and calls.
    pub scale_servers: usize,
    pub scale_tools: usize,
    pub scale_runs: usize,
    /// Bounds: `tools/call`s of 8 MiB answers a client sends and never reads (how many such
    /// clients at once in the last scenario, if more than 1, and whether one is part of "all at
    /// once"), MiB a backend
    /// writes without a newline (stdout, then stderr), idle HTTP connections, how long those
    /// stay open, and the flooding server's `max_message` (None: the default, 64 MiB).
    pub bounds_unread_calls: usize,
    pub bounds_unread_sessions: usize,
    pub bounds_unread_together: bool,
    pub bounds_flood_mib: usize,
    pub bounds_http_connections: usize,
    pub bounds_hold_secs: f64,
    pub bounds_max_message: Option<&'static str>,
}

impl Params {
    fn full() -> Self {
        Self {
            smoke: false,
            rounds: 5,
            small_calls: 2000,
            warmup: 300,
            big_bytes: 8 << 20,
            big_calls: 10,
            sessions: vec![1, 8, 64],
            throughput_secs: 2.0,
            throughput_rounds: 3,
            cold_servers: vec![3, 20, 100],
            cold_runs: 30,
            memory_sessions: vec![1, 100, 500],
            reloads: 20,
            reload_sessions: 8,
            scale_servers: 100,
            scale_tools: 50,
            scale_runs: 30,
            bounds_unread_calls: 48,
            bounds_unread_sessions: 4,
            bounds_unread_together: true,
            bounds_flood_mib: 1024,
            bounds_http_connections: 1000,
            bounds_hold_secs: 3.0,
            bounds_max_message: None,
        }
    }

    fn smoke() -> Self {
        Self {
            smoke: true,
            rounds: 2,
            small_calls: 20,
            warmup: 5,
            big_bytes: 256 << 10,
            big_calls: 2,
            sessions: vec![1, 4],
            throughput_secs: 0.2,
            throughput_rounds: 1,
            cold_servers: vec![3, 8],
            cold_runs: 3,
            memory_sessions: vec![1, 10, 20],
            reloads: 3,
            reload_sessions: 2,
            scale_servers: 8,
            scale_tools: 50,
            scale_runs: 3,
            // 160 MiB of answers: past the queue's 128 MiB hard bound, which no option lowers
            // (fewer would sit in the queue). It takes seconds in a debug build, so the smoke
            // pass does it once only.
            bounds_unread_calls: 20,
            bounds_unread_sessions: 1,
            bounds_unread_together: false,
            bounds_flood_mib: 8,
            bounds_http_connections: 40,
            bounds_hold_secs: 0.3,
            bounds_max_message: Some("1MiB"),
        }
    }
}

/// What every figure gets.
pub struct Ctx {
    pub bins: Arc<Bins>,
    pub p: Params,
    /// Whether to measure the HTTP endpoint when the daemon offers one.
    pub http: bool,
    pub npm_dir: PathBuf,
    /// mcp-unify's console script, if given.
    pub mcp_unify: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let wrapper: Vec<String> = args
        .wrap_daemon
        .iter()
        .flat_map(|w| w.split_whitespace())
        .map(str::to_owned)
        .collect();
    let bins = match Bins::locate(args.bin_dir, wrapper) {
        Ok(bins) => Arc::new(bins),
        Err(e) => {
            eprintln!("mcpgw-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    proc::raise_fd_limit();
    // Whichever TLS features the workspace build unified into reqwest, give it a provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut p = if args.smoke {
        Params::smoke()
    } else {
        Params::full()
    };
    if let Some(calls) = args.calls {
        p.small_calls = calls;
    }
    if let Some(bytes) = args.big_bytes {
        p.big_bytes = bytes;
    }
    let ctx = Ctx {
        bins,
        p,
        http: !args.no_http,
        mcp_unify: args.mcp_unify,
        npm_dir: args.npm_dir.unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/npm/node_modules"
            ))
        }),
    };
    let figures: Vec<Figure> = if args.only.is_empty() {
        ALL.to_vec()
    } else {
        ALL.into_iter().filter(|f| args.only.contains(f)).collect()
    };
    let load_before = loadavg();
    let mut sections = Vec::new();
    let mut failed = false;
    for figure in figures {
        let (id, title) = figures::describe(figure);
        eprintln!("mcpgw-bench: {title}");
        let started = std::time::Instant::now();
        let section = match figures::run(figure, &ctx).await {
            Ok(section) => section,
            Err(e) => {
                eprintln!("mcpgw-bench: {title} failed: {e:#}");
                failed = true;
                let mut section = Section::new(id, title);
                section.notes.push(format!("**failed**: {e:#}"));
                section.data = json!({ "error": format!("{e:#}") });
                section
            }
        };
        eprintln!("  ({:.1} s)", started.elapsed().as_secs_f64());
        sections.push(section);
    }
    let report = Report {
        smoke: ctx.p.smoke,
        machine: machine(&ctx, &load_before, &loadavg()),
        sections,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serializes")
        );
    } else {
        print!("{}", report.markdown());
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The machine the numbers were taken on, with the load average before and after (a load
/// near the core count means other work shared the cores and the numbers are noisy).
fn machine(ctx: &Ctx, load_before: &str, load_after: &str) -> serde_json::Value {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let build = if ctx.bins.is_debug() {
        "debug"
    } else {
        "release"
    };
    json!({
        "cores": cores,
        "cpu": cpu,
        "build": build,
        "bin_dir": ctx.bins.dir().display().to_string(),
        "load_before": load_before,
        "load_after": load_after,
        "summary": format!(
            "{cores} cores ({cpu}), {build} binaries, 1-min load average {load_before} before / {load_after} after"
        ),
    })
}
