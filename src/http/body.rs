//! A request's body, read whole before any handler sees it: at most [`MAX_BODY`](super::MAX_BODY)
//! bytes, within `http.body_timeout`.
//!
//! Every handler wants the whole body anyway (one JSON-RPC message); reading it here, in one
//! place for every route, bounds what a client that announces a body and then trickles it (or
//! never sends it) can hold: without it the handler waits for ever with the connection open. A
//! body too slow gets 408, one too large 413, and either way the connection is closed (the rest
//! of the body is never read). A request without a body (GET, DELETE) passes at once; the
//! handlers get the bytes read, not a copy.

use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::CONNECTION;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// `request` with its body read whole, or the answer that refuses it.
pub(super) async fn read_whole(
    request: Request,
    max: usize,
    timeout: Duration,
) -> Result<Request, Response> {
    let body = request.body();
    if body.is_end_stream() {
        return Ok(request);
    }
    let too_large = || {
        let message = format!(
            "Payload Too Large: the request body is over the limit of {} MiB",
            max / (1024 * 1024)
        );
        refuse(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    // A `Content-Length` over the limit is refused before waiting for any of it.
    if body.size_hint().lower() > max as u64 {
        return Err(too_large());
    }
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(timeout, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.is::<LengthLimitError>() => return Err(too_large()),
        Ok(Err(e)) => {
            let message = format!("Bad Request: the request body could not be read: {e}");
            return Err(refuse(StatusCode::BAD_REQUEST, message));
        }
        Err(_) => {
            let message = format!(
                "Request Timeout: the request body did not arrive within `http.body_timeout` \
                 ({timeout:?})"
            );
            return Err(refuse(StatusCode::REQUEST_TIMEOUT, message));
        }
    };
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A refusal that also closes the connection: the rest of the body is not read.
fn refuse(status: StatusCode, message: String) -> Response {
    (status, [(CONNECTION, "close")], message).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::{Body, Bytes};
    use axum::extract::Request;
    use axum::http::StatusCode;
    use axum::response::Response;
    use futures::StreamExt;

    use super::read_whole;

    const SECOND: Duration = Duration::from_secs(1);

    /// A body that sends `first` and then nothing more.
    fn stalled(first: &'static [u8]) -> Body {
        let chunks = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(first))])
            .chain(futures::stream::pending());
        Body::from_stream(chunks)
    }

    async fn refused(request: Request, max: usize) -> (StatusCode, String, bool) {
        parts(read_whole(request, max, SECOND).await.unwrap_err()).await
    }

    /// A refusal's status, text, and whether it closes the connection.
    async fn parts(response: Response) -> (StatusCode, String, bool) {
        let closes = response.headers()["connection"] == "close";
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap(), closes)
    }

    #[tokio::test]
    async fn a_whole_body_is_handed_on() {
        let request = Request::new(Body::from("{\"jsonrpc\":\"2.0\"}"));
        let read = read_whole(request, 64, SECOND).await.unwrap();
        let body = axum::body::to_bytes(read.into_body(), 64).await.unwrap();
        assert_eq!(body, "{\"jsonrpc\":\"2.0\"}");
    }

    #[tokio::test]
    async fn a_stalled_body_times_out_and_no_body_waits() {
        let request = Request::new(stalled(b"{\"js"));
        let response = read_whole(request, 64, Duration::from_millis(50))
            .await
            .unwrap_err();
        let (status, text, closes) = parts(response).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            text,
            "Request Timeout: the request body did not arrive within `http.body_timeout` (50ms)"
        );
        assert!(closes);
        // Without a body nothing is awaited, however long the timeout.
        let hour = Duration::from_secs(3600);
        let read = read_whole(Request::new(Body::empty()), 64, hour);
        assert!(
            tokio::time::timeout(Duration::from_secs(10), read)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused() {
        let (status, text, closes) = refused(Request::new(Body::from(vec![b'x'; 65])), 64).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(text.starts_with("Payload Too Large"), "{text}");
        assert!(closes);
        // A stream over the limit (no length announced) is refused as it goes over.
        let chunks = futures::stream::iter([
            Ok::<_, std::io::Error>(Bytes::from_static(&[b'x'; 40])),
            Ok(Bytes::from_static(&[b'x'; 40])),
        ]);
        let (status, _, _) = refused(Request::new(Body::from_stream(chunks)), 64).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    }
}
