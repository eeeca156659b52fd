//! The benchmark's smoke pass, as CI runs it: every figure with tiny counts against the
//! workspace's binaries of this profile (so `cargo build --workspace` first, as CI does; a
//! nested cargo build here would rebuild half the workspace on every run, its environment
//! differing from the outer one). It checks that the bench runs and that what must hold
//! whatever the speed does hold (no backend started by a cold start, no call lost to a reload,
//! the bounds on what clients and backends send hold); it judges no timing.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn smoke_pass_runs_every_figure() {
    let bench = Path::new(env!("CARGO_BIN_EXE_mcpgw-bench"));
    let bin_dir = bench.parent().expect("the bench sits in a target dir");
    for name in [
        "mcpgwd",
        "mcpgw-shim",
        "mcpgwctl",
        "mcpgw-fixture",
        "mcpgw-relay",
    ] {
        assert!(
            bin_dir.join(name).is_file(),
            "{name} is missing in {}: build the workspace first (`cargo build --workspace`)",
            bin_dir.display()
        );
    }

    let start = Instant::now();
    let out = Command::new(bench)
        .args(["--smoke", "--json", "--bin-dir"])
        .arg(bin_dir)
        .output()
        .expect("run mcpgw-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "mcpgw-bench --smoke failed:\n{stderr}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "the smoke pass took {:?}; keep it short",
        start.elapsed()
    );

    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--json printed no JSON ({e}):\n{stderr}"));
    assert_eq!(report["smoke"], true);
    let sections = report["sections"].as_array().expect("sections");
    let ids: Vec<&str> = sections.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "latency",
            "throughput",
            "cold-start",
            "memory",
            "reload",
            "scale",
            "bounds",
            "plugins"
        ]
    );
    for section in sections {
        assert!(
            section["data"].get("error").is_none(),
            "{} failed: {}",
            section["id"],
            section["data"]["error"]
        );
        assert!(
            !section["targets"].as_array().expect("targets").is_empty(),
            "{} judged no target",
            section["id"]
        );
    }
    let data = |id: &str| {
        sections
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["data"].clone())
            .unwrap()
    };
    assert_eq!(data("cold-start")["backends_started"], 0, "{stderr}");
    assert_eq!(data("reload")["calls_failed"], 0, "{stderr}");
    assert!(data("reload")["calls_ok"].as_u64().unwrap() > 0);
    assert!(data("latency")["small"]["shim"]["p50_us"].as_f64().unwrap() > 0.0);
    assert!(data("plugins")["python"]["p50_us"].as_f64().unwrap() > 0.0);
    // The bounds hold at any speed: the unread session ends, the over-long line fails its
    // call, the stderr flood is drained, and `mcpgwctl status` always answers.
    let bounds = data("bounds");
    assert_eq!(bounds["unread_ended"], true, "{stderr}");
    assert_eq!(bounds["stdout_refused"], true, "{stderr}");
    assert_eq!(bounds["stderr_ok"], true, "{stderr}");
    assert_eq!(bounds["status_failed"], 0, "{stderr}");
}
