//! Tests of the config module as its callers see it: text in, `Config` or located errors out.
//! One file per part of the config module; the helpers they share are here.

mod checker;
mod commands;
mod duration;
mod env_file;
mod error;
mod expand;
mod hash;
mod http;
mod names;
mod plugins;
mod remote;
mod server;
mod shaping;
mod size;

use std::path::Path;

use super::*;

const SECRET: &str = "ghp_s3cr3t";

fn env(name: &str) -> Option<String> {
    match name {
        "GITHUB_TOKEN" => Some(SECRET.into()),
        "EMPTY" => Some(String::new()),
        "DATA" => Some("/srv/data".into()),
        _ => None,
    }
}

fn parse_at(text: &str, path: &str) -> Result<Config, ConfigErrors> {
    parse(text, Path::new(path), &env)
}

fn ok(text: &str) -> Config {
    parse_at(text, "gateway.yaml").unwrap_or_else(|e| panic!("unexpected errors:\n{e}"))
}

fn errors(text: &str) -> Vec<String> {
    match parse_at(text, "gateway.yaml") {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// The one error `text` produces.
fn error(text: &str) -> String {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "{errors:#?}");
    errors.into_iter().next().unwrap()
}

const README_ROLES: &str = r#"roles:
  admin: null        # all tools
  readonly: ["filesystem_*", "gateway_status"]
  developer: ["github_*", "filesystem_*", "gateway_*"]
"#;

#[test]
fn load_reads_the_file_and_reports_an_unreadable_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, "servers:\n  a: {command: x, cwd: sub}\n").unwrap();
    let config = load(&path).unwrap();
    assert_eq!(config.path, path);
    assert_eq!(config.servers["a"].cwd, Some(dir.path().join("sub")));

    let missing = dir.path().join("nope.yaml");
    let errors = load(&missing).unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.starts_with(&format!(
            "{}: cannot read the config file:",
            missing.display()
        )),
        "{shown}"
    );
}
