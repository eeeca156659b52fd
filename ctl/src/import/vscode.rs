//! VS Code's `mcp.json` (the user's, and a project's `.vscode/mcp.json`): JSON with comments,
//! servers under `servers` (each `{type: stdio|http|sse, …}` like the `mcpServers` shape) and
//! `inputs`, the values VS Code prompts for (`${input:id}`).
//!
//! An input becomes a variable of the env file the user fills in once (the gateway has no one
//! to prompt): `${input:github-token}` is `${GITHUB_TOKEN}`, and the import says which to fill.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::claude::servers_of;
use super::vars::Dialect;
use super::{Context, Parsed};
use crate::clients::{Location, Scope};

pub fn parse(value: &Value, at: &Location, cx: &Context) -> Result<Parsed, String> {
    let top = value
        .as_object()
        .ok_or("the file is not a JSON object".to_owned())?;
    let mut inputs = BTreeMap::new();
    for input in top
        .get("inputs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(id) = input.get("id").and_then(Value::as_str) {
            let description = input
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            inputs.insert(id.to_owned(), description.to_owned());
        }
    }
    // `.vscode/mcp.json` is in the workspace folder.
    let workspace = match at.scope {
        Scope::Project => at.path.parent().and_then(Path::parent),
        _ => None,
    };
    let dialect = Dialect::Editor {
        workspace,
        inputs: &inputs,
    };
    let scope = match at.scope {
        Scope::User => "user",
        Scope::Project => "workspace",
        Scope::Given => "given",
    };
    let origin = format!("{} ({scope})", cx.shown(&at.path));
    let mut parsed = Parsed::default();
    if let Some(servers) = top.get("servers") {
        servers_of(servers, &origin, &dialect, at.client, cx, &mut parsed)?;
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::Client;
    use crate::import::Spec;
    use std::path::PathBuf;

    #[test]
    fn inputs_become_variables_to_fill() {
        let text = r#"{
  // Inputs are prompted for when a server starts.
  "inputs": [
    {"type": "promptString", "id": "github-token", "description": "GitHub PAT", "password": true},
  ],
  "servers": {
    "github": {
      "type": "stdio",
      "command": "docker",
      "args": ["run", "-i", "--rm", "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server"],
      "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "${input:github-token}"},
    },
    "remote": {"type": "http", "url": "https://api.example.com/mcp", "headers": {"X-Home": "${env:HOME}"}},
    "picker": {"type": "stdio", "command": "x", "args": ["${command:pickFile}"]},
  },
}"#;
        let value = crate::jsonc::parse(text).unwrap();
        let cx = Context {
            home: PathBuf::from("/home/u"),
            cwd: PathBuf::from("/home/u/proj"),
        };
        let at = Location {
            client: Client::Vscode,
            path: PathBuf::from("/home/u/proj/.vscode/mcp.json"),
            scope: Scope::Project,
        };
        let parsed = parse(&value, &at, &cx).unwrap();
        assert_eq!(parsed.found.len(), 2, "{:?}", parsed.notes);
        let github = &parsed.found[0];
        assert_eq!(github.origin, "~/proj/.vscode/mcp.json (workspace)");
        let Spec::Local { env, .. } = &github.spec else {
            panic!()
        };
        assert_eq!(env[0].value, "${GITHUB_TOKEN}");
        assert_eq!(github.fills[0].var, "GITHUB_TOKEN");
        assert!(github.fills[0].why.contains("GitHub PAT"));
        let Spec::Remote { headers, .. } = &parsed.found[1].spec else {
            panic!()
        };
        assert_eq!(headers[0].value, "${HOME}");
        assert!(
            parsed.notes[0].contains("not imported: `picker`"),
            "{:?}",
            parsed.notes
        );
    }
}
