//! Server names and prefixes: valid, not reserved, unique; and the exposed names they start.

use super::{error, errors, ok};
use crate::config::{MAX_NAME, exposed_name};

#[test]
fn server_names_are_checked() {
    let text = "servers:\n  my server:\n    command: x\n  gateway:\n    command: x\n  -x: {command: x}\n  ok_name-2: {command: x}\n";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:2:3: invalid server name `my server`: names must start with a letter or digit \
             and contain only letters, digits, `_` and `-`",
            "gateway.yaml:4:3: invalid server name `gateway`: it is reserved: the gateway's own tools \
             are named `gateway_*`; choose another name",
            "gateway.yaml:6:3: invalid server name `-x`: names must start with a letter or digit \
             and contain only letters, digits, `_` and `-`",
        ]
    );
    assert!(error("servers:\n  gateway_x: {command: x}\n").contains("reserved"));
    assert!(
        error("servers:\n  1: {command: x}\n")
            .contains("keys in `servers` must be strings, found an integer")
    );
}

#[test]
fn prefixes_are_checked_and_unique() {
    let text = r#"servers:
  files: {command: x}
  fs: {command: x, prefix: files}
  a: {command: x, prefix: "a b"}
  b: {command: x, prefix: gateway}
  c: {command: x, prefix: gateway_x}
  d: {command: x, prefix: ""}
  e: {command: x, prefix: ""}
  f: {command: x, prefix: 7}
  g: {command: x, prefix: gateway-ok}
"#;
    let invalid = "it must be \"\" (none) or start with a letter or digit and contain only \
                   letters, digits, `_` and `-`";
    let reserved =
        "it is reserved: the gateway's own tools are named `gateway_*`; choose another prefix";
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:3:28: server `fs` uses the prefix `files`, which server `files` already \
             uses (gateway.yaml:2:3); set a different `prefix` on one of them"
                .to_owned(),
            format!("gateway.yaml:4:27: invalid prefix `a b` in server `a`: {invalid}"),
            format!("gateway.yaml:5:27: invalid prefix `gateway` in server `b`: {reserved}"),
            format!("gateway.yaml:6:27: invalid prefix `gateway_x` in server `c`: {reserved}"),
            "gateway.yaml:8:27: server `e` is unprefixed (`prefix: \"\"`), and so is server `d` \
             (gateway.yaml:7:27): at most one server may be, or their tools would compete for \
             every name"
                .to_owned(),
            "gateway.yaml:9:27: `prefix` in server `f` must be a string (what exposed names start \
             with, or \"\" for none), found an integer (quote it to make it a string)"
                .to_owned(),
        ]
    );
    // The later server is the one in error, whether its prefix is explicit or its name.
    assert_eq!(
        error("servers:\n  fs: {command: x, prefix: files}\n  files: {command: x}\n"),
        "gateway.yaml:3:3: server `files` uses the prefix `files`, which server `fs` already uses \
         (gateway.yaml:2:28); set a different `prefix` on one of them"
    );
    // A disabled server keeps its prefix: enabling it must not make the config invalid.
    assert!(
        error("servers:\n  a: {command: x, enabled: false}\n  b: {command: x, prefix: a}\n")
            .starts_with("gateway.yaml:3:27: server `b` uses the prefix `a`")
    );
    let config = ok("servers:\n  a: {command: x, prefix: b}\n  b: {command: x, prefix: a}\n");
    assert_eq!(config.servers["a"].prefix, "b");
    assert_eq!(
        ok("servers:\n  a:\n    command: x\n    prefix:\n").servers["a"].prefix,
        "a"
    );
}

#[test]
fn short_names_are_plain_prefixes() {
    assert_eq!(
        exposed_name("filesystem", "read_file"),
        "filesystem_read_file"
    );
}

#[test]
fn an_empty_prefix_exposes_the_bare_name() {
    assert_eq!(exposed_name("", "read_file"), "read_file");
}

#[test]
fn long_names_shorten_deterministically() {
    let tool = "a".repeat(80);
    let name = exposed_name("srv", &tool);
    assert_eq!(name.len(), MAX_NAME);
    assert_eq!(name, exposed_name("srv", &tool));
    assert_ne!(name, exposed_name("srv", &format!("{tool}b")));
    assert!(name.starts_with("srv_aaaa"));
}
