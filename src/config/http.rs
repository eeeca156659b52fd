//! Checks the `http` section: the listen address, the bearer tokens that map HTTP clients to
//! roles (with `${VAR}` expansion), the Host and Origin allow-lists, the session idle timeout and
//! the bounds on connections and requests.
//!
//! Tokens are secrets: messages cite a token by its item number and place, never by its value.
//! A token whose variable is not set is disabled with a warning; the rest of the config loads.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::checker::{Checker, Entry, optional};
use super::expand;
use super::locate::{NodePath, Step};
use super::tree::Node;
use super::{HttpConfig, HttpToken, Role};

const HTTP_KEYS: &[&str] = &[
    "listen",
    "tokens",
    "allowed_origins",
    "allowed_hosts",
    "session_idle_timeout",
    "max_connections",
    "header_timeout",
    "body_timeout",
    "write_timeout",
    "max_sessions",
    "max_sessions_per_role",
];
const TOKEN_KEYS: &[&str] = &["token", "role"];
const DEFAULT_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const LISTEN_FORMS: &str = "an IP address and port such as \"127.0.0.1:8765\" or \"[::1]:8765\"";

/// Open HTTP connections at once, by default (`max_connections`).
const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Streamable HTTP sessions alive at once, by default (`max_sessions`).
const DEFAULT_MAX_SESSIONS: usize = 1024;
/// Streamable HTTP sessions of one role alive at once, by default (`max_sessions_per_role`).
const DEFAULT_MAX_SESSIONS_PER_ROLE: usize = 256;
/// How long a connection has to send each request head, by default (`header_timeout`).
const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's body may take to arrive, by default (`body_timeout`).
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response write may make no progress (a client that stopped reading), by default
/// (`write_timeout`).
const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `header_timeout`, `body_timeout` and `write_timeout`.
const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(3600);

/// The longest `session_idle_timeout` (a year; 0 means never expire).
const MAX_SESSION_IDLE_TIMEOUT: Duration = Duration::from_secs(365 * 86_400);

/// What became of one `tokens` item.
enum TokenItem {
    Usable(HttpToken, NodePath),
    /// Its variables are not set: named with where they are, for the loopback error.
    Disabled(Vec<String>),
    Invalid,
}

impl Checker<'_> {
    pub(super) fn http(
        &mut self,
        entry: &Entry<'_>,
        roles: &BTreeMap<String, Role>,
    ) -> Option<HttpConfig> {
        let Node::Map(map) = entry.value else {
            self.mismatch(entry, "`http`", "a mapping with at least `listen`");
            return None;
        };
        let context = "in `http`";
        let fields = self.fields(map, &entry.value_at, HTTP_KEYS, context);
        let listen = match optional(&fields, "listen") {
            Some(listen) => self.listen(listen),
            None => {
                let message = "`http` is missing `listen` (the address to listen on, such as \
                               \"127.0.0.1:8765\")";
                self.error(&entry.key_at, message);
                None
            }
        };
        let mut tokens = Vec::new();
        let mut disabled = Vec::new();
        if let Some(list) = optional(&fields, "tokens") {
            self.tokens(list, roles, &mut tokens, &mut disabled);
        }
        let allowed_origins = optional(&fields, "allowed_origins")
            .map(|e| self.strings(e, "allowed_origins", origin_problem))
            .unwrap_or_default();
        let allowed_hosts = optional(&fields, "allowed_hosts")
            .map(|e| self.strings(e, "allowed_hosts", host_problem))
            .unwrap_or_default();
        let session_idle_timeout = match optional(&fields, "session_idle_timeout") {
            None => DEFAULT_SESSION_IDLE_TIMEOUT,
            Some(entry) => match self.duration(entry, "`session_idle_timeout` in `http`") {
                // The listener computes with it (keep-alive margins): keep it in range.
                Some(timeout) if timeout > MAX_SESSION_IDLE_TIMEOUT => {
                    let message = format!(
                        "`session_idle_timeout` in `http` is at most {}d (0 = never expire)",
                        MAX_SESSION_IDLE_TIMEOUT.as_secs() / 86_400
                    );
                    self.error(entry.value_pos(), message);
                    DEFAULT_SESSION_IDLE_TIMEOUT
                }
                Some(timeout) => timeout,
                None => DEFAULT_SESSION_IDLE_TIMEOUT,
            },
        };
        let max_connections = self.count(
            optional(&fields, "max_connections"),
            ("connections", 65_536),
            DEFAULT_MAX_CONNECTIONS,
        );
        let max_sessions = self.count(
            optional(&fields, "max_sessions"),
            ("sessions", 1_000_000),
            DEFAULT_MAX_SESSIONS,
        );
        let max_sessions_per_role = self.count(
            optional(&fields, "max_sessions_per_role"),
            ("sessions", 1_000_000),
            DEFAULT_MAX_SESSIONS_PER_ROLE.min(max_sessions),
        );
        let header_timeout =
            self.request_timeout(optional(&fields, "header_timeout"), DEFAULT_HEADER_TIMEOUT);
        let body_timeout =
            self.request_timeout(optional(&fields, "body_timeout"), DEFAULT_BODY_TIMEOUT);
        let write_timeout =
            self.request_timeout(optional(&fields, "write_timeout"), DEFAULT_WRITE_TIMEOUT);
        let (listen, listen_at) = listen?;
        if tokens.is_empty() && !listen.ip().is_loopback() {
            let mut message = format!(
                "listening on {listen} requires tokens: add `tokens` to `http` (clients from other \
                 machines must authenticate), or listen on a loopback address such as 127.0.0.1"
            );
            if !disabled.is_empty() {
                let unset = disabled.join(", ");
                message.push_str(&format!("; no token is usable, variables not set: {unset}"));
            }
            self.error(&listen_at, message);
        } else if tokens.is_empty() {
            // Loopback is not private: every local user can reach it.
            let what = if roles.is_empty() {
                "every tool (no roles are defined)"
            } else if roles.contains_key(super::DEFAULT_ROLE) {
                "the `default` role's tools"
            } else {
                "nothing (no `default` role is defined)"
            };
            let message = format!(
                "`http` has no tokens: any local user can connect to {listen} and use {what}; \
                 add `tokens` to keep other users out"
            );
            self.warn(&listen_at, message);
        }
        Some(HttpConfig {
            listen,
            tokens,
            allowed_origins,
            allowed_hosts,
            session_idle_timeout,
            max_connections,
            header_timeout,
            body_timeout,
            write_timeout,
            max_sessions,
            max_sessions_per_role,
        })
    }

    /// A number of `what` from 1 to `most` (`max_connections`, `max_sessions`, …); `default`
    /// when absent or wrong.
    fn count(
        &mut self,
        entry: Option<&Entry<'_>>,
        (what, most): (&str, i128),
        default: usize,
    ) -> usize {
        let Some(entry) = entry else {
            return default;
        };
        match entry.value {
            Node::Int(n) if (1..=most).contains(n) => *n as usize,
            _ => {
                let subject = format!("`{}` in `http`", entry.key);
                self.mismatch(
                    entry,
                    &subject,
                    &format!("a number of {what} from 1 to {most}"),
                );
                default
            }
        }
    }

    /// `header_timeout`, `body_timeout` or `write_timeout`: more than 0 (a request must be able to arrive) and at
    /// most an hour (they bound what a stalled client holds); `default` when absent or wrong.
    fn request_timeout(&mut self, entry: Option<&Entry<'_>>, default: Duration) -> Duration {
        let Some(entry) = entry else {
            return default;
        };
        let subject = format!("`{}` in `http`", entry.key);
        match self.duration(entry, &subject) {
            Some(timeout) if timeout.is_zero() || timeout > MAX_REQUEST_TIMEOUT => {
                let message = format!("{subject} must be more than 0 and at most 1h");
                self.error(entry.value_pos(), message);
                default
            }
            Some(timeout) => timeout,
            None => default,
        }
    }

    /// The address to bind: an IP literal with a port, or `localhost:PORT` (= 127.0.0.1).
    fn listen(&mut self, entry: &Entry<'_>) -> Option<(SocketAddr, NodePath)> {
        let subject = "`listen` in `http`";
        let Node::Str(text) = entry.value else {
            self.mismatch(entry, subject, &format!("a string: {LISTEN_FORMS}"));
            return None;
        };
        let parsed = text.trim().parse::<SocketAddr>().ok().or_else(|| {
            let (host, port) = text.trim().rsplit_once(':')?;
            let port = port.parse().ok()?;
            host.eq_ignore_ascii_case("localhost")
                .then_some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        });
        match parsed {
            Some(addr) => Some((addr, entry.value_at.clone())),
            None => {
                let message = format!("{subject} must be {LISTEN_FORMS}; `{text}` is not one");
                self.error(&entry.value_at, message);
                None
            }
        }
    }

    fn tokens(
        &mut self,
        entry: &Entry<'_>,
        roles: &BTreeMap<String, Role>,
        tokens: &mut Vec<HttpToken>,
        disabled: &mut Vec<String>,
    ) {
        let Node::Seq(items) = entry.value else {
            let expected = "a list of `{token: …, role: …}` mappings";
            self.mismatch(entry, "`tokens` in `http`", expected);
            return;
        };
        let mut seen: Vec<(usize, NodePath)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            match self.token(item, &at, i + 1, roles) {
                TokenItem::Usable(token, token_at) => {
                    let duplicate = tokens.iter().position(|t| t.token == token.token);
                    if let Some(first) = duplicate {
                        let n = seen[first].0;
                        let message = format!(
                            "token {} in `http.tokens` is the same as token {n}; a token maps to \
                             one role",
                            i + 1
                        );
                        self.error(&token_at, message);
                    } else {
                        seen.push((i + 1, token_at));
                        tokens.push(token);
                    }
                }
                TokenItem::Disabled(vars) => disabled.extend(vars),
                TokenItem::Invalid => {}
            }
        }
    }

    /// Item `n` (1-based) of `tokens`.
    fn token(
        &mut self,
        item: &Node,
        at: &NodePath,
        n: usize,
        roles: &BTreeMap<String, Role>,
    ) -> TokenItem {
        let Node::Map(map) = item else {
            let found = item.describe();
            let message = format!(
                "`tokens` in `http` must be a list of `{{token: …, role: …}}` mappings; item {n} \
                 is {found}"
            );
            self.error(at, message);
            return TokenItem::Invalid;
        };
        let context = format!("in `http.tokens` item {n}");
        let fields = self.fields(map, at, TOKEN_KEYS, &context);
        let role = match optional(&fields, "role") {
            None => Ok(None),
            Some(entry) => self.token_role(entry, &context, roles),
        };
        let Some(entry) = fields.iter().find(|e| e.key == "token") else {
            self.error(at, format!("token {n} in `http.tokens` is missing `token`"));
            return TokenItem::Invalid;
        };
        let subject = format!("`token` {context}");
        let Node::Str(raw) = entry.value else {
            self.mismatch(entry, &subject, "a string (the bearer token, or `${VAR}`)");
            return TokenItem::Invalid;
        };
        if raw.is_empty() {
            self.error(&entry.value_at, format!("{subject} must not be empty"));
            return TokenItem::Invalid;
        }
        let expansion = match expand::expand(raw, &|name| self.lookup(name)) {
            Ok(expansion) => expansion,
            Err(e) => {
                let mark = self.mark_inside(&entry.value_at, raw, e.offset, 2);
                self.error_at(mark, format!("{subject}: {}", e.message));
                return TokenItem::Invalid;
            }
        };
        let Ok(role) = role else {
            return TokenItem::Invalid;
        };
        if !expansion.missing.is_empty() {
            let mut unset = Vec::new();
            for missing in expansion.missing {
                let len = 2 + missing.name.len();
                let mark = self.mark_inside(&entry.value_at, raw, missing.offset, len);
                let var = &missing.name;
                let message = format!(
                    "token {n} in `http.tokens` is disabled: environment variable {var} is not set"
                );
                self.warn_at(mark, message);
                unset.push(format!("{var} ({})", self.cite(mark)));
            }
            return TokenItem::Disabled(unset);
        }
        if expansion.value.trim().is_empty() {
            let message =
                format!("token {n} in `http.tokens` is disabled: its value is empty or blank");
            self.warn(&entry.value_at, message);
            return TokenItem::Disabled(Vec::new());
        }
        let token = HttpToken {
            token: expansion.value,
            role,
        };
        TokenItem::Usable(token, entry.value_at.clone())
    }

    /// A token's role: one of `roles`; `Err` after recording why not.
    fn token_role(
        &mut self,
        entry: &Entry<'_>,
        context: &str,
        roles: &BTreeMap<String, Role>,
    ) -> Result<Option<String>, ()> {
        let subject = format!("`role` {context}");
        let Node::Str(role) = entry.value else {
            self.mismatch(entry, &subject, "a string (a role defined in `roles`)");
            return Err(());
        };
        if roles.contains_key(role) {
            return Ok(Some(role.clone()));
        }
        let message = if roles.is_empty() {
            format!("{subject}: unknown role `{role}`: the config defines no `roles`")
        } else {
            let known: Vec<&str> = roles.keys().map(String::as_str).collect();
            let known = known.join(", ");
            format!("{subject}: unknown role `{role}`; known roles: {known}")
        };
        self.error(&entry.value_at, message);
        Err(())
    }

    /// A list of strings, each checked by `problem` (which completes "`x` is not …").
    fn strings(
        &mut self,
        entry: &Entry<'_>,
        key: &str,
        problem: fn(&str) -> Option<&'static str>,
    ) -> Vec<String> {
        let subject = format!("`{key}` in `http`");
        let Node::Seq(items) = entry.value else {
            self.mismatch(entry, &subject, "a list of strings");
            return Vec::new();
        };
        let mut values = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            let Node::Str(value) = item else {
                let (n, found) = (i + 1, item.describe());
                let message = format!("{subject} must be a list of strings; item {n} is {found}");
                self.error(&at, message);
                continue;
            };
            match problem(value) {
                Some(expected) => {
                    let message = format!("{subject}: `{value}` is not {expected}");
                    self.error(&at, message);
                }
                None => values.push(value.trim().to_owned()),
            }
        }
        values
    }
}

/// `null`, or `scheme://host[:port]` with `:*` for any port; no path.
fn origin_problem(value: &str) -> Option<&'static str> {
    const EXPECTED: &str = "an origin: `scheme://host`, `scheme://host:port`, \
                            `scheme://host:*` (any port) or `null`";
    let value = value.trim();
    if value == "null" {
        return None;
    }
    let Some((scheme, authority)) = value.split_once("://") else {
        return Some(EXPECTED);
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    let authority_ok = !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
        && !authority.starts_with(':');
    (!scheme_ok || !authority_ok).then_some(EXPECTED)
}

/// A host name or IP, optionally with `:port`; no scheme, no path.
fn host_problem(value: &str) -> Option<&'static str> {
    let value = value.trim();
    let bad = value.is_empty()
        || value.starts_with(':')
        || value.contains("://")
        || value.contains(['/', '?', '#', '@', ' ']);
    bad.then_some("a host: `name`, `name:port`, an IP address or `[v6]:port`")
}
