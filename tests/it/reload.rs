//! Hot reload: file edits (in place, by rename, broken), SIGHUP; backends carried over or
//! replaced; connected clients told when their tools change.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

fn generation(env: &Env) -> u64 {
    env.status_json()["generation"].as_u64().unwrap()
}

async fn wait_generation(env: &Env, at_least: u64) {
    wait_for(&format!("config generation {at_least}"), || {
        generation(env) >= at_least
    })
    .await;
}

/// Writes the config the way editors that save by rename do.
fn save_by_rename(env: &Env, yaml: &str) {
    let tmp = env.path(".gateway.yaml.swp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, env.config_path()).unwrap();
}

#[tokio::test]
async fn adding_a_server_reaches_connected_clients() {
    let env = Env::new();
    let one = format!("servers:\n{}", env.fixture_server("alpha", &[]));
    env.write_config(&one);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert!(
        !client
            .tool_names()
            .await
            .iter()
            .any(|n| n.starts_with("beta_"))
    );
    let pid = client.call_text("alpha_pid", json!({})).await;
    let before = *client.recorder.tools_changed.lock().unwrap();

    env.write_config(&format!("{one}{}", env.fixture_server("beta", &[])));
    wait_for("list_changed after the reload", || {
        *client.recorder.tools_changed.lock().unwrap() > before
    })
    .await;
    let names = client.tool_names().await;
    assert!(names.contains(&"beta_echo".to_string()), "{names:?}");
    assert_eq!(
        client.call_text("beta_echo", json!({"text": "new"})).await,
        "new"
    );
    assert_eq!(
        client.call_text("alpha_pid", json!({})).await,
        pid,
        "alpha kept its process"
    );
    let status = env.status_json();
    assert_eq!(status["generation"], 2);
    assert_eq!(status["last_reload"]["ok"], true);
    assert!(
        status["last_reload"]["message"]
            .as_str()
            .unwrap()
            .contains("added: beta")
    );
}

#[tokio::test]
async fn removed_and_changed_backends_are_stopped_unchanged_ones_kept() {
    let env = Env::new();
    let keep = env.fixture_server("keep", &[]);
    env.write_config(&format!(
        "servers:\n{keep}{}{}",
        env.fixture_server("gone", &[]),
        env.fixture_server("changed", &[])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let keep_pid: u32 = client
        .call_text("keep_pid", json!({}))
        .await
        .parse()
        .unwrap();
    let gone_pid: u32 = client
        .call_text("gone_pid", json!({}))
        .await
        .parse()
        .unwrap();
    let changed_pid: u32 = client
        .call_text("changed_pid", json!({}))
        .await
        .parse()
        .unwrap();

    save_by_rename(
        &env,
        // Without pins: the changed server's new tool is served at once (see `pins::`).
        &format!(
            "pin: off\nservers:\n{keep}{}",
            env.fixture_server("changed", &["--extra-tools", "1"])
        ),
    );
    wait_generation(&env, 2).await;
    wait_for("the removed backend to exit", || !pid_alive(gone_pid)).await;
    wait_for("the changed backend's old process to exit", || {
        !pid_alive(changed_pid)
    })
    .await;
    assert!(pid_alive(keep_pid));
    assert_eq!(
        client.call_text("keep_pid", json!({})).await,
        keep_pid.to_string()
    );
    let new_changed = client.call_text("changed_pid", json!({})).await;
    assert_ne!(new_changed, changed_pid.to_string());
    assert_eq!(
        client.call_text("changed_t0", json!({"text": "t0"})).await,
        "t0"
    );
    let err = client
        .call("gone_echo", json!({"text": "x"}))
        .await
        .unwrap_err();
    assert!(err.contains("unknown tool `gone_echo`"), "{err}");
}

#[tokio::test]
async fn a_broken_edit_is_rejected_and_the_old_table_stays_live() {
    let env = Env::new();
    let good = format!("servers:\n{}", env.fixture_server("alpha", &[]));
    env.write_config(&good);
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("alpha_echo", json!({"text": "a"})).await,
        "a"
    );

    env.write_config(&format!("{good}    idle_timeuot: 5\n"));
    wait_for("the rejection to be recorded", || {
        env.status_json()["last_reload"]["ok"] == false
    })
    .await;
    let status = env.status_json();
    let message = status["last_reload"]["message"].as_str().unwrap();
    assert!(message.contains("gateway.yaml:5:5"), "{message}");
    assert!(message.contains("idle_timeout"), "did you mean: {message}");
    assert_eq!(status["generation"], 1);
    assert_eq!(
        client
            .call_text("alpha_echo", json!({"text": "still"}))
            .await,
        "still"
    );

    // mcpgwctl reload reports the same rejection synchronously.
    let out = env.ctl(&["reload"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("gateway.yaml:5:5"));

    // Fixing the file brings the next generation.
    env.write_config(&format!("{good}    idle_timeout: 5\n"));
    wait_generation(&env, 2).await;
    assert_eq!(env.status_json()["last_reload"]["ok"], true);
}

#[tokio::test]
async fn role_and_idle_timeout_changes_apply_without_restarts() {
    let env = Env::new();
    let servers = format!(
        "servers:\n{}{}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[])
    );
    env.write_config(&format!("{servers}roles:\n  ro: [\"alpha_*\"]\n"));
    let _daemon = env.daemon().await;
    let ro = env.client(Some("ro")).await;
    let other = env.client(None).await;
    let alpha_pid = ro.call_text("alpha_pid", json!({})).await;
    assert!(!ro.tool_names().await.iter().any(|n| n.starts_with("beta_")));
    assert!(other.tool_names().await.contains(&"beta_echo".to_string()));
    let (ro_before, other_before) = (
        *ro.recorder.tools_changed.lock().unwrap(),
        *other.recorder.tools_changed.lock().unwrap(),
    );

    env.write_config(&format!(
        "idle_timeout: 1000\n{servers}roles:\n  ro: [\"alpha_*\", \"beta_echo\"]\n"
    ));
    wait_for("list_changed for the role whose tools changed", || {
        *ro.recorder.tools_changed.lock().unwrap() > ro_before
    })
    .await;
    assert!(ro.tool_names().await.contains(&"beta_echo".to_string()));
    assert_eq!(
        ro.call_text("beta_echo", json!({"text": "now"})).await,
        "now"
    );
    assert_eq!(
        ro.call_text("alpha_pid", json!({})).await,
        alpha_pid,
        "no restart"
    );
    // Only sessions whose visible tools changed are told.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*other.recorder.tools_changed.lock().unwrap(), other_before);
}

#[tokio::test]
async fn sighup_reloads() {
    let env = Env::new();
    let one = format!("servers:\n{}", env.fixture_server("alpha", &[]));
    env.write_config(&one);
    let daemon = env.daemon().await;
    // An edit the watcher cannot see (same content) still reloads on SIGHUP.
    kill(daemon.pid(), libc::SIGHUP);
    wait_generation(&env, 2).await;
    assert!(daemon.log().contains("SIGHUP"));
}

#[tokio::test]
async fn no_call_fails_while_reloading_under_load() {
    let env = Env::new();
    let base = format!("servers:\n{}", env.fixture_server("steady", &[]));
    env.write_config(&base);
    let _daemon = env.daemon().await;
    let a = env.client(None).await;
    let b = env.client(None).await;
    a.call_text("steady_echo", json!({"text": "warm"})).await;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let done = [Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0))];
    let load = |client: Client, stop: Arc<AtomicBool>, done: Arc<AtomicU32>| async move {
        let mut failed = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match client.call("steady_echo", json!({"text": "x"})).await {
                Ok(r) if text_of(&r) == "x" => {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                other => failed.push(format!("{other:?}")),
            }
        }
        failed
    };
    let ta = tokio::spawn(load(a, stop.clone(), done[0].clone()));
    let tb = tokio::spawn(load(b, stop.clone(), done[1].clone()));
    for i in 0..20u64 {
        // Alternate adding and removing an unrelated server, and changing the global timeout.
        let yaml = if i % 2 == 0 {
            format!(
                "idle_timeout: {}\n{base}{}",
                300 + i,
                env.fixture_server("extra", &[])
            )
        } else {
            format!("idle_timeout: {}\n{base}", 300 + i)
        };
        env.write_config(&yaml);
        let out = env.ctl(&["reload"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Both clients get calls through between every two reloads.
        let marks = [
            done[0].load(Ordering::Relaxed),
            done[1].load(Ordering::Relaxed),
        ];
        wait_for("calls between reloads", || {
            done[0].load(Ordering::Relaxed) > marks[0] + 2
                && done[1].load(Ordering::Relaxed) > marks[1] + 2
        })
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    let (failed_a, failed_b) = (ta.await.unwrap(), tb.await.unwrap());
    assert!(
        failed_a.is_empty() && failed_b.is_empty(),
        "{failed_a:?} {failed_b:?}"
    );
    assert!(generation(&env) >= 21);
}

#[tokio::test]
async fn a_prefix_change_renames_tools_without_a_restart() {
    let env = Env::new();
    let server = env.fixture_server("alpha", &[]);
    env.write_config(&format!("servers:\n{server}"));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert!(client.tool_names().await.contains(&"alpha_pid".to_string()));
    let pid = client.call_text("alpha_pid", json!({})).await;
    let before = *client.recorder.tools_changed.lock().unwrap();
    env.write_config(&format!("servers:\n{server}    prefix: a\n"));
    wait_for("list_changed for the renamed tools", || {
        *client.recorder.tools_changed.lock().unwrap() > before
    })
    .await;
    assert!(client.tool_names().await.contains(&"a_pid".to_string()));
    assert_eq!(
        client.call_text("a_pid", json!({})).await,
        pid,
        "same process"
    );
}

/// An empty or truncated file (an editor's truncate-then-write, a failed save) does not stop
/// every backend: an edit that leaves no servers is refused unless it writes `servers: {}`.
#[tokio::test]
async fn an_empty_file_is_refused_but_an_explicit_empty_server_list_is_not() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(
        client.call_text("alpha_echo", json!({"text": "a"})).await,
        "a"
    );

    for edit in ["", "idle_timeout: 5\n", "servers:\n"] {
        env.write_config(edit);
        let out = env.ctl(&["reload"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{edit:?} was accepted: {stderr}"
        );
        assert!(stderr.contains("leaves no servers"), "{stderr}");
        assert!(
            stderr.contains("servers: {}"),
            "says how to mean it: {stderr}"
        );
        assert_eq!(generation(&env), 1);
        assert_eq!(
            client.call_text("alpha_echo", json!({"text": "b"})).await,
            "b",
            "the backend stayed up after {edit:?}"
        );
    }

    env.write_config("servers: {}\n");
    let out = env.ctl(&["reload"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(generation(&env), 2);
    assert!(
        client
            .tool_names()
            .await
            .iter()
            .all(|n| !n.starts_with("alpha_"))
    );
}

/// `env_file:`: its variables reach the servers whose `${VAR}`s name them; an edit of it is a
/// change of those servers (restarted with the new value, by `mcpgwctl reload` or the watch),
/// and of no other.
#[tokio::test]
async fn an_env_file_feeds_its_servers_and_an_edit_restarts_them() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let secrets = env.path("secrets.env");
    let write_secret = |value: &str| {
        // Written by rename, as editors do: the watch must see the new file.
        let tmp = env.path(".secrets.env.tmp");
        std::fs::write(&tmp, format!("# the fixture's token\nTOKEN=\"{value}\"\n")).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, &secrets).unwrap();
    };
    write_secret("first-s3cret");
    env.write_config(&format!(
        "env_file: secrets.env\nservers:\n{}    env: {{T: \"${{TOKEN}}\"}}\n{}",
        env.fixture_server("alpha", &[]),
        env.fixture_server("beta", &[]),
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let read = || client.call_text("alpha_env", json!({"name": "T"}));
    assert_eq!(read().await, "first-s3cret");
    let alpha_pid = client.call_text("alpha_pid", json!({})).await;
    let beta_pid = client.call_text("beta_pid", json!({})).await;

    write_secret("second-s3cret");
    let out = env.ctl(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read().await, "second-s3cret");
    assert_ne!(client.call_text("alpha_pid", json!({})).await, alpha_pid);
    assert_eq!(
        client.call_text("beta_pid", json!({})).await,
        beta_pid,
        "a server that does not use the file is kept"
    );

    // The watch follows the file too: no `mcpgwctl reload` this time.
    write_secret("third-s3cret");
    let start = std::time::Instant::now();
    while read().await != "third-s3cret" {
        assert!(start.elapsed() < DEADLINE, "the env file edit was not seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = env.status_json().to_string();
    assert!(!status.contains("s3cret"), "{status}");
    assert!(!env.daemon_log_contains("s3cret"));
    client.close().await;
}

/// An env file the config names before it exists: the edit is rejected (a missing env file is
/// an error), and creating the file then reloads by itself. The rejected config's env files
/// are watched, not only the live one's; this one is in a directory of its own.
#[tokio::test]
async fn an_env_file_named_before_it_exists_is_read_once_it_is_created() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let server = env.fixture_server("alpha", &[]);
    env.write_config(&format!("servers:\n{server}"));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    assert_eq!(generation(&env), 1);

    std::fs::create_dir(env.path("secrets")).unwrap();
    save_by_rename(
        &env,
        &format!("env_file: secrets/later.env\nservers:\n{server}    env: {{T: \"${{TOKEN}}\"}}\n"),
    );
    wait_for("the rejection to be recorded", || {
        env.status_json()["last_reload"]["ok"] == false
    })
    .await;
    assert_eq!(generation(&env), 1);

    let tmp = env.path("secrets/.later.env.tmp");
    std::fs::write(&tmp, "TOKEN=created-s3cret\n").unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::rename(&tmp, env.path("secrets/later.env")).unwrap();
    wait_generation(&env, 2).await;
    assert_eq!(
        client.call_text("alpha_env", json!({"name": "T"})).await,
        "created-s3cret"
    );
    client.close().await;
}
