//! Multi round-trip requests (MRTR) for 2026-07-28 clients, bridged to initialize-era backends.
//!
//! A 2026-07-28 client may not be sent server→client requests: a server needing sampling,
//! elicitation or roots answers the client's `tools/call` (`prompts/get`, `resources/read`)
//! with an `input_required` result, and the client retries the same request with the answers
//! and the `requestState` it was given. Backends speak the earlier protocols and send those
//! requests mid-call. The bridge joins the two:
//!
//! - A modern client's request runs upstream as a [`BridgedCall`] (`call.rs`) whose caller is a
//!   *loopback* rmcp peer (`loopback.rs`): [`Handler::relay`](crate::backend) sends it the
//!   backend's request exactly as it would to an initialize-era client (capability check,
//!   cancellation included), and the loopback's client side ([`Asker`](loopback::Asker)) turns
//!   it into an input request of the call.
//! - The client's request waits for the call's result or its first input request. On an input
//!   request the call is *parked* (`parking.rs`) under a fresh random request state and moved to
//!   its own task, which keeps the upstream request (and the backend's pending
//!   sampling/elicitation) alive; the client gets `input_required`.
//! - A retry carrying that state resumes the call: the answers go back to the backend's pending
//!   requests, and the retry waits like the first request did (result, or another round).
//!   A state is good for one retry, only by the role it was issued to, only for the same
//!   tool, prompt or resource.
//! - A parked call whose client does not retry within [`input_timeout`] (or whose daemon is
//!   stopping) is dropped, which cancels the upstream request; its state is then unknown.
//!
//! This file holds the entry points; the files:
//! - `parking.rs`: the parked calls by request state, and what a state is bound to;
//! - `call.rs`: one bridged request across its rounds;
//! - `loopback.rs`: the in-process rmcp server/client pair a call's backend talks to.

mod call;
mod loopback;
mod parking;

pub(super) use parking::Bridges;

use std::time::Duration;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, GetPromptRequestParams, GetPromptResponse,
    InputResponses, ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ServerResult,
};
use rmcp::service::{RequestContext, RoleServer};
use tokio::sync::oneshot;

use super::{ClientIdentity, Gateway};
use crate::backend::listed::ResultMembers;
use call::{BridgedCall, Round, Upstream};
use parking::Continues;

/// How long a parked call waits for its client's retry. `MCPGW_INPUT_TIMEOUT_MS` overrides it
/// (tests use that); the default leaves a person time to answer an elicitation.
fn input_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT
        .get_or_init(|| Duration::from_millis(super::env_limit("MCPGW_INPUT_TIMEOUT_MS", 300_000)))
}

/// Whether `context` is a request of a client that cannot be sent server→client requests
/// (protocol 2026-07-28 or later): its tools/call, prompts/get and resources/read go through
/// the bridge.
pub fn applies(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}

fn unknown_state() -> McpError {
    McpError::invalid_params(
        "unknown or expired requestState: the request it continued was answered, abandoned or \
         timed out waiting for input; send the request again without requestState",
        None,
    )
}

fn abandoned() -> McpError {
    McpError::internal_error("request cancelled", None)
}

impl Gateway {
    /// `tools/call` of a 2026-07-28 client, see the module doc.
    pub async fn bridged_call_tool(
        &self,
        role: Option<&str>,
        stateless_client: Option<ClientIdentity>,
        mut params: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (answers, state) = (params.input_responses.take(), params.request_state.take());
        let continues = Continues::Tool(params.name.to_string());
        let upstream = Upstream::Tool(params);
        match self
            .bridged(
                (role, stateless_client),
                continues,
                upstream,
                answers,
                state,
                context,
            )
            .await?
        {
            ServerResult::CallToolResult(r) => Ok(CallToolResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(CallToolResponse::InputRequired(r)),
            ServerResult::CreateTaskResult(r) => Ok(CallToolResponse::Task(r)),
            other => Err(unexpected("tools/call", other)),
        }
    }

    /// `prompts/get` of a 2026-07-28 client, see the module doc.
    pub async fn bridged_get_prompt(
        &self,
        role: Option<&str>,
        stateless_client: Option<ClientIdentity>,
        mut params: GetPromptRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let (answers, state) = (params.input_responses.take(), params.request_state.take());
        let continues = Continues::Prompt(params.name.clone());
        let upstream = Upstream::Prompt(params);
        match self
            .bridged(
                (role, stateless_client),
                continues,
                upstream,
                answers,
                state,
                context,
            )
            .await?
        {
            ServerResult::GetPromptResult(r) => Ok(GetPromptResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(GetPromptResponse::InputRequired(r)),
            other => Err(unexpected("prompts/get", other)),
        }
    }

    /// `resources/read` of a 2026-07-28 client, see the module doc.
    pub async fn bridged_read_resource(
        &self,
        role: Option<&str>,
        stateless_client: Option<ClientIdentity>,
        mut params: ReadResourceRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (answers, state) = (params.input_responses.take(), params.request_state.take());
        let continues = Continues::Resource(params.uri.clone());
        let upstream = Upstream::Resource(params);
        match self
            .bridged(
                (role, stateless_client),
                continues,
                upstream,
                answers,
                state,
                context,
            )
            .await?
        {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            other => Err(unexpected("resources/read", other)),
        }
    }

    /// `who`: the client's role and, if it has no session, its identity (see
    /// `BridgedCall::start`).
    async fn bridged(
        &self,
        who: (Option<&str>, Option<ClientIdentity>),
        continues: Continues,
        upstream: Upstream,
        answers: Option<InputResponses>,
        state: Option<String>,
        context: &RequestContext<RoleServer>,
    ) -> Result<ServerResult, McpError> {
        let round = Round {
            answers: answers.unwrap_or_default(),
            peer: context.peer.clone(),
            progress_token: context.meta.get_progress_token(),
            ct: context.ct.clone(),
            members: context.extensions.get::<ResultMembers>().cloned(),
        };
        if let Some(state) = state {
            let resume = self.bridges.take(&state, who.0, &continues)?;
            let (reply, result) = oneshot::channel();
            resume.send((round, reply)).map_err(|_| unknown_state())?;
            return result.await.unwrap_or_else(|_| Err(abandoned()));
        }
        if !round.answers.is_empty() {
            // Without a state they answer nothing of ours, and running the request anew is not
            // what a client continuing a request expects.
            return Err(McpError::invalid_params(
                "inputResponses without requestState: nothing is waiting for them",
                None,
            ));
        }
        let gateway = self.myself.upgrade().ok_or_else(abandoned)?;
        let mut call = BridgedCall::start(gateway, who, continues, upstream, context);
        let step = call.round(&round).await;
        call.settle(step)
    }
}

fn unexpected(what: &str, result: ServerResult) -> McpError {
    McpError::internal_error(
        format!("mcpgw: {what} ended with an unexpected result: {result:?}"),
        None,
    )
}
