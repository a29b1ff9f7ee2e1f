//! [`Ev`] -> OpenAI `chat.completion.chunk` SSE for a streaming OpenAI client (protocols.md §3.2,
//! §3.3): `role` in the first chunk, tool-call deltas keyed by index (the first with id, type and
//! name, `arguments:"{}"` for a call that got none), exactly one finish chunk, the usage chunk only
//! when the client asked for it, then `data: [DONE]`.

use super::{Encoder, Ev, State};
use crate::response::ids;
use crate::response::usage;
use crate::Dialect;

#[derive(Debug, Default)]
pub(crate) struct OpenAiOut {
    /// `data: {"id":…,"object":"chat.completion.chunk","created":…,"model":…,"choices":[{"index":0,"delta":`
    head: Vec<u8>,
    /// Argument bytes sent per tool index.
    tool_bytes: Vec<usize>,
    current_tool: Option<usize>,
    finished: bool,
}

fn js(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

impl OpenAiOut {
    fn chunk(&self, st: &State, out: &mut Vec<u8>, delta: impl FnOnce(&mut Vec<u8>)) {
        out.extend_from_slice(&self.head);
        delta(out);
        out.extend_from_slice(b",\"logprobs\":null,\"finish_reason\":null}]");
        if st.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn field(&self, st: &State, out: &mut Vec<u8>, name: &str, value: &str) {
        self.chunk(st, out, |o| {
            o.extend_from_slice(b"{\"");
            o.extend_from_slice(name.as_bytes());
            o.extend_from_slice(b"\":");
            js(o, value);
            o.push(b'}');
        });
    }

    fn detail(&self, st: &State, out: &mut Vec<u8>, detail: impl FnOnce(&mut Vec<u8>)) {
        self.chunk(st, out, |o| {
            o.extend_from_slice(b"{\"reasoning_details\":[");
            detail(o);
            o.extend_from_slice(b"]}");
        });
    }

    /// A call that streamed no argument bytes gets `"{}"` (clients JSON-parse the concatenation).
    fn close_tool(&mut self, st: &State, out: &mut Vec<u8>) {
        if let Some(k) = self.current_tool.take() {
            if self.tool_bytes.get(k) == Some(&0) {
                self.chunk(st, out, |o| {
                    o.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    o.extend_from_slice(k.to_string().as_bytes());
                    o.extend_from_slice(b",\"function\":{\"arguments\":\"{}\"}}]}");
                });
                self.tool_bytes[k] = 2;
            }
        }
    }

    fn head(&mut self, st: &State) {
        let mut h = Vec::with_capacity(128 + st.model.len());
        h.extend_from_slice(b"data: {\"id\":");
        js(&mut h, &ids::openai_id(&st.id));
        h.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
        h.extend_from_slice(st.created.to_string().as_bytes());
        h.extend_from_slice(b",\"model\":");
        js(&mut h, &st.model);
        h.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":");
        self.head = h;
    }
}

impl Encoder for OpenAiOut {
    fn ev(&mut self, ev: &Ev<'_>, st: &State, out: &mut Vec<u8>) {
        match *ev {
            Ev::Start { .. } => {
                self.head(st);
                self.chunk(st, out, |o| {
                    o.extend_from_slice(b"{\"role\":\"assistant\",\"content\":\"\"}")
                });
            }
            Ev::Usage(_) | Ev::ThinkingStart => {}
            Ev::Ping => out.extend_from_slice(b": ping\n\n"),
            Ev::Thinking(t) => self.field(st, out, "reasoning_content", t),
            Ev::Text(t) => self.field(st, out, "content", t),
            Ev::Refusal(t) => self.field(st, out, "refusal", t),
            Ev::Signature(sig) => self.detail(st, out, |o| {
                o.extend_from_slice(b"{\"type\":\"reasoning.text\",\"text\":\"\",\"signature\":");
                js(o, sig);
                o.extend_from_slice(b",\"format\":");
                js(o, st.format);
                o.extend_from_slice(b",\"index\":0}");
            }),
            Ev::RedactedThinking(data) => self.detail(st, out, |o| {
                o.extend_from_slice(b"{\"type\":\"reasoning.encrypted\",\"data\":");
                js(o, data);
                o.extend_from_slice(b",\"format\":");
                js(o, st.format);
                o.extend_from_slice(b",\"index\":0}");
            }),
            Ev::ToolStart {
                slot,
                id,
                name,
                signature,
            } => {
                self.close_tool(st, out);
                if self.tool_bytes.len() <= slot {
                    self.tool_bytes.resize(slot + 1, 0);
                }
                self.current_tool = Some(slot);
                self.chunk(st, out, |o| {
                    o.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    o.extend_from_slice(slot.to_string().as_bytes());
                    o.extend_from_slice(b",\"id\":");
                    js(o, id);
                    o.extend_from_slice(b",\"type\":\"function\",\"function\":{\"name\":");
                    js(o, name);
                    o.extend_from_slice(b",\"arguments\":\"\"}}]");
                    if let Some(sig) = signature {
                        // The call's reasoning signature (Gemini), tied to the call id.
                        o.extend_from_slice(
                            b",\"reasoning_details\":[{\"type\":\"reasoning.encrypted\",\"data\":",
                        );
                        js(o, sig);
                        o.extend_from_slice(b",\"id\":");
                        js(o, id);
                        o.extend_from_slice(b",\"format\":");
                        js(o, st.format);
                        o.extend_from_slice(b",\"index\":0}]");
                    }
                    o.push(b'}');
                });
            }
            Ev::ToolArgs { slot, json } => {
                if let Some(b) = self.tool_bytes.get_mut(slot) {
                    *b += json.len();
                }
                self.chunk(st, out, |o| {
                    o.extend_from_slice(b"{\"tool_calls\":[{\"index\":");
                    o.extend_from_slice(slot.to_string().as_bytes());
                    o.extend_from_slice(b",\"function\":{\"arguments\":");
                    js(o, json);
                    o.extend_from_slice(b"}}]}");
                });
            }
            Ev::Finish { reason, .. } => {
                self.close_tool(st, out);
                if self.finished {
                    return;
                }
                self.finished = true;
                out.extend_from_slice(&self.head);
                out.extend_from_slice(b"{},\"logprobs\":null,\"finish_reason\":\"");
                out.extend_from_slice(reason.openai().as_bytes());
                out.extend_from_slice(b"\"}]");
                if st.include_usage {
                    out.extend_from_slice(b",\"usage\":null");
                }
                out.extend_from_slice(b"}\n\n");
            }
            Ev::End => {
                if st.include_usage {
                    out.extend_from_slice(b"data: {\"id\":");
                    js(out, &ids::openai_id(&st.id));
                    out.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
                    out.extend_from_slice(st.created.to_string().as_bytes());
                    out.extend_from_slice(b",\"model\":");
                    js(out, &st.model);
                    out.extend_from_slice(b",\"choices\":[],\"usage\":");
                    serde_json::to_writer(&mut *out, &usage::to_openai(&st.usage))
                        .expect("writing to a Vec cannot fail");
                    out.extend_from_slice(b"}\n\n");
                }
                out.extend_from_slice(b"data: [DONE]\n\n");
            }
            Ev::Error(ref e) => {
                crate::response::error::write_stream_error(out, Dialect::OpenAi, e);
            }
        }
    }
}
