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

/// The most of a command's stdout the answer carries; past it the pipe is closed (a program
/// that writes forever then ends on SIGPIPE rather than keep the daemon reading).
const MAX_STDOUT: usize = 1024 * 1024;
/// How much of the end of a failed command's stderr the answer carries, and how much of it is
/// read at most.
const STDERR_TAIL: usize = 4 * 1024;
const MAX_STDERR_READ: usize = 1024 * 1024;

/// Commands running at once, daemon-wide; more wait for a place.
const MAX_RUNNING: usize = 16;

/// The longest string argument (an argv element over 128 KiB cannot be passed at all).
const MAX_STRING_ARGUMENT: usize = 64 * 1024;

/// What a command's process gets of the daemon's environment: the basics a program needs,
/// never the daemon's other variables (they may hold the config's secrets).
const ENV_KEPT: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR",
];

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
            (ParamKind::String, Value::String(s)) => {
                if s.contains('\0') || s.len() > MAX_STRING_ARGUMENT {
                    return Err(invalid(format!(
                        "argument `{name}` must be at most {MAX_STRING_ARGUMENT} bytes, without NUL"
                    )));
                }
                s.clone()
            }
            (ParamKind::Integer, Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(f)) if f.abs() < 9.0e15 => format!("{f:.0}"),
                _ => return Err(invalid(format!("argument `{name}` is out of range"))),
            },
            (_, other) => other.to_string(),
        };
        values.insert(name.as_str(), text);
    }
    let mut argv = Vec::with_capacity(tool.run.len());
    for (i, element) in tool.run.iter().enumerate() {
        let Some(name) = placeholder(element).filter(|_| i > 0) else {
            argv.push(element.clone());
            continue;
        };
        let value = values.get(name).cloned().unwrap_or_default();
        // A value the program would read as an option is refused, unless `run` ends the
        // options first (`"--"` before it).
        if value.starts_with('-') && !tool.run[..i].iter().any(|e| e == "--") {
            return Err(invalid(format!(
                "argument `{name}` must not start with `-` (`{}` would take it as an option; the \
                 config may put \"--\" before it in `run`)",
                tool.run[0]
            )));
        }
        argv.push(value);
    }
    Ok(argv)
}

/// Runs the tool with `arguments`. Dropping the future (the call was cancelled) kills the
/// process group.
pub async fn run(
    tool: &CommandTool,
    arguments: Option<&JsonObject>,
) -> Result<CallToolResult, McpError> {
    let argv = argv(tool, arguments)?;
    if !tool.cwd.is_dir() {
        return Ok(error_result(format!(
            "`{}` cannot run: its directory {} does not exist",
            tool.name,
            tool.cwd.display()
        )));
    }
    static RUNNING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_RUNNING);
    let _place = RUNNING
        .acquire()
        .await
        .map_err(|_| McpError::internal_error("mcpgw is stopping", None))?;
    let started = std::time::Instant::now();
    let mut command = tokio::process::Command::new(&argv[0]);
    command.env_clear();
    for (name, value) in std::env::vars_os() {
        let kept = name
            .to_str()
            .is_some_and(|n| ENV_KEPT.contains(&n) || n.starts_with("LC_"));
        if kept {
            command.env(name, value);
        }
    }
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
                // If the daemon dies without stopping it, the kernel stops the command.
                #[cfg(target_os = "linux")]
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
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
            read_bounded(stdout, MAX_STDOUT, MAX_STDOUT, false),
            read_bounded(stderr, STDERR_TAIL, MAX_STDERR_READ, true),
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
    // What it left running in its group (a background job) goes with it.
    drop(group);
    tracing::info!(
        tool = %tool.name,
        ms = started.elapsed().as_millis() as u64,
        "command tool ran"
    );
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

/// Reads a pipe, keeping at most `max` bytes (the first, or with `tail` the last), and whether
/// more came. At most `read_up_to` bytes are read: then the pipe is closed (the writer gets
/// SIGPIPE) instead of read forever.
async fn read_bounded(
    pipe: Option<impl AsyncRead + Unpin>,
    max: usize,
    read_up_to: usize,
    tail: bool,
) -> (Vec<u8>, bool) {
    let Some(mut pipe) = pipe else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::with_capacity(max.min(64 * 1024));
    let mut read = 0;
    let mut more = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, more),
            Ok(n) => n,
        };
        read += n;
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
        if read >= read_up_to {
            return (kept, true);
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
