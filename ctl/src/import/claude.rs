//! The `mcpServers` shape Claude Code, Claude Desktop and Cursor share: an object of servers,
//! each `{type?, command, args, env, cwd}` (stdio) or `{type?, url, headers}` (remote).
//!
//! Claude Code keeps servers in three places: `~/.claude.json`'s top-level `mcpServers` (user
//! scope), its `projects.<absolute path>.mcpServers` (local scope: one project's, private to
//! the user) and a project's `.mcp.json` (project scope). Of the local scope only the current
//! directory's project is imported (the gateway serves every project; the others are counted
//! in a note). Claude Code expands `${VAR}` and `${VAR:-default}` as mcpgw does; Claude Desktop
//! expands nothing; Cursor writes `${env:VAR}`, `${userHome}` and `${workspaceFolder}`.

use std::path::Path;

use serde_json::{Map, Value};

use super::vars::{Dialect, translate};
use super::{Context, Found, Pair, Parsed, Spec, env_file_pairs};
use crate::clients::{Client, Location, Scope};

/// The keys of an entry that are understood; others are named in a note.
const KNOWN: &[&str] = &[
    "type", "command", "args", "env", "cwd", "url", "headers", "envFile", "disabled",
];

pub fn parse(value: &Value, at: &Location, cx: &Context) -> Result<Parsed, String> {
    let top = value
        .as_object()
        .ok_or("the file is not a JSON object".to_owned())?;
    let mut parsed = Parsed::default();
    let shown = cx.shown(&at.path);
    let scope = match (at.client, at.scope) {
        (Client::ClaudeCode, Scope::User) => "user scope",
        (_, scope) => scope.name(),
    };
    // A project's `.cursor/mcp.json` is in the project's root.
    let workspace = match at.scope {
        Scope::Project => at.path.parent().and_then(Path::parent),
        _ => None,
    };
    let inputs = Default::default();
    let dialect = match at.client {
        Client::ClaudeCode => Dialect::Shell,
        Client::Cursor => Dialect::Editor {
            workspace,
            inputs: &inputs,
        },
        _ => Dialect::Literal,
    };
    if let Some(servers) = top.get("mcpServers") {
        let origin = format!("{shown} ({scope})");
        servers_of(servers, &origin, &dialect, at.client, cx, &mut parsed)?;
    }
    let top_level = parsed.found.len();
    if at.client == Client::ClaudeCode
        && let Some(Value::Object(projects)) = top.get("projects")
    {
        local_scope(projects, &shown, &dialect, cx, &mut parsed)?;
    }
    for found in &mut parsed.found[top_level..] {
        found.nested = true;
    }
    Ok(parsed)
}

/// Of a project's `.mcp.json` (found by looking, with `--project`), only the servers Claude
/// Code runs there: Claude Code asks before it runs a project's server, and keeps the answer
/// in `~/.claude.json`'s entry for the project: `enabledMcpjsonServers` (approved),
/// `disabledMcpjsonServers` (refused), `enableAllProjectMcpServers` (every one not refused).
/// What it did not approve, an import must not make the gateway run; each is a note.
pub fn only_approved(parsed: &mut Parsed, cx: &Context) {
    let user_file = Client::ClaudeCode.user_file(&cx.home);
    let settings = crate::files::read_text(&user_file, crate::files::MAX_CLIENT_FILE)
        .and_then(|text| crate::jsonc::parse(&text))
        .ok()
        .and_then(|value| {
            let projects = value.get("projects")?.as_object()?;
            projects
                .iter()
                .find(|(project, _)| here(project, cx))
                .map(|(_, settings)| settings.clone())
        })
        .unwrap_or_default();
    let names = |key: &str| -> Vec<&str> {
        settings
            .get(key)
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let (enabled, disabled) = (
        names("enabledMcpjsonServers"),
        names("disabledMcpjsonServers"),
    );
    let all = settings.get("enableAllProjectMcpServers") == Some(&Value::Bool(true));
    let shown = cx.shown(&user_file);
    let notes = &mut parsed.notes;
    parsed.found.retain(|found| {
        let why = if disabled.contains(&found.name.as_str()) {
            format!("disabled in Claude Code (`disabledMcpjsonServers` in {shown})")
        } else if all || enabled.contains(&found.name.as_str()) {
            return true;
        } else {
            "not approved in Claude Code for this project (approve it there, or name the \
             file: `mcpgwctl import .mcp.json`)"
                .to_owned()
        };
        notes.push(format!(
            "not imported: `{}` from {}: {why}",
            found.name, found.origin
        ));
        false
    });
}

/// Whether Claude Code's key for a project (its absolute path) is the current directory; a
/// link to it is the same project.
fn here(project: &str, cx: &Context) -> bool {
    let real = std::fs::canonicalize(&cx.cwd).unwrap_or_else(|_| cx.cwd.clone());
    Path::new(project) == cx.cwd || Path::new(project) == real
}

/// Claude Code's local scope: the current project's servers, and a count of the others'.
fn local_scope(
    projects: &Map<String, Value>,
    shown: &str,
    dialect: &Dialect<'_>,
    cx: &Context,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let mut elsewhere = 0;
    for (project, settings) in projects {
        let Some(servers) = settings.get("mcpServers") else {
            continue;
        };
        let count = servers.as_object().map_or(0, Map::len);
        if here(project, cx) {
            let origin = format!("{shown} (local scope of {project})");
            let before = parsed.found.len();
            servers_of(servers, &origin, dialect, Client::ClaudeCode, cx, parsed)?;
            // They ran in their project: so they do here (their relative paths are its).
            for found in &mut parsed.found[before..] {
                if let Spec::Local {
                    cwd: cwd @ None, ..
                } = &mut found.spec
                {
                    *cwd = Some(project.clone());
                }
            }
        } else if count > 0 {
            elsewhere += 1;
        }
    }
    if elsewhere > 0 {
        parsed.notes.push(format!(
            "{shown} has local-scope servers of {elsewhere} other project{}: `mcpgwctl import \
             --from claude-code` run in a project's directory imports its own (into your \
             gateway config all the same)",
            if elsewhere == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// Each entry of a `mcpServers` object; entries that cannot be imported are notes.
pub fn servers_of(
    servers: &Value,
    origin: &str,
    dialect: &Dialect<'_>,
    client: Client,
    cx: &Context,
    parsed: &mut Parsed,
) -> Result<(), String> {
    let servers = servers
        .as_object()
        .ok_or_else(|| format!("{origin}: the servers are not a JSON object"))?;
    for (name, entry) in servers {
        let mut fills = Vec::new();
        match entry_of(name, entry, dialect, cx, &mut fills, &mut parsed.notes) {
            Ok((spec, enabled)) => parsed.found.push(Found {
                name: name.clone(),
                origin: origin.to_owned(),
                client,
                spec,
                enabled,
                fills,
                nested: false,
            }),
            Err(why) => parsed
                .notes
                .push(format!("not imported: `{name}` from {origin}: {why}")),
        }
    }
    Ok(())
}

/// One server entry, in the shape all five clients' JSON and TOML come down to.
fn entry_of(
    name: &str,
    entry: &Value,
    dialect: &Dialect<'_>,
    cx: &Context,
    fills: &mut Vec<super::vars::Fill>,
    notes: &mut Vec<String>,
) -> Result<(Spec, bool), String> {
    let entry = entry.as_object().ok_or("the entry is not an object")?;
    let unknown: Vec<&str> = entry
        .keys()
        .map(String::as_str)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "`{name}`: left out what mcpgw has no place for: {}",
            unknown.join(", ")
        ));
    }
    let mut text = |value: &str| translate(value, dialect, fills);
    let kind = entry.get("type").and_then(Value::as_str);
    let url = entry.get("url").and_then(Value::as_str);
    let command = entry.get("command").and_then(Value::as_str);
    let spec = match (kind, command, url) {
        (Some("stdio") | None, Some(command), _) => {
            if command.contains("${") {
                return Err(
                    "its `command` holds a variable, which mcpgw does not expand there".into(),
                );
            }
            let mut args = Vec::new();
            for arg in list(entry.get("args"), "args")? {
                args.push(text(&arg)?);
            }
            let mut env = Vec::new();
            for (key, value) in pairs(entry.get("env"), "env")? {
                env.push(Pair::new(key, text(&value)?));
            }
            if let Some(file) = entry.get("envFile").and_then(Value::as_str) {
                let file = text(file)?;
                env.extend(env_file_pairs(name, &file, cx, notes));
            }
            let cwd = match entry.get("cwd").and_then(Value::as_str) {
                Some(cwd) => Some(text(cwd)?),
                None => None,
            };
            Spec::Local {
                command: command.to_owned(),
                args,
                env,
                cwd,
            }
        }
        (Some("http" | "streamable-http" | "sse") | None, None, Some(url)) => {
            let url = text(url)?;
            // Cursor tells the two apart itself; a `/sse` endpoint is the legacy transport.
            let sse = kind == Some("sse")
                || (kind.is_none()
                    && url
                        .split(['?', '#'])
                        .next()
                        .is_some_and(|p| p.ends_with("/sse")));
            let mut headers = Vec::new();
            for (key, value) in pairs(entry.get("headers"), "headers")? {
                headers.push(Pair::new(key, text(&value)?));
            }
            Spec::Remote { url, sse, headers }
        }
        (Some(other), _, _) if !matches!(other, "stdio" | "http" | "streamable-http" | "sse") => {
            return Err(format!(
                "its type `{other}` is not one mcpgw serves (stdio, http, sse)"
            ));
        }
        (_, None, None) => return Err("it has neither `command` nor `url`".into()),
        _ => return Err("its `type` does not fit its `command`/`url`".into()),
    };
    let enabled = entry.get("disabled").and_then(Value::as_bool) != Some(true);
    Ok((spec, enabled))
}

/// A list of strings (numbers and booleans written as text, as the clients pass them).
fn list(value: Option<&Value>, what: &str) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(|v| scalar(v, what)).collect(),
        Some(_) => Err(format!("its `{what}` is not a list")),
    }
}

/// An object of strings, in the file's order of keys (sorted: serde_json's map).
fn pairs(value: Option<&Value>, what: &str) -> Result<Vec<(String, String)>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| Ok((k.clone(), scalar(v, what)?)))
            .collect(),
        Some(_) => Err(format!("its `{what}` is not an object")),
    }
}

fn scalar(value: &Value, what: &str) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(format!("its `{what}` holds something other than text")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn cx() -> Context {
        Context {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u/proj"),
        }
    }

    fn at(client: Client, path: &str, scope: Scope) -> Location {
        Location {
            client,
            path: PathBuf::from(path),
            scope,
        }
    }

    #[test]
    fn claude_code_scopes() {
        let file = serde_json::json!({
            "numStartups": 3,
            "mcpServers": {
                "github": {"type": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
                           "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_x", "PORT": 8080}},
                "tracker": {"type": "http", "url": "https://t.example/mcp", "headers": {"Authorization": "Bearer ${TOKEN}"}},
                "old": {"type": "sse", "url": "https://o.example/events"},
                "ws": {"type": "ws", "url": "wss://x"},
            },
            "projects": {
                "/home/u/proj": {"mcpServers": {"db": {"command": "db-mcp", "args": ["${DB_URL:-sqlite://x}"]}}},
                "/home/u/other": {"mcpServers": {"x": {"command": "x"}}},
                "/home/u/none": {"allowedTools": []},
            }
        });
        let parsed = parse(
            &file,
            &at(Client::ClaudeCode, "/home/u/.claude.json", Scope::User),
            &cx(),
        )
        .unwrap();
        let names: Vec<_> = parsed
            .found
            .iter()
            .map(|f| (f.name.as_str(), f.origin.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("github", "~/.claude.json (user scope)"),
                ("old", "~/.claude.json (user scope)"),
                ("tracker", "~/.claude.json (user scope)"),
                ("db", "~/.claude.json (local scope of /home/u/proj)"),
            ]
        );
        let Spec::Local { env, .. } = &parsed.found[0].spec else {
            panic!()
        };
        assert_eq!(env[1], Pair::new("PORT".into(), "8080".into()));
        assert!(matches!(
            &parsed.found[1].spec,
            Spec::Remote { sse: true, .. }
        ));
        assert!(matches!(
            &parsed.found[2].spec,
            Spec::Remote { sse: false, .. }
        ));
        let notes = parsed.notes.join("\n");
        assert!(notes.contains("not imported: `ws`"), "{notes}");
        assert!(
            notes.contains("local-scope servers of 1 other project:"),
            "{notes}"
        );
    }

    #[test]
    fn cursor_variables_and_remote_kinds() {
        let file = serde_json::json!({"mcpServers": {
            "ctx": {"url": "https://c.example/mcp", "headers": {"KEY": "${env:CTX_KEY}"}},
            "legacy": {"url": "https://l.example/sse?x=1"},
            "fs": {"command": "npx", "args": ["-y", "fs", "${workspaceFolder}"], "alwaysAllow": []},
        }});
        let parsed = parse(
            &file,
            &at(
                Client::Cursor,
                "/home/u/proj/.cursor/mcp.json",
                Scope::Project,
            ),
            &cx(),
        )
        .unwrap();
        let Spec::Remote {
            headers,
            sse: false,
            ..
        } = &parsed.found[0].spec
        else {
            panic!()
        };
        assert_eq!(headers[0].value, "${CTX_KEY}");
        let Spec::Local { args, .. } = &parsed.found[1].spec else {
            panic!()
        };
        assert_eq!(args[2], "/home/u/proj");
        assert!(matches!(
            &parsed.found[2].spec,
            Spec::Remote { sse: true, .. }
        ));
        assert!(
            parsed.notes[0].contains("`fs`: left out what mcpgw has no place for: alwaysAllow")
        );
    }

    #[test]
    fn claude_desktop_values_are_literal() {
        let file = serde_json::json!({"mcpServers": {
            "a": {"command": "x", "args": ["${NOT_A_VAR}"]},
            "b": {"command": "y"},
        }, "globalShortcut": ""});
        let parsed = parse(
            &file,
            &at(
                Client::ClaudeDesktop,
                "/x/claude_desktop_config.json",
                Scope::User,
            ),
            &cx(),
        )
        .unwrap();
        assert_eq!(parsed.found.len(), 1);
        assert!(
            parsed.notes[0].contains("not imported: `a`"),
            "{:?}",
            parsed.notes
        );
    }
}
