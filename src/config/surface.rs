//! What the config names of the servers' items, checked against what they offer: a server's
//! `tools:`/`prompts:` entries that name none of its items, and role glob entries that match
//! no exposed name. A typo in either is otherwise a silent hole (a tool not hidden, a role
//! that lets nothing through). The daemon checks against the lists it holds (status, reload);
//! `mcpgwctl check` against the schema cache ([`crate::cache_files`]).

use super::{Config, Role, Shape, exposed_name};

/// The gateway's own tools, named as roles name them (`table/builtin.rs` serves them; a test
/// there keeps the two the same).
pub const BUILTIN_TOOLS: &[&str] = &["gateway_status"];

/// What one server offers, by its own names.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub server: String,
    pub tools: Vec<String>,
    pub prompts: Vec<String>,
    /// Resource URIs and resource template URI templates.
    pub resources: Vec<String>,
}

/// A warning for each `tools:`/`prompts:` entry of a server among `offered` that names none
/// of its items (or only items it also hides).
pub fn shaping_warnings(config: &Config, offered: &[Offered]) -> Vec<String> {
    let mut warnings = Vec::new();
    for offer in offered {
        let Some(spec) = config.servers.get(&offer.server).filter(|s| s.enabled) else {
            continue;
        };
        let kinds = [
            ("tools", &spec.tools, &offer.tools),
            ("prompts", &spec.prompts, &offer.prompts),
        ];
        for (key, shaping, items) in kinds {
            let notes = Shape::new(shaping).unmatched(key, items.iter().map(String::as_str));
            for note in notes {
                warnings.push(format!("server `{}`: {note}", offer.server));
            }
        }
    }
    warnings
}

/// The names roles see of what `offered` servers offer, as the catalog exposes them (shaped
/// and prefixed; a clash the catalog settles by renaming is not foreseen here), with the
/// gateway's own tools and the config's commands.
pub fn exposed_names(config: &Config, offered: &[Offered]) -> Vec<String> {
    let mut names: Vec<String> = BUILTIN_TOOLS.iter().map(|n| n.to_string()).collect();
    names.extend(config.commands.iter().map(|c| c.name.clone()));
    for offer in offered {
        let Some(spec) = config.servers.get(&offer.server).filter(|s| s.enabled) else {
            continue;
        };
        for (shaping, items) in [(&spec.tools, &offer.tools), (&spec.prompts, &offer.prompts)] {
            let shape = Shape::new(shaping);
            let shown = items.iter().filter(|item| shape.admits(item));
            names.extend(shown.map(|item| exposed_name(&spec.prefix, shape.name(item))));
        }
        let resources = offer.resources.iter();
        names.extend(resources.map(|uri| resource_role_name(&offer.server, uri)));
    }
    names
}

/// The name roles match resources and templates by: `<server>_resource:<uri>`, so a role's
/// `filesystem_*` covers the filesystem server's resources as well as its tools.
pub fn resource_role_name(server: &str, uri: &str) -> String {
    format!("{server}_resource:{uri}")
}

/// A warning for every glob entry of a role (`!` ones too) that matches none of `names`
/// (every exposed name, once every enabled server's lists are known: before, a server not
/// yet discovered could be what an entry names). Selectors (`@read-only`) match by
/// annotations and are not judged.
pub fn role_warnings<'n>(
    config: &Config,
    names: impl Iterator<Item = &'n str> + Clone,
) -> Vec<String> {
    let mut warnings = Vec::new();
    for (role, definition) in &config.roles {
        let Role::Patterns(patterns) = definition else {
            continue;
        };
        for pattern in patterns.iter().filter(|p| !p.starts_with('@')) {
            let glob = pattern.strip_prefix('!').unwrap_or(pattern);
            // Checked when the config was loaded; one that does not compile matches nothing.
            let matcher = globset::Glob::new(glob).map(|g| g.compile_matcher());
            let matches = matcher.is_ok_and(|m| names.clone().any(|name| m.is_match(name)));
            if !matches {
                warnings.push(format!(
                    "role `{role}`: `{pattern}` matches nothing any configured server offers"
                ));
            }
        }
    }
    warnings
}
