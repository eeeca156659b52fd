//! Running a command tool (`commands:` in the config): a program, its arguments validated
//! against the tool's `input` and substituted as whole argv elements (no shell), in its own
//! process group, bounded in time and output.
//!
//! The answer: stdout as text (at most [`MAX_STDOUT`], cut saying so); a non-zero exit is an
//! `isError` result with the exit status and stderr's last [`STDERR_TAIL`] bytes; a timeout
//! or a cancelled call kills the whole group.

use std::process::Stdio;

use rmcp::ErrorData as McpError;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::config::{CommandTool, ParamKind, placeholder};

/// The most of a command's stdout the answer carries.
const MAX_STDOUT: usize = 1024 * 1024;
/// How much of the end of a failed command's stderr the answer carries.
const STDERR_TAIL: usize = 4 * 1024;

/// The tool's input schema, from its `input`.
pub fn input_schema(tool: &CommandTool) -> JsonObject {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for (name, param) in &tool.input {
        let mut schema = serde_json::Map::new();
        schema.insert("type".into(), param.kind.as_str().into());
        if let Some(description) = &param.description {
            schema.insert("description".into(), description.clone().into());
        }
        match &param.default {
            Some(default) => {
                schema.insert("default".into(), default.clone());
            }
            None => required.push(Value::from(name.clone())),
        }
        if let Some(minimum) = param.minimum {
            schema.insert("minimum".into(), number(minimum));
        }
        if let Some(maximum) = param.maximum {
            schema.insert("maximum".into(), number(maximum));
        }
        if let Some(allowed) = &param.allowed {
            schema.insert("enum".into(), allowed.clone().into());
        }
        properties.insert(name.clone(), schema.into());
    }
    let mut schema = JsonObject::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), properties.into());
    if !required.is_empty() {
        schema.insert("required".into(), required.into());
    }
    schema.insert("additionalProperties".into(), false.into());
    schema
}

/// A bound as written: an integer stays one.
fn number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.0e15 {
        Value::from(n as i64)
    } else {
        Value::from(n)
    }
}

/// The argv for `arguments`, or why they are not valid (invalid params).
pub fn argv(tool: &CommandTool, arguments: Option<&JsonObject>) -> Result<Vec<String>, McpError> {
    let invalid = |why: String| McpError::invalid_params(format!("`{}`: {why}", tool.name), None);
    let empty = JsonObject::new();
    let arguments = arguments.unwrap_or(&empty);
    if let Some(unknown) = arguments.keys().find(|k| !tool.input.contains_key(*k)) {
        return Err(invalid(format!("unknown argument `{unknown}`")));
    }
    let mut values = std::collections::BTreeMap::new();
    for (name, param) in &tool.input {
        let value = match (arguments.get(name), &param.default) {
            (Some(value), _) => value,
            (None, Some(default)) => default,
            (None, None) => return Err(invalid(format!("argument `{name}` is required"))),
        };
        param
            .admit(value)
            .map_err(|why| invalid(format!("argument `{name}` {why}")))?;
        let text = match (param.kind, value) {
            (ParamKind::String, Value::String(s)) => s.clone(),
            (ParamKind::Integer, Value::Number(n)) => match n.as_i64() {
                Some(i) => i.to_string(),
                None => number(n.as_f64().unwrap_or_default()).to_string(),
            },
            (_, other) => other.to_string(),
        };
        values.insert(name.as_str(), text);
    }
    Ok(tool
        .run
        .iter()
        .enumerate()
        .map(
            |(i, element)| match placeholder(element).filter(|_| i > 0) {
                Some(name) => values.get(name).cloned().unwrap_or_default(),
                None => element.clone(),
            },
        )
        .collect())
}

/// Runs the tool with `arguments`. Dropping the future (the call was cancelled) kills the
/// process group.
pub async fn run(
    tool: &CommandTool,
    arguments: Option<&JsonObject>,
) -> Result<CallToolResult, McpError> {
    let argv = argv(tool, arguments)?;
    let mut command = tokio::process::Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(&tool.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    {
        command.process_group(0);
        // SAFETY: close_inherited_on_exec is async-signal-safe; nothing allocates.
        unsafe {
            command.pre_exec(|| {
                crate::process::close_inherited_on_exec();
                Ok(())
            });
        }
    }
    let mut child = command.spawn().map_err(|e| {
        McpError::internal_error(
            format!("`{}`: cannot run `{}`: {e}", tool.name, argv[0]),
            None,
        )
    })?;
    let group = Group(child.id());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = async {
        let (out, err, status) = tokio::join!(
            read_bounded(stdout, MAX_STDOUT, false),
            read_bounded(stderr, STDERR_TAIL, true),
            child.wait()
        );
        (out, err, status)
    };
    let Ok((out, err, status)) = tokio::time::timeout(tool.timeout, finished).await else {
        drop(group);
        return Ok(error_result(format!(
            "`{}` did not finish within {} s and was stopped",
            tool.name,
            tool.timeout.as_secs_f64()
        )));
    };
    std::mem::forget(group);
    let status = status.map_err(|e| McpError::internal_error(e.to_string(), None))?;
    let (stdout, cut) = out;
    let mut text = String::from_utf8_lossy(&stdout).into_owned();
    if cut {
        text.push_str(&format!("\n[output cut at {MAX_STDOUT} bytes]"));
    }
    if status.success() {
        return Ok(CallToolResult::success(vec![ContentBlock::text(text)]));
    }
    let (stderr, _) = err;
    let stderr = String::from_utf8_lossy(&stderr);
    Ok(error_result(format!(
        "`{}` failed ({status}); its stderr ends: {}{}",
        tool.name,
        stderr.trim_end(),
        match text.is_empty() {
            true => String::new(),
            false => format!("\nits stdout: {text}"),
        }
    )))
}

fn error_result(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

/// Reads a pipe to its end, keeping at most `max` bytes (the first, or with `tail` the last),
/// and whether more came.
async fn read_bounded(
    pipe: Option<impl AsyncRead + Unpin>,
    max: usize,
    tail: bool,
) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut more = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, more),
            Ok(n) => n,
        };
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > max {
            more = true;
            match tail {
                true => {
                    kept.drain(..kept.len() - max);
                }
                false => kept.truncate(max),
            }
        }
    }
}

/// Kills the process group when dropped (a timeout, a cancelled call).
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.and_then(|pid| i32::try_from(pid).ok()) {
            // SAFETY: killpg has no memory effects; the group is the child's own (process_group(0)).
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}
