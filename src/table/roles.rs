//! Roles: which exposed names a session may see and call, as compiled globs.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::config::Role;

/// Compiled role filters.
#[derive(Clone)]
pub struct Roles {
    roles: BTreeMap<String, Option<GlobSet>>,
}

/// What a role lets through.
enum Filter<'a> {
    All,
    Globs(&'a GlobSet),
    Nothing,
}

pub use crate::config::DEFAULT_ROLE;

impl Roles {
    pub fn compile(roles: &BTreeMap<String, Role>) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for (name, role) in roles {
            let set = match role {
                Role::All => None,
                Role::Patterns(patterns) => {
                    let mut builder = GlobSetBuilder::new();
                    for pattern in patterns {
                        let glob = Glob::new(pattern)
                            .map_err(|e| format!("role `{name}`: bad pattern `{pattern}`: {e}"))?;
                        builder.add(glob);
                    }
                    Some(builder.build().map_err(|e| format!("role `{name}`: {e}"))?)
                }
            };
            out.insert(name.clone(), set);
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

    /// Whether a session of `role` may see and call `exposed`. No role means the `default`
    /// role if there is one, else everything; a role that a reload removed sees nothing.
    pub fn allows(&self, role: Option<&str>, exposed: &str) -> bool {
        match self.filter(role) {
            Filter::All => true,
            Filter::Globs(set) => set.is_match(exposed),
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
                Some(Some(set)) => Filter::Globs(set),
                None => Filter::Nothing,
            },
        }
    }
}
