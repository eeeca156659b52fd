//! `mcpgwctl check`: validates a config file locally, with the daemon's own parser. It never
//! connects to a daemon, so it works before one is started and cannot disturb a running one.

use std::path::Path;
use std::process::ExitCode;

use mcpgw::config::{self, ConfigError, ConfigErrors};
use serde_json::json;

use crate::{EXIT_FAILED, Out, render};

pub fn run(explicit: Option<&Path>, out: Out) -> ExitCode {
    let path = match config::discover(explicit) {
        Ok(path) => path,
        Err(error) => return invalid(None, &ConfigErrors::from(error), out),
    };
    match config::load(&path) {
        Ok(config) => {
            let document = json!({
                "ok": true,
                "path": config.path,
                "servers": config.servers.values().map(|s| json!({
                    "name": s.name,
                    "enabled": s.enabled,
                    "disabled_reason": s.disabled_reason,
                })).collect::<Vec<_>>(),
                "roles": config.roles.keys().collect::<Vec<_>>(),
                "warnings": config.warnings,
            });
            out.print(&document, || render::check(&path, &config))
        }
        Err(errors) => invalid(Some(&path), &errors, out),
    }
}

/// Every error on stderr, one per line as `file:line:col: message`; exit 1.
fn invalid(path: Option<&Path>, errors: &ConfigErrors, out: Out) -> ExitCode {
    eprintln!("{errors}");
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
