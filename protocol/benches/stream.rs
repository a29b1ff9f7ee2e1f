//! Per-chunk cost of stream translation, one group per pair (upstream -> client).
//!
//! Each upstream transcript is a realistic answer: a reasoning prefix, 200 text deltas and a tool
//! call streamed in fragments, pushed one SSE event per `push` (as TCP reads usually deliver).
//! Throughput is in upstream chunks, so criterion reports time per chunk.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ezrouter_protocol::{response_translator, Dialect, ResponseContext};
use serde_json::json;

const TEXT_DELTAS: usize = 200;

fn data(v: serde_json::Value) -> Vec<u8> {
    format!("data: {v}\n\n").into_bytes()
}

fn event(name: &str, v: serde_json::Value) -> Vec<u8> {
    format!("event: {name}\ndata: {v}\n\n").into_bytes()
}

fn openai_upstream() -> Vec<Vec<u8>> {
    let c = |delta: serde_json::Value, fr: Option<&str>| {
        data(
            json!({"id":"chatcmpl-b","object":"chat.completion.chunk","created":1,"model":"m",
            "choices":[{"index":0,"delta":delta,"finish_reason":fr}],"usage":null}),
        )
    };
    let mut v = vec![c(json!({"role":"assistant","content":""}), None)];
    for i in 0..10 {
        v.push(c(
            json!({"reasoning_content": format!("step {i} of the plan, ")}),
            None,
        ));
    }
    for i in 0..TEXT_DELTAS {
        v.push(c(json!({"content": format!("word{i} é ")}), None));
    }
    v.push(c(json!({"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}), None));
    for frag in ["{\"city\":", "\"Paris\",", "\"unit\":\"c\"}"] {
        v.push(c(
            json!({"tool_calls":[{"index":0,"function":{"arguments":frag}}]}),
            None,
        ));
    }
    v.push(c(json!({}), Some("tool_calls")));
    v.push(data(json!({"id":"chatcmpl-b","object":"chat.completion.chunk","created":1,"model":"m","choices":[],
        "usage":{"prompt_tokens":900,"completion_tokens":400,"total_tokens":1300,"prompt_tokens_details":{"cached_tokens":512}}})));
    v.push(b"data: [DONE]\n\n".to_vec());
    v
}

fn anthropic_upstream() -> Vec<Vec<u8>> {
    let mut v = vec![event(
        "message_start",
        json!({"type":"message_start","message":{"id":"msg_b","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":1}}}),
    )];
    v.push(event("content_block_start", json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}})));
    for i in 0..10 {
        v.push(event("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":format!("step {i} of the plan, ")}})));
    }
    v.push(event("content_block_delta", json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQBCkYIBxgCKkB"}})));
    v.push(event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":0}),
    ));
    v.push(event(
        "content_block_start",
        json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
    ));
    for i in 0..TEXT_DELTAS {
        v.push(event("content_block_delta", json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":format!("word{i} é ")}})));
    }
    v.push(event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":1}),
    ));
    v.push(event("content_block_start", json!({"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}})));
    for frag in ["{\"city\":", "\"Paris\",", "\"unit\":\"c\"}"] {
        v.push(event("content_block_delta", json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":frag}})));
    }
    v.push(event(
        "content_block_stop",
        json!({"type":"content_block_stop","index":2}),
    ));
    v.push(event("message_delta", json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":400}})));
    v.push(event("message_stop", json!({"type":"message_stop"})));
    v
}

fn gemini_upstream() -> Vec<Vec<u8>> {
    let c = |parts: serde_json::Value| {
        data(
            json!({"candidates":[{"content":{"role":"model","parts":parts},"index":0}],
            "usageMetadata":{"promptTokenCount":900,"totalTokenCount":900},"modelVersion":"gemini-2.5-pro","responseId":"r"}),
        )
    };
    let mut v = Vec::new();
    for i in 0..10 {
        v.push(c(
            json!([{"text": format!("step {i} of the plan, "), "thought": true}]),
        ));
    }
    for i in 0..TEXT_DELTAS {
        v.push(c(json!([{"text": format!("word{i} é ")}])));
    }
    v.push(data(json!({"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris","unit":"c"}},"thoughtSignature":"c2lnbmF0dXJl"}]},
        "finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":900,"candidatesTokenCount":380,"thoughtsTokenCount":20,"totalTokenCount":1300},"responseId":"r"})));
    v
}

fn ctx(client: Dialect, upstream: Dialect) -> ResponseContext {
    let mut c = ResponseContext::passthrough(client, "client-model", true);
    c.upstream = upstream;
    c.include_usage = true;
    c.origin = "prov/model".into();
    c
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("stream");
    let pairs: [(&str, Dialect, Dialect, Vec<Vec<u8>>); 5] = [
        (
            "O->A",
            Dialect::Anthropic,
            Dialect::OpenAi,
            openai_upstream(),
        ),
        (
            "A->O",
            Dialect::OpenAi,
            Dialect::Anthropic,
            anthropic_upstream(),
        ),
        ("G->O", Dialect::OpenAi, Dialect::Gemini, gemini_upstream()),
        (
            "G->A",
            Dialect::Anthropic,
            Dialect::Gemini,
            gemini_upstream(),
        ),
        (
            "O->O passthrough",
            Dialect::OpenAi,
            Dialect::OpenAi,
            openai_upstream(),
        ),
    ];
    for (name, client, upstream, chunks) in pairs {
        group.throughput(Throughput::Elements(chunks.len() as u64));
        let mut out = Vec::with_capacity(1 << 16);
        group.bench_with_input(BenchmarkId::from_parameter(name), &chunks, |b, chunks| {
            b.iter(|| {
                let mut t = response_translator(ctx(client, upstream));
                for chunk in chunks {
                    out.clear();
                    t.push(chunk, &mut out);
                }
                t.finish(&mut out).unwrap();
                t.usage()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
