//! Figure 4: memory. The daemon idle and with 1, 100, 500 sessions (raw socket sessions that
//! do the hello and `initialize`, so no shim processes are needed), the shim, and the whole
//! picture for 5 clients × 3 servers with the gateway versus every client spawning its own.
//!
//! RSS is `VmRSS`; PSS (`smaps_rollup`) divides shared pages among their users and is the
//! honest figure for a sum of processes. The 5 × 3 comparison runs with the fixture (a small
//! Rust server) and, when Node and tests/npm are installed, with the reference
//! `server-filesystem`, which is what real servers weigh.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::json;

use super::{one_fixture_config, wait_until};
use crate::Ctx;
use crate::clients::{self, Client, RawSession};
use crate::proc::{self, Mem};
use crate::report::{Section, Table, kib, percent};
use crate::world::{World, server_entry};

const CLIENTS: usize = 5;
const SERVERS: usize = 3;
/// Let freshly started processes finish their start-up allocations before reading memory.
const SETTLE: Duration = Duration::from_millis(500);

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let sessions = sessions(ctx, section).await?;
    let mut table = Table::new(&[
        "5 clients × 3 servers",
        "processes",
        "RSS",
        "PSS",
        "gateway ÷ no gateway (RSS)",
    ]);
    let fixture = ctx.bins.path("mcpgw-fixture");
    let fixture_fleet = fleet(ctx, "fixture", &|world: &World, name: &str| {
        (fixture.clone(), world.fixture_args(name, &[]))
    })
    .await?;
    fleet_rows(&mut table, "fixture", &fixture_fleet);
    let node_fleet = match node_server(&ctx.npm_dir) {
        Ok(script) => {
            let fleet = fleet(ctx, "node", &|world: &World, _name: &str| {
                let dir = world.path(&world.marker);
                let _ = std::fs::create_dir_all(&dir);
                (
                    PathBuf::from("node"),
                    vec![script.display().to_string(), dir.display().to_string()],
                )
            })
            .await?;
            fleet_rows(&mut table, "server-filesystem (node)", &fleet);
            Some(fleet)
        }
        Err(e) => {
            section.note(format!("server-filesystem rows not measured: {e}"));
            None
        }
    };
    section.tables.push(table);

    let judged = node_fleet.as_ref().unwrap_or(&fixture_fleet);
    let r = judged.ratio();
    section.target(
        &format!(
            "5 clients × 3 servers ({}), total RSS vs no gateway ≤ 25 %",
            if node_fleet.is_some() {
                "node server-filesystem"
            } else {
                "fixture"
            }
        ),
        percent(r),
        Some(r <= 0.25),
    );
    section.note(
        "Clients themselves are not counted (they are the same with and without the gateway). \
         With the gateway: the daemon + one process per server + one shim per client.",
    );
    section.data = json!({
        "sessions": sessions,
        "fixture_fleet": fixture_fleet.json(),
        "node_fleet": node_fleet.map(|f| f.json()),
    });
    Ok(())
}

/// The daemon with sessions, and the shim.
async fn sessions(ctx: &Ctx, section: &mut Section) -> Result<serde_json::Value> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "memory")?;
    world.write_config(&one_fixture_config(&world, &[]))?;
    let daemon = world.start_daemon()?;
    tokio::time::sleep(SETTLE).await;
    let idle = proc::rss_kib(daemon.pid());

    let mut table = Table::new(&["process", "RSS", "PSS"]);
    table.row(vec![
        "mcpgwd, idle".into(),
        kib(idle),
        kib(proc::pss_kib(daemon.pid())),
    ]);
    let mut raw: Vec<RawSession> = Vec::new();
    let mut points = Vec::new();
    for &n in &p.memory_sessions {
        while raw.len() < n {
            raw.push(RawSession::connect(&world.socket()).await?);
        }
        tokio::time::sleep(SETTLE).await;
        let rss = proc::rss_kib(daemon.pid());
        table.row(vec![
            format!("mcpgwd, {n} sessions"),
            kib(rss),
            kib(proc::pss_kib(daemon.pid())),
        ]);
        points.push((n, rss));
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let per_session = (last.1 - first.1) / (last.0 - first.0) as f64;
    table.row(vec![
        format!("per extra session ({} → {})", first.0, last.0),
        kib(per_session),
        "–".into(),
    ]);
    drop(raw);

    // A real shim, after a call through it.
    let (client, shim_pid): (Client, u32) = clients::spawn(world.shim_command()).await?;
    clients::call(client.peer(), clients::echo("fx_echo", "memory")).await?;
    tokio::time::sleep(SETTLE).await;
    let shim = proc::rss_kib(shim_pid);
    table.row(vec![
        "mcpgw-shim".into(),
        kib(shim),
        kib(proc::pss_kib(shim_pid)),
    ]);
    let _ = client.cancel().await;
    daemon.stop()?;
    section.tables.push(table);

    section.target("daemon RSS idle ≤ 10 MB", kib(idle), Some(idle <= 10_000.0));
    section.target(
        "daemon RSS per extra session ≤ 100 KB",
        kib(per_session),
        Some(per_session <= 100.0),
    );
    section.target("shim RSS ≤ 3 MB", kib(shim), Some(shim <= 3_000.0));
    Ok(json!({
        "idle_rss_kib": idle,
        "points": points.iter().map(|(n, rss)| json!({"sessions": n, "rss_kib": rss})).collect::<Vec<_>>(),
        "per_session_kib": per_session,
        "shim_rss_kib": shim,
    }))
}

/// The 5 × 3 picture for one kind of server.
struct Fleet {
    daemon: Mem,
    backends: Mem,
    shims: Mem,
    direct: Mem,
}

impl Fleet {
    fn gateway(&self) -> Mem {
        self.daemon.plus(self.backends).plus(self.shims)
    }

    fn ratio(&self) -> f64 {
        self.gateway().rss_kib / self.direct.rss_kib
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "daemon": self.daemon,
            "backends": self.backends,
            "shims": self.shims,
            "gateway_total": self.gateway(),
            "no_gateway_total": self.direct,
            "ratio_rss": self.ratio(),
        })
    }
}

fn fleet_rows(table: &mut Table, what: &str, fleet: &Fleet) {
    let direct = fleet.direct;
    let gateway = fleet.gateway();
    table.row(vec![
        format!("{what}: no gateway (each client spawns its own)"),
        direct.processes.to_string(),
        kib(direct.rss_kib),
        kib(direct.pss_kib),
        "–".into(),
    ]);
    table.row(vec![
        format!(
            "{what}: gateway (daemon {} + backends {} + shims {})",
            kib(fleet.daemon.rss_kib),
            kib(fleet.backends.rss_kib),
            kib(fleet.shims.rss_kib)
        ),
        gateway.processes.to_string(),
        kib(gateway.rss_kib),
        kib(gateway.pss_kib),
        percent(fleet.ratio()),
    ]);
}

type ServerCommand<'a> = dyn Fn(&World, &str) -> (PathBuf, Vec<String>) + 'a;

async fn fleet(ctx: &Ctx, label: &str, server: &ServerCommand<'_>) -> Result<Fleet> {
    let names: Vec<String> = (0..SERVERS).map(|i| format!("m{i}")).collect();

    // Without the gateway: every client spawns every server.
    let world = World::new(&ctx.bins, &format!("mem-{label}"))?;
    let mut direct_clients = Vec::new();
    let mut pids = Vec::new();
    for _ in 0..CLIENTS {
        for name in &names {
            let (command, args) = server(&world, name);
            let mut cmd = tokio::process::Command::from(world.command(&command));
            cmd.args(&args);
            let (client, pid) = clients::spawn(cmd)
                .await
                .with_context(|| format!("spawning {}", command.display()))?;
            client.peer().list_all_tools().await?;
            direct_clients.push(client);
            pids.push(pid);
        }
    }
    tokio::time::sleep(SETTLE).await;
    let direct = Mem::of(&pids);
    for client in direct_clients {
        let _ = client.cancel().await;
    }

    // With the gateway: one daemon, each server once, a shim per client.
    let world = World::new(&ctx.bins, &format!("mem-{label}-gw"))?;
    let mut yaml = String::from("idle_timeout: 0\nservers:\n");
    for name in &names {
        let (command, args) = server(&world, name);
        yaml.push_str(&server_entry(name, &command, &args));
    }
    world.write_config(&yaml)?;
    let daemon = world.start_daemon()?;
    let mut shims = Vec::new();
    let mut shim_pids = Vec::new();
    for _ in 0..CLIENTS {
        let (client, pid) = clients::spawn(world.shim_command()).await?;
        client.peer().list_all_tools().await?;
        shims.push(client);
        shim_pids.push(pid);
    }
    for name in &names {
        let out = world.ctl(&["start", name])?;
        if !out.status.success() {
            bail!(
                "mcpgwctl start {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    wait_until("3 backends running", Duration::from_secs(30), || {
        world.backend_pids().len() >= SERVERS
    })
    .await?;
    tokio::time::sleep(SETTLE).await;
    let fleet = Fleet {
        daemon: Mem::of(&[daemon.pid()]),
        backends: Mem::of(&world.backend_pids()),
        shims: Mem::of(&shim_pids),
        direct,
    };
    for client in shims {
        let _ = client.cancel().await;
    }
    daemon.stop()?;
    Ok(fleet)
}

/// The reference filesystem server's entry script, if Node and tests/npm are installed.
fn node_server(npm_dir: &Path) -> Result<PathBuf> {
    let script = npm_dir.join("@modelcontextprotocol/server-filesystem/dist/index.js");
    if !script.is_file() {
        bail!(
            "{} is missing (run `npm ci --prefix tests/npm`)",
            script.display()
        );
    }
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .context("node is not installed")?;
    if !node.status.success() {
        bail!("`node --version` failed");
    }
    Ok(script)
}
