//! Serving the gateway's own tools (`gateway_*`, listed by `table::builtin`).
//!
//! What they show is filtered like everything else a client sees: a role learns only about the
//! servers it can use and its own session, and nothing a server wrote to stderr (which may
//! carry secrets; `mcpgwctl logs` is for the local user).

use rmcp::model::{CallToolResult, ContentBlock};

use super::Gateway;
use crate::table::Builtin;

impl Gateway {
    /// Runs `builtin` for session `session` of `role`.
    pub(super) async fn call_builtin(
        &self,
        builtin: Builtin,
        role: Option<&str>,
        session: u64,
    ) -> CallToolResult {
        match builtin {
            Builtin::Status => {
                let text = serde_json::to_string_pretty(&self.status_for(role, session).await)
                    .unwrap_or_default();
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
        }
    }

    /// The status as `gateway_status` shows it to `role`: the backends it sees (and its own
    /// per-client instances), its own session, no stderr (neither its tail nor the note taken
    /// from it), no config path, warnings or reload messages (they name other servers and
    /// files). Memory is shown as `mcpgwctl status` shows it.
    async fn status_for(&self, role: Option<&str>, session: u64) -> serde_json::Value {
        let mut status = self.status().await;
        let table = self.table();
        status.backends.retain(|backend| {
            let (server, owner) = match backend.name.split_once('@') {
                Some((server, owner)) => (server, Some(owner)),
                None => (backend.name.as_str(), None),
            };
            // An unrestricted role sees every server, even one not discovered yet; another
            // sees the servers of which it can use something.
            owner.is_none_or(|owner| owner == session.to_string())
                && (table.roles.sees_all(role) || table.sees_server(role, server))
        });
        for backend in &mut status.backends {
            backend.stderr_tail.clear();
            backend.stderr_note = None;
            backend.problems.clear();
            backend.held.clear();
        }
        status.sessions.retain(|s| s.id == session);
        let mut value = serde_json::to_value(&status).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("config_path");
            object.remove("config_warnings");
            if let Some(reload) = object
                .get_mut("last_reload")
                .and_then(|r| r.as_object_mut())
            {
                reload.remove("message");
            }
        }
        value
    }
}
