//! Figure 5: reloading the config while sessions call through the gateway.
//!
//! N sessions call `fx_echo` back to back. Each of the reloads saves a changed config (a new role,
//! so the table changes while the called backend is carried over) and measures the time from the
//! save to the new generation being live (polled over a control connection every millisecond),
//! then runs `mcpgwctl reload` and measures its round trip (which includes starting mcpgwctl).
//! Every failed call is counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::one_fixture_config;
use crate::Ctx;
use crate::clients;
use crate::report::{Section, Table, us};
use crate::stats::Samples;
use crate::world::World;

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "reload")?;
    let base = one_fixture_config(&world, &[]);
    let config = |i: usize| format!("{base}roles:\n  bench{i}: [\"fx_*\"]\n  admin: null\n");
    world.write_config(&config(0))?;
    let daemon = world.start_daemon()?;
    let mut control = world.control()?;

    let mut sessions = Vec::new();
    for _ in 0..p.reload_sessions {
        let (client, _) = clients::spawn(world.shim_command()).await?;
        clients::call(client.peer(), clients::echo("fx_echo", "warm")).await?;
        sessions.push(client);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client in &sessions {
        let (peer, stop) = (client.peer().clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, Vec::new());
            let mut latency = Samples::default();
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                match clients::call(&peer, clients::echo("fx_echo", "reload")).await {
                    Ok(_) => {
                        ok += 1;
                        latency.push(start.elapsed());
                    }
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed, latency)
        }));
    }
    // Let the load reach a steady state.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let (mut save_to_live, mut ctl_reload) = (Samples::default(), Samples::default());
    let window = Instant::now();
    for i in 1..=p.reloads {
        let before = control.generation()?;
        world.write_config(&config(i))?;
        let saved = Instant::now();
        loop {
            if control.generation()? > before {
                save_to_live.push(saved.elapsed());
                break;
            }
            if saved.elapsed() > Duration::from_secs(10) {
                bail!(
                    "reload {i}: the saved config never went live:\n{}",
                    daemon.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Let the watcher's debounce pass so the explicit reload stands alone.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let before = control.generation()?;
        let start = Instant::now();
        let out = world.ctl(&["reload"])?;
        ctl_reload.push(start.elapsed());
        if !out.status.success() {
            bail!(
                "mcpgwctl reload failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        if control.generation()? <= before {
            bail!("mcpgwctl reload returned before a new generation was live");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let window = window.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed, mut latencies) = (0, Vec::new(), Vec::new());
    for task in tasks {
        let (o, f, l) = task.await?;
        ok += o;
        failed.extend(f);
        latencies.push(l);
    }
    for client in sessions {
        let _ = client.cancel().await;
    }
    let generation = control.generation()?;
    drop(control);
    daemon.stop()?;

    let call_p99 = latencies
        .iter()
        .map(|l| l.percentile(99.0))
        .fold(0.0, f64::max);
    let call_max = latencies.iter().map(Samples::max).fold(0.0, f64::max);
    let mut table = Table::new(&["measure", "p50", "max"]);
    table.row(vec![
        "config saved → new generation live".into(),
        us(save_to_live.percentile(50.0)),
        us(save_to_live.max()),
    ]);
    table.row(vec![
        "`mcpgwctl reload` round trip (incl. process start)".into(),
        us(ctl_reload.percentile(50.0)),
        us(ctl_reload.max()),
    ]);
    let call_p50 = {
        let all: Vec<f64> = latencies.iter().map(|l| l.percentile(50.0)).collect();
        crate::stats::median(&all)
    };
    table.row(vec![
        format!(
            "call latency during reloads (p99 column: worst session's p99 {})",
            us(call_p99)
        ),
        us(call_p50),
        us(call_max),
    ]);
    section.tables.push(table);
    section.note(format!(
        "{} sessions called continuously for {:.1} s through {} saved-file reloads and {} `mcpgwctl \
         reload`s (generation {} at the end): {} calls succeeded, {} failed.",
        p.reload_sessions,
        window.as_secs_f64(),
        p.reloads,
        p.reloads,
        generation,
        ok,
        failed.len()
    ));
    if let Some(first) = failed.first() {
        section.note(format!("first failure: {first}"));
    }
    let live = save_to_live.percentile(50.0);
    section.target(
        "reload live (config saved → new table live) ≤ 300 ms",
        format!("{} (max {})", us(live), us(save_to_live.max())),
        Some(live <= 300_000.0),
    );
    section.target(
        "0 failed calls during reloads",
        format!("{} of {}", failed.len(), ok + failed.len() as u64),
        Some(failed.is_empty()),
    );
    section.data = json!({
        "save_to_live_p50_us": live,
        "save_to_live_max_us": save_to_live.max(),
        "ctl_reload_p50_us": ctl_reload.percentile(50.0),
        "ctl_reload_max_us": ctl_reload.max(),
        "calls_ok": ok,
        "calls_failed": failed.len(),
        "call_p50_us": call_p50,
        "call_max_us": call_max,
        "generation": generation,
    });
    Ok(())
}
