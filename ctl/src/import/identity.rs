//! When two servers are the same server: what `import` skips as there already, and what
//! `connect` takes the gateway to serve in a client's place.
//!
//! Everything that changes what runs, or as whom it acts, counts: the program, its arguments,
//! its environment (names and values) and its directory; or the URL and its headers. Two
//! servers running the same command with different tokens (`gh-personal`, `gh-work`) are two
//! servers: taking one for the other would have `connect` replace the work account by the
//! personal one. Values are compared, never shown (`Debug` lists none).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::Spec;

/// A server as far as sameness goes. Values are as written (`${VAR}` unexpanded) until
/// [`Identity::resolved`] puts in the env file's.
#[derive(Clone, PartialEq, Eq)]
pub enum Identity {
    Local {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<String>,
    },
    Remote {
        url: String,
        /// By lower-case name: HTTP's header names are case-insensitive.
        headers: BTreeMap<String, String>,
    },
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Local { command, env, .. } => f
                .debug_struct("Local")
                .field("command", command)
                .field("env", &env.keys().collect::<Vec<_>>())
                .finish_non_exhaustive(),
            Identity::Remote { headers, .. } => f
                .debug_struct("Remote")
                .field("headers", &headers.keys().collect::<Vec<_>>())
                .finish_non_exhaustive(),
        }
    }
}

impl Identity {
    pub fn of(spec: &Spec) -> Identity {
        match spec {
            Spec::Local {
                command,
                args,
                env,
                cwd,
            } => Identity::Local {
                command: command.clone(),
                args: args.clone(),
                env: env
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
                cwd: cwd.clone(),
            },
            Spec::Remote { url, headers, .. } => Identity::Remote {
                url: url.clone(),
                headers: headers
                    .iter()
                    .map(|p| (p.key.to_ascii_lowercase(), p.value.clone()))
                    .collect(),
            },
        }
    }

    /// A server of gateway.yaml as written there: `command`, `args`, `env`, `cwd` (a relative
    /// one in `config_dir`, as mcpgw runs it) or `url`, `headers`. `None` for neither.
    pub fn written(server: &yaml_serde::Value, config_dir: &Path) -> Option<Identity> {
        let text = |key: &str| server.get(key).and_then(scalar);
        let map = |key: &str, lower: bool| -> BTreeMap<String, String> {
            let Some(entries) = server.get(key).and_then(|m| m.as_mapping()) else {
                return BTreeMap::new();
            };
            entries
                .iter()
                .filter_map(|(k, v)| {
                    let k = k.as_str()?;
                    let k = if lower {
                        k.to_ascii_lowercase()
                    } else {
                        k.to_owned()
                    };
                    Some((k, scalar(v)?))
                })
                .collect()
        };
        match (text("command"), text("url")) {
            (Some(command), _) => Some(Identity::Local {
                command,
                args: server
                    .get("args")
                    .and_then(|a| a.as_sequence())
                    .map(|args| args.iter().filter_map(scalar).collect())
                    .unwrap_or_default(),
                env: map("env", false),
                cwd: text("cwd").map(|cwd| written_dir(&cwd, config_dir)),
            }),
            (None, Some(url)) => Some(Identity::Remote {
                url,
                headers: map("headers", true),
            }),
            (None, None) => None,
        }
    }

    /// With the env file's variables put in (`${NAME}` of a variable the file sets), so that a
    /// server imported before, whose secrets moved there, is the same as it was.
    pub fn resolved(&self, vars: &BTreeMap<String, String>) -> Identity {
        let put = |text: &str| substitute(text, vars);
        let all =
            |map: &BTreeMap<String, String>| map.iter().map(|(k, v)| (k.clone(), put(v))).collect();
        match self {
            Identity::Local {
                command,
                args,
                env,
                cwd,
            } => Identity::Local {
                command: command.clone(),
                args: args.iter().map(|a| put(a)).collect(),
                env: all(env),
                cwd: cwd.as_deref().map(put),
            },
            Identity::Remote { url, headers } => Identity::Remote {
                url: put(url),
                headers: all(headers),
            },
        }
    }

    /// What made two servers the same, for messages.
    pub fn what(&self) -> &'static str {
        match self {
            Identity::Local { .. } => "command, arguments, environment and directory",
            Identity::Remote { .. } => "URL and headers",
        }
    }
}

/// A YAML scalar as the text mcpgw reads it as (`8080` is `"8080"`).
fn scalar(value: &yaml_serde::Value) -> Option<String> {
    match value {
        yaml_serde::Value::String(s) => Some(s.clone()),
        yaml_serde::Value::Number(n) => Some(n.to_string()),
        yaml_serde::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A `cwd:` as written, absolute: `~/…` stays as written (the import writes absolute ones).
fn written_dir(cwd: &str, config_dir: &Path) -> String {
    match Path::new(cwd).is_absolute() || cwd.starts_with('~') || cwd.contains("${") {
        true => cwd.to_owned(),
        false => config_dir
            .join(cwd)
            .components()
            .collect::<std::path::PathBuf>()
            .display()
            .to_string(),
    }
}

/// `text` with each `${NAME}` whose variable `vars` has replaced by its value.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        match after.find('}').map(|end| (&after[..end], end)) {
            Some((name, end)) if vars.contains_key(name) => {
                out.push_str(&vars[name]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Pair;

    fn github(token: &str) -> Spec {
        Spec::Local {
            command: "npx".into(),
            args: vec!["-y".into(), "@modelcontextprotocol/server-github".into()],
            env: vec![Pair::new("GITHUB_TOKEN".into(), token.into())],
            cwd: None,
        }
    }

    #[test]
    fn environment_headers_and_directory_count() {
        assert_eq!(Identity::of(&github("a")), Identity::of(&github("a")));
        assert_ne!(Identity::of(&github("a")), Identity::of(&github("b")));
        let Spec::Local {
            command, args, env, ..
        } = github("a")
        else {
            unreachable!()
        };
        let elsewhere = Spec::Local {
            command,
            args,
            env,
            cwd: Some("/p".into()),
        };
        assert_ne!(Identity::of(&github("a")), Identity::of(&elsewhere));
        let remote = |key: &str, value: &str| Spec::Remote {
            url: "https://x.example/mcp".into(),
            sse: false,
            headers: vec![Pair::new(key.into(), value.into())],
        };
        assert_eq!(
            Identity::of(&remote("Authorization", "Bearer a")),
            Identity::of(&remote("authorization", "Bearer a"))
        );
        assert_ne!(
            Identity::of(&remote("Authorization", "Bearer a")),
            Identity::of(&remote("Authorization", "Bearer b"))
        );
        let shown = format!("{:?}", Identity::of(&github("s3cret")));
        assert!(
            !shown.contains("s3cret") && shown.contains("GITHUB_TOKEN"),
            "{shown}"
        );
    }

    #[test]
    fn as_written_in_gateway_yaml_and_through_the_env_file() {
        let yaml: yaml_serde::Value = yaml_serde::from_str(
            "command: npx\nargs: [-y, \"@modelcontextprotocol/server-github\"]\n\
             env: {GITHUB_TOKEN: \"${GH}\"}\ncwd: ./work\n",
        )
        .unwrap();
        let written = Identity::written(&yaml, Path::new("/g")).unwrap();
        let Identity::Local { cwd, .. } = &written else {
            panic!()
        };
        assert_eq!(cwd.as_deref(), Some("/g/work"));
        let vars = BTreeMap::from([("GH".to_string(), "a".to_string())]);
        let mut imported = github("a");
        if let Spec::Local { cwd, .. } = &mut imported {
            *cwd = Some("/g/work".into());
        }
        assert_eq!(written.resolved(&vars), Identity::of(&imported));
        assert_ne!(written, Identity::of(&imported));
    }

    #[test]
    fn only_the_env_files_variables_are_put_in() {
        let vars = BTreeMap::from([("K".to_string(), "v".to_string())]);
        assert_eq!(substitute("--k=${K}", &vars), "--k=v");
        assert_eq!(substitute("${OTHER}", &vars), "${OTHER}");
        assert_eq!(substitute("${K", &vars), "${K");
    }
}
