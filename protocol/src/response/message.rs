//! The response IR: one assistant message, whatever dialect produced it, and its rendering as a
//! non-stream body in each client dialect.
//!
//! Every translated non-stream answer is rendered here, so bodies are serialized straight from
//! borrowed views of the message, never built as a `serde_json::Value` tree first. Their fields
//! are in alphabetical order, the order clients have always received (see `response::usage`).

use std::borrow::Cow;

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;

use super::finish::Finish;
use super::ids;
use super::usage::{self, AnthropicUsageOut, GeminiUsageOut, OpenAiUsageOut};
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
    /// Appends the body for a `client` to `out`.
    pub(crate) fn render(&self, client: Dialect, rc: &RenderCtx<'_>, out: &mut Vec<u8>) {
        let written = match client {
            Dialect::OpenAi => serde_json::to_writer(&mut *out, &self.to_openai(rc)),
            Dialect::Anthropic => serde_json::to_writer(&mut *out, &self.to_anthropic(rc)),
            Dialect::Gemini => serde_json::to_writer(&mut *out, &self.to_gemini(rc)),
        };
        written.expect("writing to a Vec cannot fail");
    }

    fn finish(&self) -> Finish {
        self.finish.unwrap_or(Finish::EndTurn)
    }

    fn to_anthropic<'a>(&'a self, rc: &RenderCtx<'a>) -> AnthropicBody<'a> {
        let mut content = Vec::with_capacity(self.blocks.len());
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
                        Some(AnthropicBlock::Text { text, .. }) => text.to_mut().push_str(t),
                        _ => content.push(AnthropicBlock::Text {
                            text: Cow::Borrowed(t),
                            kind: "text",
                        }),
                    }
                }
                Block::Thinking { text, signature } => {
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    content.push(AnthropicBlock::Thinking {
                        signature: signature.as_deref().unwrap_or(""),
                        thinking: text,
                        kind: "thinking",
                    });
                    if signature.is_none() {
                        unsigned = Some(content.len() - 1);
                    }
                }
                Block::RedactedThinking(data) => {
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    content.push(AnthropicBlock::RedactedThinking {
                        data,
                        kind: "redacted_thinking",
                    });
                }
                Block::ToolCall {
                    id,
                    name,
                    args,
                    signature,
                } => {
                    if let Some(sig) = signature {
                        match unsigned.take() {
                            Some(i) => sign(&mut content[i], sig),
                            None => content.push(AnthropicBlock::Thinking {
                                signature: sig,
                                thinking: "",
                                kind: "thinking",
                            }),
                        }
                    }
                    seal(&mut content, &mut unsigned, rc.unsigned);
                    content.push(AnthropicBlock::ToolUse {
                        id: ids::anthropic_tool_id(id),
                        input: ArgsObject::new(args),
                        name,
                        kind: "tool_use",
                    });
                }
            }
        }
        seal(&mut content, &mut unsigned, rc.unsigned);
        let finish = self.finish();
        AnthropicBody {
            content,
            id: ids::anthropic_message_id(&self.id),
            model: rc.model,
            role: "assistant",
            stop_details: (finish == Finish::Refusal).then_some(TypeOnly { kind: "refusal" }),
            stop_reason: finish.anthropic(),
            stop_sequence: self.stop_sequence.as_deref(),
            kind: "message",
            usage: usage::to_anthropic(&self.usage),
        }
    }

    fn to_openai<'a>(&'a self, rc: &RenderCtx<'a>) -> OpenAiBody<'a> {
        let mut msg = OpenAiMessage {
            content: None,
            reasoning_content: None,
            reasoning_details: Vec::new(),
            refusal: None,
            role: "assistant",
            tool_calls: Vec::new(),
        };
        for b in &self.blocks {
            match b {
                Block::Text(t) => append(&mut msg.content, t),
                Block::Refusal(t) => append(&mut msg.refusal, t),
                Block::Thinking { text, signature } => {
                    append(&mut msg.reasoning_content, text);
                    msg.reasoning_details.push(ReasoningDetail {
                        text: Some(text),
                        signature: signature.as_deref(),
                        ..ReasoningDetail::new(
                            "reasoning.text",
                            msg.reasoning_details.len(),
                            rc.format,
                        )
                    });
                }
                Block::RedactedThinking(data) => msg.reasoning_details.push(ReasoningDetail {
                    data: Some(data),
                    ..ReasoningDetail::new(
                        "reasoning.encrypted",
                        msg.reasoning_details.len(),
                        rc.format,
                    )
                }),
                Block::ToolCall {
                    id,
                    name,
                    args,
                    signature,
                } => {
                    if let Some(sig) = signature {
                        msg.reasoning_details.push(ReasoningDetail {
                            data: Some(sig),
                            id: Some(id),
                            ..ReasoningDetail::new(
                                "reasoning.encrypted",
                                msg.reasoning_details.len(),
                                rc.format,
                            )
                        });
                    }
                    msg.tool_calls.push(OpenAiToolCall {
                        function: OpenAiFunction {
                            arguments: if args.trim().is_empty() { "{}" } else { args },
                            name,
                        },
                        id,
                        kind: "function",
                    });
                }
            }
        }
        OpenAiBody {
            choices: [OpenAiChoice {
                finish_reason: self.finish().openai(),
                index: 0,
                logprobs: (),
                message: msg,
            }],
            created: self.created,
            id: ids::openai_id(&self.id),
            model: rc.model,
            object: "chat.completion",
            usage: usage::to_openai(&self.usage),
        }
    }

    fn to_gemini<'a>(&'a self, rc: &RenderCtx<'a>) -> GeminiBody<'a> {
        let parts = self
            .blocks
            .iter()
            .filter_map(|b| match b {
                Block::Text(t) | Block::Refusal(t) if !t.is_empty() => Some(GeminiPart::Text {
                    text: t,
                    thought: false,
                }),
                Block::Thinking { text, .. } if !text.is_empty() => Some(GeminiPart::Text {
                    text,
                    thought: true,
                }),
                Block::ToolCall { id, name, args, .. } => Some(GeminiPart::Call {
                    function_call: GeminiCall {
                        args: ArgsObject::new(args),
                        id,
                        name,
                    },
                }),
                _ => None,
            })
            .collect();
        GeminiBody {
            candidates: [GeminiCandidate {
                content: GeminiContent {
                    parts,
                    role: "model",
                },
                finish_reason: self.finish().gemini(),
                index: 0,
            }],
            model_version: rc.model,
            response_id: &self.id,
            usage_metadata: usage::to_gemini(&self.usage),
        }
    }
}

/// An Anthropic `Message`.
#[derive(Serialize)]
struct AnthropicBody<'a> {
    content: Vec<AnthropicBlock<'a>>,
    id: String,
    model: &'a str,
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_details: Option<TypeOnly>,
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
    usage: AnthropicUsageOut,
}

/// `{"type": …}`.
#[derive(Serialize)]
struct TypeOnly {
    #[serde(rename = "type")]
    kind: &'static str,
}

/// An Anthropic content block; `kind` is its `type` (a field of its own rather than a serde tag,
/// which would be written first).
#[derive(Serialize)]
#[serde(untagged)]
enum AnthropicBlock<'a> {
    Text {
        /// Owned only when a refusal joins text.
        text: Cow<'a, str>,
        #[serde(rename = "type")]
        kind: &'static str,
    },
    Thinking {
        signature: &'a str,
        thinking: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    },
    RedactedThinking {
        data: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    },
    ToolUse {
        id: Cow<'a, str>,
        input: ArgsObject<'a>,
        name: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
    },
}

/// Sign a pending unsigned thinking block with the minted token before it is followed by
/// anything else.
fn seal<'a>(content: &mut [AnthropicBlock<'a>], unsigned: &mut Option<usize>, minted: &'a str) {
    if let Some(i) = unsigned.take() {
        sign(&mut content[i], minted);
    }
}

fn sign<'a>(block: &mut AnthropicBlock<'a>, sig: &'a str) {
    if let AnthropicBlock::Thinking { signature, .. } = block {
        *signature = sig;
    }
}

/// An OpenAI `chat.completion`.
#[derive(Serialize)]
struct OpenAiBody<'a> {
    choices: [OpenAiChoice<'a>; 1],
    created: u64,
    id: String,
    model: &'a str,
    object: &'static str,
    usage: OpenAiUsageOut,
}

#[derive(Serialize)]
struct OpenAiChoice<'a> {
    finish_reason: &'static str,
    index: u32,
    /// Always `null`.
    logprobs: (),
    message: OpenAiMessage<'a>,
}

/// The assistant message: `content` and `refusal` are `null` when empty, the rest is left out.
#[derive(Serialize)]
struct OpenAiMessage<'a> {
    content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasoning_details: Vec<ReasoningDetail<'a>>,
    refusal: Option<Cow<'a, str>>,
    role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<OpenAiToolCall<'a>>,
}

/// A `reasoning_details[]` entry (OpenRouter's shape): reasoning text, an opaque block, or the
/// signature that rode on tool call `id`.
#[derive(Serialize)]
struct ReasoningDetail<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a str>,
    format: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    signature: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> ReasoningDetail<'a> {
    /// An entry with only its type, format and index set.
    fn new(kind: &'static str, index: usize, format: &'a str) -> Self {
        ReasoningDetail {
            data: None,
            format,
            id: None,
            index,
            signature: None,
            text: None,
            kind,
        }
    }
}

#[derive(Serialize)]
struct OpenAiToolCall<'a> {
    function: OpenAiFunction<'a>,
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct OpenAiFunction<'a> {
    arguments: &'a str,
    name: &'a str,
}

/// Appends a non-empty piece to optional text, borrowing while there is only one piece.
fn append<'a>(acc: &mut Option<Cow<'a, str>>, piece: &'a str) {
    if piece.is_empty() {
        return;
    }
    match acc {
        Some(text) => text.to_mut().push_str(piece),
        None => *acc = Some(Cow::Borrowed(piece)),
    }
}

/// A Gemini `GenerateContentResponse`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiBody<'a> {
    candidates: [GeminiCandidate<'a>; 1],
    model_version: &'a str,
    response_id: &'a str,
    usage_metadata: GeminiUsageOut,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct GeminiCandidate<'a> {
    content: GeminiContent<'a>,
    finish_reason: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct GeminiContent<'a> {
    parts: Vec<GeminiPart<'a>>,
    role: &'static str,
}

#[derive(Serialize)]
#[serde(untagged)]
enum GeminiPart<'a> {
    Text {
        text: &'a str,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        thought: bool,
    },
    #[serde(rename_all = "camelCase")]
    Call { function_call: GeminiCall<'a> },
}

#[derive(Serialize)]
struct GeminiCall<'a> {
    args: ArgsObject<'a>,
    id: &'a str,
    name: &'a str,
}

/// Tool arguments as an object for A/G: the upstream's JSON text as it is when it is an object,
/// `{}` when empty, `{"_raw": …}` for invalid JSON or a non-object (never a string `input`).
pub(crate) enum ArgsObject<'a> {
    Object(&'a RawValue),
    Empty,
    Invalid(&'a str),
}

impl<'a> ArgsObject<'a> {
    pub(crate) fn new(args: &'a str) -> Self {
        if args.trim().is_empty() {
            return ArgsObject::Empty;
        }
        // Validated, not parsed: the text is written out unchanged.
        match serde_json::from_str::<&RawValue>(args) {
            Ok(raw) if raw.get().starts_with('{') => ArgsObject::Object(raw),
            _ => ArgsObject::Invalid(args),
        }
    }
}

impl Serialize for ArgsObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ArgsObject::Object(raw) => raw.serialize(s),
            ArgsObject::Empty => s.serialize_map(Some(0))?.end(),
            ArgsObject::Invalid(text) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("_raw", text)?;
                m.end()
            }
        }
    }
}
