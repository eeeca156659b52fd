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

/// Issue 11, item 3: the members of tools, prompts, resources, templates and results that no
/// SDK knows (a newer spec's `execution.taskSupport`, `x-future`) reach the client as the
/// server wrote them — on the byte path and on rmcp's (`MCPGW_FAST_PATH=0`, and 2026-07-28
/// per-request metadata), over both of the server's tool pages, and from the schema cache
/// when a new daemon lists without starting the server.
#[tokio::test]
async fn members_no_sdk_knows_pass_through_lists_results_and_the_cache() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/future_server.py");
    let future = serde_json::json!({"nested": [1, "two", null], "since": "2027-01-01"});
    let modern = modern_meta();
    for fast in ["1", "0"] {
        let env = Env::new();
        env.write_config(&format!(
            "servers:\n  future:\n    command: python3\n    args: [{:?}]\n",
            script.display().to_string()
        ));
        for daemon_run in ["discovers", "reads its cache"] {
            let mut daemon = env.start_daemon_with(&[("MCPGW_FAST_PATH", fast)]);
            daemon.wait_ready(&env).await;
            let mut raw = RawClient::connect(&env, None).await;
            let what = format!("fast path {fast}, a daemon that {daemon_run}");
            for meta in [serde_json::json!({}), modern.clone()] {
                let mut list = async |method: &str, id: u64| {
                    raw.send(
                        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method,
                        "params": {"_meta": meta}}),
                    )
                    .await;
                    let (answer, _) = raw.until_response(&serde_json::json!(id)).await;
                    answer["result"].clone()
                };
                let tools = list("tools/list", 1).await;
                let research = tools["tools"]
                    .as_array()
                    .and_then(|tools| tools.iter().find(|t| t["name"] == "future_research"))
                    .unwrap_or_else(|| panic!("{what}: no future_research in {tools}"));
                assert_eq!(
                    research["execution"]["taskSupport"], "optional",
                    "{what}: {research}"
                );
                assert_eq!(research["x-future"], future, "{what}: {research}");
                let names: Vec<&str> = tools["tools"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|t| t["name"].as_str())
                    .collect();
                assert!(
                    names.contains(&"future_plain"),
                    "{what}: the second page: {names:?}"
                );
                let prompts = list("prompts/list", 2).await;
                assert_eq!(
                    prompts["prompts"][0]["x-future"], future,
                    "{what}: {prompts}"
                );
                let resources = list("resources/list", 3).await;
                assert_eq!(
                    resources["resources"][0]["x-future"], future,
                    "{what}: {resources}"
                );
                let templates = list("resources/templates/list", 4).await;
                assert_eq!(
                    templates["resourceTemplates"][0]["x-future"], future,
                    "{what}: {templates}"
                );
            }
            if daemon_run == "reads its cache" {
                let status = env.status_json();
                assert_eq!(
                    status["backends"][0]["state"], "stopped",
                    "{what}: listing started the server: {status}"
                );
            }
            // Initialize-era, then 2026-07-28 (the multi round-trip bridge's path).
            for (id, meta) in [(9, serde_json::json!({})), (10, modern.clone())] {
                raw.send(
                    serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": "future_research", "arguments": {"q": "?"}, "_meta": meta}}),
                )
                .await;
                let (called, _) = raw.until_response(&serde_json::json!(id)).await;
                assert_eq!(called["result"]["x-future"], future, "{what}: {called}");
            }
            raw.close().await;
            assert!(daemon.stop().await.success());
        }
    }
}

/// Issue 11, item 3 over Streamable HTTP: rmcp's HTTP service answers with typed results, and
/// the listener puts back what they leave out — in a session (lists the byte path does not
/// answer, a call on rmcp's path with the byte path off) and for a stateless 2026-07-28
/// request.
#[tokio::test]
async fn members_no_sdk_knows_pass_through_http() {
    use crate::http::{ADMIN, HttpDaemon, in_session, open_session, post_mcp, sse_messages};
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/future_server.py");
    let future = serde_json::json!({"nested": [1, "two", null], "since": "2027-01-01"});
    let env = Env::new();
    let http = HttpDaemon::start_with_vars(
        &env,
        |port| {
            format!(
                "servers:\n  future:\n    command: python3\n    args: [{:?}]\nroles:\n  admin: null\n\
                 http:\n  listen: \"127.0.0.1:{port}\"\n  tokens:\n    - token: {ADMIN}\n      role: admin\n",
                script.display().to_string()
            )
        },
        &[("MCPGW_FAST_PATH", "0")],
    )
    .await;
    let answer_of = |body: String, id: u64| {
        let message = match serde_json::from_str::<serde_json::Value>(&body) {
            Ok(message) => message,
            Err(_) => sse_messages(&body)
                .into_iter()
                .find(|m| m["id"] == id)
                .unwrap_or_else(|| panic!("no answer {id} in {body}")),
        };
        message["result"].clone()
    };
    let session = open_session(http.port).await;
    let asks = [
        ("tools/list", "tools", ("name", "future_research")),
        ("prompts/list", "prompts", ("name", "future_brief")),
        ("resources/list", "resources", ("uri", "future://notes")),
        (
            "resources/templates/list",
            "resourceTemplates",
            ("uriTemplate", "future://notes/{id}"),
        ),
    ];
    for (id, (method, items, (key, name))) in (10..).zip(asks) {
        let request =
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {}});
        let response = in_session(http.port, &session, &request)
            .send()
            .await
            .unwrap();
        let result = answer_of(response.text().await.unwrap(), id);
        let item = result[items]
            .as_array()
            .and_then(|items| items.iter().find(|i| i[key] == name))
            .unwrap_or_else(|| panic!("{method}: no {name} in {result}"));
        assert_eq!(item["x-future"], future, "{method}: {result}");
    }
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call",
        "params": {"name": "future_research", "arguments": {}, "_meta": {"progressToken": 5}}});
    let response = in_session(http.port, &session, &call).send().await.unwrap();
    let result = answer_of(response.text().await.unwrap(), 20);
    assert_eq!(result["x-future"], future, "{result}");

    // A stateless 2026-07-28 request: no session, its protocol in its own metadata.
    let modern = modern_meta();
    let list = serde_json::json!({"jsonrpc": "2.0", "id": 30, "method": "tools/list",
        "params": {"_meta": modern}});
    let response = post_mcp(http.port, &list)
        .bearer_auth(ADMIN)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let result = answer_of(body, 30);
    let research = result["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == "future_research"))
        .unwrap_or_else(|| panic!("no future_research in {result}"));
    assert_eq!(research["execution"]["taskSupport"], "optional", "{result}");
    assert_eq!(research["x-future"], future, "{result}");
    let call = serde_json::json!({"jsonrpc": "2.0", "id": 31, "method": "tools/call",
        "params": {"name": "future_research", "arguments": {}, "_meta": modern}});
    let response = post_mcp(http.port, &call)
        .bearer_auth(ADMIN)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "future_research")
        .send()
        .await
        .unwrap();
    let body = response.text().await.unwrap();
    assert_eq!(answer_of(body, 31)["x-future"], future);
}

/// Issue 11, item 10: a daemon a shim starts does not take on that client's environment or
/// working directory. It runs in its config's directory with a documented part of the
/// environment (and the variables its config names); a per-client server's `pass_env`
/// variables come from each client's own environment, sent in the shim's hello.
#[tokio::test]
async fn an_autostarted_daemon_is_independent_of_the_client_that_started_it() {
    let env = Env::new();
    let per_client = env.fixture_server("px", &[]);
    env.write_user_config(&format!(
        "servers:\n{}    env: {{T: \"${{MY_TOKEN}}\", P: \"${{PROJECT_DIR:-none}}\"}}\n{per_client}    scope: per-client\n    pass_env: [PROJECT_DIR]\n",
        env.fixture_server("fx", &[])
    ));
    let client = |project: &'static str| {
        let envs = vec![
            ("PROJECT_ONLY", project),
            ("MY_TOKEN", "tok"),
            ("PROJECT_DIR", project),
        ];
        let env = &env;
        async move { env.shim_client(&[], &envs).await }
    };
    // The first client starts the daemon.
    let first = client("/first").await;
    let read = async |client: &Client, tool: &str, name: &str| {
        client
            .call_text(tool, serde_json::json!({"name": name}))
            .await
    };
    assert_eq!(read(&first, "fx_env", "PROJECT_ONLY").await, "<unset>");
    assert_eq!(
        read(&first, "fx_env", "T").await,
        "tok",
        "a variable the config names"
    );
    let cwd = first.call_text("fx_cwd", serde_json::json!({})).await;
    assert_eq!(
        std::path::Path::new(&cwd),
        env.user_config_path()
            .parent()
            .unwrap()
            .canonicalize()
            .unwrap(),
        "the daemon runs in its config's directory"
    );
    assert_eq!(read(&first, "px_env", "PROJECT_DIR").await, "/first");
    // A later client's own variables reach its own instance, not the shared server.
    let second = client("/second").await;
    assert_eq!(read(&second, "px_env", "PROJECT_DIR").await, "/second");
    assert_eq!(read(&second, "px_env", "PROJECT_ONLY").await, "<unset>");
    assert_eq!(read(&first, "px_env", "PROJECT_DIR").await, "/first");
    // The daemon has the first client's PROJECT_DIR (the config names it, so its shared
    // servers see it): a client without one does not get it in its own instance.
    assert_eq!(read(&first, "fx_env", "P").await, "/first");
    let third = env.shim_client(&[], &[]).await;
    assert_eq!(read(&third, "px_env", "PROJECT_DIR").await, "<unset>");
    // A 2026-07-28 client's calls are bridged, each a session of its own: they still take the
    // client's environment.
    let modern = env
        .modern_client_with(None, &[("PROJECT_DIR", "/modern")])
        .await;
    assert_eq!(read(&modern, "px_env", "PROJECT_DIR").await, "/modern");
    // Gone before the daemon stops: a shim still running would start a new one.
    for client in [first, second, third, modern] {
        client.close().await;
    }
    assert_eq!(env.ctl(&["stop"]).status.code(), Some(0));
}
