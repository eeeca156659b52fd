//! A server's `tools:` and `prompts:`: globs that compile, new names MCP accepts, one name per
//! item, and none of it in the spec hash (a reload applies it without a restart).

use super::{error, errors, ok};

const GITHUB: &str = r#"servers:
  github:
    command: npx
    args: ["-y", "@modelcontextprotocol/server-github"]
    tools:
      allow: ["get_*", "list_*", "search_*"]
      deny: ["*_delete_*"]
      rename: { search_code: code_search }
      describe: { list_issues: "List issues of a repository (open only unless state is given)." }
    prompts:
      deny: ["draft_*"]
"#;

#[test]
fn the_issues_example_reads_as_written() {
    let config = ok(GITHUB);
    let github = &config.servers["github"];
    let tools = &github.tools;
    assert_eq!(
        tools.allow.as_deref(),
        Some(&["get_*".to_string(), "list_*".into(), "search_*".into()][..])
    );
    assert_eq!(tools.deny, ["*_delete_*"]);
    assert_eq!(tools.rename["search_code"], "code_search");
    assert!(tools.describe["list_issues"].starts_with("List issues"));
    assert_eq!(github.prompts.deny, ["draft_*"]);
    assert_eq!(github.prompts.allow, None);
    assert!(
        !tools.is_identity()
            && ok("servers:\n  a: {command: x}\n").servers["a"]
                .tools
                .is_identity()
    );
}

#[test]
fn shaping_is_not_part_of_what_runs() {
    let plain = ok(
        "servers:\n  github:\n    command: npx\n    args: [\"-y\", \"@modelcontextprotocol/server-github\"]\n",
    );
    let shaped = ok(GITHUB);
    assert_eq!(
        plain.servers["github"].spec_hash(),
        shaped.servers["github"].spec_hash()
    );
}

#[test]
fn mistakes_are_errors_at_their_place() {
    let text = r#"servers:
  a:
    command: x
    tools:
      allow: "get_*"
      deny: ["[oops", "!x"]
      rename: { a: "has space", b: c, d: c, e: "" }
      describe: { f: 3 }
      hide: [x]
"#;
    assert_eq!(
        errors(text),
        [
            "gateway.yaml:5:14: `tools.allow` in server `a` must be a list of glob patterns over \
             the server's names, found a string",
            "gateway.yaml:6:14: `tools.deny` in server `a`: invalid glob pattern `[oops`: \
             unclosed character class; missing ']'",
            "gateway.yaml:6:23: `tools.deny` in server `a`: `!x`: `!` is for roles; list what to \
             hide in `deny`",
            "gateway.yaml:7:20: `tools.rename` in server `a`: `a` → `has space`: names may contain \
             only letters, digits, `_`, `-` and `.`",
            "gateway.yaml:7:42: `tools.rename` in server `a`: `d` and `b` are both renamed to `c`; \
             a name can be given once",
            "gateway.yaml:7:48: `tools.rename` in server `a`: `e` → ``: the new name must not be \
             empty",
            "gateway.yaml:8:22: `tools.describe` in server `a`: `f` must be a string, found an \
             integer (quote it to make it a string)",
            "gateway.yaml:9:7: unknown key `hide` in `tools` in server `a` (expected one of: \
             allow, deny, rename, describe)",
        ]
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    prompts: [x]\n"),
        "gateway.yaml:4:14: `prompts` in server `a` must be a mapping with `allow`, `deny`, \
         `rename` and/or `describe`, found a list"
    );
}

#[test]
fn entries_that_name_nothing_offered_are_warned_about() {
    use crate::config::{Offered, exposed_names, role_warnings, shaping_warnings};
    let config = ok(r#"servers:
  fs:
    command: x
    tools: { deny: ["wrte_*"], rename: { read: cat } }
roles:
  r: ["fs_*", "!fs_wrte_*", "@read-only", "gti_*", "fs_cat", "gateway_status", "fs_resource:*"]
"#);
    let offered = [Offered {
        server: "fs".into(),
        tools: vec!["read".into(), "write_file".into()],
        prompts: vec![],
        resources: vec!["file:///x".into()],
    }];
    assert_eq!(
        shaping_warnings(&config, &offered),
        ["server `fs`: `tools.deny` entry `wrte_*` matches none of its tools"]
    );
    let names = exposed_names(&config, &offered);
    assert_eq!(
        names,
        [
            "gateway_status",
            "fs_cat",
            "fs_write_file",
            "fs_resource:file:///x"
        ]
    );
    assert_eq!(
        role_warnings(&config, names.iter().map(String::as_str)),
        [
            "role `r`: `!fs_wrte_*` matches nothing any configured server offers",
            "role `r`: `gti_*` matches nothing any configured server offers",
        ]
    );
}
