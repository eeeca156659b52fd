//! `mcpgwctl completions` and `mcpgwctl man`: completion scripts and man pages generated from
//! the definitions the binaries parse with — mcpgwctl's [`crate::Args`], mcpgwd's
//! `mcpgw::cli::mcpgwd::Args`, the shim's usage text through `mcpgw::cli::shim` — so they
//! cannot describe flags that are not there. What clap does not know (exit statuses,
//! environment, files, signals) is written here by hand, from README.md and the code that
//! decides it, with variable names and exit codes taken from their constants.

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};
use mcpgw::paths::{CONFIG_ENV, SOCKET_ENV};
use serde_json::json;

use crate::{EXIT_FAILED, EXIT_NO_DAEMON, Out};

pub fn completions(shell: Shell, out: Out) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut crate::Args::command(), "mcpgwctl", &mut script);
    let script = String::from_utf8(script).expect("completion scripts are UTF-8");
    let document = json!({ "shell": shell.to_string(), "script": script });
    out.print(&document, || script)
}

/// Without a directory, mcpgwctl(1) on stdout; with one, every page written into it.
pub fn man(dir: Option<&Path>, out: Out) -> ExitCode {
    let pages = pages();
    let Some(dir) = dir else {
        let (name, page) = pages
            .into_iter()
            .next()
            .expect("mcpgwctl's page comes first");
        let document = json!({ "page": name, "roff": page });
        return out.print(&document, || page);
    };
    if let Err(e) = std::fs::create_dir_all(dir) {
        return out.fail(
            EXIT_FAILED,
            &format!("cannot create {}: {e}", dir.display()),
        );
    }
    let mut written: Vec<PathBuf> = Vec::new();
    for (name, page) in &pages {
        let path = dir.join(name);
        if let Err(e) = std::fs::write(&path, page) {
            return out.fail(
                EXIT_FAILED,
                &format!("cannot write {}: {e}", path.display()),
            );
        }
        written.push(path);
    }
    out.print(&json!({ "written": written }), || {
        written
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect()
    })
}

/// Every page as (file name, roff): mcpgwctl(1) first, then one per verb (mcpgwctl(1) lists
/// them as `mcpgwctl-<verb>(1)`, as git's pages do), mcpgwd(1) and mcpgw-shim(1).
fn pages() -> Vec<(String, String)> {
    let mut ctl = crate::Args::command().disable_help_subcommand(true);
    ctl.build();
    let mut pages = vec![page(ctl.clone(), ctl_sections())];
    for verb in ctl.get_subcommands().filter(|verb| !verb.is_hide_set()) {
        let mut see_also = Roff::new();
        see_also_section(&mut see_also, &["mcpgwctl"]);
        pages.push(page(verb.clone(), see_also));
    }
    pages.push(page(mcpgw::cli::mcpgwd::Args::command(), mcpgwd_sections()));
    pages.push(page(mcpgw::cli::shim::command(), shim_sections()));
    pages
}

/// clap's sections, then `extra`, then the version (verbs have none of their own), as one roff
/// document.
fn page(command: Command, extra: Roff) -> (String, String) {
    let has_verbs = command.get_subcommands().any(|verb| !verb.is_hide_set());
    let has_version = command.get_version().is_some();
    let man = Man::new(command).manual("mcpgw");
    let render = |page: &mut Vec<u8>| -> io::Result<()> {
        man.render_title(page)?;
        man.render_name_section(page)?;
        man.render_synopsis_section(page)?;
        man.render_description_section(page)?;
        man.render_options_section(page)?;
        if has_verbs {
            man.render_subcommands_section(page)?;
        }
        extra.to_writer(page)?;
        if has_version {
            man.render_version_section(page)?;
        }
        Ok(())
    };
    let mut page = Vec::new();
    render(&mut page).expect("rendering into memory");
    let page = String::from_utf8(page).expect("roff of UTF-8 text is UTF-8");
    // Each part starts with roff's preamble (it defines the apostrophe); once is enough.
    let preamble = Roff::new().render();
    let page = format!("{preamble}{}", page.replace(&preamble, ""));
    (man.get_filename(), page)
}

fn heading(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn paragraph(roff: &mut Roff, text: &str) {
    roff.control("PP", []).text([roman(text)]);
}

/// An indented paragraph under a bold tag.
fn item(roff: &mut Roff, tag: &str, text: &str) {
    roff.control("TP", []).text([bold(tag)]).text([roman(text)]);
}

fn see_also_section(roff: &mut Roff, pages: &[&str]) {
    heading(roff, "SEE ALSO");
    let names: Vec<String> = pages.iter().map(|page| format!("{page}(1)")).collect();
    roff.text([roman(names.join(", "))]);
}

/// The socket, as every page describes it (README.md, "Commands").
fn socket_file(roff: &mut Roff) {
    item(
        roff,
        "$XDG_RUNTIME_DIR/mcpgw/mcpgw.sock",
        &format!(
            "The daemon's socket, unless --socket or ${SOCKET_ENV} names another. The runtime \
             directory is $XDG_RUNTIME_DIR, else /run/user/<uid> when it is yours (Linux), else \
             the per-user temp dir (macOS), else a per-user directory under the temp dir. It \
             must be yours, not a symlink, and private (0700); the socket is 0600, and a peer \
             of another user is refused."
        ),
    );
}

/// The config file's discovery, for mcpgwd and `mcpgwctl check` (README.md, "Config").
fn config_files(roff: &mut Roff) {
    item(
        roff,
        "./gateway.yaml, ./mcp-gateway.yaml, ~/.config/mcpgw/gateway.yaml",
        &format!(
            "The config file when neither --config nor ${CONFIG_ENV} names one: the first of \
             these that exists (the last is $XDG_CONFIG_HOME/mcpgw/gateway.yaml when \
             XDG_CONFIG_HOME is set). A daemon the shim starts skips the working directory."
        ),
    );
}

fn ctl_sections() -> Roff {
    let mut roff = Roff::new();
    heading(&mut roff, "EXIT STATUS");
    item(&mut roff, "0", "Success.");
    item(&mut roff, &EXIT_FAILED.to_string(), "The operation failed.");
    item(&mut roff, "2", "Usage error.");
    item(
        &mut roff,
        &EXIT_NO_DAEMON.to_string(),
        "No daemon is running. No verb ever starts one; check, completions and man need none.",
    );
    paragraph(
        &mut roff,
        "With --json every verb prints one JSON document on stdout ({\"error\": ...} on failure).",
    );
    heading(&mut roff, "ENVIRONMENT");
    item(
        &mut roff,
        SOCKET_ENV,
        "The daemon's socket when --socket is not given.",
    );
    item(
        &mut roff,
        CONFIG_ENV,
        "The config file check validates when --config is not given.",
    );
    heading(&mut roff, "FILES");
    socket_file(&mut roff);
    config_files(&mut roff);
    see_also_section(&mut roff, &["mcpgwd", "mcpgw-shim"]);
    roff
}

fn mcpgwd_sections() -> Roff {
    let mut roff = Roff::new();
    heading(&mut roff, "EXIT STATUS");
    item(
        &mut roff,
        "0",
        "The daemon was stopped (SIGTERM, SIGINT, mcpgwctl stop).",
    );
    item(&mut roff, "1", "Any other failure, said on stderr.");
    item(
        &mut roff,
        &mcpgw::cli::mcpgwd::EXIT_CONFIG.to_string(),
        "The config was not found or is invalid (every error is printed with its file:line:col).",
    );
    heading(&mut roff, "SIGNALS");
    item(
        &mut roff,
        "SIGTERM, SIGINT",
        "Graceful shutdown: stop accepting, drain the calls in flight, close the sessions, \
         stop every backend.",
    );
    item(
        &mut roff,
        "SIGHUP",
        "Re-read the config, like mcpgwctl reload; a rejected edit leaves the old config live.",
    );
    heading(&mut roff, "ENVIRONMENT");
    item(
        &mut roff,
        CONFIG_ENV,
        "The config file when --config is not given.",
    );
    item(
        &mut roff,
        SOCKET_ENV,
        "The socket to listen on when --socket is not given.",
    );
    item(
        &mut roff,
        "MCPGW_LOG",
        "What the daemon logs to stderr, as a tracing filter (debug for more; default info).",
    );
    item(
        &mut roff,
        "MCPGW_FAST_PATH",
        "0 turns off the fast path of tools/call and tools/list (forwarded as bytes), to \
         compare or to rule it out when chasing a problem.",
    );
    heading(&mut roff, "FILES");
    config_files(&mut roff);
    socket_file(&mut roff);
    item(
        &mut roff,
        "~/.cache/mcpgw",
        "Each server's tools, prompts, resources and templates, keyed by a hash of its \
         connection spec, so that lists answer without starting anything.",
    );
    see_also_section(&mut roff, &["mcpgwctl", "mcpgw-shim"]);
    roff
}

fn shim_sections() -> Roff {
    let [role_env, legacy_role_env] = mcpgw::shim::ROLE_ENVS;
    let mut roff = Roff::new();
    heading(&mut roff, "EXIT STATUS");
    item(
        &mut roff,
        "0",
        "The client ended the session (or asked for help or the version).",
    );
    item(
        &mut roff,
        "1",
        "No daemon could be reached or started, the daemon refused the session, or it went \
         away and did not come back within the reconnect bound. The client's first request is \
         answered with the reason as a JSON-RPC error, so the client shows it.",
    );
    item(&mut roff, "2", "Usage error.");
    heading(&mut roff, "ENVIRONMENT");
    item(
        &mut roff,
        SOCKET_ENV,
        "The daemon's socket when --socket is not given.",
    );
    item(
        &mut roff,
        &format!("{role_env}, {legacy_role_env}"),
        "The role when --role is not given, in this order; an unknown role is refused with \
         the known ones listed.",
    );
    item(
        &mut roff,
        CONFIG_ENV,
        "The config of a daemon this shim starts when --config is not given; else the user's \
         config dir, never the working directory (the MCP client's project).",
    );
    item(
        &mut roff,
        "MCPGW_RECONNECT_MS",
        "How long to connect again after the daemon went away under a connected client, in \
         milliseconds (default 30000; 0 turns reconnecting off).",
    );
    heading(&mut roff, "FILES");
    socket_file(&mut roff);
    item(
        &mut roff,
        "mcpgwd.log",
        "Beside the socket: the log of a daemon the shim started. Over 1 MiB when a shim \
         starts a daemon, it is moved to mcpgwd.log.1.",
    );
    see_also_section(&mut roff, &["mcpgwd", "mcpgwctl"]);
    roff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_binary_and_verb_has_a_page() {
        let names: Vec<String> = pages().into_iter().map(|(name, _)| name).collect();
        for expected in ["mcpgwctl.1", "mcpgwctl-status.1", "mcpgwctl-completions.1"] {
            assert!(names.contains(&expected.to_string()), "{names:?}");
        }
        assert!(names.ends_with(&["mcpgwd.1".to_string(), "mcpgw-shim.1".to_string()]));
        assert!(!names.contains(&"mcpgwctl-help.1".to_string()), "{names:?}");
    }

    #[test]
    fn a_page_has_one_preamble_and_sections_in_order() {
        let preamble = Roff::new().render();
        for (name, page) in pages() {
            assert!(page.starts_with(&preamble), "{name}");
            assert_eq!(page.matches(&preamble).count(), 1, "{name}");
            let at = |section: &str| page.find(&format!(".SH {section}\n"));
            let order = ["NAME", "SYNOPSIS", "DESCRIPTION", "\"SEE ALSO\""];
            let mut found: Vec<usize> = order.iter().map(|s| at(s).expect(s)).collect();
            // Only the binaries' own pages have a version (a verb's has none of its own).
            found.extend(at("VERSION"));
            assert_eq!(found.len() == 5, !name.starts_with("mcpgwctl-"), "{name}");
            assert!(found.is_sorted(), "{name}: {found:?}");
        }
    }
}
