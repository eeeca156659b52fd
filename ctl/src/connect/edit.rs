//! How a client's file is changed: its servers replaced by the gateway's entry (and those
//! kept), recognising a file that is still what connecting made of it, and putting the
//! servers back. JSON is edited as text, one member (`jsonc.rs`); TOML through `toml_edit`.
//!
//! Each edit is a function of its inputs only, so that `--undo` can tell whether the client
//! changed the file since: connecting the backup again, with the entry and the kept servers
//! the file has now, gives the file's very bytes, or the client wrote it since.

use serde_json::Value;
use toml_edit::{DocumentMut, Item, Table};

use super::{ENTRY, Entry};
use crate::clients::{Client, Format};

/// The top-level member (JSON) or table (TOML) holding the servers.
pub fn servers_key(client: Client) -> &'static str {
    match client.format() {
        Format::McpServers => "mcpServers",
        Format::Vscode => "servers",
        Format::CodexToml => "mcp_servers",
    }
}

/// The names of the servers in a client's file.
pub fn servers_in(client: Client, text: &str) -> Result<Vec<String>, String> {
    let key = servers_key(client);
    Ok(match client.format() {
        Format::CodexToml => toml(text)?
            .get(key)
            .and_then(Item::as_table_like)
            .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
            .unwrap_or_default(),
        _ => crate::jsonc::parse(text)?
            .get(key)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
    })
}

/// `original` with its servers replaced by the gateway's entry and the `kept` ones.
pub fn connected(
    client: Client,
    original: &str,
    entry: &Entry,
    kept: &[String],
) -> Result<String, String> {
    let key = servers_key(client);
    if client.format() == Format::CodexToml {
        let mut doc = toml(original)?;
        let mut servers = match doc.remove(key) {
            Some(Item::Table(table)) => table,
            // `mcp_servers = { fs = {…}, … }`: the same servers, written inline.
            Some(Item::Value(toml_edit::Value::InlineTable(inline))) => inline.into_table(),
            None => {
                let mut table = Table::new();
                table.set_implicit(true);
                table
            }
            Some(_) => return Err(format!("`{key}` is not a table")),
        };
        let names: Vec<String> = servers.iter().map(|(k, _)| k.to_owned()).collect();
        for name in names.iter().filter(|n| !kept.contains(n)) {
            servers.remove(name);
        }
        let mut gateway = Table::new();
        gateway["command"] = toml_edit::value(entry.command.as_str());
        let mut args = toml_edit::Array::new();
        for arg in &entry.args {
            args.push(arg.as_str());
        }
        gateway["args"] = toml_edit::value(args);
        servers.insert(ENTRY, Item::Table(gateway));
        doc.insert(key, Item::Table(servers));
        return Ok(doc.to_string());
    }
    let value = crate::jsonc::parse(original)?;
    // Written by hand rather than through `Value` (whose map sorts keys): the gateway's entry
    // first, its keys in the order people write them.
    let indent = crate::jsonc::member_indent(original, key);
    let inner = format!("{indent}  ");
    let string = |s: &str| serde_json::to_string(s).expect("a string serializes");
    let mut gateway = Vec::new();
    if matches!(client, Client::ClaudeCode | Client::Vscode) {
        gateway.push("\"type\": \"stdio\"".to_owned());
    }
    gateway.push(format!("\"command\": {}", string(&entry.command)));
    let args: Vec<String> = entry.args.iter().map(|a| string(a)).collect();
    gateway.push(format!("\"args\": [{}]", args.join(", ")));
    let mut members = vec![format!(
        "{inner}\"{ENTRY}\": {{\n{inner}  {}\n{inner}}}",
        gateway.join(&format!(",\n{inner}  "))
    )];
    if let Some(old) = value.get(key).and_then(Value::as_object) {
        for (name, server) in old.iter().filter(|(n, _)| kept.contains(n)) {
            let server = crate::jsonc::pretty(server, &inner);
            members.push(format!("{inner}{}: {server}", string(name)));
        }
    }
    let text = format!("{{\n{}\n{indent}}}", members.join(",\n"));
    crate::jsonc::set_member(original, key, &text)
}

/// Whether `current` is what connecting `original` made: connecting it again with the entry
/// and the other servers `current` has gives `current`'s very bytes.
pub fn unchanged(client: Client, original: &str, current: &str) -> Result<bool, String> {
    let Some(entry) = entry_in(client, current)? else {
        return Ok(false);
    };
    let kept: Vec<String> = servers_in(client, current)?
        .into_iter()
        .filter(|n| n != ENTRY)
        .collect();
    Ok(connected(client, original, &entry, &kept).is_ok_and(|again| again == current))
}

/// The gateway's entry in a connected file.
fn entry_in(client: Client, text: &str) -> Result<Option<Entry>, String> {
    let key = servers_key(client);
    let strings = |items: Vec<Option<&str>>| -> Option<Vec<String>> {
        items.into_iter().map(|s| s.map(str::to_owned)).collect()
    };
    Ok(match client.format() {
        Format::CodexToml => {
            let doc = toml(text)?;
            let gateway = doc.get(key).and_then(|s| s.get(ENTRY));
            let command = gateway
                .and_then(|g| g.get("command"))
                .and_then(Item::as_str);
            let args = gateway
                .and_then(|g| g.get("args"))
                .and_then(Item::as_array)
                .and_then(|a| strings(a.iter().map(|v| v.as_str()).collect()));
            command.zip(args).map(|(command, args)| Entry {
                command: command.to_owned(),
                args,
            })
        }
        _ => {
            let value = crate::jsonc::parse(text)?;
            let gateway = value.get(key).and_then(|s| s.get(ENTRY));
            let command = gateway
                .and_then(|g| g.get("command"))
                .and_then(Value::as_str);
            let args = gateway
                .and_then(|g| g.get("args"))
                .and_then(Value::as_array)
                .and_then(|a| strings(a.iter().map(Value::as_str).collect()));
            command.zip(args).map(|(command, args)| Entry {
                command: command.to_owned(),
                args,
            })
        }
    })
}

pub fn toml(text: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>()
        .map_err(|e| format!("not valid TOML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::undo::put_back;

    fn entry() -> Entry {
        Entry {
            command: "/usr/bin/mcpgw-shim".into(),
            args: vec!["--role".into(), "dev".into()],
        }
    }

    #[test]
    fn json_connect_is_recognised_and_undone() {
        let original = "{\n  \"numStartups\": 4,\n  \"mcpServers\": {\n    \"github\": {\"command\": \"npx\"},\n    \"ws\": {\"type\": \"ws\", \"url\": \"wss://x\"}\n  },\n  \"tips\": {}\n}\n";
        let kept = vec!["ws".to_string()];
        let done = connected(Client::ClaudeCode, original, &entry(), &kept).unwrap();
        assert!(
            done.starts_with("{\n  \"numStartups\": 4,\n  \"mcpServers\": {\n    \"mcpgw\": {"),
            "{done}"
        );
        assert!(done.ends_with("\n  },\n  \"tips\": {}\n}\n"), "{done}");
        let value = crate::jsonc::parse(&done).unwrap();
        assert_eq!(value["mcpServers"]["mcpgw"]["args"][1], "dev");
        assert_eq!(value["mcpServers"]["ws"]["type"], "ws");
        assert!(value["mcpServers"].get("github").is_none());
        assert!(unchanged(Client::ClaudeCode, original, &done).unwrap());

        // The client wrote the file since: only the servers go back.
        let later = done.replace("\"numStartups\": 4", "\"numStartups\": 5");
        assert!(!unchanged(Client::ClaudeCode, original, &later).unwrap());
        let (back, since) = put_back(Client::ClaudeCode, &later, original).unwrap();
        assert_eq!(
            back,
            original.replace("\"numStartups\": 4", "\"numStartups\": 5")
        );
        assert!(since.is_empty());
    }

    #[test]
    fn vscode_comments_stay() {
        let original = "// mine\n{\n  \"inputs\": [], // prompted\n  \"servers\": {\n    // the fs\n    \"fs\": {\"type\": \"stdio\", \"command\": \"x\"},\n  },\n}\n";
        let done = connected(Client::Vscode, original, &entry(), &[]).unwrap();
        assert!(done.starts_with("// mine\n{\n  \"inputs\": [], // prompted\n  \"servers\": {"));
        assert!(done.ends_with("\n  },\n}\n"), "{done}");
        assert_eq!(
            crate::jsonc::parse(&done).unwrap()["servers"]["mcpgw"]["type"],
            "stdio"
        );
        assert!(unchanged(Client::Vscode, original, &done).unwrap());
    }

    #[test]
    fn toml_connect_keeps_the_rest_of_the_file() {
        let original = "# my codex\nmodel = \"o3\"\n\n[mcp_servers.github]\ncommand = \"npx\"\n\n[mcp_servers.github.env]\nT = \"x\"\n\n[profiles.fast]\nmodel = \"mini\" # quick\n";
        let done = connected(Client::Codex, original, &entry(), &[]).unwrap();
        assert!(done.starts_with("# my codex\nmodel = \"o3\"\n"), "{done}");
        assert!(
            done.contains("[profiles.fast]\nmodel = \"mini\" # quick\n"),
            "{done}"
        );
        assert!(!done.contains("github"), "{done}");
        let doc = toml(&done).unwrap();
        assert_eq!(
            doc["mcp_servers"]["mcpgw"]["command"].as_str(),
            Some("/usr/bin/mcpgw-shim")
        );
        assert!(unchanged(Client::Codex, original, &done).unwrap());
        assert_eq!(entry_in(Client::Codex, &done).unwrap(), Some(entry()));

        let later = done.replace("o3", "o4");
        assert!(!unchanged(Client::Codex, original, &later).unwrap());
        let (back, _) = put_back(Client::Codex, &later, original).unwrap();
        let doc = toml(&back).unwrap();
        assert_eq!(doc["model"].as_str(), Some("o4"));
        assert_eq!(doc["mcp_servers"]["github"]["env"]["T"].as_str(), Some("x"));
        assert!(doc["mcp_servers"].get("mcpgw").is_none());
    }

    /// `mcp_servers = { … }` written inline: the servers connect keeps stay.
    #[test]
    fn toml_inline_servers_are_kept() {
        let original = "model = \"o3\"\nmcp_servers = { fs = { command = \"npx\", args = [\"fs\"] }, odd = { url = \"wss://x\" } }\n";
        let kept = vec!["odd".to_string()];
        assert_eq!(servers_in(Client::Codex, original).unwrap(), ["fs", "odd"]);
        let done = connected(Client::Codex, original, &entry(), &kept).unwrap();
        let doc = toml(&done).unwrap();
        assert_eq!(
            doc["mcp_servers"]["odd"]["url"].as_str(),
            Some("wss://x"),
            "{done}"
        );
        assert!(doc["mcp_servers"].get("fs").is_none(), "{done}");
        assert_eq!(entry_in(Client::Codex, &done).unwrap(), Some(entry()));
        assert!(unchanged(Client::Codex, original, &done).unwrap());
        assert_eq!(servers_in(Client::Codex, &done).unwrap(), ["odd", "mcpgw"]);
    }
}
