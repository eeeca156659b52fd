//! The tools the gateway serves itself (`gateway_*`), as the catalog lists them; they are
//! filtered by roles like any other tool. What they do is the gateway's (`gateway/builtin.rs`).

use std::sync::Arc;

use rmcp::model::Tool;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mcpgwctl check` knows the gateway's tools by name only (it has no MCP types).
    #[test]
    fn the_configs_list_of_builtin_names_is_this_one() {
        let names: Vec<String> = Builtin::ALL.iter().map(|b| b.tool().name.into()).collect();
        assert_eq!(names, crate::config::BUILTIN_TOOLS);
    }
}
