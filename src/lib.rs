//! mcpgw: one MCP gateway daemon per user, shared by every MCP client.
//!
//! Map of the crate (see ARCHITECTURE.md for the invariants):
//! - [`protocol`]: the hello and control messages spoken on the local socket.
//! - [`ipc`]: socket paths, the blocking client side, and (daemon) the listener.
//! - [`shim`]: the stdio ⇄ socket relay an MCP client launches.
//! - [`config`]: gateway.yaml → a validated [`config::Config`].
//! - [`backend`]: one supervised backend server (lazy start, idle stop, schema cache).
//! - [`table`]: the immutable routing table (backends, exposed tool names, roles).
//! - [`session`]: one connected MCP client, served with rmcp.
//! - [`fast`]: `tools/call` from socket sessions to stdio backends as bytes, beside rmcp;
//!   [`wire`] is its line plumbing.
//! - [`http`]: the HTTP listener: Streamable HTTP at `/mcp`, legacy SSE, tokens → roles.
//! - [`gateway`]: the daemon's shared state: current table, sessions, list and call.
//! - [`reload`]: config reloads (file watch, SIGHUP, mcpgwctl) as table swaps.
//! - [`daemon`]: `run`, readiness and the one shutdown path.
//! - [`service`]: systemd readiness notification and socket activation.

pub mod ipc;
pub mod protocol;

#[cfg(feature = "config")]
pub mod config;
#[cfg(feature = "config")]
pub mod shim;

#[cfg(feature = "daemon")]
pub mod backend;
#[cfg(feature = "daemon")]
pub mod builtin;
#[cfg(feature = "daemon")]
mod connection;
#[cfg(feature = "daemon")]
pub mod control;
#[cfg(feature = "daemon")]
pub mod daemon;
#[cfg(feature = "daemon")]
pub mod fast;
#[cfg(feature = "daemon")]
pub mod gateway;
#[cfg(feature = "daemon")]
pub mod http;
#[cfg(feature = "daemon")]
pub mod reload;
#[cfg(feature = "daemon")]
pub mod service;
#[cfg(feature = "daemon")]
pub mod session;
#[cfg(feature = "daemon")]
pub mod table;
#[cfg(feature = "daemon")]
pub mod wire;
