//! The command lines of the binaries mcpgwctl cannot link, as clap describes them (feature
//! `cli`).
//!
//! Each binary's CLI is defined once: `mcpgwd` parses with [`mcpgwd::Args`], and mcpgwctl,
//! which cannot link the daemon, renders the same definition as a man page.

pub mod mcpgwd;
