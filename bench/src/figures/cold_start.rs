//! Figure 3: a new client session, from spawning the shim to `tools/list` answered, with a warm
//! schema cache and a running daemon, for 3, 20 and 100 configured servers; no backend may start.
//!
//! The cache is warmed the way a user's is: the daemon runs once, a client lists (which
//! discovers every server), the daemon stops. Then for each server count a fresh daemon serves
//! from the cache alone, and the fixtures' processes are counted by their marker argument.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::wait_until;
use crate::Ctx;
use crate::clients;
use crate::report::{Section, Table, us};
use crate::stats::Samples;
use crate::world::World;

/// Tools the fixture serves by default.
const FIXTURE_TOOLS: usize = 13;

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "cold")?;
    let max = p.cold_servers.iter().copied().max().unwrap_or(0);
    let entries: Vec<String> = (0..max)
        .map(|i| world.fixture_server(&format!("s{i:03}"), &[]))
        .collect();
    let config = |n: usize| format!("idle_timeout: 300\nservers:\n{}", entries[..n].concat());

    // Warm the schema cache: one discovery pass over every server.
    world.write_config(&config(max))?;
    let daemon = world.start_daemon()?;
    let (client, _) = clients::spawn(world.shim_command()).await?;
    let listed = client.peer().list_all_tools().await?.len();
    if listed < max * FIXTURE_TOOLS {
        bail!("discovery listed {listed} tools for {max} servers");
    }
    let _ = client.cancel().await;
    daemon.stop()?;
    wait_until(
        "the discovered backends to stop",
        Duration::from_secs(30),
        || world.backend_pids().is_empty(),
    )
    .await?;

    // Reference: a client spawning one fixture itself, initialize + tools/list.
    let mut direct = Samples::default();
    let fixture = ctx.bins.path("mcpgw-fixture");
    let args = world.fixture_args("direct", &[]);
    for run in 0..=p.cold_runs {
        let start = Instant::now();
        let (client, _) = clients::spawn(clients::fixture_command(&fixture, &args)).await?;
        client.peer().list_all_tools().await?;
        if run > 0 {
            direct.push(start.elapsed());
        }
        let _ = client.cancel().await;
    }

    let mut table = Table::new(&[
        "configured servers",
        "tools listed",
        "initialize answered, p50",
        "tools/list answered, p50",
        "tools/list answered, p99",
        "backends started",
    ]);
    table.row(vec![
        "(direct: client spawns 1 fixture)".into(),
        FIXTURE_TOOLS.to_string(),
        "–".into(),
        us(direct.percentile(50.0)),
        us(direct.percentile(99.0)),
        "1 (its own)".into(),
    ]);
    let mut data = Vec::new();
    let mut started_total = 0;
    for &n in &p.cold_servers {
        world.write_config(&config(n))?;
        let daemon = world.start_daemon()?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = world.backend_pids().len();
        let (mut init, mut list) = (Samples::default(), Samples::default());
        let mut tools = 0;
        // The first session is a warm-up (page cache, the daemon's first allocations).
        for run in 0..=p.cold_runs {
            let start = Instant::now();
            let (client, _) = clients::spawn(world.shim_command()).await?;
            let initialized = start.elapsed();
            tools = client.peer().list_all_tools().await?.len();
            let listed = start.elapsed();
            if run > 0 {
                init.push(initialized);
                list.push(listed);
            }
            let _ = client.cancel().await;
        }
        if tools < n * FIXTURE_TOOLS {
            bail!("{n} servers listed only {tools} tools: the cache was not used");
        }
        let started = world.backend_pids().len().saturating_sub(before);
        started_total += started;
        daemon.stop()?;
        table.row(vec![
            n.to_string(),
            tools.to_string(),
            us(init.percentile(50.0)),
            us(list.percentile(50.0)),
            us(list.percentile(99.0)),
            started.to_string(),
        ]);
        if n == 20 || (p.smoke && n == max) {
            let p50 = list.percentile(50.0);
            section.target(
                &format!("shim spawn → tools/list answered, warm cache, {n} servers ≤ 10 ms"),
                us(p50),
                Some(p50 <= 10_000.0),
            );
        }
        data.push(json!({
            "servers": n,
            "tools": tools,
            "initialize_p50_us": init.percentile(50.0),
            "list_p50_us": list.percentile(50.0),
            "list_p99_us": list.percentile(99.0),
            "backends_started": started,
        }));
    }
    // The first session of the day: no daemon yet, the shim starts one.
    let n = p.cold_servers.get(1).copied().unwrap_or(max);
    world.write_config(&config(n))?;
    let mut autostart = Samples::default();
    let mut autostart_started = 0;
    for _ in 0..p.cold_runs.min(5) {
        let mut cmd = world.command(&ctx.bins.path("mcpgw-shim"));
        cmd.arg("--socket")
            .arg(world.socket())
            .arg("--config")
            .arg(world.config_path());
        let start = Instant::now();
        let (client, _) = clients::spawn(tokio::process::Command::from(cmd)).await?;
        client.peer().list_all_tools().await?;
        autostart.push(start.elapsed());
        autostart_started = autostart_started.max(world.backend_pids().len());
        let _ = client.cancel().await;
        let out = world.ctl(&["stop"])?;
        if !out.status.success() {
            bail!("mcpgwctl stop: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    table.row(vec![
        format!("{n}, no daemon running (shim autostarts it)"),
        "–".into(),
        "–".into(),
        us(autostart.percentile(50.0)),
        us(autostart.max()),
        autostart_started.to_string(),
    ]);
    started_total += autostart_started;
    section.target(
        "cold start starts 0 backends",
        started_total.to_string(),
        Some(started_total == 0),
    );
    section.tables.push(table);
    section.note(format!(
        "Each row: {} sessions after one warm-up; the daemon runs (except the autostart row, \
         {} runs, p99 column = max). Times include the rmcp client's own work (spawn, \
         handshake, decoding the list), as a real client's would; the direct row is the same \
         client against one fixture it spawns.",
        p.cold_runs,
        autostart.len()
    ));
    section.data = json!({
        "direct_p50_us": direct.percentile(50.0),
        "rows": data,
        "autostart_p50_us": autostart.percentile(50.0),
        "backends_started": started_total,
    });
    Ok(())
}
