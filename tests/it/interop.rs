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
