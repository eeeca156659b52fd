//! The `http` section: `listen`, tokens and their roles, allowed origins and hosts, session
//! idle timeout, the bounds on connections and requests.

use std::time::Duration;

use super::{README_ROLES, SECRET, error, errors, ok, parse_at};

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
    let readme = include_str!("../../../README.md");
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
    // The two tokens' unset variables, and so no tokens: other local users can connect.
    assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
    assert!(
        config.warnings[2].contains("any local user can connect to 127.0.0.1:8765"),
        "{:?}",
        config.warnings
    );
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
         (expected one of: listen, tokens, allowed_origins, allowed_hosts, session_idle_timeout, max_connections, header_timeout, body_timeout, write_timeout, max_sessions, max_sessions_per_role)"
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

#[test]
fn a_session_idle_timeout_past_a_year_is_an_error() {
    let text = "http:\n  listen: \"127.0.0.1:8765\"\n  session_idle_timeout: 500000000000s\n";
    let message = error(text);
    assert!(message.contains("gateway.yaml:3:25"), "{message}");
    assert!(message.contains("at most 365d"), "{message}");
    let ok = ok("http:\n  listen: \"127.0.0.1:8765\"\n  session_idle_timeout: 0\n");
    assert_eq!(ok.http.unwrap().session_idle_timeout, Duration::ZERO);
}

#[test]
fn session_caps_default_and_are_checked() {
    let http = ok("http:\n  listen: localhost:9000\n").http.unwrap();
    assert_eq!((http.max_sessions, http.max_sessions_per_role), (1024, 256));
    let small = ok("http: {listen: localhost:9000, max_sessions: 10}\n");
    assert_eq!(
        small.http.unwrap().max_sessions_per_role,
        10,
        "never above the total"
    );
    let message = error("http: {listen: localhost:9000, max_sessions_per_role: 0}\n");
    assert!(
        message.contains("`max_sessions_per_role` in `http`"),
        "{message}"
    );
}

#[test]
fn request_timeouts_are_more_than_zero_and_at_most_an_hour() {
    let http = ok("http:\n  listen: \"127.0.0.1:8765\"\n").http.unwrap();
    assert_eq!(http.header_timeout, Duration::from_secs(10));
    assert_eq!(http.body_timeout, Duration::from_secs(30));
    assert_eq!(http.write_timeout, Duration::from_secs(60));
    let text = "http:\n  listen: \"127.0.0.1:8765\"\n  header_timeout: 2s\n  body_timeout: 45s\n";
    let http = ok(text).http.unwrap();
    assert_eq!(http.header_timeout, Duration::from_secs(2));
    assert_eq!(http.body_timeout, Duration::from_secs(45));
    for (key, value) in [
        ("body_timeout", "0"),
        ("body_timeout", "2h"),
        ("header_timeout", "0s"),
        ("header_timeout", "61m"),
        ("write_timeout", "0"),
    ] {
        let text = format!("http:\n  listen: \"127.0.0.1:8765\"\n  {key}: {value}\n");
        let column = key.len() + 5;
        assert_eq!(
            error(&text),
            format!(
                "gateway.yaml:3:{column}: `{key}` in `http` must be more than 0 and at most 1h"
            ),
            "{key}: {value}"
        );
    }
    let message = error("http:\n  listen: \"127.0.0.1:8765\"\n  body_timeout: slow\n");
    assert!(
        message.starts_with("gateway.yaml:3:17: `body_timeout` in `http` must be a duration"),
        "{message}"
    );
}
