//! Figure 6: `tools/list` and a routed call with 100 backends × 50 tools, warm cache.
//!
//! The cache is warmed by one discovery pass (a daemon lists once, then stops). A fresh daemon
//! then answers from the cache. `tools/list` is timed two ways: on a raw socket session (request
//! line written → whole response line read: the gateway's own cost) and with the rmcp client
//! through the shim (what a real client sees, including decoding 5000 typed tools). The same
//! rmcp client listing one fixture that serves 5000 tools itself shows the client's share.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::wait_until;
use crate::Ctx;
use crate::clients::{self, RawSession};
use crate::report::{Section, Table, kib, us, us_signed};
use crate::stats::Samples;
use crate::world::World;

/// Tools the fixture serves besides its `--extra-tools`.
const BUILTIN_TOOLS: usize = 13;

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "scale")?;
    let extra = p.scale_tools.saturating_sub(BUILTIN_TOOLS).to_string();
    let mut yaml = String::from("idle_timeout: 0\nservers:\n");
    for i in 0..p.scale_servers {
        yaml.push_str(&world.fixture_server(&format!("s{i:03}"), &["--extra-tools", &extra]));
    }
    world.write_config(&yaml)?;
    let expected = p.scale_servers * p.scale_tools;

    // Warm the cache.
    let daemon = world.start_daemon()?;
    let mut raw = RawSession::connect(&world.socket()).await?;
    let listed = raw_list(&mut raw).await?.tools;
    if listed < expected {
        bail!("discovery listed {listed} tools, expected {expected}");
    }
    drop(raw);
    daemon.stop()?;
    wait_until(
        "the discovered backends to stop",
        Duration::from_secs(30),
        || world.backend_pids().is_empty(),
    )
    .await?;

    let daemon = world.start_daemon()?;
    let mut raw = RawSession::connect(&world.socket()).await?;
    let (shim, _) = clients::spawn(world.shim_command()).await?;
    let mut raw_times = Samples::default();
    let mut typed_list = Samples::default();
    let mut page = RawList::default();
    for run in 0..=p.scale_runs {
        page = raw_list(&mut raw).await?;
        if run == 0 && page.tools < expected {
            bail!(
                "tools/list listed {} tools, expected {expected}",
                page.tools
            );
        } else if run > 0 {
            raw_times.push(page.elapsed);
        }
        let start = Instant::now();
        let tools = shim.peer().list_all_tools().await?;
        if run > 0 {
            typed_list.push(start.elapsed());
        } else if tools.len() < expected {
            bail!("the shim listed {} tools", tools.len());
        }
    }
    let raw_list = raw_times;
    let bytes = page.bytes;
    if page.pages > 1 {
        section.note(format!(
            "tools/list is paginated: {} pages, all of them timed (parsing between pages excluded).",
            page.pages
        ));
    }
    let started_by_lists = world.backend_pids().len();

    // Routing: the first call starts its backend; then warm calls on a few backends.
    let targets: Vec<String> = [0, p.scale_servers / 2, p.scale_servers - 1]
        .iter()
        .map(|i| {
            format!(
                "s{i:03}_t{}",
                p.scale_tools.saturating_sub(BUILTIN_TOOLS + 1)
            )
        })
        .collect();
    let start = Instant::now();
    clients::call(shim.peer(), clients::echo(&targets[0], "first")).await?;
    let first_call = start.elapsed();
    for tool in &targets {
        clients::call(shim.peer(), clients::echo(tool, "warm")).await?;
    }
    let mut routed = Samples::default();
    for i in 0..p.scale_runs * 20 {
        let tool = &targets[i % targets.len()];
        routed.push(clients::timed_call(shim.peer(), clients::echo(tool, "routed")).await?);
    }
    drop(raw);
    let _ = shim.cancel().await;
    daemon.stop()?;

    // References without the gateway: one fixture serving as many tools, and a call to a
    // fixture serving 50.
    let fixture = ctx.bins.path("mcpgw-fixture");
    let all = (expected.saturating_sub(BUILTIN_TOOLS)).to_string();
    let (big, _) = clients::spawn(clients::fixture_command(
        &fixture,
        &world.fixture_args("direct-all", &["--extra-tools", &all]),
    ))
    .await?;
    let mut direct_list = Samples::default();
    for run in 0..=p.scale_runs {
        let start = Instant::now();
        big.peer().list_all_tools().await?;
        if run > 0 {
            direct_list.push(start.elapsed());
        }
    }
    let _ = big.cancel().await;
    let (one, _) = clients::spawn(clients::fixture_command(
        &fixture,
        &world.fixture_args("direct-one", &["--extra-tools", &extra]),
    ))
    .await?;
    let tool = targets[0]
        .split_once('_')
        .map_or("echo", |(_, t)| t)
        .to_owned();
    for _ in 0..50 {
        clients::call(one.peer(), clients::echo(&tool, "warm")).await?;
    }
    let mut direct_call = Samples::default();
    for _ in 0..p.scale_runs * 20 {
        direct_call.push(clients::timed_call(one.peer(), clients::echo(&tool, "routed")).await?);
    }
    let _ = one.cancel().await;

    let mut table = Table::new(&["measure", "p50", "p99"]);
    table.row(vec![
        format!(
            "tools/list, {} tools ({}), raw session: request → last byte",
            expected,
            kib(bytes as f64 / 1024.0)
        ),
        us(raw_list.percentile(50.0)),
        us(raw_list.percentile(99.0)),
    ]);
    table.row(vec![
        "tools/list through the shim, rmcp client (incl. its decoding)".into(),
        us(typed_list.percentile(50.0)),
        us(typed_list.percentile(99.0)),
    ]);
    table.row(vec![
        format!("reference: rmcp client listing one fixture that serves {expected} tools"),
        us(direct_list.percentile(50.0)),
        us(direct_list.percentile(99.0)),
    ]);
    table.row(vec![
        format!(
            "routed call `{}` etc. through the shim, 3 backends warm",
            targets[0]
        ),
        us(routed.percentile(50.0)),
        us(routed.percentile(99.0)),
    ]);
    table.row(vec![
        "reference: the same call, direct".into(),
        us(direct_call.percentile(50.0)),
        us(direct_call.percentile(99.0)),
    ]);
    table.row(vec![
        "first call of a backend (starts it)".into(),
        us(first_call.as_secs_f64() * 1e6),
        "–".into(),
    ]);
    section.tables.push(table);
    let added = routed.percentile(50.0) - direct_call.percentile(50.0);
    section.note(format!(
        "{} backends × {} tools; {} lists after one warm-up, {} routed calls. Backends started by \
         the lists: {}. Added p50 of a routed call: {}.",
        p.scale_servers,
        p.scale_tools,
        p.scale_runs,
        routed.len(),
        started_by_lists,
        us_signed(added)
    ));
    let list = raw_list.percentile(50.0);
    section.target(
        &format!(
            "tools/list, {} × {} tools ≤ 2 ms (raw session)",
            p.scale_servers, p.scale_tools
        ),
        us(list),
        Some(list <= 2000.0),
    );
    section.data = json!({
        "tools": expected,
        "list_bytes": bytes,
        "raw_list_p50_us": list,
        "raw_list_p99_us": raw_list.percentile(99.0),
        "typed_list_p50_us": typed_list.percentile(50.0),
        "direct_list_p50_us": direct_list.percentile(50.0),
        "routed_p50_us": routed.percentile(50.0),
        "routed_p99_us": routed.percentile(99.0),
        "direct_call_p50_us": direct_call.percentile(50.0),
        "first_call_us": first_call.as_secs_f64() * 1e6,
        "backends_started_by_lists": started_by_lists,
    });
    Ok(())
}

#[derive(Default)]
struct RawList {
    elapsed: Duration,
    tools: usize,
    bytes: usize,
    pages: usize,
}

/// Every page of `tools/list` on a raw session; only the round trips are timed.
async fn raw_list(raw: &mut RawSession) -> Result<RawList> {
    let mut out = RawList::default();
    let mut cursor: Option<String> = None;
    loop {
        let params = cursor.take().map_or(json!({}), |c| json!({ "cursor": c }));
        let start = Instant::now();
        let line = raw.request("tools/list", params).await?;
        out.elapsed += start.elapsed();
        out.bytes += line.len();
        out.pages += 1;
        let response: Value = serde_json::from_slice(line)?;
        out.tools += response["result"]["tools"]
            .as_array()
            .map(Vec::len)
            .ok_or_else(|| {
                anyhow::anyhow!("tools/list failed: {}", truncate(&response.to_string()))
            })?;
        match response["result"]["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(out),
        }
    }
}

fn truncate(s: &str) -> &str {
    &s[..s.len().min(300)]
}
