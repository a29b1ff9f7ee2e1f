//! Upstream OpenAI / OpenAI-compatible chunks (and non-stream bodies) -> [`Ev`] (protocols.md §3.1).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use super::{end_at_eof, Decoder, Ev, Sink};
use crate::response::error::from_error_value;
use crate::response::finish::Finish;
use crate::response::usage::{OpenAiUsage, UsagePatch};
use crate::{ApiError, Dialect, ErrorKind};

#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<u64>,
    #[serde(borrow, default)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default, alias = "message")]
    delta: Option<Delta<'a>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    reasoning: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_details: Option<Vec<ReasoningDetail<'a>>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    refusal: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
}

#[derive(Deserialize)]
struct ReasoningDetail<'a> {
    #[serde(
        borrow,
        default,
        rename = "type",
        deserialize_with = "super::opt_borrowed"
    )]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    summary: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    signature: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    data: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    format: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ToolCallDelta<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function: Option<FunctionDelta<'a>>,
}

#[derive(Deserialize)]
struct FunctionDelta<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    name: Option<Cow<'a, str>>,
    /// A string normally; some vendors send an object in non-stream bodies. Read raw and
    /// decoded by [`args_text`] (an untagged enum would first buffer every value to try each
    /// shape).
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// The JSON text of tool arguments: a string's content, or an object as the vendor wrote it.
fn args_text(raw: &RawValue) -> Cow<'_, str> {
    let text = raw.get();
    if text.starts_with('"') {
        Cow::Owned(serde_json::from_str(text).unwrap_or_default())
    } else {
        Cow::Borrowed(text)
    }
}

#[derive(Debug, Default)]
struct ToolSlot {
    /// The upstream `tool_calls[].index`, when it sent one.
    index: Option<u64>,
    id: String,
    name: String,
    started: bool,
    /// Argument fragments that arrived before the name.
    pending: String,
}

/// Decoder state of §3.1.
#[derive(Debug)]
pub(crate) struct OpenAiIn {
    slots: Vec<ToolSlot>,
    finished: bool,
    done: bool,
    seed: u64,
}

impl OpenAiIn {
    pub fn new(seed: u64) -> Self {
        OpenAiIn {
            slots: Vec::new(),
            finished: false,
            done: false,
            seed,
        }
    }

    /// The slot a tool-call delta belongs to (pitfall 6: `index` may be missing; pitfall 7:
    /// several entries for one index in one chunk all land in the same slot).
    fn slot_for(&mut self, tc: &ToolCallDelta<'_>) -> usize {
        let id = tc.id.as_deref().filter(|s| !s.is_empty());
        if let Some(i) = tc.index {
            if let Some(k) = self.slots.iter().position(|s| s.index == Some(i)) {
                // A different id on a known index means a new call from a vendor that reuses 0.
                let same = match id {
                    Some(id) => self.slots[k].id.is_empty() || self.slots[k].id == id,
                    None => true,
                };
                if same {
                    return k;
                }
            }
        } else if let Some(id) = id {
            if let Some(k) = self.slots.iter().position(|s| s.id == id) {
                return k;
            }
        } else if !self.slots.is_empty() {
            return self.slots.len() - 1;
        }
        self.slots.push(ToolSlot {
            index: tc.index,
            ..ToolSlot::default()
        });
        self.slots.len() - 1
    }

    fn tool_delta(&mut self, tc: &ToolCallDelta<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        let k = self.slot_for(tc);
        let seed = self.seed;
        let slot = &mut self.slots[k];
        if let Some(id) = tc.id.as_deref() {
            if slot.id.is_empty() && !id.is_empty() {
                slot.id = id.to_string();
            }
        }
        let func = tc.function.as_ref();
        if let Some(name) = func.and_then(|f| f.name.as_deref()) {
            if slot.name.is_empty() && !name.is_empty() {
                slot.name = name.to_string();
            }
        }
        let args = func
            .and_then(|f| f.arguments)
            .map_or(Cow::Borrowed(""), args_text);
        if slot.started {
            sink.ev(
                Ev::ToolArgs {
                    slot: k,
                    json: &args,
                },
                out,
            );
            return;
        }
        slot.pending.push_str(&args);
        if slot.name.is_empty() {
            return; // wait for the name
        }
        if slot.id.is_empty() {
            slot.id = format!(
                "call_{:016x}",
                crate::response::ids::mix(seed, k as u64 + 100)
            );
        }
        slot.started = true;
        sink.ev(
            Ev::ToolStart {
                slot: k,
                id: &slot.id,
                name: &slot.name,
                signature: None,
            },
            out,
        );
        let pending = std::mem::take(&mut slot.pending);
        sink.ev(
            Ev::ToolArgs {
                slot: k,
                json: &pending,
            },
            out,
        );
    }

    fn chunk(&mut self, c: &Chunk<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        if let Some(err) = c.error.as_ref().filter(|e| !e.is_null()) {
            self.done = true;
            sink.ev(Ev::Error(from_error_value(Dialect::OpenAi, err)), out);
            return;
        }
        if let Some(u) = c.usage.as_ref().filter(|u| u.is_present()) {
            sink.ev(Ev::Usage(UsagePatch::full(u.normalize())), out);
        }
        sink.ev(
            Ev::Start {
                id: c.id.as_deref().unwrap_or(""),
                created: c.created,
            },
            out,
        );
        // Only the first choice is translated (n > 1 is refused at request time).
        let first = c
            .choices
            .as_ref()
            .and_then(|v| v.iter().find(|ch| ch.index.unwrap_or(0) == 0));
        let Some(choice) = first else {
            return;
        };
        if let Some(d) = choice.delta.as_ref() {
            self.delta(d, sink, out);
        }
        if let Some(fr) = choice.finish_reason.as_deref() {
            if !self.finished {
                self.finished = true;
                sink.ev(
                    Ev::Finish {
                        reason: Finish::from_openai(fr),
                        stop_sequence: None,
                    },
                    out,
                );
            }
        }
    }

    fn delta(&mut self, d: &Delta<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        // Reasoning: one source per chunk (OpenRouter repeats the text in `reasoning_details`).
        let direct = d
            .reasoning_content
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(d.reasoning.as_deref().filter(|s| !s.is_empty()));
        if let Some(r) = direct {
            sink.ev(Ev::Thinking(r), out);
        }
        for det in d.reasoning_details.iter().flatten() {
            let kind = det.kind.as_deref().unwrap_or("");
            if direct.is_none() {
                if let Some(t) = det.text.as_deref().or(det.summary.as_deref()) {
                    sink.ev(Ev::Thinking(t), out);
                }
            }
            if let Some(sig) = det.signature.as_deref() {
                sink.ev(Ev::Signature(sig), out);
            }
            if kind == "reasoning.encrypted"
                && det
                    .format
                    .as_deref()
                    .is_some_and(|f| f.starts_with("anthropic"))
            {
                if let Some(data) = det.data.as_deref() {
                    sink.ev(Ev::RedactedThinking(data), out);
                }
            }
        }
        if let Some(t) = d.content.as_deref() {
            sink.ev(Ev::Text(t), out);
        }
        if let Some(t) = d.refusal.as_deref() {
            sink.ev(Ev::Refusal(t), out);
        }
        for tc in d.tool_calls.iter().flatten() {
            self.tool_delta(tc, sink, out);
        }
    }
}

impl Decoder for OpenAiIn {
    fn event(&mut self, _name: &str, data: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        let data = data.trim();
        if data == "[DONE]" {
            self.done = true;
            sink.ev(Ev::End, out);
            return;
        }
        // Unparsable chunks (vendor keep-alives, garbage) are skipped.
        if let Ok(c) = serde_json::from_str::<Chunk<'_>>(data) {
            self.chunk(&c, sink, out);
        }
    }

    fn eof(&mut self, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        end_at_eof(&mut self.done, self.finished, sink, out);
    }

    fn json(&mut self, body: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) -> Result<(), ApiError> {
        let c: Chunk<'_> = serde_json::from_str(body).map_err(|e| invalid_body(&e))?;
        if let Some(err) = c.error.as_ref().filter(|e| !e.is_null()) {
            return Err(from_error_value(Dialect::OpenAi, err));
        }
        if c.choices.as_ref().is_none_or(|v| v.is_empty()) {
            return Err(ApiError::new(
                ErrorKind::BadGateway,
                "upstream answer has no choices",
            ));
        }
        self.chunk(&c, sink, out);
        if !self.finished {
            self.finished = true;
            sink.ev(
                Ev::Finish {
                    reason: Finish::EndTurn,
                    stop_sequence: None,
                },
                out,
            );
        }
        self.done = true;
        sink.ev(Ev::End, out);
        Ok(())
    }
}

pub(crate) fn invalid_body(e: &dyn std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::BadGateway,
        format!("upstream answered with a body that is not valid JSON: {e}"),
    )
}
