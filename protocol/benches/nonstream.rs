//! Cost of one translated non-stream exchange, Anthropic client / OpenAI upstream (the common
//! "Claude Code on an OpenAI-compatible model" case), ns per request:
//! - `response`: `response_translator`, one `push` of a whole `chat.completion` body, `finish`;
//! - `request`: `translate_request` of the root benches' request bodies, A -> O.
//!
//! `cargo bench -p ezrouter-protocol --bench nonstream`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ezrouter_protocol::{response_translator, translate_request, Capabilities};
use ezrouter_protocol::{Dialect, ResponseContext, Target};
use serde_json::json;

#[path = "../../benches/common/bodies.rs"]
mod bodies;

/// A plain answer of about 600 bytes of text.
fn text_body() -> Vec<u8> {
    let text = "The proxy reads the request, picks an upstream and rewrites the body.\nIt then streams the answer back, translating each event on the way. ".repeat(4);
    serde_json::to_vec(&json!({
        "id": "chatcmpl-9f8e7d6c5b4a", "object": "chat.completion", "created": 1_735_000_000,
        "model": "up-model", "system_fingerprint": "fp_1234",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
            "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1200, "completion_tokens": 140, "total_tokens": 1340}
    }))
    .unwrap()
}

/// An answer with a short preamble, two tool calls and detailed usage.
fn tools_body() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "chatcmpl-1a2b3c4d5e6f", "object": "chat.completion", "created": 1_735_000_000,
        "model": "up-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Let me look at both files.",
            "tool_calls": [
                {"id": "call_abc123", "type": "function",
                 "function": {"name": "read_file", "arguments": "{\"path\":\"src/main.rs\"}"}},
                {"id": "call_def456", "type": "function",
                 "function": {"name": "run", "arguments": "{\"cmd\":\"cargo test -p proxy --locked\",\"timeout_s\":120}"}}
            ]},
            "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5400, "completion_tokens": 230, "total_tokens": 5630,
            "prompt_tokens_details": {"cached_tokens": 4096, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 64, "audio_tokens": 0}}
    }))
    .unwrap()
}

fn ctx() -> ResponseContext {
    let mut c = ResponseContext::passthrough(Dialect::Anthropic, "client-model", false);
    c.upstream = Dialect::OpenAi;
    c.origin = "prov/up-model".into();
    c
}

fn response(c: &mut Criterion) {
    let mut group = c.benchmark_group("nonstream_response_O->A");
    let mut out = Vec::with_capacity(1 << 14);
    for (name, body) in [("text", text_body()), ("tools", tools_body())] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| {
                out.clear();
                let mut t = response_translator(ctx());
                t.push(std::hint::black_box(body), &mut out);
                t.finish(&mut out).unwrap();
                t.settle_usage(&out);
                t.usage()
            })
        });
    }
    group.finish();
}

fn request(c: &mut Criterion) {
    let caps = Capabilities::default();
    let target = Target {
        dialect: Dialect::OpenAi,
        model: "m-up",
        caps: &caps,
        origin: "up/m-up",
    };
    let mut group = c.benchmark_group("nonstream_request_A->O");
    for size in bodies::SIZES {
        let body = bodies::body(Dialect::Anthropic, size, false);
        group.bench_with_input(BenchmarkId::from_parameter(size), &body, |b, body| {
            b.iter(|| {
                translate_request(Dialect::Anthropic, std::hint::black_box(body), "m", &target)
                    .expect("translates")
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(3));
    targets = response, request
}
criterion_main!(benches);
