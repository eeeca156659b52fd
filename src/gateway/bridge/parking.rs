//! The parking registry: calls waiting for their client's retry, by request state, and what a
//! state is bound to (the role it was issued to, the request it continues).

use std::collections::HashMap;
use std::sync::Mutex;

use rmcp::ErrorData as McpError;
use rmcp::model::ServerResult;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::call::Round;
use super::unknown_state;

/// Calls of 2026-07-28 clients that may wait for their retry at once, daemon-wide: each keeps
/// a request open on a backend (and may hold a per-client instance) for up to the input
/// timeout. 256; `MCPGW_MAX_PARKED` overrides it (tests use that).
pub(super) fn max_parked() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| crate::gateway::env_limit("MCPGW_MAX_PARKED", 256) as usize)
}

/// The parked calls, by request state.
#[derive(Default)]
pub(in crate::gateway) struct Bridges {
    parked: Mutex<HashMap<String, Parked>>,
    /// Cancelled when the daemon stops: no retry can come any more.
    pub(super) closed: CancellationToken,
}

struct Parked {
    role: Option<String>,
    continues: Continues,
    resume: oneshot::Sender<Resume>,
}

/// What a request state is bound to besides the role: the request it continues.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(super) enum Continues {
    Tool(String),
    Prompt(String),
    Resource(String),
}

/// What a parked call is resumed with: the retry's round, and where the retry's answer goes.
pub(super) type Resume = (Round, oneshot::Sender<Result<ServerResult, McpError>>);

impl Bridges {
    /// Cancels every parked call and refuses to park more (the daemon is stopping).
    pub(in crate::gateway) fn close(&self) {
        self.closed.cancel();
        self.parked.lock().unwrap().clear();
    }

    /// Registers a call under a fresh, unguessable state.
    /// `None` when [`max_parked`] calls already wait: each holds a backend request open.
    pub(super) fn park(
        &self,
        role: Option<String>,
        continues: Continues,
    ) -> Option<(String, oneshot::Receiver<Resume>)> {
        let (resume, resumed) = oneshot::channel();
        let state = new_state();
        let mut parked = self.parked.lock().unwrap();
        if parked.len() >= max_parked() {
            return None;
        }
        parked.insert(
            state.clone(),
            Parked {
                role,
                continues,
                resume,
            },
        );
        Some((state, resumed))
    }

    pub(super) fn forget(&self, state: &str) {
        self.parked.lock().unwrap().remove(state);
    }

    /// Hands a retry to the call parked under `state`, if `role` may continue it.
    pub(super) fn take(
        &self,
        state: &str,
        role: Option<&str>,
        continues: &Continues,
    ) -> Result<oneshot::Sender<Resume>, McpError> {
        let mut parked = self.parked.lock().unwrap();
        match parked.get(state) {
            // Another role's state is as unknown as a made-up one.
            Some(p) if p.role.as_deref() == role => {
                if p.continues != *continues {
                    return Err(McpError::invalid_params(
                        format!(
                            "requestState belongs to {}, not to {}: retry the request it was issued for",
                            p.continues, continues
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

impl std::fmt::Display for Continues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Continues::Tool(name) => write!(f, "tools/call `{name}`"),
            Continues::Prompt(name) => write!(f, "prompts/get `{name}`"),
            Continues::Resource(uri) => write!(f, "resources/read `{uri}`"),
        }
    }
}

/// 256 random bits, hex: a handle to gateway state, nothing to decode.
fn new_state() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
