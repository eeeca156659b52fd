//! `${VAR}` expansion: where it applies, missing variables disabling their server, malformed
//! references.

use std::path::Path;

use super::{SECRET, errors, ok, parse_at};

#[test]
fn variables_expand_in_args_env_and_cwd_only() {
    let text = r#"servers:
  a:
    command: "${GITHUB_TOKEN}"
    args: ["--data=${DATA}", "${UNSET:-fallback}", "${EMPTY:-d}", "[${EMPTY}]", "$DATA", "$$", "a$"]
    env: { TOKEN: "${GITHUB_TOKEN}", MODE: "${MODE:-fast}" }
    cwd: ${DATA}/work
"#;
    let config = parse_at(text, "/etc/mcpgw/gateway.yaml").unwrap();
    let a = &config.servers["a"];
    assert_eq!(a.command, "${GITHUB_TOKEN}");
    assert_eq!(
        a.args,
        [
            "--data=/srv/data",
            "fallback",
            "d",
            "[]",
            "$DATA",
            "$$",
            "a$"
        ]
    );
    assert_eq!(a.env["TOKEN"], SECRET);
    assert_eq!(a.env["MODE"], "fast");
    assert_eq!(a.cwd.as_deref(), Some(Path::new("/srv/data/work")));
    assert!(a.enabled);
    assert_eq!(
        config.warnings,
        [
            "/etc/mcpgw/gateway.yaml:3:14: `command` in server `a` contains `${`, which is only expanded in `args`, `env`, `cwd`, `url` and `headers`"
        ]
    );
}

#[test]
fn a_missing_variable_disables_only_its_server() {
    let text = r#"servers:
  github:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-github"]
    env:
      GITHUB_TOKEN: "${GH_TOKEN}"
      OTHER: "x-${NOPE}-${GH_TOKEN}"
  filesystem:
    command: npx
"#;
    let config = ok(text);
    assert!(config.servers["filesystem"].enabled);
    let github = &config.servers["github"];
    assert!(!github.enabled);
    assert_eq!(
        github.disabled_reason.as_deref(),
        Some(
            "missing environment variables GH_TOKEN (gateway.yaml:6:22), NOPE (gateway.yaml:7:17)"
        )
    );
    assert_eq!(
        config.warnings,
        [
            "gateway.yaml:6:22: server `github` is disabled: environment variable GH_TOKEN is not set",
            "gateway.yaml:7:17: server `github` is disabled: environment variable NOPE is not set",
        ]
    );
}

#[test]
fn a_single_missing_variable_is_cited_in_the_reason() {
    let text = "servers:\n  a:\n    command: x\n    args: [\"--token\", \"${NOPE}\"]\n";
    let a = &ok(text).servers["a"];
    assert_eq!(
        a.disabled_reason.as_deref(),
        Some("missing environment variable NOPE (gateway.yaml:4:24)")
    );
}

#[test]
fn missing_variables_of_a_disabled_server_are_not_warned_about() {
    let text = "servers:\n  a:\n    command: x\n    env: {T: \"${NOPE}\"}\n    enabled: false\n";
    let config = ok(text);
    assert!(config.warnings.is_empty());
    assert_eq!(
        config.servers["a"].disabled_reason.as_deref(),
        Some("disabled in config")
    );
}

#[test]
fn malformed_references_are_errors_at_their_dollar() {
    let text = "servers:\n  a:\n    command: x\n    args: [\"ok\", \"pre ${OPEN\"]\n    env: {A: \"${1X}\"}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:4:23: `args` in server `a`: unterminated `${` (expected `${NAME}` or `${NAME:-default}`)",
            "gateway.yaml:5:15: `env.A` in server `a`: invalid variable reference `${1X}`: \
             expected `${NAME}` or `${NAME:-default}`",
        ]
    );
}
