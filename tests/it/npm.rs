//! The reference MCP servers from npm (`tests/npm`) behind the gateway, compared with the same
//! servers used directly by an rmcp client.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

use crate::harness::*;

/// `dist/index.js` of an installed `@modelcontextprotocol/<package>`.
pub(crate) fn npm_server(package: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/npm/node_modules/@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci --prefix tests/npm` first",
        path.display()
    );
    let node = std::process::Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "`node` must be on PATH to run the npm reference servers: {node:?}"
    );
    path
}

fn filesystem_js() -> String {
    npm_server("server-filesystem").display().to_string()
}

fn everything_js() -> String {
    npm_server("server-everything").display().to_string()
}

/// A directory the filesystem server may use, named after the env's marker (so every process
/// serving it carries the marker on its command line), holding two files.
fn allowed_dir(env: &Env) -> PathBuf {
    let dir = env.path(&env.marker);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("hello.txt"), "hello from mcpgw\nsecond line\n").unwrap();
    std::fs::write(dir.join("notes.md"), "# notes\n\n- one\n- two\n").unwrap();
    dir
}

/// A `servers:` entry running `node <args…>`.
fn node_server(name: &str, args: &[String]) -> String {
    format!(
        "  {name}:\n    command: node\n    args: {}\n",
        serde_json::to_string(args).unwrap()
    )
}

type Direct = RunningService<RoleClient, ()>;

/// The same server, spawned directly (no gateway) with a plain rmcp client.
async fn direct(env: &Env, args: &[String]) -> Direct {
    let mut cmd = tokio::process::Command::from(env.command(Path::new("node")));
    cmd.args(args);
    let (transport, _) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node directly");
    tokio::time::timeout(DEADLINE, ().serve(transport))
        .await
        .expect("direct server initializes before the deadline")
        .expect("direct server initializes")
}

async fn direct_tools(direct: &Direct) -> Vec<Tool> {
    direct
        .peer()
        .list_all_tools()
        .await
        .expect("direct tools/list")
}

async fn direct_call(direct: &Direct, name: &str, args: Value) -> CallToolResult {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    let params = CallToolRequestParams::new(name.to_string()).with_arguments(map);
    direct
        .peer()
        .call_tool(params)
        .await
        .unwrap_or_else(|e| panic!("direct {name}: {e}"))
}

/// A call through the gateway that must succeed.
async fn gateway_call(client: &Client, name: &str, args: Value) -> CallToolResult {
    let result = client
        .call(name, args)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_ne!(
        result.is_error,
        Some(true),
        "{name} returned a tool error: {result:?}"
    );
    result
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap()
}

fn names(tools: &[Tool]) -> Vec<String> {
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn filesystem_through_the_gateway_equals_filesystem_direct() {
    let env = Env::new();
    let dir = allowed_dir(&env);
    let args = vec![filesystem_js(), dir.display().to_string()];
    env.write_config(&format!("servers:\n{}", node_server("filesystem", &args)));
    let daemon = env.daemon().await;
    let client = env.client(None).await;

    let start = Instant::now();
    let through = client.tools().await;
    eprintln!(
        "gateway tools/list (discovering filesystem): {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let direct = direct(&env, &args).await;
    let direct_list = direct_tools(&direct).await;
    eprintln!("direct start + tools/list: {:?}", start.elapsed());
    eprintln!("filesystem tools: {:?}", names(&direct_list));
    assert!(!direct_list.is_empty());

    let prefixed: Vec<&Tool> = through
        .iter()
        .filter(|t| t.name.starts_with("filesystem_"))
        .collect();
    assert_eq!(
        prefixed.len(),
        direct_list.len(),
        "gateway: {:?}\ndirect: {:?}\n{}",
        names(&through),
        names(&direct_list),
        daemon.log()
    );
    for tool in &direct_list {
        let exposed = format!("filesystem_{}", tool.name);
        let Some(via) = through.iter().find(|t| t.name == exposed) else {
            panic!("{exposed} missing from {:?}", names(&through));
        };
        assert_eq!(
            via.description, tool.description,
            "description of {exposed}"
        );
        assert_eq!(
            to_json(&via.input_schema),
            to_json(&tool.input_schema),
            "input schema of {exposed}"
        );
        assert_eq!(via.title, tool.title, "title of {exposed}");
        assert_eq!(
            to_json(&via.output_schema),
            to_json(&tool.output_schema),
            "output schema of {exposed}"
        );
        assert_eq!(
            to_json(&via.annotations),
            to_json(&tool.annotations),
            "annotations of {exposed}"
        );
    }

    let hello = dir.join("hello.txt").display().to_string();
    let read_tool = ["read_text_file", "read_file"]
        .into_iter()
        .find(|n| direct_list.iter().any(|t| t.name == *n))
        .expect("a read tool");
    let via = gateway_call(
        &client,
        &format!("filesystem_{read_tool}"),
        json!({"path": hello}),
    )
    .await;
    let plain = direct_call(&direct, read_tool, json!({"path": hello})).await;
    assert_eq!(text_of(&via), "hello from mcpgw\nsecond line\n");
    assert_eq!(
        to_json(&via),
        to_json(&plain),
        "{read_tool} through the gateway vs direct"
    );

    let listing_args = json!({"path": dir.display().to_string()});
    let via = gateway_call(&client, "filesystem_list_directory", listing_args.clone()).await;
    let plain = direct_call(&direct, "list_directory", listing_args).await;
    let listing = text_of(&via);
    for entry in ["[FILE] hello.txt", "[FILE] notes.md", "[DIR] sub"] {
        assert!(listing.contains(entry), "{entry} missing from {listing:?}");
    }
    assert_eq!(
        to_json(&via),
        to_json(&plain),
        "list_directory through the gateway vs direct"
    );

    let written = dir.join("sub/written.txt");
    let content = "written through mcpgw\näöü ✓\n";
    gateway_call(
        &client,
        "filesystem_write_file",
        json!({"path": written.display().to_string(), "content": content}),
    )
    .await;
    assert_eq!(std::fs::read_to_string(&written).unwrap(), content);
    // And the direct server sees what the gateway's server wrote.
    let plain = direct_call(
        &direct,
        read_tool,
        json!({"path": written.display().to_string()}),
    )
    .await;
    assert_eq!(text_of(&plain), content);

    direct.cancel().await.unwrap();
    client.close().await;
}

#[tokio::test]
async fn everything_through_the_gateway_equals_everything_direct() {
    let env = Env::new();
    // The first argument selects the transport; the marker after it is ignored by the server.
    let args = vec![everything_js(), "stdio".to_string(), env.marker.clone()];
    env.write_config(&format!("servers:\n{}", node_server("everything", &args)));
    let daemon = env.daemon().await;
    let client = env.client(None).await;

    let start = Instant::now();
    let through = client.tool_names().await;
    eprintln!(
        "gateway tools/list (discovering everything): {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    let direct = direct(&env, &args).await;
    let direct_list = direct_tools(&direct).await;
    eprintln!("direct start + tools/list: {:?}", start.elapsed());
    eprintln!("everything tools: {:?}", names(&direct_list));
    eprintln!("gateway tools: {through:?}");
    for tool in &direct_list {
        let exposed = format!("everything_{}", tool.name);
        assert!(
            through.contains(&exposed),
            "{exposed} missing from {through:?}\n{}",
            daemon.log()
        );
    }

    let echo = json!({"message": "hello through mcpgw ✓"});
    let via = gateway_call(&client, "everything_echo", echo.clone()).await;
    let plain = direct_call(&direct, "echo", echo).await;
    assert_eq!(text_of(&via), "Echo: hello through mcpgw ✓");
    assert_eq!(
        to_json(&via),
        to_json(&plain),
        "echo through the gateway vs direct"
    );

    let sum = json!({"a": 2.5, "b": 40});
    let via = gateway_call(&client, "everything_get-sum", sum.clone()).await;
    let plain = direct_call(&direct, "get-sum", sum).await;
    assert!(text_of(&via).contains("42.5"), "{via:?}");
    assert_eq!(
        to_json(&via),
        to_json(&plain),
        "get-sum through the gateway vs direct"
    );

    // Invalid arguments are the server's to reject, the same way with or without the gateway.
    let bad = json!({"a": "two", "b": 40});
    let via = client.call("everything_get-sum", bad.clone()).await;
    let plain = {
        let Value::Object(map) = bad else {
            unreachable!()
        };
        direct
            .peer()
            .call_tool(CallToolRequestParams::new("get-sum").with_arguments(map))
            .await
            .map_err(|e| e.to_string())
    };
    match (&via, &plain) {
        (Ok(via), Ok(plain)) => {
            assert_eq!(via.is_error, Some(true), "{via:?}");
            assert_eq!(to_json(via), to_json(plain));
        }
        (Err(via), Err(plain)) => assert!(!via.is_empty() && !plain.is_empty()),
        _ => panic!("gateway: {via:?}\ndirect: {plain:?}"),
    }

    direct.cancel().await.unwrap();
    client.close().await;
}

/// The processes with `marker` on their command line, with their parent pid and executable.
fn marked_processes(marker: &str) -> Vec<(u32, u32, String)> {
    processes_with(marker)
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let after = stat.rsplit(')').next()?;
            let ppid = after.split_whitespace().nth(1)?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some((pid, ppid, comm.trim().to_string()))
        })
        .collect()
}

/// Runs the filesystem server as `sh -c 'node [node_options] <server> <dir>; true'` with
/// `idle_timeout: 1`: the daemon's child is `sh` and the real server is its child (no exec).
/// Checks that the pair is gone after the idle stop, and returns how long that took after the
/// call that started it.
async fn idle_stop_through_a_wrapper(node_options: &str) -> std::time::Duration {
    let env = Env::new();
    let dir = allowed_dir(&env);
    let script = format!(
        "node {node_options} '{}' '{}'; true",
        filesystem_js(),
        dir.display()
    );
    let yaml = format!(
        "idle_timeout: 1\nservers:\n  filesystem:\n    command: sh\n    args: {}\n",
        serde_json::to_string(&["-c", &script]).unwrap()
    );
    env.write_config(&yaml);
    let daemon = env.daemon().await;
    let client = env.client(None).await;

    let start = Instant::now();
    let text = client
        .call_text("filesystem_list_allowed_directories", json!({}))
        .await;
    eprintln!("first call (start through sh): {:?}", start.elapsed());
    assert!(text.contains(&env.marker), "{text}");

    // Both the wrapper and the server run, the server as the daemon's grandchild.
    let processes = marked_processes(&env.marker);
    let sh = processes
        .iter()
        .find(|(_, ppid, _)| *ppid == daemon.pid())
        .unwrap_or_else(|| panic!("no direct child of the daemon: {processes:?}"));
    assert_eq!(sh.2, "sh", "{processes:?}");
    let node = processes
        .iter()
        .find(|(_, ppid, comm)| *ppid == sh.0 && comm.contains("node"))
        .unwrap_or_else(|| panic!("no node under sh: {processes:?}"));
    let (sh_pid, node_pid) = (sh.0, node.0);

    let idle = Instant::now();
    wait_for("the idle server and its wrapper to be gone", || {
        env.backend_pids().is_empty()
    })
    .await;
    let took = idle.elapsed();
    assert!(!pid_alive(sh_pid) && !pid_alive(node_pid));
    wait_for("status to say stopped", || {
        env.status_json()["backends"][0]["state"] == "stopped"
    })
    .await;

    // The next call starts the pair again, and it idles out again.
    let text = client
        .call_text("filesystem_list_allowed_directories", json!({}))
        .await;
    assert!(text.contains(&env.marker), "{text}");
    assert!(
        !env.backend_pids().is_empty(),
        "the second call should run a new server:\n{}",
        daemon.log()
    );
    wait_for("the restarted server to idle out too", || {
        env.backend_pids().is_empty()
    })
    .await;
    client.close().await;
    took
}

#[tokio::test]
async fn a_node_server_behind_a_shell_wrapper_is_stopped_as_a_whole_when_idle() {
    let took = idle_stop_through_a_wrapper("").await;
    eprintln!("idle stop of sh + node took {took:?} after the last call");
}

#[tokio::test]
async fn a_wrapped_node_server_that_ignores_stdin_close_is_killed_with_its_group() {
    // A timer preloaded into node keeps the server alive after its stdin closes, so closing
    // stdin is not enough: `sh` waits for it, and only a signal to the whole group (not just
    // to `sh`, the daemon's child) leaves no marked process behind.
    let took =
        idle_stop_through_a_wrapper("--import 'data:text/javascript,setInterval(()=>{},1e9)'")
            .await;
    eprintln!("idle stop of sh + stubborn node took {took:?} after the last call");
}

#[tokio::test]
async fn a_readonly_role_sees_and_calls_only_the_reading_tools_of_a_real_server() {
    let env = Env::new();
    let dir = allowed_dir(&env);
    let args = vec![filesystem_js(), dir.display().to_string()];
    let yaml = format!(
        "servers:\n{}roles:\n  readonly: [\"filesystem_read_*\", \"filesystem_list_*\"]\n",
        node_server("filesystem", &args)
    );
    env.write_config(&yaml);
    let _daemon = env.daemon().await;

    // A client with no role (and no `default` role configured) sees every tool.
    let everyone = env.client(None).await;
    let all = everyone.tool_names().await;
    assert!(
        all.contains(&"filesystem_write_file".to_string()),
        "{all:?}"
    );
    let expected: Vec<String> = all
        .iter()
        .filter(|n| n.starts_with("filesystem_read_") || n.starts_with("filesystem_list_"))
        .cloned()
        .collect();

    let readonly = env.client(Some("readonly")).await;
    let visible = readonly.tool_names().await;
    eprintln!("readonly sees: {visible:?}");
    assert_eq!(visible, expected);
    for name in ["filesystem_read_text_file", "filesystem_list_directory"] {
        assert!(
            visible.contains(&name.to_string()),
            "{name} missing from {visible:?}"
        );
    }

    let hello = dir.join("hello.txt").display().to_string();
    let text = readonly
        .call_text("filesystem_read_text_file", json!({"path": hello}))
        .await;
    assert_eq!(text, "hello from mcpgw\nsecond line\n");

    let target = dir.join("denied.txt");
    let err = readonly
        .call(
            "filesystem_write_file",
            json!({"path": target.display().to_string(), "content": "nope"}),
        )
        .await
        .unwrap_err();
    assert!(
        err.contains("unknown tool `filesystem_write_file` (role `readonly`)"),
        "{err}"
    );
    assert!(!target.exists(), "a refused write reached the server");

    // The same call without the role goes through, so the refusal was the role's.
    everyone
        .call_text(
            "filesystem_write_file",
            json!({"path": target.display().to_string(), "content": "yes"}),
        )
        .await;
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "yes");
    readonly.close().await;
    everyone.close().await;
}

/// Issue 11, item 6: a per-client instance of server-filesystem, started by its client's first
/// call, has that client's roots before the call runs — not the wider directory on its command
/// line — each time a client starts one (the first after discovery, and later ones).
#[tokio::test]
async fn a_per_client_instance_has_its_clients_roots_before_its_first_call() {
    let env = Env::new();
    let wide = allowed_dir(&env);
    let narrow = wide.join("sub").canonicalize().unwrap();
    let args = vec![filesystem_js(), wide.display().to_string()];
    env.write_config(&format!(
        "servers:\n{}    scope: per-client\n",
        node_server("filesystem", &args)
    ));
    let _daemon = env.daemon().await;
    for client_number in 1..=3 {
        let recorder = Recorder {
            root: Some(format!("file://{}", narrow.display())),
            ..Recorder::default()
        };
        let client = env.try_shim_client(&[], &[], recorder).await.unwrap();
        let allowed = client
            .call_text("filesystem_list_allowed_directories", json!({}))
            .await;
        let dirs: Vec<&str> = allowed.lines().skip(1).filter(|l| !l.is_empty()).collect();
        assert_eq!(
            dirs,
            [narrow.display().to_string()],
            "client {client_number}'s first call ran without its roots: {allowed}"
        );
        client.close().await;
    }
}

/// server-filesystem shaped into a read-only server by its `tools:` (issue 13): only what
/// `allow` and `deny` leave is listed or callable, a renamed tool reads files under its new
/// name, a re-described one keeps its schema.
#[tokio::test]
async fn filesystem_shaped_read_only_through_the_shim() {
    let env = Env::new();
    let dir = allowed_dir(&env);
    let args = vec![filesystem_js(), dir.display().to_string()];
    env.write_config(&format!(
        "servers:\n{}    tools:\n      allow: [\"read_*\", \"list_*\", \"directory_tree\", \"get_file_info\"]\n      deny: [\"read_media_file\", \"read_file\"]\n      rename: {{ read_text_file: cat }}\n      describe: {{ list_directory: \"Lists a directory.\" }}\n",
        node_server("filesystem", &args)
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let direct = direct(&env, &args).await;
    let direct_list = direct_tools(&direct).await;
    let tools = client.tools().await;
    let mut shown: Vec<String> = tools
        .iter()
        .filter_map(|t| t.name.strip_prefix("filesystem_").map(str::to_owned))
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            "cat",
            "directory_tree",
            "get_file_info",
            "list_allowed_directories",
            "list_directory",
            "list_directory_with_sizes",
            "read_multiple_files",
        ]
    );
    let listing = tools
        .iter()
        .find(|t| t.name == "filesystem_list_directory")
        .unwrap();
    let original = direct_list
        .iter()
        .find(|t| t.name == "list_directory")
        .unwrap();
    assert_eq!(listing.description.as_deref(), Some("Lists a directory."));
    assert_eq!(listing.input_schema, original.input_schema);

    let path = dir.join("hello.txt").display().to_string();
    let text = client
        .call_text("filesystem_cat", json!({ "path": path }))
        .await;
    assert!(text.contains("hello from mcpgw"), "{text}");
    for hidden in [
        "filesystem_write_file",
        "filesystem_read_text_file",
        "filesystem_read_file",
    ] {
        let refused = client
            .call(hidden, json!({ "path": path, "content": "x" }))
            .await
            .unwrap_err();
        assert!(refused.contains("unknown tool"), "{hidden}: {refused}");
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("hello.txt")).unwrap(),
        "hello from mcpgw\nsecond line\n",
        "nothing was written"
    );
}
