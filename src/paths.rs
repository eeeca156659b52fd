//! Where things are: the daemon's socket and the config file. Always compiled (no features):
//! the shim and mcpgwctl find the daemon and the config with nothing but std.
//!
//! - Socket: `--socket`, else `$MCPGW_SOCKET`, else the per-user default.
//! - Config: `--config`, else `./gateway.yaml`, else `./mcp-gateway.yaml`, else the user's
//!   config dir (`$XDG_CONFIG_HOME/mcpgw/gateway.yaml` or `~/.config/mcpgw/gateway.yaml`).

use std::env;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the default socket path (like `--socket`).
pub const SOCKET_ENV: &str = "MCPGW_SOCKET";

/// The socket path: `--socket`, else `$MCPGW_SOCKET`, else the per-user default.
pub fn resolve_socket(explicit: Option<&Path>) -> PathBuf {
    if let Some(path) = explicit {
        return path.to_path_buf();
    }
    match std::env::var_os(SOCKET_ENV) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => default_socket(),
    }
}

/// `$XDG_RUNTIME_DIR/mcpgw/mcpgw.sock` on Linux; a per-user directory under the temp dir where
/// there is no runtime dir (macOS, minimal Linux sessions); a per-user pipe name on Windows.
pub fn default_socket() -> PathBuf {
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        PathBuf::from(format!("mcpgw-{user}.sock"))
    }
    #[cfg(not(windows))]
    {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR")
            .filter(|dir| !dir.is_empty())
            .map(|dir| PathBuf::from(dir).join("mcpgw"));
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let dir = runtime.unwrap_or_else(|| std::env::temp_dir().join(format!("mcpgw-{uid}")));
        dir.join("mcpgw.sock")
    }
}

/// No config file where one was looked for: `path` (empty when several places were tried) and
/// what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound {
    pub path: PathBuf,
    pub problem: String,
}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path.as_os_str().is_empty() {
            true => f.write_str(&self.problem),
            false => write!(f, "{}: {}", self.path.display(), self.problem),
        }
    }
}

impl std::error::Error for NotFound {}

/// Finds the config file. Paths found in the current directory are returned relative to it, so
/// that error messages stay short; `config::load` records the absolute path.
pub fn discover(explicit: Option<&Path>) -> Result<PathBuf, NotFound> {
    discover_in(explicit, Path::new(""), user_config_home().as_deref())
}

/// [`discover`] with the current directory and the user's config home given, for tests.
pub(crate) fn discover_in(
    explicit: Option<&Path>,
    cwd: &Path,
    config_home: Option<&Path>,
) -> Result<PathBuf, NotFound> {
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
        return Err(NotFound {
            path,
            problem: problem.into(),
        });
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

fn not_found(looked: &[PathBuf], no_config_home: bool) -> NotFound {
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
    NotFound {
        path: PathBuf::new(),
        problem: message,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_order() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("project");
        let home = dir.path().join("config-home");
        std::fs::create_dir_all(home.join("mcpgw")).unwrap();
        std::fs::create_dir_all(&cwd).unwrap();
        let write = |path: &Path| std::fs::write(path, "servers: {}\n").unwrap();
        let found = || discover_in(None, &cwd, Some(&home));

        let error = found().unwrap_err().to_string();
        assert!(
            error.starts_with("no config file found; looked for "),
            "{error}"
        );
        for place in [
            cwd.join("gateway.yaml"),
            cwd.join("mcp-gateway.yaml"),
            home.join("mcpgw/gateway.yaml"),
        ] {
            assert!(error.contains(&place.display().to_string()), "{error}");
        }

        write(&home.join("mcpgw/gateway.yaml"));
        assert_eq!(found().unwrap(), home.join("mcpgw/gateway.yaml"));
        write(&cwd.join("mcp-gateway.yaml"));
        assert_eq!(found().unwrap(), cwd.join("mcp-gateway.yaml"));
        write(&cwd.join("gateway.yaml"));
        assert_eq!(found().unwrap(), cwd.join("gateway.yaml"));

        let explicit = dir.path().join("elsewhere.yaml");
        let error = discover_in(Some(&explicit), &cwd, Some(&home)).unwrap_err();
        assert_eq!(error.path, explicit);
        assert_eq!(
            error.to_string(),
            format!("{}: config file not found", explicit.display())
        );
        write(&explicit);
        assert_eq!(
            discover_in(Some(&explicit), &cwd, Some(&home)).unwrap(),
            explicit
        );

        let no_home = discover_in(None, &dir.path().join("empty"), None).unwrap_err();
        assert!(
            no_home
                .to_string()
                .contains("neither XDG_CONFIG_HOME nor HOME is set")
        );
    }
}
