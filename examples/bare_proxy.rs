//! The floor of our framework: a Pingora proxy with only `upstream_peer`, forwarding every request
//! to one fixed upstream. bench/run.sh measures ezrouter against it; every microsecond above this
//! proxy is ezrouter's own.
//!
//! `cargo run --release --example bare_proxy -- UPSTREAM_ADDR [LISTEN_ADDR] [THREADS]`
//! prints `bare-proxy listening on <addr>` (port 0 picks a free port).

use std::net::{SocketAddr, TcpListener};

use async_trait::async_trait;
use pingora_core::server::{configuration::ServerConf, Server};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_proxy::{ProxyHttp, Session};

struct Bare(SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(
        &self,
        _: &mut Session,
        _: &mut (),
    ) -> pingora_core::Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let upstream: SocketAddr = args
        .next()
        .expect("usage: bare_proxy UPSTREAM [LISTEN] [THREADS]")
        .parse()
        .expect("UPSTREAM: ip:port");
    let listen: SocketAddr = args
        .next()
        .unwrap_or("127.0.0.1:0".into())
        .parse()
        .expect("LISTEN: ip:port");
    let threads = args
        .next()
        .map_or(2, |t| t.parse().expect("THREADS: a number"));
    let listen = TcpListener::bind(listen)
        .and_then(|l| l.local_addr())
        .expect("bind"); // port 0: pick one now
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = pingora_proxy::http_proxy_service(&server.configuration, Bare(upstream));
    proxy.add_tcp(&listen.to_string());
    server.add_service(proxy);
    println!("bare-proxy listening on {listen}");
    server.run_forever();
}
