//! Who may talk to the HTTP listener, decided per request against the current config: the
//! `Host` (against DNS rebinding), the `Origin` (against cross-site browser requests) and the
//! bearer token, which also picks the caller's role.
//!
//! Browsers are served with CORS: a preflight from an allowed Origin is answered here (it
//! carries no token), and responses to allowed Origins say so.
//!
//! This is the only place that reads `Authorization`. Tokens are compared in constant time and
//! never logged or echoed.

use std::net::{IpAddr, SocketAddr};

use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, AUTHORIZATION, HOST, ORIGIN, VARY,
    WWW_AUTHENTICATE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::config::HttpConfig;
use crate::gateway::ClientIdentity;

/// An admitted request's caller, put in the request's extensions for the handlers.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Admitted {
    /// The role of the caller's token; `None` = the default role.
    pub role: Option<String>,
    /// Who the caller is, for per-client instances of clients without a session: a keyed
    /// hash of its token (never the token). Tokenless callers (any local user) have none:
    /// each of their requests is a client of its own.
    pub identity: Option<ClientIdentity>,
}

/// The identity of the caller presenting `token`. Keyed per daemon, so the number says
/// nothing about the token outside this process.
fn identity(token: &str) -> ClientIdentity {
    use std::hash::{BuildHasher, Hasher};
    static KEY: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = KEY.get_or_init(Default::default).build_hasher();
    hasher.write(token.as_bytes());
    ClientIdentity(hasher.finish())
}

/// A request the guard lets through.
#[derive(Debug, PartialEq)]
pub(super) enum Admission {
    /// For the handlers, as this caller.
    Admitted(Admitted),
    /// A CORS preflight from an allowed Origin: answered by the guard itself.
    Preflight,
}

/// Why a request is refused; each becomes its HTTP status.
#[derive(Debug, PartialEq)]
pub(super) enum Refusal {
    /// The `Host` header is missing or malformed.
    MalformedHost,
    /// The `Host` names something else than this listener (DNS rebinding).
    Host,
    /// A browser `Origin` that is not allowed.
    Origin,
    /// No valid bearer token; `presented` if one was sent.
    Unauthorized { presented: bool },
    /// The config no longer has an `http` section.
    Disabled,
}

impl Refusal {
    /// Whether the request's `Origin` (if any) was found allowed before this refusal.
    pub(super) fn origin_allowed(&self) -> bool {
        matches!(self, Refusal::Unauthorized { .. })
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::MalformedHost => (
                StatusCode::BAD_REQUEST,
                "Bad Request: missing or malformed Host header",
            )
                .into_response(),
            Refusal::Host => (
                StatusCode::FORBIDDEN,
                "Forbidden: Host header is not allowed",
            )
                .into_response(),
            Refusal::Origin => (
                StatusCode::FORBIDDEN,
                "Forbidden: Origin header is not allowed",
            )
                .into_response(),
            Refusal::Unauthorized { presented } => {
                // RFC 6750 §3: name the error only when a token was presented.
                let challenge = if presented {
                    "Bearer realm=\"mcpgw\", error=\"invalid_token\""
                } else {
                    "Bearer realm=\"mcpgw\""
                };
                let mut response = (
                    StatusCode::UNAUTHORIZED,
                    "Unauthorized: send `Authorization: Bearer <token>` with a token from the \
                     gateway config",
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
                response
            }
            Refusal::Disabled => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable: HTTP is disabled in the gateway config (restart mcpgwd to \
                 close this listener)",
            )
                .into_response(),
        }
    }
}

/// Admits a request or says why not. `bound` is the address the listener actually has (the
/// config's `listen` may have changed since).
pub(super) fn admit(
    http: Option<&HttpConfig>,
    roles_defined: bool,
    bound: SocketAddr,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Admission, Refusal> {
    let http = http.ok_or(Refusal::Disabled)?;
    check_host(http, bound, uri, headers)?;
    check_origin(http, bound, headers)?;
    if method == Method::OPTIONS && headers.contains_key(ORIGIN) {
        return Ok(Admission::Preflight);
    }
    authenticate(http, roles_defined, bound, headers).map(Admission::Admitted)
}

/// Adds the CORS headers of a response to an allowed browser `origin`.
pub(super) fn allow_cors(response: &mut Response, origin: HeaderValue, preflight: bool) {
    let headers = response.headers_mut();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Mcp-Session-Id, Mcp-Protocol-Version, WWW-Authenticate"),
    );
    if preflight {
        headers.insert(
            ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE"),
        );
        headers.insert(
            ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(
                "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, \
                 Last-Event-ID",
            ),
        );
        headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    }
}

/// Loopback names and addresses are always accepted, as are the bound IP itself (an IP literal
/// cannot be rebound) and the configured `allowed_hosts`.
fn check_host(
    http: &HttpConfig,
    bound: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<(), Refusal> {
    let authority = match headers.get(HOST) {
        Some(value) => {
            let text = value.to_str().map_err(|_| Refusal::MalformedHost)?;
            axum::http::uri::Authority::try_from(text).map_err(|_| Refusal::MalformedHost)?
        }
        None => uri.authority().cloned().ok_or(Refusal::MalformedHost)?,
    };
    let host = normalize_host(authority.host());
    let port = authority.port_u16();
    let ip = host.parse::<IpAddr>().ok();
    let allowed = host == "localhost"
        || ip.is_some_and(|ip| ip.is_loopback() || (ip == bound.ip() && !ip.is_unspecified()))
        || http.allowed_hosts.iter().any(|entry| {
            let Ok(entry) = axum::http::uri::Authority::try_from(entry.as_str()) else {
                return normalize_host(entry) == host;
            };
            normalize_host(entry.host()) == host && entry.port_u16().is_none_or(|p| Some(p) == port)
        });
    if allowed {
        Ok(())
    } else {
        tracing::warn!(host = %authority, "refused an HTTP request for a Host that is not allowed");
        Err(Refusal::Host)
    }
}

/// A request without `Origin` (not from a browser) passes; one with it must be the listener's
/// own origin (a loopback name or the bound IP, with the bound port: what a rebinding attacker's
/// page can never send) or be allowed in the config.
fn check_origin(http: &HttpConfig, bound: SocketAddr, headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(value) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = value.to_str().ok().and_then(OriginHeader::parse);
    let own = |origin: &OriginHeader| match origin {
        OriginHeader::Tuple { scheme, host, port } => {
            let ip = host.parse::<IpAddr>().ok();
            scheme == "http"
                && *port == Some(bound.port())
                && (host == "localhost"
                    || ip.is_some_and(|ip| {
                        ip.is_loopback() || (ip == bound.ip() && !ip.is_unspecified())
                    }))
        }
        OriginHeader::Null => false,
    };
    let allowed = origin.as_ref().is_some_and(|origin| {
        own(origin)
            || http
                .allowed_origins
                .iter()
                .filter_map(|entry| AllowedOrigin::parse(entry))
                .any(|entry| entry.matches(origin))
    });
    if allowed {
        Ok(())
    } else {
        tracing::warn!(origin = ?value, "refused an HTTP request from an Origin that is not allowed");
        Err(Refusal::Origin)
    }
}

/// The caller's role from its bearer token. Without tokens in the config everyone gets the
/// `default` role (every tool when no roles are defined), but only on a loopback listener: a
/// reload cannot open a public one. Loopback is every local user's, so an anonymous caller is
/// never the role-less session a token without a role (or the local socket) gives.
fn authenticate(
    http: &HttpConfig,
    roles_defined: bool,
    bound: SocketAddr,
    headers: &HeaderMap,
) -> Result<Admitted, Refusal> {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    if http.tokens.is_empty() {
        if bound.ip().is_loopback() {
            let role = roles_defined.then(|| crate::config::DEFAULT_ROLE.to_string());
            return Ok(Admitted {
                role,
                identity: None,
            });
        }
        tracing::warn!(
            "refused an HTTP request: the config has no usable token and {bound} is not loopback"
        );
        return Err(Refusal::Unauthorized {
            presented: presented.is_some(),
        });
    }
    let Some(presented) = presented else {
        return Err(Refusal::Unauthorized { presented: false });
    };
    // Compare with every token, so the time taken does not say which one (or whether any) matched.
    let mut found = None;
    for token in &http.tokens {
        if constant_time_eq(token.token.as_bytes(), presented.as_bytes()) {
            found = Some(token);
        }
    }
    match found {
        Some(token) => Ok(Admitted {
            role: token.role.clone(),
            identity: Some(identity(&token.token)),
        }),
        None => Err(Refusal::Unauthorized { presented: true }),
    }
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

fn normalize_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// An `Origin` header value: `null` or (scheme, host, port with the scheme's default filled in).
#[derive(Debug, PartialEq)]
enum OriginHeader {
    Null,
    Tuple {
        scheme: String,
        host: String,
        port: Option<u16>,
    },
}

impl OriginHeader {
    fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("null") {
            return Some(OriginHeader::Null);
        }
        let uri = Uri::try_from(value).ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let authority = uri.authority()?;
        let port = authority.port_u16().or_else(|| default_port(&scheme));
        Some(OriginHeader::Tuple {
            host: normalize_host(authority.host()),
            scheme,
            port,
        })
    }
}

/// An `allowed_origins` entry: like an origin, with `:*` for any port. An entry without a port
/// means the scheme's default port (RFC 6454), as the browser would send it.
struct AllowedOrigin {
    origin: OriginHeader,
    any_port: bool,
}

impl AllowedOrigin {
    fn parse(entry: &str) -> Option<Self> {
        let entry = entry.trim();
        match entry.strip_suffix(":*") {
            Some(base) => Some(AllowedOrigin {
                origin: OriginHeader::parse(base)?,
                any_port: true,
            }),
            None => Some(AllowedOrigin {
                origin: OriginHeader::parse(entry)?,
                any_port: false,
            }),
        }
    }

    fn matches(&self, origin: &OriginHeader) -> bool {
        match (&self.origin, origin) {
            (OriginHeader::Null, OriginHeader::Null) => true,
            (
                OriginHeader::Tuple { scheme, host, port },
                OriginHeader::Tuple {
                    scheme: s,
                    host: h,
                    port: p,
                },
            ) => scheme == s && host == h && (self.any_port || port == p),
            _ => false,
        }
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::HttpToken;

    fn http(tokens: &[(&str, Option<&str>)]) -> HttpConfig {
        HttpConfig {
            listen: "127.0.0.1:8765".parse().unwrap(),
            tokens: tokens
                .iter()
                .map(|(token, role)| HttpToken {
                    token: token.to_string(),
                    role: role.map(str::to_owned),
                })
                .collect(),
            allowed_origins: vec!["http://localhost:*".into(), "https://app.example".into()],
            allowed_hosts: vec!["my.host".into(), "other.host:9000".into()],
            session_idle_timeout: Duration::from_secs(60),
            max_connections: 256,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(60),
            max_sessions: 1024,
            max_sessions_per_role: 256,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    const LOOPBACK: &str = "127.0.0.1:8765";

    fn admit_with(
        config: &HttpConfig,
        bound: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Admitted, Refusal> {
        let admitted = admit(
            Some(config),
            false,
            bound.parse().unwrap(),
            &Method::POST,
            &Uri::from_static("/mcp"),
            &headers(pairs),
        );
        admitted.map(|admission| match admission {
            Admission::Admitted(caller) => caller,
            Admission::Preflight => panic!("not a preflight"),
        })
    }

    #[test]
    fn hosts() {
        let config = http(&[]);
        for host in [
            "localhost:8765",
            "127.0.0.1:8765",
            "[::1]:8765",
            "LOCALHOST",
            "my.host:1",
        ] {
            assert!(
                admit_with(&config, LOOPBACK, &[("host", host)]).is_ok(),
                "{host}"
            );
        }
        assert!(admit_with(&config, LOOPBACK, &[("host", "other.host:9000")]).is_ok());
        for host in ["evil.example:8765", "other.host:9001", "10.0.0.1:8765"] {
            assert_eq!(
                admit_with(&config, LOOPBACK, &[("host", host)]),
                Err(Refusal::Host),
                "{host}"
            );
        }
        assert_eq!(
            admit_with(&config, LOOPBACK, &[("host", "a b")]),
            Err(Refusal::MalformedHost)
        );
        assert_eq!(
            admit_with(&config, LOOPBACK, &[]),
            Err(Refusal::MalformedHost)
        );
        // The bound IP itself, unless it is the unspecified address.
        let config = http(&[("t", None)]);
        let auth = ("authorization", "Bearer t");
        assert!(admit_with(&config, "10.0.0.1:80", &[("host", "10.0.0.1"), auth]).is_ok());
        assert_eq!(
            admit_with(&config, "0.0.0.0:80", &[("host", "0.0.0.0"), auth]),
            Err(Refusal::Host)
        );
    }

    #[test]
    fn origins() {
        let config = http(&[]);
        let with = |origin| {
            admit_with(
                &config,
                LOOPBACK,
                &[("host", "localhost"), ("origin", origin)],
            )
        };
        for good in [
            "http://localhost:3000",
            "http://localhost",
            "https://app.example",
            "https://app.example:443",
        ] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in [
            "https://localhost:3000",
            "https://app.example:8443",
            "http://evil.example",
            "null",
            "garbage",
        ] {
            assert_eq!(with(bad), Err(Refusal::Origin), "{bad}");
        }
        let mut none_allowed = http(&[]);
        none_allowed.allowed_origins.clear();
        let refused = admit_with(
            &none_allowed,
            LOOPBACK,
            &[("host", "localhost"), ("origin", "http://localhost:1")],
        );
        assert_eq!(refused, Err(Refusal::Origin));
    }

    #[test]
    fn tokens_pick_the_role() {
        let config = http(&[
            ("admin-token", Some("admin")),
            ("ro-token", Some("readonly")),
            ("plain", None),
        ]);
        let role = |auth: &str| {
            admit_with(
                &config,
                LOOPBACK,
                &[("host", "localhost"), ("authorization", auth)],
            )
            .map(|c| c.role)
        };
        assert_eq!(role("Bearer admin-token"), Ok(Some("admin".into())));
        assert_eq!(role("bearer ro-token"), Ok(Some("readonly".into())));
        assert_eq!(role("Bearer plain"), Ok(None));
        assert_eq!(
            role("Bearer admin-token2"),
            Err(Refusal::Unauthorized { presented: true })
        );
        assert_eq!(
            role("Bearer "),
            Err(Refusal::Unauthorized { presented: false })
        );
        assert_eq!(
            role("Basic admin-token"),
            Err(Refusal::Unauthorized { presented: false })
        );
        assert_eq!(
            admit_with(&config, LOOPBACK, &[("host", "localhost")]),
            Err(Refusal::Unauthorized { presented: false })
        );
    }

    #[test]
    fn no_tokens_means_default_role_on_loopback_only() {
        let config = http(&[]);
        let caller = admit_with(&config, LOOPBACK, &[("host", "localhost")]).unwrap();
        assert_eq!(caller.role, None, "no roles defined: every tool");
        // With roles, an anonymous caller is the `default` role, never role-less.
        let admitted = admit(
            Some(&config),
            true,
            LOOPBACK.parse().unwrap(),
            &Method::POST,
            &Uri::from_static("/mcp"),
            &headers(&[("host", "localhost")]),
        );
        let Ok(Admission::Admitted(caller)) = admitted else {
            panic!("{admitted:?}");
        };
        assert_eq!(caller.role.as_deref(), Some("default"));
        let public = admit_with(&config, "0.0.0.0:8765", &[("host", "localhost")]);
        assert_eq!(public, Err(Refusal::Unauthorized { presented: false }));
        let gone = admit(
            None,
            false,
            LOOPBACK.parse().unwrap(),
            &Method::POST,
            &Uri::from_static("/"),
            &headers(&[]),
        );
        assert_eq!(gone, Err(Refusal::Disabled));
    }

    #[test]
    fn preflights_need_an_allowed_origin_and_no_token() {
        let config = http(&[("t", None)]);
        let preflight = |pairs: &[(&str, &str)]| {
            let bound = LOOPBACK.parse().unwrap();
            let uri = Uri::from_static("/mcp");
            admit(
                Some(&config),
                false,
                bound,
                &Method::OPTIONS,
                &uri,
                &headers(pairs),
            )
        };
        let from = |origin| preflight(&[("host", "localhost"), ("origin", origin)]);
        assert_eq!(from("http://localhost:5173"), Ok(Admission::Preflight));
        assert_eq!(from("http://evil.example"), Err(Refusal::Origin));
        let no_origin = preflight(&[("host", "localhost")]);
        assert_eq!(no_origin, Err(Refusal::Unauthorized { presented: false }));
    }

    #[test]
    fn refusals_have_their_status() {
        let unauthorized = Refusal::Unauthorized { presented: false }.into_response();
        assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert!(
            unauthorized.headers()[WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        assert_eq!(
            Refusal::Origin.into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            Refusal::Host.into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            Refusal::MalformedHost.into_response().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
