//! Checks the `servers` mapping: each server's keys and values, which of `command` (a local
//! program) and `url` (a remote server, checked in `remote.rs`) it has, and `${VAR}` expansion in
//! `args`, `env` values, `cwd`, `url` and header values. A variable that is not set disables its
//! server, not the config. Names and prefixes are checked in `names.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::checker::{Checker, Entry, optional, quote_hint};
use super::expand;
use super::locate::{Mark, NodePath, Step};
use super::tree::Node;
use super::{Scope, ServerConfig};

const SERVER_KEYS: &[&str] = &[
    "command",
    "args",
    "env",
    "env_file",
    "pass_env",
    "cwd",
    "url",
    "headers",
    "transport",
    "prefix",
    "scope",
    "enabled",
    "idle_timeout",
    "call_timeout",
    "max_message",
    "tools",
    "prompts",
    "pin",
];

/// The keys that only a server with `command` takes.
const LOCAL_KEYS: &[&str] = &["args", "env", "pass_env", "cwd"];

const SCOPES: &[(&str, Scope)] = &[("shared", Scope::Shared), ("per-client", Scope::PerClient)];

/// One server being checked: its name, how messages refer to it, and the variables it lacks.
pub(super) struct ServerCheck<'s> {
    name: &'s str,
    /// What it is, in messages: "server" or "plugin".
    noun: &'static str,
    /// "in server `name`", completing messages such as "`args` in server `name` must be …".
    pub(super) context: String,
    missing: Vec<MissingVar>,
}

/// A `${NAME}` without default whose variable is not set.
struct MissingVar {
    name: String,
    mark: Option<Mark>,
}

/// A string value after `${VAR}` expansion.
pub(super) struct Expanded {
    pub(super) value: String,
    /// False if a variable it needs is not set (the server is then disabled).
    pub(super) complete: bool,
}

/// What a server is, from which of `command` and `url` it has.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `command` only: a program spoken to over stdio.
    Local,
    /// `url` only: a remote server.
    Remote,
    /// Both or neither, already reported: no check that depends on the kind is made.
    Unknown,
}

impl<'s> ServerCheck<'s> {
    /// A check of a plugin's settings, which are a server's: named "plugin `name`" in
    /// messages about missing variables, `context` in the others.
    pub(super) fn plugin(name: &'s str, context: String) -> Self {
        ServerCheck {
            name,
            noun: "plugin",
            context,
            missing: Vec::new(),
        }
    }
}

impl Checker<'_> {
    pub(super) fn servers(&mut self, entry: &Entry<'_>) -> BTreeMap<String, ServerConfig> {
        let mut servers = BTreeMap::new();
        let Node::Map(map) = entry.value else {
            self.mismatch(
                entry,
                "`servers`",
                "a mapping from server names to their settings",
            );
            return servers;
        };
        let mut claims = Vec::new();
        for server in self.entries(map, &entry.value_at, "in `servers`") {
            let named = self.server_name(&server);
            if let Some((config, prefix_at)) = self.server(&server)
                && named
            {
                self.claim_prefix(&config, &prefix_at, &mut claims);
                servers.insert(config.name.clone(), config);
            }
        }
        // A server's env file is its own.
        self.server_vars.clear();
        servers
    }

    /// The server, and where its prefix comes from (its `prefix` value, else its name).
    fn server(&mut self, server: &Entry<'_>) -> Option<(ServerConfig, NodePath)> {
        let name = server.key;
        let map = match server.value {
            Node::Map(map) => map,
            Node::Null => {
                let message = format!(
                    "server `{name}` has no settings; it needs `command` (a program to run) or \
                     `url` (a remote server)"
                );
                self.error(&server.key_at, message);
                return None;
            }
            other => {
                let found = other.describe();
                let message = format!(
                    "server `{name}` must be a mapping with `command` or `url`, found {found}"
                );
                self.error(&server.value_at, message);
                return None;
            }
        };
        let mut check = ServerCheck {
            name,
            noun: "server",
            context: format!("in server `{name}`"),
            missing: Vec::new(),
        };
        let fields = self.fields(map, &server.value_at, SERVER_KEYS, &check.context);
        // Before anything is expanded: its variables come first in this server's `${VAR}`s.
        self.server_vars = match optional(&fields, "env_file") {
            Some(entry) => self.env_file(entry, &format!("`env_file` {}", check.context)),
            None => Default::default(),
        };
        let kind = self.kind(&fields, server, &check);
        let command_entry = fields.iter().find(|e| e.key == "command");
        let command = command_entry.map(|e| self.command(e, &check));
        let url_entry = fields.iter().find(|e| e.key == "url");
        let url = url_entry.map(|e| self.url(e, &mut check));
        self.keys_of_the_other_kind(&fields, kind, &check);
        // Keys reported as belonging to the other kind are not checked further.
        let local = kind != Kind::Remote;
        let args = optional(&fields, "args")
            .filter(|_| local)
            .map(|e| self.args(e, &mut check));
        let env = optional(&fields, "env")
            .filter(|_| local)
            .map(|e| self.env_vars(e, &mut check));
        let pass_env = optional(&fields, "pass_env")
            .filter(|_| local)
            .map(|e| self.pass_env(e, &check));
        let cwd = optional(&fields, "cwd")
            .filter(|_| local)
            .and_then(|e| self.cwd(e, &mut check));
        let headers = optional(&fields, "headers")
            .filter(|_| kind != Kind::Local)
            .map(|e| self.headers(e, &mut check));
        let transport = self.transport(&fields, kind, &check);
        let (prefix, prefix_at) = match optional(&fields, "prefix") {
            Some(entry) => (self.prefix(entry, &check), entry.value_at.clone()),
            None => (Some(name.to_owned()), server.key_at.clone()),
        };
        let subject = |key: &str| format!("`{key}` {}", check.context);
        let scope = optional(&fields, "scope")
            .and_then(|e| self.choice(e, "scope", &check.context, SCOPES))
            .unwrap_or_default();
        let enabled = optional(&fields, "enabled")
            .and_then(|e| self.boolean(e, &subject("enabled")))
            .unwrap_or(true);
        let idle_timeout = optional(&fields, "idle_timeout")
            .and_then(|e| self.duration(e, &subject("idle_timeout")));
        let call_timeout = optional(&fields, "call_timeout")
            .and_then(|e| self.duration(e, &subject("call_timeout")));
        let max_message =
            optional(&fields, "max_message").and_then(|e| self.size(e, &subject("max_message")));
        let mut shaping = |key: &str| {
            optional(&fields, key)
                .map(|e| self.shaping(e, key, &check.context))
                .unwrap_or_default()
        };
        let (tools, prompts) = (shaping("tools"), shaping("prompts"));
        let pin = optional(&fields, "pin").and_then(|e| self.pin(e, &check.context));
        if let Some(entry) = optional(&fields, "pass_env").filter(|_| local)
            && scope != Scope::PerClient
        {
            let message = format!(
                "`pass_env` {} needs `scope: per-client`: a shared server has one environment \
                 for every client, so no client's variables can be passed to it",
                check.context
            );
            self.error(&entry.key_at, message);
        }
        let (enabled, disabled_reason) = self.availability(enabled, &check);
        let (command, url) = match kind {
            Kind::Local => (command.flatten()?, None),
            Kind::Remote => (String::new(), Some(url.flatten()?)),
            Kind::Unknown => return None,
        };
        let config = ServerConfig {
            name: name.to_owned(),
            command,
            args: args.unwrap_or_default(),
            env: env.unwrap_or_default(),
            pass_env: pass_env.unwrap_or_default(),
            cwd,
            transport,
            url,
            headers: headers.unwrap_or_default(),
            prefix: prefix?,
            scope,
            enabled,
            disabled_reason,
            idle_timeout,
            call_timeout,
            max_message,
            plugin: None,
            tools,
            prompts,
            pin,
        };
        Some((config, prefix_at))
    }

    /// Exactly one of `command` and `url`; with both, the error is at the later one.
    fn kind(&mut self, fields: &[Entry<'_>], server: &Entry<'_>, check: &ServerCheck<'_>) -> Kind {
        let name = check.name;
        let mut found = fields
            .iter()
            .filter(|e| e.key == "command" || e.key == "url");
        match (found.next(), found.next()) {
            (Some(only), None) if only.key == "command" => Kind::Local,
            (Some(_), None) => Kind::Remote,
            (None, _) => {
                let message = format!(
                    "server `{name}` is missing `command` (the program to run) or `url` (a remote \
                     server)"
                );
                self.error(&server.key_at, message);
                Kind::Unknown
            }
            (Some(_), Some(later)) => {
                let message = format!(
                    "server `{name}` has both `command` and `url`: it either runs a program or \
                     connects to a remote server; remove one of them"
                );
                self.error(&later.key_at, message);
                Kind::Unknown
            }
        }
    }

    /// `args`, `env` and `cwd` are for programs, `headers` for remote servers.
    fn keys_of_the_other_kind(
        &mut self,
        fields: &[Entry<'_>],
        kind: Kind,
        check: &ServerCheck<'_>,
    ) {
        let (keys, needs, has): (&[&str], _, _) = match kind {
            Kind::Local => (&["headers"], "url", "command"),
            Kind::Remote => (LOCAL_KEYS, "command", "url"),
            Kind::Unknown => return,
        };
        for entry in fields.iter().filter(|e| keys.contains(&e.key)) {
            let (key, context) = (entry.key, &check.context);
            let message = format!(
                "`{key}` {context} is only for servers with `{needs}`; this one has `{has}`"
            );
            self.error(&entry.key_at, message);
        }
    }

    fn command(&mut self, entry: &Entry<'_>, check: &ServerCheck<'_>) -> Option<String> {
        let subject = format!("`command` {}", check.context);
        let Node::Str(command) = entry.value else {
            self.mismatch(entry, &subject, "a string (the program to run)");
            return None;
        };
        if command.trim().is_empty() {
            self.error(&entry.value_at, format!("{subject} must not be empty"));
            return None;
        }
        if command.contains('\0') {
            self.error(
                &entry.value_at,
                format!("{subject} contains a NUL character"),
            );
        }
        if command.contains("${") {
            let message = format!(
                "{subject} contains `${{`, which is only expanded in `args`, `env`, `cwd`, `url` \
                 and `headers`"
            );
            self.warn(&entry.value_at, message);
        }
        Some(command.clone())
    }

    fn args(&mut self, entry: &Entry<'_>, check: &mut ServerCheck<'_>) -> Vec<String> {
        let subject = format!("`args` {}", check.context);
        let Node::Seq(items) = entry.value else {
            self.mismatch(entry, &subject, "a list of strings");
            return Vec::new();
        };
        let mut args = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            match item {
                Node::Str(raw) => args.push(self.expand(raw, &at, &subject, check)),
                other => {
                    let (n, found, hint) = (i + 1, other.describe(), quote_hint(other));
                    let message =
                        format!("{subject} must be a list of strings; item {n} is {found}{hint}");
                    self.error(&at, message);
                }
            }
        }
        args
    }

    pub(super) fn env_vars(
        &mut self,
        entry: &Entry<'_>,
        check: &mut ServerCheck<'_>,
    ) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let Node::Map(map) = entry.value else {
            let subject = format!("`env` {}", check.context);
            self.mismatch(entry, &subject, "a mapping from variable names to strings");
            return env;
        };
        let context = format!("in `env` {}", check.context);
        for var in self.entries(map, &entry.value_at, &context) {
            let key = var.key;
            if key.is_empty() || key.contains(['=', '\0']) {
                let message = format!(
                    "invalid environment variable name `{key}` {context}: \
                     it must be non-empty and contain no `=`"
                );
                self.error(&var.key_at, message);
            }
            let subject = format!("`env.{key}` {}", check.context);
            match var.value {
                Node::Str(raw) => {
                    let value = self.expand(raw, &var.value_at, &subject, check);
                    env.insert(key.to_owned(), value);
                }
                Node::Null => {
                    let message = format!("{subject} has no value; write \"\" for an empty string");
                    self.error(&var.key_at, message);
                }
                other => {
                    let (found, hint) = (other.describe(), quote_hint(other));
                    let message = format!("{subject} must be a string, found {found}{hint}");
                    self.error(&var.value_at, message);
                }
            }
        }
        env
    }

    /// Names of variables a per-client instance takes from its client's environment (the
    /// shim's, sent in its hello).
    fn pass_env(&mut self, entry: &Entry<'_>, check: &ServerCheck<'_>) -> Vec<String> {
        let subject = format!("`pass_env` {}", check.context);
        let Node::Seq(items) = entry.value else {
            self.mismatch(entry, &subject, "a list of environment variable names");
            return Vec::new();
        };
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            match item {
                Node::Str(name)
                    if !name.is_empty()
                        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
                {
                    names.push(name.clone());
                }
                other => {
                    let message = format!(
                        "{subject} must be a list of environment variable names (letters, digits \
                         and `_`); item {} is {}",
                        i + 1,
                        match other {
                            Node::Str(name) => format!("`{name}`"),
                            other => other.describe(),
                        }
                    );
                    self.error(&at, message);
                }
            }
        }
        names
    }

    /// The directory to start the server in, made absolute against the config file's directory.
    pub(super) fn cwd(
        &mut self,
        entry: &Entry<'_>,
        check: &mut ServerCheck<'_>,
    ) -> Option<PathBuf> {
        let subject = format!("`cwd` {}", check.context);
        let Node::Str(raw) = entry.value else {
            self.mismatch(entry, &subject, "a string (a directory)");
            return None;
        };
        if raw.starts_with('~') {
            let message = format!(
                "{subject} starts with `~`, which is not expanded; write `${{HOME}}` instead"
            );
            self.warn(&entry.value_at, message);
        }
        let dir = self.expand_checked(raw, &entry.value_at, &subject, check)?;
        if dir.value.is_empty() {
            // With a variable missing the server is disabled anyway; say nothing more.
            if dir.complete {
                self.error(&entry.value_at, format!("{subject} must not be empty"));
            }
            return None;
        }
        // `components()` drops the `.` of `./work`, and the base is absolute, so the result is too.
        Some(self.config_dir.join(dir.value).components().collect())
    }

    /// Expands `${VAR}` in a string value, recording errors and missing variables with the
    /// position of their `${` in the source; a malformed reference leaves an empty string.
    fn expand(
        &mut self,
        raw: &str,
        at: &NodePath,
        subject: &str,
        check: &mut ServerCheck<'_>,
    ) -> String {
        self.expand_checked(raw, at, subject, check)
            .map_or_else(String::new, |expanded| expanded.value)
    }

    /// Like [`Self::expand`], but `None` for a malformed reference (already reported), and
    /// saying whether every variable was found.
    pub(super) fn expand_checked(
        &mut self,
        raw: &str,
        at: &NodePath,
        subject: &str,
        check: &mut ServerCheck<'_>,
    ) -> Option<Expanded> {
        let expansion = match expand::expand(raw, &|name| self.lookup(name)) {
            Ok(expansion) => expansion,
            Err(e) => {
                let mark = self.mark_inside(at, raw, e.offset, 2);
                self.error_at(mark, format!("{subject}: {}", e.message));
                return None;
            }
        };
        let complete = expansion.missing.is_empty();
        for missing in expansion.missing {
            if check.missing.iter().all(|m| m.name != missing.name) {
                let mark = self.mark_inside(at, raw, missing.offset, 2 + missing.name.len());
                check.missing.push(MissingVar {
                    name: missing.name,
                    mark,
                });
            }
        }
        if expansion.value.contains('\0') {
            self.error(at, format!("{subject} contains a NUL character"));
        }
        Some(Expanded {
            value: expansion.value,
            complete,
        })
    }

    /// The source position of `raw[offset..offset + len]`, found by searching the source from the
    /// value's start for the same text (a reference reads the same in the source and the value).
    pub(super) fn mark_inside(
        &self,
        at: &NodePath,
        raw: &str,
        offset: usize,
        len: usize,
    ) -> Option<Mark> {
        let needle = &raw[offset..offset + len];
        let nth = raw[..offset].matches(needle).count();
        self.locator.inside(at, needle, nth)
    }

    /// Whether the server may run: `enabled: false` wins; otherwise a missing variable disables
    /// it, with a warning per variable so that the rest of the config still loads.
    pub(super) fn availability(
        &mut self,
        enabled: bool,
        check: &ServerCheck<'_>,
    ) -> (bool, Option<String>) {
        if !enabled {
            return (false, Some("disabled in config".to_owned()));
        }
        if check.missing.is_empty() {
            return (true, None);
        }
        let mut missing_vars: Vec<&MissingVar> = check.missing.iter().collect();
        missing_vars.sort_by_key(|m| m.mark.map(|mark| mark.index));
        let mut cited = Vec::new();
        for missing in missing_vars {
            let (noun, name, var) = (check.noun, check.name, &missing.name);
            let message =
                format!("{noun} `{name}` is disabled: environment variable {var} is not set");
            self.warn_at(missing.mark, message);
            cited.push(format!("{var} ({})", self.cite(missing.mark)));
        }
        let noun = if cited.len() == 1 {
            "variable"
        } else {
            "variables"
        };
        let reason = format!("missing environment {noun} {}", cited.join(", "));
        (false, Some(reason))
    }
}
