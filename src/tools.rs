//! Rust tools served from the daemon's own process, for programs that embed mcpgw: register
//! them in a [`Tools`] registry, hand it to [`crate::daemon::Options`], and every client sees
//! them beside the servers' tools (unprefixed, filtered by roles), called with no IPC.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use mcpgw::tools::Tools;
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! struct Words {
//!     /// The text whose words to count.
//!     text: String,
//! }
//!
//! let mut tools = Tools::new();
//! tools.add_typed("word_count", "Counts the words of a text", |args: Words| async move {
//!     Ok(serde_json::json!({ "words": args.text.split_whitespace().count() }))
//! });
//! let options = mcpgw::daemon::Options {
//!     config_path: "gateway.yaml".into(),
//!     socket: mcpgw::paths::resolve_socket(None),
//!     cache_dir: mcpgw::daemon::default_cache_dir(),
//!     state_dir: mcpgw::daemon::default_state_dir(),
//!     tools,
//! };
//! mcpgw::daemon::run(options, mcpgw::daemon::shutdown_signal()).await
//! # }
//! ```
//!
//! A handler's answer is JSON: a string is the result's text; any other value its JSON text
//! and its `structuredContent` (an object as is, anything else as `{"result": …}`); an `Err`
//! is an error result with that message. A handler runs on its own task: a panic is an error
//! result, a client's cancellation aborts it, and the config's `call_timeout` bounds it.
//!
//! **A handler must not block**: `mcpgwd` runs one thread, which every client shares. Do
//! blocking work (a file read, a synchronous library) in `tokio::task::spawn_blocking`.
//!
//! A tool is left out (with a warning) while the config has a command of its name or a
//! prefixed server whose tools would be named like it (`<prefix>_…`): those names are the
//! user's.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// What a handler answers: a JSON value, or an error message for the client.
pub type ToolResult = Result<Value, String>;

type Handler =
    dyn Fn(Map<String, Value>) -> Pin<Box<dyn Future<Output = ToolResult> + Send>> + Send + Sync;

/// The tools of a daemon's own, in the order added. Cloning shares them.
#[derive(Clone, Default)]
pub struct Tools {
    tools: Vec<Arc<RustTool>>,
}

/// One tool: what clients are told of it, and its handler.
pub struct RustTool {
    pub(crate) name: String,
    pub(crate) description: String,
    /// Shared with every catalog that lists it (one per list change), not copied into each.
    pub(crate) input_schema: Arc<Map<String, Value>>,
    handler: Box<Handler>,
}

impl fmt::Debug for RustTool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustTool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for Tools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.tools.iter().map(|t| &t.name))
            .finish()
    }
}

impl Tools {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a tool whose arguments arrive as a JSON object, checked against nothing but
    /// `input_schema` as the client read it.
    ///
    /// # Panics
    /// If `name` is not 1 to 64 letters, digits, `_`, `-` or `.`, starts with `gateway_` (the
    /// gateway's own tools), or is taken by a tool added before; or if `input_schema` is not a
    /// JSON object with `"type": "object"`. These are the embedder's mistakes, made once at
    /// start.
    pub fn add<F, Fut>(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: F,
    ) -> &mut Self
    where
        F: Fn(Map<String, Value>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        let name = name.into();
        if let Some(problem) = name_problem(&name) {
            panic!("mcpgw: cannot add the tool `{name}`: {problem}");
        }
        if self.tools.iter().any(|t| t.name == name) {
            panic!("mcpgw: cannot add the tool `{name}` twice");
        }
        let input_schema = match input_schema {
            Value::Object(schema) if schema.get("type") == Some(&Value::from("object")) => {
                Arc::new(schema)
            }
            _ => panic!(
                "mcpgw: the input schema of the tool `{name}` must be a JSON object with \
                 \"type\": \"object\""
            ),
        };
        self.tools.push(Arc::new(RustTool {
            name,
            description: description.into(),
            input_schema,
            handler: Box::new(move |arguments| Box::pin(handler(arguments))),
        }));
        self
    }

    /// Adds a tool whose arguments are `A`: its input schema is `A`'s JSON Schema (schemars),
    /// and arguments that do not deserialize into `A` are an error result naming why.
    ///
    /// # Panics
    /// As [`Tools::add`].
    pub fn add_typed<A, F, Fut>(
        &mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> &mut Self
    where
        A: DeserializeOwned + schemars::JsonSchema + Send + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolResult> + Send + 'static,
    {
        let mut schema = serde_json::to_value(schemars::schema_for!(A)).unwrap_or_default();
        if let Some(object) = schema.as_object_mut() {
            // Clients read a tool's schema on its own: no `$schema` dialect line needed.
            object.remove("$schema");
        }
        let handler = Arc::new(handler);
        self.add(name, description, schema, move |arguments| {
            let handler = handler.clone();
            async move {
                let arguments: A = serde_json::from_value(Value::Object(arguments))
                    .map_err(|e| format!("invalid arguments: {e}"))?;
                handler(arguments).await
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<RustTool>> {
        self.tools.iter()
    }
}

impl RustTool {
    /// Runs the handler on its own task, the call of the handler itself included (a panic
    /// before its future exists is a panic too): a panic is an error, not the session's end.
    /// Dropping the returned future aborts it.
    pub(crate) async fn call(self: Arc<Self>, arguments: Map<String, Value>) -> ToolResult {
        let name = self.name.clone();
        let task = tokio::spawn(async move { (self.handler)(arguments).await });
        let abort = task.abort_handle();
        let _aborted_when_dropped = AbortOnDrop(abort);
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => Err(format!("the tool `{name}` panicked")),
            Err(_) => Err(format!("the tool `{name}` was stopped")),
        }
    }
}

/// A handler's answer as MCP's `tools/call` result.
pub(crate) fn call_result(result: ToolResult) -> rmcp::model::CallToolResult {
    use rmcp::model::{CallToolResult, ContentBlock};
    match result {
        Err(message) => CallToolResult::error(vec![ContentBlock::text(message)]),
        Ok(Value::String(text)) => CallToolResult::success(vec![ContentBlock::text(text)]),
        Ok(Value::Null) => CallToolResult::success(Vec::new()),
        Ok(value) => {
            let text = if value.is_object() {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            }
            .unwrap_or_default();
            let structured = match value {
                Value::Object(_) => value,
                other => serde_json::json!({ "result": other }),
            };
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = Some(structured);
            result
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why `name` cannot be a tool's name here.
fn name_problem(name: &str) -> Option<&'static str> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !valid {
        Some("a name is 1 to 64 letters, digits, `_`, `-` or `.`")
    } else if name == "gateway" || name.starts_with("gateway_") {
        Some("`gateway_*` are the gateway's own tools")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use super::*;

    fn one(tools: &Tools) -> Arc<RustTool> {
        tools.iter().next().unwrap().clone()
    }

    #[test]
    fn answers_become_text_and_structured_content() {
        let text = call_result(Ok(json!("hello")));
        assert_eq!(text.structured_content, None);
        assert_eq!(
            serde_json::to_value(&text.content).unwrap(),
            json!([{"type": "text", "text": "hello"}])
        );
        let object = call_result(Ok(json!({"a": 1})));
        assert_eq!(object.structured_content, Some(json!({"a": 1})));
        let number = call_result(Ok(json!(2.5)));
        assert_eq!(number.structured_content, Some(json!({"result": 2.5})));
        assert_eq!(
            serde_json::to_value(&number.content).unwrap()[0]["text"],
            "2.5"
        );
        let failed = call_result(Err("no".into()));
        assert_eq!(failed.is_error, Some(true));
    }

    #[test]
    #[should_panic(expected = "`gateway_*` are the gateway's own tools")]
    fn the_gateways_names_are_refused() {
        Tools::new().add("gateway_x", "", json!({"type": "object"}), |_| async {
            Ok(Value::Null)
        });
    }

    #[test]
    #[should_panic(expected = "cannot add the tool `x` twice")]
    fn a_name_is_added_once() {
        let mut tools = Tools::new();
        for _ in 0..2 {
            tools.add("x", "", json!({"type": "object"}), |_| async {
                Ok(Value::Null)
            });
        }
    }

    #[test]
    #[should_panic(expected = "must be a JSON object with \"type\": \"object\"")]
    fn an_input_schema_is_an_object_schema() {
        Tools::new().add("x", "", json!({"type": "string"}), |_| async {
            Ok(Value::Null)
        });
    }

    #[tokio::test]
    async fn a_panicking_handler_is_an_error_and_a_dropped_call_aborts_its_handler() {
        let mut tools = Tools::new();
        tools.add("boom", "", json!({"type": "object"}), |_| async {
            panic!("handler bug")
        });
        assert_eq!(
            one(&tools).call(Map::new()).await,
            Err("the tool `boom` panicked".into())
        );
        // A panic before the handler's future exists is a panic of the call too.
        let mut tools = Tools::new();
        tools.add("early", "", json!({"type": "object"}), |arguments| {
            let n = arguments["n"].as_u64().unwrap();
            async move { Ok(Value::from(n)) }
        });
        assert_eq!(
            one(&tools).call(Map::new()).await,
            Err("the tool `early` panicked".into())
        );

        struct SetOnDrop(Arc<AtomicBool>);
        impl Drop for SetOnDrop {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let dropped = Arc::new(AtomicBool::new(false));
        let flag = dropped.clone();
        let mut tools = Tools::new();
        tools.add("wait", "", json!({"type": "object"}), move |_| {
            let guard = SetOnDrop(flag.clone());
            async move {
                let _guard = guard;
                std::future::pending::<()>().await;
                Ok(Value::Null)
            }
        });
        let tool = one(&tools);
        let call = tool.call(Map::new());
        let _ = tokio::time::timeout(std::time::Duration::from_millis(20), call).await;
        for _ in 0..500 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the handler's task was not aborted");
    }
}
