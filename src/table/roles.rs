//! Roles: which exposed names a session may see and call, as compiled globs.
//!
//! A role's entries (`config::Role::Patterns`) are of three kinds:
//! - a glob over exposed names (`filesystem_*`) lets matching items through;
//! - an annotation selector lets tools through by what their server says of them:
//!   `@read-only` those whose `readOnlyHint` is true, `@!destructive` those that are not
//!   destructive by MCP's rule (read-only, or `destructiveHint: false`; an absent hint is
//!   `true`, the spec's default): a tool a server says nothing of counts as destructive;
//! - `!glob` keeps out what it matches, whatever let it in. A role of exclusions only lets
//!   everything else through.
//!
//! Prompts, resources and templates have no annotations: only globs select them.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rmcp::model::{Tool, ToolAnnotations};

use crate::config::Role;

use crate::config::ROLE_SELECTORS as SELECTORS;

/// Compiled role filters.
#[derive(Clone)]
pub struct Roles {
    roles: BTreeMap<String, Option<Compiled>>,
}

/// One role's entries, compiled.
#[derive(Clone)]
struct Compiled {
    include: GlobSet,
    exclude: GlobSet,
    read_only: bool,
    not_destructive: bool,
    /// Only exclusions: everything else is let through.
    all_but_excluded: bool,
}

impl Compiled {
    fn new(name: &str, patterns: &[String]) -> Result<Self, String> {
        let (mut include, mut exclude) = (GlobSetBuilder::new(), GlobSetBuilder::new());
        let (mut read_only, mut not_destructive) = (false, false);
        let (mut includes, mut excludes) = (0, 0);
        for pattern in patterns {
            let glob = |text: &str| {
                Glob::new(text).map_err(|e| format!("role `{name}`: bad pattern `{pattern}`: {e}"))
            };
            match pattern.as_str() {
                "@read-only" => read_only = true,
                "@!destructive" => not_destructive = true,
                selector if selector.starts_with('@') => {
                    return Err(format!(
                        "role `{name}`: unknown selector `{selector}` (known: {})",
                        SELECTORS.join(", ")
                    ));
                }
                negated if negated.starts_with('!') => {
                    exclude.add(glob(&negated[1..])?);
                    excludes += 1;
                }
                plain => {
                    include.add(glob(plain)?);
                    includes += 1;
                }
            }
        }
        let build =
            |builder: GlobSetBuilder| builder.build().map_err(|e| format!("role `{name}`: {e}"));
        Ok(Self {
            include: build(include)?,
            exclude: build(exclude)?,
            read_only,
            not_destructive,
            // An empty role (`[]`) lets nothing through, as it always did.
            all_but_excluded: includes == 0 && excludes > 0 && !read_only && !not_destructive,
        })
    }

    fn allows(&self, exposed: &str, annotations: Option<&ToolAnnotations>) -> bool {
        if self.exclude.is_match(exposed) {
            return false;
        }
        if self.all_but_excluded || self.include.is_match(exposed) {
            return true;
        }
        let read_only = annotations.and_then(|a| a.read_only_hint) == Some(true);
        let destructive = !read_only && annotations.and_then(|a| a.destructive_hint) != Some(false);
        (self.read_only && read_only) || (self.not_destructive && !destructive)
    }
}

/// What a role lets through.
enum Filter<'a> {
    All,
    Some(&'a Compiled),
    Nothing,
}

pub use crate::config::DEFAULT_ROLE;

impl Roles {
    pub fn compile(roles: &BTreeMap<String, Role>) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (name, role) in roles {
            let compiled = match role {
                Role::All => None,
                Role::Patterns(patterns) => Some(Compiled::new(name, patterns)?),
            };
            out.insert(name.clone(), compiled);
        }
        Ok(Self { roles: out })
    }

    /// Checks a role asked for at hello; the error names the known roles.
    pub fn check(&self, role: Option<&str>) -> Result<(), String> {
        match role {
            None => Ok(()),
            Some(role) if self.roles.contains_key(role) => Ok(()),
            Some(role) => {
                let known: Vec<&str> = self.roles.keys().map(String::as_str).collect();
                Err(if known.is_empty() {
                    format!("unknown role `{role}`: the gateway config defines no roles")
                } else {
                    format!("unknown role `{role}`; known roles: {}", known.join(", "))
                })
            }
        }
    }

    /// Whether a session of `role` may see and use the prompt, resource or template exposed
    /// as `exposed` (globs only: they have no annotations). No role means the `default` role
    /// if there is one, else everything; a role that a reload removed sees nothing.
    pub fn allows(&self, role: Option<&str>, exposed: &str) -> bool {
        self.allows_with(role, exposed, None)
    }

    /// Whether a session of `role` may see and call `tool` (named as exposed), by its name
    /// and its annotations.
    pub fn allows_tool(&self, role: Option<&str>, tool: &Tool) -> bool {
        self.allows_with(role, &tool.name, tool.annotations.as_ref())
    }

    fn allows_with(
        &self,
        role: Option<&str>,
        exposed: &str,
        annotations: Option<&ToolAnnotations>,
    ) -> bool {
        match self.filter(role) {
            Filter::All => true,
            Filter::Some(compiled) => compiled.allows(exposed, annotations),
            Filter::Nothing => false,
        }
    }

    /// Whether a session of `role` sees everything (no filter at all).
    pub fn sees_all(&self, role: Option<&str>) -> bool {
        matches!(self.filter(role), Filter::All)
    }

    fn filter(&self, role: Option<&str>) -> Filter<'_> {
        let role = role.or_else(|| {
            self.roles
                .contains_key(DEFAULT_ROLE)
                .then_some(DEFAULT_ROLE)
        });
        match role {
            None => Filter::All,
            Some(role) => match self.roles.get(role) {
                Some(None) => Filter::All,
                Some(Some(compiled)) => Filter::Some(compiled),
                None => Filter::Nothing,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, read_only: Option<bool>, destructive: Option<bool>) -> Tool {
        let mut tool = Tool::new(
            name.to_owned(),
            String::new(),
            std::sync::Arc::new(serde_json::Map::new()),
        );
        if read_only.is_some() || destructive.is_some() {
            let mut annotations = ToolAnnotations::default();
            annotations.read_only_hint = read_only;
            annotations.destructive_hint = destructive;
            tool.annotations = Some(annotations);
        }
        tool
    }

    fn roles(patterns: &[&str]) -> Roles {
        let role = Role::Patterns(patterns.iter().map(|p| (*p).to_owned()).collect());
        Roles::compile(&[("r".to_owned(), role)].into()).unwrap()
    }

    #[test]
    fn an_exclusion_keeps_out_what_it_matches_whatever_let_it_in() {
        let r = roles(&["fs_*", "!fs_write_*"]);
        assert!(r.allows(Some("r"), "fs_read"));
        assert!(!r.allows(Some("r"), "fs_write_file"));
        assert!(!r.allows(Some("r"), "git_log"));
        // An empty role lets nothing through; one of exclusions only, everything else.
        assert!(!roles(&[]).allows(Some("r"), "git_log"));
        let only_exclusions = roles(&["!fs_write_*"]);
        assert!(only_exclusions.allows(Some("r"), "git_log"));
        assert!(!only_exclusions.allows(Some("r"), "fs_write_file"));
    }

    #[test]
    fn selectors_read_the_annotations_and_an_absent_hint_is_destructive() {
        let ro = roles(&["@read-only"]);
        assert!(ro.allows_tool(Some("r"), &tool("a", Some(true), None)));
        assert!(!ro.allows_tool(Some("r"), &tool("b", Some(false), Some(false))));
        assert!(!ro.allows_tool(Some("r"), &tool("c", None, None)));
        // Prompts and resources have no annotations: a selector never lets them through.
        assert!(!ro.allows(Some("r"), "a"));

        let safe = roles(&["@!destructive", "!x_*"]);
        assert!(safe.allows_tool(Some("r"), &tool("a", Some(true), None)));
        assert!(safe.allows_tool(Some("r"), &tool("b", Some(false), Some(false))));
        assert!(!safe.allows_tool(Some("r"), &tool("c", None, None)));
        assert!(!safe.allows_tool(Some("r"), &tool("d", Some(false), None)));
        assert!(!safe.allows_tool(Some("r"), &tool("x_e", Some(true), None)));
    }
}
