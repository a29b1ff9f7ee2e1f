//! The client listener: a Pingora service that accepts TCP connections and runs each as one
//! tokio task driving an `HttpServerApp` (the `Gateway`, or the admin app) request after request.
//! Its sockets are bound when it is built, so a port 0 is known before anything is reported.
//!
//! Why not Pingora's listening `Service`: per connection it spawns a task whose future has the
//! TLS-capable handshake inline (8.8 KB) and boxes a protocol-sniffing `process_new` (3.8 KB),
//! which together were 40 % of a held stream's memory (`bench/memory.sh --massif`). The
//! listener here is plain HTTP/1.1 over TCP, which is all ezrouter serves (no TLS, no h2c), so
//! its task holds only the stream and the keep-alive loop. What it gives up, knowingly: Pingora's
//! listening-fd handover for zero-downtime upgrades (ezrouter does not offer `--upgrade`).
//! Each connection is a `ClientConn` (`conn.rs`): a response head leaves with its body.
//!
//! Thread per core, as nginx's workers with `reuseport`: each worker thread runs its own
//! single-threaded runtime, accepts on its own `SO_REUSEPORT` socket (the kernel spreads new
//! connections across them by address hash) and serves every connection it accepted start to
//! end, with its own idle upstream connections (`Gateway::conns`). A request's client socket,
//! upstream socket and timers are all on one thread's reactor, so nothing wakes another thread
//! (tokio's work-stealing scheduler woke its second worker through an eventfd on every request).
//! One shared socket polled by every worker would not spread a burst of connects: the thread
//! already awake takes them all.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::{ListenFds, ShutdownWatch};
use pingora_core::services::Service;
use tokio::task::JoinSet;

use crate::gateway::stopped;

mod conn;
use conn::ClientConn;
pub use conn::{gather_head_with_body, gather_to_end_of_body};

/// Pingora's own listeners use the same deep backlog: a burst of thousands of connects is queued,
/// not refused or left to SYN retries (the kernel caps it at `somaxconn`).
const BACKLOG: u32 = 65_535;

/// Idle time allowed between two requests on one connection, as Pingora's HTTP apps allow.
const KEEPALIVE_SECONDS: u64 = 60;

pub struct Listener<A> {
    name: String,
    /// One per worker thread: its listening socket, bound at build time (so a taken port fails
    /// the start, not a worker), and its app (a gateway has that thread's idle upstream
    /// connections).
    workers: Vec<(std::net::TcpListener, A)>,
    /// Each worker keeps a timer due within a second while it has connections
    /// (`STEADY_TIMER_PERIOD`).
    steady_timer: bool,
}

impl<A: HttpServerApp + Send + Sync + 'static> Listener<A> {
    /// Binds `addr` (port 0: any free port) once per app and returns the listener with its real
    /// address; one worker thread per app will serve it.
    pub fn bind(
        name: &str,
        addr: SocketAddr,
        apps: Vec<A>,
    ) -> std::io::Result<(Listener<A>, SocketAddr)> {
        let mut local = addr;
        let mut workers = Vec::with_capacity(apps.len());
        for app in apps {
            let socket = listen(local)?;
            // Port 0 picked a port: the other workers' sockets join that one.
            local = socket.local_addr()?;
            workers.push((socket, app));
        }
        let listener = Listener {
            name: name.to_string(),
            workers,
            steady_timer: true,
        };
        Ok((listener, local))
    }

    /// For a port whose requests are few and set no timers of their own (the admin port): its
    /// worker keeps no steady timer, so it sleeps while idle.
    pub fn without_steady_timer(mut self) -> Self {
        self.steady_timer = false;
        self
    }
}

/// A listening socket in `addr`'s `SO_REUSEPORT` group: sockets of the same user bound to the
/// same address share its connections. A port taken by any other socket fails the bind.
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG as i32)?;
    Ok(socket.into())
}

/// One client connection: requests in turn while the connection stays reusable.
async fn serve<A: HttpServerApp>(app: Arc<A>, tcp: tokio::net::TcpStream, shutdown: ShutdownWatch) {
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
        match app.process_new_http(session, &shutdown).await {
            Some(reused) => (stream, settings) = reused.consume(),
            None => return,
        }
    }
}

/// Tokio wakes its timer driver (an eventfd write, then a wasted `epoll_wait`) whenever a timer
/// is registered that is due before every pending one. At low load that is each request's first
/// timer (an upstream attempt's, seconds to minutes out). With a timer always due within a second
/// while connections are open, request timers are not the earliest and register silently; it
/// costs two wake-ups a second, and none while the worker has no connection (it sleeps). Kept by
/// each worker's accept loop, the task whose runtime serves its requests (not the admin port's:
/// `Listener::without_steady_timer`).
const STEADY_TIMER_PERIOD: std::time::Duration = std::time::Duration::from_millis(500);

/// One worker thread: accepts and serves until shutdown, then lets its connections finish
/// (Pingora's grace period bounds that: the process exits after it).
fn work<A: HttpServerApp + Send + Sync + 'static>(
    name: &str,
    socket: std::net::TcpListener,
    app: Arc<A>,
    steady_timer: bool,
    shutdown: ShutdownWatch,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return log::error!("{name}: cannot start a runtime: {e}"),
    };
    runtime.block_on(async {
        let listener = match tokio::net::TcpListener::from_std(socket) {
            Ok(l) => l,
            Err(e) => return log::error!("{name}: cannot listen: {e}"),
        };
        let steady = tokio::time::sleep(STEADY_TIMER_PERIOD);
        tokio::pin!(steady);
        let mut connections = JoinSet::new();
        let mut stopping = shutdown.clone();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        connections.spawn(serve(app.clone(), tcp, shutdown.clone()));
                    }
                    Err(e) => {
                        log::error!("{name}: accept failed: {e}");
                        // Out of file descriptors: accept would fail at once again; let some close.
                        if e.raw_os_error() == Some(24) {
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                },
                // Reaps finished connections, so the set holds only live ones.
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                // Re-armed only while connections are open: once the last one closes, it fires
                // at most once more, and an idle worker sleeps until the next accept.
                () = &mut steady, if steady_timer && !connections.is_empty() => {
                    steady.as_mut().reset(tokio::time::Instant::now() + STEADY_TIMER_PERIOD);
                }
                _ = stopped(&mut stopping) => break,
            }
        }
        drop(listener);
        while connections.join_next().await.is_some() {}
    });
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> Service for Listener<A> {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        for (i, (socket, app)) in self.workers.drain(..).enumerate() {
            let name = format!("{}-{i}", self.name);
            let shutdown = shutdown.clone();
            let steady_timer = self.steady_timer;
            let spawned = std::thread::Builder::new()
                .name(name.clone())
                .spawn(move || work(&name, socket, Arc::new(app), steady_timer, shutdown));
            if let Err(e) = spawned {
                log::error!("{}: cannot start a worker thread: {e}", self.name);
            }
        }
        // The workers stop accepting on the same signal and end when their connections do.
        stopped(&mut shutdown).await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// The service's own runtime only waits for shutdown; the work runs on the worker threads.
    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}
