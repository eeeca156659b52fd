//! Checks what a remote server (`url`) takes: the URL, its `headers` and its `transport`, and
//! that `transport` agrees with whether the server has `command` or `url`.
//!
//! The URL and header values may come from the environment and may hold secrets (a key in a
//! query, a bearer token): messages say what is wrong with them, never what they are.

use std::collections::BTreeMap;

use super::Transport;
use super::checker::{Checker, Entry, optional, quote_hint};
use super::server::{Kind, ServerCheck};
use super::tree::Node;

const TRANSPORTS: &[(&str, Transport)] = &[
    ("stdio", Transport::Stdio),
    ("streamable-http", Transport::StreamableHttp),
    ("sse", Transport::Sse),
];

/// Headers the MCP transports set themselves (rmcp refuses some of them as custom headers), or
/// that frame the body or the connection, which the HTTP client owns.
const MANAGED_HEADERS: &[&str] = &[
    "accept",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

impl Checker<'_> {
    /// `transport`: `stdio` with `command`, `streamable-http` (the default) or `sse` with `url`.
    pub(super) fn transport(
        &mut self,
        fields: &[Entry<'_>],
        kind: Kind,
        check: &ServerCheck<'_>,
    ) -> Transport {
        let entry = optional(fields, "transport");
        let chosen = entry.and_then(|e| self.choice(e, "transport", &check.context, TRANSPORTS));
        let (Some(entry), Some(chosen)) = (entry, chosen) else {
            return default_transport(kind);
        };
        let (context, spelled) = (&check.context, chosen.as_str());
        let message = match (kind, chosen) {
            (Kind::Remote, Transport::Stdio) => format!(
                "`transport: stdio` {context} is for servers with `command`; with `url` use \
                 `streamable-http` (the default) or `sse`"
            ),
            (Kind::Local, Transport::StreamableHttp | Transport::Sse) => format!(
                "`transport: {spelled}` {context} needs `url` (a remote server); a server with \
                 `command` speaks `stdio`"
            ),
            _ => return chosen,
        };
        self.error(&entry.value_at, message);
        default_transport(kind)
    }

    /// `url`, after `${VAR}` expansion: an absolute `http://` or `https://` URL. With a variable
    /// missing the server is disabled and what is left is not checked.
    pub(super) fn url(&mut self, entry: &Entry<'_>, check: &mut ServerCheck<'_>) -> Option<String> {
        let subject = format!("`url` {}", check.context);
        let Node::Str(raw) = entry.value else {
            self.mismatch(entry, &subject, "a string (an `http://` or `https://` URL)");
            return None;
        };
        let url = self.expand_checked(raw, &entry.value_at, &subject, check)?;
        if !url.complete {
            return Some(url.value);
        }
        match url_problem(&url.value) {
            None => Some(url.value),
            Some(problem) => {
                let expanded = if raw.contains("${") {
                    " (after `${…}` expansion)"
                } else {
                    ""
                };
                self.error(&entry.value_at, format!("{subject} {problem}{expanded}"));
                None
            }
        }
    }

    /// `headers`: names that are HTTP tokens, unique ignoring case and not managed by the
    /// transport; values are strings, `${VAR}`-expanded, without control characters.
    pub(super) fn headers(
        &mut self,
        entry: &Entry<'_>,
        check: &mut ServerCheck<'_>,
    ) -> BTreeMap<String, String> {
        let mut headers = BTreeMap::new();
        let Node::Map(map) = entry.value else {
            let subject = format!("`headers` {}", check.context);
            self.mismatch(entry, &subject, "a mapping from header names to strings");
            return headers;
        };
        let context = format!("in `headers` {}", check.context);
        let mut names: Vec<&str> = Vec::new();
        for header in self.entries(map, &entry.value_at, &context) {
            let name = header.key;
            let valid = self.header_name(&header, &names, &context);
            names.push(name);
            let subject = format!("`headers.{name}` {}", check.context);
            match header.value {
                Node::Str(raw) => {
                    let Some(value) = self.expand_checked(raw, &header.value_at, &subject, check)
                    else {
                        continue;
                    };
                    // NUL is reported by the expansion already.
                    let control = |c: char| c != '\t' && c != '\0' && c.is_ascii_control();
                    if value.complete && value.value.contains(control) {
                        let message = format!(
                            "{subject} contains a control character such as a line break, which \
                             a header value cannot hold"
                        );
                        self.error(&header.value_at, message);
                    } else if valid {
                        headers.insert(name.to_owned(), value.value);
                    }
                }
                Node::Null => {
                    let message = format!("{subject} has no value; write \"\" for an empty value");
                    self.error(&header.key_at, message);
                }
                other => {
                    let (found, hint) = (other.describe(), quote_hint(other));
                    let message = format!("{subject} must be a string, found {found}{hint}");
                    self.error(&header.value_at, message);
                }
            }
        }
        headers
    }

    /// Whether a header name may be configured; `earlier` are the names before it.
    fn header_name(&mut self, header: &Entry<'_>, earlier: &[&str], context: &str) -> bool {
        let name = header.key;
        let same = earlier.iter().find(|e| e.eq_ignore_ascii_case(name));
        let message = if name.is_empty() || !name.bytes().all(is_token_byte) {
            format!(
                "invalid header name `{name}` {context}: header names are not empty and contain \
                 only letters, digits and ! # $ % & ' * + - . ^ _ ` | ~"
            )
        } else if let Some(first) = same {
            format!(
                "duplicate header `{name}` {context}: `{first}` is the same header (header names \
                 ignore case)"
            )
        } else if MANAGED_HEADERS.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            format!("header `{name}` {context} cannot be set: the HTTP transport manages it")
        } else {
            return true;
        };
        self.error(&header.key_at, message);
        false
    }
}

fn default_transport(kind: Kind) -> Transport {
    match kind {
        Kind::Remote => Transport::StreamableHttp,
        Kind::Local | Kind::Unknown => Transport::Stdio,
    }
}

/// What is wrong with a URL, completing "`url` in server `x` …"; never quotes the URL.
fn url_problem(url: &str) -> Option<&'static str> {
    const ABSOLUTE: &str =
        "must be an absolute `http://` or `https://` URL, such as \"https://api.example.com/mcp\"";
    if url.trim().is_empty() {
        return Some("must not be empty");
    }
    if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces or control characters");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Some(ABSOLUTE);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Some(ABSOLUTE);
    }
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, after)) => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Some("has an invalid host"),
            },
            None => return Some("has an invalid host"),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Some("has no host");
    }
    // An empty port (`host:`) means the default one, as in the URL standard.
    let port_ok =
        |port: &str| port.is_empty() || port.parse::<u16>().is_ok_and(|_| !port.starts_with('+'));
    if port.is_some_and(|port| !port_ok(port)) {
        return Some("has an invalid port");
    }
    None
}

/// RFC 9110 `tchar`: what a header name is made of.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_forms() {
        for good in [
            "https://api.example.com/mcp",
            "http://127.0.0.1:8080",
            "HTTPS://h/p?key=v#f",
            "http://user:pass@host:1/x",
            "http://[::1]:65535/mcp",
            "http://[::1]",
        ] {
            assert_eq!(url_problem(good), None, "{good}");
        }
        let problem = |url| url_problem(url).unwrap();
        assert_eq!(problem(" "), "must not be empty");
        assert!(problem("api.example.com/mcp").starts_with("must be an absolute"));
        assert!(problem("ftp://host/x").starts_with("must be an absolute"));
        assert!(problem("/relative").starts_with("must be an absolute"));
        assert_eq!(problem("https:///path"), "has no host");
        assert_eq!(problem("https://:80/"), "has no host");
        assert_eq!(problem("https://user@/"), "has no host");
        assert_eq!(problem("https://h:port/"), "has an invalid port");
        assert_eq!(problem("https://h:70000"), "has an invalid port");
        assert_eq!(problem("https://h:+80/"), "has an invalid port");
        assert_eq!(url_problem("https://h:/"), None);
        assert_eq!(problem("http://[::1/"), "has an invalid host");
        assert_eq!(problem("http://[::1]x/"), "has an invalid host");
        assert!(problem("https://h/a b").contains("spaces"));
    }
}
