//! Which literal values of an imported server are secrets, and moving them into the env file:
//! the YAML gets `${VAR}`, the env file `VAR="value"`, and nothing that prints ever sees the
//! value.
//!
//! The rule errs on the side of moving (a moved value that was not secret costs nothing but a
//! line in the env file; a secret left in gateway.yaml is a leak). A literal value is a secret
//! when it is
//! - an `env` value or header value whose name contains TOKEN, KEY, SECRET, PASSWORD, PASSWD,
//!   PASSPHRASE, AUTH (so Authorization), CREDENTIAL, COOKIE, SESSION or PRIVATE (any case);
//! - any `env` or header value, or argument, that looks like a token: a known prefix (`ghp_`,
//!   `github_pat_`, `sk-`, `xoxb-`, `glpat-`, `AKIA`, `AIza`, `eyJ` …) or 24+ characters of
//!   letters, digits and `-_.=+` with both letters and digits;
//! - an argument after a flag whose name is as above (`--api-key X`), or the value of such a
//!   flag (`--token=X`);
//! - the password of a URL (`scheme://user:pass@host`, in `url` or an argument), or the value
//!   of a query parameter whose name is as above;
//! - every value a client read from an env file (`envFile`): that is why it was in one.
//!
//! A value that already is (or holds) a `${VAR}` reference is left as it is.

use std::collections::{BTreeMap, BTreeSet};

use super::Spec;
use super::vars::env_name;

const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "KEY",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "AUTH",
    "CREDENTIAL",
    "COOKIE",
    "SESSION",
    "PRIVATE",
];

const TOKEN_PREFIXES: &[&str] = &[
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "sk-",
    "sk_live_",
    "sk_test_",
    "rk_live_",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxs-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "ya29.",
    "eyJ",
    "npm_",
    "pypi-",
    "shpat_",
    "hf_",
    "dop_v1_",
    "lin_api_",
    "ntn_",
    "secret_",
];

/// Whether a variable, header, flag or parameter of this name holds a secret.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// Whether a value looks like a token whatever it is called.
pub fn looks_like_token(value: &str) -> bool {
    if TOKEN_PREFIXES
        .iter()
        .any(|p| value.starts_with(p) && value.len() > p.len() + 8)
    {
        return true;
    }
    value.len() >= 24
        && !value.starts_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.=+".contains(c))
        && value.chars().any(|c| c.is_ascii_digit())
        && value.chars().any(|c| c.is_ascii_alphabetic())
}

/// The env file's variables: those it has (a secret already there under that name and value
/// is reused), those reserved for values the user fills in, and those this import adds.
///
/// A new variable is never given a name something already means: the env file's variables
/// come first in `${NAME}`'s lookup, before the daemon's environment, so one named like a
/// variable a server of gateway.yaml (or another imported server) takes from the environment
/// would silently hand that server this secret instead. `taken` holds those names.
#[derive(Default)]
pub struct Stash {
    existing: BTreeMap<String, String>,
    reserved: BTreeSet<String>,
    taken: BTreeSet<String>,
    /// Added by this import, in order.
    pub added: Vec<(String, String)>,
}

impl Stash {
    /// `existing`: the env file's variables; `taken`: names referenced or set elsewhere (see
    /// [`Stash`]), which a new variable does not get.
    pub fn new(existing: BTreeMap<String, String>, taken: BTreeSet<String>) -> Self {
        Stash {
            existing,
            taken,
            ..Stash::default()
        }
    }

    /// Keeps `name` for a value the user fills in (not given to a secret).
    pub fn reserve(&mut self, name: &str) {
        self.reserved.insert(name.to_owned());
    }

    /// Whether the env file sets `name` already.
    pub fn has(&self, name: &str) -> bool {
        self.existing.contains_key(name)
    }

    /// The variable holding `value`: `wanted` (or `wanted_2`, …) — the same one again for the
    /// same value.
    pub fn put(&mut self, wanted: &str, value: &str) -> String {
        let base = env_name(wanted);
        for n in 1.. {
            let name = match n {
                1 => base.clone(),
                n => format!("{base}_{n}"),
            };
            let current = self
                .existing
                .get(&name)
                .or_else(|| self.added.iter().find(|(k, _)| *k == name).map(|(_, v)| v));
            match current {
                Some(held) if held == value => return name,
                Some(_) => continue,
                None if self.reserved.contains(&name) || self.taken.contains(&name) => continue,
                None => {
                    self.added.push((name.clone(), value.to_owned()));
                    return name;
                }
            }
        }
        unreachable!("some name is free")
    }
}

/// The names of the `${NAME}` and `${NAME:-…}` references in `text`.
pub fn referenced(text: &str) -> impl Iterator<Item = &str> {
    text.split("${").skip(1).filter_map(|after| {
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        (end > 0).then(|| &after[..end])
    })
}

/// Moves the secrets of server `server`'s spec into `stash`; returns how many values moved.
/// `always` names the env entries that are secrets whatever they look like (from an env file).
pub fn extract(server: &str, spec: &mut Spec, stash: &mut Stash) -> usize {
    let mut moved = 0;
    let mut take = |what: &str, value: &mut String, stash: &mut Stash| {
        let var = stash.put(&prefixed(server, what), value);
        *value = format!("${{{var}}}");
        moved += 1;
    };
    match spec {
        Spec::Local { args, env, .. } => {
            for pair in env.iter_mut() {
                if literal(&pair.value)
                    && (pair.secret || secret_name(&pair.key) || looks_like_token(&pair.value))
                {
                    take(&pair.key, &mut pair.value, stash);
                }
            }
            let mut flag: Option<String> = None;
            for (i, arg) in args.iter_mut().enumerate() {
                let after_flag = flag.take();
                if let Some(name) = arg.strip_prefix("--").or(arg.strip_prefix('-'))
                    && let Some((name, value)) = name.split_once('=')
                {
                    if literal(value) && (secret_name(name) || looks_like_token(value)) {
                        let mut value = value.to_owned();
                        let name = name.to_owned();
                        take(&name, &mut value, stash);
                        *arg = format!("{}={value}", arg.split_once('=').expect("has =").0);
                    }
                    continue;
                }
                if arg.starts_with('-') {
                    flag = Some(arg.trim_start_matches('-').to_owned());
                    continue;
                }
                if !literal(arg) {
                    continue;
                }
                match after_flag {
                    Some(name) if secret_name(&name) => take(&name, arg, stash),
                    _ if looks_like_token(arg) => take(&format!("arg{}", i + 1), arg, stash),
                    _ => {
                        if let Some(url) = url_secrets(arg, &mut |what, value| {
                            let mut value = value.to_owned();
                            take(what, &mut value, stash);
                            value
                        }) {
                            *arg = url;
                        }
                    }
                }
            }
        }
        Spec::Remote { url, headers, .. } => {
            if let Some(redone) = url_secrets(url, &mut |what, value| {
                let mut value = value.to_owned();
                take(what, &mut value, stash);
                value
            }) {
                *url = redone;
            }
            for pair in headers.iter_mut() {
                if !literal(&pair.value)
                    || !(pair.secret || secret_name(&pair.key) || looks_like_token(&pair.value))
                {
                    continue;
                }
                // `Bearer <token>`: the scheme stays readable, the credential moves.
                match pair.value.split_once(' ') {
                    Some((scheme, credential))
                        if ["bearer", "basic", "token"]
                            .contains(&scheme.to_ascii_lowercase().as_str())
                            && !credential.trim().is_empty() =>
                    {
                        let mut credential = credential.trim().to_owned();
                        take(&pair.key, &mut credential, stash);
                        pair.value = format!("{scheme} {credential}");
                    }
                    _ => take(&pair.key, &mut pair.value, stash),
                }
            }
        }
    }
    moved
}

/// `<SERVER>_<WHAT>`, without repeating the server's name when `what` starts with it
/// (`github` + `GITHUB_TOKEN` is `GITHUB_TOKEN`).
fn prefixed(server: &str, what: &str) -> String {
    let (server, what) = (env_name(server), env_name(what));
    if what == server || what.starts_with(&format!("{server}_")) {
        what
    } else {
        format!("{server}_{what}")
    }
}

/// A value with nothing of mcpgw's `${…}` in it, and not empty.
fn literal(value: &str) -> bool {
    !value.is_empty() && !value.contains("${")
}

/// `url` with its password and secret query values replaced by what `take` returns for them;
/// `None` when it has none (or is no URL).
fn url_secrets(url: &str, take: &mut dyn FnMut(&str, &str) -> String) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut changed = false;
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, password)) if literal(password) => {
                changed = true;
                format!("{user}:{}@{host}", take("password", password))
            }
            _ => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|param| match param.split_once('=') {
                    Some((name, value))
                        if literal(value) && (secret_name(name) || looks_like_token(value)) =>
                    {
                        changed = true;
                        format!("{name}={}", take(name, value))
                    }
                    _ => param.to_owned(),
                })
                .collect();
            let fragment = fragment.map(|f| format!("#{f}")).unwrap_or_default();
            format!("{path}?{}{fragment}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    changed.then(|| format!("{scheme}://{authority}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Pair;

    const GH: &str = "ghp_0123456789abcdefghijABCDEFGHIJ";

    #[test]
    fn names_and_values_that_are_secrets() {
        for name in [
            "GITHUB_TOKEN",
            "api_key",
            "X-Api-Key",
            "Authorization",
            "DB_PASSWORD",
            "session",
        ] {
            assert!(secret_name(name), "{name}");
        }
        for name in ["PATH", "PORT", "HOST", "LOG_LEVEL", "X-Team"] {
            assert!(!secret_name(name), "{name}");
        }
        for value in [
            GH,
            "sk-proj-0123456789abcdef",
            "xoxb-1234567890-abcdef",
            "a1b2c3d4e5f6g7h8i9j0k1l2m3",
        ] {
            assert!(looks_like_token(value), "{value}");
        }
        for value in [
            "@modelcontextprotocol/server-github",
            "-y",
            "/home/u/projects/some-long-dir-1",
            "info",
            "ghp_",
            "mcp-server-sqlite-npx-wrapper",
        ] {
            assert!(!looks_like_token(value), "{value}");
        }
    }

    #[test]
    fn local_secrets_move_and_references_stay() {
        let mut spec = Spec::Local {
            command: "npx".into(),
            args: vec![
                "-y".into(),
                "server".into(),
                "--api-key".into(),
                "k3y-value".into(),
                "--token=t0ken".into(),
                GH.into(),
                "postgres://user:pa55@db:5432/x?sslmode=require".into(),
                "--verbose".into(),
                "plain".into(),
            ],
            env: vec![
                Pair::new("GITHUB_TOKEN".into(), "t".into()),
                Pair::new("LOG".into(), "debug".into()),
                Pair::new("OTHER_TOKEN".into(), "${FROM_ENV}".into()),
                Pair {
                    key: "FROM_FILE".into(),
                    value: "v".into(),
                    secret: true,
                },
            ],
            cwd: None,
        };
        let mut stash = Stash::default();
        assert_eq!(extract("github", &mut spec, &mut stash), 6);
        let Spec::Local { args, env, .. } = &spec else {
            panic!()
        };
        assert_eq!(
            args,
            &[
                "-y",
                "server",
                "--api-key",
                "${GITHUB_API_KEY}",
                "--token=${GITHUB_TOKEN_2}",
                "${GITHUB_ARG6}",
                "postgres://user:${GITHUB_PASSWORD}@db:5432/x?sslmode=require",
                "--verbose",
                "plain"
            ]
        );
        let values: Vec<_> = env.iter().map(|p| p.value.as_str()).collect();
        assert_eq!(
            values,
            [
                "${GITHUB_TOKEN}",
                "debug",
                "${FROM_ENV}",
                "${GITHUB_FROM_FILE}"
            ]
        );
        let names: Vec<_> = stash.added.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "GITHUB_TOKEN",
                "GITHUB_FROM_FILE",
                "GITHUB_API_KEY",
                "GITHUB_TOKEN_2",
                "GITHUB_ARG6",
                "GITHUB_PASSWORD"
            ]
        );
    }

    #[test]
    fn remote_secrets_keep_their_scheme() {
        let mut spec = Spec::Remote {
            url: "https://api.example.com/mcp?team=core&api_key=abc123".into(),
            sse: false,
            headers: vec![
                Pair::new("Authorization".into(), format!("Bearer {GH}")),
                Pair::new("X-Team".into(), "core".into()),
            ],
        };
        let mut stash = Stash::new(
            BTreeMap::from([("TRACKER_API_KEY".to_string(), "abc123".to_string())]),
            BTreeSet::new(),
        );
        assert_eq!(extract("tracker", &mut spec, &mut stash), 2);
        let Spec::Remote { url, headers, .. } = &spec else {
            panic!()
        };
        assert_eq!(
            url,
            "https://api.example.com/mcp?team=core&api_key=${TRACKER_API_KEY}"
        );
        assert_eq!(headers[0].value, "Bearer ${TRACKER_AUTHORIZATION}");
        assert_eq!(headers[1].value, "core");
        // The existing variable with the same value is reused, not added again.
        assert_eq!(
            stash.added,
            [("TRACKER_AUTHORIZATION".to_string(), GH.to_string())]
        );
    }

    #[test]
    fn names_are_unique_and_reserved_ones_avoided() {
        let taken = referenced("x: ${B_TOKEN} ${C_KEY:-d} $${D} ${}").map(str::to_owned);
        let mut stash = Stash::new(
            BTreeMap::from([("A_TOKEN".to_string(), "old".to_string())]),
            taken.collect(),
        );
        stash.reserve("A_KEY");
        assert_eq!(stash.put("B_TOKEN", "b"), "B_TOKEN_2");
        assert_eq!(stash.put("C_KEY", "c"), "C_KEY_2");
        assert_eq!(stash.put("D", "d"), "D_2");
        assert_eq!(stash.put("A_TOKEN", "new"), "A_TOKEN_2");
        assert_eq!(stash.put("A_TOKEN", "old"), "A_TOKEN");
        assert_eq!(stash.put("A_TOKEN", "new"), "A_TOKEN_2");
        assert_eq!(stash.put("a key", "x"), "A_KEY_2");
    }
}
