//! Which files a plugin host's modules are read from, and a hash of what they say.
//!
//! The hash is part of the host's spec hash ([`super::ServerConfig::spec_hash`]): an edited
//! plugin is a changed server, so a reload restarts its host (and clients get `list_changed`)
//! and a schema cache written before the edit is not used. The files are what the daemon
//! watches to reload on a save (`watch.rs`).
//!
//! A module is found as Python finds it on the host's search path (the config file's
//! directory, then `path`): `a.b.c` is in the package directory `a/` (all of whose `.py`
//! files count, since a module imports its siblings) or in the file `a.py`. A module found
//! only on Python's own path (an installed package) has no files here: restart the host to
//! pick up a change to it.

use std::path::{Path, PathBuf};

use super::hash::Fnv1a;
use super::plugins::PluginHost;

/// A package holding more than this is hashed only so far (a plugin that is a checkout of
/// something large); its watch still covers all of it.
const MAX_FILES: usize = 4096;
const MAX_BYTES: u64 = 64 << 20;
const MAX_DEPTH: usize = 16;

/// What a host's modules are read from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sources {
    /// Hash of every source file's path and bytes; 0 before [`find`] ran.
    pub fingerprint: u64,
    /// Package directories (watched with everything under them) and module files.
    pub watched: Vec<Watched>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watched {
    pub path: PathBuf,
    /// A package directory, rather than one file.
    pub package: bool,
}

/// Reads the sources of a host's modules.
pub(super) fn find(host: &PluginHost) -> Sources {
    let mut hasher = Fnv1a::new();
    hasher.field(b"plugin-sources-1");
    let mut watched: Vec<Watched> = Vec::new();
    let mut budget = Budget {
        files: MAX_FILES,
        bytes: MAX_BYTES,
    };
    for module in &host.modules {
        let top = module.name.split('.').next().unwrap_or_default();
        let Some(found) = locate(top, &host.search_path) else {
            continue;
        };
        if watched.contains(&found) {
            continue;
        }
        if found.package {
            let mut files = Vec::new();
            python_files(&found.path, 0, &mut files);
            files.sort();
            for file in files {
                hash_file(&mut hasher, &file, &mut budget);
            }
        } else {
            hash_file(&mut hasher, &found.path, &mut budget);
        }
        watched.push(found);
    }
    Sources {
        fingerprint: hasher.finish(),
        watched,
    }
}

/// Where Python would find the top-level module `top`: the first search directory with a
/// package directory or a `.py` file of that name.
fn locate(top: &str, search_path: &[PathBuf]) -> Option<Watched> {
    search_path.iter().find_map(|dir| {
        let package = dir.join(top);
        if package.is_dir() {
            return Some(Watched {
                path: package,
                package: true,
            });
        }
        let file = dir.join(format!("{top}.py"));
        file.is_file().then_some(Watched {
            path: file,
            package: false,
        })
    })
}

/// Every `.py` file under `dir`, not following links to directories and skipping hidden
/// directories and `__pycache__`.
fn python_files(dir: &Path, depth: usize, files: &mut Vec<PathBuf>) {
    if depth > MAX_DEPTH || files.len() >= MAX_FILES {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !name.starts_with('.') && name != "__pycache__" {
                python_files(&entry.path(), depth + 1, files);
            }
        } else if name.ends_with(".py") && files.len() < MAX_FILES {
            files.push(entry.path());
        }
    }
}

struct Budget {
    files: usize,
    bytes: u64,
}

fn hash_file(hasher: &mut Fnv1a, file: &Path, budget: &mut Budget) {
    hasher.field(super::path_bytes(file).as_ref());
    let size = std::fs::metadata(file).map_or(0, |m| m.len());
    if budget.files == 0 || size > budget.bytes {
        budget.files = 0;
        return;
    }
    budget.files -= 1;
    budget.bytes -= size;
    match std::fs::read(file) {
        Ok(bytes) => hasher.field(&bytes),
        Err(_) => hasher.write(&[0xff]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::plugins::PluginModule;

    fn host(dir: &Path, modules: &[&str]) -> PluginHost {
        PluginHost {
            modules: modules
                .iter()
                .map(|name| PluginModule {
                    name: (*name).to_owned(),
                    line: 1,
                    column: 1,
                })
                .collect(),
            search_path: vec![dir.to_path_buf()],
            sources: Sources::default(),
        }
    }

    #[test]
    fn an_edit_anywhere_in_the_package_changes_the_fingerprint_and_bytecode_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("my_tools");
        std::fs::create_dir_all(package.join("__pycache__")).unwrap();
        std::fs::write(package.join("__init__.py"), "").unwrap();
        std::fs::write(
            package.join("calculator.py"),
            "def add(a, b): return a + b\n",
        )
        .unwrap();
        std::fs::write(package.join("helpers.py"), "X = 1\n").unwrap();
        let host = host(dir.path(), &["my_tools.calculator"]);
        let before = find(&host);
        assert_eq!(
            before.watched,
            vec![Watched {
                path: package.clone(),
                package: true
            }]
        );
        std::fs::write(package.join("__pycache__/calculator.cpython-311.pyc"), "x").unwrap();
        assert_eq!(find(&host), before);
        std::fs::write(package.join("helpers.py"), "X = 2\n").unwrap();
        assert_ne!(find(&host).fingerprint, before.fingerprint);
    }

    #[test]
    fn a_module_file_is_found_on_the_search_path_and_an_installed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("calc.py"), "A = 1\n").unwrap();
        let host = host(dir.path(), &["calc", "json"]);
        let sources = find(&host);
        assert_eq!(
            sources.watched,
            vec![Watched {
                path: dir.path().join("calc.py"),
                package: false
            }]
        );
        std::fs::write(dir.path().join("calc.py"), "A = 2\n").unwrap();
        assert_ne!(find(&host).fingerprint, sources.fingerprint);
    }
}
