//! The on-disk schema cache: what each backend offers, so lists need no spawn.
//!
//! One JSON file per server, named after the server and the hash of its spec, so a changed
//! command line never serves stale lists. Writes go through a temp file and a rename: a crash
//! mid-write leaves the old file, never half a file.

use std::path::PathBuf;

use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool};
use serde::{Deserialize, Serialize};

/// Everything a backend lists, as it last listed it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CachedSchema {
    #[serde(default)]
    pub capabilities: Option<ServerCapabilities>,
    #[serde(default)]
    pub tools: Vec<Tool>,
    #[serde(default)]
    pub prompts: Vec<Prompt>,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub resource_templates: Vec<ResourceTemplate>,
}

#[derive(Debug, Clone)]
pub struct SchemaCache {
    dir: PathBuf,
}

impl SchemaCache {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// `$MCPGW_CACHE_DIR`, else the platform cache dir (`$XDG_CACHE_HOME/mcpgw` on Linux).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("MCPGW_CACHE_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        dirs::cache_dir()
            .unwrap_or_else(std::env::temp_dir)
            .join("mcpgw")
    }

    fn path(&self, server: &str, spec_hash: u64) -> PathBuf {
        self.dir.join(format!("{server}-{spec_hash:016x}.json"))
    }

    /// The cached schema, or None when there is none or it cannot be read (then the server is
    /// discovered again, so a corrupt file costs a spawn, never a wrong answer).
    pub fn load(&self, server: &str, spec_hash: u64) -> Option<CachedSchema> {
        let path = self.path(server, spec_hash);
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
        let path = self.path(server, spec_hash);
        let result = (|| -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(schema)?)?;
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), "cannot write schema cache: {e}");
        }
    }
}
