//! Server names and prefixes: both start exposed tool names (`<prefix>_<tool>`, the prefix being
//! the server's name unless `prefix` says otherwise), so both must be tool-name safe, must leave
//! `gateway_*` to the gateway's own tools, and no two servers may expose tools under one prefix.

use super::ServerConfig;
use super::checker::{Checker, Entry};
use super::locate::{Mark, NodePath};
use super::server::ServerCheck;
use super::tree::Node;

/// The gateway's own tools are `gateway_*`; a server named so would shadow or mix with them.
const RESERVED: &str = "gateway";

/// A prefix taken by a server, and where (for the error when another server wants it).
pub(super) struct PrefixClaim {
    prefix: String,
    server: String,
    mark: Option<Mark>,
}

/// Whether `name` is named like the tools of a server whose prefix is `prefix`
/// (`<prefix>_…`): what a tool of the config's own (a command) or of the embedder's must not be.
pub fn named_under(prefix: &str, name: &str) -> bool {
    !prefix.is_empty()
        && name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('_'))
}

/// Why a name cannot start tool names (`<name>_<tool>`).
enum NameProblem {
    Invalid,
    Reserved,
}

/// Server names and prefixes start exposed tool names, so they must be tool-name safe and must
/// not be the gateway's own `gateway` (or start with `gateway_`).
fn name_problem(name: &str) -> Option<NameProblem> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        Some(NameProblem::Invalid)
    } else if name
        .strip_prefix(RESERVED)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
    {
        Some(NameProblem::Reserved)
    } else {
        None
    }
}

impl Checker<'_> {
    /// Exposed tools are named `<server>_<tool>` by default, so the name must be tool-name safe.
    pub(super) fn server_name(&mut self, server: &Entry<'_>) -> bool {
        let name = server.key;
        let problem = match name_problem(name) {
            None => return true,
            Some(NameProblem::Invalid) => {
                "names must start with a letter or digit and contain only letters, digits, `_` \
                 and `-`"
            }
            Some(NameProblem::Reserved) => {
                "it is reserved: the gateway's own tools are named `gateway_*`; choose another name"
            }
        };
        self.error(
            &server.key_at,
            format!("invalid server name `{name}`: {problem}"),
        );
        false
    }

    /// Two servers with one prefix would expose tools under the same names, and two unprefixed
    /// ones would compete for every name: the later one (in document order) is an error.
    pub(super) fn claim_prefix(
        &mut self,
        config: &ServerConfig,
        at: &NodePath,
        claims: &mut Vec<PrefixClaim>,
    ) {
        let mark = self.locator.node(at);
        let (name, prefix) = (&config.name, &config.prefix);
        let Some(first) = claims.iter().find(|c| c.prefix == *prefix) else {
            claims.push(PrefixClaim {
                prefix: prefix.clone(),
                server: name.clone(),
                mark,
            });
            return;
        };
        let (other, place) = (&first.server, self.cite(first.mark));
        let message = if prefix.is_empty() {
            format!(
                "server `{name}` is unprefixed (`prefix: \"\"`), and so is server `{other}` \
                 ({place}): at most one server may be, or their tools would compete for every name"
            )
        } else {
            format!(
                "server `{name}` uses the prefix `{prefix}`, which server `{other}` already uses \
                 ({place}); set a different `prefix` on one of them"
            )
        };
        self.error_at(mark, message);
    }

    /// `prefix`: `""` (unprefixed) or a tool-name-safe name that is not reserved.
    pub(super) fn prefix(&mut self, entry: &Entry<'_>, check: &ServerCheck<'_>) -> Option<String> {
        let subject = format!("`prefix` {}", check.context);
        let Node::Str(prefix) = entry.value else {
            let expected = "a string (what exposed names start with, or \"\" for none)";
            self.mismatch(entry, &subject, expected);
            return None;
        };
        if prefix.is_empty() {
            return Some(String::new());
        }
        let problem = match name_problem(prefix) {
            None => return Some(prefix.clone()),
            Some(NameProblem::Invalid) => {
                "it must be \"\" (none) or start with a letter or digit and contain only letters, \
                 digits, `_` and `-`"
            }
            Some(NameProblem::Reserved) => {
                "it is reserved: the gateway's own tools are named `gateway_*`; choose another \
                 prefix"
            }
        };
        let context = &check.context;
        let message = format!("invalid prefix `{prefix}` {context}: {problem}");
        self.error(&entry.value_at, message);
        None
    }
}

/// MCP clients commonly reject tool names longer than this.
pub const MAX_NAME: usize = 64;

/// `<prefix>_<name>` (the prefix is the server's name unless configured; empty = the bare
/// name), shortened deterministically to [`MAX_NAME`] when longer: the first 55 bytes, `_`, and
/// 8 hex digits of a hash of the full name, so it stays unique and stable.
pub fn exposed_name(prefix: &str, name: &str) -> String {
    let full = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}_{name}")
    };
    if full.len() <= MAX_NAME {
        return full;
    }
    shorten(&full, &full)
}

pub fn shorten(name: &str, hash_input: &str) -> String {
    let hash = super::fnv1a64(hash_input.as_bytes()) as u32;
    format!("{}_{hash:08x}", super::cut_at(name, MAX_NAME - 9))
}
