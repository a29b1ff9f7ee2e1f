//! Golden tests: client request in → upstream request out, compared as JSON values.

use serde_json::{json, Value};

use super::*;
use crate::caps::{preset, Capabilities};
use crate::signature;

fn target<'a>(dialect: Dialect, model: &'a str, caps: &'a Capabilities) -> Target<'a> {
    Target {
        dialect,
        model,
        caps,
        origin: "",
    }
}

fn run_full(
    client: Dialect,
    body: &Value,
    dialect: Dialect,
    model: &str,
    caps: &Capabilities,
    origin: &str,
) -> Result<Translated, ApiError> {
    let t = Target {
        dialect,
        model,
        caps,
        origin,
    };
    translate_request(
        client,
        &serde_json::to_vec(body).unwrap(),
        "public-model",
        &t,
    )
}

fn run(client: Dialect, body: Value, dialect: Dialect, model: &str) -> Value {
    run_caps(client, body, dialect, model, &Capabilities::default())
}

fn run_caps(
    client: Dialect,
    body: Value,
    dialect: Dialect,
    model: &str,
    caps: &Capabilities,
) -> Value {
    let t = run_full(client, &body, dialect, model, caps, "").unwrap();
    serde_json::from_slice(&t.body).unwrap()
}

fn err(client: Dialect, body: Value, dialect: Dialect) -> ApiError {
    let caps = Capabilities::default();
    let t = target(dialect, "m", &caps);
    translate_request(client, &serde_json::to_vec(&body).unwrap(), "m", &t).unwrap_err()
}

const O: Dialect = Dialect::OpenAi;
const A: Dialect = Dialect::Anthropic;
const G: Dialect = Dialect::Gemini;

// ---------------------------------------------------------------------------------------------
// OpenAI → Anthropic

#[test]
fn openai_to_anthropic_basic_fields() {
    let out = run(
        O,
        json!({
            "model": "gpt-x",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Hi", "name": "bob"},
            ],
            "max_completion_tokens": 100,
            "temperature": 1.5,
            "stop": "END",
            "user": "u-1",
            "stream": true,
            "stream_options": {"include_usage": true},
            "seed": 3,
            "presence_penalty": 0.5,
        }),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Use French."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 100,
            "temperature": 1.0,
            "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"},
            "stream": true,
        })
    );
}

#[test]
fn anthropic_needs_a_default_max_tokens() {
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(
        run(O, body.clone(), A, "claude-sonnet-4-5")["max_tokens"],
        64000
    );
    assert_eq!(
        run(O, body.clone(), A, "claude-3-5-haiku")["max_tokens"],
        8192
    );
    assert_eq!(run(O, body.clone(), A, "deepseek-chat")["max_tokens"], 8192);
    let caps = Capabilities {
        default_max_tokens: Some(1234),
        ..Capabilities::default()
    };
    assert_eq!(
        run_caps(O, body, A, "claude-opus-4-1", &caps)["max_tokens"],
        1234
    );
}

#[test]
fn pitfall_3_empty_assistant_content_with_tool_calls_gives_no_text_block() {
    let out = run(
        O,
        json!({
            "model": "x",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": "", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "assistant", "content": "  "},
                {"role": "user", "content": "thanks"},
            ],
        }),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "weather?"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "text", "text": "thanks"},
            ]},
        ])
    );
}

#[test]
fn openai_parallel_tool_calls_and_results_fold_into_one_user_turn() {
    let out = run(
        O,
        json!({
            "model": "x",
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": "Checking.", "tool_calls": [
                    {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
                    {"id": "c", "type": "function", "function": {"name": "g", "arguments": "{broken"}},
                ]},
                {"role": "tool", "tool_call_id": "a", "content": "A"},
                {"role": "tool", "tool_call_id": "b", "content": [{"type": "text", "text": "B"}]},
                {"role": "tool", "tool_call_id": "c", "content": "C"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "f", "description": "F", "parameters": {"type": "object", "properties": {"x": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "g"}},
            ],
            "tool_choice": "required",
            "parallel_tool_calls": false,
        }),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "g", "input": {}},
            {"type": "tool_use", "id": "c", "name": "g", "input": {"_raw": "{broken"}},
        ])
    );
    assert_eq!(
        out["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "A"},
            {"type": "tool_result", "tool_use_id": "b", "content": "B"},
            {"type": "tool_result", "tool_use_id": "c", "content": "C"},
        ]})
    );
    assert_eq!(
        out["tools"],
        json!([
            {"name": "f", "description": "F", "input_schema": {"type": "object", "properties": {"x": {"type": "string"}}}},
            {"name": "g", "input_schema": {"type": "object", "properties": {}}},
        ])
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
}

#[test]
fn openai_images_and_pdfs_to_anthropic() {
    let out = run(
        O,
        json!({"model": "x", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBER", "filename": "a.pdf"}},
        ]}]}),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.jpg"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}, "title": "a.pdf"},
        ])
    ); // Data-URL parameters are ignored and the image/jpg alias is fixed.
    let out = run(
        O,
        json!({"model": "x", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/jpg;name=a.jpg;base64,/9j/"}},
        ]}]}),
        A,
        "claude",
    );
    assert_eq!(
        out["messages"][0]["content"][0]["source"],
        json!({"type": "base64", "media_type": "image/jpeg", "data": "/9j/"})
    );
}

#[test]
fn cache_control_survives_openai_to_anthropic() {
    let out = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "system", "content": [{"type": "text", "text": "big prompt", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
        ], "tools": [{"type": "function", "function": {"name": "f"}, "cache_control": {"type": "ephemeral"}}]}),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out["system"],
        json!([{"type": "text", "text": "big prompt", "cache_control": {"type": "ephemeral"}}])
    );
    assert_eq!(
        out["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral", "ttl": "1h"})
    );
    assert_eq!(
        out["tools"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn cache_control_survives_anthropic_round_trip_everywhere() {
    let body = json!({
        "model": "claude", "max_tokens": 10,
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "tools": [{"name": "t", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}, "cache_control": {"type": "ephemeral"}},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "t", "input": {}, "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r", "cache_control": {"type": "ephemeral"}}]},
        ],
    });
    let out = run(A, body.clone(), A, "claude");
    assert_eq!(out, body);
}

// ---------------------------------------------------------------------------------------------
// Anthropic → OpenAI

#[test]
fn anthropic_to_openai_basic_fields() {
    let caps = Capabilities::default();
    let t = run_full(
        A,
        &json!({
            "model": "claude",
            "max_tokens": 1000,
            "system": [{"type": "text", "text": "S1", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": "S2"}],
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"dir": "/"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                        {"type": "text", "text": "no such dir"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "QQ"}},
                    ], "is_error": true},
                    {"type": "text", "text": "try again"},
                ]},
            ],
            "temperature": 0.2,
            "top_k": 5,
            "stop_sequences": ["a", "b"],
            "metadata": {"user_id": "u"},
            "tools": [{"name": "ls", "description": "list", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}, "input_examples": [{}], "defer_loading": true}],
            "tool_choice": {"type": "tool", "name": "ls"},
            "stream": true,
        }),
        O,
        "gpt-5",
        &caps,
        "openai/gpt-5",
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "gpt-5",
            "messages": [
                {"role": "system", "content": "S1\n\nS2"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "ls", "arguments": "{\"dir\":\"/\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "Error: no such dir"},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,QQ"}},
                    {"type": "text", "text": "try again"},
                ]},
            ],
            "tools": [{"type": "function", "function": {"name": "ls", "description": "list", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "ls"}},
            "max_completion_tokens": 1000,
            "temperature": 0.2,
            "stop": ["a", "b"],
            "user": "u",
            "stream": true,
            "stream_options": {"include_usage": true},
        })
    );
    assert!(t.upstream_stream);
    assert!(
        !t.ctx.include_usage,
        "an Anthropic client has no usage chunk to forward"
    );
    assert_eq!(t.ctx.client, A);
    assert_eq!(t.ctx.upstream, O);
    assert_eq!(t.ctx.model, "public-model");
    assert_eq!(t.ctx.origin, "openai/gpt-5");
}

#[test]
fn pitfall_11_stream_options_only_when_capable_and_streaming() {
    let body =
        json!({"model": "x", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let glm = preset("glm").unwrap();
    let out = run_caps(A, body.clone(), O, "glm-4.6", &glm);
    assert!(out.get("stream_options").is_none());
    assert_eq!(out["stream"], true);
    // Non-streaming: never.
    let out = run(
        A,
        json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]}),
        O,
        "gpt",
    );
    assert!(out.get("stream_options").is_none() && out.get("stream").is_none());
    // OpenAI client that did not ask for usage: gateway asks, ctx says not to forward.
    let caps = Capabilities::default();
    let t = run_full(O, &body, O, "gpt", &caps, "").unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert!(!t.ctx.include_usage);
    let mut asked = body.clone();
    asked["stream_options"] = json!({"include_usage": true});
    let t = run_full(O, &asked, A, "claude", &caps, "").unwrap();
    assert!(t.ctx.include_usage && t.ctx.client_stream && t.upstream_stream);
}

#[test]
fn pitfall_17_long_tool_names_truncated_for_openai_with_reverse_map() {
    let long = format!("mcp__{}__do_something", "very_long_server_name".repeat(4));
    assert!(long.len() > 64);
    let caps = Capabilities::default();
    let t = run_full(
        A,
        &json!({"model": "c", "max_tokens": 5,
            "tools": [{"name": long, "input_schema": {"type": "object"}}, {"name": "short", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": long},
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": long, "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
            ]}),
        O,
        "gpt",
        &caps,
        "",
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    let up = out["tools"][0]["function"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(up.len(), 64);
    assert!(long.starts_with(&up[..55]));
    assert!(up[55..].starts_with('_'));
    assert_eq!(out["tools"][1]["function"]["name"], "short");
    assert_eq!(out["tool_choice"]["function"]["name"], up.as_str());
    assert_eq!(
        out["messages"][1]["tool_calls"][0]["function"]["name"],
        up.as_str()
    );
    assert_eq!(t.ctx.tool_names.get(&up), Some(&long));
    assert_eq!(t.ctx.tool_names.len(), 1);
    // Deterministic.
    let again = run(
        A,
        json!({"model": "c", "max_tokens": 5, "tools": [{"name": long, "input_schema": {}}], "messages": [{"role": "user", "content": "x"}]}),
        O,
        "gpt",
    );
    assert_eq!(again["tools"][0]["function"]["name"], up.as_str());
}

#[test]
fn gemini_names_are_sanitized_for_anthropic_with_reverse_map() {
    let caps = Capabilities::default();
    let t = run_full(
        G,
        &json!({"contents": [{"role": "user", "parts": [{"text": "x"}]}],
            "tools": [{"functionDeclarations": [{"name": "ns.read:file"}]}]}),
        A,
        "claude",
        &caps,
        "",
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(out["tools"][0]["name"], "ns_read_file");
    assert_eq!(t.ctx.tool_names["ns_read_file"], "ns.read:file");
}

#[test]
fn pitfall_21_anthropic_only_tool_fields_stripped() {
    let body = json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "custom", "name": "t", "description": "d", "input_schema": {"type": "object", "properties": {}},
                   "input_examples": [{"a": 1}], "defer_loading": true, "eager_input_streaming": true,
                   "allowed_callers": ["direct"], "cache_control": {"type": "ephemeral"}}]});
    let o = run(A, body.clone(), O, "gpt");
    assert_eq!(
        o["tools"],
        json!([{"type": "function", "function": {"name": "t", "description": "d", "parameters": {"type": "object", "properties": {}}}}])
    );
    let g = run(A, body.clone(), G, "gemini-2.5-pro");
    assert_eq!(
        g["tools"],
        json!([{"functionDeclarations": [{"name": "t", "description": "d", "parametersJsonSchema": {"type": "object", "properties": {}}}]}])
    );
    let a = run(A, body, A, "claude");
    assert_eq!(
        a["tools"],
        json!([{"name": "t", "description": "d", "input_schema": {"type": "object", "properties": {}}, "cache_control": {"type": "ephemeral"}}])
    );
}

#[test]
fn pitfall_16_kimi_tool_ids_sanitized_consistently() {
    let out = run(
        O,
        json!({"model": "k", "messages": [
            {"role": "user", "content": "run"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{\"command\":\"ls\"}"}},
                {"id": "functions.Read:1", "type": "function", "function": {"name": "Read", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "a.txt"},
            {"role": "tool", "tool_call_id": "functions.Read:1", "content": "..."},
        ]}),
        A,
        "claude",
    );
    assert_eq!(out["messages"][1]["content"][0]["id"], "functions_Bash_0");
    assert_eq!(out["messages"][1]["content"][1]["id"], "functions_Read_1");
    assert_eq!(
        out["messages"][2]["content"][0]["tool_use_id"],
        "functions_Bash_0"
    );
    assert_eq!(
        out["messages"][2]["content"][1]["tool_use_id"],
        "functions_Read_1"
    );
    // The same ids pass unchanged to OpenAI-dialect upstreams (Kimi expects its own ids back)…
    let o = run(
        O,
        json!({"model": "k", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "x"},
        ]}),
        O,
        "kimi",
    );
    assert_eq!(o["messages"][0]["tool_calls"][0]["id"], "functions.Bash:0");
    assert_eq!(o["messages"][1]["tool_call_id"], "functions.Bash:0");
    // …unless the upstream is strict.
    let strict = Capabilities {
        tool_id_pattern_strict: true,
        ..Capabilities::default()
    };
    let o = run_caps(
        O,
        json!({"model": "k", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "functions.Bash:0", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "functions.Bash:0", "content": "x"},
        ]}),
        O,
        "m",
        &strict,
    );
    assert_eq!(o["messages"][0]["tool_calls"][0]["id"], "functions_Bash_0");
    assert_eq!(o["messages"][1]["tool_call_id"], "functions_Bash_0");
}

#[test]
fn pitfall_14_orphan_tool_use_gets_a_synthetic_result_and_orphan_results_become_text() {
    let out = run(
        A,
        json!({"model": "c", "max_tokens": 5, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "f", "input": {}},
            ]},
            {"role": "user", "content": [
                {"type": "text", "text": "partial"},
                {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
                {"type": "tool_result", "tool_use_id": "zzz", "content": "stale"},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t3", "name": "f", "input": {}}]},
        ]}),
        A,
        "claude",
    );
    assert_eq!(
        out["messages"][2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "t2", "content": "two"},
            {"type": "tool_result", "tool_use_id": "t1", "content": INTERRUPTED, "is_error": true},
            {"type": "text", "text": "partial"},
            {"type": "text", "text": "[Result of tool call zzz]\nstale"},
        ])
    );
    // A trailing call with no answer at all gets a synthetic user turn.
    assert_eq!(
        out["messages"][4],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t3", "content": INTERRUPTED, "is_error": true}
        ]})
    );
    // OpenAI target: every call has a tool message before the next turn.
    let o = run(
        A,
        json!({"model": "c", "max_tokens": 5, "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": "never mind"},
        ]}),
        O,
        "gpt",
    );
    assert_eq!(
        o["messages"],
        json!([
            {"role": "user", "content": "x"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": format!("Error: {INTERRUPTED}")},
            {"role": "user", "content": "never mind"},
        ])
    );
}

#[test]
fn pitfall_15_missing_tool_call_ids_are_filled_and_paired() {
    let out = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ]},
            {"role": "tool", "content": "F"},
            {"role": "tool", "tool_call_id": "", "content": "G"},
        ]}),
        A,
        "claude",
    );
    let calls = &out["messages"][1]["content"];
    let results = &out["messages"][2]["content"];
    for k in 0..2 {
        let id = calls[k]["id"].as_str().unwrap();
        assert!(!id.is_empty());
        assert_eq!(results[k]["tool_use_id"], id);
    }
    assert_eq!(results[0]["content"], "F");
    assert_eq!(results[1]["content"], "G");
}

// ---------------------------------------------------------------------------------------------
// Reasoning

#[test]
fn pitfall_20_forced_tool_choice_drops_thinking() {
    let out = run(
        O,
        json!({"model": "x", "reasoning_effort": "high", "tool_choice": "required", "temperature": 0.3,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude-sonnet-4-5",
    );
    assert!(out.get("thinking").is_none());
    assert_eq!(out["tool_choice"], json!({"type": "any"}));
    assert_eq!(out["temperature"], 0.3);
    // Not forced: thinking stays, sampling constraints apply.
    let out = run(
        O,
        json!({"model": "x", "reasoning_effort": "high", "tool_choice": "auto", "temperature": 0.3, "top_p": 0.5,
            "max_completion_tokens": 40000,
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 24576})
    );
    assert_eq!(out["max_tokens"], 40000);
    assert!(out.get("temperature").is_none() && out.get("top_p").is_none());
}

#[test]
fn thinking_budget_is_raised_above_max_tokens_and_clamped() {
    // Explicit budget ≥ max_tokens: max_tokens is raised.
    let out = run(
        G,
        json!({"contents": [{"parts": [{"text": "x"}]}],
               "generationConfig": {"maxOutputTokens": 2000, "thinkingConfig": {"thinkingBudget": 5000, "includeThoughts": true}}}),
        A,
        "claude",
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 5000})
    );
    assert_eq!(out["max_tokens"], 7000);
    // Effort-derived budget is clamped below max_tokens.
    let out = run(
        O,
        json!({"model": "x", "reasoning_effort": "high", "max_completion_tokens": 4000, "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude",
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 3999})
    );
    assert_eq!(out["max_tokens"], 4000);
    // Tiny budgets are raised to the 1024 minimum.
    let out = run(
        G,
        json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"thinkingConfig": {"thinkingBudget": 100}}}),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(out["thinking"]["budget_tokens"], 1024);
    // reasoning_effort none → thinking disabled.
    let out = run(
        O,
        json!({"model": "x", "reasoning_effort": "none", "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude",
    );
    assert_eq!(out["thinking"], json!({"type": "disabled"}));
}

#[test]
fn adaptive_thinking_capability_uses_effort() {
    let caps = Capabilities {
        adaptive_thinking: true,
        ..Capabilities::default()
    };
    let out = run_caps(
        O,
        json!({"model": "x", "reasoning_effort": "medium", "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude-opus-4-7",
        &caps,
    );
    assert_eq!(out["thinking"], json!({"type": "adaptive"}));
    assert_eq!(out["output_config"], json!({"effort": "medium"}));
}

#[test]
fn anthropic_thinking_to_openai_effort_and_vendor_switch() {
    let body = |thinking: Value| json!({"model": "c", "max_tokens": 30000, "thinking": thinking, "messages": [{"role": "user", "content": "x"}]});
    let o = run(
        A,
        body(json!({"type": "enabled", "budget_tokens": 1024})),
        O,
        "o3",
    );
    assert_eq!(o["reasoning_effort"], "low");
    let o = run(
        A,
        body(json!({"type": "enabled", "budget_tokens": 5000})),
        O,
        "o3",
    );
    assert_eq!(o["reasoning_effort"], "medium");
    let o = run(
        A,
        body(json!({"type": "enabled", "budget_tokens": 20000})),
        O,
        "o3",
    );
    assert_eq!(o["reasoning_effort"], "high");
    assert!(o.get("thinking").is_none());
    let ds = preset("deepseek").unwrap();
    let o = run_caps(
        A,
        body(json!({"type": "enabled", "budget_tokens": 20000})),
        O,
        "deepseek-v4",
        &ds,
    );
    assert_eq!(o["thinking"], json!({"type": "enabled"}));
    assert_eq!(o["reasoning_effort"], "high");
    assert_eq!(o["max_tokens"], 30000);
    // Anthropic without `thinking` means off: vendors that default to on are told so.
    let o = run_caps(
        A,
        json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
        O,
        "deepseek-v4",
        &ds,
    );
    assert_eq!(o["thinking"], json!({"type": "disabled"}));
    assert!(o.get("reasoning_effort").is_none());
    let glm = preset("glm").unwrap();
    let o = run_caps(A, body(json!({"type": "adaptive"})), O, "glm-4.7", &glm);
    assert_eq!(o["thinking"], json!({"type": "enabled"}));
    assert!(o.get("reasoning_effort").is_none());
}

#[test]
fn reasoning_to_gemini_thinking_config() {
    let o = json!({"model": "x", "reasoning_effort": "low", "messages": [{"role": "user", "content": "x"}]});
    let g = run(O, o.clone(), G, "gemini-2.5-flash");
    assert_eq!(
        g["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 1024, "includeThoughts": true})
    );
    let g = run(O, o, G, "gemini-3-pro-preview");
    assert_eq!(
        g["generationConfig"]["thinkingConfig"],
        json!({"thinkingLevel": "low", "includeThoughts": true})
    );
    let a = json!({"model": "c", "max_tokens": 9000, "thinking": {"type": "enabled", "budget_tokens": 4096}, "messages": [{"role": "user", "content": "x"}]});
    let g = run(A, a, G, "gemini-3-pro-preview");
    assert_eq!(
        g["generationConfig"],
        json!({"maxOutputTokens": 9000, "thinkingConfig": {"thinkingBudget": 4096, "includeThoughts": true}})
    );
    let off = json!({"model": "c", "max_tokens": 10, "thinking": {"type": "disabled"}, "messages": [{"role": "user", "content": "x"}]});
    assert_eq!(
        run(A, off.clone(), G, "gemini-2.5-flash")["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 0})
    );
    assert!(run(A, off, G, "gemini-2.5-pro")["generationConfig"]
        .get("thinkingConfig")
        .is_none());
}

#[test]
fn pitfall_23_foreign_thinking_signatures_are_dropped_for_anthropic() {
    let gemini_sig = signature::mint("google/gemini-3-pro", "CiQB");
    let ds_sig = signature::mint("deepseek/deepseek-v4", "");
    let body = json!({"model": "c", "max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 2000},
    "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "from gemini", "signature": gemini_sig},
            {"type": "text", "text": "A1"},
        ]},
        {"role": "user", "content": "b"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "from deepseek", "signature": ds_sig},
            {"type": "redacted_thinking", "data": "native-redacted"},
            {"type": "thinking", "thinking": "from claude", "signature": "EqNative"},
            {"type": "text", "text": "A2"},
        ]},
        {"role": "user", "content": "c"},
    ]});
    let caps = Capabilities::default();
    let t = run_full(
        A,
        &body,
        A,
        "claude-sonnet-4-5",
        &caps,
        "anthropic/claude-sonnet-4-5",
    )
    .unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        out["messages"][1]["content"],
        json!([{"type": "text", "text": "A1"}])
    );
    assert_eq!(
        out["messages"][3]["content"],
        json!([
            {"type": "redacted_thinking", "data": "native-redacted"},
            {"type": "thinking", "thinking": "from claude", "signature": "EqNative"},
            {"type": "text", "text": "A2"},
        ])
    );
    // The same history to the Gemini origin: its own signature comes back unwrapped.
    let t = run_full(A, &body, G, "gemini-3-pro", &caps, "google/gemini-3-pro").unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        out["contents"][1]["parts"],
        json!([{"text": "from gemini", "thought": true, "thoughtSignature": "CiQB"}, {"text": "A1"}])
    );
    assert_eq!(out["contents"][3]["parts"], json!([{"text": "A2"}]));
    // A minted signature for this very upstream is replayed as its payload.
    let own = signature::mint("proxy/claude-x", "EqProxy");
    let body = json!({"model": "c", "max_tokens": 10, "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": own}, {"type": "text", "text": "x"}]},
        {"role": "user", "content": "b"},
    ]});
    let t = run_full(A, &body, A, "claude-x", &caps, "proxy/claude-x").unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(out["messages"][1]["content"][0]["signature"], "EqProxy");
}

#[test]
fn pitfall_24_tool_loop_without_replayable_thinking_disables_thinking() {
    let foreign = signature::mint("deepseek/v4", "");
    let body = |sig: &str| {
        json!({"model": "c", "max_tokens": 5000, "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "plan", "signature": sig},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {}},
            ]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
        ]})
    };
    let caps = Capabilities::default();
    let run_a = |b: Value| -> Value {
        let t = run_full(A, &b, A, "claude", &caps, "anthropic/claude").unwrap();
        serde_json::from_slice(&t.body).unwrap()
    };
    // Native signature: the thinking block is replayed first, thinking stays on.
    let out = run_a(body("EqNative"));
    assert_eq!(out["messages"][1]["content"][0]["type"], "thinking");
    assert_eq!(out["thinking"]["type"], "enabled");
    // Foreign signature: the block is dropped, so thinking must be switched off for this turn.
    let out = run_a(body(&foreign));
    assert_eq!(out["messages"][1]["content"][0]["type"], "tool_use");
    assert!(out.get("thinking").is_none());
    // An OpenAI client (no signatures at all) in a tool loop, asking for reasoning.
    let out = run(
        O,
        json!({"model": "x", "reasoning_effort": "medium", "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "reasoning_content": "plan", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ]}),
        A,
        "claude",
    );
    assert!(out.get("thinking").is_none());
}

#[test]
fn openai_reasoning_details_signatures_replay_to_anthropic() {
    let out = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": null, "reasoning_content": "plan",
             "reasoning_details": [{"type": "reasoning.text", "text": "plan", "signature": "EqSig", "format": "anthropic-claude-v1"},
                                   {"type": "reasoning.encrypted", "data": "ENC"}],
             "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c", "content": "ok"},
        ], "reasoning_effort": "low", "max_completion_tokens": 3000}),
        A,
        "claude",
    );
    assert_eq!(
        out["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": "plan", "signature": "EqSig"},
            {"type": "redacted_thinking", "data": "ENC"},
            {"type": "tool_use", "id": "c", "name": "f", "input": {}},
        ])
    );
    assert_eq!(
        out["thinking"],
        json!({"type": "enabled", "budget_tokens": 1024})
    );
}

#[test]
fn openai_clients_replay_the_response_sides_reasoning_details() {
    // Streamed to an OpenAI client from Claude: text in reasoning_content, the signature in a
    // text-less reasoning.text entry.
    let claude_sig = signature::mint("openrouter/claude", "EqOR");
    let body = json!({"model": "x", "reasoning_effort": "low", "max_completion_tokens": 4000, "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": null, "reasoning_content": "plan",
         "reasoning_details": [{"type": "reasoning.text", "text": "", "signature": "EqNative", "format": "anthropic-claude-v1", "index": 0}],
         "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"},
    ]});
    let out = run(O, body, A, "claude");
    assert_eq!(
        out["messages"][1]["content"][0],
        json!({"type": "thinking", "thinking": "plan", "signature": "EqNative"})
    );
    assert_eq!(out["thinking"]["type"], "enabled");
    // From Gemini: the call's signature rides in a reasoning.encrypted entry tied to the call id.
    let caps = Capabilities::default();
    let gem_sig = signature::mint("google/gemini-3-pro", "Rmlyc3Q=");
    let body = json!({"model": "x", "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": null,
         "reasoning_details": [{"type": "reasoning.encrypted", "data": gem_sig, "id": "call_9", "format": "google-gemini-v1", "index": 0}],
         "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "call_10", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "ok"},
        {"role": "tool", "tool_call_id": "call_10", "content": "ok"},
    ]});
    let t = run_full(O, &body, G, "gemini-3-pro", &caps, "google/gemini-3-pro").unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        out["contents"][1]["parts"][0]["thoughtSignature"],
        "Rmlyc3Q="
    );
    assert!(out["contents"][1]["parts"][1]
        .get("thoughtSignature")
        .is_none());
    // A proxy upstream gets its own artifacts back as reasoning_details.
    let body = json!({"model": "c", "max_tokens": 10, "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "plan", "signature": claude_sig},
            {"type": "thinking", "thinking": "other", "signature": "EqElsewhere"},
            {"type": "text", "text": "x"},
        ]},
        {"role": "user", "content": "b"},
    ]});
    let t = run_full(A, &body, O, "anthropic/claude", &caps, "openrouter/claude").unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        out["messages"][1]["reasoning_details"],
        json!([{"type": "reasoning.text", "text": "plan", "signature": "EqOR", "index": 0}])
    );
}

#[test]
fn pitfall_25_deepseek_reasoning_content_echoed_on_every_assistant_turn() {
    let ds = preset("deepseek").unwrap();
    let body = json!({"model": "c", "max_tokens": 100, "thinking": {"type": "enabled", "budget_tokens": 2000},
    "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should call f", "signature": signature::mint("deepseek/v4", "")},
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"x": 1}},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "1"}]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t2", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t2", "content": "2"}]},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "next"},
    ]});
    let out = run_caps(A, body.clone(), O, "deepseek-v4", &ds);
    let m = &out["messages"];
    assert_eq!(m[1]["reasoning_content"], "I should call f");
    assert_eq!(m[1]["content"], Value::Null);
    assert_eq!(m[3]["reasoning_content"], "");
    assert_eq!(m[5]["reasoning_content"], "");
    assert_eq!(out["thinking"], json!({"type": "enabled"}));
    // Not for plain OpenAI.
    let out = run(A, body, O, "gpt-5");
    assert!(out["messages"][1].get("reasoning_content").is_none());
}

#[test]
fn pitfall_26_gemini_thought_signatures_carried_and_sentinel_used() {
    // Gemini → Gemini: signatures stay on their parts.
    let g = json!({"contents": [
        {"role": "user", "parts": [{"text": "a"}]},
        {"role": "model", "parts": [
            {"functionCall": {"name": "f", "args": {"x": 1}}, "thoughtSignature": "SIG1"},
            {"functionCall": {"name": "g", "args": {}}},
        ]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "f", "response": {"output": "1"}}},
            {"functionResponse": {"name": "g", "response": {"output": "2"}}},
        ]},
        {"role": "model", "parts": [{"text": "done", "thoughtSignature": "SIG2"}, {"text": "more"}, {"text": "", "thoughtSignature": "SIG3"}]},
        {"role": "user", "parts": [{"text": "b"}]},
    ]});
    let out = run(G, g.clone(), G, "gemini-3-pro");
    assert_eq!(out["contents"], g["contents"]);
    // OpenAI client (Gemini OpenAI-compat signatures) → Gemini.
    let out = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"},
                 "extra_content": {"google": {"thought_signature": "SIGX"}}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
            {"role": "assistant", "tool_calls": [
                {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        ]}),
        G,
        "gemini-3-flash",
    );
    assert_eq!(out["contents"][1]["parts"][0]["thoughtSignature"], "SIGX");
    // No known signature (another vendor's turn): the documented sentinel.
    assert_eq!(
        out["contents"][3]["parts"][0]["thoughtSignature"],
        gemini::SKIP_SIGNATURE
    );
    // Not for Gemini 2.x.
    let out2 = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c2", "content": "ok"},
        ]}),
        G,
        "gemini-2.5-flash",
    );
    assert!(out2["contents"][1]["parts"][0]
        .get("thoughtSignature")
        .is_none());
    // Anthropic client carrying a gateway-minted Gemini signature on its thinking block: it goes
    // back onto the function call.
    let caps = Capabilities::default();
    let body = json!({"model": "c", "max_tokens": 10, "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "plan", "signature": signature::mint("google/gemini-3-pro", "SIGG")},
            {"type": "tool_use", "id": "call_1", "name": "f", "input": {"q": 1}},
        ]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "r"}]},
    ]});
    let t = run_full(A, &body, G, "gemini-3-pro", &caps, "google/gemini-3-pro").unwrap();
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        out["contents"][1]["parts"],
        json!([
            {"text": "plan", "thought": true},
            {"functionCall": {"id": "call_1", "name": "f", "args": {"q": 1}}, "thoughtSignature": "SIGG"},
        ])
    );
    assert_eq!(
        out["contents"][2]["parts"],
        json!([{"functionResponse": {"id": "call_1", "name": "f", "response": {"output": "r"}}}])
    );
}

#[test]
fn pitfall_27_temperature_and_top_p_not_sent_together_to_anthropic() {
    let out = run(
        O,
        json!({"model": "x", "temperature": 0.5, "top_p": 0.9, "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude",
    );
    assert_eq!(out["temperature"], 0.5);
    assert!(out.get("top_p").is_none());
    let out = run(
        O,
        json!({"model": "x", "top_p": 0.9, "messages": [{"role": "user", "content": "x"}]}),
        A,
        "claude",
    );
    assert_eq!(out["top_p"], 0.9);
}

// ---------------------------------------------------------------------------------------------
// Gemini

#[test]
fn openai_to_gemini_full_conversation() {
    let out = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "system", "content": "S"},
            {"role": "user", "content": [
                {"type": "text", "text": "see"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/"}},
                {"type": "image_url", "image_url": {"url": "https://x.test/p.png?x=1"}},
                {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
            ]},
            {"role": "assistant", "content": "ok", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get", "arguments": "{\"k\":1}"}},
                {"id": "c2", "type": "function", "function": {"name": "put", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "{\"v\": 2}"},
            {"role": "tool", "tool_call_id": "c2", "content": "done"},
            {"role": "user", "content": "next"},
        ],
        "tools": [{"type": "function", "function": {"name": "get", "parameters": {"type": "object", "properties": {"k": {"type": "integer"}}}}}],
        "tool_choice": {"type": "function", "function": {"name": "get"}},
        "temperature": 0.7, "top_p": 0.9, "max_tokens": 50, "stop": ["x"], "seed": 1,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object"}}},
        "user": "u"}),
        G,
        "gemini-2.5-pro",
    );
    assert_eq!(
        out,
        json!({
            "systemInstruction": {"parts": [{"text": "S"}]},
            "contents": [
                {"role": "user", "parts": [
                    {"text": "see"},
                    {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/"}},
                    {"fileData": {"mimeType": "image/png", "fileUri": "https://x.test/p.png?x=1"}},
                    {"inlineData": {"mimeType": "audio/wav", "data": "UklG"}},
                ]},
                {"role": "model", "parts": [
                    {"text": "ok"},
                    {"functionCall": {"id": "c1", "name": "get", "args": {"k": 1}}},
                    {"functionCall": {"id": "c2", "name": "put", "args": {}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"id": "c1", "name": "get", "response": {"v": 2}}},
                    {"functionResponse": {"id": "c2", "name": "put", "response": {"output": "done"}}},
                    {"text": "next"},
                ]},
            ],
            "tools": [{"functionDeclarations": [{"name": "get", "parametersJsonSchema": {"type": "object", "properties": {"k": {"type": "integer"}}}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get"]}},
            "generationConfig": {
                "temperature": 0.7, "topP": 0.9, "maxOutputTokens": 50, "stopSequences": ["x"], "seed": 1,
                "responseMimeType": "application/json", "responseJsonSchema": {"type": "object"},
            },
        })
    );
}

#[test]
fn pitfall_19_gemini_call_and_response_counts_match() {
    // Two calls, one answered, the other dropped by the client: Gemini still gets two responses.
    let out = run(
        O,
        json!({"model": "x", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "a", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "b", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "c2", "content": "B"},
            {"role": "tool", "tool_call_id": "c9", "content": "stale"},
        ]}),
        G,
        "gemini-2.5-flash",
    );
    let parts = out["contents"][2]["parts"].as_array().unwrap();
    let responses: Vec<&Value> = parts
        .iter()
        .filter(|p| p.get("functionResponse").is_some())
        .collect();
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0]["functionResponse"]["name"], "b");
    assert_eq!(responses[1]["functionResponse"]["name"], "a");
    assert_eq!(
        responses[1]["functionResponse"]["response"],
        json!({"error": INTERRUPTED})
    );
    assert_eq!(
        parts.last().unwrap()["text"],
        "[Result of tool call c9]\nstale"
    );
}

#[test]
fn pitfall_18_gemini_schemas_use_json_schema_or_are_sanitized() {
    let schema = json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "title": "T",
        "additionalProperties": false,
        "properties": {"mode": {"const": "fast"}, "n": {"type": ["integer", "null"]}, "tags": {"type": "array", "items": {"type": "string", "propertyNames": {}}}},
        "required": ["mode"]});
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "x"}],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]});
    let out = run(O, body.clone(), G, "gemini-2.5-pro");
    assert_eq!(
        out["tools"][0]["functionDeclarations"][0]["parametersJsonSchema"],
        schema
    );
    let out = run(O, body, G, "gemini-2.0-flash");
    assert_eq!(
        out["tools"][0]["functionDeclarations"][0]["parameters"],
        json!({"type": "object",
               "properties": {"mode": {"enum": ["fast"], "type": "string"}, "n": {"type": "integer", "nullable": true},
                              "tags": {"type": "array", "items": {"type": "string"}}},
               "required": ["mode"]})
    );
}

#[test]
fn gemini_to_openai_synthesizes_ids_and_pairs_responses_by_name() {
    let out = run(
        G,
        json!({
            "systemInstruction": {"parts": [{"text": "S"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "go"}]},
                {"role": "model", "parts": [
                    {"text": "thinking...", "thought": true},
                    {"functionCall": {"name": "a", "args": {"x": 1}}},
                    {"functionCall": {"name": "b", "args": {}}},
                ]},
                {"role": "user", "parts": [
                    {"functionResponse": {"name": "b", "response": {"error": "boom"}}},
                    {"functionResponse": {"name": "a", "response": {"result": {"y": 2}}}},
                ]},
            ],
            "tools": [{"functionDeclarations": [{"name": "a", "parameters": {"type": "OBJECT", "properties": {"x": {"type": "INTEGER", "nullable": true}}}}]},
                      {"functionDeclarations": [{"name": "b"}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"temperature": 0.1, "maxOutputTokens": 99, "responseMimeType": "application/json"},
        }),
        O,
        "gpt-5",
    );
    assert_eq!(
        out,
        json!({
            "model": "gpt-5",
            "messages": [
                {"role": "system", "content": "S\n\nRespond only with a single JSON object (no prose, no code fences)."},
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "gcall_1_0", "type": "function", "function": {"name": "a", "arguments": "{\"x\":1}"}},
                    {"id": "gcall_1_1", "type": "function", "function": {"name": "b", "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "gcall_1_1", "content": "Error: boom"},
                {"role": "tool", "tool_call_id": "gcall_1_0", "content": "{\"result\":{\"y\":2}}"},
            ],
            "tools": [
                {"type": "function", "function": {"name": "a", "parameters": {"type": "object", "properties": {"x": {"type": ["integer", "null"]}}}}},
                {"type": "function", "function": {"name": "b"}},
            ],
            "tool_choice": "auto",
            "max_completion_tokens": 99,
            "temperature": 0.1,
            "response_format": {"type": "json_object"},
        })
    );
}

#[test]
fn anthropic_to_gemini_results_documents_and_prefill() {
    let out = run(
        A,
        json!({"model": "c", "max_tokens": 10, "messages": [
            {"role": "assistant", "content": "Earlier"},
            {"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain"}, "title": "T"},
                {"type": "text", "text": "sum up"},
            ]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "see image"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "PNG"}},
            ]}]},
        ]}),
        G,
        "gemini-2.5-flash",
    );
    assert_eq!(
        out["contents"],
        json!([
            {"role": "user", "parts": [{"text": "(empty)"}]},
            {"role": "model", "parts": [{"text": "Earlier"}]},
            {"role": "user", "parts": [
                {"inlineData": {"mimeType": "application/pdf", "data": "JVB"}},
                {"text": "T"}, {"text": "plain"},
                {"text": "sum up"},
            ]},
            {"role": "model", "parts": [{"functionCall": {"id": "t1", "name": "f", "args": {}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"id": "t1", "name": "f", "response": {"output": "see image"}}},
                {"inlineData": {"mimeType": "image/png", "data": "PNG"}},
            ]},
        ])
    );
    assert_eq!(
        out["generationConfig"],
        json!({"maxOutputTokens": 10, "thinkingConfig": {"thinkingBudget": 0}})
    );
}

#[test]
fn gemini_to_anthropic_full_conversation() {
    let out = run(
        G,
        json!({
            "systemInstruction": {"parts": [{"text": "S1"}, {"text": "S2"}]},
            "contents": [
                {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
                                           {"inline_data": {"mime_type": "application/pdf", "data": "JVB"}}]},
                {"role": "model", "parts": [
                    {"text": "summary", "thought": true, "thoughtSignature": "GSIG"},
                    {"functionCall": {"id": "fc1", "name": "lookup", "args": {"q": "x"}}, "thoughtSignature": "GSIG2"},
                ]},
                {"role": "user", "parts": [{"functionResponse": {"id": "fc1", "name": "lookup", "response": {"output": {"hits": 3}}}}]},
            ],
            "tools": [{"function_declarations": [{"name": "lookup", "description": "L", "parametersJsonSchema": {"type": "object", "properties": {"q": {"type": "string"}}}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["lookup"]}},
            "generationConfig": {"temperature": 0.4, "topK": 3, "maxOutputTokens": 300, "stopSequences": ["Z"], "candidateCount": 1},
        }),
        A,
        "claude-sonnet-4-5",
    );
    assert_eq!(
        out,
        json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "S1"}, {"type": "text", "text": "S2"}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/webp", "data": "UklG"}},
                    {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB"}},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "fc1", "name": "lookup", "input": {"q": "x"}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "fc1", "content": "{\"hits\":3}"},
                ]},
            ],
            "tools": [{"name": "lookup", "description": "L", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "lookup"},
            "max_tokens": 300,
            "temperature": 0.4,
            "top_k": 3,
            "stop_sequences": ["Z"],
        })
    );
}

#[test]
fn gemini_round_trip_keeps_unknown_fields() {
    let g = json!({
        "contents": [{"role": "user", "parts": [{"text": "hi"}, {"executableCode": {"language": "PYTHON", "code": "1"}}]}],
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "tools": [{"googleSearch": {}}],
        "generationConfig": {"temperature": 0.5, "mediaResolution": "MEDIA_RESOLUTION_LOW",
                             "thinkingConfig": {"includeThoughts": true}},
    });
    let out = run(G, g.clone(), G, "gemini-2.5-flash");
    assert_eq!(out, g);
}

// ---------------------------------------------------------------------------------------------
// Tool choice and structured output

#[test]
fn tool_choice_maps_in_every_direction() {
    let o_body = |tc: Value| {
        json!({"model": "x", "messages": [{"role": "user", "content": "x"}], "tool_choice": tc,
               "tools": [{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "g"}}]})
    };
    let cases = [
        (
            json!("auto"),
            json!({"type": "auto"}),
            json!({"mode": "AUTO"}),
        ),
        (
            json!("required"),
            json!({"type": "any"}),
            json!({"mode": "ANY"}),
        ),
        (
            json!("none"),
            json!({"type": "none"}),
            json!({"mode": "NONE"}),
        ),
        (
            json!({"type": "function", "function": {"name": "g"}}),
            json!({"type": "tool", "name": "g"}),
            json!({"mode": "ANY", "allowedFunctionNames": ["g"]}),
        ),
    ];
    for (o, a, g) in cases {
        assert_eq!(run(O, o_body(o.clone()), A, "c")["tool_choice"], a);
        assert_eq!(
            run(O, o_body(o.clone()), G, "gemini-2.5-pro")["toolConfig"]["functionCallingConfig"],
            g
        );
        let a_body = json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": a,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"name": "g", "input_schema": {"type": "object"}}]});
        assert_eq!(run(A, a_body, O, "gpt")["tool_choice"], o);
    }
    // allowed_tools subset → Anthropic filters the tools.
    let out = run(
        O,
        o_body(
            json!({"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "g"}}]}}),
        ),
        A,
        "c",
    );
    assert_eq!(out["tools"].as_array().unwrap().len(), 1);
    assert_eq!(out["tool_choice"], json!({"type": "any"}));
    // GLM accepts only auto.
    let glm = preset("glm").unwrap();
    let a_body = |tc: Value| {
        json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": tc,
            "tools": [{"name": "f", "input_schema": {"type": "object"}}, {"name": "g", "input_schema": {"type": "object"}}], "stream": true})
    };
    let out = run_caps(A, a_body(json!({"type": "any"})), O, "glm-4.6", &glm);
    assert_eq!(out["tool_choice"], "auto");
    assert_eq!(out["tool_stream"], true);
    assert_eq!(out["max_tokens"], 1);
    let out = run_caps(
        A,
        a_body(json!({"type": "tool", "name": "g"})),
        O,
        "glm-4.6",
        &glm,
    );
    assert_eq!(out["tool_choice"], "auto");
    assert_eq!(
        out["tools"],
        json!([{"type": "function", "function": {"name": "g", "parameters": {"type": "object"}}}])
    );
    let out = run_caps(A, a_body(json!({"type": "none"})), O, "glm-4.6", &glm);
    assert!(
        out.get("tools").is_none()
            && out.get("tool_choice").is_none()
            && out.get("tool_stream").is_none()
    );
}

#[test]
fn json_mode_and_schema_map_to_each_dialect() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}}});
    let a = run(O, body.clone(), A, "claude");
    assert_eq!(
        a["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
    // Without native structured outputs: the tool trick.
    let caps = Capabilities {
        structured_outputs: false,
        ..Capabilities::default()
    };
    let t = run_full(O, &body, A, "claude-3-5-haiku", &caps, "").unwrap();
    let a: Value = serde_json::from_slice(&t.body).unwrap();
    assert_eq!(
        a["tools"],
        json!([{"name": "answer", "input_schema": schema}])
    );
    assert_eq!(a["tool_choice"], json!({"type": "tool", "name": "answer"}));
    assert_eq!(t.ctx.json_tool.as_deref(), Some("answer"));
    // DeepSeek: json_object + the schema in words.
    let ds = preset("deepseek").unwrap();
    let o = run_caps(O, body.clone(), O, "deepseek-chat", &ds);
    assert_eq!(o["response_format"], json!({"type": "json_object"}));
    assert!(o["messages"][0]["content"]
        .as_str()
        .unwrap()
        .contains("\"properties\""));
    // Anthropic output_config.format → OpenAI json_schema.
    let o = run(
        A,
        json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
               "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        O,
        "gpt",
    );
    assert_eq!(
        o["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "structured_output", "schema": schema}})
    );
    // json_object → Anthropic: an instruction.
    let a = run(
        O,
        json!({"model": "x", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}}),
        A,
        "claude",
    );
    assert!(a["system"].as_str().unwrap().contains("JSON object"));
}

// ---------------------------------------------------------------------------------------------
// Refusals (400 naming the field)

#[test]
fn unmappable_fields_give_400_naming_them() {
    let base = |extra: Value| {
        let mut b = json!({"model": "x", "messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    let cases: Vec<(Dialect, Value, Dialect, &str)> = vec![
        (O, base(json!({"n": 2})), A, "n"),
        (O, base(json!({"n": 3})), G, "n"),
        (O, base(json!({"logprobs": true})), A, "logprobs"),
        (O, base(json!({"top_logprobs": 2})), A, "top_logprobs"),
        (
            O,
            base(json!({"audio": {"voice": "x", "format": "wav"}})),
            A,
            "audio",
        ),
        (
            O,
            base(json!({"modalities": ["text", "audio"]})),
            G,
            "modalities",
        ),
        (
            O,
            base(json!({"web_search_options": {}})),
            A,
            "web_search_options",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}]}]}),
            A,
            "messages[0].content[0]",
        ),
        (
            O,
            json!({"model": "x", "messages": [
                {"role": "system", "content": "S"},
                {"role": "assistant", "reasoning_content": "r", "tool_calls": [{"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "a", "content": "ok"},
                {"role": "user", "content": [{"type": "text", "text": "hear"}, {"type": "input_audio", "input_audio": {"data": "x", "format": "mp3"}}]},
            ]}),
            A,
            "messages[3].content[1]",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}),
            A,
            "messages[0].content[0]",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0"}}]}]}),
            A,
            "messages[0].content[0]",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "custom", "custom": {"name": "c"}}]}),
            A,
            "tools[0]",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            O,
            "tools[0]",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}),
            O,
            "mcp_servers",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
            O,
            "messages[0].content[0]",
        ),
        (
            G,
            json!({"contents": [{"parts": [{"text": "x"}]}], "cachedContent": "cachedContents/1"}),
            A,
            "cachedContent",
        ),
        (
            G,
            json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2}}),
            O,
            "generationConfig.candidateCount",
        ),
        (
            G,
            json!({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"responseModalities": ["IMAGE"]}}),
            O,
            "generationConfig.responseModalities",
        ),
        (
            G,
            json!({"contents": [{"parts": [{"text": "x"}]}], "tools": [{"codeExecution": {}}]}),
            A,
            "tools[0]",
        ),
    ];
    for (client, body, target, field) in cases {
        let e = err(client, body.clone(), target);
        assert_eq!(e.kind, crate::ErrorKind::InvalidRequest, "{body}");
        assert_eq!(e.param.as_deref(), Some(field), "{body}: {}", e.message);
        assert_eq!(e.status(client), 400);
    }
    // …but the same fields are fine for their own dialect.
    assert!(run_full(
        O,
        &base(json!({"n": 2, "logprobs": true, "audio": {}})),
        O,
        "gpt",
        &Capabilities::default(),
        ""
    )
    .is_ok());
}

#[test]
fn malformed_requests_give_400_naming_the_field() {
    let cases: Vec<(Dialect, Value, &str)> = vec![
        (O, json!({"model": "x"}), "messages"),
        (O, json!({"model": "x", "messages": {}}), "messages"),
        (O, json!({"model": "x", "messages": ["hi"]}), "messages[0]"),
        (
            O,
            json!({"model": "x", "messages": [{"content": "x"}]}),
            "messages[0].role",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "wizard", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,abc"}}]}]}),
            "messages[0].content[0].image_url.url",
        ),
        (
            O,
            json!({"model": "x", "messages": [], "temperature": "hot"}),
            "temperature",
        ),
        (
            O,
            json!({"model": "x", "messages": [], "max_tokens": -1}),
            "max_tokens",
        ),
        (
            O,
            json!({"model": "x", "messages": [], "stream": "yes"}),
            "stream",
        ),
        (
            O,
            json!({"model": "x", "messages": [], "tools": [{"type": "function", "function": {}}]}),
            "tools[0].function.name",
        ),
        (
            O,
            json!({"model": "x", "messages": [], "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (
            O,
            json!({"model": "x", "messages": [], "response_format": {"type": "yaml"}}),
            "response_format.type",
        ),
        (
            O,
            json!({"model": "x", "messages": [{"role": "assistant", "tool_calls": [{"id": "a", "function": {"arguments": "{}"}}]}]}),
            "messages[0].tool_calls[0].function.name",
        ),
        (A, json!({"model": "c", "max_tokens": 1}), "messages"),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
            "messages[0].content[0].type",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64"}}]}]}),
            "messages[0].content[0].source.media_type",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [], "system": 3}),
            "system",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": 1, "messages": [], "thinking": {"type": "sometimes"}}),
            "thinking.type",
        ),
        (
            A,
            json!({"model": "c", "max_tokens": "many", "messages": []}),
            "max_tokens",
        ),
        (G, json!({}), "contents"),
        (
            G,
            json!({"contents": [{"role": "robot", "parts": []}]}),
            "contents[0].role",
        ),
        (
            G,
            json!({"contents": [], "generationConfig": {"temperature": "x"}}),
            "generationConfig.temperature",
        ),
    ];
    for (client, body, field) in cases {
        let e = err(client, body.clone(), if client == O { A } else { O });
        assert_eq!(e.param.as_deref(), Some(field), "{body}: {}", e.message);
        assert_eq!(e.status(client), 400);
    }
    let e = translate_request(
        O,
        b"{not json",
        "m",
        &target(A, "m", &Capabilities::default()),
    )
    .unwrap_err();
    assert_eq!(e.status(O), 400);
    let e =
        translate_request(O, b"[1]", "m", &target(A, "m", &Capabilities::default())).unwrap_err();
    assert_eq!(e.status(O), 400);
}

#[test]
fn empty_conversation_to_anthropic_is_refused() {
    let e = err(
        O,
        json!({"model": "x", "messages": [{"role": "system", "content": "only system"}]}),
        A,
    );
    assert_eq!(e.param.as_deref(), Some("messages"));
}

// ---------------------------------------------------------------------------------------------
// Vendor shaping and same-dialect round trips

#[test]
fn developer_role_and_max_tokens_follow_capabilities() {
    let body = json!({"model": "x", "messages": [{"role": "developer", "content": "D"}, {"role": "user", "content": "u"},
        {"role": "system", "content": "mid"}, {"role": "user", "content": "v"}], "max_completion_tokens": 7});
    let out = run(O, body.clone(), O, "gpt-5");
    assert_eq!(out["messages"][0]["role"], "developer");
    assert_eq!(
        out["messages"][2],
        json!({"role": "developer", "content": "mid"})
    );
    assert_eq!(out["max_completion_tokens"], 7);
    let ds = preset("deepseek").unwrap();
    let out = run_caps(O, body.clone(), O, "deepseek-chat", &ds);
    assert_eq!(out["messages"][0]["role"], "system");
    assert_eq!(out["max_tokens"], 7);
    assert!(out.get("max_completion_tokens").is_none());
    // Mid-conversation system messages are hoisted for Anthropic and Gemini.
    let a = run(O, body.clone(), A, "claude");
    assert_eq!(
        a["system"],
        "D\n\nmid"
            .split("\n\n")
            .map(|t| json!({"type": "text", "text": t}))
            .collect::<Value>()
    );
    assert_eq!(
        a["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "u"}, {"type": "text", "text": "v"}]}])
    );
    let g = run(O, body, G, "gemini-2.5-pro");
    assert_eq!(
        g["systemInstruction"],
        json!({"parts": [{"text": "D"}, {"text": "mid"}]})
    );
}

#[test]
fn openai_round_trip_keeps_extras() {
    let body = json!({"model": "gpt-5", "messages": [{"role": "user", "content": "x"}],
        "logit_bias": {"1": 2}, "store": true, "metadata": {"k": "v"}, "service_tier": "flex", "n": 2,
        "stream": true, "stream_options": {"include_usage": false, "include_obfuscation": false}});
    let out = run(O, body, O, "gpt-5");
    assert_eq!(
        out,
        json!({"model": "gpt-5", "messages": [{"role": "user", "content": "x"}],
            "logit_bias": {"1": 2}, "store": true, "metadata": {"k": "v"}, "service_tier": "flex", "n": 2,
            "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false}})
    );
}

#[test]
fn openai_cache_control_passes_to_capable_proxies_only() {
    let body = json!({"model": "x", "messages": [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "x"}]});
    let a_body = json!({"model": "c", "max_tokens": 5, "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}]});
    let plain = run(A, a_body.clone(), O, "gpt");
    assert_eq!(
        plain["messages"],
        json!([{"role": "system", "content": "S"}, {"role": "user", "content": "x"}])
    );
    let caps = Capabilities {
        cache_control: true,
        ..Capabilities::default()
    };
    let proxy = run_caps(A, a_body, O, "anthropic/claude", &caps);
    assert_eq!(
        proxy["messages"],
        json!([
            {"role": "system", "content": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}]},
            {"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]},
        ])
    );
    assert_eq!(run(O, body.clone(), O, "x")["messages"], body["messages"]);
    // Claude Code marks its newest block, often a tool result.
    let a_body = json!({"model": "c", "max_tokens": 5, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "r", "cache_control": {"type": "ephemeral"}}]},
    ]});
    let proxy = run_caps(A, a_body.clone(), O, "anthropic/claude", &caps);
    assert_eq!(
        proxy["messages"][2],
        json!({"role": "tool", "tool_call_id": "t", "content": [{"type": "text", "text": "r", "cache_control": {"type": "ephemeral"}}]})
    );
    assert_eq!(run(A, a_body, O, "gpt")["messages"][2]["content"], "r");
}

#[test]
fn gemini_upstream_stream_flag_follows_the_client() {
    let caps = Capabilities::default();
    let t = run_full(
        A,
        &json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        G,
        "gemini-2.5-pro",
        &caps,
        "google/gemini-2.5-pro",
    )
    .unwrap();
    assert!(t.upstream_stream && t.ctx.upstream_stream && t.ctx.client_stream);
    let out: Value = serde_json::from_slice(&t.body).unwrap();
    assert!(out.get("stream").is_none() && out.get("model").is_none());
}

// ---------------------------------------------------------------------------------------------
// Property tests: same-dialect round trips through the IR lose none of the mapped fields.

mod roundtrip {
    use super::*;
    use proptest::collection::vec;
    use proptest::option;
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9 ,.!?é中-]{0,24}".prop_map(|s| s)
    }

    fn nonblank() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9é中][a-zA-Z0-9 ,.!?é中-]{0,20}"
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9_]{0,15}"
    }

    fn args() -> impl Strategy<Value = Value> {
        proptest::collection::btree_map(
            "[a-z]{1,6}",
            prop_oneof![
                any::<i32>().prop_map(|n| json!(n)),
                text().prop_map(|s| json!(s)),
                any::<bool>().prop_map(|b| json!(b)),
            ],
            0..4,
        )
        .prop_map(|m| json!(m))
    }

    fn hundredths(lo: u32, hi: u32) -> impl Strategy<Value = f64> {
        (lo..=hi).prop_map(|n| n as f64 / 100.0)
    }

    /// One OpenAI turn group: a user message, or an assistant message with text and/or tool
    /// calls followed by one tool message per call.
    fn openai_turn(k: usize) -> impl Strategy<Value = Vec<Value>> {
        prop_oneof![
            text().prop_map(|t| vec![json!({"role": "user", "content": t})]),
            (option::of(nonblank()), vec((name(), args(), text()), 0..3)).prop_map(move |(t, calls)| {
                let mut msg = json!({"role": "assistant"});
                msg["content"] = match (&t, calls.is_empty()) {
                    (Some(t), _) => json!(t),
                    (None, true) => json!(""),
                    (None, false) => Value::Null,
                };
                let mut out = vec![];
                if !calls.is_empty() {
                    msg["tool_calls"] = calls
                        .iter()
                        .enumerate()
                        .map(|(j, (n, a, _))| json!({"id": format!("call_{k}_{j}"), "type": "function", "function": {"name": n, "arguments": a.to_string()}}))
                        .collect();
                }
                out.push(msg);
                for (j, (_, _, r)) in calls.iter().enumerate() {
                    out.push(json!({"role": "tool", "tool_call_id": format!("call_{k}_{j}"), "content": r}));
                }
                out
            }),
        ]
    }

    fn openai_request() -> impl Strategy<Value = Value> {
        let turns = (1usize..6).prop_flat_map(|n| (0..n).map(openai_turn).collect::<Vec<_>>());
        let sampling = (
            option::of(hundredths(0, 200)),
            option::of(hundredths(1, 100)),
            option::of(1u64..100_000),
            vec(nonblank(), 0..4),
            option::of(any::<i32>()),
            option::of(hundredths(0, 200)),
            option::of(hundredths(0, 200)),
        );
        let tools = vec((name(), option::of(text()), args()), 0..3);
        let misc = (
            option::of(text()),
            any::<bool>(),
            option::of(prop_oneof![
                Just("low"),
                Just("medium"),
                Just("high"),
                Just("none")
            ]),
            option::of(0usize..4),
            option::of(any::<bool>()),
        );
        (option::of(text()), any::<bool>(), turns, sampling, tools, misc).prop_map(
            |(system, developer, turns, s, tools, misc)| {
                let mut messages = vec![];
                if let Some(sys) = system {
                    messages.push(json!({"role": if developer { "developer" } else { "system" }, "content": sys}));
                }
                messages.extend(turns.into_iter().flatten());
                let mut b = json!({"model": "gpt-x", "messages": messages});
                let mut put = |k: &str, v: Option<Value>| {
                    if let Some(v) = v {
                        b[k] = v;
                    }
                };
                put("temperature", s.0.map(|v| json!(v)));
                put("top_p", s.1.map(|v| json!(v)));
                put("max_completion_tokens", s.2.map(|v| json!(v)));
                put("stop", (!s.3.is_empty()).then(|| json!(s.3)));
                put("seed", s.4.map(|v| json!(v)));
                put("presence_penalty", s.5.map(|v| json!(v)));
                put("frequency_penalty", s.6.map(|v| json!(v)));
                let (user, stream, effort, choice, parallel) = misc;
                put("user", user.map(|v| json!(v)));
                put("reasoning_effort", effort.map(|v| json!(v)));
                if stream {
                    put("stream", Some(json!(true)));
                    put("stream_options", Some(json!({"include_usage": true})));
                }
                if !tools.is_empty() {
                    let mut seen = std::collections::HashSet::new();
                    let defs: Vec<Value> = tools
                        .iter()
                        .filter(|(n, _, _)| seen.insert(n.clone()))
                        .map(|(n, d, schema)| {
                            let mut f = json!({"name": n, "parameters": {"type": "object", "properties": schema}});
                            if let Some(d) = d {
                                f["description"] = json!(d);
                            }
                            json!({"type": "function", "function": f})
                        })
                        .collect();
                    let first = defs[0]["function"]["name"].clone();
                    put("tools", Some(Value::Array(defs)));
                    put(
                        "tool_choice",
                        choice.map(|c| match c {
                            0 => json!("auto"),
                            1 => json!("required"),
                            2 => json!("none"),
                            _ => json!({"type": "function", "function": {"name": first}}),
                        }),
                    );
                    put("parallel_tool_calls", parallel.map(|p| json!(p)));
                }
                b
            },
        )
    }

    fn cache() -> impl Strategy<Value = Option<Value>> {
        option::of(prop_oneof![
            Just(json!({"type": "ephemeral"})),
            Just(json!({"type": "ephemeral", "ttl": "1h"})),
        ])
    }

    fn text_block() -> impl Strategy<Value = Value> {
        (nonblank(), cache()).prop_map(|(t, c)| {
            let mut b = json!({"type": "text", "text": t});
            if let Some(c) = c {
                b["cache_control"] = c;
            }
            b
        })
    }

    /// An Anthropic (assistant, user) exchange; with `thinking`, assistant turns start with a
    /// signed thinking block.
    fn anthropic_exchange(k: usize, thinking: bool) -> impl Strategy<Value = Vec<Value>> {
        (
            option::of(text_block()),
            vec((name(), args(), nonblank(), any::<bool>()), 0..3),
            vec(text_block(), 0..2),
            "[A-Za-z0-9+/]{8,16}",
            option::of("[A-Za-z0-9+/]{4,8}"),
        )
            .prop_map(move |(t, calls, user_text, sig, img)| {
                let mut a = vec![];
                if thinking {
                    a.push(json!({"type": "thinking", "thinking": "considering", "signature": sig}));
                }
                if let Some(t) = t {
                    a.push(t);
                }
                let mut u = vec![];
                for (j, (n, input, result, is_error)) in calls.iter().enumerate() {
                    let id = format!("toolu_{k}_{j}");
                    a.push(json!({"type": "tool_use", "id": id, "name": n, "input": input}));
                    let mut r = json!({"type": "tool_result", "tool_use_id": id, "content": result});
                    if *is_error {
                        r["is_error"] = json!(true);
                    }
                    u.push(r);
                }
                if a.is_empty() {
                    a.push(json!({"type": "text", "text": "ok"}));
                }
                u.extend(user_text);
                if let Some(data) = img {
                    u.push(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}}));
                }
                if u.is_empty() {
                    u.push(json!({"type": "text", "text": "go on"}));
                }
                vec![json!({"role": "assistant", "content": a}), json!({"role": "user", "content": u})]
            })
    }

    fn anthropic_request() -> impl Strategy<Value = Value> {
        (any::<bool>(), 0usize..4).prop_flat_map(|(thinking, n)| {
            let exchanges = (0..n).map(move |k| anthropic_exchange(k, thinking)).collect::<Vec<_>>();
            let system = prop_oneof![
                Just(None),
                nonblank().prop_map(|s| Some(json!(s))),
                vec(text_block(), 1..3).prop_map(|v| Some(
                    if v.len() == 1 && v[0].get("cache_control").is_none() {
                        v[0]["text"].clone()
                    } else {
                        Value::Array(v)
                    }
                )),
            ];
            let sampling = (
                option::of(hundredths(0, 100)),
                option::of(hundredths(1, 100)),
                option::of(1u64..500),
                vec(nonblank(), 0..3),
                2048u64..100_000,
            );
            let tools = vec((name(), option::of(nonblank()), args(), cache()), 0..3);
            let misc = (option::of(nonblank()), any::<bool>(), option::of(0usize..4), any::<bool>());
            (Just(thinking), vec(text_block(), 1..3), exchanges, system, sampling, tools, misc)
        })
        .prop_map(|(thinking, first, exchanges, system, s, tools, misc)| {
            let mut messages = vec![json!({"role": "user", "content": first})];
            messages.extend(exchanges.into_iter().flatten());
            let (temperature, top_p, top_k, stop, max_tokens) = s;
            let mut b = json!({"model": "claude-x", "max_tokens": max_tokens, "messages": messages});
            if let Some(sys) = system {
                b["system"] = sys;
            }
            if !stop.is_empty() {
                b["stop_sequences"] = json!(stop);
            }
            let (user, stream, choice, no_parallel) = misc;
            if let Some(u) = user {
                b["metadata"] = json!({"user_id": u});
            }
            if stream {
                b["stream"] = json!(true);
            }
            if thinking {
                b["thinking"] = json!({"type": "enabled", "budget_tokens": 1024 + max_tokens / 4});
            } else {
                // temperature xor top_p (pitfall 27 drops top_p otherwise)
                match (temperature, top_p) {
                    (Some(t), _) => b["temperature"] = json!(t),
                    (None, Some(p)) => b["top_p"] = json!(p),
                    _ => {}
                }
                if let Some(k) = top_k {
                    b["top_k"] = json!(k);
                }
            }
            if !tools.is_empty() {
                let mut seen = std::collections::HashSet::new();
                let defs: Vec<Value> = tools
                    .iter()
                    .filter(|(n, ..)| seen.insert(n.clone()))
                    .map(|(n, d, schema, c)| {
                        let mut t = json!({"name": n, "input_schema": {"type": "object", "properties": schema}});
                        if let Some(d) = d {
                            t["description"] = json!(d);
                        }
                        if let Some(c) = c {
                            t["cache_control"] = c.clone();
                        }
                        t
                    })
                    .collect();
                let first = defs[0]["name"].clone();
                b["tools"] = Value::Array(defs);
                // Forced choices are incompatible with thinking (pitfall 20).
                let mut tc = match (choice, thinking) {
                    (Some(0), _) => Some(json!({"type": "auto"})),
                    (Some(1), false) => Some(json!({"type": "any"})),
                    (Some(2), _) => Some(json!({"type": "none"})),
                    (Some(3), false) => Some(json!({"type": "tool", "name": first})),
                    _ => None,
                };
                if no_parallel && tc.as_ref().is_none_or(|t| t["type"] != "none") {
                    tc.get_or_insert_with(|| json!({"type": "auto"}))["disable_parallel_tool_use"] = json!(true);
                }
                if let Some(tc) = tc {
                    b["tool_choice"] = tc;
                }
            }
            b
        })
    }

    /// A messy OpenAI conversation: blank texts, Kimi-style ids, missing/orphan/duplicate tool
    /// messages, consecutive roles.
    fn messy_openai() -> impl Strategy<Value = Value> {
        let id = prop_oneof![
            "call_[a-z0-9]{1,4}",
            "functions\\.[A-Z][a-z]{1,5}:[0-9]",
            Just(String::new()),
        ];
        let msg = prop_oneof![
            prop_oneof![text(), Just("   ".to_string())].prop_map(|t| json!({"role": "user", "content": t})),
            (option::of(prop_oneof![text(), Just(" ".to_string())]), vec((id.clone(), name()), 0..3)).prop_map(|(t, calls)| {
                let mut m = json!({"role": "assistant", "content": t});
                if !calls.is_empty() {
                    m["tool_calls"] = calls
                        .iter()
                        .map(|(id, n)| json!({"id": id, "type": "function", "function": {"name": n, "arguments": "{}"}}))
                        .collect();
                }
                m
            }),
            (id, text()).prop_map(|(id, t)| json!({"role": "tool", "tool_call_id": id, "content": t})),
            text().prop_map(|t| json!({"role": "system", "content": t})),
        ];
        vec(msg, 1..10).prop_map(|mut msgs| {
            // Make tool messages answer real calls half of the time.
            let mut ids: Vec<String> = vec![];
            for m in &mut msgs {
                if let Some(calls) = m["tool_calls"].as_array() {
                    ids = calls
                        .iter()
                        .map(|c| c["id"].as_str().unwrap().to_string())
                        .collect();
                } else if m["role"] == "tool"
                    && !ids.is_empty()
                    && m["content"].as_str().unwrap_or("").len() % 2 == 0
                {
                    m["tool_call_id"] = json!(ids.remove(0));
                }
            }
            msgs.push(json!({"role": "user", "content": "end"}));
            json!({"model": "x", "messages": msgs})
        })
    }

    fn id_ok(id: &str) -> bool {
        !id.is_empty()
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    /// Anthropic's structural rules (§2.1, §2.4, pitfalls 3, 14, 16).
    fn check_anthropic(out: &Value) -> Result<(), TestCaseError> {
        let msgs = out["messages"].as_array().unwrap();
        prop_assert!(!msgs.is_empty());
        prop_assert_eq!(&msgs[0]["role"], "user");
        fn no_blank(v: &Value) -> bool {
            match v {
                Value::Object(o) => {
                    !(o.get("type") == Some(&json!("text"))
                        && o.get("text")
                            .and_then(Value::as_str)
                            .is_some_and(|t| t.trim().is_empty()))
                        && o.values().all(no_blank)
                }
                Value::Array(a) => a.iter().all(no_blank),
                _ => true,
            }
        }
        prop_assert!(no_blank(out), "blank text block in {}", out);
        for (k, m) in msgs.iter().enumerate() {
            let content = m["content"].as_array().unwrap();
            prop_assert!(!content.is_empty());
            if k > 0 {
                prop_assert_ne!(&msgs[k - 1]["role"], &m["role"]);
            }
            let n_results = content
                .iter()
                .take_while(|b| b["type"] == "tool_result")
                .count();
            prop_assert!(
                content[n_results..]
                    .iter()
                    .all(|b| b["type"] != "tool_result"),
                "results first"
            );
            let uses: Vec<&str> = content
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| b["id"].as_str().unwrap())
                .collect();
            for id in &uses {
                prop_assert!(id_ok(id), "bad id {}", id);
            }
            let answered: Vec<&str> = content[..n_results]
                .iter()
                .map(|b| b["tool_use_id"].as_str().unwrap())
                .collect();
            if m["role"] == "user" {
                let prev: Vec<&str> = if k > 0 {
                    msgs[k - 1]["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|b| b["type"] == "tool_use")
                        .map(|b| b["id"].as_str().unwrap())
                        .collect()
                } else {
                    vec![]
                };
                let mut a = answered.clone();
                let mut p = prev.clone();
                a.sort();
                p.sort();
                prop_assert_eq!(a, p, "results must answer exactly the previous calls");
            } else if !uses.is_empty() {
                prop_assert!(k + 1 < msgs.len(), "calls at the end are answered");
            }
        }
        Ok(())
    }

    /// Gemini's structural rules (pitfall 19).
    fn check_gemini(out: &Value) -> Result<(), TestCaseError> {
        let contents = out["contents"].as_array().unwrap();
        prop_assert_eq!(&contents[0]["role"], "user");
        for (k, c) in contents.iter().enumerate() {
            if k > 0 {
                prop_assert_ne!(&contents[k - 1]["role"], &c["role"]);
            }
            let parts = c["parts"].as_array().unwrap();
            prop_assert!(!parts.is_empty());
            let calls: Vec<&Value> = parts.iter().filter_map(|p| p.get("functionCall")).collect();
            let mut names: Vec<&str> = calls.iter().map(|f| f["name"].as_str().unwrap()).collect();
            if !calls.is_empty() {
                prop_assert!(k + 1 < contents.len());
                let mut answered: Vec<&str> = contents[k + 1]["parts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|p| p.get("functionResponse"))
                    .map(|f| f["name"].as_str().unwrap())
                    .collect();
                names.sort();
                answered.sort();
                prop_assert_eq!(names, answered);
            }
            for f in parts.iter().filter_map(|p| p.get("functionResponse")) {
                prop_assert!(f["response"].is_object());
            }
        }
        Ok(())
    }

    /// OpenAI's rule: every tool call is answered by tool messages right after it.
    fn check_openai(out: &Value) -> Result<(), TestCaseError> {
        let msgs = out["messages"].as_array().unwrap();
        for (k, m) in msgs.iter().enumerate() {
            if let Some(calls) = m["tool_calls"].as_array() {
                let mut ids: Vec<&str> = calls.iter().map(|c| c["id"].as_str().unwrap()).collect();
                let mut answered: Vec<&str> = msgs[k + 1..]
                    .iter()
                    .take_while(|n| n["role"] == "tool")
                    .map(|n| n["tool_call_id"].as_str().unwrap())
                    .collect();
                ids.sort();
                answered.sort();
                prop_assert_eq!(ids, answered);
            }
            if m["role"] == "tool" {
                prop_assert!(
                    k > 0
                        && (msgs[k - 1]["role"] == "tool" || msgs[k - 1]["tool_calls"].is_array())
                );
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn openai_survives_openai_ir_openai(body in openai_request()) {
            let out = run(O, body.clone(), O, "gpt-x");
            prop_assert_eq!(out, body);
        }

        #[test]
        fn anthropic_survives_anthropic_ir_anthropic(body in anthropic_request()) {
            let out = run(A, body.clone(), A, "claude-x");
            prop_assert_eq!(out, body);
        }

        #[test]
        fn messy_conversations_are_repaired_for_every_target(body in messy_openai()) {
            let a = run(O, body.clone(), A, "claude");
            check_anthropic(&a)?;
            let g = run(O, body.clone(), G, "gemini-2.5-pro");
            check_gemini(&g)?;
            let o = run(O, body.clone(), O, "gpt");
            check_openai(&o)?;
            // And back again: Anthropic → OpenAI/Gemini keeps the rules.
            let a2 = serde_json::to_vec(&a).unwrap();
            let caps = Capabilities::default();
            let t = translate_request(A, &a2, "m", &target(O, "gpt", &caps)).unwrap();
            check_openai(&serde_json::from_slice(&t.body).unwrap())?;
            let t = translate_request(A, &a2, "m", &target(G, "gemini-3-pro", &caps)).unwrap();
            check_gemini(&serde_json::from_slice(&t.body).unwrap())?;
        }

        #[test]
        fn every_pair_translates_without_error(body in openai_request(), abody in anthropic_request()) {
            for d in [O, A, G] {
                let caps = Capabilities::default();
                // The only refusal possible here: nothing left to send (all-blank turns).
                match run_full(O, &body, d, "m", &caps, "") {
                    Ok(_) => {}
                    Err(e) => prop_assert_eq!(e.param.as_deref(), Some("messages")),
                }
                prop_assert!(run_full(A, &abody, d, "m", &caps, "").is_ok());
            }
        }
    }
}
