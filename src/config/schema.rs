//! The config file, as written by operators (TOML). Every struct denies unknown fields, so a typo
//! is an error at load, never a silently ignored setting.

use std::collections::BTreeMap;

use ezrouter_protocol::caps::Capabilities;
use serde::Deserialize;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub providers: BTreeMap<String, Provider>,
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
    #[serde(default)]
    pub keys: Vec<ClientKey>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Where clients connect (both API surfaces).
    pub listen: String,
    /// Operators' port: `/metrics`, `/health`. Empty disables it.
    pub admin_listen: String,
    /// Worker threads, each serving the connections it accepted start to end (`listener.rs`).
    pub threads: usize,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Time allowed to receive a whole request body.
    pub body_read_timeout_ms: u64,
    /// On SIGTERM/SIGQUIT: how long in-flight requests may finish before the process exits.
    pub grace_period_seconds: u64,
    /// Upstream attempts per request across keys and routes (the retry budget).
    pub max_attempts: u32,
    /// Idle upstream connections kept for reuse, across all providers (read at start).
    pub upstream_keepalive: usize,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8080".into(),
            admin_listen: "127.0.0.1:9091".into(),
            threads: 2,
            max_body_bytes: 32 * 1024 * 1024,
            body_read_timeout_ms: 30_000,
            grace_period_seconds: 5,
            max_attempts: 4,
            // Pingora's default is 128: below a few hundred concurrent streams, every release
            // past it closes a connection the next request must open again (nginx-style sizing).
            upstream_keepalive: 1024,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
    /// ezrouter's built-in offline upstream, started in-process.
    Mock,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    pub kind: ProviderKind,
    /// Where the API lives. Default per kind; OpenAI-style URLs include the version path
    /// (`https://api.openai.com/v1`), Anthropic and Gemini ones do not (as in their SDKs).
    pub base_url: Option<String>,
    /// Upstream API keys: a string, or a table with pool settings.
    #[serde(default)]
    pub keys: Vec<UpstreamKey>,
    /// Extra headers sent upstream with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Skip this provider (and every route to it) when an `${ENV}` it uses is unset,
    /// instead of failing the load. Used by the default config for real providers.
    #[serde(default)]
    pub optional: bool,
    /// Capability preset for OpenAI-compatible vendors: `openai`, `deepseek`, `glm`, `kimi`.
    pub preset: Option<String>,
    /// Capability flags overriding the preset.
    #[serde(default)]
    pub capabilities: Option<toml::Table>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The upstream only streams: JSON clients get its stream collected into one body.
    #[serde(default)]
    pub stream_only: bool,
    /// For Anthropic-dialect upstreams: the `anthropic-beta` flags to forward (default: all of
    /// them). Anthropic-compatible vendors reject flags they do not know, so list theirs.
    pub anthropic_betas: Option<Vec<String>>,
    #[serde(default)]
    pub queue: QueueSettings,
    #[serde(default)]
    pub breaker: BreakerSettings,
    /// For `kind = "mock"`: the dialect the mock speaks.
    pub dialect: Option<ezrouter_protocol::Dialect>,
    /// For `kind = "mock"`: text deltas per answer.
    pub chunks: Option<u32>,
    /// For `kind = "mock"`: delay between chunks.
    pub chunk_delay_ms: Option<u64>,
    /// For `kind = "mock"`: delay before the response header.
    pub ttfb_ms: Option<u64>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum UpstreamKey {
    Plain(String),
    Detailed(UpstreamKeySpec),
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct UpstreamKeySpec {
    pub key: String,
    /// A stable name for metrics and logs (default: `key-<n>`).
    pub id: Option<String>,
    /// Preference among keys with equal headroom.
    #[serde(default = "one")]
    pub weight: u32,
    /// Requests in flight at once on this key; more wait in the queue.
    pub max_concurrency: Option<u32>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Tokens per minute.
    pub tpm: Option<u32>,
}

fn one() -> u32 {
    1
}

impl UpstreamKey {
    pub fn spec(&self) -> UpstreamKeySpec {
        match self {
            UpstreamKey::Plain(key) => UpstreamKeySpec {
                key: key.clone(),
                id: None,
                weight: 1,
                max_concurrency: None,
                rpm: None,
                tpm: None,
            },
            UpstreamKey::Detailed(spec) => spec.clone(),
        }
    }
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct Timeouts {
    /// TCP + TLS handshake.
    pub connect_ms: u64,
    /// From the request sent to the response header (time to first token for streams).
    pub ttfb_ms: u64,
    /// Longest silence between two body chunks.
    pub idle_ms: u64,
    /// The whole exchange.
    pub total_ms: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect_ms: 10_000,
            ttfb_ms: 300_000,
            idle_ms: 300_000,
            total_ms: 1_800_000,
        }
    }
}

/// The wait queue of a provider's key pool (used when every key is at `max_concurrency`).
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSettings {
    /// Requests that may wait at once; more get an overloaded error at once.
    pub max_len: u32,
    /// Longest wait for a free key before an overloaded error (models may override).
    pub max_wait_ms: u64,
}

impl Default for QueueSettings {
    fn default() -> Self {
        QueueSettings {
            max_len: 1000,
            max_wait_ms: 30_000,
        }
    }
}

/// The circuit breaker of each key: `failures` 5xx/connect errors/timeouts within `window_ms`
/// open it for `open_ms`; then one probe request decides.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSettings {
    pub failures: u32,
    pub window_ms: u64,
    pub open_ms: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            failures: 5,
            window_ms: 30_000,
            open_ms: 30_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Where the model is served, in order of preference.
    pub routes: Vec<Route>,
    /// Longest queue wait for this model (default: each provider's `queue.max_wait_ms`).
    pub max_wait_ms: Option<u64>,
    /// Plugins that run for this model only, after the global ones (auth, allowlist).
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// Shown as `owned_by` in model lists.
    pub owned_by: Option<String>,
}

/// A per-model plugin and its settings, selected by `kind`.
#[derive(Debug, Deserialize, Clone)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PluginConfig {
    /// Rewrites top-level request fields: `set` always, `default` when the client sent none,
    /// `remove` drops them. `model`, `messages` and `stream` cannot be rewritten.
    Rewrite {
        #[serde(default)]
        set: toml::Table,
        #[serde(default)]
        default: toml::Table,
        #[serde(default)]
        remove: Vec<String>,
    },
}

impl PluginConfig {
    /// Builds the plugin; fails on settings the plugin refuses.
    pub fn build(&self) -> Result<std::sync::Arc<dyn ezrouter_plugins::Plugin>, String> {
        use ezrouter_plugins::{FieldEdit, Rewrite};
        match self {
            PluginConfig::Rewrite {
                set,
                default,
                remove,
            } => {
                let json = |v: &toml::Value| serde_json::to_value(v).map_err(|e| e.to_string());
                let mut edits = Vec::new();
                for (k, v) in set {
                    edits.push(FieldEdit::Set(k.clone(), json(v)?));
                }
                for (k, v) in default {
                    edits.push(FieldEdit::Default(k.clone(), json(v)?));
                }
                edits.extend(remove.iter().map(|k| FieldEdit::Remove(k.clone())));
                Ok(std::sync::Arc::new(Rewrite::new(edits)?))
            }
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub provider: String,
    /// The model name the provider knows (default: the public id).
    pub model: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientKey {
    pub id: String,
    /// The secret itself (usually `${ENV}`), or ...
    pub secret: Option<String>,
    /// ... its SHA-256 in hex, so the file holds no secret.
    pub sha256: Option<String>,
    /// Model globs this key may use (`*`, `gpt-*`, `claude-?-*`).
    #[serde(default = "all_models")]
    pub models: Vec<String>,
}

fn all_models() -> Vec<String> {
    vec!["*".into()]
}

impl Provider {
    /// The capability flags: the preset (or OpenAI's defaults) with `capabilities` on top.
    pub fn capabilities(&self) -> Result<Capabilities, String> {
        let mut caps = match &self.preset {
            Some(name) => ezrouter_protocol::caps::preset(name)
                .ok_or_else(|| format!("unknown preset `{name}`"))?,
            None => Capabilities::default(),
        };
        if let Some(overrides) = &self.capabilities {
            let mut merged = toml::Table::try_from(&caps).map_err(|e| e.to_string())?;
            merged.extend(overrides.clone());
            caps = merged
                .try_into()
                .map_err(|e: toml::de::Error| e.message().to_string())?;
        }
        Ok(caps)
    }
}
