//! Remote servers: `url`, `headers` and `transport`, their variables and secrets, and
//! `redacted_url`.

use std::path::Path;

use super::{SECRET, error, errors, ok, parse_at};
use crate::config::{Scope, Transport, parse, redact_urls};

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
         (expected one of: command, args, env, env_file, pass_env, cwd, url, headers, transport, prefix, scope, \
         enabled, idle_timeout, call_timeout, max_message, tools, prompts, pin)"
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
        // A password with `#` or `?` in it, unescaped, is user info all the same.
        (
            "https://user:pa#ss@example.com/x",
            "https://example.com/***",
        ),
        ("https://user:p?w@example.com", "https://example.com"),
    ] {
        server.url = Some(url.into());
        assert_eq!(server.redacted_url().as_deref(), Some(shown), "{url}");
    }
}

#[test]
fn urls_in_any_message_are_cut_to_their_origin() {
    let message = "error sending request for url (http://user:pw@Host:8080/a/../mcp?key=SECRET): \
                   connection refused; retrying https://h/x#frag, then \"HTTP://H2/p?k=S2\"";
    let redacted = redact_urls(message);
    for secret in ["pw", "SECRET", "mcp", "frag", "S2", "/a/"] {
        assert!(!redacted.contains(secret), "{secret}: {redacted}");
    }
    assert!(redacted.contains("(http://Host:8080/***)"), "{redacted}");
    assert!(redacted.contains("https://h/***"), "{redacted}");
    assert_eq!(redact_urls("no url here"), "no url here");
}
