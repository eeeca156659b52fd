//! Figure 8: what a trivial tool of one's own costs per call, by the way it is written.
//!
//! Each route is a warm rmcp client making sequential calls of a tool that returns (or
//! counts) the text it is given; the routes take turns round by round. The baseline is the
//! fixture's `echo` with the client spawning the fixture itself (no gateway); beside it, the
//! same `echo` as a backend behind the shim, a Python plugin function behind the shim (mcpgw's
//! plugin host), a Rust tool in the daemon's own process behind the shim (`examples/embed`,
//! when built), and the same Python function as a plugin of mcp-unify 0.2.0, the gateway mcpgw
//! replaces, spawned by the client over stdio (with `--mcp-unify`).

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

use super::wait_until;
use crate::Ctx;
use crate::clients::{self, Client};
use crate::report::{Section, Table, us, us_signed};
use crate::stats::{Latency, Samples};
use crate::world::World;

/// The plugin module, as a mcp-unify user writes it.
const PLUGIN: &str = r#"from mcp_gateway import tool

@tool(description="Echoes its text")
def echo(text: str) -> str:
    return text
"#;

struct Route {
    key: &'static str,
    label: &'static str,
    client: Client,
    tool: &'static str,
}

/// A process the figure started besides the daemon; killed on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "plugins")?;
    std::fs::write(world.path("bench_tools.py"), PLUGIN)?;
    world.write_config(&format!(
        "idle_timeout: 0\nservers:\n{}plugins:\n  - module: bench_tools\n",
        world.fixture_server("fx", &[])
    ))?;
    let daemon = world.start_daemon()?;

    let mut routes = Vec::new();
    let (direct, _) = clients::spawn(clients::fixture_command(
        &ctx.bins.path("mcpgw-fixture"),
        &world.fixture_args("direct", &[]),
    ))
    .await?;
    routes.push(Route {
        key: "direct",
        label: "fixture `echo`, direct (client spawns it)",
        client: direct,
        tool: "echo",
    });
    let (shim, _) = clients::spawn(world.shim_command()).await?;
    routes.push(Route {
        key: "backend",
        label: "fixture `echo` as a backend, shim",
        client: shim,
        tool: "fx_echo",
    });
    let (shim, _) = clients::spawn(world.shim_command()).await?;
    routes.push(Route {
        key: "python",
        label: "Python plugin `echo` (plugin host), shim",
        client: shim,
        tool: "echo",
    });

    let embed = ctx.bins.dir().join("examples").join("embed");
    let _embedded = if embed.is_file() {
        let (guard, socket) = embedding_daemon(&world, &embed).await?;
        let mut shim = tokio::process::Command::from(world.command(&ctx.bins.path("mcpgw-shim")));
        shim.arg("--socket").arg(&socket).arg("--no-autostart");
        let (client, _) = clients::spawn(shim).await?;
        routes.push(Route {
            key: "rust",
            label: "Rust tool `word_count` (in the daemon), shim",
            client,
            tool: "word_count",
        });
        Some(guard)
    } else {
        section.note(format!(
            "Rust tool row not measured: {} is not built (`cargo build --release --examples`).",
            embed.display()
        ));
        None
    };

    match &ctx.mcp_unify {
        Some(program) => {
            let (client, _) = clients::spawn(mcp_unify(&world, program)?).await?;
            routes.push(Route {
                key: "mcp-unify",
                label: "Python plugin `echo`, mcp-unify 0.2.0 (client spawns it)",
                client,
                tool: "echo",
            });
        }
        None => section.note(
            "mcp-unify row not measured: pass `--mcp-unify PATH/TO/mcp-gateway` (its console \
             script, from `pip install mcp-unify==0.2.0 'mcp<2'`).",
        ),
    }

    let text = "hello, mcpgw";
    for route in &routes {
        // The first call starts what the route's tool runs in; then the warm-up.
        let result = clients::call(route.client.peer(), clients::echo(route.tool, text)).await?;
        let right = match route.key {
            "rust" => result.structured_content == Some(json!({ "words": 2 })),
            // mcp-unify answers a `{"_tool", "_ms"}` block, then `{"result": …}`.
            "mcp-unify" => result
                .content
                .iter()
                .any(|c| c.as_text().is_some_and(|t| t.text.contains(text))),
            _ => clients::text_of(&result) == text,
        };
        if !right {
            bail!(
                "{}: `{}` answered {:?}",
                route.key,
                route.tool,
                result.content
            );
        }
        for _ in 0..p.warmup {
            clients::call(route.client.peer(), clients::echo(route.tool, text)).await?;
        }
    }
    let measured = measure(&routes, p.rounds, p.small_calls, text).await?;
    let labels: Vec<(&str, &str)> = routes.iter().map(|r| (r.key, r.label)).collect();
    for route in routes {
        let _ = route.client.cancel().await;
    }
    daemon.stop()?;

    let direct = measured[0];
    let mut table = Table::new(&["tool", "p50", "p99", "added p50 vs direct"]);
    for ((key, label), l) in labels.iter().zip(&measured) {
        table.row(vec![
            (*label).to_owned(),
            us(l.p50_us),
            us(l.p99_us),
            if *key == "direct" {
                "–".into()
            } else {
                us_signed(l.p50_us - direct.p50_us)
            },
        ]);
    }
    section.tables.push(table);
    let p50 = |key: &str| {
        labels
            .iter()
            .position(|(k, _)| *k == key)
            .map(|i| measured[i].p50_us)
    };
    let (python, backend) = (p50("python"), p50("backend"));
    // A p50 no larger than another's, when both were measured.
    let at_most = |section: &mut Section,
                   target: &str,
                   ours: Option<f64>,
                   theirs: Option<f64>,
                   missing: &str| {
        match (ours, theirs) {
            (Some(ours), Some(theirs)) => section.target(
                target,
                format!("{} vs {}", us(ours), us(theirs)),
                Some(ours <= theirs),
            ),
            _ => section.target(target, missing.into(), None),
        }
    };
    at_most(
        section,
        "Python plugin through the shim: p50 ≤ mcp-unify's in-process plugin, spawned directly",
        python,
        p50("mcp-unify"),
        "mcp-unify not measured",
    );
    at_most(
        section,
        "Rust tool in the daemon: p50 ≤ a backend's echo (both through the shim)",
        p50("rust"),
        backend,
        "Rust tool not measured",
    );
    section.note(format!(
        "{} runs × {} sequential calls per route, after {} warm-up calls; p50 and p99 are each \
         run's, then the median over runs. Every tool answers a {}-byte text (`word_count` \
         counts its words).",
        p.rounds,
        p.small_calls,
        p.warmup,
        text.len()
    ));
    section.data = labels
        .iter()
        .zip(&measured)
        .map(|((key, _), l)| ((*key).to_owned(), json!(l)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    Ok(())
}

/// `examples/embed` on this world's config, on a socket of its own.
async fn embedding_daemon(world: &World, program: &Path) -> Result<(Guard, PathBuf)> {
    // In a directory of its own, which the daemon makes private as it does its socket's.
    let socket = world.path("runtime/embed/embed.sock");
    let log = world.path("embed.log");
    let child = world
        .command(program)
        .arg("--config")
        .arg(world.config_path())
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?)
        .spawn()
        .context("spawning examples/embed")?;
    let guard = Guard(child);
    let up = wait_until(
        "the embedding daemon's socket",
        Duration::from_secs(30),
        || std::os::unix::net::UnixStream::connect(&socket).is_ok(),
    )
    .await;
    if let Err(e) = up {
        let said = std::fs::read_to_string(&log).unwrap_or_default();
        bail!("{e}; its log:\n{said}");
    }
    Ok((guard, socket))
}

/// mcp-unify's `stdio` command on a config with the plugin (found through `PYTHONPATH`: its
/// console script's directory, not ours, is first on its import path).
fn mcp_unify(world: &World, program: &Path) -> Result<tokio::process::Command> {
    let config = world.path("mcp-unify.yaml");
    std::fs::write(&config, "plugins:\n  - module: bench_tools\n")?;
    let mut cmd = tokio::process::Command::from(world.command(program));
    cmd.arg("stdio")
        .arg("--config")
        .arg(&config)
        .env("PYTHONPATH", world.path(""));
    Ok(cmd)
}

/// `rounds` runs of `calls` sequential calls per route, the routes taking turns.
async fn measure(
    routes: &[Route],
    rounds: usize,
    calls: usize,
    text: &str,
) -> Result<Vec<Latency>> {
    let mut runs: Vec<Vec<Samples>> = vec![Vec::new(); routes.len()];
    for round in 0..rounds {
        for i in 0..routes.len() {
            let index = (i + round) % routes.len();
            let route = &routes[index];
            let mut samples = Samples::default();
            for _ in 0..calls {
                let params: CallToolRequestParams = clients::echo(route.tool, text);
                samples.push(clients::timed_call(route.client.peer(), params).await?);
            }
            runs[index].push(samples);
        }
    }
    Ok(runs.iter().map(|r| Latency::of_runs(r)).collect())
}
