//! What an upstream accepts beyond (or short of) its dialect's baseline.
//!
//! Most flags concern OpenAI-compatible vendors (DeepSeek, Zhipu GLM, Moonshot Kimi), whose request
//! shape differs from OpenAI's in small ways that otherwise cause 400s; a few concern Anthropic
//! targets (`structured_outputs`, `adaptive_thinking`, `default_max_tokens`). [`Default`] is
//! OpenAI's own behaviour; [`preset`] gives the known vendors. Configs deserialize with unknown
//! keys rejected, so a typo in a flag name fails loudly at load time.

use serde::{Deserialize, Serialize};

/// Per-upstream request capabilities. See each field; every flag is optional in a config (missing
/// ones take OpenAI's value).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Capabilities {
    /// Accepts `stream_options:{include_usage:true}` on streaming requests (pitfall 11: many
    /// vendors 400 on the unknown key). When false the gateway never sends it, and stream usage
    /// must be estimated if the upstream does not send it unasked.
    pub stream_options: bool,
    /// Accepts `max_completion_tokens` (OpenAI reasoning models need it); false sends `max_tokens`.
    pub max_completion_tokens: bool,
    /// Knows the `developer` role; false maps `developer` messages to `system`.
    pub developer_role: bool,
    /// Needs `tool_stream:true` to stream tool-call arguments (GLM-4.6+); sent on streaming
    /// requests that carry tools.
    pub tool_stream_param: bool,
    /// Wants the reasoning of earlier assistant turns echoed back as `reasoning_content` (DeepSeek
    /// thinking mode 400s without it on tool-call turns; GLM/Kimi interleaved thinking). When set,
    /// every assistant message carries `reasoning_content` (`""` when it had none).
    pub reasoning_echo: bool,
    /// Has the vendor switch `thinking:{type:"enabled"|"disabled"}` (DeepSeek, GLM). When set, a
    /// request whose reasoning is known to be on or off says so explicitly (Anthropic clients
    /// without `thinking` get `disabled`, since those vendors default to on).
    pub thinking_param: bool,
    /// Accepts `reasoning_effort` (OpenAI reasoning models, DeepSeek). False drops it.
    pub reasoning_effort: bool,
    /// Accepts only `tool_choice:"auto"` (GLM): `required` becomes `auto`, a named tool becomes
    /// `auto` with the tool list filtered to that tool, `none` removes the tools.
    pub tool_choice_auto_only: bool,
    /// Rejects tool-call ids outside `^[a-zA-Z0-9_-]+$`; ids are then sanitized as for Anthropic
    /// (always applied for Anthropic targets).
    pub tool_id_pattern_strict: bool,
    /// Accepts the `top_k` sampling extension (vLLM, many open-model hosts). False drops it.
    pub top_k: bool,
    /// Honours Anthropic-style `cache_control` on OpenAI content parts (OpenRouter/LiteLLM in
    /// front of Claude). When set, system prompts are sent as text parts so markers survive.
    pub cache_control: bool,
    /// Supports native JSON-schema output (OpenAI `response_format.json_schema`, Anthropic
    /// `output_config.format`). False: OpenAI targets get `json_object` plus the schema as an
    /// instruction; Anthropic targets get the forced-tool trick (`ResponseContext::json_tool`).
    pub structured_outputs: bool,
    /// Anthropic target supports `thinking:{type:"adaptive"}` + `output_config.effort`; effort-only
    /// reasoning requests then use it instead of a token budget.
    pub adaptive_thinking: bool,
    /// Anthropic target: `max_tokens` to send when the client gave none (default: by model family).
    pub default_max_tokens: Option<u64>,
}

impl Default for Capabilities {
    /// OpenAI's own behaviour.
    fn default() -> Self {
        Capabilities {
            stream_options: true,
            max_completion_tokens: true,
            developer_role: true,
            tool_stream_param: false,
            reasoning_echo: false,
            thinking_param: false,
            reasoning_effort: true,
            tool_choice_auto_only: false,
            tool_id_pattern_strict: false,
            top_k: false,
            cache_control: false,
            structured_outputs: true,
            adaptive_thinking: false,
            default_max_tokens: None,
        }
    }
}

/// The capabilities of a known vendor: `openai`, `deepseek`, `glm`, `kimi` (also `anthropic` and
/// `gemini`, which are the defaults). See the vendor table in protocols.md §1.1.
pub fn preset(name: &str) -> Option<Capabilities> {
    let base = Capabilities::default();
    Some(match name {
        "openai" | "anthropic" | "gemini" => base,
        "deepseek" => Capabilities {
            max_completion_tokens: false,
            developer_role: false,
            reasoning_echo: true,
            thinking_param: true,
            structured_outputs: false,
            ..base
        },
        "glm" | "zhipu" => Capabilities {
            stream_options: false,
            max_completion_tokens: false,
            developer_role: false,
            tool_stream_param: true,
            reasoning_echo: true,
            thinking_param: true,
            reasoning_effort: false,
            tool_choice_auto_only: true,
            structured_outputs: false,
            ..base
        },
        "kimi" | "moonshot" => Capabilities {
            developer_role: false,
            reasoning_echo: true,
            reasoning_effort: false,
            structured_outputs: false,
            ..base
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_openai_and_configs_fill_missing_flags() {
        assert_eq!(preset("openai"), Some(Capabilities::default()));
        let c: Capabilities = serde_json::from_str(r#"{"reasoning_echo":true}"#).unwrap();
        assert!(c.reasoning_echo && c.stream_options);
        assert!(serde_json::from_str::<Capabilities>(r#"{"reasoning_ech":true}"#).is_err());
        assert!(preset("nope").is_none());
        assert!(!preset("glm").unwrap().stream_options);
        assert!(preset("deepseek").unwrap().reasoning_echo);
    }
}
