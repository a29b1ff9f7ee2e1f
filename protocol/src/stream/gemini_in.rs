//! Upstream Gemini `streamGenerateContent?alt=sse` chunks (and `generateContent` bodies) -> [`Ev`]
//! (protocols.md §3.3, §3.4).

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use super::openai_in::invalid_body;
use super::{end_at_eof, Decoder, Ev, Sink};
use crate::response::error::from_error_value;
use crate::response::finish::Finish;
use crate::response::usage::GeminiUsage;
use crate::{ApiError, Dialect};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk<'a> {
    #[serde(borrow, default)]
    candidates: Option<Vec<Candidate<'a>>>,
    #[serde(borrow, default)]
    prompt_feedback: Option<PromptFeedback<'a>>,
    #[serde(default)]
    usage_metadata: Option<GeminiUsage>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    response_id: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(borrow, default)]
    parts: Option<Vec<Part<'a>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    text: Option<Cow<'a, str>>,
    #[serde(default)]
    thought: Option<bool>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    thought_signature: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    function_call: Option<FunctionCall<'a>>,
    #[serde(default)]
    executable_code: Option<Value>,
    #[serde(default)]
    code_execution_result: Option<Value>,
}

#[derive(Deserialize)]
struct FunctionCall<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback<'a> {
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    block_reason: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "super::opt_borrowed")]
    block_reason_message: Option<Cow<'a, str>>,
}

#[derive(Debug, Default)]
pub(crate) struct GeminiIn {
    tools: usize,
    finished: bool,
    done: bool,
}

impl GeminiIn {
    pub fn new() -> Self {
        Self::default()
    }

    fn chunk(&mut self, c: &Chunk<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        if let Some(err) = c.error.as_ref().filter(|e| !e.is_null()) {
            self.done = true;
            sink.ev(Ev::Error(from_error_value(Dialect::Gemini, err)), out);
            return;
        }
        if let Some(u) = c.usage_metadata.as_ref() {
            sink.ev(Ev::Usage(u.patch()), out);
        }
        sink.ev(
            Ev::Start {
                id: c.response_id.as_deref().unwrap_or(""),
                created: None,
            },
            out,
        );
        let cand = c.candidates.as_ref().and_then(|v| v.first());
        if cand.is_none() {
            if let Some(reason) = c
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_deref())
            {
                let why = c
                    .prompt_feedback
                    .as_ref()
                    .and_then(|f| f.block_reason_message.as_deref())
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let text = format!("The request was blocked by the upstream's safety filter (blockReason {reason}){why}.");
                sink.ev(Ev::Refusal(&text), out);
                self.finished = true;
                sink.ev(
                    Ev::Finish {
                        reason: Finish::Refusal,
                        stop_sequence: None,
                    },
                    out,
                );
                self.done = true;
                sink.ev(Ev::End, out);
            }
            return;
        }
        let cand = cand.expect("checked above");
        for part in cand.content.iter().flat_map(|c| c.parts.iter().flatten()) {
            self.part(part, sink, out);
        }
        if let Some(fr) = cand.finish_reason.as_deref() {
            if !self.finished {
                self.finished = true;
                sink.ev(
                    Ev::Finish {
                        reason: Finish::from_gemini(fr),
                        stop_sequence: None,
                    },
                    out,
                );
            }
        }
    }

    fn part(&mut self, p: &Part<'_>, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        let sig = p.thought_signature.as_deref().filter(|s| !s.is_empty());
        if let Some(fc) = p.function_call.as_ref() {
            let slot = self.tools;
            self.tools += 1;
            sink.ev(
                Ev::ToolStart {
                    slot,
                    id: fc.id.as_deref().unwrap_or(""),
                    name: &fc.name,
                    signature: sig,
                },
                out,
            );
            let args = match &fc.args {
                Some(v @ Value::Object(_)) => v.to_string(),
                _ => "{}".to_string(),
            };
            sink.ev(Ev::ToolArgs { slot, json: &args }, out);
            return;
        }
        if p.thought == Some(true) {
            if let Some(t) = p.text.as_deref() {
                sink.ev(Ev::Thinking(t), out);
            }
            if let Some(s) = sig {
                sink.ev(Ev::Signature(s), out);
            }
            return;
        }
        // A signature on a plain part belongs to the reasoning before it: sign first.
        if let Some(s) = sig {
            sink.ev(Ev::Signature(s), out);
        }
        if let Some(t) = p.text.as_deref() {
            sink.ev(Ev::Text(t), out);
        } else if let Some(code) = p.executable_code.as_ref() {
            let lang = code
                .get("language")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_lowercase();
            let src = code.get("code").and_then(Value::as_str).unwrap_or("");
            sink.ev(Ev::Text(&format!("\n```{lang}\n{src}\n```\n")), out);
        } else if let Some(res) = p.code_execution_result.as_ref() {
            let output = res.get("output").and_then(Value::as_str).unwrap_or("");
            sink.ev(Ev::Text(&format!("\n```\n{output}\n```\n")), out);
        }
    }
}

impl Decoder for GeminiIn {
    fn event(&mut self, _name: &str, data: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if let Ok(c) = serde_json::from_str::<Chunk<'_>>(data) {
            self.chunk(&c, sink, out);
        }
    }

    fn eof(&mut self, sink: &mut dyn Sink, out: &mut Vec<u8>) {
        end_at_eof(&mut self.done, self.finished, sink, out);
    }

    fn json(&mut self, body: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) -> Result<(), ApiError> {
        // A `generateContent` body, or a whole non-SSE stream (a JSON array of chunks).
        let chunks: Vec<Chunk<'_>> = match serde_json::from_str::<Chunk<'_>>(body) {
            Ok(c) => vec![c],
            Err(_) => serde_json::from_str(body).map_err(|e| invalid_body(&e))?,
        };
        if let Some(err) = chunks
            .iter()
            .find_map(|c| c.error.as_ref().filter(|e| !e.is_null()))
        {
            return Err(from_error_value(Dialect::Gemini, err));
        }
        for c in &chunks {
            if !self.done {
                self.chunk(c, sink, out);
            }
        }
        if !self.done {
            self.done = true;
            sink.ev(Ev::End, out);
        }
        Ok(())
    }
}
