//! Tests of the config module as its callers see it: text in, `Config` or located errors out.

use std::path::Path;
use std::time::Duration;

use super::discover::discover_in;
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
            "gateway.yaml:2:3: server `filesystem` is missing `command` (the program to run)",
            "gateway.yaml:3:5: unknown key `comand` in server `filesystem`: did you mean `command`? \
             (expected one of: command, args, env, cwd, enabled, idle_timeout)",
        ]
    );
}

#[test]
fn unknown_keys_at_every_level() {
    assert_eq!(
        error("severs: {}\n"),
        "gateway.yaml:1:1: unknown key `severs` at the top level: did you mean `servers`? \
         (expected one of: servers, idle_timeout, startup_timeout, roles, plugins, http)"
    );
    assert_eq!(
        error("idle_timeout: 3\nIdle_Timeout: 4\n"),
        "gateway.yaml:2:1: unknown key `Idle_Timeout` at the top level: did you mean `idle_timeout`? \
         (expected one of: servers, idle_timeout, startup_timeout, roles, plugins, http)"
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    transport: sse\n"),
        "gateway.yaml:4:5: unknown key `transport` in server `a` \
         (expected one of: command, args, env, cwd, enabled, idle_timeout)"
    );
}

#[test]
fn flow_style_positions() {
    let text = "servers: {fs: {command: npx, arsg: [a]}}\n";
    assert_eq!(
        error(text),
        "gateway.yaml:1:30: unknown key `arsg` in server `fs`: did you mean `args`? \
         (expected one of: command, args, env, cwd, enabled, idle_timeout)"
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
        "gateway.yaml:2:6: server `a` must be a mapping with at least `command`, found a string"
    );
    assert_eq!(
        error("servers:\n  a:\n"),
        "gateway.yaml:2:3: server `a` has no settings; it needs at least `command`"
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
            "/etc/mcpgw/gateway.yaml:3:14: `command` in server `a` contains `${`, which is only expanded in `args`, `env` and `cwd`"
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

#[test]
fn discovery_order() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("project");
    let home = dir.path().join("config-home");
    std::fs::create_dir_all(home.join("mcpgw")).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let write = |path: &Path| std::fs::write(path, "servers: {}\n").unwrap();
    let found = || discover_in(None, &cwd, Some(&home));

    let error = found().unwrap_err().to_string();
    assert!(
        error.starts_with("no config file found; looked for "),
        "{error}"
    );
    for place in [
        cwd.join("gateway.yaml"),
        cwd.join("mcp-gateway.yaml"),
        home.join("mcpgw/gateway.yaml"),
    ] {
        assert!(error.contains(&place.display().to_string()), "{error}");
    }

    write(&home.join("mcpgw/gateway.yaml"));
    assert_eq!(found().unwrap(), home.join("mcpgw/gateway.yaml"));
    write(&cwd.join("mcp-gateway.yaml"));
    assert_eq!(found().unwrap(), cwd.join("mcp-gateway.yaml"));
    write(&cwd.join("gateway.yaml"));
    assert_eq!(found().unwrap(), cwd.join("gateway.yaml"));

    let explicit = dir.path().join("elsewhere.yaml");
    let error = discover_in(Some(&explicit), &cwd, Some(&home)).unwrap_err();
    assert_eq!(error.file, explicit);
    assert_eq!(
        error.to_string(),
        format!("{}: config file not found", explicit.display())
    );
    write(&explicit);
    assert_eq!(
        discover_in(Some(&explicit), &cwd, Some(&home)).unwrap(),
        explicit
    );

    let no_home = discover_in(None, &dir.path().join("empty"), None).unwrap_err();
    assert!(
        no_home
            .to_string()
            .contains("neither XDG_CONFIG_HOME nor HOME is set")
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
