//! OpenAI Chat Completions, embeddings and model list.

use std::borrow::Cow;
use std::fmt;
use std::io::Write as _;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::common::{push_field_u64, push_model, First, Plan, ToolCall};
use crate::http::Events;
use crate::text::{args_from_schema, push_base64, push_json_str, push_u64, split_pieces};

#[derive(Deserialize)]
pub(crate) struct ChatReq<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    #[serde(default)]
    pub messages: Option<IgnoredAny>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<Value>,
    #[serde(borrow, default)]
    pub reasoning_effort: Option<Cow<'a, str>>,
    #[serde(default)]
    pub thinking: Option<Value>,
    #[serde(default)]
    pub tools: Option<First>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
}

impl ChatReq<'_> {
    pub(crate) fn stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub(crate) fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub(crate) fn thinking(&self) -> bool {
        let effort = self
            .reasoning_effort
            .as_deref()
            .is_some_and(|e| e != "none");
        let thinking = self
            .thinking
            .as_ref()
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "enabled");
        effort || thinking
    }

    pub(crate) fn tool(&self) -> Option<ToolCall> {
        if self.tool_choice.as_ref().and_then(Value::as_str) == Some("none") {
            return None;
        }
        let tool = self.tools.as_ref()?.0.as_ref()?;
        let f = tool
            .get("function")
            .or_else(|| tool.get("custom"))
            .unwrap_or(tool);
        let name = f
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("tool")
            .to_string();
        Some(ToolCall {
            name,
            args: args_from_schema(f.get("parameters")),
        })
    }

    /// The required fields a real server insists on.
    pub(crate) fn missing(&self) -> Option<&'static str> {
        if self.model.is_none() {
            Some("you must provide a model parameter")
        } else if self.messages.is_none() {
            Some("Missing required parameter: 'messages'.")
        } else {
            None
        }
    }
}

fn push_usage(out: &mut Vec<u8>, p: &Plan) {
    let completion = p.completion_tokens();
    out.extend_from_slice(b"{\"prompt_tokens\":");
    push_u64(out, p.prompt_tokens);
    push_field_u64(out, "completion_tokens", completion);
    push_field_u64(out, "total_tokens", p.prompt_tokens + completion);
    out.extend_from_slice(b",\"prompt_tokens_details\":{\"cached_tokens\":");
    push_u64(out, p.cached_tokens);
    out.extend_from_slice(
        b",\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":",
    );
    push_u64(out, p.reasoning_tokens());
    out.extend_from_slice(
        b",\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}",
    );
}

fn push_call_id(out: &mut Vec<u8>, id: u64) {
    out.extend_from_slice(b"\"call_mock_");
    push_u64(out, id);
    out.push(b'"');
}

/// Non-streaming `chat.completion`.
pub(crate) fn chat_json(p: &Plan, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":\"chatcmpl-mock-");
    push_u64(out, p.id);
    out.extend_from_slice(b"\",\"object\":\"chat.completion\",\"created\":");
    push_u64(out, p.created);
    out.extend_from_slice(b",\"model\":\"");
    push_model(out, p.model);
    out.extend_from_slice(
        b"\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":",
    );
    if p.text {
        out.push(b'"');
        p.tables.full_text(p.chunks, out);
        out.push(b'"');
    } else {
        out.extend_from_slice(b"null");
    }
    if p.think_chunks > 0 {
        out.extend_from_slice(b",\"reasoning_content\":\"");
        p.tables.full_think(p.think_chunks, out);
        out.push(b'"');
    }
    if let Some(t) = &p.tool {
        out.extend_from_slice(b",\"tool_calls\":[{\"id\":");
        push_call_id(out, p.id);
        out.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        push_json_str(out, &t.name);
        out.extend_from_slice(b",\"arguments\":");
        push_json_str(out, &t.args);
        out.extend_from_slice(b"}}]");
    }
    out.extend_from_slice(
        b",\"refusal\":null,\"annotations\":[]},\"logprobs\":null,\"finish_reason\":",
    );
    out.extend_from_slice(if p.tool.is_some() {
        b"\"tool_calls\""
    } else {
        b"\"stop\""
    });
    out.extend_from_slice(b"}],\"usage\":");
    push_usage(out, p);
    out.extend_from_slice(b",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\"}");
}

/// Streaming `chat.completion.chunk` events, `[DONE]` last.
pub(crate) fn chat_stream(p: &Plan, include_usage: bool, ev: &mut Events) {
    let mut prefix = Vec::with_capacity(160);
    prefix.extend_from_slice(b"data: {\"id\":\"chatcmpl-mock-");
    push_u64(&mut prefix, p.id);
    prefix.extend_from_slice(b"\",\"object\":\"chat.completion.chunk\",\"created\":");
    push_u64(&mut prefix, p.created);
    prefix.extend_from_slice(b",\"model\":\"");
    push_model(&mut prefix, p.model);
    prefix.extend_from_slice(
        b"\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_mock\",\"choices\":[",
    );
    let suffix: &[u8] = if include_usage {
        b",\"usage\":null}\n\n"
    } else {
        b"}\n\n"
    };

    let open = |ev: &mut Events| {
        ev.buf.extend_from_slice(&prefix);
        ev.buf.extend_from_slice(b"{\"index\":0,\"delta\":");
    };
    let close = |ev: &mut Events, finish: &[u8]| {
        ev.buf
            .extend_from_slice(b",\"logprobs\":null,\"finish_reason\":");
        ev.buf.extend_from_slice(finish);
        ev.buf.extend_from_slice(b"}]");
        ev.buf.extend_from_slice(suffix);
        ev.end();
    };
    let tool_start = |ev: &mut Events, t: &ToolCall| {
        ev.buf
            .extend_from_slice(b"\"tool_calls\":[{\"index\":0,\"id\":");
        push_call_id(&mut ev.buf, p.id);
        ev.buf
            .extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
        push_json_str(&mut ev.buf, &t.name);
        ev.buf.extend_from_slice(b",\"arguments\":\"\"}}]");
    };

    // Role first (a tool call without reasoning opens in the same delta).
    open(ev);
    match &p.tool {
        Some(t) if p.think_chunks == 0 => {
            ev.buf
                .extend_from_slice(b"{\"role\":\"assistant\",\"content\":null,");
            tool_start(ev, t);
            ev.buf.extend_from_slice(b",\"refusal\":null}");
        }
        Some(_) => ev
            .buf
            .extend_from_slice(b"{\"role\":\"assistant\",\"content\":null,\"refusal\":null}"),
        None => ev
            .buf
            .extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"),
    }
    close(ev, b"null");

    for i in 0..p.think_chunks {
        open(ev);
        ev.buf.extend_from_slice(b"{\"reasoning_content\":\"");
        ev.buf.extend_from_slice(p.tables.think(i).as_bytes());
        ev.buf.extend_from_slice(b"\"}");
        close(ev, b"null");
    }
    for i in 0..p.text_chunks() {
        open(ev);
        ev.buf.extend_from_slice(b"{\"content\":\"");
        ev.buf.extend_from_slice(p.tables.text(i).as_bytes());
        ev.buf.extend_from_slice(b"\"}");
        close(ev, b"null");
    }
    if let Some(t) = &p.tool {
        if p.think_chunks > 0 {
            open(ev);
            ev.buf.push(b'{');
            tool_start(ev, t);
            ev.buf.push(b'}');
            close(ev, b"null");
        }
        for piece in split_pieces(&t.args, p.chunks) {
            open(ev);
            ev.buf
                .extend_from_slice(b"{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":");
            push_json_str(&mut ev.buf, piece);
            ev.buf.extend_from_slice(b"}}]}");
            close(ev, b"null");
        }
    }
    open(ev);
    ev.buf.extend_from_slice(b"{}");
    close(
        ev,
        if p.tool.is_some() {
            b"\"tool_calls\""
        } else {
            b"\"stop\""
        },
    );

    if include_usage {
        ev.buf.extend_from_slice(&prefix);
        ev.buf.extend_from_slice(b"],\"usage\":");
        push_usage(&mut ev.buf, p);
        ev.buf.extend_from_slice(b"}\n\n");
        ev.end();
    }
    ev.buf.extend_from_slice(b"data: [DONE]\n\n");
    ev.end();
}

// ---------------------------------------------------------------- embeddings

#[derive(Deserialize)]
pub(crate) struct EmbReq<'a> {
    #[serde(borrow, default)]
    pub model: Option<Cow<'a, str>>,
    pub input: EmbInput,
    #[serde(borrow, default)]
    pub encoding_format: Option<Cow<'a, str>>,
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// Each input as (hash, byte length); token arrays hash their numbers.
pub(crate) struct EmbInput(pub Vec<(u64, usize)>);

const FNV: u64 = 0xcbf29ce484222325;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

enum EmbItem {
    Text(u64, usize),
    Token(u64),
    Tokens(u64, usize),
}

impl<'de> Deserialize<'de> for EmbItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a token or an array of tokens")
            }
            fn visit_str<E>(self, s: &str) -> Result<EmbItem, E> {
                Ok(EmbItem::Text(fnv(FNV, s.as_bytes()), s.len()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<EmbItem, E> {
                Ok(EmbItem::Token(n))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbItem, A::Error> {
                let (mut h, mut n) = (FNV, 0);
                while let Some(t) = seq.next_element::<u64>()? {
                    h = fnv(h, &t.to_le_bytes());
                    n += 1;
                }
                Ok(EmbItem::Tokens(h, n * 4))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for EmbInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EmbInput;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array")
            }
            fn visit_str<E>(self, s: &str) -> Result<EmbInput, E> {
                Ok(EmbInput(vec![(fnv(FNV, s.as_bytes()), s.len())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EmbInput, A::Error> {
                let mut items = Vec::new();
                let (mut th, mut tn) = (FNV, 0usize);
                while let Some(item) = seq.next_element::<EmbItem>()? {
                    match item {
                        EmbItem::Text(h, n) | EmbItem::Tokens(h, n) => items.push((h, n)),
                        EmbItem::Token(t) => {
                            th = fnv(th, &t.to_le_bytes());
                            tn += 4;
                        }
                    }
                }
                if tn > 0 {
                    if !items.is_empty() {
                        return Err(serde::de::Error::custom("input mixes tokens and strings"));
                    }
                    items.push((th, tn));
                }
                Ok(EmbInput(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// Default embedding size when the request has no `dimensions`.
pub(crate) const EMBEDDING_DIMS: usize = 16;

/// `{"object":"list","data":[{"object":"embedding","index":i,"embedding":…}],…}`;
/// `encoding_format:"base64"` gives base64 of little-endian f32s.
pub(crate) fn embeddings_json(req: &EmbReq, model: &str, out: &mut Vec<u8>) {
    let dims = req.dimensions.unwrap_or(EMBEDDING_DIMS).clamp(1, 8192);
    let b64 = req.encoding_format.as_deref() == Some("base64");
    let mut v = vec![0f32; dims];
    let mut raw = Vec::new();
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    let mut tokens = 0;
    for (i, &(h, len)) in req.input.0.iter().enumerate() {
        tokens += crate::text::estimate_tokens(len);
        // xorshift64* seeded by the input hash, then L2-normalised.
        let mut s = h | 1;
        let mut norm = 0f32;
        for x in v.iter_mut() {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            let r = s.wrapping_mul(0x2545F4914F6CDD1D);
            *x = (r >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
            norm += *x * *x;
        }
        let norm = norm.sqrt().max(1e-6);
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"object\":\"embedding\",\"index\":");
        push_u64(out, i as u64);
        out.extend_from_slice(b",\"embedding\":");
        if b64 {
            raw.clear();
            for x in v.iter() {
                raw.extend_from_slice(&(x / norm).to_le_bytes());
            }
            out.push(b'"');
            push_base64(out, &raw);
            out.push(b'"');
        } else {
            out.push(b'[');
            for (j, x) in v.iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                let _ = write!(out, "{}", x / norm);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"model\":");
    push_json_str(out, model);
    out.extend_from_slice(b",\"usage\":{\"prompt_tokens\":");
    push_u64(out, tokens);
    push_field_u64(out, "total_tokens", tokens);
    out.extend_from_slice(b"}}");
}

/// Models the mock lists (any model name is accepted by the other endpoints).
pub(crate) const MODELS: &[&str] = &["mock-gpt", "mock-claude", "mock-gemini"];

pub(crate) fn models_json(out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"object\":\"list\",\"data\":[");
    for (i, m) in MODELS.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"id\":");
        push_json_str(out, m);
        out.extend_from_slice(
            b",\"object\":\"model\",\"created\":1700000000,\"owned_by\":\"ezrouter-mock\"}",
        );
    }
    out.extend_from_slice(b"]}");
}
