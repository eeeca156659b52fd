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
//! Which items a server has is not known while checking (it may never have run): keys that
//! name no item are warned about once the server's lists are known ([`super::surface`]).
//!
//! [`Shape`] is a server's shaping compiled, as the routing table's catalog applies it: which
//! of its items it takes, the name each is exposed under (before the prefix), its description.
//! An item it hides is not in the catalog: no role, list or call — on either path — reaches it.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

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
                other => self.not_a_glob(&at, subject, i, other),
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

/// One server's shaping of one kind of item.
pub struct Shape<'a> {
    config: &'a Shaping,
    /// `None`: every item is allowed.
    allow: Option<GlobSet>,
    deny: GlobSet,
}

impl<'a> Shape<'a> {
    /// Globs were checked when the config was loaded; one that fails here all the same matches
    /// nothing, which for `allow` hides rather than shows.
    pub fn new(config: &'a Shaping) -> Self {
        let compile = |globs: &[String]| {
            let mut set = GlobSetBuilder::new();
            for glob in globs {
                if let Ok(glob) = Glob::new(glob) {
                    set.add(glob);
                }
            }
            set.build().unwrap_or_else(|_| GlobSet::empty())
        };
        Shape {
            config,
            allow: config.allow.as_deref().map(compile),
            deny: compile(&config.deny),
        }
    }

    /// Whether the server's item `original` is shown at all.
    pub fn admits(&self, original: &str) -> bool {
        self.allow.as_ref().is_none_or(|set| set.is_match(original))
            && !self.deny.is_match(original)
    }

    /// The name `original` is exposed under, before the server's prefix.
    pub fn name<'n>(&'a self, original: &'n str) -> &'n str
    where
        'a: 'n,
    {
        self.config
            .rename
            .get(original)
            .map_or(original, String::as_str)
    }

    /// The description to show instead of the server's, if the config gives one.
    pub fn description(&self, original: &str) -> Option<&'a str> {
        self.config.describe.get(original).map(String::as_str)
    }

    /// What in the config names none of `originals` (the server's items of this kind), or
    /// names only items it also hides: each a sentence completing "server `x`: …".
    pub fn unmatched<'n>(
        &self,
        key: &str,
        originals: impl Iterator<Item = &'n str>,
    ) -> Vec<String> {
        let originals: Vec<&str> = originals.collect();
        let mut notes = Vec::new();
        let globs = [("allow", self.allow.as_ref()), ("deny", Some(&self.deny))];
        for (field, set) in globs {
            let Some(set) = set else { continue };
            let written = if field == "allow" {
                self.config.allow.as_deref().unwrap_or_default()
            } else {
                &self.config.deny
            };
            let mut seen = vec![false; set.len()];
            for name in &originals {
                for i in set.matches(name) {
                    seen[i] = true;
                }
            }
            // `seen` follows the compiled globs, which are the written ones in order (every
            // written glob compiled: the config was checked).
            for (glob, _) in written.iter().zip(&seen).filter(|(_, seen)| !**seen) {
                notes.push(format!(
                    "`{key}.{field}` entry `{glob}` matches none of its {key}"
                ));
            }
        }
        let maps = [
            ("rename", &self.config.rename),
            ("describe", &self.config.describe),
        ];
        for (field, map) in maps {
            for original in map.keys() {
                if !originals.contains(&original.as_str()) {
                    notes.push(format!(
                        "`{key}.{field}` names `{original}`, which it does not have"
                    ));
                } else if !self.admits(original) {
                    notes.push(format!(
                        "`{key}.{field}` names `{original}`, which `{key}.allow`/`deny` hide"
                    ));
                }
            }
        }
        // A new name the server's own item has: the renamed item keeps it (renames claim
        // names first), the server's own is exposed with a suffix.
        for (original, new) in &self.config.rename {
            let taken = originals.contains(&new.as_str())
                && self.admits(new)
                && !self.config.rename.contains_key(new);
            if taken && self.admits(original) {
                notes.push(format!(
                    "`{key}.rename` gives `{original}` the name `{new}`, which its own `{new}` \
                     has; `{new}` is exposed under another name (hide or rename it)"
                ));
            }
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaping(allow: Option<&[&str]>, deny: &[&str]) -> Shaping {
        let strings = |globs: &[&str]| globs.iter().map(|g| g.to_string()).collect();
        Shaping {
            allow: allow.map(strings),
            deny: strings(deny),
            rename: [("search_code".to_string(), "code_search".to_string())].into(),
            describe: [("list_issues".to_string(), "Open issues.".to_string())].into(),
        }
    }

    #[test]
    fn allow_then_deny_over_the_servers_names() {
        let config = shaping(Some(&["get_*", "list_*"]), &["*_secret*"]);
        let shape = Shape::new(&config);
        assert!(shape.admits("get_issue"));
        assert!(!shape.admits("get_secret_key"));
        assert!(!shape.admits("delete_repo"));
        let everything = Shaping::default();
        assert!(Shape::new(&everything).admits("delete_repo"));
        let none = shaping(Some(&[]), &[]);
        assert!(!Shape::new(&none).admits("get_issue"));
    }

    #[test]
    fn renames_and_descriptions_by_original_name() {
        let config = shaping(None, &[]);
        let shape = Shape::new(&config);
        assert_eq!(shape.name("search_code"), "code_search");
        assert_eq!(shape.name("get_issue"), "get_issue");
        assert_eq!(shape.description("list_issues"), Some("Open issues."));
        assert_eq!(shape.description("get_issue"), None);
    }

    #[test]
    fn entries_naming_nothing_are_reported() {
        let config = shaping(Some(&["get_*", "lsit_*"]), &["*_delete_*"]);
        let shape = Shape::new(&config);
        let notes = shape.unmatched("tools", ["get_issue", "list_issues"].into_iter());
        assert_eq!(
            notes,
            [
                "`tools.allow` entry `lsit_*` matches none of its tools",
                "`tools.deny` entry `*_delete_*` matches none of its tools",
                "`tools.rename` names `search_code`, which it does not have",
                "`tools.describe` names `list_issues`, which `tools.allow`/`deny` hide",
            ]
        );
    }
}
