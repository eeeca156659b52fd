//! `env_file:` — a dotenv file of secrets whose variables `${VAR}` expands (globally, and per
//! server over the global one; both over the daemon's environment).
//!
//! The format is dotenv's common core, read strictly: `KEY=value` lines, blank lines, `#`
//! comments, an optional `export ` before the key; a value unquoted (to the end of the line, a
//! `#` after a blank starting a comment: `KEY=#x` is `#x`), in single quotes (literal), or in double quotes (`\n`, `\r`, `\t`,
//! `\\`, `\"` and `\$` escapes; another `\x` stays as written). Quoted values may span lines.
//! Nothing is expanded inside the file. A line that is none of these, or a key set twice, is
//! an error at `file:line`.
//!
//! The file holds secrets, so it is read like ssh reads a private key: a file that is not the
//! user's, or that its group or others may read or write, is refused. A symlink is followed and
//! the file it leads to is checked (the file opened is the one checked, through its handle).
//! It is read up to [`MAX_ENV_FILE`]. **Values never appear in a message**: errors name the
//! file, the line and the key, never what a line holds.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::checker::{Checker, Entry};
use super::error::ConfigError;
use super::tree::Node;

/// The largest env file read (it is untrusted input like the config, and no list of secrets
/// comes near it).
pub const MAX_ENV_FILE: u64 = 1 << 20;

/// The variables of one env file. `Debug` shows their names only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct EnvFile {
    pub vars: BTreeMap<String, String>,
}

impl fmt::Debug for EnvFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvFile")
            .field("names", &self.vars.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Why an env file cannot be used: the file as a whole (`line` 0) or one of its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

impl EnvFileError {
    fn whole(message: impl Into<String>) -> Self {
        EnvFileError {
            line: 0,
            message: message.into(),
        }
    }

    fn at(line: usize, message: impl Into<String>) -> Self {
        EnvFileError {
            line,
            message: message.into(),
        }
    }
}

/// Reads and parses an env file after checking that only its owner, the user, can read it.
pub fn read_env_file(path: &Path) -> Result<EnvFile, EnvFileError> {
    let file =
        open(path).map_err(|e| EnvFileError::whole(format!("cannot read the env file: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| EnvFileError::whole(format!("cannot read the env file: {e}")))?;
    if !meta.is_file() {
        return Err(EnvFileError::whole("the env file is not a regular file"));
    }
    private(&meta)?;
    if meta.len() > MAX_ENV_FILE {
        return Err(EnvFileError::whole(format!(
            "the env file is larger than {} KiB",
            MAX_ENV_FILE >> 10
        )));
    }
    let mut bytes = Vec::new();
    file.take(MAX_ENV_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| EnvFileError::whole(format!("cannot read the env file: {e}")))?;
    if bytes.len() as u64 > MAX_ENV_FILE {
        return Err(EnvFileError::whole(format!(
            "the env file is larger than {} KiB",
            MAX_ENV_FILE >> 10
        )));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| EnvFileError::whole("the env file is not valid UTF-8"))?;
    parse_env_file(&text)
}

/// Opens `path` for reading without waiting: a FIFO (or a device) named as the env file would
/// otherwise block the open until a writer comes, and the reload with it. The handle is then
/// `fstat`ed and anything but a regular file refused; O_NONBLOCK changes nothing for reading
/// a regular file.
#[cfg(unix)]
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

/// Refuses a file of another user, or one its group or others can read, write or run.
#[cfg(unix)]
fn private(meta: &std::fs::Metadata) -> Result<(), EnvFileError> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if meta.uid() != uid {
        return Err(EnvFileError::whole(format!(
            "the env file belongs to uid {}, not to you (uid {uid}): it holds secrets, so only \
             a file of your own is read",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(EnvFileError::whole(format!(
            "the env file's mode is {mode:04o}: it holds secrets, so its group and others must \
             have no access (`chmod 600` it)"
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn private(_meta: &std::fs::Metadata) -> Result<(), EnvFileError> {
    Ok(())
}

/// Parses env file text (see the module docs for the format).
pub fn parse_env_file(text: &str) -> Result<EnvFile, EnvFileError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut vars = BTreeMap::new();
    let mut lines_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut scan = Scan {
        text,
        at: 0,
        line: 1,
    };
    while !scan.done() {
        let line = scan.line;
        let Some((key, value)) = scan.assignment()? else {
            continue;
        };
        if let Some(first) = lines_of.get(&key) {
            return Err(EnvFileError::at(
                line,
                format!("`{key}` is set twice (first on line {first})"),
            ));
        }
        if value.contains('\0') {
            return Err(EnvFileError::at(
                line,
                format!("the value of `{key}` contains a NUL character"),
            ));
        }
        lines_of.insert(key.clone(), line);
        vars.insert(key, value);
    }
    Ok(EnvFile { vars })
}

/// `KEY=value` as a line [`parse_env_file`] reads back to the same value: the value in double
/// quotes with `\`, `"`, `$` and line breaks escaped. Ends with a newline.
pub fn env_file_line(key: &str, value: &str) -> String {
    let mut line = String::with_capacity(key.len() + value.len() + 4);
    line.push_str(key);
    line.push_str("=\"");
    for c in value.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '"' => line.push_str("\\\""),
            '$' => line.push_str("\\$"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
    line.push_str("\"\n");
    line
}

/// Whether `name` can be a variable of an env file (and of `${NAME}`).
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A cursor over the file's text that counts lines.
struct Scan<'t> {
    text: &'t str,
    at: usize,
    line: usize,
}

impl Scan<'_> {
    fn done(&self) -> bool {
        self.at >= self.text.len()
    }

    fn peek(&self) -> Option<char> {
        self.text[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// The rest of the current line, consumed with its line break.
    fn rest_of_line(&mut self) -> &str {
        let end = self.text[self.at..]
            .find('\n')
            .map_or(self.text.len(), |i| self.at + i);
        let rest = &self.text[self.at..end];
        self.at = end;
        self.bump();
        rest.strip_suffix('\r').unwrap_or(rest)
    }

    /// One line (or a quoted value's lines): `None` for a blank or comment line.
    fn assignment(&mut self) -> Result<Option<(String, String)>, EnvFileError> {
        let line = self.line;
        self.skip_blanks();
        match self.peek() {
            None => return Ok(None),
            Some('#') => {
                self.rest_of_line();
                return Ok(None);
            }
            Some('\n' | '\r') => {
                self.rest_of_line();
                return Ok(None);
            }
            _ => {}
        }
        if self.text[self.at..].starts_with("export")
            && matches!(self.text[self.at + 6..].chars().next(), Some(' ' | '\t'))
        {
            self.at += 6;
            self.skip_blanks();
        }
        let start = self.at;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        let key = self.text[start..self.at].to_owned();
        self.skip_blanks();
        if key.is_empty() || self.peek() != Some('=') {
            // The line may hold a secret (a value without its key): say what is wrong, not it.
            self.rest_of_line();
            return Err(EnvFileError::at(
                line,
                "expected `KEY=value` (a key of letters, digits and `_`, then `=`)",
            ));
        }
        if !is_env_name(&key) {
            // Not shown: what stands before the `=` may be a secret pasted on its own line.
            self.rest_of_line();
            return Err(EnvFileError::at(
                line,
                "the key is not a variable name: it must not start with a digit",
            ));
        }
        self.bump();
        let blank = matches!(self.peek(), Some(' ' | '\t'));
        self.skip_blanks();
        let value = match self.peek() {
            Some(quote @ ('"' | '\'')) => {
                self.bump();
                let value = self.quoted(quote, &key, line)?;
                self.skip_blanks();
                let rest = self.rest_of_line();
                if !(rest.is_empty() || rest.starts_with('#')) {
                    return Err(EnvFileError::at(
                        line,
                        format!(
                            "unexpected text after the quoted value of `{key}` (only a `#` \
                             comment may follow it)"
                        ),
                    ));
                }
                value
            }
            _ => unquoted(self.rest_of_line(), blank),
        };
        Ok(Some((key, value)))
    }

    /// A quoted value after its opening quote, to its closing one.
    fn quoted(&mut self, quote: char, key: &str, line: usize) -> Result<String, EnvFileError> {
        let mut value = String::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(EnvFileError::at(
                    line,
                    format!("the value of `{key}` has no closing {quote}"),
                ));
            };
            match c {
                c if c == quote => return Ok(value),
                '\\' if quote == '"' => match self.bump() {
                    Some('n') => value.push('\n'),
                    Some('r') => value.push('\r'),
                    Some('t') => value.push('\t'),
                    Some(c @ ('\\' | '"' | '$')) => value.push(c),
                    Some(other) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => {
                        return Err(EnvFileError::at(
                            line,
                            format!("the value of `{key}` has no closing {quote}"),
                        ));
                    }
                },
                '\r' if self.peek() == Some('\n') => {}
                c => value.push(c),
            }
        }
    }
}

/// An unquoted value: to the end of the line, a `#` after a blank starting a comment, blanks
/// around it trimmed. `blank_before`: blanks stood between the `=` and `rest` (so a `#` first
/// in `rest` follows a blank: `KEY= # note` is empty, while `KEY=#x` is `#x`, as in dotenv).
fn unquoted(rest: &str, blank_before: bool) -> String {
    let mut end = rest.len();
    let bytes = rest.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let after_blank = match i {
            0 => blank_before,
            i => bytes[i - 1] == b' ' || bytes[i - 1] == b'\t',
        };
        if b == b'#' && after_blank {
            end = i;
            break;
        }
    }
    rest[..end].trim().to_owned()
}

/// The env files config text names (`env_file:` at the top level and in each server),
/// absolute, whether or not they exist and whatever else is wrong with the config. A reload
/// that a missing env file made fail leaves the old config live, which does not name the new
/// file: the watch follows these too, so that creating the file is seen. `path` is the
/// config's (relative paths are its directory's).
pub fn named_env_files(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<PathBuf> {
    let Ok(Node::Map(top)) = super::tree::parse(text) else {
        return Vec::new();
    };
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = absolute.parent().unwrap_or(Path::new("/"));
    let mut named = vec![member(&top, "env_file")];
    if let Some(Node::Map(servers)) = member(&top, "servers") {
        for (_, server) in servers {
            if let Node::Map(server) = server {
                named.push(member(server, "env_file"));
            }
        }
    }
    named
        .into_iter()
        .filter_map(|node| match node {
            Some(Node::Str(value)) if !value.trim().is_empty() => {
                super::checker::config_relative(value, dir, env)
            }
            _ => None,
        })
        .collect()
}

/// The value of `key` in a mapping's entries (its first, as the checker reads it).
fn member<'n>(entries: &'n [(Node, Node)], key: &str) -> Option<&'n Node> {
    entries
        .iter()
        .find(|(k, _)| matches!(k, Node::Str(k) if k == key))
        .map(|(_, v)| v)
}

impl Checker<'_> {
    /// The variables of the env file `entry` names, or none with the problem recorded: at the
    /// key for a file that cannot be used, at the file's own line for a malformed one. The
    /// file is recorded in [`super::Config::env_files`] either way, so that it is watched.
    pub(super) fn env_file(
        &mut self,
        entry: &Entry<'_>,
        subject: &str,
    ) -> BTreeMap<String, String> {
        let Node::Str(raw) = entry.value else {
            self.mismatch(entry, subject, "a string (the path of a dotenv file)");
            return BTreeMap::new();
        };
        if raw.trim().is_empty() {
            self.error(entry.value_pos(), format!("{subject} must not be empty"));
            return BTreeMap::new();
        }
        let Some(path) = self.path_value(raw, &entry.value_at, subject) else {
            return BTreeMap::new();
        };
        self.env_files.push(path.clone());
        match read_env_file(&path) {
            Ok(file) => file.vars,
            Err(EnvFileError { line: 0, message }) => {
                let shown = path.display();
                self.error(&entry.value_at, format!("{subject}: {shown}: {message}"));
                BTreeMap::new()
            }
            Err(EnvFileError { line, message }) => {
                let cited = self.cite(self.locator.node(&entry.value_at));
                let message = format!("{message} (in the env file named at {cited})");
                self.push_error(ConfigError::at(&path, line, 1, message));
                BTreeMap::new()
            }
        }
    }
}
