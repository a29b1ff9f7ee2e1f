//! Streaming translation: upstream decoders turn upstream events into a small stream of
//! dialect-free events ([`Ev`]); a [`Shaper`] applies the per-request rewrites (tool-name
//! unmapping, the JSON tool trick, finish-reason fixes, signature minting, usage bookkeeping);
//! encoders write the client's dialect: an SSE encoder per client dialect, or a collector that
//! builds one JSON body (stream -> non-stream).

pub(crate) mod anthropic_in;
pub(crate) mod anthropic_out;
pub(crate) mod collect;
pub(crate) mod gemini_in;
pub(crate) mod gemini_out;
pub(crate) mod openai_in;
pub(crate) mod openai_out;
pub(crate) mod passthrough;

#[cfg(test)]
mod checkers;
#[cfg(test)]
mod golden;
#[cfg(test)]
mod pitfalls;
#[cfg(test)]
mod props;

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Deserializer};

use crate::response::finish::Finish;
use crate::response::ids;
use crate::response::usage::UsagePatch;
use crate::response::ResponseTranslator;
use crate::signature::mint;
use crate::sse::SseParser;
use crate::{ApiError, Dialect, ErrorKind, ResponseContext, Usage};

/// One step of an assistant answer, independent of dialect. Decoders emit them in output order.
#[derive(Debug, Clone)]
pub(crate) enum Ev<'a> {
    /// Identity of the upstream message (first event; synthesized when a decoder has none).
    Start {
        id: &'a str,
        created: Option<u64>,
    },
    /// Usage numbers seen so far (overwrite field by field).
    Usage(UsagePatch),
    /// A new reasoning block begins (Anthropic upstreams; a block may get only a signature).
    ThinkingStart,
    Thinking(&'a str),
    /// The signature of the reasoning being streamed (upstream-native before the shaper,
    /// client-facing after it).
    Signature(&'a str),
    RedactedThinking(&'a str),
    Text(&'a str),
    Refusal(&'a str),
    /// A tool call begins. `slot` counts tool calls from 0 in order of appearance.
    ToolStart {
        slot: usize,
        id: &'a str,
        name: &'a str,
        signature: Option<&'a str>,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolArgs {
        slot: usize,
        json: &'a str,
    },
    /// The model stopped (the first one counts).
    Finish {
        reason: Finish,
        stop_sequence: Option<&'a str>,
    },
    /// A keep-alive (upstream `ping` / SSE comment) while the model works: passed on so the
    /// client connection does not idle out during long reasoning.
    Ping,
    /// The answer is complete.
    End,
    /// The upstream reported an error, or ended before finishing.
    Error(ApiError),
}

pub(crate) trait Sink {
    fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>);
}

/// For the `Option<Cow<str>>` fields of upstream events: borrows the string from the input when
/// it has no escapes. (`#[serde(borrow)]` alone borrows only a bare `Cow<str>`; inside an `Option`
/// every id, finish reason and text delta would be copied.)
pub(crate) fn opt_borrowed<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

/// Reads one upstream dialect.
pub(crate) trait Decoder {
    /// One SSE event (`name` is `""` when the event had no `event:` line).
    fn event(&mut self, name: &str, data: &str, sink: &mut dyn Sink, out: &mut Vec<u8>);
    /// The upstream body ended: emit `End`, or `Error` when it ended before finishing.
    fn eof(&mut self, sink: &mut dyn Sink, out: &mut Vec<u8>);
    /// A whole non-stream body: emit the complete event sequence, or fail without emitting.
    fn json(&mut self, body: &str, sink: &mut dyn Sink, out: &mut Vec<u8>) -> Result<(), ApiError>;
}

/// What every encoder may read.
#[derive(Debug)]
pub(crate) struct State {
    pub client: Dialect,
    pub model: String,
    pub include_usage: bool,
    /// Upstream message id (no dialect prefix).
    pub id: String,
    pub created: u64,
    pub usage: Usage,
    /// Signature for thinking that came without one: `gw1.<origin>.`.
    pub unsigned_sig: String,
    /// `reasoning_details[].format` on the OpenAI surface.
    pub format: &'static str,
}

/// Writes the client's dialect.
pub(crate) trait Encoder {
    fn ev(&mut self, ev: &Ev<'_>, st: &State, out: &mut Vec<u8>);
    /// After the last event: a collector renders its body here (or returns the stream's error).
    fn finish(&mut self, _st: &State, _out: &mut Vec<u8>) -> Result<(), ApiError> {
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Tool(usize),
    Json,
}

/// Per-request rewrites between decoder and encoder; owns the encoder.
pub(crate) struct Shaper<E> {
    pub st: State,
    pub enc: E,
    tool_names: HashMap<String, String>,
    json_tool: Option<String>,
    origin: String,
    native_signatures: bool,
    seed: u64,
    started: bool,
    finish: Option<Finish>,
    pub done: bool,
    slots: Vec<Option<Slot>>,
    client_tools: usize,
    json_used: bool,
    refused: bool,
    content_bytes: u64,
    output_known: bool,
    scratch: String,
}

impl<E: Encoder> Shaper<E> {
    pub fn new(ctx: ResponseContext, enc: E, created: u64, seed: u64) -> Self {
        let format = match ctx.upstream {
            Dialect::Anthropic => "anthropic-claude-v1",
            Dialect::Gemini => "google-gemini-v1",
            Dialect::OpenAi => "unknown",
        };
        Shaper {
            st: State {
                client: ctx.client,
                model: ctx.model,
                include_usage: ctx.include_usage,
                id: String::new(),
                created,
                usage: Usage::default(),
                unsigned_sig: mint(&ctx.origin, ""),
                format,
            },
            enc,
            tool_names: ctx.tool_names,
            json_tool: ctx.json_tool,
            native_signatures: ctx.upstream == Dialect::Anthropic,
            origin: ctx.origin,
            seed,
            started: false,
            finish: None,
            done: false,
            slots: Vec::new(),
            client_tools: 0,
            json_used: false,
            refused: false,
            content_bytes: 0,
            output_known: false,
            scratch: String::new(),
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start("", None, out);
        }
    }

    fn start(&mut self, id: &str, created: Option<u64>, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        self.st.id = if id.is_empty() {
            format!(
                "{:016x}{:08x}",
                ids::mix(self.seed, 1 << 40),
                ids::mix(self.seed, 7) as u32
            )
        } else {
            id.to_string()
        };
        if let Some(c) = created {
            self.st.created = c;
        }
        self.enc.ev(
            &Ev::Start {
                id: &self.st.id,
                created,
            },
            &self.st,
            out,
        );
    }

    /// Bill something when the upstream never reported output tokens (pitfall 12): ~4 bytes a token.
    fn estimate_output(&mut self) {
        if !self.output_known && self.st.usage.output == 0 && self.content_bytes > 0 {
            self.st.usage.output = self.content_bytes.div_ceil(4);
        }
    }

    fn forward(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        self.enc.ev(&ev, &self.st, out);
    }
}

impl<E: Encoder> Sink for Shaper<E> {
    fn ev(&mut self, ev: Ev<'_>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match ev {
            Ev::Usage(p) => {
                p.apply(&mut self.st.usage);
                self.output_known |= p.has_output();
            }
            Ev::Start { id, created } => self.start(id, created, out),
            Ev::End => {
                self.ensure_started(out);
                if self.finish.is_none() {
                    self.ev(
                        Ev::Finish {
                            reason: Finish::EndTurn,
                            stop_sequence: None,
                        },
                        out,
                    );
                }
                self.estimate_output();
                self.done = true;
                self.forward(Ev::End, out);
            }
            Ev::Error(e) => {
                self.estimate_output();
                self.done = true;
                self.forward(Ev::Error(e), out);
            }
            Ev::Finish {
                reason,
                stop_sequence,
            } => {
                if self.finish.is_some() {
                    return; // pitfall 4: the first finish wins, repeats are ignored
                }
                self.ensure_started(out);
                let reason = match reason {
                    Finish::EndTurn if self.client_tools > 0 => Finish::ToolUse,
                    Finish::ToolUse if self.client_tools == 0 && self.json_used => Finish::EndTurn,
                    Finish::EndTurn if self.refused => Finish::Refusal,
                    r => r,
                };
                self.finish = Some(reason);
                self.forward(
                    Ev::Finish {
                        reason,
                        stop_sequence,
                    },
                    out,
                );
            }
            Ev::Signature(sig) => {
                if sig.is_empty() {
                    return;
                }
                self.ensure_started(out);
                let mut scratch = std::mem::take(&mut self.scratch);
                let sig = if self.native_signatures {
                    sig
                } else {
                    scratch = mint(&self.origin, sig);
                    scratch.as_str()
                };
                self.enc.ev(&Ev::Signature(sig), &self.st, out);
                self.scratch = scratch;
            }
            Ev::ToolStart {
                slot,
                id,
                name,
                signature,
            } => {
                self.ensure_started(out);
                let client_name = self
                    .tool_names
                    .get(name)
                    .map(String::as_str)
                    .unwrap_or(name);
                if self.slots.len() <= slot {
                    self.slots.resize(slot + 1, None);
                }
                if self
                    .json_tool
                    .as_deref()
                    .is_some_and(|j| j == name || j == client_name)
                {
                    self.slots[slot] = Some(Slot::Json);
                    self.json_used = true;
                    return;
                }
                let k = self.client_tools;
                self.client_tools += 1;
                self.slots[slot] = Some(Slot::Tool(k));
                let synth;
                let id = if id.is_empty() {
                    synth = format!("call_{:016x}", ids::mix(self.seed, k as u64));
                    synth.as_str()
                } else {
                    id
                };
                let client_name = client_name.to_string();
                let sig = signature.filter(|s| !s.is_empty()).map(|s| {
                    if self.native_signatures {
                        s.to_string()
                    } else {
                        mint(&self.origin, s)
                    }
                });
                self.forward(
                    Ev::ToolStart {
                        slot: k,
                        id,
                        name: &client_name,
                        signature: sig.as_deref(),
                    },
                    out,
                );
            }
            Ev::ToolArgs { slot, json } => {
                if json.is_empty() {
                    return;
                }
                match self.slots.get(slot).copied().flatten() {
                    Some(Slot::Tool(k)) => {
                        self.content_bytes += json.len() as u64;
                        self.forward(Ev::ToolArgs { slot: k, json }, out);
                    }
                    Some(Slot::Json) => {
                        self.content_bytes += json.len() as u64;
                        self.forward(Ev::Text(json), out);
                    }
                    None => {}
                }
            }
            Ev::Refusal(t) => {
                if t.is_empty() {
                    return;
                }
                self.ensure_started(out);
                self.refused = true;
                self.content_bytes += t.len() as u64;
                self.forward(Ev::Refusal(t), out);
            }
            Ev::Ping => self.forward(Ev::Ping, out),
            Ev::ThinkingStart => {
                self.ensure_started(out);
                self.forward(Ev::ThinkingStart, out);
            }
            Ev::Text(t) | Ev::Thinking(t) | Ev::RedactedThinking(t) if t.is_empty() => {
                let _ = t;
            }
            ev @ (Ev::Text(_) | Ev::Thinking(_) | Ev::RedactedThinking(_)) => {
                self.ensure_started(out);
                if let Ev::Text(t) | Ev::Thinking(t) = &ev {
                    self.content_bytes += t.len() as u64;
                }
                self.forward(ev, out);
            }
        }
    }
}

/// SSE or JSON upstream -> decoder -> shaper -> encoder.
pub(crate) struct Pipeline<D, E> {
    parser: SseParser,
    dec: D,
    sh: Shaper<E>,
    stream_in: bool,
    body: Vec<u8>,
}

impl<D: Decoder, E: Encoder> Pipeline<D, E> {
    pub fn new(ctx: ResponseContext, dec: D, enc: E, created: u64, seed: u64) -> Self {
        Pipeline {
            parser: SseParser::new(),
            stream_in: ctx.upstream_stream,
            dec,
            sh: Shaper::new(ctx, enc, created, seed),
            body: Vec::new(),
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        let Pipeline {
            parser, dec, sh, ..
        } = self;
        while let Some(ev) = parser.next_event() {
            match ev.data {
                Some(data) => dec.event(ev.event, data, sh, out),
                // A comment-only block (`: keepalive`).
                None if ev.raw.starts_with(b":") => sh.ev(Ev::Ping, out),
                None => {}
            }
        }
    }
}

impl<D: Decoder + Send, E: Encoder + Send> ResponseTranslator for Pipeline<D, E> {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.stream_in {
            if self.sh.done {
                return;
            }
            self.parser.feed(chunk);
            self.drain(out);
        } else {
            self.body.extend_from_slice(chunk);
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        if self.stream_in {
            self.parser.finish();
            self.drain(out);
            self.dec.eof(&mut self.sh, out);
        } else {
            let body = std::mem::take(&mut self.body);
            // Validated once here, so the parser need not check every string it borrows.
            let body = crate::utf8(&body).map_err(|e| openai_in::invalid_body(&e))?;
            self.dec.json(body, &mut self.sh, out)?;
        }
        if !self.sh.done {
            self.sh.ev(Ev::Error(ended_early()), out);
        }
        self.sh.enc.finish(&self.sh.st, out)
    }

    fn usage(&self) -> Usage {
        self.sh.st.usage
    }
}

/// The upstream stream stopped before the answer was finished (§3.1 step 7).
/// A decoder's end of input, once: a normal end when the upstream said it was complete (a finish
/// reason, `message_delta`), else an error (the stream was cut; Gemini has no terminator at all).
pub(crate) fn end_at_eof(done: &mut bool, complete: bool, sink: &mut dyn Sink, out: &mut Vec<u8>) {
    if std::mem::replace(done, true) {
        return;
    }
    if complete {
        sink.ev(Ev::End, out);
    } else {
        sink.ev(Ev::Error(ended_early()), out);
    }
}

pub(crate) fn ended_early() -> ApiError {
    ApiError::new(
        ErrorKind::BadGateway,
        "upstream stream ended early, before the answer was finished",
    )
}

/// Builds the translator for one exchange.
pub(crate) fn build(ctx: ResponseContext, created: u64, seed: u64) -> Box<dyn ResponseTranslator> {
    if ctx.client == ctx.upstream && ctx.client_stream == ctx.upstream_stream {
        return Box::new(passthrough::Passthrough::new(&ctx));
    }
    macro_rules! with_decoder {
        ($enc:expr) => {{
            let enc = $enc;
            match ctx.upstream {
                Dialect::OpenAi => Box::new(Pipeline::new(
                    ctx,
                    openai_in::OpenAiIn::new(seed),
                    enc,
                    created,
                    seed,
                )) as Box<dyn ResponseTranslator>,
                Dialect::Anthropic => Box::new(Pipeline::new(
                    ctx,
                    anthropic_in::AnthropicIn::new(),
                    enc,
                    created,
                    seed,
                )),
                Dialect::Gemini => Box::new(Pipeline::new(
                    ctx,
                    gemini_in::GeminiIn::new(),
                    enc,
                    created,
                    seed,
                )),
            }
        }};
    }
    if !ctx.client_stream {
        return with_decoder!(collect::Collect::default());
    }
    match ctx.client {
        Dialect::OpenAi => with_decoder!(openai_out::OpenAiOut::default()),
        Dialect::Anthropic => with_decoder!(anthropic_out::AnthropicOut::default()),
        Dialect::Gemini => with_decoder!(gemini_out::GeminiOut::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsigned_reasoning_gets_a_parseable_gateway_signature() {
        let ctx = checkers::ctx(Dialect::Anthropic, Dialect::OpenAi, true, true);
        let sh = Shaper::new(ctx, collect::Collect::default(), 0, 0);
        assert_eq!(
            crate::signature::parse(&sh.st.unsigned_sig),
            Some(("prov/up-model".to_string(), String::new()))
        );
    }
}
