//! Clients' variable syntaxes, translated into mcpgw's (`${VAR}`, `${VAR:-default}`), or
//! refused: a reference mcpgw cannot resolve is not imported as one that means something else.

use std::collections::BTreeMap;
use std::path::Path;

use mcpgw::config::is_env_name;

/// How a client writes references in its values.
pub enum Dialect<'d> {
    /// Claude Code: `${VAR}` and `${VAR:-default}`, mcpgw's own syntax.
    Shell,
    /// Claude Desktop and Codex: no references; values are literal.
    Literal,
    /// VS Code and Cursor: `${env:VAR}`, `${input:id}` (VS Code's prompted values),
    /// `${workspaceFolder}`, `${workspaceFolderBasename}`, `${userHome}`, `${pathSeparator}`.
    /// Anything else is refused, a bare `${NAME}` too: to them it is text.
    Editor {
        /// The folder `${workspaceFolder}` stands for: a project file's project; none for a
        /// user-level file (the gateway serves every workspace, there is no one folder).
        workspace: Option<&'d Path>,
        /// VS Code's `inputs`: id → description.
        inputs: &'d BTreeMap<String, String>,
    },
}

/// A variable the user must give a value in the env file, because the client asked for it
/// each time (a VS Code input) and the gateway cannot ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    pub var: String,
    pub why: String,
}

/// `value` in mcpgw's syntax, the inputs it needs added to `fills`; or why it cannot be.
pub fn translate(
    value: &str,
    dialect: &Dialect<'_>,
    fills: &mut Vec<Fill>,
) -> Result<String, String> {
    match dialect {
        Dialect::Literal if value.contains("${") => Err(
            "a value holds `${`, which mcpgw would take as a variable (this client does not)"
                .into(),
        ),
        Dialect::Literal => Ok(value.to_owned()),
        Dialect::Shell => {
            for body in references(value)? {
                let name = body.split_once(":-").map_or(body, |(name, _)| name);
                if variable(name).is_none()
                    || body.split_once(":-").is_some_and(|(_, d)| d.contains("${"))
                {
                    return Err(format!(
                        "{} is not a variable mcpgw can expand",
                        shown(body)
                    ));
                }
            }
            Ok(value.to_owned())
        }
        Dialect::Editor { workspace, inputs } => {
            let mut out = String::with_capacity(value.len());
            let mut rest = value;
            while let Some(at) = rest.find("${") {
                out.push_str(&rest[..at]);
                let Some(len) = rest[at..].find('}') else {
                    return Err("a value has an unterminated `${`".into());
                };
                let body = &rest[at + 2..at + len];
                out.push_str(&editor_variable(body, *workspace, inputs, fills)?);
                rest = &rest[at + len + 1..];
            }
            out.push_str(rest);
            Ok(out)
        }
    }
}

fn editor_variable(
    body: &str,
    workspace: Option<&Path>,
    inputs: &BTreeMap<String, String>,
    fills: &mut Vec<Fill>,
) -> Result<String, String> {
    if let Some(name) = body.strip_prefix("env:") {
        return match variable(name) {
            Some(name) => Ok(format!("${{{name}}}")),
            None => Err(format!(
                "{} names no variable mcpgw can expand",
                shown(body)
            )),
        };
    }
    if let Some(id) = body.strip_prefix("input:") {
        let var = env_name(id);
        let why = match inputs.get(id) {
            Some(description) if !description.is_empty() => {
                format!("VS Code asked for input `{id}` ({description})")
            }
            _ => format!("VS Code asked for input `{id}`"),
        };
        if fills.iter().all(|f| f.var != var) {
            fills.push(Fill {
                var: var.clone(),
                why,
            });
        }
        return Ok(format!("${{{var}}}"));
    }
    match (body, workspace) {
        ("workspaceFolder", Some(workspace)) => Ok(workspace.display().to_string()),
        ("workspaceFolderBasename", Some(workspace)) => Ok(workspace
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()),
        ("workspaceFolder" | "workspaceFolderBasename", None) => Err(format!(
            "`${{{body}}}` of a user-level server names whichever workspace is open, and the \
             gateway serves them all"
        )),
        (body, _) => other_variable(body),
    }
}

fn other_variable(body: &str) -> Result<String, String> {
    match body {
        "userHome" => Ok("${HOME}".into()),
        "pathSeparator" | "/" => Ok("/".into()),
        // Not a variable to VS Code or Cursor (theirs is `${env:NAME}`): they pass it on as
        // text, and mcpgw would expand it, giving the server what the client never did.
        name if is_env_name(name) => {
            let meant = match plain(name) {
                true => format!("`${{env:{name}}}`"),
                false => "`${env:NAME}`".to_owned(),
            };
            Err(format!(
                "{} is text to VS Code and Cursor, which expand only {meant}, and mcpgw would \
                 expand it: write {meant} in the client's config if the variable is meant",
                shown(body)
            ))
        }
        _ => Err(format!(
            "{} is resolved by the editor, which mcpgw cannot do",
            shown(body)
        )),
    }
}

/// `${body}` for a message, when what it holds is made of names (see [`plain`]); else only
/// described: a value pasted where a name belongs may be a secret.
fn shown(body: &str) -> String {
    match body.split(':').all(plain) {
        true => format!("`${{{body}}}`"),
        false => "a `${…}` (what it holds is not shown: it is no name)".to_owned(),
    }
}

/// Whether `word` may be shown: a name (letters, digits, `_`, `-`, `.`, at most 64), no token.
fn plain(word: &str) -> bool {
    word.len() <= 64
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        && !super::secrets::looks_like_token(word)
}

/// `name` when it can stand in `${…}`: a variable name that is not a token pasted in place
/// of one (a name that looks like a token and is not written in capitals, as variables
/// are). `None` otherwise, and then no message may show it.
pub fn variable(name: &str) -> Option<&str> {
    let pasted =
        super::secrets::looks_like_token(name) && name.chars().any(|c| c.is_ascii_lowercase());
    (is_env_name(name) && !pasted).then_some(name)
}

/// The bodies of the `${…}` references in `value`.
fn references(value: &str) -> Result<Vec<&str>, String> {
    let mut bodies = Vec::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        let Some(len) = rest[at..].find('}') else {
            return Err("a value has an unterminated `${`".into());
        };
        bodies.push(&rest[at + 2..at + len]);
        rest = &rest[at + len + 1..];
    }
    Ok(bodies)
}

/// An environment variable name made of `text`: upper case, `_` for anything else, not
/// starting with a digit.
pub fn env_name(text: &str) -> String {
    let mut name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    while name.contains("__") {
        name = name.replace("__", "_");
    }
    let name = name.trim_matches('_').to_owned();
    match name.chars().next() {
        None => "MCP_VALUE".into(),
        Some(c) if c.is_ascii_digit() => format!("MCP_{name}"),
        Some(_) => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn editor(value: &str) -> (Result<String, String>, Vec<Fill>) {
        let inputs = BTreeMap::from([("gh-token".to_string(), "GitHub PAT".to_string())]);
        let dialect = Dialect::Editor {
            workspace: Some(Path::new("/work/proj")),
            inputs: &inputs,
        };
        let mut fills = Vec::new();
        (translate(value, &dialect, &mut fills), fills)
    }

    #[test]
    fn editor_variables_become_mcpgw_ones() {
        assert_eq!(editor("${env:HOME}/x").0.unwrap(), "${HOME}/x");
        assert_eq!(
            editor("${workspaceFolder}/db ${workspaceFolderBasename}")
                .0
                .unwrap(),
            "/work/proj/db proj"
        );
        assert_eq!(editor("${userHome}${/}a").0.unwrap(), "${HOME}/a");
        let (value, fills) = editor("Bearer ${input:gh-token}");
        assert_eq!(value.unwrap(), "Bearer ${GH_TOKEN}");
        assert_eq!(
            fills,
            [Fill {
                var: "GH_TOKEN".into(),
                why: "VS Code asked for input `gh-token` (GitHub PAT)".into()
            }]
        );
        assert!(editor("${command:pick}").0.is_err());
        assert!(editor("${config:x.y}").0.is_err());
        assert!(editor("${env:}").0.is_err());
    }

    /// VS Code and Cursor pass a bare `${NAME}` on as text: imported as a variable, mcpgw
    /// would put something in its place that the client never did.
    #[test]
    fn a_bare_name_is_no_editor_variable() {
        let error = editor("a ${API_HOST} b").0.unwrap_err();
        assert!(
            error.contains("`${API_HOST}`") && error.contains("`${env:API_HOST}`"),
            "{error}"
        );
    }

    /// What stands where a variable's name belongs may be a secret pasted there: a message
    /// shows it only when it is a name.
    #[test]
    fn messages_show_names_only() {
        let token = "ghp_0123456789abcdefghijABCDEFGHIJ";
        for value in [
            format!("${{env:{token}}}"),
            format!("${{{token} x}}"),
            format!("${{command:{token}}}"),
        ] {
            let error = editor(&value).0.unwrap_err();
            assert!(!error.contains(token), "{error}");
        }
        for value in [format!("${{{token}!}}"), format!("${{{token}}}")] {
            let shell = translate(&value, &Dialect::Shell, &mut Vec::new());
            assert!(!shell.unwrap_err().contains(token));
        }
        assert!(
            editor("${command:pickFile}")
                .0
                .unwrap_err()
                .contains("command:pickFile")
        );
    }

    #[test]
    fn shell_and_literal_values() {
        let mut fills = Vec::new();
        let shell = |v: &str| translate(v, &Dialect::Shell, &mut Vec::new());
        assert_eq!(shell("a${B}c${D:-e f}").unwrap(), "a${B}c${D:-e f}");
        assert!(shell("${A-b}").is_err());
        assert!(shell("${A:-${B}}").is_err());
        assert!(shell("${A").is_err());
        assert_eq!(
            translate("$A", &Dialect::Literal, &mut fills).unwrap(),
            "$A"
        );
        assert!(translate("${A}", &Dialect::Literal, &mut fills).is_err());
    }

    #[test]
    fn names_for_variables() {
        assert_eq!(env_name("github"), "GITHUB");
        assert_eq!(env_name("my-server.api key"), "MY_SERVER_API_KEY");
        assert_eq!(env_name("1password"), "MCP_1PASSWORD");
        assert_eq!(env_name("--"), "MCP_VALUE");
    }
}
