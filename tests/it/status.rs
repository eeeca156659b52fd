//! What status tells about a backend's processes: the memory of its whole process group, and
//! the stderr line that says why its process ended.

use serde_json::{Value, json};

use crate::harness::*;

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

/// A server that fails to start with a Python traceback: the note quotes the exception, not
/// merely the last line; `gateway_status` (any client's) quotes nothing of stderr.
#[tokio::test]
async fn a_failed_start_is_noted_with_the_exception_its_stderr_names() {
    let env = Env::new();
    let script = env.path("server.sh");
    std::fs::write(
        &script,
        "cat >&2 <<'EOF'\n\
         Traceback (most recent call last):\n  \
           File \"/srv/server.py\", line 1, in <module>\n    \
             import x\n\
         ModuleNotFoundError: No module named 'x'\n\
         EOF\n\
         exit 1\n",
    )
    .unwrap();
    env.write_config(&format!(
        "servers:\n  py:\n    command: sh\n    args: [{:?}]\n{}",
        script.display().to_string(),
        env.fixture_server("alpha", &[])
    ));
    let _daemon = env.daemon().await;
    let out = env.ctl(&["start", "py"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    let py = backend(&env.status_json(), "py");
    assert_eq!(py["state"], "failed", "{py}");
    assert_eq!(
        py["stderr_note"], "ModuleNotFoundError: No module named 'x'",
        "{py}"
    );
    let human = String::from_utf8_lossy(&env.ctl(&["status"]).stdout).into_owned();
    assert!(
        human.contains("; stderr: ModuleNotFoundError: No module named 'x'"),
        "{human}"
    );

    let client = env.client(None).await;
    let shown: Value =
        serde_json::from_str(&client.call_text("gateway_status", json!({})).await).unwrap();
    let seen = backend(&shown, "py");
    assert_eq!(seen["state"], "failed", "{seen}");
    assert!(seen.get("stderr_note").is_none(), "{seen}");
    assert!(seen.get("stderr_tail").is_none(), "{seen}");
    client.close().await;
}

/// A running server that crashes after writing what Node writes for an uncaught exception: the
/// note is the error, not `Node.js v20.20.2`. A stop asked for later leaves no note.
#[tokio::test]
async fn a_crash_is_noted_with_its_error_line_and_a_stop_is_not() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("node", &[])));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let node_stack = "\
/home/u/srv/index.js:3
  throw new Error('config file missing: /etc/srv.json');
  ^

Error: config file missing: /etc/srv.json
    at Object.<anonymous> (/home/u/srv/index.js:3:9)
    at Module._compile (node:internal/modules/cjs/loader:1554:14)
    at node:internal/main/run_main_module:36:49

Node.js v20.20.2";
    client
        .call_text("node_stderr_line", json!({"text": node_stack}))
        .await;
    assert!(client.call("node_crash", json!({"code": 1})).await.is_err());
    wait_for("the crash in status", || {
        backend(&env.status_json(), "node")["last_exit"] == "exit code 1"
    })
    .await;
    let node = backend(&env.status_json(), "node");
    assert_eq!(
        node["stderr_note"], "Error: config file missing: /etc/srv.json",
        "{node}"
    );
    let human = String::from_utf8_lossy(&env.ctl(&["status"]).stdout).into_owned();
    assert!(
        human.contains("last exit: exit code 1; stderr: Error: config file missing: /etc/srv.json"),
        "{human}"
    );

    // The next instance is stopped on request: its exit says so, and has no note.
    assert!(env.ctl(&["start", "node"]).status.success());
    assert!(env.ctl(&["kill", "node"]).status.success());
    let node = backend(&env.status_json(), "node");
    assert_ne!(node["last_exit"], "exit code 1", "{node}");
    assert!(node.get("stderr_note").is_none(), "{node}");
    client.close().await;
}
