//! The control connection: one JSON request per line from mcpgwctl, one JSON response each.

use std::sync::Arc;

use crate::connection::{Reader, Writer};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::gateway::Gateway;
use crate::protocol::{self, ControlRequest, ControlResponse};

pub async fn serve(
    gateway: Arc<Gateway>,
    reader: Reader,
    mut writer: Writer,
    stop: CancellationToken,
) {
    let mut lines = reader.lines();
    loop {
        let line = tokio::select! {
            line = lines.next_line() => line,
            () = stop.cancelled() => return,
        };
        let Ok(Some(line)) = line else { return };
        let response = match serde_json::from_str::<ControlRequest>(&line) {
            Ok(request) => handle(&gateway, request).await,
            Err(e) => ControlResponse::Error {
                message: format!("unknown control request: {e}"),
            },
        };
        if writer.write_all(&protocol::to_line(&response)).await.is_err() {
            return;
        }
    }
}

async fn handle(gateway: &Gateway, request: ControlRequest) -> ControlResponse {
    match request {
        ControlRequest::Status => ControlResponse::Status(gateway.status()),
    }
}
