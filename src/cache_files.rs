//! The schema cache's files, named the one way the daemon writes them (`backend/cache.rs`)
//! and `mcpgwctl check` reads them: `<server>-<hash>.json` in the cache dir, the hash keyed
//! with the cache's random `key` so that a name carries no bare hash of a spec's secrets.

use std::io::Read;
use std::path::Path;

use serde_json::Value;

use crate::config::Offered;

/// The cache's format, in its file names: a new one discovers every server again once.
/// (Caches before format 2 were also written by per-client instances, with one client's
/// capabilities, and without what rmcp's types do not know.)
const FORMAT: &[u8] = b"format-2";

/// The largest cache file `offered` reads (as large as a server's lists may be).
const MAX_READ: u64 = 64 << 20;

/// The file name of `server`'s lists for the spec that hashes to `spec_hash`.
pub fn file_name(key: &[u8; 16], server: &str, spec_hash: u64) -> String {
    let mut keyed = Vec::from(*key);
    keyed.extend_from_slice(&spec_hash.to_le_bytes());
    keyed.extend_from_slice(FORMAT);
    let name = crate::config::fnv1a64(&keyed);
    format!("{server}-{name:016x}.json")
}

/// The cache's key, if it has one.
pub fn read_key(dir: &Path) -> Option<[u8; 16]> {
    let bytes = std::fs::read(dir.join("key")).ok()?;
    <[u8; 16]>::try_from(bytes.as_slice()).ok()
}

/// The names `server` offered when it last listed with this spec: read-only, and only from
/// a cache that is the user's alone (what others could write is no evidence).
pub fn offered(dir: &Path, server: &str, spec_hash: u64) -> Option<Offered> {
    #[cfg(unix)]
    crate::ipc::private_dir(dir).ok()?;
    let key = read_key(dir)?;
    let file = std::fs::File::open(dir.join(file_name(&key, server, spec_hash))).ok()?;
    let mut bytes = Vec::new();
    file.take(MAX_READ).read_to_end(&mut bytes).ok()?;
    let lists: Value = serde_json::from_slice(&bytes).ok()?;
    let names = |list: &str, member: &str| -> Vec<String> {
        let items = lists.get(list).and_then(Value::as_array);
        (items.into_iter().flatten())
            .filter_map(|item| item.get(member)?.as_str().map(str::to_owned))
            .collect()
    };
    let mut resources = names("resources", "uri");
    resources.extend(names("resource_templates", "uriTemplate"));
    Some(Offered {
        server: server.to_owned(),
        tools: names("tools", "name"),
        prompts: names("prompts", "name"),
        resources,
    })
}
