//! The per-phase plugin trait of ezrouter and its built-in plugins.
//!
//! A route runs a chain of plugins (a `Vec<Arc<dyn Plugin>>` built once at config load, River
//! style). Each phase hook has a default that does nothing, so a plugin implements only the
//! phases it cares about. Hooks are synchronous on purpose: they run on the hot path of every
//! request, and anything stateful (limits, budgets) keeps local state that is updated in place.
//!
//! Plugins see no Pingora types, only [`http::HeaderMap`] and the [`RequestCtx`], so they are
//! unit-testable on their own.

pub mod allowlist;
pub mod auth;
pub mod glob;
pub mod keys;
pub mod rewrite;

use std::sync::Arc;

use ezrouter_protocol::{ApiError, Dialect, Usage};
pub use http::HeaderMap;

pub use allowlist::ModelAllowlist;
pub use auth::Auth;
pub use glob::Glob;
pub use keys::{ClientKey, KeyStore};
pub use rewrite::{FieldEdit, Rewrite};

/// What the plugins of one request know and decide, carried from phase to phase.
#[derive(Debug)]
pub struct RequestCtx {
    /// The API surface the client called, which is also the dialect of its errors.
    pub surface: Dialect,
    /// The authenticated client key (set by [`Auth`]).
    pub client: Option<Arc<ClientKey>>,
    /// The public model id the client asked for (known from `on_body` on).
    pub model: Option<String>,
    /// The end user named in the request (OpenAI `user`, Anthropic `metadata.user_id`).
    pub end_user: Option<String>,
    /// Edits to the request body's top-level fields, applied once after `on_body` (an empty list
    /// keeps the zero-copy path).
    pub edits: Vec<FieldEdit>,
}

impl RequestCtx {
    pub fn new(surface: Dialect) -> Self {
        RequestCtx {
            surface,
            client: None,
            model: None,
            end_user: None,
            edits: Vec::new(),
        }
    }
}

/// How one request ended, for `on_complete`.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The status the client received (0 when the client went away before any response).
    pub status: u16,
    /// Usage reported by the upstream, when an upstream answered.
    pub usage: Option<Usage>,
}

/// One filter in the request pipeline.
pub trait Plugin: Send + Sync {
    /// A short stable name, used in config and logs.
    fn name(&self) -> &'static str;

    /// The request headers have arrived; the body has not been read. Authentication runs here.
    fn on_request(&self, _headers: &HeaderMap, _req: &mut RequestCtx) -> Result<(), ApiError> {
        Ok(())
    }

    /// The body was read and probed: `req.model` is known. Allowlists and limits run here.
    fn on_body(&self, _req: &mut RequestCtx) -> Result<(), ApiError> {
        Ok(())
    }

    /// The request is over (answered, failed or abandoned). Runs exactly once per request.
    fn on_complete(&self, _req: &RequestCtx, _outcome: &Outcome) {}
}

/// An ordered plugin chain; the first error stops it.
pub type Chain = Vec<Arc<dyn Plugin>>;

pub fn run_on_request(
    chain: &[Arc<dyn Plugin>],
    headers: &HeaderMap,
    req: &mut RequestCtx,
) -> Result<(), ApiError> {
    chain.iter().try_for_each(|p| p.on_request(headers, req))
}

pub fn run_on_body(chain: &[Arc<dyn Plugin>], req: &mut RequestCtx) -> Result<(), ApiError> {
    chain.iter().try_for_each(|p| p.on_body(req))
}

pub fn run_on_complete(chain: &[Arc<dyn Plugin>], req: &RequestCtx, outcome: &Outcome) {
    chain.iter().for_each(|p| p.on_complete(req, outcome))
}
