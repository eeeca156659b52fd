//! Figure 2: calls per second with N concurrent client sessions sharing one backend.
//!
//! Each session keeps one `echo` call in flight, back to back, for a fixed time. The baseline
//! ("direct") is what the gateway replaces for the *same* sharing: one direct connection to one
//! fixture process carrying N concurrent in-flight calls. N clients that each spawn their own
//! backend would measure N backends, not the cost of sharing one, so they are not the baseline.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use rmcp::service::{Peer, RoleClient};
use serde_json::json;

use super::one_fixture_config;
use crate::Ctx;
use crate::clients::{self, Client};
use crate::report::{Section, Table, percent};
use crate::stats::median;
use crate::world::World;

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "throughput")?;
    let fixture_args = world.fixture_args("fx", &[]);
    let (daemon, url) = if ctx.http {
        world.start_daemon_with_http(&one_fixture_config(&world, &[]))?
    } else {
        world.write_config(&one_fixture_config(&world, &[]))?;
        (world.start_daemon()?, None)
    };
    match (&url, ctx.http) {
        (Some(_), _) => {}
        (None, true) => {
            section.note("HTTP columns not measured: this mcpgwd does not serve `http:` yet.")
        }
        (None, false) => section.note("HTTP columns not measured (--no-http)."),
    }
    let (direct, _) = clients::spawn(clients::fixture_command(
        &ctx.bins.path("mcpgw-fixture"),
        &fixture_args,
    ))
    .await?;
    let duration = Duration::from_secs_f64(p.throughput_secs);

    let mut table = Table::new(&[
        "sessions",
        "direct calls/s",
        "shim calls/s",
        "shim ÷ direct",
        "HTTP calls/s",
        "HTTP ÷ direct",
    ]);
    let mut data = Vec::new();
    for &n in &p.sessions {
        let mut shims: Vec<Client> = Vec::with_capacity(n);
        for _ in 0..n {
            shims.push(clients::spawn(world.shim_command()).await?.0);
        }
        let mut https: Vec<Client> = Vec::new();
        if let Some(url) = &url {
            for _ in 0..n {
                https.push(clients::http(url).await?);
            }
        }
        let direct_peers: Vec<Peer<RoleClient>> = (0..n).map(|_| direct.peer().clone()).collect();
        let shim_peers: Vec<Peer<RoleClient>> = shims.iter().map(|c| c.peer().clone()).collect();
        let http_peers: Vec<Peer<RoleClient>> = https.iter().map(|c| c.peer().clone()).collect();
        // Warm every session.
        rate(&direct_peers, "echo", Duration::from_millis(50)).await?;
        rate(&shim_peers, "fx_echo", Duration::from_millis(50)).await?;
        if !http_peers.is_empty() {
            rate(&http_peers, "fx_echo", Duration::from_millis(50)).await?;
        }
        let (mut d, mut s, mut h) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..p.throughput_rounds {
            d.push(rate(&direct_peers, "echo", duration).await?);
            s.push(rate(&shim_peers, "fx_echo", duration).await?);
            if !http_peers.is_empty() {
                h.push(rate(&http_peers, "fx_echo", duration).await?);
            }
        }
        let (d, s) = (median(&d), median(&s));
        let h = (!h.is_empty()).then(|| median(&h));
        table.row(vec![
            n.to_string(),
            format!("{d:.0}"),
            format!("{s:.0}"),
            percent(s / d),
            h.map_or("–".into(), |h| format!("{h:.0}")),
            h.map_or("–".into(), |h| percent(h / d)),
        ]);
        if n == 8 || (p.smoke && n == *p.sessions.last().unwrap_or(&0)) {
            section.target(
                &format!("throughput, {n} sessions (shim) ≥ 80 % of direct"),
                percent(s / d),
                Some(s / d >= 0.8),
            );
            if let Some(h) = h {
                section.target(
                    &format!("throughput, {n} sessions (HTTP) ≥ 80 % of direct"),
                    percent(h / d),
                    Some(h / d >= 0.8),
                );
            }
        }
        data.push(json!({"sessions": n, "direct": d, "shim": s, "http": h}));
        for client in shims.into_iter().chain(https) {
            let _ = client.cancel().await;
        }
    }
    let _ = direct.cancel().await;
    daemon.stop()?;
    section.tables.push(table);
    section.note(format!(
        "Each session keeps one `echo` call in flight; median of {} runs of {:.1} s. Direct = one \
         connection to one fixture with the same number of concurrent calls (the backend is \
         shared in both). Client, gateway and backend share the machine's cores.",
        p.throughput_rounds, p.throughput_secs
    ));
    section.data = json!(data);
    Ok(())
}

/// Calls per second with one task per peer calling back to back for `duration`.
async fn rate(peers: &[Peer<RoleClient>], tool: &str, duration: Duration) -> Result<f64> {
    let count = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for peer in peers {
        let (peer, count, tool) = (peer.clone(), count.clone(), tool.to_owned());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                clients::call(&peer, clients::echo(&tool, "throughput")).await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}
