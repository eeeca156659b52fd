//! Backends of `scope: per-client` servers: one instance per session, for servers whose state
//! must not be shared (browsers, shells, anything with a "current" something).
//!
//! The table's backend for such a server only serves lists (from its cache) and discovery;
//! every request goes to the session's own instance, created on first use, started lazily,
//! stopped when idle like any backend, and stopped when the session leaves or a reload changes
//! or removes the server.

use std::sync::Arc;

use super::{Gateway, RETIRE_GRACE};
use crate::backend::Backend;
use crate::backend::{Caller, ClientIdentity, Owner};
use crate::config::Scope;

/// Key of an instance: the session (or stateless client identity) and the server.
type InstanceKey = (u64, String);

/// The ids standing for stateless clients' identities (from the session id space, so they
/// never collide with a session).
pub(super) type Identities = std::sync::Mutex<std::collections::HashMap<ClientIdentity, u64>>;

/// The per-client instances, by session and server.
pub(super) type Instances = std::sync::Mutex<std::collections::HashMap<InstanceKey, Arc<Backend>>>;

impl Gateway {
    /// The backend that serves `caller` for the table's `backend`: itself when shared, else the
    /// caller's own instance.
    pub(crate) fn instance_for(&self, backend: &Arc<Backend>, caller: &Caller) -> Arc<Backend> {
        if backend.spec.scope == Scope::Shared {
            return backend.clone();
        }
        let owner = match caller.stateless_client {
            Some(identity) => self.stateless_client(identity),
            None => caller.session,
        };
        let key = (owner, backend.name.clone());
        let mut instances = self.instances.lock().unwrap();
        if let Some(existing) = instances.get(&key)
            && existing.spec_hash() == backend.spec_hash()
        {
            return existing.clone();
        }
        let table = self.table();
        let events: std::sync::Weak<dyn crate::backend::BackendEvents> = self.myself.clone();
        let instance = Backend::new(
            backend.spec.clone(),
            &table.config,
            self.cache.clone(),
            events,
            Some(Owner {
                session: owner,
                peer: caller.peer.clone(),
                follows_calls: caller.stateless_client.is_some(),
                env: self.client_env(caller.env_of.unwrap_or(owner), &backend.spec.pass_env),
                template: Arc::downgrade(backend),
            }),
        );
        if let Some(outdated) = instances.insert(key, instance.clone()) {
            outdated.retire(RETIRE_GRACE);
        }
        instance
    }

    /// The id that stands for a stateless client's identity (its per-client instances are
    /// kept under it, and stop when idle).
    fn stateless_client(&self, identity: ClientIdentity) -> u64 {
        let mut identities = self.identities.lock().unwrap();
        *identities
            .entry(identity)
            .or_insert_with(|| self.sessions.new_id())
    }

    /// Stops the instances of a session that left.
    pub(super) fn drop_instances(&self, session: u64) {
        let mut instances = self.instances.lock().unwrap();
        let gone: Vec<InstanceKey> = instances
            .keys()
            .filter(|(s, _)| *s == session)
            .cloned()
            .collect();
        for key in gone {
            if let Some(instance) = instances.remove(&key) {
                instance.retire(RETIRE_GRACE);
            }
        }
    }

    /// Stops instances whose server a reload removed, changed or made shared.
    pub(crate) fn prune_instances(&self) {
        let table = self.table();
        let mut instances = self.instances.lock().unwrap();
        instances.retain(|(_, server), instance| {
            let current = table.backends.get(server).is_some_and(|b| {
                b.spec.scope == Scope::PerClient
                    && b.spec_hash() == instance.spec_hash()
                    && b.spec.enabled
            });
            if !current {
                instance.clone().retire(RETIRE_GRACE);
            }
            current
        });
    }

    /// Tells a session's instances that its client's roots changed.
    pub async fn roots_changed(&self, session: u64) {
        let mine: Vec<Arc<Backend>> = self
            .instances
            .lock()
            .unwrap()
            .iter()
            .filter(|((s, _), _)| *s == session)
            .map(|(_, b)| b.clone())
            .collect();
        futures::future::join_all(mine.iter().map(|b| b.roots_changed())).await;
    }

    /// Every per-client instance, named `<server>@<session>` as status shows it.
    pub(super) fn named_instances(&self) -> Vec<(String, Arc<Backend>)> {
        let instances = self.instances.lock().unwrap();
        instances
            .iter()
            .map(|((session, server), instance)| (format!("{server}@{session}"), instance.clone()))
            .collect()
    }

    /// Every per-client instance, for shutdown.
    pub(super) fn all_instances(&self) -> Vec<Arc<Backend>> {
        self.instances.lock().unwrap().values().cloned().collect()
    }
}
