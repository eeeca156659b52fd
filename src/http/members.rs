//! What rmcp's typed answers over Streamable HTTP leave out, put back: the members of list items
//! and of forwarded results that rmcp's types do not know ([`PutBack`], as a socket session's
//! service does). rmcp's HTTP service must be built from a typed handler, so the answer is
//! mended here, as it leaves: a JSON answer whole, an SSE stream event by event (events pass
//! on as they come, so a call's progress is not held back; only the answer's event is
//! rewritten).

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;
use futures::StreamExt;
use serde_json::Value;

use crate::session::{Missing, PutBack};

/// A request whose answer may need members put back.
pub(super) struct Pending {
    put_back: PutBack,
    /// The request's id, to find its answer among the stream's messages.
    id: Value,
}

/// Looks at a POST's JSON-RPC request (its body is in memory already); when its answer may need
/// members put back, the request goes on with the backend's slot in its extensions.
pub(super) async fn prepare(request: Request) -> (Request, Option<Pending>) {
    if request.method() != Method::POST {
        return (request, None);
    }
    let (mut parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, super::MAX_BODY).await else {
        return (Request::from_parts(parts, Body::empty()), None);
    };
    let wanted = crate::wire::Envelope::parse(&body).and_then(|envelope| {
        let id: Value = serde_json::from_str(envelope.id?.get()).ok()?;
        Some((PutBack::for_method(envelope.method.as_deref()?)?, id))
    });
    let pending = wanted.map(|(put_back, id)| {
        put_back.insert_into_http(&mut parts.extensions);
        Pending { put_back, id }
    });
    (Request::from_parts(parts, Body::from(body)), pending)
}

impl Pending {
    /// What is missing from the answer, once known: a list's items' members at once, a
    /// result's once the backend's response came (before rmcp's answer can be sent).
    fn missing(&self) -> Option<Missing> {
        self.put_back.what()
    }

    /// The answer `message` with `missing` put back, if it is this request's answer.
    fn mend(&self, message: &[u8], missing: &Missing) -> Option<Vec<u8>> {
        let mut message: Value = serde_json::from_slice(message).ok()?;
        if message.get("id") != Some(&self.id) {
            return None;
        }
        missing.apply(message.get_mut("result")?.as_object_mut()?);
        serde_json::to_vec(&message).ok()
    }

    /// `response` with its answer mended. Nothing is parsed unless something is missing.
    pub(super) async fn apply(self, response: Response) -> Response {
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/json") {
            // The answer is made: what is missing is known.
            let Some(missing) = self.missing() else {
                return response;
            };
            let (mut parts, body) = response.into_parts();
            let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            return match self.mend(&body, &missing) {
                Some(mended) => {
                    parts.headers.remove(header::CONTENT_LENGTH);
                    Response::from_parts(parts, Body::from(mended))
                }
                None => Response::from_parts(parts, Body::from(body)),
            };
        }
        if content_type.starts_with("text/event-stream") {
            let (parts, body) = response.into_parts();
            return Response::from_parts(parts, Body::from_stream(self.mend_events(body)));
        }
        response
    }

    /// The SSE body with this request's answer event mended; every event passes on as soon as
    /// it is complete (and every byte once the answer is past).
    fn mend_events(
        self,
        body: Body,
    ) -> impl futures::Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
        let state = Events {
            inner: body.into_data_stream(),
            request: Some(self),
            missing: None,
            split: Split::default(),
            ended: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            if state.ended {
                return None;
            }
            match state.inner.next().await {
                Some(Ok(chunk)) => {
                    let out = state.pass(chunk);
                    Some((Ok(out), state))
                }
                Some(Err(e)) => {
                    state.ended = true;
                    Some((Err(e), state))
                }
                None => {
                    // What was left without an event's end when the stream ended.
                    state.ended = true;
                    let rest = std::mem::take(&mut state.split.buffer);
                    (!rest.is_empty()).then(|| (Ok(Bytes::from(rest)), state))
                }
            }
        })
    }
}

/// An SSE body being passed on, until the request's answer has gone by.
struct Events {
    inner: axum::body::BodyDataStream,
    /// `None` once the answer passed: the rest goes untouched.
    request: Option<Pending>,
    /// What the answer lacks, once known (until then events are not parsed).
    missing: Option<Missing>,
    split: Split,
    ended: bool,
}

impl Events {
    /// What of the stream can go on after `chunk`: every complete event, the answer's mended.
    fn pass(&mut self, chunk: Bytes) -> Bytes {
        let Some(request) = &self.request else {
            return chunk;
        };
        let missing = &mut self.missing;
        let (out, mended) = self.split.pass(&chunk, |event| {
            if missing.is_none() {
                *missing = request.missing();
            }
            mend_event(request, missing.as_ref()?, event)
        });
        if mended {
            self.request = None;
        }
        Bytes::from(out)
    }
}

/// An SSE byte stream cut into events (each ending with a blank line), until one is rewritten.
#[derive(Default)]
struct Split {
    /// Bytes of an event not complete yet.
    buffer: Vec<u8>,
    /// How much of `buffer` holds no event end (so that a big event arriving in many chunks
    /// is searched once, not once per chunk).
    searched: usize,
}

impl Split {
    /// The bytes that can go on after `chunk`: each complete event as it was or as `rewrite`
    /// makes it; after the first one rewritten, everything as it is (and true).
    fn pass(
        &mut self,
        chunk: &[u8],
        mut rewrite: impl FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> (Vec<u8>, bool) {
        self.buffer.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut at = 0;
        let from = self.searched.saturating_sub(1);
        let ends = memchr::memmem::find_iter(&self.buffer[from..], b"\n\n").map(|e| from + e + 2);
        for end in ends {
            if end <= at {
                continue;
            }
            let event = &self.buffer[at..end];
            at = end;
            match rewrite(event) {
                Some(rewritten) => {
                    out.extend_from_slice(&rewritten);
                    out.extend_from_slice(&self.buffer[at..]);
                    self.buffer.clear();
                    self.searched = 0;
                    return (out, true);
                }
                None => out.extend_from_slice(event),
            }
        }
        self.buffer.drain(..at);
        self.searched = self.buffer.len();
        (out, false)
    }
}

/// `event` (its lines and the blank line ending it) with its data mended, if its data is the
/// request's answer and anything was missing.
fn mend_event(request: &Pending, missing: &Missing, event: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(event.len() + 256);
    let mut mended = false;
    for line in event.split_inclusive(|b| *b == b'\n') {
        let data = line.strip_prefix(b"data:").filter(|_| !mended);
        let Some(data) = data else {
            out.extend_from_slice(line);
            continue;
        };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        let data = data.strip_suffix(b"\n").unwrap_or(data);
        let fixed = request.mend(data, missing)?;
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(&fixed);
        out.push(b'\n');
        mended = true;
    }
    mended.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events split anywhere across chunks come out whole and in order; the rewritten one is
    /// replaced, and what follows it passes as it is.
    #[test]
    fn events_are_found_across_chunks_and_only_the_answer_is_rewritten() {
        let stream = b"id: 0\ndata: \n\ndata: {\"progress\":1}\n\ndata: ANSWER\n\ndata: after\n\n";
        for chunk_size in [1, 2, 3, 7, stream.len()] {
            let mut split = Split::default();
            let mut out = Vec::new();
            let mut rewritten = false;
            for chunk in stream.chunks(chunk_size) {
                let rewrite = |event: &[u8]| {
                    (event == b"data: ANSWER\n\n" && !rewritten)
                        .then(|| b"data: MENDED\n\n".to_vec())
                };
                let (bytes, done) = split.pass(chunk, rewrite);
                out.extend_from_slice(&bytes);
                if done {
                    rewritten = true;
                }
            }
            out.extend_from_slice(&split.buffer);
            let expected: &[u8] =
                b"id: 0\ndata: \n\ndata: {\"progress\":1}\n\ndata: MENDED\n\ndata: after\n\n";
            assert_eq!(
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(expected),
                "chunks of {chunk_size}"
            );
        }
    }
}
