//! "Did you mean …?" for misspelt keys.

/// Keys and values other MCP configs use for what we call otherwise (Claude Desktop's
/// `mcpServers`, Cursor's `disabled`, VS Code's `type: http`, …), too far from ours for edit
/// distance to find.
const OTHER_NAMES: &[(&str, &str)] = &[
    ("mcpServers", "servers"),
    ("type", "transport"),
    ("serverUrl", "url"),
    ("httpUrl", "url"),
    ("http", "streamable-http"),
    ("mcp_servers", "servers"),
    ("disabled", "enabled"),
    ("environment", "env"),
    ("arguments", "args"),
    ("workdir", "cwd"),
    ("working_dir", "cwd"),
    ("working_directory", "cwd"),
];

/// The known key closest to `unknown`: one that differs only in case, another config format's
/// name for it, else the nearest within two edits (the first such in `known` order on a tie).
pub(super) fn did_you_mean<'k>(unknown: &str, known: &[&'k str]) -> Option<&'k str> {
    if let Some(same) = known.iter().find(|k| k.eq_ignore_ascii_case(unknown)) {
        return Some(same);
    }
    let renamed = OTHER_NAMES
        .iter()
        .find(|(other, _)| other.eq_ignore_ascii_case(unknown));
    if let Some(ours) = renamed.and_then(|(_, ours)| known.iter().find(|k| *k == ours)) {
        return Some(ours);
    }
    known
        .iter()
        .map(|k| (edit_distance(unknown, k), *k))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &["command", "args", "env", "cwd", "enabled", "idle_timeout"];

    #[test]
    fn suggests_close_keys() {
        assert_eq!(did_you_mean("comand", KEYS), Some("command"));
        assert_eq!(did_you_mean("arg", KEYS), Some("args"));
        assert_eq!(did_you_mean("COMMAND", KEYS), Some("command"));
        assert_eq!(did_you_mean("enabeld", KEYS), Some("enabled"));
        assert_eq!(did_you_mean("idletimeout", KEYS), Some("idle_timeout"));
        assert_eq!(did_you_mean("transport", KEYS), None);
        assert_eq!(did_you_mean("disabled", KEYS), Some("enabled"));
        assert_eq!(
            did_you_mean("mcpServers", &["servers", "roles"]),
            Some("servers")
        );
        assert_eq!(did_you_mean("mcpServers", KEYS), None);
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
