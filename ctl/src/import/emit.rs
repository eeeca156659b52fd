//! The YAML of imported servers, written as text (gateway.yaml is the user's: entries are
//! added to it as text, never by re-serializing the file, which would drop its comments).
//!
//! Strings are written as JSON strings, which are YAML double-quoted scalars: every value
//! reads back as exactly the string it was, whatever it holds.

use super::{Pair, Spec};

/// One `servers:` entry at two spaces of indentation, after a comment saying where it came
/// from.
pub fn entry(name: &str, origin: &str, spec: &Spec, enabled: bool) -> String {
    let mut out = format!("  # from {}\n  {}:\n", comment(origin), key(name));
    match spec {
        Spec::Local {
            command,
            args,
            env,
            cwd,
        } => {
            out.push_str(&format!("    command: {}\n", string(command)));
            if !args.is_empty() {
                let args: Vec<String> = args.iter().map(|a| string(a)).collect();
                out.push_str(&format!("    args: [{}]\n", args.join(", ")));
            }
            pairs(&mut out, "env", env);
            if let Some(cwd) = cwd {
                out.push_str(&format!("    cwd: {}\n", string(cwd)));
            }
        }
        Spec::Remote { url, sse, headers } => {
            out.push_str(&format!("    url: {}\n", string(url)));
            if *sse {
                out.push_str("    transport: sse\n");
            }
            pairs(&mut out, "headers", headers);
        }
    }
    if !enabled {
        out.push_str("    enabled: false\n");
    }
    out
}

fn pairs(out: &mut String, what: &str, pairs: &[Pair]) {
    if pairs.is_empty() {
        return;
    }
    out.push_str(&format!("    {what}:\n"));
    for pair in pairs {
        out.push_str(&format!(
            "      {}: {}\n",
            key(&pair.key),
            string(&pair.value)
        ));
    }
}

/// A JSON string: a YAML double-quoted scalar holding exactly `value`.
pub fn string(value: &str) -> String {
    serde_json::to_string(value).expect("a string serializes")
}

/// A mapping key: plain when it is a plain word YAML reads as a string, else quoted.
pub fn key(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "y" | "n"
        );
    if plain { name.to_owned() } else { string(name) }
}

/// Text for a `#` comment: one line, no control characters.
pub fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_read_back_as_written() {
        let spec = Spec::Local {
            command: "npx".into(),
            args: vec!["-y".into(), "a \"quoted\" # arg: {x}".into()],
            env: vec![
                Pair::new("TOKEN".into(), "${GITHUB_TOKEN}".into()),
                Pair::new("yes".into(), "1".into()),
            ],
            cwd: Some("/srv/x".into()),
        };
        let text = format!(
            "servers:\n{}",
            entry("1fs", "~/.claude.json\n(user)", &spec, false)
        );
        assert_eq!(
            text,
            "servers:\n  # from ~/.claude.json?(user)\n  \"1fs\":\n    command: \"npx\"\n    \
             args: [\"-y\", \"a \\\"quoted\\\" # arg: {x}\"]\n    env:\n      TOKEN: \
             \"${GITHUB_TOKEN}\"\n      \"yes\": \"1\"\n    cwd: \"/srv/x\"\n    enabled: false\n"
        );
        let config = mcpgw::config::parse(&text, std::path::Path::new("/g/gateway.yaml"), &|_| {
            Some("v".into())
        })
        .unwrap();
        let server = &config.servers["1fs"];
        assert_eq!(server.args[1], "a \"quoted\" # arg: {x}");
        assert_eq!(server.env["yes"], "1");
        assert!(!server.enabled);

        let remote = Spec::Remote {
            url: "https://x.example/sse".into(),
            sse: true,
            headers: vec![Pair::new("X-Api-Key".into(), "${K}".into())],
        };
        let text = format!("servers:\n{}", entry("r", "f", &remote, true));
        let config = mcpgw::config::parse(&text, std::path::Path::new("/g/gateway.yaml"), &|_| {
            Some("v".into())
        })
        .unwrap();
        assert_eq!(config.servers["r"].transport, mcpgw::config::Transport::Sse);
        assert_eq!(config.servers["r"].headers["X-Api-Key"], "v");
    }
}
