//! Issue 11: every real server works through the gateway as it does directly.

use crate::harness::*;

/// A server that declares resources but answers `resources/templates/list` with −32601 (the
/// Python SDK's low-level `Server` without a template handler: mcp-server-sqlite) keeps its
/// tools, prompts and resources: the list it does not implement is empty, with a warning.
#[tokio::test]
async fn a_list_the_server_does_not_implement_is_empty_not_a_failed_start() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}",
        env.fixture_server("fx", &["--no-templates"])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    assert!(names.iter().any(|n| n == "fx_echo"), "{names:?}");
    assert_eq!(
        client
            .call_text("fx_echo", serde_json::json!({"text": "hi"}))
            .await,
        "hi"
    );
    let peer = client.service.peer();
    let resources = peer.list_all_resources().await.expect("resources/list");
    assert!(
        resources.iter().any(|r| r.uri.ends_with("static/hello")),
        "{resources:?}"
    );
    let templates = peer
        .list_all_resource_templates()
        .await
        .expect("resources/templates/list");
    assert!(templates.is_empty(), "{templates:?}");
    assert!(
        env.daemon_log_contains("resources/templates/list is not implemented by the server"),
        "no warning in the daemon's log"
    );
}

/// A console script installed in the test venv (`tests/py/requirements.txt`).
fn python_server(script: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py/.venv/bin")
        .join(script);
    assert!(
        path.exists(),
        "{} is missing: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install \
         -r tests/py/requirements.txt` first",
        path.display()
    );
    path
}

/// mcp-server-sqlite 2025.4.25 from PyPI (resources declared, no template handler) works
/// through the gateway: its six tools are listed and called.
#[tokio::test]
async fn mcp_server_sqlite_works_through_the_gateway() {
    let env = Env::new();
    let server = python_server("mcp-server-sqlite");
    env.write_config(&format!(
        "servers:\n  sqlite:\n    command: {:?}\n    args: [\"--db-path\", {:?}]\n",
        server.display().to_string(),
        env.path("test.db").display().to_string()
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    for tool in [
        "sqlite_append_insight",
        "sqlite_create_table",
        "sqlite_describe_table",
        "sqlite_list_tables",
        "sqlite_read_query",
        "sqlite_write_query",
    ] {
        assert!(names.iter().any(|n| n == tool), "{tool} missing: {names:?}");
    }
    client
        .call_text(
            "sqlite_create_table",
            serde_json::json!({"query": "CREATE TABLE gateway_test (x INTEGER)"}),
        )
        .await;
    let tables = client
        .call_text("sqlite_list_tables", serde_json::json!({}))
        .await;
    assert!(tables.contains("gateway_test"), "{tables}");
}

/// Every binary answers `--version` (the shim rejected it).
#[test]
fn every_binary_answers_version() {
    for name in ["mcpgwd", "mcpgwctl", "mcpgw-shim"] {
        let out = std::process::Command::new(bin(name))
            .arg("--version")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {out:?}");
        assert!(
            stdout.trim_end().ends_with(env!("CARGO_PKG_VERSION")),
            "{name}: {stdout}"
        );
    }
}

/// The error a call of `name` (a tool the client cannot call) is answered with.
async fn unknown_tool_error(client: &Client, name: &'static str) -> String {
    client
        .service
        .peer()
        .call_tool(rmcp::model::CallToolRequestParams::new(name))
        .await
        .expect_err("no such tool")
        .to_string()
}

/// A call to a tool of a server that failed to start says which server failed and why, not
/// just "unknown tool"; a role that could not see the tool anyway learns nothing of it; and
/// `mcpgwctl list` names the server its list is missing.
#[tokio::test]
async fn a_tool_of_a_server_that_failed_to_start_names_the_failure() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}  broken:\n    command: sh\n    args: [\"-c\", \"echo 'Error: cannot open the database' >&2; exit 3\"]\n\
         roles:\n  all: null\n  fx_only: [\"fx_*\"]\n",
        env.fixture_server("fx", &[])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(Some("all")).await;
    assert!(client.tool_names().await.contains(&"fx_echo".to_string()));
    let error = unknown_tool_error(&client, "broken_query").await;
    assert!(
        error.contains("server `broken` failed to start") && error.contains("exit code 3"),
        "{error}"
    );
    let other = env.client(Some("fx_only")).await;
    let error = unknown_tool_error(&other, "broken_query").await;
    assert!(!error.contains("broken`"), "{error}");
    assert!(error.contains("unknown tool `broken_query`"), "{error}");

    let listed = env.ctl(&["list"]);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        stdout.contains("not listed, failed to start") && stdout.contains("  broken: "),
        "{stdout}"
    );
}

/// A server that hangs in its start (a cold `npx -y` download, a server waiting for a login)
/// does not hold every client's first list for its whole startup timeout: the list comes
/// after `discovery_wait` with what is known, and the late server arrives with list_changed.
#[tokio::test]
async fn a_hanging_server_does_not_hold_the_first_list() {
    let env = Env::new();
    let gate = env.path("gate");
    let late = format!(
        "while [ ! -e {gate} ]; do sleep 0.05; done; exec {:?} --marker {} --name late",
        fixture().display().to_string(),
        env.marker,
        gate = gate.display()
    );
    env.write_config(&format!(
        "startup_timeout: 60s\ndiscovery_wait: 300ms\nservers:\n{}  late:\n    command: sh\n    args: [\"-c\", {late:?}]\n",
        env.fixture_server("fx", &[]),
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let started = std::time::Instant::now();
    let names = client.tool_names().await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the list waited for the hanging server"
    );
    assert!(names.contains(&"fx_echo".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("late_")), "{names:?}");

    let before = *client.recorder.tools_changed.lock().unwrap();
    std::fs::write(&gate, "").unwrap();
    wait_for("list_changed when the late server is discovered", || {
        *client.recorder.tools_changed.lock().unwrap() > before
    })
    .await;
    assert!(client.tool_names().await.contains(&"late_echo".to_string()));
    // A call to a tool of a server still being discovered waits for it rather than failing.
    assert_eq!(
        client
            .call_text("late_echo", serde_json::json!({"text": "here"}))
            .await,
        "here"
    );
}
