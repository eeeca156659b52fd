//! Reaching a backend, one file per transport: a child process on stdio ([`stdio`]: its
//! pipes, shared by rmcp and the byte path), a Streamable HTTP endpoint ([`streamable_http`],
//! rmcp's client), or a legacy HTTP+SSE endpoint ([`sse`], ours: rmcp 3 has none). Everything
//! after the connection (initialize, lists, calls) is the same.
//!
//! **Architecture invariant:** nothing here knows sessions, the gateway or the table; a
//! transport is given a backend and hands back a connected rmcp client.

mod asks;
pub(crate) mod sse;
pub(crate) mod stdio;
mod streamable_http;
mod watches;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::async_rw::AsyncRwTransport;
use tokio_util::sync::CancellationToken;

use self::stdio::Link;
use super::child::{self, ChildHandle};
use super::handler::Handler;
use super::{Backend, BackendError};
use crate::config::Transport;

/// rmcp's own line limit is off: our transports enforce `max_message` before rmcp sees a line,
/// and rmcp's default (16 MiB, dropping longer lines silently) would hang the call.
const MAX_LINE: usize = usize::MAX;

/// A connected, initialized backend and, for stdio, its process and byte-path link.
pub(super) struct Connected {
    pub service: RunningService<RoleClient, Handler>,
    pub child: Option<ChildHandle>,
    pub link: Option<Arc<Link>>,
    pub fault: Fault,
}

/// Why the gateway ended a backend's connection itself (it sent a message over
/// `max_message`): set by the transport before it lets go, read by whatever then reports the
/// backend gone, so that the calls it fails say why rather than "it may have crashed".
#[derive(Clone, Default)]
pub(crate) struct Fault(Arc<OnceLock<String>>);

impl Fault {
    /// Records `why` (what the server did, "sent …"); the first reason stays.
    pub fn set(&self, why: String) {
        let _ = self.0.set(why);
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// How a transport bounds what one backend sends.
pub(crate) struct Limits {
    pub server: String,
    /// The backend's `max_message`, read for every message (a reload may change it).
    pub max_message: Arc<AtomicUsize>,
    /// Where the transport says why it ended the connection.
    pub fault: Fault,
    /// Stops the child's process group (stdio); a remote connection is just dropped.
    pub stop: Option<CancellationToken>,
}

impl Limits {
    pub fn max_message(&self) -> usize {
        self.max_message.load(Ordering::Relaxed)
    }

    /// The server sent a message over `max`: logs it, records why and stops the process; the
    /// transport then drops the connection. Returns the reason.
    pub fn exceeded(&self, max: usize) -> String {
        let why = format!(
            "sent a message over max_message ({})",
            crate::config::display_size(max)
        );
        tracing::error!(server = %self.server, max_message = max, "the server {why}; stopping it");
        self.fault.set(why.clone());
        if let Some(stop) = &self.stop {
            stop.cancel();
        }
        why
    }
}

pub(super) async fn connect(backend: &Arc<Backend>) -> Result<Connected, BackendError> {
    let handler = |link: Option<&Arc<Link>>| Handler::new(Arc::downgrade(backend), link);
    let spec = &backend.spec;
    let fault = Fault::default();
    let limits = |stop| Limits {
        server: backend.name.clone(),
        max_message: backend.limits.max_message.clone(),
        fault: fault.clone(),
        stop,
    };
    let start_error = |reason: String| BackendError::Start {
        name: backend.name.clone(),
        reason,
    };
    match spec.transport {
        Transport::Stdio => {
            let client_env = backend.owner.as_ref().map_or(&[][..], |o| &o.env[..]);
            let (stdout, stdin, child) = child::spawn(spec, client_env, backend.stderr.clone())
                .map_err(|e| start_error(format!("cannot run `{}`: {e}", spec.command)))?;
            let limits = limits(Some(child.stopper()));
            let (transport, link) = stdio::connect(stdout, stdin, child.exit(), limits);
            match handler(Some(&link)).serve(transport).await {
                Ok(service) => Ok(Connected {
                    service,
                    child: Some(child),
                    link: Some(link),
                    fault,
                }),
                Err(e) => {
                    let exit = child.stop().await;
                    let why = fault.get().map(|why| format!("; it {why}"));
                    // What it wrote to stderr says why, but may carry secrets: the error (which
                    // reaches MCP clients) points to it instead of quoting it.
                    let detail = match backend.stderr.tail(1).is_empty() {
                        true => String::new(),
                        false => format!("; its stderr: `mcpgwctl logs {}`", backend.name),
                    };
                    let why = why.unwrap_or_default();
                    Err(start_error(format!("{e} ({exit}){why}{detail}")))
                }
            }
        }
        // Errors name the URL by its origin only: paths and queries often carry credentials.
        Transport::StreamableHttp | Transport::Sse => {
            let url = spec.url.clone().unwrap_or_default();
            let shown = spec.redacted_url().unwrap_or_default();
            let fail = |e: String| start_error(format!("{shown}: {}", redact(&e, &url)));
            let service = if spec.transport == Transport::Sse {
                let (read, write) = sse::connect(&url, &spec.headers, limits(None))
                    .await
                    .map_err(fail)?;
                let transport =
                    AsyncRwTransport::new_client(read, write).with_max_line_length(MAX_LINE);
                handler(None).serve(transport).await
            } else {
                let transport =
                    streamable_http::transport(&url, &spec.headers).map_err(start_error)?;
                handler(None).serve(transport).await
            };
            Ok(Connected {
                service: service.map_err(|e| fail(e.to_string()))?,
                child: None,
                link: None,
                fault,
            })
        }
    }
}

/// Library errors may quote the URL they failed on, in any spelling; paths, queries and user
/// info are possible secrets.
fn redact(message: &str, url: &str) -> String {
    let message = match url.is_empty() {
        true => message.to_string(),
        false => message.replace(url, "<url>"),
    };
    crate::config::redact_urls(&message).into_owned()
}
