//! Accept loop, routing, auth, faults and response writing.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::{error_body, mid_stream_error, prompt_usage, status_message, Dialect, Plan};
use crate::fault::{resolve, Fault};
use crate::http::{push_head, push_last, push_piece, Conn, Framing, ReadError, Request};
use crate::stats::RecordedRequest;
use crate::text::{estimate_tokens, push_u64, Tables};
use crate::{anthropic, gemini, openai, MockConfig, Stats};

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";

pub(crate) struct Shared {
    pub config: MockConfig,
    pub stats: Arc<Stats>,
    pub tables: Tables,
    pub ids: AtomicU64,
}

pub(crate) async fn accept_loop(listener: TcpListener, sh: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                tokio::spawn(serve(sh.clone(), sock));
            }
            // E.g. out of file descriptors: back off briefly.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

/// What to do with the connection after a response.
enum Next {
    KeepAlive,
    Close,
    Reset,
    /// The client went away.
    Gone,
}

async fn serve(sh: Arc<Shared>, sock: TcpStream) {
    let _ = sock.set_nodelay(true);
    let mut conn = Conn::new(sock);
    loop {
        let req = match conn.read_request().await {
            Ok(r) => r,
            Err(ReadError::Bad(status, msg)) => {
                conn.body.clear();
                error_body(&mut conn.body, Dialect::OpenAi, status, msg, None, 0);
                conn.out.clear();
                push_head(
                    &mut conn.out,
                    status,
                    JSON,
                    Framing::Length(conn.body.len()),
                    false,
                    false,
                );
                conn.out.extend_from_slice(b"\r\n");
                conn.out.extend_from_slice(&conn.body);
                conn.flush_out().await;
                let _ = conn.sock.shutdown().await;
                return;
            }
            Err(_) => return,
        };
        match handle(&sh, &mut conn, req).await {
            Next::KeepAlive => {}
            Next::Close => {
                let _ = conn.sock.shutdown().await;
                return;
            }
            Next::Reset => {
                conn.reset();
                return;
            }
            Next::Gone => return,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Chat,
    Embeddings,
    Models,
    Messages,
    CountTokens,
    Generate(&'a str),
    Stream(&'a str, bool),
    GeminiCount(&'a str),
    NotFound,
}

fn route<'a>(
    method: &str,
    path: &'a str,
    query: &str,
    anthropic_header: bool,
) -> (Dialect, Endpoint<'a>) {
    use Dialect::*;
    let post = method == "POST";
    let get = method == "GET";
    match path {
        "/v1/chat/completions" if post => return (OpenAi, Endpoint::Chat),
        "/v1/embeddings" if post => return (OpenAi, Endpoint::Embeddings),
        "/v1/models" if get => {
            return (
                if anthropic_header { Anthropic } else { OpenAi },
                Endpoint::Models,
            )
        }
        "/v1/messages" if post => return (Anthropic, Endpoint::Messages),
        "/v1/messages/count_tokens" if post => return (Anthropic, Endpoint::CountTokens),
        "/v1beta/models" if get => return (Gemini, Endpoint::Models),
        _ => {}
    }
    let gemini = path
        .strip_prefix("/v1beta/models/")
        .or_else(|| path.strip_prefix("/v1/models/"));
    if let Some((model, action)) = gemini.and_then(|r| r.rsplit_once(':')) {
        if post && !model.is_empty() {
            match action {
                "generateContent" => return (Gemini, Endpoint::Generate(model)),
                "streamGenerateContent" => {
                    let sse = query_param(query, "alt") == Some("sse");
                    return (Gemini, Endpoint::Stream(model, sse));
                }
                "countTokens" => return (Gemini, Endpoint::GeminiCount(model)),
                _ => {}
            }
        }
        return (Gemini, Endpoint::NotFound);
    }
    let dialect = if path.starts_with("/v1beta") {
        Gemini
    } else if path.starts_with("/v1/messages") {
        Anthropic
    } else {
        OpenAi
    };
    (dialect, Endpoint::NotFound)
}

fn query_param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn bearer(v: Option<&str>) -> Option<&str> {
    let v = v?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn api_key<'r>(req: &'r Request, d: Dialect, query: &'r str) -> Option<Cow<'r, str>> {
    let k = req.known.clone();
    let key = match d {
        Dialect::OpenAi => bearer(req.header(&k.authorization)).map(Cow::Borrowed),
        Dialect::Anthropic => req
            .header(&k.x_api_key)
            .or_else(|| bearer(req.header(&k.authorization)))
            .map(Cow::Borrowed),
        Dialect::Gemini => req
            .header(&k.goog_key)
            .map(Cow::Borrowed)
            .or_else(|| query_param(query, "key").map(percent_decode)),
    };
    key.filter(|k| !k.is_empty())
}

fn missing_key_message(d: Dialect) -> &'static str {
    match d {
        Dialect::OpenAi => "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        Dialect::Anthropic => "x-api-key header is required",
        Dialect::Gemini => "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
    }
}

/// Per-request settings: config defaults overridden by `x-mock-*` headers.
struct Opts {
    chunks: usize,
    delay: Duration,
    ttfb: Duration,
}

impl Opts {
    fn new(req: &Request, c: &MockConfig) -> Opts {
        let num = |r| req.header(r).and_then(|v| v.parse::<u64>().ok());
        let k = &req.known;
        Opts {
            chunks: num(&k.mock_chunks)
                .map_or(c.chunks, |n| n as usize)
                .clamp(1, 100_000),
            delay: num(&k.mock_delay).map_or(c.chunk_delay, Duration::from_millis),
            ttfb: num(&k.mock_ttfb).map_or(c.ttfb, Duration::from_millis),
        }
    }
}

/// The prepared answer (bodies are rendered into the connection buffers).
enum Reply {
    Error {
        status: u16,
        msg: Cow<'static, str>,
        retry_after: Option<u64>,
    },
    /// 200 with `conn.body`.
    Json,
    /// 200 with the events in `conn.ev`.
    Stream {
        content_type: &'static str,
        sse: bool,
    },
}

fn bad_json(d: Dialect, e: serde_json::Error) -> Reply {
    let msg = match d {
        Dialect::OpenAi => format!("We could not parse the JSON body of your request. ({e})"),
        Dialect::Anthropic => format!("There was an issue with the JSON body of the request: {e}"),
        Dialect::Gemini => format!("Invalid JSON payload received. {e}"),
    };
    Reply::Error {
        status: 400,
        msg: Cow::Owned(msg),
        retry_after: None,
    }
}

fn bad_request(msg: &'static str) -> Reply {
    Reply::Error {
        status: 400,
        msg: Cow::Borrowed(msg),
        retry_after: None,
    }
}

async fn handle(sh: &Shared, conn: &mut Conn, req: Request) -> Next {
    let target = req.target();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path.starts_with("/_mock/") {
        return admin(sh, conn, &req, path).await;
    }
    sh.stats
        .record(RecordedRequest::new(req.head.clone(), req.body.clone()));
    let _in_flight = sh.stats.enter();
    let id = sh.ids.fetch_add(1, Relaxed) + 1;
    let opts = Opts::new(&req, &sh.config);
    let (dialect, ep) = route(
        req.method(),
        path,
        query,
        req.known.anthropic_version.is_some(),
    );
    conn.body.clear();
    conn.ev.clear();

    let mut fault = Fault::Ok;
    let reply = 'reply: {
        if ep == Endpoint::NotFound {
            let msg = match dialect {
                Dialect::OpenAi => format!("Invalid URL ({} {})", req.method(), path),
                _ => format!("Not found: {} {}", req.method(), path),
            };
            break 'reply Reply::Error {
                status: 404,
                msg: Cow::Owned(msg),
                retry_after: None,
            };
        }
        let Some(key) = api_key(&req, dialect, query) else {
            break 'reply Reply::Error {
                status: 401,
                msg: Cow::Borrowed(missing_key_message(dialect)),
                retry_after: None,
            };
        };
        fault = resolve(&key, sh.stats.count_key(&key));
        if dialect == Dialect::Anthropic && req.known.anthropic_version.is_none() {
            break 'reply bad_request("anthropic-version: header is required");
        }
        match render(sh, conn, &req, dialect, ep, &opts, id) {
            Ok(r) => r,
            Err(r) => r,
        }
    };
    let gemini_array = matches!(ep, Endpoint::Stream(_, false));

    // Before the response header: ttfb, `slow-`, `hang` (validation errors skip the faults).
    let is_error = matches!(reply, Reply::Error { .. });
    let wait = match fault {
        Fault::Slow(ms) if !is_error => Some(opts.ttfb + Duration::from_millis(ms)),
        Fault::Hang if !is_error => None,
        _ => Some(opts.ttfb),
    };
    if wait != Some(Duration::ZERO) && conn.wait(wait).await {
        sh.stats.note_client_close();
        return Next::Gone;
    }

    let w = Writer {
        keep_alive: req.keep_alive,
        http10: req.http10,
        dialect,
        id,
        delay: opts.delay,
    };
    let next = match (reply, fault) {
        (
            Reply::Error {
                status,
                msg,
                retry_after,
            },
            _,
        ) => w.error(conn, status, &msg, retry_after, gemini_array).await,
        (_, Fault::Status { code, retry_after }) => {
            let msg = if code == 429 {
                Cow::Owned(format!(
                    "Rate limit exceeded (mock fault); retry after {}s",
                    retry_after.unwrap_or(1)
                ))
            } else {
                Cow::Borrowed(status_message(code))
            };
            w.error(conn, code, &msg, retry_after, gemini_array).await
        }
        (_, Fault::Close) => Next::Reset,
        (Reply::Json, Fault::MidError(_)) => {
            w.error(conn, 500, status_message(500), None, false).await
        }
        (Reply::Json, fault) => w.json(conn, 200, matches!(fault, Fault::Reset(_))).await,
        (Reply::Stream { content_type, sse }, fault) => {
            let cut = match fault {
                Fault::Reset(n) => Cut::Reset(n),
                Fault::MidError(n) => Cut::Mid(n),
                _ => Cut::None,
            };
            w.stream(conn, content_type, sse, cut).await
        }
    };
    if matches!(next, Next::Gone) {
        sh.stats.note_client_close();
    }
    next
}

/// Parse the body and render the success answer into the connection buffers.
fn render(
    sh: &Shared,
    conn: &mut Conn,
    req: &Request,
    d: Dialect,
    ep: Endpoint,
    opts: &Opts,
    id: u64,
) -> Result<Reply, Reply> {
    let body = &req.body[..];
    let think_chunks = (opts.chunks / 2).max(1);
    let sse = Reply::Stream {
        content_type: SSE,
        sse: true,
    };
    Ok(match ep {
        Endpoint::Chat => {
            let r: openai::ChatReq = serde_json::from_slice(body).map_err(|e| bad_json(d, e))?;
            if let Some(m) = r.missing() {
                return Err(bad_request(m));
            }
            let mut p = new_plan(
                &sh.tables,
                r.model.as_deref().unwrap_or("mock"),
                id,
                opts,
                body.len(),
            );
            if r.thinking() {
                p.think_chunks = think_chunks;
            }
            p.tool = r.tool();
            p.text = p.tool.is_none();
            if r.stream() {
                openai::chat_stream(&p, r.include_usage(), &mut conn.ev);
                sse
            } else {
                openai::chat_json(&p, &mut conn.body);
                Reply::Json
            }
        }
        Endpoint::Embeddings => {
            let r: openai::EmbReq = serde_json::from_slice(body).map_err(|e| bad_json(d, e))?;
            if r.input.0.is_empty() {
                return Err(bad_request("'input' must not be empty"));
            }
            let model = r.model.as_deref().unwrap_or("mock-embedding");
            openai::embeddings_json(&r, model, &mut conn.body);
            Reply::Json
        }
        Endpoint::Models => {
            match d {
                Dialect::OpenAi => openai::models_json(&mut conn.body),
                Dialect::Anthropic => anthropic::models_json(&mut conn.body),
                Dialect::Gemini => gemini::models_json(&mut conn.body),
            }
            Reply::Json
        }
        Endpoint::Messages => {
            let r: anthropic::MsgReq = serde_json::from_slice(body).map_err(|e| bad_json(d, e))?;
            if let Some(m) = r.missing() {
                return Err(bad_request(m));
            }
            let mut p = new_plan(
                &sh.tables,
                r.model.as_deref().unwrap_or("mock"),
                id,
                opts,
                body.len(),
            );
            let (thinking, visible) = r.thinking();
            if thinking {
                p.think_chunks = think_chunks;
                p.think_visible = visible;
            }
            p.tool = r.tool();
            if r.stream() {
                anthropic::message_stream(&p, &mut conn.ev);
                sse
            } else {
                anthropic::message_json(&p, &mut conn.body);
                Reply::Json
            }
        }
        Endpoint::CountTokens | Endpoint::GeminiCount(_) => {
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| bad_json(d, e))?;
            let n = estimate_tokens(body.len());
            if d == Dialect::Gemini {
                gemini::count_json(n, &mut conn.body);
            } else {
                conn.body.extend_from_slice(b"{\"input_tokens\":");
                push_u64(&mut conn.body, n);
                conn.body.push(b'}');
            }
            Reply::Json
        }
        Endpoint::Generate(model) | Endpoint::Stream(model, _) => {
            let r: gemini::GenReq = serde_json::from_slice(body).map_err(|e| bad_json(d, e))?;
            if r.contents.is_none() {
                return Err(bad_request(
                    "* GenerateContentRequest.contents: contents is not specified",
                ));
            }
            let model = percent_decode(model);
            let mut p = new_plan(&sh.tables, &model, id, opts, body.len());
            if r.thinking() {
                p.think_chunks = think_chunks;
            }
            p.tool = r.tool();
            p.text = p.tool.is_none();
            match ep {
                Endpoint::Stream(_, is_sse) => {
                    gemini::generate_stream(&p, is_sse, &mut conn.ev);
                    Reply::Stream {
                        content_type: if is_sse { SSE } else { JSON },
                        sse: is_sse,
                    }
                }
                _ => {
                    gemini::generate_json(&p, &mut conn.body);
                    Reply::Json
                }
            }
        }
        Endpoint::NotFound => unreachable!("handled by the caller"),
    })
}

fn new_plan<'a>(
    tables: &'a Tables,
    model: &'a str,
    id: u64,
    opts: &Opts,
    body_len: usize,
) -> Plan<'a> {
    let (prompt_tokens, cached_tokens) = prompt_usage(body_len);
    Plan {
        tables,
        id,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model,
        chunks: opts.chunks,
        think_chunks: 0,
        think_visible: true,
        tool: None,
        text: true,
        prompt_tokens,
        cached_tokens,
    }
}

/// How a stream is cut short.
#[derive(Clone, Copy)]
enum Cut {
    None,
    /// After this many events, reset the connection.
    Reset(usize),
    /// After this many events, send the dialect's error event and end.
    Mid(usize),
}

struct Writer {
    keep_alive: bool,
    http10: bool,
    dialect: Dialect,
    id: u64,
    delay: Duration,
}

impl Writer {
    fn std_headers(&self, out: &mut Vec<u8>, retry_after: Option<u64>) {
        match self.dialect {
            Dialect::OpenAi => out.extend_from_slice(b"x-request-id: req_mock_"),
            Dialect::Anthropic => out.extend_from_slice(b"request-id: req_mock_"),
            Dialect::Gemini => out.extend_from_slice(b"x-mock-request-id: "),
        }
        push_u64(out, self.id);
        out.extend_from_slice(b"\r\n");
        if let Some(secs) = retry_after {
            out.extend_from_slice(b"retry-after: ");
            push_u64(out, secs);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    fn done(&self) -> Next {
        if self.keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    async fn error(
        &self,
        conn: &mut Conn,
        status: u16,
        msg: &str,
        retry_after: Option<u64>,
        array: bool,
    ) -> Next {
        conn.body.clear();
        if array {
            conn.body.push(b'[');
        }
        error_body(
            &mut conn.body,
            self.dialect,
            status,
            msg,
            retry_after,
            self.id,
        );
        if array {
            conn.body.push(b']');
        }
        conn.out.clear();
        push_head(
            &mut conn.out,
            status,
            JSON,
            Framing::Length(conn.body.len()),
            self.keep_alive,
            self.http10,
        );
        self.std_headers(&mut conn.out, retry_after);
        conn.out.extend_from_slice(&conn.body);
        if !conn.flush_out().await {
            return Next::Gone;
        }
        self.done()
    }

    /// 200 with `conn.body`; with `truncate`, only half the body, then reset.
    async fn json(&self, conn: &mut Conn, status: u16, truncate: bool) -> Next {
        conn.out.clear();
        push_head(
            &mut conn.out,
            status,
            JSON,
            Framing::Length(conn.body.len()),
            self.keep_alive,
            self.http10,
        );
        self.std_headers(&mut conn.out, None);
        let len = if truncate {
            conn.body.len() / 2
        } else {
            conn.body.len()
        };
        conn.out.extend_from_slice(&conn.body[..len]);
        if !conn.flush_out().await {
            return Next::Gone;
        }
        if truncate {
            Next::Reset
        } else {
            self.done()
        }
    }

    async fn stream(&self, conn: &mut Conn, content_type: &str, sse: bool, cut: Cut) -> Next {
        let framing = if self.http10 {
            Framing::Close
        } else {
            Framing::Chunked
        };
        let ev = std::mem::take(&mut conn.ev);
        let (n, reset, mid) = match cut {
            Cut::None => (ev.len(), false, false),
            Cut::Reset(n) => (n.min(ev.len()), true, false),
            Cut::Mid(n) => (n.min(ev.len()), false, true),
        };
        conn.out.clear();
        push_head(
            &mut conn.out,
            200,
            content_type,
            framing,
            self.keep_alive,
            self.http10,
        );
        self.std_headers(&mut conn.out, None);
        let paced = !self.delay.is_zero();
        let mut gone = false;
        for i in 0..n {
            if i > 0 && paced && (!conn.flush_out().await || conn.wait(Some(self.delay)).await) {
                gone = true;
                break;
            }
            push_piece(&mut conn.out, ev.get(i), framing);
        }
        if !gone && mid {
            if n > 0 && paced && (!conn.flush_out().await || conn.wait(Some(self.delay)).await) {
                gone = true;
            } else {
                let mut err = Vec::new();
                mid_stream_error(&mut err, self.dialect, sse, n == 0);
                push_piece(&mut conn.out, &err, framing);
            }
        }
        if !gone && !reset {
            push_last(&mut conn.out, framing);
        }
        if !gone && !conn.flush_out().await {
            gone = true;
        }
        conn.out.clear();
        conn.ev = ev;
        if gone {
            Next::Gone
        } else if reset {
            Next::Reset
        } else if framing == Framing::Close {
            Next::Close
        } else {
            self.done()
        }
    }
}

async fn admin(sh: &Shared, conn: &mut Conn, req: &Request, path: &str) -> Next {
    let (status, v) = match (req.method(), path) {
        ("GET", "/_mock/stats") => (200, sh.stats.to_json()),
        ("GET", "/_mock/requests") => (
            200,
            Value::Array(
                sh.stats
                    .recent_requests()
                    .iter()
                    .map(|r| r.to_json())
                    .collect(),
            ),
        ),
        ("POST", "/_mock/reset") => {
            sh.stats.reset();
            (200, serde_json::json!({"ok": true}))
        }
        _ => (
            404,
            serde_json::json!({"error": {"message": "unknown mock admin path", "type": "invalid_request_error", "param": null, "code": null}}),
        ),
    };
    conn.body.clear();
    let _ = serde_json::to_writer(&mut conn.body, &v);
    let w = Writer {
        keep_alive: req.keep_alive,
        http10: req.http10,
        dialect: Dialect::OpenAi,
        id: 0,
        delay: Duration::ZERO,
    };
    w.json(conn, status, false).await
}
