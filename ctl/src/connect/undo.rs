//! `connect --undo` of a file the client wrote since connecting: the servers go back as the
//! original had them, and the client's other changes stay. So do the servers the user added
//! or changed in the client since (every one but the gateway's entry that differs from the
//! original's of its name): they are the user's newest, and undoing `connect` must not lose
//! them. JSON is edited as text (one member), TOML through `toml_edit`.

use serde_json::Value;
use toml_edit::{Item, Table};

use super::ENTRY;
use super::edit::{servers_key, toml};
use crate::clients::{Client, Format};

/// `current` with its servers as `original` had them, plus those `current` has that the
/// original has not as they are now; and the names of the latter.
pub fn put_back(
    client: Client,
    current: &str,
    original: &str,
) -> Result<(String, Vec<String>), String> {
    match client.format() {
        Format::CodexToml => put_back_toml(client, current, original),
        _ => put_back_json(client, current, original),
    }
}

fn put_back_json(
    client: Client,
    current: &str,
    original: &str,
) -> Result<(String, Vec<String>), String> {
    let key = servers_key(client);
    let before = crate::jsonc::parse(original)?;
    let now = crate::jsonc::parse(current)?;
    let mut servers = crate::jsonc::value_text(original, key)?.map(str::to_owned);
    let mut since = Vec::new();
    let inner = format!("{}  ", crate::jsonc::member_indent(original, key));
    for (name, server) in now
        .get(key)
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if name == ENTRY || before.get(key).and_then(|s| s.get(name)) == Some(server) {
            continue;
        }
        let text = servers.get_or_insert_with(|| "{}".to_owned());
        *text = crate::jsonc::set_member(text, name, &crate::jsonc::pretty(server, &inner))?;
        since.push(name.clone());
    }
    let text = match servers {
        Some(servers) => crate::jsonc::set_member(current, key, &servers)?,
        None => crate::jsonc::remove_member(current, key)?,
    };
    Ok((text, since))
}

fn put_back_toml(
    client: Client,
    current: &str,
    original: &str,
) -> Result<(String, Vec<String>), String> {
    let key = servers_key(client);
    let mut doc = toml(current)?;
    let now = doc.remove(key);
    let mut servers = toml(original)?.remove(key);
    let mut since = Vec::new();
    let now_servers = now.as_ref().and_then(Item::as_table_like);
    for (name, server) in now_servers.into_iter().flat_map(|t| t.iter()) {
        let old = servers.as_ref().and_then(|s| s.get(name));
        if name == ENTRY || old.is_some_and(|old| content(old) == content(server)) {
            continue;
        }
        // Only now is the original's table rewritten (an inline one becomes a table).
        let table = match servers.take() {
            Some(item) => item
                .into_table()
                .map_err(|_| format!("`{key}` is not a table"))?,
            None => {
                let mut table = Table::new();
                table.set_implicit(true);
                table
            }
        };
        let mut table = table;
        table.insert(name, server.clone());
        servers = Some(Item::Table(table));
        since.push(name.to_owned());
    }
    if let Some(servers) = servers {
        doc.insert(key, servers);
    }
    Ok((doc.to_string(), since))
}

/// What a TOML item holds, as JSON: its layout, comments and key order left out, so that a
/// server is the same whether written `[a]` or `a = { … }`.
fn content(item: &Item) -> Value {
    match item.clone().into_value() {
        Ok(value) => value_content(&value),
        Err(_) => Value::Null,
    }
}

fn value_content(value: &toml_edit::Value) -> Value {
    use toml_edit::Value as T;
    match value {
        T::String(s) => Value::from(s.value().as_str()),
        T::Integer(i) => Value::from(*i.value()),
        T::Float(f) => Value::from(*f.value()),
        T::Boolean(b) => Value::from(*b.value()),
        T::Datetime(d) => Value::from(d.value().to_string()),
        T::Array(a) => a.iter().map(value_content).collect(),
        T::InlineTable(t) => t
            .iter()
            .map(|(k, v)| (k.to_owned(), value_content(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connect::Entry;
    use crate::connect::edit::connected;

    fn entry() -> Entry {
        Entry {
            command: "/usr/bin/mcpgw-shim".into(),
            args: vec![],
        }
    }

    /// Servers the user added (or changed) in the client after connecting are kept by
    /// `--undo`, beside the ones it puts back.
    #[test]
    fn servers_added_since_survive_undo() {
        let original = "{\n  \"mcpServers\": {\n    \"github\": {\"command\": \"npx\"},\n    \"ws\": {\"type\": \"ws\", \"url\": \"wss://x\"}\n  }\n}\n";
        let done = connected(Client::ClaudeCode, original, &entry(), &["ws".into()]).unwrap();
        let mut value = crate::jsonc::parse(&done).unwrap();
        value["mcpServers"]["later"] = serde_json::json!({"command": "later-mcp"});
        value["mcpServers"]["ws"]["url"] = serde_json::json!("wss://y");
        let later = serde_json::to_string_pretty(&value).unwrap();
        let (back, since) = put_back(Client::ClaudeCode, &later, original).unwrap();
        let servers = &crate::jsonc::parse(&back).unwrap()["mcpServers"];
        let mut names: Vec<_> = servers.as_object().unwrap().keys().collect();
        names.sort();
        assert_eq!(names, ["github", "later", "ws"], "{back}");
        assert_eq!(servers["ws"]["url"], "wss://y", "the client's newer one");
        assert_eq!(since, ["later", "ws"]);

        let original = "[mcp_servers.github]\ncommand = \"npx\"\n";
        let done = connected(Client::Codex, original, &entry(), &[]).unwrap();
        let later = format!("{done}\n[mcp_servers.later]\ncommand = \"later-mcp\"\n");
        let (back, since) = put_back(Client::Codex, &later, original).unwrap();
        let doc = toml(&back).unwrap();
        assert_eq!(
            doc["mcp_servers"]["github"]["command"].as_str(),
            Some("npx")
        );
        assert_eq!(
            doc["mcp_servers"]["later"]["command"].as_str(),
            Some("later-mcp")
        );
        assert!(doc["mcp_servers"].get("mcpgw").is_none(), "{back}");
        assert_eq!(since, ["later"]);
    }
}
