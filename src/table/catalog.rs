//! The catalog: everything the backends offer, under the names clients see.
//!
//! Tools and prompts are exposed as `<server>_<name>` (shortened deterministically past 64
//! characters, renamed with a hash suffix on collision, so every item stays reachable).
//! Resources keep their URIs — a URI is the resource's identity — and are routed by exact URI,
//! then by the first resource template that matches. A server's `tools:`/`prompts:` shaping
//! ([`Shape`]) decides which of its items are taken, and their names and descriptions.
//! Every list is in name order ([`Catalog::settle_order`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use rmcp::model::{Prompt, Resource, ResourceTemplate, Tool};

use super::builtin::Builtin;
use crate::backend::Backend;
use crate::backend::listed::Listed;
use crate::config::{Shape, exposed_name, shorten};

/// Where a request for an exposed item goes.
#[derive(Clone)]
pub enum Target {
    Builtin(Builtin),
    /// A tool that runs a program (`commands` in the config).
    Command(Arc<crate::config::CommandTool>),
    /// An embedder's tool, run in the daemon's process ([`crate::tools`]).
    Rust(Arc<crate::tools::RustTool>),
    Backend {
        backend: Arc<Backend>,
        /// The item's name on its server.
        original: String,
    },
}

/// A tool or prompt as clients see it: the backend's item with `name` replaced.
#[derive(Clone)]
pub struct Named<T> {
    pub item: Listed<T>,
    pub target: Target,
}

/// A resource or template with the backend that serves it.
#[derive(Clone)]
pub struct Owned<T> {
    pub item: Listed<T>,
    pub backend: Arc<Backend>,
}

/// Tools or prompts, in order, with an index by exposed name.
pub struct NameSpace<T> {
    pub items: Vec<Named<T>>,
    index: HashMap<String, usize>,
}

impl<T> Default for NameSpace<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T> NameSpace<T> {
    pub fn get(&self, exposed: &str) -> Option<&Named<T>> {
        self.index.get(exposed).map(|&i| &self.items[i])
    }

    /// The name to expose `original` of `backend` under: `<prefix>_<original>`, or a
    /// disambiguated form when that is taken (noted in `collisions`).
    ///
    /// A name belongs to the server whose prefix produced it. An unprefixed server's item is
    /// exposed under its server's name instead when its bare name is taken or looks like
    /// another server's (`<their prefix>_…`): it must neither take that server's names nor
    /// inherit the role grants written for them (`github_*`).
    fn name_for(
        &self,
        backend: &Backend,
        names: &Prefixes,
        original: &str,
        kind: &str,
        collisions: &mut Vec<String>,
    ) -> String {
        let prefix = names.of(backend);
        let mut exposed = exposed_name(prefix, original);
        if prefix.is_empty() && (self.index.contains_key(&exposed) || names.claims(&exposed)) {
            let own = exposed_name(&backend.name, original);
            let note = format!(
                "{kind} `{original}` of unprefixed server `{}` would be exposed as `{exposed}`, \
                 a name of another server; exposed as `{own}`",
                backend.name
            );
            tracing::warn!("{note}");
            collisions.push(note);
            exposed = own;
        }
        if !self.index.contains_key(&exposed) {
            return exposed;
        }
        let renamed = shorten(&exposed, &format!("{}\0{original}", backend.name));
        let note = format!(
            "{kind} `{original}` of server `{}` would be exposed as `{exposed}`, which is taken; exposed as `{renamed}`",
            backend.name
        );
        tracing::warn!("{note}");
        collisions.push(note);
        renamed
    }

    fn insert(&mut self, exposed: String, item: Listed<T>, target: Target) {
        self.index.insert(exposed, self.items.len());
        self.items.push(Named { item, target });
    }

    /// Sorts the items by their exposed name (unique) and reindexes them.
    fn sort_by(&mut self, name: impl Fn(&T) -> &str) {
        self.items.sort_by(|a, b| name(&a.item).cmp(name(&b.item)));
        for (i, entry) in self.items.iter().enumerate() {
            if let Some(slot) = self.index.get_mut(name(&entry.item)) {
                *slot = i;
            }
        }
    }
}

/// The items of a server its shaping admits, in the order they claim names: renamed ones
/// first (the user gave them their names), then the server's own, each in the server's
/// order. Of two items the server lists under one name the first is taken (calls reach the
/// server by name, so a second could never be told apart), and the other is noted.
fn admitted<'s, T: ListedName>(
    items: &'s [Listed<T>],
    shape: &Shape<'_>,
    backend: &Backend,
    collisions: &mut Vec<String>,
) -> Vec<&'s Listed<T>> {
    let mut seen = std::collections::HashSet::new();
    let mut admitted = Vec::with_capacity(items.len());
    for item in items {
        let name = item.item.name();
        if !seen.insert(name) {
            collisions.push(format!(
                "server `{}` lists `{name}` twice; the first is used",
                backend.name
            ));
            continue;
        }
        if shape.admits(name) {
            admitted.push(item);
        }
    }
    admitted.sort_by_key(|item| shape.name(item.item.name()) == item.item.name());
    admitted
}

/// The name a server gives a listed tool or prompt.
trait ListedName {
    fn name(&self) -> &str;
}

impl ListedName for Tool {
    fn name(&self) -> &str {
        &self.name
    }
}

impl ListedName for Prompt {
    fn name(&self) -> &str {
        &self.name
    }
}

/// What of the config has a tool named `name`: a command, or a prefixed server's tools.
fn owner_of_name(config: &crate::config::Config, name: &str) -> Option<String> {
    if config.commands.iter().any(|c| c.name == name) {
        return Some(format!("the config's command `{name}`"));
    }
    config
        .servers
        .values()
        .filter(|s| s.enabled)
        .find(|s| crate::config::named_under(&s.prefix, name))
        .map(|s| format!("server `{}`'s tools (`{}_…`)", s.name, s.prefix))
}

/// `backend`'s prefix, from the config (not the backend: a kept backend carries its first
/// spec, and a reload may have changed only the prefix).
pub fn prefix_of<'a>(config: &'a crate::config::Config, backend: &'a Backend) -> &'a str {
    config
        .servers
        .get(&backend.name)
        .map_or(backend.spec.prefix.as_str(), |s| s.prefix.as_str())
}

/// Every enabled server's prefix ([`prefix_of`]).
struct Prefixes(BTreeMap<String, String>);

impl Prefixes {
    fn of_config(
        config: &crate::config::Config,
        backends: &BTreeMap<String, Arc<Backend>>,
    ) -> Self {
        let prefixes = backends
            .values()
            .filter(|b| b.spec.enabled)
            .map(|b| (b.name.clone(), prefix_of(config, b).to_string()))
            .collect();
        Self(prefixes)
    }

    fn of(&self, backend: &Backend) -> &str {
        self.0.get(&backend.name).map_or("", String::as_str)
    }

    /// Whether `exposed` is spelled like a name of a prefixed server (`<prefix>_…`).
    fn claims(&self, exposed: &str) -> bool {
        self.0.values().any(|prefix| {
            !prefix.is_empty()
                && exposed
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('_'))
        })
    }
}

#[derive(Default)]
pub struct Catalog {
    pub tools: NameSpace<Tool>,
    pub prompts: NameSpace<Prompt>,
    pub resources: Vec<Owned<Resource>>,
    resource_index: HashMap<String, usize>,
    pub templates: Vec<Owned<ResourceTemplate>>,
    /// Human-readable notes about names that clashed and how they were resolved.
    pub collisions: Vec<String>,
    /// Tools that differ from their pins ([`crate::pins`]), held back or (`pin: warn`) not.
    pub pin_changes: Vec<PinChange>,
}

/// A tool that differs from its pin. A held one is not in the catalog: not listed, and a call
/// to it is answered with why.
pub struct PinChange {
    /// The name it is (or would be) exposed under.
    pub exposed: String,
    pub server: String,
    /// `pin: quarantine`: held back.
    pub held: bool,
    pub change: crate::pins::Change,
}

impl Catalog {
    pub fn build(
        config: &crate::config::Config,
        backends: &BTreeMap<String, Arc<Backend>>,
        tools: &crate::tools::Tools,
        pins: &crate::pins::Pins,
    ) -> Self {
        let mut catalog = Catalog::default();
        for builtin in Builtin::ALL {
            let tool = builtin.tool();
            catalog.tools.insert(
                tool.name.to_string(),
                Listed::known(tool),
                Target::Builtin(builtin),
            );
        }
        // Commands next: their names are checked against every prefix by the config.
        for command in &config.commands {
            let schema = crate::backend::command::input_schema(command);
            let tool = Tool::new(
                command.name.clone(),
                command.description.clone(),
                Arc::new(schema),
            );
            catalog.tools.insert(
                command.name.clone(),
                Listed::known(tool),
                Target::Command(Arc::new(command.clone())),
            );
        }
        // The embedder's tools next. The config's names are the user's: a command of the same
        // name, or a prefixed server's `<prefix>_…`, keeps it, and the embedder's tool is left
        // out (said in the log and `collisions`).
        for tool in tools.iter() {
            if let Some(owner) = owner_of_name(config, &tool.name) {
                let note = format!(
                    "the embedder's tool `{}` is left out: {owner} are named so",
                    tool.name
                );
                tracing::warn!("{note}");
                catalog.collisions.push(note);
                continue;
            }
            let listed = Tool::new(
                tool.name.clone(),
                tool.description.clone(),
                tool.input_schema.clone(),
            );
            catalog.tools.insert(
                tool.name.clone(),
                Listed::known(listed),
                Target::Rust(tool.clone()),
            );
        }
        let names = Prefixes::of_config(config, backends);
        // Prefixed servers first: their names are theirs (see `name_for`).
        let (unprefixed, prefixed): (Vec<_>, Vec<_>) = backends
            .values()
            .filter(|b| b.spec.enabled)
            .partition(|b| names.of(b).is_empty());
        for backend in prefixed.into_iter().chain(unprefixed) {
            let Some(schema) = backend.schema() else {
                continue;
            };
            let target = |original: &str| Target::Backend {
                backend: backend.clone(),
                original: original.to_string(),
            };
            // The shaping in this table's config (a reload may have changed only that).
            let shaping = config.servers.get(&backend.name).unwrap_or(&backend.spec);
            let shape = Shape::new(&shaping.tools);
            // Pins judge the server's tools as it wrote them: shaping is the user's own word.
            let mode = shaping.effective_pin(config.pin);
            let changes = pins.judge(&backend.name, mode, &schema);
            let held = mode == crate::config::PinMode::Quarantine;
            for tool in admitted(&schema.tools, &shape, backend, &mut catalog.collisions) {
                if let Some(change) = changes.get(tool.name.as_ref()) {
                    catalog.pin_changes.push(PinChange {
                        exposed: exposed_name(names.of(backend), shape.name(&tool.name)),
                        server: backend.name.clone(),
                        held,
                        change: change.clone(),
                    });
                    if held {
                        continue;
                    }
                }
                let exposed = catalog.tools.name_for(
                    backend,
                    &names,
                    shape.name(&tool.name),
                    "tool",
                    &mut catalog.collisions,
                );
                let mut item = tool.clone();
                item.name = exposed.clone().into();
                if let Some(description) = shape.description(&tool.name) {
                    item.description = Some(description.to_owned().into());
                }
                catalog.tools.insert(exposed, item, target(&tool.name));
            }
            let shape = Shape::new(&shaping.prompts);
            for prompt in admitted(&schema.prompts, &shape, backend, &mut catalog.collisions) {
                let exposed = catalog.prompts.name_for(
                    backend,
                    &names,
                    shape.name(&prompt.name),
                    "prompt",
                    &mut catalog.collisions,
                );
                let mut item = prompt.clone();
                item.name = exposed.clone();
                if let Some(description) = shape.description(&prompt.name) {
                    item.description = Some(description.to_owned());
                }
                catalog.prompts.insert(exposed, item, target(&prompt.name));
            }
            for resource in &schema.resources {
                if let Some(&first) = catalog.resource_index.get(&resource.uri) {
                    catalog.collisions.push(format!(
                        "resource `{}` of server `{}` is also offered by `{}`; reads go to `{}`",
                        resource.uri,
                        backend.name,
                        catalog.resources[first].backend.name,
                        catalog.resources[first].backend.name
                    ));
                    continue;
                }
                catalog
                    .resource_index
                    .insert(resource.uri.clone(), catalog.resources.len());
                catalog.resources.push(Owned {
                    item: resource.clone(),
                    backend: backend.clone(),
                });
            }
            for template in &schema.resource_templates {
                catalog.templates.push(Owned {
                    item: template.clone(),
                    backend: backend.clone(),
                });
            }
        }
        catalog.settle_order();
        catalog
    }

    /// Puts tools, prompts and resources in name (URI) order: the order every list is in, so
    /// that it is the same in every session and after every restart whatever order servers
    /// list in (clients' prompt caches depend on it). Which of two clashing items got the
    /// plain name was settled while building, in the fixed order of servers. Templates keep
    /// that order: the first that matches a URI serves it (lists sort them by themselves).
    fn settle_order(&mut self) {
        self.tools.sort_by(|item| item.name.as_ref());
        self.prompts.sort_by(|item| item.name.as_str());
        self.resources.sort_by(|a, b| a.item.uri.cmp(&b.item.uri));
        self.resource_index = (self.resources.iter().enumerate())
            .map(|(i, r)| (r.item.uri.clone(), i))
            .collect();
    }

    /// The backend that serves `uri`: the one listing it, else the first whose template
    /// matches it.
    pub fn resource_owner(&self, uri: &str) -> Option<&Arc<Backend>> {
        if let Some(&i) = self.resource_index.get(uri) {
            return Some(&self.resources[i].backend);
        }
        self.templates
            .iter()
            .find(|t| template_matches(&t.item.uri_template, uri))
            .map(|t| &t.backend)
    }

    /// The backend that owns a resource template (for completions of its arguments).
    pub fn template_owner(&self, uri_template: &str) -> Option<&Arc<Backend>> {
        self.templates
            .iter()
            .find(|t| t.item.uri_template == uri_template)
            .map(|t| &t.backend)
            .or_else(|| self.resource_owner(uri_template))
    }
}

/// Whether `uri` fits an RFC 6570 template, treating every `{…}` expression as "one or more
/// characters up to the next literal part". Enough to route reads; the server does the real
/// expansion.
pub fn template_matches(template: &str, uri: &str) -> bool {
    let mut literals = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        literals.push(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => rest = &rest[open + close + 1..],
            None => return template == uri,
        }
    }
    let tail = rest;
    let Some((first, middle)) = literals.split_first() else {
        return template == uri;
    };
    let Some(mut remaining) = uri.strip_prefix(first) else {
        return false;
    };
    for literal in middle {
        // A variable takes at least one character, then the next literal must follow.
        let Some(pos) = remaining.get(1..).and_then(|r| r.find(literal)) else {
            return false;
        };
        remaining = &remaining[1 + pos + literal.len()..];
    }
    remaining.len() > tail.len() && remaining.ends_with(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_uris() {
        assert!(template_matches("fixture://item/{id}", "fixture://item/42"));
        assert!(!template_matches("fixture://item/{id}", "fixture://item/"));
        assert!(!template_matches(
            "fixture://item/{id}",
            "fixture://other/42"
        ));
        assert!(template_matches("file:///{path}.md", "file:///docs/a.md"));
        assert!(!template_matches("file:///{path}.md", "file:///docs/a.txt"));
        assert!(template_matches("x://{a}/y/{b}", "x://1/y/2"));
        assert!(!template_matches("x://{a}/y/{b}", "x://1/z/2"));
        assert!(template_matches("plain://uri", "plain://uri"));
        assert!(!template_matches("plain://uri", "plain://uri2"));
    }
}
