//! Checks `plugins`: mcp-unify's Python plugin modules, run in mcpgw's plugin host
//! ([`crate::plugin_host`]).
//!
//! ```yaml
//! plugins:
//!   - module: my_tools.calculator        # mcp-unify's format, as is
//!   - my_tools.strings                   # mcp-unify also took a bare module name
//!   - module: team.tools
//!     python: ~/venvs/team/bin/python    # default python3
//!     path: [~/src/team]                 # import dirs after the config file's own
//!     prefix: team                       # default none: `add` is exposed as `add`
//! ```
//!
//! Entries whose settings are alike (interpreter, import path, `env`, `cwd`, timeouts, prefix)
//! share one host, which becomes a stdio server in [`Config::servers`](super::Config): named
//! `plugins` when unprefixed, else after its prefix. Everything servers get (lazy start, idle
//! stop, the schema cache, roles, status) they get too. Which files a module is read from is
//! found when the config is loaded ([`super::plugin_sources`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::checker::{Checker, Entry, optional, quote_hint};
use super::locate::{Mark, NodePath, Step};
use super::server::ServerCheck;
use super::tree::Node;
use super::{Scope, ServerConfig, Transport};

const PLUGIN_KEYS: &[&str] = &[
    "module",
    "python",
    "path",
    "env",
    "cwd",
    "prefix",
    "idle_timeout",
    "call_timeout",
];

/// The interpreter when `python` is not set.
pub const DEFAULT_PYTHON: &str = "python3";

/// The server name of the unprefixed plugin host.
pub const PLUGINS_SERVER: &str = "plugins";

/// What makes a server a plugin host: the modules it imports and where from.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginHost {
    pub modules: Vec<PluginModule>,
    /// Where modules are imported from before Python's own path: the config file's directory,
    /// then `path`, in order.
    pub search_path: Vec<PathBuf>,
    /// The modules' source files under `search_path`, as the config was loaded.
    pub sources: super::plugin_sources::Sources,
}

impl PluginHost {
    /// Its modules, for messages: "`a`, `b`".
    fn named(&self) -> String {
        let names: Vec<String> = self
            .modules
            .iter()
            .map(|m| format!("`{}`", m.name))
            .collect();
        names.join(", ")
    }

    /// What the host is told to load.
    pub fn launch(&self) -> crate::plugin_host::Launch {
        crate::plugin_host::Launch {
            modules: self.modules.iter().map(|m| m.name.clone()).collect(),
            search_path: self.search_path.clone(),
            check: false,
        }
    }
}

/// One configured module, and where the config names it (for messages about it).
#[derive(Debug, Clone, PartialEq)]
pub struct PluginModule {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

/// One entry's settings: entries with equal settings share a host.
#[derive(Debug, Clone, PartialEq)]
struct Settings {
    python: String,
    search_path: Vec<PathBuf>,
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    prefix: String,
    idle_timeout: Option<Duration>,
    call_timeout: Option<Duration>,
    disabled_reason: Option<String>,
}

/// Entries that share a host.
struct Group {
    settings: Settings,
    modules: Vec<PluginModule>,
    /// The first entry's place, for messages about the host as a whole.
    mark: Option<Mark>,
}

impl Checker<'_> {
    /// The plugin hosts, as servers to add to `servers` (whose names and prefixes they must
    /// not take).
    pub(super) fn plugins(
        &mut self,
        entry: &Entry<'_>,
        servers: &BTreeMap<String, ServerConfig>,
    ) -> Vec<ServerConfig> {
        let items = match entry.value {
            Node::Seq(items) => items,
            Node::Map(map) if map.is_empty() => return Vec::new(),
            _ => {
                let expected = "a list of plugin modules (`- module: my_tools.calculator`)";
                self.mismatch(entry, "`plugins`", expected);
                return Vec::new();
            }
        };
        let mut groups: Vec<Group> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            let Some((module, settings)) = self.plugin(item, &at) else {
                continue;
            };
            match groups.iter_mut().find(|g| g.settings == settings) {
                Some(group) if group.modules.iter().any(|m| m.name == module.name) => {
                    let message = format!("plugin module `{}` is listed twice", module.name);
                    self.warn(&at, message);
                }
                Some(group) => group.modules.push(module),
                None => {
                    let mark = self.locator.node(&at);
                    groups.push(Group {
                        settings,
                        modules: vec![module],
                        mark,
                    });
                }
            }
        }
        let mut hosts: Vec<ServerConfig> = Vec::new();
        for group in groups {
            if let Some(host) = self.plugin_host(group, servers, &hosts) {
                hosts.push(host);
            }
        }
        hosts
    }

    /// One entry: its module and its settings.
    fn plugin(&mut self, item: &Node, at: &NodePath) -> Option<(PluginModule, Settings)> {
        let (name, name_at, fields) = match item {
            Node::Str(name) => (name.as_str(), at.clone(), Vec::new()),
            Node::Map(map) => {
                let fields = self.fields(map, at, PLUGIN_KEYS, "in a plugin");
                let Some(module) = optional(&fields, "module") else {
                    let message = "a plugin needs `module` (the Python module to import, such as \
                                   `my_tools.calculator`)";
                    self.error(at, message);
                    return None;
                };
                let Node::Str(name) = module.value else {
                    self.mismatch(module, "`module` of a plugin", "a string (a module name)");
                    return None;
                };
                (name.as_str(), module.value_at.clone(), fields)
            }
            other => {
                let (found, hint) = (other.describe(), quote_hint(other));
                let message = format!(
                    "a plugin must be a module name or a mapping with `module`, found {found}{hint}"
                );
                self.error(at, message);
                return None;
            }
        };
        if !is_module_name(name) {
            let message = format!(
                "`{name}` is not a Python module name (dotted identifiers, such as \
                 `my_tools.calculator`)"
            );
            self.error(&name_at, message);
            return None;
        }
        let mark = self.locator.node(&name_at);
        let (line, column) = mark.map_or((0, 0), |m| (m.line, m.column));
        let module = PluginModule {
            name: name.to_owned(),
            line,
            column,
        };
        let settings = self.plugin_settings(&fields, name)?;
        Some((module, settings))
    }

    fn plugin_settings(&mut self, fields: &[Entry<'_>], module: &str) -> Option<Settings> {
        let mut check = ServerCheck::plugin(module, format!("in plugin `{module}`"));
        let context = check.context.clone();
        let subject = |key: &str| format!("`{key}` {context}");
        let python = match optional(fields, "python") {
            Some(entry) => self.python(entry, &mut check)?,
            None => DEFAULT_PYTHON.to_owned(),
        };
        let mut search_path = vec![self.config_dir.to_path_buf()];
        if let Some(entry) = optional(fields, "path") {
            search_path.extend(self.import_path(entry, &mut check));
        }
        let env_entry = optional(fields, "env");
        let env = env_entry
            .map(|e| self.env_vars(e, &mut check))
            .unwrap_or_default();
        if let Some(entry) = env_entry {
            for name in env.keys().filter(|name| name.starts_with("PYTHON")) {
                let message = format!(
                    "`env.{name}` {context} has no effect: the plugin host runs with `python -E`; \
                     import directories go in `path`"
                );
                self.warn(&entry.key_at, message);
            }
        }
        // A missing variable disables the host below (with its warning), rather than drop
        // the entry: `cwd` and `python` then stand as far as they expanded.
        let cwd = optional(fields, "cwd").and_then(|entry| self.cwd(entry, &mut check));
        let prefix = match optional(fields, "prefix") {
            Some(entry) => self.prefix(entry, &check)?,
            None => String::new(),
        };
        let idle_timeout = optional(fields, "idle_timeout")
            .and_then(|e| self.duration(e, &subject("idle_timeout")));
        let call_timeout = optional(fields, "call_timeout")
            .and_then(|e| self.duration(e, &subject("call_timeout")));
        let (_, disabled_reason) = self.availability(true, &check);
        Some(Settings {
            python,
            search_path,
            env,
            cwd,
            prefix,
            idle_timeout,
            call_timeout,
            disabled_reason,
        })
    }

    /// `python`: a program on `PATH` (`python3.12`) or a path to one (a venv's `bin/python`),
    /// `~/` being the home directory and a relative path the config file's directory's.
    fn python(&mut self, entry: &Entry<'_>, check: &mut ServerCheck<'_>) -> Option<String> {
        let subject = format!("`python` {}", check.context);
        let Node::Str(raw) = entry.value else {
            self.mismatch(entry, &subject, "a string (the Python interpreter to run)");
            return None;
        };
        let expanded = self.expand_checked(raw, &entry.value_at, &subject, check)?;
        let value = expanded.value;
        if !expanded.complete {
            return Some(raw.clone());
        }
        if value.trim().is_empty() {
            self.error(&entry.value_at, format!("{subject} must not be empty"));
            return None;
        }
        // A bare name (`python3.12`, also from `${PY}`) is looked up on PATH when it runs.
        if !value.contains('/') && !value.starts_with('~') {
            return Some(value);
        }
        let path = self.path_value(&value, &entry.value_at, &subject)?;
        Some(path.to_string_lossy().into_owned())
    }

    /// `path`: one directory or a list of them.
    fn import_path(&mut self, entry: &Entry<'_>, check: &mut ServerCheck<'_>) -> Vec<PathBuf> {
        let subject = format!("`path` {}", check.context);
        let items: Vec<(NodePath, &Node)> = match entry.value {
            Node::Seq(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| (entry.value_at.then(Step::Item(i)), item))
                .collect(),
            single => vec![(entry.value_at.clone(), single)],
        };
        let mut dirs = Vec::new();
        for (at, item) in items {
            match item {
                Node::Str(raw) => dirs.extend(self.local_path(raw, &at, &subject, check)),
                other => {
                    let (found, hint) = (other.describe(), quote_hint(other));
                    let message = format!(
                        "{subject} must be a directory or a list of them, found {found}{hint}"
                    );
                    self.error(&at, message);
                }
            }
        }
        dirs
    }

    /// A path value: `${VAR}` expanded, `~/` the home directory, relative to the config
    /// file's directory.
    fn local_path(
        &mut self,
        raw: &str,
        at: &NodePath,
        subject: &str,
        check: &mut ServerCheck<'_>,
    ) -> Option<PathBuf> {
        let expanded = self.expand_checked(raw, at, subject, check)?;
        if expanded.value.is_empty() {
            if expanded.complete {
                self.error(at, format!("{subject} must not be empty"));
            }
            return None;
        }
        self.path_value(&expanded.value, at, subject)
    }

    /// A group as a server: its name and prefix must be free, and a second unprefixed group
    /// (entries with different settings) has none to take.
    fn plugin_host(
        &mut self,
        group: Group,
        servers: &BTreeMap<String, ServerConfig>,
        hosts: &[ServerConfig],
    ) -> Option<ServerConfig> {
        let settings = group.settings;
        let first = &group.modules[0].name;
        let name = if settings.prefix.is_empty() {
            PLUGINS_SERVER.to_owned()
        } else {
            settings.prefix.clone()
        };
        if let Some(other) = hosts.iter().find(|h| h.prefix == settings.prefix) {
            let modules = other
                .plugin
                .as_ref()
                .map_or(String::new(), PluginHost::named);
            let shown = prefix_shown(&settings.prefix);
            let message = format!(
                "plugin `{first}` has settings other than plugin {modules}, so it runs in another \
                 host, and both would expose tools {shown}: give one of them a different `prefix`"
            );
            self.error_at(group.mark, message);
            return None;
        }
        if let Some(server) = servers.values().find(|s| s.prefix == settings.prefix) {
            let message = if settings.prefix.is_empty() {
                format!(
                    "plugin `{first}` is unprefixed (as in mcp-unify), and so is server `{}`: their \
                     tools would compete for every name; give the plugins a `prefix`",
                    server.name
                )
            } else {
                format!(
                    "plugin `{first}` uses the prefix `{}`, which server `{}` already uses; set a \
                     different `prefix`",
                    settings.prefix, server.name
                )
            };
            self.error_at(group.mark, message);
            return None;
        }
        if let Some(other) = hosts.iter().find(|h| h.name == name) {
            let modules = other
                .plugin
                .as_ref()
                .map_or(String::new(), PluginHost::named);
            let message = format!(
                "plugin `{first}` would run as server `{name}`, as plugin {modules} does (the \
                 unprefixed host is named `{PLUGINS_SERVER}`); choose another `prefix`"
            );
            self.error_at(group.mark, message);
            return None;
        }
        if servers.contains_key(&name) {
            let message = format!(
                "plugin `{first}` runs as server `{name}`, which is already the name of a server; \
                 rename that server or give the plugins a `prefix`"
            );
            self.error_at(group.mark, message);
            return None;
        }
        let plugin = PluginHost {
            modules: group.modules,
            search_path: settings.search_path,
            sources: Default::default(),
        };
        let mut env = settings.env;
        env.insert(
            crate::plugin_host::SOURCE_VAR.to_owned(),
            crate::plugin_host::SOURCE.to_owned(),
        );
        Some(ServerConfig {
            name,
            command: settings.python,
            args: plugin.launch().args(),
            env,
            pass_env: Vec::new(),
            cwd: Some(
                settings
                    .cwd
                    .unwrap_or_else(|| self.config_dir.to_path_buf()),
            ),
            transport: Transport::Stdio,
            url: None,
            headers: BTreeMap::new(),
            prefix: settings.prefix,
            scope: Scope::Shared,
            enabled: settings.disabled_reason.is_none(),
            disabled_reason: settings.disabled_reason,
            idle_timeout: settings.idle_timeout,
            call_timeout: settings.call_timeout,
            max_message: None,
            plugin: Some(plugin),
            tools: Default::default(),
            prompts: Default::default(),
            pin: Some(super::PinMode::Off),
        })
    }
}

fn prefix_shown(prefix: &str) -> String {
    if prefix.is_empty() {
        "unprefixed".to_owned()
    } else {
        format!("as `{prefix}_…`")
    }
}

/// Dotted Python identifiers (ASCII: what a config names is a file on disk).
fn is_module_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}
