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

/// Where Python would find the top-level module `top`, by its rules: in the first search
/// directory that has it as a package (`top/__init__.py`) or a module (`top.py`); only if none
/// has either, as a namespace package (a `top/` directory without `__init__.py`).
fn locate(top: &str, search_path: &[PathBuf]) -> Option<Watched> {
    let regular = search_path.iter().find_map(|dir| {
        let package = dir.join(top);
        if package.join("__init__.py").is_file() {
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
    });
    regular.or_else(|| {
        search_path
            .iter()
            .map(|dir| dir.join(top))
            .find(|package| package.is_dir())
            .map(|path| Watched {
                path,
                package: true,
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
            // Only regular files (a link is followed to see what it is): a FIFO would block
            // the read, a device never end it.
            if std::fs::metadata(entry.path()).is_ok_and(|m| m.is_file()) {
                files.push(entry.path());
            }
        }
    }
}

struct Budget {
    files: usize,
    bytes: u64,
}

/// Hashes a file's path and bytes, within the budget. Only a regular file is read, opened
/// without blocking (it may have become a FIFO since it was listed) and read no further than
/// the budget (it may have grown).
fn hash_file(hasher: &mut Fnv1a, file: &Path, budget: &mut Budget) {
    use std::io::Read;
    hasher.field(super::path_bytes(file).as_ref());
    if budget.files == 0 || budget.bytes == 0 {
        return;
    }
    budget.files -= 1;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let opened = options
        .open(file)
        .and_then(|f| f.metadata().map(|m| (f, m)));
    let mut bytes = Vec::new();
    match opened {
        Ok((f, meta)) if meta.is_file() => {
            let _ = f.take(budget.bytes).read_to_end(&mut bytes);
        }
        _ => {
            hasher.write(&[0xff]);
            return;
        }
    }
    budget.bytes -= bytes.len() as u64;
    hasher.field(&bytes);
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

    /// A link to a device or a FIFO among the sources is neither read nor waited on (a
    /// cloned plugin repository can hold either).
    #[cfg(unix)]
    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let package = dir.path().join("pkg");
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join("__init__.py"), "").unwrap();
        std::os::unix::fs::symlink("/dev/zero", package.join("zero.py")).unwrap();
        let fifo = std::ffi::CString::new(package.join("pipe.py").to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let sources = find(&host(dir.path(), &["pkg"]));
        assert_eq!(sources.watched.len(), 1);
    }

    /// Python's own rule: a module file wins over a directory of that name without
    /// `__init__.py` (a namespace package), wherever on the path each is.
    #[test]
    fn a_module_file_wins_over_a_namespace_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("calc/__pycache__")).unwrap();
        std::fs::write(dir.path().join("calc.py"), "A = 1\n").unwrap();
        let sources = find(&host(dir.path(), &["calc"]));
        assert_eq!(
            sources.watched,
            vec![Watched {
                path: dir.path().join("calc.py"),
                package: false
            }]
        );
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
