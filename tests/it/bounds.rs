//! What a backend writes cannot grow the daemon (issue 10, items 14 and 15): stderr without a
//! newline or with `\r` progress bars, stderr that is not UTF-8, and stdout lines over
//! `max_message`. Memory is read from `/proc/<pid>/status` of the daemon: `VmHWM` is its peak,
//! so a flood that came and went still counts.

use serde_json::{Value, json};

use crate::harness::*;

/// The daemon's resident memory must stay under this while a backend floods it with 256 MiB.
/// An idle daemon takes a few MiB; before the bounds a flood took the whole 256 MiB and more.
const CEILING_MIB: u64 = 100;

/// Bytes kept of one stderr line, plus the `…` that marks a cut one.
const STDERR_LINE_MAX: usize = 4096 + '…'.len_utf8();

struct Memory {
    rss_mib: u64,
    peak_mib: u64,
}

fn daemon_memory(env: &Env) -> Memory {
    let pid = env.status_json()["pid"]
        .as_u64()
        .expect("status names the pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{key} in /proc/{pid}/status"))
    };
    Memory {
        rss_mib: kib("VmRSS:") / 1024,
        peak_mib: kib("VmHWM:") / 1024,
    }
}

fn assert_bounded(env: &Env, what: &str) {
    let memory = daemon_memory(env);
    // Shown with --nocapture: the numbers behind the ceiling.
    eprintln!(
        "{what}: daemon VmRSS {} MiB, VmHWM (peak) {} MiB",
        memory.rss_mib, memory.peak_mib
    );
    assert!(
        memory.peak_mib < CEILING_MIB,
        "{what}: the daemon's peak resident memory is {} MiB (ceiling {CEILING_MIB} MiB)",
        memory.peak_mib
    );
}

/// `mcpgwctl logs <server> --json`: the server's kept stderr lines.
fn logs(env: &Env, server: &str) -> Vec<String> {
    let out = env.ctl(&["logs", server, "-n", "1000", "--json"]);
    assert!(
        out.status.success(),
        "logs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line.as_str().unwrap().to_string())
        .collect()
}

fn stderr_tail(env: &Env) -> Vec<String> {
    env.status_json()["backends"][0]["stderr_tail"]
        .as_array()
        .map(|lines| {
            lines
                .iter()
                .filter_map(|l| l.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn stderr_without_newlines_stays_bounded() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    client
        .call_text("fx_stderr_line", json!({"text": "before the flood"}))
        .await;
    // 256 MiB without a newline, then a `\r` progress bar of 10000 steps, then a newline. The
    // call ends when the fixture has written it all, so the daemon has read all but a pipe's
    // worth of it by then.
    client
        .call_text("fx_stderr_flood", json!({"mib": 256, "progress": 10000}))
        .await;
    assert_bounded(&env, "after 256 MiB of stderr without a newline");
    wait_for("the progress bar's last state in the logs", || {
        logs(&env, "fx").last().map(String::as_str) == Some("progress 10000/10000")
    })
    .await;
    let lines = logs(&env, "fx");
    assert!(
        lines.iter().all(|line| line.len() <= STDERR_LINE_MAX),
        "every kept line is capped"
    );
    let cut: Vec<&String> = lines.iter().filter(|line| line.ends_with('…')).collect();
    assert_eq!(cut.len(), 1, "the flood is one cut line");
    assert_eq!(cut[0].len(), STDERR_LINE_MAX);
    assert!(cut[0].starts_with("xxxx"));
    assert_eq!(
        lines
            .iter()
            .filter(|line| line.starts_with("progress "))
            .count(),
        1,
        "a `\\r` progress bar is the one line it ends on: {:?}",
        &lines[lines.len().saturating_sub(5)..]
    );
    assert!(
        lines.iter().any(|line| line == "before the flood"),
        "the progress bar pushed nothing out"
    );
    assert_eq!(
        client.call_text("fx_echo", json!({"text": "after"})).await,
        "after"
    );
    assert_bounded(&env, "at the end");
}

#[tokio::test]
async fn stderr_that_is_not_utf8_does_not_stop_the_drain() {
    let env = Env::new();
    env.write_config(&format!("servers:\n{}", env.fixture_server("fx", &[])));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let pid = client.call_text("fx_pid", json!({})).await;
    client
        .call_text(
            "fx_stderr_line",
            json!({"text": "after two bad bytes", "invalid_utf8": true}),
        )
        .await;
    wait_for("the line, lossily, in the stderr tail", || {
        stderr_tail(&env).contains(&"\u{fffd}\u{fffd}after two bad bytes".to_string())
    })
    .await;
    // The drain still reads: the backend writes on and answers, the same process throughout.
    for i in 0..3 {
        client
            .call_text(
                "fx_stderr_line",
                json!({"text": format!("still writing {i}")}),
            )
            .await;
    }
    wait_for("the later lines in the logs", || {
        logs(&env, "fx").contains(&"still writing 2".to_string())
    })
    .await;
    assert_eq!(client.call_text("fx_pid", json!({})).await, pid);
}

#[tokio::test]
async fn an_answer_over_max_message_stops_the_backend_not_the_daemon() {
    // On the byte path the stdio reader fails the call; with it off, rmcp's request fails as
    // the connection closes. Both must say why.
    for fast in ["1", "0"] {
        let env = Env::new();
        env.write_config(&format!(
            "servers:\n{}    max_message: 1MiB\n",
            env.fixture_server("fx", &[])
        ));
        let mut daemon = env.start_daemon_with(&[("MCPGW_FAST_PATH", fast)]);
        daemon.wait_ready(&env).await;
        let client = env.client(None).await;
        let first = client.call_text("fx_pid", json!({})).await;
        let under = client
            .call_text("fx_big", json!({"bytes": 512 * 1024}))
            .await;
        assert_eq!(
            under.len(),
            512 * 1024,
            "a message under the limit passes whole"
        );

        let err = match client
            .call("fx_big", json!({"bytes": 2 * 1024 * 1024}))
            .await
        {
            // Not the result itself: 2 MiB of `x` would bury the message.
            Ok(result) => panic!(
                "an answer over max_message passed ({} bytes)",
                text_of(&result).len()
            ),
            Err(err) => err,
        };
        assert!(
            err.contains("server `fx` sent a message over max_message (1 MiB) and was stopped"),
            "fast path {fast}: {err}"
        );
        eprintln!("fast path {fast}: the client saw: {err}");
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "the daemon is up"
        );
        assert!(env.daemon_log_contains("sent a message over max_message (1 MiB)"));
        restarted_after_max_message(&env, &client, &first).await;
        assert_eq!(
            client.call_text("fx_echo", json!({"text": "again"})).await,
            "again"
        );
        assert_bounded(&env, &format!("fast path {fast}: after a 2 MiB answer"));
    }
}

#[tokio::test]
async fn stdout_without_a_newline_stays_bounded() {
    let env = Env::new();
    env.write_config(&format!(
        "servers:\n{}    max_message: 1MiB\n",
        env.fixture_server("fx", &[])
    ));
    let _daemon = env.daemon().await;
    let client = env.client(None).await;
    let first = client.call_text("fx_pid", json!({})).await;
    // 256 MiB that never end in a newline: before the bounds the daemon buffered all of it and
    // the call never ended.
    let call = client.call("fx_stdout_flood", json!({"mib": 256}));
    let err = tokio::time::timeout(DEADLINE, call)
        .await
        .expect("the call ends rather than hang")
        .expect_err("a message over max_message fails the call");
    assert!(
        err.contains("server `fx` sent a message over max_message (1 MiB) and was stopped"),
        "{err}"
    );
    eprintln!("the client saw: {err}");
    assert_bounded(&env, "after 256 MiB of stdout without a newline");
    restarted_after_max_message(&env, &client, &first).await;
}

/// The instance stopped for a message over max_message (1 MiB) is gone, and the next call
/// starts a new one (another pid than `first`).
async fn restarted_after_max_message(env: &Env, client: &Client, first: &str) {
    wait_for("the stopped instance to be gone", || {
        env.status_json()["backends"][0]["last_exit"]
            .as_str()
            .is_some_and(|exit| exit.contains("max_message (1 MiB)"))
    })
    .await;
    let second = client.call_text("fx_pid", json!({})).await;
    assert_ne!(first, second, "the next call started the server again");
}

/// A client that opens a call's stream over HTTP and does not read it cannot make the daemon
/// hold the call's progress: 100 MiB of progress go by while the stream sits unread, and the
/// daemon's peak grows by less than half of that; the client that reads late still gets the answer.
#[tokio::test]
async fn an_http_call_stream_nobody_reads_stays_bounded() {
    use crate::http::{HttpDaemon, alpha_inflight, config, in_session, open_session};
    let env = Env::new();
    let http = HttpDaemon::start(&env, |port| config(&env, port, "")).await;
    let session = open_session(http.port).await;
    let call = |id: u64, tool: &str, args: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args, "_meta": {"progressToken": id}}})
    };
    // The first call starts the backend (the byte path serves running ones only).
    let warm = in_session(
        http.port,
        &session,
        &call(1, "alpha_echo", json!({"text": "w"})),
    )
    .send()
    .await
    .unwrap();
    assert!(warm.text().await.unwrap().contains("\"w\""));

    let before = daemon_memory(&env).peak_mib;
    let args = json!({"ms": 2000, "steps": 160, "progress_kib": 640});
    let unread = in_session(http.port, &session, &call(2, "alpha_slow", args))
        .send()
        .await
        .unwrap();
    assert_eq!(unread.status(), 200);
    wait_for("the chatty call to begin", || alpha_inflight(&env) == 1).await;
    wait_for("the chatty call to end", || alpha_inflight(&env) == 0).await;
    let after = daemon_memory(&env).peak_mib;
    assert!(
        after < before + 40,
        "100 MiB of progress to a stream nobody read took the daemon from {before} to {after} MiB"
    );

    let text = tokio::time::timeout(DEADLINE, unread.text())
        .await
        .expect("the stream ends")
        .unwrap();
    assert!(
        text.contains("slept 2000 ms"),
        "no answer at the end of the stream"
    );
}
