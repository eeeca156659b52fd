//! The gateway's configuration: finding `gateway.yaml`, reading it and checking it into a
//! [`Config`], with every problem reported at its `file:line:column`, all of them in one pass.
//!
//! The format is mcp-unify's, accepted as is (`servers.<name>.command/args/env/enabled`,
//! `idle_timeout`, `roles`, `plugins`), plus `cwd`, a per-server `idle_timeout`, remote
//! servers (`url`, `headers`, `transport`), `prefix`, `scope`, `startup_timeout`,
//! `discovery_wait`, `call_timeout`,
//! `max_message`, the `http` listener and `commands` (tools that run a program, checked in
//! `commands`); `plugins` become plugin hosts, servers like the others (`plugins`,
//! `plugin_sources`). How the work is split:
//!
//! - `tree` reads the YAML into a tree that keeps order and duplicates;
//! - `locate` finds where a node of that tree is in the text (yaml_serde has no spans);
//! - `checker`, `server` (with `names` for server names and prefixes, `remote` for `url`,
//!   `headers` and `transport`) and `http` check the tree against the format and build the values;
//! - `env_file` reads the dotenv files `env_file:` names, whose variables `${VAR}` sees first;
//! - `expand` (`${VAR}`), `duration`, `size`, `suggest` (did you mean) and `hash` (spec hashes) are the
//!   small pieces they use. Where the file is, is [`crate::paths`]' business.
//!
//! This module only reads: it never starts anything and never touches the environment itself
//! except through the lookup [`load`] hands to [`parse`]. Files it reads: the config, the env
//! files it names (in `parse`) and, in `load`, the plugins' sources.

mod checker;
mod commands;
mod duration;
mod env_file;
mod error;
mod expand;
mod hash;
mod http;
mod locate;
mod names;
mod plugin_sources;
mod plugins;
mod remote;
mod server;
mod shaping;
mod size;
mod suggest;
mod surface;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use commands::{CommandTool, DEFAULT_COMMAND_TIMEOUT, Param, ParamKind, placeholder};
pub use env_file::{
    EnvFile, EnvFileError, MAX_ENV_FILE, env_file_line, is_env_name, named_env_files,
    parse_env_file, read_env_file,
};
pub use error::{ConfigError, ConfigErrors};
pub use hash::fnv1a64;
pub use names::{MAX_NAME, exposed_name, named_under, shorten};
pub use plugin_sources::{Sources as PluginSources, Watched as PluginWatched};
pub use plugins::{DEFAULT_PYTHON, PLUGINS_SERVER, PluginHost, PluginModule};
pub use shaping::Shape;
pub use size::display as display_size;
pub use surface::{
    BUILTIN_TOOLS, Offered, exposed_names, resource_role_name, role_warnings, shaping_warnings,
};

/// Finds the config file as a daemon a person starts does ([`crate::paths::discover`], the
/// working directory first), with a missing one as a [`ConfigError`].
pub fn discover(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    crate::paths::discover(explicit, crate::paths::Discovery::WorkingDirFirst)
        .map_err(|missing| ConfigError::whole_file(&missing.path, missing.problem))
}

/// A checked config: every value typed, every `${VAR}` expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file it was loaded from (absolute).
    pub path: PathBuf,
    /// How long an unused backend keeps running; [`Duration::ZERO`] = never stop it.
    pub idle_timeout: Duration,
    /// Bound for a backend's start + initialize + tools/list during discovery.
    pub startup_timeout: Duration,
    /// How long a list waits for servers being discovered (no cached lists yet) before it is
    /// answered with what is known; late servers then send list_changed. Zero: at once.
    /// `None`: the gateway's default (2 s).
    pub discovery_wait: Option<Duration>,
    /// How long a forwarded request may take before the gateway cancels it upstream and
    /// answers with an error; [`Duration::ZERO`] = no limit.
    pub call_timeout: Duration,
    /// The longest message (one line on stdio, one event on legacy SSE) a backend may send; a
    /// longer one stops the backend rather than grow the daemon.
    pub max_message: usize,
    /// Every server, including disabled ones.
    pub servers: BTreeMap<String, ServerConfig>,
    /// The file writes `servers` as a mapping, even an empty one (`servers: {}`): a config with
    /// no servers that does not is more likely an empty or truncated file (a reload refuses it
    /// when the live config has servers).
    pub servers_written: bool,
    pub roles: BTreeMap<String, Role>,
    /// The HTTP listener, if the config has an `http` section.
    pub http: Option<HttpConfig>,
    /// Tools that run a program (`commands`), in the order written.
    pub commands: Vec<CommandTool>,
    /// What happens when a server's tool definitions change after they were first seen
    /// (`pin:`); a server's own `pin` wins.
    pub pin: PinMode,
    /// Non-fatal problems, each `file:line:col: message`.
    pub warnings: Vec<String>,
    /// The global `env_file` (absolute), whose variables `${VAR}` sees before the environment.
    pub env_file: Option<PathBuf>,
    /// Every env file the config names (the global one and the servers'), absolute: a change
    /// to one is a change of the config (the watch follows them).
    pub env_files: Vec<PathBuf>,
}

/// One backend MCP server, as the config describes it: a local program (`command`, spoken to
/// over stdio) or a remote endpoint (`url`, over Streamable HTTP or legacy SSE).
///
/// `Debug` is written by hand: env and header values are secrets and print as `***`, and so does
/// everything in `url` after its origin (a query or path may carry a key).
#[derive(Clone, PartialEq)]
pub struct ServerConfig {
    pub name: String,
    /// The program to run; empty for a remote server.
    pub command: String,
    /// After `${VAR}` expansion.
    pub args: Vec<String>,
    /// After `${VAR}` expansion.
    pub env: BTreeMap<String, String>,
    /// Variables a `scope: per-client` instance takes from its client's environment (sent by
    /// the shim in its hello), over `env` and the daemon's own.
    pub pass_env: Vec<String>,
    /// After `${VAR}` expansion, absolute (relative paths resolve against the config's directory).
    pub cwd: Option<PathBuf>,
    /// How to reach the server: [`Transport::Stdio`] with `command`, the others with `url`.
    pub transport: Transport,
    /// After `${VAR}` expansion; an absolute `http(s)://` URL. `Some` iff `transport` is not
    /// [`Transport::Stdio`]. May hold a secret: show it with [`Self::redacted_url`].
    pub url: Option<String>,
    /// Extra HTTP headers for a remote server, names as written (unique ignoring case). Values
    /// are after `${VAR}` expansion and are secrets.
    pub headers: BTreeMap<String, String>,
    /// Exposed names are `<prefix>_<name>`; `""` = unprefixed. Defaults to the server name.
    pub prefix: String,
    /// Whether all clients share one backend instance or each client session gets its own.
    pub scope: Scope,
    /// False if `enabled: false` or a variable it needs is not set.
    pub enabled: bool,
    /// Why it is disabled: "disabled in config" or
    /// "missing environment variable GITHUB_TOKEN (gateway.yaml:9:22)".
    pub disabled_reason: Option<String>,
    /// Per-server override of [`Config::idle_timeout`].
    pub idle_timeout: Option<Duration>,
    /// Per-server override of [`Config::call_timeout`].
    pub call_timeout: Option<Duration>,
    /// Per-server override of [`Config::max_message`].
    pub max_message: Option<usize>,
    /// Set for the host of `plugins` ([`crate::plugin_host`]), which is otherwise a stdio
    /// server like any other.
    pub plugin: Option<PluginHost>,
    /// Which of its tools clients see, and how (`tools:`); applied by the routing table, so a
    /// change needs no restart (it is not in the spec hash).
    pub tools: Shaping,
    /// The same for its prompts (`prompts:`).
    pub prompts: Shaping,
    /// Its own `pin:`, over [`Config::pin`]. Plugin hosts have `off`: their tools are the
    /// user's own code, whose edits are not a server changing under them.
    pub pin: Option<PinMode>,
}

/// `pin:`: what the gateway does when a tool's definition (name, title, description, input
/// and output schema, annotations) differs from the one pinned when it was first seen, or a
/// server that was pinned lists a new tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinMode {
    /// Hold the tool back (not listed, calls refused saying why) until the user approves it.
    #[default]
    Quarantine,
    /// Only log it.
    Warn,
    /// Pin nothing.
    Off,
}

impl PinMode {
    /// The config's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PinMode::Quarantine => "quarantine",
            PinMode::Warn => "warn",
            PinMode::Off => "off",
        }
    }
}

/// A server's `tools:` or `prompts:`: which of its items clients see, under which names and
/// descriptions. Every key names items by the server's own names.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Shaping {
    /// Globs; `None` = every item (`allow: []` lets none through).
    pub allow: Option<Vec<String>>,
    /// Globs, applied after `allow`.
    pub deny: Vec<String>,
    /// Original name → the name to expose under the server's prefix.
    pub rename: BTreeMap<String, String>,
    /// Original name → the description clients see instead of the server's.
    pub describe: BTreeMap<String, String>,
}

impl Shaping {
    /// Whether it changes nothing (the server's items are shown as they are).
    pub fn is_identity(&self) -> bool {
        self == &Shaping::default()
    }
}

/// How the gateway talks to a backend (`transport:` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `stdio`: a child process started from `command`.
    Stdio,
    /// `streamable-http`: MCP's Streamable HTTP at `url` (the default with `url`).
    StreamableHttp,
    /// `sse`: the legacy HTTP+SSE transport (2024-11-05) at `url`.
    Sse,
}

impl Transport {
    /// The config's spelling: `stdio`, `streamable-http` or `sse`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Stdio => "stdio",
            Transport::StreamableHttp => "streamable-http",
            Transport::Sse => "sse",
        }
    }
}

/// How many backend instances a server has (`scope:` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// `shared`: one instance for every client.
    #[default]
    Shared,
    /// `per-client`: one instance per client session.
    PerClient,
}

impl Scope {
    /// The config's spelling: `shared` or `per-client`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Shared => "shared",
            Scope::PerClient => "per-client",
        }
    }
}

impl ServerConfig {
    /// A hash of what determines the backend: command, args, env and cwd, and for a remote
    /// server its transport, url and headers (not the name, `enabled`, `idle_timeout`, `prefix`
    /// or `scope`). Stable across runs and Rust versions: it keys the schema cache, and on reload
    /// an unchanged hash means the running backend can be kept.
    ///
    /// The connection fields are hashed only when there is something in them (a transport other
    /// than stdio, a url or headers), so a stdio server hashes as it did before they existed and
    /// its schema cache stays valid across the upgrade.
    pub fn spec_hash(&self) -> u64 {
        let mut hasher = hash::Fnv1a::new();
        hasher.field(b"mcpgw-spec-1");
        hasher.field(self.command.as_bytes());
        hasher.count(self.args.len());
        for arg in &self.args {
            hasher.field(arg.as_bytes());
        }
        hasher.count(self.env.len());
        for (key, value) in &self.env {
            hasher.field(key.as_bytes());
            hasher.field(value.as_bytes());
        }
        // Left out when empty, so that the hash of every spec without it stays what it was.
        if !self.pass_env.is_empty() {
            hasher.field(b"pass_env");
            hasher.count(self.pass_env.len());
            for name in &self.pass_env {
                hasher.field(name.as_bytes());
            }
        }
        match &self.cwd {
            None => hasher.write(&[0]),
            Some(dir) => {
                hasher.write(&[1]);
                hasher.field(&path_bytes(dir));
            }
        }
        if self.transport != Transport::Stdio || self.url.is_some() || !self.headers.is_empty() {
            hasher.field(b"remote");
            hasher.field(self.transport.as_str().as_bytes());
            match &self.url {
                None => hasher.write(&[0]),
                Some(url) => {
                    hasher.write(&[1]);
                    hasher.field(url.as_bytes());
                }
            }
            hasher.count(self.headers.len());
            for (name, value) in &self.headers {
                hasher.field(name.as_bytes());
                hasher.field(value.as_bytes());
            }
        }
        // A plugin host changes with its plugins' files, which its command line does not show.
        if let Some(plugin) = &self.plugin {
            hasher.field(b"plugin-sources");
            hasher.field(&plugin.sources.fingerprint.to_le_bytes());
        }
        hasher.finish()
    }

    /// This server's pin mode: its own if set, else the global one.
    pub fn effective_pin(&self, global: PinMode) -> PinMode {
        self.pin.unwrap_or(global)
    }

    /// This server's idle timeout: its own if set, else the global one.
    pub fn effective_idle_timeout(&self, global: Duration) -> Duration {
        self.idle_timeout.unwrap_or(global)
    }

    /// This server's call timeout: its own if set, else the global one (zero = none).
    pub fn effective_call_timeout(&self, global: Duration) -> Duration {
        self.call_timeout.unwrap_or(global)
    }

    /// This server's message size limit: its own if set, else the global one.
    pub fn effective_max_message(&self, global: usize) -> usize {
        self.max_message.unwrap_or(global)
    }

    /// `url` safe to log or show in status: its origin (`https://host:port`), with `/***` in
    /// place of any path, query or fragment, and user info left out; `None` for a stdio server.
    pub fn redacted_url(&self) -> Option<String> {
        self.url.as_deref().map(redact_url)
    }
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary
/// (`str::floor_char_boundary`, which needs a newer Rust than the crate's minimum).
pub fn cut_at(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` with every `http://` or `https://` URL in it cut to its origin as [`redact_url`]
/// does: for messages that may quote a URL in any spelling (a library's normalised form, one
/// with escapes), where replacing the configured string would miss it.
pub fn redact_urls(text: &str) -> std::borrow::Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    let starts: Vec<usize> = lower
        .match_indices("http")
        .map(|(at, _)| at)
        .filter(|&at| {
            let rest = &lower[at..];
            rest.starts_with("http://") || rest.starts_with("https://")
        })
        .collect();
    if starts.is_empty() {
        return text.into();
    }
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for at in starts {
        if at < copied {
            continue;
        }
        let len = text[at..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`' | '<' | '>' | ')'))
            .unwrap_or(text.len() - at);
        out.push_str(&text[copied..at]);
        out.push_str(&redact_url(&text[at..at + len]));
        copied = at + len;
    }
    out.push_str(&text[copied..]);
    out.into()
}

/// `scheme://host[:port]`, then `/***` if anything followed. User info (`user:pass@`) is
/// dropped, even when a password holds `?` or `#` (which a URL should escape, and a
/// hand-written one may not): the host starts after the last `@` before the path.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let before_path = rest.find('/').unwrap_or(rest.len());
    let host_start = rest[..before_path].rfind('@').map_or(0, |at| at + 1);
    let end = rest[host_start..]
        .find(['/', '?', '#'])
        .map_or(rest.len(), |i| host_start + i);
    let host = &rest[host_start..end];
    let tail = if end < rest.len() { "/***" } else { "" };
    format!("{scheme}://{host}{tail}")
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: BTreeMap<&str, Redacted> = self
            .env
            .keys()
            .map(|key| (key.as_str(), Redacted))
            .collect();
        let headers: BTreeMap<&str, Redacted> = self
            .headers
            .keys()
            .map(|name| (name.as_str(), Redacted))
            .collect();
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("args", &self.args)
            .field("env", &env)
            .field("pass_env", &self.pass_env)
            .field("cwd", &self.cwd)
            .field("transport", &self.transport)
            .field("url", &self.redacted_url())
            .field("headers", &headers)
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .field("idle_timeout", &self.idle_timeout)
            .field("call_timeout", &self.call_timeout)
            .field("max_message", &self.max_message)
            .field("plugin", &self.plugin)
            .field("tools", &self.tools)
            .field("prompts", &self.prompts)
            .field("pin", &self.pin)
            .finish()
    }
}

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The HTTP listener (`http:`): Streamable HTTP at `/mcp` and legacy SSE at `/sse`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Where to listen. A non-loopback address is only accepted with at least one usable token.
    pub listen: SocketAddr,
    /// The usable bearer tokens: one whose `${VAR}` is not set is left out (with a warning).
    /// Empty = no authentication, which the check allows only on a loopback address.
    pub tokens: Vec<HttpToken>,
    /// Browser `Origin`s accepted (`scheme://host[:port]`, `:*` for any port, or `null`); a
    /// request without `Origin` is always accepted.
    pub allowed_origins: Vec<String>,
    /// `Host` values accepted besides loopback names (`host` or `host:port`).
    pub allowed_hosts: Vec<String>,
    /// How long an HTTP session may go without a request; [`Duration::ZERO`] = never expire.
    pub session_idle_timeout: Duration,
    /// Open connections at once; past it the listener waits for one to close.
    pub max_connections: usize,
    /// How long a connection has to send each request head (a new one, and a kept-alive one
    /// after a response); then it is closed.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive; then 408 and the connection is closed.
    pub body_timeout: Duration,
    /// How long writing a response may make no progress (its client stopped reading); then the
    /// connection is closed.
    pub write_timeout: Duration,
    /// Streamable HTTP sessions alive at once (every role); at it, as at the role's cap.
    pub max_sessions: usize,
    /// Streamable HTTP sessions of one role alive at once (`max_sessions_per_role`); at it,
    /// the role's least recently used idle session makes room for a new one.
    pub max_sessions_per_role: usize,
}

/// A bearer token and the role its clients get.
///
/// `Debug` is written by hand: the token is a secret and prints as `***`.
#[derive(Clone, PartialEq)]
pub struct HttpToken {
    /// After `${VAR}` expansion; never empty.
    pub token: String,
    /// A role defined in `roles`, or `None` for the default role.
    pub role: Option<String>,
}

impl fmt::Debug for HttpToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpToken")
            .field("token", &Redacted)
            .field("role", &self.role)
            .finish()
    }
}

/// The role of a client that names none, if the config defines it (and of every HTTP client
/// when `http` has no tokens).
pub const DEFAULT_ROLE: &str = "default";

/// Which tools a client with this role sees (and may call).
#[derive(Debug, Clone, PartialEq)]
pub enum Role {
    /// `null` in the config: every tool.
    All,
    /// Glob patterns over exposed names (`filesystem_*`), exclusions (`!filesystem_write_*`)
    /// and annotation selectors ([`ROLE_SELECTORS`]); each is known to compile.
    Patterns(Vec<String>),
}

/// The role entries that select tools by their annotations: `@read-only` (`readOnlyHint`
/// true) and `@!destructive` (read-only, or `destructiveHint` false).
pub const ROLE_SELECTORS: &[&str] = &["@read-only", "@!destructive"];

/// Reads and checks the config file, looking variables up in the process environment, and
/// reads the plugins' sources ([`PluginSources`]).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::whole_file(path, format!("cannot read the config file: {e}")))?;
    // A variable whose value is not UTF-8 cannot be put in a string: it counts as unset.
    let mut config = parse(&text, path, &|name| std::env::var(name).ok())?;
    for server in config.servers.values_mut() {
        if let Some(plugin) = &mut server.plugin {
            plugin.sources = plugin_sources::find(plugin);
        }
    }
    Ok(config)
}

/// Checks config text. `path` is where it came from: messages cite it as given, relative `cwd`s
/// and env files resolve against its directory. `env` looks up variables for `${VAR}` that no
/// env file (`env_file:`, read from disk here) sets.
pub fn parse(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    // libyaml would count a byte-order mark in its offsets, which we use to point inside values.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let root = tree::parse(text).map_err(|e| syntax_error(path, &e))?;
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let config_dir = absolute.parent().unwrap_or(Path::new("/")).to_path_buf();
    let checked = checker::check(&root, text, path, &config_dir, env).map_err(ConfigErrors)?;
    Ok(Config {
        path: absolute,
        idle_timeout: checked.idle_timeout,
        startup_timeout: checked.startup_timeout,
        discovery_wait: checked.discovery_wait,
        call_timeout: checked.call_timeout,
        max_message: checked.max_message,
        servers: checked.servers,
        servers_written: checked.servers_written,
        roles: checked.roles,
        http: checked.http,
        commands: checked.commands,
        pin: checked.pin,
        warnings: checked.warnings,
        env_file: checked.env_file,
        env_files: checked.env_files,
    })
}

/// A YAML error as a config error; its position moves from the message into the prefix.
fn syntax_error(file: &Path, error: &yaml_serde::Error) -> ConfigError {
    let message = error.to_string();
    let Some(location) = error.location() else {
        return ConfigError::whole_file(file, format!("invalid YAML: {message}"));
    };
    let (line, column) = (location.line(), location.column());
    let message = message.replacen(&format!(" at line {line} column {column}"), "", 1);
    ConfigError::at(file, line, column, format!("invalid YAML: {message}"))
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().into()
}

#[cfg(not(unix))]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    path.to_string_lossy().into_owned().into_bytes().into()
}
