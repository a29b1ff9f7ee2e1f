//! Gateway-minted reasoning signatures: `gw1.<origin>.<payload>`.
//!
//! A client on the Anthropic surface can only replay reasoning through a `thinking.signature` (and a
//! client on the OpenAI surface through `reasoning_details[].signature`). When the reasoning came
//! from a non-Anthropic upstream (DeepSeek `reasoning_content`, a Gemini `thoughtSignature`), the
//! response side wraps it with [`mint`]; the request side recognises it with [`parse`] and replays
//! the payload only to the upstream whose origin (`provider/model`) matches, stripping it for any
//! other upstream. Anything [`parse`] rejects is a signature native to the dialect it arrived in.
//!
//! The origin is base64url-encoded (no padding) so that it can never contain the `.` separator;
//! the payload is kept verbatim (it may itself contain dots).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// The version prefix of gateway-minted signatures.
pub const PREFIX: &str = "gw1";

/// Wrap `payload` (for example a Gemini `thoughtSignature`, or `""`) with the `origin` that produced it.
pub fn mint(origin: &str, payload: &str) -> String {
    format!("{PREFIX}.{}.{payload}", URL_SAFE_NO_PAD.encode(origin))
}

/// Split a gateway-minted signature into `(origin, payload)`; `None` for any other string.
pub fn parse(sig: &str) -> Option<(String, String)> {
    let rest = sig.strip_prefix(PREFIX)?.strip_prefix('.')?;
    let (origin, payload) = rest.split_once('.')?;
    let origin = String::from_utf8(URL_SAFE_NO_PAD.decode(origin).ok()?).ok()?;
    if origin.is_empty() {
        return None;
    }
    Some((origin, payload.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mint_then_parse_round_trips() {
        let sig = mint("google/gemini-2.5-pro", "Cq0B+/x=.y");
        assert!(sig.starts_with("gw1."));
        assert_eq!(
            parse(&sig),
            Some((
                "google/gemini-2.5-pro".to_string(),
                "Cq0B+/x=.y".to_string()
            ))
        );
        assert_eq!(
            parse(&mint("deepseek/deepseek-v4", "")),
            Some(("deepseek/deepseek-v4".to_string(), String::new()))
        );
    }

    #[test]
    fn native_signatures_are_not_parsed() {
        assert_eq!(parse("EqQBCkYIBxgCKkB..."), None);
        assert_eq!(parse("gw1"), None);
        assert_eq!(parse("gw1.!!!.x"), None);
        assert_eq!(parse("gw1..x"), None);
        assert_eq!(parse(""), None);
    }
}
