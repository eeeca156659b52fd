//! A daemon restart under a connected client (issue 11, item 9): the shim reconnects, replays
//! the client's handshake or open listens, answers what was in flight with an error, tells
//! the client its lists may have changed, and goes on; or gives up within its bound.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use rmcp::model::SubscriptionFilter;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::harness::*;
use crate::listen::{is_tools_changed, next_matching};

fn one_server(env: &Env) -> String {
    let config = format!("servers:\n{}", env.fixture_server("fx", &[]));
    env.write_config(&config);
    config
}

/// The pid of the daemon that serves `client` now.
async fn serving_pid(client: &Client) -> u64 {
    let status: Value =
        serde_json::from_str(&client.call_text("gateway_status", json!({})).await).unwrap();
    status["pid"].as_u64().unwrap()
}

/// Waits until the daemon has a call of `server` in flight (it reached the backend).
async fn wait_in_flight(env: &Env, server: &str) {
    let start = std::time::Instant::now();
    loop {
        let status = env.status_json();
        let busy = status["backends"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["name"] == server && b["inflight"].as_u64() > Some(0));
        if busy {
            return;
        }
        assert!(start.elapsed() < DEADLINE, "no call in flight: {status}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn an_rmcp_client_keeps_its_session_across_a_daemon_restart() {
    let env = Env::new();
    one_server(&env);
    let mut daemon = env.daemon().await;
    // Autostart allowed: the shim tries it and fails (no config of the user's) meanwhile.
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("fx_echo", json!({"text": "before"})).await,
        "before"
    );
    let first = serving_pid(&client).await;

    daemon.stop().await;
    let _daemon = env.daemon().await;
    assert_eq!(
        client.call_text("fx_echo", json!({"text": "after"})).await,
        "after"
    );
    assert_ne!(serving_pid(&client).await, first, "a new daemon answers");
    wait_for("the shim's tools list_changed", || {
        *client.recorder.tools_changed.lock().unwrap() >= 1
    })
    .await;
    assert!(*client.recorder.prompts_changed.lock().unwrap() >= 1);
    assert!(*client.recorder.resources_changed.lock().unwrap() >= 1);
    // The session is the client's own: its `initialize` was replayed, so the new daemon
    // knows its capabilities (a sampling round trip needs them).
    assert!(
        client
            .call_text("fx_sample", json!({"prompt": "again"}))
            .await
            .contains("pong to again")
    );
}

/// Runs an SDK's restart client (`program args…`), which prints `ready …` after its first
/// call, waits for a line on stdin, calls again and prints `done <text> <list changes>`;
/// the daemon is restarted in between.
async fn restart_under(env: &Env, daemon: &mut Daemon, program: &Path, args: &[&Path]) {
    let mut cmd = tokio::process::Command::from(env.command(program));
    cmd.args(args)
        .arg(bin("mcpgw-shim"))
        .arg(env.socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(env.path("sdk-client.log")).unwrap())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn the SDK client");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let log = || std::fs::read_to_string(env.path("sdk-client.log")).unwrap_or_default();
    let mut next = async || {
        tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the SDK client answers in time")
            .unwrap()
            .unwrap_or_else(|| panic!("the SDK client ended:\n{}", log()))
    };
    assert_eq!(next().await, "ready before");

    daemon.stop().await;
    *daemon = env.daemon().await;
    stdin.write_all(b"go\n").await.unwrap();
    let done = next().await;
    assert!(done.starts_with("done after "), "{done}\n{}", log());
    let status = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("the SDK client exits")
        .unwrap();
    assert!(status.success(), "{status}\n{}", log());
}

#[tokio::test]
async fn a_python_sdk_client_keeps_its_session_across_a_daemon_restart() {
    let env = Env::new();
    one_server(&env);
    let mut daemon = env.daemon().await;
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let python = py.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install \
         -r tests/py/requirements.txt` first",
        python.display()
    );
    restart_under(&env, &mut daemon, &python, &[&py.join("restart_client.py")]).await;
}

#[tokio::test]
async fn a_typescript_sdk_client_keeps_its_session_across_a_daemon_restart() {
    let env = Env::new();
    one_server(&env);
    let mut daemon = env.daemon().await;
    let npm = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/npm");
    assert!(
        npm.join("node_modules/@modelcontextprotocol/sdk").exists(),
        "the TypeScript SDK is missing: run `npm ci --prefix tests/npm` first"
    );
    restart_under(
        &env,
        &mut daemon,
        Path::new("node"),
        &[&npm.join("restart-client.mjs")],
    )
    .await;
}

/// A call in flight when the daemon dies gets the shim's error at once, and the session goes
/// on with a daemon someone else starts (`--no-autostart` still reconnects).
#[tokio::test]
async fn a_call_in_flight_when_the_daemon_dies_gets_an_error_not_a_hang() {
    let env = Env::new();
    one_server(&env);
    let mut daemon = env.daemon().await;
    let client = env.shim_client(&["--no-autostart"], &[]).await;
    let slow = {
        let peer = client.service.peer().clone();
        tokio::spawn(async move {
            let params = rmcp::model::CallToolRequestParams::new("fx_slow")
                .with_arguments(json!({"ms": 600_000}).as_object().unwrap().clone());
            peer.call_tool(params).await
        })
    };
    wait_in_flight(&env, "fx").await;
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    let error = tokio::time::timeout(DEADLINE, slow)
        .await
        .expect("the call in flight is answered")
        .unwrap()
        .expect_err("with an error");
    let message = error.to_string();
    assert!(
        message.contains("restarted or stopped") && message.contains("tools/call"),
        "{message}"
    );
    assert!(
        std::os::unix::net::UnixStream::connect(env.socket()).is_err(),
        "--no-autostart: the shim started no daemon"
    );

    let _daemon = env.daemon().await;
    assert_eq!(
        client.call_text("fx_echo", json!({"text": "on"})).await,
        "on"
    );
}

/// A 2026-07-28 client's open `subscriptions/listen` is opened again on the new daemon: the
/// client hears of a change there on the same subscription (the shim's list_changed after the
/// restart first, then the new daemon's own).
#[tokio::test]
async fn a_modern_clients_listen_survives_a_daemon_restart() {
    let env = Env::new();
    let one = one_server(&env);
    let mut daemon = env.daemon().await;
    let modern = env.modern_client(None).await;
    assert!(modern.tool_names().await.contains(&"fx_echo".to_string()));
    let mut filter = SubscriptionFilter::new();
    filter.tools_list_changed = Some(true);
    let mut subscription = modern.service.peer().listen(filter).await.unwrap();

    daemon.stop().await;
    let _daemon = env.daemon().await;
    next_matching(
        &mut subscription,
        "the shim's tools list_changed",
        is_tools_changed,
    )
    .await;
    assert!(modern.tool_names().await.contains(&"fx_echo".to_string()));

    env.write_config(&format!("{one}{}", env.fixture_server("beta", &[])));
    next_matching(
        &mut subscription,
        "the new daemon's tools list_changed",
        is_tools_changed,
    )
    .await;
    assert!(modern.tool_names().await.contains(&"beta_echo".to_string()));
}

/// With `--no-autostart` and nobody starting a daemon, the shim answers the call in flight,
/// then gives up after its bound (`MCPGW_RECONNECT_MS`), saying so.
#[tokio::test]
async fn without_a_new_daemon_the_shim_gives_up_after_its_bound() {
    let env = Env::new();
    one_server(&env);
    let mut daemon = env.daemon().await;
    let stderr = env.path("shim-gives-up.log");
    let mut raw = RawClient::connect_with(
        &env,
        &["--no-autostart"],
        &[("MCPGW_RECONNECT_MS", "1500")],
        "2025-06-18",
        Some(&stderr),
    )
    .await;
    raw.send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "fx_slow", "arguments": {"ms": 600_000}}}))
        .await;
    wait_in_flight(&env, "fx").await;
    daemon.stop().await;

    let answer = raw.recv().await;
    assert_eq!(answer["id"], 7, "{answer}");
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    let status = raw.exit_status().await;
    assert_eq!(status.code(), Some(1));
    let said = std::fs::read_to_string(&stderr).unwrap();
    assert!(
        said.contains("none answered again within") && said.contains("no mcpgw daemon is running"),
        "{said}"
    );
    assert!(!env.socket().exists(), "no daemon was started");
}
