//! Turns the YAML tree into config values: every key checked against the format, every value
//! typed, and every problem recorded at its place, so that one pass reports them all. The
//! top level and roles are here; servers are in `server.rs` and `remote.rs`.
//!
//! Messages never quote a value that may come from the environment: they say what was found
//! ("found a string"), not what it was.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::ConfigError;
use super::locate::{Locator, Mark, NodePath, Step};
use super::suggest::did_you_mean;
use super::tree::Node;
use super::{HttpConfig, Role, ServerConfig, duration, size};

const TOP_KEYS: &[&str] = &[
    "servers",
    "idle_timeout",
    "startup_timeout",
    "discovery_wait",
    "call_timeout",
    "max_message",
    "roles",
    "plugins",
    "commands",
    "http",
    "pin",
    "env_file",
];
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// As large as a client's message may be (`session/socket.rs`): what passes one way passes the
/// other, and no plausible MCP message comes near it.
const DEFAULT_MAX_MESSAGE: usize = 64 << 20;

/// Everything a valid config says; the caller adds where it came from.
pub(super) struct Checked {
    pub idle_timeout: Duration,
    pub startup_timeout: Duration,
    pub discovery_wait: Option<Duration>,
    pub call_timeout: Duration,
    pub max_message: usize,
    pub servers: BTreeMap<String, ServerConfig>,
    /// `servers` is written as a mapping (possibly `{}`), not missing or null.
    pub servers_written: bool,
    pub roles: BTreeMap<String, Role>,
    pub http: Option<HttpConfig>,
    pub commands: Vec<super::CommandTool>,
    pub pin: super::PinMode,
    pub warnings: Vec<String>,
    /// The global `env_file`, absolute.
    pub env_file: Option<PathBuf>,
    /// Every env file the config names (global first), absolute, readable or not.
    pub env_files: Vec<PathBuf>,
}

pub(super) struct Checker<'a> {
    pub(super) file: &'a Path,
    pub(super) locator: Locator<'a>,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
    /// Relative `cwd`s resolve against this (absolute) directory.
    pub(super) config_dir: &'a Path,
    /// The global `env_file`'s variables, looked up before `env`.
    global_vars: BTreeMap<String, String>,
    /// The `env_file` of the server being checked, looked up before the global one; empty
    /// outside a server.
    pub(super) server_vars: BTreeMap<String, String>,
    /// The env files named so far.
    pub(super) env_files: Vec<PathBuf>,
    errors: Vec<ConfigError>,
    warnings: Vec<String>,
}

/// A `key: value` entry whose key is a string, with where both are.
pub(super) struct Entry<'n> {
    pub key: &'n str,
    pub value: &'n Node,
    pub key_at: NodePath,
    pub value_at: NodePath,
}

impl Entry<'_> {
    /// Where to point for a problem with the value: at the value, or at the key when the value
    /// is empty (an empty value's own position is wherever the parser found the next token).
    pub(super) fn value_pos(&self) -> &NodePath {
        match self.value {
            Node::Null => &self.key_at,
            _ => &self.value_at,
        }
    }
}

/// Checks a parsed document; the errors come back in document order.
pub(super) fn check(
    root: &Node,
    text: &str,
    file: &Path,
    config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Checked, Vec<ConfigError>> {
    let mut checker = Checker {
        file,
        locator: Locator::new(text),
        env,
        config_dir,
        global_vars: BTreeMap::new(),
        server_vars: BTreeMap::new(),
        env_files: Vec::new(),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut checked = checker.root(root);
    if checker.errors.is_empty() {
        checked.warnings = checker.warnings;
        checked.env_files = checker.env_files;
        Ok(checked)
    } else {
        // The config's own errors first, then those in the env files it names.
        checker
            .errors
            .sort_by_key(|e| (e.file != file, e.line, e.column));
        Err(checker.errors)
    }
}

/// The entry for `name`, if present and not null (null stands for "use the default").
pub(super) fn optional<'e, 'n>(entries: &'e [Entry<'n>], name: &str) -> Option<&'e Entry<'n>> {
    entries
        .iter()
        .find(|e| e.key == name && !matches!(e.value, Node::Null))
}

/// Suggests quoting when a number or boolean stands where a string belongs.
pub(super) fn quote_hint(found: &Node) -> &'static str {
    if found.is_unquoted_scalar() {
        " (quote it to make it a string)"
    } else {
        ""
    }
}

impl Checker<'_> {
    fn root(&mut self, root: &Node) -> Checked {
        let mut checked = Checked {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            discovery_wait: None,
            call_timeout: Duration::ZERO,
            max_message: DEFAULT_MAX_MESSAGE,
            servers: BTreeMap::new(),
            servers_written: false,
            roles: BTreeMap::new(),
            http: None,
            commands: Vec::new(),
            pin: super::PinMode::default(),
            warnings: Vec::new(),
            env_file: None,
            env_files: Vec::new(),
        };
        let top = NodePath::default();
        let map = match root {
            Node::Null => return checked,
            Node::Map(map) => map,
            other => {
                let found = other.describe();
                let message = format!(
                    "the config must be a mapping with keys such as `servers` and `idle_timeout`, \
                     found {found}"
                );
                self.error(&top, message);
                return checked;
            }
        };
        let fields = self.fields(map, &top, TOP_KEYS, "at the top level");
        // First: every `${VAR}` below may name one of its variables.
        if let Some(entry) = optional(&fields, "env_file") {
            self.global_vars = self.env_file(entry, "`env_file`");
            checked.env_file = self.env_files.first().cloned();
        }
        if let Some(entry) = optional(&fields, "idle_timeout") {
            checked.idle_timeout = self
                .duration(entry, "`idle_timeout`")
                .unwrap_or(DEFAULT_IDLE_TIMEOUT);
        }
        if let Some(entry) = optional(&fields, "startup_timeout") {
            checked.startup_timeout = self.startup_timeout(entry);
        }
        if let Some(entry) = optional(&fields, "discovery_wait") {
            checked.discovery_wait = self.duration(entry, "`discovery_wait`");
        }
        if let Some(entry) = optional(&fields, "call_timeout") {
            checked.call_timeout = self.duration(entry, "`call_timeout`").unwrap_or_default();
        }
        if let Some(entry) = optional(&fields, "max_message") {
            checked.max_message = self
                .size(entry, "`max_message`")
                .unwrap_or(DEFAULT_MAX_MESSAGE);
        }
        if let Some(entry) = optional(&fields, "servers") {
            checked.servers_written = matches!(entry.value, Node::Map(_));
            checked.servers = self.servers(entry);
        }
        if let Some(entry) = optional(&fields, "plugins") {
            for host in self.plugins(entry, &checked.servers) {
                checked.servers.insert(host.name.clone(), host);
            }
        }
        if let Some(pin) = optional(&fields, "pin").and_then(|e| self.pin(e, "at the top level")) {
            checked.pin = pin;
        }
        if let Some(entry) = optional(&fields, "commands") {
            checked.commands = self.commands(entry);
            self.command_names(&checked.commands, &checked.servers, entry);
        }
        if let Some(entry) = optional(&fields, "roles") {
            checked.roles = self.roles(entry);
        }
        if let Some(entry) = optional(&fields, "http") {
            checked.http = self.http(entry, &checked.roles);
        }
        checked
    }

    fn startup_timeout(&mut self, entry: &Entry<'_>) -> Duration {
        match self.duration(entry, "`startup_timeout`") {
            Some(timeout) if timeout.is_zero() => {
                let message =
                    "`startup_timeout` must be greater than 0 (a backend needs time to start)";
                self.error(entry.value_pos(), message);
                DEFAULT_STARTUP_TIMEOUT
            }
            Some(timeout) => timeout,
            None => DEFAULT_STARTUP_TIMEOUT,
        }
    }

    fn roles(&mut self, entry: &Entry<'_>) -> BTreeMap<String, Role> {
        let mut roles = BTreeMap::new();
        let Node::Map(map) = entry.value else {
            let expected =
                "a mapping from role names to null (every tool) or a list of glob patterns";
            self.mismatch(entry, "`roles`", expected);
            return roles;
        };
        for role in self.entries(map, &entry.value_at, "in `roles`") {
            if role.key.is_empty() {
                self.error(&role.key_at, "role names must not be empty");
            }
            if let Some(value) = self.role(&role) {
                roles.insert(role.key.to_owned(), value);
            }
        }
        roles
    }

    fn role(&mut self, role: &Entry<'_>) -> Option<Role> {
        let subject = format!("role `{}`", role.key);
        match role.value {
            Node::Null => Some(Role::All),
            Node::Seq(items) => Some(Role::Patterns(self.patterns(items, role, &subject))),
            other => {
                let found = other.describe();
                let message = format!(
                    "{subject} must be null (every tool) or a list of glob patterns, found {found}"
                );
                self.error(&role.value_at, message);
                None
            }
        }
    }

    /// The role's globs, each checked to compile as the routing table will compile it.
    fn patterns(&mut self, items: &[Node], role: &Entry<'_>, subject: &str) -> Vec<String> {
        let mut patterns = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = role.value_at.then(Step::Item(i));
            match item {
                Node::Str(pattern) if pattern.starts_with('@') => {
                    if super::ROLE_SELECTORS.contains(&pattern.as_str()) {
                        patterns.push(pattern.clone());
                    } else {
                        let known = super::ROLE_SELECTORS.join(", ");
                        let hint = match did_you_mean(pattern, super::ROLE_SELECTORS) {
                            Some(near) => format!("did you mean `{near}`? "),
                            None => String::new(),
                        };
                        let message = format!(
                            "{subject}: unknown selector `{pattern}`: {hint}(known: {known})"
                        );
                        self.error(&at, message);
                    }
                }
                Node::Str(pattern) => {
                    // `!glob` keeps out what the glob matches.
                    let glob = pattern.strip_prefix('!').unwrap_or(pattern);
                    match globset::Glob::new(glob) {
                        Ok(_) if glob.is_empty() => {
                            self.error(
                                &at,
                                format!("{subject}: `!` must be followed by a pattern"),
                            );
                        }
                        Ok(_) => patterns.push(pattern.clone()),
                        Err(e) => {
                            let message = format!(
                                "{subject}: invalid glob pattern `{pattern}`: {}",
                                e.kind()
                            );
                            self.error(&at, message);
                        }
                    }
                }
                other => self.not_a_glob(&at, subject, i, other),
            }
        }
        patterns
    }
}

/// The shared vocabulary of the checks: entries, fields, typed values, errors and warnings.
impl Checker<'_> {
    /// The entries of a mapping with string keys; non-string and repeated keys are errors.
    pub(super) fn entries<'n>(
        &mut self,
        map: &'n [(Node, Node)],
        at: &NodePath,
        context: &str,
    ) -> Vec<Entry<'n>> {
        let mut seen = HashSet::new();
        let mut entries = Vec::new();
        for (i, (key, value)) in map.iter().enumerate() {
            let key_at = at.then(Step::Key(i));
            let Node::Str(key) = key else {
                let found = key.describe();
                self.error(
                    &key_at,
                    format!("keys {context} must be strings, found {found}"),
                );
                continue;
            };
            if !seen.insert(key.as_str()) {
                self.error(&key_at, format!("duplicate key `{key}` {context}"));
                continue;
            }
            let value_at = at.then(Step::Value(i));
            entries.push(Entry {
                key,
                value,
                key_at,
                value_at,
            });
        }
        entries
    }

    /// Like [`Self::entries`], for a mapping whose keys are fixed: any other key is an error.
    pub(super) fn fields<'n>(
        &mut self,
        map: &'n [(Node, Node)],
        at: &NodePath,
        known: &[&str],
        context: &str,
    ) -> Vec<Entry<'n>> {
        let mut fields = Vec::new();
        for entry in self.entries(map, at, context) {
            if known.contains(&entry.key) {
                fields.push(entry);
            } else {
                self.unknown_key(&entry, known, context);
            }
        }
        fields
    }

    fn unknown_key(&mut self, entry: &Entry<'_>, known: &[&str], context: &str) {
        let key = entry.key;
        let expected = known.join(", ");
        let message = match did_you_mean(key, known) {
            Some(near) => format!(
                "unknown key `{key}` {context}: did you mean `{near}`? \
                 (expected one of: {expected})"
            ),
            None => format!("unknown key `{key}` {context} (expected one of: {expected})"),
        };
        self.error(&entry.key_at, message);
    }

    /// Records that item `i` of a list of globs is not a string.
    pub(super) fn not_a_glob(&mut self, at: &NodePath, subject: &str, i: usize, other: &Node) {
        let (n, found, hint) = (i + 1, other.describe(), quote_hint(other));
        let message =
            format!("{subject} must be a list of glob patterns; item {n} is {found}{hint}");
        self.error(at, message);
    }

    /// Records "`subject` must be `expected`, found …" at the value.
    pub(super) fn mismatch(&mut self, entry: &Entry<'_>, subject: &str, expected: &str) {
        let found = entry.value.describe();
        let hint = if expected.contains("string") {
            quote_hint(entry.value)
        } else {
            ""
        };
        let message = format!("{subject} must be {expected}, found {found}{hint}");
        self.error(entry.value_pos(), message);
    }

    pub(super) fn duration(&mut self, entry: &Entry<'_>, subject: &str) -> Option<Duration> {
        match duration::from_node(entry.value) {
            Ok(duration) => Some(duration),
            Err(problem) => {
                self.error(entry.value_pos(), format!("{subject} {problem}"));
                None
            }
        }
    }

    pub(super) fn size(&mut self, entry: &Entry<'_>, subject: &str) -> Option<usize> {
        match size::from_node(entry.value) {
            Ok(bytes) => Some(bytes),
            Err(problem) => {
                self.error(entry.value_pos(), format!("{subject} {problem}"));
                None
            }
        }
    }

    /// A path as written: `~/` is the home directory, a relative path the config file's
    /// directory's (for `cwd` of commands, and the plugins' `python` and `path`).
    pub(super) fn path_value(
        &mut self,
        value: &str,
        at: &NodePath,
        subject: &str,
    ) -> Option<std::path::PathBuf> {
        let path = config_relative(value, self.config_dir, self.env);
        if path.is_none() {
            self.error(at, format!("{subject} starts with `~` but HOME is not set"));
        }
        path
    }

    /// `pin: quarantine | warn | off`.
    pub(super) fn pin(&mut self, entry: &Entry<'_>, context: &str) -> Option<super::PinMode> {
        use super::PinMode;
        const MODES: &[(&str, PinMode)] = &[
            ("quarantine", PinMode::Quarantine),
            ("warn", PinMode::Warn),
            ("off", PinMode::Off),
        ];
        self.choice(entry, "pin", context, MODES)
    }

    pub(super) fn boolean(&mut self, entry: &Entry<'_>, subject: &str) -> Option<bool> {
        match entry.value {
            Node::Bool(value) => Some(*value),
            _ => {
                self.mismatch(entry, subject, "true or false");
                None
            }
        }
    }

    /// A string that must be one of `choices` (config spelling, value), with "did you mean".
    /// `key` names it in messages: "unknown scope `per_client` in server `fs`: …".
    pub(super) fn choice<T: Copy>(
        &mut self,
        entry: &Entry<'_>,
        key: &str,
        context: &str,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let expected = names.join(", ");
        let Node::Str(value) = entry.value else {
            let subject = format!("`{key}` {context}");
            self.mismatch(entry, &subject, &format!("one of: {expected}"));
            return None;
        };
        if let Some((_, chosen)) = choices.iter().find(|(name, _)| name == value) {
            return Some(*chosen);
        }
        let message = match did_you_mean(value, &names) {
            Some(near) => format!(
                "unknown {key} `{value}` {context}: did you mean `{near}`? \
                 (expected one of: {expected})"
            ),
            None => format!("unknown {key} `{value}` {context} (expected one of: {expected})"),
        };
        self.error(&entry.value_at, message);
        None
    }

    /// A variable for `${NAME}`: the server's env file's, else the global env file's, else the
    /// environment's. The files come first: they are what the user wrote for this purpose.
    pub(super) fn lookup(&self, name: &str) -> Option<String> {
        self.server_vars
            .get(name)
            .or_else(|| self.global_vars.get(name))
            .cloned()
            .or_else(|| (self.env)(name))
    }

    /// Records an error made elsewhere (in an env file).
    pub(super) fn push_error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    pub(super) fn error(&mut self, at: &NodePath, message: impl Into<String>) {
        let mark = self.locator.node(at);
        self.error_at(mark, message);
    }

    pub(super) fn error_at(&mut self, mark: Option<Mark>, message: impl Into<String>) {
        let (line, column) = mark.map_or((0, 0), |m| (m.line, m.column));
        self.errors
            .push(ConfigError::at(self.file, line, column, message));
    }

    pub(super) fn warn(&mut self, at: &NodePath, message: impl Into<String>) {
        let mark = self.locator.node(at);
        self.warn_at(mark, message);
    }

    pub(super) fn warn_at(&mut self, mark: Option<Mark>, message: impl Into<String>) {
        let (line, column) = mark.map_or((0, 0), |m| (m.line, m.column));
        let warning = ConfigError::at(self.file, line, column, message);
        self.warnings.push(warning.to_string());
    }

    /// `file:line:column` of a mark, for messages that cite a place.
    pub(super) fn cite(&self, mark: Option<Mark>) -> String {
        let (line, column) = mark.map_or((0, 0), |m| (m.line, m.column));
        let place = ConfigError::at(self.file, line, column, "").to_string();
        place.trim_end_matches([':', ' ']).to_owned()
    }
}

/// `value` as a path: `~/…` in the home directory, a relative path in `config_dir`; `None`
/// for a `~` path when HOME is not set.
pub(super) fn config_relative(
    value: &str,
    config_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<std::path::PathBuf> {
    let home_relative = value
        .strip_prefix("~/")
        .or(value.strip_prefix('~').filter(|rest| rest.is_empty()));
    let path = match home_relative {
        Some(rest) => std::path::PathBuf::from(env("HOME")?).join(rest),
        None => config_dir.join(value),
    };
    Some(path.components().collect())
}
