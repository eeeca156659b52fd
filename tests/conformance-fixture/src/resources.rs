//! The resources of the `resources-*` scenarios: two static ones (text, binary), one to subscribe
//! to, and the `test://template/{id}/data` template. Also the media payloads the tools and
//! prompts return.

use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceResult, Resource, ResourceTemplate};
use serde_json::json;

use crate::server::from_json;

/// A 1x1 red PNG (RGB, 8 bit), made for this fixture.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR42mP4z8AAAAMBAQD3A0FDAAAAAElFTkSuQmCC";

/// 10 ms of silence: 8 kHz mono 8-bit PCM WAV, 80 samples, made for this fixture.
pub const WAV_BASE64: &str = "UklGRnQAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YVAAAACAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgA==";

const STATIC_TEXT: &str = "test://static-text";
const STATIC_BINARY: &str = "test://static-binary";
const WATCHED: &str = "test://watched-resource";
const TEMPLATE: &str = "test://template/{id}/data";
const TEMPLATE_PREFIX: &str = "test://template/";
const TEMPLATE_SUFFIX: &str = "/data";

pub fn list() -> Result<Vec<Resource>, McpError> {
    from_json(json!([
        {
            "uri": STATIC_TEXT,
            "name": "static-text",
            "description": "A fixed text resource",
            "mimeType": "text/plain",
        },
        {
            "uri": STATIC_BINARY,
            "name": "static-binary",
            "description": "A fixed binary resource (a 1x1 PNG)",
            "mimeType": "image/png",
        },
        {
            "uri": WATCHED,
            "name": "watched-resource",
            "description": "A resource clients can subscribe to",
            "mimeType": "text/plain",
        },
    ]))
}

pub fn templates() -> Result<Vec<ResourceTemplate>, McpError> {
    from_json(json!([{
        "uriTemplate": TEMPLATE,
        "name": "template-data",
        "description": "JSON data for the record `id`",
        "mimeType": "application/json",
    }]))
}

pub fn read(uri: &str) -> Result<ReadResourceResult, McpError> {
    let contents = match uri {
        STATIC_TEXT => json!({
            "uri": uri,
            "mimeType": "text/plain",
            "text": "This is the content of the static text resource.",
        }),
        STATIC_BINARY => json!({ "uri": uri, "mimeType": "image/png", "blob": PNG_BASE64 }),
        WATCHED => {
            json!({ "uri": uri, "mimeType": "text/plain", "text": "Watched resource content." })
        }
        _ => match template_id(uri) {
            Some(id) => json!({
                "uri": uri,
                "mimeType": "application/json",
                "text": json!({ "id": id, "templateTest": true, "data": format!("Data for ID: {id}") })
                    .to_string(),
            }),
            None => {
                return Err(McpError::resource_not_found(
                    format!("no resource {uri:?}"),
                    Some(json!({ "uri": uri })),
                ));
            }
        },
    };
    from_json(json!({ "contents": [contents] }))
}

/// The `{id}` of a URI matching the template (one non-empty path segment).
fn template_id(uri: &str) -> Option<&str> {
    let id = uri
        .strip_prefix(TEMPLATE_PREFIX)?
        .strip_suffix(TEMPLATE_SUFFIX)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}
