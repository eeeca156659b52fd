//! The routing table: an immutable snapshot of backends, roles and exposed tool names.
//!
//! Every request loads the current table once (lock-free, from an `ArcSwap` in the gateway) and
//! finishes on that snapshot. A new table is built when the config is (re)loaded or when a
//! backend's tool list changes; building reuses the `Arc<Backend>` of every server whose spec is
//! unchanged, so running processes survive.

mod builtin;
mod catalog;
mod instructions;
pub mod pages;
mod roles;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use crate::backend::Backend;
use crate::backend::listed::{Listed, Members};
use crate::config::Config;

pub use crate::config::resource_role_name;
pub use builtin::Builtin;
pub use catalog::{Catalog, Named, Target, prefix_of};
pub use roles::Roles;

pub struct Table {
    pub config: Arc<Config>,
    pub backends: BTreeMap<String, Arc<Backend>>,
    pub roles: Roles,
    pub catalog: Catalog,
    /// The embedder's tools ([`crate::tools`]), the same in every table.
    pub tools: crate::tools::Tools,
    /// The servers' pinned tool definitions ([`crate::pins`]), the same in every table.
    pub pins: Arc<crate::pins::Pins>,
    /// What each role sees, computed on first use: a table never changes, so neither do these.
    views: std::sync::Mutex<std::collections::HashMap<Option<String>, Arc<RoleView>>>,
    /// [`Self::surface_warnings`], computed on first use. A server's lists changing (or first
    /// becoming known) builds a new table, so they hold for this one.
    surface: std::sync::OnceLock<Vec<String>>,
}

/// Everything one role sees in one table, ready to page, with fingerprints for list_changed.
pub struct RoleView {
    pub tools: Vec<Listed<Tool>>,
    pub prompts: Vec<Listed<Prompt>>,
    pub resources: Vec<Listed<Resource>>,
    pub templates: Vec<Listed<ResourceTemplate>>,
    /// The members rmcp's types do not know of the listed items that have some, by list and
    /// by the name (URI, URI template) the client sees: what rmcp's answers to lists are given
    /// back (the byte path's pages carry them already).
    pub unknown: UnknownMembers,
    /// Hashes of the tools, the prompts, and the resources with templates, as listed.
    pub fingerprints: [u64; 3],
    /// The gateway's instructions: what it is, and each visible server's own.
    pub instructions: String,
    tool_pages: std::sync::OnceLock<Vec<bytes::Bytes>>,
}

impl Table {
    /// Builds a table for `config`, reusing the backends of `prev` whose spec is unchanged.
    pub fn build(
        config: Arc<Config>,
        prev: Option<&Table>,
        tools: crate::tools::Tools,
        pins: Arc<crate::pins::Pins>,
        mut new_backend: impl FnMut(&crate::config::ServerConfig) -> Arc<Backend>,
    ) -> Result<Self, String> {
        let roles = Roles::compile(&config.roles)?;
        let mut backends = BTreeMap::new();
        for (name, spec) in &config.servers {
            // Same connection spec, scope and enabled state: keep the running backend. What else
            // a server entry holds is applied without a restart: timeouts and max_message below,
            // and the prefix and `tools`/`prompts` by the catalog, which reads them from this
            // table's config.
            let reused = prev
                .and_then(|t| t.backends.get(name))
                .filter(|b| {
                    b.spec_hash() == spec.spec_hash()
                        && b.spec.scope == spec.scope
                        && b.spec.enabled == spec.enabled
                        && b.spec.disabled_reason == spec.disabled_reason
                })
                .cloned();
            let backend = match reused {
                Some(backend) => {
                    backend.set_timeouts(
                        spec.effective_idle_timeout(config.idle_timeout),
                        spec.effective_call_timeout(config.call_timeout),
                    );
                    backend.set_max_message(spec.effective_max_message(config.max_message));
                    backend
                }
                None => new_backend(spec),
            };
            backends.insert(name.clone(), backend);
        }
        let catalog = Catalog::build(&config, &backends, &tools, &pins);
        Ok(Self {
            config,
            backends,
            roles,
            catalog,
            tools,
            pins,
            views: Default::default(),
            surface: Default::default(),
        })
    }

    /// The same table with its catalog rebuilt from the backends' current tools.
    pub fn with_fresh_catalog(&self) -> Self {
        Self {
            config: self.config.clone(),
            backends: self.backends.clone(),
            roles: self.roles.clone(),
            catalog: Catalog::build(&self.config, &self.backends, &self.tools, &self.pins),
            tools: self.tools.clone(),
            pins: self.pins.clone(),
            views: Default::default(),
            surface: Default::default(),
        }
    }

    /// What `role` sees (built once per table and role).
    pub fn view(&self, role: Option<&str>) -> Arc<RoleView> {
        let key = role.map(str::to_string);
        if let Some(view) = self.views.lock().unwrap().get(&key) {
            return view.clone();
        }
        let view = Arc::new(self.build_view(role));
        self.views.lock().unwrap().insert(key, view.clone());
        view
    }

    fn build_view(&self, role: Option<&str>) -> RoleView {
        let tools: Vec<Listed<Tool>> = self.visible_tools(role).map(|t| t.item.clone()).collect();
        let prompts: Vec<Listed<Prompt>> =
            self.visible_prompts(role).map(|p| p.item.clone()).collect();
        let resources: Vec<Listed<Resource>> = self
            .catalog
            .resources
            .iter()
            .filter(|r| self.allows_resource(role, &r.backend.name, &r.item.uri))
            .map(|r| r.item.clone())
            .collect();
        let mut templates: Vec<Listed<ResourceTemplate>> = self
            .catalog
            .templates
            .iter()
            .filter(|t| self.allows_resource(role, &t.backend.name, &t.item.uri_template))
            .map(|t| t.item.clone())
            .collect();
        // Listed in name order like the rest (the catalog keeps them in routing order); the
        // sort is stable, so of two alike the routed one stays first.
        templates.sort_by(|a, b| a.uri_template.cmp(&b.uri_template));
        let hash = |json: Result<Vec<u8>, serde_json::Error>| {
            crate::config::fnv1a64(&json.unwrap_or_default())
        };
        let fingerprints = [
            hash(serde_json::to_vec(&tools)),
            hash(serde_json::to_vec(&prompts)),
            hash(serde_json::to_vec(&(&resources, &templates))),
        ];
        let unknown = UnknownMembers {
            tools: unknown_by(&tools, |t| &t.name),
            prompts: unknown_by(&prompts, |p| &p.name),
            resources: unknown_by(&resources, |r| &r.uri),
            templates: unknown_by(&templates, |t| &t.uri_template),
        };
        RoleView {
            unknown,
            tools,
            prompts,
            resources,
            templates,
            fingerprints,
            instructions: instructions::compose(self, role),
            tool_pages: Default::default(),
        }
    }

    /// The tools a session of `role` sees, in catalog order.
    pub fn visible_tools<'a>(
        &'a self,
        role: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Named<Tool>> + 'a {
        self.catalog
            .tools
            .items
            .iter()
            .filter(move |e| self.roles.allows_tool(role, &e.item))
    }

    pub fn visible_prompts<'a>(
        &'a self,
        role: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Named<Prompt>> + 'a {
        self.catalog
            .prompts
            .items
            .iter()
            .filter(move |e| self.roles.allows(role, &e.item.name))
    }

    /// What the config names that does not exist: a server's `tools:`/`prompts:` entries
    /// that name none of its items (once its lists are known), and role entries that match
    /// nothing (once every enabled server's are: before, a server not yet discovered could be
    /// what they name). A typo in either is otherwise a silent hole.
    pub fn surface_warnings(&self) -> &[String] {
        self.surface.get_or_init(|| {
            let mut warnings = self.shaping_warnings();
            warnings.extend(self.role_warnings());
            warnings
        })
    }

    fn shaping_warnings(&self) -> Vec<String> {
        let offered: Vec<crate::config::Offered> = (self.config.servers.keys())
            .filter_map(|name| {
                let schema = self.backends.get(name)?.schema()?;
                Some(crate::config::Offered {
                    server: name.clone(),
                    tools: schema.tools.iter().map(|t| t.name.to_string()).collect(),
                    prompts: schema.prompts.iter().map(|p| p.name.clone()).collect(),
                    // Only tools and prompts are shaped (roles use the catalog's names).
                    resources: Vec::new(),
                })
            })
            .collect();
        crate::config::shaping_warnings(&self.config, &offered)
    }

    fn role_warnings(&self) -> Vec<String> {
        let known = self
            .backends
            .values()
            .filter(|b| b.spec.enabled)
            .all(|b| b.schema().is_some());
        if !known {
            return Vec::new();
        }
        let resources = self
            .catalog
            .resources
            .iter()
            .map(|r| resource_role_name(&r.backend.name, &r.item.uri))
            .chain(
                self.catalog
                    .templates
                    .iter()
                    .map(|t| resource_role_name(&t.backend.name, &t.item.uri_template)),
            )
            .collect::<Vec<_>>();
        // The names the catalog gave (clashes settled), and the tools it holds back.
        let names = self
            .catalog
            .tools
            .items
            .iter()
            .map(|t| t.item.name.as_ref())
            .chain(
                self.catalog
                    .prompts
                    .items
                    .iter()
                    .map(|p| p.item.name.as_str()),
            )
            .chain(self.catalog.pin_changes.iter().map(|c| c.exposed.as_str()))
            .chain(resources.iter().map(String::as_str));
        crate::config::role_warnings(&self.config, names)
    }

    /// Whether `role` may see and use a resource (or template) of `server`.
    pub fn allows_resource(&self, role: Option<&str>, server: &str, uri: &str) -> bool {
        self.roles.allows(role, &resource_role_name(server, uri))
    }

    /// Whether `role` sees anything of `server` (for log messages from it).
    pub fn sees_server(&self, role: Option<&str>, server: &str) -> bool {
        let of_server =
            |t: &Target| matches!(t, Target::Backend { backend, .. } if backend.name == server);
        self.visible_tools(role).any(|t| of_server(&t.target))
            || self.visible_prompts(role).any(|p| of_server(&p.target))
            || self.catalog.resources.iter().any(|r| {
                r.backend.name == server && self.allows_resource(role, server, &r.item.uri)
            })
            || self.catalog.templates.iter().any(|t| {
                t.backend.name == server && self.allows_resource(role, server, &t.item.uri_template)
            })
    }
}

/// See [`RoleView::unknown`].
#[derive(Default)]
pub struct UnknownMembers {
    pub tools: HashMap<String, Members>,
    pub prompts: HashMap<String, Members>,
    pub resources: HashMap<String, Members>,
    pub templates: HashMap<String, Members>,
}

fn unknown_by<T>(items: &[Listed<T>], key: impl Fn(&T) -> &str) -> HashMap<String, Members> {
    // Two servers' templates may share a URI template: the first is the one routed to, so its
    // members are the ones kept.
    let mut kept = HashMap::new();
    for item in items {
        if let Some(unknown) = &item.unknown {
            kept.entry(key(&item.item).to_string())
                .or_insert_with(|| unknown.clone());
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Role;

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
        assert!(roles.allows(Some("readonly"), &resource_role_name("fs", "file:///x")));
        assert!(!roles.allows(Some("readonly"), &resource_role_name("git", "file:///x")));
        assert!(roles.allows(Some("admin"), "git_push"));
        assert!(roles.allows(None, "git_push"));
        assert!(!roles.allows(Some("gone"), "fs_read"));
        let err = roles.check(Some("writer")).unwrap_err();
        assert_eq!(err, "unknown role `writer`; known roles: admin, readonly");

        defs.insert(
            roles::DEFAULT_ROLE.to_string(),
            Role::Patterns(vec!["fs_*".into()]),
        );
        let roles = Roles::compile(&defs).unwrap();
        assert!(!roles.allows(None, "git_push"));
        assert!(roles.allows(None, "fs_read"));
    }
}
