//! The MCP surface beyond tools, through the gateway: prompts, resources, templates,
//! subscriptions, completion, logging, sampling, elicitation, cancellation, request ids,
//! pagination and backend list changes.

#![allow(deprecated)]

use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, GetPromptRequestParams, ReadResourceRequestParams,
    Reference, SetLevelRequestParams, SubscribeRequestParams,
};
use serde_json::json;

use crate::harness::*;

fn one_server(env: &Env, name: &str) {
    env.write_config(&format!("servers:\n{}", env.fixture_server(name, &[])));
}

#[tokio::test]
async fn prompts_are_prefixed_and_routed() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let peer = client.service.peer();
    let prompts = peer.list_all_prompts().await.unwrap();
    let greet = prompts
        .iter()
        .find(|p| p.name == "fx_greet")
        .expect("fx_greet listed");
    assert_eq!(greet.description.as_deref(), Some("Greet someone by name"));
    let args = json!({"name": "Ada"}).as_object().unwrap().clone();
    let result = peer
        .get_prompt(GetPromptRequestParams::new("fx_greet").with_arguments(args))
        .await
        .unwrap();
    let text = serde_json::to_value(&result.messages).unwrap()[0]["content"]["text"].clone();
    assert_eq!(text, "Hello, Ada!");
    let err = peer
        .get_prompt(GetPromptRequestParams::new("fx_nope"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown prompt `fx_nope`"),
        "{err}"
    );
}

#[tokio::test]
async fn resources_and_templates_are_routed_by_uri() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let peer = client.service.peer();
    let resources = peer.list_all_resources().await.unwrap();
    assert_eq!(
        resources.iter().map(|r| r.uri.as_str()).collect::<Vec<_>>(),
        ["fixture://static/hello"]
    );
    let templates = peer.list_all_resource_templates().await.unwrap();
    assert_eq!(templates[0].uri_template, "fixture://item/{id}");

    let read = |uri: &str| peer.read_resource(ReadResourceRequestParams::new(uri));
    let hello = serde_json::to_value(read("fixture://static/hello").await.unwrap()).unwrap();
    assert_eq!(hello["contents"][0]["text"], "hello from fixture");
    let item = serde_json::to_value(read("fixture://item/42").await.unwrap()).unwrap();
    assert_eq!(item["contents"][0]["text"], "item 42");
    let missing = read("nowhere://x").await.unwrap_err().to_string();
    assert!(
        missing.contains("resource `nowhere://x` not found"),
        "{missing}"
    );
}

#[tokio::test]
async fn roles_filter_prompts_and_resources_too() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}roles:\n  ro: [\"a_*\"]\n",
        env.fixture_server("a", &[]),
        env.fixture_server("b", &[])
    ));
    let _daemon = env.daemon().await;
    let ro = env.client(Some("ro")).await;
    let peer = ro.service.peer();
    let prompts: Vec<String> = peer
        .list_all_prompts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(prompts, ["a_greet"]);
    // Both servers serve the same URIs; the role decides, and reads go to the visible one.
    assert_eq!(peer.list_all_resources().await.unwrap().len(), 1);
    let err = peer
        .get_prompt(GetPromptRequestParams::new("b_greet"))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("unknown prompt `b_greet` (role `ro`)"),
        "{err}"
    );
}

#[tokio::test]
async fn completions_go_to_the_owning_server_with_its_names() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let peer = client.service.peer();
    let prompt = CompleteRequestParams::new(
        Reference::for_prompt("fx_greet"),
        ArgumentInfo::new("name", "A"),
    );
    let result = peer.complete(prompt).await.unwrap();
    assert_eq!(result.completion.values, ["Ada", "Alan"]);
    let template = CompleteRequestParams::new(
        Reference::for_resource("fixture://item/{id}"),
        ArgumentInfo::new("id", "4"),
    );
    assert_eq!(
        peer.complete(template).await.unwrap().completion.values,
        ["42"]
    );
}

#[tokio::test]
async fn subscriptions_deliver_updates_to_subscribers_only() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let subscriber = env.client(None).await;
    let bystander = env.client(None).await;
    let uri = "fixture://static/hello";
    subscriber
        .service
        .peer()
        .subscribe(SubscribeRequestParams::new(uri))
        .await
        .unwrap();
    assert_eq!(
        bystander.call_text("fx_touch", json!({"uri": uri})).await,
        "notified"
    );
    wait_for("the update at the subscriber", || {
        !subscriber.recorder.updated.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(subscriber.recorder.updated.lock().unwrap()[0], uri);
    assert!(bystander.recorder.updated.lock().unwrap().is_empty());
    // When the last subscriber leaves, the backend is unsubscribed.
    subscriber.close().await;
    wait_for("the subscriber's session to end", || {
        env.status_json()["sessions"].as_array().unwrap().len() == 1
    })
    .await;
    let start = std::time::Instant::now();
    while bystander.call_text("fx_touch", json!({"uri": uri})).await != "not subscribed" {
        assert!(
            start.elapsed() < DEADLINE,
            "the backend kept the subscription"
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn log_messages_respect_each_sessions_level() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let verbose = env.client(None).await;
    let quiet = env.client(None).await;
    quiet
        .service
        .peer()
        .set_level(SetLevelRequestParams::new(rmcp::model::LoggingLevel::Error))
        .await
        .unwrap();
    verbose
        .call_text("fx_log", json!({"level": "warning", "message": "careful"}))
        .await;
    verbose
        .call_text("fx_log", json!({"level": "error", "message": "broken"}))
        .await;
    wait_for("both messages at the verbose session", || {
        verbose.recorder.logs.lock().unwrap().len() >= 2
    })
    .await;
    wait_for("the error at the quiet session", || {
        !quiet.recorder.logs.lock().unwrap().is_empty()
    })
    .await;
    let quiet_logs = quiet.recorder.logs.lock().unwrap().clone();
    assert!(
        quiet_logs.iter().all(|l| l.data == "broken"),
        "{quiet_logs:?}"
    );
}

#[tokio::test]
async fn sampling_and_elicitation_reach_the_calling_client() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let caller = env.client(None).await;
    let other = env.client(None).await;
    assert_eq!(
        caller
            .call_text("fx_sample", json!({"prompt": "ping"}))
            .await,
        "sampled: pong to ping"
    );
    assert_eq!(caller.recorder.sampled.lock().unwrap().as_slice(), ["ping"]);
    assert!(
        other.recorder.sampled.lock().unwrap().is_empty(),
        "only the caller is asked"
    );
    assert_eq!(
        caller
            .call_text("fx_elicit", json!({"message": "answer?"}))
            .await,
        "accept: 42"
    );

    let incapable = env
        .try_client_with(None, Recorder::incapable())
        .await
        .unwrap();
    let err = incapable.call("fx_sample", json!({"prompt": "ping"})).await;
    let text = match err {
        Ok(result) => text_of(&result),
        Err(e) => e,
    };
    // The error says what the client lacks, and that a shared server cannot know it.
    assert!(
        text.contains("server `fx` asked for sampling, which this client did not declare")
            && text.contains("`scope: per-client`"),
        "{text}"
    );
}

#[tokio::test]
async fn cancellation_and_disconnects_reach_the_backend() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let inflight = || {
        env.status_json()["backends"][0]["inflight"]
            .as_u64()
            .unwrap_or(0)
    };
    let cancels = || {
        env.status_json()["backends"][0]["stderr_tail"]
            .as_array()
            .map_or(0, |lines| {
                lines.iter().filter(|l| *l == "slow: cancelled").count()
            })
    };

    // notifications/cancelled from the client.
    let mut raw = RawClient::connect(&env, None).await;
    raw.send(json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": {"name": "fx_slow", "arguments": {"ms": 30000}}}))
        .await;
    wait_for("the call to be in flight", || inflight() == 1).await;
    raw.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}}),
    )
    .await;
    wait_for("the backend to see the cancel", || cancels() == 1).await;
    wait_for("nothing in flight", || inflight() == 0).await;

    // A client that disconnects mid-call.
    raw.send(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "fx_slow", "arguments": {"ms": 30000}}}))
        .await;
    wait_for("the second call to be in flight", || inflight() == 1).await;
    drop(raw);
    wait_for("the backend to see the disconnect as a cancel", || {
        cancels() == 2
    })
    .await;
    wait_for("nothing in flight", || inflight() == 0).await;
}

#[tokio::test]
async fn colliding_request_ids_from_two_clients_never_cross() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    let mut a = RawClient::connect(&env, None).await;
    let mut b = RawClient::connect(&env, None).await;
    for round in 0..5 {
        let call = |ms: u64| {
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "fx_slow", "arguments": {"ms": ms, "steps": 1}}})
        };
        a.send(call(120 + round)).await;
        b.send(call(20 + round)).await;
        let (rb, _) = b.until_response(&json!(1)).await;
        let (ra, _) = a.until_response(&json!(1)).await;
        assert_eq!(
            ra["result"]["content"][0]["text"],
            format!("slept {} ms", 120 + round),
            "{ra}"
        );
        assert_eq!(
            rb["result"]["content"][0]["text"],
            format!("slept {} ms", 20 + round),
            "{rb}"
        );
    }
}

#[tokio::test]
async fn lists_page_with_opaque_cursors() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}",
        env.fixture_server("fx", &["--extra-tools", "30"])
    ));
    let mut daemon = env.start_daemon_with(&[("MCPGW_PAGE_SIZE", "7")]);
    daemon.wait_ready(&env).await;
    let client = env.client(None).await;
    let all = client.tool_names().await;
    assert!(all.len() > 40, "every page was fetched: {}", all.len());
    let mut raw = RawClient::connect(&env, None).await;
    raw.send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .await;
    let (first, _) = raw.until_response(&json!(2)).await;
    assert_eq!(first["result"]["tools"].as_array().unwrap().len(), 7);
    let cursor = first["result"]["nextCursor"].as_str().unwrap().to_string();
    raw.send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"cursor": cursor}}),
    )
    .await;
    let (second, _) = raw.until_response(&json!(3)).await;
    assert_ne!(second["result"]["tools"][0], first["result"]["tools"][0]);
    raw.send(
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {"cursor": "bogus"}}),
    )
    .await;
    let (bad, _) = raw.until_response(&json!(4)).await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
}

#[tokio::test]
async fn a_backends_list_change_reaches_clients() {
    let env = Env::new();
    // Without pins: a new tool would be held back until approved (see `pins::`).
    env.write_config(&format!(
        "pin: off\nservers:\n{}",
        env.fixture_server("fx", &[])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let before = client.tool_names().await;
    assert!(!before.contains(&"fx_fresh".to_string()));
    let changed = *client.recorder.tools_changed.lock().unwrap();
    assert_eq!(
        client
            .call_text("fx_add_tool", json!({"name": "fresh"}))
            .await,
        "added fresh"
    );
    wait_for("list_changed", || {
        *client.recorder.tools_changed.lock().unwrap() > changed
    })
    .await;
    assert!(client.tool_names().await.contains(&"fx_fresh".to_string()));
    assert_eq!(
        client
            .call_text("fx_fresh", json!({"text": "new tool"}))
            .await,
        "new tool"
    );
}

#[tokio::test]
async fn every_protocol_version_works_through_the_gateway() {
    let env = Env::new();
    one_server(&env, "fx");
    let _daemon = env.daemon().await;
    for version in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let mut raw = RawClient::connect_version(&env, None, version).await;
        assert_eq!(raw.negotiated, version);
        raw.send(json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
            "params": {"name": "fx_echo", "arguments": {"text": version}}}))
            .await;
        let (response, _) = raw.until_response(&json!(9)).await;
        assert_eq!(
            response["result"]["content"][0]["text"], version,
            "{response}"
        );
    }
}

#[tokio::test]
async fn a_call_timeout_cancels_upstream() {
    let env = Env::new();
    env.write_config(&format!(
        "call_timeout: 30s\nservers:\n{}    call_timeout: 300ms\n",
        env.fixture_server("fx", &[])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let err = client
        .call("fx_slow", json!({"ms": 20000}))
        .await
        .unwrap_err();
    assert!(
        err.contains("did not answer within 0.3s (call_timeout)"),
        "{err}"
    );
    wait_for("the backend to see the cancel", || {
        env.status_json()["backends"][0]["stderr_tail"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l == "slow: cancelled"))
    })
    .await;
    assert_eq!(
        client.call_text("fx_echo", json!({"text": "next"})).await,
        "next"
    );
}
