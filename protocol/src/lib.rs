//! Wire formats of the LLM APIs ezrouter speaks, one intermediate representation (IR) between them,
//! and pure translators: no Pingora types, no I/O, so every mapping is unit-testable.
//!
//! Dialects: OpenAI Chat Completions ([`Dialect::OpenAi`], also OpenAI-compatible vendors),
//! Anthropic Messages ([`Dialect::Anthropic`]) and Gemini `generateContent` ([`Dialect::Gemini`]).

pub mod caps;
pub mod context;
pub mod error;
pub mod ir;
pub mod probe;
pub mod request;
pub mod response;
pub mod signature;
pub mod sse;
mod stream;
pub mod tokens;
pub mod usage;

pub use caps::Capabilities;
pub use context::ResponseContext;
pub use error::{ApiError, ErrorKind};
pub use request::{translate_request, Target, Translated};
pub use response::{response_translator, stream_error_event, upstream_error, ResponseTranslator};
pub use usage::Usage;

/// An API dialect: the shape of requests, responses, streams and error envelopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    Gemini,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
            Dialect::Gemini => "gemini",
        }
    }
}

/// UTF-8 validation with SIMD: every request body, upstream body and SSE event is validated once,
/// and the standard library's check goes byte by byte through non-ASCII text. On failure, the
/// standard library's error, which says where.
pub(crate) fn utf8(bytes: &[u8]) -> Result<&str, std::str::Utf8Error> {
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => Ok(text),
        Err(_) => std::str::from_utf8(bytes),
    }
}
