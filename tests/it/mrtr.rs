//! The 2026-07-28 multi-round-trip (MRTR) bridge over HTTP: a modern client answers a
//! backend's sampling, elicitation and roots requests in input-required rounds.

use rmcp::model::{CallToolRequestParams, CallToolResponse, InputRequiredResult};
use serde_json::{Value, json};

use crate::harness::*;
use crate::http::{
    ADMIN, HttpClient, HttpDaemon, READONLY, alpha_inflight, call, config, http_client,
    modern_client,
};

fn tool_call(name: &str, args: Value) -> CallToolRequestParams {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    CallToolRequestParams::new(name.to_string()).with_arguments(map)
}

/// One round by hand: the input-required result the gateway answers `params` with.
async fn input_required(client: &HttpClient, params: CallToolRequestParams) -> InputRequiredResult {
    match client.call_tool_once(params).await.expect("tools/call") {
        CallToolResponse::InputRequired(result) => result,
        other => panic!("expected input_required, got {other:?}"),
    }
}

#[tokio::test]
async fn a_modern_client_answers_backend_sampling_and_elicitation_in_rounds() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let recorder = Recorder::default();
    let client = modern_client(&http, ADMIN, recorder.clone()).await;

    // rmcp's client drives the rounds through its handler; the backend gets its answers.
    let sampled = client
        .call_tool(tool_call("alpha_sample", json!({"prompt": "hi"})))
        .await
        .expect("sampling bridged");
    assert_eq!(text_of(&sampled), "sampled: pong to hi");
    assert_eq!(*recorder.sampled.lock().unwrap(), ["hi"]);
    let elicited = client
        .call_tool(tool_call("alpha_elicit", json!({"message": "answer?"})))
        .await
        .expect("elicitation bridged");
    assert_eq!(text_of(&elicited), "accept: 42");
    // Two server→client requests in one call: two rounds, one upstream call.
    let interviewed = client
        .call_tool(tool_call("alpha_interview", json!({"message": "answer?"})))
        .await
        .expect("two rounds bridged");
    assert_eq!(
        text_of(&interviewed),
        "accept: 42 / sampled: pong to accept: 42"
    );

    // By hand: the input request is the backend's, the state an opaque handle.
    let params = tool_call("alpha_sample", json!({"prompt": "by hand?"}));
    let round = input_required(&client, params.clone()).await;
    let requests = round.input_requests.clone().expect("input requests");
    assert_eq!(requests.len(), 1, "{requests:?}");
    let (key, request) = requests.into_iter().next().unwrap();
    let request = serde_json::to_value(&request).unwrap();
    assert_eq!(request["method"], "sampling/createMessage", "{request}");
    assert_eq!(
        request["params"]["messages"][0]["content"]["text"],
        "by hand?"
    );
    let state = round.request_state.clone().expect("request state");
    assert_eq!(state.len(), 64, "{state}");

    // The state is the admin role's: another role's token cannot continue it (nor learn that
    // it exists), and trying does not spend it.
    let readonly = modern_client(&http, READONLY, Recorder::default()).await;
    let stolen = readonly
        .call_tool_once(params.clone().with_request_state(state.clone()))
        .await
        .expect_err("another role's state");
    assert!(
        stolen
            .to_string()
            .contains("unknown or expired requestState"),
        "{stolen}"
    );
    // Nor can it continue another request.
    let other = client
        .call_tool_once(
            tool_call("alpha_elicit", json!({"message": "x"})).with_request_state(state.clone()),
        )
        .await
        .expect_err("another request's state");
    assert!(
        other
            .to_string()
            .contains("belongs to tools/call `alpha_sample`"),
        "{other}"
    );

    let answer = json!({"role": "assistant", "content": {"type": "text", "text": "typed"},
        "model": "by-hand"});
    let retry = params
        .clone()
        .with_input_responses([(key.clone(), answer.clone())].into_iter().collect())
        .with_request_state(state.clone());
    match client.call_tool_once(retry.clone()).await.expect("retry") {
        CallToolResponse::Complete(result) => assert_eq!(text_of(&result), "sampled: typed"),
        other => panic!("expected the tool's result, got {other:?}"),
    }
    // A state continues one retry only.
    let replayed = client
        .call_tool_once(retry)
        .await
        .expect_err("a spent state");
    assert!(
        replayed
            .to_string()
            .contains("unknown or expired requestState"),
        "{replayed}"
    );
    let made_up = client
        .call_tool_once(params.with_request_state("0123abcd"))
        .await
        .expect_err("a made-up state");
    assert!(
        made_up
            .to_string()
            .contains("unknown or expired requestState"),
        "{made_up}"
    );

    wait_for("alpha to have no call in flight", || {
        alpha_inflight(&env) == 0
    })
    .await;
    let _ = readonly.cancel().await;
    let _ = client.cancel().await;
}

#[tokio::test]
async fn an_abandoned_input_round_expires_and_cancels_the_upstream_call() {
    let env = Env::new();
    let http = HttpDaemon::start_with_vars(
        &env,
        |port| config(&env, port, ""),
        &[("MCPGW_INPUT_TIMEOUT_MS", "400")],
    )
    .await;
    let client = modern_client(&http, ADMIN, Recorder::default()).await;
    let params = tool_call("alpha_elicit", json!({"message": "anyone?"}));
    let round = input_required(&client, params.clone()).await;
    let state = round.request_state.expect("request state");
    let key = round
        .input_requests
        .expect("input requests")
        .into_keys()
        .next()
        .unwrap();
    // The upstream call waits for the answer while the state is parked...
    assert_eq!(alpha_inflight(&env), 1);
    // ...and is cancelled when nobody retries in time.
    wait_for("the abandoned call to be cancelled upstream", || {
        alpha_inflight(&env) == 0
    })
    .await;
    let answer = json!({"action": "accept", "content": {"answer": "late"}});
    let late = client
        .call_tool_once(
            params
                .with_input_responses([(key, answer)].into_iter().collect())
                .with_request_state(state),
        )
        .await
        .expect_err("an expired state");
    assert!(
        late.to_string().contains("unknown or expired requestState"),
        "{late}"
    );
    let _ = client.cancel().await;
}

#[tokio::test]
async fn an_initialize_era_http_client_is_still_asked_directly() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let client = http_client(&http.url("/mcp"), Some(ADMIN)).await.unwrap();
    assert_eq!(
        call(&client, "alpha_sample", json!({"prompt": "old"})).await,
        Ok("sampled: pong to old".into())
    );
    assert_eq!(*client.service().sampled.lock().unwrap(), ["old"]);
    let _ = client.cancel().await;
}

#[tokio::test]
async fn a_modern_clients_per_client_instance_asks_it_for_roots_and_is_its_tokens_own() {
    let env = Env::new();
    let alpha = env.fixture_server("alpha", &[]);
    let http = HttpDaemon::start(&env, |port| {
        config(&env, port, "").replace(&alpha, &format!("{alpha}    scope: per-client\n"))
    })
    .await;
    let client = modern_client(&http, ADMIN, Recorder::default()).await;
    // Roots are advertised to a per-client instance whose client has them: asked in a round.
    let roots = client
        .call_tool(tool_call("alpha_roots", json!({})))
        .await
        .expect("roots bridged");
    assert_eq!(text_of(&roots), "file:///mcpgw-it-root");
    let sampled = client
        .call_tool(tool_call("alpha_sample", json!({"prompt": "mine?"})))
        .await
        .expect("sampling bridged");
    assert_eq!(text_of(&sampled), "sampled: pong to mine?");
    // Every request of a client without a session stands alone, yet its per-client instance
    // is the client's (its token's): started once, not once per request.
    let pid = |client: &HttpClient| {
        let client = client.peer().clone();
        async move {
            let result = client.call_tool(tool_call("alpha_pid", json!({}))).await;
            text_of(&result.expect("alpha_pid"))
        }
    };
    let mine = pid(&client).await;
    assert_eq!(pid(&client).await, mine, "a new instance for each request");
    let instances = || {
        env.status_json()["backends"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["name"].as_str().unwrap().starts_with("alpha@"))
            .count()
    };
    assert_eq!(instances(), 1);
    // Another token is another client: an instance of its own.
    let other = modern_client(&http, READONLY, Recorder::default()).await;
    assert_ne!(
        pid(&other).await,
        mine,
        "two clients shared a per-client instance"
    );
    assert_eq!(instances(), 2);
    let _ = other.cancel().await;

    // A client that declared no sampling is not asked: the backend hears so, as before.
    let incapable = modern_client(&http, ADMIN, Recorder::incapable()).await;
    let err = incapable
        .call_tool(tool_call("alpha_sample", json!({"prompt": "x"})))
        .await
        .expect_err("no sampling capability");
    assert!(
        err.to_string()
            .contains("asked for sampling, which this client did not declare"),
        "{err}"
    );
    let _ = incapable.cancel().await;
    let _ = client.cancel().await;
}

/// Each call waiting for its client's retry holds a request open on a backend: past the cap
/// (`MCPGW_MAX_PARKED`, 256 by default) a new one is refused, and its upstream call cancelled.
#[tokio::test]
async fn calls_waiting_for_input_are_capped() {
    let env = Env::new();
    // Two servers: a shared backend sends its server→client requests to its oldest caller, so
    // the second call must wait on another backend to be a call of its own.
    let make = |port: u16| {
        format!(
            "servers:\n{}{}http:\n  listen: \"127.0.0.1:{port}\"\n",
            env.fixture_server("alpha", &[]),
            env.fixture_server("beta", &[])
        )
    };
    let http = HttpDaemon::start_with_vars(&env, make, &[("MCPGW_MAX_PARKED", "1")]).await;
    let client = modern_client(&http, ADMIN, Recorder::default()).await;
    let first = input_required(&client, tool_call("alpha_sample", json!({"prompt": "1"}))).await;
    assert!(first.request_state.is_some());
    let refused = client
        .call_tool_once(tool_call("beta_sample", json!({"prompt": "2"})))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("too many requests wait for input"),
        "{refused}"
    );
    let beta_inflight = || {
        env.status_json()["backends"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["name"] == "beta")
            .map_or(0, |b| b["inflight"].as_u64().unwrap_or(0))
    };
    wait_for("the refused call to be cancelled upstream", || {
        beta_inflight() == 0
    })
    .await;
    assert_eq!(alpha_inflight(&env), 1, "the parked call waits on");
}
