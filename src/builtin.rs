//! Tools the gateway serves itself (`gateway_*`), filtered by roles like any other tool.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Tool};

use crate::gateway::Gateway;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Status,
}

impl Builtin {
    pub const ALL: [Builtin; 1] = [Builtin::Status];

    pub fn tool(self) -> Tool {
        match self {
            Builtin::Status => Tool::new(
                "gateway_status",
                "Status of the mcpgw gateway: every backend server with its state (disabled, \
                 stopped, starting, ready, failed), pid, memory, uptime, calls, errors and tool \
                 count, and the connected sessions.",
                Arc::new(
                    serde_json::json!({"type": "object", "properties": {}})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
            ),
        }
    }

    pub async fn call(self, gateway: &Gateway) -> CallToolResult {
        match self {
            Builtin::Status => {
                let status = gateway.status();
                let text = serde_json::to_string_pretty(&status).unwrap_or_default();
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
        }
    }
}
