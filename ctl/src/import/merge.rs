//! The user's gateway.yaml as an import sees it: which servers it has (to skip what is there
//! already), which names and prefixes are taken, where its secrets go; and the new text with
//! the imported entries inserted into it.
//!
//! The file is edited as text: entries go at the end of its `servers:` block (indented like
//! the ones there), `env_file:` on a line of its own before `servers:`. Every other byte stays.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mcpgw::config;

pub use super::identity::Identity;

/// The file env secrets go to when the config names none: beside gateway.yaml.
pub const DEFAULT_ENV_FILE: &str = "mcpgw.env";

/// The config an import adds to.
pub struct Existing {
    pub path: PathBuf,
    /// Its text; `None` when there is no file yet (the import creates it).
    pub text: Option<String>,
    /// Each server's name, identity, and for one this import adds, where it came from.
    servers: Vec<(String, Identity, Option<String>)>,
    /// Server names and prefixes in use (a new server's name is its prefix).
    taken: BTreeSet<String>,
    /// Where secrets go: the env file the config names, else `mcpgw.env` beside it.
    pub env_file: PathBuf,
    /// Whether the config names `env_file` already (else the import adds it).
    pub env_file_named: bool,
    /// The env file's variables (none when it does not exist yet).
    pub env_vars: BTreeMap<String, String>,
    /// The env file's text, to append to.
    pub env_text: Option<String>,
    /// The variables the config's text names (`${NAME}`, comments included).
    pub referenced: BTreeSet<String>,
}

impl Existing {
    /// Reads the config at `path` (which must load, if it exists) and its env file.
    pub fn load(path: &Path) -> Result<Existing, String> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut existing = Existing {
            path: path.to_path_buf(),
            text: None,
            servers: Vec::new(),
            taken: BTreeSet::new(),
            env_file: dir.join(DEFAULT_ENV_FILE),
            env_file_named: false,
            env_vars: BTreeMap::new(),
            env_text: None,
            referenced: BTreeSet::new(),
        };
        if path.exists() {
            let loaded = config::load(path).map_err(|errors| {
                format!(
                    "{errors}\nthe config does not load as it is (`mcpgwctl check` shows why): \
                     fix it before importing into it"
                )
            })?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("{}: cannot read the config: {e}", path.display()))?;
            if let Some(file) = &loaded.env_file {
                existing.env_file = file.clone();
                existing.env_file_named = true;
            }
            existing.taken.extend(loaded.servers.keys().cloned());
            existing.read_servers(&text)?;
            existing.referenced = super::secrets::referenced(&text)
                .map(str::to_owned)
                .collect();
            existing.text = Some(text);
        }
        if existing.env_file.exists() {
            let file = config::read_env_file(&existing.env_file)
                .map_err(|e| format!("{}: {}", existing.env_file.display(), env_error(&e)))?;
            existing.env_vars = file.vars;
            existing.env_text = Some(
                std::fs::read_to_string(&existing.env_file)
                    .map_err(|e| format!("{}: {e}", existing.env_file.display()))?,
            );
        }
        let vars = existing.env_vars.clone();
        for (_, identity, _) in &mut existing.servers {
            *identity = identity.resolved(&vars);
        }
        Ok(existing)
    }

    /// The servers as written (before `${VAR}` expansion): what a client's servers are
    /// compared with.
    fn read_servers(&mut self, text: &str) -> Result<(), String> {
        let root: yaml_serde::Value =
            yaml_serde::from_str(text).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let Some(servers) = root.get("servers").and_then(|s| s.as_mapping()) else {
            return Ok(());
        };
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        for (name, server) in servers {
            let Some(name) = name.as_str() else { continue };
            if let Some(prefix) = server.get("prefix").and_then(|p| p.as_str()) {
                self.taken.insert(prefix.to_owned());
            }
            if let Some(identity) = Identity::written(server, dir) {
                self.servers.push((name.to_owned(), identity, None));
            }
        }
        Ok(())
    }

    /// The name of a server with this identity (already resolved), if the config has one or
    /// this import adds one, and for the latter where it came from.
    pub fn same(&self, identity: &Identity) -> Option<(&str, Option<&str>)> {
        self.servers
            .iter()
            .find(|(_, i, _)| i == identity)
            .map(|(n, _, origin)| (n.as_str(), origin.as_deref()))
    }

    pub fn is_taken(&self, name: &str) -> bool {
        self.taken.contains(name)
    }

    /// Counts a server this import adds, from `origin`.
    pub fn add(&mut self, name: &str, identity: Identity, origin: &str) {
        self.taken.insert(name.to_owned());
        self.servers
            .push((name.to_owned(), identity, Some(origin.to_owned())));
    }
}

/// An env file's problem as a message (its line, when it has one).
pub fn env_error(error: &config::EnvFileError) -> String {
    match error.line {
        0 => error.message.clone(),
        line => format!("line {line}: {}", error.message),
    }
}

/// The config's text with `entries` (lines at two spaces of indentation, for under
/// `servers:`) added, and `env_file` (a whole `env_file: …` line) before `servers:` if given.
pub fn merge(text: Option<&str>, entries: &str, env_file: Option<&str>) -> Result<String, String> {
    let Some(text) = text else {
        let mut out = String::from(
            "# The mcpgw gateway's config (see `mcpgwctl check`). Written by `mcpgwctl import`.\n",
        );
        if let Some(line) = env_file {
            out.push_str(line);
        }
        out.push_str("servers:\n");
        out.push_str(entries);
        return Ok(out);
    };
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        // The last line gets its line break: what follows must start a line of its own.
        let last = lines.pop().expect("not empty");
        let mut out: String = lines.concat();
        out.push_str(last);
        out.push('\n');
        return merge(Some(&out), entries, env_file);
    }
    let servers_at = lines
        .iter()
        .position(|l| top_level_key(l) == Some("servers"));
    let Some(at) = servers_at else {
        let mut out = text.to_owned();
        if let Some(line) = env_file {
            out.push_str(line);
        }
        out.push_str("servers:\n");
        out.push_str(entries);
        return Ok(out);
    };
    let value = lines[at]["servers:".len()..].trim();
    let value = value.split(" #").next().unwrap_or(value).trim();
    let empty = matches!(value, "" | "{}" | "null" | "~") || value.starts_with('#');
    if !empty {
        return Err(
            "`servers:` is written in flow style (`servers: {…}`) in the config: write it as a \
             block (one server per indented entry) to import into it, or add the entries by hand"
                .into(),
        );
    }
    // The block: the lines after `servers:` up to the next line at column 0 that is not a
    // comment. Entries go after its last indented line.
    let block_end = (at + 1..lines.len())
        .find(|&i| {
            let l = lines[i];
            !l.trim().is_empty() && !l.starts_with([' ', '\t', '#'])
        })
        .unwrap_or(lines.len());
    let last_indented = (at + 1..block_end)
        .rev()
        .find(|&i| lines[i].starts_with([' ', '\t']) && !lines[i].trim().is_empty());
    let indent: String = (at + 1..block_end)
        .map(|i| lines[i])
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| l.chars().take_while(|c| *c == ' ').collect())
        .unwrap_or_else(|| "  ".into());
    let entries = reindent(entries, &indent);
    let mut out = String::with_capacity(text.len() + entries.len() + 64);
    for (i, line) in lines.iter().enumerate() {
        if i == at {
            if let Some(env_line) = env_file {
                out.push_str(env_line);
            }
            if matches!(value, "{}" | "null" | "~") {
                // `servers: {}` becomes a block; a comment after it is kept.
                out.push_str("servers:");
                out.push_str(line.find(" #").map_or("\n", |c| &line[c..]));
            } else {
                out.push_str(line);
            }
            if last_indented.is_none() {
                out.push_str(&entries);
            }
            continue;
        }
        out.push_str(line);
        if Some(i) == last_indented {
            out.push_str(&entries);
        }
    }
    Ok(out)
}

/// The key of a line that starts a top-level mapping entry (`key:` at column 0).
fn top_level_key(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t', '#', '-']) {
        return None;
    }
    let (key, rest) = line.split_once(':')?;
    (rest.is_empty() || rest.starts_with([' ', '\t', '\n', '\r'])).then_some(key.trim())
}

/// Entries written at two spaces re-indented to `indent` (their nesting kept).
fn reindent(entries: &str, indent: &str) -> String {
    if indent == "  " {
        return entries.to_owned();
    }
    entries
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix("  ") {
            Some(rest) => format!("{indent}{rest}"),
            None => line.to_owned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRY: &str = "  # from x\n  new:\n    command: \"n\"\n";

    #[test]
    fn entries_go_at_the_end_of_the_servers_block() {
        let text = "# my gateway\nservers:\n    # a comment\n    old:\n        command: o\n\n# roles below\nroles:\n  r: null\n";
        let merged = merge(Some(text), ENTRY, Some("env_file: mcpgw.env\n")).unwrap();
        assert_eq!(
            merged,
            "# my gateway\nenv_file: mcpgw.env\nservers:\n    # a comment\n    old:\n        command: o\n    # from x\n    new:\n      command: \"n\"\n\n# roles below\nroles:\n  r: null\n"
        );
        let config = mcpgw::config::parse(
            &merged.replace("env_file: mcpgw.env\n", ""),
            Path::new("/g/gateway.yaml"),
            &|_| None,
        )
        .unwrap();
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.roles.len(), 1);
    }

    #[test]
    fn empty_missing_and_new_servers() {
        assert_eq!(
            merge(
                Some("servers: {}  # none yet\nidle_timeout: 5"),
                ENTRY,
                None
            )
            .unwrap(),
            format!("servers: # none yet\n{ENTRY}idle_timeout: 5\n")
        );
        assert_eq!(
            merge(Some("servers:\nroles: {}\n"), ENTRY, None).unwrap(),
            format!("servers:\n{ENTRY}roles: {{}}\n")
        );
        assert_eq!(
            merge(Some("idle_timeout: 5\n"), ENTRY, Some("env_file: e\n")).unwrap(),
            format!("idle_timeout: 5\nenv_file: e\nservers:\n{ENTRY}")
        );
        let new = merge(None, ENTRY, None).unwrap();
        assert!(new.starts_with('#') && new.ends_with(&format!("servers:\n{ENTRY}")));
        assert!(merge(Some("servers: {a: {command: x}}\n"), ENTRY, None).is_err());
    }
}
