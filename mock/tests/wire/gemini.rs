use serde_json::{json, Value};

use crate::client::{parse_sse, post, request, Response};
use crate::{merge, server, OPENING};

pub const KEY: &[(&str, &str)] = &[("x-goog-api-key", "ok-test")];
const GEN: &str = "/v1beta/models/gemini-test:generateContent";
const SSE: &str = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse";
const ARRAY: &str = "/v1beta/models/gemini-test:streamGenerateContent";

fn gen(extra: Value) -> Value {
    merge(
        json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}),
        extra,
    )
}

fn thinking() -> Value {
    json!({"generationConfig": {"thinkingConfig": {"includeThoughts": true, "thinkingBudget": -1}}})
}

fn check_response(v: &Value, last: bool) {
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(c["index"], 0);
    assert!(c["content"]["parts"]
        .as_array()
        .is_some_and(|p| !p.is_empty()));
    assert_eq!(
        c.get("finishReason").is_some(),
        last,
        "finishReason only on the last chunk"
    );
    if last {
        assert_eq!(c["finishReason"], "STOP");
    }
    let u = &v["usageMetadata"];
    let p = u["promptTokenCount"].as_u64().unwrap();
    let cand = u["candidatesTokenCount"].as_u64().unwrap();
    let thoughts = u["thoughtsTokenCount"].as_u64().unwrap_or(0);
    assert_eq!(u["totalTokenCount"].as_u64().unwrap(), p + cand + thoughts);
    assert!(u["cachedContentTokenCount"].as_u64().unwrap_or(0) < p);
    assert_eq!(v["modelVersion"], "gemini-test");
    assert!(v["responseId"].is_string());
}

/// Strict SSE checks: CRLF framing, no [DONE], one chunk per event.
fn sse_chunks(r: &Response) -> Vec<Value> {
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    let events = parse_sse(r.text(), true);
    assert_eq!(events.len(), r.chunks.len());
    assert!(events
        .iter()
        .all(|e| e.event.is_none() && e.data != "[DONE]"));
    let chunks: Vec<Value> = events.iter().map(|e| e.json()).collect();
    for (i, c) in chunks.iter().enumerate() {
        check_response(c, i + 1 == chunks.len());
    }
    // usageMetadata is cumulative.
    let totals: Vec<u64> = chunks
        .iter()
        .map(|c| c["usageMetadata"]["totalTokenCount"].as_u64().unwrap())
        .collect();
    assert!(totals.windows(2).all(|w| w[0] <= w[1]));
    chunks
}

fn parts(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .unwrap()
                .clone()
        })
        .collect()
}

fn text_of(parts: &[Value], thought: bool) -> String {
    parts
        .iter()
        .filter(|p| p["thought"].as_bool().unwrap_or(false) == thought)
        .filter_map(|p| p["text"].as_str())
        .collect()
}

#[tokio::test]
async fn generate_and_stream() {
    let s = server().await;
    let r = post(s.addr, GEN, KEY, &gen(json!({}))).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    check_response(&v, true);
    let text = v["candidates"][0]["content"]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.starts_with(OPENING));
    assert!(v["usageMetadata"].get("thoughtsTokenCount").is_none());

    let r = post(s.addr, SSE, KEY, &gen(json!({}))).await;
    assert!(r.text().ends_with("}\r\n\r\n"));
    let chunks = sse_chunks(&r);
    assert_eq!(chunks.len(), 8);
    assert_eq!(text_of(&parts(&chunks), false), text);
    let last = chunks.last().unwrap();
    assert_eq!(
        last["usageMetadata"], v["usageMetadata"],
        "final usage equals the non-stream usage"
    );

    // Without alt=sse: a JSON array of the same responses.
    let r = post(s.addr, ARRAY, KEY, &gen(json!({}))).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.chunked);
    let arr = r.json();
    let arr = arr.as_array().unwrap();
    assert_eq!(arr.len(), 8);
    assert_eq!(r.chunks.len(), 8, "one HTTP chunk per element");
    for (i, c) in arr.iter().enumerate() {
        check_response(c, i + 1 == arr.len());
    }
    assert_eq!(text_of(&parts(arr), false), text);
}

#[tokio::test]
async fn thoughts() {
    let s = server().await;
    let v = post(s.addr, GEN, KEY, &gen(thinking())).await.json();
    let p = v["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(p.len(), 2);
    assert_eq!(p[0]["thought"], true);
    assert!(!p[0]["text"].as_str().unwrap().is_empty());
    assert!(p[1]["thoughtSignature"].is_string());
    assert!(v["usageMetadata"]["thoughtsTokenCount"].as_u64().unwrap() > 0);

    let chunks = sse_chunks(&post(s.addr, SSE, KEY, &gen(thinking())).await);
    let all = parts(&chunks);
    let first_answer = all.iter().position(|p| p.get("thought").is_none()).unwrap();
    assert!(first_answer > 0, "thoughts first");
    assert!(all[..first_answer].iter().all(|p| p["thought"] == true));
    assert!(all[first_answer]["thoughtSignature"].is_string());
    assert_eq!(text_of(&all, true), p[0]["text"].as_str().unwrap());
    assert_eq!(text_of(&all, false), p[1]["text"].as_str().unwrap());
    // snake_case is accepted as well.
    let body = gen(json!({"generation_config": {"thinking_config": {"include_thoughts": true}}}));
    let v = post(s.addr, GEN, KEY, &body).await.json();
    assert_eq!(v["candidates"][0]["content"]["parts"][0]["thought"], true);
}

#[tokio::test]
async fn function_call() {
    let s = server().await;
    let tools = json!([{"functionDeclarations": [
        {"name": "get_weather", "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}}}},
        {"name": "second"}]}]);
    let expected = json!({"city": "mock", "days": 1});
    let v = post(s.addr, GEN, KEY, &gen(json!({"tools": tools})))
        .await
        .json();
    check_response(&v, true);
    let part = &v["candidates"][0]["content"]["parts"][0];
    assert_eq!(part["functionCall"]["name"], "get_weather");
    assert_eq!(part["functionCall"]["args"], expected);
    assert!(part["thoughtSignature"].is_string());

    let chunks = sse_chunks(&post(s.addr, SSE, KEY, &gen(json!({"tools": tools.clone()}))).await);
    assert_eq!(chunks.len(), 1, "the whole call in one chunk");
    let all = parts(&chunks);
    assert_eq!(all[0]["functionCall"]["args"], expected);
    assert!(all[0]["thoughtSignature"].is_string());

    // With thoughts first.
    let body = merge(gen(json!({"tools": tools.clone()})), thinking());
    let chunks = sse_chunks(&post(s.addr, SSE, KEY, &body).await);
    let all = parts(&chunks);
    assert!(all[0]["thought"] == true);
    assert_eq!(all.last().unwrap()["functionCall"]["name"], "get_weather");

    // parametersJsonSchema, snake_case declarations, mode NONE.
    let tools2 = json!([{"function_declarations": [{"name": "f", "parametersJsonSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}]}]);
    let v = post(s.addr, GEN, KEY, &gen(json!({"tools": tools2})))
        .await
        .json();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
        json!({"ok": true})
    );
    let body =
        gen(json!({"tools": tools, "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}));
    let v = post(s.addr, GEN, KEY, &body).await.json();
    assert!(v["candidates"][0]["content"]["parts"][0]["text"].is_string());
}

#[tokio::test]
async fn count_tokens_auth_and_models() {
    let s = server().await;
    let r = post(
        s.addr,
        "/v1beta/models/gemini-test:countTokens",
        KEY,
        &gen(json!({})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["totalTokens"].as_u64().unwrap() > 0);
    // ?key= works; no key → 401 UNAUTHENTICATED.
    let r = post(
        s.addr,
        "/v1beta/models/gemini-test:generateContent?key=ok-q",
        &[],
        &gen(json!({})),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(s.stats.key_requests("ok-q"), 1);
    let r = post(s.addr, GEN, &[], &gen(json!({}))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(r.json()["error"]["code"], 401);
    // Missing contents.
    let r = post(s.addr, GEN, KEY, &json!({})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    // Unknown action.
    let r = post(
        s.addr,
        "/v1beta/models/gemini-test:embedStuff",
        KEY,
        &gen(json!({})),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["status"], "NOT_FOUND");
    let v = request(s.addr, "GET", "/v1beta/models", KEY, "")
        .await
        .json();
    assert!(v["models"][0]["name"]
        .as_str()
        .unwrap()
        .starts_with("models/"));
}
