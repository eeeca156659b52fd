//! The checker as a whole: defaults, unknown keys, type errors, duplicates, syntax errors,
//! roles, every error in one pass in document order, and the README's examples.

use std::time::Duration;

use super::{README_ROLES, SECRET, error, errors, ok};
use crate::config::{Role, Scope, Transport};

const README_EXAMPLE: &str = r#"servers:
  filesystem:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]

  github:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-github"]
    env:
      GITHUB_TOKEN: "${GITHUB_TOKEN}"
    enabled: false

idle_timeout: 300
"#;

#[test]
fn mcp_unify_readme_example_parses_as_is() {
    let config = ok(README_EXAMPLE);
    assert_eq!(config.idle_timeout, Duration::from_secs(300));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let fs = &config.servers["filesystem"];
    assert_eq!(fs.command, "npx");
    assert_eq!(
        fs.args,
        ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
    );
    assert!(fs.enabled);
    let github = &config.servers["github"];
    assert!(!github.enabled);
    assert_eq!(
        github.disabled_reason.as_deref(),
        Some("disabled in config")
    );
    assert_eq!(github.env["GITHUB_TOKEN"], SECRET);

    let roles = ok(README_ROLES).roles;
    assert_eq!(roles["admin"], Role::All);
    let readonly = Role::Patterns(vec!["filesystem_*".into(), "gateway_status".into()]);
    assert_eq!(roles["readonly"], readonly);
    assert_eq!(roles.len(), 3);
}

#[test]
fn defaults() {
    let config = ok("servers:\n  a:\n    command: x\n");
    assert_eq!(config.idle_timeout, Duration::from_secs(300));
    assert_eq!(config.startup_timeout, Duration::from_secs(30));
    assert!(config.roles.is_empty());
    assert!(config.path.is_absolute());
    assert!(config.path.ends_with("gateway.yaml"));
    let a = &config.servers["a"];
    assert_eq!(a.name, "a");
    assert!(a.args.is_empty() && a.env.is_empty());
    assert_eq!(
        (a.cwd.as_ref(), a.enabled, a.idle_timeout),
        (None, true, None)
    );
    assert_eq!(a.disabled_reason, None);
    assert_eq!(
        a.effective_idle_timeout(Duration::from_secs(7)),
        Duration::from_secs(7)
    );
}

#[test]
fn servers_and_roles_may_be_missing_or_empty() {
    for text in ["", "# nothing\n", "servers:\n", "servers: {}\n", "roles:\n"] {
        let config = ok(text);
        assert!(
            config.servers.is_empty() && config.roles.is_empty(),
            "{text:?}"
        );
    }
}

#[test]
fn null_optional_values_mean_the_default() {
    let text = "servers:\n  a:\n    command: x\n    args:\n    env: ~\n    enabled:\n";
    let a = &ok(text).servers["a"];
    assert!(a.args.is_empty() && a.env.is_empty() && a.enabled);
}

#[test]
fn syntax_error_is_the_only_error_and_is_located() {
    let text = "servers:\n  a:\n    command: x\n    args: [\"-y\", \"p\"\n  b: {}\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("gateway.yaml:5:3: invalid YAML: did not find expected ',' or ']'"),
        "{}",
        errors[0]
    );
    // The position is in the prefix, not repeated in the message.
    assert!(!errors[0].contains("at line 5 column 3"), "{}", errors[0]);
}

#[test]
fn unknown_key_in_a_server_with_did_you_mean() {
    let text = "servers:\n  filesystem:\n    comand: npx\n    args: []\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:2:3: server `filesystem` is missing `command` (the program to run) or `url` \
             (a remote server)",
            "gateway.yaml:3:5: unknown key `comand` in server `filesystem`: did you mean `command`? \
             (expected one of: command, args, env, env_file, pass_env, cwd, url, headers, transport, prefix, scope, \
             enabled, idle_timeout, call_timeout, max_message, tools, prompts, pin)",
        ]
    );
}

#[test]
fn unknown_keys_at_every_level() {
    assert_eq!(
        error("severs: {}\n"),
        "gateway.yaml:1:1: unknown key `severs` at the top level: did you mean `servers`? \
         (expected one of: servers, idle_timeout, startup_timeout, discovery_wait, call_timeout, max_message, roles, plugins, commands, http, pin, env_file)"
    );
    assert_eq!(
        error("idle_timeout: 3\nIdle_Timeout: 4\n"),
        "gateway.yaml:2:1: unknown key `Idle_Timeout` at the top level: did you mean `idle_timeout`? \
         (expected one of: servers, idle_timeout, startup_timeout, discovery_wait, call_timeout, max_message, roles, plugins, commands, http, pin, env_file)"
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    restart: always\n"),
        "gateway.yaml:4:5: unknown key `restart` in server `a` \
         (expected one of: command, args, env, env_file, pass_env, cwd, url, headers, transport, prefix, scope, \
         enabled, idle_timeout, call_timeout, max_message, tools, prompts, pin)"
    );
}

#[test]
fn flow_style_positions() {
    let text = "servers: {fs: {command: npx, arsg: [a]}}\n";
    assert_eq!(
        error(text),
        "gateway.yaml:1:30: unknown key `arsg` in server `fs`: did you mean `args`? \
         (expected one of: command, args, env, env_file, pass_env, cwd, url, headers, transport, prefix, scope, \
         enabled, idle_timeout, call_timeout, max_message, tools, prompts, pin)"
    );
}

#[test]
fn type_errors_say_what_was_expected() {
    let text = "servers:\n  filesystem:\n    command: npx\n    args: -y\n";
    assert_eq!(
        error(text),
        "gateway.yaml:4:11: `args` in server `filesystem` must be a list of strings, found a string"
    );
    let text = "servers:\n  a:\n    command: x\n    args: [\"--port\", 8080]\n";
    assert_eq!(
        error(text),
        "gateway.yaml:4:22: `args` in server `a` must be a list of strings; item 2 is an integer \
         (quote it to make it a string)"
    );
    let text = "servers:\n  a:\n    command: [x]\n    enabled: \"no\"\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:3:14: `command` in server `a` must be a string (the program to run), found a list",
            "gateway.yaml:4:14: `enabled` in server `a` must be true or false, found a string",
        ]
    );
    assert_eq!(
        error("servers: [a, b]\n"),
        "gateway.yaml:1:10: `servers` must be a mapping from server names to their settings, found a list"
    );
    assert_eq!(
        error("- a\n"),
        "gateway.yaml:1:1: the config must be a mapping with keys such as `servers` and `idle_timeout`, found a list"
    );
    assert_eq!(
        error("servers:\n  a: npx\n"),
        "gateway.yaml:2:6: server `a` must be a mapping with `command` or `url`, found a string"
    );
    assert_eq!(
        error("servers:\n  a:\n"),
        "gateway.yaml:2:3: server `a` has no settings; it needs `command` (a program to run) or `url` \
         (a remote server)"
    );
    assert_eq!(
        error("servers:\n  a:\n    command: \"  \"\n"),
        "gateway.yaml:3:14: `command` in server `a` must not be empty"
    );
}

#[test]
fn duplicate_keys_are_reported_where_they_repeat() {
    let text = "servers:\n  a:\n    command: x\n  a:\n    command: y\n";
    assert_eq!(
        error(text),
        "gateway.yaml:4:3: duplicate key `a` in `servers`"
    );
    let text = "servers:\n  a:\n    command: x\n    command: y\n";
    assert_eq!(
        error(text),
        "gateway.yaml:4:5: duplicate key `command` in server `a`"
    );
}

#[test]
fn role_patterns_must_compile() {
    let text = "roles:\n  admin: null\n  broken: [\"ok_*\", \"a[b\"]\n  odd: \"x_*\"\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:3:20: role `broken`: invalid glob pattern `a[b`: unclosed character class; missing ']'",
            "gateway.yaml:4:8: role `odd` must be null (every tool) or a list of glob patterns, found a string",
        ]
    );
}

#[test]
fn tagged_values_are_named() {
    assert_eq!(
        error("servers:\n  a:\n    command: !shell x\n"),
        "gateway.yaml:3:14: `command` in server `a` must be a string (the program to run), found a value tagged `!shell`"
    );
}

#[test]
fn every_error_is_reported_in_one_pass_in_document_order() {
    let text = r#"servers:
  fs:
    comand: npx
    args: "x"
  gh:
    command: npx
    env:
      TOKEN: "${TOKEN"
idle_timeout: -1
roles:
  r: ["[", 3]
extra: 1
"#;
    let errors = errors(text);
    let places: Vec<&str> = errors
        .iter()
        .map(|e| e.splitn(4, ':').take(3).last().unwrap())
        .collect();
    assert_eq!(errors.len(), 8, "{errors:#?}");
    assert_eq!(
        places,
        ["3", "5", "11", "15", "15", "7", "12", "1"],
        "{errors:#?}"
    );
    let lines: Vec<&str> = errors
        .iter()
        .map(|e| e.split(':').nth(1).unwrap())
        .collect();
    assert_eq!(
        lines,
        ["2", "3", "4", "8", "9", "11", "11", "12"],
        "{errors:#?}"
    );
}

#[test]
fn readme_config_example_parses() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme
        .find("## Config")
        .expect("the README's Config section")..];
    let start = section.find("```yaml\n").unwrap() + 8;
    let example = &section[start..];
    let example = &example[..example.find("```").unwrap()];
    let config = ok(example);
    assert_eq!(config.servers.len(), 4);
    assert_eq!(config.max_message, 64 << 20);
    let tracker = &config.servers["tracker"];
    assert_eq!(tracker.transport, Transport::StreamableHttp);
    assert!(!tracker.enabled, "TRACKER_TOKEN is not set here");
    let browser = &config.servers["browser"];
    assert_eq!(
        (browser.prefix.as_str(), browser.scope),
        ("web", Scope::PerClient)
    );
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
    assert!(config.warnings[0].contains("TRACKER_TOKEN"));
}

#[test]
fn role_exclusions_and_selectors_are_checked() {
    let config =
        ok("roles:\n  r: [\"fs_*\", \"!fs_write_*\", \"@read-only\", \"@!destructive\"]\n");
    assert_eq!(
        config.roles["r"],
        Role::Patterns(vec![
            "fs_*".into(),
            "!fs_write_*".into(),
            "@read-only".into(),
            "@!destructive".into()
        ])
    );
    assert_eq!(
        errors("roles:\n  r: [\"@readonly\", \"!\", \"![\"]\n"),
        [
            "gateway.yaml:2:7: role `r`: unknown selector `@readonly`: did you mean `@read-only`? (known: @read-only, @!destructive)",
            "gateway.yaml:2:20: role `r`: `!` must be followed by a pattern",
            "gateway.yaml:2:25: role `r`: invalid glob pattern `![`: unclosed character class; missing ']'",
        ]
    );
}
