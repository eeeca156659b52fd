//! The daemon's life: shutdown by signal, death by SIGKILL, started by shims.

use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn sigterm_stops_every_backend_and_removes_the_socket() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[])
    ));
    let mut daemon = env.daemon().await;
    let client = env.client(None).await;
    let grandchild: u32 = client
        .call_text("alpha_spawn_child", json!({}))
        .await
        .parse()
        .unwrap();
    client.call_text("beta_echo", json!({"text": "x"})).await;
    assert_eq!(env.backend_pids().len(), 2);
    let status = daemon.stop().await;
    assert!(status.success(), "clean exit: {status}\n{}", daemon.log());
    assert!(
        env.backend_pids().is_empty(),
        "backends left: {:?}",
        env.backend_pids()
    );
    assert!(
        !pid_alive(grandchild),
        "a backend's child outlived the daemon"
    );
    assert!(!env.socket().exists(), "socket removed");
}

#[tokio::test]
async fn sigkill_of_the_daemon_takes_its_backends_along() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let mut daemon = env.daemon().await;
    let client = env.client(None).await;
    let pid: u32 = client
        .call_text("alpha_pid", json!({}))
        .await
        .parse()
        .unwrap();
    daemon.child.kill().unwrap();
    daemon.child.wait().unwrap();
    wait_for("the orphaned backend to die", || !pid_alive(pid)).await;
}

#[tokio::test]
async fn a_shim_starts_the_daemon_when_none_runs() {
    let env = Env::new();
    env.write_user_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let client = env.client(None).await;
    assert_eq!(
        client
            .call_text("alpha_echo", json!({"text": "auto"}))
            .await,
        "auto"
    );
    let status = env.status_json();
    let daemon_pid = status["pid"].as_u64().unwrap() as u32;
    assert_eq!(
        status["config_path"].as_str().unwrap(),
        env.user_config_path().display().to_string()
    );
    client.close().await;
    assert_eq!(env.ctl(&["stop"]).status.code(), Some(0));
    wait_for("the autostarted daemon to exit", || !pid_alive(daemon_pid)).await;
}

#[tokio::test]
async fn racing_shims_end_up_on_one_daemon() {
    let env = Env::new();
    env.write_user_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let clients = futures::future::join_all((0..4).map(|_| env.client(None))).await;
    let pids = futures::future::join_all(
        clients
            .iter()
            .map(|c| c.call_text("gateway_status", json!({}))),
    )
    .await;
    let daemons: std::collections::BTreeSet<u64> = pids
        .iter()
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(text).unwrap()["pid"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(daemons.len(), 1, "one daemon for all: {daemons:?}");
    let daemon_pid = *daemons.iter().next().unwrap() as u32;
    for client in clients {
        client.close().await;
    }
    assert_eq!(env.ctl(&["stop"]).status.code(), Some(0));
    wait_for("the daemon to exit", || !pid_alive(daemon_pid)).await;
}

#[tokio::test]
async fn no_autostart_fails_clearly() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let out = env
        .command(&bin("mcpgw-shim"))
        .args(["--no-autostart", "--socket"])
        .arg(env.socket())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no mcpgw daemon is running"));
}

#[tokio::test]
async fn autostart_reports_a_daemon_that_cannot_start() {
    let env = Env::new();
    env.write_user_config("servers:\n  x:\n    comand: nope\n");
    let out = env.shim_output(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing but MCP on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("gateway.yaml:3:5"),
        "the daemon's reason reaches the user: {stderr}"
    );
}

/// An MCP client shows a JSON-RPC error where few show a server's stderr: when the shim can
/// reach no daemon, or the one it starts exits on an invalid config, the client's
/// `initialize` is answered with the reason the shim prints.
#[tokio::test]
async fn a_client_is_told_why_no_daemon_answered() {
    let env = Env::new();
    let refused = env
        .try_shim_client(&["--no-autostart"], &[], Recorder::default())
        .await
        .err()
        .expect("no daemon, no session");
    assert!(
        refused.contains("-32000") && refused.contains("no mcpgw daemon is running"),
        "{refused}"
    );

    env.write_user_config("servers:\n  x:\n    comand: nope\n");
    let broken = env
        .try_shim_client(&[], &[], Recorder::default())
        .await
        .err()
        .expect("the daemon cannot start");
    assert!(
        broken.contains("-32000") && broken.contains(":3:5"),
        "{broken}"
    );
}

/// A cloned repository with a `gateway.yaml` is the working directory an MCP client starts the
/// shim in; the daemon the shim starts must serve the user's config, never that file (whose
/// commands would run as the user on the first list).
#[tokio::test]
async fn an_autostarted_daemon_never_serves_the_working_directorys_config() {
    let env = Env::new();
    let planted = env.path("pwned");
    let hostile = format!(
        "servers:\n  repo:\n    command: sh\n    args: [\"-c\", \"touch {}\"]\n",
        planted.display()
    );
    env.write_config(&hostile);
    std::fs::write(env.path("mcp-gateway.yaml"), &hostile).unwrap();

    // No config of the user's: the shim says so, and starts nothing.
    let out = env.shim_output(&[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no config file found") && stderr.contains("MCPGW_CONFIG"),
        "{stderr}"
    );
    assert!(!env.socket().exists(), "no daemon was started");

    // With one, the daemon serves it.
    env.write_user_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let client = env.client(None).await;
    // A list discovers every server of the config served: the repository's would run now.
    let names = client.tool_names().await;
    assert!(names.iter().any(|n| n.starts_with("alpha_")), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("repo_")), "{names:?}");
    let status = env.status_json();
    assert_eq!(
        status["config_path"].as_str().unwrap(),
        env.user_config_path().display().to_string()
    );
    assert!(!planted.exists(), "the repository's command ran");
    client.close().await;
    assert_eq!(env.ctl(&["stop"]).status.code(), Some(0));
}
