//! The routing table: an immutable snapshot of backends, roles and exposed tool names.
//!
//! Every request loads the current table once (lock-free, from an `ArcSwap` in the gateway) and
//! finishes on that snapshot. A new table is built when the config is (re)loaded or when a
//! backend's tool list changes; building reuses the `Arc<Backend>` of every server whose spec is
//! unchanged, so running processes survive.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use rmcp::model::Tool;

use crate::backend::Backend;
use crate::builtin::Builtin;
use crate::config::{Config, Role};

/// MCP clients commonly reject tool names longer than this.
pub const MAX_TOOL_NAME: usize = 64;

/// Where a call to an exposed tool goes.
#[derive(Clone)]
pub enum Target {
    Builtin(Builtin),
    Backend {
        backend: Arc<Backend>,
        /// The tool's name on its server.
        original: String,
    },
}

/// A tool as clients see it.
#[derive(Clone)]
pub struct Exposed {
    /// The backend's tool with `name` replaced by the exposed name.
    pub tool: Tool,
    pub target: Target,
}

/// Every tool of every backend under its exposed name.
#[derive(Default)]
pub struct Catalog {
    pub tools: Vec<Exposed>,
    index: HashMap<String, usize>,
    /// Human-readable notes about names that clashed and how they were renamed.
    pub collisions: Vec<String>,
}

impl Catalog {
    pub fn get(&self, exposed: &str) -> Option<&Exposed> {
        self.index.get(exposed).map(|&i| &self.tools[i])
    }

    fn build(backends: &BTreeMap<String, Arc<Backend>>) -> Self {
        let mut catalog = Catalog::default();
        for builtin in Builtin::ALL {
            catalog.insert(builtin.tool(), Target::Builtin(builtin));
        }
        for backend in backends.values().filter(|b| b.spec.enabled) {
            let Some(tools) = backend.tools() else {
                continue;
            };
            for tool in tools.iter() {
                let exposed = exposed_name(&backend.name, &tool.name);
                let target = Target::Backend {
                    backend: backend.clone(),
                    original: tool.name.to_string(),
                };
                let mut tool = tool.clone();
                if catalog.index.contains_key(&exposed) {
                    let renamed = disambiguate(&exposed, &backend.name, &tool.name);
                    let note = format!(
                        "tool `{}` of server `{}` would be exposed as `{exposed}`, which is taken; exposed as `{renamed}`",
                        tool.name, backend.name
                    );
                    tracing::warn!("{note}");
                    catalog.collisions.push(note);
                    tool.name = renamed.into();
                } else {
                    tool.name = exposed.into();
                }
                catalog.insert(tool, target);
            }
        }
        catalog
    }

    fn insert(&mut self, tool: Tool, target: Target) {
        self.index.insert(tool.name.to_string(), self.tools.len());
        self.tools.push(Exposed { tool, target });
    }
}

/// `<server>_<tool>`, shortened deterministically to [`MAX_TOOL_NAME`] when longer: the first
/// 55 bytes, `_`, and 8 hex digits of a hash of the full name, so it stays unique and stable.
pub fn exposed_name(server: &str, tool: &str) -> String {
    let full = format!("{server}_{tool}");
    if full.len() <= MAX_TOOL_NAME {
        return full;
    }
    shorten(&full, &full)
}

fn disambiguate(exposed: &str, server: &str, tool: &str) -> String {
    shorten(exposed, &format!("{server}\0{tool}"))
}

fn shorten(name: &str, hash_input: &str) -> String {
    let keep = MAX_TOOL_NAME - 9;
    let mut end = keep.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let hash = crate::config::fnv1a64(hash_input.as_bytes()) as u32;
    format!("{}_{hash:08x}", &name[..end])
}

/// Compiled role filters.
pub struct Roles {
    roles: BTreeMap<String, Option<GlobSet>>,
}

/// The role used when a client names none, if the config defines it.
pub const DEFAULT_ROLE: &str = "default";

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
        let role = role.or_else(|| {
            self.roles
                .contains_key(DEFAULT_ROLE)
                .then_some(DEFAULT_ROLE)
        });
        match role {
            None => true,
            Some(role) => match self.roles.get(role) {
                Some(None) => true,
                Some(Some(set)) => set.is_match(exposed),
                None => false,
            },
        }
    }
}

pub struct Table {
    pub config: Arc<Config>,
    pub backends: BTreeMap<String, Arc<Backend>>,
    pub roles: Roles,
    pub catalog: Catalog,
}

impl Table {
    /// Builds a table for `config`, reusing the backends of `prev` whose spec is unchanged.
    pub fn build(
        config: Arc<Config>,
        prev: Option<&Table>,
        mut new_backend: impl FnMut(&crate::config::ServerConfig) -> Arc<Backend>,
    ) -> Result<Self, String> {
        let roles = Roles::compile(&config.roles)?;
        let mut backends = BTreeMap::new();
        for (name, spec) in &config.servers {
            // Same process spec and same enabled state: keep the running backend. Everything
            // else a server entry holds (idle_timeout) is applied to the kept backend below.
            let reused = prev
                .and_then(|t| t.backends.get(name))
                .filter(|b| {
                    b.spec_hash() == spec.spec_hash()
                        && b.spec.enabled == spec.enabled
                        && b.spec.disabled_reason == spec.disabled_reason
                })
                .cloned();
            let backend = match reused {
                Some(backend) => {
                    backend.set_idle_timeout(spec.effective_idle_timeout(config.idle_timeout));
                    backend
                }
                None => new_backend(spec),
            };
            backends.insert(name.clone(), backend);
        }
        let catalog = Catalog::build(&backends);
        Ok(Self {
            config,
            backends,
            roles,
            catalog,
        })
    }

    /// The same table with its catalog rebuilt from the backends' current tools.
    pub fn with_fresh_catalog(&self) -> Self {
        Self {
            config: self.config.clone(),
            backends: self.backends.clone(),
            roles: Roles {
                roles: self.roles.roles.clone(),
            },
            catalog: Catalog::build(&self.backends),
        }
    }

    /// The tools a session of `role` sees, in catalog order.
    pub fn visible<'a>(&'a self, role: Option<&'a str>) -> impl Iterator<Item = &'a Exposed> + 'a {
        self.catalog
            .tools
            .iter()
            .filter(move |e| self.roles.allows(role, &e.tool.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_plain_prefixes() {
        assert_eq!(
            exposed_name("filesystem", "read_file"),
            "filesystem_read_file"
        );
    }

    #[test]
    fn long_names_shorten_deterministically() {
        let tool = "a".repeat(80);
        let name = exposed_name("srv", &tool);
        assert_eq!(name.len(), MAX_TOOL_NAME);
        assert_eq!(name, exposed_name("srv", &tool));
        assert_ne!(name, exposed_name("srv", &format!("{tool}b")));
        assert!(name.starts_with("srv_aaaa"));
    }

    #[test]
    fn roles_filter_and_default() {
        let mut defs = BTreeMap::new();
        defs.insert("admin".to_string(), Role::All);
        defs.insert(
            "readonly".to_string(),
            Role::Patterns(vec!["fs_*".into(), "gateway_status".into()]),
        );
        let roles = Roles::compile(&defs).unwrap();
        assert!(roles.allows(Some("readonly"), "fs_read"));
        assert!(!roles.allows(Some("readonly"), "git_push"));
        assert!(roles.allows(Some("admin"), "git_push"));
        assert!(roles.allows(None, "git_push"));
        assert!(!roles.allows(Some("gone"), "fs_read"));
        let err = roles.check(Some("writer")).unwrap_err();
        assert_eq!(err, "unknown role `writer`; known roles: admin, readonly");

        defs.insert(
            DEFAULT_ROLE.to_string(),
            Role::Patterns(vec!["fs_*".into()]),
        );
        let roles = Roles::compile(&defs).unwrap();
        assert!(!roles.allows(None, "git_push"));
        assert!(roles.allows(None, "fs_read"));
    }
}
