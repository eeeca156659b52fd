//! Just enough of JSON with comments (VS Code's `mcp.json`) to read a client's config and to
//! edit one top-level member of it in place.
//!
//! Why edit text rather than re-serialize: a client's file is the client's. Rewriting it through
//! `serde_json::Value` would reorder its keys (the map is sorted without `preserve_order`, a
//! feature that would also change the daemon's maps, as features unify across the
//! workspace) and drop its comments. Replacing the bytes of one member's value leaves every
//! other byte as it was.
//!
//! [`strip`] blanks comments and trailing commas out with spaces, so that offsets in the
//! stripped text are offsets in the original: the scanner works on the stripped text, the edits
//! apply to the original.

use std::ops::Range;

/// `text` with `//` and `/* */` comments and trailing commas replaced by spaces (line breaks
/// kept), for `serde_json` and for [`member`].
pub fn strip(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = string_end(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    out[i] = b' ';
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |e| i + 2 + e + 2);
                for b in &mut out[i..end] {
                    if *b != b'\n' {
                        *b = b' ';
                    }
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    // Trailing commas, now that comments are blank.
    let mut i = 0;
    while i < out.len() {
        match out[i] {
            b'"' => i = string_end(&out, i),
            b',' => {
                let next = out[i + 1..].iter().find(|b| !b.is_ascii_whitespace());
                if matches!(next, Some(b'}' | b']')) {
                    out[i] = b' ';
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    // Only ASCII bytes were replaced, by ASCII spaces: still UTF-8.
    String::from_utf8(out).expect("blanking ASCII keeps UTF-8")
}

/// Parses JSON with comments and trailing commas.
pub fn parse(text: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(&strip(text)).map_err(|e| format!("not valid JSON: {e}"))
}

/// Where a top-level member is: from its key's opening quote to its value's end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub start: usize,
    pub value: Range<usize>,
}

/// The top-level member `key` of the object in `stripped` (the output of [`strip`]), if any.
/// A key written twice is its last member: what `serde_json` reads, and the clients (a
/// JavaScript `JSON.parse` keeps the last too); an edit of the first would change nothing.
pub fn member(stripped: &str, key: &str) -> Result<Option<Member>, String> {
    let bytes = stripped.as_bytes();
    let mut i = skip_ws(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return Err("the file is not a JSON object".into());
    }
    i = skip_ws(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        return Ok(None);
    }
    let mut found = None;
    loop {
        if bytes.get(i) != Some(&b'"') {
            return Err(format!("expected a key at byte {i}"));
        }
        let start = i;
        let key_end = string_end(bytes, i);
        let name: String = serde_json::from_str(&stripped[start..key_end])
            .map_err(|e| format!("a key that is not a JSON string: {e}"))?;
        i = skip_ws(bytes, key_end);
        if bytes.get(i) != Some(&b':') {
            return Err(format!("expected `:` at byte {i}"));
        }
        let value_start = skip_ws(bytes, i + 1);
        let value_end = value_end(bytes, value_start)?;
        if name == key {
            found = Some(Member {
                start,
                value: value_start..value_end,
            });
        }
        i = skip_ws(bytes, value_end);
        match bytes.get(i) {
            Some(b',') => i = skip_ws(bytes, i + 1),
            Some(b'}') => return Ok(found),
            _ => return Err(format!("expected `,` or `}}` at byte {i}")),
        }
    }
}

/// The text of the top-level member `key`'s value, as written.
pub fn value_text<'t>(text: &'t str, key: &str) -> Result<Option<&'t str>, String> {
    Ok(member(&strip(text), key)?.map(|m| &text[m.value]))
}

/// `text` with the top-level member `key` set to `value` (JSON text, written as given): its
/// value replaced if it has one, else added as the first member. Nothing else changes.
pub fn set_member(text: &str, key: &str, value: &str) -> Result<String, String> {
    let stripped = strip(text);
    if let Some(found) = member(&stripped, key)? {
        return Ok(format!(
            "{}{value}{}",
            &text[..found.value.start],
            &text[found.value.end..]
        ));
    }
    let bytes = stripped.as_bytes();
    let open = skip_ws(bytes, 0);
    let after = skip_ws(bytes, open + 1);
    let key = serde_json::to_string(key).expect("a string serializes");
    let empty = bytes.get(after) == Some(&b'}');
    let (head, tail) = text.split_at(open + 1);
    Ok(if empty {
        format!("{head}\n  {key}: {value}\n{}", tail.trim_start())
    } else {
        format!("{head}\n  {key}: {value},{tail}")
    })
}

/// `text` without the top-level member `key` (and the comma that separated it); a key
/// written twice without every one of them (an earlier one would be read in its place).
pub fn remove_member(text: &str, key: &str) -> Result<String, String> {
    let mut text = text.to_owned();
    loop {
        match remove_last(&text, key)? {
            Some(shorter) => text = shorter,
            None => return Ok(text),
        }
    }
}

/// `text` without the last top-level member `key`; `None` when it has none.
fn remove_last(text: &str, key: &str) -> Result<Option<String>, String> {
    let stripped = strip(text);
    let Some(found) = member(&stripped, key)? else {
        return Ok(None);
    };
    let bytes = stripped.as_bytes();
    let after = skip_ws(bytes, found.value.end);
    if bytes.get(after) == Some(&b',') {
        let next = skip_ws(bytes, after + 1);
        return Ok(Some(format!("{}{}", &text[..found.start], &text[next..])));
    }
    // The last member: the comma before it goes (there is none for the only member).
    let before = stripped[..found.start]
        .trim_end()
        .strip_suffix(',')
        .map_or(found.start, str::len);
    Ok(Some(format!(
        "{}{}",
        &text[..before],
        &text[found.value.end..]
    )))
}

/// `value` pretty-printed, its lines after the first indented like the member it goes into
/// (`indent` being that member's line's indentation).
pub fn pretty(value: &serde_json::Value, indent: &str) -> String {
    let text = serde_json::to_string_pretty(value).expect("a JSON value serializes");
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            if i == 0 {
                line.to_owned()
            } else {
                format!("\n{indent}{line}")
            }
        })
        .collect()
}

/// The indentation of the line holding the top-level member `key` (two spaces when it has
/// none yet, as [`set_member`] adds it).
pub fn member_indent(text: &str, key: &str) -> String {
    let Ok(Some(found)) = member(&strip(text), key) else {
        return "  ".into();
    };
    let line_start = text[..found.start].rfind('\n').map_or(0, |i| i + 1);
    text[line_start..found.start]
        .chars()
        .take_while(|c| *c == ' ' || *c == '\t')
        .collect()
}

fn skip_ws(bytes: &[u8], mut i: usize) -> usize {
    while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    i
}

/// The index after the string starting at `start` (its opening quote).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> Result<usize, String> {
    match bytes.get(start) {
        None => Err("the file ends where a value was expected".into()),
        Some(b'"') => Ok(string_end(bytes, start)),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = string_end(bytes, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Ok(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            Err("an object or array is not closed".into())
        }
        Some(_) => {
            let mut i = start;
            while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']') {
                if bytes[i].is_ascii_whitespace() {
                    break;
                }
                i += 1;
            }
            Ok(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VSCODE: &str = "// my servers\n{\n  \"inputs\": [{\"id\": \"t\", /* why */ \"type\": \"promptString\",},],\n  \"servers\": {\n    \"a\": {\"command\": \"x\", \"args\": [\"//not a comment\", \"/*nor this*/\"]}, // a\n  },\n}\n";

    #[test]
    fn strips_comments_and_trailing_commas_keeping_offsets() {
        let stripped = strip(VSCODE);
        assert_eq!(stripped.len(), VSCODE.len());
        let value: serde_json::Value = serde_json::from_str(&stripped).unwrap();
        assert_eq!(value["servers"]["a"]["args"][0], "//not a comment");
        assert_eq!(value["servers"]["a"]["args"][1], "/*nor this*/");
        assert_eq!(value["inputs"][0]["type"], "promptString");
        assert_eq!(parse("{\"a\": \"é\" /* ü */}").unwrap()["a"], "é");
    }

    #[test]
    fn finds_a_top_level_member() {
        let text = "{\"x\": {\"servers\": 1}, \"servers\" : {\"a\": [1, \"}\"]} }";
        let found = member(&strip(text), "servers").unwrap().unwrap();
        assert_eq!(&text[found.value.clone()], "{\"a\": [1, \"}\"]}");
        assert_eq!(&text[found.start..found.start + 9], "\"servers\"");
        assert_eq!(member(&strip(text), "nope").unwrap(), None);
        assert_eq!(member("{}", "a").unwrap(), None);
        assert!(member("[1]", "a").is_err());
    }

    #[test]
    fn sets_a_member_keeping_everything_else() {
        let replaced = set_member(VSCODE, "servers", "{}").unwrap();
        assert!(replaced.starts_with("// my servers\n{\n  \"inputs\""));
        assert!(replaced.ends_with("  \"servers\": {},\n}\n"), "{replaced}");

        let added = set_member("{\n  \"a\": 1\n}\n", "mcpServers", "{\"g\": 2}").unwrap();
        assert_eq!(added, "{\n  \"mcpServers\": {\"g\": 2},\n  \"a\": 1\n}\n");
        assert_eq!(parse(&added).unwrap()["a"], 1);
        let into_empty = set_member("{}", "mcpServers", "{}").unwrap();
        assert_eq!(into_empty, "{\n  \"mcpServers\": {}\n}");
    }

    #[test]
    fn removes_a_member_and_its_comma() {
        let text = "{\"a\": 1, \"b\": {\"c\": 2}, \"d\": 3}";
        assert_eq!(remove_member(text, "b").unwrap(), "{\"a\": 1, \"d\": 3}");
        assert_eq!(
            remove_member(text, "d").unwrap(),
            "{\"a\": 1, \"b\": {\"c\": 2}}"
        );
        assert_eq!(
            remove_member(text, "a").unwrap(),
            "{\"b\": {\"c\": 2}, \"d\": 3}"
        );
        assert_eq!(remove_member("{\"a\": 1}", "a").unwrap(), "{}");
        // Set then removed: what was there before.
        let original = "{\n  \"a\": 1\n}\n";
        let added = set_member(original, "m", "{}").unwrap();
        assert_eq!(remove_member(&added, "m").unwrap(), original);
    }

    /// A key written twice: serde_json, and the clients (JavaScript's `JSON.parse`), take the
    /// last one; so do the edits.
    #[test]
    fn a_key_written_twice_is_its_last() {
        let text = "{\"s\": {\"old\": 1}, \"x\": 2, \"s\": {\"live\": 1}}";
        assert_eq!(value_text(text, "s").unwrap(), Some("{\"live\": 1}"));
        let set = set_member(text, "s", "{\"new\": 1}").unwrap();
        assert_eq!(parse(&set).unwrap()["s"], serde_json::json!({"new": 1}));
        assert_eq!(set, "{\"s\": {\"old\": 1}, \"x\": 2, \"s\": {\"new\": 1}}");
        // Removed: every one of them, or an earlier one would be read in its place.
        let removed = remove_member(text, "s").unwrap();
        assert_eq!(removed, "{\"x\": 2}");
    }

    #[test]
    fn pretty_values_take_the_members_indentation() {
        let value = serde_json::json!({"g": {"command": "x"}});
        assert_eq!(
            pretty(&value, "  "),
            "{\n    \"g\": {\n      \"command\": \"x\"\n    }\n  }"
        );
        assert_eq!(member_indent("{\n    \"k\": 1}", "k"), "    ");
    }
}
