//! A stdio server's own requests to its client (`sampling/createMessage`,
//! `elicitation/create`) as written, so that they are relayed to the client unchanged.
//!
//! rmcp hands the gateway's handler these requests typed, and its types change what they carry:
//! a sampling request's `temperature` is an `f32` (`0.7` reached clients as
//! `0.699999988079071`), an elicitation gains `"mode":"form"` and its schema's integers become
//! floats. The reader keeps the params of each such request by its id before rmcp parses it;
//! the handler takes them and relays the request with those params.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

/// The methods whose params are kept.
const KEPT: [&str; 2] = ["sampling/createMessage", "elicitation/create"];

/// Requests are small; a longer line is not searched (its request is relayed typed).
const MAX_LINE: usize = 1024 * 1024;

/// At most this many requests' params are kept waiting for the handler (one rmcp never hands
/// over, such as one it could not parse, must not pile up).
const MAX_KEPT: usize = 64;

#[derive(Default)]
pub struct Asks(Mutex<HashMap<String, (String, Value)>>);

impl Asks {
    /// A line the reader is about to hand to rmcp: if it is a kept request, its params are kept.
    pub fn offer(&self, line: &[u8]) {
        // Most lines rmcp gets are responses (found at their head or tail): not searched.
        if line.len() > MAX_LINE
            || super::watches::written_response_id(line).is_some()
            || !KEPT
                .iter()
                .any(|m| memchr::memmem::find(line, m.as_bytes()).is_some())
        {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Request<'a> {
            #[serde(borrow)]
            id: Option<&'a serde_json::value::RawValue>,
            method: Option<String>,
            params: Option<Value>,
        }
        let Ok(request) = serde_json::from_slice::<Request>(line) else {
            return;
        };
        let (Some(id), Some(method), Some(params)) = (request.id, request.method, request.params)
        else {
            return;
        };
        if !KEPT.contains(&method.as_str()) {
            return;
        }
        let mut kept = self.0.lock().unwrap();
        if kept.len() >= MAX_KEPT {
            kept.clear();
        }
        kept.insert(id.get().to_string(), (method, params));
    }

    /// The params of the server's request `id` of `method`, as written, if they were kept.
    pub fn take(&self, id: &rmcp::model::RequestId, method: &str) -> Option<Value> {
        let id = serde_json::to_string(id).ok()?;
        let (kept_method, params) = self.0.lock().unwrap().remove(&id)?;
        (kept_method == method).then_some(params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_request_is_kept_as_written_and_taken_once() {
        let asks = Asks::default();
        asks.offer(
            br#"{"method":"sampling/createMessage","params":{"temperature":0.7,"maxTokens":5},"jsonrpc":"2.0","id":0}"#,
        );
        asks.offer(br#"{"jsonrpc":"2.0","id":"s1","method":"elicitation/create","params":{"requestedSchema":{"properties":{"n":{"type":"number","minimum":0}}}}}"#);
        asks.offer(br#"{"jsonrpc":"2.0","id":1,"method":"roots/list"}"#);
        // A response whose text names the method is not a request (and is not searched).
        asks.offer(
            br#"{"jsonrpc":"2.0","id":9,"result":{"content":[{"text":"sampling/createMessage"}]}}"#,
        );
        asks.offer(br#"{"result":{"text":"elicitation/create"},"jsonrpc":"2.0","id":10}"#);
        assert_eq!(asks.0.lock().unwrap().len(), 2);
        let id = rmcp::model::NumberOrString::Number(0);
        let params = asks.take(&id, "sampling/createMessage").unwrap();
        assert_eq!(params.to_string(), r#"{"maxTokens":5,"temperature":0.7}"#);
        assert!(asks.take(&id, "sampling/createMessage").is_none());
        let id = rmcp::model::NumberOrString::String("s1".into());
        assert!(
            asks.take(&id, "sampling/createMessage").is_none(),
            "another method"
        );
        assert_eq!(asks.0.lock().unwrap().len(), 0);
    }
}
