//! The own upstream exchange of an LLM request: candidates in order, one attempt each, failover
//! while nothing has reached the client, then the response streamed through its translator chunk
//! by chunk as it arrives. The client going away aborts the upstream at once.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ezrouter_protocol::probe::{Operation, Probe};
use ezrouter_protocol::tokens;
use ezrouter_protocol::{
    response_translator, stream_error_event, translate_request, upstream_error, ApiError, Dialect,
    ErrorKind, ResponseContext, Target, Usage,
};
use pingora_core::protocols::http::ServerSession as Session;
use pingora_core::upstreams::peer::HttpPeer;
use tokio::time::{sleep_until, Instant, Sleep};

use super::respond;
use crate::snapshot::{Model, Route};
use crate::upstream::connections::Connections;
use crate::upstream::h1::{self, H1Error};
use crate::upstream::pool::{self, AcquireError, KeyState};
use crate::upstream::Provider;

/// Everything about the client request that the exchange needs.
pub struct Request<'a> {
    pub surface: Dialect,
    pub op: Operation,
    pub body: &'a Bytes,
    pub probe: &'a Probe<'a>,
    pub model: &'a Model,
}

/// How the exchange ended.
pub struct Served {
    /// The status sent to the client, or the error still to send (nothing was written yet).
    pub result: Result<u16, ApiError>,
    pub usage: Option<Usage>,
    pub provider: Option<Arc<str>>,
}

/// The upstream request of one route, built once and reused across that route's keys.
struct Prepared<'r> {
    path: &'r str,
    body: Bytes,
    ctx: ResponseContext,
    /// A Gemini `countTokens` call: its `totalTokens` answer becomes Anthropic's `input_tokens`.
    gemini_count: bool,
}

/// Why an attempt failed before anything reached the client, for the key's health record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// 429: cool the key down (for the upstream's own hint when it gave one).
    RateLimited(Option<Duration>),
    /// 401/402/403: the key itself is refused.
    KeyRejected(u16),
    /// 5xx, connect error or timeout: counts toward the key's circuit breaker.
    Failure,
}

enum Attempt {
    /// The client got its whole answer.
    Done { status: u16, usage: Usage },
    /// The upstream failed after the first byte; the client's stream ended with an error event.
    Broken { usage: Usage },
    /// Failed before anything reached the client; another key or route may succeed.
    Retry(ApiError, Cause),
    /// Failed before anything reached the client; the same request would fail anywhere.
    Fail(ApiError),
    /// The client went away; the upstream was aborted.
    ClientGone { usage: Usage },
}

/// No key of `provider` can serve: cooling down (429, retry later) or all refused by the upstream
/// (502: only an operator can fix the keys).
fn unavailable(provider: &Provider, retry_after: Option<Duration>) -> ApiError {
    let err = match retry_after {
        Some(wait) => ApiError::new(
            ErrorKind::RateLimited,
            format!("Every key of provider `{}` is cooling down or over its rate limit.", provider.name),
        )
        .with_retry_after(wait.as_secs().max(1)),
        None => ApiError::new(
            ErrorKind::BadGateway,
            format!(
                "Every key of provider `{}` was refused by the upstream; they stay out of rotation until the config is reloaded.",
                provider.name
            ),
        ),
    };
    err.with_code("keys_unavailable")
}

/// How telling an error is, to pick the one a client sees when every candidate failed: an
/// upstream's own answer beats a transport failure, which beats the gateway's queue verdict.
fn rank(err: &ApiError) -> u8 {
    match err.kind {
        _ if matches!(err.code, Some("queue" | "keys_unavailable")) => 0,
        ErrorKind::BadGateway | ErrorKind::Timeout => 1,
        _ => 2,
    }
}

pub async fn run(
    conns: &Connections,
    session: &mut Session,
    req: &Request<'_>,
    client: &Arc<str>,
    max_attempts: u32,
) -> Served {
    let first = &req.model.routes[0];
    if req.op == Operation::CountTokens && first.provider.dialect == Dialect::OpenAi {
        return count_locally(session, req, first).await;
    }
    let mut last: Option<(ApiError, Arc<str>)> = None;
    let keep = |err: ApiError, provider: &Arc<str>, last: &mut Option<(ApiError, Arc<str>)>| {
        if last
            .as_ref()
            .is_none_or(|(best, _)| rank(&err) >= rank(best))
        {
            *last = Some((err, provider.clone()));
        }
    };
    let mut attempts = 0;
    // One deadline for the whole request, failovers included: the primary route's total timeout.
    let deadline = Instant::now() + first.provider.timeouts.total;
    for route in &req.model.routes {
        let provider = &route.provider;
        let name = provider.name.clone();
        let prepared = match prepare(req, route) {
            Ok(p) => p,
            Err(err) => {
                return Served {
                    result: Err(err),
                    usage: None,
                    provider: Some(name),
                }
            }
        };
        let max_wait = req.model.max_wait.unwrap_or(provider.max_wait);
        let mut tried: Vec<Arc<KeyState>> = Vec::new();
        while attempts < max_attempts {
            // `biased`: the common cases (a free key, data ready) never poll the other branches,
            // which would cost a socket read and a timer registration each time.
            let acquired = tokio::select! {
                biased;
                r = pool::acquire(&provider.keys, &tried, client, max_wait) => r,
                _ = client_gone(session) => return Served { result: Ok(0), usage: None, provider: Some(name) },
            };
            let permit = match acquired {
                Ok(permit) => permit,
                Err(AcquireError::Unavailable { retry_after }) => {
                    if tried.is_empty() {
                        keep(unavailable(provider, retry_after), &name, &mut last);
                    }
                    break;
                }
                Err(AcquireError::Overloaded) => {
                    let err = ApiError::new(
                        ErrorKind::Overloaded,
                        format!(
                            "Provider `{}` is at capacity; no key freed up within {} ms.",
                            provider.name,
                            max_wait.as_millis()
                        ),
                    )
                    .with_code("queue")
                    .with_retry_after(1);
                    keep(err, &name, &mut last);
                    break;
                }
            };
            attempts += 1;
            let key = permit.key().clone();
            match attempt(conns, session, provider, &key, &prepared, deadline).await {
                Attempt::Done { status, usage } => {
                    key.succeeded();
                    key.add_tokens(usage.total());
                    return Served {
                        result: Ok(status),
                        usage: Some(usage),
                        provider: Some(name),
                    };
                }
                Attempt::Broken { usage } => {
                    key.failed();
                    key.add_tokens(usage.total());
                    return Served {
                        result: Ok(200),
                        usage: Some(usage),
                        provider: Some(name),
                    };
                }
                Attempt::ClientGone { usage } => {
                    key.add_tokens(usage.total());
                    return Served {
                        result: Ok(0),
                        usage: Some(usage),
                        provider: Some(name),
                    };
                }
                Attempt::Fail(err) => {
                    key.succeeded();
                    return Served {
                        result: Err(err),
                        usage: None,
                        provider: Some(name),
                    };
                }
                Attempt::Retry(err, cause) => {
                    match cause {
                        Cause::RateLimited(hint) => key.rate_limited(hint),
                        Cause::KeyRejected(status) => key.rejected(status),
                        Cause::Failure => key.failed(),
                    }
                    log::warn!(
                        "provider {} key {}: {}; trying the next candidate",
                        provider.name,
                        key.id,
                        err.message.trim_end_matches('.')
                    );
                    crate::metrics::record_failover(&provider.name, cause.label());
                    keep(err, &name, &mut last);
                    tried.push(key);
                }
            }
        }
    }
    let (err, provider) = last.expect("a model has at least one route");
    Served {
        result: Err(err),
        usage: None,
        provider: Some(provider),
    }
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::RateLimited(_) => "rate_limited",
            Cause::KeyRejected(_) => "key_rejected",
            Cause::Failure => "failure",
        }
    }
}

/// `count_tokens` for a model whose upstream has no counting endpoint: a local tokenizer estimate
/// that includes the system prompt, tools and images (never 0).
async fn count_locally(session: &mut Session, req: &Request<'_>, route: &Route) -> Served {
    let provider = Some(route.provider.name.clone());
    // Tokenizing a long conversation takes milliseconds of CPU: keep it off the worker thread.
    let (surface, body) = (req.surface, req.body.clone());
    let estimate =
        tokio::task::spawn_blocking(move || tokens::estimate_input_tokens(surface, &body))
            .await
            .unwrap_or_else(|e| {
                Err(ApiError::new(
                    ErrorKind::Internal,
                    format!("token counting failed: {e}"),
                ))
            });
    let result = match estimate {
        Ok(n) => {
            let body = serde_json::to_vec(&serde_json::json!({ "input_tokens": n })).expect("json");
            match respond::json(session, 200, body).await {
                Ok(()) => Ok(200),
                Err(_) => Ok(0),
            }
        }
        Err(err) => Err(err),
    };
    Served {
        result,
        usage: None,
        provider,
    }
}

/// The upstream request for `route`.
fn prepare<'r>(req: &Request<'_>, route: &'r Route) -> Result<Prepared<'r>, ApiError> {
    let mut prepared = prepare_body(req, route)?;
    let chat = matches!(req.op, Operation::ChatCompletions | Operation::Messages);
    if chat && route.provider.stream_only && !prepared.ctx.upstream_stream {
        force_stream(&mut prepared, route, req.op)?;
    }
    Ok(prepared)
}

/// Turns a JSON request into a streaming one for an upstream that only streams; the response
/// translator then collects the stream into the one JSON body the client expects.
fn force_stream<'r>(p: &mut Prepared<'r>, route: &'r Route, op: Operation) -> Result<(), ApiError> {
    let provider = &route.provider;
    if provider.dialect != Dialect::Gemini {
        // Gemini streams by path; the others by a body flag.
        let mut body: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&p.body)
            .map_err(|e| {
                ApiError::new(
                    ErrorKind::Internal,
                    format!("re-reading the upstream body: {e}"),
                )
            })?;
        body.insert("stream".into(), true.into());
        if provider.dialect == Dialect::OpenAi && provider.caps.stream_options {
            body.insert(
                "stream_options".into(),
                serde_json::json!({ "include_usage": true }),
            );
        }
        p.body = Bytes::from(serde_json::to_vec(&body).expect("a map serializes"));
    }
    p.ctx.upstream_stream = true;
    p.path = route.path(op, true);
    Ok(())
}

/// The upstream body for `route`: byte-spliced when the dialects match, translated otherwise.
fn prepare_body<'r>(req: &Request<'_>, route: &'r Route) -> Result<Prepared<'r>, ApiError> {
    let provider = &route.provider;
    let upstream = &route.upstream_model;
    let probe = req.probe;
    if provider.dialect == req.surface {
        let ask_usage = provider.dialect == Dialect::OpenAi
            && req.op == Operation::ChatCompletions
            && provider.caps.stream_options;
        let body = match probe.rewrite(req.body, upstream, ask_usage) {
            std::borrow::Cow::Borrowed(_) => req.body.clone(),
            std::borrow::Cow::Owned(v) => Bytes::from(v),
        };
        let mut ctx = ResponseContext::passthrough(req.surface, probe.model.as_ref(), probe.stream);
        // Usage chunks are the client's unless the gateway added the request for them.
        ctx.include_usage = probe.include_usage || !(ask_usage && probe.stream);
        ctx.origin = route.origin.clone();
        return Ok(Prepared {
            path: route.path(req.op, probe.stream),
            body,
            ctx,
            gemini_count: false,
        });
    }
    if req.op == Operation::Embeddings {
        return Err(ApiError::invalid_param(
            "model",
            format!("`{}` does not serve embeddings.", probe.model),
        ));
    }
    if req.op == Operation::CountTokens {
        // Anthropic upstreams took the branch above; OpenAI-dialect ones are counted locally (`run`).
        let body = tokens::gemini_count_tokens_body(req.surface, req.body, upstream)?;
        let ctx = ResponseContext::passthrough(req.surface, probe.model.as_ref(), false);
        return Ok(Prepared {
            path: route.path(req.op, false),
            body: Bytes::from(body),
            ctx,
            gemini_count: true,
        });
    }
    let target = Target {
        dialect: provider.dialect,
        model: upstream,
        caps: &provider.caps,
        origin: &route.origin,
    };
    let translated = translate_request(req.surface, req.body, probe.model.as_ref(), &target)?;
    Ok(Prepared {
        path: route.path(req.op, translated.upstream_stream),
        body: Bytes::from(translated.body),
        ctx: translated.ctx,
        gemini_count: false,
    })
}

/// The upstream request head, ready for the wire. Header values come from `http` types,
/// which rule out CR and LF, so they are copied as they are.
fn request_head(
    session: &Session,
    provider: &Provider,
    key: &KeyState,
    p: &Prepared<'_>,
    surface: Dialect,
) -> Vec<u8> {
    use std::io::Write;
    let mut h = Vec::with_capacity(256 + p.path.len());
    let _ = write!(
        h,
        "POST {} HTTP/1.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        p.path,
        p.body.len()
    );
    let mut line = |name: &[u8], value: &[u8]| {
        h.extend_from_slice(name);
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
    };
    line(b"host", provider.authority.as_bytes());
    line(key.header.0.as_str().as_bytes(), key.header.1.as_bytes());
    if provider.dialect == Dialect::Anthropic {
        let client = &session.req_header().headers;
        let from_client = |name: &str| client.get(name).filter(|_| surface == Dialect::Anthropic);
        let version = from_client("anthropic-version").map_or(&b"2023-06-01"[..], |v| v.as_bytes());
        line(b"anthropic-version", version);
        if let Some(beta) = from_client("anthropic-beta")
            .and_then(|b| allowed_betas(b, provider.anthropic_betas.as_deref()))
        {
            line(b"anthropic-beta", beta.as_bytes());
        }
    }
    for (name, value) in &provider.headers {
        line(name.as_str().as_bytes(), value.as_bytes());
    }
    h.extend_from_slice(b"\r\n");
    h
}

/// A burst (one write) stops gathering already-arrived reads once it holds this many upstream
/// bytes; the read that reaches it (at most 64 KiB) is kept whole. A stream's first burst is not
/// cut shorter: a second write right behind the first woke the client
/// twice, and when the client shared the proxy's core it preempted the proxy in between (c=1: 7 us
/// more CPU per stream, and a slow mode for 10 % or more of the streams; `bench/RESULTS.md`).
const COALESCE_MAX: usize = 16 * 1024;

/// The client's `anthropic-beta` flags an upstream accepts: all of them (real Anthropic), or only
/// the listed ones (Anthropic-compatible vendors 400 on flags they do not know).
fn allowed_betas(
    client: &http::HeaderValue,
    allow: Option<&[String]>,
) -> Option<http::HeaderValue> {
    let Some(allow) = allow else {
        return Some(client.clone());
    };
    let kept: Vec<&str> = client
        .to_str()
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|flag| allow.iter().any(|a| a == flag))
        .collect();
    (!kept.is_empty())
        .then(|| http::HeaderValue::from_str(&kept.join(",")).ok())
        .flatten()
}

/// Resolves when the client closes its connection (or resets its h2 stream).
async fn client_gone(session: &mut Session) {
    loop {
        match session.read_body_or_idle(true).await {
            Err(_) => return,
            Ok(Some(_)) => continue,
            Ok(None) => std::future::pending::<()>().await,
        }
    }
}

fn transport_error(provider: &Provider, e: &H1Error, phase: &str) -> ApiError {
    match e {
        H1Error::Timeout => ApiError::new(
            ErrorKind::Timeout,
            format!("Provider `{}` timed out {phase}.", provider.name),
        ),
        _ => ApiError::new(
            ErrorKind::BadGateway,
            format!("Provider `{}` failed {phase}: {e}", provider.name),
        ),
    }
}

fn deadline_error(provider: &Provider) -> ApiError {
    ApiError::new(
        ErrorKind::Timeout,
        format!(
            "Provider `{}` exceeded the total request timeout.",
            provider.name
        ),
    )
}

/// How long an upstream asks us to wait: `retry-after-ms`, `retry-after` (seconds), or OpenAI's
/// `x-ratelimit-reset-requests` / `-tokens` (`1s`, `6m0s`, `250ms`).
fn retry_hint<'h>(get: impl Fn(&str) -> Option<&'h str>) -> Option<Duration> {
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_millis(ms as u64));
    }
    if let Some(s) = get("retry-after").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(s.max(0.0)));
    }
    ["x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"]
        .iter()
        .filter_map(|n| get(n).and_then(go_duration))
        .max()
}

/// Parses durations like `6m0s`, `1.5s`, `250ms`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = text.trim();
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(split);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        total += number
            * match unit {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
        rest = tail;
    }
    Some(Duration::from_secs_f64(total))
}

async fn attempt(
    conns: &Connections,
    session: &mut Session,
    provider: &Provider,
    key: &KeyState,
    p: &Prepared<'_>,
    deadline: Instant,
) -> Attempt {
    let peer = provider.peer.load_full();
    let write_limit = peer
        .options
        .write_timeout
        .unwrap_or(provider.timeouts.connect);
    // One timer for the whole attempt, armed for the nearest limit and moved later as the
    // exchange goes on: tokio wakes its driver for each timer that becomes its earliest, so a
    // timer per limit would cost a wake-up each per request. Set once the request is sent.
    let mut timer = std::pin::pin!(None::<Sleep>);
    // A reused connection that the upstream closed at the very moment of reuse (its idle timeout
    // firing as the request arrived: `Unanswered`, not one byte back) says nothing about the
    // upstream or the key, so it is replaced by a new connection once, within this attempt,
    // instead of failing over. Like every failover before an answer, this re-sends a request the
    // upstream may have read but never answered.
    let mut may_reuse = true;
    let mut up = loop {
        let connected = if may_reuse {
            h1::connect(conns, &peer).await
        } else {
            h1::connect_new(conns, &peer).await
        };
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                return Attempt::Retry(transport_error(provider, &e, "to connect"), Cause::Failure)
            }
        };
        let replaceable = conn.reused;
        let head = request_head(session, provider, key, p, p.ctx.client);
        let (err, phase) = match h1::send(&mut conn.stream, head, &p.body, write_limit).await {
            Err(e) => (e, "while sending the request"),
            Ok(()) => {
                timer.set(Some(sleep_until(
                    (Instant::now() + provider.timeouts.ttfb).min(deadline),
                )));
                let sleep = timer.as_mut().as_pin_mut().expect("just set");
                let headed = tokio::select! {
                    biased;
                    r = h1::Response::read(conn) => r,
                    _ = client_gone(session) => return Attempt::ClientGone { usage: Usage::default() },
                    _ = sleep => Err(H1Error::Timeout),
                };
                match headed {
                    Ok(up) => break up,
                    Err(e) => (e, "before answering"),
                }
            }
        };
        if replaceable && matches!(err, H1Error::Unanswered(_)) && Instant::now() < deadline {
            log::info!(
                "provider {}: a reused connection was closed unanswered ({phase}); sending again on a new one",
                provider.name
            );
            may_reuse = false;
            continue;
        }
        if matches!(err, H1Error::Timeout) && Instant::now() >= deadline {
            return Attempt::Retry(deadline_error(provider), Cause::Failure);
        }
        return Attempt::Retry(transport_error(provider, &err, phase), Cause::Failure);
    };
    let status = up.status();
    if !(200..300).contains(&status) {
        let hint = retry_hint(|name| up.header(name));
        let body = read_small_body(&mut up, provider.timeouts.idle).await;
        let mut err = upstream_error(provider.dialect, status, &body);
        up.release(conns, &peer).await;
        return match status {
            429 => {
                err.retry_after = err.retry_after.or(hint.map(|d| d.as_secs().max(1)));
                Attempt::Retry(err, Cause::RateLimited(hint))
            }
            // The client's request is fine: the gateway's upstream credential is not.
            401..=403 => Attempt::Retry(
                ApiError::new(
                    ErrorKind::BadGateway,
                    format!(
                        "Provider `{}` refused the gateway's key ({status}): {}",
                        provider.name, err.message
                    ),
                ),
                Cause::KeyRejected(status),
            ),
            408 | 500.. => Attempt::Retry(err, Cause::Failure),
            _ => Attempt::Fail(err),
        };
    }
    let sleep = timer.as_pin_mut().expect("set before the head was read");
    let timer = AttemptTimer { deadline, sleep };
    relay(conns, session, provider, &peer, up, p, timer).await
}

/// An attempt's one timer (`attempt` explains why one) and the request's deadline it never passes.
struct AttemptTimer<'a> {
    deadline: Instant,
    sleep: Pin<&'a mut Sleep>,
}

/// Reads a small upstream body (an error, a token count), bounded at 64 KiB.
async fn read_small_body(up: &mut h1::Response, idle: Duration) -> Vec<u8> {
    const MAX: usize = 64 * 1024;
    let mut body = Vec::new();
    while !up.done() && body.len() < MAX {
        if up.read_body(&mut body, Some(idle)).await.is_err() {
            break;
        }
    }
    body.truncate(MAX);
    body
}

/// Streams a 2xx upstream body to the client through the response translator.
async fn relay(
    conns: &Connections,
    session: &mut Session,
    provider: &Provider,
    peer: &HttpPeer,
    mut up: h1::Response,
    p: &Prepared<'_>,
    timer: AttemptTimer<'_>,
) -> Attempt {
    let AttemptTimer {
        deadline,
        mut sleep,
    } = timer;
    if p.gemini_count {
        return relay_gemini_count(conns, session, provider, peer, up).await;
    }
    let idle = provider.timeouts.idle;
    let mut tr = response_translator(p.ctx.clone());
    let stream = p.ctx.client_stream;
    let surface = p.ctx.client;
    // A stream's head goes out with its first events (`ClientConn` gathers the two writes),
    // not on its own ahead of them.
    let mut head_sent = !stream;
    // What the translator makes of each burst, handed to the client without a copy.
    let mut out = Vec::new();
    // The upstream body bytes of one burst, given to the translator (a pass-through hands them
    // on as they are).
    let mut burst = Vec::new();
    // The attempt's timer now bounds each wait for the upstream (`idle`) and the whole body
    // (`deadline`). It is re-armed when it fires before the current wait is `idle` old, not
    // for every event.
    let due = |waiting_since: Instant| (waiting_since + idle).min(deadline);
    if sleep.deadline() > due(Instant::now()) {
        sleep.as_mut().reset(due(Instant::now()));
    }
    loop {
        // The wait starts when the last burst was handled, and a re-arm keeps counting from
        // there (counting from the timer's own wake-up would let an upstream that went silent
        // after an event arrived mid-wait escape the idle limit for good).
        let waiting_since = Instant::now();
        // Every body byte already read comes with it, so a stream's first events leave as
        // soon as they are here, with only what is already buffered.
        let mut failed = loop {
            tokio::select! {
                biased;
                r = up.read_body(&mut burst, None) => break r.err().map(|e| transport_error(provider, &e, "mid-response")),
                _ = client_gone(session) => return Attempt::ClientGone { usage: tr.usage() },
                _ = &mut sleep => {
                    let now = Instant::now();
                    if now >= deadline {
                        break Some(deadline_error(provider));
                    } else if now >= waiting_since + idle {
                        break Some(transport_error(provider, &H1Error::Timeout, "mid-response"));
                    }
                    sleep.as_mut().reset(due(waiting_since));
                }
            }
        };
        // Once events flow, take whatever else has already arrived too, so that one write
        // carries it all (as Pingora's own proxy loop does): one syscall per burst, not per
        // upstream read. The translator reads the burst in one pass too (its per-call work is
        // per burst). Bounded, so a burst cannot delay the events in it by much.
        while head_sent && failed.is_none() && !up.done() && burst.len() < COALESCE_MAX {
            match up.read_body_ready(&mut burst).await {
                Some(r) => {
                    failed = r
                        .err()
                        .map(|e| transport_error(provider, &e, "mid-response"))
                }
                None => break,
            }
        }
        let ended = failed.is_none() && up.done();
        if !burst.is_empty() {
            tr.push_owned(std::mem::take(&mut burst), &mut out);
        }
        // A stream that failed before its first event has sent the client nothing (its head
        // waits for that event): it fails over like a non-stream answer.
        if !head_sent && out.is_empty() {
            if let Some(err) = failed.take() {
                return Attempt::Retry(err, Cause::Failure);
            }
        }
        // The rest of the body is in hand: it leaves with its end, after the loop.
        if ended {
            break;
        }
        if !head_sent && (!out.is_empty() || failed.is_some()) {
            // A body write follows at once (events, or an error event).
            crate::listener::gather_head_with_body(session);
            if respond::stream_header(session, None).await.is_err() {
                return Attempt::ClientGone { usage: tr.usage() };
            }
            head_sent = true;
        }
        if stream && !out.is_empty() {
            // Nothing kept while the stream waits for its next event.
            let bytes = Bytes::from(std::mem::take(&mut out));
            if session.write_response_body(bytes, false).await.is_err() {
                return Attempt::ClientGone { usage: tr.usage() };
            }
        }
        match failed {
            Some(err) if !stream => return Attempt::Retry(err, Cause::Failure),
            Some(err) => {
                log::warn!(
                    "provider {}: {} (after the first byte: the stream ends with an error event)",
                    provider.name,
                    err.message.trim_end_matches('.')
                );
                let tail = Bytes::from(stream_error_event(surface, &err));
                let _ = session.write_response_body(tail, true).await;
                return Attempt::Broken { usage: tr.usage() };
            }
            None => {}
        }
    }
    let finished = tr.finish(&mut out);
    up.release(conns, peer).await;
    if stream {
        // The last events and the end of the body (and the head if still unsent): one write.
        if head_sent {
            crate::listener::gather_to_end_of_body(session);
        } else if respond::stream_header(session, Some(out.len()))
            .await
            .is_err()
        {
            return Attempt::ClientGone { usage: tr.usage() };
        }
        let _ = session.write_response_body(Bytes::from(out), true).await;
        return Attempt::Done {
            status: 200,
            usage: tr.usage(),
        };
    }
    match finished {
        Ok(()) => {
            // The answer leaves first; a usage still to read in it is read after, while the
            // client reads (it does not wait for the accounting).
            let body = Bytes::from(out);
            let sent = respond::json(session, 200, body.clone()).await;
            tr.settle_usage(&body);
            match sent {
                Ok(()) => Attempt::Done {
                    status: 200,
                    usage: tr.usage(),
                },
                Err(_) => Attempt::ClientGone { usage: tr.usage() },
            }
        }
        Err(err) => Attempt::Fail(err),
    }
}

/// Gemini `{"totalTokens": N}` -> Anthropic `{"input_tokens": N}`.
async fn relay_gemini_count(
    conns: &Connections,
    session: &mut Session,
    provider: &Provider,
    peer: &HttpPeer,
    mut up: h1::Response,
) -> Attempt {
    let body = read_small_body(&mut up, provider.timeouts.idle).await;
    up.release(conns, peer).await;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Count {
        total_tokens: u64,
    }
    let Ok(count) = serde_json::from_slice::<Count>(&body) else {
        return Attempt::Retry(
            ApiError::new(
                ErrorKind::BadGateway,
                format!(
                    "Provider `{}` sent an unreadable countTokens answer.",
                    provider.name
                ),
            ),
            Cause::Failure,
        );
    };
    let out = serde_json::to_vec(&serde_json::json!({ "input_tokens": count.total_tokens.max(1) }))
        .expect("json");
    match respond::json(session, 200, out).await {
        Ok(()) => Attempt::Done {
            status: 200,
            usage: Usage::default(),
        },
        Err(_) => Attempt::ClientGone {
            usage: Usage::default(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beta_flags_are_filtered_per_upstream() {
        let client =
            http::HeaderValue::from_static("claude-code-20250219, interleaved-thinking-2025-05-14");
        assert_eq!(allowed_betas(&client, None), Some(client.clone()));
        let allow = ["interleaved-thinking-2025-05-14".to_string()];
        assert_eq!(
            allowed_betas(&client, Some(&allow)).unwrap(),
            "interleaved-thinking-2025-05-14"
        );
        assert_eq!(allowed_betas(&client, Some(&[])), None);
    }

    #[test]
    fn retry_hints_from_each_header_style() {
        let mut h: Vec<(&str, &str)> = vec![
            ("x-ratelimit-reset-requests", "6m0s"),
            ("x-ratelimit-reset-tokens", "250ms"),
        ];
        let hint = |h: &[(&'static str, &'static str)]| {
            let h = h.to_vec();
            retry_hint(move |name| h.iter().find(|(n, _)| *n == name).map(|(_, v)| *v))
        };
        assert_eq!(hint(&h), Some(Duration::from_secs(360)));
        h.push(("retry-after", "7"));
        assert_eq!(hint(&h), Some(Duration::from_secs(7)));
        h.push(("retry-after-ms", "1500"));
        assert_eq!(hint(&h), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("soon"), None);
    }
}
