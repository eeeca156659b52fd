//! One server's settings: `env`, `cwd`, `command` or `url` (not both, nor a mix of their keys),
//! `scope`, and its secrets kept out of what is shown.

use std::path::Path;

use super::{SECRET, error, errors, ok, parse_at};
use crate::config::Scope;

#[test]
fn env_values_must_be_strings() {
    let text = "servers:\n  a:\n    command: x\n    env:\n      PORT: 8080\n      EMPTY_ONE:\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:5:13: `env.PORT` in server `a` must be a string, found an integer \
             (quote it to make it a string)",
            "gateway.yaml:6:7: `env.EMPTY_ONE` in server `a` has no value; write \"\" for an empty string",
        ]
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    env: [A=1]\n"),
        "gateway.yaml:4:10: `env` in server `a` must be a mapping from variable names to strings, found a list"
    );
}

#[test]
fn relative_cwd_resolves_against_the_config_dir() {
    let text = "servers:\n  a: {command: x, cwd: ./work}\n  b: {command: x, cwd: ../up}\n  c: {command: x, cwd: /abs}\n";
    let config = parse_at(text, "/etc/mcpgw/gateway.yaml").unwrap();
    let cwd = |name: &str| config.servers[name].cwd.clone().unwrap();
    assert_eq!(cwd("a"), Path::new("/etc/mcpgw/work"));
    assert_eq!(cwd("b"), Path::new("/etc/mcpgw/../up"));
    assert_eq!(cwd("c"), Path::new("/abs"));
}

#[test]
fn secrets_stay_out_of_debug_errors_and_warnings() {
    let text = "servers:\n  a:\n    command: x\n    env:\n      TOKEN: \"${GITHUB_TOKEN}\"\n      BAD: \"${GITHUB_TOKEN}${NOPE}\"\n";
    let config = ok(text);
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("\"TOKEN\": ***"), "{debug}");
    assert!(!config.warnings.concat().contains(SECRET));
    assert!(!format!("{:?}", config.servers["a"].disabled_reason).contains(SECRET));

    let broken =
        format!("{text}    args: \"${{GITHUB_TOKEN}}\"\n    cwd: [\"${{GITHUB_TOKEN}}\"]\n");
    let errors = parse_at(&broken, "gateway.yaml").unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(!errors.to_string().contains(SECRET), "{errors}");
}

#[test]
fn a_server_has_exactly_one_of_command_and_url() {
    let text = r#"servers:
  both:
    command: npx
    url: https://h/mcp
  reversed:
    url: https://h/mcp
    command: npx
  neither:
    headers: {A: b}
    enabled: false
"#;
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:4:5: server `both` has both `command` and `url`: it either runs a program \
             or connects to a remote server; remove one of them",
            "gateway.yaml:7:5: server `reversed` has both `command` and `url`: it either runs a \
             program or connects to a remote server; remove one of them",
            "gateway.yaml:8:3: server `neither` is missing `command` (the program to run) or `url` \
             (a remote server)",
        ]
    );
}

#[test]
fn local_and_remote_keys_do_not_mix() {
    let text = r#"servers:
  remote:
    url: https://h/mcp
    args: [a]
    env: {A: b}
    cwd: /tmp
  local:
    command: x
    headers: {A: b}
"#;
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:4:5: `args` in server `remote` is only for servers with `command`; this \
             one has `url`",
            "gateway.yaml:5:5: `env` in server `remote` is only for servers with `command`; this \
             one has `url`",
            "gateway.yaml:6:5: `cwd` in server `remote` is only for servers with `command`; this \
             one has `url`",
            "gateway.yaml:9:5: `headers` in server `local` is only for servers with `url`; this \
             one has `command`",
        ]
    );
}

#[test]
fn scope_is_shared_or_per_client() {
    let config = ok(
        "servers:\n  a: {command: x, scope: per-client}\n  b: {command: x, scope: shared}\n  c: {command: x}\n",
    );
    let scope = |name: &str| config.servers[name].scope;
    assert_eq!(
        (scope("a"), scope("b"), scope("c")),
        (Scope::PerClient, Scope::Shared, Scope::Shared)
    );
    let text = "servers:\n  a: {command: x, scope: per_client}\n  b: {command: x, scope: [shared]}\n  c: {command: x, scope: global}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:2:26: unknown scope `per_client` in server `a`: did you mean \
             `per-client`? (expected one of: shared, per-client)",
            "gateway.yaml:3:26: `scope` in server `b` must be one of: shared, per-client, found a \
             list",
            "gateway.yaml:4:26: unknown scope `global` in server `c` (expected one of: shared, \
             per-client)",
        ]
    );
}

#[test]
fn pass_env_names_variables_of_a_per_client_server() {
    let config = ok(
        "servers:\n  a: {command: x, scope: per-client, pass_env: [GITHUB_TOKEN, PROJECT_DIR]}\n",
    );
    assert_eq!(
        config.servers["a"].pass_env,
        ["GITHUB_TOKEN", "PROJECT_DIR"]
    );
    assert_ne!(
        config.servers["a"].spec_hash(),
        ok("servers:\n  a: {command: x, scope: per-client}\n").servers["a"].spec_hash(),
        "the variables a process gets are part of its spec"
    );
    let text = "servers:\n  a: {command: x, pass_env: [HOME]}\n  b: {command: x, scope: per-client, pass_env: [A=B, 3]}\n  c: {command: x, scope: per-client, pass_env: HOME}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:2:19: `pass_env` in server `a` needs `scope: per-client`: a shared \
             server has one environment for every client, so no client's variables can be \
             passed to it",
            "gateway.yaml:3:49: `pass_env` in server `b` must be a list of environment variable \
             names (letters, digits and `_`); item 1 is `A=B`",
            "gateway.yaml:3:54: `pass_env` in server `b` must be a list of environment variable \
             names (letters, digits and `_`); item 2 is an integer",
            "gateway.yaml:4:48: `pass_env` in server `c` must be a list of environment variable \
             names, found a string",
        ]
    );
}
