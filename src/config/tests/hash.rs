//! Spec hashes: stable literals, and what they cover (what starts or connects a backend).

use std::time::Duration;

use super::ok;
use crate::config::{Scope, ServerConfig, Transport};

#[test]
fn spec_hash_is_stable_and_ignores_what_does_not_start_the_process() {
    let text = "servers:\n  a:\n    command: npx\n    args: [\"-y\", \"pkg\"]\n    env: {K: v}\n    cwd: /srv\n";
    let a = ok(text).servers["a"].clone();
    // A literal, so that any change to the hash (which names schema-cache files) is noticed.
    assert_eq!(a.spec_hash(), 0x69b3_f35f_ef0e_e9b4);

    let mut same = a.clone();
    same.name = "b".into();
    same.enabled = false;
    same.disabled_reason = Some("disabled in config".into());
    same.idle_timeout = Some(Duration::from_secs(1));
    assert_eq!(same.spec_hash(), a.spec_hash());

    let mut moved = a.clone();
    moved.args = vec!["-yp".into(), "kg".into()];
    assert_ne!(moved.spec_hash(), a.spec_hash());
    let mut elsewhere = a.clone();
    elsewhere.cwd = None;
    assert_ne!(elsewhere.spec_hash(), a.spec_hash());
    let mut other_env = a.clone();
    other_env.env.insert("K".into(), "w".into());
    assert_ne!(other_env.spec_hash(), a.spec_hash());
}

#[test]
fn spec_hash_covers_the_connection_but_not_prefix_or_scope() {
    // A stdio server hashes as before remote servers existed (the literal in
    // `spec_hash_is_stable_and_ignores_what_does_not_start_the_process`), whatever its prefix
    // and scope.
    let local = ok("servers:\n  a:\n    command: npx\n    args: [\"-y\", \"pkg\"]\n    env: {K: v}\n    cwd: /srv\n    prefix: p\n    scope: per-client\n")
        .servers["a"]
        .clone();
    assert_eq!(local.spec_hash(), 0x69b3_f35f_ef0e_e9b4);

    let text = "servers:\n  r:\n    url: https://api.example.com/mcp\n    headers: {Authorization: \"Bearer t\"}\n";
    let remote = ok(text).servers["r"].clone();
    // A literal, so that any change to the hash (which names schema-cache files) is noticed.
    assert_eq!(remote.spec_hash(), REMOTE_SPEC_HASH);

    let mut same = remote.clone();
    same.name = "other".into();
    same.prefix = String::new();
    same.scope = Scope::PerClient;
    same.enabled = false;
    same.idle_timeout = Some(Duration::from_secs(1));
    assert_eq!(same.spec_hash(), remote.spec_hash());

    let changed = |change: &dyn Fn(&mut ServerConfig)| {
        let mut other = remote.clone();
        change(&mut other);
        other.spec_hash()
    };
    let hashes = [
        remote.spec_hash(),
        changed(&|s| s.url = Some("https://api.example.com/mcp2".into())),
        changed(&|s| s.transport = Transport::Sse),
        changed(&|s| s.headers.clear()),
        changed(&|s| {
            s.headers.insert("Authorization".into(), "Bearer u".into());
        }),
        changed(&|s| {
            let value = s.headers.remove("Authorization").unwrap();
            s.headers.insert("X-Authorization".into(), value);
        }),
        local.spec_hash(),
    ];
    let distinct: std::collections::HashSet<u64> = hashes.iter().copied().collect();
    assert_eq!(distinct.len(), hashes.len(), "{hashes:x?}");
}

const REMOTE_SPEC_HASH: u64 = 0xb793_4ba4_ed15_8946;
