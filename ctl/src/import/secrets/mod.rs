//! Which literal values of an imported server are secrets, and moving them into the env file:
//! the YAML gets `${VAR}`, the env file `VAR="value"`, and nothing that prints ever sees the
//! value.
//!
//! The rule errs on the side of moving (a moved value that was not secret costs nothing but a
//! line in the env file; a secret left in gateway.yaml is a leak). Secret is
//! - an `env` or header value whose name contains TOKEN, KEY, SECRET, PASS (PASSWORD,
//!   PASSWD, PASSPHRASE), PWD, DSN, AUTH (so Authorization), CREDENTIAL, COOKIE, SESSION or
//!   PRIVATE (any case): the whole value (a header's `Bearer`/`Basic`/`Token` scheme stays);
//! - the value of an argument `--NAME=value`, `NAME=value` (`-e API_KEY=…`) or `Name: value`
//!   (`--header "X-Api-Key: …"`), or the argument after a flag `--NAME`, whose name is such;
//! - in any other value or argument: whatever looks like a token (a known prefix: `ghp_`,
//!   `github_pat_`, `sk-`, `xoxb-`, `glpat-`, `AKIA`, `AIza`, `eyJ` …; or 24+ characters of
//!   letters, digits and `-_.=+` with both letters and digits), wherever it stands (in quotes,
//!   in JSON, after a `:`), and in a URL (`url`, or one
//!   in a value or argument: `DATABASE_URL=postgres://…`) its password, a user name or path
//!   segment that looks like a token (`https://ghp_…@github.com`, Zapier's
//!   `/api/mcp/s/<token>/mcp`: mcpgw itself treats URL paths as secret, see `redact_url`),
//!   and a query or fragment value whose name is such or that looks like a token;
//! - every value a client read from an env file (`envFile`): that is why it was in one.
//!
//! Only literal text moves: a `${VAR}` stays where it is, and the literal pieces around it
//! that are secret move on their own (`postgres://u:${PW}@…` is left as it is;
//! `postgres://u:pw@${HOST}/db` becomes `postgres://u:${X}@${HOST}/db`).

mod mover;
mod stash;
mod url;

pub use stash::{Stash, referenced};

use super::Spec;
use super::vars::env_name;
use mover::Mover;

const SECRET_WORDS: &[&str] = &[
    "TOKEN",
    "KEY",
    "SECRET",
    // PASSWORD, PASSWD, PASSPHRASE, and the PASS of a DB_PASS.
    "PASS",
    "PWD",
    "DSN",
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

/// Moves the secrets of server `server`'s spec into `stash`; returns how many values moved.
pub fn extract(server: &str, spec: &mut Spec, stash: &mut Stash) -> usize {
    let mut mover = Mover::new(server, stash);
    match spec {
        Spec::Local { args, env, .. } => {
            for pair in env.iter_mut() {
                pair.value = mover.named(&pair.key, &pair.value, pair.secret);
            }
            let mut secret_flag: Option<String> = None;
            for (i, arg) in args.iter_mut().enumerate() {
                let after = secret_flag.take();
                if arg.starts_with('-') && !arg.contains('=') {
                    let name = arg.trim_start_matches('-');
                    secret_flag = secret_name(name).then(|| name.to_owned());
                    continue;
                }
                *arg = match (after, header_like(arg)) {
                    (Some(flag), _) => mover.secret(&flag, arg),
                    (None, Some((name, value))) if secret_name(name) => {
                        let at = arg.len() - value.len();
                        format!("{}{}", &arg[..at], mover.credential(name, value))
                    }
                    _ => mover.scan(&format!("arg{}", i + 1), arg),
                };
            }
        }
        Spec::Remote { url, headers, .. } => {
            *url = mover.scan("url", url);
            for pair in headers.iter_mut() {
                pair.value = match pair.secret || secret_name(&pair.key) {
                    true => mover.credential(&pair.key, &pair.value),
                    false => mover.scan(&pair.key, &pair.value),
                };
            }
        }
    }
    mover.moved
}

/// `Name: value` (a header as `--header` takes it): the name and the value after the blanks.
fn header_like(arg: &str) -> Option<(&str, &str)> {
    let (name, value) = arg.split_once(':')?;
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let value = value.trim_start_matches([' ', '\t']);
    // `https://…` is a URL, not a header named https.
    (name_ok && !value.starts_with("//")).then_some((name, value))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::Pair;

    const GH: &str = "ghp_0123456789abcdefghijABCDEFGHIJ";
    const ZAPIER: &str = "MzE0ZjQ1YjgtNTk2Zi00ZDU3LWI3OTItYzQ2ZGFlNDJhZTc5OjE2ZGE1";

    #[test]
    fn names_and_values_that_are_secrets() {
        for name in [
            "GITHUB_TOKEN",
            "api_key",
            "X-Api-Key",
            "Authorization",
            "DB_PASSWORD",
            "DB_PASS",
            "MYSQL_PWD",
            "SENTRY_DSN",
            "session",
        ] {
            assert!(secret_name(name), "{name}");
        }
        for name in [
            "PATH",
            "PORT",
            "HOST",
            "LOG_LEVEL",
            "X-Team",
            "DATABASE_URL",
        ] {
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

    fn local(args: &[&str], env: &[(&str, &str)]) -> Spec {
        Spec::Local {
            command: "npx".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: env
                .iter()
                .map(|(k, v)| Pair::new(k.to_string(), v.to_string()))
                .collect(),
            cwd: None,
        }
    }

    /// The spec's args and env values after extraction, and the variables added.
    fn extracted(
        server: &str,
        mut spec: Spec,
    ) -> (Vec<String>, Vec<String>, Vec<(String, String)>) {
        let mut stash = Stash::default();
        extract(server, &mut spec, &mut stash);
        let Spec::Local { args, env, .. } = spec else {
            panic!()
        };
        let env = env.into_iter().map(|p| p.value).collect();
        (args, env, stash.added)
    }

    #[test]
    fn local_secrets_move_and_references_stay() {
        let mut spec = local(
            &[
                "-y",
                "server",
                "--api-key",
                "k3y-value",
                "--token=t0ken",
                GH,
                "postgres://user:pa55@db:5432/x?sslmode=require",
                "--verbose",
                "plain",
            ],
            &[
                ("GITHUB_TOKEN", "t"),
                ("LOG", "debug"),
                ("OTHER_TOKEN", "${FROM_ENV}"),
            ],
        );
        if let Spec::Local { env, .. } = &mut spec {
            env.push(Pair {
                key: "FROM_FILE".into(),
                value: "v".into(),
                secret: true,
            });
        }
        let mut stash = Stash::default();
        assert_eq!(extract("github", &mut spec.clone(), &mut stash), 6);
        let (args, env, added) = extracted("github", spec);
        assert_eq!(
            args,
            [
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
        assert_eq!(
            env,
            [
                "${GITHUB_TOKEN}",
                "debug",
                "${FROM_ENV}",
                "${GITHUB_FROM_FILE}"
            ]
        );
        let names: Vec<_> = added.iter().map(|(k, _)| k.as_str()).collect();
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

    /// The cases a name alone does not give away: a URL in an env value, `NAME=value`
    /// arguments, a header passed as an argument, a token as a URL's user or path segment,
    /// and literal secrets beside a `${…}`.
    #[test]
    fn secrets_inside_urls_assignments_and_mixed_values() {
        let (args, env, added) = extracted(
            "db",
            local(
                &[
                    "run",
                    "-e",
                    "API_KEY=s3cr3t-value",
                    "-e",
                    "MODE=fast",
                    "--header",
                    "Authorization: Bearer abc.def",
                    "--db=postgres://u:pw@${HOST}/db",
                    &format!("https://{GH}@github.com/o/r.git"),
                    &format!("https://mcp.zapier.com/api/mcp/s/{ZAPIER}/mcp"),
                    "--opt",
                    &format!("Bearer {GH}"),
                ],
                &[
                    ("DATABASE_URL", "postgresql://admin:hunter2@db/prod"),
                    ("DB_PASS", "pre${SUFFIX}post"),
                    ("PLAIN_URL", "https://example.com/docs/page?lang=en"),
                ],
            ),
        );
        assert_eq!(
            args,
            [
                "run",
                "-e",
                "API_KEY=${DB_API_KEY}",
                "-e",
                "MODE=fast",
                "--header",
                "Authorization: Bearer ${DB_AUTHORIZATION}",
                "--db=postgres://u:${DB_PASSWORD_2}@${HOST}/db",
                "https://${DB_URL_TOKEN}@github.com/o/r.git",
                "https://mcp.zapier.com/api/mcp/s/${DB_URL_TOKEN_2}/mcp",
                "--opt",
                "Bearer ${DB_ARG12}",
            ]
        );
        assert_eq!(
            env,
            [
                "postgresql://admin:${DB_PASSWORD}@db/prod",
                "${DB_PASS}${SUFFIX}${DB_PASS_2}",
                "https://example.com/docs/page?lang=en",
            ]
        );
        let values: Vec<_> = added.iter().map(|(_, v)| v.as_str()).collect();
        assert_eq!(
            values,
            [
                "hunter2",
                "pre",
                "post",
                "s3cr3t-value",
                "abc.def",
                "pw",
                GH,
                ZAPIER,
                GH
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
                Pair::new("X-Forwarded".into(), format!("for {GH}")),
            ],
        };
        let mut stash = Stash::new(
            [("TRACKER_API_KEY".to_string(), "abc123".to_string())].into(),
            Default::default(),
        );
        assert_eq!(extract("tracker", &mut spec, &mut stash), 3);
        let Spec::Remote { url, headers, .. } = &spec else {
            panic!()
        };
        assert_eq!(
            url,
            "https://api.example.com/mcp?team=core&api_key=${TRACKER_API_KEY}"
        );
        assert_eq!(headers[0].value, "Bearer ${TRACKER_AUTHORIZATION}");
        assert_eq!(headers[1].value, "core");
        assert_eq!(headers[2].value, "for ${TRACKER_X_FORWARDED}");
        // The existing variable with the same value is reused, not added again.
        let names: Vec<_> = stash.added.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["TRACKER_AUTHORIZATION", "TRACKER_X_FORWARDED"]);
    }
}
