//! Deterministic content, JSON writing helpers and tool-argument synthesis.

use serde_json::Value;

/// Words the answers are made of; the first three open every answer, the
/// rest exercise 2-, 3- and 4-byte UTF-8 sequences.
const WORDS: &[&str] = &[
    "héllo",
    "世界",
    "🦀",
    "mock",
    "stream",
    "délta",
    "naïve",
    "日本語",
    "token",
    "ünïcode",
    "✨",
    "rust",
    "straße",
    "façade",
    "Ωmega",
    "data",
];
const THOUGHTS: &[&str] = &[
    "Let me think",
    "about the question",
    "step by step",
    "— considering 🤔",
    "the édge cases",
    "and 計画 carefully.",
];

/// Number of distinct pre-rendered chunks; chunk `i` is `table[i % TABLE]`.
const TABLE: usize = 64;
/// Tokens accounted per text chunk (three words each).
pub(crate) const TEXT_TOKENS_PER_CHUNK: u64 = 3;
/// Tokens accounted per thinking chunk.
pub(crate) const THINK_TOKENS_PER_CHUNK: u64 = 5;

/// Anthropic thinking-block signature (base64 of `ezrouter-mock-signature:thinking-block`).
pub(crate) const ANTHROPIC_SIGNATURE: &str = "ZXpyb3V0ZXItbW9jay1zaWduYXR1cmU6dGhpbmtpbmctYmxvY2s=";
/// Gemini thought signature (base64 of `mock-thought-signature`).
pub(crate) const GEMINI_SIGNATURE: &str = "bW9jay10aG91Z2h0LXNpZ25hdHVyZQ==";

/// Pre-rendered answer pieces. None of them needs JSON escaping, so each is
/// written between quotes as is.
pub(crate) struct Tables {
    text: Vec<String>,
    think: Vec<String>,
}

impl Tables {
    pub(crate) fn new() -> Tables {
        let n = WORDS.len();
        let text = (0..TABLE)
            .map(|i| {
                if i == 0 {
                    return "héllo 世界 🦀 ".to_string();
                }
                format!(
                    "{} {} {} ",
                    WORDS[(i * 5 + 3) % n],
                    WORDS[(i * 7 + 1) % n],
                    WORDS[(i * 3 + 2) % n]
                )
            })
            .collect::<Vec<_>>();
        let think = (0..TABLE)
            .map(|i| format!("{} {}. ", THOUGHTS[i % THOUGHTS.len()], i + 1))
            .collect::<Vec<_>>();
        for s in text.iter().chain(think.iter()) {
            debug_assert!(!s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20));
        }
        Tables { text, think }
    }

    /// Text delta `i` (JSON-safe, unquoted).
    pub(crate) fn text(&self, i: usize) -> &str {
        &self.text[i % TABLE]
    }

    /// Thinking delta `i` (JSON-safe, unquoted).
    pub(crate) fn think(&self, i: usize) -> &str {
        &self.think[i % TABLE]
    }

    /// The whole answer text for `n` chunks.
    pub(crate) fn full_text(&self, n: usize, out: &mut Vec<u8>) {
        for i in 0..n {
            out.extend_from_slice(self.text(i).as_bytes());
        }
    }

    /// The whole thinking text for `n` chunks.
    pub(crate) fn full_think(&self, n: usize, out: &mut Vec<u8>) {
        for i in 0..n {
            out.extend_from_slice(self.think(i).as_bytes());
        }
    }
}

/// Append `s` as a JSON string literal (with quotes).
pub(crate) fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    push_json_escaped(out, s);
    out.push(b'"');
}

/// Append `s` JSON-escaped, without quotes.
pub(crate) fn push_json_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 15) as usize]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Append a decimal integer.
pub(crate) fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Standard base64 with padding.
pub(crate) fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        out.push(T[(n >> 18) as usize & 63]);
        out.push(T[(n >> 12) as usize & 63]);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63]
        } else {
            b'='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63]
        } else {
            b'='
        });
    }
}

/// Build tool-call arguments (a JSON object, as text) from a JSON schema:
/// strings `"mock"`, numbers and integers `1`, booleans `true`, the first
/// `enum` value when there is one, nested objects recursively, arrays `[]`.
pub(crate) fn args_from_schema(schema: Option<&Value>) -> String {
    let v = match schema {
        Some(s) => object_from(s, 0),
        None => Value::Object(Default::default()),
    };
    serde_json::to_string(&v).unwrap_or_else(|_| "{}".into())
}

fn object_from(schema: &Value, depth: usize) -> Value {
    let mut map = serde_json::Map::new();
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (k, s) in props {
            map.insert(k.clone(), value_from(s, depth + 1));
        }
    }
    Value::Object(map)
}

fn value_from(schema: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    if let Some(e) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return e.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    let ty = match schema.get("type") {
        Some(Value::String(s)) => s.as_str(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null"),
        _ => {
            for alt in ["anyOf", "oneOf", "allOf"] {
                if let Some(first) = schema
                    .get(alt)
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                {
                    return value_from(first, depth + 1);
                }
            }
            if schema.get("properties").is_some() {
                "object"
            } else {
                "string"
            }
        }
    };
    match ty.to_ascii_lowercase().as_str() {
        "number" | "integer" => Value::from(1),
        "boolean" => Value::Bool(true),
        "object" => object_from(schema, depth),
        "array" => Value::Array(Vec::new()),
        "null" => Value::Null,
        _ => Value::String("mock".into()),
    }
}

/// Split `s` into at most `n` (at least 1) non-empty pieces of similar
/// length, on char boundaries.
pub(crate) fn split_pieces(s: &str, n: usize) -> Vec<&str> {
    let n = n.clamp(1, s.len().max(1));
    let target = s.len().div_ceil(n).max(1);
    let mut out = Vec::with_capacity(n);
    let mut rest = s;
    while !rest.is_empty() {
        let mut at = target.min(rest.len());
        while !rest.is_char_boundary(at) {
            at += 1;
        }
        let (a, b) = rest.split_at(at);
        out.push(a);
        rest = b;
    }
    if out.is_empty() {
        out.push("");
    }
    out
}

/// Rough token estimate from a byte length (never 0).
pub(crate) fn estimate_tokens(bytes: usize) -> u64 {
    (bytes as u64 / 4).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_and_numbers() {
        let mut out = Vec::new();
        push_json_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(std::str::from_utf8(&out).unwrap(), r#""a\"b\\c\nd\u0001é""#);
        out.clear();
        push_u64(&mut out, 0);
        out.push(b' ');
        push_u64(&mut out, 18446744073709551615);
        assert_eq!(out, b"0 18446744073709551615");
    }

    #[test]
    fn base64() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            let mut out = Vec::new();
            push_base64(&mut out, i.as_bytes());
            assert_eq!(out, o.as_bytes());
        }
        let mut out = Vec::new();
        push_base64(&mut out, b"mock-thought-signature");
        assert_eq!(out, GEMINI_SIGNATURE.as_bytes());
    }

    #[test]
    fn schema_args() {
        let schema: Value = serde_json::json!({"type":"object","properties":{
            "city":{"type":"string"},"n":{"type":"integer"},"x":{"type":"number"},"ok":{"type":"boolean"},
            "unit":{"type":"string","enum":["c","f"]},"tags":{"type":"array"},"opt":{"type":["null","STRING"]},
            "nested":{"type":"object","properties":{"a":{"type":"BOOLEAN"}}}}});
        let args = args_from_schema(Some(&schema));
        let v: Value = serde_json::from_str(&args).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"city":"mock","n":1,"x":1,"ok":true,"unit":"c","tags":[],"opt":"mock","nested":{"a":true}})
        );
        assert_eq!(args_from_schema(None), "{}");
    }

    #[test]
    fn pieces() {
        assert_eq!(split_pieces("abcdef", 3), ["ab", "cd", "ef"]);
        assert_eq!(split_pieces("ab", 8), ["a", "b"]);
        assert_eq!(split_pieces("", 3), [""]);
        let s = "é世🦀x";
        assert_eq!(split_pieces(s, 4).concat(), s);
    }

    #[test]
    fn tables_are_json_safe_and_unicode() {
        let t = Tables::new();
        assert_eq!(t.text(0), "héllo 世界 🦀 ");
        assert!(!t.text(65).is_ascii());
        let mut all = Vec::new();
        t.full_text(64, &mut all);
        t.full_think(64, &mut all);
        assert!(!all.iter().any(|&b| b == b'"' || b == b'\\' || b < 0x20));
    }
}
