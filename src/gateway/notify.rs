//! What backends report, fanned out to sessions: log messages (filtered by each session's
//! level and role), resource updates (to subscribers only), and list changes.

// Logging, sampling, roots and resources/subscribe are deprecated by SEP-2577 for the 2026-07-28
// protocol, but every earlier protocol version has them and the gateway relays them faithfully.
#![allow(deprecated)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use rmcp::ErrorData as McpError;
use rmcp::model::{
    LoggingLevel, LoggingMessageNotificationParam, ResourceUpdatedNotificationParam,
};
use tokio_util::sync::CancellationToken;

use super::Gateway;
use crate::backend::{Backend, BackendEvents, Caller};

/// Resource subscriptions: (server, uri) → the sessions subscribed.
pub(super) type Subscriptions = std::sync::Mutex<BTreeMap<(String, String), BTreeSet<u64>>>;

/// Severity order of MCP log levels (syslog's), least severe first.
fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

impl BackendEvents for Gateway {
    fn schema_changed(&self) {
        self.lists_changed();
    }

    fn resource_updated(
        &self,
        backend: &str,
        owner: Option<u64>,
        params: ResourceUpdatedNotificationParam,
    ) {
        let key = (backend.to_string(), params.uri.clone());
        let subscribers: Vec<u64> = self
            .subscriptions
            .lock()
            .unwrap()
            .get(&key)
            .map(|s| {
                s.iter()
                    .copied()
                    .filter(|id| owner.is_none_or(|o| o == *id))
                    .collect()
            })
            .unwrap_or_default();
        let sessions = self.sessions.lock();
        for id in subscribers {
            let Some(entry) = sessions.get(&id) else {
                continue;
            };
            if let Some(peer) = entry.peer().cloned() {
                let params = params.clone();
                tokio::spawn(async move {
                    let _ = peer.notify_resource_updated(params).await;
                });
            }
            // A 2026-07-28 client: every listen of its that asked for this URI.
            for sink in &entry.listeners {
                let wanted = sink.accepted().resource_subscriptions.as_ref();
                if wanted.is_some_and(|uris| uris.contains(&params.uri)) {
                    let (sink, uri) = (sink.clone(), params.uri.clone());
                    tokio::spawn(async move {
                        let _ = sink.notify_resource_updated(uri).await;
                    });
                }
            }
        }
    }

    fn log_message(
        &self,
        backend: &str,
        owner: Option<u64>,
        params: LoggingMessageNotificationParam,
    ) {
        let table = self.table();
        let sessions = self.sessions.lock();
        for (id, entry) in sessions.iter() {
            let Some(peer) = entry.peer() else { continue };
            if owner.is_some_and(|o| o != *id) {
                continue;
            }
            let wanted = entry
                .log_level
                .is_none_or(|min| severity(params.level) >= severity(min));
            if wanted && table.sees_server(entry.handle.role.as_deref(), backend) {
                let (peer, params) = (peer.clone(), params.clone());
                tokio::spawn(async move {
                    let _ = peer.notify_logging_message(params).await;
                });
            }
        }
    }

    fn log_level(&self) -> Option<LoggingLevel> {
        self.sessions
            .lock()
            .values()
            .filter_map(|s| s.log_level)
            .min_by_key(|level| severity(*level))
    }
}

impl Gateway {
    /// A session's `logging/setLevel`: its own filter, and the most verbose level any session
    /// wants is what the running backends are asked to send.
    pub async fn set_log_level(&self, session: u64, level: LoggingLevel) {
        if let Some(entry) = self.sessions.lock().get_mut(&session) {
            entry.log_level = Some(level);
        }
        let Some(most_verbose) = self.log_level() else {
            return;
        };
        let table = self.table();
        futures::future::join_all(
            table
                .backends
                .values()
                .map(|b| b.set_log_level(most_verbose)),
        )
        .await;
    }

    /// Subscribes a session to a resource; the backend is subscribed once, for all sessions.
    /// Returns the backend that serves it, which [`Gateway::release`] takes back.
    pub async fn subscribe(
        &self,
        role: Option<&str>,
        uri: String,
        caller: Caller,
        ct: CancellationToken,
    ) -> Result<Arc<Backend>, McpError> {
        let backend = self.resource_backend(role, &uri).await?;
        let key = (backend.name.clone(), uri.clone());
        if backend.spec.scope == crate::config::Scope::PerClient {
            // The session's own instance: its subscription is its own.
            let instance = self.instance_for(&backend, &caller);
            instance.subscribe(uri, caller.clone(), ct).await?;
            self.subscriptions
                .lock()
                .unwrap()
                .entry(key)
                .or_default()
                .insert(caller.session);
            return Ok(backend);
        }
        let first = {
            let mut subscriptions = self.subscriptions.lock().unwrap();
            let sessions = subscriptions.entry(key.clone()).or_default();
            let first = sessions.is_empty();
            sessions.insert(caller.session);
            first
        };
        if first && let Err(e) = backend.subscribe(uri, caller.clone(), ct).await {
            let mut subscriptions = self.subscriptions.lock().unwrap();
            if let Some(sessions) = subscriptions.get_mut(&key) {
                sessions.remove(&caller.session);
                if sessions.is_empty() {
                    subscriptions.remove(&key);
                }
            }
            return Err(e);
        }
        Ok(backend)
    }

    pub async fn unsubscribe(
        &self,
        role: Option<&str>,
        caller: Caller,
        uri: &str,
    ) -> Result<(), McpError> {
        let backend = self.resource_backend(role, uri).await?;
        self.release(&backend, caller, uri).await;
        Ok(())
    }

    /// Ends the session's subscription to `uri` on `backend` (the one [`Gateway::subscribe`]
    /// returned: after a reload another server may serve the same URI), unsubscribing the
    /// backend when nobody else wants it.
    pub async fn release(&self, backend: &Arc<Backend>, caller: Caller, uri: &str) {
        let session = caller.session;
        let key = (backend.name.clone(), uri.to_string());
        if backend.spec.scope == crate::config::Scope::PerClient {
            if let Some(sessions) = self.subscriptions.lock().unwrap().get_mut(&key) {
                sessions.remove(&session);
            }
            self.instance_for(backend, &caller).unsubscribe(uri).await;
            return;
        }
        let last = {
            let mut subscriptions = self.subscriptions.lock().unwrap();
            match subscriptions.get_mut(&key) {
                Some(sessions) => {
                    sessions.remove(&session);
                    let last = sessions.is_empty();
                    if last {
                        subscriptions.remove(&key);
                    }
                    last
                }
                None => false,
            }
        };
        if last {
            backend.unsubscribe(uri).await;
        }
    }

    /// Removes everything a departed session subscribed to, unsubscribing backends from what
    /// nobody wants anymore.
    pub(super) fn drop_subscriptions(&self, session: u64) {
        let orphaned: Vec<(String, String)> = {
            let mut subscriptions = self.subscriptions.lock().unwrap();
            let mut orphaned = Vec::new();
            subscriptions.retain(|key, sessions: &mut BTreeSet<u64>| {
                sessions.remove(&session);
                if sessions.is_empty() {
                    orphaned.push(key.clone());
                    false
                } else {
                    true
                }
            });
            orphaned
        };
        if orphaned.is_empty() {
            return;
        }
        let table = self.table();
        for (server, uri) in orphaned {
            if let Some(backend) = table.backends.get(&server).cloned() {
                tokio::spawn(async move { backend.unsubscribe(&uri).await });
            }
        }
    }
}
