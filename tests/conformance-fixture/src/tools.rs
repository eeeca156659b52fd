//! The tools the suite's `tools-*`, `elicitation-*`, `json-schema-2020-12` and
//! `server-sse-polling` scenarios call, with the behaviour each scenario checks.

// Sampling and logging are deprecated by SEP-2577 in rmcp; the scenarios that use them run on
// 2025-06-18 and 2025-11-25, where both are part of the protocol.
#![expect(deprecated)]

use std::time::Duration;

use rmcp::model::{
    CallToolResult, ClientResult, ContentBlock, CreateMessageRequestParams, ElicitRequest,
    JsonObject, LoggingLevel, LoggingMessageNotificationParam, ProgressNotificationParam,
    SamplingMessage, SamplingMessageContentBlock, ServerRequest, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer};
use serde_json::{Value, json};

use crate::resources::{PNG_BASE64, WAV_BASE64};
use crate::server::{Conformance, from_json};

/// The `$schema` the `json-schema-2020-12` scenario expects to be preserved.
const SCHEMA_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// How long `test_reconnection` waits for its client to come back before answering anyway.
const RESUME_WAIT: Duration = Duration::from_secs(8);

pub fn list() -> Vec<Tool> {
    let none = json!({ "type": "object", "properties": {} });
    let string_arg = |name: &str, what: &str| {
        json!({
            "type": "object",
            "properties": { name: { "type": "string", "description": what } },
            "required": [name],
        })
    };
    vec![
        tool("test_simple_text", "Returns one text block", none.clone()),
        tool(
            "test_image_content",
            "Returns a 1x1 PNG image",
            none.clone(),
        ),
        tool(
            "test_audio_content",
            "Returns a short WAV clip",
            none.clone(),
        ),
        tool(
            "test_embedded_resource",
            "Returns an embedded text resource",
            none.clone(),
        ),
        tool(
            "test_multiple_content_types",
            "Returns text, an image and an embedded resource",
            none.clone(),
        ),
        tool(
            "test_tool_with_logging",
            "Sends three info log messages, 50 ms apart, while it runs",
            none.clone(),
        ),
        tool(
            "test_error_handling",
            "Always fails with a tool error (isError: true)",
            none.clone(),
        ),
        tool(
            "test_tool_with_progress",
            "Reports progress 0, 50 and 100 of 100, 50 ms apart, when given a progress token",
            none.clone(),
        ),
        tool(
            "test_sampling",
            "Asks the client to sample a reply to `prompt` (sampling/createMessage)",
            string_arg("prompt", "the prompt to send to the model"),
        ),
        tool(
            "test_elicitation",
            "Asks the client for a username and an email (elicitation/create)",
            string_arg("message", "the message shown to the user"),
        ),
        tool(
            "test_elicitation_sep1034_defaults",
            "Elicits a form whose string, integer, number, enum and boolean fields have defaults",
            none.clone(),
        ),
        tool(
            "test_elicitation_sep1330_enums",
            "Elicits a form with every enum variant: untitled, titled, legacy, multi-select",
            none.clone(),
        ),
        tool(
            "json_schema_2020_12_tool",
            "Takes arguments described with JSON Schema 2020-12 ($schema, $defs, $ref)",
            json!({
                "$schema": SCHEMA_2020_12,
                "type": "object",
                "$defs": {
                    "address": {
                        "type": "object",
                        "properties": {
                            "street": { "type": "string" },
                            "city": { "type": "string" },
                        },
                    },
                },
                "properties": {
                    "name": { "type": "string" },
                    "address": { "$ref": "#/$defs/address" },
                },
                "additionalProperties": false,
            }),
        ),
        tool(
            "test_reconnection",
            "Over HTTP, closes its SSE stream before answering and answers once the client \
             resumes it with Last-Event-ID (SEP-1699)",
            none,
        ),
    ]
}

pub async fn call(
    server: &Conformance,
    name: &str,
    args: &JsonObject,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    match name {
        "test_simple_text" => Ok(text("This is a simple text response for testing.")),
        "test_image_content" => Ok(CallToolResult::success(vec![ContentBlock::image(
            PNG_BASE64,
            "image/png",
        )])),
        "test_audio_content" => Ok(CallToolResult::success(vec![ContentBlock::audio(
            WAV_BASE64,
            "audio/wav",
        )])),
        "test_embedded_resource" => from_json(json!({
            "content": [{
                "type": "resource",
                "resource": {
                    "uri": "test://embedded-resource",
                    "mimeType": "text/plain",
                    "text": "This is an embedded resource content.",
                },
            }],
        })),
        "test_multiple_content_types" => from_json(json!({
            "content": [
                { "type": "text", "text": "Multiple content types test:" },
                { "type": "image", "data": PNG_BASE64, "mimeType": "image/png" },
                {
                    "type": "resource",
                    "resource": {
                        "uri": "test://mixed-content-resource",
                        "mimeType": "application/json",
                        "text": json!({ "test": "data", "value": 123 }).to_string(),
                    },
                },
            ],
        })),
        "test_tool_with_logging" => with_logging(server, ctx).await,
        "test_error_handling" => Ok(CallToolResult::error(vec![ContentBlock::text(
            "This tool intentionally returns an error for testing",
        )])),
        "test_tool_with_progress" => with_progress(ctx).await,
        "test_sampling" => sampling(arg_str(args, "prompt")?, ctx).await,
        "test_elicitation" => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "username": { "type": "string", "description": "User's response" },
                    "email": { "type": "string", "description": "User's email address" },
                },
                "required": ["username", "email"],
            });
            let answer = elicit(arg_str(args, "message")?, schema, ctx).await?;
            Ok(text(format!("User response: {answer}")))
        }
        "test_elicitation_sep1034_defaults" => {
            let schema = json!({
                "type": "object",
                "properties": {
                    "name": { "type": "string", "description": "User name", "default": "John Doe" },
                    "age": { "type": "integer", "description": "User age", "default": 30 },
                    "score": { "type": "number", "description": "User score", "default": 95.5 },
                    "status": {
                        "type": "string",
                        "description": "User status",
                        "enum": ["active", "inactive", "pending"],
                        "default": "active",
                    },
                    "verified": {
                        "type": "boolean",
                        "description": "Verification status",
                        "default": true,
                    },
                },
            });
            let message = "Please review these values (each has a default)";
            let answer = elicit(message, schema, ctx).await?;
            Ok(text(format!("Elicitation completed: {answer}")))
        }
        "test_elicitation_sep1330_enums" => {
            let choices = |title: &str| {
                json!([
                    { "const": "value1", "title": format!("First {title}") },
                    { "const": "value2", "title": format!("Second {title}") },
                    { "const": "value3", "title": format!("Third {title}") },
                ])
            };
            let schema = json!({
                "type": "object",
                "properties": {
                    "untitledSingle": {
                        "type": "string",
                        "enum": ["option1", "option2", "option3"],
                    },
                    "titledSingle": { "type": "string", "oneOf": choices("Option") },
                    "legacyEnum": {
                        "type": "string",
                        "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"],
                    },
                    "untitledMulti": {
                        "type": "array",
                        "items": { "type": "string", "enum": ["option1", "option2", "option3"] },
                    },
                    "titledMulti": {
                        "type": "array",
                        "items": { "anyOf": choices("Choice") },
                    },
                },
            });
            let answer = elicit("Pick from each kind of list", schema, ctx).await?;
            Ok(text(format!("Elicitation completed: {answer}")))
        }
        "json_schema_2020_12_tool" => {
            Ok(text(format!("Received: {}", Value::Object(args.clone()))))
        }
        "test_reconnection" => {
            if let (Some(resumptions), Some(session)) =
                (&server.resumptions, crate::http::session_of(ctx))
            {
                // The HTTP layer closed this call's stream; answer once the client is back on
                // it, so the answer travels on the resumed stream.
                let resumed = resumptions.wait(&session, RESUME_WAIT).await;
                if !resumed {
                    eprintln!(
                        "test_reconnection: the client did not resume within {RESUME_WAIT:?}"
                    );
                }
            }
            Ok(text("Reconnection test completed"))
        }
        _ => Err(McpError::invalid_params(
            format!("unknown tool {name:?}"),
            None,
        )),
    }
}

async fn with_logging(
    server: &Conformance,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    let messages = [
        "Tool execution started",
        "Tool processing data",
        "Tool execution completed",
    ];
    for (i, message) in messages.into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if server.should_log(LoggingLevel::Info) {
            let params = LoggingMessageNotificationParam::new(LoggingLevel::Info, message.into())
                .with_logger("test_tool_with_logging");
            notified(ctx.peer.notify_logging_message(params).await)?;
        }
    }
    Ok(text("Logged 3 messages"))
}

async fn with_progress(ctx: &RequestContext<RoleServer>) -> Result<CallToolResult, McpError> {
    // rmcp moves the request's `_meta` into the context.
    let token = ctx.meta.get_progress_token();
    for (i, progress) in [0.0, 50.0, 100.0].into_iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if let Some(token) = &token {
            let params = ProgressNotificationParam::new(token.clone(), progress).with_total(100.0);
            notified(ctx.peer.notify_progress(params).await)?;
        }
    }
    Ok(text("Progress reported: 0, 50, 100 of 100"))
}

async fn sampling(
    prompt: &str,
    ctx: &RequestContext<RoleServer>,
) -> Result<CallToolResult, McpError> {
    let params = CreateMessageRequestParams::new(vec![SamplingMessage::user_text(prompt)], 100);
    let reply = ctx
        .peer
        .create_message(params)
        .await
        .map_err(|e| McpError::internal_error(format!("sampling failed: {e}"), None))?;
    let reply: String = reply
        .message
        .content
        .into_vec()
        .into_iter()
        .filter_map(|block| match block {
            SamplingMessageContentBlock::Text(t) => Some(t.text),
            _ => None,
        })
        .collect();
    Ok(text(format!("LLM response: {reply}")))
}

/// Sends `elicitation/create` with a form schema and returns the answer as
/// `action=…, content=…`.
async fn elicit(
    message: &str,
    schema: Value,
    ctx: &RequestContext<RoleServer>,
) -> Result<String, McpError> {
    let params =
        from_json(json!({ "mode": "form", "message": message, "requestedSchema": schema }))?;
    let answer = ctx
        .peer
        .send_request(ServerRequest::ElicitRequest(ElicitRequest::new(params)))
        .await
        .map_err(|e| McpError::internal_error(format!("elicitation failed: {e}"), None))?;
    let ClientResult::ElicitResult(answer) = answer else {
        return Err(McpError::internal_error(
            "the client answered elicitation/create with something else",
            None,
        ));
    };
    let answer = serde_json::to_value(&answer).unwrap_or_default();
    Ok(format!(
        "action={}, content={}",
        answer["action"].as_str().unwrap_or("?"),
        answer.get("content").cloned().unwrap_or(Value::Null)
    ))
}

fn tool(name: &'static str, description: &'static str, schema: Value) -> Tool {
    let Value::Object(schema) = schema else {
        unreachable!("tool schemas are written as JSON objects")
    };
    Tool::new(name, description, schema)
}

fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

fn arg_str<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    args.get(name).and_then(Value::as_str).ok_or_else(|| {
        McpError::invalid_params(format!("argument {name:?} must be a string"), None)
    })
}

fn notified(result: Result<(), rmcp::service::ServiceError>) -> Result<(), McpError> {
    result.map_err(|e| McpError::internal_error(format!("sending a notification: {e}"), None))
}
