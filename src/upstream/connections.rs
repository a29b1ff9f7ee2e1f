//! Upstream connections: new ones from Pingora's `TransportConnector` (TCP, TLS), idle ones kept
//! here for reuse.
//!
//! Why not the connector's own keep-alive pool: it spawns a task per released connection to watch
//! it while idle, and taking the connection back means waking that task and waiting for it to let
//! go (two task switches, often a cross-thread wake-up, on every request; now and then the
//! hand-over fails outright: "failed to acquire reusable stream"). Here an idle connection just
//! waits in a list. Whether its upstream closed it meanwhile is checked when it is taken back
//! (a read that must find nothing, as Pingora checks too); connections idle past the peer's
//! `idle_timeout` are dropped when their list is next touched, and by `sweep` once a minute.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use tokio::io::{AsyncRead, ReadBuf};

/// An upstream connection and what its last exchange learned.
pub struct Conn {
    pub stream: Stream,
    /// The read size the connection's last response grew to (0: none yet). The next response
    /// starts there, so a provider that answers in bursts is read in one syscall, not in a
    /// doubling series from the small size an idle stream holds.
    pub read_hint: usize,
    /// Taken from the idle list, not just opened: the upstream may have closed it at the very
    /// moment it was reused, which says nothing about the upstream's health (`H1Error::Unanswered`).
    pub reused: bool,
}

/// Opens upstream connections and keeps the idle ones, up to a total.
pub struct Connections {
    connector: TransportConnector,
    idle: Mutex<Idle>,
    max_idle: usize,
}

#[derive(Default)]
struct Idle {
    /// By `Peer::reuse_hash` (address, TLS, SNI, options); each list oldest first.
    by_peer: HashMap<u64, Vec<Parked>>,
    count: usize,
}

struct Parked {
    conn: Conn,
    /// Released time plus the peer's `idle_timeout`; `None`: kept until taken or over the cap.
    expires: Option<Instant>,
}

impl Connections {
    /// `max_idle`: idle connections kept across all peers; a release past it closes instead.
    pub fn new(max_idle: usize) -> Self {
        Connections {
            // The connector's own pool is never used: nothing is released to it.
            connector: TransportConnector::new(None),
            idle: Mutex::new(Idle::default()),
            max_idle,
        }
    }

    /// The most recently released connection to `peer` that is still open, if any.
    pub async fn take(&self, peer: &HttpPeer) -> Option<Conn> {
        let key = peer.reuse_hash();
        loop {
            let (mut parked, expired) = {
                let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
                let list = idle.by_peer.get_mut(&key)?;
                let parked = list.pop()?;
                // The newest is past its time, so is every older one.
                let expired = if is_expired(&parked, Instant::now()) {
                    std::mem::take(list)
                } else {
                    Vec::new()
                };
                idle.count -= 1 + expired.len();
                (parked, expired)
            };
            if !expired.is_empty() {
                return None; // `parked` and `expired` close here, outside the lock
            }
            if is_quiet(&mut parked.conn.stream).await {
                parked.conn.reused = true;
                return Some(parked.conn);
            }
        }
    }

    /// A new connection to `peer`.
    pub async fn open(&self, peer: &HttpPeer) -> pingora_error::Result<Conn> {
        let stream = self.connector.new_stream(peer).await?;
        Ok(Conn {
            stream,
            read_hint: 0,
            reused: false,
        })
    }

    /// Keeps `conn`, whose last exchange with `peer` ended cleanly, for reuse.
    pub async fn release(&self, mut conn: Conn, peer: &HttpPeer) {
        // An upstream that already sent more (or closed) is not idle.
        if !is_quiet(&mut conn.stream).await {
            return;
        }
        let key = peer.reuse_hash();
        let now = Instant::now();
        let expires = peer.options.idle_timeout.map(|limit| now + limit);
        let expired = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.count >= self.max_idle {
                return;
            }
            let list = idle.by_peer.entry(key).or_default();
            let expired = drain_expired(list, now);
            list.push(Parked { conn, expires });
            idle.count = idle.count + 1 - expired.len();
            expired
        };
        drop(expired);
    }

    /// Closes every connection idle past its time. For a periodic chore: a list nobody takes
    /// from would otherwise keep connections its upstream has long closed.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut closed = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            for list in idle.by_peer.values_mut() {
                closed.extend(drain_expired(list, now));
            }
            idle.by_peer.retain(|_, list| !list.is_empty());
            idle.count -= closed.len();
        }
        drop(closed);
    }

    #[cfg(test)]
    fn idle_count(&self) -> usize {
        self.idle.lock().unwrap().count
    }
}

fn is_expired(parked: &Parked, now: Instant) -> bool {
    parked.expires.is_some_and(|at| now >= at)
}

/// Removes the expired front of a list (oldest first, and one peer has one `idle_timeout`).
fn drain_expired(list: &mut Vec<Parked>, now: Instant) -> Vec<Parked> {
    let fresh = list.partition_point(|p| is_expired(p, now));
    if fresh == 0 {
        return Vec::new();
    }
    list.drain(..fresh).collect()
}

/// Whether a read would wait: the upstream has neither closed the connection nor sent anything.
///
/// Polled once with a waker that does nothing (an idle connection must not wake whoever checked
/// it last) and outside tokio's cooperative budget, which could otherwise answer "would wait" for
/// a connection that has in fact closed.
async fn is_quiet(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    tokio::task::unconstrained(std::future::poll_fn(|_| {
        let mut cx = Context::from_waker(Waker::noop());
        let mut buf = ReadBuf::new(&mut byte);
        Poll::Ready(
            Pin::new(&mut *stream)
                .poll_read(&mut cx, &mut buf)
                .is_pending(),
        )
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    async fn upstream() -> (HttpPeer, TcpListener) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut peer = HttpPeer::new(listener.local_addr().unwrap(), false, String::new());
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        (peer, listener)
    }

    #[tokio::test]
    async fn a_released_connection_is_taken_back() {
        let (peer, listener) = upstream().await;
        let conns = Connections::new(8);
        assert!(conns.take(&peer).await.is_none());
        let mut conn = conns.open(&peer).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        conn.read_hint = 4096;
        conns.release(conn, &peer).await;
        assert_eq!(conns.idle_count(), 1);
        let mut conn = conns.take(&peer).await.expect("the idle connection");
        assert_eq!(conns.idle_count(), 0);
        assert_eq!(conn.read_hint, 4096, "what it learned comes back with it");
        // It is the same connection: what is written arrives at the accepted socket.
        conn.stream.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_not_reused() {
        let (peer, listener) = upstream().await;
        let conns = Connections::new(8);
        let stream = conns.open(&peer).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        conns.release(stream, &peer).await;
        drop(server);
        // Let the FIN arrive and the reactor see it.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(conns.take(&peer).await.is_none());
        assert_eq!(conns.idle_count(), 0);
    }

    #[tokio::test]
    async fn unexpected_data_is_not_idle() {
        let (peer, listener) = upstream().await;
        let conns = Connections::new(8);
        let stream = conns.open(&peer).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        server.write_all(b"HTTP/1.1 200 OK\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        conns.release(stream, &peer).await;
        assert_eq!(conns.idle_count(), 0);
    }

    #[tokio::test]
    async fn idle_past_the_timeout_or_past_the_cap_is_closed() {
        let (mut peer, listener) = upstream().await;
        peer.options.idle_timeout = Some(Duration::from_millis(30));
        let conns = Connections::new(2);
        let (mut opened, mut accepted) = (Vec::new(), Vec::new());
        for _ in 0..4 {
            opened.push(conns.open(&peer).await.unwrap());
            accepted.push(listener.accept().await.unwrap());
        }
        let fourth = opened.pop().unwrap();
        for stream in opened {
            conns.release(stream, &peer).await;
        }
        assert_eq!(conns.idle_count(), 2, "the third release is over the cap");
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(conns.take(&peer).await.is_none());
        assert_eq!(conns.idle_count(), 0);

        conns.release(fourth, &peer).await;
        conns.sweep();
        assert_eq!(conns.idle_count(), 1, "not expired yet");
        tokio::time::sleep(Duration::from_millis(40)).await;
        conns.sweep();
        assert_eq!(conns.idle_count(), 0);
    }
}
