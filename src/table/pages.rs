//! Lists in pages: page size, opaque cursors, and the tool list's pages serialized once per
//! view (what the byte path answers `tools/list` with).

use bytes::Bytes;
use rmcp::ErrorData as McpError;
use rmcp::model::{ListToolsResult, PaginatedRequestParams};

use super::RoleView;

/// Items per page of a list. Large, so that clients that do not page still see everything in
/// any realistic setup; `MCPGW_PAGE_SIZE` lowers it (tests use that to exercise paging).
pub fn page_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        std::env::var("MCPGW_PAGE_SIZE")
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1000)
    })
}

/// One page of `items` and the cursor of the next. Cursors are `<kind>:<offset>` in hex, opaque
/// to clients and checked: a cursor of another list or past the end is invalid params.
pub fn page<T: Clone>(
    items: &[T],
    request: Option<PaginatedRequestParams>,
    kind: &str,
) -> Result<(Vec<T>, Option<String>), McpError> {
    let offset = match request.and_then(|r| r.cursor) {
        None => 0,
        Some(cursor) => decode_cursor(&cursor, kind)
            .filter(|offset| *offset <= items.len())
            .ok_or_else(|| McpError::invalid_params(format!("invalid cursor `{cursor}`"), None))?,
    };
    let end = offset.saturating_add(page_size()).min(items.len());
    let next = (end < items.len()).then(|| encode_cursor(kind, end));
    Ok((items[offset..end].to_vec(), next))
}

fn encode_cursor(kind: &str, offset: usize) -> String {
    format!("{kind}:{offset}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn decode_cursor(cursor: &str, kind: &str) -> Option<usize> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (k, offset) = text.split_once(':')?;
    if k != kind {
        return None;
    }
    offset.parse().ok()
}

impl RoleView {
    /// Each page of the tool list as the body of a JSON-RPC response after its id
    /// (`,"result":{…}}` and the line's end), serialized on first use.
    pub fn tool_pages(&self) -> &[Bytes] {
        self.tool_pages.get_or_init(|| {
            let size = page_size();
            let mut pages = Vec::new();
            let mut offset: usize = 0;
            loop {
                let end = offset.saturating_add(size).min(self.tools.len());
                let mut result = ListToolsResult::with_all_items(Vec::new());
                result.next_cursor = (end < self.tools.len()).then(|| encode_cursor("tools", end));
                let mut result = serde_json::to_value(&result).expect("a tool list serializes");
                if let Some(result) = result.as_object_mut() {
                    // Initialize-era results have no `resultType` (rmcp drops it when it
                    // writes them to such a session): these pages are only served to those.
                    result.remove("resultType");
                    // The tools as their servers wrote them, members rmcp does not know too.
                    let tools = serde_json::to_value(&self.tools[offset..end]);
                    result.insert("tools".into(), tools.expect("a tool list serializes"));
                }
                let mut body = b",\"result\":".to_vec();
                serde_json::to_writer(&mut body, &result).expect("a value serializes");
                body.extend_from_slice(b"}\n");
                pages.push(Bytes::from(body));
                if end == self.tools.len() {
                    return pages;
                }
                offset = end;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_are_checked() {
        let cursor = encode_cursor("tools", 1000);
        assert_eq!(decode_cursor(&cursor, "tools"), Some(1000));
        assert_eq!(decode_cursor(&cursor, "prompts"), None);
        assert_eq!(decode_cursor("zz", "tools"), None);
        assert_eq!(decode_cursor("abc", "tools"), None);
        let items: Vec<u32> = (0..5).collect();
        let bad =
            Some(PaginatedRequestParams::default().with_cursor(Some(encode_cursor("tools", 9))));
        assert!(page(&items, bad, "tools").is_err());
    }
}
