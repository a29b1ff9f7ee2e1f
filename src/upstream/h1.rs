//! The upstream leg's HTTP/1.1 client, on connections from `Connections`.
//!
//! Pingora's own client session (`connectors::http`) is not used because of what it costs per
//! exchange: a 64 KiB body buffer allocated for every response and held for a stream's whole
//! life (about 600 MB at 10,000 streams), an `http::HeaderMap` of response headers the gateway
//! rarely reads, and a request written in two syscalls. Here a request leaves in one write, the
//! response head stays raw bytes until an error needs one of its headers, and the body comes
//! through one small buffer that grows only as large as the largest burst; each burst is copied
//! out of it once, its framing removed, into the buffer the translator reads.

use std::io;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::HttpPeer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::connections::{Conn, Connections};

/// First size of a response's read buffer: an SSE event or a short answer. An idle stream holds
/// this much, so it is small; reads that fill it double it (up to `MAX_READ`) for large bodies.
const READ_BUF: usize = 1024;
const MAX_READ: usize = 64 * 1024;
/// The largest response head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Most header lines parsed in a response head.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line or trailer line (extensions included).
const MAX_LINE: usize = 4 * 1024;
/// Bodies up to this size are copied behind the head so that the request leaves in one write.
const COPY_BODY_MAX: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    #[error("timed out")]
    Timeout,
    #[error("connection closed before the response was complete")]
    Closed,
    /// The connection was closed or reset before the request was delivered or before any byte
    /// of an answer: on a reused connection, the upstream closing it as idle at that moment.
    #[error("connection closed without an answer{}", .0.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    Unanswered(Option<io::Error>),
    #[error("{0}")]
    Io(#[from] io::Error),
    /// Connecting failed (Pingora's error type names why: refused, TLS, DNS...).
    #[error("{0}")]
    Connect(&'static str),
    #[error("malformed response: {0}")]
    Malformed(&'static str),
}

impl H1Error {
    /// `Unanswered` for an I/O error that says the connection went away (`Io` otherwise).
    fn from_dropped(e: io::Error) -> H1Error {
        match e.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof => H1Error::Unanswered(Some(e)),
            _ => H1Error::Io(e),
        }
    }
}

/// A pooled connection to `peer` if one is idle, a new one otherwise.
pub async fn connect(conns: &Connections, peer: &HttpPeer) -> Result<Conn, H1Error> {
    if let Some(conn) = conns.take(peer).await {
        return Ok(conn);
    }
    connect_new(conns, peer).await
}

/// A new connection to `peer`.
pub async fn connect_new(conns: &Connections, peer: &HttpPeer) -> Result<Conn, H1Error> {
    // Boxed: connecting (TCP and TLS handshakes) is an 8 KiB state machine that would otherwise
    // be part of every request's future for the whole life of its stream.
    match Box::pin(conns.open(peer)).await {
        Ok(conn) => Ok(conn),
        Err(e) if e.etype() == &pingora_error::ErrorType::ConnectTimedout => Err(H1Error::Timeout),
        Err(e) => Err(H1Error::Connect(e.etype().as_str())),
    }
}

/// Writes `head` (ending in the blank line) and `body`: one write for all but large bodies.
pub async fn send(
    stream: &mut Stream,
    mut head: Vec<u8>,
    body: &[u8],
    timeout: Duration,
) -> Result<(), H1Error> {
    let write = async {
        if body.len() <= COPY_BODY_MAX {
            head.extend_from_slice(body);
            stream.write_all(&head).await?;
        } else {
            stream.write_all(&head).await?;
            stream.write_all(body).await?;
        }
        stream.flush().await
    };
    within(timeout, write).await?.map_err(H1Error::from_dropped)
}

/// The output of `future` if it is ready at once, without waiting. Only for cancel-safe futures.
async fn ready_now<F: std::future::Future>(future: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        output = future => Some(output),
        _ = std::future::ready(()) => None,
    }
}

/// `future`'s output, or `Timeout` after `limit`. The timer is only created when the future
/// cannot finish at once, so reads that find data waiting cost no timer.
async fn within<F: std::future::Future>(limit: Duration, future: F) -> Result<F::Output, H1Error> {
    let mut future = std::pin::pin!(future);
    tokio::select! {
        biased;
        out = &mut future => return Ok(out),
        _ = std::future::ready(()) => {}
    }
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| H1Error::Timeout)
}

/// How the response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `content-length` bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    UntilClose,
    Done,
}

/// Where a chunked body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes to go.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until a blank one.
    Trailers,
}

/// One response being read from an upstream connection.
pub struct Response {
    stream: Stream,
    buf: BytesMut,
    /// The raw head (status line and headers) of a non-2xx answer, for the rare header lookup.
    /// A 2xx head is dropped at once so that the read buffer can be reused from its start.
    head: Bytes,
    status: u16,
    framing: Framing,
    keep_alive: bool,
    /// Room made before each read; doubles each time a read fills it.
    read_size: usize,
    /// The largest `read_size` this response reached: the connection's hint for the next one
    /// (`read_size` itself drops back when a response ends in a small read).
    peak_read_size: usize,
}

impl Response {
    /// Reads the response head (skipping `1xx` interim answers). The caller bounds the wait.
    pub async fn read(conn: Conn) -> Result<Response, H1Error> {
        let read_size = conn.read_hint.clamp(READ_BUF, MAX_READ);
        let mut resp = Response {
            stream: conn.stream,
            buf: BytesMut::with_capacity(read_size),
            head: Bytes::new(),
            status: 0,
            framing: Framing::Done,
            keep_alive: false,
            read_size,
            peak_read_size: read_size,
        };
        // Whether any byte of an answer (a 1xx included) has come back.
        let mut answered = false;
        loop {
            if let Some(done) = resp.parse_head()? {
                if done {
                    return Ok(resp);
                }
                continue; // an interim 1xx: the real head follows
            }
            if resp.buf.len() >= MAX_HEAD {
                return Err(H1Error::Malformed("response head too large"));
            }
            match resp.fill_now().await {
                Ok(0) if !answered => return Err(H1Error::Unanswered(None)),
                Ok(0) => return Err(H1Error::Closed),
                Ok(_) => answered = true,
                Err(e) if !answered => return Err(H1Error::from_dropped(e)),
                Err(e) => return Err(H1Error::Io(e)),
            }
        }
    }

    pub fn status(&self) -> u16 {
        self.status
    }

    /// A response header's value (first occurrence), looked up in the raw head.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        parsed.parse(&self.head).ok()?;
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    }

    /// Parses a head from the buffer: `None` if incomplete, `Some(false)` for a skipped `1xx`.
    fn parse_head(&mut self) -> Result<Option<bool>, H1Error> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Response::new(&mut headers);
        let len = match parsed.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(H1Error::Malformed("too many headers"))
            }
            Err(_) => return Err(H1Error::Malformed("unreadable status line or headers")),
        };
        let status = parsed.code.unwrap_or(0);
        if (100..200).contains(&status) && status != 101 {
            self.buf.advance(len);
            return Ok(Some(false));
        }
        let mut length = None;
        let mut chunked = false;
        let mut keep_alive = parsed.version == Some(1);
        for h in parsed.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                let value = std::str::from_utf8(h.value).ok().map(str::trim);
                let n = value.and_then(|v| v.parse::<u64>().ok());
                match (n, length) {
                    (Some(n), None) => length = Some(n),
                    (Some(n), Some(seen)) if n == seen => {}
                    _ => return Err(H1Error::Malformed("invalid content-length")),
                }
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                // Only the last coding decides the framing; anything but chunked reads to close.
                chunked = h
                    .value
                    .rsplit(|&b| b == b',')
                    .next()
                    .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
                if !chunked {
                    keep_alive = false;
                }
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    if token.eq_ignore_ascii_case(b"close") {
                        keep_alive = false;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && parsed.version == Some(0)
                    {
                        keep_alive = true;
                    }
                }
            }
        }
        self.status = status;
        self.framing = if status == 204 || status == 304 {
            Framing::Done
        } else if chunked {
            Framing::Chunked(Chunk::Size)
        } else if let Some(n) = length {
            if n == 0 {
                Framing::Done
            } else {
                Framing::Length(n)
            }
        } else {
            keep_alive = false;
            Framing::UntilClose
        };
        self.keep_alive = keep_alive;
        let head = self.buf.split_to(len);
        if !(200..300).contains(&status) {
            self.head = head.freeze();
        }
        Ok(Some(true))
    }

    /// Appends the body's next bytes to `out`: every body byte already read, after a read of
    /// the socket if there was none. Returns once `out` has grown or the body has ended
    /// ([`Response::done`]). Each read waits at most `idle` (without limit for `None`).
    ///
    /// Cancel-safe: what was read stays in the buffer, and the decoder's state is in `self`.
    pub async fn read_body(
        &mut self,
        out: &mut Vec<u8>,
        idle: Option<Duration>,
    ) -> Result<(), H1Error> {
        let before = out.len();
        loop {
            self.read_body_buffered(out)?;
            if out.len() > before || self.framing == Framing::Done {
                return Ok(());
            }
            let read = match idle {
                Some(idle) => within(idle, self.fill_now()).await??,
                None => self.fill_now().await?,
            };
            if read == 0 {
                if self.framing == Framing::UntilClose {
                    self.framing = Framing::Done;
                    return Ok(());
                }
                return Err(H1Error::Closed);
            }
        }
    }

    /// [`Response::read_body`] if it can finish without waiting (`None` if not): to gather a
    /// burst that has already arrived into one client write.
    pub async fn read_body_ready(&mut self, out: &mut Vec<u8>) -> Option<Result<(), H1Error>> {
        ready_now(self.read_body(out, None)).await
    }

    /// Appends the body bytes already in the buffer to `out` (framing removed), without reading
    /// the socket. Copied out, not handed out as pieces of the buffer: a stream's framing costs
    /// no allocation or reference count per chunk, and the buffer is never shared, so the next
    /// read reuses it from its start.
    pub fn read_body_buffered(&mut self, out: &mut Vec<u8>) -> Result<(), H1Error> {
        let mut at = 0;
        let decoded = loop {
            let rest = &self.buf[at..];
            match self.framing {
                Framing::Done => break Ok(()),
                Framing::UntilClose => {
                    out.extend_from_slice(rest);
                    at += rest.len();
                    break Ok(());
                }
                Framing::Length(left) | Framing::Chunked(Chunk::Data(left)) => {
                    if rest.is_empty() {
                        break Ok(());
                    }
                    let n = (rest.len() as u64).min(left);
                    if out.capacity() - out.len() < n as usize {
                        // Room for all the buffer may hold in one allocation (the framing only
                        // makes the body shorter), and exactly this piece when it is all there
                        // is (an event at a time): a `Vec` with spare room would cost its
                        // conversion to `Bytes` a second allocation, and its drop a second free.
                        // Only into an empty `out`: a burst gathered over several reads grows
                        // by doubling, not by one copy of itself per read.
                        if out.is_empty() && rest.len() - n as usize <= b"\r\n".len() {
                            out.reserve_exact(n as usize);
                        } else {
                            out.reserve(rest.len());
                        }
                    }
                    out.extend_from_slice(&rest[..n as usize]);
                    at += n as usize;
                    let left = left - n;
                    self.framing = match self.framing {
                        Framing::Length(_) if left == 0 => Framing::Done,
                        Framing::Length(_) => Framing::Length(left),
                        _ if left == 0 => Framing::Chunked(Chunk::DataEnd),
                        _ => Framing::Chunked(Chunk::Data(left)),
                    };
                }
                // The common end of a chunk's data, checked without a line search.
                Framing::Chunked(Chunk::DataEnd) if rest.starts_with(b"\r\n") => {
                    at += 2;
                    self.framing = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Size) => match size_line(rest) {
                    Ok(Some((size, used))) => {
                        at += used;
                        self.framing = Framing::Chunked(match size {
                            0 => Chunk::Trailers,
                            n => Chunk::Data(n),
                        });
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                },
                Framing::Chunked(state) => {
                    let (line, used) = match line_in(rest) {
                        Ok(Some(line)) => line,
                        Ok(None) => break Ok(()),
                        Err(e) => break Err(e),
                    };
                    let next = match state {
                        Chunk::DataEnd if line.is_empty() => Chunk::Size,
                        Chunk::DataEnd => {
                            break Err(H1Error::Malformed("chunk longer than its size"))
                        }
                        Chunk::Trailers if line.is_empty() => {
                            at += used;
                            self.framing = Framing::Done;
                            break Ok(());
                        }
                        Chunk::Trailers => Chunk::Trailers,
                        Chunk::Size | Chunk::Data(_) => unreachable!("handled above"),
                    };
                    at += used;
                    self.framing = Framing::Chunked(next);
                }
            }
        };
        self.buf.advance(at);
        decoded
    }

    /// Reads whatever the socket has into the buffer (waiting for at least one byte).
    async fn fill_now(&mut self) -> io::Result<usize> {
        let spare = self.buf.capacity() - self.buf.len();
        if self.buf.is_empty() && spare > 2 * self.read_size {
            // Shrunk back after a burst: a held stream keeps only a small buffer.
            self.buf = BytesMut::with_capacity(self.read_size);
        } else if spare < self.read_size / 2 || self.buf.is_empty() {
            // Back to the buffer's start (moving only the few bytes not yet taken, and a no-op
            // while there is room): a long stream keeps touching one page.
            self.buf.reserve(self.read_size);
        }
        let room = self.buf.capacity() - self.buf.len();
        let n = self.stream.read_buf(&mut self.buf).await?;
        if n == room {
            self.read_size = (self.read_size * 2).min(MAX_READ);
            self.peak_read_size = self.peak_read_size.max(self.read_size);
        } else if n < READ_BUF {
            // A trickle, an event at a time: back to the small buffer a held stream should have.
            self.read_size = READ_BUF;
        }
        Ok(n)
    }

    /// Whether the whole body has been read.
    pub fn done(&self) -> bool {
        self.framing == Framing::Done
    }

    /// Hands the connection back to the pool when the exchange left it clean; closes it otherwise.
    pub async fn release(self, conns: &Connections, peer: &HttpPeer) {
        if self.done() && self.keep_alive && self.buf.is_empty() {
            let conn = Conn {
                stream: self.stream,
                read_hint: self.peak_read_size,
                reused: false,
            };
            conns.release(conn, peer).await;
        }
    }
}

/// The first line in `buf` without its line ending, and the length taken with the ending;
/// `None` until the line is complete.
fn line_in(buf: &[u8]) -> Result<Option<(&[u8], usize)>, H1Error> {
    let Some(end) = memchr::memchr(b'\n', buf) else {
        if buf.len() > MAX_LINE {
            return Err(H1Error::Malformed("chunk framing line too long"));
        }
        return Ok(None);
    };
    let line = &buf[..end];
    Ok(Some((line.strip_suffix(b"\r").unwrap_or(line), end + 1)))
}

/// A chunk-size line at the start of `buf`: the size and the line's length with its break, or
/// `None` while the line is incomplete. Plain hex digits and CRLF, what servers write, are read
/// in place; any other line (extensions, blanks, a bare LF) goes through the line search.
fn size_line(buf: &[u8]) -> Result<Option<(u64, usize)>, H1Error> {
    let digits = buf.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if buf[digits..].starts_with(b"\r\n") {
        return Ok(Some((hex_size(&buf[..digits])?, digits + 2)));
    }
    match line_in(buf)? {
        Some((line, used)) => Ok(Some((chunk_size(line)?, used))),
        None => Ok(None),
    }
}

/// The size in a chunk-size line (hex, extensions after `;` ignored).
fn chunk_size(line: &[u8]) -> Result<u64, H1Error> {
    hex_size(
        line.split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii(),
    )
}

/// A chunk size written in hex digits (at most 15: it fits a `u64`).
fn hex_size(digits: &[u8]) -> Result<u64, H1Error> {
    if digits.is_empty() || digits.len() > 15 {
        return Err(H1Error::Malformed("invalid chunk size"));
    }
    digits.iter().try_fold(0u64, |n, &d| {
        let v = (d as char)
            .to_digit(16)
            .ok_or(H1Error::Malformed("invalid chunk size"))?;
        Ok(n * 16 + u64::from(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// A response over a real socket pair, written by `server` in the given pieces.
    async fn exchange(pieces: Vec<&'static [u8]>) -> (Response, tokio::task::JoinHandle<()>) {
        exchange_with_hint(pieces, 0).await
    }

    async fn exchange_with_hint(
        pieces: Vec<&'static [u8]>,
        read_hint: usize,
    ) -> (Response, tokio::task::JoinHandle<()>) {
        let (resp, server) = read_head(pieces, read_hint).await;
        (resp.unwrap(), server)
    }

    /// An upstream that writes `pieces` (5 ms apart) and closes; the head read from it.
    async fn read_head(
        pieces: Vec<&'static [u8]>,
        read_hint: usize,
    ) -> (Result<Response, H1Error>, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            for piece in pieces {
                s.write_all(piece).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let stream: Stream = Box::new(pingora_core::protocols::l4::stream::Stream::from(tcp));
        let resp = Response::read(Conn {
            stream,
            read_hint,
            reused: false,
        })
        .await;
        (resp, server)
    }

    async fn body(resp: &mut Response) -> Result<Vec<u8>, H1Error> {
        let mut out = Vec::new();
        while !resp.done() {
            resp.read_body(&mut out, Some(Duration::from_secs(5)))
                .await?;
        }
        Ok(out)
    }

    #[tokio::test]
    async fn content_length_body_split_across_reads() {
        let (mut resp, _s) = exchange(vec![
            b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 11\r\nRetry-After:  7 \r\n\r\nhel",
            b"lo world",
        ])
        .await;
        assert_eq!(resp.status(), 429);
        assert_eq!(resp.header("retry-after"), Some("7"));
        assert_eq!(body(&mut resp).await.unwrap(), b"hello world");
        assert!(resp.done() && resp.keep_alive);
    }

    #[tokio::test]
    async fn chunked_body_with_extensions_trailers_and_split_framing() {
        let (mut resp, _s) = exchange(vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r",
            b"\nhello\r\n6\r\n wor",
            b"ld\r\n0\r\nX-Trailer: t\r\n",
            b"\r\n",
        ])
        .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(body(&mut resp).await.unwrap(), b"hello world");
        assert!(resp.done() && resp.keep_alive && resp.buf.is_empty());
    }

    /// An event at a time (the common stream) fills a buffer of exactly its size, which becomes
    /// `Bytes` without a second allocation; several chunks at once take one allocation, and a
    /// burst gathered over several reads grows by doubling, not by one exact reallocation (a
    /// copy of the burst) per read. The bytes are put in the read buffer by hand, so that no
    /// timing decides how they are split.
    #[tokio::test]
    async fn a_lone_piece_is_copied_out_into_a_buffer_of_its_size() {
        let (mut resp, _s) = exchange(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ])
        .await;
        let mut one = Vec::new();
        resp.buf.extend_from_slice(b"7\r\nevent 1\r\n");
        resp.read_body_buffered(&mut one).unwrap();
        assert_eq!((&one[..], one.capacity()), (&b"event 1"[..], 7));
        let mut two = Vec::new();
        resp.buf
            .extend_from_slice(b"7\r\nevent 2\r\n7\r\nevent 3\r\n0\r\n\r\n");
        resp.read_body_buffered(&mut two).unwrap();
        assert_eq!(two, b"event 2event 3");
        assert!(resp.done() && two.capacity() < 64, "{}", two.capacity());

        let (mut resp, _s) = exchange(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 21\r\n\r\n"]).await;
        let mut burst = Vec::new();
        for piece in [b"event 4", b"event 5", b"event 6"] {
            resp.buf.extend_from_slice(piece);
            resp.read_body_buffered(&mut burst).unwrap();
        }
        assert_eq!(burst, b"event 4event 5event 6");
        assert_eq!(burst.capacity(), 28, "7, then doubled twice");
    }

    #[tokio::test]
    async fn a_large_body_grows_the_reads() {
        static BIG: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n".to_vec();
            v.extend((0..200_000).map(|i| b'a' + (i % 26) as u8));
            v
        });
        let (mut resp, _s) = exchange(vec![&BIG[..]]).await;
        let (mut pieces, mut total) = (0, 0);
        let mut out = Vec::new();
        while !resp.done() {
            pieces += 1;
            out.clear();
            resp.read_body(&mut out, Some(Duration::from_secs(5)))
                .await
                .unwrap();
            total += out.len();
        }
        assert_eq!(total, 200_000);
        // 1 KiB reads would take 196 of them; doubling up to 64 KiB takes a handful.
        assert!(pieces < 40, "{pieces} reads");
        assert_eq!(resp.read_size, MAX_READ);
    }

    /// A connection whose last response grew the reads starts the next one there, and a stream
    /// that then trickles goes back to the small buffer.
    #[tokio::test]
    async fn the_read_hint_starts_large_and_a_trickle_shrinks_it() {
        static BURST: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut v = b"HTTP/1.1 200 OK\r\nContent-Length: 12000\r\n\r\n".to_vec();
            v.extend((0..12_000).map(|i| b'a' + (i % 26) as u8));
            v
        });
        let (mut resp, _s) = exchange_with_hint(vec![&BURST[..]], 16 * 1024).await;
        let mut piece = Vec::new();
        resp.read_body(&mut piece, Some(Duration::from_secs(5)))
            .await
            .unwrap();
        assert_eq!(
            piece.len(),
            12_000,
            "the head and the whole body in one read"
        );

        let (mut resp, _s) = exchange_with_hint(
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n",
                b"event one\n",
            ],
            16 * 1024,
        )
        .await;
        assert_eq!(body(&mut resp).await.unwrap(), b"event one\n");
        assert_eq!(resp.read_size, READ_BUF);
        assert!(
            resp.buf.capacity() <= 2 * READ_BUF,
            "the large buffer was let go"
        );
    }

    #[tokio::test]
    async fn close_delimited_body_and_connection_close() {
        let (mut resp, _s) = exchange(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil ", b"close"]).await;
        assert_eq!(body(&mut resp).await.unwrap(), b"until close");
        assert!(!resp.keep_alive);
        let (mut resp, _s) = exchange(vec![
            b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        ])
        .await;
        assert_eq!(body(&mut resp).await.unwrap(), b"");
        assert!(!resp.keep_alive);
    }

    #[tokio::test]
    async fn truncated_and_malformed_bodies_are_errors() {
        let (mut resp, _s) =
            exchange(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]).await;
        assert!(matches!(body(&mut resp).await, Err(H1Error::Closed)));
        let (mut resp, _s) = exchange(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ])
        .await;
        assert!(matches!(body(&mut resp).await, Err(H1Error::Malformed(_))));
        let (mut resp, _s) = exchange(vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        ])
        .await;
        assert!(matches!(body(&mut resp).await, Err(H1Error::Malformed(_))));
    }

    #[tokio::test]
    async fn a_close_before_any_answer_byte_is_unanswered() {
        // What a reused connection's upstream closing it as idle looks like: nothing at all.
        let (resp, _s) = read_head(vec![], 0).await;
        assert!(matches!(resp, Err(H1Error::Unanswered(None))));
        // Once any byte came back (a 1xx, part of a head), the request was answered.
        let (resp, _s) = read_head(vec![b"HTTP/1.1 100 Continue\r\n\r\n"], 0).await;
        assert!(matches!(resp, Err(H1Error::Closed)));
        let (resp, _s) = read_head(vec![b"HTTP/1.1 200 O"], 0).await;
        assert!(matches!(resp, Err(H1Error::Closed)));
    }

    #[tokio::test]
    async fn idle_timeout_between_pieces() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let stream: Stream = Box::new(pingora_core::protocols::l4::stream::Stream::from(tcp));
        let mut resp = Response::read(Conn {
            stream,
            read_hint: 0,
            reused: false,
        })
        .await
        .unwrap();
        let idle = Duration::from_millis(50);
        let mut out = Vec::new();
        resp.read_body(&mut out, Some(idle)).await.unwrap();
        assert_eq!(out, b"ab");
        assert!(matches!(
            resp.read_body(&mut out, Some(idle)).await,
            Err(H1Error::Timeout)
        ));
    }

    #[test]
    fn chunk_sizes() {
        assert_eq!(size_line(b"1A\r\nxy").unwrap(), Some((26, 4)));
        assert_eq!(size_line(b"1A;ext=1\r\n").unwrap(), Some((26, 10)));
        assert_eq!(size_line(b"1A\n").unwrap(), Some((26, 3)));
        assert_eq!(size_line(b"1A").unwrap(), None);
        assert_eq!(size_line(b"1A\r").unwrap(), None);
        assert!(size_line(b"1G\r\n").is_err());
        assert!(size_line(b"ffffffffffffffff\r\n").is_err());
        assert_eq!(chunk_size(b"1A").unwrap(), 26);
        assert_eq!(chunk_size(b"0 ; name=value").unwrap(), 0);
        assert!(chunk_size(b"").is_err());
        assert!(chunk_size(b"-1").is_err());
        assert!(chunk_size(b"ffffffffffffffff").is_err());
    }
}
