//! The command lines of the binaries mcpgwctl cannot link, as clap describes them (feature
//! `cli`).
//!
//! Each binary's CLI is defined once: `mcpgwd` parses with [`mcpgwd::Args`], and mcpgwctl,
//! which cannot link the daemon, renders the same definition as a man page. The shim parses its
//! own arguments by hand (it stays std-only); [`shim::command`] reads its usage text, and a
//! test holds the parser to exactly the flags that text lists.

pub mod mcpgwd;
pub mod shim;
