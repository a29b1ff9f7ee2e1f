//! What the response side needs to know about the request that produced it.

use std::collections::HashMap;

use crate::Dialect;

/// Built by request translation, handed to the response translator of the same exchange.
#[derive(Debug, Clone)]
pub struct ResponseContext {
    /// The dialect the client speaks (and expects back).
    pub client: Dialect,
    /// The dialect of the upstream that answers.
    pub upstream: Dialect,
    /// The model id the client asked for; echoed in every response and chunk.
    pub model: String,
    /// The client asked for a stream (SSE) rather than one JSON body.
    pub client_stream: bool,
    /// The upstream was asked for a stream.
    pub upstream_stream: bool,
    /// Usage chunks are the client's: it asked for them (OpenAI `stream_options.include_usage`),
    /// or, in a pass-through, the gateway did not ask the upstream for them. When false, the usage
    /// chunk the gateway asked for is consumed and not forwarded.
    pub include_usage: bool,
    /// Upstream tool name -> client tool name, for names shortened to fit the upstream's limit.
    pub tool_names: HashMap<String, String>,
    /// JSON-schema output emulated with a forced tool (`tool trick`): that tool's input becomes
    /// the text content and the finish reason becomes a normal stop.
    pub json_tool: Option<String>,
    /// Who produced this answer (`provider/upstream-model`): the origin recorded on reasoning
    /// signatures, so they are replayed only to the provider that made them.
    pub origin: String,
}

impl ResponseContext {
    /// A context for a same-dialect exchange with no rewriting beyond the model name.
    pub fn passthrough(dialect: Dialect, model: impl Into<String>, stream: bool) -> Self {
        ResponseContext {
            client: dialect,
            upstream: dialect,
            model: model.into(),
            client_stream: stream,
            upstream_stream: stream,
            include_usage: false,
            tool_names: HashMap::new(),
            json_tool: None,
            origin: String::new(),
        }
    }
}
