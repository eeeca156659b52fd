//! The byte path (`session/byte_path.rs`, `backend/upstream/stdio.rs`; once the "fast path"): a
//! `tools/call` to a running stdio backend forwarded as bytes.
//! Every test warms the backend first (the first call starts it through rmcp) and checks with
//! the fixture's `request` tool which path a call took: forwarded calls carry `"mcpgw:<n>"`
//! ids upstream, rmcp's carry numbers.

use serde_json::{Value, json};

use crate::harness::{Daemon, Env, RawClient, wait_for};

fn one_server(env: &Env, extra: &str) {
    env.write_config(&format!(
        "servers:\n{}{extra}",
        env.fixture_server("fx", &[])
    ));
}

async fn daemon(env: &Env, fast: bool) -> Daemon {
    daemon_with(env, fast, &[]).await
}

async fn daemon_with(env: &Env, fast: bool, vars: &[(&str, &str)]) -> Daemon {
    let mut vars = vars.to_vec();
    vars.push(("MCPGW_FAST_PATH", if fast { "1" } else { "0" }));
    let mut daemon = env.start_daemon_with(&vars);
    daemon.wait_ready(env).await;
    daemon
}

/// Calls `name` with `args` (and `meta`, if any) and returns the whole response.
async fn call(
    raw: &mut RawClient,
    id: Value,
    name: &str,
    args: Value,
    meta: Option<Value>,
) -> Value {
    let mut params = json!({"name": name, "arguments": args});
    if let Some(meta) = meta {
        params["_meta"] = meta;
    }
    raw.send(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}))
        .await;
    raw.until_response(&id).await.0
}

/// What the backend saw of a `request` call: its id, _meta and arguments.
async fn seen_upstream(raw: &mut RawClient, id: Value, meta: Option<Value>) -> Value {
    let response = call(raw, id, "fx_request", json!({"list": [1, 2.50, "x"]}), meta).await;
    let text = response["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"));
    serde_json::from_str(text).unwrap()
}

/// Starts the backend with a first call, then checks that the next one is forwarded as bytes.
async fn warm(raw: &mut RawClient) {
    let cold = seen_upstream(raw, json!("warm-1"), None).await;
    assert!(
        cold["id"].is_number(),
        "the first call starts the backend through rmcp: {cold}"
    );
    let warm = seen_upstream(raw, json!("warm-2"), None).await;
    assert!(
        warm["id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("mcpgw:"),
        "{warm}"
    );
}

fn status_backend(env: &Env) -> Value {
    env.status_json()["backends"][0].clone()
}

#[tokio::test]
async fn warm_calls_take_the_fast_path_and_answer_as_rmcp_does() {
    let env = Env::new();
    one_server(&env, "");
    let mut answers = Vec::new();
    for fast in [true, false] {
        let mut daemon = daemon(&env, fast).await;
        let mut raw = RawClient::connect(&env, None).await;
        // The first call starts the backend (always through rmcp).
        let cold = seen_upstream(&mut raw, json!(1), None).await;
        assert!(cold["id"].is_number(), "{cold}");

        let meta = json!({"progressToken": "tok", "vendor/trace": {"span": 7}});
        let warm = seen_upstream(&mut raw, json!("two"), Some(meta)).await;
        if fast {
            assert!(warm["id"].as_str().unwrap().starts_with("mcpgw:"), "{warm}");
            assert_eq!(warm["meta"]["progressToken"], warm["id"], "{warm}");
        } else {
            assert!(warm["id"].is_number(), "{warm}");
        }
        assert_ne!(
            warm["meta"]["progressToken"], "tok",
            "tokens are the gateway's upstream"
        );
        assert_eq!(warm["meta"]["vendor/trace"], json!({"span": 7}), "{warm}");
        // A request with 2026-07-28 per-request metadata is rmcp's to route and shape.
        let modern = json!({"io.modelcontextprotocol/protocolVersion": "2025-06-18"});
        let seen = seen_upstream(&mut raw, json!("modern"), Some(modern)).await;
        assert!(seen["id"].is_number(), "{seen}");
        assert_eq!(warm["arguments"], json!({"list": [1, 2.50, "x"]}));

        // Whatever the path, the client gets the same answers.
        let mut seen = Vec::new();
        seen.push(
            call(
                &mut raw,
                json!(3),
                "fx_echo",
                json!({"text": "hi \"there\" ✓"}),
                None,
            )
            .await,
        );
        seen.push(
            call(
                &mut raw,
                json!(4),
                "fx_fail",
                json!({"message": "nope"}),
                None,
            )
            .await,
        );
        seen.push(call(&mut raw, json!(5), "fx_add", json!({"a": "x"}), None).await);
        seen.push(call(&mut raw, json!(6), "fx_nosuch", json!({}), None).await);
        // An id spelled with an escape is answered with the same id.
        raw.send_bytes(
            b"{\"jsonrpc\":\"2.0\",\"id\":\"\\u0061\",\"method\":\"tools/call\",\
              \"params\":{\"name\":\"fx_echo\",\"arguments\":{\"text\":\"id\"}}}\n",
        )
        .await;
        seen.push(raw.until_response(&json!("a")).await.0);
        answers.push(seen);

        let backend = status_backend(&env);
        assert_eq!(backend["calls"], 7, "{backend}");
        assert_eq!(backend["errors"], 2, "fail and the bad add: {backend}");
        raw.close().await;
        daemon.stop().await;
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn progress_of_a_fast_call_reaches_its_caller_in_order_before_the_response() {
    let env = Env::new();
    one_server(&env, "");
    let _daemon = daemon(&env, true).await;
    let mut raw = RawClient::connect(&env, None).await;
    let mut other = RawClient::connect(&env, None).await;
    warm(&mut raw).await;
    for round in 1..=3 {
        let meta = json!({"progressToken": format!("mine-{round}")});
        raw.send(
            json!({"jsonrpc": "2.0", "id": round, "method": "tools/call", "params": {
            "name": "fx_slow", "arguments": {"ms": 40, "steps": 8}, "_meta": meta}}),
        )
        .await;
        // The other session calls too, with the same id, at the same time.
        other
            .send(
                json!({"jsonrpc": "2.0", "id": round, "method": "tools/call", "params": {
            "name": "fx_echo", "arguments": {"text": "other"}}}),
            )
            .await;
        let (response, before) = raw.until_response(&json!(round)).await;
        assert_eq!(
            response["result"]["content"][0]["text"], "slept 40 ms",
            "{response}"
        );
        let progress: Vec<&Value> = before
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(
            progress.len(),
            8,
            "every update, before the response: {before:?}"
        );
        let values: Vec<f64> = progress
            .iter()
            .map(|p| p["params"]["progress"].as_f64().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
        assert!(
            progress
                .iter()
                .all(|p| p["params"]["progressToken"] == meta["progressToken"]),
            "{progress:?}"
        );
        let (theirs, before) = other.until_response(&json!(round)).await;
        assert_eq!(theirs["result"]["content"][0]["text"], "other", "{theirs}");
        assert!(
            before.is_empty(),
            "no progress of someone else's call: {before:?}"
        );
    }
}

/// Both paths keep one record of a call in flight (`backend/inflight.rs`): a cancel and a
/// timeout end the same way on each, down to what status counts.
#[tokio::test]
async fn a_call_is_cancelled_upstream_by_cancel_disconnect_and_timeout_on_both_paths() {
    let bytes = cancel_disconnect_and_timeout(true).await;
    let rmcp = cancel_disconnect_and_timeout(false).await;
    assert_eq!(bytes, rmcp, "status (calls, errors): byte path vs rmcp");
}

/// Cancels a call, times one out and disconnects during a third; returns status's calls and
/// errors after the first two.
async fn cancel_disconnect_and_timeout(fast: bool) -> (Value, Value) {
    let env = Env::new();
    one_server(&env, "    call_timeout: 500ms\n");
    let _daemon = daemon(&env, fast).await;
    let inflight = || status_backend(&env)["inflight"].as_u64().unwrap_or(0);
    let cancels = || {
        status_backend(&env)["stderr_tail"]
            .as_array()
            .map_or(0, |lines| {
                lines.iter().filter(|l| *l == "slow: cancelled").count()
            })
    };
    let mut raw = RawClient::connect(&env, None).await;
    match fast {
        true => warm(&mut raw).await,
        // The same two calls, both through rmcp.
        false => {
            for id in ["warm-1", "warm-2"] {
                seen_upstream(&mut raw, json!(id), None).await;
            }
        }
    }
    let slow = |id: u64, ms: u64| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "fx_slow", "arguments": {"ms": ms}}})
    };

    // The client's notifications/cancelled: upstream cancelled, no response.
    raw.send(slow(5, 400)).await;
    wait_for("the call to be in flight", || inflight() == 1).await;
    // (a reason that names another method must not confuse the dispatch)
    raw.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 5, "reason": "user aborted tools/call"}}),
    )
    .await;
    wait_for("the backend to see the cancel", || cancels() == 1).await;
    wait_for("nothing in flight", || inflight() == 0).await;
    raw.send(json!({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
        "params": {"name": "fx_echo", "arguments": {"text": "6"}}}))
        .await;
    let (echo, before) = raw.until_response(&json!(6)).await;
    assert_eq!(echo["result"]["content"][0]["text"], "6");
    assert!(
        before.iter().all(|m| m.get("id") != Some(&json!(5))),
        "a cancelled call is not answered: {before:?}"
    );

    // call_timeout: an error naming the limit, and upstream cancelled.
    let response = call(&mut raw, json!(7), "fx_slow", json!({"ms": 5000}), None).await;
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("did not answer within 0.5s (call_timeout)"),
        "{response}"
    );
    wait_for("the backend to see the timeout's cancel", || cancels() == 2).await;
    wait_for("nothing in flight", || inflight() == 0).await;
    let status = status_backend(&env);
    let counted = (status["calls"].clone(), status["errors"].clone());

    // A client that disconnects mid-call: the byte path withdraws its calls at once; rmcp gives
    // a closed session's handlers up to 5 s to finish before it cancels them, and this one
    // finishes in time.
    raw.send(slow(8, 400)).await;
    wait_for("the call to be in flight", || inflight() == 1).await;
    drop(raw);
    if fast {
        wait_for("the backend to see the disconnect as a cancel", || {
            cancels() == 3
        })
        .await;
    }
    wait_for("nothing in flight", || inflight() == 0).await;
    counted
}

#[tokio::test]
async fn a_backend_that_dies_fails_its_fast_calls_with_the_exit_status() {
    let env = Env::new();
    one_server(&env, "");
    let _daemon = daemon(&env, true).await;
    let mut waiting = RawClient::connect(&env, None).await;
    let mut killer = RawClient::connect(&env, None).await;
    warm(&mut waiting).await;
    waiting
        .send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "fx_slow", "arguments": {"ms": 30000}}}))
        .await;
    wait_for("the call to be in flight", || {
        status_backend(&env)["inflight"].as_u64() == Some(1)
    })
    .await;
    let crashed = call(&mut killer, json!(1), "fx_crash", json!({"code": 7}), None).await;
    let (response, _) = waiting.until_response(&json!(1)).await;
    for failed in [&crashed, &response] {
        let message = failed["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("server `fx` closed the connection"),
            "{failed}"
        );
        assert!(message.contains('7'), "the exit status is named: {failed}");
    }
    // The next call starts it again.
    let again = call(
        &mut waiting,
        json!(2),
        "fx_echo",
        json!({"text": "back"}),
        None,
    )
    .await;
    assert_eq!(again["result"]["content"][0]["text"], "back", "{again}");
}

#[tokio::test]
async fn sampling_during_a_fast_call_reaches_the_caller() {
    let env = Env::new();
    one_server(&env, "");
    let _daemon = daemon(&env, true).await;
    let caller = env.client(None).await;
    let other = env.client(None).await;
    assert_eq!(
        caller.call_text("fx_echo", json!({"text": "warm"})).await,
        "warm"
    );
    for prompt in ["one", "two"] {
        assert_eq!(
            caller
                .call_text("fx_sample", json!({"prompt": prompt}))
                .await,
            format!("sampled: pong to {prompt}")
        );
    }
    assert_eq!(
        caller.recorder.sampled.lock().unwrap().as_slice(),
        ["one", "two"]
    );
    assert!(other.recorder.sampled.lock().unwrap().is_empty());
}

#[tokio::test]
async fn tool_list_pages_on_the_fast_path_equal_rmcps() {
    let mut answers = Vec::new();
    for fast in [true, false] {
        // Each run its own env: the tool added below would otherwise be in the next one's cache.
        let env = Env::new();
        // The tool added below must be listed, not held back as new since the pins.
        one_server(&env, "pin: off\n");
        let mut daemon = daemon_with(&env, fast, &[("MCPGW_PAGE_SIZE", "4")]).await;
        let mut raw = RawClient::connect(&env, None).await;
        let mut seen = Vec::new();
        // The first listing discovers the server; the second is answered from the pages.
        for round in 0..2 {
            let mut cursor = Value::Null;
            for page in 0.. {
                let id = json!(format!("list-{round}-{page}"));
                let params = match &cursor {
                    Value::Null => json!({}),
                    c => json!({"cursor": c}),
                };
                raw.send(
                    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list", "params": params}),
                )
                .await;
                let (response, _) = raw.until_response(&id).await;
                assert!(response["result"]["tools"].is_array(), "{response}");
                cursor = response["result"]["nextCursor"].clone();
                seen.push(response);
                if cursor.is_null() {
                    break;
                }
            }
        }
        assert!(seen.len() > 4, "several pages: {}", seen.len());
        // A cursor the gateway did not issue is an error either way.
        raw.send(
            json!({"jsonrpc": "2.0", "id": "bad", "method": "tools/list",
            "params": {"cursor": "zz"}}),
        )
        .await;
        let (bad, _) = raw.until_response(&json!("bad")).await;
        assert_eq!(bad["error"]["code"], -32602, "{bad}");
        seen.push(bad);
        // Having listed, the session hears when the list changes.
        raw.send(
            json!({"jsonrpc": "2.0", "id": "add", "method": "tools/call",
            "params": {"name": "fx_add_tool", "arguments": {"name": "late"}}}),
        )
        .await;
        // (recv fails the test at its deadline if either never comes)
        let (mut answered, mut changed) = (false, false);
        while !(answered && changed) {
            let message = raw.recv().await;
            changed |= message["method"] == "notifications/tools/list_changed";
            if message["id"] == "add" {
                answered = true;
                seen.push(message);
            }
        }
        answers.push(seen);
        raw.close().await;
        daemon.stop().await;
    }
    assert_eq!(answers[0], answers[1]);
}
