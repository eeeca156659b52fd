//! Issue 12, item 2: Rust tools in the daemon's own process, through `examples/embed.rs`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::json;

use crate::harness::*;

/// The example's binary, which `cargo test` builds with the package's other examples.
fn example() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_mcpgwd"))
        .with_file_name("examples")
        .join("embed");
    assert!(
        path.exists(),
        "{} is missing: build the examples first (`cargo build --examples`)",
        path.display()
    );
    path
}

#[tokio::test]
async fn an_embedders_rust_tool_is_listed_filtered_and_called_in_the_daemon() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}roles:\n  counter: [\"word_count\"]\n",
        env.fixture_server("fx", &[])
    ));
    let log = env.path("embed.log");
    let child = env
        .command(&example())
        .arg("--config")
        .arg(env.config_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("spawn the example");
    let mut daemon = Daemon { child, log };
    daemon.wait_ready(&env).await;

    let client = env.client(None).await;
    let tools = client.tools().await;
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"fx_echo"), "{names:?}");
    let tool = tools.iter().find(|t| t.name == "word_count").unwrap();
    assert_eq!(
        tool.description.as_deref(),
        Some("Counts the words of a text")
    );
    let schema = serde_json::Value::Object((*tool.input_schema).clone());
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!(["text"]));
    assert_eq!(
        schema["properties"]["text"],
        json!({"type": "string", "description": "The text whose words to count."})
    );
    assert!(schema.get("$schema").is_none(), "{schema}");

    let counted = client
        .call(
            "word_count",
            json!({"text": "one two three four", "min_length": 4}),
        )
        .await
        .unwrap();
    assert_eq!(counted.structured_content, Some(json!({"words": 2})));
    assert_eq!(text_of(&counted), "{\n  \"words\": 2\n}");
    let wrong = client
        .call("word_count", json!({"words": 3}))
        .await
        .unwrap();
    assert_eq!(wrong.is_error, Some(true));
    assert!(
        text_of(&wrong).starts_with("invalid arguments: missing field `text`"),
        "{}",
        text_of(&wrong)
    );

    let counter = env.client(Some("counter")).await;
    assert_eq!(counter.tool_names().await, ["word_count"]);
    assert_eq!(
        counter
            .call("word_count", json!({"text": "a b"}))
            .await
            .unwrap()
            .structured_content,
        Some(json!({"words": 2}))
    );
    counter.close().await;

    // A name of the config's is the user's: with a command of that name, the command is
    // served and the embedder's tool left out.
    env.write_config(&format!(
        "servers:\n{}commands:\n  word_count:\n    run: [echo, from the config]\n",
        env.fixture_server("fx", &[])
    ));
    let reload = env.ctl(&["reload"]);
    assert!(reload.status.success(), "{reload:?}");
    assert_eq!(
        client.call_text("word_count", json!({})).await,
        "from the config\n"
    );
    client.close().await;
    daemon.stop().await;
}
