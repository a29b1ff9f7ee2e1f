//! Upstream Anthropic events (and non-stream bodies) -> [`Ev`] (protocols.md §3.2).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::openai_in::invalid_body;
use super::{end_at_eof, Decoder, Ev, Sink};
use crate::response::error::from_error_value;
use crate::response::finish::Finish;
use crate::response::usage::AnthropicUsage;
use crate::{ApiError, Dialect, ErrorKind};

/// Every Anthropic stream event, flattened (fields absent on other event types stay `None`).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<MessageHead<'a>>,
    #[serde(default)]
    index: Option<usize>,
    #[serde(borrow, default)]
    content_block: Option<Block<'a>>,
    #[serde(borrow, default)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct MessageHead<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    name: Option<Cow<'a, str>>,
    #[serde(default)]
    input: Option<Value>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(
        borrow,
        rename = "type",
        default,
        deserialize_with = "super::opt_borrowed"
    )]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    thinking: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    partial_json: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    stop_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    stop_sequence: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Thinking,
    Tool {
        slot: usize,
        had_input: bool,
    },
    /// Server-tool blocks and unknown types: dropped.
    Skip,
}

#[derive(Debug, Default)]
pub(crate) struct AnthropicIn {
    blocks: Vec<Kind>,
    tools: usize,
    stopped: bool,
    done: bool,
}

impl AnthropicIn {
    pub fn new() -> Self {
        Self::default()
    }

    fn block_start(&mut self, index: usize, b: &Block<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        let kind = match b.kind.as_ref() {
            "text" => {
                if let Some(t) = b.text.as_deref() {
                    sink.ev(Ev::Text(t), out);
                }
                Kind::Text
            }
            "thinking" => {
                sink.ev(Ev::ThinkingStart, out);
                if let Some(t) = b.thinking.as_deref() {
                    sink.ev(Ev::Thinking(t), out);
                }
                if let Some(s) = b.signature.as_deref() {
                    sink.ev(Ev::Signature(s), out);
                }
                Kind::Thinking
            }
            "redacted_thinking" => {
                if let Some(d) = b.data.as_deref() {
                    sink.ev(Ev::RedactedThinking(d), out);
                }
                Kind::Skip
            }
            "tool_use" => {
                let slot = self.tools;
                self.tools += 1;
                sink.ev(
                    Ev::ToolStart {
                        slot,
                        id: b.id.as_deref().unwrap_or(""),
                        name: b.name.as_deref().unwrap_or(""),
                        signature: None,
                    },
                    out,
                );
                // A complete input in the start (non-stream bodies, some vendors) is the whole
                // argument text; later deltas for the block are then ignored (pitfall 5).
                let had_input = match &b.input {
                    Some(Value::Object(m)) if !m.is_empty() => {
                        let json = b.input.as_ref().map(Value::to_string).unwrap_or_default();
                        sink.ev(Ev::ToolArgs { slot, json: &json }, out);
                        true
                    }
                    _ => false,
                };
                Kind::Tool { slot, had_input }
            }
            _ => Kind::Skip,
        };
        if self.blocks.len() <= index {
            self.blocks.resize(index + 1, Kind::Skip);
        }
        self.blocks[index] = kind;
    }

    fn block_delta(&mut self, index: usize, d: &Delta<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        let Some(kind) = self.blocks.get(index).copied() else {
            return;
        };
        match (d.kind.as_deref().unwrap_or(""), kind) {
            ("text_delta", Kind::Text) => {
                if let Some(t) = d.text.as_deref() {
                    sink.ev(Ev::Text(t), out);
                }
            }
            ("thinking_delta", Kind::Thinking) => {
                if let Some(t) = d.thinking.as_deref() {
                    sink.ev(Ev::Thinking(t), out);
                }
            }
            ("signature_delta", Kind::Thinking) => {
                if let Some(s) = d.signature.as_deref() {
                    sink.ev(Ev::Signature(s), out);
                }
            }
            (
                "input_json_delta",
                Kind::Tool {
                    slot,
                    had_input: false,
                },
            ) => {
                if let Some(j) = d.partial_json.as_deref() {
                    sink.ev(Ev::ToolArgs { slot, json: j }, out);
                }
            }
            _ => {} // citations_delta, deltas of skipped blocks, unknown types
        }
    }

    fn handle(&mut self, e: &Event<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        match e.kind.as_ref() {
            "message_start" => {
                if let Some(m) = e.message.as_ref() {
                    if let Some(u) = m.usage.as_ref() {
                        sink.ev(Ev::Usage(u.patch()), out);
                    }
                    sink.ev(
                        Ev::Start {
                            id: m.id.as_deref().unwrap_or(""),
                            created: None,
                        },
                        out,
                    );
                }
            }
            "content_block_start" => {
                if let (Some(i), Some(b)) = (e.index, e.content_block.as_ref()) {
                    self.block_start(i, b, sink, out);
                }
            }
            "content_block_delta" => {
                if let (Some(i), Some(d)) = (e.index, e.delta.as_ref()) {
                    self.block_delta(i, d, sink, out);
                }
            }
            "message_delta" => {
                if let Some(u) = e.usage.as_ref() {
                    sink.ev(Ev::Usage(u.patch()), out);
                }
                if let Some(d) = e.delta.as_ref() {
                    if let Some(r) = d.stop_reason.as_deref() {
                        self.stopped = true;
                        sink.ev(
                            Ev::Finish {
                                reason: Finish::from_anthropic(r),
                                stop_sequence: d.stop_sequence.as_deref(),
                            },
                            out,
                        );
                    }
                }
            }
            "message_stop" => {
                self.done = true;
                sink.ev(Ev::End, out);
            }
            "error" => {
                self.done = true;
                let err = e.error.clone().unwrap_or(Value::Null);
                sink.ev(Ev::Error(from_error_value(Dialect::Anthropic, &err)), out);
            }
            "ping" => sink.ev(Ev::Ping, out),
            _ => {} // content_block_stop, unknown events
        }
    }
}

impl Decoder for AnthropicIn {
    fn event(&mut self, _name: &str, data: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if let Ok(e) = serde_json::from_str::<Event<'_>>(data) {
            self.handle(&e, sink, out);
        }
    }

    fn eof(&mut self, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        end_at_eof(&mut self.done, self.stopped, sink, out);
    }

    fn json(&mut self, body: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) -> Result<(), ApiError> {
        #[derive(Deserialize)]
        struct Body<'a> {
            #[serde(
                borrow,
                rename = "type",
                default,
                deserialize_with = "super::opt_borrowed"
            )]
            kind: Option<Cow<'a, str>>,
            #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
            id: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            content: Option<Vec<Block<'a>>>,
            #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
            stop_reason: Option<Cow<'a, str>>,
            #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
            stop_sequence: Option<Cow<'a, str>>,
            #[serde(default)]
            usage: Option<AnthropicUsage>,
            #[serde(default)]
            error: Option<Value>,
        }
        let b: Body<'_> = serde_json::from_str(body).map_err(|e| invalid_body(&e))?;
        if let Some(err) = b.error.as_ref().filter(|e| !e.is_null()) {
            return Err(from_error_value(Dialect::Anthropic, err));
        }
        let Some(content) = b.content.as_ref() else {
            let kind = b.kind.as_deref().unwrap_or("?");
            return Err(ApiError::new(
                ErrorKind::BadGateway,
                format!("upstream answer of type {kind:?} has no content"),
            ));
        };
        if let Some(u) = b.usage.as_ref() {
            sink.ev(Ev::Usage(u.patch()), out);
        }
        sink.ev(
            Ev::Start {
                id: b.id.as_deref().unwrap_or(""),
                created: None,
            },
            out,
        );
        for (i, block) in content.iter().enumerate() {
            self.block_start(i, block, sink, out);
        }
        let reason = b
            .stop_reason
            .as_deref()
            .map_or(Finish::EndTurn, Finish::from_anthropic);
        sink.ev(
            Ev::Finish {
                reason,
                stop_sequence: b.stop_sequence.as_deref(),
            },
            out,
        );
        self.done = true;
        sink.ev(Ev::End, out);
        Ok(())
    }
}
