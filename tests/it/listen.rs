//! `subscriptions/listen`, the 2026-07-28 way to receive notifications (Claude Code opens one
//! right after `server/discover`): list changes and resource updates reach a modern client
//! through the shim and over stateless HTTP, only what it asked for, and an ended listen
//! releases its upstream subscriptions.

use rmcp::model::{ServerNotification, SubscriptionFilter};
use rmcp::service::Subscription;
use serde_json::json;

use crate::harness::*;
use crate::http::{ADMIN, HttpDaemon, config, http_client, modern_client};

const STATIC_URI: &str = "fixture://static/hello";

/// Everything the gateway sends, and two resources: one it serves, one it does not.
fn everything() -> SubscriptionFilter {
    let mut filter = SubscriptionFilter::new();
    filter.tools_list_changed = Some(true);
    filter.prompts_list_changed = Some(true);
    filter.resources_list_changed = Some(true);
    filter.resource_subscriptions = Some(vec![STATIC_URI.into(), "fixture://nowhere".into()]);
    filter
}

/// The next notification on `subscription` that `wanted` accepts, within the deadline; the
/// subscription id is checked by rmcp's client on every one.
pub async fn next_matching(
    subscription: &mut Subscription,
    what: &str,
    wanted: impl Fn(&ServerNotification) -> bool,
) -> ServerNotification {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let next = tokio::time::timeout_at(deadline, subscription.next())
            .await
            .unwrap_or_else(|_| panic!("no {what} on the subscription"))
            .expect("the subscription stays valid")
            .unwrap_or_else(|| panic!("the subscription ended before {what}"));
        if wanted(&next) {
            return next;
        }
    }
}

pub fn is_tools_changed(n: &ServerNotification) -> bool {
    matches!(n, ServerNotification::ToolListChangedNotification(_))
}

fn is_update_of(uri: &str) -> impl Fn(&ServerNotification) -> bool + '_ {
    move |n| matches!(n, ServerNotification::ResourceUpdatedNotification(u) if u.params.uri == uri)
}

fn acknowledged_resources(subscription: &Subscription) -> Vec<String> {
    let acknowledged = subscription.acknowledged();
    assert_eq!(acknowledged.tools_list_changed, Some(true));
    assert_eq!(acknowledged.prompts_list_changed, Some(true));
    assert_eq!(acknowledged.resources_list_changed, Some(true));
    acknowledged
        .resource_subscriptions
        .clone()
        .unwrap_or_default()
}

#[tokio::test]
async fn a_modern_client_through_the_shim_hears_list_changes_and_resource_updates() {
    let env = Env::new();
    let one = format!("servers:\n{}", env.fixture_server("fx", &[]));
    env.write_config(&one);
    let daemon = env.daemon().await;
    let modern = env.modern_client(None).await;
    // Listed first, so the servers are known when the listen is acknowledged.
    assert!(modern.tool_names().await.contains(&"fx_echo".to_string()));
    let mut subscription = modern
        .service
        .peer()
        .listen(everything())
        .await
        .expect("subscriptions/listen is answered");
    assert_eq!(
        acknowledged_resources(&subscription),
        [STATIC_URI],
        "a resource nobody serves is not acknowledged"
    );

    // An update of the resource, caused by another client, reaches the listen (once the
    // listen's upstream subscription is in place: rmcp acknowledges a listen before the
    // handler that subscribes runs).
    let bystander = env.client(None).await;
    let mut touched = String::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while touched != "notified" && tokio::time::Instant::now() < deadline {
        touched = bystander
            .call_text("fx_touch", json!({"uri": STATIC_URI}))
            .await;
    }
    assert_eq!(touched, "notified", "the listen subscribed the backend");
    next_matching(
        &mut subscription,
        "resource update",
        is_update_of(STATIC_URI),
    )
    .await;

    // A reload that adds a server is a tools list_changed on the listen.
    env.write_config(&format!("{one}{}", env.fixture_server("beta", &[])));
    next_matching(&mut subscription, "tools list_changed", is_tools_changed).await;
    assert!(modern.tool_names().await.contains(&"beta_echo".to_string()));

    // Cancelling the listen releases the backend's subscription.
    subscription.cancel().await.expect("cancel the listen");
    let start = std::time::Instant::now();
    while bystander
        .call_text("fx_touch", json!({"uri": STATIC_URI}))
        .await
        != "not subscribed"
    {
        assert!(
            start.elapsed() < DEADLINE,
            "the backend kept the subscription: {}",
            daemon.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(
        modern.recorder.updated.lock().unwrap().is_empty(),
        "updates go to the listen, not to the client at large"
    );
}

#[tokio::test]
async fn a_modern_client_over_http_hears_list_changes_and_resource_updates() {
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let modern = modern_client(&http, ADMIN, Recorder::default()).await;
    let mut subscription = modern
        .peer()
        .listen(everything())
        .await
        .expect("subscriptions/listen is answered over HTTP");
    // Nothing is discovered yet (no schema cache): the URIs cannot be checked, so both are
    // acknowledged, and the one nobody serves stays silent.
    assert_eq!(
        acknowledged_resources(&subscription),
        [STATIC_URI, "fixture://nowhere"]
    );

    let other = http_client(&http.url("/mcp"), Some(ADMIN)).await.unwrap();
    // Once the listen's upstream subscription is in place (see the socket test).
    let mut touched = String::new();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while touched != "notified" && tokio::time::Instant::now() < deadline {
        let result = other
            .peer()
            .call_tool(
                rmcp::model::CallToolRequestParams::new("alpha_touch")
                    .with_arguments(json!({"uri": STATIC_URI}).as_object().unwrap().clone()),
            )
            .await
            .expect("alpha_touch");
        touched = text_of(&result);
    }
    assert_eq!(touched, "notified");
    next_matching(
        &mut subscription,
        "resource update",
        is_update_of(STATIC_URI),
    )
    .await;

    let port = http.port;
    let with_beta = config(&env, port, "").replacen(
        "servers:\n",
        &format!("servers:\n{}", env.fixture_server("beta", &[])),
        1,
    );
    env.write_config(&with_beta);
    next_matching(&mut subscription, "tools list_changed", is_tools_changed).await;
}

#[tokio::test]
async fn a_listen_asking_for_nothing_hears_nothing() {
    let env = Env::new();
    let one = format!("servers:\n{}", env.fixture_server("fx", &[]));
    env.write_config(&one);
    let _daemon = env.daemon().await;
    let modern = env.modern_client(None).await;
    let mut filter = SubscriptionFilter::new();
    filter.prompts_list_changed = Some(true);
    let mut prompts_only = modern.service.peer().listen(filter).await.unwrap();
    let acknowledged = prompts_only.acknowledged().clone();
    assert_eq!(acknowledged.tools_list_changed, None, "{acknowledged:?}");
    assert_eq!(acknowledged.resource_subscriptions, None);
    let mut tools = SubscriptionFilter::new();
    tools.tools_list_changed = Some(true);
    let mut tools_only = modern.service.peer().listen(tools).await.unwrap();

    // The fixture's `beta` adds tools and a prompt: each listen hears only its own kind (the
    // client would end a listen that got anything else, as rmcp's does).
    env.write_config(&format!("{one}{}", env.fixture_server("beta", &[])));
    next_matching(&mut tools_only, "tools list_changed", is_tools_changed).await;
    next_matching(&mut prompts_only, "prompts list_changed", |n| {
        matches!(n, ServerNotification::PromptListChangedNotification(_))
    })
    .await;
}

/// A client's resource list is looked at only up to its bound: a listen naming more than
/// 1024 URIs is acknowledged for none of them, and a URI over 4 KiB is never acknowledged.
#[tokio::test]
async fn a_listen_is_acknowledged_for_a_bounded_list() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
    let _daemon = env.daemon().await;
    let modern = env.modern_client(None).await;
    assert!(modern.tool_names().await.contains(&"fx_echo".to_string()));
    let acknowledged = |uris: Vec<String>| {
        let peer = modern.service.peer().clone();
        async move {
            let mut filter = SubscriptionFilter::new();
            filter.tools_list_changed = Some(true);
            filter.resource_subscriptions = Some(uris);
            let subscription = peer.listen(filter).await.expect("listen acknowledged");
            let acknowledged = subscription.acknowledged().clone();
            assert_eq!(acknowledged.tools_list_changed, Some(true));
            acknowledged.resource_subscriptions.unwrap_or_default()
        }
    };
    let long = format!("{STATIC_URI}?{}", "x".repeat(5000));
    let mut within = vec![long.clone()];
    within.extend(std::iter::repeat_n(STATIC_URI.to_string(), 1023));
    let kept = acknowledged(within).await;
    assert_eq!(kept.len(), 1023, "the long URI is left out");
    assert!(kept.iter().all(|uri| uri == STATIC_URI));
    let beyond = vec![STATIC_URI.to_string(); 5000];
    assert!(
        acknowledged(beyond).await.is_empty(),
        "over the bound: none"
    );
}
