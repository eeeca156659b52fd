//! Integration tests: the real mcpgwd, mcpgw-shim and mcpgwctl against real MCP servers.
//! One test binary (one link) with a module per area.

mod harness;

mod architecture;
mod bounds;
mod commands;
mod conformance;
mod core;
mod ctl;
mod embed;
mod everything;
mod fast;
mod fast_http;
mod http;
mod import;
mod interop;
mod lifecycle;
mod listen;
mod mrtr;
mod npm;
mod pins;
mod plugins;
mod reload;
mod remote;
mod restart;
mod service;
mod shaping;
mod status;
mod surface;
mod trust;
