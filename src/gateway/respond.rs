//! Local responses: the one place that writes a gateway-made answer (JSON bodies and errors).

use bytes::Bytes;
use ezrouter_protocol::{ApiError, Dialect, ErrorKind};
use pingora_core::protocols::http::ServerSession as Session;
use pingora_http::ResponseHeader;

/// Writes a complete JSON response with `Content-Length`, keeping the connection reusable.
pub async fn json(session: &mut Session, status: u16, body: Vec<u8>) -> pingora_error::Result<()> {
    write(session, status, body, None, true).await
}

/// Writes the head of an SSE answer; the body follows as the upstream streams. `length`: the
/// whole body is already in hand (the upstream stream ended before the first event left), so it
/// is sent length-delimited, with no chunk framing to add.
pub async fn stream_header(
    session: &mut Session,
    content_type: &str,
    length: Option<usize>,
) -> pingora_error::Result<()> {
    let mut h = ResponseHeader::build(200, Some(4 + PINGORA_ADDS))?;
    h.insert_header(http::header::CONTENT_TYPE, content_type)?;
    h.insert_header(http::header::CACHE_CONTROL, "no-cache")?;
    h.insert_header("x-accel-buffering", "no")?;
    if let Some(length) = length {
        h.insert_header(http::header::CONTENT_LENGTH, length)?;
    } else if session.req_header().version == http::Version::HTTP_10 {
        // An HTTP/1.0 client cannot read chunked framing: its body ends with the connection.
        session.set_keepalive(None);
    } else {
        // Pingora's HTTP/1 writer would otherwise close-delimit the body.
        h.insert_header(http::header::TRANSFER_ENCODING, "chunked")?;
    }
    session.write_response_header(Box::new(h)).await
}

/// Headers Pingora adds to every answer (`date`, `connection`): room is made for them up front,
/// so the header map never grows.
const PINGORA_ADDS: usize = 2;

/// Writes `err` in the envelope of `surface`, with `Retry-After` when it has one. Returns the status.
pub async fn error(
    session: &mut Session,
    surface: Dialect,
    err: &ApiError,
) -> pingora_error::Result<u16> {
    let status = err.status(surface);
    // An oversized body is not worth reading to the end: answer, then close the connection.
    let too_large = err.kind == ErrorKind::RequestTooLarge;
    if too_large {
        session.set_keepalive(None);
    }
    write(
        session,
        status,
        err.body(surface),
        err.retry_after,
        !too_large,
    )
    .await?;
    Ok(status)
}

async fn write(
    session: &mut Session,
    status: u16,
    body: Vec<u8>,
    retry_after: Option<u64>,
    drain: bool,
) -> pingora_error::Result<()> {
    let mut header = ResponseHeader::build(status, Some(3 + PINGORA_ADDS))?;
    header.insert_header("content-type", "application/json")?;
    header.insert_header("content-length", body.len())?;
    if let Some(seconds) = retry_after {
        header.insert_header("retry-after", seconds)?;
    }
    // An unread request body must be drained, or the connection cannot serve the next request.
    if drain && !session.is_body_done() {
        let _ = session.drain_request_body().await;
    }
    session.write_response_header(Box::new(header)).await?;
    session.write_response_body(Bytes::from(body), true).await?;
    Ok(())
}
