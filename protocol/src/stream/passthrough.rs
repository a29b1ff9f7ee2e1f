//! Same dialect on both sides: the upstream bytes go to the client unchanged and immediately; the
//! usage is read on the side, from the few events that carry it (see [`Scan`]). One exception
//! (OpenAI streams, the gateway asked for the usage chunk and the client did not): a usage-only
//! chunk (`choices:[]` + `usage`) is dropped; in that mode whole events are forwarded.

use std::sync::LazyLock;

use aho_corasick::{packed, AhoCorasick, Match};
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
    obs: Observer,
    scan: Scan,
    /// A stream's bytes from the start of its first incomplete event (usually none: events
    /// arrive whole), or a JSON answer's body.
    pending: Vec<u8>,
    /// A JSON answer was handed over by `finish`; its usage is read by `settle_usage`.
    usage_unread: bool,
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

/// Finds the events worth observing without parsing every event.
///
/// Of a 50-event stream only the last two or three carry a finish, usage or a terminator, yet
/// parsing each event and searching it for each key was 40 % of a pass-through stream's
/// instructions. So each burst is searched once for all keys ([`Triggers`]), and only the events
/// holding a hit go through [`Observer::observe`]: the same answer, since every event `observe`
/// acts on holds one of its dialect's keys. Event boundaries are looked up only around those
/// hits and at the burst's end (where the incomplete event starts): listing every line of every
/// burst was a fifth of the scan.
#[derive(Debug)]
struct Scan {
    triggers: &'static Triggers,
    /// Hits (positions in `pending`) in the incomplete event, observed when it completes.
    waiting: Vec<usize>,
}

/// The keys that mark an event for [`Observer::observe`], searched in one pass: one search per
/// key over a 14 KB burst was a fifth of a pass-through stream's instructions.
#[derive(Debug)]
struct Triggers {
    /// Teddy, the SIMD multi-key search (every x86-64 and aarch64 CPU has it). Chosen here, not
    /// left to `AhoCorasick`'s heuristics: they pick a scan for the keys' first bytes, and `"`
    /// is everywhere in JSON (that made the search 6 times slower than one `memmem` per key).
    teddy: Option<packed::Searcher>,
    /// For a CPU without Teddy.
    automaton: AhoCorasick,
    /// Per key: `"key": null` is not a hit (OpenAI repeats `"finish_reason":null` in every chunk).
    unless_null: Vec<bool>,
    longest: usize,
}

impl Triggers {
    fn build(keys: &[(&'static str, bool)]) -> Triggers {
        let words = || keys.iter().map(|(key, _)| key);
        Triggers {
            teddy: packed::Config::new().builder().extend(words()).build(),
            automaton: AhoCorasick::new(words()).expect("literal keys"),
            unless_null: keys.iter().map(|&(_, unless_null)| unless_null).collect(),
            longest: words().map(|key| key.len()).max().unwrap_or(1),
        }
    }

    /// Each leftmost hit in `haystack`, in order.
    fn hits(&self, haystack: &[u8], each: impl FnMut(Match)) {
        match &self.teddy {
            Some(teddy) => teddy.find_iter(haystack).for_each(each),
            None => self.automaton.find_iter(haystack).for_each(each),
        }
    }
}

fn triggers(dialect: Dialect) -> &'static Triggers {
    use Triggers as T;
    // The keys each branch of `Observer::observe` looks for; none holds a line break (so a hit
    // lies within one line of one event) and none overlaps another (so one leftmost search
    // finds every hit of every key).
    static OPENAI: LazyLock<Triggers> = LazyLock::new(|| {
        T::build(&[
            ("\"finish_reason\":", true),
            ("\"usage\":", true),
            ("\"error\"", false),
            ("[DONE]", false),
        ])
    });
    static ANTHROPIC: LazyLock<Triggers> =
        LazyLock::new(|| T::build(&[("message_", false), ("error", false)]));
    static GEMINI: LazyLock<Triggers> = LazyLock::new(|| {
        T::build(&[
            ("\"finishReason\"", false),
            ("\"usageMetadata\"", false),
            ("\"error\"", false),
        ])
    });
    match dialect {
        Dialect::OpenAi => &OPENAI,
        Dialect::Anthropic => &ANTHROPIC,
        Dialect::Gemini => &GEMINI,
    }
}

impl Passthrough {
    pub fn new(ctx: &ResponseContext) -> Self {
        Passthrough {
            stream: ctx.client_stream,
            obs: Observer {
                dialect: ctx.client,
                whole_events: ctx.client_stream
                    && ctx.client == Dialect::OpenAi
                    && !ctx.include_usage,
                usage: Usage::default(),
                complete: false,
            },
            scan: Scan {
                triggers: triggers(ctx.client),
                waiting: Vec::new(),
            },
            pending: Vec::new(),
            usage_unread: false,
        }
    }

    /// Observes the events of `input` that `input[..old]` left incomplete or that arrived in
    /// `input[old..]`; forwards them in whole-events mode. `input` starts with an event. Returns
    /// where its incomplete last event starts, to be kept for the next burst.
    fn settle(&mut self, input: &[u8], old: usize, out: &mut Vec<u8>) -> usize {
        let scan = &mut self.scan;
        // A key cut by the previous burst's end is searched again whole; one that ended before
        // `old` was found then.
        let t = scan.triggers;
        let from = old.saturating_sub(t.longest - 1);
        t.hits(&input[from..], |hit| {
            let (at, end) = (from + hit.start(), from + hit.end());
            if end > old && !(t.unless_null[hit.pattern()] && is_null(&input[end..])) {
                scan.waiting.push(at);
            }
        });
        // In order: the keys do not overlap, so no new hit starts before an earlier one.
        debug_assert!(scan.waiting.is_sorted());
        // `input[..old]` holds no event end: it was the incomplete event.
        let done = last_event_end(input, old, input.len()).unwrap_or(0);
        // Each event with a hit is observed once; in whole-events mode a dropped one is cut out.
        let (mut observed_to, mut forwarded_to) = (0, 0);
        for i in 0..self.scan.waiting.len() {
            let at = self.scan.waiting[i];
            if at >= done {
                break;
            }
            if at < observed_to {
                continue;
            }
            let start = last_event_end(input, observed_to, at).unwrap_or(observed_to);
            // `done` ends an event, so one ends after `at` by then.
            let end = memchr::memchr_iter(b'\n', &input[at..done])
                .map(|nl| at + nl)
                .find(|&nl| ends_event(input, nl))
                .map_or(done, |nl| nl + 1);
            observed_to = end;
            if self.obs.observe_block(&input[start..end]) && self.obs.whole_events {
                out.extend_from_slice(&input[forwarded_to..start]);
                forwarded_to = end;
            }
        }
        if self.obs.whole_events {
            out.extend_from_slice(&input[forwarded_to..done]);
        }
        self.scan.waiting.retain_mut(|at| {
            *at = at.wrapping_sub(done);
            *at < input.len() - done
        });
        done
    }
}

/// Where the last event ending within `input[from..to]` ends (just after its blank line).
fn last_event_end(input: &[u8], from: usize, to: usize) -> Option<usize> {
    memchr::memrchr_iter(b'\n', &input[from..to])
        .map(|nl| from + nl)
        .find(|&nl| ends_event(input, nl))
        .map(|nl| nl + 1)
}

/// Whether the line break at `input[nl]` ends a blank line (`\n` or `\r\n`), so an event;
/// `input` starts with a line.
fn ends_event(input: &[u8], nl: usize) -> bool {
    match nl.checked_sub(1).map(|i| input[i]) {
        None | Some(b'\n') => true,
        Some(b'\r') => nl < 2 || input[nl - 2] == b'\n',
        Some(_) => false,
    }
}

/// Whether a JSON value starting in `rest` (after blanks) is `null`; unknown yet is not null.
fn is_null(rest: &[u8]) -> bool {
    rest.iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .is_some_and(|&b| b == b'n')
}

impl Observer {
    /// Reads the one event in `block` (its raw bytes); returns whether to drop it.
    fn observe_block(&mut self, block: &[u8]) -> bool {
        let mut parser = SseParser::new();
        parser.feed(block);
        parser.finish();
        match parser.next_event() {
            Some(ev) => ev.data.is_some_and(|d| self.observe(ev.event, d)),
            None => false,
        }
    }

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
            self.pending.extend_from_slice(chunk);
            return;
        }
        if !self.obs.whole_events {
            out.extend_from_slice(chunk);
        }
        if self.pending.is_empty() {
            // Events arrive whole: the burst is read where it lies, only a cut event is kept.
            let done = self.settle(chunk, 0, out);
            self.pending.extend_from_slice(&chunk[done..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            let old = pending.len();
            pending.extend_from_slice(chunk);
            let done = self.settle(&pending, old, out);
            pending.drain(..done);
            self.pending = pending;
        }
    }

    fn push_owned(&mut self, chunk: Vec<u8>, out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            if !self.stream {
                self.pending = chunk;
                return;
            }
            // The common case, events arriving whole and forwarded as they are: the burst itself
            // goes to the client (`settle` writes to `out` only in whole-events mode).
            if !self.obs.whole_events && out.is_empty() {
                let done = self.settle(&chunk, 0, out);
                self.pending.extend_from_slice(&chunk[done..]);
                *out = chunk;
                return;
            }
        }
        self.push(&chunk, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), ApiError> {
        if !self.stream {
            self.usage_unread = true;
            // The body as it came: handed over, not copied (`out` is empty for a JSON answer).
            if out.is_empty() {
                std::mem::swap(out, &mut self.pending);
            } else {
                out.append(&mut self.pending);
            }
            return Ok(());
        }
        // What is left is one event without its blank line.
        let last = std::mem::take(&mut self.pending);
        let dropped = !self.scan.waiting.is_empty() && self.obs.observe_block(&last);
        if self.obs.whole_events && !dropped {
            out.extend_from_slice(&last);
        }
        if !self.obs.complete {
            if !last.is_empty() && !self.obs.whole_events {
                out.extend_from_slice(b"\n\n");
            }
            write_stream_error(out, self.obs.dialect, &ended_early());
        }
        Ok(())
    }

    fn settle_usage(&mut self, sent: &[u8]) {
        if std::mem::take(&mut self.usage_unread) {
            if let Some(p) = usage_patch_of_body(self.obs.dialect, sent) {
                p.apply(&mut self.obs.usage);
            }
        }
    }

    fn usage(&self) -> Usage {
        self.obs.usage
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Teddy and the automaton for CPUs without it find the same hits.
    #[test]
    fn both_key_searches_find_the_same_hits() {
        let body = br#"data: {"choices":[{"delta":{"content":"[DONE] error"},"finish_reason":null}],"usage":null}

data: {"choices":[{"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1},"error":"x"}

data: [DONE]

event: message_delta
data: {"type":"error","usageMetadata":1,"finishReason":"STOP"}

"#;
        for dialect in [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini] {
            let t = triggers(dialect);
            if cfg!(target_arch = "x86_64") {
                assert!(t.teddy.is_some(), "every x86-64 CPU has Teddy (SSSE3)");
            }
            let (mut teddy, mut automaton) = (Vec::new(), Vec::new());
            t.hits(body, |m| teddy.push((m.start(), m.pattern())));
            t.automaton
                .find_iter(&body[..])
                .for_each(|m| automaton.push((m.start(), m.pattern())));
            assert!(teddy.len() >= 3, "{dialect:?}: {teddy:?}");
            assert_eq!(teddy, automaton, "{dialect:?}");
        }
    }

    /// The reference `Scan` must agree with: every event parsed and observed.
    fn observe_every_event(ctx: &ResponseContext, body: &[u8]) -> (Vec<u8>, Usage, bool) {
        let mut obs = Passthrough::new(ctx).obs;
        let mut parser = SseParser::new();
        parser.feed(body);
        parser.finish();
        let mut out = Vec::new();
        while let Some(ev) = parser.next_event() {
            let drop = ev.data.is_some_and(|d| obs.observe(ev.event, d));
            if !drop {
                out.extend_from_slice(ev.raw);
            }
        }
        if !obs.whole_events {
            out = body.to_vec();
        }
        (out, obs.usage, obs.complete)
    }

    const OPENAI: &[&str] = &[
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\": \"length\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":null}],\"usage\": {\"prompt_tokens\":2,\"completion_tokens\":1,\"prompt_tokens_details\":{\"cached_tokens\":1}}}\n\n",
        "data: [DONE]\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"[DONE] \\\"error\\\" \\\"usage\\\":{\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"error\"},\"finish_reason\":null}]}\n\n",
        "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
        ": keep-alive\n\n",
        "event: note\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4}}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\ndata: \"stop\"}]}\n\n",
    ];

    const ANTHROPIC: &[&str] = &[
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"an error in message_stop\"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":4}}\n\n",
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n",
    ];

    const GEMINI: &[&str] = &[
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"a\"}]}}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\n\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"b\"}]},\"finishReason\":\"STOP\"}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":6}}\n\n",
        "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"c\"}]}}]}\n\n",
    ];

    fn body(events: &[&str], picks: &[usize], crlf: bool, cut: Option<usize>) -> Vec<u8> {
        let mut b: String = picks.iter().map(|&i| events[i % events.len()]).collect();
        if crlf {
            b = b.replace('\n', "\r\n");
        }
        let mut b = b.into_bytes();
        if let Some(cut) = cut {
            b.truncate(cut % (b.len() + 1));
        }
        b
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn scanning_for_keys_observes_what_parsing_every_event_does(
            mode in 0usize..4,
            picks in proptest::collection::vec(0usize..64, 0..12),
            crlf in any::<bool>(),
            cut in proptest::option::of(0usize..4096),
            cuts in proptest::collection::vec(0usize..4096, 0..12),
        ) {
            let (dialect, events, include_usage) = match mode {
                0 => (Dialect::OpenAi, OPENAI, true),
                1 => (Dialect::OpenAi, OPENAI, false),
                2 => (Dialect::Anthropic, ANTHROPIC, false),
                _ => (Dialect::Gemini, GEMINI, false),
            };
            let mut ctx = ResponseContext::passthrough(dialect, "m", true);
            ctx.include_usage = include_usage;
            let body = body(events, &picks, crlf, cut);
            let (want, usage, complete) = observe_every_event(&ctx, &body);

            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
            cuts.sort_unstable();
            let mut t = Passthrough::new(&ctx);
            let (mut out, mut prev) = (Vec::new(), 0);
            for c in cuts.into_iter().chain([body.len()]) {
                t.push(&body[prev..c], &mut out);
                prev = c;
            }
            let mut tail = Vec::new();
            t.finish(&mut tail).unwrap();
            out.extend_from_slice(&tail);
            prop_assert_eq!(t.obs.usage, usage);
            prop_assert_eq!(t.obs.complete, complete);
            prop_assert!(out.starts_with(&want), "output differs");
            prop_assert_eq!(out.len() == want.len(), complete);
        }
    }
}
