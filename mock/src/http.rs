//! Minimal HTTP/1.1 server side: request reading (Content-Length and chunked
//! bodies, `Expect: 100-continue`), response heads, chunk framing, and
//! close detection while waiting.

use std::ops::Range;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
const MAX_HEADERS: usize = 128;

/// One connection: the socket, its read buffer and reusable output buffers.
pub(crate) struct Conn {
    pub sock: TcpStream,
    pub rbuf: BytesMut,
    pub out: Vec<u8>,
    pub body: Vec<u8>,
    pub ev: Events,
}

/// Rendered stream events: one byte buffer and the end offset of each event.
#[derive(Default)]
pub(crate) struct Events {
    pub buf: Vec<u8>,
    ends: Vec<usize>,
}

impl Events {
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ends.clear();
    }

    /// Close the event being written.
    pub(crate) fn end(&mut self) {
        self.ends.push(self.buf.len());
    }

    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    pub(crate) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.buf[start..self.ends[i]]
    }
}

/// Headers the mock looks at, as byte ranges into the request head.
#[derive(Default, Clone, Debug)]
pub(crate) struct Known {
    pub authorization: Option<Range<usize>>,
    pub x_api_key: Option<Range<usize>>,
    pub anthropic_version: Option<Range<usize>>,
    pub goog_key: Option<Range<usize>>,
    pub mock_chunks: Option<Range<usize>>,
    pub mock_delay: Option<Range<usize>>,
    pub mock_ttfb: Option<Range<usize>>,
}

/// A fully read request. `head` and `body` share the connection buffer.
pub(crate) struct Request {
    pub head: Bytes,
    method: Range<usize>,
    target: Range<usize>,
    pub http10: bool,
    pub keep_alive: bool,
    pub known: Known,
    pub body: Bytes,
}

impl Request {
    pub(crate) fn method(&self) -> &str {
        self.str(&self.method)
    }

    /// Path and query.
    pub(crate) fn target(&self) -> &str {
        self.str(&self.target)
    }

    pub(crate) fn header(&self, r: &Option<Range<usize>>) -> Option<&str> {
        r.as_ref().map(|r| self.str(r).trim())
    }

    fn str(&self, r: &Range<usize>) -> &str {
        std::str::from_utf8(&self.head[r.clone()]).unwrap_or("")
    }
}

pub(crate) enum ReadError {
    /// The client closed the connection between requests.
    Eof,
    /// Unreadable request: answer with this status and close.
    Bad(u16, &'static str),
    Io,
}

struct Head {
    len: usize,
    method: Range<usize>,
    target: Range<usize>,
    http10: bool,
    keep_alive: bool,
    chunked: bool,
    content_length: usize,
    expect_continue: bool,
    known: Known,
}

fn parse_head(buf: &[u8]) -> Result<Option<Head>, ReadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(ReadError::Bad(431, "too many headers"))
        }
        Err(_) => return Err(ReadError::Bad(400, "malformed HTTP request")),
    };
    let base = buf.as_ptr() as usize;
    let range = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        start..start + s.len()
    };
    let http10 = req.version == Some(0);
    let mut head = Head {
        len,
        method: range(req.method.unwrap_or("").as_bytes()),
        target: range(req.path.unwrap_or("").as_bytes()),
        http10,
        keep_alive: !http10,
        chunked: false,
        content_length: 0,
        expect_continue: false,
        known: Known::default(),
    };
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let slot = match name.len() {
            9 if name.eq_ignore_ascii_case(b"x-api-key") => &mut head.known.x_api_key,
            13 if name.eq_ignore_ascii_case(b"authorization") => &mut head.known.authorization,
            17 if name.eq_ignore_ascii_case(b"anthropic-version") => {
                &mut head.known.anthropic_version
            }
            14 if name.eq_ignore_ascii_case(b"x-goog-api-key") => &mut head.known.goog_key,
            13 if name.eq_ignore_ascii_case(b"x-mock-chunks") => &mut head.known.mock_chunks,
            21 if name.eq_ignore_ascii_case(b"x-mock-chunk-delay-ms") => &mut head.known.mock_delay,
            14 if name.eq_ignore_ascii_case(b"x-mock-ttfb-ms") => &mut head.known.mock_ttfb,
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                let v = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
                match v {
                    Some(n) => head.content_length = n,
                    None => return Err(ReadError::Bad(400, "invalid content-length")),
                }
                continue;
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => {
                let v = h.value.to_ascii_lowercase();
                head.chunked = v.ends_with(b"chunked");
                continue;
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for tok in h.value.split(|&b| b == b',') {
                    let tok = tok.trim_ascii();
                    if tok.eq_ignore_ascii_case(b"close") {
                        head.keep_alive = false;
                    } else if tok.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        head.keep_alive = true;
                    }
                }
                continue;
            }
            6 if name.eq_ignore_ascii_case(b"expect") => {
                head.expect_continue = h.value.trim_ascii().eq_ignore_ascii_case(b"100-continue");
                continue;
            }
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(range(h.value));
        }
    }
    if head.content_length > MAX_BODY {
        return Err(ReadError::Bad(413, "request body too large"));
    }
    Ok(Some(head))
}

/// Scan a chunked body at the start of `buf`: `Some((body_len, consumed))`
/// when complete, calling `data` for each piece of chunk data.
fn scan_chunked(
    buf: &[u8],
    mut data: impl FnMut(&[u8]),
) -> Result<Option<(usize, usize)>, ReadError> {
    let bad = || ReadError::Bad(400, "malformed chunked body");
    let mut pos = 0;
    let mut total = 0usize;
    loop {
        let (skip, size) = match httparse::parse_chunk_size(&buf[pos..]) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(bad()),
        };
        pos += skip;
        let size = usize::try_from(size).map_err(|_| bad())?;
        if size == 0 {
            // Trailer section: header lines up to an empty line.
            loop {
                let Some(eol) = buf[pos..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some((total, pos)));
                }
            }
        }
        total = total.checked_add(size).ok_or_else(bad)?;
        if total > MAX_BODY {
            return Err(ReadError::Bad(413, "request body too large"));
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(bad());
        }
        data(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

impl Conn {
    pub(crate) fn new(sock: TcpStream) -> Conn {
        Conn {
            sock,
            rbuf: BytesMut::with_capacity(8192),
            out: Vec::with_capacity(8192),
            body: Vec::with_capacity(4096),
            ev: Events::default(),
        }
    }

    async fn fill(&mut self) -> Result<usize, ReadError> {
        if self.rbuf.capacity() - self.rbuf.len() < 4096 {
            self.rbuf.reserve(16 * 1024);
        }
        self.sock
            .read_buf(&mut self.rbuf)
            .await
            .map_err(|_| ReadError::Io)
    }

    /// Read the next request. `Err(Eof)` when the client closed cleanly.
    pub(crate) async fn read_request(&mut self) -> Result<Request, ReadError> {
        let head = loop {
            if !self.rbuf.is_empty() {
                if let Some(h) = parse_head(&self.rbuf)? {
                    break h;
                }
                if self.rbuf.len() > MAX_HEAD {
                    return Err(ReadError::Bad(431, "request head too large"));
                }
            }
            if self.fill().await? == 0 {
                return Err(if self.rbuf.is_empty() {
                    ReadError::Eof
                } else {
                    ReadError::Io
                });
            }
        };
        let mut sent_continue = false;
        let body = if head.chunked {
            loop {
                if let Some((len, consumed)) = scan_chunked(&self.rbuf[head.len..], |_| {})? {
                    let mut body = BytesMut::with_capacity(len);
                    scan_chunked(&self.rbuf[head.len..], |d| body.extend_from_slice(d))?;
                    let head_bytes = self.rbuf.split_to(head.len).freeze();
                    let _ = self.rbuf.split_to(consumed);
                    break (head_bytes, body.freeze());
                }
                if head.expect_continue && !sent_continue {
                    sent_continue = true;
                    self.continue_100().await?;
                }
                if self.fill().await? == 0 {
                    return Err(ReadError::Io);
                }
            }
        } else {
            let need = head.len + head.content_length;
            if self.rbuf.len() < need {
                if head.expect_continue {
                    self.continue_100().await?;
                }
                self.rbuf.reserve(need - self.rbuf.len());
                while self.rbuf.len() < need {
                    if self.fill().await? == 0 {
                        return Err(ReadError::Io);
                    }
                }
            }
            let head_bytes = self.rbuf.split_to(head.len).freeze();
            (head_bytes, self.rbuf.split_to(head.content_length).freeze())
        };
        Ok(Request {
            head: body.0,
            method: head.method,
            target: head.target,
            http10: head.http10,
            keep_alive: head.keep_alive,
            known: head.known,
            body: body.1,
        })
    }

    async fn continue_100(&mut self) -> Result<(), ReadError> {
        self.sock
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| ReadError::Io)
    }

    /// Wait `dur` (forever with `None`) while watching the socket: returns
    /// `true` if the client closed the connection meanwhile. Bytes the
    /// client pipelines meanwhile are kept for the next request.
    pub(crate) async fn wait(&mut self, dur: Option<Duration>) -> bool {
        let sleep = async {
            match dur {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        loop {
            if self.rbuf.capacity() - self.rbuf.len() < 1024 {
                self.rbuf.reserve(4096);
            }
            tokio::select! {
                _ = &mut sleep => return false,
                r = self.sock.read_buf(&mut self.rbuf) => match r {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {
                        if self.rbuf.len() > MAX_HEAD + MAX_BODY {
                            return true;
                        }
                    }
                },
            }
        }
    }

    /// Write `self.out` entirely; `false` if the client is gone.
    pub(crate) async fn flush_out(&mut self) -> bool {
        let ok = self.sock.write_all(&self.out).await.is_ok();
        self.out.clear();
        ok
    }

    /// Reset the connection (RST instead of FIN).
    pub(crate) fn reset(self) {
        let _ = self.sock.set_zero_linger();
        drop(self.sock);
    }
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "Client Closed Request",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        529 => "Site Overloaded",
        _ => "Unknown",
    }
}

/// How a response body is framed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Length(usize),
    Chunked,
    /// HTTP/1.0 stream: delimited by closing the connection.
    Close,
}

/// Append a response head without its final empty line: add more
/// `name: value\r\n` lines, then `\r\n`.
pub(crate) fn push_head(
    out: &mut Vec<u8>,
    status: u16,
    content_type: &str,
    framing: Framing,
    keep_alive: bool,
    http10: bool,
) {
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    crate::text::push_u64(out, status as u64);
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(content_type.as_bytes());
    match framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"\r\ncontent-length: ");
            crate::text::push_u64(out, n as u64);
        }
        Framing::Chunked => {
            out.extend_from_slice(b"\r\ntransfer-encoding: chunked\r\ncache-control: no-cache")
        }
        Framing::Close => out.extend_from_slice(b"\r\ncache-control: no-cache"),
    }
    out.extend_from_slice(b"\r\n");
    if !keep_alive || framing == Framing::Close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
}

/// Append one body piece with chunked framing (or raw for `Framing::Close`).
pub(crate) fn push_piece(out: &mut Vec<u8>, data: &[u8], framing: Framing) {
    if framing != Framing::Chunked {
        out.extend_from_slice(data);
        return;
    }
    if data.is_empty() {
        return;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 16];
    let mut i = buf.len();
    let mut n = data.len();
    while n > 0 {
        i -= 1;
        buf[i] = HEX[n & 15];
        n >>= 4;
    }
    out.extend_from_slice(&buf[i..]);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Append the end of a chunked body.
pub(crate) fn push_last(out: &mut Vec<u8>, framing: Framing) {
    if framing == Framing::Chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_scan() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        let mut got = Vec::new();
        let r = scan_chunked(body, |d| got.extend_from_slice(d))
            .ok()
            .flatten();
        assert_eq!(r, Some((9, body.len() - 4)));
        assert_eq!(got, b"Wikipedia");
        assert!(matches!(scan_chunked(&body[..10], |_| {}), Ok(None)));
        assert!(matches!(
            scan_chunked(b"zz\r\n", |_| {}),
            Err(ReadError::Bad(400, _))
        ));
    }

    #[test]
    fn framing() {
        let mut out = Vec::new();
        push_piece(&mut out, &[b'a'; 26], Framing::Chunked);
        push_last(&mut out, Framing::Chunked);
        assert_eq!(&out[..4], b"1a\r\n");
        assert!(out.ends_with(b"a\r\n0\r\n\r\n"));
    }
}
