//! Issue 12, item 1: mcp-unify's Python plugins, unchanged, run by mcpgw's plugin host.

use serde_json::json;

use crate::harness::*;
use crate::http::{HttpDaemon, http_client};

/// The issue's example, as a mcp-unify user has it.
const CALCULATOR: &str = r#"from mcp_gateway import tool

@tool(description="Add two numbers")
def add(a: float, b: float) -> float:
    return a + b
"#;

/// More of what plugins do: typed parameters with defaults, an `Optional`, a docstring, an
/// async tool, one that raises, one that must run alongside another call of itself, one that
/// is registered without the decorator, one that ends its process.
const EXTRAS: &str = r#"import asyncio
import os
import threading
from typing import Literal, Optional

from mcp_gateway import register_tool, tool

@tool()
def greet(name: str, greeting: Optional[str] = None, times: int = 1,
          tone: Literal["plain", "loud"] = "plain") -> str:
    """Greets someone.

    Args:
        name: Who to greet.
        greeting: What to say; "hello" when left out.
    """
    text = f"{greeting or 'hello'} {name}"
    return " ".join([text.upper() if tone == "loud" else text] * times)

@tool(description="Waits a moment, without blocking the host")
async def later(value: int) -> dict:
    await asyncio.sleep(0.01)
    return {"value": value, "doubled": value * 2}

@tool(description="Always fails")
def divide(a: int, b: int) -> float:
    if b == 0:
        raise ValueError("b must not be zero")
    return a / b

# Two calls meet here only if they run at once: one alone waits in vain and fails.
MEETING = threading.Barrier(2, timeout=30)

@tool(description="Returns once a second call has arrived too")
def rendezvous() -> str:
    MEETING.wait()
    return "met"

@tool(description="Waits until cancelled, and says so in a file")
async def wait_forever(marker: str) -> str:
    open(marker + ".started", "w").close()
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        with open(marker, "w") as f:
            f.write("cancelled")
        raise
    return "woke"

@tool(description="Ends the plugin host")
def crash() -> str:
    os._exit(3)

def shout(text: str) -> str:
    return text.upper()

register_tool(shout, description="Shouts")
"#;

const BROKEN: &str = "from mcp_gateway import tool\n\nvalue = undefined_name\n";

/// The issue's YAML, a fixture server beside it, and roles.
fn config(env: &Env, extra_modules: &str) -> String {
    format!(
        "servers:\n{}plugins:\n  - module: my_tools.calculator\n  - module: my_tools.extras\n{extra_modules}roles:\n  default: null\n  calc: [\"add\"]\n",
        env.fixture_server("fx", &[])
    )
}

fn write_plugins(env: &Env) {
    let dir = env.path("my_tools");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("__init__.py"), "").unwrap();
    std::fs::write(dir.join("calculator.py"), CALCULATOR).unwrap();
    std::fs::write(dir.join("extras.py"), EXTRAS).unwrap();
}

fn structured(result: &rmcp::model::CallToolResult) -> serde_json::Value {
    result.structured_content.clone().unwrap_or_default()
}

#[tokio::test]
async fn plugins_are_listed_with_schemas_from_their_hints_and_called() {
    let env = Env::new();
    write_plugins(&env);
    env.write_config(&config(&env, ""));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let tools = client.tools().await;
    let tool = |name: &str| {
        let found = tools.iter().find(|t| t.name == name);
        serde_json::to_value(found.unwrap_or_else(|| panic!("{name} is listed"))).unwrap()
    };
    // Unprefixed, as mcp-unify exposes them, beside the server's prefixed ones.
    assert!(tools.iter().any(|t| t.name == "fx_echo"));
    assert_eq!(
        tool("add"),
        json!({"name": "add", "description": "Add two numbers",
            "inputSchema": {"type": "object", "required": ["a", "b"],
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}}},
            "outputSchema": {"type": "object", "required": ["result"],
                "properties": {"result": {"type": "number"}}}})
    );
    assert_eq!(
        tool("greet"),
        json!({"name": "greet", "description": "Greets someone.",
            "inputSchema": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "description": "Who to greet."},
                "greeting": {"type": ["string", "null"], "default": null,
                    "description": "What to say; \"hello\" when left out."},
                "times": {"type": "integer", "default": 1},
                "tone": {"type": "string", "enum": ["plain", "loud"], "default": "plain"}}}})
    );
    assert_eq!(tool("shout")["description"], "Shouts");

    let added = client.call("add", json!({"a": 1, "b": 2.5})).await.unwrap();
    assert_eq!(text_of(&added), "3.5");
    assert_eq!(structured(&added), json!({"result": 3.5}));
    assert_eq!(
        client
            .call_text("greet", json!({"name": "Ada", "times": 2, "tone": "loud"}))
            .await,
        "HELLO ADA HELLO ADA"
    );
    let later = client.call("later", json!({"value": 21})).await.unwrap();
    assert_eq!(structured(&later), json!({"value": 21, "doubled": 42}));
    assert_eq!(client.call_text("shout", json!({"text": "hi"})).await, "HI");

    // An exception is an error result with its message; a wrong argument says which.
    let failed = client
        .call("divide", json!({"a": 1, "b": 0}))
        .await
        .unwrap();
    assert_eq!(failed.is_error, Some(true));
    assert_eq!(text_of(&failed), "b must not be zero");
    let wrong = client
        .call("add", json!({"a": "one", "b": 2}))
        .await
        .unwrap();
    assert_eq!(wrong.is_error, Some(true));
    assert_eq!(
        text_of(&wrong),
        "argument `a` must be a number, not a string"
    );
    // The traceback went to the host's stderr, which `mcpgwctl logs` shows.
    wait_for("the traceback in the host's log", || {
        let logs = env.ctl(&["logs", "plugins"]);
        String::from_utf8_lossy(&logs.stdout).contains("ValueError: b must not be zero")
    })
    .await;

    // A sync tool runs in a thread: two calls at once meet, which one at a time could not.
    let (first, second) = tokio::join!(
        client.call("rendezvous", json!({})),
        client.call("rendezvous", json!({}))
    );
    assert_eq!(text_of(&first.unwrap()), "met");
    assert_eq!(text_of(&second.unwrap()), "met");
}

#[tokio::test]
async fn roles_filter_plugin_tools_and_http_clients_call_them() {
    let env = Env::new();
    write_plugins(&env);
    let http = HttpDaemon::start(&env, |port| {
        format!(
            "{}http:\n  listen: \"127.0.0.1:{port}\"\n",
            config(&env, "")
        )
    })
    .await;
    let calc = env.client(Some("calc")).await;
    assert_eq!(calc.tool_names().await, ["add"]);
    let refused = calc.call("greet", json!({"name": "x"})).await.unwrap_err();
    assert!(refused.contains("unknown tool"), "{refused}");

    let client = http_client(&http.url("/mcp"), None).await.unwrap();
    let result = client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("add")
                .with_arguments(json!({"a": 2, "b": 3}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(text_of(&result), "5.0");
    assert_eq!(structured(&result), json!({"result": 5.0}));
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_async_call_is_cancelled_in_the_plugin() {
    let env = Env::new();
    write_plugins(&env);
    env.write_config(&config(&env, ""));
    let _daemon = env.daemon().await;
    let mut raw = RawClient::connect(&env, None).await;
    let marker = env.path("cancelled.txt");
    raw.send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "wait_forever", "arguments": {"marker": marker}}}))
        .await;
    // The call must be running in the plugin before it is cancelled.
    let started = env.path("cancelled.txt.started");
    wait_for("the call to run in the plugin", || started.exists()).await;
    raw.send(
        json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 7, "reason": "the user stopped it"}}),
    )
    .await;
    wait_for("the plugin's call to be cancelled", || marker.exists()).await;
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "cancelled");
}

#[tokio::test]
async fn an_edited_plugin_is_reloaded_and_clients_are_told() {
    let env = Env::new();
    write_plugins(&env);
    env.write_config(&config(&env, ""));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    // A client is told of changes to lists it has seen.
    assert!(!client.tool_names().await.contains(&"sub".to_string()));
    assert_eq!(
        client.call_text("add", json!({"a": 2, "b": 3})).await,
        "5.0"
    );
    let before = *client.recorder.tools_changed.lock().unwrap();
    let edited = CALCULATOR.replace("return a + b", "return a * b")
        + "\n@tool(description=\"Subtract\")\ndef sub(a: int, b: int) -> int:\n    return a - b\n";
    std::fs::write(env.path("my_tools/calculator.py"), edited).unwrap();
    wait_for("list_changed after the plugin was edited", || {
        *client.recorder.tools_changed.lock().unwrap() > before
    })
    .await;
    assert!(client.tool_names().await.contains(&"sub".to_string()));
    assert_eq!(
        client.call_text("add", json!({"a": 2, "b": 3})).await,
        "6.0"
    );
    assert_eq!(client.call_text("sub", json!({"a": 2, "b": 3})).await, "-1");

    // A checkout that swaps the whole package directory is seen, and so is the next edit in
    // the new directory (whose watch went with the old one's inode).
    let fresh = env.path("my_tools.new");
    std::fs::create_dir_all(&fresh).unwrap();
    std::fs::write(fresh.join("__init__.py"), "").unwrap();
    std::fs::write(fresh.join("calculator.py"), CALCULATOR).unwrap();
    std::fs::write(fresh.join("extras.py"), EXTRAS).unwrap();
    std::fs::rename(env.path("my_tools"), env.path("my_tools.old")).unwrap();
    std::fs::rename(&fresh, env.path("my_tools")).unwrap();
    answers_eventually(&client, "5.0").await;
    let edited = CALCULATOR.replace("return a + b", "return a - b");
    std::fs::write(env.path("my_tools/calculator.py"), edited).unwrap();
    answers_eventually(&client, "-1.0").await;
}

/// Polls `add(2, 3)` until it answers `expected` (the host restarted with new code).
async fn answers_eventually(client: &Client, expected: &str) {
    let start = std::time::Instant::now();
    loop {
        let answer = client.call("add", json!({"a": 2, "b": 3})).await;
        if answer.as_ref().is_ok_and(|r| text_of(r) == expected) {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "add(2, 3) never answered {expected}: {answer:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_broken_module_is_reported_and_the_others_are_served() {
    let env = Env::new();
    write_plugins(&env);
    std::fs::write(env.path("my_tools/broken.py"), BROKEN).unwrap();
    env.write_config(&config(&env, "  - module: my_tools.broken\n"));

    // A config merely found in the working directory (a cloned repository's?) is checked
    // without running its plugins' code.
    let found = env.ctl(&["check"]);
    let said = String::from_utf8_lossy(&found.stdout);
    assert!(found.status.success(), "{said}");
    assert!(said.contains("note: plugins not imported"), "{said}");
    let check = env.ctl(&["check", "--config", env.config_path().to_str().unwrap()]);
    let said = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(1), "{said}");
    assert!(
        said.contains("gateway.yaml:8:13: plugin module `my_tools.broken` failed to import: NameError: name 'undefined_name' is not defined"),
        "{said}"
    );

    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("add", json!({"a": 1, "b": 1})).await,
        "2.0"
    );
    let plugins = host_status(&env);
    assert_eq!(
        plugins["problems"],
        json!([
            "plugin module `my_tools.broken` failed to import: NameError: name 'undefined_name' is not defined"
        ])
    );

    // A crash is an error for the call it ends; the next call starts the host again.
    let crashed = client.call("crash", json!({})).await;
    let said = match crashed {
        Ok(result) => text_of(&result),
        Err(e) => e,
    };
    assert!(said.contains("plugins"), "{said}");
    assert_eq!(
        client.call_text("add", json!({"a": 1, "b": 2})).await,
        "3.0"
    );

    // Mending the module: a reload says what is still wrong, here nothing.
    std::fs::write(env.path("my_tools/broken.py"), "X = 1\n").unwrap();
    let reload = env.ctl(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout);
    assert!(reload.status.success(), "{said}");
    assert!(!said.contains("failed to import"), "{said}");
    std::fs::write(env.path("my_tools/broken.py"), BROKEN).unwrap();
    let reload = env.ctl(&["reload"]);
    let said = String::from_utf8_lossy(&reload.stdout);
    assert!(
        said.contains("plugins: plugin module `my_tools.broken` failed to import: NameError"),
        "{said}"
    );
}

#[tokio::test]
async fn a_restarted_daemon_lists_plugin_tools_from_its_cache_without_starting_python() {
    let env = Env::new();
    write_plugins(&env);
    env.write_config(&config(&env, ""));
    let mut daemon = env.daemon().await;
    let client = env.client(None).await;
    assert!(client.tool_names().await.contains(&"add".to_string()));
    client.close().await;
    daemon.stop().await;

    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let names = client.tool_names().await;
    assert!(names.contains(&"add".to_string()), "{names:?}");
    let plugins = host_status(&env);
    assert_eq!(plugins["state"], "stopped", "{plugins}");
    assert!(processes_with("mcpgw plugin host").iter().all(|pid| {
        // Only other tests' hosts may be running: none of this env's.
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
        cwd != env.path("")
    }));
}

/// What `mcpgwctl status --json` says of the plugin host.
fn host_status(env: &Env) -> serde_json::Value {
    let status = env.status_json();
    let backends = status["backends"].as_array().unwrap();
    let host = backends.iter().find(|b| b["name"] == "plugins");
    host.expect("the plugin host is in status").clone()
}
