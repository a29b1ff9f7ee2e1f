use serde_json::{json, Value};

use crate::client::{post, request, Response};
use crate::{merge, server, OPENING};

const PATH: &str = "/v1/chat/completions";
const AUTH: &[(&str, &str)] = &[("authorization", "Bearer ok-test")];

fn chat(extra: Value) -> Value {
    merge(
        json!({"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}),
        extra,
    )
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}}}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
    ])
}

/// Strict checks of an OpenAI stream; returns the chunks (without `[DONE]`)
/// and the usage chunk.
pub fn check_stream(r: &Response, model: &str, include_usage: bool) -> (Vec<Value>, Option<Value>) {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(r.chunked, "streams are chunked");
    let events = r.sse(false);
    assert_eq!(r.chunks.len(), events.len(), "one HTTP chunk per event");
    assert!(events.iter().all(|e| e.event.is_none()), "no event: lines");
    let (last, rest) = events.split_last().unwrap();
    assert_eq!(last.data, "[DONE]");
    let chunks: Vec<Value> = rest.iter().map(|e| e.json()).collect();
    let id = chunks[0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("chatcmpl-"));
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id.as_str());
        assert_eq!(c["model"], model);
        assert_eq!(c["created"], chunks[0]["created"]);
        assert_eq!(
            c.get("usage").is_some(),
            include_usage,
            "usage key only with include_usage: {c}"
        );
    }
    let first = &chunks[0]["choices"][0];
    assert_eq!(first["index"], 0);
    assert_eq!(first["delta"]["role"], "assistant", "role first");
    let usage = if include_usage {
        let u = chunks.last().unwrap();
        assert_eq!(u["choices"], json!([]), "usage chunk has choices:[]");
        assert!(u["usage"].is_object());
        for c in &chunks[..chunks.len() - 1] {
            assert_eq!(c["usage"], Value::Null);
        }
        Some(u["usage"].clone())
    } else {
        None
    };
    let body_chunks = &chunks[..chunks.len() - usage.is_some() as usize];
    let (fin, before) = body_chunks.split_last().unwrap();
    assert_eq!(
        fin["choices"][0]["delta"],
        json!({}),
        "finish chunk has an empty delta"
    );
    assert!(fin["choices"][0]["finish_reason"].is_string());
    for c in before {
        assert_eq!(c["choices"][0]["finish_reason"], Value::Null);
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
    (chunks, usage)
}

fn concat(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][field].as_str())
        .collect()
}

fn check_usage(u: &Value, reasoning: bool) {
    let p = u["prompt_tokens"].as_u64().unwrap();
    let c = u["completion_tokens"].as_u64().unwrap();
    assert!(p > 0 && c > 0);
    assert_eq!(u["total_tokens"].as_u64().unwrap(), p + c);
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(cached < p);
    let r = u["completion_tokens_details"]["reasoning_tokens"]
        .as_u64()
        .unwrap();
    assert_eq!(r > 0, reasoning);
    assert!(r < c);
}

#[tokio::test]
async fn chat_non_stream() {
    let s = server().await;
    let r = post(s.addr, PATH, AUTH, &chat(json!({}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.header("content-length").unwrap(),
        r.body.len().to_string()
    );
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-test");
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["finish_reason"], "stop");
    let content = choice["message"]["content"].as_str().unwrap();
    assert!(content.starts_with(OPENING));
    assert_eq!(
        content.split_whitespace().count(),
        8 * 3,
        "8 chunks of 3 words"
    );
    assert!(choice["message"].get("reasoning_content").is_none());
    check_usage(&v["usage"], false);
}

#[tokio::test]
async fn chat_stream_matches_non_stream() {
    let s = server().await;
    let json = post(s.addr, PATH, AUTH, &chat(json!({}))).await.json();
    let r = post(s.addr, PATH, AUTH, &chat(json!({"stream": true}))).await;
    let (chunks, usage) = check_stream(&r, "gpt-test", false);
    assert!(usage.is_none());
    assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "");
    assert_eq!(
        concat(&chunks, "content"),
        json["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(chunks.len(), 1 + 8 + 1, "role, 8 deltas, finish");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn chat_stream_include_usage() {
    let s = server().await;
    let body = chat(json!({"stream": true, "stream_options": {"include_usage": true}}));
    let r = post(s.addr, PATH, AUTH, &body).await;
    let (_, usage) = check_stream(&r, "gpt-test", true);
    check_usage(&usage.unwrap(), false);
    // include_usage:false behaves like no stream_options.
    let body = chat(json!({"stream": true, "stream_options": {"include_usage": false}}));
    let r = post(s.addr, PATH, AUTH, &body).await;
    check_stream(&r, "gpt-test", false);
}

#[tokio::test]
async fn chat_reasoning() {
    let s = server().await;
    for extra in [
        json!({"reasoning_effort": "high"}),
        json!({"thinking": {"type": "enabled"}}),
    ] {
        let v = post(s.addr, PATH, AUTH, &chat(extra.clone())).await.json();
        let msg = &v["choices"][0]["message"];
        assert!(!msg["reasoning_content"].as_str().unwrap().is_empty());
        assert!(msg["content"].as_str().unwrap().starts_with(OPENING));
        check_usage(&v["usage"], true);

        let body = merge(
            chat(extra),
            json!({"stream": true, "stream_options": {"include_usage": true}}),
        );
        let r = post(s.addr, PATH, AUTH, &body).await;
        let (chunks, usage) = check_stream(&r, "gpt-test", true);
        check_usage(&usage.unwrap(), true);
        assert_eq!(
            concat(&chunks, "reasoning_content"),
            msg["reasoning_content"].as_str().unwrap()
        );
        // All reasoning deltas come before the first content delta.
        let first_content = chunks
            .iter()
            .position(|c| {
                c["choices"][0]["delta"]["content"]
                    .as_str()
                    .is_some_and(|t| !t.is_empty())
            })
            .unwrap();
        let last_reasoning = chunks
            .iter()
            .rposition(|c| c["choices"][0]["delta"]["reasoning_content"].is_string())
            .unwrap();
        assert!(last_reasoning < first_content);
    }
    for extra in [
        json!({"reasoning_effort": "none"}),
        json!({"thinking": {"type": "disabled"}}),
    ] {
        let v = post(s.addr, PATH, AUTH, &chat(extra)).await.json();
        assert!(v["choices"][0]["message"]
            .get("reasoning_content")
            .is_none());
    }
}

#[tokio::test]
async fn chat_tools() {
    let s = server().await;
    let expected = json!({"city": "mock", "days": 1, "metric": true});
    // Non-stream.
    let v = post(s.addr, PATH, AUTH, &chat(json!({"tools": weather_tools()})))
        .await
        .json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, expected);

    // Stream, with and without reasoning.
    for extra in [json!({}), json!({"reasoning_effort": "low"})] {
        let body = merge(
            chat(json!({"tools": weather_tools(), "stream": true})),
            extra,
        );
        let r = post(s.addr, PATH, AUTH, &body).await;
        let (chunks, _) = check_stream(&r, "gpt-test", false);
        let mut id = None;
        let mut name = None;
        let mut args = String::new();
        let mut fragments = 0;
        for c in &chunks {
            let delta = &c["choices"][0]["delta"];
            assert!(delta.get("content").is_none() || delta["content"].is_null());
            let Some(tcs) = delta["tool_calls"].as_array() else {
                continue;
            };
            assert_eq!(tcs.len(), 1);
            let tc = &tcs[0];
            assert_eq!(tc["index"], 0);
            if let Some(i) = tc["id"].as_str() {
                assert!(id.is_none(), "id only on the first delta");
                id = Some(i.to_string());
                assert_eq!(tc["type"], "function");
                name = Some(tc["function"]["name"].as_str().unwrap().to_string());
            } else {
                assert!(id.is_some(), "first delta carries the id");
                assert!(tc["function"].get("name").is_none());
                fragments += 1;
            }
            args.push_str(tc["function"]["arguments"].as_str().unwrap());
        }
        assert!(id.unwrap().starts_with("call_"));
        assert_eq!(name.as_deref(), Some("get_weather"));
        assert!(fragments > 1, "arguments arrive in fragments");
        assert_eq!(serde_json::from_str::<Value>(&args).unwrap(), expected);
        assert_eq!(
            chunks.last().unwrap()["choices"][0]["finish_reason"],
            "tool_calls"
        );
    }

    // tool_choice "none" answers with text.
    let body = chat(json!({"tools": weather_tools(), "tool_choice": "none"}));
    let v = post(s.addr, PATH, AUTH, &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["choices"][0]["message"]["content"].is_string());
}

#[tokio::test]
async fn chat_validation() {
    let s = server().await;
    let r = post(s.addr, PATH, AUTH, &json!({"messages": []})).await;
    assert_eq!(r.status, 400);
    let r = post(s.addr, PATH, AUTH, &json!({"model": "m"})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn embeddings() {
    let s = server().await;
    let emb = |v: &Value| -> Vec<Vec<f64>> {
        assert_eq!(v["object"], "list");
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| {
                assert_eq!(d["object"], "embedding");
                assert_eq!(d["index"], i);
                d["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect()
    };
    let one = post(
        s.addr,
        "/v1/embeddings",
        AUTH,
        &json!({"model": "emb", "input": "hello"}),
    )
    .await;
    assert_eq!(one.status, 200);
    let one = one.json();
    assert_eq!(one["model"], "emb");
    assert!(one["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let v1 = emb(&one);
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0].len(), 16);
    let norm: f64 = v1[0].iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-3, "unit length, got {norm}");

    let body =
        json!({"model": "emb", "input": ["hello", "world", "hello"], "encoding_format": "float"});
    let three = emb(&post(s.addr, "/v1/embeddings", AUTH, &body).await.json());
    assert_eq!(three.len(), 3);
    assert_eq!(three[0], v1[0], "deterministic");
    assert_eq!(three[0], three[2]);
    assert_ne!(three[0], three[1]);

    let tokens = emb(&post(
        s.addr,
        "/v1/embeddings",
        AUTH,
        &json!({"model": "e", "input": [1, 2, 3]}),
    )
    .await
    .json());
    assert_eq!(tokens.len(), 1);
    let body = json!({"model": "e", "input": [[1, 2], [3]], "dimensions": 8});
    let nested = emb(&post(s.addr, "/v1/embeddings", AUTH, &body).await.json());
    assert_eq!(nested.len(), 2);
    assert_eq!(nested[1].len(), 8);

    let body = json!({"model": "e", "input": ["a", "b"], "encoding_format": "base64"});
    let v = post(s.addr, "/v1/embeddings", AUTH, &body).await.json();
    let b64 = v["data"][1]["embedding"].as_str().unwrap();
    assert_eq!(b64.len(), (16 * 4usize).div_ceil(3) * 4, "16 f32 in base64");

    let r = post(
        s.addr,
        "/v1/embeddings",
        AUTH,
        &json!({"model": "e", "input": []}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(s.addr, "/v1/embeddings", AUTH, &json!({"model": "e"})).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn models() {
    let s = server().await;
    let v = request(s.addr, "GET", "/v1/models", AUTH, "").await.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["object"], "model");
    assert!(v["data"].as_array().unwrap().len() >= 3);
    let r = request(s.addr, "GET", "/v1/models", &[], "").await;
    assert_eq!(r.status, 401);
    let an = &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    let v = request(s.addr, "GET", "/v1/models", an, "").await.json();
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
}
