//! Method + path -> what the gateway does with the request.

use ezrouter_protocol::probe::Operation;
use ezrouter_protocol::Dialect;

/// A request the gateway knows how to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// An LLM call forwarded upstream.
    Llm { surface: Dialect, op: Operation },
    /// The model catalog, filtered by the caller's allowlist.
    Models { surface: Dialect },
    /// Liveness, without auth.
    Health,
    /// Nothing here (or not with this method); the error uses the surface's envelope.
    NotFound { surface: Dialect },
}

impl Endpoint {
    pub fn surface(&self) -> Dialect {
        match *self {
            Endpoint::Llm { surface, .. }
            | Endpoint::Models { surface }
            | Endpoint::NotFound { surface } => surface,
            Endpoint::Health => Dialect::OpenAi,
        }
    }

    /// A stable low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Endpoint::Llm {
                op: Operation::ChatCompletions,
                ..
            } => "chat_completions",
            Endpoint::Llm {
                op: Operation::Messages,
                ..
            } => "messages",
            Endpoint::Llm {
                op: Operation::CountTokens,
                ..
            } => "count_tokens",
            Endpoint::Llm {
                op: Operation::Embeddings,
                ..
            } => "embeddings",
            Endpoint::Models { .. } => "models",
            Endpoint::Health => "health",
            Endpoint::NotFound { .. } => "not_found",
        }
    }
}

/// Routes a request. The query string is ignored (Claude Code sends `?beta=true`).
/// `/v1/messages...` is the Anthropic surface even without the `/anthropic` prefix, since the
/// Anthropic SDK pointed at a bare base URL calls it there.
pub fn route(method: &http::Method, path: &str) -> Endpoint {
    let path = path.split('?').next().unwrap_or("");
    let path = path.strip_suffix('/').unwrap_or(path);
    let (surface, rest) = match path.strip_prefix("/anthropic") {
        Some(rest) => (Dialect::Anthropic, rest),
        None if path.starts_with("/v1/messages") => (Dialect::Anthropic, path),
        None => (Dialect::OpenAi, path),
    };
    let post = method == http::Method::POST;
    let get = method == http::Method::GET;
    let endpoint = |ok: bool, e: Endpoint| {
        if ok {
            e
        } else {
            Endpoint::NotFound { surface }
        }
    };
    match (surface, rest) {
        (_, "/health") | (_, "/healthz") if surface == Dialect::OpenAi => {
            endpoint(get, Endpoint::Health)
        }
        (Dialect::OpenAi, "/v1/chat/completions") => endpoint(
            post,
            Endpoint::Llm {
                surface,
                op: Operation::ChatCompletions,
            },
        ),
        (Dialect::OpenAi, "/v1/embeddings") => endpoint(
            post,
            Endpoint::Llm {
                surface,
                op: Operation::Embeddings,
            },
        ),
        (Dialect::Anthropic, "/v1/messages") => endpoint(
            post,
            Endpoint::Llm {
                surface,
                op: Operation::Messages,
            },
        ),
        (Dialect::Anthropic, "/v1/messages/count_tokens") => endpoint(
            post,
            Endpoint::Llm {
                surface,
                op: Operation::CountTokens,
            },
        ),
        (_, "/v1/models") => endpoint(get, Endpoint::Models { surface }),
        _ => Endpoint::NotFound { surface },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    #[test]
    fn surfaces_and_query_strings() {
        let llm = |surface, op| Endpoint::Llm { surface, op };
        assert_eq!(
            route(&Method::POST, "/v1/chat/completions"),
            llm(Dialect::OpenAi, Operation::ChatCompletions)
        );
        assert_eq!(
            route(&Method::POST, "/anthropic/v1/messages"),
            llm(Dialect::Anthropic, Operation::Messages)
        );
        assert_eq!(
            route(&Method::POST, "/v1/messages?beta=true"),
            llm(Dialect::Anthropic, Operation::Messages)
        );
        assert_eq!(
            route(
                &Method::POST,
                "/anthropic/v1/messages/count_tokens?beta=true"
            ),
            llm(Dialect::Anthropic, Operation::CountTokens)
        );
        assert_eq!(
            route(&Method::GET, "/anthropic/v1/models"),
            Endpoint::Models {
                surface: Dialect::Anthropic
            }
        );
        assert_eq!(
            route(&Method::GET, "/v1/models"),
            Endpoint::Models {
                surface: Dialect::OpenAi
            }
        );
        assert_eq!(
            route(&Method::GET, "/v1/chat/completions"),
            Endpoint::NotFound {
                surface: Dialect::OpenAi
            }
        );
        assert_eq!(
            route(&Method::POST, "/anthropic/v1/nope"),
            Endpoint::NotFound {
                surface: Dialect::Anthropic
            }
        );
        assert_eq!(route(&Method::GET, "/health"), Endpoint::Health);
    }
}
