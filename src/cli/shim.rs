//! `mcpgw-shim`'s command line as a clap [`Command`], read from the shim's own usage text.
//!
//! The shim parses by hand (std only: it is started once per client session), so its usage
//! text, [`crate::shim::USAGE`], is where its flags are described. This module turns that text
//! into a `Command` for man pages and completions; its tests hold the hand parser to exactly the
//! flags the text lists, so neither can change without the other.

use clap::{Arg, ArgAction, Command};

/// The shim's command line: its about line and flags from the usage text (a flag line is
/// `  -V, --version    help`, help continuing on more deeply indented lines), and clap's own
/// `-h, --help`, which the parser takes too.
pub fn command() -> Command {
    let mut about = None;
    let mut flags: Vec<(&'static str, String)> = Vec::new();
    for line in crate::shim::USAGE.lines().skip(1) {
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            about.get_or_insert(text);
        } else if text.starts_with('-') && !line.starts_with("   ") {
            let (spec, help) = text.split_once("  ").expect("a flag line has help");
            flags.push((spec, help.trim().to_string()));
        } else if let Some((_, help)) = flags.last_mut() {
            help.push(' ');
            help.push_str(text);
        }
    }
    let command = Command::new("mcpgw-shim")
        .version(env!("CARGO_PKG_VERSION"))
        .about(about.expect("the usage text says what the shim does"))
        // `-V, --version` is a line of the usage text like every other flag.
        .disable_version_flag(true);
    flags.into_iter().fold(command, |command, (spec, help)| {
        command.arg(arg(spec, help))
    })
}

/// One flag from its spec (`--socket PATH`, `-V, --version`) and help.
fn arg(spec: &'static str, help: String) -> Arg {
    let (mut long, mut short, mut value) = (None, None, None);
    for part in spec.split(", ") {
        let (name, value_name) = match part.split_once(' ') {
            Some((name, value_name)) => (name, Some(value_name)),
            None => (part, None),
        };
        match name.strip_prefix("--") {
            Some(name) => long = Some(name),
            None => short = name.strip_prefix('-').and_then(|s| s.chars().next()),
        }
        value = value.or(value_name);
    }
    let long = long.expect("every shim flag has a long name");
    let arg = Arg::new(long).long(long).help(help);
    let arg = match short {
        Some(short) => arg.short(short),
        None => arg,
    };
    match value {
        Some(value) => arg.value_name(value).action(ArgAction::Set),
        None => arg.action(ArgAction::SetTrue),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::command;
    use crate::shim::{Args, USAGE};

    /// Every flag the hand parser matches on: the `"-…"` string literals of the shim's code
    /// (outside its tests). A flag added to the parser alone shows up here.
    fn parser_flags() -> BTreeSet<String> {
        let source = include_str!("../shim/mod.rs");
        let code = source.split("#[cfg(test)]").next().unwrap();
        let mut flags = BTreeSet::new();
        for (at, _) in code.match_indices("\"-") {
            let name: String = code[at + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            // `"--"` alone is the parser telling flags from values, not a flag.
            let is_flag = !name.trim_start_matches('-').is_empty();
            if is_flag && code[at + 1 + name.len()..].starts_with('"') {
                flags.insert(name);
            }
        }
        flags
    }

    fn built() -> clap::Command {
        let mut command = command();
        command.build();
        command
    }

    fn names(arg: &clap::Arg) -> Vec<String> {
        let long = arg.get_long().map(|l| format!("--{l}"));
        let short = arg.get_short().map(|s| format!("-{s}"));
        long.into_iter().chain(short).collect()
    }

    fn parse(args: &[&str]) -> Result<Args, String> {
        Args::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn the_parser_takes_exactly_the_flags_the_usage_lists() {
        command().debug_assert();
        let described: BTreeSet<String> = built().get_arguments().flat_map(names).collect();
        assert_eq!(parser_flags(), described);
        // The synopsis line too: every long flag but clap's --help, in brackets.
        let synopsis: BTreeSet<String> = USAGE
            .lines()
            .next()
            .unwrap()
            .split('[')
            .skip(1)
            .map(|flag| flag.split([' ', ']']).next().unwrap().to_string())
            .collect();
        let longs: BTreeSet<String> = described
            .into_iter()
            .filter(|f| f.starts_with("--") && f != "--help")
            .collect();
        assert_eq!(synopsis, longs);
    }

    #[test]
    fn each_flag_parses_as_described() {
        let nothing = parse(&[]).unwrap();
        for arg in built().get_arguments() {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(!help.is_empty(), "{:?} has no help", arg.get_id());
            let takes_value = matches!(arg.get_action(), clap::ArgAction::Set);
            for name in names(arg) {
                if takes_value {
                    let parsed = parse(&[&name, "given-value"]).unwrap();
                    assert!(format!("{parsed:?}").contains("given-value"), "{name}");
                    assert_eq!(
                        parse(&[&name]).unwrap_err(),
                        format!("{name} needs a value")
                    );
                    if name.starts_with("--") {
                        assert_eq!(parse(&[&format!("{name}=given-value")]), Ok(parsed));
                    }
                } else if arg.get_id() == "help" {
                    // The binary prints the usage text on this.
                    assert_eq!(parse(&[&name]), Err(String::new()));
                } else {
                    assert_ne!(parse(&[&name]).unwrap(), nothing, "{name} changes nothing");
                }
            }
        }
    }
}
