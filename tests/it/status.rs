//! What status tells about a backend's processes: the memory of its whole process group.

use serde_json::{Value, json};

use crate::harness::*;

#[cfg(target_os = "linux")]
fn backend(status: &Value, name: &str) -> Value {
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {status}"))
        .clone()
}

/// `mcpgwctl status`'s row of `name`, split into its columns.
#[cfg(target_os = "linux")]
fn human_row(env: &Env, name: &str) -> Vec<String> {
    let out = env.ctl(&["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name}: {text}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// A server started through a wrapper (as `npx` starts `node`) that leaves a 64 MiB process
/// beside the server: status counts the group, which the direct child alone is not.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn status_shows_the_memory_of_the_backends_whole_process_group() {
    const MIB: u64 = 1 << 20;
    let env = Env::new();
    // It holds 64 MiB of written (so resident) memory until its parent, the server, is gone.
    let hog = env.path("hog.py");
    std::fs::write(
        &hog,
        "import os, time\n\
         x = b'x' * (64 << 20)\n\
         parent = os.getppid()\n\
         while os.getppid() == parent:\n    time.sleep(0.2)\n",
    )
    .unwrap();
    let script = format!(
        "python3 '{}' & exec '{}' --marker {} --name mem",
        hog.display(),
        fixture().display(),
        env.marker
    );
    env.write_config(&format!(
        "servers:\n  mem:\n    command: sh\n    args: {}\n",
        serde_json::to_string(&["-c", &script]).unwrap()
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("mem_echo", json!({"text": "up"})).await,
        "up"
    );

    wait_for("the group's 64 MiB in status", || {
        let mem = backend(&env.status_json(), "mem");
        mem["group_rss_bytes"].as_u64().unwrap_or(0) >= 64 * MIB
    })
    .await;
    let mem = backend(&env.status_json(), "mem");
    assert_eq!(mem["group_processes"], 2, "{mem}");
    let own = mem["rss_bytes"].as_u64().expect("the child's own memory");
    assert!(own > 0 && own < 64 * MIB, "the server alone: {mem}");
    assert!(mem["group_rss_bytes"].as_u64().unwrap() > own, "{mem}");

    // The human table shows the group: PROCS 2, RSS past 64 MiB.
    let row = human_row(&env, "mem");
    assert_eq!(row[3], "2", "{row:?}");
    let rss: f64 = row[4].strip_suffix('M').unwrap().parse().unwrap();
    assert!(rss >= 64.0, "{row:?}");

    // gateway_status shows the same memory to a client.
    let shown: Value =
        serde_json::from_str(&client.call_text("gateway_status", json!({})).await).unwrap();
    let seen = backend(&shown, "mem");
    assert!(
        seen["group_rss_bytes"].as_u64().unwrap() >= 64 * MIB,
        "{seen}"
    );
    client.close().await;
}
