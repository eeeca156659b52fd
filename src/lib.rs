//! mcpgw: one MCP gateway daemon per user, shared by every MCP client.
//!
//! The crate's door is small: what the three binaries and embedders use.
//! - [`protocol`]: the hello and control messages spoken on the local socket.
//! - [`paths`]: where the socket and the config file are.
//! - [`ipc`]: the blocking client side of the socket (shim, mcpgwctl).
//! - [`shim`]: the stdio ⇄ socket relay an MCP client launches (std only, no features).
//! - [`config`]: gateway.yaml → a validated [`config::Config`] (feature `config`).
//! - [`daemon`]: `run(options, shutdown)`, the whole daemon (feature `daemon`).
//! - [`tools`]: Rust tools an embedder adds to the daemon, served in its process.
//! - [`plugin_host`]: the Python plugin host the daemon runs for `plugins:` (feature `config`).
//! - [`cli`]: mcpgwd's and the shim's command lines as clap describes them (feature `cli`).
//!
//! Inside the daemon, by direction (see ARCHITECTURE.md for the invariants):
//! - downstream, the clients: `connection` (a socket's hello), `session` (one client: rmcp
//!   handler, socket pump, byte path), `http` (Streamable HTTP and legacy SSE), `control`
//!   (mcpgwctl's verbs);
//! - core, the routing: `gateway` (shared state, routing, notifications, reloads, the MRTR
//!   bridge), `table` (an immutable snapshot: backends, names, roles), `watch` (file and
//!   SIGHUP → reload);
//! - upstream, the servers: `backend` (one supervised server, its calls in flight, its
//!   transports);
//! - `wire` (JSON-RPC line plumbing), `throttle` (rate limits) and `service` (systemd) are
//!   leaves.

pub mod ipc;
pub mod paths;
pub mod protocol;
pub mod shim;

#[cfg(unix)]
mod process;

#[cfg(feature = "config")]
pub mod cache_files;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "config")]
pub mod plugin_host;

#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod tools;

#[cfg(feature = "daemon")]
mod backend;
#[cfg(feature = "daemon")]
mod connection;
#[cfg(feature = "daemon")]
mod control;
#[cfg(feature = "daemon")]
mod gateway;
#[cfg(feature = "daemon")]
mod http;
#[cfg(feature = "daemon")]
mod pins;
#[cfg(feature = "daemon")]
mod private;
#[cfg(feature = "daemon")]
mod service;
#[cfg(feature = "daemon")]
mod session;
#[cfg(feature = "daemon")]
mod table;
#[cfg(feature = "daemon")]
mod throttle;
#[cfg(feature = "daemon")]
mod watch;
#[cfg(feature = "daemon")]
mod wire;

#[cfg(all(test, feature = "daemon"))]
mod proptests;
