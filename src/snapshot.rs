//! One immutable, fully resolved config snapshot: everything a request needs, precomputed at load
//! (peers, auth headers, key index, plugin chain). Requests hold an `Arc<Snapshot>` for their whole
//! life, so a reload never changes a request midway.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use ezrouter_plugins::keys::sha256;
use ezrouter_plugins::{Auth, Chain, ClientKey, Glob, KeyStore, ModelAllowlist};
use ezrouter_protocol::Dialect;
use http::{HeaderName, HeaderValue};

use crate::config::schema::{self, ProviderKind};
use crate::config::Loaded;
use crate::upstream::pool::{BreakerConfig, KeySettings, Registry};
use crate::upstream::{self, BaseUrl, Provider};

/// One way to serve a model, with its request paths and signature origin computed at load.
#[derive(Debug)]
pub struct Route {
    pub provider: Arc<Provider>,
    pub upstream_model: String,
    /// `provider/upstream-model`: who made the reasoning signatures of its answers.
    pub origin: String,
    paths: [String; 5],
}

impl Route {
    pub fn new(provider: Arc<Provider>, upstream_model: String) -> Route {
        use ezrouter_protocol::probe::Operation::*;
        let path = |op, stream| provider.path(op, &upstream_model, stream);
        let paths = [
            path(ChatCompletions, false),
            path(ChatCompletions, true),
            path(Embeddings, false),
            path(CountTokens, false),
            path(Messages, false),
        ];
        Route {
            origin: format!("{}/{upstream_model}", provider.name),
            provider,
            upstream_model,
            paths,
        }
    }

    /// The upstream request path of `op` (for Gemini, `stream` picks `streamGenerateContent`).
    pub fn path(&self, op: ezrouter_protocol::probe::Operation, stream: bool) -> &str {
        use ezrouter_protocol::probe::Operation::*;
        let i = match op {
            Embeddings => 2,
            CountTokens => 3,
            _ if stream => 1,
            ChatCompletions => 0,
            Messages => 4,
        };
        &self.paths[i]
    }
}

pub struct Model {
    pub id: String,
    pub owned_by: String,
    pub routes: Vec<Route>,
    /// Overrides the providers' queue wait for this model.
    pub max_wait: Option<std::time::Duration>,
    /// This model's own `on_body` plugins.
    pub plugins: Chain,
}

pub struct Snapshot {
    pub server: schema::Server,
    pub providers: Vec<Arc<Provider>>,
    pub models: HashMap<String, Model>,
    /// Model ids in a stable order, for listings.
    pub model_ids: Vec<String>,
    pub keys: Arc<KeyStore>,
    pub chain: Chain,
}

/// Builds a snapshot from a validated config. `mock` is the address of the in-process mock
/// upstream, needed when a provider has `kind = "mock"`.
pub async fn build(
    loaded: &Loaded,
    mock: Option<SocketAddr>,
    registry: &Registry,
) -> Result<Snapshot, String> {
    let file = &loaded.file;
    let mut providers: HashMap<&str, Arc<Provider>> = HashMap::new();
    for (name, p) in &file.providers {
        let provider = build_provider(name, p, mock, registry)
            .await
            .map_err(|e| format!("providers.{name}: {e}"))?;
        providers.insert(name, Arc::new(provider));
    }

    let mut models = HashMap::new();
    for (id, m) in &file.models {
        let routes = m
            .routes
            .iter()
            .map(|r| {
                Route::new(
                    providers[r.provider.as_str()].clone(),
                    r.model.clone().unwrap_or_else(|| id.clone()),
                )
            })
            .collect();
        let owned_by = m
            .owned_by
            .clone()
            .unwrap_or_else(|| m.routes[0].provider.clone());
        let max_wait = m.max_wait_ms.map(std::time::Duration::from_millis);
        let plugins = m
            .plugins
            .iter()
            .map(|p| p.build())
            .collect::<Result<Chain, String>>()
            .map_err(|e| format!("models.{id}: {e}"))?;
        models.insert(
            id.clone(),
            Model {
                id: id.clone(),
                owned_by,
                routes,
                max_wait,
                plugins,
            },
        );
    }
    let model_ids = file.models.keys().cloned().collect();

    let keys = file.keys.iter().map(|k| ClientKey {
        id: Arc::from(k.id.as_str()),
        secret_sha256: match (&k.secret, &k.sha256) {
            (Some(secret), _) => sha256(secret.as_bytes()),
            (None, Some(hex)) => decode_hex(hex),
            (None, None) => unreachable!("validated: one of secret and sha256"),
        },
        models: k.models.iter().map(|g| Glob::new(g)).collect(),
    });
    let keys = Arc::new(KeyStore::new(keys));
    let chain: Chain = vec![Arc::new(Auth::new(keys.clone())), Arc::new(ModelAllowlist)];

    Ok(Snapshot {
        server: file.server.clone(),
        providers: providers.into_values().collect(),
        models,
        model_ids,
        keys,
        chain,
    })
}

fn decode_hex(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("validated hex");
    }
    out
}

async fn build_provider(
    name: &str,
    p: &schema::Provider,
    mock: Option<SocketAddr>,
    registry: &Registry,
) -> Result<Provider, String> {
    let timeouts = upstream::Timeouts::from(&p.timeouts);
    let (dialect, base, addr) = if p.kind == ProviderKind::Mock {
        let addr = mock.ok_or("the in-process mock upstream is not running")?;
        let dialect = p.dialect.unwrap_or(Dialect::OpenAi);
        let prefix = if dialect == Dialect::OpenAi {
            "/v1"
        } else {
            ""
        };
        let base = BaseUrl {
            tls: false,
            host: addr.ip().to_string(),
            port: addr.port(),
            prefix: prefix.into(),
        };
        (dialect, base, addr)
    } else {
        let dialect = match p.kind {
            ProviderKind::OpenAi => Dialect::OpenAi,
            ProviderKind::Anthropic => Dialect::Anthropic,
            _ => Dialect::Gemini,
        };
        let base = BaseUrl::parse(
            p.base_url
                .as_deref()
                .unwrap_or(upstream::default_base_url(p.kind)),
        )?;
        let addr = upstream::resolve(&base).await?;
        (dialect, base, addr)
    };

    let specs: Vec<schema::UpstreamKeySpec> = if p.kind == ProviderKind::Mock && p.keys.is_empty() {
        vec![schema::UpstreamKey::Plain("ok".into()).spec()]
    } else {
        p.keys.iter().map(schema::UpstreamKey::spec).collect()
    };
    let queue = registry.queue(name, p.queue.max_len);
    let breaker = BreakerConfig {
        failures: p.breaker.failures,
        window: std::time::Duration::from_millis(p.breaker.window_ms),
        open_for: std::time::Duration::from_millis(p.breaker.open_ms),
    };
    let keys = specs
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let id = k.id.clone().unwrap_or_else(|| format!("key-{i}"));
            let header =
                upstream::auth_header(dialect, &k.key).map_err(|e| format!("keys[{i}]: {e}"))?;
            let settings = KeySettings {
                weight: k.weight,
                max_concurrency: k.max_concurrency,
                rpm: k.rpm,
                tpm: k.tpm,
            };
            Ok(registry.key(&queue, &id, header, settings, breaker))
        })
        .collect::<Result<Vec<_>, String>>()?;

    let mut headers = Vec::new();
    for (k, v) in &p.headers {
        headers.push((
            HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?,
            HeaderValue::from_str(v).map_err(|e| e.to_string())?,
        ));
    }
    let mock_settings = [
        ("x-mock-chunks", p.chunks.map(u64::from)),
        ("x-mock-chunk-delay-ms", p.chunk_delay_ms),
        ("x-mock-ttfb-ms", p.ttfb_ms),
    ];
    for (header, value) in mock_settings {
        if let Some(v) = value {
            headers.push((HeaderName::from_static(header), HeaderValue::from(v)));
        }
    }

    Ok(Provider {
        name: Arc::from(name),
        dialect,
        authority: HeaderValue::from_str(&base.authority()).map_err(|e| e.to_string())?,
        peer: arc_swap::ArcSwap::from_pointee(upstream::peer(addr, &base, &timeouts)),
        base,
        keys,
        max_wait: std::time::Duration::from_millis(p.queue.max_wait_ms),
        caps: p.capabilities()?,
        stream_only: p.stream_only,
        anthropic_betas: p.anthropic_betas.clone(),
        headers,
        timeouts,
    })
}
