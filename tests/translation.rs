//! Issue 3 end to end: any model on either surface, translated on the way up and down, through the
//! real binary against the mock upstream speaking each provider's wire format.

mod common;

use common::{Gateway, SERVER};
use serde_json::{json, Value};

const KEY: &str = "sk-t";

fn config(mock: std::net::SocketAddr) -> String {
    format!(
        r#"{SERVER}
[providers.oai]
kind = "openai"
base_url = "http://{mock}/v1"
keys = ["ok-oai"]
[providers.ant]
kind = "anthropic"
base_url = "http://{mock}"
keys = ["ok-ant"]
[providers.gem]
kind = "gemini"
base_url = "http://{mock}"
keys = ["ok-gem"]
[providers.ds]
kind = "openai"
base_url = "http://{mock}/v1"
preset = "deepseek"
keys = ["ok-ds"]
[providers.ant-stream]
kind = "anthropic"
base_url = "http://{mock}"
keys = ["ok-ant-stream"]
stream_only = true
[models.gpt]
routes = [{{ provider = "oai", model = "up-gpt" }}]
[models.claude-streamed]
routes = [{{ provider = "ant-stream", model = "up-claude" }}]
[models.claude]
routes = [{{ provider = "ant", model = "up-claude" }}]
[models.gemini]
routes = [{{ provider = "gem", model = "up-gemini" }}]
[models.deepseek]
routes = [{{ provider = "ds", model = "deepseek-chat" }}]
[[keys]]
id = "t"
secret = "{KEY}"
"#
    )
}

fn weather_tool_openai() -> Value {
    json!([{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}])
}

fn weather_tool_anthropic() -> Value {
    json!([{"name":"get_weather","description":"Weather","input_schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}])
}

async fn upstream_saw(mock: &ezrouter_mock::MockServer) -> (String, Value, String) {
    let r = mock.stats.last_request().expect("the mock saw a request");
    let headers = format!("{:?}", r.headers()).to_lowercase();
    (
        r.path().to_string(),
        serde_json::from_slice(r.body()).unwrap_or(Value::Null),
        headers,
    )
}

/// A tool call rebuilt from its deltas: id, name, arguments.
type Call = (String, String, String);

/// Rebuilds an OpenAI stream the way openai-python's accumulator does; checks its framing rules.
/// Returns the text, the tool calls, the finish reason and the usage.
fn accumulate_openai(
    events: &[(Option<String>, String)],
) -> (String, Vec<Call>, String, Option<Value>) {
    assert_eq!(events.last().unwrap().1, "[DONE]", "ends with [DONE]");
    let (mut text, mut calls, mut finish, mut usage) =
        (String::new(), Vec::<Call>::new(), String::new(), None);
    for (i, (_, data)) in events[..events.len() - 1].iter().enumerate() {
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert!(chunk.get("error").is_none(), "{chunk}");
        if !chunk["usage"].is_null() {
            usage = Some(chunk["usage"].clone());
        }
        let Some(choice) = chunk["choices"].get(0) else {
            continue;
        };
        if i == 0 {
            assert_eq!(
                choice["delta"]["role"], "assistant",
                "role in the first chunk"
            );
        }
        text.push_str(choice["delta"]["content"].as_str().unwrap_or(""));
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"]
                .as_u64()
                .expect("tool-call deltas carry index") as usize;
            if index == calls.len() {
                calls.push((
                    call["id"].as_str().unwrap().into(),
                    call["function"]["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            }
            calls[index]
                .2
                .push_str(call["function"]["arguments"].as_str().unwrap_or(""));
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            assert!(finish.is_empty(), "exactly one finish chunk");
            finish = f.to_string();
        }
    }
    (text, calls, finish, usage)
}

/// Replays an Anthropic stream like anthropic-python's `accumulate_event`; fails on framing errors.
fn accumulate_anthropic(events: &[(Option<String>, String)]) -> Value {
    let mut message = Value::Null;
    let mut open: Option<usize> = None;
    let mut partial_json = Vec::<String>::new();
    for (name, data) in events {
        let name = name.as_deref().expect("every event has an event: line");
        let ev: Value = serde_json::from_str(data).unwrap();
        assert_eq!(ev["type"], name, "event name matches its type");
        match name {
            "message_start" => {
                assert!(message.is_null(), "one message_start");
                message = ev["message"].clone();
                for field in [
                    "input_tokens",
                    "output_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                ] {
                    assert!(
                        message["usage"].get(field).is_some(),
                        "message_start usage has {field}"
                    );
                }
            }
            "content_block_start" => {
                let index = ev["index"].as_u64().unwrap() as usize;
                assert!(open.is_none(), "one block open at a time");
                assert_eq!(
                    index,
                    message["content"].as_array().unwrap().len(),
                    "indices are sequential"
                );
                message["content"]
                    .as_array_mut()
                    .unwrap()
                    .push(ev["content_block"].clone());
                partial_json.push(String::new());
                open = Some(index);
            }
            "content_block_delta" => {
                let index = ev["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(index), open, "delta for the open block");
                let block = &mut message["content"][index];
                let delta = &ev["delta"];
                match (
                    delta["type"].as_str().unwrap(),
                    block["type"].as_str().unwrap(),
                ) {
                    ("text_delta", "text") => {
                        let t = format!(
                            "{}{}",
                            block["text"].as_str().unwrap(),
                            delta["text"].as_str().unwrap()
                        );
                        block["text"] = t.into();
                    }
                    ("thinking_delta", "thinking") => {
                        let t = format!(
                            "{}{}",
                            block["thinking"].as_str().unwrap(),
                            delta["thinking"].as_str().unwrap()
                        );
                        block["thinking"] = t.into();
                    }
                    ("signature_delta", "thinking") => {
                        block["signature"] = delta["signature"].clone()
                    }
                    ("input_json_delta", "tool_use") => {
                        partial_json[index].push_str(delta["partial_json"].as_str().unwrap())
                    }
                    (d, b) => panic!("{d} in a {b} block"),
                }
            }
            "content_block_stop" => {
                let index = ev["index"].as_u64().unwrap() as usize;
                assert_eq!(Some(index), open);
                let block = &mut message["content"][index];
                if block["type"] == "tool_use" {
                    block["input"] = serde_json::from_str(&partial_json[index])
                        .expect("tool input is valid JSON");
                }
                if block["type"] == "text" {
                    assert!(
                        !block["text"].as_str().unwrap().is_empty(),
                        "no empty text blocks"
                    );
                }
                open = None;
            }
            "message_delta" => {
                message["stop_reason"] = ev["delta"]["stop_reason"].clone();
                for (k, v) in ev["usage"].as_object().unwrap() {
                    message["usage"][k] = v.clone();
                }
            }
            "message_stop" => assert!(open.is_none()),
            "ping" => {}
            other => panic!("unexpected event {other}: {data}"),
        }
    }
    assert_eq!(events.last().unwrap().0.as_deref(), Some("message_stop"));
    message
}

#[tokio::test]
async fn openai_client_on_anthropic_upstream_streams_tool_calls() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr));
    let mut c = gw.client();
    let body = json!({"model":"claude","stream":true,"stream_options":{"include_usage":true},"tools":weather_tool_openai(),
        "messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Weather in Paris?"}]});
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, calls, finish, usage) = accumulate_openai(&r.events());
    assert_eq!(finish, "tool_calls");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, "get_weather");
    let args: Value = serde_json::from_str(&calls[0].2).expect("accumulated arguments parse");
    assert_eq!(args, json!({"city": "mock"}));
    let usage = usage.expect("usage chunk, since the client asked");
    assert!(
        usage["prompt_tokens"].as_u64().unwrap()
            > usage["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap()
    );

    let (path, sent, headers) = upstream_saw(&mock).await;
    assert_eq!(path, "/v1/messages");
    assert_eq!(sent["model"], "up-claude");
    assert_eq!(
        sent["system"]
            .as_str()
            .or(sent["system"][0]["text"].as_str()),
        Some("Be brief.")
    );
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["city"])
    );
    assert!(
        sent["max_tokens"].as_u64().unwrap() > 0,
        "Anthropic needs max_tokens"
    );
    assert!(headers.contains("anthropic-version") && headers.contains("ok-ant"));

    // Second turn: the tool result goes back as an Anthropic tool_result.
    let turn2 = json!({"model":"claude","messages":[
        {"role":"user","content":"Weather in Paris?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":calls[0].0,"type":"function","function":{"name":"get_weather","arguments":calls[0].2}}]},
        {"role":"tool","tool_call_id":calls[0].0,"content":"18C and sunny"}]});
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &turn2,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    let (_, sent, _) = upstream_saw(&mock).await;
    let result = &sent["messages"][2]["content"][0];
    assert_eq!(result["type"], "tool_result");
    assert_eq!(
        result["tool_use_id"],
        sent["messages"][1]["content"][0]["id"]
    );
}

#[tokio::test]
async fn anthropic_client_on_deepseek_gets_thinking_blocks() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr));
    let mut c = gw.client();
    let h = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    let body = json!({"model":"deepseek","max_tokens":4096,"stream":true,"thinking":{"type":"enabled","budget_tokens":2048},
        "tools": weather_tool_anthropic(), "messages":[{"role":"user","content":"Weather in Paris?"}]});
    let r = c.post_json("/anthropic/v1/messages", &h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let message = accumulate_anthropic(&r.events());
    let kinds: Vec<&str> = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"thinking"), "{kinds:?}");
    assert!(kinds.contains(&"tool_use"), "{kinds:?}");
    assert!(!message["content"][0]["thinking"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(
        !message["content"][0]["signature"]
            .as_str()
            .unwrap()
            .is_empty(),
        "a signature to replay"
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert!(
        message["usage"]["output_tokens"].as_u64().unwrap() > 0,
        "real usage in message_delta"
    );

    let (path, sent, _) = upstream_saw(&mock).await;
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(sent["model"], "deepseek-chat");
    assert_eq!(sent["thinking"]["type"], "enabled");

    // Replaying the turn: DeepSeek needs reasoning_content echoed on the tool-call turn.
    let tool = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == "tool_use")
        .unwrap()
        .clone();
    let turn2 = json!({"model":"deepseek","max_tokens":4096,"thinking":{"type":"enabled","budget_tokens":2048},"tools": weather_tool_anthropic(),
        "messages":[{"role":"user","content":"Weather in Paris?"},{"role":"assistant","content":message["content"]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":tool["id"],"content":"18C"}]}]});
    let r = c.post_json("/anthropic/v1/messages", &h, &turn2).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (_, sent, _) = upstream_saw(&mock).await;
    let assistant = sent["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .unwrap();
    assert_eq!(
        assistant["reasoning_content"], message["content"][0]["thinking"],
        "reasoning echoed"
    );
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["role"],
        "tool"
    );
}

#[tokio::test]
async fn both_surfaces_on_gemini() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr));
    let mut c = gw.client();
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &json!({"model":"gemini","stream":true,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let (text, _, finish, _) = accumulate_openai(&r.events());
    assert!(text.contains("🦀") && finish == "stop", "{text:?} {finish}");
    let (path, sent, headers) = upstream_saw(&mock).await;
    assert_eq!(
        path,
        "/v1beta/models/up-gemini:streamGenerateContent?alt=sse"
    );
    assert_eq!(sent["contents"][0]["parts"][0]["text"], "hi");
    assert!(headers.contains("x-goog-api-key") && headers.contains("ok-gem"));

    let h = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    let r = c.post_json("/anthropic/v1/messages", &h, &json!({"model":"gemini","max_tokens":64,"tools":weather_tool_anthropic(),"stream":true,"messages":[{"role":"user","content":"hi"}]})).await;
    let message = accumulate_anthropic(&r.events());
    assert_eq!(message["stop_reason"], "tool_use");
    let r = c
        .post_json(
            "/anthropic/v1/messages",
            &h,
            &json!({"model":"gemini","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    let v = r.json();
    assert_eq!(
        (v["type"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("end_turn")),
        "{v}"
    );
    assert!(v["content"][0]["text"].as_str().unwrap().contains("🦀"));
}

#[tokio::test]
async fn count_tokens_for_every_upstream_kind() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr));
    let mut c = gw.client();
    let h = [("x-api-key", KEY), ("anthropic-version", "2023-06-01")];
    let plain = |model: &str| json!({"model": model, "system": "You are terse.", "messages":[{"role":"user","content":"How many tokens is this sentence?"}]});
    let mut counts = Vec::new();
    for model in ["claude", "gemini", "gpt"] {
        let r = c
            .post_json(
                "/anthropic/v1/messages/count_tokens?beta=true",
                &h,
                &plain(model),
            )
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        let n = r.json()["input_tokens"].as_u64().unwrap();
        assert!(n > 0, "{model}: never 0");
        counts.push(n);
    }
    let (path, _, _) = upstream_saw(&mock).await;
    assert_eq!(
        path, "/v1beta/models/up-gemini:countTokens",
        "the local estimate made no upstream call"
    );
    let mut with_tools = plain("gpt");
    with_tools["tools"] = weather_tool_anthropic();
    let r = c
        .post_json("/anthropic/v1/messages/count_tokens", &h, &with_tools)
        .await;
    assert!(
        r.json()["input_tokens"].as_u64().unwrap() > counts[2],
        "tools are counted"
    );
}

#[tokio::test]
async fn unmappable_fields_are_400_naming_the_field() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr));
    let mut c = gw.client();
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &json!({"model":"claude","n":3,"messages":[{"role":"user","content":"hi"}]}),
        )
        .await;
    assert_eq!(r.status, 400, "n>1 cannot go to Anthropic: {}", r.text());
    assert_eq!(r.json()["error"]["param"], "n");
}

#[tokio::test]
async fn json_clients_of_a_stream_only_upstream_get_one_body() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr));
    let mut c = gw.client();
    let ask = json!({"model":"claude-streamed","max_tokens":64,"messages":[{"role":"user","content":"hi"}]});
    let r = c
        .post_json(
            "/anthropic/v1/messages",
            &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
            &ask,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(
        (v["type"].as_str(), v["stop_reason"].as_str()),
        (Some("message"), Some("end_turn")),
        "{v}"
    );
    assert!(v["content"][0]["text"].as_str().unwrap().contains("🦀"));
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let (_, sent, _) = upstream_saw(&mock).await;
    assert_eq!(sent["stream"], true, "the upstream was asked for a stream");

    let ask = json!({"model":"claude-streamed","messages":[{"role":"user","content":"hi"}]});
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &format!("Bearer {KEY}"))],
            &ask,
        )
        .await;
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains("🦀"));
}
