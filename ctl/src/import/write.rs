//! `import --write`: the env file first (new secrets appended, created 0600), then the merged
//! config checked with the daemon's own checker, then gateway.yaml replaced atomically after a
//! backup of its old bytes. When a step after the env file fails (the merged config does not
//! load, the backup or the replacement cannot be written), nothing is left changed: the env
//! file goes back to what it was.

use std::path::{Path, PathBuf};

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
    let merged = merge::merge(
        existing.text.as_deref(),
        &plan.yaml,
        plan.env_line.as_deref(),
    )?;
    let env = env_text(plan).map(|text| EnvWrite {
        path: &existing.env_file,
        before: existing.env_text.as_deref(),
        text,
    });
    commit(
        &existing.path,
        existing.text.as_deref(),
        &merged,
        env.as_ref(),
    )
}

/// The env file's new text, and what it held (`None`: it did not exist).
struct EnvWrite<'p> {
    path: &'p Path,
    before: Option<&'p str>,
    text: String,
}

/// Writes the env file, then checks the merged config and replaces the old one (`old`, its
/// text) after keeping a copy. When any step after the env file fails, the env file goes back
/// to what it was: secrets nothing refers to are not left behind, nor a new file the next
/// import would append to as the user's.
fn commit(
    path: &Path,
    old: Option<&str>,
    merged: &str,
    env: Option<&EnvWrite<'_>>,
) -> Result<Written, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    if let Some(env) = env {
        write_env(env.path, env.before, &env.text)?;
    }
    let written = replace(path, old, merged);
    if let (Err(_), Some(env)) = (&written, env) {
        restore_env(env.path, env.before);
    }
    written
}

/// The merged config checked with the daemon's own checker, then written over the old one
/// after a copy of its bytes is kept beside it.
fn replace(path: &Path, old: Option<&str>, merged: &str) -> Result<Written, String> {
    let loaded =
        config::parse(merged, path, &|name| std::env::var(name).ok()).map_err(|errors| {
            format!(
                "{errors}\nthe config with the imported servers would not load (the errors above \
             are at lines of the merged text): nothing was written"
            )
        })?;
    let mode = files::mode_of(path);
    let backup = match (old, mode) {
        (Some(text), Some(mode)) => Some(files::keep_copy(path, "bak", text.as_bytes(), mode)?),
        _ => None,
    };
    files::write_atomic(path, merged.as_bytes(), mode.unwrap_or(0o644))?;
    Ok(Written {
        created: old.is_none(),
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

fn write_env(path: &Path, before: Option<&str>, text: &str) -> Result<(), String> {
    match before {
        // Its mode is private already (it was read): kept, never widened.
        Some(_) => {
            files::write_atomic(path, text.as_bytes(), files::mode_of(path).unwrap_or(0o600))
        }
        None => files::write_new(path, text.as_bytes(), 0o600),
    }
}

/// Puts the env file back as it was (best effort: the import failed already).
fn restore_env(path: &Path, before: Option<&str>) {
    let _ = match before {
        Some(text) => {
            files::write_atomic(path, text.as_bytes(), files::mode_of(path).unwrap_or(0o600))
        }
        None => std::fs::remove_file(path).map_err(|e| e.to_string()),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERGED: &str = "servers:\n  a:\n    command: x\n";

    /// The config cannot be replaced (here: a directory stands where it is): the env file,
    /// new or appended to, is as it was before.
    #[test]
    fn a_config_that_cannot_be_replaced_leaves_the_env_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("gateway.yaml");
        std::fs::create_dir(&config).unwrap();
        let env_path = dir.path().join("mcpgw.env");
        let env = EnvWrite {
            path: &env_path,
            before: None,
            text: "A=\"s3cret\"\n".into(),
        };
        assert!(commit(&config, Some("servers: {}\n"), MERGED, Some(&env)).is_err());
        assert!(!env_path.exists(), "the new env file is removed");

        files::write_new(&env_path, b"OLD=1\n", 0o600).unwrap();
        let env = EnvWrite {
            path: &env_path,
            before: Some("OLD=1\n"),
            text: "OLD=1\nA=\"s3cret\"\n".into(),
        };
        assert!(commit(&config, Some("servers: {}\n"), MERGED, Some(&env)).is_err());
        assert_eq!(std::fs::read_to_string(&env_path).unwrap(), "OLD=1\n");

        // And a config that can be written is, with the env file.
        let config = dir.path().join("ok.yaml");
        let written = commit(&config, None, MERGED, Some(&env)).unwrap();
        assert!(written.created);
        assert_eq!(std::fs::read_to_string(&config).unwrap(), MERGED);
        assert!(
            std::fs::read_to_string(&env_path)
                .unwrap()
                .contains("s3cret")
        );
    }
}
