//! Durations: `idle_timeout`, `startup_timeout`, `discovery_wait` and `call_timeout`, global
//! and per server.

use std::time::Duration;

use super::{error, ok};

#[test]
fn durations_in_every_form() {
    let text = r#"idle_timeout: 0.5
startup_timeout: "1m"
discovery_wait: 250ms
servers:
  a: { command: x, idle_timeout: "500ms" }
  b: { command: x, idle_timeout: 0 }
  c: { command: x, idle_timeout: 2h }
"#;
    let config = ok(text);
    assert_eq!(config.idle_timeout, Duration::from_millis(500));
    assert_eq!(config.startup_timeout, Duration::from_secs(60));
    assert_eq!(config.discovery_wait, Some(Duration::from_millis(250)));
    assert_eq!(ok("idle_timeout: 1\n").discovery_wait, None);
    let idle = |name: &str| config.servers[name].effective_idle_timeout(config.idle_timeout);
    assert_eq!(idle("a"), Duration::from_millis(500));
    assert_eq!(idle("b"), Duration::ZERO);
    assert_eq!(idle("c"), Duration::from_secs(7200));
    assert_eq!(ok("idle_timeout: 0\n").idle_timeout, Duration::ZERO);
}

#[test]
fn bad_durations() {
    assert_eq!(
        error("idle_timeout: -5\n"),
        "gateway.yaml:1:15: `idle_timeout` must not be negative, found `-5`"
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    idle_timeout: 5 minutes\n"),
        "gateway.yaml:4:19: `idle_timeout` in server `a` must be a duration: seconds as a number \
         (30, 0.5) or a string with a unit (\"500ms\", \"30s\", \"5m\", \"1h\"); `5 minutes` is not one"
    );
    assert_eq!(
        error("startup_timeout: 0\n"),
        "gateway.yaml:1:18: `startup_timeout` must be greater than 0 (a backend needs time to start)"
    );
    assert!(
        error("idle_timeout: [1]\n")
            .starts_with("gateway.yaml:1:15: `idle_timeout` must be a duration")
    );
}

#[test]
fn call_timeouts_are_global_with_per_server_overrides() {
    let config = ok(
        "call_timeout: 2m\nservers:\n  a:\n    command: x\n    call_timeout: 500ms\n  b:\n    command: y\n",
    );
    assert_eq!(config.call_timeout, Duration::from_secs(120));
    let (a, b) = (&config.servers["a"], &config.servers["b"]);
    assert_eq!(
        a.effective_call_timeout(config.call_timeout),
        Duration::from_millis(500)
    );
    assert_eq!(
        b.effective_call_timeout(config.call_timeout),
        Duration::from_secs(120)
    );
    assert_eq!(
        ok("servers: {}\n").call_timeout,
        Duration::ZERO,
        "no limit by default"
    );
    assert!(error("call_timeout: soon\n").starts_with("gateway.yaml:1:15: "));
}
