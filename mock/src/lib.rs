//! # ezrouter-mock: a deterministic mock LLM upstream
//!
//! A small HTTP/1.1 server (tokio + httparse, no hyper) that speaks the wire
//! formats of OpenAI Chat Completions, Anthropic Messages and Gemini
//! (v1beta), for tests, benchmarks, fault injection and the gateway's
//! built-in offline `mock` provider.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let server = ezrouter_mock::start("127.0.0.1:0", ezrouter_mock::MockConfig::default()).await?;
//! println!("upstream at http://{}", server.addr);
//! assert_eq!(server.stats.requests(), 0);
//! # Ok(()) }
//! ```
//!
//! ## Endpoints
//!
//! | dialect | method + path | answer |
//! |---|---|---|
//! | OpenAI | `POST /v1/chat/completions` | `chat.completion`, or SSE `chat.completion.chunk`s + `data: [DONE]` when `stream:true` |
//! | OpenAI | `POST /v1/embeddings` | one vector per input (string, string array, token array, array of token arrays); 16 dims unless `dimensions`; `encoding_format:"base64"` supported |
//! | OpenAI | `GET /v1/models` | model list (Anthropic's shape when `anthropic-version` is sent) |
//! | Anthropic | `POST /v1/messages` | message, or named-event SSE when `stream:true` |
//! | Anthropic | `POST /v1/messages/count_tokens` | `{"input_tokens":N}`, N = body bytes / 4 (≥ 1) |
//! | Gemini | `POST /v1beta/models/{model}:generateContent` | `GenerateContentResponse` |
//! | Gemini | `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` | SSE (`data: …\r\n\r\n`, no `[DONE]`); without `alt=sse` a chunked JSON array |
//! | Gemini | `POST /v1beta/models/{model}:countTokens` | `{"totalTokens":N,…}` |
//! | Gemini | `GET /v1beta/models` | model list |
//! | mock | `GET /_mock/stats`, `GET /_mock/requests`, `POST /_mock/reset` | [`Stats`] as JSON, the request ring, reset |
//!
//! Query strings are ignored except `alt` and `key` on Gemini paths
//! (`/v1/models/{model}:…` is accepted as well as `/v1beta/…`). Unknown paths
//! get 404 and malformed JSON 400, in the dialect's error envelope; missing
//! required fields (`model`/`messages`, `max_tokens` for Anthropic,
//! `contents` for Gemini) get 400 too. Anthropic endpoints require the
//! `anthropic-version` header (400 without it).
//!
//! ## Answers
//!
//! Deterministic: text delta `i` is a short word sequence (`"héllo 世界 🦀 "`
//! first) with 2-, 3- and 4-byte UTF-8 characters, so downstream splitting
//! is exercised. The echoed `model` is the request's (the path's for
//! Gemini). An answer has `chunks` text deltas (default 8). Features follow
//! the request:
//!
//! * **Thinking** (`max(1, chunks/2)` deltas): OpenAI when `reasoning_effort`
//!   is set and not `"none"`, or `thinking:{type:"enabled"}` →
//!   `reasoning_content` deltas; Anthropic when `thinking.type` is `enabled`
//!   or `adaptive` → a `thinking` block with `thinking_delta`s then one
//!   `signature_delta` (no thinking text with `display:"omitted"`); Gemini
//!   when `generationConfig.thinkingConfig.includeThoughts` → parts with
//!   `thought:true`, and a `thoughtSignature` on the first answer part.
//! * **Tool call**: when `tools` is present (and `tool_choice` is not
//!   `"none"` / `{type:"none"}` / Gemini mode `NONE`), the answer calls the
//!   *first* tool with arguments built from its JSON schema `properties`:
//!   strings `"mock"`, numbers/integers `1`, booleans `true`, the first
//!   `enum` value, nested objects recursively, arrays `[]`. OpenAI: no text,
//!   the call streams as `tool_calls[index 0]` argument fragments
//!   (`finish_reason:"tool_calls"`); Anthropic: a text block, then a
//!   `tool_use` block with `input_json_delta` fragments (`""` first;
//!   `stop_reason:"tool_use"`); Gemini: one `functionCall` part, whole, with
//!   a `thoughtSignature` and no `id` (like the Gemini API), finish `STOP`.
//!   Arguments are split into `chunks` fragments.
//! * **Usage**: prompt tokens P = body bytes / 4 (≥ 1), of which P/2 are
//!   cache reads; 3 tokens per text delta, 5 per thinking delta,
//!   8 + args/4 per tool call. OpenAI: `prompt_tokens` = P,
//!   `prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`;
//!   the `choices:[]` usage chunk only with `stream_options.include_usage`.
//!   Anthropic: `input_tokens` = P − cached, `cache_read_input_tokens`,
//!   `cache_creation_input_tokens` 0, in `message_start` (output 1) and
//!   final in `message_delta`. Gemini: cumulative `usageMetadata` on every chunk.
//!
//! ## Auth and the fault script
//!
//! The key is read from `Authorization: Bearer K` (OpenAI), `x-api-key: K`
//! (Anthropic; `Authorization: Bearer` also accepted), `x-goog-api-key: K` or
//! `?key=K` (Gemini). No key → 401 in the dialect's envelope. The key string
//! is also a **fault script**:
//!
//! ```text
//! key      := "seq-" step ("," step)*  |  fault
//! fault    := "fail-429-" SECS       429, Retry-After: SECS, rate-limit envelope
//!           | "fail-429"             same with Retry-After: 1
//!           | "fail-" STATUS         that status (400..=599) in the dialect's envelope:
//!                                    401 auth, 402 billing, 403 permission, 500, 503,
//!                                    529 (Anthropic `overloaded_error`), …
//!           | "fail-reset-" N        200, N stream events (a non-stream answer: half
//!                                    the body), then TCP reset (SO_LINGER 0)
//!           | "fail-mid-" N          200, N stream events, then the dialect's mid-stream
//!                                    error event and a clean end (non-stream: 500)
//!           | "fail-close"           reset the connection before any byte
//!           | "slow-" MS             wait MS before the response header, then answer
//!           | "hang"                 never answer (until the client closes)
//!           | anything else          success (e.g. "ok", "ok-1", "sk-test")
//! step     := "ok" | fault | STATUS | "429-" SECS | "reset-" N | "mid-" N | "close"
//!                                    ("fail-" optional; a bare 429 has Retry-After: 1)
//! ```
//!
//! `seq-` scripts play step *i* on the *i*-th request made with that exact
//! key (counted per key over all endpoints) and repeat the last step once
//! exhausted: `seq-429,ok` → 429, then success forever. `POST /_mock/reset`
//! restarts them. Validation errors (404, 401, 400) take precedence over the
//! fault.
//!
//! ## Per-request overrides (headers)
//!
//! `x-mock-chunks: N` (text deltas, 1..=100000), `x-mock-chunk-delay-ms: MS` (between
//! stream events), `x-mock-ttfb-ms: MS` (before the response header,
//! added to `slow-`).
//!
//! ## HTTP
//!
//! HTTP/1.1 keep-alive (HTTP/1.0 too), `Content-Length` or chunked request
//! bodies, `Expect: 100-continue`. JSON answers carry `Content-Length`;
//! streams are `Transfer-Encoding: chunked`, one HTTP chunk per event,
//! flushed as written (with no chunk delay the whole stream goes out in one
//! write). While waiting (ttfb, `slow-`, `hang`, chunk delay) the socket is
//! watched: a client that closes is counted in [`Stats::client_closed`] at
//! once, and the response stops; so does a failed write.
//!
//! ## Benchmark
//!
//! `cargo run --release -p ezrouter-mock --example mock_upstream -- 127.0.0.1:9000 1`
//! then `wrk -t1 -c32 -d5s -s mock/bench/chat_stream.lua http://127.0.0.1:9000`
//! (also `chat_json.lua`, `messages_stream.lua`).

mod anthropic;
mod common;
mod fault;
mod gemini;
mod http;
mod openai;
mod server;
mod stats;
mod text;

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

pub use stats::{RecordedRequest, Stats, RING_SIZE};

/// Defaults for every answer; `x-mock-*` request headers override them.
#[derive(Clone, Debug)]
pub struct MockConfig {
    /// Text deltas per answer (default 8; at least 1 is used).
    pub chunks: usize,
    /// Pause between stream events (default 0).
    pub chunk_delay: Duration,
    /// Pause before the response header (default 0).
    pub ttfb: Duration,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            chunks: 8,
            chunk_delay: Duration::ZERO,
            ttfb: Duration::ZERO,
        }
    }
}

/// A running mock server. It runs until its tokio runtime shuts down.
#[derive(Clone, Debug)]
pub struct MockServer {
    /// The bound address (the real port when started on port 0).
    pub addr: SocketAddr,
    /// Live counters and the request ring.
    pub stats: Arc<Stats>,
}

/// Bind and spawn the accept loop on the current tokio runtime.
pub async fn start(listen: &str, config: MockConfig) -> std::io::Result<MockServer> {
    let listener = bind(listen).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(Stats::default());
    let shared = Arc::new(server::Shared {
        config,
        stats: stats.clone(),
        tables: text::Tables::new(),
        ids: AtomicU64::new(0),
    });
    tokio::spawn(server::accept_loop(listener, shared));
    Ok(MockServer { addr, stats })
}

/// Binds with a deep accept backlog: a load test opening thousands of connections at once
/// (10,000 streams) overflows tokio's default of 1,024, and the proxies in front see refusals.
async fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(listen).await? {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(16 * 1024)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("`{listen}` resolved to nothing"))))
}

/// Standalone: build a multi-thread runtime with `threads` workers, bind,
/// print exactly one line `mock-upstream listening on <addr>` to stdout
/// (flushed) and serve until killed.
pub fn run_standalone(listen: &str, config: MockConfig, threads: usize) -> std::io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = start(listen, config).await?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "mock-upstream listening on {}", server.addr)?;
        out.flush()?;
        drop(out);
        std::future::pending::<std::io::Result<()>>().await
    })
}
