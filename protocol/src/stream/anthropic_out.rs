//! [`Ev`] -> Anthropic Messages SSE for a streaming Anthropic client (protocols.md §1.2, §3.1, §3.4).
//!
//! Framing invariants: every event has its `event:` line; block indices run 0, 1, 2 … with one
//! block open at a time; a thinking block starts with `thinking:""` + `signature:""` and gets
//! exactly one `signature_delta` before its stop (a gateway-minted one when the upstream gave
//! none); `tool_use` starts with `input:{}` and its input follows as `input_json_delta`s; no empty
//! or whitespace-only text block is ever opened; `message_start` carries every usage field and
//! `message_delta` the final cumulative numbers.

use super::{Encoder, Ev, State};
use crate::response::finish::Finish;
use crate::response::ids;
use crate::Dialect;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Open {
    #[default]
    None,
    Text,
    Thinking,
    Tool(usize),
    Redacted,
}

#[derive(Debug, Default)]
pub(crate) struct AnthropicOut {
    started: bool,
    /// Index the next block will get.
    next: usize,
    open: Open,
    /// The open thinking block already got its signature.
    signed: bool,
    /// Whitespace-only text waiting for real text before a text block is opened.
    ws: String,
    finish: Option<Finish>,
    stop_sequence: Option<String>,
}

fn js(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

fn num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(n.to_string().as_bytes());
}

fn usage(out: &mut Vec<u8>, st: &State) {
    let u = &st.usage;
    out.extend_from_slice(b"{\"input_tokens\":");
    num(out, u.input);
    out.extend_from_slice(b",\"cache_creation_input_tokens\":");
    num(out, u.cache_write);
    out.extend_from_slice(b",\"cache_read_input_tokens\":");
    num(out, u.cache_read);
    out.extend_from_slice(b",\"output_tokens\":");
    num(out, u.output);
    out.push(b'}');
}

impl AnthropicOut {
    fn index(&self) -> u64 {
        (self.next - 1) as u64
    }

    fn block_start(&mut self, out: &mut Vec<u8>, open: Open, block: impl FnOnce(&mut Vec<u8>)) {
        out.extend_from_slice(
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":",
        );
        num(out, self.next as u64);
        out.extend_from_slice(b",\"content_block\":");
        block(out);
        out.extend_from_slice(b"}\n\n");
        self.next += 1;
        self.open = open;
    }

    /// `{"type":"content_block_delta","index":i,"delta":{"type":<ty>,"<field>":<value>}}`.
    fn delta(&self, out: &mut Vec<u8>, ty: &str, field: &str, value: &str) {
        out.extend_from_slice(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":",
        );
        num(out, self.index());
        out.extend_from_slice(b",\"delta\":{\"type\":\"");
        out.extend_from_slice(ty.as_bytes());
        out.extend_from_slice(b"\",\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":");
        js(out, value);
        out.extend_from_slice(b"}}\n\n");
    }

    fn close(&mut self, st: &State, out: &mut Vec<u8>) {
        match self.open {
            Open::None => return,
            Open::Thinking if !self.signed => {
                self.delta(out, "signature_delta", "signature", &st.unsigned_sig);
            }
            _ => {}
        }
        out.extend_from_slice(
            b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":",
        );
        num(out, self.index());
        out.extend_from_slice(b"}\n\n");
        self.open = Open::None;
    }

    fn open_thinking(&mut self, st: &State, out: &mut Vec<u8>) {
        if self.open == Open::Thinking {
            return;
        }
        self.close(st, out);
        self.block_start(out, Open::Thinking, |o| {
            o.extend_from_slice(b"{\"type\":\"thinking\",\"thinking\":\"\",\"signature\":\"\"}")
        });
        self.signed = false;
    }

    fn sign(&mut self, out: &mut Vec<u8>, sig: &str) {
        self.delta(out, "signature_delta", "signature", sig);
        self.signed = true;
    }

    fn text(&mut self, t: &str, st: &State, out: &mut Vec<u8>) {
        if self.open != Open::Text {
            if t.trim().is_empty() {
                self.ws.push_str(t); // pitfall 3: never open a block for nothing but whitespace
                return;
            }
            self.close(st, out);
            self.block_start(out, Open::Text, |o| {
                o.extend_from_slice(b"{\"type\":\"text\",\"text\":\"\"}")
            });
            if !self.ws.is_empty() {
                let mut joined = std::mem::take(&mut self.ws);
                joined.push_str(t);
                self.delta(out, "text_delta", "text", &joined);
                return;
            }
        }
        self.delta(out, "text_delta", "text", t);
    }
}

impl Encoder for AnthropicOut {
    fn ev(&mut self, ev: &Ev<'_>, st: &State, out: &mut Vec<u8>) {
        if !matches!(ev, Ev::Text(_) | Ev::Refusal(_)) {
            self.ws.clear();
        }
        match *ev {
            Ev::Start { .. } => {
                if self.started {
                    return;
                }
                self.started = true;
                out.extend_from_slice(
                    b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":",
                );
                js(out, &ids::anthropic_message_id(&st.id));
                out.extend_from_slice(b",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
                js(out, &st.model);
                out.extend_from_slice(
                    b",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":",
                );
                usage(out, st);
                out.extend_from_slice(b"}}\n\n");
            }
            Ev::Usage(_) => {}
            Ev::Ping => out.extend_from_slice(b"event: ping\ndata: {\"type\":\"ping\"}\n\n"),
            Ev::ThinkingStart => {
                self.close(st, out);
                self.open_thinking(st, out);
            }
            Ev::Thinking(t) => {
                self.open_thinking(st, out);
                self.delta(out, "thinking_delta", "thinking", t);
            }
            Ev::Signature(sig) => {
                if self.open == Open::Thinking && !self.signed {
                    self.sign(out, sig);
                }
                // A signature for no open thinking block (e.g. Gemini's on a trailing empty text
                // part) has nothing to attach to; tool-call signatures come with ToolStart.
            }
            Ev::RedactedThinking(data) => {
                self.close(st, out);
                self.block_start(out, Open::Redacted, |o| {
                    o.extend_from_slice(b"{\"type\":\"redacted_thinking\",\"data\":");
                    js(o, data);
                    o.push(b'}');
                });
                self.close(st, out);
            }
            Ev::Text(t) | Ev::Refusal(t) => self.text(t, st, out),
            Ev::ToolStart {
                slot,
                id,
                name,
                signature,
            } => {
                if let Some(sig) = signature {
                    // The reasoning signature of a call (Gemini) rides on a thinking block right
                    // before the tool_use, so that the client replays it with the call.
                    if self.open != Open::Thinking || self.signed {
                        self.close(st, out);
                        self.open_thinking(st, out);
                    }
                    self.sign(out, sig);
                }
                self.close(st, out);
                self.block_start(out, Open::Tool(slot), |o| {
                    o.extend_from_slice(b"{\"type\":\"tool_use\",\"id\":");
                    js(o, &ids::anthropic_tool_id(id));
                    o.extend_from_slice(b",\"name\":");
                    js(o, name);
                    o.extend_from_slice(b",\"input\":{}}");
                });
            }
            Ev::ToolArgs { slot, json } => {
                // Arguments for a call whose block is no longer open cannot be represented.
                if self.open == Open::Tool(slot) {
                    self.delta(out, "input_json_delta", "partial_json", json);
                }
            }
            Ev::Finish {
                reason,
                stop_sequence,
            } => {
                self.close(st, out);
                self.finish = Some(reason);
                self.stop_sequence = stop_sequence.map(str::to_string);
            }
            Ev::End => {
                self.close(st, out);
                let reason = self.finish.unwrap_or(Finish::EndTurn);
                out.extend_from_slice(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"");
                out.extend_from_slice(reason.anthropic().as_bytes());
                out.extend_from_slice(b"\",\"stop_sequence\":");
                match &self.stop_sequence {
                    Some(s) => js(out, s),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b"},\"usage\":");
                usage(out, st);
                out.extend_from_slice(
                    b"}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                );
            }
            Ev::Error(ref e) => {
                crate::response::error::write_stream_error(out, Dialect::Anthropic, e);
            }
        }
    }
}
