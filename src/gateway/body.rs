//! Reading a whole request body, capped in size and time.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use ezrouter_protocol::{ApiError, ErrorKind};
use pingora_core::protocols::http::ServerSession as Session;

fn too_large(max: usize) -> ApiError {
    ApiError::new(
        ErrorKind::RequestTooLarge,
        format!("Request body exceeds the limit of {max} bytes."),
    )
}

/// Reads the body (any framing) up to `max` bytes within `timeout`.
pub async fn read(session: &mut Session, max: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let read_all = async {
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(8 * 1024));
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|e| ApiError::invalid(format!("could not read the request body: {e}")))?
        {
            if buf.len() + chunk.len() > max {
                return Err(too_large(max));
            }
            if buf.is_empty() && chunk.len() == declared.unwrap_or(0) {
                return Ok(chunk); // the common case: one read, no copy
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .unwrap_or_else(|_| Err(ApiError::invalid("Timed out reading the request body.")))
}
