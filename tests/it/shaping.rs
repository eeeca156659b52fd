//! A server's `tools:` and `prompts:` (issue 13, items 1 and 4): what clients see of it —
//! through the shim (the socket's fast path included) and over HTTP — hidden tools refused,
//! renames and descriptions with the server's schemas, reloads that reshape without a
//! restart, and lists in one order whatever order servers list in.

use rmcp::model::GetPromptRequestParams;
use serde_json::json;

use crate::harness::*;
use crate::http::{HttpDaemon, call as http_call, http_client};
use crate::npm::npm_server;

/// server-everything twice: `shaped` with `tools:`/`prompts:`, `plain` as it is (to compare
/// schemas with), and an HTTP listener on `port`.
fn everything_twice(env: &Env, port: u16) -> String {
    let args = serde_json::to_string(&[
        npm_server("server-everything").display().to_string(),
        "stdio".into(),
        env.marker.clone(),
    ])
    .unwrap();
    format!(
        "servers:
  shaped:
    command: node
    args: {args}
    tools:
      allow: [\"echo\", \"get-*\"]
      deny: [\"get-env\", \"get-roots-*\"]
      rename: {{ get-sum: add }}
      describe: {{ echo: \"Says it back.\" }}
    prompts:
      deny: [\"args-*\"]
      rename: {{ simple-prompt: hello }}
  plain:
    command: node
    args: {args}
roles:
  default: null
  ro: [\"@read-only\"]
http:
  listen: \"127.0.0.1:{port}\"
"
    )
}

#[tokio::test]
async fn shaped_tools_are_what_every_client_sees_and_can_call() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| everything_twice(&env, port)).await;
    let client = env.client(None).await;
    let tools = client.tools().await;
    let of = |prefix: &str| -> Vec<String> {
        let mut names: Vec<String> = tools
            .iter()
            .filter_map(|t| t.name.strip_prefix(prefix).map(str::to_string))
            .collect();
        names.sort();
        names
    };
    let plain = of("plain_");
    let expected: Vec<String> = plain
        .iter()
        .filter(|n| (*n == "echo" || n.starts_with("get-")) && *n != "get-env")
        .filter(|n| !n.starts_with("get-roots-"))
        .map(|n| {
            if n == "get-sum" {
                "add".into()
            } else {
                n.clone()
            }
        })
        .collect();
    let mut expected = expected;
    expected.sort();
    assert!(expected.contains(&"add".to_string()), "{plain:?}");
    assert_eq!(of("shaped_"), expected);

    // A rename and a description change nothing else of the tool.
    let tool = |name: &str| tools.iter().find(|t| t.name == name).unwrap().clone();
    let (add, sum) = (tool("shaped_add"), tool("plain_get-sum"));
    assert_eq!(add.input_schema, sum.input_schema);
    assert_eq!(add.description, sum.description);
    assert_eq!(add.annotations, sum.annotations);
    let (echo, plain_echo) = (tool("shaped_echo"), tool("plain_echo"));
    assert_eq!(echo.description.as_deref(), Some("Says it back."));
    assert_eq!(echo.input_schema, plain_echo.input_schema);

    // Calls go to the server's own names; hidden tools are refused as unknown.
    assert_eq!(
        client
            .call_text("shaped_echo", json!({"message": "hi"}))
            .await,
        "Echo: hi"
    );
    let sum = client
        .call_text("shaped_add", json!({"a": 2, "b": 3}))
        .await;
    assert!(sum.contains('5'), "{sum}");
    for hidden in [
        "shaped_get-env",
        "shaped_get-sum",
        "shaped_toggle-simulated-logging",
    ] {
        let refused = client.call(hidden, json!({})).await.unwrap_err();
        assert!(refused.contains("unknown tool"), "{hidden}: {refused}");
    }

    // Roles see the shaped surface: `@read-only` keeps the server's annotations.
    let ro = env.client(Some("ro")).await;
    let ro_names = ro.tool_names().await;
    assert!(
        ro_names.contains(&"shaped_echo".to_string()),
        "{ro_names:?}"
    );
    assert!(
        !ro_names.iter().any(|n| n == "shaped_get-env"),
        "{ro_names:?}"
    );

    // Prompts take the same keys.
    let prompts = client.service.peer().list_all_prompts().await.unwrap();
    let prompt_names: Vec<&str> = prompts.iter().map(|p| p.name.as_str()).collect();
    assert!(prompt_names.contains(&"shaped_hello"), "{prompt_names:?}");
    assert!(
        prompt_names.contains(&"plain_args-prompt"),
        "{prompt_names:?}"
    );
    assert!(!prompt_names.iter().any(|n| n.starts_with("shaped_args")));
    assert!(!prompt_names.contains(&"shaped_simple-prompt"));
    let hello = client
        .service
        .peer()
        .get_prompt(GetPromptRequestParams::new("shaped_hello"))
        .await
        .expect("the renamed prompt is served by its server");
    assert!(!hello.messages.is_empty());

    // Over HTTP: the same surface.
    let remote = http_client(&http.url("/mcp"), None).await.unwrap();
    let remote_tools = remote.peer().list_all_tools().await.unwrap();
    let remote_names: Vec<&str> = remote_tools.iter().map(|t| t.name.as_ref()).collect();
    let local_names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(remote_names, local_names, "one list, one order");
    let sum = http_call(&remote, "shaped_add", json!({"a": 4, "b": 5}))
        .await
        .unwrap();
    assert!(sum.contains('9'), "{sum}");
    let refused = http_call(&remote, "shaped_get-env", json!({}))
        .await
        .unwrap_err();
    assert!(refused.contains("unknown tool"), "{refused}");
}

#[tokio::test]
async fn a_reload_reshapes_without_a_restart_and_tells_whom_it_concerns() {
    let env = Env::new();
    let servers = format!(
        "servers:\n{}{}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[])
    );
    env.write_config(&format!("{servers}roles:\n  betas: [\"beta_*\"]\n"));
    let _daemon = env.daemon().await;
    let all = env.client(None).await;
    let betas = env.client(Some("betas")).await;
    let pid = all.call_text("alpha_pid", json!({})).await;
    // list_changed goes to sessions that have listed.
    let _ = all.tool_names().await;
    let _ = betas.tool_names().await;
    let (all_before, betas_before) = (
        *all.recorder.tools_changed.lock().unwrap(),
        *betas.recorder.tools_changed.lock().unwrap(),
    );

    let shaped = servers.replacen(
        "  beta:",
        "    tools:\n      deny: [pid]\n      rename: { echo: say, nothing: x }\n      describe: { echo: \"Repeats.\" }\n  beta:",
        1,
    );
    env.write_config(&format!("{shaped}roles:\n  betas: [\"beta_*\"]\n"));
    wait_for("list_changed for the session that sees alpha", || {
        *all.recorder.tools_changed.lock().unwrap() > all_before
    })
    .await;
    let names = all.tool_names().await;
    assert!(names.contains(&"alpha_say".to_string()), "{names:?}");
    assert!(!names.contains(&"alpha_echo".to_string()), "{names:?}");
    assert!(!names.contains(&"alpha_pid".to_string()), "{names:?}");
    assert_eq!(
        all.call_text("alpha_say", json!({"text": "again"})).await,
        "again"
    );
    let said = all.tools().await;
    let say = said.iter().find(|t| t.name == "alpha_say").unwrap();
    assert_eq!(say.description.as_deref(), Some("Repeats."));

    let status = env.status_json();
    let reload = status["last_reload"]["message"].as_str().unwrap();
    assert!(reload.contains("reshaped: alpha"), "{reload}");
    let warnings = status["config_warnings"].to_string();
    assert!(
        warnings.contains("server `alpha`: `tools.rename` names `nothing`, which it does not have"),
        "{warnings}"
    );
    let alpha = status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "alpha")
        .unwrap();
    assert_eq!(alpha["pid"].to_string(), pid, "no restart");

    // The role that sees only beta saw nothing change.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(*betas.recorder.tools_changed.lock().unwrap(), betas_before);

    // And back: the tools return, to a session told so.
    let before = *all.recorder.tools_changed.lock().unwrap();
    env.write_config(&format!("{servers}roles:\n  betas: [\"beta_*\"]\n"));
    wait_for("list_changed when the shaping is removed", || {
        *all.recorder.tools_changed.lock().unwrap() > before
    })
    .await;
    assert!(all.tool_names().await.contains(&"alpha_pid".to_string()));
}

/// Every list is in name order, the same in two daemons whose servers list the same tools in
/// different orders.
#[tokio::test]
async fn lists_are_in_one_order_across_daemons() {
    fn names<'a>(order: &[&'a str]) -> Vec<&'a str> {
        order
            .iter()
            .flat_map(|name| ["--long-tool", name])
            .collect()
    }
    let mut lists = Vec::new();
    for order in [["zeta", "alpha", "mid"], ["mid", "zeta", "alpha"]] {
        let env = Env::new();
        env.write_config(&format!(
            "servers:\n{}{}",
            env.fixture_server("one", &names(&order)),
            env.fixture_server("two", &[])
        ));
        let mut daemon = env.daemon().await;
        let client = env.client(None).await;
        let listed: Vec<String> = client
            .tools()
            .await
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        let again: Vec<String> = env
            .client(None)
            .await
            .tools()
            .await
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(listed, again, "two sessions of one daemon");
        let prompts: Vec<String> = client
            .service
            .peer()
            .list_all_prompts()
            .await
            .unwrap()
            .iter()
            .map(|p| p.name.clone())
            .collect();
        let resources: Vec<String> = client
            .service
            .peer()
            .list_all_resources()
            .await
            .unwrap()
            .iter()
            .map(|r| r.uri.clone())
            .collect();
        client.close().await;
        daemon.stop().await;
        lists.push((listed, prompts, resources));
    }
    let (listed, prompts, resources) = &lists[0];
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, &sorted, "tools in name order");
    assert!(listed.contains(&"one_zeta".to_string()), "{listed:?}");
    let mut sorted = prompts.clone();
    sorted.sort();
    assert_eq!(prompts, &sorted, "prompts in name order");
    let mut sorted = resources.clone();
    sorted.sort();
    assert_eq!(resources, &sorted, "resources in URI order");
    assert_eq!(lists[0], lists[1], "the same lists from both daemons");
}

/// `mcpgwctl check` judges role entries and `tools:` entries against what the servers listed
/// when the daemon last ran them (the schema cache), starting nothing itself.
#[tokio::test]
async fn check_warns_of_entries_that_name_nothing_once_servers_have_listed() {
    let env = Env::new();
    let server = env.fixture_server("alpha", &[]);
    env.write_config(&format!(
        "servers:\n{server}    tools:\n      rename: {{ ecco: say }}\nroles:\n  ro: [\"alpha_*\", \"alpah_*\", \"!alpha_nothing\"]\n"
    ));
    let config = env.config_path();
    let check = |env: &Env| {
        let out = env.ctl(&["check", "--config", config.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = check(&env);
    assert!(
        before.contains("servers that never listed (alpha) are not checked"),
        "{before}"
    );
    assert!(!before.contains("alpah_*"), "{before}");

    let mut daemon = env.daemon().await;
    let client = env.client(None).await;
    let _ = client.tool_names().await;
    client.close().await;
    daemon.stop().await;

    let after = check(&env);
    for expected in [
        "warning: server `alpha`: `tools.rename` names `ecco`, which it does not have",
        "warning: role `ro`: `alpah_*` matches nothing any configured server offers",
        "warning: role `ro`: `!alpha_nothing` matches nothing any configured server offers",
    ] {
        assert!(after.contains(expected), "{expected}\n{after}");
    }
    assert!(!after.contains("`alpha_*`"), "{after}");
    assert!(!after.contains("never listed"), "{after}");
}
