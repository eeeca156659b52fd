//! Checks a server's `tools:` and `prompts:`: which of its items clients see, under which
//! names and with which descriptions. Every key names items by the server's own names:
//!
//! ```yaml
//! tools:
//!   allow: ["get_*", "list_*"]          # globs; default: every item
//!   deny: ["*_delete_*"]                # globs, applied after allow
//!   rename: { search_code: code_search } # exposed as `<prefix>_code_search`
//!   describe: { list_issues: "List issues of a repository." }
//! ```
//!
//! Which items a server has is not known here (it may never have run): keys that name no item
//! are warned about by the routing table once the server's lists are known.

use std::collections::BTreeMap;

use super::Shaping;
use super::checker::{Checker, Entry, quote_hint};
use super::locate::Step;
use super::tree::Node;

const SHAPING_KEYS: &[&str] = &["allow", "deny", "rename", "describe"];

/// The longest name a rename may give (before the prefix): MCP's tool name limit.
const MAX_RENAME: usize = 64;

impl Checker<'_> {
    /// A server's `tools` or `prompts` (`key`); `context` is "in server `name`".
    pub(super) fn shaping(&mut self, entry: &Entry<'_>, key: &str, context: &str) -> Shaping {
        let mut shaping = Shaping::default();
        let subject = format!("`{key}` {context}");
        let Node::Map(map) = entry.value else {
            let expected = "a mapping with `allow`, `deny`, `rename` and/or `describe`";
            self.mismatch(entry, &subject, expected);
            return shaping;
        };
        let inner = format!("in `{key}` {context}");
        for field in self.fields(map, &entry.value_at, SHAPING_KEYS, &inner) {
            let subject = format!("`{key}.{}` {context}", field.key);
            match field.key {
                "allow" => shaping.allow = Some(self.globs(&field, &subject)),
                "deny" => shaping.deny = self.globs(&field, &subject),
                "rename" => shaping.rename = self.renames(&field, &subject),
                _ => shaping.describe = self.descriptions(&field, &subject),
            }
        }
        shaping
    }

    /// A list of globs over a server's own names, each checked to compile.
    fn globs(&mut self, entry: &Entry<'_>, subject: &str) -> Vec<String> {
        let Node::Seq(items) = entry.value else {
            self.mismatch(
                entry,
                subject,
                "a list of glob patterns over the server's names",
            );
            return Vec::new();
        };
        let mut globs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = entry.value_at.then(Step::Item(i));
            match item {
                Node::Str(glob) if glob.starts_with('!') => {
                    let message = format!(
                        "{subject}: `{glob}`: `!` is for roles; list what to hide in `deny`"
                    );
                    self.error(&at, message);
                }
                Node::Str(glob) => match globset::Glob::new(glob) {
                    Ok(_) => globs.push(glob.clone()),
                    Err(e) => {
                        let message =
                            format!("{subject}: invalid glob pattern `{glob}`: {}", e.kind());
                        self.error(&at, message);
                    }
                },
                other => {
                    let (n, found, hint) = (i + 1, other.describe(), quote_hint(other));
                    let message = format!(
                        "{subject} must be a list of glob patterns; item {n} is {found}{hint}"
                    );
                    self.error(&at, message);
                }
            }
        }
        globs
    }

    /// `original: new name`; no two items may be given one name.
    fn renames(&mut self, entry: &Entry<'_>, subject: &str) -> BTreeMap<String, String> {
        let pairs = self.string_map(entry, subject, "new names");
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        for (original, new, at) in pairs {
            if let Some(problem) = rename_problem(&new) {
                self.error(&at, format!("{subject}: `{original}` → `{new}`: {problem}"));
                continue;
            }
            if let Some((other, _)) = renames.iter().find(|(_, taken)| **taken == new) {
                let message = format!(
                    "{subject}: `{original}` and `{other}` are both renamed to `{new}`; \
                     a name can be given once"
                );
                self.error(&at, message);
                continue;
            }
            renames.insert(original, new);
        }
        renames
    }

    fn descriptions(&mut self, entry: &Entry<'_>, subject: &str) -> BTreeMap<String, String> {
        let pairs = self.string_map(entry, subject, "descriptions");
        pairs
            .into_iter()
            .map(|(name, text, _)| (name, text))
            .collect()
    }

    /// A mapping from the server's names to strings, each with the place of its value.
    fn string_map(
        &mut self,
        entry: &Entry<'_>,
        subject: &str,
        what: &str,
    ) -> Vec<(String, String, super::locate::NodePath)> {
        let Node::Map(map) = entry.value else {
            let expected = format!("a mapping from the server's names to {what}");
            self.mismatch(entry, subject, &expected);
            return Vec::new();
        };
        let mut pairs = Vec::new();
        for item in self.entries(map, &entry.value_at, &format!("in {subject}")) {
            match item.value {
                Node::Str(value) => {
                    pairs.push((item.key.to_owned(), value.clone(), item.value_at.clone()))
                }
                other => {
                    let (key, found, hint) = (item.key, other.describe(), quote_hint(other));
                    let message =
                        format!("{subject}: `{key}` must be a string, found {found}{hint}");
                    self.error(&item.value_at, message);
                }
            }
        }
        pairs
    }
}

/// Why `name` cannot be an item's new name: MCP names are 1–64 of `A-Za-z0-9_.-`.
fn rename_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("the new name must not be empty".into());
    }
    if name.len() > MAX_RENAME {
        return Some(format!(
            "the new name is longer than {MAX_RENAME} characters"
        ));
    }
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    (!valid).then(|| "names may contain only letters, digits, `_`, `-` and `.`".into())
}
