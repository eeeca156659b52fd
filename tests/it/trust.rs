//! Trust boundaries on the local socket: the shim and mcpgwctl talk only to a daemon of their
//! own user, in a directory only that user controls, and find the same daemon whatever
//! environment an MCP client launched them with.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rmcp::ServiceExt;
use rmcp::transport::TokioChildProcess;

use crate::harness::*;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Runs the shim (no autostart) and mcpgwctl against `socket`; both must refuse, saying why.
fn both_refuse(env: &Env, socket: &Path, why: &str) {
    let shim: Output = env
        .command(&bin("mcpgw-shim"))
        .arg("--no-autostart")
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&shim.stderr);
    assert_eq!(shim.status.code(), Some(1), "{stderr}");
    assert!(shim.stdout.is_empty(), "nothing reaches the client");
    assert!(stderr.contains(why), "shim: {stderr}");
    let ctl = env
        .command(&bin("mcpgwctl"))
        .arg("--socket")
        .arg(socket)
        .arg("status")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&ctl.stderr);
    assert_eq!(ctl.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(why), "mcpgwctl: {stderr}");
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[tokio::test]
async fn a_socket_directory_others_can_use_is_refused_and_left_as_it_is() {
    let env = Env::new();
    env.write_config("servers: {}\n");
    let shared = env.path("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let socket = shared.join("mcpgw.sock");
    both_refuse(&env, &socket, "can be used by other users (mode 755)");
    assert!(
        String::from_utf8_lossy(
            &env.command(&bin("mcpgw-shim"))
                .arg("--no-autostart")
                .arg("--socket")
                .arg(&socket)
                .stdin(Stdio::null())
                .output()
                .unwrap()
                .stderr
        )
        .contains("chmod 700"),
        "the message says what to do"
    );

    // The daemon refuses it too, and does not chmod a directory it did not create.
    let out = env
        .command(&bin("mcpgwd"))
        .arg("--config")
        .arg(env.config_path())
        .arg("--socket")
        .arg(&socket)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refusing the socket directory"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&shared), 0o755, "the directory was changed");
    assert!(!socket.exists());
}

#[tokio::test]
async fn a_socket_directory_that_is_a_symlink_is_refused() {
    let env = Env::new();
    env.write_config("servers: {}\n");
    let mut daemon = env.daemon().await;
    // The daemon's own private directory, reached through a link someone else could repoint.
    let link = env.path("link");
    std::os::unix::fs::symlink(env.socket().parent().unwrap(), &link).unwrap();
    both_refuse(&env, &link.join("mcpgw.sock"), "is a symbolic link");
    assert!(daemon.stop().await.success());
}

#[tokio::test]
async fn a_socket_directory_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root to make a directory another user's");
        return;
    }
    let env = Env::new();
    let theirs = env.path("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::set_permissions(&theirs, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    both_refuse(&env, &theirs.join("mcpgw.sock"), "belongs to uid 65534");
}

/// A process of another user listening at the path (it bound the socket, then gave up its
/// rights: the directory checks cannot see that) is never sent a byte.
#[tokio::test]
async fn a_listener_of_another_user_is_never_talked_to() {
    if !is_root() {
        eprintln!("skipped: needs root to listen as another user");
        return;
    }
    let env = Env::new();
    let dir = env.path("private");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let socket = dir.join("mcpgw.sock");
    let received = env.path("received");
    let script = r#"
import os, socket, sys
path, received = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
os.chmod(path, 0o777)
os.setgid(65534)
os.setuid(65534)
s.listen(8)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    data = c.recv(65536)
    if data:
        fd = os.open(received, os.O_WRONLY | os.O_APPEND)
        os.write(fd, data)
        os.close(fd)
        c.sendall(b'{"ok":true}\n')
    c.close()
"#;
    std::fs::write(&received, b"").unwrap();
    std::fs::set_permissions(&received, std::fs::Permissions::from_mode(0o666)).unwrap();
    /// Killed however the test ends.
    struct Impostor(std::process::Child);
    impl Drop for Impostor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut impostor = Impostor(
        Command::new("python3")
            .args(["-c", script])
            .arg(&socket)
            .arg(&received)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(impostor.0.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    both_refuse(&env, &socket, "runs as uid 65534, not as you");
    assert_eq!(
        std::fs::read(&received).unwrap(),
        b"",
        "the impostor was sent something"
    );
}

/// MCP clients launch the shim with a reduced environment (the official Python SDK passes only
/// HOME, LOGNAME, PATH, SHELL, TERM and USER): it must still find the daemon that runs with the
/// full one (here, as under systemd, with `XDG_RUNTIME_DIR=/run/user/<uid>`), not start a
/// second one.
#[tokio::test]
async fn a_shim_with_a_reduced_environment_finds_the_same_daemon() {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    let made_run_user = !run_user.exists();
    if made_run_user {
        if !is_root() {
            eprintln!(
                "skipped: no {} and no rights to make it",
                run_user.display()
            );
            return;
        }
        std::fs::create_dir_all(&run_user).unwrap();
        std::fs::set_permissions(&run_user, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let socket = run_user.join("mcpgw/mcpgw.sock");
    assert!(
        !socket.exists(),
        "a daemon already listens at {}: stop it to run this test",
        socket.display()
    );
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let log = env.path("mcpgwd.log");
    let mut daemon = env
        .command(&bin("mcpgwd"))
        .env("XDG_RUNTIME_DIR", &run_user)
        .arg("--config")
        .arg(env.config_path())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for("the daemon to listen", || socket.exists()).await;

    let mut shim = tokio::process::Command::new(bin("mcpgw-shim"));
    shim.env_clear()
        .env("HOME", env.path("home"))
        .env("LOGNAME", "mcpgw-it")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SHELL", "/bin/sh")
        .env("TERM", "dumb")
        .env("USER", "mcpgw-it")
        .arg("--no-autostart")
        .current_dir(env.path(""));
    let result = async {
        let transport = TokioChildProcess::new(shim).map_err(|e| e.to_string())?;
        let client = ().serve(transport).await.map_err(|e| e.to_string())?;
        let tools = client.list_all_tools().await.map_err(|e| e.to_string())?;
        let _ = client.cancel().await;
        Ok::<_, String>(tools.len())
    }
    .await;

    let _ = daemon.kill();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(run_user.join("mcpgw"));
    if made_run_user {
        let _ = std::fs::remove_dir(&run_user);
    }
    let tools = result.unwrap_or_else(|e| {
        panic!(
            "the shim did not reach the daemon: {e}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    assert!(tools > 0, "the daemon's tools are listed");
}

/// The autostarted daemon's log is opened without following a symlink: one planted there
/// cannot make the daemon append to another file of the user's.
#[tokio::test]
async fn the_autostart_log_does_not_follow_a_symlink() {
    let env = Env::new();
    env.write_user_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let dir = env.socket().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = env.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, dir.join("mcpgwd.log")).unwrap();
    let client = env.client(None).await;
    assert!(!client.tool_names().await.is_empty());
    client.close().await;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(env.ctl(&["stop"]).status.code(), Some(0));
}

/// Descriptors an MCP client leaves open without close-on-exec reach the shim, but neither the
/// daemon it starts nor any backend: they get their standard streams only.
#[tokio::test]
async fn descriptors_a_client_leaked_reach_neither_the_daemon_nor_backends() {
    use std::os::fd::AsRawFd;
    let env = Env::new();
    env.write_user_config(&format!("servers:\n{}", env.fixture_server("alpha", &[])));
    let leaked = env.path("leaked-by-the-client");
    let file = std::fs::File::create(&leaked).unwrap();
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; only its close-on-exec flag changes.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let client = env.client(None).await;
    // SAFETY: as above (other tests' children need not inherit it any longer).
    unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    let backend: u32 = client
        .call_text("alpha_pid", serde_json::json!({}))
        .await
        .parse()
        .unwrap();
    let daemon = env.status_json()["pid"].as_u64().unwrap() as u32;
    let holds = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .any(|target| target == leaked)
    };
    assert!(
        !holds(daemon),
        "the daemon inherited the client's descriptor"
    );
    assert!(
        !holds(backend),
        "a backend inherited the client's descriptor"
    );
    client.close().await;
    assert_eq!(env.ctl(&["stop"]).status.code(), Some(0));
}

/// Resident memory of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A client that sends calls and never reads the answers cannot grow the daemon: past its
/// queue's bound its session ends, logged, and every other session goes on.
#[tokio::test]
async fn a_client_that_never_reads_ends_its_own_session_only() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
    let _daemon = env.daemon().await;
    let other = env.client(None).await;
    assert_eq!(
        other
            .call_text("fx_echo", serde_json::json!({"text": "a"}))
            .await,
        "a"
    );
    let daemon = env.status_json()["pid"].as_u64().unwrap() as u32;

    let mut greedy = RawClient::connect(&env, None).await;
    // 48 answers of 8 MiB: 384 MiB if the daemon kept them all.
    for id in 0..48 {
        greedy
            .send(
                serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "fx_big", "arguments": {"bytes": 8 * 1024 * 1024}}}),
            )
            .await;
    }
    let mut peak = 0;
    wait_for("the greedy session to end", || {
        peak = peak.max(rss_bytes(daemon));
        env.daemon_log_contains("does not read its responses")
    })
    .await;
    assert!(
        peak < 250 * 1024 * 1024,
        "daemon RSS reached {} MiB",
        peak >> 20
    );
    assert_eq!(
        other
            .call_text("fx_echo", serde_json::json!({"text": "b"}))
            .await,
        "b"
    );
    wait_for("the ended session to leave status", || {
        env.status_json()["sessions"].as_array().unwrap().len() == 1
    })
    .await;
    drop(greedy);
}

/// A client that reads is not ended because several large answers arrive at once: three
/// answers of 40 MB wait for it together (120 MB, past the 64 MiB a client's queue holds
/// without question), and it gets all three.
#[tokio::test]
async fn large_answers_arriving_together_reach_a_client_that_reads() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
    let _daemon = env.daemon().await;
    let mut raw = RawClient::connect(&env, None).await;
    let call = |id: u64, tool: &str, args: serde_json::Value| {
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}})
    };
    raw.send(call(1, "fx_echo", serde_json::json!({"text": "warm"})))
        .await;
    raw.until_response(&serde_json::json!(1)).await;
    for id in 2..5 {
        raw.send(call(id, "fx_big", serde_json::json!({"bytes": 40_000_000})))
            .await;
    }
    // Read nothing until the backend has answered all three: they wait in the queue together.
    wait_for("the three answers", || {
        env.status_json()["backends"][0]["inflight"].as_u64() == Some(0)
            && env.status_json()["backends"][0]["calls"].as_u64() >= Some(4)
    })
    .await;
    let mut answered = Vec::new();
    while answered.len() < 3 {
        let message = raw.recv().await;
        let text = message["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
        assert_eq!(text.len(), 40_000_000, "{}", message["id"]);
        answered.push(message["id"].as_u64().unwrap());
    }
    answered.sort();
    assert_eq!(answered, [2, 3, 4]);
}

/// The bound holds for requests that arrive together too (rmcp serves a client's pipelined
/// requests concurrently: they are counted and checked at once), and for calls bridged for
/// 2026-07-28 per-request metadata: of 12 slow calls in one write, 2 run and 10 are refused.
#[tokio::test]
async fn a_burst_of_requests_cannot_pass_the_session_bound() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
    let mut daemon = env.start_daemon_with(&[("MCPGW_MAX_CALLS_PER_SESSION", "2")]);
    daemon.wait_ready(&env).await;
    for meta in [serde_json::json!({}), modern_meta()] {
        let mut raw = RawClient::connect(&env, None).await;
        let mut burst = Vec::new();
        for id in 0..12 {
            let call = serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": "fx_slow", "arguments": {"ms": 2000}, "_meta": meta}});
            burst.extend_from_slice(&serde_json::to_vec(&call).unwrap());
            burst.push(b'\n');
        }
        raw.send_bytes(&burst).await;
        let (mut refused, mut ran) = (0, 0);
        while refused + ran < 12 {
            let message = raw.recv().await;
            if message.get("id").is_none() {
                continue;
            }
            match message["error"]["message"].as_str() {
                Some(m) if m.contains("too many requests in flight") => refused += 1,
                _ => ran += 1,
            }
        }
        assert_eq!((ran, refused), (2, 10), "meta {meta}");
        raw.close().await;
    }
    assert!(daemon.stop().await.success());
}

/// A session may hold only so many requests open at once (`MCPGW_MAX_CALLS_PER_SESSION`,
/// 256 by default), on either path: past it a new request is answered with an error, and the
/// session goes on.
#[tokio::test]
async fn a_session_holds_only_so_many_requests_open() {
    for fast in ["1", "0"] {
        let env = Env::new();
        env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
        let mut daemon = env.start_daemon_with(&[
            ("MCPGW_MAX_CALLS_PER_SESSION", "2"),
            ("MCPGW_FAST_PATH", fast),
        ]);
        daemon.wait_ready(&env).await;
        let mut raw = RawClient::connect(&env, None).await;
        let call = |id: u64, tool: &str, args: serde_json::Value| {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": args}})
        };
        // Started (and, on the byte path, warm) first.
        for id in [1, 2] {
            raw.send(call(id, "fx_echo", serde_json::json!({"text": "warm"})))
                .await;
            raw.until_response(&serde_json::json!(id)).await;
        }
        for id in [3, 4] {
            raw.send(call(id, "fx_slow", serde_json::json!({"ms": 3000})))
                .await;
        }
        wait_for("two calls in flight", || {
            env.status_json()["backends"][0]["inflight"].as_u64() == Some(2)
        })
        .await;
        raw.send(call(
            5,
            "fx_echo",
            serde_json::json!({"text": "one too many"}),
        ))
        .await;
        let (refused, _) = raw.until_response(&serde_json::json!(5)).await;
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("too many requests in flight"),
            "fast={fast}: {refused}"
        );
        // rmcp reads an id written `7.0` as 7 and answers with that spelling: the refusal
        // must not depend on how the id is written.
        raw.send(
            serde_json::json!({"jsonrpc": "2.0", "id": 7.0, "method": "tools/call",
            "params": {"name": "fx_echo", "arguments": {"text": "one too many, again"}}}),
        )
        .await;
        let (refused, _) = raw.until_response(&serde_json::json!(7)).await;
        assert!(refused["error"].is_object(), "fast={fast}: {refused}");
        raw.until_response(&serde_json::json!(4)).await;
        raw.send(call(6, "fx_echo", serde_json::json!({"text": "again"})))
            .await;
        let (again, _) = raw.until_response(&serde_json::json!(6)).await;
        assert_eq!(
            again["result"]["content"][0]["text"], "again",
            "fast={fast}: {again}"
        );
        assert!(daemon.stop().await.success());
    }
}
