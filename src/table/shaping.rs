//! A server's `tools:` / `prompts:` ([`crate::config::Shaping`]), compiled: which of its items
//! the catalog takes, the name each is exposed under (before the prefix) and its description.
//!
//! Shaping comes before everything else the table does: an item it hides is not in the
//! catalog, so no role, list or call — on either path — can reach it.

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::Shaping;

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
