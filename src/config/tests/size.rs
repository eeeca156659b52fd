//! Sizes: `max_message`, global and per server.

use super::{error, ok};

#[test]
fn max_message_is_global_with_per_server_overrides() {
    let config = ok(
        "max_message: 8MiB\nservers:\n  a:\n    command: x\n    max_message: 512KiB\n  \
         b:\n    command: y\n  c:\n    command: z\n    max_message: 2000000\n",
    );
    assert_eq!(config.max_message, 8 << 20);
    let limit = |name: &str| config.servers[name].effective_max_message(config.max_message);
    assert_eq!(limit("a"), 512 << 10);
    assert_eq!(limit("b"), 8 << 20);
    assert_eq!(limit("c"), 2_000_000);
    assert_eq!(
        ok("servers: {}\n").max_message,
        64 << 20,
        "64 MiB by default"
    );
    assert_eq!(ok("max_message: 64MB\n").max_message, 64_000_000);
    assert_eq!(ok("max_message: \"1 GiB\"\n").max_message, 1 << 30);
}

#[test]
fn bad_sizes_are_located() {
    assert_eq!(
        error("max_message: 64 megabytes\n"),
        "gateway.yaml:1:14: `max_message` must be a size: bytes as a number (1048576) or a \
         string with a unit (\"512KiB\", \"64MiB\", \"64MB\", \"1GiB\"); `64 megabytes` is not one"
    );
    assert_eq!(
        error("servers:\n  a:\n    command: x\n    max_message: 0\n"),
        "gateway.yaml:4:18: `max_message` in server `a` must be at least 1 KiB, found `0`"
    );
    assert_eq!(
        error("max_message: -1\n"),
        "gateway.yaml:1:14: `max_message` must not be negative, found `-1`"
    );
    assert_eq!(
        error("servers:\n  a: {command: x, max_message: [1]}\n"),
        "gateway.yaml:2:32: `max_message` in server `a` must be a size: bytes as a number \
         (1048576) or a string with a unit (\"512KiB\", \"64MiB\", \"64MB\", \"1GiB\"); found a list"
    );
    assert!(
        error("max_message: 1.5\n").starts_with("gateway.yaml:1:14: `max_message` must be a size")
    );
}
