//! Test helpers: strict replays of client streams, modelled on the SDK accumulators
//! (anthropic-python `accumulate_event`, openai-python's chat stream state), plus a harness.

use serde_json::{json, Value};

use crate::sse::SseParser;
use crate::{ApiError, Dialect, ResponseContext, Usage};

pub const CREATED: u64 = 1_700_000_000;
pub const SEED: u64 = 42;

/// Runs `chunks` through a translator built with a fixed clock and seed.
pub fn run(ctx: ResponseContext, chunks: &[&[u8]]) -> (Vec<u8>, Result<(), ApiError>, Usage) {
    let mut t = super::build(ctx, CREATED, SEED);
    let mut out = Vec::new();
    for c in chunks {
        t.push(c, &mut out);
    }
    let r = t.finish(&mut out);
    t.settle_usage(&out);
    (out, r, t.usage())
}

/// An SSE body from `(event, data)` pairs (`""` = no event line).
pub fn sse(events: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (e, d) in events {
        if e.is_empty() {
            crate::sse::write_data(&mut out, d.as_bytes());
        } else {
            crate::sse::write_event(&mut out, e, d.as_bytes());
        }
    }
    out
}

/// `data:` lines only, from JSON values (OpenAI / Gemini upstream transcripts).
pub fn sse_data(items: &[Value]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in items {
        crate::sse::write_data(&mut out, v.to_string().as_bytes());
    }
    out
}

/// The events of an SSE body: (event name, data as JSON, or the string `[DONE]`).
pub fn events(body: &[u8]) -> Vec<(String, Value)> {
    let mut p = SseParser::new();
    p.feed(body);
    p.finish();
    let mut v = Vec::new();
    while let Some(e) = p.next_event() {
        if let Some(d) = e.data {
            let value = if d == "[DONE]" {
                Value::String(d.to_string())
            } else {
                serde_json::from_str(d).unwrap_or_else(|err| panic!("bad JSON {d:?}: {err}"))
            };
            v.push((e.event.to_string(), value));
        }
    }
    assert!(p.pending().is_empty(), "trailing bytes");
    v
}

/// What a strict Anthropic client ends up with.
#[derive(Debug)]
pub struct AnthropicReplay {
    pub message: Value,
    pub error: Option<Value>,
    pub stopped: bool,
}

/// Replays an Anthropic stream strictly; panics on the first framing violation.
pub fn check_anthropic(body: &[u8]) -> AnthropicReplay {
    let evs = events(body);
    let mut message: Option<Value> = None;
    let mut open: Option<usize> = None;
    let mut partial = String::new();
    let mut got_delta = false;
    let mut stopped = false;
    let mut error = None;
    for (i, (name, data)) in evs.iter().enumerate() {
        assert!(!name.is_empty(), "event {i} has no `event:` line: {data}");
        assert_eq!(data["type"], json!(name), "event line vs data type at {i}");
        assert!(!stopped && error.is_none(), "event after the end: {name}");
        if name != "message_start" && name != "error" && name != "ping" {
            assert!(message.is_some(), "{name} before message_start");
        }
        match name.as_str() {
            "message_start" => {
                assert!(message.is_none(), "duplicate message_start");
                let m = data["message"].clone();
                assert_eq!(m["content"], json!([]));
                assert!(m["stop_reason"].is_null());
                assert!(m["id"].as_str().unwrap().starts_with("msg_"));
                for f in [
                    "input_tokens",
                    "output_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ] {
                    assert!(m["usage"][f].is_u64(), "message_start usage.{f} missing");
                }
                message = Some(m);
            }
            "ping" => {}
            "content_block_start" => {
                let m = message.as_mut().unwrap();
                assert!(open.is_none(), "block started while block {open:?} is open");
                let content = m["content"].as_array_mut().unwrap();
                let idx = data["index"].as_u64().expect("index") as usize;
                assert_eq!(idx, content.len(), "block index not sequential");
                let block = data["content_block"].clone();
                match block["type"].as_str().unwrap() {
                    "thinking" => {
                        assert_eq!(block["thinking"], "", "thinking start must be empty");
                        assert_eq!(
                            block["signature"], "",
                            "thinking start signature must be empty"
                        );
                    }
                    "tool_use" => {
                        assert_eq!(
                            block["input"],
                            json!({}),
                            "tool_use start input must be {{}}"
                        );
                        let id = block["id"].as_str().unwrap();
                        assert!(
                            !id.is_empty()
                                && id
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                            "bad tool id {id}"
                        );
                    }
                    "text" | "redacted_thinking" => {}
                    t => panic!("unexpected block type {t}"),
                }
                content.push(block);
                open = Some(idx);
                partial.clear();
                got_delta = false;
            }
            "content_block_delta" => {
                let m = message.as_mut().unwrap();
                let idx = data["index"].as_u64().expect("delta without index") as usize;
                assert_eq!(
                    Some(idx),
                    open,
                    "delta for a block that is not open (Content block not found)"
                );
                let block = &mut m["content"][idx];
                let d = &data["delta"];
                let ty = block["type"].as_str().unwrap().to_string();
                match (d["type"].as_str().unwrap(), ty.as_str()) {
                    ("text_delta", "text") => {
                        let t = format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            d["text"].as_str().unwrap()
                        );
                        block["text"] = json!(t);
                    }
                    ("thinking_delta", "thinking") => {
                        assert_eq!(
                            block["signature"], "",
                            "thinking_delta after signature_delta"
                        );
                        let t = format!(
                            "{}{}",
                            block["thinking"].as_str().unwrap(),
                            d["thinking"].as_str().unwrap()
                        );
                        block["thinking"] = json!(t);
                    }
                    ("signature_delta", "thinking") => {
                        assert_eq!(block["signature"], "", "second signature_delta");
                        let s = d["signature"].as_str().unwrap();
                        assert!(!s.is_empty());
                        block["signature"] = json!(s);
                    }
                    ("input_json_delta", "tool_use") => {
                        partial.push_str(d["partial_json"].as_str().unwrap());
                    }
                    (dt, bt) => panic!("Content block is not a {bt} block: got {dt}"),
                }
                got_delta = true;
            }
            "content_block_stop" => {
                let m = message.as_mut().unwrap();
                let idx = data["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(idx), open, "stop for a block that is not open");
                let block = &mut m["content"][idx];
                match block["type"].as_str().unwrap() {
                    "tool_use" => {
                        let input: Value = if partial.is_empty() {
                            json!({})
                        } else {
                            serde_json::from_str(&partial).unwrap_or_else(|e| {
                                panic!("tool input {partial:?} is not JSON: {e}")
                            })
                        };
                        assert!(input.is_object(), "tool input must be an object");
                        block["input"] = input;
                    }
                    "thinking" => {
                        assert_ne!(
                            block["signature"], "",
                            "thinking block stopped without signature_delta"
                        );
                    }
                    "text" => {
                        let t = block["text"].as_str().unwrap();
                        assert!(!t.trim().is_empty(), "empty text block (pitfall 3)");
                    }
                    _ => {}
                }
                let _ = got_delta;
                open = None;
            }
            "message_delta" => {
                assert!(open.is_none(), "message_delta with block {open:?} open");
                let m = message.as_mut().unwrap();
                assert!(
                    !data["delta"]["stop_reason"].is_null(),
                    "message_delta without stop_reason"
                );
                assert!(data["usage"]["output_tokens"].is_u64());
                m["stop_reason"] = data["delta"]["stop_reason"].clone();
                m["stop_sequence"] = data["delta"]["stop_sequence"].clone();
                for (k, v) in data["usage"].as_object().unwrap() {
                    if !v.is_null() {
                        m["usage"][k] = v.clone();
                    }
                }
            }
            "message_stop" => {
                let m = message.as_ref().unwrap();
                assert!(
                    !m["stop_reason"].is_null(),
                    "message_stop before message_delta"
                );
                stopped = true;
            }
            "error" => {
                let e = &data["error"];
                assert!(
                    e["type"].is_string() && e["message"].is_string(),
                    "error shape: {data}"
                );
                assert!(
                    data.get("message").is_none(),
                    "error message at the wrong level"
                );
                error = Some(data.clone());
            }
            other => panic!("unknown event {other}"),
        }
    }
    AnthropicReplay {
        message: message.unwrap_or(Value::Null),
        error,
        stopped,
    }
}

/// What a strict OpenAI client ends up with.
#[derive(Debug, Default)]
pub struct OpenAiReplay {
    pub content: Option<String>,
    pub reasoning: Option<String>,
    pub refusal: Option<String>,
    /// (id, name, arguments) by index.
    pub tool_calls: Vec<(String, String, String)>,
    pub finish_reason: Option<String>,
    pub usage: Option<Value>,
    pub error: Option<Value>,
    pub done: bool,
    pub reasoning_details: Vec<Value>,
    pub chunks: usize,
}

/// Replays an OpenAI chunk stream strictly; panics on the first violation.
pub fn check_openai(body: &[u8], expect_usage_chunk: bool) -> OpenAiReplay {
    let evs = events(body);
    let mut r = OpenAiReplay::default();
    let mut id: Option<Value> = None;
    let mut role_seen = false;
    for (name, data) in &evs {
        assert!(name.is_empty(), "OpenAI streams have no event names");
        assert!(!r.done, "data after [DONE]");
        if data == "[DONE]" {
            r.done = true;
            continue;
        }
        if data.get("error").is_some() {
            let e = &data["error"];
            assert!(
                e["message"].is_string() && e["type"].is_string(),
                "error shape"
            );
            assert!(
                e.as_object().unwrap().contains_key("param")
                    && e.as_object().unwrap().contains_key("code")
            );
            r.error = Some(data.clone());
            continue;
        }
        r.chunks += 1;
        assert_eq!(data["object"], "chat.completion.chunk");
        assert!(data["created"].is_u64());
        assert!(data["model"].is_string());
        match &id {
            None => id = Some(data["id"].clone()),
            Some(i) => assert_eq!(&data["id"], i, "id changed"),
        }
        let choices = data["choices"].as_array().expect("choices");
        if choices.is_empty() {
            assert!(
                r.finish_reason.is_some(),
                "usage chunk before the finish chunk"
            );
            assert!(r.usage.is_none(), "two usage chunks");
            assert!(data["usage"].is_object(), "empty choices without usage");
            r.usage = Some(data["usage"].clone());
            continue;
        }
        if expect_usage_chunk {
            assert!(
                data.get("usage").is_some_and(Value::is_null),
                "chunks carry usage:null"
            );
        }
        let c = &choices[0];
        assert_eq!(c["index"], 0);
        let d = &c["delta"];
        if !role_seen {
            assert_eq!(d["role"], "assistant", "first chunk must carry the role");
            role_seen = true;
        }
        if let Some(fr) = c["finish_reason"].as_str() {
            assert!(r.finish_reason.is_none(), "second finish chunk");
            r.finish_reason = Some(fr.to_string());
            continue;
        }
        assert!(r.finish_reason.is_none(), "content after the finish chunk");
        if let Some(t) = d["content"].as_str() {
            r.content.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(t) = d["reasoning_content"].as_str() {
            r.reasoning.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(t) = d["refusal"].as_str() {
            r.refusal.get_or_insert_with(String::new).push_str(t);
        }
        if let Some(ds) = d["reasoning_details"].as_array() {
            r.reasoning_details.extend(ds.iter().cloned());
        }
        for tc in d["tool_calls"].as_array().into_iter().flatten() {
            let idx = tc["index"].as_u64().expect("tool call delta without index") as usize;
            if idx == r.tool_calls.len() {
                let id = tc["id"].as_str().expect("first delta of a call has its id");
                assert_eq!(tc["type"], "function");
                let name = tc["function"]["name"]
                    .as_str()
                    .expect("first delta has the name");
                r.tool_calls.push((id.into(), name.into(), String::new()));
            } else {
                assert!(idx < r.tool_calls.len(), "tool index {idx} skipped ahead");
                assert!(tc
                    .get("id")
                    .is_none_or(|i| i == &json!(r.tool_calls[idx].0)));
            }
            if let Some(a) = tc["function"]["arguments"].as_str() {
                r.tool_calls[idx].2.push_str(a);
            }
        }
    }
    if r.error.is_none() {
        assert!(r.finish_reason.is_some(), "stream without a finish chunk");
        assert!(r.done, "stream without [DONE]");
        assert_eq!(
            r.usage.is_some(),
            expect_usage_chunk,
            "usage chunk presence"
        );
        for (_, name, args) in &r.tool_calls {
            let v: Value = serde_json::from_str(args)
                .unwrap_or_else(|e| panic!("arguments of {name} {args:?} are not JSON: {e}"));
            assert!(v.is_object());
        }
    }
    r
}

pub fn ctx(
    client: Dialect,
    upstream: Dialect,
    client_stream: bool,
    upstream_stream: bool,
) -> ResponseContext {
    let mut c = ResponseContext::passthrough(client, "client-model", client_stream);
    c.upstream = upstream;
    c.upstream_stream = upstream_stream;
    c.origin = "prov/up-model".into();
    c
}
