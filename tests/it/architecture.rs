//! The architecture invariants of ARCHITECTURE.md that are about dependencies, checked on the
//! source: which top-level module may name which (`crate::<module>` in code, not comments),
//! and that the top-level modules form no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level module → the top-level modules its code names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let module = first.to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" || module == "bin" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let used = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (at, _) in code.match_indices("crate::") {
                let name: String = code[at + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    used.insert(name);
                }
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

#[test]
fn modules_name_only_what_their_direction_allows() {
    let graph = imports();
    let rules: [(&str, &[&str]); 8] = [
        // Upstream knows no client, no routing state.
        (
            "backend",
            &[
                "session",
                "http",
                "gateway",
                "table",
                "connection",
                "control",
            ],
        ),
        // A snapshot knows no transport and no live state.
        (
            "table",
            &["gateway", "session", "http", "ipc", "connection", "control"],
        ),
        // The core knows no transport.
        ("gateway", &["http", "session", "connection", "ipc", "wire"]),
        // The shim is std + protocol + ipc + paths: no config, no runtime.
        (
            "shim",
            &["config", "daemon", "backend", "gateway", "session", "table"],
        ),
        (
            "paths",
            &["config", "daemon", "backend", "gateway", "session", "table"],
        ),
        (
            "protocol",
            &["config", "backend", "gateway", "session", "table", "ipc"],
        ),
        // The binaries' command lines: clap and the shim's usage text only, so that mcpgwctl
        // renders them without the daemon (ARCHITECTURE.md, `cli/`).
        (
            "cli",
            &["config", "daemon", "backend", "gateway", "session", "table"],
        ),
        // Leaves.
        (
            "wire",
            &["backend", "gateway", "session", "http", "table", "config"],
        ),
    ];
    let mut broken = Vec::new();
    for (module, forbidden) in rules {
        let used = graph.get(module).cloned().unwrap_or_default();
        for name in forbidden {
            if used.contains(*name) {
                broken.push(format!("{module} names {name}"));
            }
        }
    }
    assert!(broken.is_empty(), "{broken:#?}\nwhole graph: {graph:#?}");
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = imports();
    // Depth-first search for a back edge, reporting the cycle it closes.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if !done.insert(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}
