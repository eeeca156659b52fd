//! Routing a session's requests: lists from the catalog, everything else to the owning backend.
//!
//! Each request loads the table once. Names are checked against the session's role before
//! anything is forwarded: a hidden item is also unreachable.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CallToolResponse, ClientRequest, CompleteRequest,
    CompleteRequestParams, CompleteResult, ErrorCode, GetPromptRequest, GetPromptRequestParams,
    GetPromptResponse, ReadResourceRequest, ReadResourceRequestParams, ReadResourceResponse,
    Reference, ServerResult, Tool,
};
use tokio_util::sync::CancellationToken;

use super::Gateway;
use crate::backend::Backend;
use crate::backend::Caller;
use crate::backend::listed::Listed;
use crate::table::{RoleView, Table, Target, prefix_of};

/// How long after a failed start a list does not try to discover that server again.
const DISCOVERY_BACKOFF: Duration = Duration::from_secs(30);

/// The one error for a name a session cannot use, whether nothing has it or its role may not
/// see it: telling the two apart would tell a restricted client what exists. When a server
/// whose start failed before it ever listed owns the name by its prefix, and the role could
/// see the name, the error carries that failure: "unknown tool" alone would hide why a tool
/// the user configured is gone.
fn unknown(table: &Table, kind: &str, name: &str, role: Option<&str>) -> McpError {
    if kind == "tool"
        && let Some(held) = held_for(table, name, role)
    {
        return held;
    }
    let role_note = role
        .map(|role| format!(" (role `{role}`)"))
        .unwrap_or_default();
    let failed = table
        .roles
        .allows(role, name)
        .then(|| failed_owner(table, name))
        .flatten();
    let message = match failed {
        // The failure names the server and where its output is.
        Some(why) => {
            format!("unknown {kind} `{name}`{role_note}, its server's lists are unknown: {why}")
        }
        None => format!("unknown {kind} `{name}`{role_note}"),
    };
    McpError::invalid_params(message, None)
}

/// The answer to a call of a tool held back by its pin, for a role that would see it: what
/// changed and how to accept it (the user's step; nothing a client can do).
fn held_for(table: &Table, name: &str, role: Option<&str>) -> Option<McpError> {
    let change = table
        .catalog
        .pin_changes
        .iter()
        .find(|c| c.held && c.exposed == name)?;
    // Judged as the role would see it: under its exposed name, with the server's annotations.
    let mut tool: rmcp::model::Tool = serde_json::from_value(change.change.current.clone()).ok()?;
    tool.name = change.exposed.clone().into();
    if !table.roles.allows_tool(role, &Listed::known(tool)) {
        return None;
    }
    let (server, original) = (&change.server, &change.change.tool);
    let what = change.change.what().join(", ");
    let message = if change.change.pinned.is_none() {
        format!(
            "tool `{name}` is held back: server `{server}` did not have it when its tools were \
             pinned. Review it with `mcpgwctl diff {server}` and accept it with \
             `mcpgwctl approve {server} {original}`"
        )
    } else {
        format!(
            "tool `{name}` is held back: its definition changed since it was approved ({what}). \
             Review it with `mcpgwctl diff {server}` and accept it with \
             `mcpgwctl approve {server} {original}`"
        )
    };
    Some(McpError::invalid_params(message, None))
}

/// The failure of a server that never listed because its start failed, and whose prefix
/// `name` carries (the longest such prefix). An unprefixed server is never named: it could own
/// any name, so a role that sees none of it would learn of it.
fn failed_owner(table: &Table, name: &str) -> Option<String> {
    never_listed(table)
        .filter_map(|b| {
            let prefix = prefix_of(&table.config, b);
            let owns = !prefix.is_empty()
                && name
                    .strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('_'));
            owns.then_some((prefix.len(), b))
        })
        .max_by_key(|(len, _)| *len)
        .and_then(|(_, b)| b.failure())
}

/// The same for a resource, as the protocol spells it.
fn resource_not_found(uri: &str) -> McpError {
    McpError::new(
        ErrorCode::RESOURCE_NOT_FOUND,
        format!("resource `{uri}` not found"),
        Some(serde_json::json!({ "uri": uri })),
    )
}

/// How long a list waits for discovery unless the config says: long enough for servers that
/// start in a second or two to be in a first list, short enough that one hanging server does
/// not hold every client's list for its startup timeout. 2 s; `MCPGW_DISCOVERY_WAIT_MS`
/// overrides it (the tests wait longer, so that a busy machine does not change their lists).
fn default_discovery_wait() -> Duration {
    static WAIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    Duration::from_millis(*WAIT.get_or_init(|| super::env_limit("MCPGW_DISCOVERY_WAIT_MS", 2000)))
}

/// Enabled servers whose lists are unknown (no cache, never listed).
fn never_listed(table: &Table) -> impl Iterator<Item = &Arc<Backend>> {
    table
        .backends
        .values()
        .filter(|b| b.spec.enabled && b.schema().is_none())
}

/// Enabled servers whose lists are unknown and due for discovery.
fn undiscovered(table: &Table) -> impl Iterator<Item = &Arc<Backend>> {
    never_listed(table).filter(|b| b.discovery_due(DISCOVERY_BACKOFF))
}

fn unexpected(backend: &Backend, what: &str, result: ServerResult) -> McpError {
    McpError::internal_error(
        format!(
            "server `{}` answered {what} with an unexpected result: {result:?}",
            backend.name
        ),
        None,
    )
}

impl Gateway {
    /// Starts every enabled server whose lists are unknown, in parallel, each bounded by its
    /// startup timeout, and waits for them at most `wait` (`None`: until all are done). The
    /// starts run on their own tasks, so one not waited for goes on: its lists arrive with a
    /// new table and list_changed. A failure is logged by the start and the server is just not
    /// listed.
    pub(crate) async fn discover_missing(&self, wait: Option<Duration>) {
        let table = self.table();
        let missing: Vec<Arc<Backend>> = undiscovered(&table).cloned().collect();
        if missing.is_empty() {
            return;
        }
        let all = futures::future::join_all(missing.iter().map(|b| b.start_now()));
        match wait {
            Some(wait) => {
                let _ = tokio::time::timeout(wait, all).await;
            }
            None => {
                all.await;
            }
        }
    }

    /// Whether a list now would first have to discover servers (lists then wait for them).
    pub(crate) fn discovery_pending(&self, table: &Table) -> bool {
        undiscovered(table).next().is_some()
    }

    /// What `role` sees, after waiting up to `discovery_wait` for servers that have no cached
    /// lists yet: one server that hangs must not hold every client's list for its whole
    /// startup timeout.
    pub async fn view(&self, role: Option<&str>) -> Arc<RoleView> {
        let wait = self
            .table()
            .config
            .discovery_wait
            .unwrap_or_else(default_discovery_wait);
        self.discover_missing(Some(wait)).await;
        self.table().view(role)
    }

    /// Servers missing from the lists because their start failed before they ever listed.
    pub fn unlisted_failures(&self) -> Vec<crate::protocol::ServerFailure> {
        never_listed(&self.table())
            .filter_map(|b| {
                Some(crate::protocol::ServerFailure {
                    server: b.name.clone(),
                    reason: b.failure()?,
                })
            })
            .collect()
    }

    pub async fn list_tools(&self, role: Option<&str>) -> Vec<Tool> {
        let view = self.view(role).await;
        view.tools
            .iter()
            .map(|listed| listed.item.clone())
            .collect()
    }

    /// Looks `name` up in the table, discovering unknown servers once if it is not there (a
    /// client may call what it knows from an earlier session before listing).
    async fn resolve<T: Clone>(
        &self,
        lookup: impl Fn(&Table) -> Option<T>,
    ) -> (Arc<Table>, Option<T>) {
        let table = self.table();
        if let Some(found) = lookup(&table) {
            return (table, Some(found));
        }
        // A call may need a server that is still being discovered: wait for it to be known.
        self.discover_missing(None).await;
        let table = self.table();
        let found = lookup(&table);
        (table, found)
    }

    pub async fn call_tool(
        &self,
        role: Option<&str>,
        mut params: CallToolRequestParams,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<CallToolResponse, McpError> {
        let name = params.name.to_string();
        // Whether the role may call it is read with the target, from the same entry (its
        // annotations may be what the role selects by).
        let (table, found) = self
            .resolve(|t| {
                let entry = t.catalog.tools.get(&name)?;
                Some((entry.target.clone(), t.roles.allows_tool(role, &entry.item)))
            })
            .await;
        let Some((target, true)) = found else {
            return Err(unknown(&table, "tool", &name, role));
        };
        let call_timeout = table.config.call_timeout;
        drop(table);
        let (backend, original) = match target {
            Target::Builtin(builtin) => {
                return Ok(CallToolResponse::Complete(
                    self.call_builtin(builtin, role, caller.session).await,
                ));
            }
            Target::Command(command) => {
                let run = crate::backend::command::run(&command, params.arguments.as_ref());
                // A cancelled call drops the run, which kills the command's process group.
                return tokio::select! {
                    result = run => result.map(CallToolResponse::Complete),
                    () = ct.cancelled() => Err(McpError::internal_error("request cancelled", None)),
                };
            }
            Target::Rust(tool) => {
                let arguments = params.arguments.unwrap_or_default();
                let name = tool.name.clone();
                let call = tool.call(arguments);
                // A cancelled or timed-out call drops the call, which aborts the handler's task.
                let bounded = async move {
                    if call_timeout.is_zero() {
                        return call.await;
                    }
                    tokio::time::timeout(call_timeout, call)
                        .await
                        .unwrap_or_else(|_| {
                            Err(format!(
                                "the tool `{name}` did not answer within {} s",
                                call_timeout.as_secs_f64()
                            ))
                        })
                };
                return tokio::select! {
                    result = bounded => Ok(CallToolResponse::Complete(
                        crate::tools::call_result(result),
                    )),
                    () = ct.cancelled() => Err(McpError::internal_error("request cancelled", None)),
                };
            }
            Target::Backend { backend, original } => (backend, original),
        };
        params.name = original.into();
        let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
        match self.forward(&backend, request, caller, ct).await? {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            other => Err(unexpected(&backend, "tools/call", other)),
        }
    }

    pub async fn get_prompt(
        &self,
        role: Option<&str>,
        mut params: GetPromptRequestParams,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<GetPromptResponse, McpError> {
        let (backend, original) = self.prompt_target(role, &params.name).await?;
        params.name = original;
        let request = ClientRequest::GetPromptRequest(GetPromptRequest::new(params));
        match self.forward(&backend, request, caller, ct).await? {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            other => Err(unexpected(&backend, "prompts/get", other)),
        }
    }

    /// The backend and server-side name of the prompt exposed as `name`, if `role` may use it.
    async fn prompt_target(
        &self,
        role: Option<&str>,
        name: &str,
    ) -> Result<(Arc<Backend>, String), McpError> {
        let (table, target) = self
            .resolve(|t| t.catalog.prompts.get(name).map(|e| e.target.clone()))
            .await;
        let Some(Target::Backend { backend, original }) =
            target.filter(|_| table.roles.allows(role, name))
        else {
            return Err(unknown(&table, "prompt", name, role));
        };
        Ok((backend, original))
    }

    /// Sends `request` to the instance of `backend` that serves `caller`.
    async fn forward(
        &self,
        backend: &Arc<Backend>,
        request: ClientRequest,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<ServerResult, McpError> {
        self.instance_for(backend, &caller)
            .request(request, caller, ct)
            .await
    }

    /// The backend serving `uri` for `role`, or the MCP error for an unknown/hidden resource.
    pub(crate) async fn resource_backend(
        &self,
        role: Option<&str>,
        uri: &str,
    ) -> Result<Arc<Backend>, McpError> {
        let (table, backend) = self
            .resolve(|t| t.catalog.resource_owner(uri).cloned())
            .await;
        let Some(backend) = backend.filter(|b| table.allows_resource(role, &b.name, uri)) else {
            return Err(resource_not_found(uri));
        };
        Ok(backend)
    }

    /// Whether `role` may see a resource at `uri`, without discovering anything (for answers
    /// that cannot wait, such as a subscription's acknowledgment): it does in the current
    /// table, or servers not discovered yet may serve it.
    pub fn may_see_resource(&self, role: Option<&str>, uri: &str) -> bool {
        let table = self.table();
        match table.catalog.resource_owner(uri) {
            Some(backend) => table.allows_resource(role, &backend.name, uri),
            None => self.discovery_pending(&table),
        }
    }

    pub async fn read_resource(
        &self,
        role: Option<&str>,
        params: ReadResourceRequestParams,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<ReadResourceResponse, McpError> {
        let backend = self.resource_backend(role, &params.uri).await?;
        let request = ClientRequest::ReadResourceRequest(ReadResourceRequest::new(params));
        match self.forward(&backend, request, caller, ct).await? {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            other => Err(unexpected(&backend, "resources/read", other)),
        }
    }

    /// Completion of a prompt's or a resource template's argument, by the server that owns it.
    pub async fn complete(
        &self,
        role: Option<&str>,
        mut params: CompleteRequestParams,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<CompleteResult, McpError> {
        let backend = match &mut params.r#ref {
            Reference::Prompt(prompt) => {
                let (backend, original) = self.prompt_target(role, &prompt.name).await?;
                prompt.name = original;
                backend
            }
            Reference::Resource(template) => {
                let uri = template.uri.clone();
                let (table, backend) = self
                    .resolve(|t| t.catalog.template_owner(&uri).cloned())
                    .await;
                let Some(backend) = backend.filter(|b| table.allows_resource(role, &b.name, &uri))
                else {
                    return Err(unknown(&table, "resource template", &uri, role));
                };
                backend
            }
            other => {
                return Err(McpError::invalid_params(
                    format!("unsupported completion reference: {other:?}"),
                    None,
                ));
            }
        };
        let request = ClientRequest::CompleteRequest(CompleteRequest::new(params));
        match self.forward(&backend, request, caller, ct).await? {
            ServerResult::CompleteResult(r) => Ok(r),
            other => Err(unexpected(&backend, "completion/complete", other)),
        }
    }
}
