use serde_json::{json, Value};

use crate::client::{post, Response};
use crate::{merge, server, OPENING};

const PATH: &str = "/v1/messages";
pub const HEADERS: &[(&str, &str)] = &[
    ("x-api-key", "ok-test"),
    ("anthropic-version", "2023-06-01"),
];

fn msg(extra: Value) -> Value {
    merge(
        json!({"model": "claude-test", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}),
        extra,
    )
}

fn tools() -> Value {
    json!([
        {"name": "get_weather", "description": "w", "input_schema": {"type": "object", "properties": {
            "city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "n": {"type": "number"}}}},
        {"name": "other", "input_schema": {"type": "object"}}
    ])
}

/// Strictly replay an Anthropic event stream the way the SDK does and
/// return the assembled message, plus the event names in order.
pub fn replay(r: &Response) -> (Value, Vec<String>) {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = r.sse(false);
    assert_eq!(r.chunks.len(), events.len(), "one HTTP chunk per event");
    let names: Vec<String> = events
        .iter()
        .map(|e| e.event.clone().expect("event: line"))
        .collect();
    let data: Vec<Value> = events.iter().map(|e| e.json()).collect();
    for (n, d) in names.iter().zip(&data) {
        assert_eq!(d["type"], n.as_str(), "event name matches data.type");
    }
    assert_eq!(names[0], "message_start");
    assert_eq!(names.iter().filter(|n| *n == "ping").count(), 1, "one ping");
    assert_eq!(names[1], "ping");
    assert_eq!(names.last().unwrap(), "message_stop");
    assert_eq!(names[names.len() - 2], "message_delta");

    let mut message = data[0]["message"].clone();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["content"], json!([]));
    assert_eq!(message["stop_reason"], Value::Null);
    let usage = &message["usage"];
    for k in [
        "input_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "output_tokens",
    ] {
        assert!(usage[k].is_u64(), "message_start usage has {k}");
    }
    let mut content: Vec<Value> = Vec::new();
    let mut open: Option<usize> = None;
    let mut partial = String::new();
    for (i, d) in data.iter().enumerate().skip(2).take(data.len() - 4) {
        match d["type"].as_str().unwrap() {
            "content_block_start" => {
                assert!(open.is_none(), "one block open at a time");
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(index, content.len(), "sequential indices from 0");
                let block = d["content_block"].clone();
                match block["type"].as_str().unwrap() {
                    "thinking" => {
                        assert_eq!(block["thinking"], "");
                        assert_eq!(block["signature"], "");
                    }
                    "text" => assert_eq!(block["text"], ""),
                    "tool_use" => {
                        assert_eq!(block["input"], json!({}));
                        assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
                        partial.clear();
                    }
                    t => panic!("unexpected block {t}"),
                }
                content.push(block);
                open = Some(index);
            }
            "content_block_delta" => {
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(index), open, "delta for the open block");
                let block = &mut content[index];
                let delta = &d["delta"];
                match (
                    block["type"].as_str().unwrap(),
                    delta["type"].as_str().unwrap(),
                ) {
                    ("text", "text_delta") => {
                        let t = block["text"].as_str().unwrap().to_string()
                            + delta["text"].as_str().unwrap();
                        block["text"] = t.into();
                    }
                    ("thinking", "thinking_delta") => {
                        assert_eq!(block["signature"], "", "thinking after the signature");
                        let t = block["thinking"].as_str().unwrap().to_string()
                            + delta["thinking"].as_str().unwrap();
                        block["thinking"] = t.into();
                    }
                    ("thinking", "signature_delta") => {
                        assert_eq!(
                            data[i + 1]["type"],
                            "content_block_stop",
                            "signature just before stop"
                        );
                        block["signature"] = delta["signature"].clone();
                    }
                    ("tool_use", "input_json_delta") => {
                        partial.push_str(delta["partial_json"].as_str().unwrap())
                    }
                    (b, t) => panic!("delta {t} in block {b}"),
                }
            }
            "content_block_stop" => {
                let index = d["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(index), open);
                if content[index]["type"] == "tool_use" {
                    content[index]["input"] =
                        serde_json::from_str(&partial).expect("tool input JSON");
                }
                if content[index]["type"] == "thinking" {
                    assert!(!content[index]["signature"].as_str().unwrap().is_empty());
                }
                open = None;
            }
            t => panic!("unexpected event {t} at {i}"),
        }
    }
    assert!(open.is_none());
    let delta = &data[data.len() - 2];
    assert!(delta["delta"]["stop_reason"].is_string());
    assert_eq!(delta["delta"]["stop_sequence"], Value::Null);
    message["content"] = Value::Array(content);
    message["stop_reason"] = delta["delta"]["stop_reason"].clone();
    for (k, v) in delta["usage"].as_object().unwrap() {
        message["usage"][k] = v.clone();
    }
    (message, names)
}

fn check_usage(u: &Value) {
    assert!(u["input_tokens"].as_u64().unwrap() > 0);
    assert!(u["cache_read_input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(u["cache_creation_input_tokens"], 0);
    assert!(u["output_tokens"].as_u64().unwrap() > 1);
}

#[tokio::test]
async fn message_non_stream_and_stream() {
    let s = server().await;
    let r = post(s.addr, PATH, HEADERS, &msg(json!({}))).await;
    assert_eq!(r.status, 200);
    assert!(r.header("request-id").is_some());
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["model"], "claude-test");
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["content"].as_array().unwrap().len(), 1);
    assert_eq!(v["content"][0]["type"], "text");
    assert!(v["content"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with(OPENING));
    check_usage(&v["usage"]);

    let r = post(s.addr, PATH, HEADERS, &msg(json!({"stream": true}))).await;
    let (m, names) = replay(&r);
    assert_eq!(m["content"], v["content"]);
    assert_eq!(m["stop_reason"], "end_turn");
    assert_eq!(m["model"], "claude-test");
    check_usage(&m["usage"]);
    assert_eq!(m["usage"]["output_tokens"], v["usage"]["output_tokens"]);
    assert_eq!(
        names.iter().filter(|n| *n == "content_block_delta").count(),
        8
    );
}

#[tokio::test]
async fn thinking() {
    let s = server().await;
    for thinking in [
        json!({"type": "enabled", "budget_tokens": 1024}),
        json!({"type": "adaptive"}),
    ] {
        let v = post(s.addr, PATH, HEADERS, &msg(json!({"thinking": thinking})))
            .await
            .json();
        let content = v["content"].as_array().unwrap();
        assert_eq!(content.len(), 2);
        assert_eq!(content[0]["type"], "thinking");
        assert!(!content[0]["thinking"].as_str().unwrap().is_empty());
        assert!(!content[0]["signature"].as_str().unwrap().is_empty());
        assert_eq!(content[1]["type"], "text");

        let r = post(
            s.addr,
            PATH,
            HEADERS,
            &msg(json!({"thinking": thinking, "stream": true})),
        )
        .await;
        let (m, _) = replay(&r);
        assert_eq!(m["content"], v["content"]);
    }
    // display: omitted → only the signature.
    let thinking = json!({"type": "enabled", "budget_tokens": 1024, "display": "omitted"});
    let r = post(
        s.addr,
        PATH,
        HEADERS,
        &msg(json!({"thinking": thinking, "stream": true})),
    )
    .await;
    let (m, _) = replay(&r);
    assert_eq!(m["content"][0]["thinking"], "");
    assert!(!m["content"][0]["signature"].as_str().unwrap().is_empty());
    // disabled → none.
    let v = post(
        s.addr,
        PATH,
        HEADERS,
        &msg(json!({"thinking": {"type": "disabled"}})),
    )
    .await
    .json();
    assert_eq!(v["content"][0]["type"], "text");
}

#[tokio::test]
async fn tool_use() {
    let s = server().await;
    let expected = json!({"city": "mock", "unit": "celsius", "n": 1});
    let v = post(s.addr, PATH, HEADERS, &msg(json!({"tools": tools()})))
        .await
        .json();
    assert_eq!(v["stop_reason"], "tool_use");
    let content = v["content"].as_array().unwrap();
    assert_eq!(content.last().unwrap()["type"], "tool_use");
    assert_eq!(content.last().unwrap()["name"], "get_weather");
    assert_eq!(content.last().unwrap()["input"], expected);

    let body = msg(
        json!({"tools": tools(), "stream": true, "thinking": {"type": "enabled", "budget_tokens": 2000}}),
    );
    let r = post(s.addr, PATH, HEADERS, &body).await;
    let (m, names) = replay(&r);
    let types: Vec<&str> = m["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["thinking", "text", "tool_use"]);
    assert_eq!(m["content"][2]["input"], expected);
    assert_eq!(m["stop_reason"], "tool_use");
    assert!(names.len() > 10);
    // The first input_json_delta is empty, like the real API.
    let events = r.sse(false);
    let first_json = events
        .iter()
        .map(|e| e.json())
        .find(|d| d["delta"]["type"] == "input_json_delta")
        .unwrap();
    assert_eq!(first_json["delta"]["partial_json"], "");

    let body = msg(json!({"tools": tools(), "tool_choice": {"type": "none"}}));
    let v = post(s.addr, PATH, HEADERS, &body).await.json();
    assert_eq!(v["stop_reason"], "end_turn");
}

#[tokio::test]
async fn count_tokens_and_headers() {
    let s = server().await;
    let small = post(s.addr, "/v1/messages/count_tokens", HEADERS, &json!({})).await;
    assert_eq!(small.status, 200);
    assert_eq!(small.json(), json!({"input_tokens": 1}), "never 0");
    let big = msg(json!({"system": "x".repeat(4000)}));
    let n = post(s.addr, "/v1/messages/count_tokens?beta=true", HEADERS, &big)
        .await
        .json()["input_tokens"]
        .as_u64()
        .unwrap();
    assert!(n >= 1000, "estimated from the body size: {n}");

    // anthropic-version is required.
    let r = post(s.addr, PATH, &[("x-api-key", "k")], &msg(json!({}))).await;
    assert_eq!(r.status, 400);
    let e = r.json();
    assert_eq!(e["type"], "error");
    assert_eq!(e["error"]["type"], "invalid_request_error");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    // Missing key → 401 authentication_error; Bearer is accepted too.
    let r = post(
        s.addr,
        PATH,
        &[("anthropic-version", "2023-06-01")],
        &msg(json!({})),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "authentication_error");
    let h = &[
        ("authorization", "Bearer tok"),
        ("anthropic-version", "2023-06-01"),
    ];
    assert_eq!(
        post(s.addr, "/v1/messages?beta=true", h, &msg(json!({})))
            .await
            .status,
        200
    );
    // Required fields.
    let r = post(
        s.addr,
        PATH,
        HEADERS,
        &json!({"model": "m", "messages": []}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
}
