//! The response IR: one assistant message, whatever dialect produced it, and its rendering as a
//! non-stream body in each client dialect.

use serde_json::{json, Map, Value};

use super::finish::Finish;
use super::ids;
use super::usage;
use crate::{Dialect, Usage};

/// One block of assistant output, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Text(String),
    /// Refusal text (O `refusal`, a Gemini blocked prompt).
    Refusal(String),
    /// Reasoning; `signature` is the client-facing token (native or gateway-minted).
    Thinking {
        text: String,
        signature: Option<String>,
    },
    RedactedThinking(String),
    /// A tool call; `args` is raw JSON text; `signature` a reasoning signature that rode on the
    /// call (Gemini `thoughtSignature`), client-facing.
    ToolCall {
        id: String,
        name: String,
        args: String,
        signature: Option<String>,
    },
}

/// A complete assistant answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Upstream message id (without a dialect prefix added by rendering).
    pub id: String,
    pub created: u64,
    pub blocks: Vec<Block>,
    pub finish: Option<Finish>,
    pub stop_sequence: Option<String>,
    pub usage: Usage,
}

/// What rendering needs besides the message.
pub(crate) struct RenderCtx<'a> {
    pub model: &'a str,
    /// Minted signature for thinking that came without one (non-Anthropic reasoning).
    pub unsigned: &'a str,
    /// `reasoning_details[].format` for the O surface.
    pub format: &'a str,
}

impl Message {
    pub(crate) fn render(&self, client: Dialect, rc: &RenderCtx<'_>) -> Vec<u8> {
        let v = match client {
            Dialect::OpenAi => self.to_openai(rc),
            Dialect::Anthropic => self.to_anthropic(rc),
            Dialect::Gemini => self.to_gemini(rc),
        };
        serde_json::to_vec(&v).expect("serializing a Value cannot fail")
    }

    fn finish(&self) -> Finish {
        self.finish.unwrap_or(Finish::EndTurn)
    }

    fn to_anthropic(&self, rc: &RenderCtx<'_>) -> Value {
        let mut content: Vec<Value> = Vec::with_capacity(self.blocks.len());
        // Index in `content` of a thinking block still waiting for a signature.
        let mut unsigned: Option<usize> = None;
        for b in &self.blocks {
            match b {
                Block::Text(t) | Block::Refusal(t) => {
                    if t.trim().is_empty() {
                        continue; // never an empty or whitespace-only text block
                    }
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    match content.last_mut() {
                        // A refusal after text (or the reverse) stays one text block.
                        Some(last) if last["type"] == "text" => {
                            let joined = format!("{}{}", last["text"].as_str().unwrap_or(""), t);
                            last["text"] = Value::String(joined);
                        }
                        _ => content.push(json!({"type": "text", "text": t})),
                    }
                }
                Block::Thinking { text, signature } => {
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    content.push(json!({"type": "thinking", "thinking": text, "signature": signature.as_deref().unwrap_or("")}));
                    if signature.is_none() {
                        unsigned = Some(content.len() - 1);
                    }
                }
                Block::RedactedThinking(data) => {
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    content.push(json!({"type": "redacted_thinking", "data": data}));
                }
                Block::ToolCall {
                    id,
                    name,
                    args,
                    signature,
                } => {
                    if let Some(sig) = signature {
                        match unsigned.take() {
                            Some(i) => content[i]["signature"] = json!(sig),
                            None => content.push(
                                json!({"type": "thinking", "thinking": "", "signature": sig}),
                            ),
                        }
                    }
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    content.push(json!({
                        "type": "tool_use",
                        "id": ids::anthropic_tool_id(id),
                        "name": name,
                        "input": args_object(args),
                    }));
                }
            }
        }
        seal(&mut content, &mut unsigned, rc.unsigned);
        let finish = self.finish();
        let mut v = json!({
            "id": ids::anthropic_message_id(&self.id),
            "type": "message",
            "role": "assistant",
            "model": rc.model,
            "content": content,
            "stop_reason": finish.anthropic(),
            "stop_sequence": self.stop_sequence,
            "usage": usage::to_anthropic(&self.usage),
        });
        if finish == Finish::Refusal {
            v["stop_details"] = json!({"type": "refusal"});
        }
        v
    }

    fn to_openai(&self, rc: &RenderCtx<'_>) -> Value {
        let mut text = String::new();
        let mut refusal = String::new();
        let mut reasoning = String::new();
        let mut details: Vec<Value> = Vec::new();
        let mut calls: Vec<Value> = Vec::new();
        for b in &self.blocks {
            match b {
                Block::Text(t) => text.push_str(t),
                Block::Refusal(t) => refusal.push_str(t),
                Block::Thinking { text: t, signature } => {
                    reasoning.push_str(t);
                    let mut d = json!({"type": "reasoning.text", "text": t, "format": rc.format, "index": details.len()});
                    if let Some(sig) = signature {
                        d["signature"] = json!(sig);
                    }
                    details.push(d);
                }
                Block::RedactedThinking(data) => details.push(
                    json!({"type": "reasoning.encrypted", "data": data, "format": rc.format, "index": details.len()}),
                ),
                Block::ToolCall {
                    id,
                    name,
                    args,
                    signature,
                } => {
                    if let Some(sig) = signature {
                        details.push(json!({"type": "reasoning.encrypted", "data": sig, "id": id, "format": rc.format, "index": details.len()}));
                    }
                    let args = if args.trim().is_empty() { "{}" } else { args };
                    calls.push(json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}));
                }
            }
        }
        let mut msg = Map::new();
        msg.insert("role".into(), json!("assistant"));
        msg.insert(
            "content".into(),
            if text.is_empty() {
                Value::Null
            } else {
                Value::String(text)
            },
        );
        msg.insert(
            "refusal".into(),
            if refusal.is_empty() {
                Value::Null
            } else {
                Value::String(refusal)
            },
        );
        if !reasoning.is_empty() {
            msg.insert("reasoning_content".into(), Value::String(reasoning));
        }
        if !details.is_empty() {
            msg.insert("reasoning_details".into(), Value::Array(details));
        }
        if !calls.is_empty() {
            msg.insert("tool_calls".into(), Value::Array(calls));
        }
        json!({
            "id": ids::openai_id(&self.id),
            "object": "chat.completion",
            "created": self.created,
            "model": rc.model,
            "choices": [{
                "index": 0,
                "message": msg,
                "logprobs": null,
                "finish_reason": self.finish().openai(),
            }],
            "usage": usage::to_openai(&self.usage),
        })
    }

    fn to_gemini(&self, rc: &RenderCtx<'_>) -> Value {
        let mut parts = Vec::new();
        for b in &self.blocks {
            match b {
                Block::Text(t) | Block::Refusal(t) if !t.is_empty() => {
                    parts.push(json!({"text": t}))
                }
                Block::Thinking { text, .. } if !text.is_empty() => {
                    parts.push(json!({"text": text, "thought": true}))
                }
                Block::ToolCall { id, name, args, .. } => parts.push(
                    json!({"functionCall": {"id": id, "name": name, "args": args_object(args)}}),
                ),
                _ => {}
            }
        }
        json!({
            "candidates": [{
                "content": {"role": "model", "parts": parts},
                "finishReason": self.finish().gemini(),
                "index": 0,
            }],
            "usageMetadata": usage::to_gemini(&self.usage),
            "modelVersion": rc.model,
            "responseId": self.id,
        })
    }
}

/// Sign a pending unsigned thinking block with the minted token before it is followed by
/// anything else.
fn seal(content: &mut [Value], unsigned: &mut Option<usize>, minted: &str) {
    if let Some(i) = unsigned.take() {
        content[i]["signature"] = json!(minted);
    }
}

/// Tool arguments as an object for A/G: `{}` for empty, `{"_raw": …}` for invalid JSON or a
/// non-object (never a string `input`).
pub(crate) fn args_object(args: &str) -> Value {
    if args.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(args) {
        Ok(v @ Value::Object(_)) => v,
        _ => json!({ "_raw": args }),
    }
}
