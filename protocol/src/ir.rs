//! The intermediate representation (IR) of a chat request: a superset of OpenAI Chat Completions,
//! Anthropic Messages and Gemini `generateContent`, so that every dialect pair translates through
//! one parser and one writer per dialect (protocols.md §0).
//!
//! Conventions:
//! - Tool results live in [`Role::User`] messages (Anthropic's model); OpenAI `role:"tool"`
//!   messages are folded into the next user turn and split back out by the OpenAI writer.
//! - Tool-call arguments stay a raw JSON string ([`Block::ToolCall::args_json`]); writers that need
//!   an object parse it and fall back to `{}` / `{"_raw": …}`.
//! - Every opaque reasoning artifact carries its [`Signature::origin`], so it is replayed only to
//!   the upstream that produced it.
//! - `cache_control` (Anthropic prompt-caching markers) is kept on every block and tool that can
//!   carry one, so it survives every path to an Anthropic upstream.

use serde_json::{Map, Value};

use crate::Dialect;

/// Origin of a native Anthropic signature (one not minted by the gateway).
pub const ORIGIN_ANTHROPIC: &str = "anthropic";
/// Origin of a native Gemini `thoughtSignature` (one not minted by the gateway).
pub const ORIGIN_GEMINI: &str = "gemini";

/// One chat request, independent of dialect.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// The dialect this request was parsed from (decides which `extras` may be replayed).
    pub source: Option<Dialect>,
    /// The model id in the client body (Gemini bodies have none: the path names it).
    pub model: String,
    /// System prompt blocks (text, with their cache markers), in order.
    pub system: Vec<Block>,
    /// The client sent its system prompt with the `developer` role.
    pub developer_role: bool,
    pub messages: Vec<Msg>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)`: at most one tool call per turn (OpenAI `parallel_tool_calls:false`,
    /// Anthropic `disable_parallel_tool_use:true`).
    pub parallel_tool_calls: Option<bool>,
    pub sampling: Sampling,
    pub reasoning: Reasoning,
    pub output_format: Option<OutputFormat>,
    /// OpenAI `user`, Anthropic `metadata.user_id`.
    pub user_id: Option<String>,
    pub stream: bool,
    /// The client asked for the usage chunk of a stream (OpenAI `stream_options.include_usage`).
    pub stream_usage: bool,
    /// Top-level fields of the source dialect with no IR equivalent, replayed verbatim only when
    /// the target speaks the same dialect (a writer's own keys win).
    pub extras: Map<String, Value>,
}

/// A turn of the conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub role: Role,
    pub blocks: Vec<Block>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// A system/developer message in the middle of an OpenAI conversation (leading ones go to
    /// [`Request::system`]). Writers for dialects without positional system messages hoist it.
    System,
}

/// A reasoning signature and the upstream it is valid for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `provider/model` for gateway-minted signatures ([`crate::signature`]); [`ORIGIN_ANTHROPIC`]
    /// or [`ORIGIN_GEMINI`] for native ones.
    pub origin: String,
    /// The opaque value the origin expects back.
    pub value: String,
}

impl Signature {
    /// A signature as received: gateway-minted ones are unwrapped, others belong to `native`.
    pub fn from_wire(sig: &str, native: &str) -> Signature {
        match crate::signature::parse(sig) {
            Some((origin, value)) => Signature { origin, value },
            None => Signature {
                origin: native.to_string(),
                value: sig.to_string(),
            },
        }
    }

    /// The value to send to an upstream with `native` origin kind and exact `origin`, if valid there.
    pub fn valid_for(&self, native: &str, origin: &str) -> Option<&str> {
        (self.origin == native || (!origin.is_empty() && self.origin == origin))
            .then_some(self.value.as_str())
    }

    /// The form a client of `native` kind can replay: native signatures verbatim, others minted.
    pub fn to_wire(&self, native: &str) -> String {
        if self.origin == native {
            self.value.clone()
        } else {
            crate::signature::mint(&self.origin, &self.value)
        }
    }
}

/// A piece of content.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text {
        text: String,
        cache_control: Option<Value>,
    },
    Image {
        source: MediaSource,
        /// OpenAI `detail` (low/high/auto).
        detail: Option<String>,
        cache_control: Option<Value>,
        /// Where the block sat in the client request (`messages[2].content[1]`), for errors.
        path: Option<String>,
    },
    /// A PDF or text document.
    Document {
        source: MediaSource,
        title: Option<String>,
        /// Anthropic `context`.
        context: Option<String>,
        /// Anthropic `citations` config.
        citations: Option<Value>,
        cache_control: Option<Value>,
        path: Option<String>,
    },
    /// Audio input (OpenAI `input_audio`, Gemini inline audio); `mime` like `audio/wav`.
    Audio {
        mime: String,
        data: String,
        path: Option<String>,
    },
    ToolCall {
        id: String,
        name: String,
        /// Raw JSON text of the arguments, as sent.
        args_json: String,
        /// Gemini `thoughtSignature` riding on the call.
        signature: Option<Signature>,
        cache_control: Option<Value>,
    },
    ToolResult {
        call_id: String,
        /// The called function (Gemini carries it; looked up from the call otherwise).
        name: Option<String>,
        content: Vec<Block>,
        is_error: bool,
        cache_control: Option<Value>,
    },
    Thinking {
        text: String,
        signature: Option<Signature>,
    },
    RedactedThinking {
        data: String,
        origin: String,
    },
    /// A block only its own dialect understands (Anthropic `server_tool_use`,
    /// `web_search_tool_result`, `search_result`…): replayed to that dialect, dropped elsewhere.
    Opaque {
        dialect: Dialect,
        value: Value,
    },
}

/// Where an image or document comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaSource {
    Base64 {
        mime: String,
        data: String,
    },
    Url(String),
    /// A provider-side file id (OpenAI `file_id`, Anthropic `file` source): valid only on the
    /// dialect it came from.
    FileId {
        dialect: Dialect,
        id: String,
    },
    /// Plain text (Anthropic `{type:"text", media_type:"text/plain", data}` source).
    Text(String),
    /// Anthropic `{type:"content", content:[…]}` document source.
    Content(Vec<Block>),
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments (`None`: takes no parameters).
    pub schema: Option<Value>,
    pub strict: Option<bool>,
    pub cache_control: Option<Value>,
    /// A non-function tool only its own dialect understands (Anthropic server tools, OpenAI
    /// custom tools, Gemini `googleSearch`/`codeExecution`): the whole definition, verbatim.
    pub native: Option<(Dialect, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    /// Must call some tool (OpenAI `required`, Anthropic `any`, Gemini `ANY`).
    Required,
    None,
    /// Must call this tool.
    Tool(String),
    /// Restrict to a subset (OpenAI `allowed_tools`, Gemini `allowedFunctionNames`).
    Allowed {
        required: bool,
        names: Vec<String>,
    },
}

/// Sampling and limits.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    /// The output cap (OpenAI `max_completion_tokens`/`max_tokens`, Anthropic `max_tokens`,
    /// Gemini `maxOutputTokens`).
    pub max_tokens: Option<u64>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Number of choices (OpenAI `n`, Gemini `candidateCount`).
    pub n: Option<u64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u64>,
}

/// Reasoning ("thinking") controls.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reasoning {
    /// `Some(true)` on, `Some(false)` explicitly off, `None` unspecified (the upstream's default).
    pub enabled: Option<bool>,
    /// Token budget (Anthropic `budget_tokens`, Gemini `thinkingBudget`; `None` = dynamic).
    pub budget: Option<u64>,
    /// Effort level (`none|minimal|low|medium|high|xhigh|max`).
    pub effort: Option<String>,
    /// Return reasoning text (Gemini `includeThoughts`; Anthropic `display:"summarized"` vs `"omitted"`).
    pub include_thoughts: Option<bool>,
    /// Anthropic `thinking:{type:"adaptive"}`.
    pub adaptive: bool,
    /// Anthropic `thinking.display`, kept verbatim for Anthropic targets.
    pub display: Option<String>,
}

/// Structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object (OpenAI `json_object`, Gemini `application/json` without a schema).
    JsonObject,
    JsonSchema {
        name: Option<String>,
        description: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

impl Block {
    pub fn text(text: impl Into<String>) -> Block {
        Block::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// Where a media block sat in the client request.
    pub fn path(&self) -> Option<&str> {
        match self {
            Block::Image { path, .. }
            | Block::Document { path, .. }
            | Block::Audio { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    pub fn is_tool_result(&self) -> bool {
        matches!(self, Block::ToolResult { .. })
    }

    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Block::Text { text, .. } => Some(text),
            _ => None,
        }
    }
}

impl Request {
    /// The name of the function a tool call id refers to, searching every assistant turn.
    pub fn call_name(&self, call_id: &str) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| &m.blocks)
            .find_map(|b| match b {
                Block::ToolCall { id, name, .. } if id == call_id => Some(name.as_str()),
                _ => None,
            })
    }

    /// The effective reasoning switch: explicit, or the source dialect's default (Anthropic
    /// requests without `thinking` mean off).
    pub fn reasoning_on(&self) -> Option<bool> {
        self.reasoning.enabled.or(match self.source {
            Some(Dialect::Anthropic) => Some(false),
            _ => None,
        })
    }
}

/// Joined text of the text blocks (separated by `sep`).
pub fn join_text(blocks: &[Block], sep: &str) -> String {
    blocks
        .iter()
        .filter_map(Block::as_text)
        .collect::<Vec<_>>()
        .join(sep)
}
