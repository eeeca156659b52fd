//! The MCP surface beyond tools (prompts, resources, templates, completion, logging, progress,
//! sampling, elicitation) of the reference server `@modelcontextprotocol/server-everything`,
//! through the gateway and compared with the same server used directly by an rmcp client.

#![allow(deprecated)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;

use rmcp::ServiceExt;
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, CompletionContext, GetPromptRequestParams,
    ReadResourceRequestParams, Reference, SetLevelRequestParams,
};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::harness::*;

/// `dist/index.js` of the installed server-everything.
fn everything_js() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci --prefix tests/npm` first",
        path.display()
    );
    path.display().to_string()
}

/// The server's arguments: the transport, then this env's marker (ignored by the server).
fn args(env: &Env) -> Vec<String> {
    vec![everything_js(), "stdio".to_string(), env.marker.clone()]
}

/// An env whose gateway serves server-everything as `everything`, with its daemon running.
async fn gateway(env: &Env) -> Daemon {
    env.write_config(&format!(
        "servers:\n  everything:\n    command: node\n    args: {}\n",
        serde_json::to_string(&args(env)).unwrap()
    ));
    env.daemon().await
}

type Direct = RunningService<RoleClient, ()>;

/// The same server, spawned directly (no gateway) with a plain rmcp client.
async fn direct(env: &Env) -> Direct {
    let mut cmd = tokio::process::Command::from(env.command(Path::new("node")));
    cmd.args(args(env));
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node directly");
    tokio::time::timeout(DEADLINE, ().serve(transport))
        .await
        .expect("direct server initializes before the deadline")
        .expect("direct server initializes")
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn object(value: Value) -> serde_json::Map<String, Value> {
    let Value::Object(map) = value else {
        panic!("not an object: {value}")
    };
    map
}

#[tokio::test]
async fn everything_prompts_through_the_gateway_equal_direct() {
    let env = Env::new();
    let daemon = gateway(&env).await;
    let client = env.client(None).await;
    let peer = client.service.peer();
    let direct = direct(&env).await;

    let through = peer.list_all_prompts().await.expect("gateway prompts/list");
    let plain = direct
        .peer()
        .list_all_prompts()
        .await
        .expect("direct prompts/list");
    assert!(
        plain.iter().any(|p| p.name == "args-prompt"),
        "direct prompts: {plain:?}"
    );
    let mut expected: Vec<String> = plain
        .iter()
        .map(|p| format!("everything_{}", p.name))
        .collect();
    expected.sort();
    let mut got: Vec<String> = through.iter().map(|p| p.name.clone()).collect();
    got.sort();
    assert_eq!(got, expected, "{}", daemon.log());
    for prompt in &plain {
        let exposed = format!("everything_{}", prompt.name);
        let via = through.iter().find(|p| p.name == exposed).unwrap();
        assert_eq!(
            via.description, prompt.description,
            "description of {exposed}"
        );
        assert_eq!(via.title, prompt.title, "title of {exposed}");
        assert_eq!(
            to_json(&via.arguments),
            to_json(&prompt.arguments),
            "arguments of {exposed}"
        );
    }

    for (name, arguments, text) in [
        (
            "args-prompt",
            json!({"city": "Zürich", "state": "ZH"}),
            "What's weather in Zürich, ZH?",
        ),
        (
            "completable-prompt",
            json!({"department": "Engineering", "name": "Alice"}),
            "Please promote Alice to the head of the Engineering team.",
        ),
        (
            "simple-prompt",
            json!({}),
            "This is a simple prompt without arguments.",
        ),
    ] {
        let via = peer
            .get_prompt(
                GetPromptRequestParams::new(format!("everything_{name}"))
                    .with_arguments(object(arguments.clone())),
            )
            .await
            .unwrap_or_else(|e| panic!("gateway prompts/get {name}: {e}"));
        let plain = direct
            .peer()
            .get_prompt(GetPromptRequestParams::new(name).with_arguments(object(arguments)))
            .await
            .unwrap_or_else(|e| panic!("direct prompts/get {name}: {e}"));
        assert_eq!(to_json(&via.messages)[0]["content"]["text"], text);
        assert_eq!(
            to_json(&via),
            to_json(&plain),
            "prompts/get {name} through the gateway vs direct"
        );
    }

    direct.cancel().await.unwrap();
    client.close().await;
}

/// A dynamic text resource without its creation time (`… created at <time>`), which may differ
/// between two reads.
fn without_timestamp(mut read: Value) -> Value {
    for content in read["contents"].as_array_mut().unwrap() {
        let text = content["text"].as_str().unwrap();
        let cut = text.find(" created at ").expect("a timestamped text");
        content["text"] = Value::String(text[..cut].to_string());
    }
    read
}

#[tokio::test]
async fn everything_resources_through_the_gateway_equal_direct() {
    let env = Env::new();
    let daemon = gateway(&env).await;
    let client = env.client(None).await;
    let peer = client.service.peer();
    let direct = direct(&env).await;

    // The first page: the same resources under the same URIs.
    let through = peer
        .list_resources(None)
        .await
        .expect("gateway resources/list");
    let plain = direct
        .peer()
        .list_resources(None)
        .await
        .expect("direct resources/list");
    let uris = |list: &rmcp::model::ListResourcesResult| -> Vec<String> {
        list.resources.iter().map(|r| r.uri.clone()).collect()
    };
    assert!(!plain.resources.is_empty(), "direct lists no resources");
    assert_eq!(uris(&through), uris(&plain), "{}", daemon.log());
    assert_eq!(
        to_json(&through.resources),
        to_json(&plain.resources),
        "resource metadata through the gateway vs direct"
    );

    // A static resource reads the same.
    let uri = plain
        .resources
        .iter()
        .map(|r| r.uri.clone())
        .find(|u| u.ends_with("/instructions.md"))
        .unwrap_or_else(|| plain.resources[0].uri.clone());
    let via = peer
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .unwrap_or_else(|e| panic!("gateway read {uri}: {e}"));
    let same = direct
        .peer()
        .read_resource(ReadResourceRequestParams::new(uri.clone()))
        .await
        .unwrap_or_else(|e| panic!("direct read {uri}: {e}"));
    let via = to_json(&via);
    assert_eq!(via["contents"][0]["uri"], uri.as_str());
    assert!(
        !via["contents"][0]["text"].as_str().unwrap().is_empty(),
        "{via}"
    );
    assert_eq!(
        via,
        to_json(&same),
        "read {uri} through the gateway vs direct"
    );

    // The templates are the same.
    let through = peer
        .list_all_resource_templates()
        .await
        .expect("gateway resources/templates/list");
    let mut plain = direct
        .peer()
        .list_all_resource_templates()
        .await
        .expect("direct resources/templates/list");
    // The gateway lists in name order, whatever order the server lists in.
    plain.sort_by(|a, b| a.uri_template.cmp(&b.uri_template));
    let templates: Vec<&str> = plain.iter().map(|t| t.uri_template.as_str()).collect();
    assert!(
        templates.contains(&"demo://resource/dynamic/text/{resourceId}"),
        "{templates:?}"
    );
    assert_eq!(to_json(&through), to_json(&plain), "templates");

    // A URI of a template reads the same (up to the time it was made).
    let uri = "demo://resource/dynamic/text/7";
    let via = peer
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("gateway read {uri}: {e}"));
    let same = direct
        .peer()
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("direct read {uri}: {e}"));
    let via = without_timestamp(to_json(&via));
    assert_eq!(via["contents"][0]["uri"], uri);
    assert_eq!(
        via["contents"][0]["text"],
        "Resource 7: This is a plaintext resource"
    );
    assert_eq!(via, without_timestamp(to_json(&same)), "read {uri}");

    direct.cancel().await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn everything_completions_through_the_gateway_equal_direct() {
    let env = Env::new();
    let _daemon = gateway(&env).await;
    let client = env.client(None).await;
    let peer = client.service.peer();
    let direct = direct(&env).await;

    let department = HashMap::from([("department".to_string(), "Engineering".to_string())]);
    let cases = [
        (
            Reference::for_prompt("everything_completable-prompt"),
            Reference::for_prompt("completable-prompt"),
            ArgumentInfo::new("department", "S"),
            None,
            vec!["Sales", "Support"],
        ),
        // The second argument's values depend on the first, passed as context.
        (
            Reference::for_prompt("everything_completable-prompt"),
            Reference::for_prompt("completable-prompt"),
            ArgumentInfo::new("name", "B"),
            Some(CompletionContext::with_arguments(department)),
            vec!["Bob"],
        ),
        (
            Reference::for_resource("demo://resource/dynamic/text/{resourceId}"),
            Reference::for_resource("demo://resource/dynamic/text/{resourceId}"),
            ArgumentInfo::new("resourceId", "12"),
            None,
            vec!["12"],
        ),
    ];
    for (via_ref, plain_ref, argument, context, values) in cases {
        let mut via = CompleteRequestParams::new(via_ref, argument.clone());
        let mut plain = CompleteRequestParams::new(plain_ref, argument);
        if let Some(context) = context {
            via = via.with_context(context.clone());
            plain = plain.with_context(context);
        }
        let what = to_json(&via);
        let via = peer
            .complete(via)
            .await
            .unwrap_or_else(|e| panic!("gateway complete {what}: {e}"));
        let plain = direct
            .peer()
            .complete(plain)
            .await
            .unwrap_or_else(|e| panic!("direct complete {what}: {e}"));
        assert_eq!(via.completion.values, values, "{what}");
        assert_eq!(
            to_json(&via.completion),
            to_json(&plain.completion),
            "{what}"
        );
    }

    direct.cancel().await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn everything_simulated_logging_reaches_the_client() {
    let env = Env::new();
    let daemon = gateway(&env).await;
    let client = env.client(None).await;
    client
        .service
        .peer()
        .set_level(SetLevelRequestParams::new(rmcp::model::LoggingLevel::Debug))
        .await
        .expect("logging/setLevel");
    let started = client
        .call_text("everything_toggle-simulated-logging", json!({}))
        .await;
    assert!(started.starts_with("Started simulated"), "{started}");
    // The server sends one message at once (at a random level, all let through by `debug`),
    // then one every 5 s.
    wait_for("a log message from server-everything", || {
        !client.recorder.logs.lock().unwrap().is_empty()
    })
    .await;
    let logs = client.recorder.logs.lock().unwrap().clone();
    assert!(
        logs.iter().all(|l| l.data.as_str().is_some_and(|d| {
            d.starts_with(&format!(
                "{}-level message",
                capitalized(&to_json(&l.level))
            )) || d == "Alert level-message"
        })),
        "{logs:?}\n{}",
        daemon.log()
    );
    let stopped = client
        .call_text("everything_toggle-simulated-logging", json!({}))
        .await;
    assert!(stopped.starts_with("Stopped simulated"), "{stopped}");
    client.close().await;
}

/// `"warning"` → `Warning`.
fn capitalized(level: &Value) -> String {
    let level = level.as_str().unwrap();
    let mut chars = level.chars();
    let first = chars.next().unwrap().to_uppercase();
    format!("{first}{}", chars.as_str())
}

#[tokio::test]
async fn everything_long_running_operation_reports_progress_with_the_callers_token() {
    let env = Env::new();
    let _daemon = gateway(&env).await;
    let mut raw = RawClient::connect(&env, None).await;
    raw.send(
        json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "everything_trigger-long-running-operation",
        "arguments": {"duration": 0.6, "steps": 3},
        "_meta": {"progressToken": "everything-token"}}}),
    )
    .await;
    let (response, before) = raw.until_response(&json!(7)).await;
    assert_eq!(
        response["result"]["content"][0]["text"],
        "Long running operation completed. Duration: 0.6 seconds, Steps: 3.",
        "{response}"
    );
    let progress: Vec<(Option<f64>, Option<f64>, &Value)> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| {
            let p = &m["params"];
            (
                p["progress"].as_f64(),
                p["total"].as_f64(),
                &p["progressToken"],
            )
        })
        .collect();
    let token = json!("everything-token");
    assert_eq!(
        progress,
        [1.0, 2.0, 3.0].map(|i| (Some(i), Some(3.0), &token)),
        "all before the response: {before:?}"
    );
    raw.close().await;
}

#[tokio::test]
async fn everything_sampling_and_elicitation_round_trip_to_the_caller() {
    let env = Env::new();
    let daemon = gateway(&env).await;
    let client = env.client(None).await;
    // server-everything offers these tools only to clients that declare sampling and
    // elicitation; the Recorder does, so the gateway must have passed that on.
    let tools = client.tool_names().await;
    for name in [
        "everything_trigger-sampling-request",
        "everything_trigger-elicitation-request",
    ] {
        assert!(
            tools.contains(&name.to_string()),
            "{name} missing from {tools:?}\n{}",
            daemon.log()
        );
    }

    let text = client
        .call_text(
            "everything_trigger-sampling-request",
            json!({"prompt": "ping", "maxTokens": 10}),
        )
        .await;
    let prompt = "Resource trigger-sampling-request context: ping";
    assert_eq!(client.recorder.sampled.lock().unwrap().as_slice(), [prompt]);
    assert!(
        text.contains(&format!("pong to {prompt}")) && text.contains("test-model"),
        "{text}"
    );

    let result = client
        .call("everything_trigger-elicitation-request", json!({}))
        .await
        .expect("trigger-elicitation-request");
    assert_ne!(result.is_error, Some(true), "{result:?}");
    let texts: Vec<String> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect();
    assert_eq!(
        texts[0], "✅ User provided the requested information!",
        "{texts:?}"
    );
    let raw = texts.last().unwrap();
    let raw: Value = serde_json::from_str(raw.trim().trim_start_matches("Raw result:").trim())
        .unwrap_or_else(|e| panic!("{e}: {raw}"));
    assert_eq!(raw["action"], "accept", "{raw}");
    assert_eq!(raw["content"], json!({"answer": "42"}), "{raw}");
    client.close().await;
}

#[tokio::test]
async fn everything_instructions_reach_clients_of_roles_that_see_it() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n  everything:\n    command: node\n    args: {}\n\
         roles:\n  all: null\n  elsewhere: [\"gateway_status\"]\n",
        serde_json::to_string(&args(&env)).unwrap()
    ));
    let _daemon = env.daemon().await;
    let direct = direct(&env).await;
    let own = direct
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .expect("server-everything has instructions");
    assert!(own.len() > 1000, "{own}");

    // The first client's list discovers the server; a client connecting after that gets its
    // instructions under its name, verbatim.
    let first = env.client(Some("all")).await;
    assert!(!first.tools().await.is_empty());
    let later = env.client(Some("all")).await;
    let through = later
        .service
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .expect("the gateway has instructions");
    assert!(through.starts_with("mcpgw gateway"), "{through}");
    assert!(
        through.contains("## Server `everything` (its tools are named everything_<tool>)"),
        "{through}"
    );
    assert!(through.contains(own.trim()), "{through}");

    // A role that sees nothing of the server gets nothing of its instructions.
    let elsewhere = env.client(Some("elsewhere")).await;
    let theirs = elsewhere
        .service
        .peer_info()
        .and_then(|info| info.instructions.clone())
        .unwrap();
    assert!(!theirs.contains("everything"), "{theirs}");
}

/// The server spawned directly and spoken to as raw JSON lines (a client that keeps every
/// member, known to an SDK or not): its `tools/list` answer, with `capabilities` declared.
async fn raw_direct_tools(env: &Env, capabilities: Value) -> Vec<Value> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut cmd = tokio::process::Command::from(env.command(Path::new("node")));
    cmd.args(args(env))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawn node directly");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": capabilities,
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}),
    ];
    for message in messages {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).await.unwrap();
    }
    loop {
        let line = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("the server answers before the deadline")
            .unwrap()
            .expect("the server answers");
        let message: Value = serde_json::from_str(&line).unwrap();
        if message["id"] == 2 {
            return message["result"]["tools"].as_array().unwrap().clone();
        }
    }
}

/// Issue 11, item 3: every tool of server-everything reaches a client as the server wrote it —
/// `execution.taskSupport` of `simulate-research-query` too, which no SDK type here knows —
/// whichever path answers the list (the byte path, or rmcp's for 2026-07-28 per-request
/// metadata): the gateway's item is the server's with only the name prefixed.
#[tokio::test]
async fn everything_tools_reach_the_client_as_the_server_wrote_them() {
    let env = Env::new();
    let _daemon = gateway(&env).await;
    let direct = raw_direct_tools(&env, json!({})).await;
    let research = direct
        .iter()
        .find(|t| t["name"] == "simulate-research-query")
        .expect("the server lists simulate-research-query");
    assert_eq!(
        research["execution"]["taskSupport"], "required",
        "{research}"
    );
    let mut raw = RawClient::connect(&env, None).await;
    let modern = modern_meta();
    for (id, meta) in [(1, json!({})), (2, modern)] {
        raw.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/list",
            "params": {"_meta": meta}}))
            .await;
        let (answer, _) = raw.until_response(&json!(id)).await;
        let through: HashMap<String, Value> = answer["result"]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| {
                let name = t["name"].as_str()?.strip_prefix("everything_")?;
                Some((name.to_string(), t.clone()))
            })
            .collect();
        let mut compared = 0;
        for tool in &direct {
            let name = tool["name"].as_str().unwrap();
            let Some(seen) = through.get(name) else {
                continue;
            };
            let mut expected = tool.clone();
            expected["name"] = json!(format!("everything_{name}"));
            assert_eq!(seen, &expected, "meta {meta}: {name}");
            compared += 1;
        }
        assert!(
            through.contains_key("simulate-research-query") && compared >= direct.len() - 3,
            "meta {meta}: compared {compared} of {} tools: {:?}",
            direct.len(),
            through.keys().collect::<Vec<_>>()
        );
    }
}

/// Issue 11, item 5: a per-client instance of server-everything is initialised with its
/// client's own capabilities. A client with roots (as the Inspector) is offered
/// `get-roots-list`, which reads its own roots; a client without sampling, elicitation and
/// roots, calling a tool its instance does not offer, is told what it lacks rather than
/// "unknown tool"; what it can use works.
#[tokio::test]
async fn everything_per_client_instances_are_offered_what_their_client_can_do() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n  everything:\n    command: node\n    args: {}\n    scope: per-client\n",
        serde_json::to_string(&args(&env)).unwrap()
    ));
    let _daemon = env.daemon().await;
    let capable = env.client(None).await;
    let names = capable.tool_names().await;
    for tool in [
        "everything_get-roots-list",
        "everything_trigger-sampling-request",
    ] {
        assert!(names.iter().any(|n| n == tool), "{tool} missing: {names:?}");
    }
    let roots = capable
        .call_text("everything_get-roots-list", json!({}))
        .await;
    assert!(roots.contains("file:///mcpgw-it-root"), "{roots}");

    let incapable = env
        .try_client_with(None, Recorder::incapable())
        .await
        .unwrap();
    assert_eq!(
        incapable
            .call_text("everything_echo", json!({"message": "hi"}))
            .await,
        "Echo: hi"
    );
    let refused = match incapable
        .call(
            "everything_trigger-sampling-request",
            json!({"prompt": "x"}),
        )
        .await
    {
        Ok(result) => text_of(&result),
        Err(e) => e,
    };
    assert!(
        refused.contains(
            "`trigger-sampling-request` of server `everything` is not offered to this client"
        ) && refused.contains("lacks sampling, elicitation, roots"),
        "{refused}"
    );
}

/// A server's sampling request reaches the client as the server wrote it: server-everything's
/// `temperature: 0.7` stays `0.7` (rmcp's type would make it `0.699999988079071`), and the
/// client's answer gets back to the tool.
#[tokio::test]
async fn everything_sampling_request_reaches_the_client_as_written() {
    let env = Env::new();
    let _daemon = gateway(&env).await;
    let mut raw = RawClient::connect_declaring(&env, json!({"sampling": {}})).await;
    raw.send(
        json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {
        "name": "everything_trigger-sampling-request",
        "arguments": {"prompt": "hello", "maxTokens": 7}}}),
    )
    .await;
    let asked = loop {
        let message = raw.recv().await;
        if message["method"] == "sampling/createMessage" {
            break message;
        }
    };
    assert_eq!(asked["params"]["temperature"], json!(0.7), "{asked}");
    assert_eq!(asked["params"]["maxTokens"], json!(7), "{asked}");
    raw.send(json!({"jsonrpc": "2.0", "id": asked["id"], "result": {
        "role": "assistant", "model": "raw",
        "content": {"type": "text", "text": "sampled by raw"}}}))
        .await;
    let (answer, _) = raw.until_response(&json!(5)).await;
    assert!(answer.to_string().contains("sampled by raw"), "{answer}");
}

/// Issue 13, item 2: roles that exclude (`!glob`) and select by annotation (`@read-only`,
/// `@!destructive`), against server-everything's own annotations, listed and called (the
/// socket's fast path included).
#[tokio::test]
async fn everything_roles_exclude_and_select_by_annotation() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n  everything:\n    command: node\n    args: {}\nroles:\n  ro: [\"@read-only\"]\n  safe: [\"@!destructive\", \"!everything_toggle-*\"]\n  noecho: [\"!everything_echo\"]\n  typo: [\"evrything_*\", \"!everything_nothing_*\", \"everything_echo\"]\n",
        serde_json::to_string(&args(&env)).unwrap()
    ));
    let _daemon = env.daemon().await;
    let all = env.client(None).await;
    let tools = all.tools().await;
    let hint = |t: &rmcp::model::Tool, read_only: bool| {
        t.annotations.as_ref().and_then(|a| {
            if read_only {
                a.read_only_hint
            } else {
                a.destructive_hint
            }
        })
    };
    let names = |keep: &dyn Fn(&rmcp::model::Tool) -> bool| -> Vec<String> {
        let mut names: Vec<String> = tools
            .iter()
            .filter(|t| keep(t))
            .map(|t| t.name.to_string())
            .collect();
        names.sort();
        names
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let read_only = names(&|t| hint(t, true) == Some(true));
    assert!(
        read_only.contains(&"everything_echo".to_string()),
        "{read_only:?}"
    );
    assert!(read_only.len() < tools.len(), "{read_only:?}");

    let ro = env.client(Some("ro")).await;
    assert_eq!(sorted(ro.tool_names().await), read_only);
    assert_eq!(
        ro.call_text("everything_echo", json!({"message": "hi"}))
            .await,
        "Echo: hi"
    );
    let writer = names(&|t| hint(t, true) != Some(true));
    let refused = ro.call(&writer[0], json!({})).await.unwrap_err();
    assert!(refused.contains("unknown tool"), "{refused}");

    let safe = env.client(Some("safe")).await;
    let expected = names(&|t| {
        (hint(t, true) == Some(true) || hint(t, false) == Some(false))
            && !t.name.starts_with("everything_toggle-")
    });
    assert_eq!(sorted(safe.tool_names().await), expected);

    let noecho = env.client(Some("noecho")).await;
    let expected = names(&|t| t.name != "everything_echo");
    assert_eq!(sorted(noecho.tool_names().await), expected);
    let refused = noecho
        .call("everything_echo", json!({"message": "hi"}))
        .await
        .unwrap_err();
    assert!(refused.contains("unknown tool"), "{refused}");

    // An entry that matches nothing is a hole without a word: status says so, once the
    // server's lists are known.
    let status = env.status_json();
    let warnings: Vec<&str> = status["config_warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "role `typo`: `evrything_*` matches nothing any configured server offers",
            "role `typo`: `!everything_nothing_*` matches nothing any configured server offers",
        ]
    );
}
