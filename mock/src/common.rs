//! What every dialect shares: the answer plan, token accounting, error
//! envelopes, and a serde helper that keeps only the first tool.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

use crate::text::{
    push_json_escaped, push_json_str, push_u64, Tables, TEXT_TOKENS_PER_CHUNK,
    THINK_TOKENS_PER_CHUNK,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    OpenAi,
    Anthropic,
    Gemini,
}

/// The tool call the answer makes.
pub(crate) struct ToolCall {
    pub name: String,
    /// Arguments as a JSON object text.
    pub args: String,
}

/// Everything needed to render one successful answer.
pub(crate) struct Plan<'a> {
    pub tables: &'a Tables,
    pub id: u64,
    pub created: u64,
    pub model: &'a str,
    /// Text deltas (>= 1).
    pub chunks: usize,
    /// Thinking deltas (0 = no thinking).
    pub think_chunks: usize,
    /// Whether thinking text is shown (Anthropic `display:"omitted"` hides it).
    pub think_visible: bool,
    pub tool: Option<ToolCall>,
    /// Whether the answer carries text besides a tool call.
    pub text: bool,
    /// Total prompt tokens (including cached ones).
    pub prompt_tokens: u64,
    /// Of which read from cache.
    pub cached_tokens: u64,
}

impl Plan<'_> {
    pub(crate) fn text_chunks(&self) -> usize {
        if self.text {
            self.chunks
        } else {
            0
        }
    }

    pub(crate) fn text_tokens(&self) -> u64 {
        self.text_chunks() as u64 * TEXT_TOKENS_PER_CHUNK
    }

    pub(crate) fn reasoning_tokens(&self) -> u64 {
        self.think_chunks as u64 * THINK_TOKENS_PER_CHUNK
    }

    pub(crate) fn tool_tokens(&self) -> u64 {
        self.tool
            .as_ref()
            .map_or(0, |t| 8 + t.args.len() as u64 / 4)
    }

    /// Output tokens including reasoning.
    pub(crate) fn completion_tokens(&self) -> u64 {
        self.text_tokens() + self.reasoning_tokens() + self.tool_tokens()
    }
}

/// Prompt tokens from the body size; half of them count as cache reads.
pub(crate) fn prompt_usage(body_len: usize) -> (u64, u64) {
    let p = crate::text::estimate_tokens(body_len);
    (p, p / 2)
}

/// Deserializes a JSON array keeping only its first element (as a `Value`);
/// the rest is skipped without allocating.
pub(crate) struct First(pub Option<Value>);

impl<'de> Deserialize<'de> for First {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = First;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<First, A::Error> {
                let first = seq.next_element::<Value>()?;
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(First(first))
            }
        }
        d.deserialize_seq(V)
    }
}

/// Append `,"name":` + JSON string.
pub(crate) fn push_field_str(out: &mut Vec<u8>, name: &str, v: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    push_json_str(out, v);
}

/// Append `,"name":N`.
pub(crate) fn push_field_u64(out: &mut Vec<u8>, name: &str, v: u64) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    push_u64(out, v);
}

/// Default message for a status.
pub(crate) fn status_message(status: u16) -> &'static str {
    match status {
        400 => "Bad request",
        401 => "Invalid API key (mock fault)",
        402 => "Payment required: credit balance too low (mock fault)",
        403 => "Permission denied (mock fault)",
        404 => "Not found",
        413 => "Request too large (mock fault)",
        429 => "Rate limit exceeded (mock fault)",
        500 => "Internal server error (mock fault)",
        502 => "Bad gateway (mock fault)",
        503 => "Service unavailable (mock fault)",
        504 => "Upstream timeout (mock fault)",
        529 => "Overloaded (mock fault)",
        s if s < 500 => "Client error (mock fault)",
        _ => "Server error (mock fault)",
    }
}

/// Render the dialect's error envelope into `out`.
pub(crate) fn error_body(
    out: &mut Vec<u8>,
    d: Dialect,
    status: u16,
    msg: &str,
    retry_after: Option<u64>,
    id: u64,
) {
    match d {
        Dialect::OpenAi => {
            let (ty, code) = match status {
                400 => ("invalid_request_error", None),
                401 => ("invalid_request_error", Some("invalid_api_key")),
                402 => ("insufficient_quota", Some("insufficient_quota")),
                403 => ("invalid_request_error", Some("permission_denied")),
                404 => ("invalid_request_error", Some("not_found")),
                413 => ("invalid_request_error", Some("request_too_large")),
                429 => ("requests", Some("rate_limit_exceeded")),
                503 | 529 => ("server_error", Some("overloaded")),
                s if s < 500 => ("invalid_request_error", None),
                _ => ("server_error", None),
            };
            out.extend_from_slice(b"{\"error\":{\"message\":");
            push_json_str(out, msg);
            push_field_str(out, "type", ty);
            out.extend_from_slice(b",\"param\":null,\"code\":");
            match code {
                Some(c) => push_json_str(out, c),
                None => out.extend_from_slice(b"null"),
            }
            out.extend_from_slice(b"}}");
        }
        Dialect::Anthropic => {
            out.extend_from_slice(b"{\"type\":\"error\",\"error\":{\"type\":");
            push_json_str(out, anthropic_error_type(status));
            push_field_str(out, "message", msg);
            out.extend_from_slice(b"},\"request_id\":\"req_mock_");
            push_u64(out, id);
            out.extend_from_slice(b"\"}");
        }
        Dialect::Gemini => {
            let st = match status {
                400 => "INVALID_ARGUMENT",
                401 => "UNAUTHENTICATED",
                402 | 429 => "RESOURCE_EXHAUSTED",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                409 => "ABORTED",
                499 => "CANCELLED",
                501 => "UNIMPLEMENTED",
                503 | 529 => "UNAVAILABLE",
                504 => "DEADLINE_EXCEEDED",
                s if s < 500 => "FAILED_PRECONDITION",
                _ => "INTERNAL",
            };
            out.extend_from_slice(b"{\"error\":{\"code\":");
            push_u64(out, status as u64);
            push_field_str(out, "message", msg);
            push_field_str(out, "status", st);
            if let Some(secs) = retry_after {
                out.extend_from_slice(
                    b",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"",
                );
                push_u64(out, secs);
                out.extend_from_slice(b"s\"}]");
            }
            out.extend_from_slice(b"}}");
        }
    }
}

pub(crate) fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        s if s < 500 => "invalid_request_error",
        _ => "api_error",
    }
}

/// The dialect's mid-stream error event (after HTTP 200).
/// For a Gemini JSON-array stream, `first` says whether no element was sent yet.
pub(crate) fn mid_stream_error(out: &mut Vec<u8>, d: Dialect, sse: bool, first: bool) {
    match d {
        Dialect::OpenAi => out.extend_from_slice(
            b"data: {\"error\":{\"message\":\"Upstream overloaded mid-stream (mock fault)\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n",
        ),
        Dialect::Anthropic => out.extend_from_slice(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded (mock fault)\"}}\n\n",
        ),
        Dialect::Gemini => {
            let err: &[u8] = b"{\"error\":{\"code\":503,\"message\":\"The model is overloaded (mock fault)\",\"status\":\"UNAVAILABLE\"}}";
            if sse {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(err);
                out.extend_from_slice(b"\r\n\r\n");
            } else {
                out.extend_from_slice(if first { &b"["[..] } else { &b",\r\n"[..] });
                out.extend_from_slice(err);
                out.extend_from_slice(b"]");
            }
        }
    }
}

/// Append a JSON string's content for `model` (escaped, no quotes).
pub(crate) fn push_model(out: &mut Vec<u8>, model: &str) {
    push_json_escaped(out, model);
}
