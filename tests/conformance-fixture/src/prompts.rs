//! The prompts of the `prompts-*` scenarios and `completion/complete` (the
//! `completion-complete` scenario completes `test_prompt_with_arguments`' `arg1`).

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CompleteRequestParams, CompleteResult, CompletionInfo, GetPromptResult, JsonObject, Prompt,
    Reference,
};
use serde_json::{Value, json};

use crate::resources::PNG_BASE64;
use crate::server::from_json;

pub fn list() -> Vec<Prompt> {
    let prompts = json!([
        { "name": "test_simple_prompt", "description": "A prompt without arguments" },
        {
            "name": "test_prompt_with_arguments",
            "description": "A prompt that quotes its two arguments",
            "arguments": [
                { "name": "arg1", "description": "First test argument", "required": true },
                { "name": "arg2", "description": "Second test argument", "required": true },
            ],
        },
        {
            "name": "test_prompt_with_embedded_resource",
            "description": "A prompt that embeds the resource `resourceUri`",
            "arguments": [
                { "name": "resourceUri", "description": "URI of the resource to embed", "required": true },
            ],
        },
        { "name": "test_prompt_with_image", "description": "A prompt carrying an image" },
    ]);
    serde_json::from_value(prompts).expect("the prompt list is valid")
}

pub fn get(name: &str, args: &JsonObject) -> Result<GetPromptResult, McpError> {
    let messages = match name {
        "test_simple_prompt" => json!([user_text("This is a simple prompt for testing.")]),
        "test_prompt_with_arguments" => {
            let (arg1, arg2) = (arg(args, "arg1")?, arg(args, "arg2")?);
            json!([user_text(&format!(
                "Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
            ))])
        }
        "test_prompt_with_embedded_resource" => json!([
            {
                "role": "user",
                "content": {
                    "type": "resource",
                    "resource": {
                        "uri": arg(args, "resourceUri")?,
                        "mimeType": "text/plain",
                        "text": "Embedded resource content for testing.",
                    },
                },
            },
            user_text("Please process the embedded resource above."),
        ]),
        "test_prompt_with_image" => json!([
            {
                "role": "user",
                "content": { "type": "image", "data": PNG_BASE64, "mimeType": "image/png" },
            },
            user_text("Please analyze the image above."),
        ]),
        _ => {
            return Err(McpError::invalid_params(
                format!("unknown prompt {name:?}"),
                None,
            ));
        }
    };
    from_json(json!({ "messages": messages }))
}

/// Completes prompt arguments and the template's `id` from fixed candidate lists, by prefix.
pub fn complete(request: &CompleteRequestParams) -> Result<CompleteResult, McpError> {
    let candidates: &[&str] = match (&request.r#ref, request.argument.name.as_str()) {
        (Reference::Prompt(p), "arg1" | "arg2") if p.name == "test_prompt_with_arguments" => {
            &["paris", "park", "party", "test-value", "testing"]
        }
        (Reference::Prompt(p), "resourceUri") if p.name == "test_prompt_with_embedded_resource" => {
            &["test://static-text", "test://static-binary"]
        }
        (Reference::Resource(r), "id") if r.uri == "test://template/{id}/data" => {
            &["1", "2", "123"]
        }
        _ => &[],
    };
    let values: Vec<String> = candidates
        .iter()
        .filter(|c| c.starts_with(&request.argument.value))
        .map(|c| c.to_string())
        .collect();
    let info =
        CompletionInfo::new(values).map_err(|e| McpError::internal_error(e.to_string(), None))?;
    Ok(CompleteResult::new(info))
}

fn user_text(text: &str) -> Value {
    json!({ "role": "user", "content": { "type": "text", "text": text } })
}

fn arg<'a>(args: &'a JsonObject, name: &str) -> Result<&'a str, McpError> {
    args.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| McpError::invalid_params(format!("argument {name:?} is required"), None))
}
