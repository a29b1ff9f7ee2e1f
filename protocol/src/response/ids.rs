//! Message and tool-call ids across dialects.

use std::borrow::Cow;

/// `msg_…` for an Anthropic client (upstream ids keep their body, `chatcmpl-` is dropped).
pub(crate) fn anthropic_message_id(id: &str) -> String {
    if id.starts_with("msg_") {
        return id.to_string();
    }
    let body = id.strip_prefix("chatcmpl-").unwrap_or(id);
    format!("msg_{}", anthropic_tool_id(body))
}

/// `chatcmpl-…` for an OpenAI client.
pub(crate) fn openai_id(id: &str) -> String {
    if id.starts_with("chatcmpl-") {
        id.to_string()
    } else {
        format!("chatcmpl-{id}")
    }
}

/// Anthropic ids must match `^[a-zA-Z0-9_-]+$` (pitfall 16: Kimi's `functions.Bash:0`):
/// every other character becomes `_`. The request side applies the same function.
pub(crate) fn anthropic_tool_id(id: &str) -> Cow<'_, str> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !id.is_empty() && id.chars().all(ok) {
        return Cow::Borrowed(id);
    }
    if id.is_empty() {
        return Cow::Borrowed("toolu_empty");
    }
    Cow::Owned(id.chars().map(|c| if ok(c) { c } else { '_' }).collect())
}

/// A random 64-bit seed from the standard library's per-process random hasher keys.
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

/// SplitMix64: a well-mixed id component from a seed and a counter.
pub(crate) fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed.wrapping_add(n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(anthropic_tool_id("functions.Bash:0"), "functions_Bash_0");
        assert_eq!(anthropic_tool_id("toolu_01"), "toolu_01");
        assert_eq!(anthropic_message_id("chatcmpl-abc"), "msg_abc");
        assert_eq!(anthropic_message_id("msg_1"), "msg_1");
        assert_eq!(openai_id("msg_1"), "chatcmpl-msg_1");
        assert_ne!(mix(1, 0), mix(1, 1));
    }
}
