//! Golden transcripts per pair: realistic upstream streams (the canonical sequences of
//! protocols.md) in, the client stream out, compared event by event, and replayed through the
//! strict client checkers.

use serde_json::{json, Value};

use super::checkers::*;
use crate::signature::mint;
use crate::{Dialect, Usage};

const ORIGIN: &str = "prov/up-model";

fn oc(id: &str, choices: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": "up", "choices": choices})
}

fn odelta(delta: Value) -> Value {
    oc(
        "chatcmpl-1",
        json!([{"index": 0, "delta": delta, "finish_reason": null}]),
    )
}

fn ofinish(reason: &str) -> Value {
    oc(
        "chatcmpl-1",
        json!([{"index": 0, "delta": {}, "finish_reason": reason}]),
    )
}

fn ousage() -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "up", "choices": [],
        "usage": {"prompt_tokens": 90, "completion_tokens": 40, "total_tokens": 130,
            "prompt_tokens_details": {"cached_tokens": 64}, "completion_tokens_details": {"reasoning_tokens": 12}}})
}

fn with_done(mut body: Vec<u8>) -> Vec<u8> {
    body.extend_from_slice(b"data: [DONE]\n\n");
    body
}

/// Expected Anthropic events.
fn a(name: &str, data: Value) -> (String, Value) {
    (name.to_string(), data)
}

fn msg_start(id: &str, input: u64, cache_read: u64, output: u64) -> (String, Value) {
    a(
        "message_start",
        json!({"type": "message_start", "message": {"id": id, "type": "message", "role": "assistant",
        "model": "client-model", "content": [], "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cache_read, "output_tokens": output}}}),
    )
}

fn start(i: u64, block: Value) -> (String, Value) {
    a(
        "content_block_start",
        json!({"type": "content_block_start", "index": i, "content_block": block}),
    )
}

fn delta(i: u64, d: Value) -> (String, Value) {
    a(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": i, "delta": d}),
    )
}

fn stop(i: u64) -> (String, Value) {
    a(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": i}),
    )
}

fn msg_end(reason: &str, input: u64, cache_read: u64, output: u64) -> Vec<(String, Value)> {
    vec![
        a(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null},
            "usage": {"input_tokens": input, "cache_creation_input_tokens": 0, "cache_read_input_tokens": cache_read, "output_tokens": output}}),
        ),
        a("message_stop", json!({"type": "message_stop"})),
    ]
}

fn assert_events(got: &[(String, Value)], want: &[(String, Value)]) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "event {i} differs");
    }
    assert_eq!(got.len(), want.len(), "event count: got {got:#?}");
}

/// Expected OpenAI chunks (`created` is the fixed clock, usage:null when include_usage).
fn o(id: &str, delta: Value, finish: Option<&str>, include_usage: bool) -> (String, Value) {
    let mut v = json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": "client-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
    if include_usage {
        v["usage"] = Value::Null;
    }
    (String::new(), v)
}

fn o_usage(id: &str, usage: Value) -> (String, Value) {
    (
        String::new(),
        json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": "client-model", "choices": [], "usage": usage}),
    )
}

fn done() -> (String, Value) {
    (String::new(), json!("[DONE]"))
}

/// The canonical Anthropic stream of protocols.md §1.2.
pub fn anthropic_canonical() -> Vec<u8> {
    sse(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":2048,"output_tokens":1}}}"#,
        ),
        ("ping", r#"{"type":"ping"}"#),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me…"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB…"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"I'll check."}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Paris\"}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":2}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":87}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ])
}

/// The canonical OpenAI tool-call stream of protocols.md §1.1 (with the usage chunk).
pub fn openai_tools_canonical() -> Vec<u8> {
    with_done(sse_data(&[
        odelta(
            json!({"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}),
        ),
        odelta(json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]})),
        odelta(json!({"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]})),
        odelta(
            json!({"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]}),
        ),
        odelta(json!({"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]})),
        ofinish("tool_calls"),
        ousage(),
    ]))
}

/// A DeepSeek-style reasoning + text stream.
pub fn openai_reasoning_text() -> Vec<u8> {
    with_done(sse_data(&[
        odelta(json!({"role":"assistant","content":"","reasoning_content":null})),
        odelta(json!({"reasoning_content":"Let me think"})),
        odelta(json!({"reasoning_content":" hard."})),
        odelta(json!({"content":"Hello"})),
        odelta(json!({"content":" world"})),
        ofinish("stop"),
        ousage(),
    ]))
}

/// Gemini: a thought, text, then a function call carrying the thoughtSignature.
pub fn gemini_thought_text_call() -> Vec<u8> {
    sse_data(&[
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Thinking about it","thought":true}]},"index":0}],
            "usageMetadata":{"promptTokenCount":50,"totalTokenCount":50},"responseId":"r1","modelVersion":"gemini-2.5-pro"}),
        json!({"candidates":[{"content":{"role":"model","parts":[{"text":"Let me check."}]},"index":0}],"responseId":"r1"}),
        json!({"candidates":[{"content":{"role":"model","parts":[{"functionCall":{"name":"get_weather","args":{"city":"Paris"}},"thoughtSignature":"c2ln"}]},
            "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":50,"candidatesTokenCount":10,"thoughtsTokenCount":5,"totalTokenCount":65},"responseId":"r1"}),
    ])
}

#[test]
fn golden_openai_reasoning_text_to_anthropic() {
    let (out, r, usage) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&openai_reasoning_text()],
    );
    r.unwrap();
    let mut want = vec![
        msg_start("msg_1", 0, 0, 0),
        start(0, json!({"type":"thinking","thinking":"","signature":""})),
        delta(
            0,
            json!({"type":"thinking_delta","thinking":"Let me think"}),
        ),
        delta(0, json!({"type":"thinking_delta","thinking":" hard."})),
        delta(
            0,
            json!({"type":"signature_delta","signature": mint(ORIGIN, "")}),
        ),
        stop(0),
        start(1, json!({"type":"text","text":""})),
        delta(1, json!({"type":"text_delta","text":"Hello"})),
        delta(1, json!({"type":"text_delta","text":" world"})),
        stop(1),
    ];
    want.extend(msg_end("end_turn", 26, 64, 40));
    assert_events(&events(&out), &want);
    let replay = check_anthropic(&out);
    assert!(replay.stopped);
    assert_eq!(replay.message["content"][1]["text"], "Hello world");
    assert_eq!(
        usage,
        Usage {
            input: 26,
            cache_read: 64,
            cache_write: 0,
            reasoning: 12,
            output: 40
        }
    );
}

#[test]
fn golden_openai_tools_to_anthropic() {
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&openai_tools_canonical()],
    );
    r.unwrap();
    let mut want = vec![
        msg_start("msg_1", 0, 0, 0),
        start(
            0,
            json!({"type":"tool_use","id":"call_a","name":"get_weather","input":{}}),
        ),
        delta(
            0,
            json!({"type":"input_json_delta","partial_json":"{\"city\":"}),
        ),
        delta(
            0,
            json!({"type":"input_json_delta","partial_json":"\"Paris\"}"}),
        ),
        stop(0),
        start(
            1,
            json!({"type":"tool_use","id":"call_b","name":"get_time","input":{}}),
        ),
        delta(1, json!({"type":"input_json_delta","partial_json":"{}"})),
        stop(1),
    ];
    want.extend(msg_end("tool_use", 26, 64, 40));
    assert_events(&events(&out), &want);
    let replay = check_anthropic(&out);
    assert_eq!(
        replay.message["content"][0]["input"],
        json!({"city": "Paris"})
    );
    assert_eq!(replay.message["content"][1]["input"], json!({}));
}

#[test]
fn golden_anthropic_canonical_to_openai() {
    let mut c = ctx(Dialect::OpenAi, Dialect::Anthropic, true, true);
    c.include_usage = true;
    let (out, r, usage) = run(c, &[&anthropic_canonical()]);
    r.unwrap();
    let id = "chatcmpl-msg_1";
    let want = vec![
        o(id, json!({"role":"assistant","content":""}), None, true),
        o(id, json!({"reasoning_content":"Let me…"}), None, true),
        o(
            id,
            json!({"reasoning_details":[{"type":"reasoning.text","text":"","signature":"EqQB…","format":"anthropic-claude-v1","index":0}]}),
            None,
            true,
        ),
        o(id, json!({"content":"I'll check."}), None, true),
        o(
            id,
            json!({"tool_calls":[{"index":0,"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":""}}]}),
            None,
            true,
        ),
        o(
            id,
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Paris\"}"}}]}),
            None,
            true,
        ),
        o(id, json!({}), Some("tool_calls"), true),
        o_usage(
            id,
            json!({"prompt_tokens":2060,"completion_tokens":87,"total_tokens":2147,
            "prompt_tokens_details":{"cached_tokens":2048},"completion_tokens_details":{"reasoning_tokens":0}}),
        ),
        done(),
    ];
    assert_events(&events(&out), &want);
    let replay = check_openai(&out, true);
    assert_eq!(replay.tool_calls[0].2, "{\"city\": \"Paris\"}");
    assert_eq!(
        usage,
        Usage {
            input: 12,
            cache_read: 2048,
            cache_write: 0,
            reasoning: 0,
            output: 87
        }
    );
}

#[test]
fn golden_anthropic_to_openai_without_usage_chunk() {
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&anthropic_canonical()],
    );
    r.unwrap();
    let replay = check_openai(&out, false);
    assert_eq!(replay.finish_reason.as_deref(), Some("tool_calls"));
    assert!(!String::from_utf8(out).unwrap().contains("\"usage\""));
}

#[test]
fn golden_gemini_to_openai() {
    let mut c = ctx(Dialect::OpenAi, Dialect::Gemini, true, true);
    c.include_usage = true;
    let (out, r, usage) = run(c, &[&gemini_thought_text_call()]);
    r.unwrap();
    let evs = events(&out);
    let call_id = evs[3].1["choices"][0]["delta"]["tool_calls"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        call_id.starts_with("call_") && call_id.len() == 21,
        "{call_id}"
    );
    let id = "chatcmpl-r1";
    let want = vec![
        o(id, json!({"role":"assistant","content":""}), None, true),
        o(
            id,
            json!({"reasoning_content":"Thinking about it"}),
            None,
            true,
        ),
        o(id, json!({"content":"Let me check."}), None, true),
        o(
            id,
            json!({"tool_calls":[{"index":0,"id":call_id,"type":"function","function":{"name":"get_weather","arguments":""}}],
            "reasoning_details":[{"type":"reasoning.encrypted","data":mint(ORIGIN, "c2ln"),"id":call_id,"format":"google-gemini-v1","index":0}]}),
            None,
            true,
        ),
        o(
            id,
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":\"Paris\"}"}}]}),
            None,
            true,
        ),
        o(id, json!({}), Some("tool_calls"), true),
        o_usage(
            id,
            json!({"prompt_tokens":50,"completion_tokens":15,"total_tokens":65,
            "prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":5}}),
        ),
        done(),
    ];
    assert_events(&evs, &want);
    check_openai(&out, true);
    assert_eq!(
        usage,
        Usage {
            input: 50,
            cache_read: 0,
            cache_write: 0,
            reasoning: 5,
            output: 15
        }
    );
}

#[test]
fn golden_gemini_to_anthropic() {
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, true, true),
        &[&gemini_thought_text_call()],
    );
    r.unwrap();
    let evs = events(&out);
    let call_id = evs[11].1["content_block"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut want = vec![
        msg_start("msg_r1", 50, 0, 0),
        start(0, json!({"type":"thinking","thinking":"","signature":""})),
        delta(
            0,
            json!({"type":"thinking_delta","thinking":"Thinking about it"}),
        ),
        delta(
            0,
            json!({"type":"signature_delta","signature": mint(ORIGIN, "")}),
        ),
        stop(0),
        start(1, json!({"type":"text","text":""})),
        delta(1, json!({"type":"text_delta","text":"Let me check."})),
        stop(1),
        // The call's thoughtSignature rides on a thinking block right before the tool_use.
        start(2, json!({"type":"thinking","thinking":"","signature":""})),
        delta(
            2,
            json!({"type":"signature_delta","signature": mint(ORIGIN, "c2ln")}),
        ),
        stop(2),
        start(
            3,
            json!({"type":"tool_use","id":call_id,"name":"get_weather","input":{}}),
        ),
        delta(
            3,
            json!({"type":"input_json_delta","partial_json":"{\"city\":\"Paris\"}"}),
        ),
        stop(3),
    ];
    want.extend(msg_end("tool_use", 50, 0, 15));
    assert_events(&evs, &want);
    let replay = check_anthropic(&out);
    assert_eq!(
        replay.message["content"][3]["input"],
        json!({"city":"Paris"})
    );
}

#[test]
fn golden_gemini_thought_signed_directly_when_the_call_follows_the_thought() {
    let body = sse_data(&[
        json!({"candidates":[{"content":{"parts":[{"text":"plan","thought":true}]}}],"responseId":"r2"}),
        json!({"candidates":[{"content":{"parts":[{"functionCall":{"id":"fc1","name":"ls","args":{}},"thoughtSignature":"U0lH"}]},"finishReason":"STOP"}]}),
    ]);
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, true, true),
        &[&body],
    );
    r.unwrap();
    let evs = events(&out);
    let mut want = vec![
        msg_start("msg_r2", 0, 0, 0),
        start(0, json!({"type":"thinking","thinking":"","signature":""})),
        delta(0, json!({"type":"thinking_delta","thinking":"plan"})),
        delta(
            0,
            json!({"type":"signature_delta","signature": mint(ORIGIN, "U0lH")}),
        ),
        stop(0),
        start(
            1,
            json!({"type":"tool_use","id":"fc1","name":"ls","input":{}}),
        ),
        delta(1, json!({"type":"input_json_delta","partial_json":"{}"})),
        stop(1),
    ];
    // No usage reported: the output is estimated from the bytes emitted (pitfall 12).
    want.extend(msg_end("tool_use", 0, 0, 2));
    assert_events(&evs, &want);
    check_anthropic(&out);
}

#[test]
fn golden_passthrough_openai_drops_gateway_usage_chunk() {
    let body = openai_tools_canonical();
    let (out, r, usage) = run(
        crate::ResponseContext::passthrough(Dialect::OpenAi, "m", true),
        &[&body],
    );
    r.unwrap();
    let mut want = events(&body);
    want.retain(|(_, v)| {
        v.get("choices")
            .and_then(Value::as_array)
            .is_none_or(|c| !c.is_empty())
    });
    assert_eq!(events(&out), want);
    check_openai(&out, false);
    assert_eq!(usage.cache_read, 64);
    assert_eq!(usage.output, 40);
    // When the client asked for it, the bytes are identical.
    let mut c = crate::ResponseContext::passthrough(Dialect::OpenAi, "m", true);
    c.include_usage = true;
    let (out, _, _) = run(c, &[&body]);
    assert_eq!(out, body);
}

#[test]
fn golden_passthrough_anthropic_is_byte_identical_and_reads_usage() {
    let body = anthropic_canonical();
    let (out, r, usage) = run(
        crate::ResponseContext::passthrough(Dialect::Anthropic, "m", true),
        &[&body[..100], &body[100..]],
    );
    r.unwrap();
    assert_eq!(out, body);
    assert_eq!(
        usage,
        Usage {
            input: 12,
            cache_read: 2048,
            cache_write: 0,
            reasoning: 0,
            output: 87
        }
    );
    let body = gemini_thought_text_call();
    let (out, _, usage) = run(
        crate::ResponseContext::passthrough(Dialect::Gemini, "m", true),
        &[&body],
    );
    assert_eq!(out, body);
    assert_eq!(usage.output, 15);
}

#[test]
fn golden_passthrough_json_is_unchanged() {
    let body = br#"{"id":"chatcmpl-9","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#;
    let (out, r, usage) = run(
        crate::ResponseContext::passthrough(Dialect::OpenAi, "m", false),
        &[&body[..10], &body[10..]],
    );
    r.unwrap();
    assert_eq!(out, body);
    assert_eq!((usage.input, usage.output), (5, 1));
}

// ---- stream -> non-stream (§3.5) ----

#[test]
fn stream_to_json_openai_upstream_anthropic_client() {
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, false, true),
        &[&openai_reasoning_text()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"id":"msg_1","type":"message","role":"assistant","model":"client-model",
            "content":[{"type":"thinking","thinking":"Let me think hard.","signature":mint(ORIGIN, "")},
                       {"type":"text","text":"Hello world"}],
            "stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":26,"cache_creation_input_tokens":0,"cache_read_input_tokens":64,"output_tokens":40}})
    );
}

#[test]
fn stream_to_json_anthropic_upstream_openai_client() {
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, false, true),
        &[&anthropic_canonical()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"id":"chatcmpl-msg_1","object":"chat.completion","created":CREATED,"model":"client-model",
            "choices":[{"index":0,"logprobs":null,"finish_reason":"tool_calls","message":{
                "role":"assistant","content":"I'll check.","refusal":null,"reasoning_content":"Let me…",
                "reasoning_details":[{"type":"reasoning.text","text":"Let me…","signature":"EqQB…","format":"anthropic-claude-v1","index":0}],
                "tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]}}],
            "usage":{"prompt_tokens":2060,"completion_tokens":87,"total_tokens":2147,
                "prompt_tokens_details":{"cached_tokens":2048},"completion_tokens_details":{"reasoning_tokens":0}}})
    );
}

#[test]
fn stream_to_json_same_dialect_openai() {
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::OpenAi, false, true),
        &[&openai_tools_canonical()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(m["tool_calls"][1]["function"]["arguments"], "{}");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 90);
    assert!(!String::from_utf8(out).unwrap().contains("[DONE]"));
}

#[test]
fn stream_to_json_gemini_to_anthropic_and_openai() {
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, false, true),
        &[&gemini_thought_text_call()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let content = v["content"].as_array().unwrap();
    let types: Vec<&str> = content
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["thinking", "text", "thinking", "tool_use"]);
    assert_eq!(content[2]["signature"], mint(ORIGIN, "c2ln"));
    assert_eq!(content[0]["signature"], mint(ORIGIN, ""));
    assert_eq!(v["stop_reason"], "tool_use");
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Gemini, false, true),
        &[&gemini_thought_text_call()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(m["reasoning_content"], "Thinking about it");
    assert_eq!(m["content"], "Let me check.");
    assert_eq!(
        m["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    let sig = m["reasoning_details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["type"] == "reasoning.encrypted")
        .unwrap();
    assert_eq!(sig["id"], m["tool_calls"][0]["id"]);
    assert_eq!(sig["data"], mint(ORIGIN, "c2ln"));
}

// ---- non-stream -> stream (§3.5) ----

#[test]
fn json_to_stream_anthropic_body_to_openai_client() {
    let body = br#"{"id":"msg_7","type":"message","role":"assistant","model":"claude","content":[
        {"type":"thinking","thinking":"hmm","signature":"SIG"},
        {"type":"text","text":"Sure."},
        {"type":"tool_use","id":"toolu_9","name":"run","input":{"cmd":"ls"}},
        {"type":"tool_use","id":"toolu_10","name":"noargs","input":{}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":10,"cache_creation_input_tokens":5,"cache_read_input_tokens":20,"output_tokens":30}}"#;
    let mut c = ctx(Dialect::OpenAi, Dialect::Anthropic, true, false);
    c.include_usage = true;
    let mut t = super::build(c, CREATED, SEED);
    let mut out = Vec::new();
    t.push(body, &mut out);
    assert!(out.is_empty(), "nothing before the body is complete");
    t.finish(&mut out).unwrap();
    let replay = check_openai(&out, true);
    assert_eq!(replay.content.as_deref(), Some("Sure."));
    assert_eq!(replay.reasoning.as_deref(), Some("hmm"));
    assert_eq!(
        replay.tool_calls[0],
        ("toolu_9".into(), "run".into(), "{\"cmd\":\"ls\"}".into())
    );
    assert_eq!(replay.tool_calls[1].2, "{}");
    assert_eq!(replay.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(replay.usage.unwrap()["prompt_tokens"], 35);
}

#[test]
fn json_to_stream_openai_body_to_anthropic_client() {
    let body = br#"{"id":"chatcmpl-5","object":"chat.completion","created":3,"model":"gpt","choices":[{"index":0,
        "message":{"role":"assistant","content":"","reasoning_content":"think","tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"f","arguments":"{\"a\":1}"}},
            {"id":"call_2","type":"function","function":{"name":"g","arguments":""}}]},
        "finish_reason":"tool_calls"}],"usage":{"prompt_tokens":100,"completion_tokens":20,"total_tokens":120,
        "prompt_tokens_details":{"cached_tokens":40}}}"#;
    let (out, r, usage) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, false),
        &[body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    let content = replay.message["content"].as_array().unwrap();
    let types: Vec<&str> = content
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["thinking", "tool_use", "tool_use"]);
    assert_eq!(content[1]["input"], json!({"a":1}));
    assert_eq!(content[2]["input"], json!({}));
    assert_eq!(replay.message["stop_reason"], "tool_use");
    assert_eq!(replay.message["usage"]["input_tokens"], 60);
    assert_eq!(replay.message["usage"]["cache_read_input_tokens"], 40);
    assert_eq!(usage.output, 20);
}

#[test]
fn json_to_stream_gemini_body_to_anthropic_client() {
    let body = br#"{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi there"}]},"finishReason":"MAX_TOKENS","index":0}],
        "usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":3,"totalTokenCount":10},"responseId":"g1"}"#;
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, true, false),
        &[body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    assert_eq!(
        replay.message["content"],
        json!([{"type":"text","text":"Hi there"}])
    );
    assert_eq!(replay.message["stop_reason"], "max_tokens");
    assert_eq!(replay.message["usage"]["output_tokens"], 3);
}

// ---- non-stream -> non-stream ----

#[test]
fn json_to_json_openai_to_anthropic() {
    let body = br#"{"id":"chatcmpl-5","object":"chat.completion","created":3,"model":"gpt","choices":[{"index":0,
        "message":{"role":"assistant","content":"Hello","refusal":null},"finish_reason":"length"}],
        "usage":{"prompt_tokens":10,"completion_tokens":2,"total_tokens":12}}"#;
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, false, false),
        &[body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v,
        json!({"id":"msg_5","type":"message","role":"assistant","model":"client-model",
            "content":[{"type":"text","text":"Hello"}],"stop_reason":"max_tokens","stop_sequence":null,
            "usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2}})
    );
}

/// Tool arguments as a string, an object (some vendors), null and invalid text: Anthropic
/// `input` is always an object, and valid argument text is passed on as written.
#[test]
fn json_to_json_openai_tool_arguments_to_anthropic_input() {
    let body = br#"{"id":"chatcmpl-6","choices":[{"index":0,"message":{"role":"assistant","content":null,
        "tool_calls":[
            {"id":"c1","type":"function","function":{"name":"f","arguments":"{\"b\": 1, \"a\": [2]}"}},
            {"id":"c2","type":"function","function":{"name":"f","arguments":{"city":"Paris"}}},
            {"id":"c3","type":"function","function":{"name":"f","arguments":null}},
            {"id":"c4","type":"function","function":{"name":"f","arguments":"{bad"}}]},
        "finish_reason":"tool_calls"}]}"#;
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, false, false),
        &[body],
    );
    r.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains(r#""input":{"b": 1, "a": [2]}"#), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    let inputs: Vec<&Value> = v["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["input"])
        .collect();
    assert_eq!(
        inputs,
        [
            &json!({"a": [2], "b": 1}),
            &json!({"city": "Paris"}),
            &json!({}),
            &json!({"_raw": "{bad"})
        ]
    );
    assert_eq!(v["stop_reason"], "tool_use");
}

#[test]
fn json_to_json_anthropic_to_openai_with_stop_sequence_and_redacted() {
    let body = br#"{"id":"msg_8","type":"message","role":"assistant","model":"claude","content":[
        {"type":"redacted_thinking","data":"ENC"},{"type":"text","text":"Done"}],
        "stop_reason":"stop_sequence","stop_sequence":"END",
        "usage":{"input_tokens":1,"output_tokens":2}}"#;
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, false, false),
        &[body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], "Done");
    assert_eq!(m["reasoning_details"][0]["type"], "reasoning.encrypted");
    assert_eq!(m["reasoning_details"][0]["data"], "ENC");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 3);
}

#[test]
fn json_to_json_anthropic_refusal_to_openai_content_filter() {
    let body = br#"{"id":"msg_8","type":"message","role":"assistant","model":"claude","content":[
        {"type":"text","text":"I can't help with that."}],"stop_reason":"refusal","stop_sequence":null,
        "usage":{"input_tokens":1,"output_tokens":2}}"#;
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, false, false),
        &[body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
}

#[test]
fn json_to_json_gemini_blocked_prompt() {
    let body = br#"{"promptFeedback":{"blockReason":"SAFETY","safetyRatings":[]},"usageMetadata":{"promptTokenCount":8,"totalTokenCount":8}}"#;
    let (out, r, usage) = run(ctx(Dialect::OpenAi, Dialect::Gemini, false, false), &[body]);
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "content_filter");
    let m = &v["choices"][0]["message"];
    assert_eq!(m["content"], Value::Null);
    assert!(m["refusal"].as_str().unwrap().contains("SAFETY"));
    assert_eq!(usage.input, 8);
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, false, false),
        &[body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["stop_reason"], "refusal");
    assert_eq!(v["stop_details"]["type"], "refusal");
    assert_eq!(v["content"][0]["type"], "text");
    // And as a stream.
    let stream = sse_data(&[serde_json::from_slice(body).unwrap()]);
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, true, true),
        &[&stream],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    assert_eq!(replay.message["stop_reason"], "refusal");
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Gemini, true, true),
        &[&stream],
    );
    r.unwrap();
    let replay = check_openai(&out, false);
    assert_eq!(replay.finish_reason.as_deref(), Some("content_filter"));
    assert!(replay.refusal.unwrap().contains("SAFETY"));
}

#[test]
fn json_to_json_gemini_to_openai_and_anthropic() {
    let body = br#"{"candidates":[{"content":{"role":"model","parts":[
        {"text":"ponder","thought":true},{"text":"Answer"},
        {"functionCall":{"id":"f1","name":"short_x","args":{"q":"1"}},"thoughtSignature":"QUJD"}]},
        "finishReason":"STOP","index":0}],
        "usageMetadata":{"promptTokenCount":100,"cachedContentTokenCount":60,"candidatesTokenCount":10,"thoughtsTokenCount":4,"totalTokenCount":114},
        "responseId":"gg"}"#;
    let mut c = ctx(Dialect::OpenAi, Dialect::Gemini, false, false);
    c.tool_names
        .insert("short_x".into(), "a_very_long_original_tool_name".into());
    let (out, r, usage) = run(c.clone(), &[body]);
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    let m = &v["choices"][0]["message"];
    assert_eq!(
        m["tool_calls"][0]["function"]["name"],
        "a_very_long_original_tool_name"
    );
    assert_eq!(m["tool_calls"][0]["id"], "f1");
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["usage"]["prompt_tokens"], 100);
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 60);
    assert_eq!(v["usage"]["completion_tokens"], 14);
    assert_eq!(
        usage,
        Usage {
            input: 40,
            cache_read: 60,
            cache_write: 0,
            reasoning: 4,
            output: 14
        }
    );
    c.client = Dialect::Anthropic;
    let (out, r, _) = run(c, &[body]);
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["content"][0],
        json!({"type":"thinking","thinking":"ponder","signature":mint(ORIGIN, "")})
    );
    assert_eq!(v["content"][1], json!({"type":"text","text":"Answer"}));
    assert_eq!(
        v["content"][2],
        json!({"type":"thinking","thinking":"","signature":mint(ORIGIN, "QUJD")})
    );
    assert_eq!(v["content"][3]["name"], "a_very_long_original_tool_name");
    assert_eq!(v["usage"]["input_tokens"], 40);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 60);
}

#[test]
fn json_upstream_error_envelope_and_garbage_fail_finish() {
    let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, false, false),
        &[body],
    );
    let e = r.unwrap_err();
    assert_eq!(e.kind, crate::ErrorKind::Overloaded);
    assert!(out.is_empty());
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, false),
        &[b"<html>"],
    );
    assert_eq!(r.unwrap_err().kind, crate::ErrorKind::BadGateway);
    assert!(out.is_empty());
}

#[test]
fn gemini_client_gets_gemini_chunks_from_an_anthropic_upstream() {
    let (out, r, _) = run(
        ctx(Dialect::Gemini, Dialect::Anthropic, true, true),
        &[&anthropic_canonical()],
    );
    r.unwrap();
    let evs = events(&out);
    let last = &evs.last().unwrap().1;
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["promptTokenCount"], 2060);
    let call = evs
        .iter()
        .find_map(|(_, v)| {
            v["candidates"][0]["content"]["parts"][0]
                .get("functionCall")
                .cloned()
        })
        .unwrap();
    assert_eq!(call["args"], json!({"city":"Paris"}));
    let (out, r, _) = run(
        ctx(Dialect::Gemini, Dialect::Anthropic, false, true),
        &[&anthropic_canonical()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][1]["text"],
        "I'll check."
    );
}
