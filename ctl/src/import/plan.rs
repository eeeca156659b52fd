//! What an import adds, under which names, and what it skips, decided before anything is
//! written (so that printing and writing show the same thing).
//!
//! The rules, in order, for each server found (files in the order read: a client's user file
//! before its project's):
//! - an entry that runs `mcpgw-shim` is mcpgw itself: skipped;
//! - the same server (same command, arguments, environment and directory, or the same URL and
//!   headers; see [`Identity`]) in gateway.yaml, or imported from an earlier file, under any
//!   name: skipped, saying where (a server that differs in a token is another server, imported
//!   under its own name);
//! - a name mcpgw does not accept (see `config/names.rs`) is made into one;
//! - a name gateway.yaml already uses (as a server's name or prefix) for another definition:
//!   imported as `<name>-<client>` (`github-cursor`), then `-2`, … so that every server of the
//!   client is there (`connect` needs them all) and nothing of the user's is replaced.

use super::emit;
use super::merge::{DEFAULT_ENV_FILE, Existing, Identity};
use super::secrets::{Stash, extract, referenced};
use super::vars::Fill;
use super::{Context, Found, Parsed, Spec};
use crate::clients::Client;

pub struct Plan {
    pub existing: Existing,
    pub entries: Vec<Added>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
    /// Variables the user must give values in the env file.
    pub fills: Vec<Fill>,
    /// The env file's variables, with the secrets this import adds.
    pub stash: Stash,
    /// How many values were moved out of the YAML (some to variables there already).
    pub moved: usize,
    /// The entries, as YAML for under `servers:`.
    pub yaml: String,
    /// `env_file: …`, when the config does not name one yet and this import needs it.
    pub env_line: Option<String>,
}

pub struct Added {
    pub name: String,
    /// The client's name for it, when it differs.
    pub renamed_from: Option<String>,
    pub origin: String,
    pub client: Client,
}

pub struct Skipped {
    pub name: String,
    pub origin: String,
    pub reason: String,
}

pub fn plan(parsed: Vec<Parsed>, mut existing: Existing, cx: &Context) -> Plan {
    let mut notes = Vec::new();
    let mut found: Vec<Found> = Vec::new();
    for file in parsed {
        notes.extend(file.notes);
        found.extend(file.found);
    }
    // A secret's new variable must not take a name that means something already (`Stash`):
    // what gateway.yaml or an imported server refers to, or what the environment sets.
    let mut taken = existing.referenced.clone();
    for server in &found {
        taken.extend(
            spec_texts(&server.spec)
                .flat_map(referenced)
                .map(str::to_owned),
        );
    }
    taken.extend(std::env::vars_os().filter_map(|(name, _)| name.into_string().ok()));
    let mut stash = Stash::new(existing.env_vars.clone(), taken);
    // Names for the user to fill are kept from secrets: they mean the user's value.
    let mut fills: Vec<Fill> = Vec::new();
    for fill in found.iter().flat_map(|f| &f.fills) {
        if fills.iter().any(|f| f.var == fill.var) {
            continue;
        }
        if stash.has(&fill.var) {
            notes.push(format!(
                "`${{{}}}` ({}) is set in {} already",
                fill.var,
                fill.why,
                cx.shown(&existing.env_file)
            ));
            continue;
        }
        stash.reserve(&fill.var);
        fills.push(fill.clone());
    }
    let (mut entries, mut skipped, mut yaml, mut moved) =
        (Vec::new(), Vec::new(), String::new(), 0);
    let mut added_fills = std::collections::BTreeSet::new();
    for mut server in found {
        let skip = |reason: String| Skipped {
            name: server.name.clone(),
            origin: server.origin.clone(),
            reason,
        };
        if server.is_gateway() {
            skipped.push(skip(
                "it runs mcpgw-shim: that is the gateway itself".into(),
            ));
            continue;
        }
        let identity = Identity::of(&server.spec).resolved(&existing.env_vars);
        if let Some((same, origin)) = existing.same(&identity) {
            let what = identity.what();
            let reason = match (same == server.name, origin) {
                (true, None) => "already in gateway.yaml".to_owned(),
                (false, None) => format!("already in gateway.yaml as `{same}` (the same {what})"),
                (_, Some(origin)) => format!("the same {what} as `{same}` from {origin}"),
            };
            skipped.push(skip(reason));
            continue;
        }
        let valid = valid_name(&server.name);
        let name = free_name(&valid, server.client, &existing);
        if name != server.name {
            let why = match (valid != server.name, name != valid) {
                (true, false) => "mcpgw server names are letters, digits, `_` and `-`".to_owned(),
                _ => format!(
                    "a different `{valid}` is in gateway.yaml (a server's name or prefix) or \
                     imported before it"
                ),
            };
            notes.push(format!(
                "`{}` from {} is imported as `{name}`: {why}",
                server.name, server.origin
            ));
        }
        added_fills.extend(server.fills.iter().map(|f| f.var.clone()));
        moved += extract(&name, &mut server.spec, &mut stash);
        yaml.push_str(&emit::entry(
            &name,
            &server.origin,
            &server.spec,
            server.enabled,
        ));
        existing.add(&name, identity, &server.origin);
        entries.push(Added {
            renamed_from: (name != server.name).then(|| server.name.clone()),
            name,
            origin: server.origin,
            client: server.client,
        });
    }
    // Only what an added server needs is to be filled in.
    fills.retain(|fill| added_fills.contains(&fill.var));
    let needs_file = moved > 0 || !fills.is_empty();
    let env_line = (needs_file && !existing.env_file_named).then(|| {
        format!("env_file: {DEFAULT_ENV_FILE}  # the secrets of ${{VAR}}s, private (0600)\n")
    });
    Plan {
        existing,
        entries,
        skipped,
        notes,
        fills,
        stash,
        moved,
        yaml,
        env_line,
    }
}

/// Every string of a spec, where `${NAME}` may stand.
fn spec_texts(spec: &Spec) -> Box<dyn Iterator<Item = &str> + '_> {
    match spec {
        Spec::Local {
            command,
            args,
            env,
            cwd,
        } => Box::new(
            std::iter::once(command.as_str())
                .chain(args.iter().map(String::as_str))
                .chain(env.iter().map(|p| p.value.as_str()))
                .chain(cwd.as_deref()),
        ),
        Spec::Remote { url, headers, .. } => {
            Box::new(std::iter::once(url.as_str()).chain(headers.iter().map(|p| p.value.as_str())))
        }
    }
}

/// `name` as a server name mcpgw accepts: letters, digits, `_` and `-`, starting with a letter
/// or digit, not the gateway's own `gateway`/`gateway_…`.
pub fn valid_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_start_matches(['-', '_']).trim_end_matches('-');
    let out = if out.is_empty() { "server" } else { out };
    match out.strip_prefix("gateway") {
        Some("") => "gateway-server".to_owned(),
        Some(rest) if rest.starts_with('_') => format!("gateway-{}", &rest[1..]),
        _ => out.to_owned(),
    }
}

/// `name`, or `<name>-<client>`, `<name>-<client>-2`, … whichever gateway.yaml does not use.
fn free_name(name: &str, client: Client, existing: &Existing) -> String {
    if !existing.is_taken(name) {
        return name.to_owned();
    }
    let base = format!("{name}-{}", client.short());
    for n in 1.. {
        let candidate = match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        };
        if !existing.is_taken(&candidate) {
            return candidate;
        }
    }
    unreachable!("some name is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_mcpgw_accepts() {
        assert_eq!(valid_name("github"), "github");
        assert_eq!(valid_name("my server.v2"), "my-server-v2");
        assert_eq!(valid_name("@scope/pkg"), "scope-pkg");
        assert_eq!(valid_name("gateway"), "gateway-server");
        assert_eq!(valid_name("gateway_x"), "gateway-x");
        assert_eq!(valid_name("…"), "server");
    }
}
