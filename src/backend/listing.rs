//! Asking a server for its lists (tools, prompts, resources, templates), every page.
//!
//! A stdio server is asked through its byte-path [`Link`]: the response is read as written, so
//! each item keeps the members rmcp's types do not know ([`Listed`]). A remote server is asked
//! through rmcp's client, whose typed items have none (rmcp's HTTP client parses before we
//! see a byte). Either way a list is asked only if the server declared its capability, and a
//! declared list the server does not implement is empty.

use rmcp::ErrorData as McpError;
use rmcp::model::{Prompt, Resource, ResourceTemplate, ServerCapabilities, Tool};
use rmcp::service::{Peer, RoleClient, ServiceError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::cache::CachedSchema;
use super::listed::Listed;
use super::upstream::stdio::Link;

/// A server whose list has more pages than this, or more bytes in all, or gives a cursor twice,
/// is taken to be looping on its cursor: listing it fails rather than asking forever.
const MAX_PAGES: usize = 1024;
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;

/// The longest a server may take to answer one page (a start is bounded by `startup_timeout`
/// as a whole too; a re-listing after `list_changed` only by this).
const PAGE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What listing a server's capabilities failed on: the method, and why.
pub(super) struct ListFailed {
    method: &'static str,
    error: ServiceError,
}

impl std::fmt::Display for ListFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.method, self.error)
    }
}

/// The server's lists, each asked only if the server declared its capability. A list the
/// server declared but does not implement (−32601, as Python SDK servers with resources but no
/// template handler answer `resources/templates/list`) is empty, with a warning: the rest of
/// what it offers stays usable.
///
/// `plugin_host`: the server is mcpgw's plugin host, the only one whose `_meta` problems are
/// read ([`problems`]): another server has no say in what status shows.
pub(super) async fn fetch_schema(
    server: &str,
    peer: &Peer<RoleClient>,
    link: Option<&Link>,
    plugin_host: bool,
) -> Result<CachedSchema, ListFailed> {
    let capabilities = peer.peer_info().map(|info| info.capabilities.clone());
    let has = |f: fn(&ServerCapabilities) -> bool| capabilities.as_ref().is_some_and(f);
    let lister = Lister { server, link };
    let (tools, prompts, resources, templates) = tokio::join!(
        lister.list::<Tool>(
            "tools/list",
            "tools",
            has(|c| c.tools.is_some()),
            peer.list_all_tools()
        ),
        lister.list::<Prompt>(
            "prompts/list",
            "prompts",
            has(|c| c.prompts.is_some()),
            peer.list_all_prompts()
        ),
        lister.list::<Resource>(
            "resources/list",
            "resources",
            has(|c| c.resources.is_some()),
            peer.list_all_resources()
        ),
        lister.list::<ResourceTemplate>(
            "resources/templates/list",
            "resourceTemplates",
            has(|c| c.resources.is_some()),
            peer.list_all_resource_templates()
        ),
    );
    Ok(CachedSchema {
        capabilities,
        instructions: peer.peer_info().and_then(|info| info.instructions.clone()),
        tools: tools?,
        prompts: prompts?,
        resources: resources?,
        resource_templates: templates?,
        asks_roots: false,
        problems: if plugin_host {
            problems(peer)
        } else {
            Vec::new()
        },
    })
}

/// The key of `initialize`'s `_meta` under which the plugin host says which modules did not
/// import (`plugin_host.py`).
const PROBLEMS: &str = "mcpgw/problems";

/// At most this many problems of at most this many bytes each are kept.
const MAX_PROBLEMS: usize = 32;
const MAX_PROBLEM_LEN: usize = 1000;

/// What the server says is wrong with it, bounded: strings only, on one line each (no
/// control characters), URLs cut to their origin (an exception's message may quote one with
/// a key in it).
fn problems(peer: &Peer<RoleClient>) -> Vec<String> {
    let info = peer.peer_info();
    let Some(Value::Array(items)) = info
        .as_ref()
        .and_then(|info| info.meta.as_ref())
        .and_then(|meta| meta.get(PROBLEMS))
    else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(Value::as_str)
        .take(MAX_PROBLEMS)
        .map(|problem| {
            // Redacted whole, then cut: a cut inside a URL could leave part of its user info.
            let line: String = crate::config::redact_urls(problem)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            crate::config::cut_at(&line, MAX_PROBLEM_LEN).to_owned()
        })
        .collect()
}

struct Lister<'a> {
    server: &'a str,
    link: Option<&'a Link>,
}

impl Lister<'_> {
    /// One list: not asked unless `declared`; "method not found" is empty. `typed` is rmcp's
    /// way of asking, used (lazily) only without a link.
    async fn list<T: Serialize + DeserializeOwned>(
        &self,
        method: &'static str,
        key: &str,
        declared: bool,
        typed: impl Future<Output = Result<Vec<T>, ServiceError>>,
    ) -> Result<Vec<Listed<T>>, ListFailed> {
        if !declared {
            return Ok(Vec::new());
        }
        let listed = match self.link {
            Some(link) => self.as_written(link, method, key).await,
            None => typed
                .await
                .map(|items| items.into_iter().map(Listed::known).collect()),
        };
        match listed {
            Err(ServiceError::McpError(e))
                if e.code == rmcp::model::ErrorCode::METHOD_NOT_FOUND =>
            {
                tracing::warn!(
                    server = self.server,
                    "{method} is not implemented by the server (-32601), although it declared \
                     the capability: taken as an empty list"
                );
                Ok(Vec::new())
            }
            Err(error) => Err(ListFailed { method, error }),
            Ok(list) => Ok(list),
        }
    }

    /// Every page of `method` through the link, items as written. An item that is not a valid
    /// `T` is left out with a warning (the rest of the list stays usable).
    async fn as_written<T: Serialize + DeserializeOwned>(
        &self,
        link: &Link,
        method: &str,
        key: &str,
    ) -> Result<Vec<Listed<T>>, ServiceError> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut cursors = std::collections::HashSet::new();
        let mut bytes = 0;
        for _ in 0..MAX_PAGES {
            let params = match &cursor {
                Some(cursor) => serde_json::json!({ "cursor": cursor }),
                None => serde_json::json!({}),
            };
            let line = tokio::time::timeout(PAGE_TIMEOUT, link.ask(method, params))
                .await
                .map_err(|_| ServiceError::Timeout {
                    timeout: PAGE_TIMEOUT,
                })?
                .ok_or(ServiceError::TransportClosed)?;
            bytes += line.len();
            if bytes > MAX_LIST_BYTES {
                tracing::warn!(
                    server = self.server,
                    "{method}: the server's list is over {MAX_LIST_BYTES} bytes"
                );
                return Err(ServiceError::UnexpectedResponse);
            }
            let mut page = page_of(&line)?;
            let written = match page.remove(key) {
                Some(Value::Array(written)) => written,
                _ => return Err(ServiceError::UnexpectedResponse),
            };
            for item in written {
                let listed = match item {
                    Value::Object(object) => Listed::from_object(object),
                    _ => Err(serde::de::Error::custom("not an object")),
                };
                match listed {
                    Ok(listed) => items.push(listed),
                    Err(e) => tracing::warn!(
                        server = self.server,
                        "{method}: leaving out an item that is not valid: {e}"
                    ),
                }
            }
            cursor = match page.remove("nextCursor") {
                Some(Value::String(next)) if cursors.insert(next.clone()) => Some(next),
                Some(Value::String(_)) => {
                    tracing::warn!(server = self.server, "{method}: a cursor came twice");
                    return Err(ServiceError::UnexpectedResponse);
                }
                _ => return Ok(items),
            };
        }
        tracing::warn!(
            server = self.server,
            "{method}: the server's list has more than {MAX_PAGES} pages"
        );
        Err(ServiceError::UnexpectedResponse)
    }
}

/// The `result` object of a response line, or its `error`.
fn page_of(line: &[u8]) -> Result<Map<String, Value>, ServiceError> {
    #[derive(serde::Deserialize)]
    struct Response {
        #[serde(default)]
        result: Option<Map<String, Value>>,
        #[serde(default)]
        error: Option<McpError>,
    }
    match serde_json::from_slice::<Response>(line) {
        Ok(Response {
            result: Some(result),
            ..
        }) => Ok(result),
        Ok(Response {
            error: Some(error), ..
        }) => Err(ServiceError::McpError(error)),
        _ => Err(ServiceError::UnexpectedResponse),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_line_is_a_page_or_the_server_error() {
        let page = page_of(br#"{"jsonrpc":"2.0","id":"mcpgw:1","result":{"tools":[]}}"#);
        assert!(page.unwrap().contains_key("tools"));
        let error = page_of(
            br#"{"jsonrpc":"2.0","id":"mcpgw:1","error":{"code":-32601,"message":"Method not found"}}"#,
        );
        assert!(matches!(
            error,
            Err(ServiceError::McpError(e)) if e.code == rmcp::model::ErrorCode::METHOD_NOT_FOUND
        ));
        assert!(matches!(
            page_of(b"{\"jsonrpc\":\"2.0\",\"id\":\"mcpgw:1\"}"),
            Err(ServiceError::UnexpectedResponse)
        ));
    }
}
