//! Multi round-trip requests (MRTR) for 2026-07-28 clients, bridged to initialize-era backends.
//!
//! A 2026-07-28 client may not be sent server→client requests: a server needing sampling,
//! elicitation or roots answers the client's `tools/call` (`prompts/get`, `resources/read`)
//! with an `input_required` result, and the client retries the same request with the answers
//! and the `requestState` it was given. Backends speak the earlier protocols and send those
//! requests mid-call. The bridge joins the two:
//!
//! - A modern client's request runs upstream as a [`Call`] whose caller is a *loopback* rmcp
//!   peer: [`Handler::relay`](crate::backend) sends it the backend's request exactly as it would
//!   to an initialize-era client (capability check, cancellation included), and the loopback's
//!   client side ([`Asker`]) turns it into an input request of the call.
//! - The client's request waits for the call's result or its first input request. On an input
//!   request the call is *parked* under a fresh random request state and moved to its own task,
//!   which keeps the upstream request (and the backend's pending sampling/elicitation) alive;
//!   the client gets `input_required`.
//! - A retry carrying that state resumes the call: the answers go back to the backend's pending
//!   requests, and the retry waits like the first request did (result, or another round).
//!   A state is good for one retry, only by the role it was issued to, only for the same
//!   tool, prompt or resource.
//! - A parked call whose client does not retry within [`input_timeout`] (or whose daemon is
//!   stopping) is dropped, which cancels the upstream request; its state is then unknown.

// Sampling and roots are deprecated by SEP-2577 for the 2026-07-28 protocol; the bridge exists
// to serve backends that still use them.
#![allow(deprecated)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ClientResult, CreateMessageRequest,
    CreateMessageRequestParams, CreateMessageResult, ElicitRequest, ElicitRequestParams,
    ElicitResult, GetPromptRequestParams, GetPromptResponse, Implementation,
    InitializeRequestParams, InputRequest, InputRequests, InputRequiredResult, InputResponses,
    ListRootsResult, NumberOrString, ProgressNotificationParam, ProgressToken, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ServerResult,
};
use rmcp::service::{
    NotificationContext, Peer, RequestContext, RoleClient, RoleServer, RunningService,
};
use rmcp::{ClientHandler, ErrorData as McpError, ServerHandler};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Gateway;
use crate::backend::Caller;

/// How long a parked call waits for its client's retry. `MCPGW_INPUT_TIMEOUT_MS` overrides it
/// (tests use that); the default leaves a person time to answer an elicitation.
pub(crate) fn input_timeout() -> Duration {
    static TIMEOUT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *TIMEOUT.get_or_init(|| {
        std::env::var("MCPGW_INPUT_TIMEOUT_MS")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
            .unwrap_or(Duration::from_secs(300))
    })
}

/// Whether `context` is a request of a client that cannot be sent server→client requests
/// (protocol 2026-07-28 or later): its tools/call, prompts/get and resources/read go through
/// the bridge.
pub fn applies(context: &RequestContext<RoleServer>) -> bool {
    context
        .protocol_version()
        .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28)
}

/// The parked calls, by request state.
#[derive(Default)]
pub(super) struct Bridges {
    parked: Mutex<HashMap<String, Parked>>,
    /// Cancelled when the daemon stops: no retry can come any more.
    closed: CancellationToken,
}

struct Parked {
    role: Option<String>,
    origin: Origin,
    resume: oneshot::Sender<Resume>,
}

/// What a request state is bound to besides the role: the request it continues.
#[derive(Clone, PartialEq, Eq, Debug)]
enum Origin {
    Tool(String),
    Prompt(String),
    Resource(String),
}

/// The upstream request of a call, in the names the client used.
enum Upstream {
    Tool(CallToolRequestParams),
    Prompt(GetPromptRequestParams),
    Resource(ReadResourceRequestParams),
}

/// One client request taking part in a call: the first one or a retry.
struct Round {
    answers: InputResponses,
    peer: Peer<RoleServer>,
    progress_token: Option<ProgressToken>,
    ct: CancellationToken,
}

type Resume = (Round, oneshot::Sender<Result<ServerResult, McpError>>);

impl Bridges {
    /// Cancels every parked call and refuses to park more (the daemon is stopping).
    pub(super) fn close(&self) {
        self.closed.cancel();
        self.parked.lock().unwrap().clear();
    }

    /// Registers a call under a fresh, unguessable state.
    fn park(&self, role: Option<String>, origin: Origin) -> (String, oneshot::Receiver<Resume>) {
        let (resume, resumed) = oneshot::channel();
        let state = new_state();
        self.parked.lock().unwrap().insert(
            state.clone(),
            Parked {
                role,
                origin,
                resume,
            },
        );
        (state, resumed)
    }

    fn forget(&self, state: &str) {
        self.parked.lock().unwrap().remove(state);
    }

    /// Hands a retry to the call parked under `state`, if `role` may continue it.
    fn take(
        &self,
        state: &str,
        role: Option<&str>,
        origin: &Origin,
    ) -> Result<oneshot::Sender<Resume>, McpError> {
        let mut parked = self.parked.lock().unwrap();
        match parked.get(state) {
            // Another role's state is as unknown as a made-up one.
            Some(p) if p.role.as_deref() == role => {
                if p.origin != *origin {
                    return Err(McpError::invalid_params(
                        format!(
                            "requestState belongs to {}, not to {}: retry the request it was issued for",
                            p.origin, origin
                        ),
                        None,
                    ));
                }
                Ok(parked.remove(state).expect("present").resume)
            }
            _ => Err(unknown_state()),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Tool(name) => write!(f, "tools/call `{name}`"),
            Origin::Prompt(name) => write!(f, "prompts/get `{name}`"),
            Origin::Resource(uri) => write!(f, "resources/read `{uri}`"),
        }
    }
}

fn unknown_state() -> McpError {
    McpError::invalid_params(
        "unknown or expired requestState: the request it continued was answered, abandoned or \
         timed out waiting for input; send the request again without requestState",
        None,
    )
}

/// 256 random bits, hex: a handle to gateway state, nothing to decode.
fn new_state() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn abandoned() -> McpError {
    McpError::internal_error("request cancelled", None)
}

impl Gateway {
    /// `tools/call` of a 2026-07-28 client, see the module doc.
    pub async fn bridged_call_tool(
        &self,
        role: Option<&str>,
        mut params: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let (answers, state) = (params.input_responses.take(), params.request_state.take());
        let origin = Origin::Tool(params.name.to_string());
        let upstream = Upstream::Tool(params);
        match self
            .bridged(role, origin, upstream, answers, state, context)
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
        mut params: GetPromptRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let (answers, state) = (params.input_responses.take(), params.request_state.take());
        let origin = Origin::Prompt(params.name.clone());
        let upstream = Upstream::Prompt(params);
        match self
            .bridged(role, origin, upstream, answers, state, context)
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
        mut params: ReadResourceRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let (answers, state) = (params.input_responses.take(), params.request_state.take());
        let origin = Origin::Resource(params.uri.clone());
        let upstream = Upstream::Resource(params);
        match self
            .bridged(role, origin, upstream, answers, state, context)
            .await?
        {
            ServerResult::ReadResourceResult(r) => Ok(ReadResourceResponse::Complete(r)),
            ServerResult::InputRequiredResult(r) => Ok(ReadResourceResponse::InputRequired(r)),
            other => Err(unexpected("resources/read", other)),
        }
    }

    async fn bridged(
        &self,
        role: Option<&str>,
        origin: Origin,
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
        };
        if let Some(state) = state {
            let resume = self.bridges.take(&state, role, &origin)?;
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
        let mut call = Call::start(gateway, role, origin, upstream, context);
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

/// Where a call's progress goes: the client request of the current round, if it asked for it.
type ProgressTarget = Arc<Mutex<Option<(Peer<RoleServer>, ProgressToken)>>>;

type UpstreamFuture = Pin<Box<dyn Future<Output = Result<ServerResult, McpError>> + Send>>;

/// A server→client request of the backend, waiting for the client's answer.
struct Ask {
    request: InputRequest,
    reply: oneshot::Sender<Result<ClientResult, McpError>>,
}

// Short-lived, moved once or twice per round: not worth a box.
#[allow(clippy::large_enum_variant)]
enum Step {
    Done(Result<ServerResult, McpError>),
    Input(InputRequests),
    Abandoned,
}

/// One bridged request, across all its rounds.
struct Call {
    gateway: Arc<Gateway>,
    /// Its own session id (never registered): per-client instances it starts live as long as
    /// the call, not as long as the HTTP request that began it.
    session: u64,
    role: Option<String>,
    origin: Origin,
    upstream: Option<UpstreamFuture>,
    finished: Option<Result<ServerResult, McpError>>,
    asks: mpsc::UnboundedReceiver<Ask>,
    /// Input requests sent to the client and not answered yet, by key.
    outstanding: BTreeMap<String, Ask>,
    next_key: u64,
    /// Where progress goes: the client request of the current round, if it asked for progress.
    progress: ProgressTarget,
    _loopback: (
        RunningService<RoleServer, Nobody>,
        RunningService<RoleClient, Asker>,
    ),
}

impl Call {
    fn start(
        gateway: Arc<Gateway>,
        role: Option<&str>,
        origin: Origin,
        upstream: Upstream,
        context: &RequestContext<RoleServer>,
    ) -> Self {
        let session = gateway.sessions.new_id();
        let (ask, asks) = mpsc::unbounded_channel();
        let progress = Arc::new(Mutex::new(None));

        // The loopback: an initialize-era client with the capabilities this client declared.
        let (to_client, from_server) = futures::channel::mpsc::channel(16);
        let (to_server, from_client) = futures::channel::mpsc::channel(16);
        let client_info = context
            .client_info()
            .unwrap_or_else(|| Implementation::new("unknown", "0"));
        let info = InitializeRequestParams::new(
            context.client_capabilities().unwrap_or_default(),
            client_info,
        )
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE);
        let server = rmcp::service::serve_directly(Nobody, (to_client, from_client), Some(info));
        let asker = Asker {
            asks: ask,
            progress: progress.clone(),
        };
        let client = rmcp::service::serve_directly(asker, (to_server, from_server), None);

        let caller = Caller {
            session,
            peer: server.peer().clone(),
            // Always some: whether progress reaches the client is decided per round.
            progress_token: Some(ProgressToken(NumberOrString::Number(0))),
            last_progress: None,
            meta: crate::backend::forwarded_meta(&context.meta),
        };
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
        Call {
            gateway,
            session,
            role: role_owned,
            origin,
            upstream: Some(upstream),
            finished: None,
            asks,
            outstanding: BTreeMap::new(),
            next_key: 1,
            progress,
            _loopback: (server, client),
        }
    }

    /// Serves one client request: applies its answers, then waits for the result, new input
    /// requests, or the client giving up.
    async fn round(&mut self, round: &Round) -> Step {
        self.answer(&round.answers);
        *self.progress.lock().unwrap() = round
            .progress_token
            .clone()
            .map(|token| (round.peer.clone(), token));
        let step = self.wait(&round.ct).await;
        *self.progress.lock().unwrap() = None;
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
    fn settle(self, step: Step) -> Result<ServerResult, McpError> {
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
                let (state, resumed) = bridges.park(self.role.clone(), self.origin.clone());
                tracing::debug!(request = %self.origin, inputs = requests.len(), "input required");
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
                    tracing::debug!(request = %self.origin, "no retry came for the input required: cancelled");
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

impl Drop for Call {
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

/// The loopback's server side: never asked anything (its peer is only used to send).
struct Nobody;

impl ServerHandler for Nobody {}

/// The loopback's client side: what a backend asks the call's client becomes an input request.
struct Asker {
    asks: mpsc::UnboundedSender<Ask>,
    progress: ProgressTarget,
}

impl Asker {
    async fn ask(
        &self,
        request: InputRequest,
        context: &RequestContext<RoleClient>,
    ) -> Result<ClientResult, McpError> {
        let (reply, answer) = oneshot::channel();
        self.asks
            .send(Ask { request, reply })
            .map_err(|_| abandoned())?;
        tokio::select! {
            answer = answer => answer.unwrap_or_else(|_| Err(McpError::internal_error(
                "mcpgw: the client did not answer (its request was abandoned or timed out)",
                None,
            ))),
            // The backend withdrew its request: so is the input request (dropping `answer`).
            () = context.ct.cancelled() => Err(abandoned()),
        }
    }
}

fn wrong_answer(result: ClientResult) -> McpError {
    McpError::internal_error(
        format!("mcpgw: unexpected answer from the client: {result:?}"),
        None,
    )
}

impl ClientHandler for Asker {
    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        let request = InputRequest::CreateMessage(CreateMessageRequest::new(params));
        match self.ask(request, &context).await? {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            other => Err(wrong_answer(other)),
        }
    }

    async fn create_elicitation(
        &self,
        params: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let request = InputRequest::Elicitation(ElicitRequest::new(params));
        match self.ask(request, &context).await? {
            ClientResult::ElicitResult(result) => Ok(result),
            other => Err(wrong_answer(other)),
        }
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        let request = InputRequest::ListRoots(Default::default());
        match self.ask(request, &context).await? {
            ClientResult::ListRootsResult(result) => Ok(result),
            other => Err(wrong_answer(other)),
        }
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let target = self.progress.lock().unwrap().clone();
        if let Some((peer, token)) = target {
            params.progress_token = token;
            let _ = peer.notify_progress(params).await;
        }
    }
}
