//! Builds the Pingora server from a config: the proxy service, the admin service, the config
//! reloader and, when a provider needs it, the in-process mock upstream.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};

use crate::config::schema::ProviderKind;
use crate::config::{self, Loaded};
use crate::gateway::Gateway;
use crate::listener::Listener;
use crate::snapshot::{self, Snapshot};
use crate::upstream::connections::Connections;
use crate::upstream::pool::Registry;

/// Where the listeners ended up (port 0 in the config picks a free port).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub proxy: SocketAddr,
    pub admin: Option<SocketAddr>,
}

/// The in-process mock upstream, started once on its own small runtime, so it serves whatever
/// Pingora service (and runtime) calls it, across reloads.
fn in_process_mock() -> Result<SocketAddr, String> {
    static MOCK: OnceLock<Result<SocketAddr, String>> = OnceLock::new();
    MOCK.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("mock-upstream".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build();
                let rt = match rt {
                    Ok(rt) => rt,
                    Err(e) => return tx.send(Err(e.to_string())).unwrap_or(()),
                };
                rt.block_on(async {
                    match ezrouter_mock::start("127.0.0.1:0", ezrouter_mock::MockConfig::default())
                        .await
                    {
                        Ok(server) => {
                            let _ = tx.send(Ok(server.addr));
                            std::future::pending::<()>().await
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("in-process mock upstream: {e}")));
                        }
                    }
                })
            })
            .map_err(|e| e.to_string())?;
        rx.recv().map_err(|e| e.to_string())?
    })
    .clone()
}

fn mock_for(loaded: &Loaded) -> Result<Option<SocketAddr>, String> {
    if loaded
        .file
        .providers
        .values()
        .any(|p| p.kind == ProviderKind::Mock)
    {
        in_process_mock().map(Some)
    } else {
        Ok(None)
    }
}

/// Loads, validates and resolves a config into a snapshot (async: DNS does not block).
pub async fn load_snapshot(
    path: Option<&std::path::Path>,
    registry: &Registry,
) -> Result<Snapshot, String> {
    let loaded = config::load(path).map_err(|problems| {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    for note in &loaded.notes {
        log::info!("{note}");
    }
    snapshot::build(&loaded, mock_for(&loaded)?, registry).await
}

/// Reloads the config file on SIGHUP; a bad file keeps the running config and logs why.
struct Reloader {
    path: Option<PathBuf>,
    live: Arc<ArcSwap<Snapshot>>,
    registry: Arc<Registry>,
}

#[async_trait]
impl BackgroundService for Reloader {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => s,
            Err(e) => return log::error!("cannot watch SIGHUP, live reload is off: {e}"),
        };
        loop {
            tokio::select! {
                _ = hangup.recv() => match load_snapshot(self.path.as_deref(), &self.registry).await {
                    Ok(snapshot) => {
                        self.live.store(Arc::new(snapshot));
                        crate::metrics::CONFIG_RELOADS.with_label_values(&["ok"]).inc();
                        log::info!("config reloaded");
                    }
                    Err(e) => {
                        crate::metrics::CONFIG_RELOADS.with_label_values(&["error"]).inc();
                        log::error!("config reload failed, keeping the running config: {e}");
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// Once a minute: re-resolves provider host names, so a DNS change reaches new connections
/// without a reload and without a blocking lookup on the request path; and closes upstream
/// connections idle past their time.
struct MinuteChores {
    live: Arc<ArcSwap<Snapshot>>,
    conns: Vec<Arc<Connections>>,
}

#[async_trait]
impl BackgroundService for MinuteChores {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let snapshot = self.live.load_full();
                    for provider in &snapshot.providers {
                        provider.refresh_peer().await;
                    }
                    for conns in &self.conns {
                        conns.sweep();
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A ready-to-run server and where it listens.
pub fn build(path: Option<PathBuf>) -> Result<(Server, Addresses), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let registry = Arc::new(Registry::default());
    let snapshot = rt.block_on(load_snapshot(path.as_deref(), &registry))?;
    drop(rt);
    let server_conf = &snapshot.server;
    let proxy_addr: SocketAddr = server_conf
        .listen
        .parse()
        .map_err(|_| format!("bad address `{}`", server_conf.listen))?;
    let admin_addr: Option<SocketAddr> = if server_conf.admin_listen.is_empty() {
        None
    } else {
        Some(
            server_conf
                .admin_listen
                .parse()
                .map_err(|_| format!("bad address `{}`", server_conf.admin_listen))?,
        )
    };

    let conf = ServerConf {
        threads: server_conf.threads,
        grace_period_seconds: Some(server_conf.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(server_conf.grace_period_seconds.max(1)),
        // Pingora's own timeouts (the client keep-alive wait, upstream connects) otherwise run on
        // its timer thread, which wakes every 10 ms for the life of the process and costs a
        // locked registration per request; from one second up they use the worker's tokio timer.
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    // Read at start only: the idle connections kept, across providers, shared out among the
    // worker threads (each keeps its own, on its own reactor).
    let threads = snapshot.server.threads;
    let per_thread = snapshot.server.upstream_keepalive.div_ceil(threads);
    let conns: Vec<Arc<Connections>> = (0..threads)
        .map(|_| Arc::new(Connections::new(per_thread)))
        .collect();
    let live = Arc::new(ArcSwap::from_pointee(snapshot));
    let gateways = conns
        .iter()
        .map(|c| Gateway::new(live.clone(), c.clone()))
        .collect();
    let (listener, proxy_addr) = Listener::bind("ezrouter", proxy_addr, gateways)
        .map_err(|e| format!("cannot listen on {proxy_addr}: {e}"))?;
    server.add_service(listener);

    // Bound here like the proxy's, so a port 0 is known (and reported) before anything else can
    // take it; one worker thread.
    let admin_addr = match admin_addr {
        Some(addr) => {
            let (admin, local) = Listener::bind("ezrouter admin", addr, vec![crate::admin::Admin])
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            server.add_service(admin.without_steady_timer());
            Some(local)
        }
        None => None,
    };
    server.add_service(background_service(
        "minute chores",
        MinuteChores {
            live: live.clone(),
            conns,
        },
    ));
    server.add_service(background_service(
        "config reloader",
        Reloader {
            path,
            live,
            registry,
        },
    ));
    Ok((
        server,
        Addresses {
            proxy: proxy_addr,
            admin: admin_addr,
        },
    ))
}
