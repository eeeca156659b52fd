//! One bridged request across its rounds: the upstream request running with the loopback as its
//! caller, the backend's input requests collected and answered, and the call parked between
//! rounds.

// Sampling and roots are deprecated by SEP-2577 for the 2026-07-28 protocol; the bridge exists
// to serve backends that still use them.
#![allow(deprecated)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, ClientResult, CreateMessageResult, ElicitResult, GetPromptRequestParams,
    InputRequest, InputRequests, InputRequiredResult, InputResponses, ListRootsResult,
    NumberOrString, ProgressToken, ReadResourceRequestParams, ServerResult,
};
use rmcp::service::{Peer, RequestContext, RoleServer};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::loopback::{self, Loopback};
use super::parking::{Continues, Resume};
use super::{abandoned, input_timeout};
use crate::backend::listed::ResultMembers;
use crate::backend::{Caller, ClientIdentity, EnvOf};
use crate::gateway::Gateway;

/// The upstream request of a call, in the names the client used.
pub(super) enum Upstream {
    Tool(CallToolRequestParams),
    Prompt(GetPromptRequestParams),
    Resource(ReadResourceRequestParams),
}

/// One client request taking part in a call: the first one or a retry.
pub(super) struct Round {
    pub(super) answers: InputResponses,
    pub(super) peer: Peer<RoleServer>,
    pub(super) progress_token: Option<ProgressToken>,
    pub(super) ct: CancellationToken,
    /// Where the round's client request wants the result's unknown members, if it does.
    pub(super) members: Option<ResultMembers>,
}

/// Where a call's progress goes: the client request of the current round, if it asked for it.
pub(super) type ProgressTarget = Arc<Mutex<Option<(Peer<RoleServer>, ProgressToken)>>>;

type UpstreamFuture = Pin<Box<dyn Future<Output = Result<ServerResult, McpError>> + Send>>;

/// A server→client request of the backend, waiting for the client's answer.
pub(super) struct Ask {
    pub(super) request: InputRequest,
    pub(super) reply: oneshot::Sender<Result<ClientResult, McpError>>,
}

// Short-lived, moved once or twice per round: not worth a box.
#[allow(clippy::large_enum_variant)]
pub(super) enum Step {
    Done(Result<ServerResult, McpError>),
    Input(InputRequests),
    Abandoned,
}

/// One bridged request, across all its rounds.
pub(super) struct BridgedCall {
    gateway: Arc<Gateway>,
    /// Its own session id (never registered): per-client instances it starts live as long as
    /// the call, not as long as the HTTP request that began it.
    session: u64,
    role: Option<String>,
    continues: Continues,
    upstream: Option<UpstreamFuture>,
    finished: Option<Result<ServerResult, McpError>>,
    asks: mpsc::UnboundedReceiver<Ask>,
    /// Input requests sent to the client and not answered yet, by key.
    outstanding: BTreeMap<String, Ask>,
    next_key: u64,
    /// Where progress goes: the client request of the current round, if it asked for progress.
    progress: ProgressTarget,
    /// Where the upstream request's result's unknown members go, until a round's request
    /// takes them with the result.
    members: ResultMembers,
    _loopback: Loopback,
}

impl BridgedCall {
    /// A new bridged request of a client with `role`, and if it has no session, its identity
    /// (its per-client instances are that identity's, else the call's own).
    pub(super) fn start(
        gateway: Arc<Gateway>,
        (role, stateless_client): (Option<&str>, Option<ClientIdentity>),
        continues: Continues,
        upstream: Upstream,
        context: &RequestContext<RoleServer>,
    ) -> Self {
        let session = gateway.sessions.new_id();
        let (ask, asks) = mpsc::unbounded_channel();
        let progress = Arc::new(Mutex::new(None));
        let (server, client) = loopback::connect(context, ask, progress.clone());
        let members = ResultMembers::default();

        // Always a progress token: whether progress reaches the client is decided per round.
        let caller = Caller::new(
            session,
            server.peer().clone(),
            Some(ProgressToken(NumberOrString::Number(0))),
            crate::backend::forwarded_meta(&context.meta),
        )
        .of_stateless_client(stateless_client)
        .keeping_result_members(Some(members.clone()))
        .taking_env_of(context.extensions.get::<EnvOf>().map(|of| of.0));
        let role_owned = role.map(str::to_owned);
        let upstream: UpstreamFuture = {
            let gateway = gateway.clone();
            let role = role_owned.clone();
            let ct = CancellationToken::new();
            Box::pin(async move {
                let role = role.as_deref();
                match upstream {
                    Upstream::Tool(p) => gateway
                        .call_tool(role, p, caller, ct)
                        .await
                        .map(ServerResult::from),
                    Upstream::Prompt(p) => gateway
                        .get_prompt(role, p, caller, ct)
                        .await
                        .map(ServerResult::from),
                    Upstream::Resource(p) => gateway
                        .read_resource(role, p, caller, ct)
                        .await
                        .map(ServerResult::from),
                }
            })
        };
        BridgedCall {
            gateway,
            session,
            role: role_owned,
            continues,
            upstream: Some(upstream),
            finished: None,
            asks,
            outstanding: BTreeMap::new(),
            next_key: 1,
            progress,
            members,
            _loopback: (server, client),
        }
    }

    /// Serves one client request: applies its answers, then waits for the result, new input
    /// requests, or the client giving up.
    pub(super) async fn round(&mut self, round: &Round) -> Step {
        self.answer(&round.answers);
        *self.progress.lock().unwrap() = round
            .progress_token
            .clone()
            .map(|token| (round.peer.clone(), token));
        let step = self.wait(&round.ct).await;
        *self.progress.lock().unwrap() = None;
        // The result goes to this round's request: so do its members rmcp does not know.
        if let (Step::Done(Ok(_)), Some(wanted)) = (&step, &round.members)
            && let Some(members) = self.members.take()
        {
            wanted.set(members);
        }
        step
    }

    fn answer(&mut self, answers: &InputResponses) {
        for (key, value) in answers {
            // Unknown keys answer requests the backend withdrew: nothing waits for them.
            let Some(ask) = self.outstanding.remove(key) else {
                continue;
            };
            let _ = ask.reply.send(decode(key, &ask.request, value.clone()));
        }
    }

    async fn wait(&mut self, ct: &CancellationToken) -> Step {
        enum Event {
            Finished(Result<ServerResult, McpError>),
            Ask(Option<Ask>),
            Cancelled,
        }
        loop {
            if let Some(result) = self.finished.take() {
                return Step::Done(result);
            }
            while let Ok(ask) = self.asks.try_recv() {
                self.add(ask);
            }
            let requests = self.live_requests();
            if !requests.is_empty() {
                return Step::Input(requests);
            }
            let Some(upstream) = self.upstream.as_mut() else {
                return Step::Done(Err(abandoned()));
            };
            let event = tokio::select! {
                biased;
                result = upstream => Event::Finished(result),
                ask = self.asks.recv() => Event::Ask(ask),
                () = ct.cancelled() => Event::Cancelled,
            };
            match event {
                Event::Finished(result) => {
                    self.upstream = None;
                    return Step::Done(result);
                }
                Event::Ask(Some(ask)) => {
                    self.add(ask);
                    // Requests raised together go out together: let the others arrive.
                    tokio::task::yield_now().await;
                }
                Event::Ask(None) | Event::Cancelled => return Step::Abandoned,
            }
        }
    }

    fn add(&mut self, ask: Ask) {
        let kind = match &ask.request {
            InputRequest::CreateMessage(_) => "sampling",
            InputRequest::Elicitation(_) => "elicitation",
            InputRequest::ListRoots(_) => "roots",
            _ => "input",
        };
        let key = format!("mcpgw-{kind}-{}", self.next_key);
        self.next_key += 1;
        self.outstanding.insert(key, ask);
    }

    /// The input requests still awaited by the backend (it may have withdrawn some).
    fn live_requests(&mut self) -> InputRequests {
        self.outstanding.retain(|_, ask| !ask.reply.is_closed());
        self.outstanding
            .iter()
            .map(|(key, ask)| (key.clone(), ask.request.clone()))
            .collect()
    }

    /// The answer to a round's client request; parks the call if it needs input.
    pub(super) fn settle(self, step: Step) -> Result<ServerResult, McpError> {
        match step {
            Step::Done(result) => result,
            Step::Abandoned => Err(abandoned()),
            Step::Input(requests) => {
                let bridges = &self.gateway.bridges;
                if bridges.closed.is_cancelled() {
                    return Err(McpError::internal_error(
                        "mcpgw is stopping: cannot wait for input",
                        None,
                    ));
                }
                let Some((state, resumed)) =
                    bridges.park(self.role.clone(), self.continues.clone())
                else {
                    // Dropping the call cancels its upstream request.
                    return Err(McpError::internal_error(
                        format!(
                            "mcpgw: too many requests wait for input ({}); answer or abandon \
                             some, or retry later",
                            super::parking::max_parked()
                        ),
                        None,
                    ));
                };
                tracing::debug!(
                    request = %self.continues,
                    inputs = requests.len(),
                    "input required"
                );
                let result = InputRequiredResult::new(Some(requests), Some(state.clone()));
                tokio::spawn(self.parked(state, resumed));
                Ok(ServerResult::InputRequiredResult(result))
            }
        }
    }

    /// Between rounds: keeps the upstream request going until the client retries, gives up
    /// (expiry), or the daemon stops. Dropping the call cancels the upstream request.
    async fn parked(mut self, state: String, mut resumed: oneshot::Receiver<Resume>) {
        let deadline = tokio::time::Instant::now() + input_timeout();
        let closed = self.gateway.bridges.closed.clone();
        enum Event {
            Resumed(Option<Resume>),
            Expired,
            Finished(Result<ServerResult, McpError>),
            Ask(Ask),
        }
        let resume = loop {
            let Self { upstream, asks, .. } = &mut self;
            let event = tokio::select! {
                biased;
                resume = &mut resumed => Event::Resumed(resume.ok()),
                () = closed.cancelled() => Event::Resumed(None),
                () = tokio::time::sleep_until(deadline) => Event::Expired,
                result = next(upstream) => Event::Finished(result),
                ask = asks.recv() => match ask {
                    Some(ask) => Event::Ask(ask),
                    None => Event::Resumed(None),
                },
            };
            match event {
                Event::Resumed(resume) => break resume,
                Event::Expired => {
                    tracing::debug!(request = %self.continues, "no retry came for the input required: cancelled");
                    break None;
                }
                Event::Finished(result) => {
                    self.upstream = None;
                    self.finished = Some(result);
                }
                Event::Ask(ask) => self.add(ask),
            }
        };
        self.gateway.bridges.forget(&state);
        let Some((round, reply)) = resume else {
            // A retry that raced the expiry now finds the state unknown.
            resumed.close();
            return;
        };
        let step = self.round(&round).await;
        let _ = reply.send(self.settle(step));
    }
}

/// The upstream result, once; pending forever after it came.
async fn next(upstream: &mut Option<UpstreamFuture>) -> Result<ServerResult, McpError> {
    match upstream.as_mut() {
        Some(upstream) => upstream.await,
        None => std::future::pending().await,
    }
}

impl Drop for BridgedCall {
    fn drop(&mut self) {
        // Stops the per-client instances the call started (its upstream request, dropped
        // with it, is cancelled by the backend's in-flight guard).
        self.gateway.leave(self.session);
    }
}

fn decode(
    key: &str,
    request: &InputRequest,
    value: serde_json::Value,
) -> Result<ClientResult, McpError> {
    let invalid = |e: serde_json::Error| {
        McpError::invalid_params(
            format!("mcpgw: the client's answer to input request `{key}` is invalid: {e}"),
            None,
        )
    };
    match request {
        InputRequest::CreateMessage(_) => serde_json::from_value::<CreateMessageResult>(value)
            .map(|r| ClientResult::CreateMessageResult(Box::new(r)))
            .map_err(invalid),
        InputRequest::Elicitation(_) => serde_json::from_value::<ElicitResult>(value)
            .map(ClientResult::ElicitResult)
            .map_err(invalid),
        InputRequest::ListRoots(_) => serde_json::from_value::<ListRootsResult>(value)
            .map(ClientResult::ListRootsResult)
            .map_err(invalid),
        other => Err(McpError::internal_error(
            format!("mcpgw: unsupported input request {other:?}"),
            None,
        )),
    }
}
