//! The environment a daemon the shim starts gets: not the whole environment of the MCP client
//! that happened to start it first (its `mcpServers` entry's `env`, its project's variables),
//! which every later client's servers would then inherit, but a documented part of it:
//!
//! - the login basics and locale ([`KEPT`], and `LC_*`), the user's directories (`XDG_*`),
//!   desktop session and SSH agent, proxies and CA bundles, package indexes and tool homes
//!   (what `npx`, `uvx`, `docker` and HTTP clients need: `NPM_CONFIG_*`, `UV_*`, `PIP_*`,
//!   `DOCKER_*`, `NVM_DIR`, …), mcpgw's own settings (`MCPGW_*`, `MCP_GATEWAY_*`);
//! - every variable the config file names as `${NAME}`, so that its expansions work.
//!
//! A per-client server that needs one client's variable names it in `pass_env`: the shim sends
//! its environment in its hello, and that session's instance gets the client's value.

use std::ffi::OsString;
use std::path::Path;

/// Variables kept by name.
const KEPT: &[&str] = &[
    "HOME",
    "USER",
    "LOGNAME",
    "PATH",
    "SHELL",
    "TERM",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TMPDIR",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS",
    "SSH_AUTH_SOCK",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "NIX_SSL_CERT_FILE",
    "GIT_SSL_CAINFO",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "PIP_CERT",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "NVM_DIR",
    "VOLTA_HOME",
    "PYENV_ROOT",
    "ASDF_DATA_DIR",
    "RUSTUP_HOME",
    "CARGO_HOME",
];

/// Variables kept by prefix. (Not npm's lower-case `npm_config_*`: npm sets those for what it
/// runs, from the project's `.npmrc`, and one project's registry is not every server's.)
const KEPT_PREFIXES: &[&str] = &[
    "LC_",
    "XDG_",
    "MCPGW_",
    "MCP_GATEWAY_",
    "NPM_CONFIG_",
    "UV_",
];

/// At most this much of the config file is read for the `${NAME}`s it uses.
const MAX_CONFIG_READ: u64 = 4 * 1024 * 1024;

/// The variables of `vars` a daemon started for `config` gets.
pub fn for_daemon(
    vars: impl Iterator<Item = (OsString, OsString)>,
    config: &Path,
) -> Vec<(OsString, OsString)> {
    // A regular file only: opening a FIFO would block the start. The daemon reads the config
    // itself and reports what is wrong with it; here it is only searched for `${NAME}`s.
    let named: std::collections::BTreeSet<String> = std::fs::metadata(config)
        .ok()
        .filter(std::fs::Metadata::is_file)
        .and_then(|_| std::fs::File::open(config).ok())
        .and_then(|file| {
            use std::io::Read;
            let mut text = Vec::new();
            file.take(MAX_CONFIG_READ).read_to_end(&mut text).ok()?;
            Some(text)
        })
        .map(|text| referenced(&text).into_iter().collect())
        .unwrap_or_default();
    vars.filter(|(name, _)| {
        let Some(name) = name.to_str() else {
            return false;
        };
        KEPT.contains(&name)
            || KEPT_PREFIXES.iter().any(|p| name.starts_with(p))
            || named.contains(name)
    })
    .collect()
}

/// The names in `${NAME}` and `${NAME:-default}` in a config file's text (wherever they are:
/// a comment's only cost a variable kept).
fn referenced(text: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = find_dollar_brace(rest) {
        let after = &rest[at + 2..];
        let len = after
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if len > 0 && matches!(after.get(len), Some(b'}' | b':')) {
            names.push(String::from_utf8_lossy(&after[..len]).into_owned());
        }
        rest = &after[len..];
    }
    names
}

fn find_dollar_brace(text: &[u8]) -> Option<usize> {
    text.windows(2).position(|w| w == b"${")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_names_what_else_it_needs() {
        let text = b"servers:\n  gh:\n    env: {TOKEN: \"${GITHUB_TOKEN}\", DIR: \"${WORK:-/tmp}\"}\n    args: [\"$HOME\", \"${}\", \"${bad name}\"]\n";
        assert_eq!(referenced(text), ["GITHUB_TOKEN", "WORK"]);
    }

    #[test]
    fn only_the_documented_variables_and_the_configs_reach_the_daemon() {
        let dir = std::env::temp_dir().join(format!("mcpgw-daemon-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("gateway.yaml");
        std::fs::write(
            &config,
            "servers:\n  a: {command: x, env: {T: \"${MY_TOKEN}\"}}\n",
        )
        .unwrap();
        let vars = [
            ("PATH", "/bin"),
            ("HOME", "/home/u"),
            ("LC_ALL", "C"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("MCPGW_LOG", "debug"),
            ("MY_TOKEN", "secret"),
            ("PROJECT_ONLY", "client's own"),
            ("ANTHROPIC_API_KEY", "not the daemon's"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        let kept: Vec<String> = for_daemon(vars.into_iter(), &config)
            .into_iter()
            .map(|(k, _)| k.into_string().unwrap())
            .collect();
        assert_eq!(
            kept,
            [
                "PATH",
                "HOME",
                "LC_ALL",
                "XDG_RUNTIME_DIR",
                "MCPGW_LOG",
                "MY_TOKEN"
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
