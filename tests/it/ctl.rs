//! mcpgwctl against the real daemon: every verb, its `--json` document and its exit code.

use std::process::Output;
use std::time::Instant;

use serde_json::{Value, json};

use crate::harness::*;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a verb that must succeed; returns its stdout.
fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.ctl(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "mcpgwctl {args:?}: {}",
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a verb with `--json` that must succeed; returns its one JSON document.
fn ok_json(env: &Env, args: &[&str]) -> Value {
    let mut args = args.to_vec();
    args.push("--json");
    let text = ok(env, &args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("mcpgwctl {args:?}: not one JSON document ({e}): {text}"))
}

/// Runs a verb that must fail with exit code 1; returns its stderr.
fn fails(env: &Env, args: &[&str]) -> String {
    let out = env.ctl(args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "mcpgwctl {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn backend<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("no backend {name} in {status}"))
}

fn one_server(env: &Env, name: &str, extra_args: &[&str]) {
    env.write_config(&format!(
        "servers:\n{}",
        env.fixture_server(name, extra_args)
    ));
}

async fn wait_exit(daemon: &mut Daemon) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "mcpgwd did not exit:\n{}",
            daemon.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn kill_stops_the_process_and_the_next_call_starts_a_new_one() {
    let env = Env::new();
    one_server(&env, "alpha", &[]);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let first: u32 = client
        .call_text("alpha_pid", json!({}))
        .await
        .parse()
        .unwrap();

    let killed = ok_json(&env, &["kill", "alpha"]);
    assert_eq!(
        killed,
        json!({"server": "alpha", "pid": first, "was_running": true})
    );
    wait_for("the killed backend to be gone", || !pid_alive(first)).await;
    let status = env.status_json();
    assert_eq!(backend(&status, "alpha")["state"], "stopped", "{status}");
    assert!(backend(&status, "alpha").get("pid").is_none(), "{status}");

    let second: u32 = client
        .call_text("alpha_pid", json!({}))
        .await
        .parse()
        .unwrap();
    assert_ne!(first, second, "the next call starts a new process");
    assert!(ok(&env, &["kill", "alpha"]).contains(&format!("stopped alpha (pid {second})")));
    assert_eq!(ok(&env, &["kill", "alpha"]), "alpha was not running\n");

    let err = fails(&env, &["kill", "nosuch"]);
    assert!(
        err.contains("unknown server `nosuch`; known servers: alpha"),
        "{err}"
    );
    client.close().await;
}

#[tokio::test]
async fn start_warms_a_server_without_any_call() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}    enabled: false\n",
        env.fixture_server("alpha", &[]),
        env.fixture_server("off", &[]),
    ));
    let _daemon = env.daemon().await;
    assert!(env.backend_pids().is_empty(), "nothing runs before a call");

    let text = ok(&env, &["start", "alpha"]);
    let pids = env.backend_pids();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert_eq!(text, format!("started alpha (pid {})\n", pids[0]));
    let status = env.status_json();
    assert_eq!(backend(&status, "alpha")["state"], "ready");
    assert_eq!(backend(&status, "alpha")["pid"], pids[0]);
    assert_eq!(backend(&status, "alpha")["calls"], 0);

    let again = ok_json(&env, &["start", "alpha"]);
    assert_eq!(
        again,
        json!({"server": "alpha", "pid": pids[0], "was_running": true})
    );

    let err = fails(&env, &["start", "off"]);
    assert!(
        err.contains("server `off` is disabled: disabled in config"),
        "{err}"
    );
    let err = fails(&env, &["start", "nosuch"]);
    assert!(err.contains("known servers: alpha, off"), "{err}");
    assert_eq!(env.backend_pids(), pids);
}

#[tokio::test]
async fn stop_shuts_the_daemon_down_and_waits_for_it() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[])
    ));
    let mut daemon = env.daemon().await;
    let client = env.client(None).await;
    client.call_text("beta_echo", json!({"text": "x"})).await;
    ok(&env, &["start", "alpha"]);
    assert_eq!(env.backend_pids().len(), 2);

    let out = ok(&env, &["stop"]);
    assert_eq!(out, format!("mcpgwd (pid {}) stopped\n", daemon.pid()));
    // ctl returned only once the daemon was gone; it is at most a zombie waiting for us now.
    assert!(
        !pid_alive(daemon.pid()),
        "ctl returned before the daemon exited"
    );
    assert_eq!(
        wait_exit(&mut daemon).await.code(),
        Some(0),
        "{}",
        daemon.log()
    );
    wait_for("no backend process left", || env.backend_pids().is_empty()).await;
    assert!(!env.socket().exists(), "the socket file is removed");
    assert_eq!(env.ctl(&["status"]).status.code(), Some(3));
}

#[tokio::test]
async fn stop_json_is_one_document() {
    let env = Env::new();
    one_server(&env, "alpha", &[]);
    let mut daemon = env.daemon().await;
    let stopped = ok_json(&env, &["stop"]);
    assert_eq!(stopped, json!({"stopped": true, "pid": daemon.pid()}));
    assert_eq!(wait_exit(&mut daemon).await.code(), Some(0));
}

#[tokio::test]
async fn status_json_has_every_field() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}roles:\n  admin: null\n",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[])
    ));
    let daemon = env.daemon().await;
    let client = env.client(Some("admin")).await;
    client.call_text("alpha_echo", json!({"text": "x"})).await;
    assert!(client.call("beta_crash", json!({"code": 5})).await.is_err());
    wait_for("beta's exit to be recorded", || {
        backend(&env.status_json(), "beta")["last_exit"] == "exit code 5"
    })
    .await;

    let status = env.status_json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(status["pid"], daemon.pid());
    assert!(status["uptime_ms"].as_u64().is_some(), "{status}");
    assert!(
        status["config_path"]
            .as_str()
            .unwrap()
            .ends_with("gateway.yaml"),
        "{status}"
    );
    assert_eq!(status["generation"], 1);
    let sessions = status["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{status}");
    assert_eq!(sessions[0]["role"], "admin");

    let alpha = backend(&status, "alpha");
    assert_eq!(alpha["state"], "ready");
    assert!(alpha["pid"].as_u64().is_some(), "{alpha}");
    assert!(alpha["rss_bytes"].as_u64().unwrap() > 0, "{alpha}");
    assert!(alpha["uptime_ms"].as_u64().is_some(), "{alpha}");
    assert_eq!(alpha["calls"], 1);
    assert_eq!(alpha["errors"], 0);
    assert!(alpha["tools"].as_u64().unwrap() > 3, "{alpha}");

    let beta = backend(&status, "beta");
    assert_eq!(beta["state"], "stopped", "{beta}");
    assert_eq!(beta["last_exit"], "exit code 5");
    assert_eq!(beta["calls"], 1);
    assert!(beta["errors"].as_u64().unwrap() >= 1, "{beta}");

    let human = ok(&env, &["status"]);
    assert!(
        human.contains("config generation 1 (never reloaded)"),
        "{human}"
    );
    assert!(
        human.contains("sessions: 1 (roles admin: 1; via socket: 1)"),
        "{human}"
    );
    client.close().await;
}

#[tokio::test]
async fn list_shows_what_a_role_sees() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}roles:\n  ro: [\"alpha_*\"]\n",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &["--extra-tools", "1"])
    ));
    let _daemon = env.daemon().await;

    let all = ok_json(&env, &["list"]);
    let names: Vec<&str> = all["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for expected in ["alpha_echo", "beta_echo", "beta_t0", "gateway_status"] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let add = all["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "alpha_add")
        .unwrap();
    assert_eq!(
        add["inputSchema"]["properties"]["a"]["type"], "number",
        "full tool objects: {add}"
    );

    let human = ok(&env, &["list", "--role", "ro"]);
    let lines: Vec<&str> = human.lines().collect();
    assert!(lines.iter().all(|l| l.starts_with("alpha_")), "{human}");
    let echo = lines
        .iter()
        .find(|l| l.starts_with("alpha_echo "))
        .expect("alpha_echo listed");
    assert!(
        echo.ends_with("Return `text` unchanged"),
        "name and first description line: {echo}"
    );

    let ro = ok_json(&env, &["list", "--role", "ro"]);
    assert_eq!(ro["role"], "ro");
    assert_eq!(ro["tools"].as_array().unwrap().len(), lines.len());

    let err = fails(&env, &["list", "--role", "nope"]);
    assert!(
        err.contains("unknown role `nope`; known roles: ro"),
        "{err}"
    );
}

#[tokio::test]
async fn logs_show_a_servers_stderr() {
    let env = Env::new();
    one_server(&env, "noisy", &["--stderr-lines", "3"]);
    let _daemon = env.daemon().await;
    ok(&env, &["start", "noisy"]);
    wait_for("the stderr lines to be captured", || {
        ok(&env, &["logs", "noisy"])
            .lines()
            .filter(|l| l.starts_with("fixture stderr line"))
            .count()
            == 3
    })
    .await;
    let last = ok(&env, &["logs", "noisy", "-n", "1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(last.starts_with("fixture stderr line"), "{last}");
    let doc = ok_json(&env, &["logs", "noisy", "-n", "2"]);
    assert_eq!(doc["server"], "noisy");
    assert_eq!(doc["lines"].as_array().unwrap().len(), 2, "{doc}");

    let err = fails(&env, &["logs", "nosuch"]);
    assert!(err.contains("known servers: noisy"), "{err}");
}

#[tokio::test]
async fn check_validates_without_a_daemon() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}{}roles:\n  admin: null\n",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[])
    ));
    // Found in the current directory, like mcpgwd does.
    let text = ok(&env, &["check"]);
    assert!(
        text.starts_with("ok: 2 servers (alpha, beta), 1 role (admin)\n"),
        "{text}"
    );
    let doc = ok_json(
        &env,
        &["check", "--config", env.config_path().to_str().unwrap()],
    );
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["servers"].as_array().unwrap().len(), 2);

    env.write_config("servers:\n  fs:\n    comand: npx\n  gh:\n    command: 7\n");
    let err = fails(
        &env,
        &["check", "--config", env.config_path().to_str().unwrap()],
    );
    assert!(err.contains("gateway.yaml:3:5"), "{err}");
    assert!(err.contains("did you mean `command`"), "{err}");
    let out = env.ctl(&["check", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let errors = doc["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "every error is reported: {doc}");
    assert!(
        errors.iter().any(|e| e["line"] == 3 && e["column"] == 5),
        "{doc}"
    );

    let missing = fails(&env, &["check", "--config", "nope.yaml"]);
    assert!(missing.contains("nope.yaml"), "{missing}");
    assert!(
        !env.socket().exists(),
        "check never starts or needs a daemon"
    );
}

#[tokio::test]
async fn every_daemon_verb_exits_3_without_a_daemon() {
    let env = Env::new();
    one_server(&env, "alpha", &[]);
    let verbs: [&[&str]; 8] = [
        &["status"],
        &["reload"],
        &["kill", "alpha"],
        &["start", "alpha"],
        &["stop"],
        &["list"],
        &["list", "--role", "ro"],
        &["logs", "alpha"],
    ];
    for verb in verbs {
        let out = env.ctl(verb);
        assert_eq!(
            out.status.code(),
            Some(3),
            "mcpgwctl {verb:?}: {}",
            stderr(&out)
        );
        let err = stderr(&out);
        assert!(
            err.contains("no mcpgw daemon is running") && err.contains("mcpgwd"),
            "{err}"
        );
        assert!(out.stdout.is_empty());
        let mut json = verb.to_vec();
        json.push("--json");
        let out = env.ctl(&json);
        assert_eq!(out.status.code(), Some(3));
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            doc["error"]
                .as_str()
                .unwrap()
                .contains("no mcpgw daemon is running"),
            "{doc}"
        );
    }
    assert!(!env.socket().exists(), "no verb starts a daemon");
    assert!(env.backend_pids().is_empty());
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let env = Env::new();
    assert_eq!(env.ctl(&["kill"]).status.code(), Some(2));
    assert_eq!(env.ctl(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(env.ctl(&["logs", "x", "-n", "many"]).status.code(), Some(2));
}

#[tokio::test]
async fn reload_applies_an_edit_or_reports_every_error() {
    let env = Env::new();
    one_server(&env, "alpha", &[]);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client
            .call_text("alpha_echo", json!({"text": "before"}))
            .await,
        "before"
    );

    env.write_config(&format!(
        "servers:\n{}{}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("gamma", &[])
    ));
    // The file watcher may apply the edit too (before or after); either way `reload` reports
    // a live generation and the new server is listed.
    let text = ok(&env, &["reload"]);
    assert!(text.starts_with("reloaded: generation "), "{text}");
    assert!(env.status_json()["generation"].as_u64().unwrap() >= 2);
    assert!(
        ok(&env, &["list"])
            .lines()
            .any(|l| l.starts_with("gamma_echo "))
    );

    env.write_config("servers:\n  alpha:\n    comand: x\n");
    let out = env.ctl(&["reload", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    // Every reload from now on reads the broken file, so this generation stays.
    let generation = doc["generation"].as_u64().unwrap();
    assert!(generation >= 2, "{doc}");
    let err = stderr(&out);
    assert!(
        err.contains("gateway.yaml:3:5"),
        "errors with their location: {err}"
    );
    assert!(
        err.contains(&format!("generation {generation} stays live")),
        "{err}"
    );

    // The old config is still served.
    assert_eq!(
        client
            .call_text("alpha_echo", json!({"text": "after"}))
            .await,
        "after"
    );
    assert_eq!(
        client.call_text("gamma_echo", json!({"text": "g"})).await,
        "g"
    );
    let status = env.status_json();
    assert_eq!(status["generation"], generation);
    assert_eq!(status["last_reload"]["ok"], false);
    let human = ok(&env, &["status"]);
    assert!(
        human.contains("rejected") && human.contains("gateway.yaml:3:5"),
        "{human}"
    );
    client.close().await;
}

/// Every verb of mcpgwctl: its completions and man pages must name each.
const VERBS: [&str; 14] = [
    "status",
    "reload",
    "kill",
    "start",
    "stop",
    "list",
    "logs",
    "diff",
    "approve",
    "check",
    "import",
    "connect",
    "completions",
    "man",
];

#[test]
fn completions_name_every_verb_and_bash_completes_with_them() {
    let env = Env::new();
    for shell in ["bash", "elvish", "fish", "powershell", "zsh"] {
        let script = ok(&env, &["completions", shell]);
        for verb in VERBS {
            assert!(script.contains(verb), "{shell}'s script has no `{verb}`");
        }
    }
    let script = ok(&env, &["completions", "bash"]);
    for option in [
        "--socket", "--json", "--role", "--lines", "--config", "--dir",
    ] {
        assert!(script.contains(option), "bash's script has no `{option}`");
    }
    assert_eq!(ok_json(&env, &["completions", "bash"])["script"], script);
    let path = env.path("mcpgwctl.bash");
    std::fs::write(&path, &script).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", stderr(&syntax));
    // What `mcpgwctl st<TAB>` and `mcpgwctl completions <TAB>` offer, as bash calls the
    // function `complete -F` registered (command, word, previous word).
    let complete = |line: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "source {path:?}; COMP_WORDS=({line}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
                 _mcpgwctl mcpgwctl \"${{COMP_WORDS[COMP_CWORD]}}\" \
                 \"${{COMP_WORDS[COMP_CWORD - 1]}}\"; echo \"${{COMPREPLY[*]}}\""
            ))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out).trim().to_string()
    };
    assert_eq!(complete("mcpgwctl st"), "status start stop");
    let shells = complete("mcpgwctl completions ''");
    assert!(
        shells.ends_with("bash elvish fish powershell zsh"),
        "{shells}"
    );
}

#[test]
fn man_writes_a_page_per_binary_and_verb_that_groff_reads() {
    let env = Env::new();
    let dir = env.path("share/man/man1");
    let listed = ok(&env, &["man", "--dir", dir.to_str().unwrap()]);
    let mut expected: Vec<String> = VERBS.iter().map(|v| format!("mcpgwctl-{v}.1")).collect();
    expected.extend(["mcpgwctl.1", "mcpgwd.1", "mcpgw-shim.1"].map(String::from));
    expected.sort();
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    written.sort();
    assert_eq!(written, expected);
    let mut named: Vec<&str> = listed
        .lines()
        .map(|line| line.rsplit('/').next().unwrap())
        .collect();
    named.sort();
    assert_eq!(named, expected, "what it says it wrote");
    assert!(!env.socket().exists(), "man needs no daemon");

    let page = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    // roff writes a dash as `\-`.
    let pages: [(&str, &[&str]); 5] = [
        ("mcpgwd.1", &["--config", "--socket", "MCPGW_LOG", "64"]),
        (
            "mcpgw-shim.1",
            &[
                "--socket",
                "--role",
                "--config",
                "--no-autostart",
                "--version",
            ],
        ),
        ("mcpgwctl.1", &["--socket", "--json", "mcpgwctl-status(1)"]),
        ("mcpgwctl-logs.1", &["--lines", "mcpgwctl(1)"]),
        ("mcpgwctl-man.1", &["--dir"]),
    ];
    for (name, words) in pages {
        let text = page(name);
        for word in words {
            assert!(
                text.contains(&word.replace('-', "\\-")),
                "{name} has no {word}"
            );
        }
    }
    let shim = page("mcpgw-shim.1");
    for env_var in [
        "MCPGW_SOCKET",
        "MCPGW_ROLE, MCP_GATEWAY_ROLE",
        "MCPGW_CONFIG",
    ] {
        assert!(shim.contains(env_var), "mcpgw-shim.1 has no {env_var}");
    }
    assert_eq!(
        ok(&env, &["man"]),
        page("mcpgwctl.1"),
        "without --dir: mcpgwctl(1)"
    );

    // Each page is roff that groff reads without a warning.
    if std::process::Command::new("groff")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("groff is not installed: the pages were not rendered");
        return;
    }
    for name in &expected {
        let out = std::process::Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-P-cbou"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "groff on {name}: {}",
            stderr(&out)
        );
        let text = stdout(&out);
        assert!(
            text.contains("SYNOPSIS") && text.contains("SEE ALSO"),
            "{text}"
        );
        if name == "mcpgw-shim.1" {
            assert!(
                text.contains("--no-autostart") && text.contains("EXIT STATUS"),
                "{text}"
            );
        }
    }
}

#[test]
fn man_reports_a_directory_it_cannot_create() {
    let env = Env::new();
    let file = env.path("a-file");
    std::fs::write(&file, "").unwrap();
    let err = fails(&env, &["man", "--dir", file.join("man1").to_str().unwrap()]);
    assert!(
        err.contains("cannot create") && err.contains("a-file"),
        "{err}"
    );
}
