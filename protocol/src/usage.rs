//! One normalized usage record for every dialect.

use serde::Serialize;

/// Token usage of one exchange, normalized so that the fields never overlap:
/// `input` excludes cache reads and writes; `output` includes `reasoning`.
/// (OpenAI `prompt_tokens` includes cached tokens, Anthropic `input_tokens` does not,
/// Gemini `candidatesTokenCount` excludes thoughts: each converter undoes its dialect's arithmetic.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens that were neither read from nor written to a cache.
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Output tokens spent on reasoning (a subset of `output`).
    pub reasoning: u64,
    pub output: u64,
}

impl Usage {
    /// Every prompt token, cached or not.
    pub fn prompt_total(&self) -> u64 {
        self.input + self.cache_read + self.cache_write
    }

    pub fn total(&self) -> u64 {
        self.prompt_total() + self.output
    }
}
