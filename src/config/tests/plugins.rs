//! `plugins`: mcp-unify's plugin modules, grouped into plugin hosts that are servers.

use super::{error, errors, ok, parse_at};
use crate::config::{PLUGINS_SERVER, Scope, parse};
use std::path::Path;

#[test]
fn mcp_unify_plugins_run_unprefixed_in_one_host() {
    let config = ok("plugins:\n  - module: my_tools.calculator\n  - my_tools.strings\n");
    let host = &config.servers[PLUGINS_SERVER];
    assert_eq!(host.prefix, "");
    assert_eq!(host.command, crate::config::DEFAULT_PYTHON);
    assert_eq!(host.scope, Scope::Shared);
    let plugin = host.plugin.as_ref().unwrap();
    let modules: Vec<&str> = plugin.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(modules, ["my_tools.calculator", "my_tools.strings"]);
    assert_eq!((plugin.modules[1].line, plugin.modules[1].column), (3, 5));
    let dir = std::path::absolute(Path::new(".")).unwrap();
    let dir: std::path::PathBuf = dir.components().collect();
    assert_eq!(plugin.search_path, std::slice::from_ref(&dir));
    assert_eq!(host.cwd.as_deref(), Some(dir.as_path()));
    // The host program goes in the environment; the modules in the one argument.
    assert_eq!(host.args[..3], ["-E", "-B", "-c"]);
    assert_eq!(host.args[3], crate::plugin_host::BOOTSTRAP);
    assert!(
        host.args[4].contains("\"my_tools.strings\""),
        "{}",
        host.args[4]
    );
    assert_eq!(
        host.env[crate::plugin_host::SOURCE_VAR],
        crate::plugin_host::SOURCE
    );
    // An empty list is still fine, as it was.
    assert!(ok("plugins: []\n").servers.is_empty());
    assert!(ok("plugins:\n").servers.is_empty());
}

#[test]
fn settings_make_separate_hosts_that_need_their_own_prefixes() {
    let text = "plugins:\n  - module: a\n  - module: team.tools\n    python: .venv/bin/python\n    path: [lib, \"${DATA}/py\"]\n    prefix: team\n    env: {KEY: \"${GITHUB_TOKEN}\"}\n    idle_timeout: 1m\n  - module: team.more\n    python: .venv/bin/python\n    path: [lib, \"${DATA}/py\"]\n    prefix: team\n    env: {KEY: \"${GITHUB_TOKEN}\"}\n    idle_timeout: 1m\n";
    let config = parse_at(text, "/etc/mcpgw/gateway.yaml").unwrap();
    assert_eq!(config.servers.len(), 2);
    let team = &config.servers["team"];
    assert_eq!(team.prefix, "team");
    assert_eq!(team.command, "/etc/mcpgw/.venv/bin/python");
    assert_eq!(team.idle_timeout, Some(std::time::Duration::from_secs(60)));
    assert_eq!(team.env["KEY"], super::SECRET);
    let plugin = team.plugin.as_ref().unwrap();
    assert_eq!(plugin.modules.len(), 2);
    assert_eq!(
        plugin.search_path,
        [
            Path::new("/etc/mcpgw"),
            Path::new("/etc/mcpgw/lib"),
            Path::new("/srv/data/py")
        ]
    );
    // `~` needs HOME, which the test environment does not set.
    assert_eq!(
        error("plugins:\n  - {module: a, path: ~/lib}\n"),
        "gateway.yaml:2:23: `path` in plugin `a` starts with `~` but HOME is not set"
    );
    // The secret stays out of Debug output.
    assert!(!format!("{team:?}").contains(super::SECRET));

    let text = "plugins:\n  - module: a\n  - module: b\n    env: {X: \"1\"}\n";
    assert_eq!(
        error(text),
        "gateway.yaml:3:5: plugin `b` has settings other than plugin `a`, so it runs in another host, and both would expose tools unprefixed: give one of them a different `prefix`"
    );
}

#[test]
fn plugins_do_not_take_a_servers_name_or_prefix() {
    assert_eq!(
        error("servers:\n  fs: {command: x, prefix: \"\"}\nplugins:\n  - module: a\n"),
        "gateway.yaml:4:5: plugin `a` is unprefixed (as in mcp-unify), and so is server `fs`: their tools would compete for every name; give the plugins a `prefix`"
    );
    assert_eq!(
        error("servers:\n  fs: {command: x}\nplugins:\n  - {module: a, prefix: fs}\n"),
        "gateway.yaml:4:5: plugin `a` uses the prefix `fs`, which server `fs` already uses; set a different `prefix`"
    );
    assert_eq!(
        error("servers:\n  plugins: {command: x, prefix: p}\nplugins:\n  - module: a\n"),
        "gateway.yaml:4:5: plugin `a` runs as server `plugins`, which is already the name of a server; rename that server or give the plugins a `prefix`"
    );
}

#[test]
fn two_hosts_never_share_a_name_and_a_variable_may_name_the_interpreter() {
    assert_eq!(
        error("plugins:\n  - module: a\n  - {module: b, prefix: plugins}\n"),
        "gateway.yaml:3:5: plugin `b` would run as server `plugins`, as plugin `a` does (the unprefixed host is named `plugins`); choose another `prefix`"
    );
    let env = |name: &str| (name == "PY").then(|| "python3.12".to_owned());
    let config = parse(
        "plugins:\n  - {module: a, python: \"${PY}\"}\n",
        Path::new("gateway.yaml"),
        &env,
    )
    .unwrap();
    assert_eq!(config.servers[PLUGINS_SERVER].command, "python3.12");
}

#[test]
fn a_bad_entry_is_reported_where_it_is() {
    assert_eq!(
        errors(
            "plugins:\n  - module: my-tools.calc\n  - {python: x}\n  - 3\n  - {module: a, pythn: x}\n  - {module: b, prefix: \"gateway\"}\n"
        ),
        [
            "gateway.yaml:2:13: `my-tools.calc` is not a Python module name (dotted identifiers, such as `my_tools.calculator`)",
            "gateway.yaml:3:5: a plugin needs `module` (the Python module to import, such as `my_tools.calculator`)",
            "gateway.yaml:4:5: a plugin must be a module name or a mapping with `module`, found an integer (quote it to make it a string)",
            "gateway.yaml:5:17: unknown key `pythn` in a plugin: did you mean `python`? (expected one of: module, python, path, env, cwd, prefix, idle_timeout, call_timeout)",
            "gateway.yaml:6:25: invalid prefix `gateway` in plugin `b`: it is reserved: the gateway's own tools are named `gateway_*`; choose another prefix",
        ]
    );
    assert_eq!(
        error("plugins: {module: a}\n"),
        "gateway.yaml:1:10: `plugins` must be a list of plugin modules (`- module: my_tools.calculator`), found a mapping"
    );
}

#[test]
fn a_missing_variable_disables_the_host_with_a_warning() {
    let config = ok("plugins:\n  - module: a\n    env: {TOKEN: \"${NOT_SET}\"}\n");
    let host = &config.servers[PLUGINS_SERVER];
    assert!(!host.enabled);
    assert_eq!(
        config.warnings,
        ["gateway.yaml:3:19: plugin `a` is disabled: environment variable NOT_SET is not set"]
    );
}

#[test]
fn a_missing_variable_in_python_or_cwd_disables_rather_than_drops_and_pythonpath_is_warned_of() {
    let config = ok("plugins:\n  - {module: a, python: \"${NOPE}\", cwd: \"${NOPE2}\"}\n");
    let host = &config.servers[PLUGINS_SERVER];
    assert!(!host.enabled);
    assert_eq!(config.warnings.len(), 2, "{:?}", config.warnings);
    let config = ok("plugins:\n  - module: a\n    env: {PYTHONPATH: /x}\n");
    assert_eq!(
        config.warnings,
        [
            "gateway.yaml:3:5: `env.PYTHONPATH` in plugin `a` has no effect: the plugin host runs with `python -E`; import directories go in `path`"
        ]
    );
}

#[test]
fn the_hash_of_a_host_follows_its_sources() {
    let config = ok("plugins:\n  - module: a\n");
    let mut host = config.servers[PLUGINS_SERVER].clone();
    let before = host.spec_hash();
    host.plugin.as_mut().unwrap().sources.fingerprint = 7;
    assert_ne!(host.spec_hash(), before);
}
