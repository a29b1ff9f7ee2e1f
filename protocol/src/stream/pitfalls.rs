//! One test per response-side pitfall of protocols.md §4 (plus the stream-end and tool-trick
//! rules of §2.7 / §3), each replayed through the strict client checkers.

use serde_json::{json, Value};

use super::checkers::*;
use super::golden::{
    anthropic_canonical, gemini_thought_text_call, openai_reasoning_text, openai_tools_canonical,
};
use crate::signature::mint;
use crate::{ApiError, Dialect, ErrorKind};

const ORIGIN: &str = "prov/up-model";

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"up",
        "choices":[{"index":0,"delta":delta,"finish_reason":finish}]})
}

fn o_stream(items: &[Value], done: bool) -> Vec<u8> {
    let mut b = sse_data(items);
    if done {
        b.extend_from_slice(b"data: [DONE]\n\n");
    }
    b
}

fn to_anthropic(body: &[u8]) -> (Vec<u8>, AnthropicReplay) {
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    (out, replay)
}

fn block_types(m: &Value) -> Vec<String> {
    m["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap().to_string())
        .collect()
}

fn count(out: &[u8], needle: &str) -> usize {
    String::from_utf8_lossy(out).matches(needle).count()
}

#[test]
fn pitfall_1_every_delta_targets_the_open_block_and_every_event_is_named() {
    // Text, tool, then text again after the tool (some vendors do).
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"Checking"}), None),
            chunk(
                json!({"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"a","arguments":"{\"x\""}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}}]}),
                None,
            ),
            chunk(json!({"content":" more"}), None),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let (out, replay) = to_anthropic(&body);
    assert_eq!(
        block_types(&replay.message),
        ["text", "tool_use", "tool_use", "text"]
    );
    assert_eq!(replay.message["content"][1]["input"], json!({"x":1}));
    for (name, _) in events(&out) {
        assert!(!name.is_empty());
    }
    // Fragments for a call whose block was already closed (interleaved parallel calls, which
    // OpenAI never sends) are dropped rather than sent as a delta for a closed block.
    let body = o_stream(
        &[
            chunk(
                json!({"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"a","arguments":"{}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls":[{"index":1,"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":" "}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let (out, _) = to_anthropic(&body);
    assert_eq!(count(&out, "input_json_delta"), 2);
}

#[test]
fn pitfall_2_reasoning_never_lands_in_a_text_block_and_message_start_is_sent_once() {
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"Intro. "}), None),
            chunk(
                json!({"role":"assistant","reasoning_content":"wait, think"}),
                None,
            ),
            chunk(json!({"role":"assistant","content":"Result."}), None),
            chunk(json!({}), Some("stop")),
        ],
        true,
    );
    let (out, replay) = to_anthropic(&body);
    assert_eq!(block_types(&replay.message), ["text", "thinking", "text"]);
    assert_eq!(count(&out, "event: message_start"), 1);
    assert_eq!(replay.message["content"][1]["thinking"], "wait, think");
}

#[test]
fn pitfall_3_no_empty_or_whitespace_text_blocks() {
    // content:"" with tool calls, and a whitespace-only content delta before the calls.
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":""}), None),
            chunk(json!({"content":"\n\n"}), None),
            chunk(
                json!({"content":null,"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"ls","arguments":"{}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    assert_eq!(block_types(&replay.message), ["tool_use"]);
    // Leading whitespace before real text is kept, inside the text block.
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"\n"}), None),
            chunk(json!({"content":"Hi"}), None),
            chunk(json!({}), Some("stop")),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    assert_eq!(
        replay.message["content"],
        json!([{"type":"text","text":"\nHi"}])
    );
    // Non-stream: the same rule.
    let body = br#"{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"  ","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"tool_calls"}]}"#;
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, false, false),
        &[body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(block_types(&v), ["tool_use"]);
}

#[test]
fn pitfall_4_repeated_finish_reason_closes_once() {
    let body = o_stream(
        &[
            chunk(
                json!({"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"sh","arguments":"{\"command\":\"ls\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            // A gateway in front repeats finish_reason on the usage chunk.
            json!({"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"up",
                "choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],
                "usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}),
        ],
        true,
    );
    let (out, replay) = to_anthropic(&body);
    assert_eq!(count(&out, "event: message_delta"), 1);
    assert_eq!(count(&out, "event: message_stop"), 1);
    assert_eq!(
        replay.message["content"][0]["input"],
        json!({"command":"ls"})
    );
    assert_eq!(replay.message["usage"]["output_tokens"], 3);
    // And towards an OpenAI client from Anthropic: one finish chunk.
    let (out, _, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&anthropic_canonical()],
    );
    assert_eq!(count(&out, "\"finish_reason\":\"tool_calls\""), 1);
}

#[test]
fn pitfall_5_tool_input_is_never_both_in_the_start_and_in_deltas() {
    // Whole call in one chunk (Gemini-compat, xAI): start with input {} + one delta.
    let body = o_stream(
        &[chunk(
            json!({"role":"assistant","tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"a\":[1,2]}"}}]}),
            Some("tool_calls"),
        )],
        true,
    );
    let (out, replay) = to_anthropic(&body);
    assert_eq!(replay.message["content"][0]["input"], json!({"a":[1,2]}));
    assert_eq!(count(&out, "input_json_delta"), 1);
    // An Anthropic-compatible upstream that fills `input` in the start and streams deltas too:
    // the client still sees the arguments once.
    let body = sse(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":1,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"f","input":{"a":1}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":1}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_openai(&out, false);
    assert_eq!(replay.tool_calls[0].2, "{\"a\":1}");
}

#[test]
fn pitfall_6_missing_tool_call_index_is_assigned_by_id() {
    let body = o_stream(
        &[
            chunk(
                json!({"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}}]}),
                None,
            ),
            chunk(
                json!({"tool_calls":[{"id":"c2","type":"function","function":{"name":"b","arguments":"{}"}},
                                        {"id":"c3","type":"function","function":{"name":"c","arguments":"{\"y\":2}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    let c = &replay.message["content"];
    assert_eq!(
        block_types(&replay.message),
        ["tool_use", "tool_use", "tool_use"]
    );
    assert_eq!(
        (c[0]["id"].clone(), c[0]["input"].clone()),
        (json!("c1"), json!({"x":1}))
    );
    assert_eq!(
        (c[2]["id"].clone(), c[2]["input"].clone()),
        (json!("c3"), json!({"y":2}))
    );
    // Towards an OpenAI client every tool-call delta carries its index.
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Gemini, true, true),
        &[&gemini_thought_text_call()],
    );
    r.unwrap();
    for (_, v) in events(&out) {
        for tc in v["choices"][0]["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(tc["index"].is_u64());
        }
    }
}

#[test]
fn pitfall_7_duplicate_entries_for_one_index_in_a_chunk_are_coalesced() {
    let body = o_stream(
        &[
            chunk(
                json!({"role":"assistant","tool_calls":[
                {"index":0,"id":"c1","type":"function","function":{"name":"grep","arguments":""}},
                {"index":0,"function":{"arguments":"{\"q\":"}},
                {"index":0,"id":"c1","function":{"arguments":"\"x\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    assert_eq!(block_types(&replay.message), ["tool_use"]);
    assert_eq!(replay.message["content"][0]["input"], json!({"q":"x"}));
}

#[test]
fn pitfall_8_multibyte_utf8_split_across_reads_survives() {
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"héllo 😀 日本"}), None),
            chunk(
                json!({"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{\"s\":\"ü😀\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let whole = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&body],
    )
    .0;
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    let split = run(ctx(Dialect::Anthropic, Dialect::OpenAi, true, true), &bytes).0;
    assert_eq!(whole, split);
    let replay = check_anthropic(&split);
    assert_eq!(replay.message["content"][0]["text"], "héllo 😀 日本");
    assert_eq!(replay.message["content"][1]["input"], json!({"s":"ü😀"}));
    assert!(!String::from_utf8(split).unwrap().contains('\u{fffd}'));
}

#[test]
fn pitfall_9_message_start_has_every_usage_field_and_message_delta_the_real_numbers() {
    let (out, replay) = to_anthropic(&openai_reasoning_text());
    let evs = events(&out);
    let start_usage = &evs[0].1["message"]["usage"];
    for f in [
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ] {
        assert!(start_usage[f].is_u64(), "{f}");
    }
    let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
    assert_eq!(
        delta["usage"],
        json!({"input_tokens":26,"cache_creation_input_tokens":0,"cache_read_input_tokens":64,"output_tokens":40})
    );
    assert_eq!(replay.message["usage"]["cache_read_input_tokens"], 64);
}

#[test]
fn pitfall_10_mid_stream_error_has_the_error_object_shape() {
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"partial"}), None),
            json!({"error":{"message":"Upstream overloaded","type":"server_error","code":null,"param":null}}),
        ],
        false,
    );
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    let err = replay.error.expect("error event");
    assert_eq!(err["type"], "error");
    assert_eq!(err["error"]["message"], "Upstream overloaded");
    assert!(err["error"]["type"].is_string());
    assert!(!replay.stopped, "no message_stop after an error");
    // content_filter maps to refusal (not stop_sequence), and prompt tokens exclude cached ones.
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"I can't"}), None),
            chunk(json!({}), Some("content_filter")),
            json!({"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"up","choices":[],
                "usage":{"prompt_tokens":100,"completion_tokens":2,"total_tokens":102,"prompt_tokens_details":{"cached_tokens":80}}}),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    assert_eq!(replay.message["stop_reason"], "refusal");
    assert_eq!(replay.message["usage"]["input_tokens"], 20);
    assert_eq!(replay.message["usage"]["cache_read_input_tokens"], 80);
    // An Anthropic upstream error towards an OpenAI client: data: {"error":{…}} then [DONE].
    let body = sse(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":1,"output_tokens":1}}}"#,
        ),
        (
            "error",
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    ]);
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_openai(&out, false);
    let e = replay.error.unwrap();
    assert_eq!(e["error"]["message"], "Overloaded");
    assert_eq!(e["error"]["type"], "server_error");
    assert!(replay.done);
}

#[test]
fn pitfall_12_usage_is_estimated_when_the_upstream_never_reports_output() {
    // Gemini stream cut before its last chunk: prompt-only usage, no finishReason.
    let evs_in = events(&gemini_thought_text_call());
    assert_eq!(evs_in.len(), 3);
    let first_two: Vec<Value> = evs_in[..2].iter().map(|(_, v)| v.clone()).collect();
    let body = sse_data(&first_two);
    let (out, r, usage) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    assert!(
        replay.error.is_some(),
        "a cut stream is an error, not a silent end_turn"
    );
    assert_eq!(usage.input, 50);
    assert!(usage.output > 0, "output estimated from the streamed text");
    // OpenAI-compatible upstream that sends no usage at all.
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","content":"twelve bytes"}), None),
            chunk(json!({}), Some("stop")),
        ],
        true,
    );
    let (_, r, usage) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&body],
    );
    r.unwrap();
    assert_eq!(usage.output, 3);
}

#[test]
fn pitfall_13_a_json_client_gets_json_and_never_done() {
    let mut t = super::build(
        ctx(Dialect::OpenAi, Dialect::Anthropic, false, true),
        CREATED,
        SEED,
    );
    let mut out = Vec::new();
    t.push(&anthropic_canonical(), &mut out);
    assert!(out.is_empty(), "nothing is streamed to a JSON client");
    t.finish(&mut out).unwrap();
    let s = String::from_utf8(out).unwrap();
    assert!(!s.contains("[DONE]") && !s.starts_with("data:"));
    let v: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v["object"], "chat.completion");
}

#[test]
fn pitfall_22_trailing_signature_delta_is_kept() {
    // OpenRouter: the signature arrives in a separate trailing reasoning_details delta.
    let body = o_stream(
        &[
            chunk(
                json!({"role":"assistant","reasoning":"step 1","reasoning_details":[{"type":"reasoning.text","text":"step 1","format":"anthropic-claude-v1","index":0}]}),
                None,
            ),
            chunk(
                json!({"reasoning_details":[{"type":"reasoning.text","signature":"RealSig","format":"anthropic-claude-v1","index":0}]}),
                None,
            ),
            chunk(json!({"content":"Answer"}), None),
            chunk(json!({}), Some("stop")),
        ],
        true,
    );
    let (out, replay) = to_anthropic(&body);
    assert_eq!(count(&out, "signature_delta"), 1);
    assert_eq!(
        replay.message["content"][0]["thinking"], "step 1",
        "reasoning not doubled"
    );
    assert_eq!(
        replay.message["content"][0]["signature"],
        mint(ORIGIN, "RealSig")
    );
    // Anthropic upstream, stream -> JSON for an Anthropic client: the native signature survives.
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Anthropic, false, true),
        &[&anthropic_canonical()],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["content"][0],
        json!({"type":"thinking","thinking":"Let me…","signature":"EqQB…"})
    );
    assert_eq!(v["content"][2]["input"], json!({"city":"Paris"}));
}

#[test]
fn pitfall_24_thinking_block_comes_before_tool_use_and_is_signed() {
    let body = o_stream(
        &[
            chunk(
                json!({"role":"assistant","reasoning_content":"I should list files"}),
                None,
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"id":"functions.Bash:0","type":"function","function":{"name":"Bash","arguments":"{\"cmd\":\"ls\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    let c = &replay.message["content"];
    assert_eq!(block_types(&replay.message), ["thinking", "tool_use"]);
    assert_eq!(c[0]["signature"], mint(ORIGIN, ""));
    // pitfall 16 along the way: Kimi-style ids are sanitized for Anthropic clients.
    assert_eq!(c[1]["id"], "functions_Bash_0");
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, false, true),
        &[&body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(block_types(&v), ["thinking", "tool_use"]);
    assert_eq!(v["content"][1]["id"], "functions_Bash_0");
}

#[test]
fn pitfall_26_gemini_thought_signatures_on_function_calls_are_carried() {
    // Parallel calls: only the first carries the signature.
    let body = sse_data(&[json!({"candidates":[{"content":{"role":"model","parts":[
        {"functionCall":{"name":"a","args":{"x":1}},"thoughtSignature":"Rmlyc3Q="},
        {"functionCall":{"name":"b","args":{}}}]},"finishReason":"STOP"}],"responseId":"p"})]);
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Gemini, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    assert_eq!(
        block_types(&replay.message),
        ["thinking", "tool_use", "tool_use"]
    );
    assert_eq!(
        replay.message["content"][0]["signature"],
        mint(ORIGIN, "Rmlyc3Q=")
    );
    assert_eq!(
        crate::signature::parse(replay.message["content"][0]["signature"].as_str().unwrap()),
        Some((ORIGIN.to_string(), "Rmlyc3Q=".to_string()))
    );
    let (out, r, _) = run(ctx(Dialect::OpenAi, Dialect::Gemini, true, true), &[&body]);
    r.unwrap();
    let replay = check_openai(&out, false);
    assert_eq!(replay.reasoning_details.len(), 1);
    assert_eq!(
        replay.reasoning_details[0]["id"],
        json!(replay.tool_calls[0].0)
    );
    assert_eq!(
        replay.reasoning_details[0]["data"],
        mint(ORIGIN, "Rmlyc3Q=")
    );
    assert_ne!(
        replay.tool_calls[0].0, replay.tool_calls[1].0,
        "synthesized ids are distinct"
    );
}

// ---- stream ends, errors, rewrites ----

#[test]
fn upstream_eof_without_finish_is_an_error_event_not_end_turn() {
    let body = o_stream(
        &[chunk(
            json!({"role":"assistant","content":"Half an ans"}),
            None,
        )],
        false,
    );
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    assert!(replay.error.is_some());
    assert!(!String::from_utf8_lossy(&out).contains("end_turn"));
    // Anthropic upstream cut mid-block, towards an OpenAI client.
    let full = anthropic_canonical();
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&full[..full.len() / 2]],
    );
    r.unwrap();
    let replay = check_openai(&out, false);
    assert!(replay.error.is_some() && replay.finish_reason.is_none());
    // A JSON client gets the error from finish().
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, false, true),
        &[&full[..full.len() / 2]],
    );
    assert_eq!(r.unwrap_err().kind, ErrorKind::BadGateway);
    assert!(out.is_empty());
    // Same-dialect pass-through: bytes forwarded, then an error event.
    let (out, r, _) = run(
        crate::ResponseContext::passthrough(Dialect::Anthropic, "m", true),
        &[&full[..full.len() / 2]],
    );
    r.unwrap();
    assert!(out.starts_with(&full[..full.len() / 2]));
    assert!(String::from_utf8_lossy(&out).ends_with("\"type\":\"error\"}\n\n"));
}

#[test]
fn eof_after_finish_without_done_is_a_normal_end() {
    let body = o_stream(
        &[chunk(
            json!({"role":"assistant","content":"ok"}),
            Some("stop"),
        )],
        false,
    );
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[&body],
    );
    r.unwrap();
    assert!(check_anthropic(&out).stopped);
}

#[test]
fn stream_error_event_for_transport_failures() {
    let e = ApiError::new(ErrorKind::Timeout, "upstream idle timeout");
    let a = crate::stream_error_event(Dialect::Anthropic, &e);
    let evs = events(&a);
    assert_eq!(evs[0].0, "error");
    assert_eq!(
        evs[0].1,
        json!({"type":"error","error":{"type":"timeout_error","message":"upstream idle timeout"}})
    );
    let o = crate::stream_error_event(Dialect::OpenAi, &e);
    let evs = events(&o);
    assert_eq!(evs[0].1["error"]["type"], "server_error");
    assert_eq!(evs[1].1, json!("[DONE]"));
}

#[test]
fn json_tool_trick_becomes_text_and_stop() {
    let body = sse(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_j","usage":{"input_tokens":3,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"json_tool_call","input":{}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"answer\":"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":" 42}"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    let mut c = ctx(Dialect::OpenAi, Dialect::Anthropic, true, true);
    c.json_tool = Some("json_tool_call".into());
    let (out, r, _) = run(c.clone(), &[&body]);
    r.unwrap();
    let replay = check_openai(&out, false);
    assert_eq!(replay.content.as_deref(), Some("{\"answer\": 42}"));
    assert!(replay.tool_calls.is_empty());
    assert_eq!(replay.finish_reason.as_deref(), Some("stop"));
    c.client_stream = false;
    let (out, r, _) = run(c, &[&body]);
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], "{\"answer\": 42}");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
}

#[test]
fn shortened_tool_names_are_restored_in_streams() {
    let mut c = ctx(Dialect::Anthropic, Dialect::OpenAi, true, true);
    c.tool_names.insert(
        "get_weather".into(),
        "mcp__weather__get_weather_for_a_city_with_a_long_name".into(),
    );
    let (out, r, _) = run(c, &[&openai_tools_canonical()]);
    r.unwrap();
    let replay = check_anthropic(&out);
    assert_eq!(
        replay.message["content"][0]["name"],
        "mcp__weather__get_weather_for_a_city_with_a_long_name"
    );
    assert_eq!(replay.message["content"][1]["name"], "get_time");
}

#[test]
fn refusal_deltas_become_text_and_stop_reason_refusal() {
    let body = o_stream(
        &[
            chunk(json!({"role":"assistant","refusal":"I can't help."}), None),
            chunk(json!({}), Some("stop")),
        ],
        true,
    );
    let (_, replay) = to_anthropic(&body);
    assert_eq!(
        replay.message["content"],
        json!([{"type":"text","text":"I can't help."}])
    );
    assert_eq!(replay.message["stop_reason"], "refusal");
}

#[test]
fn keepalives_comments_and_unknown_events_are_ignored() {
    let mut body = b": keepalive\n\n".to_vec();
    body.extend(sse(&[("ping", r#"{"type":"ping"}"#)]));
    body.extend(sse(&[("future_event", r#"{"type":"future_event","x":1}"#)]));
    let canonical = anthropic_canonical();
    body.extend_from_slice(&canonical);
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&body],
    );
    r.unwrap();
    check_openai(&out, false);
    let (out2, _, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&canonical],
    );
    assert_eq!(events(&out), events(&out2));
    // Keep-alives are passed on in the client's dialect.
    assert_eq!(count(&out, ": ping\n\n"), 3);
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::OpenAi, true, true),
        &[b": keepalive\n\n", &openai_reasoning_text()],
    );
    r.unwrap();
    assert!(out.starts_with(b"event: ping\ndata: {\"type\":\"ping\"}\n\n"));
    check_anthropic(&out);
}

#[test]
fn anthropic_client_from_openai_upstream_reasoning_is_signed_parseably() {
    let (_, replay) = to_anthropic(&openai_reasoning_text());
    let sig = replay.message["content"][0]["signature"].as_str().unwrap();
    assert_eq!(
        crate::signature::parse(sig),
        Some((ORIGIN.to_string(), String::new()))
    );
}

#[test]
fn anthropic_thinking_with_only_a_signature_is_kept() {
    // `display:"omitted"`: a thinking block with no thinking deltas, only the signature.
    let body = sse(&[
        (
            "message_start",
            r#"{"type":"message_start","message":{"id":"msg_o","usage":{"input_tokens":1,"output_tokens":1}}}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"OnlySig"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#,
        ),
        (
            "content_block_start",
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":"","signature":""}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"thinking_delta","thinking":"second"}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"signature_delta","signature":"Sig2"}}"#,
        ),
        (
            "content_block_stop",
            r#"{"type":"content_block_stop","index":1}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]);
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Anthropic, false, true),
        &[&body],
    );
    r.unwrap();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        v["content"],
        json!([{"type":"thinking","thinking":"","signature":"OnlySig"},{"type":"thinking","thinking":"second","signature":"Sig2"}])
    );
    let (out, r, _) = run(
        ctx(Dialect::Anthropic, Dialect::Anthropic, true, false),
        &[&out],
    );
    r.unwrap();
    let replay = check_anthropic(&out);
    assert_eq!(replay.message["content"], v["content"]);
    let (out, r, _) = run(
        ctx(Dialect::OpenAi, Dialect::Anthropic, true, true),
        &[&body],
    );
    r.unwrap();
    let replay = check_openai(&out, false);
    assert_eq!(replay.reasoning_details.len(), 2);
    assert_eq!(replay.reasoning_details[0]["signature"], "OnlySig");
}
