//! `mcpgwctl check`: validates a config file locally, with the daemon's own parser. It never
//! connects to a daemon, so it works before one is started and cannot disturb a running one.
//!
//! Python plugins are imported to find those that do not, which runs their code: only for a
//! config the user named (`--config`, `MCPGW_CONFIG`) or their own (the user's config dir),
//! never for one merely found in the working directory, which may be a cloned repository's.

use std::path::Path;
use std::process::ExitCode;

use mcpgw::cache_files;
use mcpgw::config::{self, Config, ConfigError, ConfigErrors, ServerConfig};
use mcpgw::plugin_host::{self, Report};
use serde_json::json;

use crate::{EXIT_FAILED, Out, render};

pub fn run(explicit: Option<&Path>, out: Out) -> ExitCode {
    let path = match config::discover(explicit) {
        Ok(path) => path,
        Err(error) => return invalid(None, &ConfigErrors::from(error), out),
    };
    let named = explicit.is_some()
        || std::env::var_os(mcpgw::paths::CONFIG_ENV).is_some_and(|v| !v.is_empty());
    let import = named || path.is_absolute();
    match config::load(&path) {
        Ok(config) => {
            let has_plugins = config.servers.values().any(|s| s.plugin.is_some());
            let plugins = match import.then(|| plugins(&config)) {
                Some(Ok(plugins)) => plugins,
                Some(Err(errors)) => return invalid(Some(&path), &errors, out),
                None => Vec::new(),
            };
            let skipped = has_plugins && !import;
            let surface = Surface::of(&config);
            let mut warnings = config.warnings.clone();
            warnings.extend(surface.warnings.iter().cloned());
            let document = json!({
                "ok": true,
                "path": config.path,
                "servers": config.servers.values().map(|s| json!({
                    "name": s.name,
                    "enabled": s.enabled,
                    "disabled_reason": s.disabled_reason,
                })).collect::<Vec<_>>(),
                "roles": config.roles.keys().collect::<Vec<_>>(),
                "plugins": plugins.iter().map(|(server, report)| json!({
                    "server": server,
                    "tools": report.tools.iter().map(|t| json!({
                        "name": t.name,
                        "module": t.module,
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "plugins_imported": has_plugins && import,
                "warnings": warnings,
                "never_listed": surface.never_listed,
            });
            out.print(&document, || {
                let mut text = render::check(&path, &config, &plugins);
                for warning in &surface.warnings {
                    text.push_str(&format!("warning: {warning}\n"));
                }
                if surface.matters(&config) && !surface.never_listed.is_empty() {
                    text.push_str(&format!(
                        "note: roles and `tools:`/`prompts:` of servers that never listed ({}) \
                         are not checked against their tools: the daemon caches a server's \
                         lists once it has run it (`mcpgwctl start SERVER`)\n",
                        surface.never_listed.join(", ")
                    ));
                }
                if skipped {
                    text.push_str(&format!(
                        "note: plugins not imported: this config was found in the working \
                         directory, and importing runs their code; `mcpgwctl check --config {}` \
                         imports them\n",
                        path.display()
                    ));
                }
                text
            })
        }
        Err(errors) => invalid(Some(&path), &errors, out),
    }
}

/// What the config names of the servers' items that they do not offer (a role entry, a
/// `tools:` rename, that matches nothing: a silent hole), judged against what each server
/// listed when the daemon last ran it — the schema cache, read only: `check` starts nothing.
struct Surface {
    warnings: Vec<String>,
    /// Enabled servers with no cached lists (for this spec): what they offer is unknown.
    never_listed: Vec<String>,
}

impl Surface {
    fn of(config: &Config) -> Self {
        let dir = mcpgw::paths::cache_dir();
        let (mut offered, mut never_listed) = (Vec::new(), Vec::new());
        for server in config.servers.values().filter(|s| s.enabled) {
            let cached = (dir.as_deref())
                .and_then(|dir| cache_files::offered(dir, &server.name, server.spec_hash()));
            match cached {
                Some(offer) => offered.push(offer),
                None => never_listed.push(server.name.clone()),
            }
        }
        let mut warnings = config::shaping_warnings(config, &offered);
        // A role entry may name what a server not yet listed offers: judged only with all.
        if never_listed.is_empty() {
            let names = config::exposed_names(config, &offered);
            warnings.extend(config::role_warnings(
                config,
                names.iter().map(String::as_str),
            ));
        }
        Self {
            warnings,
            never_listed,
        }
    }

    /// Whether the config has anything to judge against servers' lists.
    fn matters(&self, config: &Config) -> bool {
        let shaped = config
            .servers
            .values()
            .any(|s| !s.tools.is_identity() || !s.prompts.is_identity());
        let globs = config.roles.values().any(|role| {
            matches!(role, config::Role::Patterns(p) if p.iter().any(|p| !p.starts_with('@')))
        });
        shaped || globs
    }
}

/// Imports every enabled plugin host's modules (in the host, as the daemon would run it)
/// and reports each that does not import as an error at its entry: the rest of a config runs,
/// but a check is for finding what will not.
fn plugins(config: &Config) -> Result<Vec<(String, Report)>, ConfigErrors> {
    let mut reports = Vec::new();
    let mut errors = Vec::new();
    for server in config.servers.values().filter(|s| s.enabled) {
        let Some(plugin) = &server.plugin else {
            continue;
        };
        let at = |module: Option<&str>, message: String| {
            let entry = module
                .and_then(|name| plugin.modules.iter().find(|m| m.name == name))
                .unwrap_or(&plugin.modules[0]);
            ConfigError {
                file: config.path.clone(),
                line: entry.line,
                column: entry.column,
                message,
            }
        };
        let interpreter = plugin_host::Interpreter {
            python: &server.command,
            env: &server.env,
            cwd: server.cwd.as_deref(),
        };
        match plugin_host::check(&interpreter, &plugin.launch(), config.startup_timeout) {
            Ok(report) => {
                for problem in &report.problems {
                    errors.push(at(module_named(problem, server), problem.clone()));
                }
                reports.push((server.name.clone(), report));
            }
            Err(problem) => errors.push(at(None, problem)),
        }
    }
    if errors.is_empty() {
        Ok(reports)
    } else {
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(errors))
    }
}

/// The configured module a problem names (`plugin module `x` failed to import: …`).
fn module_named<'s>(problem: &str, server: &'s ServerConfig) -> Option<&'s str> {
    let plugin = server.plugin.as_ref()?;
    plugin
        .modules
        .iter()
        .map(|m| m.name.as_str())
        .find(|name| problem.contains(&format!("module `{name}`")))
}

/// Every error on stderr, one per line as `file:line:col: message`; exit 1.
fn invalid(path: Option<&Path>, errors: &ConfigErrors, out: Out) -> ExitCode {
    // A plugin's exception text is the plugin's: no terminal escapes from it.
    eprintln!("{}", render::printable(&errors.to_string()));
    let count = errors.0.len();
    eprintln!(
        "mcpgwctl: the config is invalid ({count} error{})",
        if count == 1 { "" } else { "s" }
    );
    if out.json {
        let errors: Vec<_> = errors.0.iter().map(error_json).collect();
        out.document(&json!({ "ok": false, "path": path, "errors": errors }));
    }
    ExitCode::from(EXIT_FAILED)
}

fn error_json(error: &ConfigError) -> serde_json::Value {
    json!({
        "file": error.file,
        "line": error.line,
        "column": error.column,
        "message": error.message,
        "text": error.to_string(),
    })
}
