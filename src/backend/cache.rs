//! The on-disk schema cache: what each backend offers, so lists need no spawn.
//!
//! One JSON file per server, named after the server and the hash of its spec, so a changed
//! command line never serves stale lists. Writes go through a temp file and a rename: a crash
//! mid-write leaves the old file, never half a file.
//!
//! The spec hash covers env values and expanded args, which may be secrets: a bare hash in a
//! file name could be brute-forced against guesses. Names use it keyed with a random key kept
//! in the cache (`key`, 0600), and the cache is private to the user (directory 0700, files
//! 0600): what a server lists (and so the files) can be as telling as its secrets.

use std::path::{Path, PathBuf};

use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool};
use serde::{Deserialize, Serialize};

use super::listed::Listed;

/// Everything a backend lists, as it last listed it (each item with the members rmcp's type
/// does not know).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CachedSchema {
    #[serde(default)]
    pub capabilities: Option<ServerCapabilities>,
    #[serde(default)]
    pub tools: Vec<Listed<Tool>>,
    #[serde(default)]
    pub prompts: Vec<Listed<Prompt>>,
    #[serde(default)]
    pub resources: Vec<Listed<Resource>>,
    #[serde(default)]
    pub resource_templates: Vec<Listed<ResourceTemplate>>,
    /// What the server's `initialize` answer told clients to know about it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The server asks its client for roots (so a starting per-client instance waits to give
    /// them before its first call).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub asks_roots: bool,
    /// What the server said is wrong with it (`_meta["mcpgw/problems"]` of its `initialize`
    /// answer: the plugin host's modules that did not import), kept so that status shows it
    /// while the server is stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct SchemaCache {
    dir: PathBuf,
    /// Keys the spec hashes in file names; `None` when the cache cannot be used (then nothing
    /// is cached and every server is discovered by starting it).
    key: Option<[u8; 16]>,
}

impl SchemaCache {
    /// The cache in `dir`, made private (0700) and given a key if it has none yet. One that
    /// is not ours alone is not used: it says so once, here, and every server is discovered
    /// by starting it.
    pub fn new(dir: PathBuf) -> Self {
        let key = match open(&dir) {
            Ok(key) => Some(key),
            Err(e) => {
                tracing::warn!("{e}");
                None
            }
        };
        Self { dir, key }
    }

    /// [`crate::paths::cache_dir`] (where `mcpgwctl check` looks too), else the temp dir's.
    pub fn default_dir() -> PathBuf {
        crate::paths::cache_dir().unwrap_or_else(|| std::env::temp_dir().join("mcpgw"))
    }

    fn path(&self, server: &str, spec_hash: u64) -> Option<PathBuf> {
        let name = crate::cache_files::file_name(self.key.as_ref()?, server, spec_hash);
        Some(self.dir.join(name))
    }

    /// The cached schema, or None when there is none or it cannot be read (then the server is
    /// discovered again, so a corrupt file costs a spawn, never a wrong answer).
    pub fn load(&self, server: &str, spec_hash: u64) -> Option<CachedSchema> {
        let path = self.path(server, spec_hash)?;
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(schema) => Some(schema),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unreadable schema cache: {e}");
                None
            }
        }
    }

    pub fn store(&self, server: &str, spec_hash: u64, schema: &CachedSchema) {
        let Some(path) = self.path(server, spec_hash) else {
            return;
        };
        let result = serde_json::to_vec(schema)
            .map_err(std::io::Error::from)
            .and_then(|bytes| crate::private::write_atomically(&path, &bytes));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "cannot write schema cache: {e}");
        }
    }
}

/// Makes `dir` private and returns its key, creating both as needed; the error says why the
/// cache is not used and what to do.
fn open(dir: &Path) -> Result<[u8; 16], String> {
    let unusable = |why: String, fix: &str| {
        format!(
            "the schema cache dir {} {why}; not caching (lists start servers){fix}",
            dir.display()
        )
    };
    // What others can write to may hold their files (a key they know, lists they wrote:
    // tool descriptions a model reads), so it is not ours to use.
    crate::private::make_dir(dir).map_err(|problem| {
        let fix = if problem.not_private {
            ": remove it (mcpgw makes a new one), or set MCPGW_CACHE_DIR"
        } else {
            ""
        };
        unusable(problem.why, fix)
    })?;
    if let Some(key) = crate::cache_files::read_key(dir) {
        return Ok(key);
    }
    let path = dir.join("key");
    let mut key = [0u8; 16];
    getrandom::fill(&mut key).map_err(|e| unusable(format!("has no key ({e})"), ""))?;
    crate::private::write_atomically(&path, &key)
        .map_err(|e| unusable(format!("cannot be used ({e})"), ""))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_private_and_names_carry_no_bare_spec_hash() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("mcpgw");
        let cache = SchemaCache::new(cache_dir.clone());
        let schema = CachedSchema::default();
        cache.store("alpha", 0x1234, &schema);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&cache_dir), 0o700);
        let names: Vec<String> = std::fs::read_dir(&cache_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        for name in &names {
            assert_eq!(mode(&cache_dir.join(name)), 0o600, "{name}");
            assert!(!name.contains("1234"), "a bare spec hash: {name}");
        }
        // The same cache (the same key) finds it again; another key does not.
        assert_eq!(
            SchemaCache::new(cache_dir.clone()).load("alpha", 0x1234),
            Some(schema)
        );
        std::fs::remove_file(cache_dir.join("key")).unwrap();
        assert_eq!(SchemaCache::new(cache_dir).load("alpha", 0x1234), None);
    }

    #[test]
    fn an_open_cache_dir_of_ours_is_closed() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("mcpgw");
        std::fs::create_dir(&cache_dir).unwrap();
        std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        SchemaCache::new(cache_dir.clone());
        assert_eq!(std::fs::metadata(&cache_dir).unwrap().mode() & 0o777, 0o700);
    }

    /// A directory others can write to is not used, nor silently made private: whatever they
    /// put there stays out of the lists.
    #[test]
    fn a_cache_dir_others_can_write_is_not_used() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("mcpgw");
        std::fs::create_dir(&cache_dir).unwrap();
        std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = open(&cache_dir).unwrap_err();
        assert_eq!(
            error,
            format!(
                "the schema cache dir {} can be used by other users (mode 777); not caching \
                 (lists start servers): remove it (mcpgw makes a new one), or set \
                 MCPGW_CACHE_DIR",
                cache_dir.display()
            )
        );
        let cache = SchemaCache::new(cache_dir.clone());
        cache.store("alpha", 1, &CachedSchema::default());
        assert_eq!(cache.load("alpha", 1), None);
        assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
        assert_eq!(std::fs::metadata(&cache_dir).unwrap().mode() & 0o777, 0o777);
    }

    #[test]
    fn a_symlinked_cache_dir_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        let cache_dir = dir.path().join("mcpgw");
        std::os::unix::fs::symlink(&elsewhere, &cache_dir).unwrap();
        let error = open(&cache_dir).unwrap_err();
        assert!(error.contains("is a symbolic link"), "{error}");
        SchemaCache::new(cache_dir).store("alpha", 1, &CachedSchema::default());
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    }

    /// Needs root to give a directory away; elsewhere it says so and passes.
    #[test]
    fn a_cache_dir_of_another_user_is_not_used() {
        use std::os::unix::fs::PermissionsExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: only root can give a directory to another user");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let cache_dir = dir.path().join("mcpgw");
        std::fs::create_dir(&cache_dir).unwrap();
        std::fs::set_permissions(&cache_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&cache_dir, Some(65534), Some(65534)).unwrap();
        let error = open(&cache_dir).unwrap_err();
        assert!(
            error.contains("belongs to uid 65534, not to you (uid 0)"),
            "{error}"
        );
        SchemaCache::new(cache_dir.clone()).store("alpha", 1, &CachedSchema::default());
        assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 0);
    }
}
