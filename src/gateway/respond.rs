//! Local responses: the one place that writes a gateway-made answer (JSON bodies and errors).

use std::sync::LazyLock;

use bytes::Bytes;
use ezrouter_protocol::{ApiError, Dialect, ErrorKind};
use pingora_core::protocols::http::ServerSession as Session;
use pingora_http::ResponseHeader;

/// Writes a complete JSON response with `Content-Length`, keeping the connection reusable.
pub async fn json(
    session: &mut Session,
    status: u16,
    body: impl Into<Bytes>,
) -> pingora_error::Result<()> {
    write(session, status, body.into(), None, true).await
}

/// Writes the head of an SSE answer; the body follows as the upstream streams. `length`: the
/// whole body is already in hand (the upstream stream ended before the first event left), so it
/// is sent length-delimited, with no chunk framing to add.
pub async fn stream_header(
    session: &mut Session,
    length: Option<usize>,
) -> pingora_error::Result<()> {
    let h = if let Some(length) = length {
        let mut h = HEADS.sse.clone();
        h.insert_header(http::header::CONTENT_LENGTH, length)?;
        h
    } else if session.req_header().version == http::Version::HTTP_10 {
        // An HTTP/1.0 client cannot read chunked framing: its body ends with the connection.
        session.set_keepalive(None);
        HEADS.sse.clone()
    } else {
        HEADS.sse_chunked.clone()
    };
    session.write_response_header(Box::new(h)).await
}

/// The fixed part of each kind of head, built once and cloned per answer: building it per
/// answer (each name and value parsed and copied into two header maps) was a third of what
/// writing a stream's head cost (`bench/profile.sh`).
struct Heads {
    /// An SSE answer: `content-type`, `cache-control`, `x-accel-buffering`.
    sse: ResponseHeader,
    /// The same with `transfer-encoding: chunked` (Pingora's HTTP/1 writer would otherwise
    /// close-delimit a body without a length).
    sse_chunked: ResponseHeader,
    /// A JSON answer's `content-type`; the status is set per answer.
    json: ResponseHeader,
}

static HEADS: LazyLock<Heads> = LazyLock::new(|| {
    use http::header::{CACHE_CONTROL, CONTENT_TYPE, TRANSFER_ENCODING};
    // Room for what is added per answer: by us (a length, `retry-after`) and by Pingora (`date`,
    // `connection`). Without the map of each name's original case that `build` keeps: every
    // clone and insert would update two maps, and Pingora writes the common names in title case
    // without it (the others lowercase, as HTTP/2 does; names are case-insensitive).
    let empty = || ResponseHeader::build_no_case(200, Some(8)).expect("status 200");
    let mut sse = empty();
    sse.insert_header(CONTENT_TYPE, "text/event-stream")
        .expect("valid");
    sse.insert_header(CACHE_CONTROL, "no-cache").expect("valid");
    sse.insert_header("x-accel-buffering", "no").expect("valid");
    let mut sse_chunked = sse.clone();
    sse_chunked
        .insert_header(TRANSFER_ENCODING, "chunked")
        .expect("valid");
    let mut json = empty();
    json.insert_header("content-type", "application/json")
        .expect("valid");
    Heads {
        sse,
        sse_chunked,
        json,
    }
});

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
        err.body(surface).into(),
        err.retry_after,
        !too_large,
    )
    .await?;
    Ok(status)
}

async fn write(
    session: &mut Session,
    status: u16,
    body: Bytes,
    retry_after: Option<u64>,
    drain: bool,
) -> pingora_error::Result<()> {
    let mut header = HEADS.json.clone();
    header.set_status(status)?;
    header.insert_header(http::header::CONTENT_LENGTH, body.len())?;
    if let Some(seconds) = retry_after {
        header.insert_header(http::header::RETRY_AFTER, seconds)?;
    }
    // An unread request body must be drained, or the connection cannot serve the next request.
    if drain && !session.is_body_done() {
        let _ = session.drain_request_body().await;
    }
    session.write_response_header(Box::new(header)).await?;
    session.write_response_body(body, true).await?;
    Ok(())
}
