//! Gemini native (v1beta): generateContent, streamGenerateContent (SSE and
//! JSON array), countTokens, model list.

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::Value;

use crate::common::{push_field_u64, push_model, First, Plan, ToolCall};
use crate::http::Events;
use crate::text::{args_from_schema, push_json_str, push_u64, GEMINI_SIGNATURE};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenReq {
    #[serde(default)]
    pub contents: Option<IgnoredAny>,
    #[serde(default, alias = "generation_config")]
    pub generation_config: Option<GenConfig>,
    #[serde(default)]
    pub tools: Option<First>,
    #[serde(default, alias = "tool_config")]
    pub tool_config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GenConfig {
    #[serde(default, alias = "thinking_config")]
    pub thinking_config: Option<ThinkingConfig>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThinkingConfig {
    #[serde(default, alias = "include_thoughts")]
    pub include_thoughts: Option<bool>,
}

fn get<'v>(v: &'v Value, camel: &str, snake: &str) -> Option<&'v Value> {
    v.get(camel).or_else(|| v.get(snake))
}

impl GenReq {
    pub(crate) fn thinking(&self) -> bool {
        self.generation_config
            .as_ref()
            .and_then(|g| g.thinking_config.as_ref())
            .and_then(|t| t.include_thoughts)
            .unwrap_or(false)
    }

    pub(crate) fn tool(&self) -> Option<ToolCall> {
        let mode = self
            .tool_config
            .as_ref()
            .and_then(|c| get(c, "functionCallingConfig", "function_calling_config"))
            .and_then(|c| c.get("mode"))
            .and_then(Value::as_str);
        if mode.is_some_and(|m| m.eq_ignore_ascii_case("none")) {
            return None;
        }
        let tool = self.tools.as_ref()?.0.as_ref()?;
        let decl = get(tool, "functionDeclarations", "function_declarations")?.get(0)?;
        let schema = get(decl, "parametersJsonSchema", "parameters_json_schema")
            .or_else(|| decl.get("parameters"));
        Some(ToolCall {
            name: decl
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("tool")
                .to_string(),
            args: args_from_schema(schema),
        })
    }
}

fn push_usage(out: &mut Vec<u8>, p: &Plan, candidates: u64, thoughts: u64) {
    out.extend_from_slice(b"{\"promptTokenCount\":");
    push_u64(out, p.prompt_tokens);
    push_field_u64(out, "candidatesTokenCount", candidates);
    push_field_u64(
        out,
        "totalTokenCount",
        p.prompt_tokens + candidates + thoughts,
    );
    if p.cached_tokens > 0 {
        push_field_u64(out, "cachedContentTokenCount", p.cached_tokens);
    }
    out.extend_from_slice(b",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    push_u64(out, p.prompt_tokens);
    out.extend_from_slice(b"}]");
    if thoughts > 0 {
        push_field_u64(out, "thoughtsTokenCount", thoughts);
    }
    out.push(b'}');
}

fn open(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"candidates\":[{\"content\":{\"parts\":[");
}

fn close(out: &mut Vec<u8>, p: &Plan, finish: bool, candidates: u64, thoughts: u64) {
    out.extend_from_slice(b"],\"role\":\"model\"}");
    if finish {
        out.extend_from_slice(b",\"finishReason\":\"STOP\"");
    }
    out.extend_from_slice(b",\"index\":0}],\"usageMetadata\":");
    push_usage(out, p, candidates, thoughts);
    out.extend_from_slice(b",\"modelVersion\":\"");
    push_model(out, p.model);
    out.extend_from_slice(b"\",\"responseId\":\"mock-");
    push_u64(out, p.id);
    out.extend_from_slice(b"\"}");
}

fn push_signature(out: &mut Vec<u8>) {
    out.extend_from_slice(b",\"thoughtSignature\":\"");
    out.extend_from_slice(GEMINI_SIGNATURE.as_bytes());
    out.push(b'"');
}

fn push_call(out: &mut Vec<u8>, t: &ToolCall) {
    out.extend_from_slice(b"{\"functionCall\":{\"name\":");
    push_json_str(out, &t.name);
    out.extend_from_slice(b",\"args\":");
    out.extend_from_slice(t.args.as_bytes());
    out.push(b'}');
    push_signature(out);
    out.push(b'}');
}

fn candidates_tokens(p: &Plan) -> u64 {
    p.text_tokens() + p.tool_tokens()
}

/// Non-streaming `GenerateContentResponse`.
pub(crate) fn generate_json(p: &Plan, out: &mut Vec<u8>) {
    open(out);
    let thinking = p.think_chunks > 0;
    if thinking {
        out.extend_from_slice(b"{\"text\":\"");
        p.tables.full_think(p.think_chunks, out);
        out.extend_from_slice(b"\",\"thought\":true},");
    }
    match &p.tool {
        Some(t) => push_call(out, t),
        None => {
            out.extend_from_slice(b"{\"text\":\"");
            p.tables.full_text(p.chunks, out);
            out.push(b'"');
            if thinking {
                push_signature(out);
            }
            out.push(b'}');
        }
    }
    close(out, p, true, candidates_tokens(p), p.reasoning_tokens());
}

/// Streaming chunks: SSE (`data: …\r\n\r\n`, no `[DONE]`) or a JSON array
/// (`[` first element, `,\r\n` before each next one, `]` after the last).
pub(crate) fn generate_stream(p: &Plan, sse: bool, ev: &mut Events) {
    let mut n = 0usize;
    let begin = |ev: &mut Events, n: &mut usize| {
        if sse {
            ev.buf.extend_from_slice(b"data: ");
        } else if *n == 0 {
            ev.buf.push(b'[');
        } else {
            ev.buf.extend_from_slice(b",\r\n");
        }
        *n += 1;
        open(&mut ev.buf);
    };
    let finish = |ev: &mut Events, last: bool, cand: u64, thoughts: u64| {
        close(&mut ev.buf, p, last, cand, thoughts);
        if sse {
            ev.buf.extend_from_slice(b"\r\n\r\n");
        } else if last {
            ev.buf.push(b']');
        }
        ev.end();
    };
    let thoughts_total = p.reasoning_tokens();
    for i in 0..p.think_chunks {
        begin(ev, &mut n);
        ev.buf.extend_from_slice(b"{\"text\":\"");
        ev.buf.extend_from_slice(p.tables.think(i).as_bytes());
        ev.buf.extend_from_slice(b"\",\"thought\":true}");
        let thoughts = (i as u64 + 1) * crate::text::THINK_TOKENS_PER_CHUNK;
        finish(ev, false, 0, thoughts);
    }
    match &p.tool {
        Some(t) => {
            begin(ev, &mut n);
            push_call(&mut ev.buf, t);
            finish(ev, true, candidates_tokens(p), thoughts_total);
        }
        None => {
            for i in 0..p.chunks {
                begin(ev, &mut n);
                ev.buf.extend_from_slice(b"{\"text\":\"");
                ev.buf.extend_from_slice(p.tables.text(i).as_bytes());
                ev.buf.push(b'"');
                if i == 0 && p.think_chunks > 0 {
                    push_signature(&mut ev.buf);
                }
                ev.buf.push(b'}');
                let cand = (i as u64 + 1) * crate::text::TEXT_TOKENS_PER_CHUNK;
                finish(ev, i + 1 == p.chunks, cand, thoughts_total);
            }
        }
    }
}

/// `{"totalTokens":N,…}` for countTokens.
pub(crate) fn count_json(tokens: u64, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"totalTokens\":");
    push_u64(out, tokens);
    out.extend_from_slice(b",\"promptTokensDetails\":[{\"modality\":\"TEXT\",\"tokenCount\":");
    push_u64(out, tokens);
    out.extend_from_slice(b"}]}");
}

/// `GET /v1beta/models`.
pub(crate) fn models_json(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"models\":[");
    for (i, m) in crate::openai::MODELS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"name\":\"models/");
        out.extend_from_slice(m.as_bytes());
        out.extend_from_slice(b"\",\"displayName\":");
        push_json_str(out, m);
        out.extend_from_slice(
            b",\"inputTokenLimit\":1048576,\"outputTokenLimit\":65536,\"supportedGenerationMethods\":[\"generateContent\",\"streamGenerateContent\",\"countTokens\"]}",
        );
    }
    out.extend_from_slice(b"]}");
}
