//! The Pingora service: `impl HttpServerApp for Gateway`. Every route is answered here (local
//! answers and the own upstream exchange, see `exchange`), so the gateway is a Pingora HTTP
//! server app rather than a `ProxyHttp`: Pingora's proxy loop, with its 64 KiB body-replay limit
//! and a 14 KB per-request future carrying cache and proxy machinery no route uses, is never on
//! the path. The phases keep their names: `request_filter` answers, `logging` accounts.

pub mod body;
pub mod exchange;
pub mod respond;
pub mod routes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use ezrouter_plugins::rewrite::apply_edits;
use ezrouter_plugins::{run_on_body, run_on_complete, run_on_request, Outcome, RequestCtx};
use ezrouter_protocol::probe::{probe, Operation, Probe};
use ezrouter_protocol::{ApiError, Dialect, ErrorKind, Usage};
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession as Session;
use pingora_core::server::ShutdownWatch;

use crate::metrics;
use crate::snapshot::{Model, Snapshot};
use crate::upstream::connections::Connections;
use routes::Endpoint;

pub struct Gateway {
    live: Arc<ArcSwap<Snapshot>>,
    conns: Arc<Connections>,
}

impl Gateway {
    pub fn new(live: Arc<ArcSwap<Snapshot>>, conns: Arc<Connections>) -> Self {
        Gateway { live, conns }
    }
}

/// Per-request state, from routing to `logging`.
pub struct Ctx {
    started: Instant,
    endpoint: Endpoint,
    /// The config snapshot this request runs on, start to end.
    snapshot: Option<Arc<Snapshot>>,
    plugins: Option<RequestCtx>,
    /// Status sent to the client (0: none, the client left first).
    status: u16,
    usage: Option<Usage>,
    provider: Option<Arc<str>>,
}

#[async_trait]
impl HttpServerApp for Gateway {
    /// One request on a connection: read its head, answer it, account it, hand the connection
    /// back for the next request when it is reusable.
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: Session,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !next_request(&mut session, shutdown).await {
            return None;
        }
        // CONNECT would turn the connection into a tunnel, which no route offers; its framing
        // is unlike any other request's, so it is refused before anything reads a body.
        if session.req_header().method == http::Method::CONNECT {
            let _ = session.respond_error(405).await;
            session.shutdown().await;
            return None;
        }
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        let mut ctx = Ctx::new();
        let answered = self.request_filter(&mut session, &mut ctx).await;
        ctx.status = *answered.as_ref().unwrap_or(&0);
        self.logging(&ctx);
        answered.ok()?;
        let settings = HttpPersistentSettings::for_session(&session);
        let reusable = session.finish().await.ok()??;
        Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
    }
}

/// Resolves once the server is shutting down (the watch's read guard is dropped inside, so the
/// future stays `Send`).
pub(crate) async fn stopped(shutdown: &mut ShutdownWatch) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Reads the next request head on a connection; false when there is none to serve: the client
/// closed the connection, its head was malformed (answered 400, then closed), or the server shut
/// down first (an idle keep-alive connection does not hold the shutdown up).
pub(crate) async fn next_request(session: &mut Session, shutdown: &ShutdownWatch) -> bool {
    let mut stopping = shutdown.clone();
    let read = tokio::select! {
        biased; // a request already buffered is served, not dropped
        read = session.read_request() => read,
        _ = stopped(&mut stopping) => return false,
    };
    match read {
        Ok(read) => read,
        Err(e) => {
            if e.etype == pingora_error::ErrorType::InvalidHTTPHeader {
                let _ = session.respond_error(400).await;
            }
            session.shutdown().await;
            false
        }
    }
}

impl Ctx {
    fn new() -> Ctx {
        Ctx {
            started: Instant::now(),
            endpoint: Endpoint::Health,
            snapshot: None,
            plugins: None,
            status: 0,
            usage: None,
            provider: None,
        }
    }
}

impl Gateway {
    /// Routes and answers the request. Returns the status sent; an error means the client could
    /// not be written to, so the connection is not reused.
    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
    ) -> pingora_error::Result<u16> {
        let header = session.req_header();
        ctx.endpoint = routes::route(&header.method, header.uri.path());
        let snapshot = self.live.load_full();
        ctx.snapshot = Some(snapshot.clone());
        let surface = ctx.endpoint.surface();
        let result = match ctx.endpoint {
            Endpoint::Health => {
                // The pid tells a client which process answered (a port reused across restarts).
                let body = format!(r#"{{"status":"ok","pid":{}}}"#, std::process::id());
                respond::json(session, 200, body.into_bytes())
                    .await
                    .map(|_| 200)
            }
            Endpoint::NotFound { .. } => {
                let (method, path) = (header.method.clone(), header.uri.path().to_string());
                let err = ApiError::new(
                    ErrorKind::NotFound,
                    format!("No route for {method} {path}."),
                );
                respond::error(session, surface, &err).await
            }
            Endpoint::Models { surface } => self.models(session, ctx, &snapshot, surface).await,
            Endpoint::Llm { surface, op } => self.llm(session, ctx, &snapshot, surface, op).await,
        };
        result
    }

    /// Metrics, the usage record and the plugins' `on_complete`, once per request, answered or not.
    fn logging(&self, ctx: &Ctx) {
        let key = ctx
            .plugins
            .as_ref()
            .and_then(|p| p.client.as_ref())
            .map_or("", |c| &*c.id);
        let provider = ctx.provider.as_deref().unwrap_or("");
        let elapsed = ctx.started.elapsed();
        metrics::record_request(
            ctx.endpoint.label(),
            ctx.status,
            provider,
            key,
            elapsed,
            ctx.usage.as_ref(),
        );
        // The usage record of every request that reached an upstream, client gone or not.
        if let (Some(usage), Some(plugins)) = (&ctx.usage, &ctx.plugins) {
            log::info!(
                target: "ezrouter::usage",
                "key={key} user={} model={} provider={provider} status={} ms={} input={} cache_read={} cache_write={} output={} reasoning={}",
                plugins.end_user.as_deref().unwrap_or("-"),
                plugins.model.as_deref().unwrap_or("-"),
                ctx.status,
                elapsed.as_millis(),
                usage.input,
                usage.cache_read,
                usage.cache_write,
                usage.output,
                usage.reasoning,
            );
        }
        if let (Some(snapshot), Some(plugins)) = (&ctx.snapshot, &ctx.plugins) {
            run_on_complete(
                &snapshot.chain,
                plugins,
                &Outcome {
                    status: ctx.status,
                    usage: ctx.usage,
                },
            );
        }
    }
}

/// The `on_body` phase: the global chain (allowlist), the model lookup, then the model's own chain.
fn admit<'s>(
    snapshot: &'s Snapshot,
    probed: &Probe<'_>,
    plugins: &mut RequestCtx,
) -> Result<&'s Model, ApiError> {
    plugins.model = Some(probed.model.to_string());
    plugins.end_user = probed.end_user.clone();
    run_on_body(&snapshot.chain, plugins)?;
    let model = snapshot.models.get(probed.model.as_ref()).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            format!("The model `{}` does not exist.", probed.model),
        )
        .with_code("model_not_found")
        .with_param("model")
    })?;
    run_on_body(&model.plugins, plugins)?;
    Ok(model)
}

impl Gateway {
    /// Authenticates; on failure answers with the error and returns its status.
    async fn authenticate(
        &self,
        session: &mut Session,
        snapshot: &Snapshot,
        surface: Dialect,
    ) -> Result<RequestCtx, u16> {
        let mut plugins = RequestCtx::new(surface);
        match run_on_request(&snapshot.chain, &session.req_header().headers, &mut plugins) {
            Ok(()) => Ok(plugins),
            Err(err) => Err(respond::error(session, surface, &err).await.unwrap_or(0)),
        }
    }

    async fn models(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        snapshot: &Snapshot,
        surface: Dialect,
    ) -> pingora_error::Result<u16> {
        let plugins = match self.authenticate(session, snapshot, surface).await {
            Ok(p) => p,
            Err(status) => return Ok(status),
        };
        let client = plugins.client.clone().expect("authenticated");
        ctx.plugins = Some(plugins);
        let visible = snapshot
            .model_ids
            .iter()
            .filter(|id| client.allows(id))
            .map(|id| &snapshot.models[id]);
        let body = match surface {
            Dialect::Anthropic => {
                let data: Vec<_> = visible
                    .map(|m| serde_json::json!({"type": "model", "id": m.id, "display_name": m.id, "created_at": "2025-01-01T00:00:00Z"}))
                    .collect();
                let (first, last) = (
                    data.first().map(|m| m["id"].clone()),
                    data.last().map(|m| m["id"].clone()),
                );
                serde_json::json!({"data": data, "has_more": false, "first_id": first, "last_id": last})
            }
            _ => {
                let data: Vec<_> = visible
                    .map(|m| serde_json::json!({"id": m.id, "object": "model", "created": 0, "owned_by": m.owned_by}))
                    .collect();
                serde_json::json!({"object": "list", "data": data})
            }
        };
        respond::json(session, 200, serde_json::to_vec(&body).expect("json")).await?;
        Ok(200)
    }

    async fn llm(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        snapshot: &Snapshot,
        surface: Dialect,
        op: Operation,
    ) -> pingora_error::Result<u16> {
        let mut plugins = match self.authenticate(session, snapshot, surface).await {
            Ok(p) => p,
            Err(status) => return Ok(status),
        };
        let server = &snapshot.server;
        let timeout = Duration::from_millis(server.body_read_timeout_ms);
        let body = match body::read(session, server.max_body_bytes, timeout).await {
            Ok(body) => body,
            Err(err) => {
                ctx.plugins = Some(plugins);
                return respond::error(session, surface, &err).await;
            }
        };
        // One validating parse; a second one only when a rewrite plugin edited the body.
        let admitted = probe(op, &body).and_then(|probed| {
            let model = admit(snapshot, &probed, &mut plugins)?;
            Ok((probed, model))
        });
        let result = match admitted {
            Ok((probed, model)) => {
                let edited = match plugins.edits.is_empty() {
                    true => None,
                    false => Some(apply_edits(&body, &plugins.edits).map(Bytes::from)),
                };
                let reprobed;
                let (body, probed) = match &edited {
                    None => (&body, Ok(probed)),
                    Some(Ok(edited)) => {
                        reprobed = probe(op, edited);
                        (edited, reprobed)
                    }
                    Some(Err(err)) => (&body, Err(err.clone())),
                };
                match probed {
                    Ok(probed) => {
                        let request = exchange::Request {
                            surface,
                            op,
                            body,
                            probe: &probed,
                            model,
                        };
                        let client = plugins
                            .client
                            .as_ref()
                            .map_or_else(|| Arc::from(""), |c| c.id.clone());
                        let served = exchange::run(
                            &self.conns,
                            session,
                            &request,
                            &client,
                            server.max_attempts,
                        )
                        .await;
                        ctx.provider = served.provider;
                        ctx.usage = served.usage;
                        match served.result {
                            Ok(status) => Ok(status),
                            Err(err) => respond::error(session, surface, &err).await,
                        }
                    }
                    Err(err) => respond::error(session, surface, &err).await,
                }
            }
            Err(err) => respond::error(session, surface, &err).await,
        };
        ctx.plugins = Some(plugins);
        result
    }
}
