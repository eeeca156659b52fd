//! Checks `commands`: tools that run a program, defined in the config (issue 12).
//!
//! ```yaml
//! commands:
//!   git_log:
//!     description: "Recent commits of the project"
//!     run: ["git", "log", "--oneline", "-n", "{count}"]
//!     input: { count: { type: integer, default: 10, minimum: 1, maximum: 200 } }
//!     cwd: ~/src/project
//!     timeout: 10s
//! ```
//!
//! An argument is substituted only as a whole element of `run` (`"{count}"`), never into a
//! string and never through a shell, so no argument can add a command or split into several;
//! one that starts with `-` is refused unless `run` has `"--"` before it (`backend::command`),
//! so that it cannot become an option either.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::checker::{Checker, Entry, optional};
use super::tree::Node;

const COMMAND_KEYS: &[&str] = &["description", "run", "input", "cwd", "timeout"];
const PARAM_KEYS: &[&str] = &[
    "type",
    "description",
    "default",
    "minimum",
    "maximum",
    "enum",
];

/// How long a command may run when its `timeout` is not set.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A tool that runs a program.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandTool {
    pub name: String,
    pub description: String,
    /// The program and its arguments; an element `{param}` is replaced by that argument.
    pub run: Vec<String>,
    pub input: BTreeMap<String, Param>,
    /// Where it runs (absolute); the config file's directory if not set.
    pub cwd: PathBuf,
    pub timeout: Duration,
}

/// One argument of a command: a JSON Schema subset.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub kind: ParamKind,
    pub description: Option<String>,
    /// Present: the argument may be left out.
    pub default: Option<serde_json::Value>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub allowed: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    String,
    Integer,
    Number,
    Boolean,
}

const KINDS: &[(&str, ParamKind)] = &[
    ("string", ParamKind::String),
    ("integer", ParamKind::Integer),
    ("number", ParamKind::Number),
    ("boolean", ParamKind::Boolean),
];

impl ParamKind {
    pub fn as_str(self) -> &'static str {
        KINDS
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("string", |(n, _)| n)
    }
}

impl Checker<'_> {
    pub(super) fn commands(&mut self, entry: &Entry<'_>) -> Vec<CommandTool> {
        let Node::Map(map) = entry.value else {
            self.mismatch(entry, "`commands`", "a mapping from tool names to commands");
            return Vec::new();
        };
        let mut commands = Vec::new();
        for command in self.entries(map, &entry.value_at, "in `commands`") {
            if let Some(tool) = self.command_tool(&command) {
                commands.push(tool);
            }
        }
        commands
    }

    fn command_tool(&mut self, command: &Entry<'_>) -> Option<CommandTool> {
        let name = command.key;
        let context = format!("in command `{name}`");
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            let message = format!(
                "command name `{name}` must be 1 to 64 letters, digits, `_` or `-` (it is the \
                 tool's name)"
            );
            self.error(&command.key_at, message);
        }
        let Node::Map(map) = command.value else {
            self.mismatch(
                command,
                &format!("command `{name}`"),
                "a mapping with `run`",
            );
            return None;
        };
        let fields = self.fields(map, &command.value_at, COMMAND_KEYS, &context);
        let description = match optional(&fields, "description").map(|e| e.value) {
            Some(Node::Str(text)) => text.clone(),
            Some(_) => {
                let entry = optional(&fields, "description").unwrap();
                self.mismatch(entry, &format!("`description` {context}"), "a string");
                String::new()
            }
            None => format!("Runs `{name}`"),
        };
        let input = match optional(&fields, "input") {
            Some(entry) => self.command_input(entry, &context),
            None => BTreeMap::new(),
        };
        let Some(run_entry) = optional(&fields, "run") else {
            let message =
                format!("command `{name}` is missing `run` (the program and its arguments)");
            self.error(&command.key_at, message);
            return None;
        };
        let run = self.command_run(run_entry, &input, &context)?;
        // An argument `run` never uses is asked of the model for nothing.
        if let Some(input_entry) = optional(&fields, "input") {
            for param in input.keys() {
                if !run
                    .iter()
                    .any(|element| placeholder(element) == Some(param))
                {
                    let message = format!(
                        "argument `{param}` in `input` {context} is not used in `run` (write \
                         `\"{{{param}}}\"` where it goes)"
                    );
                    self.warn(&input_entry.key_at, message);
                }
            }
        }
        let cwd = match optional(&fields, "cwd") {
            Some(entry) => self.command_cwd(entry, &context)?,
            None => self.config_dir.to_path_buf(),
        };
        let timeout = match optional(&fields, "timeout") {
            Some(entry) => match self.duration(entry, &format!("`timeout` {context}")) {
                Some(timeout) if timeout.is_zero() => {
                    let message = format!("`timeout` {context} must be more than 0");
                    self.error(entry.value_pos(), message);
                    DEFAULT_COMMAND_TIMEOUT
                }
                Some(timeout) => timeout,
                None => DEFAULT_COMMAND_TIMEOUT,
            },
            None => DEFAULT_COMMAND_TIMEOUT,
        };
        Some(CommandTool {
            name: name.to_owned(),
            description,
            run,
            input,
            cwd,
            timeout,
        })
    }

    fn command_run(
        &mut self,
        entry: &Entry<'_>,
        input: &BTreeMap<String, Param>,
        context: &str,
    ) -> Option<Vec<String>> {
        let subject = format!("`run` {context}");
        let Node::Seq(items) = entry.value else {
            self.mismatch(entry, &subject, "a list: the program, then its arguments");
            return None;
        };
        let mut run = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(super::locate::Step::Item(i));
            let Node::Str(text) = item else {
                let message = format!(
                    "{subject} must be a list of strings; item {} is {}",
                    i + 1,
                    item.describe()
                );
                self.error(&at, message);
                return None;
            };
            if let Some(param) = placeholder(text) {
                if i == 0 {
                    self.error(
                        &at,
                        format!("{subject}: the program must be written, not an argument"),
                    );
                } else if !input.contains_key(param) {
                    let message =
                        format!("{subject} uses `{{{param}}}`, which `input` does not declare");
                    self.error(&at, message);
                }
            } else if text.contains('{') && text.contains('}') && i > 0 {
                let message = format!(
                    "{subject}: `{text}` would substitute into part of an argument; an argument \
                     is substituted only as a whole element (`\"{{name}}\"`)"
                );
                self.warn(&at, message);
            }
            run.push(text.clone());
        }
        if run.is_empty() || run[0].is_empty() {
            self.error(&entry.value_at, format!("{subject} must name a program"));
            return None;
        }
        Some(run)
    }

    /// The directory, `~/` being the home directory and a relative path the config file's.
    fn command_cwd(&mut self, entry: &Entry<'_>, context: &str) -> Option<PathBuf> {
        let Node::Str(raw) = entry.value else {
            self.mismatch(entry, &format!("`cwd` {context}"), "a string (a directory)");
            return None;
        };
        self.path_value(raw, &entry.value_at, &format!("`cwd` {context}"))
    }

    fn command_input(&mut self, entry: &Entry<'_>, context: &str) -> BTreeMap<String, Param> {
        let mut input = BTreeMap::new();
        let Node::Map(map) = entry.value else {
            self.mismatch(
                entry,
                &format!("`input` {context}"),
                "a mapping from argument names to their schema",
            );
            return input;
        };
        let context = format!("in `input` {context}");
        for param in self.entries(map, &entry.value_at, &context) {
            if let Some(checked) = self.command_param(&param, &context) {
                input.insert(param.key.to_owned(), checked);
            }
        }
        input
    }

    fn command_param(&mut self, param: &Entry<'_>, context: &str) -> Option<Param> {
        let name = param.key;
        let subject = format!("argument `{name}` {context}");
        let Node::Map(map) = param.value else {
            self.mismatch(
                param,
                &subject,
                "a mapping such as `{type: integer, default: 10}`",
            );
            return None;
        };
        let fields = self.fields(map, &param.value_at, PARAM_KEYS, &subject);
        let kind = match optional(&fields, "type") {
            Some(entry) => self.choice(entry, "type", &subject, KINDS)?,
            None => ParamKind::String,
        };
        let description = match optional(&fields, "description").map(|e| e.value) {
            Some(Node::Str(text)) => Some(text.clone()),
            _ => None,
        };
        let number = |checker: &mut Self, key: &str| -> Option<f64> {
            let entry = optional(&fields, key)?;
            match entry
                .value
                .to_json()
                .as_ref()
                .and_then(serde_json::Value::as_f64)
            {
                Some(n) => Some(n),
                None => {
                    checker.mismatch(entry, &format!("`{key}` of {subject}"), "a number");
                    None
                }
            }
        };
        let minimum = number(self, "minimum");
        let maximum = number(self, "maximum");
        if let (Some(min), Some(max)) = (minimum, maximum)
            && min > max
        {
            self.error(
                &param.value_at,
                format!("{subject}: `minimum` is over `maximum`"),
            );
        }
        let allowed = match optional(&fields, "enum") {
            Some(entry) => match entry.value.to_json() {
                Some(serde_json::Value::Array(values)) if !values.is_empty() => Some(values),
                _ => {
                    self.mismatch(entry, &format!("`enum` of {subject}"), "a list of values");
                    None
                }
            },
            None => None,
        };
        let mut checked = Param {
            kind,
            description,
            default: None,
            minimum,
            maximum,
            allowed: None,
        };
        // Every allowed value must itself be an argument the type and bounds admit, or the
        // tool's schema would offer a choice every call of which is refused.
        if let (Some(values), Some(entry)) = (&allowed, optional(&fields, "enum")) {
            for (i, value) in values.iter().enumerate() {
                if checked.admit(value).is_err() {
                    let message = format!(
                        "`enum` of {subject}: item {} is not {} {} within its bounds",
                        i + 1,
                        article(kind),
                        kind.as_str()
                    );
                    self.error(&entry.value_at.then(super::locate::Step::Item(i)), message);
                }
            }
        }
        checked.allowed = allowed;
        if let Some(entry) = optional(&fields, "default") {
            let value = entry.value.to_json().unwrap_or(serde_json::Value::Null);
            match checked.admit(&value) {
                Ok(()) => checked.default = Some(value),
                Err(_) => {
                    let message = format!(
                        "`default` of {subject} must be {} {} within its bounds, found {}",
                        article(checked.kind),
                        checked.kind.as_str(),
                        entry.value.describe()
                    );
                    self.error(&entry.value_at, message);
                }
            }
        }
        Some(checked)
    }
}

impl Checker<'_> {
    /// A command's name is its tool's exposed name: it must not be one a server's tools could
    /// have (`<prefix>_…`) or the gateway's (`gateway_…`).
    pub(super) fn command_names(
        &mut self,
        commands: &[CommandTool],
        servers: &BTreeMap<String, super::ServerConfig>,
        entry: &Entry<'_>,
    ) {
        for command in commands {
            let claimed = servers
                .values()
                .map(|s| s.prefix.as_str())
                .chain(["gateway"])
                .find(|prefix| super::named_under(prefix, &command.name));
            if let Some(prefix) = claimed {
                let message = format!(
                    "command `{}` is named like the tools of `{prefix}` (`{prefix}_…`); name it \
                     otherwise",
                    command.name
                );
                self.error(&entry.key_at, message);
            }
        }
    }
}

/// `param` for an element written `{param}`.
pub fn placeholder(element: &str) -> Option<&str> {
    let name = element.strip_prefix('{')?.strip_suffix('}')?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .then_some(name)
}

impl Param {
    /// Whether `value` is a valid argument; the reason if not.
    pub fn admit(&self, value: &serde_json::Value) -> Result<(), String> {
        use serde_json::Value;
        let fits = match (self.kind, value) {
            (ParamKind::String, Value::String(_)) | (ParamKind::Boolean, Value::Bool(_)) => true,
            (ParamKind::Number, Value::Number(_)) => true,
            (ParamKind::Integer, Value::Number(n)) => {
                n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            _ => false,
        };
        // What the client sent is quoted short: it may be anything, of any size.
        let value_text = value.to_string();
        let shown = match value_text.len() > 60 {
            true => format!("{}…", crate::config::cut_at(&value_text, 60)),
            false => value_text,
        };
        if !fits {
            return Err(format!(
                "must be {} {}, not {shown}",
                article(self.kind),
                self.kind.as_str()
            ));
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = self.minimum.filter(|min| n < *min) {
                return Err(format!("must be at least {min}, not {shown}"));
            }
            if let Some(max) = self.maximum.filter(|max| n > *max) {
                return Err(format!("must be at most {max}, not {shown}"));
            }
        }
        if let Some(allowed) = &self.allowed
            && !allowed.contains(value)
        {
            let listed: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
            return Err(format!("must be one of {}, not {shown}", listed.join(", ")));
        }
        Ok(())
    }
}

fn article(kind: ParamKind) -> &'static str {
    match kind {
        ParamKind::Integer => "an",
        _ => "a",
    }
}
