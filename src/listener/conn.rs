//! The client connection as Pingora's HTTP/1 session sees it: a TCP stream that holds back one
//! small write (a response head) until the next write or flush, so the head leaves in the same
//! `writev` as the body that follows it.
//!
//! Why: Pingora's HTTP/1 writer sends the head and the body as separate writes, and over loopback
//! or a LAN each write that wakes the client costs the sender a wake-up (a third of ezrouter's CPU
//! at c=1, `perf`). Pingora's own listener gets this from an L4 write buffer that it can only
//! set inside the crate; this type does it for the one pattern that matters, without copying
//! bodies. Pingora flushes whenever a response must reach the client (a bodiless head, every
//! body write, the end of the body), so nothing is held across a wait. One exception, asked
//! for by the gateway (`gather_head_with_body`): Pingora flushes a head without
//! `Content-Length` at once, which for a stream whose first events are already in hand would send
//! the head alone; that one flush is skipped, and the head leaves with the events. A second,
//! `gather_to_end_of_body`: when the rest of a chunked body is in hand, its last piece and the
//! terminating chunk Pingora writes after it (and the head, if still unsent) leave in one write.

use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use async_trait::async_trait;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// The largest write that is held back; a larger one is sent at once.
const HOLD_MAX: usize = 4 * 1024;

/// The terminating chunk of a chunked body, as Pingora writes it (one write of its own).
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[derive(Debug)]
pub struct ClientConn {
    tcp: TcpStream,
    /// Accepted but not yet sent: at most one write of up to `HOLD_MAX` bytes.
    held: Vec<u8>,
    /// The next flush keeps `held` for the write that follows it (`gather_head_with_body`).
    hold_over_flush: AtomicBool,
    /// Every write is held (copied) and flushes wait, until the terminating chunk has been
    /// written: the first flush after it sends everything (`gather_to_end_of_body`).
    to_end_of_body: AtomicBool,
    /// In that mode: the terminating chunk is among the held bytes.
    body_ended: bool,
}

/// For a response whose head is about to be written with its first body bytes already in hand:
/// the head waits for that body write instead of leaving alone on Pingora's flush. The caller
/// must write body bytes (or end the body) right after the head.
pub fn gather_head_with_body(session: &ServerSession) {
    if let Some(conn) = client_conn(session) {
        conn.hold_over_flush.store(true, Ordering::Relaxed);
    }
}

/// The session's connection, when it is one of ours (always, behind `Listener`).
fn client_conn(session: &ServerSession) -> Option<&ClientConn> {
    session
        .stream()
        .and_then(|s| s.as_any().downcast_ref::<ClientConn>())
}

/// For a chunked response whose remaining body is in hand and about to be written with its end
/// (`write_response_body(rest, true)`): Pingora writes the last piece and the terminating chunk
/// separately, flushing after each; here both, and a head still held, leave in one write.
pub fn gather_to_end_of_body(session: &ServerSession) {
    // Only a chunked body has a terminating chunk to wait for (an HTTP/1.0 client's body ends
    // with the connection instead).
    if session.req_header().version != http::Version::HTTP_11 {
        return;
    }
    if let Some(conn) = client_conn(session) {
        conn.to_end_of_body.store(true, Ordering::Relaxed);
    }
}

impl ClientConn {
    pub fn new(tcp: TcpStream) -> ClientConn {
        ClientConn {
            tcp,
            held: Vec::new(),
            hold_over_flush: AtomicBool::new(false),
            to_end_of_body: AtomicBool::new(false),
            body_ended: false,
        }
    }

    /// In `to_end_of_body` mode: holds `bufs` (a copy) and returns their length.
    fn hold_to_end(&mut self, bufs: &[IoSlice<'_>]) -> Option<usize> {
        if !*self.to_end_of_body.get_mut() {
            return None;
        }
        let n = bufs.iter().map(|b| b.len()).sum();
        let ends_body = bufs.len() == 1 && &*bufs[0] == LAST_CHUNK;
        // Room for the terminating chunk that follows too: one allocation, not a doubling series
        // that copies the body at each step (nor a last one for the terminator itself).
        let to_come = if ends_body { 0 } else { LAST_CHUNK.len() };
        self.held.reserve(n + to_come);
        for buf in bufs {
            self.held.extend_from_slice(buf);
        }
        self.body_ended |= ends_body;
        Some(n)
    }

    /// Sends `held` ahead of `bufs` in one `writev`; returns how much of `bufs` went out.
    fn poll_send(&mut self, cx: &mut Context<'_>, bufs: &[IoSlice<'_>]) -> Poll<io::Result<usize>> {
        while !self.held.is_empty() {
            let mut slices = [IoSlice::new(&[]); 8];
            slices[0] = IoSlice::new(&self.held);
            let n = bufs.len().min(slices.len() - 1);
            slices[1..=n].copy_from_slice(&bufs[..n]);
            let written = ready!(Pin::new(&mut self.tcp).poll_write_vectored(cx, &slices[..=n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if written < self.held.len() {
                self.held.drain(..written);
                continue;
            }
            let of_bufs = written - self.held.len();
            // Freed, not kept: a connection holding a long stream keeps no idle buffer.
            self.held = Vec::new();
            // The head asked to be gathered has left; a later response must not inherit that.
            *self.hold_over_flush.get_mut() = false;
            if of_bufs > 0 {
                return Poll::Ready(Ok(of_bufs));
            }
        }
        // A flush with nothing held, or an empty write: no syscall.
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }
}

impl AsyncWrite for ClientConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.hold_to_end(&[IoSlice::new(buf)]) {
            return Poll::Ready(Ok(n));
        }
        if this.held.is_empty() && !buf.is_empty() && buf.len() <= HOLD_MAX {
            this.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        this.poll_send(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(n) = this.hold_to_end(bufs) {
            return Poll::Ready(Ok(n));
        }
        this.poll_send(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if *this.to_end_of_body.get_mut() {
            if !this.body_ended {
                return Poll::Ready(Ok(()));
            }
            // Everything is held: the head (if it waited too) leaves with it.
            *this.to_end_of_body.get_mut() = false;
            *this.hold_over_flush.get_mut() = false;
            this.body_ended = false;
        }
        if !this.held.is_empty() && this.hold_over_flush.swap(false, Ordering::Relaxed) {
            return Poll::Ready(Ok(()));
        }
        ready!(this.poll_send(cx, &[]))?;
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        *this.to_end_of_body.get_mut() = false;
        ready!(this.poll_send(cx, &[]))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

impl AsyncRead for ClientConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl Drop for ClientConn {
    fn drop(&mut self) {
        // Pingora flushes every response; this only covers a session dropped mid-write.
        if !self.held.is_empty() {
            let _ = self.tcp.try_write(&self.held);
        }
    }
}

#[async_trait]
impl Shutdown for ClientConn {
    async fn shutdown(&mut self) {
        let _ = AsyncWriteExt::shutdown(self).await;
    }
}

impl UniqueID for ClientConn {
    fn id(&self) -> UniqueIDType {
        self.tcp.as_raw_fd() as UniqueIDType
    }
}

impl Ssl for ClientConn {}

impl Peek for ClientConn {}

// The digests are Pingora's per-connection bookkeeping for its own logging; ezrouter keeps none.
impl GetTimingDigest for ClientConn {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for ClientConn {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for ClientConn {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    async fn pair() -> (ClientConn, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, accepted) = tokio::join!(client, listener.accept());
        (ClientConn::new(accepted.unwrap().0), client.unwrap())
    }

    /// Whatever the peer can read without waiting.
    async fn readable_now(peer: &mut TcpStream) -> Vec<u8> {
        let mut got = vec![0; 64 * 1024];
        match tokio::time::timeout(std::time::Duration::from_millis(100), peer.read(&mut got)).await
        {
            Ok(n) => got.truncate(n.unwrap()),
            Err(_) => got.clear(),
        }
        got
    }

    #[tokio::test]
    async fn a_small_write_waits_for_the_next_write_and_leaves_with_it() {
        let (mut conn, mut peer) = pair().await;
        conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert_eq!(readable_now(&mut peer).await, b"");
        let mut body = bytes::Buf::chain(&b"5\r\n"[..], &b"hello\r\n"[..]);
        conn.write_all_buf(&mut body).await.unwrap();
        assert_eq!(
            readable_now(&mut peer).await,
            b"HTTP/1.1 200 OK\r\n\r\n5\r\nhello\r\n"
        );
        assert!(conn.held.is_empty());
    }

    #[tokio::test]
    async fn flush_sends_what_is_held_and_large_writes_are_not_held() {
        let (mut conn, mut peer) = pair().await;
        conn.write_all(b"head").await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(readable_now(&mut peer).await, b"head");
        let large = vec![b'x'; HOLD_MAX + 1];
        conn.write_all(&large).await.unwrap();
        let mut got = Vec::new();
        while got.len() < large.len() {
            got.extend(readable_now(&mut peer).await);
        }
        assert_eq!(got, large);
    }

    #[tokio::test]
    async fn a_head_can_be_held_over_one_flush_for_the_body_in_hand() {
        let (mut conn, mut peer) = pair().await;
        conn.hold_over_flush.store(true, Ordering::Relaxed);
        conn.write_all(b"head;").await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(readable_now(&mut peer).await, b"");
        conn.write_all_buf(&mut &b"body"[..]).await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(readable_now(&mut peer).await, b"head;body");
    }

    #[tokio::test]
    async fn a_gathered_head_does_not_leave_its_request_to_the_next_response() {
        let (mut conn, mut peer) = pair().await;
        conn.hold_over_flush.store(true, Ordering::Relaxed);
        conn.write_all(b"head;").await.unwrap();
        conn.write_all_buf(&mut &b"body"[..]).await.unwrap();
        assert_eq!(readable_now(&mut peer).await, b"head;body");
        // The next response's bodiless head is flushed as usual.
        conn.write_all(b"next").await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(readable_now(&mut peer).await, b"next");
    }

    /// As Pingora writes a chunked body's last piece and its end: chunk, flush, terminator, flush.
    #[tokio::test]
    async fn the_rest_of_a_body_and_its_end_leave_in_one_write() {
        let (mut conn, mut peer) = pair().await;
        conn.hold_over_flush.store(true, Ordering::Relaxed);
        conn.to_end_of_body.store(true, Ordering::Relaxed);
        conn.write_all(b"head;").await.unwrap();
        conn.flush().await.unwrap();
        let large = vec![b'x'; HOLD_MAX + 1];
        let mut chunk = bytes::Buf::chain(&b"1001\r\n"[..], &large[..]);
        conn.write_all_buf(&mut chunk).await.unwrap();
        conn.flush().await.unwrap();
        assert_eq!(
            readable_now(&mut peer).await,
            b"",
            "nothing leaves before the end"
        );
        let room = conn.held.capacity();
        conn.write_all(LAST_CHUNK).await.unwrap();
        assert_eq!(conn.held.capacity(), room, "the terminator fit: no copy");
        conn.flush().await.unwrap();
        let mut got = Vec::new();
        while got.len() < 5 + 6 + large.len() + LAST_CHUNK.len() {
            got.extend(readable_now(&mut peer).await);
        }
        assert!(got.starts_with(b"head;1001\r\nxx") && got.ends_with(b"xx0\r\n\r\n"));
        // The mode ends with that body: the next response is written as usual.
        assert!(conn.held.is_empty());
        conn.write_all(&large).await.unwrap();
        let mut got = Vec::new();
        while got.len() < large.len() {
            got.extend(readable_now(&mut peer).await);
        }
    }

    #[tokio::test]
    async fn a_held_head_is_sent_when_the_session_is_dropped() {
        let (mut conn, mut peer) = pair().await;
        conn.write_all(b"bye").await.unwrap();
        drop(conn);
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye");
    }
}
