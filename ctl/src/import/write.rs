//! `import --write`: the env file first (new secrets appended, created 0600), then the merged
//! config checked with the daemon's own checker, then gateway.yaml replaced atomically after a
//! backup of its old bytes. A merged config that does not load is not written, and the env
//! file goes back to what it was.

use std::path::PathBuf;

use mcpgw::config;

use super::merge;
use super::plan::Plan;
use crate::files;

/// What was written.
pub struct Written {
    /// The config did not exist before.
    pub created: bool,
    pub backup: Option<PathBuf>,
    /// The merged config's warnings (`file:line:col: …`, never a value).
    pub warnings: Vec<String>,
}

pub fn write(plan: &Plan) -> Result<Written, String> {
    let existing = &plan.existing;
    let path = &existing.path;
    let merged = merge::merge(
        existing.text.as_deref(),
        &plan.yaml,
        plan.env_line.as_deref(),
    )?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let env_text = env_text(plan);
    if let Some(text) = &env_text {
        write_env(&existing.env_file, existing.env_text.as_deref(), text)?;
    }
    let checked = config::parse(&merged, path, &|name| std::env::var(name).ok());
    let loaded = match checked {
        Ok(loaded) => loaded,
        Err(errors) => {
            if env_text.is_some() {
                restore_env(&existing.env_file, existing.env_text.as_deref());
            }
            return Err(format!(
                "{errors}\nthe config with the imported servers would not load (the errors \
                 above are at lines of the merged text): nothing was written"
            ));
        }
    };
    let mode = files::mode_of(path);
    let backup = match (&existing.text, mode) {
        (Some(text), Some(mode)) => Some(files::keep_copy(path, "bak", text.as_bytes(), mode)?),
        _ => None,
    };
    files::write_atomic(path, merged.as_bytes(), mode.unwrap_or(0o644))?;
    Ok(Written {
        created: existing.text.is_none(),
        backup,
        warnings: loaded.warnings,
    })
}

/// The env file's new text: what it held, then the new secrets and the lines to fill in.
/// `None` when there is nothing to add.
fn env_text(plan: &Plan) -> Option<String> {
    let before = plan.existing.env_text.as_deref();
    let fills: Vec<_> = plan
        .fills
        .iter()
        .filter(|f| !before.is_some_and(|t| t.contains(&format!("# {}=", f.var))))
        .collect();
    if plan.stash.added.is_empty() && fills.is_empty() {
        return None;
    }
    let mut text = match before {
        Some(before) if before.is_empty() || before.ends_with('\n') => before.to_owned(),
        Some(before) => format!("{before}\n"),
        None => "# Secrets for the ${VAR}s of gateway.yaml (its `env_file`). Keep it private \
                 (0600): mcpgw refuses it otherwise.\n"
            .to_owned(),
    };
    let stamp = files::timestamp();
    if !plan.stash.added.is_empty() {
        text.push_str(&format!("\n# Added by `mcpgwctl import` ({stamp} UTC)\n"));
        for (name, value) in &plan.stash.added {
            text.push_str(&config::env_file_line(name, value));
        }
    }
    for fill in fills {
        text.push_str(&format!(
            "\n# Fill in ({}), then remove the `#`:\n# {}=\n",
            super::emit::comment(&fill.why),
            fill.var
        ));
    }
    Some(text)
}

fn write_env(path: &std::path::Path, before: Option<&str>, text: &str) -> Result<(), String> {
    match before {
        // Its mode is private already (it was read): kept, never widened.
        Some(_) => {
            files::write_atomic(path, text.as_bytes(), files::mode_of(path).unwrap_or(0o600))
        }
        None => files::write_new(path, text.as_bytes(), 0o600),
    }
}

/// Puts the env file back as it was (best effort: the import failed already).
fn restore_env(path: &std::path::Path, before: Option<&str>) {
    let _ = match before {
        Some(text) => {
            files::write_atomic(path, text.as_bytes(), files::mode_of(path).unwrap_or(0o600))
        }
        None => std::fs::remove_file(path).map_err(|e| e.to_string()),
    };
}
