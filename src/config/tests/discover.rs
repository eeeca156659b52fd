//! Finding the config file.

use std::path::Path;

use crate::config::discover::discover_in;

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
    assert_eq!(error.file, explicit);
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
