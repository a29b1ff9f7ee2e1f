//! Stop / finish reasons (protocols.md §2.5), normalized to Anthropic's richer set.

/// Why the model stopped, independent of dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Natural end (O `stop`, A `end_turn`, G `STOP`).
    EndTurn,
    /// A client stop sequence matched (A `stop_sequence`).
    StopSequence,
    /// The output cap was hit (O `length`, A `max_tokens`, G `MAX_TOKENS`).
    MaxTokens,
    /// The context window was exhausted (A `model_context_window_exceeded`).
    ContextWindow,
    /// The turn ends with tool calls (O `tool_calls`, A `tool_use`).
    ToolUse,
    /// Server tools paused the turn (A `pause_turn`).
    PauseTurn,
    /// A safety system stopped or refused the answer (O `content_filter`, A `refusal`, G `SAFETY`…).
    Refusal,
}

impl Finish {
    pub fn from_openai(s: &str) -> Finish {
        match s {
            "length" => Finish::MaxTokens,
            "tool_calls" | "function_call" => Finish::ToolUse,
            "content_filter" => Finish::Refusal,
            _ => Finish::EndTurn,
        }
    }

    pub fn from_anthropic(s: &str) -> Finish {
        match s {
            "stop_sequence" => Finish::StopSequence,
            "max_tokens" => Finish::MaxTokens,
            "model_context_window_exceeded" => Finish::ContextWindow,
            "tool_use" => Finish::ToolUse,
            "pause_turn" => Finish::PauseTurn,
            "refusal" => Finish::Refusal,
            _ => Finish::EndTurn,
        }
    }

    /// Gemini `finishReason`. `STOP` with function calls becomes [`Finish::ToolUse`] later, when
    /// the calls are known (there is no tool-call finish reason in Gemini).
    pub fn from_gemini(s: &str) -> Finish {
        match s {
            "MAX_TOKENS" => Finish::MaxTokens,
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "LANGUAGE" => {
                Finish::Refusal
            }
            s if s.starts_with("IMAGE_") => Finish::Refusal,
            _ => Finish::EndTurn,
        }
    }

    pub fn openai(self) -> &'static str {
        match self {
            Finish::EndTurn | Finish::StopSequence | Finish::PauseTurn => "stop",
            Finish::MaxTokens | Finish::ContextWindow => "length",
            Finish::ToolUse => "tool_calls",
            Finish::Refusal => "content_filter",
        }
    }

    pub fn anthropic(self) -> &'static str {
        match self {
            Finish::EndTurn => "end_turn",
            Finish::StopSequence => "stop_sequence",
            Finish::MaxTokens => "max_tokens",
            Finish::ContextWindow => "model_context_window_exceeded",
            Finish::ToolUse => "tool_use",
            Finish::PauseTurn => "pause_turn",
            Finish::Refusal => "refusal",
        }
    }

    pub fn gemini(self) -> &'static str {
        match self {
            Finish::MaxTokens | Finish::ContextWindow => "MAX_TOKENS",
            Finish::Refusal => "SAFETY",
            _ => "STOP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_2_5() {
        assert_eq!(Finish::from_openai("stop").anthropic(), "end_turn");
        assert_eq!(Finish::from_openai("length").anthropic(), "max_tokens");
        assert_eq!(Finish::from_openai("tool_calls").anthropic(), "tool_use");
        assert_eq!(Finish::from_openai("function_call").anthropic(), "tool_use");
        assert_eq!(Finish::from_openai("content_filter").anthropic(), "refusal");
        assert_eq!(Finish::from_anthropic("end_turn").openai(), "stop");
        assert_eq!(Finish::from_anthropic("stop_sequence").openai(), "stop");
        assert_eq!(Finish::from_anthropic("max_tokens").openai(), "length");
        assert_eq!(
            Finish::from_anthropic("model_context_window_exceeded").openai(),
            "length"
        );
        assert_eq!(Finish::from_anthropic("tool_use").openai(), "tool_calls");
        assert_eq!(Finish::from_anthropic("pause_turn").openai(), "stop");
        assert_eq!(Finish::from_anthropic("refusal").openai(), "content_filter");
        for g in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
            "LANGUAGE",
        ] {
            assert_eq!(Finish::from_gemini(g).openai(), "content_filter", "{g}");
            assert_eq!(Finish::from_gemini(g).anthropic(), "refusal", "{g}");
        }
        for g in [
            "STOP",
            "MALFORMED_FUNCTION_CALL",
            "OTHER",
            "FINISH_REASON_UNSPECIFIED",
            "TOO_MANY_TOOL_CALLS",
        ] {
            assert_eq!(Finish::from_gemini(g).openai(), "stop", "{g}");
            assert_eq!(Finish::from_gemini(g).anthropic(), "end_turn", "{g}");
        }
        assert_eq!(Finish::from_gemini("MAX_TOKENS").anthropic(), "max_tokens");
    }
}
