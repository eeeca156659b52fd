//! Figure 7: the daemon's memory while clients and backends abuse it (issue 10, "Proof").
//!
//! One daemon with its default limits, an `http:` listener and three fixture servers (`fx`
//! answers, `out` floods stdout, `err` floods stderr; all started before the first scenario)
//! goes through these scenarios one after another, then through all of them at once:
//!
//! - **unread**: a socket session sends `tools/call`s of 8 MiB answers and never reads; the
//!   daemon must end that session when its output queue passes its bound (128 MiB when the
//!   answers come faster than its 10 s patience, else 64 MiB);
//! - **stdout**: a backend writes 1 GiB to stdout without a newline; the daemon holds at most
//!   `max_message` (64 MiB) of a line, then stops the instance and fails the call;
//! - **stderr**: a backend writes 1 GiB to stderr without a newline, then a `\r` progress bar;
//!   the drain keeps 4 KiB of a line in progress and 200 lines;
//! - **HTTP**: 1000 connections that send no request head, or half of one; the daemon accepts
//!   `http.max_connections` (256) of them and the rest wait in the kernel's backlog.
//!
//! Throughout, one thread samples the daemon's `VmRSS` every 50 ms and another runs the real
//! `mcpgwctl status` back to back (20 ms apart), timing each run from spawn to exit. A
//! scenario's peak is the larger of its samples and its `VmHWM` (reset at its start through
//! `/proc/PID/clear_refs`, so a spike between two samples still counts); "after" is `VmRSS`
//! once the scenario has ended and a settling pause has passed.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wait_until;
use crate::Ctx;
use crate::clients::RawSession;
use crate::proc;
use crate::report::{Section, Table, kib, us};
use crate::stats::Samples;
use crate::world::{Daemon, World};

/// The stated ceiling for the daemon's peak RSS with one abuser of each kind, alone or all at
/// once. From the bounds: 128 MiB queued to a client that does not read (the queue's hard
/// bound: past 64 MiB it still takes frames for 10 s after its writer last took one), the
/// answer that writer holds and the one the backend reader holds (8 MiB each here), 64 MiB of a
/// backend line in progress, and the daemon's own 13 MiB: about 230 MiB if all of them peak at
/// the same instant. See BENCHMARKS.md for the measurements.
const CEILING_MIB: f64 = 256.0;
/// `mcpgwctl status`, process start included, must answer within this in every scenario.
const STATUS_TARGET: Duration = Duration::from_millis(100);
/// The answers the unread session asks for: the fixture's `big` of this many bytes.
const UNREAD_ANSWER_BYTES: usize = 8 << 20;
/// How often the daemon's RSS is sampled, and the pause between two `mcpgwctl status` runs.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);
const STATUS_PAUSE: Duration = Duration::from_millis(20);
/// The longest any scenario may take before the figure fails.
const DEADLINE: Duration = Duration::from_secs(120);
/// What the daemon logs when it ends a session that does not read.
const UNREAD_LOGGED: &str = "does not read its responses";

pub async fn run(ctx: &Ctx, section: &mut Section) -> Result<()> {
    let p = &ctx.p;
    let world = Arc::new(World::new(&ctx.bins, "bounds")?);
    let mut yaml = String::from("idle_timeout: 0\nservers:\n");
    yaml.push_str(&world.fixture_server("fx", &[]));
    yaml.push_str(&world.fixture_server("out", &[]));
    if let Some(max) = p.bounds_max_message {
        yaml.push_str(&format!("    max_message: {max}\n"));
    }
    yaml.push_str(&world.fixture_server("err", &[]));
    let (daemon, url) = if ctx.http {
        world.start_daemon_with_http(&yaml)?
    } else {
        world.write_config(&yaml)?;
        (world.start_daemon()?, None)
    };
    let http = url
        .as_deref()
        .map(|url| {
            url.trim_start_matches("http://")
                .split('/')
                .next()
                .unwrap_or_default()
                .parse::<SocketAddr>()
                .with_context(|| format!("the HTTP address of {url}"))
        })
        .transpose()?;
    let pid = daemon.pid();
    let socket = world.socket();
    // Every backend running first, so that no scenario counts a backend's start.
    let mut warm = RawSession::connect(&socket).await?;
    for server in ["fx", "out", "err"] {
        let answer = call(
            &mut warm,
            &format!("{server}_echo"),
            json!({"text": "warm"}),
        )
        .await?;
        if answer["result"].is_null() {
            bail!("{server}_echo failed: {answer}");
        }
    }
    drop(warm);

    let settle = if p.smoke {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(1)
    };
    let probes = Probes::start(world.clone(), pid);
    let mut outcomes = Vec::new();
    let mut runner = Runner {
        probes: &probes,
        daemon: &daemon,
        settle,
        outcomes: &mut outcomes,
    };
    let hold = Duration::from_secs_f64(p.bounds_hold_secs);
    let flood = p.bounds_flood_mib;
    let conns = p.bounds_http_connections;

    runner
        .scenario("idle, 3 backends running", true, async {
            tokio::time::sleep(settle).await;
            Ok(json!({}))
        })
        .await?;
    runner
        .scenario(
            &format!(
                "unread: a socket client sends {} calls of 8 MiB answers, reads none",
                p.bounds_unread_calls
            ),
            true,
            unread(&world, &daemon, 1, p.bounds_unread_calls),
        )
        .await?;
    runner
        .scenario(
            &format!(
                "stdout: a backend sets out to write {} without a newline",
                mib(flood)
            ),
            true,
            stdout_flood(&socket, flood),
        )
        .await?;
    runner
        .scenario(
            &format!("stderr: a backend writes {} without a newline", mib(flood)),
            true,
            stderr_flood(&socket, flood),
        )
        .await?;
    if let Some(addr) = http {
        runner
            .scenario(
                &format!("HTTP: {conns} connections send no or half a request head"),
                true,
                idle_http(addr, conns, tokio::time::sleep(hold), pid, true),
            )
            .await?;
    }
    runner
        .scenario(
            &format!(
                "all at once: {}stdout + stderr{}",
                if p.bounds_unread_together {
                    "unread + "
                } else {
                    ""
                },
                if http.is_some() { " + HTTP" } else { "" }
            ),
            true,
            async {
                let (done, finished) = tokio::sync::oneshot::channel::<()>();
                let floods = async {
                    let unread = async {
                        if p.bounds_unread_together {
                            unread(&world, &daemon, 1, p.bounds_unread_calls).await
                        } else {
                            Ok(Value::Null)
                        }
                    };
                    let floods = tokio::join!(
                        unread,
                        stdout_flood(&socket, flood),
                        stderr_flood(&socket, flood),
                    );
                    let _ = done.send(());
                    floods
                };
                let connections = async {
                    match http {
                        Some(addr) => {
                            let until = async {
                                let _ = finished.await;
                            };
                            idle_http(addr, conns, until, pid, false).await.map(Some)
                        }
                        None => Ok(None),
                    }
                };
                let ((unread, stdout, stderr), http) = tokio::join!(floods, connections);
                Ok(json!({
                    "unread": unread?,
                    "stdout": stdout?,
                    "stderr": stderr?,
                    "http": http?,
                }))
            },
        )
        .await?;
    // The queue bound is per session, and socket sessions are not counted: not judged
    // against the ceiling, shown so that nobody reads the ceiling as global.
    let sessions = p.bounds_unread_sessions;
    if sessions > 1 {
        runner
            .scenario(
                &format!("unread × {sessions}: {sessions} such clients at once"),
                false,
                unread(&world, &daemon, sessions, p.bounds_unread_calls),
            )
            .await?;
    }
    let final_rss = proc::rss_kib(pid);
    let status_all = probes.stop();
    daemon.stop()?;

    report(section, &outcomes, &status_all, final_rss, http.is_some());
    Ok(())
}

/// The two sampling threads and what they found, by scenario index.
struct Probes {
    scenario: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    rss: Arc<Mutex<Vec<(usize, f64)>>>,
    status: Arc<Mutex<Vec<(usize, Duration, bool)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Probes {
    fn start(world: Arc<World>, pid: u32) -> Self {
        let scenario = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let rss = Arc::new(Mutex::new(Vec::new()));
        let status = Arc::new(Mutex::new(Vec::new()));
        let sampler = {
            let (scenario, stop, rss) = (scenario.clone(), stop.clone(), rss.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let sample = (scenario.load(Ordering::Relaxed), proc::rss_kib(pid));
                    rss.lock().unwrap().push(sample);
                    std::thread::sleep(SAMPLE_EVERY);
                }
            })
        };
        let prober = {
            let (scenario, stop, status) = (scenario.clone(), stop.clone(), status.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let index = scenario.load(Ordering::Relaxed);
                    let start = Instant::now();
                    let ok = world.ctl(&["status"]).is_ok_and(|out| out.status.success());
                    status.lock().unwrap().push((index, start.elapsed(), ok));
                    std::thread::sleep(STATUS_PAUSE);
                }
            })
        };
        Self {
            scenario,
            stop,
            rss,
            status,
            threads: vec![sampler, prober],
        }
    }

    fn enter(&self, index: usize) {
        self.scenario.store(index, Ordering::Relaxed);
    }

    /// The highest sampled RSS of a scenario.
    fn sampled_peak(&self, index: usize) -> f64 {
        let rss = self.rss.lock().unwrap();
        rss.iter()
            .filter(|(i, _)| *i == index)
            .map(|(_, kib)| *kib)
            .fold(0.0, f64::max)
    }

    /// The `mcpgwctl status` runs of a scenario: their times and how many failed.
    fn status_of(&self, index: usize) -> (Samples, usize) {
        let status = self.status.lock().unwrap();
        let mut samples = Samples::default();
        let mut failed = 0;
        for (_, took, ok) in status.iter().filter(|(i, _, _)| *i == index) {
            samples.push(*took);
            failed += usize::from(!ok);
        }
        (samples, failed)
    }

    /// Stops both threads; returns every status run's time and how many failed.
    fn stop(&self) -> (Samples, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let status = self.status.lock().unwrap();
        let mut samples = Samples::default();
        for (_, took, _) in status.iter() {
            samples.push(*took);
        }
        (samples, status.iter().filter(|(_, _, ok)| !ok).count())
    }
}

impl Drop for Probes {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One measured scenario.
struct Outcome {
    name: String,
    took: Duration,
    peak_kib: f64,
    /// Whether the peak includes `VmHWM` (reset at the start), not only the samples.
    hwm: bool,
    after_kib: f64,
    status: Samples,
    status_failed: usize,
    /// Whether the ceiling applies (one abuser of each kind).
    judged: bool,
    detail: Value,
}

struct Runner<'a> {
    probes: &'a Probes,
    daemon: &'a Daemon,
    settle: Duration,
    outcomes: &'a mut Vec<Outcome>,
}

impl Runner<'_> {
    async fn scenario(
        &mut self,
        name: &str,
        judged: bool,
        work: impl Future<Output = Result<Value>>,
    ) -> Result<()> {
        let index = self.outcomes.len() + 1;
        let pid = self.daemon.pid();
        eprintln!("  {name}");
        self.probes.enter(index);
        let hwm = proc::reset_hwm(pid);
        let start = Instant::now();
        let detail = tokio::time::timeout(DEADLINE, work)
            .await
            .map_err(|_| anyhow!("{name}: not done after {DEADLINE:?}"))?
            .with_context(|| name.to_owned())?;
        let took = start.elapsed();
        let peak_hwm = if hwm { proc::hwm_kib(pid) } else { 0.0 };
        tokio::time::sleep(self.settle).await;
        if !proc::alive(pid) {
            bail!("{name}: the daemon died:\n{}", self.daemon.log());
        }
        let after_kib = proc::rss_kib(pid);
        // The next scenario's index; the settling pause still counts as this one's.
        self.probes.enter(index + 1);
        let (status, status_failed) = self.probes.status_of(index);
        self.outcomes.push(Outcome {
            name: name.to_owned(),
            took,
            peak_kib: peak_hwm.max(self.probes.sampled_peak(index)),
            hwm,
            after_kib,
            status,
            status_failed,
            judged,
            detail,
        });
        Ok(())
    }
}

/// One `tools/call` on a raw session, its response parsed.
async fn call(session: &mut RawSession, tool: &str, arguments: Value) -> Result<Value> {
    let line = session
        .request("tools/call", json!({"name": tool, "arguments": arguments}))
        .await?;
    Ok(serde_json::from_slice(line)?)
}

/// The text of a response: its error's message, or its result's first text.
fn message_of(response: &Value) -> String {
    response["error"]["message"]
        .as_str()
        .or_else(|| response["result"]["content"][0]["text"].as_str())
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

/// `sessions` socket sessions, each sending `calls` calls of 8 MiB answers and reading none
/// of them, until the daemon says it ended every one.
async fn unread(world: &World, daemon: &Daemon, sessions: usize, calls: usize) -> Result<Value> {
    let ended_before = daemon.log().matches(UNREAD_LOGGED).count();
    let mut open = Vec::new();
    for _ in 0..sessions {
        open.push(RawSession::connect(&world.socket()).await?);
    }
    let start = Instant::now();
    let mut sent = 0;
    for _ in 0..calls {
        for session in &mut open {
            let arguments = json!({"bytes": UNREAD_ANSWER_BYTES});
            let params = json!({"name": "fx_big", "arguments": arguments});
            if session.send_request("tools/call", params).await.is_ok() {
                sent += 1; // else the daemon already ended that session
            }
        }
    }
    wait_until("the daemon to end the unread sessions", DEADLINE, || {
        daemon.log().matches(UNREAD_LOGGED).count() >= ended_before + sessions
    })
    .await?;
    let ended = start.elapsed();
    drop(open);
    Ok(
        json!({"sessions": sessions, "calls_sent": sent, "answer_bytes": UNREAD_ANSWER_BYTES,
              "ended": true, "ended_after_us": ended.as_secs_f64() * 1e6}),
    )
}

/// `out_stdout_flood`: `mib` MiB on stdout without a newline. The call must fail, naming
/// `max_message`.
async fn stdout_flood(socket: &Path, mib: usize) -> Result<Value> {
    let mut session = RawSession::connect(socket).await?;
    let start = Instant::now();
    let response = call(&mut session, "out_stdout_flood", json!({"mib": mib})).await?;
    let took = start.elapsed();
    let message = message_of(&response);
    let refused = response["result"].is_null() && message.contains("max_message");
    Ok(json!({"mib": mib, "refused": refused, "message": message,
              "answered_after_us": took.as_secs_f64() * 1e6}))
}

/// `err_stderr_flood`: `mib` MiB on stderr without a newline, then a progress bar of 10000
/// `\r` steps. The call must succeed: the drain reads everything and keeps little.
async fn stderr_flood(socket: &Path, mib: usize) -> Result<Value> {
    let mut session = RawSession::connect(socket).await?;
    let start = Instant::now();
    let response = call(
        &mut session,
        "err_stderr_flood",
        json!({"mib": mib, "progress": 10000}),
    )
    .await?;
    let took = start.elapsed();
    let ok = !response["result"].is_null() && response["result"]["isError"] != true;
    Ok(
        json!({"mib": mib, "ok": ok, "message": message_of(&response),
              "answered_after_us": took.as_secs_f64() * 1e6}),
    )
}

/// `n` TCP connections to the HTTP listener, every other one sending half a request head,
/// held open until `until`. They are opened all at once: past the daemon's cap (256 accepted)
/// and its listen backlog (128), a connection's SYN waits unanswered in the client's kernel,
/// retried, and counts as not established. With `probe`, a well-formed request sent once they
/// are opening is timed to its answer's first byte.
async fn idle_http(
    addr: SocketAddr,
    n: usize,
    until: impl Future<Output = ()>,
    pid: u32,
    probe: bool,
) -> Result<Value> {
    let established = Arc::new(AtomicUsize::new(0));
    let connections: Vec<_> = (0..n)
        .map(|i| {
            let established = established.clone();
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await?;
                established.fetch_add(1, Ordering::Relaxed);
                if i % 2 == 1 {
                    tcp.write_all(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                        .await?;
                }
                // Held until aborted.
                std::future::pending::<()>().await;
                anyhow::Ok(tcp)
            })
        })
        .collect();
    let opened = Instant::now();
    // Let the connections reach the listener before the probe queues behind them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let probe = probe.then(|| tokio::spawn(request_answered(addr)));
    let (mut fds_max, mut established_max) = (0, 0);
    tokio::pin!(until);
    loop {
        fds_max = fds_max.max(proc::fd_count(pid));
        established_max = established_max.max(established.load(Ordering::Relaxed));
        tokio::select! {
            () = &mut until => break,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    let held = opened.elapsed();
    for connection in &connections {
        connection.abort();
    }
    let mut failed = Vec::new();
    for connection in connections {
        if let Ok(Err(e)) = connection.await {
            failed.push(e.to_string());
        }
    }
    if let Some(e) = failed.first() {
        bail!("{} of {n} connections failed, the first: {e}", failed.len());
    }
    let answered = match probe {
        Some(task) => Some(task.await??),
        None => None,
    };
    Ok(json!({
        "connections": n,
        "established_max": established_max,
        "held_us": held.as_secs_f64() * 1e6,
        "daemon_fds_max": fds_max,
        "probe_answered_after_us": answered.map(|d| d.as_secs_f64() * 1e6),
    }))
}

/// A well-formed request on a new connection: how long until the first byte of its answer.
async fn request_answered(addr: SocketAddr) -> Result<Duration> {
    let start = Instant::now();
    let mut tcp = TcpStream::connect(addr).await?;
    let head = format!("GET /mcp HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(head.as_bytes()).await?;
    let mut first = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read(&mut first))
        .await
        .map_err(|_| anyhow!("a well-formed HTTP request was not answered within 60 s"))??;
    if read == 0 {
        bail!("the daemon closed a well-formed HTTP request's connection unanswered");
    }
    Ok(start.elapsed())
}

fn mib(m: usize) -> String {
    if m >= 1024 && m.is_multiple_of(1024) {
        format!("{} GiB", m / 1024)
    } else {
        format!("{m} MiB")
    }
}

fn report(
    section: &mut Section,
    outcomes: &[Outcome],
    status_all: &(Samples, usize),
    final_rss: f64,
    http: bool,
) {
    let ceiling_kib = CEILING_MIB * 1024.0;
    let mut table = Table::new(&[
        "scenario",
        "took",
        "daemon peak RSS",
        "RSS after",
        "`mcpgwctl status` p50 / p99 / max (runs)",
        &format!("peak < {CEILING_MIB:.0} MiB"),
    ]);
    for o in outcomes {
        table.row(vec![
            o.name.clone(),
            us(o.took.as_secs_f64() * 1e6),
            kib(o.peak_kib),
            kib(o.after_kib),
            format!(
                "{} / {} / {} ({}{})",
                us(o.status.percentile(50.0)),
                us(o.status.percentile(99.0)),
                us(o.status.max()),
                o.status.len(),
                if o.status_failed > 0 {
                    format!(", {} failed", o.status_failed)
                } else {
                    String::new()
                }
            ),
            match (o.judged, o.peak_kib < ceiling_kib) {
                (true, true) => "within".into(),
                (true, false) => "**over**".into(),
                (false, within) => format!(
                    "{}, not judged: the bound is per session",
                    if within { "within" } else { "over" }
                ),
            },
        ]);
    }
    section.tables.push(table);

    let judged: Vec<&Outcome> = outcomes.iter().filter(|o| o.judged).collect();
    let worst = judged
        .iter()
        .max_by(|a, b| a.peak_kib.total_cmp(&b.peak_kib));
    // Every run of each kind: the scenario's own, and its part of "all at once".
    let parts: Vec<&Value> = outcomes
        .iter()
        .flat_map(|o| match o.detail.as_object() {
            Some(all) if all.contains_key("unread") => all.values().collect(),
            _ => vec![&o.detail],
        })
        .collect();
    let runs = |marker: &str| -> Vec<&Value> {
        parts
            .iter()
            .copied()
            .filter(|d| d.get(marker).is_some())
            .collect()
    };
    let (unread, stdout, stderr, http_runs) = (
        runs("ended"),
        runs("refused"),
        runs("ok"),
        runs("daemon_fds_max"),
    );

    section.note(format!(
        "One daemon (default limits; `http:` on loopback with max_connections 256 and \
         header_timeout 10 s) runs the scenarios in order, the same process throughout. Peak: \
         `VmHWM` reset at each scenario's start{} and `VmRSS` sampled every {} ms; after: \
         `VmRSS` once the scenario ended and settled. `mcpgwctl status` is the real binary, \
         run back to back ({} ms apart) on another thread, timed from spawn to exit.",
        if outcomes.iter().all(|o| o.hwm) {
            ""
        } else {
            " (not allowed here: samples only)"
        },
        SAMPLE_EVERY.as_millis(),
        STATUS_PAUSE.as_millis(),
    ));
    if let Some(d) = unread.first() {
        section.note(format!(
            "unread: the daemon ended the session {} after the first call was sent ({} calls \
             sent, {} answers asked for).",
            us(d["ended_after_us"].as_f64().unwrap_or(0.0)),
            d["calls_sent"],
            kib(d["calls_sent"].as_f64().unwrap_or(0.0) * UNREAD_ANSWER_BYTES as f64 / 1024.0),
        ));
    }
    if let Some(d) = stdout.first() {
        section.note(format!(
            "stdout: the call was answered after {}: \"{}\"",
            us(d["answered_after_us"].as_f64().unwrap_or(0.0)),
            d["message"].as_str().unwrap_or_default()
        ));
    }
    if let Some(d) = stderr.first() {
        section.note(format!(
            "stderr: the call succeeded after {} (the fixture had written everything).",
            us(d["answered_after_us"].as_f64().unwrap_or(0.0)),
        ));
    }
    if let Some(d) = http_runs.first() {
        let probe = d["probe_answered_after_us"].as_f64();
        section.note(format!(
            "HTTP: {} connections opened at once and held {}; {} were established{}, the daemon \
             had at most {} descriptors open. {}",
            d["connections"],
            us(d["held_us"].as_f64().unwrap_or(0.0)),
            d["established_max"],
            if d["established_max"] == d["connections"] {
                ""
            } else {
                " (the rest waited for the listener, their SYN unanswered)"
            },
            d["daemon_fds_max"],
            match probe {
                Some(us_value) => format!(
                    "A well-formed request sent 0.2 s after them was answered after {}{}.",
                    us(us_value),
                    if us_value + 200e3 >= d["held_us"].as_f64().unwrap_or(f64::MAX) - 50e3 {
                        ": only once they were closed (at the cap the listener accepts \
                         nothing, so a legitimate client waits like the idle ones)"
                    } else {
                        ""
                    }
                ),
                None => String::new(),
            }
        ));
    } else if !http {
        section.note("HTTP scenario not run: no HTTP listener (--no-http, or unsupported).");
    }
    section.note(format!("Daemon RSS at the end: {}.", kib(final_rss)));

    if let Some(worst) = worst {
        section.target(
            &format!(
                "daemon peak RSS < {CEILING_MIB:.0} MiB, one abuser of each kind (alone or together)"
            ),
            format!("{} ({})", kib(worst.peak_kib), short(&worst.name)),
            Some(judged.iter().all(|o| o.peak_kib < ceiling_kib)),
        );
    }
    let (all, failed) = status_all;
    let target_us = STATUS_TARGET.as_secs_f64() * 1e6;
    section.target(
        &format!(
            "`mcpgwctl status` < {} ms throughout (max)",
            STATUS_TARGET.as_millis()
        ),
        format!(
            "max {}, p99 {} ({} runs{})",
            us(all.max()),
            us(all.percentile(99.0)),
            all.len(),
            if *failed > 0 {
                format!(", {failed} failed")
            } else {
                String::new()
            }
        ),
        Some(all.len() > 0 && all.max() < target_us && *failed == 0),
    );
    let unread_ended = !unread.is_empty() && unread.iter().all(|d| d["ended"] == true);
    section.target(
        "a client that never reads has its session ended",
        format!(
            "{} of {}",
            unread.iter().filter(|d| d["ended"] == true).count(),
            unread.len()
        ),
        Some(unread_ended),
    );
    let stdout_refused = !stdout.is_empty() && stdout.iter().all(|d| d["refused"] == true);
    section.target(
        "a backend line over max_message fails its call",
        format!(
            "{} of {}",
            stdout.iter().filter(|d| d["refused"] == true).count(),
            stdout.len()
        ),
        Some(stdout_refused),
    );
    let stderr_ok = !stderr.is_empty() && stderr.iter().all(|d| d["ok"] == true);

    section.data = json!({
        "ceiling_mib": CEILING_MIB,
        "status_target_ms": STATUS_TARGET.as_millis() as u64,
        "scenarios": outcomes.iter().map(|o| json!({
            "name": o.name,
            "took_us": o.took.as_secs_f64() * 1e6,
            "peak_rss_kib": o.peak_kib,
            "peak_from_hwm": o.hwm,
            "judged": o.judged,
            "rss_after_kib": o.after_kib,
            "status_runs": o.status.len(),
            "status_failed": o.status_failed,
            "status_p99_us": o.status.percentile(99.0),
            "status_max_us": o.status.max(),
            "detail": o.detail,
        })).collect::<Vec<_>>(),
        "final_rss_kib": final_rss,
        "status_max_us": all.max(),
        "status_p99_us": all.percentile(99.0),
        "status_failed": failed,
        "unread_ended": unread_ended,
        "stdout_refused": stdout_refused,
        "stderr_ok": stderr_ok,
        "within_ceiling": judged.iter().all(|o| o.peak_kib < ceiling_kib),
    });
}

/// A scenario's name up to its colon.
fn short(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}
