//! The YAML of imported servers, written as text (gateway.yaml is the user's: entries are
//! added to it as text, never by re-serializing the file, which would drop its comments).
//!
//! Strings are written as YAML double-quoted scalars (JSON's escapes, and YAML's own for what
//! JSON leaves as it is but YAML reads otherwise: see [`string`]): every value reads back as
//! exactly the string it was, whatever it holds. Comments get one line of printable text.

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

/// A YAML double-quoted scalar holding exactly `value`: a JSON string (JSON's escapes are
/// YAML's too), with YAML's escapes for what JSON writes as it is but YAML does not read so:
/// NEL, LS and PS (`\N`, `\L`, `\P`), which YAML takes for line breaks (folded to a space
/// in a quoted scalar), and DEL, the C1 controls and the non-characters YAML refuses in a
/// document (`\x7F`, `\x80`…, `\uFEFF`).
pub fn string(value: &str) -> String {
    let json = serde_json::to_string(value).expect("a string serializes");
    if !json.chars().any(yaml_escaped) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        match c {
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if (c as u32) <= 0xff && yaml_escaped(c) => {
                out.push_str(&format!("\\x{:02X}", c as u32))
            }
            c if yaml_escaped(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// What JSON leaves unescaped but a YAML scalar cannot hold as it is: line breaks besides
/// `\n` and `\r` (NEL, LS, PS), and what YAML does not allow in a document at all (DEL, the
/// C1 controls, the BOM and U+FFFE/U+FFFF).
fn yaml_escaped(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
    )
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

/// Text for a `#` comment: one line of printable text. Control characters, and the line
/// breaks YAML knows besides them (LS, PS; NEL is a control), become `?`: a comment holding
/// one would end there, and what follows it would be YAML (a project directory named
/// `x\u{2028}  evil:\u{2028}    command: sh` would add a server).
pub fn comment(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || yaml_escaped(c) {
                '?'
            } else {
                c
            }
        })
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

    /// What YAML reads as a line break, or refuses, is escaped in strings and gone from
    /// comments; everything reads back as it was.
    #[test]
    fn yaml_line_breaks_and_non_printables() {
        let odd =
            "a\u{85}b\u{2028}c\u{2029}d\u{7f}e\u{80}\u{9b}f\u{feff}g\u{ffff}h\u{1f}é\u{1F600}";
        assert_eq!(
            string(odd),
            "\"a\\Nb\\Lc\\Pd\\x7Fe\\x80\\x9Bf\\uFEFFg\\uFFFFh\\u001fé\u{1F600}\""
        );
        let spec = Spec::Local {
            command: odd.into(),
            args: vec![odd.into()],
            env: vec![Pair::new("K".into(), odd.into())],
            cwd: None,
        };
        let origin = "/p\u{2028}  evil:\u{2029}    command: sh\u{85}x";
        let text = format!("servers:\n{}", entry("s", origin, &spec, true));
        assert!(
            text.starts_with("servers:\n  # from /p?  evil:?    command: sh?x\n"),
            "{text}"
        );
        let config =
            mcpgw::config::parse(&text, std::path::Path::new("/g/gateway.yaml"), &|_| None)
                .unwrap();
        assert_eq!(config.servers.keys().collect::<Vec<_>>(), ["s"]);
        assert_eq!(config.servers["s"].command, odd);
        assert_eq!(config.servers["s"].args, [odd]);
        assert_eq!(config.servers["s"].env["K"], odd);
    }
}
