//! Which config file to use: `--config`, else `./gateway.yaml`, else `./mcp-gateway.yaml`, else
//! the user's config dir (`$XDG_CONFIG_HOME/mcpgw/gateway.yaml` or `~/.config/mcpgw/gateway.yaml`).

use std::env;
use std::path::{Path, PathBuf};

use super::ConfigError;

/// Finds the config file. Paths found in the current directory are returned relative to it, so
/// that error messages stay short; [`super::load`] records the absolute path.
pub fn discover(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
    discover_in(explicit, Path::new(""), user_config_home().as_deref())
}

/// [`discover`] with the current directory and the user's config home given, for tests.
pub(super) fn discover_in(
    explicit: Option<&Path>,
    cwd: &Path,
    config_home: Option<&Path>,
) -> Result<PathBuf, ConfigError> {
    if let Some(explicit) = explicit {
        let path = cwd.join(explicit);
        if path.is_file() {
            return Ok(path);
        }
        let problem = if path.is_dir() {
            "is a directory, not a config file"
        } else {
            "config file not found"
        };
        return Err(ConfigError::whole_file(&path, problem));
    }
    let candidates = candidates(cwd, config_home);
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    Err(not_found(&candidates, config_home.is_none()))
}

fn candidates(cwd: &Path, config_home: Option<&Path>) -> Vec<PathBuf> {
    let mut candidates = vec![cwd.join("gateway.yaml"), cwd.join("mcp-gateway.yaml")];
    if let Some(home) = config_home {
        candidates.push(home.join("mcpgw").join("gateway.yaml"));
    }
    candidates
}

fn not_found(looked: &[PathBuf], no_config_home: bool) -> ConfigError {
    let shown: Vec<String> = looked
        .iter()
        .map(|path| {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            absolute.display().to_string()
        })
        .collect();
    let mut message = format!(
        "no config file found; looked for {} (pass --config FILE or create one of them)",
        shown.join(", ")
    );
    if no_config_home {
        message.push_str("; no user config dir: neither XDG_CONFIG_HOME nor HOME is set");
    }
    ConfigError::whole_file(Path::new(""), message)
}

/// `$XDG_CONFIG_HOME`, else `$HOME/.config`. The XDG spec says to ignore a relative value.
fn user_config_home() -> Option<PathBuf> {
    let absolute = |var: &str| {
        env::var_os(var)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CONFIG_HOME").or_else(|| absolute("HOME").map(|home| home.join(".config")))
}
