//! Where things are: the daemon's socket and the config file. Always compiled (no features):
//! the shim and mcpgwctl find the daemon and the config with nothing but std.
//!
//! - Socket: `--socket`, else `$MCPGW_SOCKET`, else the per-user default.
//! - Config: `--config`, else `$MCPGW_CONFIG`, else (only for a daemon a person starts, see
//!   [`Discovery`]) `./gateway.yaml` and `./mcp-gateway.yaml`, else the user's config dir
//!   (`$XDG_CONFIG_HOME/mcpgw/gateway.yaml` or `~/.config/mcpgw/gateway.yaml`).

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

/// `<runtime dir>/mcpgw/mcpgw.sock`, see [`runtime_dir`]; a per-user pipe name on Windows.
pub fn default_socket() -> PathBuf {
    #[cfg(windows)]
    {
        let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
        PathBuf::from(format!("mcpgw-{user}.sock"))
    }
    #[cfg(not(windows))]
    {
        runtime_dir().join("mcpgw").join("mcpgw.sock")
    }
}

/// The user's runtime dir, found the same way by the daemon, the shim and mcpgwctl whatever
/// environment they were given (MCP clients launch the shim with a reduced one: the official
/// Python SDK passes only HOME, LOGNAME, PATH, SHELL, TERM and USER): `$XDG_RUNTIME_DIR` when
/// set; else, on Linux, `/run/user/<uid>` when it is the user's (what logind creates and
/// `XDG_RUNTIME_DIR` normally names); on macOS the per-user temp dir (what `$TMPDIR` normally
/// names); else a per-user directory under the shared temp dir, which the socket's checks
/// guard (`ipc::check_private_dir`).
#[cfg(unix)]
pub fn runtime_dir() -> PathBuf {
    if let Some(dir) = env::var_os("XDG_RUNTIME_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    if let Some(dir) = os_runtime_dir(uid) {
        return dir;
    }
    std::env::temp_dir().join(format!("mcpgw-{uid}"))
}

/// `/run/user/<uid>`, if it exists and is a private directory of ours (the same check a
/// client makes of the socket's directory).
#[cfg(target_os = "linux")]
fn os_runtime_dir(uid: u32) -> Option<PathBuf> {
    let dir = PathBuf::from(format!("/run/user/{uid}"));
    crate::ipc::check_private_dir(&dir).ok().map(|()| dir)
}

/// The per-user temp dir macOS gives every user (`confstr(_CS_DARWIN_USER_TEMP_DIR)`).
#[cfg(target_os = "macos")]
fn os_runtime_dir(_uid: u32) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; 1024];
    // SAFETY: the buffer is writable for its length; confstr writes at most that, NUL-ended.
    let len = unsafe {
        libc::confstr(
            libc::_CS_DARWIN_USER_TEMP_DIR,
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if len == 0 || len > buf.len() {
        return None;
    }
    buf.truncate(len - 1);
    Some(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
fn os_runtime_dir(_uid: u32) -> Option<PathBuf> {
    None
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

/// Environment variable naming the config file, like `--config`.
pub const CONFIG_ENV: &str = "MCPGW_CONFIG";

/// Where a config may be found besides `--config` and `$MCPGW_CONFIG`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Discovery {
    /// A daemon a person starts in a terminal (and `mcpgwctl check`): `./gateway.yaml` and
    /// `./mcp-gateway.yaml` first, as mcp-unify did (that person chose the directory), then the
    /// user's config dir.
    WorkingDirFirst,
    /// A daemon the shim starts: the user's config dir only. The working directory is the MCP
    /// client's project, and a cloned repository's `gateway.yaml` would run its commands as the
    /// user without the client's "trust this project" prompt ever seeing it.
    UserOnly,
}

/// Finds the config file: `explicit`, else `$MCPGW_CONFIG`, else per `discovery`. Paths found
/// in the current directory are returned relative to it, so that error messages stay short;
/// `config::load` records the absolute path.
pub fn discover(explicit: Option<&Path>, discovery: Discovery) -> Result<PathBuf, NotFound> {
    let from_env = env::var_os(CONFIG_ENV)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from);
    let explicit = explicit.map(Path::to_path_buf).or(from_env);
    let home = user_config_home();
    discover_in(
        explicit.as_deref(),
        Path::new(""),
        home.as_deref(),
        discovery,
    )
}

/// [`discover`] with the named file, the current directory and the user's config home given.
fn discover_in(
    explicit: Option<&Path>,
    cwd: &Path,
    config_home: Option<&Path>,
    discovery: Discovery,
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
    let mut candidates = Vec::new();
    if discovery == Discovery::WorkingDirFirst {
        candidates.extend([cwd.join("gateway.yaml"), cwd.join("mcp-gateway.yaml")]);
    }
    if let Some(home) = config_home {
        candidates.push(home.join("mcpgw").join("gateway.yaml"));
    }
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    Err(not_found(&candidates, config_home.is_none(), discovery))
}

fn not_found(looked: &[PathBuf], no_config_home: bool, discovery: Discovery) -> NotFound {
    let shown: Vec<String> = looked
        .iter()
        .map(|path| {
            let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            absolute.display().to_string()
        })
        .collect();
    let mut message = match shown.is_empty() {
        true => "no config file found".to_string(),
        false => format!("no config file found; looked for {}", shown.join(", ")),
    };
    message.push_str(match discovery {
        Discovery::WorkingDirFirst => {
            " (pass --config FILE, set MCPGW_CONFIG, or create one of them)"
        }
        Discovery::UserOnly => {
            " (pass --config FILE or set MCPGW_CONFIG, or create it; a daemon started by the \
             shim never uses a gateway.yaml of the working directory)"
        }
    });
    if no_config_home {
        message.push_str("; no user config dir: neither XDG_CONFIG_HOME nor HOME is set");
    }
    NotFound {
        path: PathBuf::new(),
        problem: message,
    }
}

/// The user's own config file, `<config home>/mcpgw/gateway.yaml`, whether it exists or not
/// (where `mcpgwctl import` creates one); `None` without a user config dir.
pub fn user_config_file() -> Option<PathBuf> {
    user_config_home().map(|home| home.join("mcpgw").join("gateway.yaml"))
}

/// The schema cache's directory: `$MCPGW_CACHE_DIR`, else `mcpgw` in the user's cache dir
/// (`$XDG_CACHE_HOME`, else `~/.cache`; `~/Library/Caches` on macOS); `None` without a home.
/// The daemon writes it, `mcpgwctl check` reads it.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("MCPGW_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = || absolute_var("HOME");
    let base = if cfg!(target_os = "macos") {
        home().map(|home| home.join("Library/Caches"))
    } else {
        absolute_var("XDG_CACHE_HOME").or_else(|| home().map(|home| home.join(".cache")))
    };
    base.map(|base| base.join("mcpgw"))
}

/// The daemon's state (the tool pins): `$MCPGW_STATE_DIR`, else `mcpgw` in the user's state
/// dir (`$XDG_STATE_HOME`, else `~/.local/state`; `~/Library/Application Support` on macOS);
/// `None` without a home.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("MCPGW_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let home = || absolute_var("HOME");
    let base = if cfg!(target_os = "macos") {
        home().map(|home| home.join("Library/Application Support"))
    } else {
        absolute_var("XDG_STATE_HOME").or_else(|| home().map(|home| home.join(".local/state")))
    };
    base.map(|base| base.join("mcpgw"))
}

/// An environment variable holding an absolute path (the XDG spec says to ignore a relative
/// value).
pub fn absolute_var(var: &str) -> Option<PathBuf> {
    env::var_os(var)
        .map(PathBuf::from)
        .filter(|path| path.is_absolute())
}

/// `$XDG_CONFIG_HOME`, else `$HOME/.config`. The XDG spec says to ignore a relative value.
fn user_config_home() -> Option<PathBuf> {
    absolute_var("XDG_CONFIG_HOME")
        .or_else(|| absolute_var("HOME").map(|home| home.join(".config")))
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
        let found = || discover_in(None, &cwd, Some(&home), Discovery::WorkingDirFirst);

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
        let error = discover_in(
            Some(&explicit),
            &cwd,
            Some(&home),
            Discovery::WorkingDirFirst,
        )
        .unwrap_err();
        assert_eq!(error.path, explicit);
        assert_eq!(
            error.to_string(),
            format!("{}: config file not found", explicit.display())
        );
        write(&explicit);
        assert_eq!(
            discover_in(
                Some(&explicit),
                &cwd,
                Some(&home),
                Discovery::WorkingDirFirst
            )
            .unwrap(),
            explicit
        );

        let no_home = discover_in(
            None,
            &dir.path().join("empty"),
            None,
            Discovery::WorkingDirFirst,
        )
        .unwrap_err();
        assert!(
            no_home
                .to_string()
                .contains("neither XDG_CONFIG_HOME nor HOME is set")
        );
    }

    /// A daemon the shim starts never reads the working directory's config: it is the MCP
    /// client's project, perhaps a cloned repository.
    #[test]
    fn a_shim_started_daemon_ignores_the_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path().join("cloned-repo");
        let home = dir.path().join("config-home");
        std::fs::create_dir_all(&cwd).unwrap();
        std::fs::write(cwd.join("gateway.yaml"), "servers: {}\n").unwrap();
        std::fs::write(cwd.join("mcp-gateway.yaml"), "servers: {}\n").unwrap();

        let missing = discover_in(None, &cwd, Some(&home), Discovery::UserOnly).unwrap_err();
        assert!(
            !missing.problem.contains("cloned-repo"),
            "the working directory is not even looked at: {missing}"
        );
        assert!(missing.problem.contains("MCPGW_CONFIG"), "{missing}");

        std::fs::create_dir_all(home.join("mcpgw")).unwrap();
        std::fs::write(home.join("mcpgw/gateway.yaml"), "servers: {}\n").unwrap();
        assert_eq!(
            discover_in(None, &cwd, Some(&home), Discovery::UserOnly).unwrap(),
            home.join("mcpgw/gateway.yaml")
        );
        // Named explicitly (--config or MCPGW_CONFIG), a file there is used.
        let named = Path::new("gateway.yaml");
        assert_eq!(
            discover_in(Some(named), &cwd, Some(&home), Discovery::UserOnly).unwrap(),
            cwd.join("gateway.yaml")
        );
    }
}
