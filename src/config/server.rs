//! Checks the `servers` mapping: names, each server's keys and values, and `${VAR}` expansion in
//! `args`, `env` values and `cwd`. A variable that is not set disables its server, not the config.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ServerConfig;
use super::checker::{Checker, Entry, optional, quote_hint};
use super::expand;
use super::locate::{Mark, NodePath, Step};
use super::tree::Node;

const SERVER_KEYS: &[&str] = &["command", "args", "env", "cwd", "enabled", "idle_timeout"];

/// The gateway's own tools are `gateway_*`; a server named so would shadow or mix with them.
const RESERVED: &str = "gateway";

/// One server being checked: its name, how messages refer to it, and the variables it lacks.
struct Scope<'s> {
    name: &'s str,
    /// "in server `name`", completing messages such as "`args` in server `name` must be …".
    context: String,
    missing: Vec<MissingVar>,
}

/// A `${NAME}` without default whose variable is not set.
struct MissingVar {
    name: String,
    mark: Option<Mark>,
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
        for server in self.entries(map, &entry.value_at, "in `servers`") {
            let named = self.server_name(&server);
            if let Some(config) = self.server(&server)
                && named
            {
                servers.insert(config.name.clone(), config);
            }
        }
        servers
    }

    /// Exposed tools are named `<server>_<tool>`, so the name must be tool-name safe.
    fn server_name(&mut self, server: &Entry<'_>) -> bool {
        let name = server.key;
        let mut chars = name.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let problem = if !valid {
            "names must start with a letter or digit and contain only letters, digits, `_` and `-`"
        } else if name
            .strip_prefix(RESERVED)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        {
            "it is reserved: the gateway's own tools are named `gateway_*`; choose another name"
        } else {
            return true;
        };
        self.error(
            &server.key_at,
            format!("invalid server name `{name}`: {problem}"),
        );
        false
    }

    fn server(&mut self, server: &Entry<'_>) -> Option<ServerConfig> {
        let name = server.key;
        let map = match server.value {
            Node::Map(map) => map,
            Node::Null => {
                let message =
                    format!("server `{name}` has no settings; it needs at least `command`");
                self.error(&server.key_at, message);
                return None;
            }
            other => {
                let found = other.describe();
                let message = format!(
                    "server `{name}` must be a mapping with at least `command`, found {found}"
                );
                self.error(&server.value_at, message);
                return None;
            }
        };
        let mut scope = Scope {
            name,
            context: format!("in server `{name}`"),
            missing: Vec::new(),
        };
        let fields = self.fields(map, &server.value_at, SERVER_KEYS, &scope.context);
        let command = self.command(&fields, server, &scope);
        let args = optional(&fields, "args").map(|e| self.args(e, &mut scope));
        let env = optional(&fields, "env").map(|e| self.env_vars(e, &mut scope));
        let cwd = optional(&fields, "cwd").and_then(|e| self.cwd(e, &mut scope));
        let subject = |key: &str| format!("`{key}` {}", scope.context);
        let enabled = optional(&fields, "enabled")
            .and_then(|e| self.boolean(e, &subject("enabled")))
            .unwrap_or(true);
        let idle_timeout = optional(&fields, "idle_timeout")
            .and_then(|e| self.duration(e, &subject("idle_timeout")));
        let (enabled, disabled_reason) = self.availability(enabled, &scope);
        Some(ServerConfig {
            name: name.to_owned(),
            command: command?,
            args: args.unwrap_or_default(),
            env: env.unwrap_or_default(),
            cwd,
            enabled,
            disabled_reason,
            idle_timeout,
        })
    }

    fn command(
        &mut self,
        fields: &[Entry<'_>],
        server: &Entry<'_>,
        scope: &Scope<'_>,
    ) -> Option<String> {
        let subject = format!("`command` {}", scope.context);
        let Some(entry) = fields.iter().find(|e| e.key == "command") else {
            let name = scope.name;
            let message = format!("server `{name}` is missing `command` (the program to run)");
            self.error(&server.key_at, message);
            return None;
        };
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
                "{subject} contains `${{`, which is only expanded in `args`, `env` and `cwd`"
            );
            self.warn(&entry.value_at, message);
        }
        Some(command.clone())
    }

    fn args(&mut self, entry: &Entry<'_>, scope: &mut Scope<'_>) -> Vec<String> {
        let subject = format!("`args` {}", scope.context);
        let Node::Seq(items) = entry.value else {
            self.mismatch(entry, &subject, "a list of strings");
            return Vec::new();
        };
        let mut args = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            match item {
                Node::Str(raw) => args.push(self.expand(raw, &at, &subject, scope)),
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

    fn env_vars(&mut self, entry: &Entry<'_>, scope: &mut Scope<'_>) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        let Node::Map(map) = entry.value else {
            let subject = format!("`env` {}", scope.context);
            self.mismatch(entry, &subject, "a mapping from variable names to strings");
            return env;
        };
        let context = format!("in `env` {}", scope.context);
        for var in self.entries(map, &entry.value_at, &context) {
            let key = var.key;
            if key.is_empty() || key.contains(['=', '\0']) {
                let message = format!(
                    "invalid environment variable name `{key}` {context}: \
                     it must be non-empty and contain no `=`"
                );
                self.error(&var.key_at, message);
            }
            let subject = format!("`env.{key}` {}", scope.context);
            match var.value {
                Node::Str(raw) => {
                    let value = self.expand(raw, &var.value_at, &subject, scope);
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

    /// The directory to start the server in, made absolute against the config file's directory.
    fn cwd(&mut self, entry: &Entry<'_>, scope: &mut Scope<'_>) -> Option<PathBuf> {
        let subject = format!("`cwd` {}", scope.context);
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
        let missing_before = scope.missing.len();
        let dir = self.expand(raw, &entry.value_at, &subject, scope);
        if dir.is_empty() {
            // With a variable missing the server is disabled anyway; say nothing more.
            if scope.missing.len() == missing_before {
                self.error(&entry.value_at, format!("{subject} must not be empty"));
            }
            return None;
        }
        // `components()` drops the `.` of `./work`, and the base is absolute, so the result is too.
        Some(self.config_dir.join(dir).components().collect())
    }

    /// Expands `${VAR}` in a string value, recording errors and missing variables with the
    /// position of their `${` in the source.
    fn expand(&mut self, raw: &str, at: &NodePath, subject: &str, scope: &mut Scope<'_>) -> String {
        let expansion = match expand::expand(raw, self.env) {
            Ok(expansion) => expansion,
            Err(e) => {
                let mark = self.mark_inside(at, raw, e.offset, 2);
                self.error_at(mark, format!("{subject}: {}", e.message));
                return String::new();
            }
        };
        for missing in expansion.missing {
            if scope.missing.iter().all(|m| m.name != missing.name) {
                let mark = self.mark_inside(at, raw, missing.offset, 2 + missing.name.len());
                scope.missing.push(MissingVar {
                    name: missing.name,
                    mark,
                });
            }
        }
        if expansion.value.contains('\0') {
            self.error(at, format!("{subject} contains a NUL character"));
        }
        expansion.value
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
    fn availability(&mut self, enabled: bool, scope: &Scope<'_>) -> (bool, Option<String>) {
        if !enabled {
            return (false, Some("disabled in config".to_owned()));
        }
        if scope.missing.is_empty() {
            return (true, None);
        }
        let mut missing_vars: Vec<&MissingVar> = scope.missing.iter().collect();
        missing_vars.sort_by_key(|m| m.mark.map(|mark| mark.index));
        let mut cited = Vec::new();
        for missing in missing_vars {
            let (name, var) = (scope.name, &missing.name);
            let message =
                format!("server `{name}` is disabled: environment variable {var} is not set");
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
