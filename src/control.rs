//! The control connection: one JSON request per line from mcpgwctl, one JSON response each.
//!
//! One function per verb. Each loads the routing table once and answers from that snapshot;
//! none of them can stop the daemon except `stop`, which answers first and then asks for the
//! same shutdown that SIGTERM triggers.

use std::sync::Arc;

use crate::ipc::listener::{Reader, Writer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::gateway::Gateway;
use crate::protocol::{self, ControlRequest, ControlResponse, LogTail, ServerProcess, ToolList};

pub async fn serve(
    gateway: Arc<Gateway>,
    reader: Reader,
    mut writer: Writer,
    stop: CancellationToken,
) {
    let mut lines = reader.lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            () = stop.cancelled() => return,
        };
        let Ok(Some(line)) = line else { return };
        let request = serde_json::from_str::<ControlRequest>(&line);
        let response = match &request {
            Ok(request) => handle(&gateway, request.clone()).await,
            Err(e) => ControlResponse::Error {
                message: format!("unknown control request: {e}"),
            },
        };
        let sent = writer.write_all(&protocol::to_line(&response)).await;
        if sent.is_err() || writer.flush().await.is_err() {
            return;
        }
        // The answer is out; now stop. The connection stays open until the daemon stops
        // serving (the `stop` token), which is how mcpgwctl sees the shutdown progress.
        if matches!(request, Ok(ControlRequest::Stop)) {
            gateway.request_stop();
        }
    }
}

/// Answers one request. `stop` is only acknowledged here: [`serve`] acts on it after replying.
async fn handle(gateway: &Gateway, request: ControlRequest) -> ControlResponse {
    let result = match request {
        ControlRequest::Status => Ok(ControlResponse::Status(gateway.status().await)),
        ControlRequest::Reload => Ok(reload(gateway).await),
        ControlRequest::Kill { server } => kill(gateway, &server).await,
        ControlRequest::Start { server } => start(gateway, &server).await,
        ControlRequest::Stop => Ok(ControlResponse::Stopping {
            pid: std::process::id(),
        }),
        ControlRequest::List { role } => list(gateway, role).await,
        ControlRequest::Logs { server, lines } => logs(gateway, &server, lines),
        ControlRequest::Diff { server } => gateway
            .pin_changes(server.as_deref())
            .map(|changes| ControlResponse::Changes { changes }),
        ControlRequest::Approve { server, tools } => gateway
            .approve(&server, &tools)
            .map(|tools| ControlResponse::Approved { server, tools }),
    };
    result.unwrap_or_else(|message| ControlResponse::Error { message })
}

/// Accepted or rejected, the outcome is a [`ControlResponse::Reloaded`]; `ok` tells which.
/// An accepted one also says which plugin modules did not import: a plugin host the reload
/// changed is started (as discovery would) and waited for, so that whoever reloads after an
/// edit learns at once that the edit broke a module.
async fn reload(gateway: &Gateway) -> ControlResponse {
    match gateway.reload() {
        Ok(mut status) => {
            let table = gateway.table();
            let hosts = table
                .backends
                .values()
                .filter(|b| b.spec.plugin.is_some() && b.spec.enabled && b.schema().is_none());
            let started = hosts.map(|host| async move { host.start_now().await.err() });
            for failed in futures::future::join_all(started)
                .await
                .into_iter()
                .flatten()
            {
                status.message.push_str(&format!("; {failed}"));
            }
            for backend in table.backends.values() {
                let Some(schema) = backend.schema() else {
                    continue;
                };
                for problem in &schema.problems {
                    status
                        .message
                        .push_str(&format!("; {}: {problem}", backend.name));
                }
            }
            ControlResponse::Reloaded(status)
        }
        Err(status) => ControlResponse::Reloaded(status),
    }
}

async fn kill(gateway: &Gateway, server: &str) -> Result<ControlResponse, String> {
    let backend = backend(gateway, server)?;
    let pid = backend.pid();
    let was_running = backend.is_running();
    backend.stop().await;
    Ok(ControlResponse::Killed(ServerProcess {
        server: server.to_string(),
        pid,
        was_running,
    }))
}

async fn start(gateway: &Gateway, server: &str) -> Result<ControlResponse, String> {
    let backend = backend(gateway, server)?;
    let was_running = backend.is_running();
    backend.start_now().await.map_err(|e| e.to_string())?;
    Ok(ControlResponse::Started(ServerProcess {
        server: server.to_string(),
        pid: backend.pid(),
        was_running,
    }))
}

async fn list(gateway: &Gateway, role: Option<String>) -> Result<ControlResponse, String> {
    gateway.table().roles.check(role.as_deref())?;
    let tools = gateway.list_tools(role.as_deref()).await;
    let tools = tools
        .iter()
        .map(|tool| serde_json::to_value(tool).map_err(|e| format!("tool `{}`: {e}", tool.name)))
        .collect::<Result<_, _>>()?;
    let failed = gateway.unlisted_failures();
    Ok(ControlResponse::Tools(ToolList {
        role,
        tools,
        failed,
    }))
}

fn logs(gateway: &Gateway, server: &str, lines: usize) -> Result<ControlResponse, String> {
    let backend = backend(gateway, server)?;
    Ok(ControlResponse::Logs(LogTail {
        server: server.to_string(),
        lines: backend.stderr_tail(lines),
    }))
}

/// The live backend of `server`, or an error naming the configured servers.
fn backend(gateway: &Gateway, server: &str) -> Result<Arc<Backend>, String> {
    crate::gateway::known_server(&gateway.table(), server).cloned()
}
