//! The gateway core: aggregation, routing, roles, lazy start, sharing, idle stop, crashes,
//! config errors and socket ownership.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// Two fixture servers, `alpha` and `beta`, with the given global settings appended.
fn two_servers(env: &Env, extra: &str) {
    let yaml = format!(
        "servers:\n{}{}{extra}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &["--extra-tools", "2"]),
    );
    env.write_config(&yaml);
}

#[tokio::test]
async fn aggregated_list_has_prefixed_tools_with_real_schemas() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let tools = client.tools().await;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "alpha_echo",
        "alpha_add",
        "beta_echo",
        "beta_t0",
        "beta_t1",
        "gateway_status",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(!names.contains(&"alpha_t0"));
    let add = tools.iter().find(|t| t.name == "alpha_add").unwrap();
    let schema = serde_json::Value::Object((*add.input_schema).clone());
    assert_eq!(
        schema["properties"]["a"]["type"], "number",
        "schema: {schema}"
    );
    assert!(add.description.as_deref().unwrap_or("").len() > 3);
    client.close().await;
}

#[tokio::test]
async fn calls_route_to_the_owning_backend_with_the_original_name() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("alpha_add", json!({"a": 2, "b": 3})).await,
        "5"
    );
    assert_eq!(
        client
            .call_text("beta_t1", json!({"text": "via beta"}))
            .await,
        "via beta"
    );
    let alpha_pid = client.call_text("alpha_pid", json!({})).await;
    let beta_pid = client.call_text("beta_pid", json!({})).await;
    assert_ne!(alpha_pid, beta_pid, "two servers, two processes");

    let err = client.call("alpha_nope", json!({})).await.unwrap_err();
    assert!(err.contains("unknown tool `alpha_nope`"), "{err}");
    // A tool-level error is passed through as a result, not turned into a protocol error.
    let failed = client
        .call("alpha_fail", json!({"message": "boom"}))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text_of(&failed), "boom");
    client.close().await;
}

#[tokio::test]
async fn roles_filter_lists_and_calls() {
    let env = Env::new();
    two_servers(
        &env,
        "roles:\n  admin: null\n  readonly: [\"alpha_*\", \"gateway_status\"]\n",
    );
    let _daemon = env.daemon().await;

    let readonly = env.client(Some("readonly")).await;
    let names = readonly.tool_names().await;
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("alpha_") || n == "gateway_status"),
        "{names:?}"
    );
    assert!(names.contains(&"alpha_echo".to_string()));
    let err = readonly
        .call("beta_echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert!(
        err.contains("unknown tool `beta_echo` (role `readonly`)"),
        "{err}"
    );
    // A hidden tool and one that does not exist are told apart by nothing.
    let missing = readonly
        .call("nothing_echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert_eq!(missing.replace("nothing_echo", "beta_echo"), err);
    assert_eq!(
        readonly
            .call_text("alpha_echo", json!({"text": "ok"}))
            .await,
        "ok"
    );

    let admin = env.client(Some("admin")).await;
    assert!(admin.tool_names().await.contains(&"beta_echo".to_string()));
    let anonymous = env.client(None).await;
    assert!(
        anonymous
            .tool_names()
            .await
            .contains(&"beta_echo".to_string())
    );
}

#[tokio::test]
async fn default_role_applies_when_none_is_given() {
    let env = Env::new();
    two_servers(&env, "roles:\n  default: [\"beta_*\"]\n  admin: null\n");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    assert!(names.iter().all(|n| n.starts_with("beta_")), "{names:?}");
    // The env var of mcp-unify selects a role too.
    let mut cmd = env.command(&bin("mcpgw-shim"));
    cmd.env("MCP_GATEWAY_ROLE", "nosuch")
        .arg("--socket")
        .arg(env.socket());
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role `nosuch`"));
}

#[tokio::test]
async fn unknown_role_is_a_clear_error_not_a_hang() {
    let env = Env::new();
    two_servers(&env, "roles:\n  admin: null\n  readonly: [\"alpha_*\"]\n");
    let _daemon = env.daemon().await;
    let err = tokio::time::timeout(DEADLINE, env.try_client(Some("writer")))
        .await
        .expect("no hang")
        .err()
        .expect("initialize fails");
    assert!(
        err.contains("unknown role `writer`; known roles: admin, readonly"),
        "{err}"
    );
}

#[tokio::test]
async fn backends_start_lazily_when_the_schema_cache_is_warm() {
    let env = Env::new();
    two_servers(&env, "");
    {
        // First run discovers both servers and fills the cache.
        let mut daemon = env.daemon().await;
        let client = env.client(None).await;
        assert!(
            client
                .tool_names()
                .await
                .contains(&"alpha_echo".to_string())
        );
        client.close().await;
        daemon.stop().await;
    }
    wait_for("backends of the first daemon to exit", || {
        env.backend_pids().is_empty()
    })
    .await;

    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    assert!(names.contains(&"alpha_echo".to_string()) && names.contains(&"beta_t1".to_string()));
    assert!(
        env.backend_pids().is_empty(),
        "listing from a warm cache spawned a backend"
    );
    let status = env.status_json();
    assert!(
        status["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["state"] == "stopped")
    );

    assert_eq!(
        client.call_text("alpha_echo", json!({"text": "hi"})).await,
        "hi"
    );
    assert_eq!(
        env.backend_pids().len(),
        1,
        "only the called server started"
    );
}

#[tokio::test]
async fn concurrent_first_calls_share_one_start_and_clients_share_one_process() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}",
        env.fixture_server("slowstart", &["--startup-delay-ms", "500"])
    ));
    let _daemon = env.daemon().await;
    let a = env.client(None).await;
    let b = env.client(None).await;
    let calls = (0..4).map(|i| {
        let client = if i % 2 == 0 { &a } else { &b };
        client.call_text("slowstart_pid", json!({}))
    });
    let pids = futures::future::join_all(calls).await;
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "one process for all: {pids:?}"
    );
    assert_eq!(env.backend_pids().len(), 1);
}

#[tokio::test]
async fn idle_backends_stop_with_their_whole_process_group() {
    let env = Env::new();
    env.write_config(&format!(
        "idle_timeout: 1\nservers:\n{}",
        env.fixture_server("idler", &[])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let grandchild: u32 = client
        .call_text("idler_spawn_child", json!({}))
        .await
        .parse()
        .unwrap();
    assert!(pid_alive(grandchild));
    assert_eq!(env.backend_pids().len(), 1);
    wait_for("the idle backend to stop", || env.backend_pids().is_empty()).await;
    wait_for("the backend's grandchild to be gone", || {
        !pid_alive(grandchild)
    })
    .await;
    wait_for("status to say stopped", || {
        env.status_json()["backends"][0]["state"] == "stopped"
    })
    .await;
    // The next call starts it again.
    assert_eq!(
        client
            .call_text("idler_echo", json!({"text": "back"}))
            .await,
        "back"
    );
}

#[tokio::test]
async fn per_server_idle_timeout_overrides_the_global_one() {
    let env = Env::new();
    let yaml = format!(
        "idle_timeout: 0\nservers:\n{}    idle_timeout: 0.5\n{}",
        env.fixture_server("quick", &[]),
        env.fixture_server("forever", &[]),
    );
    env.write_config(&yaml);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let quick: u32 = client
        .call_text("quick_pid", json!({}))
        .await
        .parse()
        .unwrap();
    let forever: u32 = client
        .call_text("forever_pid", json!({}))
        .await
        .parse()
        .unwrap();
    wait_for("the quick backend to stop", || !pid_alive(quick)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(pid_alive(forever), "idle_timeout 0 means never");
}

#[tokio::test]
async fn a_crashing_backend_fails_its_call_and_the_next_call_restarts_it() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("crashy", &[])));
    let daemon = env.daemon().await;
    let client = env.client(None).await;
    let first = client.call_text("crashy_pid", json!({})).await;
    let err = client
        .call("crashy_crash", json!({"code": 7}))
        .await
        .unwrap_err();
    assert!(err.contains("crashy"), "the error names the server: {err}");
    let second = client.call_text("crashy_pid", json!({})).await;
    assert_ne!(first, second, "a new process serves the next call");
    wait_for("the exit status in status", || {
        env.status_json()["backends"][0]["last_exit"] == "exit code 7"
    })
    .await;
    let status = env.status_json();
    let backend = &status["backends"][0];
    assert!(backend["errors"].as_u64().unwrap() >= 1);
    assert!(daemon.log().contains("crashy"));
}

#[tokio::test]
async fn a_backend_that_cannot_start_is_reported_and_others_still_work() {
    let env = Env::new();
    let yaml = format!(
        "servers:\n{}{}  missing:\n    command: /nonexistent/mcp-server\n",
        env.fixture_server("good", &[]),
        env.fixture_server("broken", &["--stderr-lines", "2", "--fail-start"]),
    );
    env.write_config(&yaml);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    assert!(names.contains(&"good_echo".to_string()), "{names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("broken_") || n.starts_with("missing_"))
    );
    let status = env.status_json();
    let by_name = |n: &str| {
        status["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("broken")["state"], "failed");
    // The reason (which MCP clients see too) points to the stderr; status shows its tail.
    assert!(
        by_name("broken")["reason"]
            .as_str()
            .unwrap()
            .contains("mcpgwctl logs broken"),
        "{status}"
    );
    assert!(
        by_name("broken")["stderr_tail"]
            .to_string()
            .contains("refusing to start"),
        "{status}"
    );
    assert_eq!(by_name("missing")["state"], "failed");
    assert!(
        by_name("missing")["reason"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/mcp-server")
    );
    assert_eq!(
        client.call_text("good_echo", json!({"text": "fine"})).await,
        "fine"
    );
}

#[tokio::test]
async fn progress_reaches_the_caller_with_its_own_token() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("prog", &[])));
    let _daemon = env.daemon().await;
    let mut raw = RawClient::connect(&env, None).await;
    let id = json!(41);
    raw.send(
        json!({"jsonrpc": "2.0", "id": 41, "method": "tools/call", "params": {
        "name": "prog_slow", "arguments": {"ms": 200, "steps": 4},
        "_meta": {"progressToken": "my-token"}}}),
    )
    .await;
    let (response, before) = raw.until_response(&id).await;
    assert_eq!(
        response["result"]["content"][0]["text"], "slept 200 ms",
        "{response}"
    );
    let progress: Vec<&serde_json::Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(
        !progress.is_empty(),
        "progress arrived before the response: {before:?}"
    );
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "my-token"),
        "{progress:?}"
    );
    assert_eq!(
        raw.close().await.code(),
        Some(0),
        "the shim exits cleanly when stdin closes"
    );
}

#[tokio::test]
async fn config_errors_carry_file_line_and_column() {
    let env = Env::new();
    env.write_config("servers:\n  fs:\n    comand: npx\n");
    let out = env
        .command(&bin("mcpgwd"))
        .arg("--config")
        .arg(env.config_path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway.yaml:3:5"), "{stderr}");
    assert!(stderr.contains("did you mean `command`"), "{stderr}");
}

#[tokio::test]
async fn a_second_daemon_on_a_live_socket_refuses() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let out = env
        .command(&bin("mcpgwd"))
        .arg("--config")
        .arg(env.config_path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already running"));
    // The first daemon still serves.
    assert_eq!(
        env.client(None)
            .await
            .call_text("alpha_echo", json!({"text": "1"}))
            .await,
        "1"
    );
}

#[tokio::test]
async fn a_stale_socket_is_replaced_and_permissions_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    two_servers(&env, "");
    // The private directory a killed daemon left, and a socket file nobody listens on.
    let dir = env.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(env.socket()).unwrap());
    assert!(env.socket().exists());
    let _daemon = env.daemon().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&env.socket()), 0o600);
    assert_eq!(mode(env.socket().parent().unwrap()), 0o700);
    assert_eq!(
        env.client(None)
            .await
            .call_text("alpha_echo", json!({"text": "2"}))
            .await,
        "2"
    );
}

#[tokio::test]
async fn shim_without_a_daemon_says_so_on_stderr() {
    let env = Env::new();
    // No config anywhere: the shim's autostart fails, and says why.
    let out = env.shim_output(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing but MCP on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no config file found") || stderr.contains("gateway.yaml"),
        "{stderr}"
    );
    let ctl = env.ctl(&["status"]);
    assert_eq!(ctl.status.code(), Some(3));
}

#[tokio::test]
async fn a_protocol_version_mismatch_is_reported() {
    use std::io::{BufRead, BufReader, Write};
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let mut stream = std::os::unix::net::UnixStream::connect(env.socket()).unwrap();
    stream
        .write_all(b"{\"v\":99,\"kind\":\"session\"}\n")
        .unwrap();
    let mut line = String::new();
    BufReader::new(&stream).read_line(&mut line).unwrap();
    let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(reply["ok"], false);
    assert!(
        reply["error"]
            .as_str()
            .unwrap()
            .contains("protocol version mismatch"),
        "{reply}"
    );
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_the_daemon() {
    use std::io::{Read, Write};
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    for junk in [
        &b"not json\n"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}\n",
        &[0xff; 70_000],
    ] {
        let mut stream = std::os::unix::net::UnixStream::connect(env.socket()).unwrap();
        let _ = stream.write_all(junk);
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        let reply: serde_json::Value =
            serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).unwrap();
        assert_eq!(reply["ok"], false);
    }
    // Garbage after a good hello: the session answers with a JSON-RPC parse error or closes.
    let client = env.client(None).await;
    assert_eq!(
        client
            .call_text("alpha_echo", json!({"text": "alive"}))
            .await,
        "alive"
    );
}

#[tokio::test]
async fn ctl_status_lists_backends_and_sessions() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    client.call_text("alpha_echo", json!({"text": "x"})).await;
    let status = env.status_json();
    let alpha = &status["backends"][0];
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["state"], "ready");
    assert!(alpha["pid"].as_u64().is_some());
    assert!(alpha["rss_bytes"].as_u64().unwrap() > 0);
    assert_eq!(alpha["calls"], 1);
    assert_eq!(status["sessions"].as_array().unwrap().len(), 1);
    let human = env.ctl(&["status"]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("SERVER") && text.contains("alpha") && text.contains("ready"),
        "{text}"
    );
}

#[tokio::test]
async fn gateway_status_tool_reports_backends() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let text = client.call_text("gateway_status", json!({})).await;
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names = backend_names(&status);
    assert_eq!(names, ["alpha", "beta"]);
}

#[tokio::test]
async fn long_and_colliding_names_stay_routable() {
    let env = Env::new();
    let long = "x".repeat(70);
    // `a_b` + tool `c` and `a` + tool `b_c` both want `a_b_c`.
    let yaml = format!(
        "servers:\n{}{}",
        env.fixture_server("a_b", &["--long-tool", "c"]),
        env.fixture_server("a", &["--long-tool", "b_c", "--long-tool", &long]),
    );
    env.write_config(&yaml);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    assert!(names.iter().all(|n| n.len() <= 64), "{names:?}");
    let collided: Vec<&String> = names
        .iter()
        .filter(|n| *n == "a_b_c" || n.starts_with("a_b_c_"))
        .collect();
    assert_eq!(collided.len(), 2, "both tools exposed: {names:?}");
    for name in collided {
        assert_eq!(client.call_text(name, json!({"text": name})).await, *name);
    }
    let long_name = names
        .iter()
        .find(|n| n.starts_with("a_xxxx"))
        .expect("long tool listed");
    assert_eq!(long_name.len(), 64);
    assert_eq!(
        client.call_text(long_name, json!({"text": "long"})).await,
        "long"
    );
}

#[tokio::test]
async fn an_oversized_client_message_is_dropped_and_the_session_goes_on() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let shim_log = env.path("shim-oversized.log");
    let mut raw = RawClient::connect_with(&env, &[], &[], "2025-06-18", Some(&shim_log)).await;
    // 70 MiB without a newline, then one: over the 64 MiB bound for a client message, which
    // the shim drops (holding no more than that) before the daemon would.
    let chunk = vec![b'x'; 1024 * 1024];
    for _ in 0..70 {
        raw.send_bytes(&chunk).await;
    }
    raw.send_bytes(b"\n").await;
    still_serves(&mut raw, 3).await;
    let said = std::fs::read_to_string(&shim_log).unwrap_or_default();
    assert!(
        said.contains("dropped a message over 64 MiB from the client"),
        "{said}"
    );
}

#[tokio::test]
async fn the_bundled_gateway_yaml_is_valid() {
    let env = Env::new();
    let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("gateway.yaml");
    let out = env.ctl(&["check", "--config", bundled.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("filesystem") && stdout.contains("everything"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("warning"),
        "the bundled config warns: {stdout}"
    );
}

/// `gateway_status` shows a role only what it may see: the servers whose tools it can use, its
/// own session, and nothing a server wrote to stderr (which may carry secrets), no config path.
#[tokio::test]
async fn gateway_status_shows_a_role_only_what_it_may_see() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}roles:\n  admin: null\n  readonly: [\"alpha_*\", \"gateway_status\"]\n",
        env.fixture_server("alpha", &["--stderr-lines", "2"]),
        env.fixture_server("beta", &["--fail-start", "--stderr-lines", "2"]),
    ));
    let _daemon = env.daemon().await;
    let admin = env.client(Some("admin")).await;
    // Listing discovers both: alpha starts, beta fails to.
    assert!(admin.tool_names().await.contains(&"alpha_echo".to_string()));

    let readonly = env.client(Some("readonly")).await;
    let text = readonly.call_text("gateway_status", json!({})).await;
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    let names = backend_names(&status);
    assert_eq!(names, ["alpha"], "{text}");
    assert!(!text.contains("fixture stderr line"), "{text}");
    assert!(!text.contains("beta"), "{text}");
    assert!(status.get("config_path").is_none(), "{text}");
    assert_eq!(status["sessions"].as_array().unwrap().len(), 1, "{text}");
    assert_eq!(status["sessions"][0]["role"], "readonly");

    // The admin sees both servers, still without stderr: beta's failure says where to read it.
    let text = admin.call_text("gateway_status", json!({})).await;
    let status: serde_json::Value = serde_json::from_str(&text).unwrap();
    let reason = status["backends"][1]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("mcpgwctl logs beta"), "{text}");
    assert!(!text.contains("fixture stderr line"), "{text}");
    assert!(!text.contains("refusing to start"), "{text}");
    // mcpgwctl, the local user's, keeps showing everything.
    let full = env.status_json();
    assert!(full["config_path"].is_string());
    assert_eq!(full["sessions"].as_array().unwrap().len(), 2);
    assert!(
        full["backends"][1]["stderr_tail"]
            .to_string()
            .contains("fixture stderr line")
    );
}

/// A name belongs to the server whose prefix produced it: an unprefixed server can neither
/// take another server's exposed name nor inherit the role grants written for it.
#[tokio::test]
async fn an_unprefixed_server_never_takes_another_servers_names() {
    let env = Env::new();
    // `a` sorts before `github`: before, it claimed `github_echo` first.
    let a = env.fixture_server(
        "a",
        &["--long-tool", "github_echo", "--long-tool", "github_admin"],
    );
    env.write_config(&format!(
        "servers:\n{a}    prefix: \"\"\n{}roles:\n  admin: null\n  readonly: [\"github_*\"]\n",
        env.fixture_server("github", &[])
    ));
    let _daemon = env.daemon().await;
    let admin = env.client(Some("admin")).await;
    let names = admin.tool_names().await;
    for expected in ["github_echo", "a_github_echo", "a_github_admin", "echo"] {
        assert!(
            names.contains(&expected.to_string()),
            "{expected}: {names:?}"
        );
    }
    assert!(!names.contains(&"github_admin".to_string()), "{names:?}");

    // github_echo reaches github.
    admin.call_text("github_echo", json!({"text": "x"})).await;
    let calls = |server: &str| {
        env.status_json()["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == server)
            .unwrap()["calls"]
            .as_u64()
            .unwrap()
    };
    assert_eq!((calls("github"), calls("a")), (1, 0));

    // A role granted github_* sees github's tools only.
    let readonly = env.client(Some("readonly")).await;
    let seen = readonly.tool_names().await;
    assert!(seen.iter().all(|n| n.starts_with("github_")), "{seen:?}");
    assert!(!seen.contains(&"github_admin".to_string()), "{seen:?}");
}

/// What is not JSON gets JSON-RPC's Parse error (id null), and the session goes on; a flood of
/// it is answered only a few times a second.
#[tokio::test]
async fn malformed_messages_get_a_parse_error_and_the_session_goes_on() {
    let env = Env::new();
    two_servers(&env, "");
    let _daemon = env.daemon().await;
    let mut raw = RawClient::connect(&env, None).await;
    for garbage in [
        &b"garbage\n"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\n",
        b"\xff\xfe\x00binary\n",
    ] {
        raw.send_bytes(garbage).await;
        let error = raw.recv().await;
        assert_eq!(error["id"], serde_json::Value::Null, "{error}");
        assert_eq!(error["error"]["code"], -32700, "{error}");
    }
    // A flood: at most a few answers a second, and the session still serves.
    for _ in 0..1000 {
        raw.send_bytes(b"nope\n").await;
    }
    let before = still_serves(&mut raw, 7).await;
    assert!(before.len() <= 20, "{} parse errors answered", before.len());
}

/// Calls `alpha_echo` as request `id` and checks the answer: the session still serves. Returns
/// what came before the answer.
async fn still_serves(raw: &mut RawClient, id: u64) -> Vec<serde_json::Value> {
    raw.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "alpha_echo", "arguments": {"text": "still here"}}}))
        .await;
    let (response, before) = raw.until_response(&json!(id)).await;
    assert_eq!(
        response["result"]["content"][0]["text"], "still here",
        "{response}"
    );
    before
}

/// The names of the backends a status document lists, in order.
fn backend_names(status: &serde_json::Value) -> Vec<&str> {
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect()
}
