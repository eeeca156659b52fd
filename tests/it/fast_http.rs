//! The HTTP fast path: calls and lists in a session answered without rmcp, as rmcp would
//! answer them, and the sessions it serves.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::*;
use crate::http::{
    ADMIN, HttpClient, HttpDaemon, READONLY, SseStream, alpha_inflight, call, config, http_client,
    in_session, open_session, post_mcp, resume_get, sse_messages,
};

/// A JSON-RPC `tools/call` of `name`.
fn call_body(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": name, "arguments": args}})
}

async fn call_text(client: &HttpClient, name: &str) -> String {
    call(client, name, json!({})).await.unwrap()
}

/// Who answered a POST: the fast path (plain JSON for a list, its own SSE stream with
/// `mcpgw-` event ids for a call) or rmcp (SSE).
#[derive(Debug, PartialEq)]
enum Served {
    Json,
    FastStream,
    Rmcp,
}

/// The answer to `id` in a POST's response, and who served it.
async fn answer(response: reqwest::Response, id: &Value) -> (Value, Served) {
    assert_eq!(response.status(), 200);
    let json = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json");
    let text = response.text().await.unwrap();
    if json {
        return (serde_json::from_str(&text).unwrap(), Served::Json);
    }
    let message = sse_messages(&text)
        .into_iter()
        .find(|m| m["id"] == *id && m.get("method").is_none())
        .unwrap_or_else(|| panic!("no answer to {id} in {text}"));
    let served = match text.contains("id: mcpgw-") {
        true => Served::FastStream,
        false => Served::Rmcp,
    };
    (message, served)
}

#[tokio::test]
async fn the_fast_path_answers_http_calls_and_lists_as_rmcp_does() {
    let mut answers = Vec::new();
    for fast in [true, false] {
        let env = Env::new();
        let vars = [("MCPGW_FAST_PATH", if fast { "1" } else { "0" })];
        let http = HttpDaemon::start_with_vars(&env, |port| config(&env, port, ""), &vars).await;
        let port = http.port;
        let post = |session: &str, body: &Value| in_session(port, session, body);
        let session = open_session(port).await;
        let mut seen = Vec::new();

        // The first call starts the backend through rmcp; the next ones are forwarded.
        for id in [10, 11] {
            let body = call_body(id, "alpha_request", json!({}));
            let (message, served) =
                answer(post(&session, &body).send().await.unwrap(), &json!(id)).await;
            let upstream: Value =
                serde_json::from_str(message["result"]["content"][0]["text"].as_str().unwrap())
                    .unwrap();
            let forwarded = upstream["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("mcpgw:"));
            assert_eq!(forwarded, fast && id == 11, "{upstream}");
            let expected = if forwarded {
                Served::FastStream
            } else {
                Served::Rmcp
            };
            assert_eq!(served, expected);
        }
        for (id, name, args) in [
            (12, "alpha_echo", json!({"text": "hi"})),
            (13, "alpha_fail", json!({"message": "nope"})),
            (14, "alpha_nosuch", json!({})),
        ] {
            let response = post(&session, &call_body(id, name, args))
                .send()
                .await
                .unwrap();
            seen.push(answer(response, &json!(id)).await.0);
        }
        let list = json!({"jsonrpc": "2.0", "id": 15, "method": "tools/list"});
        let (listed, served) =
            answer(post(&session, &list).send().await.unwrap(), &json!(15)).await;
        assert_eq!(served, if fast { Served::Json } else { Served::Rmcp });
        seen.push(listed);

        // Progress goes on the call's stream, with the client's token, before the answer.
        let mut with_progress = call_body(16, "alpha_slow", json!({"ms": 50, "steps": 3}));
        with_progress["params"]["_meta"] = json!({"progressToken": "p"});
        let response = post(&session, &with_progress).send().await.unwrap();
        let text = response.text().await.unwrap();
        assert_eq!(text.contains("id: mcpgw-"), fast, "{text}");
        let messages = sse_messages(&text);
        let progress: Vec<&Value> = messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .collect();
        assert_eq!(progress.len(), 3, "{messages:?}");
        assert!(progress.iter().all(|p| p["params"]["progressToken"] == "p"));
        assert_eq!(messages.last().unwrap()["id"], 16, "{messages:?}");
        seen.push(messages.last().unwrap().clone());

        // rmcp's own HTTP client (which always asks for progress) takes the fast path too.
        let rmcp_client = http_client(&http.url("/mcp"), Some(ADMIN)).await.unwrap();
        let upstream: Value =
            serde_json::from_str(&call_text(&rmcp_client, "alpha_request").await).unwrap();
        let forwarded = upstream["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("mcpgw:"));
        assert_eq!(forwarded, fast, "{upstream}");
        let _ = rmcp_client.cancel().await;

        // A call's stream is resumable from its priming event, whoever serves it.
        let slow = call_body(19, "alpha_slow", json!({"ms": 600, "steps": 1}));
        let mut stream = SseStream::new(post(&session, &slow).send().await.unwrap());
        let (_, _, priming) = stream.next_with_id().await.expect("a priming event");
        assert_eq!(priming.starts_with("mcpgw-"), fast, "{priming}");
        drop(stream);
        let resumed = resume_get(&http, &session, &priming).send().await.unwrap();
        assert_eq!(resumed.status(), 200);
        let response = SseStream::new(resumed).response(19).await;
        assert_eq!(
            response["result"]["content"][0]["text"], "slept 600 ms",
            "{response}"
        );
        seen.push(response);

        // Another role's token cannot use the session (404 from rmcp either way).
        let foreign = post_mcp(port, &call_body(17, "alpha_echo", json!({"text": "x"})))
            .bearer_auth(READONLY)
            .header("mcp-session-id", &session)
            .header("mcp-protocol-version", "2025-06-18")
            .send()
            .await
            .unwrap();
        assert_eq!(foreign.status(), 404);

        // Hanging up is not cancelling (Streamable HTTP); notifications/cancelled is.
        let hung_up = match post(&session, &call_body(18, "alpha_slow", json!({"ms": 20000})))
            .timeout(Duration::from_millis(300))
            .send()
            .await
        {
            Ok(response) => response.text().await.map(drop),
            Err(e) => Err(e),
        };
        assert!(hung_up.is_err());
        wait_for("the call to be in flight", || alpha_inflight(&env) == 1).await;
        let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 18}});
        assert_eq!(post(&session, &cancel).send().await.unwrap().status(), 202);
        wait_for("the backend to see the cancel", || {
            env.status_json()["backends"][0]["stderr_tail"]
                .as_array()
                .is_some_and(|lines| lines.iter().any(|l| l == "slow: cancelled"))
        })
        .await;
        wait_for("nothing in flight", || alpha_inflight(&env) == 0).await;
        answers.push(seen);
        drop(http);
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn fast_served_sessions_stay_alive_and_their_end_cancels_their_calls() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "  session_idle_timeout: 1s\n")
    })
    .await;
    let port = http.port;
    let post = |session: &str, body: &Value| in_session(port, session, body);
    let session = open_session(port).await;

    // Calls the fast path serves keep the session alive past its idle timeout.
    let start = Instant::now();
    let mut id = 0;
    while start.elapsed() < Duration::from_millis(2500) {
        id += 1;
        let response = post(
            &session,
            &call_body(id, "alpha_echo", json!({"text": "hi"})),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(
            response.status(),
            200,
            "call {id} after {:?}",
            start.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, served) = answer(
        post(
            &session,
            &call_body(1000, "alpha_echo", json!({"text": "x"})),
        )
        .send()
        .await
        .unwrap(),
        &json!(1000),
    )
    .await;
    assert_eq!(served, Served::FastStream);

    // Its end cancels what it has in flight.
    let _stream = post(
        &session,
        &call_body(1001, "alpha_slow", json!({"ms": 30000})),
    )
    .send()
    .await
    .unwrap();
    wait_for("the call to be in flight", || alpha_inflight(&env) == 1).await;
    let deleted = reqwest::Client::new()
        .delete(http.url("/mcp"))
        .bearer_auth(ADMIN)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    wait_for("the backend to see the cancel", || {
        env.status_json()["backends"][0]["stderr_tail"]
            .as_array()
            .is_some_and(|lines| lines.iter().any(|l| l == "slow: cancelled"))
    })
    .await;
    wait_for("nothing in flight", || alpha_inflight(&env) == 0).await;

    // A resume of a stream that is not there is empty, as rmcp's (a 404 would say the
    // session is gone).
    let other = open_session(port).await;
    let resumed = resume_get(&http, &other, "mcpgw-999-0")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 200);
    assert_eq!(resumed.text().await.unwrap(), "");
}
