//! The client listener: a Pingora service that accepts TCP connections and runs each as one
//! tokio task driving `Gateway` (an `HttpServerApp`) request after request.
//!
//! Why not Pingora's listening `Service`: per connection it spawns a task whose future has the
//! TLS-capable handshake inline (8.8 KB) and boxes a protocol-sniffing `process_new` (3.8 KB),
//! which together were 40 % of a held stream's memory (`bench/memory.sh --massif`). The
//! listener here is plain HTTP/1.1 over TCP, which is all ezrouter serves (no TLS, no h2c), so
//! its task holds only the stream and the keep-alive loop. What it gives up, knowingly: Pingora's
//! listening-fd handover for zero-downtime upgrades (ezrouter does not offer `--upgrade`).
//! Each connection is a `ClientConn` (`conn.rs`): a response head leaves with its body.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::{ListenFds, ShutdownWatch};
use pingora_core::services::Service;

use crate::gateway::{stopped, Gateway};

mod conn;
use conn::ClientConn;
pub use conn::{gather_head_with_body, gather_to_end_of_body};

/// Pingora's own listeners use the same deep backlog: a burst of thousands of connects is queued,
/// not refused or left to SYN retries (the kernel caps it at `somaxconn`).
const BACKLOG: u32 = 65_535;

/// Idle time allowed between two requests on one connection, as Pingora's HTTP apps allow.
const KEEPALIVE_SECONDS: u64 = 60;

pub struct Listener {
    name: String,
    /// Bound at build time (so a taken port fails the start, not a service thread); listening
    /// starts in `start_service`, on the service's runtime.
    socket: Option<std::net::TcpListener>,
    gateway: Arc<Gateway>,
}

impl Listener {
    /// Binds `addr` (port 0: any free port) and returns the listener with its real address.
    pub fn bind(
        name: &str,
        addr: SocketAddr,
        gateway: Gateway,
    ) -> std::io::Result<(Listener, SocketAddr)> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        socket.listen(BACKLOG as i32)?;
        let socket: std::net::TcpListener = socket.into();
        let local = socket.local_addr()?;
        let listener = Listener {
            name: name.to_string(),
            socket: Some(socket),
            gateway: Arc::new(gateway),
        };
        Ok((listener, local))
    }
}

/// One client connection: requests in turn while the connection stays reusable.
async fn serve(gateway: Arc<Gateway>, tcp: tokio::net::TcpStream, shutdown: ShutdownWatch) {
    // Writes are already gathered (a head leaves with its body); Nagle would hold a stream's
    // next event back for the client's delayed ACK.
    let _ = tcp.set_nodelay(true);
    let mut stream: Stream = Box::new(ClientConn::new(tcp));
    let mut settings: Option<HttpPersistentSettings> = None;
    loop {
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(Some(KEEPALIVE_SECONDS));
        if let Some(settings) = settings.take() {
            settings.apply_to_session(&mut session);
        }
        match gateway.process_new_http(session, &shutdown).await {
            Some(reused) => (stream, settings) = reused.consume(),
            None => return,
        }
    }
}

/// Tokio wakes its timer driver (an eventfd write, then a wasted `epoll_wait`) whenever a timer
/// is registered that is due before every pending one. At low load that is each request's first
/// timer (an upstream attempt's, seconds to minutes out). With this timer always due within a
/// second, request timers are not the earliest and register silently; it costs one wake-up a
/// second. Spawned on the listener's runtime, the one whose driver serves the requests.
async fn keep_a_timer_due_within_a_second() {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

#[async_trait]
impl Service for Listener {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(socket) = self.socket.take() else {
            return;
        };
        let listener = match tokio::net::TcpListener::from_std(socket) {
            Ok(l) => l,
            Err(e) => return log::error!("{}: cannot listen: {e}", self.name),
        };
        tokio::spawn(keep_a_timer_due_within_a_second());
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        tokio::spawn(serve(self.gateway.clone(), tcp, shutdown.clone()));
                    }
                    Err(e) => {
                        log::error!("{}: accept failed: {e}", self.name);
                        // Out of file descriptors: accept would fail at once again; let some close.
                        if e.raw_os_error() == Some(24) {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                },
                _ = stopped(&mut shutdown) => return,
            }
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}
