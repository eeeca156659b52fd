//! Codex's `config.toml` (`~/.codex/config.toml`, or `$CODEX_HOME`'s, and a trusted project's
//! `.codex/config.toml`): a `[mcp_servers.<name>]` table per server.
//!
//! Stdio: `command`, `args`, `env`, `env_vars` (names passed through from Codex's environment
//! when set: `NAME: ${NAME:-}` here, the daemon's value or empty, never disabling the server),
//! `cwd`. Streamable HTTP: `url`, `bearer_token_env_var` (an
//! `Authorization: Bearer ${VAR}` header), `http_headers`, `env_http_headers` (header → the
//! variable holding its value). `enabled = false` is kept. Values are literal (Codex expands
//! nothing in them). Read with `toml_edit`, which `connect` needs to edit the file anyway.

use toml_edit::{DocumentMut, Item, TableLike};

use super::vars::{Dialect, Fill, translate, variable};
use super::{Context, Found, Pair, Parsed, Spec};
use crate::clients::Location;

const KNOWN: &[&str] = &[
    "command",
    "args",
    "env",
    "env_vars",
    "cwd",
    "url",
    "bearer_token_env_var",
    "http_headers",
    "env_http_headers",
    "enabled",
];

pub fn parse(text: &str, at: &Location, cx: &Context) -> Result<Parsed, String> {
    let doc: DocumentMut = text.parse().map_err(|e| format!("not valid TOML: {e}"))?;
    let origin = format!("{} ({})", cx.shown(&at.path), at.scope.name());
    let mut parsed = Parsed::default();
    let Some(servers) = doc.get("mcp_servers") else {
        return Ok(parsed);
    };
    let servers = servers
        .as_table_like()
        .ok_or("`mcp_servers` is not a table")?;
    for (name, item) in servers.iter() {
        match server(name, item, &mut parsed.notes) {
            Ok((spec, enabled)) => parsed.found.push(Found {
                name: name.to_owned(),
                origin: origin.clone(),
                client: at.client,
                spec,
                enabled,
                fills: Vec::<Fill>::new(),
                nested: false,
            }),
            Err(why) => parsed
                .notes
                .push(format!("not imported: `{name}` from {origin}: {why}")),
        }
    }
    Ok(parsed)
}

fn server(name: &str, item: &Item, notes: &mut Vec<String>) -> Result<(Spec, bool), String> {
    let table = item.as_table_like().ok_or("the entry is not a table")?;
    let unknown: Vec<&str> = table
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !KNOWN.contains(k))
        .collect();
    if !unknown.is_empty() {
        notes.push(format!(
            "`{name}`: left out what mcpgw has no place for: {}",
            unknown.join(", ")
        ));
    }
    let literal = |value: &str| translate(value, &Dialect::Literal, &mut Vec::new());
    let enabled = table.get("enabled").and_then(Item::as_bool) != Some(false);
    let spec = match (string(table, "command")?, string(table, "url")?) {
        (Some(command), None) => {
            let mut args = Vec::new();
            for arg in strings(table, "args")? {
                args.push(literal(&arg)?);
            }
            let mut env = Vec::new();
            for (key, value) in string_table(table, "env")? {
                env.push(Pair::new(key, literal(&value)?));
            }
            for var in strings(table, "env_vars")? {
                let passed = reference("env_vars", &var)?.replace('}', ":-}");
                env.push(Pair::new(var.clone(), passed));
            }
            let cwd = match string(table, "cwd")? {
                Some(cwd) => Some(literal(&cwd)?),
                None => None,
            };
            Spec::Local {
                command,
                args,
                env,
                cwd,
            }
        }
        (None, Some(url)) => {
            let mut headers = Vec::new();
            if let Some(var) = string(table, "bearer_token_env_var")? {
                headers.push(Pair::new(
                    "Authorization".into(),
                    format!("Bearer {}", reference("bearer_token_env_var", &var)?),
                ));
            }
            for (key, value) in string_table(table, "http_headers")? {
                headers.push(Pair::new(key, literal(&value)?));
            }
            for (key, var) in string_table(table, "env_http_headers")? {
                headers.push(Pair::new(key, reference("env_http_headers", &var)?));
            }
            Spec::Remote {
                url: literal(&url)?,
                sse: false,
                headers,
            }
        }
        (Some(_), Some(_)) => return Err("it has both `command` and `url`".into()),
        (None, None) => return Err("it has neither `command` nor `url`".into()),
    };
    Ok((spec, enabled))
}

/// `${NAME}` for a variable Codex reads from its environment (its `key` names it). What is
/// no variable name is not shown: a token pasted there by mistake is a common one.
fn reference(key: &str, var: &str) -> Result<String, String> {
    match variable(var) {
        Some(var) => Ok(format!("${{{var}}}")),
        None => Err(format!(
            "its `{key}` holds no variable name (what it holds is not shown: it may be a token \
             pasted in place of the name of the variable that holds it)"
        )),
    }
}

fn string(table: &dyn TableLike, key: &str) -> Result<Option<String>, String> {
    match table.get(key) {
        None => Ok(None),
        Some(item) => item
            .as_str()
            .map(|s| Some(s.to_owned()))
            .ok_or_else(|| format!("its `{key}` is not a string")),
    }
}

fn strings(table: &dyn TableLike, key: &str) -> Result<Vec<String>, String> {
    let Some(item) = table.get(key) else {
        return Ok(Vec::new());
    };
    let array = item
        .as_array()
        .ok_or_else(|| format!("its `{key}` is not a list"))?;
    array
        .iter()
        .map(|v| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("its `{key}` holds something other than strings"))
        })
        .collect()
}

fn string_table(table: &dyn TableLike, key: &str) -> Result<Vec<(String, String)>, String> {
    let Some(item) = table.get(key) else {
        return Ok(Vec::new());
    };
    let inner = item
        .as_table_like()
        .ok_or_else(|| format!("its `{key}` is not a table"))?;
    inner
        .iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.to_owned(), s.to_owned()))
                .ok_or_else(|| format!("its `{key}.{k}` is not a string"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::{Client, Scope};
    use std::path::PathBuf;

    #[test]
    fn servers_of_a_codex_config() {
        let text = r#"model = "o4-mini"

# Local servers
[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env_vars = ["GITHUB_HOST"]
startup_timeout_sec = 20

[mcp_servers.github.env]
GITHUB_PERSONAL_ACCESS_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"

[mcp_servers.docs]
url = "https://docs.example.com/mcp"
bearer_token_env_var = "DOCS_TOKEN"
http_headers = { "X-Team" = "core" }
env_http_headers = { "X-Api-Key" = "DOCS_KEY" }
enabled = false
"#;
        let cx = Context {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u"),
        };
        let at = Location {
            client: Client::Codex,
            path: PathBuf::from("/home/u/.codex/config.toml"),
            scope: Scope::User,
        };
        let parsed = parse(text, &at, &cx).unwrap();
        assert_eq!(parsed.found.len(), 2);
        let github = &parsed.found[0];
        assert_eq!(github.origin, "~/.codex/config.toml (user)");
        let Spec::Local { env, args, .. } = &github.spec else {
            panic!()
        };
        assert_eq!(args, &["-y", "@modelcontextprotocol/server-github"]);
        assert_eq!(
            env[1],
            Pair::new("GITHUB_HOST".into(), "${GITHUB_HOST:-}".into())
        );
        let docs = &parsed.found[1];
        assert!(!docs.enabled);
        let Spec::Remote { headers, .. } = &docs.spec else {
            panic!()
        };
        let shown: Vec<_> = headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("Authorization", "Bearer ${DOCS_TOKEN}"),
                ("X-Team", "core"),
                ("X-Api-Key", "${DOCS_KEY}")
            ]
        );
        assert!(
            parsed.notes[0].contains("startup_timeout_sec"),
            "{:?}",
            parsed.notes
        );
        assert!(parse("not toml [", &at, &cx).is_err());
    }

    /// A token pasted where Codex wants a variable's name is neither shown in a note nor
    /// written to gateway.yaml as `${<token>}`.
    #[test]
    fn a_token_in_place_of_a_variable_name_is_not_shown() {
        let token = "ghp_0123456789abcdefghijABCDEFGHIJ";
        let text = format!(
            "[mcp_servers.a]\nurl = \"https://a.example/mcp\"\nbearer_token_env_var = \"{token}\"\n\n\
             [mcp_servers.b]\nurl = \"https://b.example/mcp\"\nbearer_token_env_var = \"x {token}\"\n\n\
             [mcp_servers.c]\ncommand = \"c\"\nenv_vars = [\"{token}\"]\n\n\
             [mcp_servers.d]\nurl = \"https://d.example/mcp\"\nbearer_token_env_var = \"GITHUB_PAT_FOR_CI_2024_RW\"\n"
        );
        let cx = Context {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u"),
        };
        let at = Location {
            client: Client::Codex,
            path: PathBuf::from("/home/u/.codex/config.toml"),
            scope: Scope::User,
        };
        let parsed = parse(&text, &at, &cx).unwrap();
        let names: Vec<_> = parsed.found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["d"], "{:?}", parsed.notes);
        let notes = parsed.notes.join("\n");
        assert!(!notes.contains(token), "{notes}");
        assert!(
            notes.contains("`bearer_token_env_var`") && notes.contains("`env_vars`"),
            "{notes}"
        );
    }
}
