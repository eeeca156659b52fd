//! Reaching a backend, one file per transport: a child process on stdio ([`stdio`]: its
//! pipes, shared by rmcp and the byte path), a Streamable HTTP endpoint ([`streamable_http`],
//! rmcp's client), or a legacy HTTP+SSE endpoint ([`sse`], ours: rmcp 3 has none). Everything
//! after the connection (initialize, lists, calls) is the same.
//!
//! **Architecture invariant:** nothing here knows sessions, the gateway or the table; a
//! transport is given a backend and hands back a connected rmcp client.

pub(crate) mod sse;
pub(crate) mod stdio;
mod streamable_http;

use std::sync::Arc;

use rmcp::service::{RoleClient, RunningService, ServiceExt};
use rmcp::transport::async_rw::AsyncRwTransport;

use self::stdio::Link;
use super::child::{self, ChildHandle};
use super::handler::Handler;
use super::{Backend, BackendError};
use crate::config::Transport;

/// Lines on stdio are not limited by the gateway: a backend's answer is passed on whole or not
/// at all, and rmcp's default (16 MiB, dropping longer lines silently) would hang the call.
const MAX_LINE: usize = usize::MAX;

/// A connected, initialized backend and, for stdio, its process and byte-path link.
pub(super) struct Connected {
    pub service: RunningService<RoleClient, Handler>,
    pub child: Option<ChildHandle>,
    pub link: Option<Arc<Link>>,
}

pub(super) async fn connect(backend: &Arc<Backend>) -> Result<Connected, BackendError> {
    let handler = Handler::new(Arc::downgrade(backend));
    let spec = &backend.spec;
    let start_error = |reason: String| BackendError::Start {
        name: backend.name.clone(),
        reason,
    };
    match spec.transport {
        Transport::Stdio => {
            let (stdout, stdin, child) = child::spawn(spec, backend.stderr.clone())
                .map_err(|e| start_error(format!("cannot run `{}`: {e}", spec.command)))?;
            let (transport, link) =
                stdio::connect(backend.name.clone(), stdout, stdin, child.exit());
            match handler.serve(transport).await {
                Ok(service) => Ok(Connected {
                    service,
                    child: Some(child),
                    link: Some(link),
                }),
                Err(e) => {
                    let exit = child.stop().await;
                    // What it wrote to stderr says why, but may carry secrets: the error (which
                    // reaches MCP clients) points to it instead of quoting it.
                    let detail = match backend.stderr.tail(1).is_empty() {
                        true => String::new(),
                        false => format!("; its stderr: `mcpgwctl logs {}`", backend.name),
                    };
                    Err(start_error(format!("{e} ({exit}){detail}")))
                }
            }
        }
        // Errors name the URL by its origin only: paths and queries often carry credentials.
        Transport::StreamableHttp | Transport::Sse => {
            let url = spec.url.clone().unwrap_or_default();
            let shown = spec.redacted_url().unwrap_or_default();
            let fail = |e: String| start_error(format!("{shown}: {}", redact(&e, &url)));
            let service = if spec.transport == Transport::Sse {
                let (read, write) = sse::connect(&url, &spec.headers).await.map_err(fail)?;
                let transport =
                    AsyncRwTransport::new_client(read, write).with_max_line_length(MAX_LINE);
                handler.serve(transport).await
            } else {
                let transport =
                    streamable_http::transport(&url, &spec.headers).map_err(start_error)?;
                handler.serve(transport).await
            };
            Ok(Connected {
                service: service.map_err(|e| fail(e.to_string()))?,
                child: None,
                link: None,
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
