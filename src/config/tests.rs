//! Tests of the config module as its callers see it: text in, `Config` or located errors out.

use std::path::Path;
use std::time::Duration;

use super::*;

const SECRET: &str = "ghp_s3cr3t";

fn env(name: &str) -> Option<String> {
    match name {
        "GITHUB_TOKEN" => Some(SECRET.into()),
        "EMPTY" => Some(String::new()),
        "DATA" => Some("/srv/data".into()),
        _ => None,
    }
}

fn parse_at(text: &str, path: &str) -> Result<Config, ConfigErrors> {
    parse(text, Path::new(path), &env)
}

fn ok(text: &str) -> Config {
    parse_at(text, "gateway.yaml").unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse_at(text, "gateway.yaml") {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// The one error `text` produces.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

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

const README_ROLES: &str = r#"roles:
  admin: null        # all tools
  readonly: ["filesystem_*", "gateway_status"]
  developer: ["github_*", "filesystem_*", "gateway_*"]
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
fn readme_plugins_are_refused_but_an_empty_list_is_fine() {
    let text = "plugins:\n  - module: my_tools.calculator\n";
    assert_eq!(
        error(text),
        "gateway.yaml:1:1: `plugins` (Python in-process tools) are not supported yet; remove the key"
    );
    ok("plugins: []\n");
    ok("plugins:\n");
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
fn durations_in_every_form() {
    let text = r#"idle_timeout: 0.5
startup_timeout: "1m"
servers:
  a: { command: x, idle_timeout: "500ms" }
  b: { command: x, idle_timeout: 0 }
  c: { command: x, idle_timeout: 2h }
"#;
    let config = ok(text);
    assert_eq!(config.idle_timeout, Duration::from_millis(500));
    assert_eq!(config.startup_timeout, Duration::from_secs(60));
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
             (expected one of: command, args, env, cwd, url, headers, transport, prefix, scope, \
             enabled, idle_timeout, call_timeout)",
        ]
    );
}

#[test]
fn unknown_keys_at_every_level() {
    assert_eq!(
        error("severs: {}\n"),
        "gateway.yaml:1:1: unknown key `severs` at the top level: did you mean `servers`? \
         (expected one of: servers, idle_timeout, startup_timeout, call_timeout, roles, plugins, http)"
    );
    assert_eq!(
        error("idle_timeout: 3\nIdle_Timeout: 4\n"),
        "gateway.yaml:2:1: unknown key `Idle_Timeout` at the top level: did you mean `idle_timeout`? \
         (expected one of: servers, idle_timeout, startup_timeout, call_timeout, roles, plugins, http)"
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    restart: always\n"),
        "gateway.yaml:4:5: unknown key `restart` in server `a` \
         (expected one of: command, args, env, cwd, url, headers, transport, prefix, scope, \
         enabled, idle_timeout, call_timeout)"
    );
}

#[test]
fn flow_style_positions() {
    let text = "servers: {fs: {command: npx, arsg: [a]}}\n";
    assert_eq!(
        error(text),
        "gateway.yaml:1:30: unknown key `arsg` in server `fs`: did you mean `args`? \
         (expected one of: command, args, env, cwd, url, headers, transport, prefix, scope, \
         enabled, idle_timeout, call_timeout)"
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
fn server_names_are_checked() {
    let text = "servers:\n  my server:\n    command: x\n  gateway:\n    command: x\n  -x: {command: x}\n  ok_name-2: {command: x}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:2:3: invalid server name `my server`: names must start with a letter or digit \
             and contain only letters, digits, `_` and `-`",
            "gateway.yaml:4:3: invalid server name `gateway`: it is reserved: the gateway's own tools \
             are named `gateway_*`; choose another name",
            "gateway.yaml:6:3: invalid server name `-x`: names must start with a letter or digit \
             and contain only letters, digits, `_` and `-`",
        ]
    );
    assert!(error("servers:\n  gateway_x: {command: x}\n").contains("reserved"));
    assert!(
        error("servers:\n  1: {command: x}\n")
            .contains("keys in `servers` must be strings, found an integer")
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
fn relative_cwd_resolves_against_the_config_dir() {
    let text = "servers:\n  a: {command: x, cwd: ./work}\n  b: {command: x, cwd: ../up}\n  c: {command: x, cwd: /abs}\n";
    let config = parse_at(text, "/etc/mcpgw/gateway.yaml").unwrap();
    let cwd = |name: &str| config.servers[name].cwd.clone().unwrap();
    assert_eq!(cwd("a"), Path::new("/etc/mcpgw/work"));
    assert_eq!(cwd("b"), Path::new("/etc/mcpgw/../up"));
    assert_eq!(cwd("c"), Path::new("/abs"));
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
fn spec_hash_is_stable_and_ignores_what_does_not_start_the_process() {
    let text = "servers:\n  a:\n    command: npx\n    args: [\"-y\", \"pkg\"]\n    env: {K: v}\n    cwd: /srv\n";
    let a = ok(text).servers["a"].clone();
    // A literal, so that any change to the hash (which names schema-cache files) is noticed.
    assert_eq!(a.spec_hash(), 0x69b3_f35f_ef0e_e9b4);

    let mut same = a.clone();
    same.name = "b".into();
    same.enabled = false;
    same.disabled_reason = Some("disabled in config".into());
    same.idle_timeout = Some(Duration::from_secs(1));
    assert_eq!(same.spec_hash(), a.spec_hash());

    let mut moved = a.clone();
    moved.args = vec!["-yp".into(), "kg".into()];
    assert_ne!(moved.spec_hash(), a.spec_hash());
    let mut elsewhere = a.clone();
    elsewhere.cwd = None;
    assert_ne!(elsewhere.spec_hash(), a.spec_hash());
    let mut other_env = a.clone();
    other_env.env.insert("K".into(), "w".into());
    assert_ne!(other_env.spec_hash(), a.spec_hash());
}

#[test]
fn errors_display_one_per_line_and_omit_unknown_positions() {
    let errors = ConfigErrors(vec![
        ConfigError::at(Path::new("g.yaml"), 1, 2, "first"),
        ConfigError::whole_file(Path::new("g.yaml"), "second"),
    ]);
    assert_eq!(errors.to_string(), "g.yaml:1:2: first\ng.yaml: second");
}

#[test]
fn load_reads_the_file_and_reports_an_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, "servers:\n  a: {command: x, cwd: sub}\n").unwrap();
    let config = load(&path).unwrap();
    assert_eq!(config.path, path);
    assert_eq!(config.servers["a"].cwd, Some(dir.path().join("sub")));

    let missing = dir.path().join("nope.yaml");
    let errors = load(&missing).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: cannot read the config file:",
            missing.display()
        )),
        "{shown}"
    );
}

const HTTP_EXAMPLE: &str = r#"roles:
  admin: null
  readonly: ["fs_*"]
http:
  listen: "127.0.0.1:8765"
  tokens:
    - token: "${GITHUB_TOKEN}"
      role: admin
    - token: "${NOPE}"
      role: readonly
    - token: literal-token
  allowed_origins: ["http://localhost:*"]
  allowed_hosts: ["my.host"]
  session_idle_timeout: 10m
"#;

#[test]
fn http_section_as_documented() {
    let config = ok(HTTP_EXAMPLE);
    let http = config.http.as_ref().expect("http section");
    assert_eq!(http.listen, "127.0.0.1:8765".parse().unwrap());
    let tokens: Vec<(&str, Option<&str>)> = http
        .tokens
        .iter()
        .map(|t| (t.token.as_str(), t.role.as_deref()))
        .collect();
    assert_eq!(
        tokens,
        [(SECRET, Some("admin")), ("literal-token", None)],
        "the token whose variable is unset is left out"
    );
    assert_eq!(http.allowed_origins, ["http://localhost:*"]);
    assert_eq!(http.allowed_hosts, ["my.host"]);
    assert_eq!(http.session_idle_timeout, Duration::from_secs(600));
    assert_eq!(
        config.warnings,
        [
            "gateway.yaml:9:15: token 2 in `http.tokens` is disabled: environment variable NOPE is not set"
        ]
    );
    assert!(ok("servers: {}\n").http.is_none());
    assert!(ok("http:\n").http.is_none(), "null means no listener");
}

#[test]
fn readme_http_example_parses() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```yaml\nhttp:\n")
        .expect("the README's http example")
        + 8;
    let example = &readme[start..];
    let example = &example[..example.find("```").unwrap()];
    let config = ok(&format!("{README_ROLES}{example}"));
    let http = config.http.unwrap();
    assert_eq!(http.listen, "127.0.0.1:8765".parse().unwrap());
    assert!(http.tokens.is_empty(), "their variables are not set here");
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    assert_eq!(http.session_idle_timeout, Duration::from_secs(30 * 60));
}

#[test]
fn http_defaults_and_listen_forms() {
    let http = ok("http:\n  listen: localhost:9000\n").http.unwrap();
    assert_eq!(http.listen, "127.0.0.1:9000".parse().unwrap());
    assert!(http.tokens.is_empty() && http.allowed_origins.is_empty());
    assert!(http.allowed_hosts.is_empty());
    assert_eq!(http.session_idle_timeout, Duration::from_secs(30 * 60));
    let v6 = ok("http: {listen: \"[::1]:8765\", session_idle_timeout: 0}\n")
        .http
        .unwrap();
    assert_eq!(v6.listen, "[::1]:8765".parse().unwrap());
    assert_eq!(v6.session_idle_timeout, Duration::ZERO);
}

#[test]
fn http_listen_errors() {
    assert_eq!(
        error("http:\n  tokens: []\n"),
        "gateway.yaml:1:1: `http` is missing `listen` (the address to listen on, such as \"127.0.0.1:8765\")"
    );
    assert_eq!(
        error("http:\n  listen: my.host:80\n"),
        "gateway.yaml:2:11: `listen` in `http` must be an IP address and port such as \
         \"127.0.0.1:8765\" or \"[::1]:8765\"; `my.host:80` is not one"
    );
    assert_eq!(
        error("http:\n  listen: 8765\n"),
        "gateway.yaml:2:11: `listen` in `http` must be a string: an IP address and port such as \
         \"127.0.0.1:8765\" or \"[::1]:8765\", found an integer (quote it to make it a string)"
    );
    assert_eq!(
        error("http: [1]\n"),
        "gateway.yaml:1:7: `http` must be a mapping with at least `listen`, found a list"
    );
}

#[test]
fn http_non_loopback_needs_a_usable_token() {
    assert_eq!(
        error("http:\n  listen: 0.0.0.0:8765\n"),
        "gateway.yaml:2:11: listening on 0.0.0.0:8765 requires tokens: add `tokens` to `http` \
         (clients from other machines must authenticate), or listen on a loopback address such as \
         127.0.0.1"
    );
    let unset = "http:\n  listen: \"[::]:8765\"\n  tokens:\n    - token: \"${NOPE}\"\n";
    let message = error(unset);
    assert!(
        message.starts_with("gateway.yaml:2:11: listening on [::]:8765 requires tokens"),
        "{message}"
    );
    assert!(
        message.ends_with("; no token is usable, variables not set: NOPE (gateway.yaml:4:15)"),
        "{message}"
    );
    let with_token =
        ok("http:\n  listen: 0.0.0.0:8765\n  tokens: [{token: \"${GITHUB_TOKEN}\"}]\n");
    assert_eq!(with_token.http.unwrap().tokens.len(), 1);
    assert!(
        error("http:\n  listen: 0.0.0.0:1\n  tokens: [{token: \"${EMPTY}\"}]\n")
            .contains("requires tokens")
    );
}

#[test]
fn http_token_errors() {
    let text = r#"roles:
  admin: null
http:
  listen: 127.0.0.1:1
  tokens:
    - token: a
      role: admn
    - tokn: b
    - token: ""
    - "c"
    - token: "${GITHUB_TOKEN}"
    - token: "${GITHUB_TOKEN}"
      role: admin
    - token: "${1X}"
"#;
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:7:13: `role` in `http.tokens` item 1: unknown role `admn`; known roles: admin",
            "gateway.yaml:8:7: unknown key `tokn` in `http.tokens` item 2: did you mean `token`? \
             (expected one of: token, role)",
            "gateway.yaml:8:7: token 2 in `http.tokens` is missing `token`",
            "gateway.yaml:9:14: `token` in `http.tokens` item 3 must not be empty",
            "gateway.yaml:10:7: `tokens` in `http` must be a list of `{token: …, role: …}` mappings; \
             item 4 is a string",
            "gateway.yaml:12:14: token 6 in `http.tokens` is the same as token 5; a token maps to one role",
            "gateway.yaml:14:15: `token` in `http.tokens` item 7: invalid variable reference `${1X}`: \
             expected `${NAME}` or `${NAME:-default}`",
        ]
    );
    assert_eq!(
        error("http:\n  listen: 127.0.0.1:1\n  tokens: [{token: t, role: admin}]\n"),
        "gateway.yaml:3:29: `role` in `http.tokens` item 1: unknown role `admin`: the config \
         defines no `roles`"
    );
}

#[test]
fn http_unknown_keys_and_lists() {
    assert_eq!(
        error("http:\n  listen: 127.0.0.1:1\n  allowed_origin: []\n"),
        "gateway.yaml:3:3: unknown key `allowed_origin` in `http`: did you mean `allowed_origins`? \
         (expected one of: listen, tokens, allowed_origins, allowed_hosts, session_idle_timeout)"
    );
    let text = "http:\n  listen: 127.0.0.1:1\n  allowed_origins: [\"localhost\", \"https://a.example:*\", \"null\", \"http://x/p\"]\n  allowed_hosts: [\"ok.host:8\", \"http://bad\", 3]\n  session_idle_timeout: soon\n";
    let errors = errors(text);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert!(errors[0].starts_with(
        "gateway.yaml:3:21: `allowed_origins` in `http`: `localhost` is not an origin"
    ));
    assert!(errors[1].starts_with(
        "gateway.yaml:3:65: `allowed_origins` in `http`: `http://x/p` is not an origin"
    ));
    assert!(
        errors[2].starts_with(
            "gateway.yaml:4:32: `allowed_hosts` in `http`: `http://bad` is not a host"
        )
    );
    assert_eq!(
        errors[3],
        "gateway.yaml:4:46: `allowed_hosts` in `http` must be a list of strings; item 3 is an integer"
    );
    assert!(
        errors[4]
            .starts_with("gateway.yaml:5:25: `session_idle_timeout` in `http` must be a duration")
    );
}

#[test]
fn http_tokens_stay_out_of_debug_errors_and_warnings() {
    let config = ok(HTTP_EXAMPLE);
    let debug = format!("{config:?}");
    assert!(
        !debug.contains(SECRET) && !debug.contains("literal-token"),
        "{debug}"
    );
    assert!(debug.contains("token: ***"), "{debug}");
    assert!(!config.warnings.concat().contains(SECRET));
    let dup = "http:\n  listen: 0.0.0.0:1\n  tokens: [{token: \"${GITHUB_TOKEN}\"}, {token: \"${GITHUB_TOKEN}\"}, {token: [\"${GITHUB_TOKEN}\"]}]\n";
    let errors = parse_at(dup, "gateway.yaml").unwrap_err();
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(!errors.to_string().contains(SECRET), "{errors}");
}

const REMOTE_EXAMPLE: &str = r#"servers:
  github:
    url: "https://api.example.com/mcp"
    headers: { Authorization: "Bearer ${GITHUB_TOKEN}", X-Team: core }
  legacy:
    url: http://127.0.0.1:9000/sse
    transport: sse
    prefix: old
  fs:
    command: npx
    prefix: files
    scope: per-client
  plain:
    command: x
    transport: stdio
    prefix: ""
"#;

#[test]
fn remote_servers_prefix_and_scope_as_documented() {
    let config = ok(REMOTE_EXAMPLE);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let github = &config.servers["github"];
    assert_eq!(github.transport, Transport::StreamableHttp);
    assert_eq!(github.url.as_deref(), Some("https://api.example.com/mcp"));
    assert_eq!(github.headers["Authorization"], format!("Bearer {SECRET}"));
    assert_eq!(github.headers["X-Team"], "core");
    assert_eq!(github.command, "");
    assert!(github.args.is_empty() && github.env.is_empty() && github.cwd.is_none());
    assert_eq!(
        (github.prefix.as_str(), github.scope),
        ("github", Scope::Shared)
    );
    assert!(github.enabled);

    let legacy = &config.servers["legacy"];
    assert_eq!(legacy.transport, Transport::Sse);
    assert_eq!(legacy.url.as_deref(), Some("http://127.0.0.1:9000/sse"));
    assert!(legacy.headers.is_empty());
    assert_eq!(legacy.prefix, "old");

    let fs = &config.servers["fs"];
    assert_eq!((fs.transport, fs.url.as_deref()), (Transport::Stdio, None));
    assert_eq!((fs.prefix.as_str(), fs.scope), ("files", Scope::PerClient));
    let plain = &config.servers["plain"];
    assert_eq!(
        (plain.transport, plain.prefix.as_str()),
        (Transport::Stdio, "")
    );

    assert_eq!(Transport::StreamableHttp.as_str(), "streamable-http");
    assert_eq!(Scope::PerClient.as_str(), "per-client");
}

#[test]
fn readme_config_example_parses() {
    let readme = include_str!("../../README.md");
    let section = &readme[readme
        .find("## Config")
        .expect("the README's Config section")..];
    let start = section.find("```yaml\n").unwrap() + 8;
    let example = &section[start..];
    let example = &example[..example.find("```").unwrap()];
    let config = ok(example);
    assert_eq!(config.servers.len(), 4);
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
fn url_must_be_an_absolute_http_url() {
    let text = r#"servers:
  a: {url: "api.example.com/mcp"}
  b: {url: "ftp://h/x"}
  c: {url: "https://:8080/mcp"}
  d: {url: "https://h:99999/"}
  e: {url: "${DATA}"}
  f: {url: 8080}
  g: {url: ""}
  h: {url: "https://h/${1X}"}
"#;
    let absolute =
        "must be an absolute `http://` or `https://` URL, such as \"https://api.example.com/mcp\"";
    assert_eq!(
        errors(text),
        [
            format!("gateway.yaml:2:12: `url` in server `a` {absolute}"),
            format!("gateway.yaml:3:12: `url` in server `b` {absolute}"),
            "gateway.yaml:4:12: `url` in server `c` has no host".to_owned(),
            "gateway.yaml:5:12: `url` in server `d` has an invalid port".to_owned(),
            format!("gateway.yaml:6:12: `url` in server `e` {absolute} (after `${{…}}` expansion)"),
            "gateway.yaml:7:12: `url` in server `f` must be a string (an `http://` or `https://` \
             URL), found an integer (quote it to make it a string)"
                .to_owned(),
            "gateway.yaml:8:12: `url` in server `g` must not be empty".to_owned(),
            "gateway.yaml:9:23: `url` in server `h`: invalid variable reference `${1X}`: expected \
             `${NAME}` or `${NAME:-default}`"
                .to_owned(),
        ]
    );
}

#[test]
fn a_missing_variable_in_url_or_headers_disables_only_its_server() {
    let text = r#"servers:
  remote:
    url: "https://${HOST}/mcp"
    headers:
      Authorization: "Bearer ${API_KEY}"
  local: {command: x}
"#;
    let config = ok(text);
    assert!(config.servers["local"].enabled);
    let remote = &config.servers["remote"];
    assert!(!remote.enabled);
    assert_eq!(
        remote.disabled_reason.as_deref(),
        Some("missing environment variables HOST (gateway.yaml:3:19), API_KEY (gateway.yaml:5:30)")
    );
    assert_eq!(
        config.warnings,
        [
            "gateway.yaml:3:19: server `remote` is disabled: environment variable HOST is not set",
            "gateway.yaml:5:30: server `remote` is disabled: environment variable API_KEY is not set",
        ]
    );
    // A URL with a hole is not checked as a URL: the server is disabled for a clearer reason.
    assert_eq!(remote.transport, Transport::StreamableHttp);
    assert!(remote.url.is_some());
}

#[test]
fn header_names_and_values_are_checked() {
    let text = r#"servers:
  r:
    url: https://h/mcp
    headers:
      Bad Header: x
      X-Key: a
      x-key: b
      Accept: text/plain
      X-Port: 8080
      X-None:
      X-Ok: ""
      X-Tab: "a\tb"
"#;
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:5:7: invalid header name `Bad Header` in `headers` in server `r`: header \
             names are not empty and contain only letters, digits and ! # $ % & ' * + - . ^ _ ` | ~",
            "gateway.yaml:7:7: duplicate header `x-key` in `headers` in server `r`: `X-Key` is the \
             same header (header names ignore case)",
            "gateway.yaml:8:7: header `Accept` in `headers` in server `r` cannot be set: the HTTP \
             transport manages it",
            "gateway.yaml:9:15: `headers.X-Port` in server `r` must be a string, found an integer \
             (quote it to make it a string)",
            "gateway.yaml:10:7: `headers.X-None` in server `r` has no value; write \"\" for an \
             empty value",
        ]
    );
    let fine =
        "servers:\n  r:\n    url: https://h/mcp\n    headers: {X-Ok: \"\", X-Tab: \"a\\tb\"}\n";
    let headers = &ok(fine).servers["r"].headers;
    assert_eq!(
        (headers["X-Ok"].as_str(), headers["X-Tab"].as_str()),
        ("", "a\tb")
    );
    assert_eq!(
        error("servers:\n  r: {url: \"https://h/\", headers: [A]}\n"),
        "gateway.yaml:2:35: `headers` in server `r` must be a mapping from header names to \
         strings, found a list"
    );
}

#[test]
fn a_header_value_cannot_hold_a_line_break() {
    let env = |name: &str| (name == "MULTILINE").then(|| format!("{SECRET}\nX-Injected: 1"));
    let text = "servers:\n  r:\n    url: https://h/mcp\n    headers: {X-A: \"${MULTILINE}\"}\n";
    let errors = parse(text, Path::new("gateway.yaml"), &env).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "gateway.yaml:4:20: `headers.X-A` in server `r` contains a control character such as a \
         line break, which a header value cannot hold"
    );
}

#[test]
fn transport_must_agree_with_command_or_url() {
    let text = r#"servers:
  a: {url: "https://h/", transport: stdio}
  b: {command: x, transport: sse}
  c: {command: x, transport: streamable-http}
  d: {url: "https://h/", transport: streamable_http}
  e: {url: "https://h/", transport: http}
  f: {url: "https://h/", transport: SSE}
  g: {url: "https://h/", transport: 1}
"#;
    let expected = "(expected one of: stdio, streamable-http, sse)";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:2:37: `transport: stdio` in server `a` is for servers with `command`; \
             with `url` use `streamable-http` (the default) or `sse`"
                .to_owned(),
            "gateway.yaml:3:30: `transport: sse` in server `b` needs `url` (a remote server); a \
             server with `command` speaks `stdio`"
                .to_owned(),
            "gateway.yaml:4:30: `transport: streamable-http` in server `c` needs `url` (a remote \
             server); a server with `command` speaks `stdio`"
                .to_owned(),
            format!(
                "gateway.yaml:5:37: unknown transport `streamable_http` in server `d`: did you \
                 mean `streamable-http`? {expected}"
            ),
            format!(
                "gateway.yaml:6:37: unknown transport `http` in server `e`: did you mean \
                 `streamable-http`? {expected}"
            ),
            format!(
                "gateway.yaml:7:37: unknown transport `SSE` in server `f`: did you mean `sse`? \
                 {expected}"
            ),
            "gateway.yaml:8:37: `transport` in server `g` must be one of: stdio, streamable-http, \
             sse, found an integer"
                .to_owned(),
        ]
    );
    assert_eq!(
        error("servers:\n  a:\n    url: https://h/\n    type: sse\n"),
        "gateway.yaml:4:5: unknown key `type` in server `a`: did you mean `transport`? \
         (expected one of: command, args, env, cwd, url, headers, transport, prefix, scope, \
         enabled, idle_timeout, call_timeout)"
    );
}

#[test]
fn prefixes_are_checked_and_unique() {
    let text = r#"servers:
  files: {command: x}
  fs: {command: x, prefix: files}
  a: {command: x, prefix: "a b"}
  b: {command: x, prefix: gateway}
  c: {command: x, prefix: gateway_x}
  d: {command: x, prefix: ""}
  e: {command: x, prefix: ""}
  f: {command: x, prefix: 7}
  g: {command: x, prefix: gateway-ok}
"#;
    let invalid = "it must be \"\" (none) or start with a letter or digit and contain only \
                   letters, digits, `_` and `-`";
    let reserved =
        "it is reserved: the gateway's own tools are named `gateway_*`; choose another prefix";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:3:28: server `fs` uses the prefix `files`, which server `files` already \
             uses (gateway.yaml:2:3); set a different `prefix` on one of them"
                .to_owned(),
            format!("gateway.yaml:4:27: invalid prefix `a b` in server `a`: {invalid}"),
            format!("gateway.yaml:5:27: invalid prefix `gateway` in server `b`: {reserved}"),
            format!("gateway.yaml:6:27: invalid prefix `gateway_x` in server `c`: {reserved}"),
            "gateway.yaml:8:27: server `e` is unprefixed (`prefix: \"\"`), and so is server `d` \
             (gateway.yaml:7:27): at most one server may be, or their tools would compete for \
             every name"
                .to_owned(),
            "gateway.yaml:9:27: `prefix` in server `f` must be a string (what exposed names start \
             with, or \"\" for none), found an integer (quote it to make it a string)"
                .to_owned(),
        ]
    );
    // The later server is the one in error, whether its prefix is explicit or its name.
    assert_eq!(
        error("servers:\n  fs: {command: x, prefix: files}\n  files: {command: x}\n"),
        "gateway.yaml:3:3: server `files` uses the prefix `files`, which server `fs` already uses \
         (gateway.yaml:2:28); set a different `prefix` on one of them"
    );
    // A disabled server keeps its prefix: enabling it must not make the config invalid.
    assert!(
        error("servers:\n  a: {command: x, enabled: false}\n  b: {command: x, prefix: a}\n")
            .starts_with("gateway.yaml:3:27: server `b` uses the prefix `a`")
    );
    let config = ok("servers:\n  a: {command: x, prefix: b}\n  b: {command: x, prefix: a}\n");
    assert_eq!(config.servers["a"].prefix, "b");
    assert_eq!(
        ok("servers:\n  a:\n    command: x\n    prefix:\n").servers["a"].prefix,
        "a"
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
fn remote_secrets_stay_out_of_debug_errors_and_warnings() {
    let text = r#"servers:
  gh:
    url: "https://user:${GITHUB_TOKEN}@api.example.com/mcp?key=${GITHUB_TOKEN}"
    headers: {Authorization: "Bearer ${GITHUB_TOKEN}", X-Other: "${GITHUB_TOKEN}${NOPE}"}
"#;
    let config = ok(text);
    let gh = &config.servers["gh"];
    let debug = format!("{config:?}");
    assert!(!debug.contains(SECRET), "{debug}");
    assert!(debug.contains("\"Authorization\": ***"), "{debug}");
    assert!(
        debug.contains("url: Some(\"https://api.example.com/***\")"),
        "{debug}"
    );
    assert_eq!(
        gh.redacted_url().as_deref(),
        Some("https://api.example.com/***")
    );
    assert!(!config.warnings.concat().contains(SECRET));
    assert!(!format!("{:?}", gh.disabled_reason).contains(SECRET));

    let broken = r#"servers:
  a: {url: "${GITHUB_TOKEN}"}
  b: {url: "https://h/${GITHUB_TOKEN} x"}
  c: {url: "https://h/", headers: {"${GITHUB_TOKEN}": v, X-A: ["${GITHUB_TOKEN}"]}}
"#;
    let errors = parse_at(broken, "gateway.yaml").unwrap_err();
    assert_eq!(errors.0.len(), 4, "{errors}");
    assert!(!errors.to_string().contains(SECRET), "{errors}");
}

#[test]
fn redacted_url_keeps_only_the_origin() {
    let mut server = ok("servers:\n  a: {command: x}\n").servers["a"].clone();
    assert_eq!(server.redacted_url(), None);
    for (url, shown) in [
        ("https://u:pw@h:8443/x?k=v", "https://h:8443/***"),
        ("http://h", "http://h"),
        ("http://h?k=v", "http://h/***"),
        ("http://[::1]:9/p", "http://[::1]:9/***"),
    ] {
        server.url = Some(url.into());
        assert_eq!(server.redacted_url().as_deref(), Some(shown), "{url}");
    }
}

#[test]
fn spec_hash_covers_the_connection_but_not_prefix_or_scope() {
    // A stdio server hashes as before remote servers existed (the literal in
    // `spec_hash_is_stable_and_ignores_what_does_not_start_the_process`), whatever its prefix
    // and scope.
    let local = ok("servers:\n  a:\n    command: npx\n    args: [\"-y\", \"pkg\"]\n    env: {K: v}\n    cwd: /srv\n    prefix: p\n    scope: per-client\n")
        .servers["a"]
        .clone();
    assert_eq!(local.spec_hash(), 0x69b3_f35f_ef0e_e9b4);

    let text = "servers:\n  r:\n    url: https://api.example.com/mcp\n    headers: {Authorization: \"Bearer t\"}\n";
    let remote = ok(text).servers["r"].clone();
    // A literal, so that any change to the hash (which names schema-cache files) is noticed.
    assert_eq!(remote.spec_hash(), REMOTE_SPEC_HASH);

    let mut same = remote.clone();
    same.name = "other".into();
    same.prefix = String::new();
    same.scope = Scope::PerClient;
    same.enabled = false;
    same.idle_timeout = Some(Duration::from_secs(1));
    assert_eq!(same.spec_hash(), remote.spec_hash());

    let changed = |change: &dyn Fn(&mut ServerConfig)| {
        let mut other = remote.clone();
        change(&mut other);
        other.spec_hash()
    };
    let hashes = [
        remote.spec_hash(),
        changed(&|s| s.url = Some("https://api.example.com/mcp2".into())),
        changed(&|s| s.transport = Transport::Sse),
        changed(&|s| s.headers.clear()),
        changed(&|s| {
            s.headers.insert("Authorization".into(), "Bearer u".into());
        }),
        changed(&|s| {
            let value = s.headers.remove("Authorization").unwrap();
            s.headers.insert("X-Authorization".into(), value);
        }),
        local.spec_hash(),
    ];
    let distinct: std::collections::HashSet<u64> = hashes.iter().copied().collect();
    assert_eq!(distinct.len(), hashes.len(), "{hashes:x?}");
}

const REMOTE_SPEC_HASH: u64 = 0xb793_4ba4_ed15_8946;

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
