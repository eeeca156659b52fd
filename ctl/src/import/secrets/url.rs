//! A URL's secrets: its password; its user name and path segments when they look like tokens
//! (`https://ghp_…@github.com/…`, Zapier's `/api/mcp/s/<token>/mcp`: a URL's path is where
//! many servers take their key, which is why mcpgw's own `redact_url` hides paths); and each
//! query or fragment value secret by its name or look. A `${…}` in it is looked past, never
//! into ([`mask`]): `postgres://u:pw@${HOST}/db` still has its password moved.

use std::ops::Range;

use super::mover::{Mover, mask};
use super::secret_name;

/// What a moved part of a URL is named after when it has no name of its own.
const TOKEN: &str = "url_token";

/// `url` with its secrets moved, when it is a URL (`scheme://…`, the scheme first); `None`
/// when it is not one.
pub fn secrets(url: &str, mover: &mut Mover<'_>) -> Option<String> {
    let masked = mask(url);
    let scheme_end = masked.find("://")?;
    let scheme = &masked[..scheme_end];
    let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !is_scheme {
        return None;
    }
    let start = scheme_end + 3;
    let authority_end = find(&masked, start..url.len(), &['/', '?', '#']);
    let mut out = String::with_capacity(url.len() + 16);
    out.push_str(&url[..start]);
    // `user:password@host`: the host is no secret.
    match masked[start..authority_end].rfind('@').map(|at| start + at) {
        Some(at) => {
            match masked[start..at].find(':').map(|colon| start + colon) {
                Some(colon) => {
                    out.push_str(&mover.tokens(TOKEN, &url[start..colon]));
                    out.push(':');
                    out.push_str(&mover.secret("password", &url[colon + 1..at]));
                }
                None => out.push_str(&mover.tokens(TOKEN, &url[start..at])),
            }
            out.push_str(&url[at..authority_end]);
        }
        None => out.push_str(&url[start..authority_end]),
    }
    let path_end = find(&masked, authority_end..url.len(), &['?', '#']);
    let mut segment = authority_end;
    for slash in (authority_end..path_end).filter(|&i| masked.as_bytes()[i] == b'/') {
        out.push_str(&mover.tokens(TOKEN, &url[segment..slash]));
        out.push('/');
        segment = slash + 1;
    }
    out.push_str(&mover.tokens(TOKEN, &url[segment..path_end]));
    // `?query#fragment`: parameters both (OAuth puts tokens in a fragment).
    let mut at = path_end;
    while at < url.len() {
        let mark = url.as_bytes()[at];
        let end = match mark {
            b'?' => find(&masked, at + 1..url.len(), &['#']),
            _ => url.len(),
        };
        out.push(mark as char);
        out.push_str(&parameters(url, &masked, at + 1..end, mover));
        at = end;
    }
    Some(out)
}

/// `name=value&…` in `url[range]`, each value moved when its name says secret or it looks
/// like a token; a parameter without `=` moved when it looks like one.
fn parameters(url: &str, masked: &str, range: Range<usize>, mover: &mut Mover<'_>) -> String {
    let mut out = String::with_capacity(range.len());
    let mut start = range.start;
    while start <= range.end {
        let end = find(masked, start..range.end, &['&']);
        let param = &url[start..end];
        match masked[start..end].find('=') {
            Some(eq) => {
                let (name, value) = (&param[..eq], &param[eq + 1..]);
                out.push_str(name);
                out.push('=');
                out.push_str(&match secret_name(name) {
                    true => mover.secret(name, value),
                    false => mover.tokens(name, value),
                });
            }
            None => out.push_str(&mover.tokens(TOKEN, param)),
        }
        if end < range.end {
            out.push('&');
        }
        start = end + 1;
    }
    out
}

/// The first of `any` in `masked[range]`, or the range's end.
fn find(masked: &str, range: Range<usize>, any: &[char]) -> usize {
    masked[range.clone()]
        .find(any)
        .map_or(range.end, |i| range.start + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::secrets::Stash;

    fn moved(url: &str) -> (Option<String>, Vec<String>) {
        let mut stash = Stash::default();
        let mut mover = Mover::new("s", &mut stash);
        let done = secrets(url, &mut mover);
        (done, stash.added.into_iter().map(|(_, v)| v).collect())
    }

    #[test]
    fn the_parts_of_a_url_that_are_secret() {
        let token = "ghp_0123456789abcdefghijABCDEF";
        let (done, values) = moved(&format!(
            "https://{token}@github.com/o/r.git?ref=main&access_token=abc#id_token=xyz&k"
        ));
        assert_eq!(
            done.unwrap(),
            "https://${S_URL_TOKEN}@github.com/o/r.git?ref=main&access_token=${S_ACCESS_TOKEN}\
             #id_token=${S_ID_TOKEN}&k"
        );
        assert_eq!(values, [token, "abc", "xyz"]);

        let (done, values) = moved("postgres://app:pa55@${HOST:-a/b@c}:5432/${DB}?x=${Y}");
        assert_eq!(
            done.unwrap(),
            "postgres://app:${S_PASSWORD}@${HOST:-a/b@c}:5432/${DB}?x=${Y}"
        );
        assert_eq!(values, ["pa55"]);

        let (done, values) = moved("https://example.com/a/b/");
        assert_eq!(done.unwrap(), "https://example.com/a/b/");
        assert!(values.is_empty());
        assert_eq!(moved("https://h/?").0.unwrap(), "https://h/?");
        assert_eq!(moved("not a url").0, None);
        assert_eq!(moved("--db=x://y").0, None);
    }
}
