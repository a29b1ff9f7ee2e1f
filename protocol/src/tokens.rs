//! Input-token counting for `count_tokens` (protocols.md §5).
//!
//! [`estimate_input_tokens`] is a local estimate: o200k_base (tiktoken) over the system prompt,
//! every message (with per-message overhead), tool schemas (serialized) and the structured-output
//! schema, plus per-vendor image and document formulas, times a safety factor (over-estimating
//! only makes clients compact earlier; under-estimating breaks them, pitfall 31). It is never 0.
//!
//! Cost (release build): the tokenizer loads once (~0.35 s, on first use); a 520 KB Claude Code
//! request (~118k tokens, 30 tools) estimates in ~80 ms, so callers should cache by body hash
//! when clients poll.
//!
//! When the routed upstream has a native counter, prefer it: [`gemini_count_tokens_body`] and
//! [`anthropic_count_tokens_body`] translate the client body for those endpoints.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tiktoken_rs::CoreBPE;

use crate::caps::Capabilities;
use crate::ir::{Block, MediaSource, Request, Role};
use crate::request::{parse_request, write_request, Target};
use crate::{ApiError, Dialect};

/// Multiplier applied to the raw local count.
pub const SAFETY_FACTOR: f64 = 1.08;
/// Chat-template overhead per message (role markers, separators).
const PER_MESSAGE: u64 = 4;
/// Overhead per tool definition beyond its serialized JSON.
const PER_TOOL: u64 = 8;
/// Texts are tokenized in slices of at most this many bytes (BPE merging is quadratic in the
/// length of one pre-token; slicing keeps pathological inputs, e.g. long base64, linear).
const SLICE: usize = 8 * 1024;
/// Longest run without whitespace tokenized in one piece.
const LONG_RUN: usize = 256;

fn bpe() -> &'static CoreBPE {
    static BPE: OnceLock<CoreBPE> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().expect("the bundled o200k_base ranks load"))
}

/// o200k_base token count of `text`.
pub fn count_text(text: &str) -> u64 {
    slices(text)
        .map(|s| bpe().encode_ordinary(s).len() as u64)
        .sum()
}

/// `text` cut before whitespace into slices of about [`SLICE`] bytes, and inside any run without
/// whitespace longer than [`LONG_RUN`] bytes (BPE merging is quadratic in a pre-token's length;
/// the cuts cost at most a token each).
fn slices(text: &str) -> impl Iterator<Item = &str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut run = 0;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if i - start >= SLICE {
                out.push(&text[start..i]);
                start = i;
            }
            run = i + c.len_utf8();
        } else if i + c.len_utf8() - run > LONG_RUN {
            let end = i + c.len_utf8();
            out.push(&text[start..end]);
            start = end;
            run = end;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out.into_iter()
}

/// A local estimate of the input tokens of a request body in `client` dialect (images by the
/// client vendor's formula).
pub fn estimate_input_tokens(client: Dialect, body: &[u8]) -> Result<u64, ApiError> {
    let req = parse_request(client, body)?;
    Ok(estimate_request(&req, client))
}

/// A local estimate for a parsed request; `vendor` picks the image formula (use the upstream's).
pub fn estimate_request(req: &Request, vendor: Dialect) -> u64 {
    let mut n: u64 = 3; // reply priming
    if !req.system.is_empty() {
        n += PER_MESSAGE + blocks_tokens(&req.system, vendor, true);
    }
    let last_assistant = req.messages.iter().rposition(|m| m.role == Role::Assistant);
    for (i, m) in req.messages.iter().enumerate() {
        // Earlier turns' reasoning is stripped by the upstreams; only the last one counts.
        n += PER_MESSAGE + blocks_tokens(&m.blocks, vendor, Some(i) == last_assistant);
    }
    for t in &req.tools {
        n += PER_TOOL;
        match &t.native {
            Some((_, v)) => n += count_text(&v.to_string()),
            None => {
                n += count_text(&t.name);
                if let Some(d) = &t.description {
                    n += count_text(d);
                }
                if let Some(s) = &t.schema {
                    n += count_text(&s.to_string());
                }
            }
        }
    }
    if let Some(crate::ir::OutputFormat::JsonSchema { schema, .. }) = &req.output_format {
        n += count_text(&schema.to_string());
    }
    ((n as f64 * SAFETY_FACTOR).ceil() as u64).max(1)
}

fn blocks_tokens(blocks: &[Block], vendor: Dialect, reasoning: bool) -> u64 {
    blocks
        .iter()
        .map(|b| block_tokens(b, vendor, reasoning))
        .sum()
}

fn block_tokens(b: &Block, vendor: Dialect, reasoning: bool) -> u64 {
    match b {
        Block::Text { text, .. } => count_text(text),
        Block::Image { source, detail, .. } => image_tokens(source, detail.as_deref(), vendor),
        Block::Document { source, title, .. } => {
            title.as_deref().map_or(0, count_text) + document_tokens(source, vendor)
        }
        Block::Audio { data, .. } => {
            // ~32 tokens per second of 16 kHz 16-bit audio (Gemini's rate), i.e. ~1 per KB.
            (data.len() as u64 * 3 / 4) / 1000 + 1
        }
        Block::ToolCall {
            name, args_json, ..
        } => 3 + count_text(name) + count_text(args_json),
        Block::ToolResult { content, .. } => 3 + blocks_tokens(content, vendor, reasoning),
        Block::Thinking { text, .. } if reasoning => count_text(text),
        Block::RedactedThinking { data, .. } if reasoning => data.len() as u64 / 4,
        Block::Thinking { .. } | Block::RedactedThinking { .. } => 0,
        Block::Opaque { value, .. } => count_text(&value.to_string()),
    }
}

/// Fixed figure for an image whose size is unknown (a URL, an unparsable header).
fn default_image_tokens(vendor: Dialect) -> u64 {
    match vendor {
        Dialect::Anthropic => 1600, // the largest image before Anthropic downscales
        Dialect::OpenAi => 765,     // high detail, 1024×1024
        Dialect::Gemini => 1120,    // Gemini 3 default media resolution
    }
}

/// Published per-vendor image formulas (protocols.md §5).
pub fn image_tokens_for(width: u64, height: u64, detail: Option<&str>, vendor: Dialect) -> u64 {
    let (w, h) = (width.max(1) as f64, height.max(1) as f64);
    match vendor {
        Dialect::Anthropic => {
            // Long edge ≤ 1568 px, then ≈ w·h/750, at most ~1600 tokens.
            let s = (1568.0 / w.max(h)).min(1.0);
            (((w * s) * (h * s) / 750.0).ceil() as u64).clamp(1, 1600)
        }
        Dialect::OpenAi => {
            if detail == Some("low") {
                return 85;
            }
            // Fit in 2048×2048, then the short side to 768; 170 per 512-px tile + 85.
            let s1 = (2048.0 / w.max(h)).min(1.0);
            let (w, h) = (w * s1, h * s1);
            let s2 = (768.0 / w.min(h)).min(1.0);
            let (w, h) = (w * s2, h * s2);
            let tiles = (w / 512.0).ceil() * (h / 512.0).ceil();
            85 + 170 * tiles as u64
        }
        Dialect::Gemini => {
            if w <= 384.0 && h <= 384.0 {
                258
            } else {
                258 * ((w / 768.0).ceil() * (h / 768.0).ceil()) as u64
            }
        }
    }
}

fn image_tokens(source: &MediaSource, detail: Option<&str>, vendor: Dialect) -> u64 {
    if let MediaSource::Base64 { data, .. } = source {
        if let Some((w, h)) = image_size(data) {
            return image_tokens_for(w, h, detail, vendor);
        }
    }
    if vendor == Dialect::OpenAi && detail == Some("low") {
        return 85;
    }
    default_image_tokens(vendor)
}

/// Tokens per PDF page (Anthropic: ~1.5–3k per page of text + page image).
const PDF_PAGE_TOKENS: u64 = 2000;

fn document_tokens(source: &MediaSource, vendor: Dialect) -> u64 {
    match source {
        MediaSource::Text(t) => count_text(t),
        MediaSource::Content(blocks) => blocks_tokens(blocks, vendor, false),
        MediaSource::Base64 { mime, data } => {
            let bytes = STANDARD.decode(data.trim()).unwrap_or_default();
            if mime.starts_with("text/") {
                return count_text(&String::from_utf8_lossy(&bytes));
            }
            pdf_pages(&bytes).max(1) * PDF_PAGE_TOKENS
        }
        MediaSource::Url(_) | MediaSource::FileId { .. } => 3 * PDF_PAGE_TOKENS,
    }
}

/// Page objects in a PDF (`/Type /Page`, not `/Pages`); for compressed object streams, a size
/// based guess.
fn pdf_pages(bytes: &[u8]) -> u64 {
    let mut n = 0u64;
    let mut i = 0;
    while let Some(p) = find(&bytes[i..], b"/Type") {
        let mut j = i + p + 5;
        while j < bytes.len() && (bytes[j] == b' ' || bytes[j] == b'\n' || bytes[j] == b'\r') {
            j += 1;
        }
        if bytes[j..].starts_with(b"/Page") && !bytes[j..].starts_with(b"/Pages") {
            n += 1;
        }
        i = j;
    }
    if n == 0 {
        n = (bytes.len() as u64 / 50_000).max(1);
    }
    n
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Width and height from the header of a base64 PNG, GIF, WebP or JPEG.
pub fn image_size(b64: &str) -> Option<(u64, u64)> {
    // JPEG frame headers may sit after large EXIF blocks: decode up to 256 KiB.
    let head = &b64.as_bytes()[..b64.len().min(256 * 1024 / 3 * 4)];
    let head = &head[..head.len() / 4 * 4];
    let bytes = STANDARD.decode(head).ok()?;
    let be16 = |i: usize| Some(u16::from_be_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as u64);
    let le16 = |i: usize| Some(u16::from_le_bytes([*bytes.get(i)?, *bytes.get(i + 1)?]) as u64);
    let le24 = |i: usize| {
        Some(u32::from_le_bytes([*bytes.get(i)?, *bytes.get(i + 1)?, *bytes.get(i + 2)?, 0]) as u64)
    };
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let be32 =
            |i: usize| Some(u32::from_be_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as u64);
        return Some((be32(16)?, be32(20)?));
    }
    if bytes.starts_with(b"GIF8") {
        return Some((le16(6)?, le16(8)?));
    }
    if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return match bytes.get(12..16)? {
            b"VP8X" => Some((le24(24)? + 1, le24(27)? + 1)),
            b"VP8L" => {
                let b = u32::from_le_bytes(bytes.get(21..25)?.try_into().ok()?);
                Some(((b & 0x3fff) as u64 + 1, ((b >> 14) & 0x3fff) as u64 + 1))
            }
            b"VP8 " => Some((le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            _ => None,
        };
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        let mut i = 2;
        while i + 9 < bytes.len() {
            if bytes[i] != 0xff {
                i += 1;
                continue;
            }
            let marker = bytes[i + 1];
            if marker == 0xff {
                i += 1;
                continue;
            }
            if (0xd0..=0xd9).contains(&marker) || marker == 0x01 {
                i += 2;
                continue;
            }
            let len = be16(i + 2)? as usize;
            let sof = (0xc0..=0xcf).contains(&marker) && ![0xc4, 0xc8, 0xcc].contains(&marker);
            if sof {
                return Some((be16(i + 7)?, be16(i + 5)?));
            }
            i += 2 + len;
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Native counting endpoints

/// Parse and strip what does not influence the prompt (sampling, extras), so counting does not
/// fail on fields that only matter for generation.
fn counting_request(client: Dialect, body: &[u8], target: Dialect) -> Result<Request, ApiError> {
    let mut req = parse_request(client, body)?;
    req.sampling = Default::default();
    req.stream = false;
    req.extras.retain(|k, _| {
        client == target && matches!(k.as_str(), "mcp_servers" | "context_management")
    });
    req.tools
        .retain(|t| t.native.as_ref().is_none_or(|(d, _)| *d == target));
    Ok(req)
}

/// A body for Gemini `models/{model}:countTokens`: `{"generateContentRequest": {model, contents,
/// systemInstruction, tools, toolConfig}}`.
pub fn gemini_count_tokens_body(
    client: Dialect,
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, ApiError> {
    let req = counting_request(client, body, Dialect::Gemini)?;
    let caps = Capabilities::default();
    let target = Target {
        dialect: Dialect::Gemini,
        model: upstream_model,
        caps: &caps,
        origin: "",
    };
    let (value, _) = write_request(req, &target)?;
    let Value::Object(mut g) = value else {
        unreachable!("writers return objects")
    };
    let model = if upstream_model.starts_with("models/") {
        upstream_model.to_string()
    } else {
        format!("models/{upstream_model}")
    };
    let mut inner = Map::new();
    inner.insert("model".into(), json!(model));
    for k in ["contents", "systemInstruction", "tools", "toolConfig"] {
        if let Some(v) = g.remove(k) {
            inner.insert(k.into(), v);
        }
    }
    Ok(serde_json::to_vec(&json!({ "generateContentRequest": inner })).expect("serializable"))
}

/// A body for Anthropic `/v1/messages/count_tokens`: the translated request minus `max_tokens`,
/// `stream` and sampling (`model, messages, system, tools, tool_choice, thinking, output_config`).
pub fn anthropic_count_tokens_body(
    client: Dialect,
    body: &[u8],
    upstream_model: &str,
) -> Result<Vec<u8>, ApiError> {
    let req = counting_request(client, body, Dialect::Anthropic)?;
    let caps = Capabilities::default();
    let target = Target {
        dialect: Dialect::Anthropic,
        model: upstream_model,
        caps: &caps,
        origin: "",
    };
    let (value, _) = write_request(req, &target)?;
    let Value::Object(mut a) = value else {
        unreachable!("writers return objects")
    };
    a.retain(|k, _| {
        matches!(
            k.as_str(),
            "model"
                | "messages"
                | "system"
                | "tools"
                | "tool_choice"
                | "thinking"
                | "output_config"
                | "mcp_servers"
                | "context_management"
        )
    });
    Ok(serde_json::to_vec(&Value::Object(a)).expect("serializable"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est(d: Dialect, v: Value) -> u64 {
        estimate_input_tokens(d, &serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn png(w: u32, h: u32) -> String {
        let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0]);
        STANDARD.encode(b)
    }

    #[test]
    fn text_counts_match_o200k() {
        assert_eq!(count_text(""), 0);
        assert_eq!(count_text("hello world"), 2);
        // Slicing does not change counts by more than a token per slice.
        let long = "lorem ipsum dolor sit amet ".repeat(2000);
        let direct = bpe().encode_ordinary(&long).len() as u64;
        let sliced = count_text(&long);
        assert!(sliced.abs_diff(direct) <= (long.len() / SLICE) as u64 + 1);
        let json = serde_json::to_string(&vec![json!({"key": "value", "n": 12345}); 300]).unwrap();
        let direct = bpe().encode_ordinary(&json).len() as u64;
        let sliced = count_text(&json);
        assert!(
            sliced.abs_diff(direct) * 50 <= direct,
            "{sliced} vs {direct}"
        );
        // Pathological single pre-token stays fast and positive.
        assert!(count_text(&"A".repeat(50_000)) > 0);
    }

    #[test]
    fn estimate_includes_system_messages_and_tools_and_is_never_zero() {
        let bare = est(
            Dialect::Anthropic,
            json!({"model": "c", "max_tokens": 1, "messages": []}),
        );
        assert!(bare >= 1);
        let msg = json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": "hello world"}]});
        let with_msg = est(Dialect::Anthropic, msg.clone());
        assert!(with_msg > bare);
        let mut sys = msg.clone();
        sys["system"] = json!("You are a very careful assistant. ".repeat(50));
        let with_sys = est(Dialect::Anthropic, sys.clone());
        assert!(with_sys >= with_msg + 300, "{with_sys} vs {with_msg}");
        let mut tools = sys.clone();
        tools["tools"] = json!([{"name": "read_file", "description": "Read a file from disk. ".repeat(20),
            "input_schema": {"type": "object", "properties": {"path": {"type": "string", "description": "absolute path"}}}}]);
        let with_tools = est(Dialect::Anthropic, tools);
        assert!(with_tools >= with_sys + 100, "{with_tools} vs {with_sys}");
        // Raw text count × safety factor bounds.
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(100);
        let n = est(
            Dialect::OpenAi,
            json!({"model": "x", "messages": [{"role": "user", "content": text}]}),
        );
        let raw = count_text(&text);
        assert!(
            n as f64 >= raw as f64 * 1.05 && (n as f64) < (raw + 20) as f64 * 1.1,
            "{n} vs {raw}"
        );
    }

    #[test]
    fn images_use_vendor_formulas() {
        assert_eq!(image_size(&png(1000, 500)), Some((1000, 500)));
        assert_eq!(image_tokens_for(1000, 500, None, Dialect::Anthropic), 667);
        assert_eq!(image_tokens_for(4000, 4000, None, Dialect::Anthropic), 1600);
        assert_eq!(image_tokens_for(1024, 1024, None, Dialect::OpenAi), 765);
        assert_eq!(
            image_tokens_for(1024, 1024, Some("low"), Dialect::OpenAi),
            85
        );
        assert_eq!(image_tokens_for(300, 300, None, Dialect::Gemini), 258);
        assert_eq!(image_tokens_for(1000, 1000, None, Dialect::Gemini), 1032);
        let body = |img: Value| json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": [img]}]});
        let small = est(
            Dialect::Anthropic,
            body(
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png(100, 100)}}),
            ),
        );
        let big = est(
            Dialect::Anthropic,
            body(
                json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png(1500, 1000)}}),
            ),
        );
        let url = est(
            Dialect::Anthropic,
            body(json!({"type": "image", "source": {"type": "url", "url": "https://x/y.png"}})),
        );
        assert!(small < 40, "{small}");
        assert!(big > 1500, "{big}");
        assert!(url >= 1600, "{url}");
        // GIF, WebP and JPEG headers.
        let gif = STANDARD.encode(b"GIF89a\x20\x03\x58\x02\0\0\0");
        assert_eq!(image_size(&gif), Some((800, 600)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        webp.extend([0x1f, 0x03, 0x00, 0x57, 0x02, 0x00]);
        assert_eq!(image_size(&STANDARD.encode(&webp)), Some((800, 600)));
        let mut jpg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x04, 0x00, 0x00];
        jpg.extend([0xff, 0xc0, 0x00, 0x11, 0x08, 0x02, 0x58, 0x03, 0x20, 0x03]);
        assert_eq!(image_size(&STANDARD.encode(&jpg)), Some((800, 600)));
        assert_eq!(image_size("not base64!"), None);
    }

    #[test]
    fn pdf_pages_are_counted() {
        let pdf = b"%PDF-1.4 1 0 obj << /Type /Pages /Kids [2 0 R 3 0 R] >> 2 0 obj << /Type /Page >> 3 0 obj <</Type/Page>>";
        assert_eq!(pdf_pages(pdf), 2);
        let n = est(
            Dialect::Anthropic,
            json!({"model": "c", "max_tokens": 1, "messages": [{"role": "user", "content": [
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": STANDARD.encode(pdf)}}]}]}),
        );
        assert!(n >= 2 * PDF_PAGE_TOKENS);
    }

    #[test]
    fn only_the_last_assistant_reasoning_counts() {
        let think = "reasoning ".repeat(500);
        let body = |last: bool| {
            let mut msgs = vec![
                json!({"role": "user", "content": "a"}),
                json!({"role": "assistant", "content": [{"type": "thinking", "thinking": think, "signature": "s"}, {"type": "text", "text": "b"}]}),
                json!({"role": "user", "content": "c"}),
            ];
            if !last {
                msgs.push(json!({"role": "assistant", "content": "d"}));
                msgs.push(json!({"role": "user", "content": "e"}));
            }
            json!({"model": "c", "max_tokens": 1, "messages": msgs})
        };
        assert!(est(Dialect::Anthropic, body(true)) > 500);
        assert!(est(Dialect::Anthropic, body(false)) < 100);
    }

    #[test]
    fn malformed_bodies_are_400() {
        let e = estimate_input_tokens(Dialect::Anthropic, b"{}").unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages"));
    }

    #[test]
    fn gemini_count_tokens_body_wraps_a_generate_content_request() {
        let body = json!({"model": "claude", "max_tokens": 100, "temperature": 0.2, "stream": true,
            "system": "S", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"name": "f", "input_schema": {"type": "object"}}]});
        let out = gemini_count_tokens_body(
            Dialect::Anthropic,
            &serde_json::to_vec(&body).unwrap(),
            "gemini-2.5-pro",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"generateContentRequest": {
                "model": "models/gemini-2.5-pro",
                "systemInstruction": {"parts": [{"text": "S"}]},
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}],
            }})
        );
    }

    #[test]
    fn anthropic_count_tokens_body_drops_generation_fields() {
        let body = json!({"model": "gpt", "max_completion_tokens": 100, "temperature": 0.2, "stream": true, "n": 3,
            "logprobs": true, "user": "u",
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "tool_choice": "auto"});
        let out = anthropic_count_tokens_body(
            Dialect::OpenAi,
            &serde_json::to_vec(&body).unwrap(),
            "claude-sonnet-4-5",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"model": "claude-sonnet-4-5", "system": "S",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {}}}],
                "tool_choice": {"type": "auto"}})
        );
        // Claude Code's own count_tokens body passes through for an Anthropic upstream.
        let cc = json!({"model": "claude", "messages": [{"role": "user", "content": "x"}],
            "thinking": {"type": "enabled", "budget_tokens": 2000}, "context_management": {"edits": []}});
        let out = anthropic_count_tokens_body(
            Dialect::Anthropic,
            &serde_json::to_vec(&cc).unwrap(),
            "claude-x",
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v["thinking"],
            json!({"type": "enabled", "budget_tokens": 2000})
        );
        assert_eq!(v["context_management"], json!({"edits": []}));
        assert!(v.get("max_tokens").is_none());
    }
}
