//! Upstream providers as the gateway uses them: resolved peers, prebuilt headers, timeouts.
//! Built once per config snapshot, so no request re-parses a URL or re-formats a key.

pub mod connections;
pub mod h1;
pub mod pool;
pub mod url;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ezrouter_protocol::probe::Operation;
use ezrouter_protocol::Dialect;
use http::{HeaderName, HeaderValue};
use pingora_core::upstreams::peer::{HttpPeer, Peer};

use crate::config::schema;
pub use url::BaseUrl;

/// Default base URL per provider kind (the SDKs' own defaults).
pub fn default_base_url(kind: schema::ProviderKind) -> &'static str {
    match kind {
        schema::ProviderKind::OpenAi => "https://api.openai.com/v1",
        schema::ProviderKind::Anthropic => "https://api.anthropic.com",
        schema::ProviderKind::Gemini => "https://generativelanguage.googleapis.com",
        schema::ProviderKind::Mock => "http://127.0.0.1:0",
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    pub ttfb: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl From<&schema::Timeouts> for Timeouts {
    fn from(t: &schema::Timeouts) -> Self {
        Timeouts {
            connect: Duration::from_millis(t.connect_ms),
            ttfb: Duration::from_millis(t.ttfb_ms),
            idle: Duration::from_millis(t.idle_ms),
            total: Duration::from_millis(t.total_ms),
        }
    }
}

/// A provider of one config snapshot.
#[derive(Debug)]
pub struct Provider {
    pub name: Arc<str>,
    /// The dialect this upstream speaks.
    pub dialect: Dialect,
    pub base: BaseUrl,
    /// The `Host` header.
    pub authority: HeaderValue,
    /// The connection target; swapped when the host's DNS answer changes (see `refresh_peer`).
    pub peer: ArcSwap<HttpPeer>,
    /// The key pool (state shared across config snapshots).
    pub keys: Vec<Arc<pool::KeyState>>,
    /// Longest wait in the pool's queue.
    pub max_wait: Duration,
    pub caps: ezrouter_protocol::caps::Capabilities,
    /// Ask for a stream even when the client wants one JSON body.
    pub stream_only: bool,
    /// `anthropic-beta` flags forwarded to this (Anthropic-dialect) upstream; `None`: all.
    pub anthropic_betas: Option<Vec<String>>,
    /// Operator headers plus, for the mock, its behaviour headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub timeouts: Timeouts,
}

impl Provider {
    /// The request path of `op` for `upstream_model`.
    pub fn path(&self, op: Operation, upstream_model: &str, stream: bool) -> String {
        let p = &self.base.prefix;
        match (self.dialect, op) {
            (Dialect::OpenAi, Operation::Embeddings) => format!("{p}/embeddings"),
            (Dialect::OpenAi, _) => format!("{p}/chat/completions"),
            (Dialect::Anthropic, Operation::CountTokens) => format!("{p}/v1/messages/count_tokens"),
            (Dialect::Anthropic, _) => format!("{p}/v1/messages"),
            (Dialect::Gemini, Operation::CountTokens) => {
                format!("{p}/v1beta/models/{upstream_model}:countTokens")
            }
            (Dialect::Gemini, _) if stream => {
                format!("{p}/v1beta/models/{upstream_model}:streamGenerateContent?alt=sse")
            }
            (Dialect::Gemini, _) => format!("{p}/v1beta/models/{upstream_model}:generateContent"),
        }
    }
}

impl Provider {
    /// Re-resolves a provider addressed by host name and swaps in a new peer when the address
    /// changed (connections to the old one drain from the pool by themselves).
    pub async fn refresh_peer(&self) {
        if self.base.host.parse::<std::net::IpAddr>().is_ok() {
            return;
        }
        match resolve(&self.base).await {
            Ok(addr) if self.peer.load().address().as_inet() != Some(&addr) => {
                log::info!(
                    "provider {}: {} now resolves to {addr}",
                    self.name,
                    self.base.host
                );
                self.peer
                    .store(Arc::new(peer(addr, &self.base, &self.timeouts)));
            }
            Ok(_) => {}
            Err(e) => log::warn!("provider {}: keeping the last address: {e}", self.name),
        }
    }
}

/// Formats the auth header of `secret` for a provider speaking `dialect`.
pub fn auth_header(dialect: Dialect, secret: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = match dialect {
        Dialect::OpenAi => (http::header::AUTHORIZATION, format!("Bearer {secret}")),
        Dialect::Anthropic => (HeaderName::from_static("x-api-key"), secret.to_string()),
        Dialect::Gemini => (
            HeaderName::from_static("x-goog-api-key"),
            secret.to_string(),
        ),
    };
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| "the key has characters not allowed in a header")?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// Resolves `host:port` without blocking the runtime.
pub async fn resolve(base: &BaseUrl) -> Result<SocketAddr, String> {
    tokio::net::lookup_host((base.host.as_str(), base.port))
        .await
        .map_err(|e| format!("cannot resolve `{}`: {e}", base.host))?
        .next()
        .ok_or_else(|| format!("`{}` resolved to no address", base.host))
}

/// A pooled, verified (SNI = host) peer for `addr`.
pub fn peer(addr: SocketAddr, base: &BaseUrl, timeouts: &Timeouts) -> HttpPeer {
    let sni = if base.tls {
        base.host.clone()
    } else {
        String::new()
    };
    let mut peer = HttpPeer::new(addr, base.tls, sni);
    peer.options.connection_timeout = Some(timeouts.connect);
    peer.options.total_connection_timeout = Some(timeouts.connect);
    peer.options.read_timeout = Some(timeouts.ttfb);
    peer.options.write_timeout = Some(timeouts.connect.max(Duration::from_secs(30)));
    peer.options.idle_timeout = Some(Duration::from_secs(60));
    peer
}
