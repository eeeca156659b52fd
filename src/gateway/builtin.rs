//! Serving the gateway's own tools (`gateway_*`, listed by `table::builtin`).

use rmcp::model::{CallToolResult, ContentBlock};

use super::Gateway;
use crate::table::Builtin;

impl Gateway {
    pub(super) fn call_builtin(&self, builtin: Builtin) -> CallToolResult {
        match builtin {
            Builtin::Status => {
                let status = self.status();
                let text = serde_json::to_string_pretty(&status).unwrap_or_default();
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
        }
    }
}
