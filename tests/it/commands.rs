//! Issue 12, item 3: tools that run a program, defined in the config (`commands`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::*;

/// The issue's example (`git_log` in `~/src/project`) and three more: arguments substituted
/// whole, a slow one with a timeout, one that fails.
fn config(env: &Env) -> String {
    format!(
        r#"servers:
{}commands:
  git_log:
    description: "Recent commits of the project"
    run: ["git", "log", "--oneline", "-n", "{{count}}"]
    input: {{ count: {{ type: integer, default: 10, minimum: 1, maximum: 200 }} }}
    cwd: ~/src/project
    timeout: 10s
  shout:
    description: "Prints its word and count"
    run: ["printf", "%s|%s", "{{word}}", "{{count}}"]
    input:
      word: {{ type: string, description: "What to print" }}
      count: {{ type: integer, default: 3, minimum: 1, maximum: 200 }}
  slow:
    run: ["sleep", "{{secs}}"]
    input: {{ secs: {{ type: integer }} }}
    timeout: 1s
  fails:
    run: ["sh", "-c", "echo partial; echo broken >&2; exit 3"]
  look:
    run: ["ls", "-d", "--", "{{path}}"]
    input: {{ path: {{ type: string }} }}
roles:
  readonly: ["shout"]
"#,
        env.fixture_server("fx", &[])
    )
}

/// A git repository with three commits in the env's `~/src/project`.
fn project(env: &Env) {
    let dir = env.path("home/src/project");
    std::fs::create_dir_all(&dir).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q"]);
    for n in 1..=3 {
        git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            &format!("commit {n}"),
        ]);
    }
}

async fn error_of(client: &Client, tool: &str, args: serde_json::Value) -> String {
    match client.call(tool, args).await {
        Ok(result) => panic!("{tool} answered {result:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn command_tools_are_listed_validated_and_run_without_a_shell() {
    let env = Env::new();
    project(&env);
    env.write_config(&config(&env));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let tools = client.tools().await;
    let shout = tools
        .iter()
        .find(|t| t.name == "shout")
        .expect("shout is listed");
    assert_eq!(
        serde_json::Value::Object((*shout.input_schema).clone()),
        json!({"type": "object", "additionalProperties": false, "required": ["word"],
            "properties": {
                "word": {"type": "string", "description": "What to print"},
                "count": {"type": "integer", "default": 3, "minimum": 1, "maximum": 200}}})
    );
    // Arguments are whole argv elements: no shell sees them.
    assert_eq!(
        client
            .call_text("shout", json!({"word": "a; rm -rf / $(id)", "count": 7}))
            .await,
        "a; rm -rf / $(id)|7"
    );
    assert_eq!(client.call_text("shout", json!({"word": "x"})).await, "x|3");
    for (args, why) in [
        (json!({}), "argument `word` is required"),
        (json!({"word": "x", "count": "7"}), "must be an integer"),
        (json!({"word": "x", "count": 500}), "must be at most 200"),
        (json!({"word": "x", "count": 1.5}), "must be an integer"),
        (json!({"word": "x", "extra": 1}), "unknown argument `extra`"),
        (
            json!({"word": "--output=/tmp/x"}),
            "must not start with `-`",
        ),
        (json!({"word": "x", "count": -5}), "must be at least 1"),
    ] {
        let error = error_of(&client, "shout", args.clone()).await;
        assert!(error.contains(why), "{args}: {error}");
    }
    // After `--` in `run`, a value starting with `-` is an operand: `ls` looks for that file.
    let looked = client
        .call("look", json!({"path": "-weird"}))
        .await
        .unwrap();
    assert_eq!(looked.is_error, Some(true));
    assert!(text_of(&looked).contains("-weird"), "{}", text_of(&looked));
    // The issue's example, in its `~/src/project`.
    let log = client.call_text("git_log", json!({"count": 2})).await;
    assert_eq!(log.lines().count(), 2, "{log}");
    assert!(
        log.contains("commit 3") && !log.contains("commit 1"),
        "{log}"
    );
}

#[tokio::test]
async fn a_command_that_fails_or_runs_too_long_is_an_error_result() {
    let env = Env::new();
    env.write_config(&config(&env));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let failed = client.call("fails", json!({})).await.unwrap();
    assert_eq!(failed.is_error, Some(true));
    let text = text_of(&failed);
    assert!(
        text.contains("exit status: 3") && text.contains("broken") && text.contains("partial"),
        "{text}"
    );
    let started = Instant::now();
    let slow = client.call("slow", json!({"secs": 30})).await.unwrap();
    assert_eq!(slow.is_error, Some(true));
    assert!(
        text_of(&slow).contains("did not finish within 1 s"),
        "{}",
        text_of(&slow)
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    wait_for("the timed-out command's process to be gone", || {
        processes_with("sleep 30").is_empty()
    })
    .await;
}

#[tokio::test]
async fn roles_filter_command_tools_like_any_other() {
    let env = Env::new();
    env.write_config(&config(&env));
    let _daemon = env.daemon().await;
    let readonly = env.client(Some("readonly")).await;
    assert_eq!(readonly.tool_names().await, ["shout"]);
    let error = error_of(&readonly, "fails", json!({})).await;
    assert!(error.contains("unknown tool"), "{error}");
}
