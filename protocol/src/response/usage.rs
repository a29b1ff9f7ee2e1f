//! Usage on the wire (protocols.md §2.9): each dialect's usage object into the normalized
//! [`Usage`], and back.
//!
//! Normalized: `input` excludes cache reads and writes, `output` includes reasoning.

use std::sync::LazyLock;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::usage_scan::{self, Slot};
use crate::Usage;

/// Some fields of a usage record; later patches overwrite earlier ones field by field
/// (Anthropic sends input numbers in `message_start` and cumulative output in `message_delta`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UsagePatch {
    pub input: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub reasoning: Option<u64>,
    pub output: Option<u64>,
}

impl UsagePatch {
    pub fn full(u: Usage) -> Self {
        UsagePatch {
            input: Some(u.input),
            cache_read: Some(u.cache_read),
            cache_write: Some(u.cache_write),
            reasoning: Some(u.reasoning),
            output: Some(u.output),
        }
    }

    pub fn apply(&self, u: &mut Usage) {
        if let Some(v) = self.input {
            u.input = v;
        }
        if let Some(v) = self.cache_read {
            u.cache_read = v;
        }
        if let Some(v) = self.cache_write {
            u.cache_write = v;
        }
        if let Some(v) = self.reasoning {
            u.reasoning = v;
        }
        if let Some(v) = self.output {
            u.output = v;
        }
    }

    pub fn has_output(&self) -> bool {
        self.output.is_some()
    }
}

/// OpenAI `CompletionUsage`, with the DeepSeek and Kimi cache spellings.
#[derive(Debug, Default, Deserialize)]
pub struct OpenAiUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub prompt_tokens_details: Option<OpenAiPromptDetails>,
    #[serde(default)]
    pub completion_tokens_details: Option<OpenAiCompletionDetails>,
    /// DeepSeek.
    #[serde(default)]
    pub prompt_cache_hit_tokens: Option<u64>,
    /// Kimi (top level).
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OpenAiPromptDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(default)]
    pub cache_write_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct OpenAiCompletionDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

impl OpenAiUsage {
    /// Whether the record carries any numbers (some vendors send `usage:{}`).
    pub fn is_present(&self) -> bool {
        self.prompt_tokens.is_some() || self.completion_tokens.is_some()
    }

    pub fn normalize(&self) -> Usage {
        let details = self.prompt_tokens_details.as_ref();
        let cache_read = details
            .and_then(|d| d.cached_tokens)
            .or(self.prompt_cache_hit_tokens)
            .or(self.cached_tokens)
            .unwrap_or(0);
        let cache_write = details.and_then(|d| d.cache_write_tokens).unwrap_or(0);
        let prompt = self.prompt_tokens.unwrap_or(0);
        Usage {
            input: prompt.saturating_sub(cache_read + cache_write),
            cache_read,
            cache_write,
            reasoning: self
                .completion_tokens_details
                .as_ref()
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            output: self.completion_tokens.unwrap_or(0),
        }
    }
}

/// Anthropic `Usage` / `MessageDeltaUsage` (every field optional: deltas carry a subset).
#[derive(Debug, Default, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default)]
    pub input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens: Option<u64>,
    #[serde(default)]
    pub output_tokens_details: Option<AnthropicOutputDetails>,
}

#[derive(Debug, Default, Deserialize)]
pub struct AnthropicOutputDetails {
    #[serde(default)]
    pub thinking_tokens: Option<u64>,
}

impl AnthropicUsage {
    pub fn patch(&self) -> UsagePatch {
        UsagePatch {
            input: self.input_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_write: self.cache_creation_input_tokens,
            reasoning: self
                .output_tokens_details
                .as_ref()
                .and_then(|d| d.thinking_tokens),
            output: self.output_tokens,
        }
    }
}

/// Gemini `usageMetadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiUsage {
    #[serde(default)]
    pub prompt_token_count: Option<u64>,
    #[serde(default)]
    pub cached_content_token_count: Option<u64>,
    #[serde(default)]
    pub candidates_token_count: Option<u64>,
    #[serde(default)]
    pub thoughts_token_count: Option<u64>,
    #[serde(default)]
    pub tool_use_prompt_token_count: Option<u64>,
}

impl GeminiUsage {
    pub fn normalize(&self) -> Usage {
        let prompt =
            self.prompt_token_count.unwrap_or(0) + self.tool_use_prompt_token_count.unwrap_or(0);
        let cache_read = self.cached_content_token_count.unwrap_or(0);
        let thoughts = self.thoughts_token_count.unwrap_or(0);
        Usage {
            input: prompt.saturating_sub(cache_read),
            cache_read,
            cache_write: 0,
            reasoning: thoughts,
            output: self.candidates_token_count.unwrap_or(0) + thoughts,
        }
    }

    /// A chunk may carry only the prompt count (output still unknown).
    pub fn patch(&self) -> UsagePatch {
        let u = self.normalize();
        let mut p = UsagePatch::full(u);
        if self.candidates_token_count.is_none() && self.thoughts_token_count.is_none() {
            p.output = None;
            p.reasoning = None;
        }
        p
    }
}

// The usage objects written to clients. Fields are in alphabetical order, here and in every
// rendered body of `response::message`: the byte order clients have always received (bodies were
// once built as `serde_json::Value`s, whose maps are sorted).

/// OpenAI `usage` object.
#[derive(Debug, Serialize)]
pub struct OpenAiUsageOut {
    pub completion_tokens: u64,
    pub completion_tokens_details: OpenAiCompletionDetailsOut,
    pub prompt_tokens: u64,
    pub prompt_tokens_details: OpenAiPromptDetailsOut,
    pub total_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct OpenAiPromptDetailsOut {
    /// Only when there were cache writes (an OpenAI-compatible extension).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
    pub cached_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct OpenAiCompletionDetailsOut {
    pub reasoning_tokens: u64,
}

/// Anthropic `usage` object: every field present (Claude Code reads the cache fields).
#[derive(Debug, Serialize)]
pub struct AnthropicUsageOut {
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Gemini `usageMetadata`: the cache and thought counts only when non-zero.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiUsageOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_content_token_count: Option<u64>,
    pub candidates_token_count: u64,
    pub prompt_token_count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thoughts_token_count: Option<u64>,
    pub total_token_count: u64,
}

/// OpenAI `usage` object.
pub fn to_openai(u: &Usage) -> OpenAiUsageOut {
    let prompt = u.prompt_total();
    OpenAiUsageOut {
        completion_tokens: u.output,
        completion_tokens_details: OpenAiCompletionDetailsOut {
            reasoning_tokens: u.reasoning,
        },
        prompt_tokens: prompt,
        prompt_tokens_details: OpenAiPromptDetailsOut {
            cache_write_tokens: (u.cache_write > 0).then_some(u.cache_write),
            cached_tokens: u.cache_read,
        },
        total_tokens: prompt + u.output,
    }
}

/// Anthropic `usage` object.
pub fn to_anthropic(u: &Usage) -> AnthropicUsageOut {
    AnthropicUsageOut {
        cache_creation_input_tokens: u.cache_write,
        cache_read_input_tokens: u.cache_read,
        input_tokens: u.input,
        output_tokens: u.output,
    }
}

/// Gemini `usageMetadata`.
pub fn to_gemini(u: &Usage) -> GeminiUsageOut {
    let prompt = u.prompt_total();
    GeminiUsageOut {
        cached_content_token_count: (u.cache_read > 0).then_some(u.cache_read),
        candidates_token_count: u.output.saturating_sub(u.reasoning),
        prompt_token_count: prompt,
        thoughts_token_count: (u.reasoning > 0).then_some(u.reasoning),
        total_token_count: prompt + u.output,
    }
}

/// The normalized usage of a whole (non-stream) body or of one stream chunk in `dialect`, if it
/// carries any. Used by the pass-through paths.
pub fn usage_patch_of(dialect: crate::Dialect, v: &Value) -> Option<UsagePatch> {
    let u = match dialect {
        crate::Dialect::OpenAi => v.get("usage")?,
        crate::Dialect::Anthropic => v
            .get("usage")
            .or_else(|| v.get("message").and_then(|m| m.get("usage")))?,
        crate::Dialect::Gemini => v.get("usageMetadata")?,
    };
    usage_patch_from(dialect, u)
}

/// The patch of a dialect's usage object itself (`usage`, or Gemini's `usageMetadata`).
pub fn usage_patch_from<'de, D: serde::Deserializer<'de>>(
    dialect: crate::Dialect,
    u: D,
) -> Option<UsagePatch> {
    match dialect {
        crate::Dialect::OpenAi => OpenAiUsage::deserialize(u).ok()?.into_patch(),
        crate::Dialect::Anthropic => AnthropicUsage::deserialize(u).ok()?.into_patch(),
        crate::Dialect::Gemini => GeminiUsage::deserialize(u).ok()?.into_patch(),
    }
}

/// A dialect's usage object, as read off the wire: by serde, or by `usage_scan` where it is sure
/// to agree (its fields mirror the struct's).
trait UsageObject: for<'de> Deserialize<'de> {
    const FIELDS: &'static [(&'static [u8], Slot)];
    fn from_scan(read: &usage_scan::Read) -> Self;
    fn into_patch(self) -> Option<UsagePatch>;
}

impl UsageObject for OpenAiUsage {
    const FIELDS: &'static [(&'static [u8], Slot)] = &[
        (b"prompt_tokens", Slot::Count(0)),
        (b"completion_tokens", Slot::Count(1)),
        (b"prompt_cache_hit_tokens", Slot::Count(2)),
        (b"cached_tokens", Slot::Count(3)),
        (
            b"prompt_tokens_details",
            Slot::Object(
                0,
                &[
                    (b"cached_tokens", Slot::Count(4)),
                    (b"cache_write_tokens", Slot::Count(5)),
                ],
            ),
        ),
        (
            b"completion_tokens_details",
            Slot::Object(1, &[(b"reasoning_tokens", Slot::Count(6))]),
        ),
    ];

    fn from_scan(r: &usage_scan::Read) -> Self {
        OpenAiUsage {
            prompt_tokens: r.slots[0],
            completion_tokens: r.slots[1],
            prompt_cache_hit_tokens: r.slots[2],
            cached_tokens: r.slots[3],
            prompt_tokens_details: r.objects[0].then_some(OpenAiPromptDetails {
                cached_tokens: r.slots[4],
                cache_write_tokens: r.slots[5],
            }),
            completion_tokens_details: r.objects[1].then_some(OpenAiCompletionDetails {
                reasoning_tokens: r.slots[6],
            }),
        }
    }

    fn into_patch(self) -> Option<UsagePatch> {
        self.is_present()
            .then(|| UsagePatch::full(self.normalize()))
    }
}

impl UsageObject for AnthropicUsage {
    const FIELDS: &'static [(&'static [u8], Slot)] = &[
        (b"input_tokens", Slot::Count(0)),
        (b"cache_creation_input_tokens", Slot::Count(1)),
        (b"cache_read_input_tokens", Slot::Count(2)),
        (b"output_tokens", Slot::Count(3)),
        (
            b"output_tokens_details",
            Slot::Object(0, &[(b"thinking_tokens", Slot::Count(4))]),
        ),
    ];

    fn from_scan(r: &usage_scan::Read) -> Self {
        AnthropicUsage {
            input_tokens: r.slots[0],
            cache_creation_input_tokens: r.slots[1],
            cache_read_input_tokens: r.slots[2],
            output_tokens: r.slots[3],
            output_tokens_details: r.objects[0].then_some(AnthropicOutputDetails {
                thinking_tokens: r.slots[4],
            }),
        }
    }

    fn into_patch(self) -> Option<UsagePatch> {
        Some(self.patch())
    }
}

impl UsageObject for GeminiUsage {
    const FIELDS: &'static [(&'static [u8], Slot)] = &[
        (b"promptTokenCount", Slot::Count(0)),
        (b"cachedContentTokenCount", Slot::Count(1)),
        (b"candidatesTokenCount", Slot::Count(2)),
        (b"thoughtsTokenCount", Slot::Count(3)),
        (b"toolUsePromptTokenCount", Slot::Count(4)),
    ];

    fn from_scan(r: &usage_scan::Read) -> Self {
        GeminiUsage {
            prompt_token_count: r.slots[0],
            cached_content_token_count: r.slots[1],
            candidates_token_count: r.slots[2],
            thoughts_token_count: r.slots[3],
            tool_use_prompt_token_count: r.slots[4],
        }
    }

    fn into_patch(self) -> Option<UsagePatch> {
        Some(self.patch())
    }
}

static USAGE_KEY: LazyLock<LastKey> = LazyLock::new(|| LastKey::new(b"\"usage\""));
static GEMINI_KEY: LazyLock<LastKey> = LazyLock::new(|| LastKey::new(b"\"usageMetadata\""));

/// The usage patch of a whole JSON response body, reading only its usage object: the rest of
/// the body is skipped, not built into a tree (this runs on every pass-through answer).
pub fn usage_patch_of_body(dialect: crate::Dialect, body: &[u8]) -> Option<UsagePatch> {
    match dialect {
        crate::Dialect::OpenAi => patch_of_body::<OpenAiUsage>(&USAGE_KEY, body),
        crate::Dialect::Anthropic => patch_of_body::<AnthropicUsage>(&USAGE_KEY, body),
        crate::Dialect::Gemini => patch_of_body::<GeminiUsage>(&GEMINI_KEY, body),
    }
}

fn patch_of_body<U: UsageObject>(key: &LastKey, body: &[u8]) -> Option<UsagePatch> {
    if let Some(usage) = trailing_usage::<U>(key, body) {
        return usage.into_patch();
    }
    #[derive(Deserialize)]
    struct UsageOnly<'a> {
        #[serde(borrow, alias = "usageMetadata")]
        usage: Option<&'a serde_json::value::RawValue>,
    }
    let raw = serde_json::from_slice::<UsageOnly>(body).ok()?.usage?;
    U::deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
        .ok()?
        .into_patch()
}

/// The root object's usage member found from the end of the body, without reading the rest.
///
/// Every provider writes usage after the content, followed at most by scalar members
/// (`service_tier`, `system_fingerprint`, `modelVersion`, `responseId`). A nested object with a
/// `usage` key (say, inside a tool's input) would need a second closing bracket after it, and
/// inside JSON strings a quote is always escaped, so the key cannot be forged by content. When
/// the shape does not hold, or the object does not parse, `None`: the caller reads the whole
/// body instead. The object is parsed where it starts, and the parser says where it ended: one
/// pass over it, not a bracket count first.
fn trailing_usage<U: UsageObject>(key: &LastKey, body: &[u8]) -> Option<U> {
    let at = key.find(body)?;
    let rest = skip_ws(&body[at + key.len()..]);
    let value = skip_ws(rest.strip_prefix(b":")?);
    if value.first() != Some(&b'{') {
        return None;
    }
    if let Some((read, end)) = usage_scan::read(value, U::FIELDS) {
        return only_scalar_members_then_end(&value[end..]).then(|| U::from_scan(&read));
    }
    let mut objects = serde_json::Deserializer::from_slice(value).into_iter::<U>();
    let usage = objects.next()?.ok()?;
    only_scalar_members_then_end(&value[objects.byte_offset()..]).then_some(usage)
}

/// Finds a key's last occurrence in a body. A reverse search goes byte by byte (four instructions
/// a byte, a fifth of reading a JSON answer's usage), so the body's end, where usage sits, is
/// searched forward with SIMD, and the rest in reverse only when the key is not there.
struct LastKey {
    forward: memchr::memmem::Finder<'static>,
    reverse: memchr::memmem::FinderRev<'static>,
}

impl LastKey {
    /// The end searched forward: a usage object and the scalar members after it fit in it.
    const TAIL: usize = 1024;

    fn new(key: &'static [u8]) -> LastKey {
        LastKey {
            forward: memchr::memmem::Finder::new(key),
            reverse: memchr::memmem::FinderRev::new(key),
        }
    }

    fn len(&self) -> usize {
        self.forward.needle().len()
    }

    fn find(&self, body: &[u8]) -> Option<usize> {
        let tail = body.len().saturating_sub(Self::TAIL);
        // The keys cannot overlap themselves, so the last of the forward hits is the last one.
        if let Some(at) = self.forward.find_iter(&body[tail..]).last() {
            return Some(tail + at);
        }
        // A key cut by the tail's start lies wholly in this part.
        let head = (tail + self.len() - 1).min(body.len());
        self.reverse.rfind(&body[..head])
    }
}

fn skip_ws(b: &[u8]) -> &[u8] {
    let n = b.iter().take_while(|c| c.is_ascii_whitespace()).count();
    &b[n..]
}

/// Whether `tail` is `(,"key":scalar)*}` and nothing else but whitespace.
fn only_scalar_members_then_end(mut tail: &[u8]) -> bool {
    loop {
        tail = skip_ws(tail);
        match tail.split_first() {
            Some((b'}', after)) => return skip_ws(after).is_empty(),
            Some((b',', after)) => {
                let Some(after_key) = skip_string(skip_ws(after)) else {
                    return false;
                };
                let Some(value) = skip_ws(after_key).strip_prefix(b":") else {
                    return false;
                };
                let value = skip_ws(value);
                tail = match value.first() {
                    Some(b'"') => match skip_string(value) {
                        Some(after) => after,
                        None => return false,
                    },
                    _ => {
                        let n = value
                            .iter()
                            .take_while(|c| c.is_ascii_alphanumeric() || b"+-.".contains(c))
                            .count();
                        if n == 0 {
                            return false; // an object or an array
                        }
                        &value[n..]
                    }
                };
            }
            _ => return false,
        }
    }
}

/// The bytes after the JSON string `s` starts with.
fn skip_string(s: &[u8]) -> Option<&[u8]> {
    let mut i = 1;
    if s.first() != Some(&b'"') {
        return None;
    }
    loop {
        i += memchr::memchr2(b'"', b'\\', &s[i..])?;
        if s[i] == b'"' {
            return Some(&s[i + 1..]);
        }
        i += 2; // an escape: skip the escaped byte
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What serde makes of the object `json` starts with (as `trailing_usage` asks it), and
    /// where it ended.
    fn serde_read<U: UsageObject + std::fmt::Debug>(json: &[u8]) -> Option<(String, usize)> {
        let mut objects = serde_json::Deserializer::from_slice(json).into_iter::<U>();
        let usage = objects.next()?.ok()?;
        Some((format!("{usage:?}"), objects.byte_offset()))
    }

    /// Where the scan answers, serde answers the same and ends the object at the same byte.
    /// Whether the scan answered.
    fn scan_agrees<U: UsageObject + std::fmt::Debug>(json: &[u8]) -> Result<bool, TestCaseError> {
        let Some((read, end)) = usage_scan::read(json, U::FIELDS) else {
            return Ok(false);
        };
        let scanned = format!("{:?}", U::from_scan(&read));
        prop_assert_eq!(
            Some((scanned, end)),
            serde_read::<U>(json),
            "{}",
            String::from_utf8_lossy(json)
        );
        Ok(true)
    }

    /// JSON text near the usage objects providers write: their field names and some others,
    /// counts, and the cases the scan must leave to serde (escapes, non-ASCII, fractions,
    /// exponents, negatives, long or zero-led numbers, repeats, deep nesting, broken syntax).
    fn near_usage() -> impl Strategy<Value = String> {
        let key = prop::sample::select(vec![
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "prompt_tokens_details",
            "completion_tokens_details",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "prompt_cache_hit_tokens",
            "audio_tokens",
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens_details",
            "thinking_tokens",
            "cache_creation",
            "service_tier",
            "promptTokenCount",
            "candidatesTokenCount",
            "cachedContentTokenCount",
            "thoughtsTokenCount",
            "toolUsePromptTokenCount",
            "promptTokensDetails",
            r"prompt_tok\u0065ns",
            r"input_tokens\n",
            "t\u{f6}kens",
            "",
        ]);
        let scalar = prop::sample::select(vec![
            "0",
            "7",
            "1234",
            "9999999999999999999",
            "18446744073709551615",
            "18446744073709551616",
            "01",
            "-1",
            "-0",
            "1.5",
            "1e3",
            "2E2",
            "null",
            "true",
            "false",
            r#""standard""#,
            r#""a\"b""#,
            "\"\u{e9}\"",
            "\"\u{1}\"",
            "nul",
            "--1",
            "",
        ])
        .prop_map(str::to_string);
        scalar.prop_recursive(5, 48, 6, move |inner| {
            prop_oneof![
                4 => prop::collection::vec(
                    (key.clone(), inner.clone(), prop::sample::select(vec!["", " ", "\n  "])),
                    0..6,
                )
                .prop_map(|members| {
                    let body: Vec<String> = members
                        .iter()
                        .map(|(k, v, ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
                        .collect();
                    format!("{{{}}}", body.join(","))
                }),
                1 => prop::collection::vec(inner, 0..4).prop_map(|items| format!("[{}]", items.join(","))),
                1 => Just(r#"{"a":1,}"#.to_string()),
                1 => Just(r#"{"a" 1}"#.to_string()),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Accounting must not depend on which reader read the usage.
        #[test]
        fn the_scan_agrees_with_serde(
            object in near_usage(),
            tail in prop::sample::select(vec!["", "}", r#","x":1}"#, " \n"]),
        ) {
            let json = format!("{object}{tail}");
            scan_agrees::<OpenAiUsage>(json.as_bytes())?;
            scan_agrees::<AnthropicUsage>(json.as_bytes())?;
            scan_agrees::<GeminiUsage>(json.as_bytes())?;
        }
    }

    /// The usage objects providers write are read by the scan, not left to serde.
    #[test]
    fn the_scan_reads_the_usage_objects_providers_write() {
        let openai = br#"{"prompt_tokens":5400,"completion_tokens":230,"total_tokens":5630,"prompt_tokens_details":{"cached_tokens":4096,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":64,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}"#;
        let deepseek = br#"{"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15, "prompt_cache_hit_tokens": 8, "prompt_cache_miss_tokens": 4}"#;
        let kimi =
            br#"{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"cached_tokens":8}"#;
        let anthropic = br#"{"input_tokens":2095,"cache_creation_input_tokens":0,"cache_read_input_tokens":1800,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":503,"service_tier":"standard","server_tool_use":{"web_search_requests":0}}"#;
        let gemini = br#"{"promptTokenCount":10,"candidatesTokenCount":5,"totalTokenCount":40,"cachedContentTokenCount":2,"promptTokensDetails":[{"modality":"TEXT","tokenCount":10}],"thoughtsTokenCount":25}"#;
        let answered = |agreed: Result<bool, TestCaseError>| agreed.expect("agrees with serde");
        assert!(answered(scan_agrees::<OpenAiUsage>(openai)));
        assert!(answered(scan_agrees::<OpenAiUsage>(deepseek)));
        assert!(answered(scan_agrees::<OpenAiUsage>(kimi)));
        assert!(answered(scan_agrees::<AnthropicUsage>(anthropic)));
        assert!(answered(scan_agrees::<GeminiUsage>(gemini)));
        let body = format!(
            r#"{{"id":"x","usage":{},"system_fingerprint":"fp"}}"#,
            std::str::from_utf8(openai).unwrap()
        );
        let p = usage_patch_of_body(crate::Dialect::OpenAi, body.as_bytes()).unwrap();
        assert_eq!(
            (p.input, p.cache_read, p.output, p.reasoning),
            (Some(1304), Some(4096), Some(230), Some(64))
        );
    }

    /// A usage object as its clients see it.
    fn wire(u: impl Serialize) -> Value {
        serde_json::to_value(u).unwrap()
    }

    /// The prompt count of the root's usage when it is read from the end of the body.
    fn trailing_prompt(body: &[u8]) -> Option<Option<u64>> {
        trailing_usage::<OpenAiUsage>(&USAGE_KEY, body).map(|u| u.prompt_tokens)
    }

    #[test]
    fn usage_is_found_from_the_end_only_at_the_root() {
        let openai = br#"{"choices":[{"message":{"content":"say \"usage\": {}"}}],"usage": {"prompt_tokens":3,"completion_tokens":1} , "service_tier":"default","system_fingerprint":"fp_\"x","n":-1.5e3,"ok":true,"z":null}"#;
        assert_eq!(trailing_prompt(openai), Some(Some(3)));
        // A `usage` key inside a tool input, with the root's usage before the content: the
        // nested one is not taken for the root's (two closers follow it), so the slow path runs.
        let nested = br#"{"usage":{"input_tokens":5,"output_tokens":2},"content":[{"type":"tool_use","input":{"usage":{"input_tokens":99}}}]}"#;
        assert!(trailing_usage::<AnthropicUsage>(&USAGE_KEY, nested).is_none());
        let mut u = Usage::default();
        usage_patch_of_body(crate::Dialect::Anthropic, nested)
            .unwrap()
            .apply(&mut u);
        assert_eq!((u.input, u.output), (5, 2));
        // A trailing object member, or a string value `"usage"`, also sends it to the slow path.
        let trailing_object = br#"{"usage":{"prompt_tokens":1},"extra":{"a":1}}"#;
        assert_eq!(trailing_prompt(trailing_object), None);
        assert!(usage_patch_of_body(crate::Dialect::OpenAi, trailing_object).is_some());
        // Where the object ends is the parser's word: braces inside its strings do not count.
        let braces_in_strings = br#"{"usage":{"a":{"b":"}{\"}"},"prompt_tokens":2},"z":1}"#;
        assert_eq!(trailing_prompt(braces_in_strings), Some(Some(2)));
        assert_eq!(
            trailing_prompt(br#"{"usage":{"a":{"b":1}"#),
            None,
            "an unclosed object"
        );
        assert_eq!(
            trailing_prompt(br#"{"usage":{"prompt_tokens":2}"#),
            None,
            "no root closer"
        );
        let value = br#"{"usage":{"prompt_tokens":1},"note":"usage"}"#;
        assert_eq!(trailing_prompt(value), None);
        assert!(usage_patch_of_body(crate::Dialect::OpenAi, value).is_some());
        // A usage object that does not parse here is read again with the whole body: the same
        // answer (none), never a half-read one.
        let bad = br#"{"usage":{"prompt_tokens":-1,"completion_tokens":2}}"#;
        assert_eq!(trailing_prompt(bad), None);
        assert_eq!(usage_patch_of_body(crate::Dialect::OpenAi, bad), None);
    }

    #[test]
    fn the_last_key_is_found_in_the_tail_across_its_start_and_before_it() {
        let key = LastKey::new(b"\"usage\"");
        let filler = |n: usize| "x".repeat(n);
        // The key starts `after + 17` bytes before the end: wholly in the tail, cut by its start
        // (`after` 1008 to 1013), or before it.
        let (t, far) = (LastKey::TAIL, 3 * LastKey::TAIL);
        for after in (0..8).chain(t - 24..t + 8).chain(far..far + 1) {
            // An earlier key further back.
            let body = format!(
                r#"{{"usage":1,"a":"{}","usage":2,"b":"{}"}}"#,
                filler(2000),
                filler(after)
            );
            let last = body.rfind(r#""usage""#).unwrap();
            assert_eq!(body.len() - last, after + 17);
            assert_eq!(
                key.find(body.as_bytes()),
                Some(last),
                "{after} bytes after it"
            );
        }
        assert_eq!(key.find(br#"{"a":1}"#), None);
        assert_eq!(key.find(b""), None);
    }

    #[test]
    fn usage_of_a_whole_body_without_building_it() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"usage: {}"}}],"usage":{"prompt_tokens":10,"completion_tokens":4,"prompt_tokens_details":{"cached_tokens":6}}}"#;
        let mut u = Usage::default();
        usage_patch_of_body(crate::Dialect::OpenAi, body)
            .unwrap()
            .apply(&mut u);
        assert_eq!((u.input, u.cache_read, u.output), (4, 6, 4));
        let gemini = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":2,"thoughtsTokenCount":1}}"#;
        let mut u = Usage::default();
        usage_patch_of_body(crate::Dialect::Gemini, gemini)
            .unwrap()
            .apply(&mut u);
        assert_eq!((u.input, u.output, u.reasoning), (7, 3, 1));
        assert!(usage_patch_of_body(crate::Dialect::OpenAi, b"{}").is_none());
    }

    fn o(v: Value) -> Usage {
        OpenAiUsage::deserialize(&v).unwrap().normalize()
    }

    #[test]
    fn openai_prompt_includes_cache_and_completion_includes_reasoning() {
        let u = o(
            json!({"prompt_tokens":90,"completion_tokens":40,"total_tokens":130,
            "prompt_tokens_details":{"cached_tokens":64},"completion_tokens_details":{"reasoning_tokens":10}}),
        );
        assert_eq!(
            u,
            Usage {
                input: 26,
                cache_read: 64,
                cache_write: 0,
                reasoning: 10,
                output: 40
            }
        );
        let back = wire(to_openai(&u));
        assert_eq!(back["prompt_tokens"], 90);
        assert_eq!(back["completion_tokens"], 40);
        assert_eq!(back["total_tokens"], 130);
        assert_eq!(back["prompt_tokens_details"]["cached_tokens"], 64);
        assert_eq!(back["completion_tokens_details"]["reasoning_tokens"], 10);
        let a = wire(to_anthropic(&u));
        assert_eq!(a["input_tokens"], 26);
        assert_eq!(a["cache_read_input_tokens"], 64);
        assert_eq!(a["cache_creation_input_tokens"], 0);
        assert_eq!(a["output_tokens"], 40);
    }

    #[test]
    fn deepseek_and_kimi_cache_spellings() {
        let u = o(
            json!({"prompt_tokens":100,"completion_tokens":5,"prompt_cache_hit_tokens":80,"prompt_cache_miss_tokens":20}),
        );
        assert_eq!((u.input, u.cache_read), (20, 80));
        let u = o(json!({"prompt_tokens":100,"completion_tokens":5,"cached_tokens":30}));
        assert_eq!((u.input, u.cache_read), (70, 30));
        let u = o(
            json!({"prompt_tokens":10,"completion_tokens":5,"prompt_tokens_details":{"cached_tokens":null}}),
        );
        assert_eq!((u.input, u.cache_read), (10, 0));
    }

    #[test]
    fn anthropic_input_excludes_cache() {
        let v = json!({"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":2048,"output_tokens":87});
        let mut u = Usage::default();
        AnthropicUsage::deserialize(&v)
            .unwrap()
            .patch()
            .apply(&mut u);
        assert_eq!(u.prompt_total(), 2160);
        let back = wire(to_openai(&u));
        assert_eq!(back["prompt_tokens"], 2160);
        assert_eq!(back["prompt_tokens_details"]["cached_tokens"], 2048);
        assert_eq!(back["prompt_tokens_details"]["cache_write_tokens"], 100);
        assert_eq!(back["total_tokens"], 2247);
    }

    #[test]
    fn gemini_candidates_exclude_thoughts() {
        let v = json!({"promptTokenCount":100,"cachedContentTokenCount":40,"candidatesTokenCount":20,
            "thoughtsTokenCount":30,"toolUsePromptTokenCount":5,"totalTokenCount":155});
        let u = GeminiUsage::deserialize(&v).unwrap().normalize();
        assert_eq!(
            u,
            Usage {
                input: 65,
                cache_read: 40,
                cache_write: 0,
                reasoning: 30,
                output: 50
            }
        );
        assert_eq!(wire(to_openai(&u))["prompt_tokens"], 105);
        assert_eq!(wire(to_openai(&u))["completion_tokens"], 50);
        assert_eq!(wire(to_openai(&u))["total_tokens"], 155);
        assert_eq!(wire(to_anthropic(&u))["input_tokens"], 65);
        let g = wire(to_gemini(&u));
        assert_eq!(g["candidatesTokenCount"], 20);
        assert_eq!(g["thoughtsTokenCount"], 30);
    }
}
