//! Same dialect on both sides: the upstream bytes go to the client unchanged and immediately; a
//! side parser only reads the usage. One exception (OpenAI streams, client did not ask for the
//! usage chunk): a usage-only chunk (`choices:[]` + `usage`) can only be there because the gateway
//! asked the upstream for it, so it is dropped; in that mode whole events are forwarded.

use std::sync::LazyLock;

use memchr::memmem;
use serde_json::Value;

use super::ended_early;
use crate::response::error::write_stream_error;
use crate::response::usage::{usage_patch_of, usage_patch_of_body};
use crate::response::ResponseTranslator;
use crate::sse::SseParser;
use crate::{ApiError, Dialect, ResponseContext, Usage};

#[derive(Debug)]
pub(crate) struct Passthrough {
    stream: bool,
    parser: SseParser,
    obs: Observer,
    body: Vec<u8>,
}

#[derive(Debug)]
struct Observer {
    dialect: Dialect,
    /// Forward whole events and drop usage-only chunks (OpenAI, `include_usage` false).
    whole_events: bool,
    usage: Usage,
    /// A finish / terminator / error was seen: EOF is a normal end.
    complete: bool,
}

impl Passthrough {
    pub fn new(ctx: &ResponseContext) -> Self {
        Passthrough {
            stream: ctx.client_stream,
            parser: SseParser::new(),
            obs: Observer {
                dialect: ctx.client,
                whole_events: ctx.client_stream
                    && ctx.client == Dialect::OpenAi
                    && !ctx.include_usage,
                usage: Usage::default(),
                complete: false,
            },
            body: Vec::new(),
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        while let Some(ev) = self.parser.next_event() {
            let drop = match ev.data {
                Some(d) => self.obs.observe(ev.event, d),
                None => false,
            };
            if self.obs.whole_events && !drop {
                out.extend_from_slice(ev.raw);
            }
        }
    }
}

impl Observer {
    /// Reads one event; returns whether to drop it.
    fn observe(&mut self, name: &str, data: &str) -> bool {
        let d = data.trim();
        match self.dialect {
            Dialect::OpenAi => {
                if d == "[DONE]" {
                    self.complete = true;
                    return false;
                }
                // One search per key, each value checked in place: this runs on every chunk.
                if value_after(d, &FINISH_REASON).is_some_and(|v| v.starts_with('"')) {
                    self.complete = true;
                }
                // An error chunk has no `choices` (which comes early in a normal chunk).
                if CHOICES.find(d.as_bytes()).is_none() && ERROR.find(d.as_bytes()).is_some() {
                    self.complete = true;
                }
                // Most chunks carry `"usage":null`: only parse the ones with numbers.
                if !value_after(d, &USAGE).is_some_and(|v| v.starts_with('{')) {
                    return false;
                }
                let Ok(v) = serde_json::from_str::<Value>(d) else {
                    return false;
                };
                if let Some(p) = usage_patch_of(Dialect::OpenAi, &v) {
                    p.apply(&mut self.usage);
                    let usage_only = v
                        .get("choices")
                        .and_then(Value::as_array)
                        .is_some_and(Vec::is_empty);
                    return usage_only && self.whole_events;
                }
                false
            }
            Dialect::Anthropic => {
                let kind = if name.is_empty() {
                    // Data-only streams: read the type from the data.
                    if d.contains("\"message_start\"") {
                        "message_start"
                    } else if d.contains("\"message_delta\"") {
                        "message_delta"
                    } else if d.contains("\"message_stop\"") {
                        "message_stop"
                    } else if d.contains("\"error\"") {
                        "error"
                    } else {
                        ""
                    }
                } else {
                    name
                };
                match kind {
                    "message_start" | "message_delta" => {
                        if let Ok(v) = serde_json::from_str::<Value>(d) {
                            if let Some(p) = usage_patch_of(Dialect::Anthropic, &v) {
                                p.apply(&mut self.usage);
                            }
                            if v.pointer("/delta/stop_reason")
                                .is_some_and(|r| !r.is_null())
                            {
                                self.complete = true;
                            }
                        }
                    }
                    "message_stop" | "error" => self.complete = true,
                    _ => {}
                }
                false
            }
            Dialect::Gemini => {
                if d.contains("\"finishReason\"") || d.contains("\"error\"") {
                    self.complete = true;
                }
                if d.contains("\"usageMetadata\"") {
                    if let Ok(v) = serde_json::from_str::<Value>(d) {
                        if let Some(p) = usage_patch_of(Dialect::Gemini, &v) {
                            p.apply(&mut self.usage);
                        }
                    }
                }
                false
            }
        }
    }
}

impl ResponseTranslator for Passthrough {
    fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if !self.stream {
            self.body.extend_from_slice(chunk);
            return;
        }
        if !self.obs.whole_events {
            out.extend_from_slice(chunk);
        }
        self.parser.feed(chunk);
        self.drain(out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        if !self.stream {
            if let Some(p) = usage_patch_of_body(self.obs.dialect, &self.body) {
                p.apply(&mut self.obs.usage);
            }
            out.append(&mut self.body);
            return Ok(());
        }
        let cut_mid_line = !self.parser.pending().is_empty();
        self.parser.finish();
        self.drain(out);
        if !self.obs.complete {
            if cut_mid_line && !self.obs.whole_events {
                out.extend_from_slice(b"\n\n");
            }
            write_stream_error(out, self.obs.dialect, &ended_early());
        }
        Ok(())
    }

    fn usage(&self) -> Usage {
        self.obs.usage
    }

    fn content_type(&self) -> &'static str {
        super::content_type(self.stream)
    }
}

// Searchers for the keys the observer looks for in every OpenAI chunk, built once. Forward
// searchers, even for a key's last occurrence: they scan with SIMD, while a reverse search is
// byte by byte (it was a quarter of a pass-through stream's instructions).
static FINISH_REASON: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"finish_reason\":"));
static USAGE: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"usage\":"));
static CHOICES: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"choices\""));
static ERROR: LazyLock<memmem::Finder<'static>> =
    LazyLock::new(|| memmem::Finder::new(b"\"error\""));

/// The text after the last occurrence of a key in `json`, leading spaces skipped (`"k": v` and
/// `"k":v` alike). Keys are ASCII, so the cut is on a char boundary.
fn value_after<'a>(json: &'a str, key: &memmem::Finder<'_>) -> Option<&'a str> {
    key.find_iter(json.as_bytes())
        .last()
        .map(|at| json[at + key.needle().len()..].trim_start())
}
