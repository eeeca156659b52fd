//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned with the Node
//! it needs in `tests/conformance`; `npm ci --prefix tests/conformance` installs both) as the
//! external judge, run over Streamable HTTP:
//!
//! - directly against `mcpgw-conformance-fixture`, which must pass every check;
//! - against the gateway's `/mcp` fronting that fixture as a stdio backend with `prefix: ""`,
//!   which must pass every check the fixture passes directly, and the DNS-rebinding scenario.
//!
//! Both runs use the suite's `--suite all` (the active scenarios and the pending ones) and read
//! the per-check results it writes with `-o`. The direct run happens once per test binary and
//! is shared by both tests; each run is bounded by [`SUITE_TIMEOUT`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::*;

/// A suite run that takes longer is stopped, and its unfinished scenarios count as failed.
/// A direct run takes a few seconds; only a gateway that leaves requests unanswered comes near.
const SUITE_TIMEOUT: Duration = Duration::from_secs(100);

/// Checks the gateway need not pass although the fixture does, and why. Each tests something
/// the server under test does on its own HTTP connection, which a stdio backend cannot ask
/// its gateway to do.
const NOT_RELAYABLE: &[(&str, &str, &str)] = &[(
    "server-sse-polling",
    "server-sse-disconnect-resume",
    "the fixture closes the SSE stream of its `test_reconnection` call at the HTTP level \
     (SEP-1699 polling); over stdio there is no stream to close, so the gateway passes this \
     only if it closes its own streams mid-call, which the spec allows but does not ask",
)];

/// The checks of the DNS-rebinding scenario, which the gateway must pass itself.
const DNS_REBINDING: &str = "dns-rebinding-protection";

#[tokio::test]
async fn conformance_fixture_passes_the_suite_directly() {
    Suite::find();
    let direct = tokio::task::spawn_blocking(direct_run)
        .await
        .unwrap()
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", direct.table(None));
    let bad: Vec<String> = direct
        .checks
        .iter()
        .filter(|c| c.status == "FAILURE" || c.status == "WARNING")
        .map(Check::describe)
        .collect();
    assert!(
        bad.is_empty(),
        "the fixture misses {} conformance check(s) directly (suite output: {}):\n{}",
        bad.len(),
        direct.output.display(),
        bad.join("\n")
    );
}

#[tokio::test]
async fn gateway_passes_every_check_the_fixture_passes() {
    let suite = Suite::find();
    let direct = tokio::task::spawn_blocking(direct_run);
    let gateway = tokio::task::spawn_blocking(move || gateway_run(&suite));
    let (direct, (gateway, daemon_log)) = (direct.await.unwrap(), gateway.await.unwrap());
    let direct = direct.as_ref().unwrap_or_else(|e| panic!("{e}"));
    let gateway = gateway.unwrap_or_else(|e| {
        panic!(
            "cannot run the suite against the gateway: {e}\n--- mcpgwd log (last 60 lines) ---\n{}",
            tail(&daemon_log, 60)
        )
    });
    println!("{}", gateway.table(Some(direct)));

    let mut problems = Vec::new();
    let lost = gateway.lost_against(direct);
    if !lost.is_empty() {
        problems.push(format!(
            "checks the fixture passes directly fail through the gateway, in {} scenario(s):\n{}",
            lost.len(),
            lost.join("\n")
        ));
    }
    let dns: Vec<&Check> = gateway
        .checks
        .iter()
        .filter(|c| c.scenario == DNS_REBINDING && c.status != "INFO")
        .collect();
    if dns.len() < 2 || dns.iter().any(|c| c.status != "SUCCESS") {
        let got: Vec<String> = dns.iter().map(|c| c.describe()).collect();
        problems.push(format!(
            "the gateway must pass {DNS_REBINDING} itself (both checks); got:\n{}",
            if got.is_empty() {
                "  nothing".to_string()
            } else {
                got.join("\n")
            }
        ));
    }
    for (scenario, id, why) in NOT_RELAYABLE {
        println!("not required through the gateway: {scenario}/{id}: {why}");
    }
    assert!(
        problems.is_empty(),
        "{}\n\nsuite output: {}\n--- mcpgwd log (last 60 lines) ---\n{}",
        problems.join("\n\n"),
        gateway.output.display(),
        tail(&daemon_log, 60)
    );
}

/// The suite against the fixture over HTTP, run once per test binary.
fn direct_run() -> &'static Result<Run, String> {
    static DIRECT: OnceLock<Result<Run, String>> = OnceLock::new();
    DIRECT.get_or_init(|| {
        let suite = Suite::find();
        let dir = results_dir("direct");
        let fixture = FixtureServer::start(&dir)?;
        let run = suite.run(&fixture.url, &dir);
        drop(fixture);
        run
    })
}

/// `<target tmp>/conformance/<leg>`, emptied: where a run's results stay until the next run.
fn results_dir(leg: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("conformance")
        .join(leg);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The suite against the gateway's `/mcp`, the fixture behind it on stdio with `prefix: ""`.
/// Returns the run (or why the gateway could not be run against) and the daemon's log.
fn gateway_run(suite: &Suite) -> (Result<Run, String>, String) {
    let env = Env::new();
    let fixture = serde_json::to_string(&bin("mcpgw-conformance-fixture")).unwrap();
    let args = serde_json::to_string(&["--stdio", "--marker", &env.marker]).unwrap();
    let mut last_log = String::new();
    for _ in 0..5 {
        let port = free_port();
        env.write_config(&format!(
            "servers:\n  conformance:\n    command: {fixture}\n    args: {args}\n    prefix: \"\"\n\
             http:\n  listen: \"127.0.0.1:{port}\"\n"
        ));
        let mut daemon = env.start_daemon();
        match wait_listening(&mut daemon, port) {
            Ok(()) => {
                let url = format!("http://127.0.0.1:{port}/mcp");
                let run = suite.run(&url, &results_dir("gateway"));
                return (run, daemon.log());
            }
            Err(Retry::PortTaken) => last_log = daemon.log(),
            Err(Retry::No(why)) => return (Err(format!("mcpgwd {why}")), daemon.log()),
        }
    }
    (Err("mcpgwd found no free port in 5 tries".into()), last_log)
}

enum Retry {
    PortTaken,
    No(String),
}

/// Waits until the daemon accepts TCP connections on `port`.
fn wait_listening(daemon: &mut Daemon, port: u16) -> Result<(), Retry> {
    let start = Instant::now();
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            let log = daemon.log();
            return Err(if log.contains("cannot listen for HTTP on") {
                Retry::PortTaken
            } else {
                Retry::No(format!(
                    "exited before listening for HTTP ({status}); the conformance config needs \
                     `http: {{listen}}` and a per-server `prefix: \"\"`"
                ))
            });
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if start.elapsed() > DEADLINE {
            return Err(Retry::No(format!(
                "not listening on 127.0.0.1:{port} after {DEADLINE:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The installed suite and the Node (>= 22) that runs it.
#[derive(Clone)]
struct Suite {
    node: PathBuf,
    cli: PathBuf,
}

impl Suite {
    fn find() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
        let modules = root.join("node_modules");
        let cli = modules.join("@modelcontextprotocol/conformance/dist/index.js");
        assert!(
            cli.exists(),
            "{} is missing: run `npm ci --prefix tests/conformance` first",
            cli.display()
        );
        // npm installs the platform's `node-<os>-<cpu>` package as `.bin/node`; elsewhere a
        // `node` on PATH may do, if it is recent enough.
        let bundled = modules.join(".bin/node");
        let node = if bundled.exists() {
            bundled
        } else {
            PathBuf::from("node")
        };
        let version = Command::new(&node)
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let major: u32 = version
            .trim_start_matches('v')
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        assert!(
            major >= 22,
            "the conformance suite needs Node >= 22, and {} is {version:?}: run \
             `npm ci --prefix tests/conformance` first (it installs Node for this platform)",
            node.display()
        );
        Self { node, cli }
    }

    /// Runs every server scenario against `url`, writing results under `dir`.
    fn run(&self, url: &str, dir: &Path) -> Result<Run, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let output = dir.join("suite-output.txt");
        let out = std::fs::File::create(&output).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut child = Command::new(&self.node)
            .arg(&self.cli)
            .args(["server", "--suite", "all", "--url", url, "-o"])
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().map_err(|e| e.to_string())?)
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.node.display()))?;
        let timed_out = loop {
            if child.try_wait().map_err(|e| e.to_string())?.is_some() {
                break false;
            }
            if started.elapsed() > SUITE_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut run = Run::read(dir, &output)?;
        run.elapsed = started.elapsed();
        if timed_out {
            run.checks.push(Check::failure(
                "(suite)",
                &format!("the suite did not finish within {SUITE_TIMEOUT:?}"),
            ));
        }
        Ok(run)
    }
}

/// One check's result, as the suite's `checks.json` has it.
#[derive(Clone, Debug)]
struct Check {
    scenario: String,
    id: String,
    /// SUCCESS, FAILURE, WARNING or INFO.
    status: String,
    error: Option<String>,
}

impl Check {
    fn failure(scenario: &str, error: &str) -> Self {
        Self {
            scenario: scenario.to_string(),
            id: scenario.to_string(),
            status: "FAILURE".into(),
            error: Some(error.to_string()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "  {}/{}: {}{}",
            self.scenario,
            self.id,
            self.status,
            self.error
                .as_deref()
                .map(|e| format!(" — {e}"))
                .unwrap_or_default()
        )
    }
}

/// One run of the suite.
struct Run {
    /// Scenarios in the order the suite ran them.
    scenarios: Vec<String>,
    checks: Vec<Check>,
    /// The suite's stdout and stderr.
    output: PathBuf,
    elapsed: Duration,
}

impl Run {
    /// Reads the scenarios the suite announced on stdout and the `checks.json` of each from
    /// `<dir>/server-<scenario>-<timestamp>/`. A scenario without results failed to run.
    fn read(dir: &Path, output: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(output).map_err(|e| e.to_string())?;
        let scenarios: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("=== Running scenario: "))
            .filter_map(|l| l.strip_suffix(" ==="))
            .map(str::to_string)
            .collect();
        if scenarios.is_empty() {
            return Err(format!(
                "the suite ran no scenario; its output:\n{}",
                tail(&text, 40)
            ));
        }
        let dirs: Vec<String> = std::fs::read_dir(dir)
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let mut checks = Vec::new();
        for scenario in &scenarios {
            // `server-<scenario>-<ISO timestamp>`: the year after the name tells it from a
            // longer scenario name that starts the same way.
            let prefix = format!("server-{scenario}-");
            let found = dirs.iter().find(|d| {
                d.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            });
            let parsed = found.and_then(|d| {
                let json = std::fs::read_to_string(dir.join(d).join("checks.json")).ok()?;
                serde_json::from_str::<Vec<Value>>(&json).ok()
            });
            let Some(parsed) = parsed else {
                checks.push(Check::failure(
                    scenario,
                    "the suite wrote no results for it",
                ));
                continue;
            };
            for c in parsed {
                let field = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
                checks.push(Check {
                    scenario: scenario.clone(),
                    id: field("id").unwrap_or_default(),
                    status: field("status").unwrap_or_default(),
                    error: field("errorMessage"),
                });
            }
        }
        Ok(Self {
            scenarios,
            checks,
            output: output.to_path_buf(),
            elapsed: Duration::ZERO,
        })
    }

    /// SUCCESS counts per (scenario, check id).
    fn successes(&self) -> BTreeMap<(&str, &str), usize> {
        let mut counts = BTreeMap::new();
        for c in self.checks.iter().filter(|c| c.status == "SUCCESS") {
            *counts
                .entry((c.scenario.as_str(), c.id.as_str()))
                .or_default() += 1;
        }
        counts
    }

    /// Per scenario, the checks `direct` passed that this run did not (but for
    /// [`NOT_RELAYABLE`] ones) and the failures `direct` did not have, with what this run got.
    fn lost_against(&self, direct: &Run) -> Vec<String> {
        let ours = self.successes();
        let mut lost: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for ((scenario, id), count) in direct.successes() {
            let exempt = NOT_RELAYABLE
                .iter()
                .any(|(s, i, _)| *s == scenario && *i == id);
            if !exempt && ours.get(&(scenario, id)).copied().unwrap_or(0) < count {
                lost.entry(scenario).or_default().push(id);
            }
        }
        // A failure the direct run did not have counts too, even where no success was lost.
        for c in self.checks.iter().filter(|c| c.status == "FAILURE") {
            let failed_directly = direct
                .checks
                .iter()
                .any(|d| d.scenario == c.scenario && d.id == c.id && d.status == "FAILURE");
            if !failed_directly {
                lost.entry(c.scenario.as_str()).or_default();
            }
        }
        lost.into_iter()
            .map(|(scenario, ids)| {
                // What the gateway got for those checks, and any failure of the scenario.
                let got: Vec<String> = self
                    .checks
                    .iter()
                    .filter(|c| c.scenario == scenario)
                    .filter(|c| ids.contains(&c.id.as_str()) || c.status == "FAILURE")
                    .map(Check::describe)
                    .collect();
                let got = if got.is_empty() {
                    "  (no result through the gateway)".to_string()
                } else {
                    got.join("\n")
                };
                let lost = if ids.is_empty() {
                    "a new failure".to_string()
                } else {
                    format!("lost {}", ids.join(", "))
                };
                format!("- {scenario}: {lost}\n{got}")
            })
            .collect()
    }

    /// Per scenario: passed/failed (and warnings) here, and in `direct` when given.
    fn table(&self, direct: Option<&Run>) -> String {
        let counts = |run: &Run, scenario: &str| {
            let of = |status: &str| {
                run.checks
                    .iter()
                    .filter(|c| c.scenario == scenario && c.status == status)
                    .count()
            };
            let warnings = of("WARNING");
            format!(
                "{} passed, {} failed{}",
                of("SUCCESS"),
                of("FAILURE"),
                if warnings > 0 {
                    format!(", {warnings} warnings")
                } else {
                    String::new()
                }
            )
        };
        let mut out = String::new();
        let leg = if direct.is_some() {
            "gateway"
        } else {
            "direct"
        };
        let _ = writeln!(
            out,
            "conformance ({leg}, {} scenarios, {:.1} s):",
            self.scenarios.len(),
            self.elapsed.as_secs_f64()
        );
        for scenario in &self.scenarios {
            match direct {
                Some(direct) => {
                    let _ = writeln!(
                        out,
                        "  {scenario:32} direct: {:28} gateway: {}",
                        counts(direct, scenario),
                        counts(self, scenario)
                    );
                }
                None => {
                    let _ = writeln!(out, "  {scenario:32} {}", counts(self, scenario));
                }
            }
        }
        let of = |run: &Run, status: &str| run.checks.iter().filter(|c| c.status == status).count();
        let _ = write!(
            out,
            "  total: {} passed, {} failed",
            of(self, "SUCCESS"),
            of(self, "FAILURE")
        );
        if let Some(direct) = direct {
            let _ = write!(
                out,
                " (directly: {} passed, {} failed)",
                of(direct, "SUCCESS"),
                of(direct, "FAILURE")
            );
        }
        out
    }
}

/// The fixture serving Streamable HTTP on a port it picked; killed on drop.
struct FixtureServer {
    child: Child,
    url: String,
}

impl FixtureServer {
    fn start(dir: &Path) -> Result<Self, String> {
        let log_path = dir.join("fixture-stderr.txt");
        let mut child = Command::new(bin("mcpgw-conformance-fixture"))
            .args(["--http", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the conformance fixture: {e}"))?;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Copies stderr to a file for the whole run, passing on the announced URL.
        std::thread::spawn(move || {
            let mut log = std::fs::File::create(&log_path).ok();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_string());
                }
                if let Some(log) = &mut log {
                    let _ = writeln!(log, "{line}");
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
        };
        server.url = rx.recv_timeout(DEADLINE).map_err(|_| {
            format!(
                "the conformance fixture never said where it listens: {}",
                dir.join("fixture-stderr.txt").display()
            )
        })?;
        Ok(server)
    }
}

impl Drop for FixtureServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
