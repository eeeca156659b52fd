//! Figure 1: the latency a hop adds to one `tools/call`, small and 8 MB payloads.
//!
//! Four routes to the same fixture tool, each with its own warm, connected rmcp client:
//! direct (the client spawns the fixture), the floor (two `mcpgw-relay` byte pumps in between),
//! the shim + daemon, and the daemon's HTTP endpoint when it has one. Calls are sequential, one
//! in flight; the routes take turns round by round (starting with a different one each round) so
//! that background noise falls on all of them alike. Added latency = route − direct.
//!
//! Beside wall time, the CPU time every process of a route spends per call is read from
//! `/proc/PID/task/*/schedstat` (ns resolution): it tells which process the added latency is
//! spent in, and it barely depends on what else runs on the machine.

use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use rmcp::model::CallToolRequestParams;
use serde_json::json;

use super::{one_fixture_config, wait_until};
use crate::Ctx;
use crate::clients::{self, Client};
use crate::proc;
use crate::report::{Section, Table, kib, ratio, us, us_signed};
use crate::stats::{Latency, Samples};
use crate::world::World;

struct Route {
    key: &'static str,
    label: &'static str,
    client: Client,
    echo: String,
    big: String,
    /// The processes between client and backend (shim or relay A, then daemon or relay B).
    hops: Vec<(&'static str, u32)>,
    backend: u32,
}

/// What one route measured for one payload.
struct Measured {
    latency: Latency,
    /// CPU µs per call: the bench's client, each hop, the backend.
    cpu_client: f64,
    cpu_hops: Vec<(&'static str, f64)>,
    cpu_backend: f64,
}

/// The relay's listening half; killed (and with it the fixture it spawned) on drop.
pub struct RelayServer(Child);

impl RelayServer {
    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for RelayServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `mcpgw-relay listen` in front of the fixture and returns a command that connects a
/// client through `mcpgw-relay connect`.
pub async fn relay(
    world: &World,
    fixture_args: &[String],
) -> Result<(RelayServer, tokio::process::Command)> {
    let socket = world.path("relay.sock");
    let server = world
        .command(&world.bins.path("mcpgw-relay"))
        .arg("listen")
        .arg(&socket)
        .arg("--")
        .arg(world.bins.path("mcpgw-fixture"))
        .args(fixture_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("spawning mcpgw-relay listen")?;
    let server = RelayServer(server);
    wait_until("the relay's socket", Duration::from_secs(10), || {
        socket.exists()
    })
    .await?;
    let mut connect = tokio::process::Command::from(world.command(&world.bins.path("mcpgw-relay")));
    connect.arg("connect").arg(&socket);
    Ok((server, connect))
}

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = World::new(&ctx.bins, "latency")?;
    let fixture = ctx.bins.path("mcpgw-fixture");
    let (daemon, url) = if ctx.http {
        world.start_daemon_with_http(&one_fixture_config(&world, &[]))?
    } else {
        world.write_config(&one_fixture_config(&world, &[]))?;
        (world.start_daemon()?, None)
    };

    let mut routes = Vec::new();
    let (direct, direct_pid) = clients::spawn(clients::fixture_command(
        &fixture,
        &world.fixture_args("direct", &[]),
    ))
    .await?;
    routes.push(Route {
        key: "direct",
        label: "direct (client spawns the fixture)",
        client: direct,
        echo: "echo".into(),
        big: "big".into(),
        hops: Vec::new(),
        backend: direct_pid,
    });
    let (relay_server, connect) = relay(&world, &world.fixture_args("relay", &[])).await?;
    let (floor, relay_client) = clients::spawn(connect).await?;
    routes.push(Route {
        key: "floor",
        label: "floor (2 byte-relay processes)",
        client: floor,
        echo: "echo".into(),
        big: "big".into(),
        hops: vec![("relay A", relay_client), ("relay B", relay_server.pid())],
        backend: world.fixture_pid("relay").context("the relay's fixture")?,
    });
    let (shim, shim_pid) = clients::spawn(world.shim_command()).await?;
    // The daemon starts its backend on the first call.
    clients::call(shim.peer(), clients::echo("fx_echo", "start")).await?;
    let backend = world.fixture_pid("fx").context("the daemon's fixture")?;
    routes.push(Route {
        key: "shim",
        label: "mcpgw-shim + mcpgwd",
        client: shim,
        echo: "fx_echo".into(),
        big: "fx_big".into(),
        hops: vec![("mcpgw-shim", shim_pid), ("mcpgwd", daemon.pid())],
        backend,
    });
    match &url {
        Some(url) => routes.push(Route {
            key: "http",
            label: "mcpgwd HTTP /mcp",
            client: clients::http(url).await?,
            echo: "fx_echo".into(),
            big: "fx_big".into(),
            hops: vec![("mcpgwd", daemon.pid())],
            backend,
        }),
        None if ctx.http => {
            section.note("HTTP row not measured: this mcpgwd does not serve `http:` yet.")
        }
        None => section.note("HTTP row not measured (--no-http)."),
    }

    // Warm-up, and a check that every route returns the right answer.
    let text = "hello, mcpgw";
    for route in &routes {
        let result = clients::call(route.client.peer(), clients::echo(&route.echo, text)).await?;
        if clients::text_of(&result) != text {
            bail!(
                "{}: echo returned {:?}",
                route.key,
                clients::text_of(&result)
            );
        }
        let result =
            clients::call(route.client.peer(), clients::big(&route.big, p.big_bytes)).await?;
        if clients::text_of(&result).len() != p.big_bytes {
            bail!(
                "{}: big returned {} bytes",
                route.key,
                clients::text_of(&result).len()
            );
        }
        for _ in 0..p.warmup {
            clients::call(route.client.peer(), clients::echo(&route.echo, text)).await?;
        }
    }

    let small = measure(&routes, p.rounds, p.small_calls, |r| {
        clients::echo(&r.echo, text)
    })
    .await?;
    let big = measure(&routes, p.rounds, p.big_calls, |r| {
        clients::big(&r.big, p.big_bytes)
    })
    .await?;

    let labels: Vec<(&str, &str)> = routes.iter().map(|r| (r.key, r.label)).collect();
    for route in routes {
        let _ = route.client.cancel().await;
    }
    drop(relay_server);
    daemon.stop()?;

    let get = |set: &[Measured], key: &str| {
        labels
            .iter()
            .position(|(k, _)| *k == key)
            .map(|i| set[i].latency)
    };
    let direct_small = get(&small, "direct").unwrap_or_default();
    let direct_big = get(&big, "direct").unwrap_or_default();
    let floor_added = get(&small, "floor").map_or(f64::NAN, |l| l.p50_us - direct_small.p50_us);
    let vs_floor = |added: f64| {
        if floor_added > 0.0 {
            ratio(added / floor_added)
        } else {
            "–".into()
        }
    };

    let mut table = Table::new(&[
        "path (small payload)",
        "p50",
        "p99",
        "added p50",
        "added p99",
        "added p50 ÷ floor's",
    ]);
    for ((key, label), m) in labels.iter().zip(&small) {
        let l = m.latency;
        let (add50, add99) = (
            l.p50_us - direct_small.p50_us,
            l.p99_us - direct_small.p99_us,
        );
        let direct = *key == "direct";
        table.row(vec![
            (*label).to_owned(),
            us(l.p50_us),
            us(l.p99_us),
            if direct {
                "–".into()
            } else {
                us_signed(add50)
            },
            if direct {
                "–".into()
            } else {
                us_signed(add99)
            },
            if direct || *key == "floor" {
                "–".into()
            } else {
                vs_floor(add50)
            },
        ]);
    }
    section.tables.push(table);

    let mut table = Table::new(&[
        "path (big payload)",
        "p50",
        "p99",
        "added p50",
        "p50 ÷ direct's",
    ]);
    for ((key, label), m) in labels.iter().zip(&big) {
        let l = m.latency;
        table.row(vec![
            (*label).to_owned(),
            us(l.p50_us),
            us(l.p99_us),
            if *key == "direct" {
                "–".into()
            } else {
                us_signed(l.p50_us - direct_big.p50_us)
            },
            ratio(l.p50_us / direct_big.p50_us),
        ]);
    }
    section.tables.push(table);

    for (payload, set) in [("small", &small), ("big", &big)] {
        let mut table = Table::new(&[
            &format!("CPU per call, {payload} payload"),
            "client",
            "hops",
            "backend",
            "hops total",
        ]);
        for ((_, label), m) in labels.iter().zip(set) {
            let hops: f64 = m.cpu_hops.iter().map(|(_, v)| v).sum();
            table.row(vec![
                (*label).to_owned(),
                us(m.cpu_client),
                if m.cpu_hops.is_empty() {
                    "–".into()
                } else {
                    m.cpu_hops
                        .iter()
                        .map(|(name, v)| format!("{name} {}", us(*v)))
                        .collect::<Vec<_>>()
                        .join(" + ")
                },
                us(m.cpu_backend),
                if m.cpu_hops.is_empty() {
                    "–".into()
                } else {
                    us(hops)
                },
            ]);
        }
        section.tables.push(table);
    }
    section.note(format!(
        "Small payload: `echo` of a {}-byte text; big payload: `big` returning {} bytes of text. \
         {} runs × {} calls (small) and {} runs × {} calls (big) per path, one call in flight, \
         after {} warm-up calls. CPU per call: on-CPU time of each process (all threads) over \
         the runs, divided by the calls.",
        text.len(),
        p.big_bytes,
        p.rounds,
        p.small_calls,
        p.rounds,
        p.big_calls,
        p.warmup
    ));

    let payload = kib(p.big_bytes as f64 / 1024.0);
    for (key, what) in [("shim", "shim"), ("http", "HTTP")] {
        let Some(l) = get(&small, key) else {
            section.target(
                &format!("added p99 latency ({what}) ≤ 500 µs"),
                "not served".into(),
                None,
            );
            continue;
        };
        let (add50, add99) = (
            l.p50_us - direct_small.p50_us,
            l.p99_us - direct_small.p99_us,
        );
        if key == "shim" {
            section.target(
                "added p50, shim path, small payload ≤ 1.5 × floor and ≤ 60 µs",
                format!(
                    "{} (floor {}, {})",
                    us_signed(add50),
                    us_signed(floor_added),
                    vs_floor(add50)
                ),
                Some(add50 <= 1.5 * floor_added && add50 <= 60.0),
            );
        }
        section.target(
            &format!("added p99 latency ({what}) ≤ 500 µs"),
            us_signed(add99),
            Some(add99 <= 500.0),
        );
        if let Some(b) = get(&big, key) {
            let r = b.p50_us / direct_big.p50_us;
            section.target(
                &format!("{payload} payload ({what}) ≤ 1.5 × direct"),
                ratio(r),
                Some(r <= 1.5),
            );
        }
    }

    let to_json = |set: &[Measured]| {
        labels
            .iter()
            .zip(set)
            .map(|((k, _), m)| {
                let hops: serde_json::Map<_, _> = m
                    .cpu_hops
                    .iter()
                    .map(|(name, v)| ((*name).to_owned(), json!(v)))
                    .collect();
                (
                    (*k).to_owned(),
                    json!({
                        "p50_us": m.latency.p50_us,
                        "p99_us": m.latency.p99_us,
                        "runs": m.latency.runs,
                        "samples": m.latency.samples,
                        "cpu_us_per_call": {
                            "client": m.cpu_client,
                            "hops": hops,
                            "backend": m.cpu_backend,
                        },
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    };
    section.data = json!({
        "small": to_json(&small),
        "big": to_json(&big),
        "big_bytes": p.big_bytes,
        "added_p50_us": {
            "floor": floor_added,
            "shim": get(&small, "shim").map(|l| l.p50_us - direct_small.p50_us),
            "http": get(&small, "http").map(|l| l.p50_us - direct_small.p50_us),
        },
    });
    Ok(())
}

/// `rounds` runs of `calls` sequential calls per route, the routes taking turns.
async fn measure(
    routes: &[Route],
    rounds: usize,
    calls: usize,
    params: impl Fn(&Route) -> CallToolRequestParams,
) -> Result<Vec<Measured>> {
    let me = std::process::id();
    let mut runs: Vec<Vec<Samples>> = vec![Vec::new(); routes.len()];
    // Per route: CPU ns of the client, each hop, the backend.
    let mut cpu: Vec<Vec<u64>> = routes.iter().map(|r| vec![0; r.hops.len() + 2]).collect();
    for round in 0..rounds {
        for i in 0..routes.len() {
            let index = (i + round) % routes.len();
            let route = &routes[index];
            let pids: Vec<u32> = std::iter::once(me)
                .chain(route.hops.iter().map(|(_, pid)| *pid))
                .chain([route.backend])
                .collect();
            let before: Vec<u64> = pids.iter().map(|&pid| proc::cpu_ns(pid)).collect();
            let mut samples = Samples::default();
            for _ in 0..calls {
                samples.push(clients::timed_call(route.client.peer(), params(route)).await?);
            }
            for (slot, (&pid, b)) in cpu[index].iter_mut().zip(pids.iter().zip(before)) {
                *slot += proc::cpu_ns(pid).saturating_sub(b);
            }
            runs[index].push(samples);
        }
    }
    let per_call = |ns: u64| ns as f64 / 1000.0 / (rounds * calls).max(1) as f64;
    Ok(routes
        .iter()
        .zip(runs)
        .zip(cpu)
        .map(|((route, runs), cpu)| Measured {
            latency: Latency::of_runs(&runs),
            cpu_client: per_call(cpu[0]),
            cpu_hops: route
                .hops
                .iter()
                .zip(&cpu[1..])
                .map(|((name, _), ns)| (*name, per_call(*ns)))
                .collect(),
            cpu_backend: per_call(cpu[cpu.len() - 1]),
        })
        .collect())
}
