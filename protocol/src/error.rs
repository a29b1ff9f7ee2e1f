//! The one error type of a request, and its rendering in each client dialect's envelope.
//!
//! Every failure a client can see (its own mistake, a gateway limit, an upstream failure) is an
//! [`ApiError`]; [`ApiError::status`] and [`ApiError::body`] are the single place that decides
//! what goes on the wire, so both surfaces stay consistent.

use crate::Dialect;

/// What went wrong, independent of dialect. Each kind has one HTTP status and one machine type
/// per envelope, chosen so that the official SDKs raise their matching exception class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: malformed JSON, missing or mistyped fields, unmappable features.
    InvalidRequest,
    /// 401: missing or unknown client key (or an upstream rejected its key).
    Authentication,
    /// 402: the upstream account is out of credit.
    Billing,
    /// 403: the key may not use this model.
    PermissionDenied,
    /// 404: unknown model or path.
    NotFound,
    /// 413: the request body exceeds the configured cap.
    RequestTooLarge,
    /// 429: a rate limit or budget was hit.
    RateLimited,
    /// 503 (OpenAI) / 529 (Anthropic): every upstream is busy, the queue wait expired.
    Overloaded,
    /// 500: a bug or an upstream 500.
    Internal,
    /// 502: the upstream could not be reached or answered garbage.
    BadGateway,
    /// 504: the upstream did not answer in time.
    Timeout,
}

impl ErrorKind {
    /// HTTP status on the given surface (only `Overloaded` differs: Anthropic's 529).
    pub fn status(self, dialect: Dialect) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Billing => 402,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Overloaded => match dialect {
                Dialect::Anthropic => 529,
                _ => 503,
            },
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Timeout => 504,
        }
    }

    /// OpenAI `error.type`.
    pub fn openai_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest
            | ErrorKind::PermissionDenied
            | ErrorKind::NotFound
            | ErrorKind::RequestTooLarge => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Billing => "insufficient_quota",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded
            | ErrorKind::Internal
            | ErrorKind::BadGateway
            | ErrorKind::Timeout => "server_error",
        }
    }

    /// Anthropic `error.type`.
    pub fn anthropic_type(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request_error",
            ErrorKind::Authentication => "authentication_error",
            ErrorKind::Billing => "billing_error",
            ErrorKind::PermissionDenied => "permission_error",
            ErrorKind::NotFound => "not_found_error",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limit_error",
            ErrorKind::Overloaded => "overloaded_error",
            ErrorKind::Internal | ErrorKind::BadGateway => "api_error",
            ErrorKind::Timeout => "timeout_error",
        }
    }

    /// Gemini `error.status`.
    pub fn gemini_status(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
            ErrorKind::Authentication => "UNAUTHENTICATED",
            ErrorKind::PermissionDenied => "PERMISSION_DENIED",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::Billing | ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
            ErrorKind::Overloaded | ErrorKind::BadGateway => "UNAVAILABLE",
            ErrorKind::Internal => "INTERNAL",
            ErrorKind::Timeout => "DEADLINE_EXCEEDED",
        }
    }

    /// The kind an upstream HTTP status stands for (Anthropic 529 and 503 both mean overloaded).
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            400 | 422 => ErrorKind::InvalidRequest,
            401 => ErrorKind::Authentication,
            402 => ErrorKind::Billing,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimited,
            503 | 529 => ErrorKind::Overloaded,
            502 => ErrorKind::BadGateway,
            504 | 408 => ErrorKind::Timeout,
            s if (400..500).contains(&s) => ErrorKind::InvalidRequest,
            _ => ErrorKind::Internal,
        }
    }
}

/// A failure to report to the client, in the client's own dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The offending request field, when there is one (OpenAI `param`).
    pub param: Option<String>,
    /// A specific machine code (OpenAI `code`), e.g. `invalid_api_key`, `model_not_found`.
    pub code: Option<&'static str>,
    /// Seconds a client should wait before retrying (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// A 400 that names the request field at fault.
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param.into()),
            ..Self::invalid(message)
        }
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self, dialect: Dialect) -> u16 {
        self.kind.status(dialect)
    }

    /// The error envelope of `dialect`, as JSON bytes.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        let value = match dialect {
            Dialect::OpenAi => serde_json::json!({
                "error": {
                    "message": self.message,
                    "type": self.kind.openai_type(),
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Dialect::Anthropic => serde_json::json!({
                "type": "error",
                "error": { "type": self.kind.anthropic_type(), "message": self.message }
            }),
            Dialect::Gemini => serde_json::json!({
                "error": {
                    "code": self.kind.status(dialect),
                    "message": self.message,
                    "status": self.kind.gemini_status(),
                }
            }),
        };
        serde_json::to_vec(&value).expect("serializing a json! value cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_envelope_has_all_four_keys() {
        let e = ApiError::invalid_param("messages", "messages is required");
        let v: serde_json::Value = serde_json::from_slice(&e.body(Dialect::OpenAi)).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "messages");
        assert!(v["error"].as_object().unwrap().contains_key("code"));
        assert_eq!(e.status(Dialect::OpenAi), 400);
    }

    #[test]
    fn overloaded_is_529_on_anthropic_and_503_on_openai() {
        let e = ApiError::new(ErrorKind::Overloaded, "busy");
        assert_eq!(e.status(Dialect::Anthropic), 529);
        assert_eq!(e.status(Dialect::OpenAi), 503);
        let v: serde_json::Value = serde_json::from_slice(&e.body(Dialect::Anthropic)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "overloaded_error");
    }

    #[test]
    fn upstream_statuses_map_to_kinds() {
        assert_eq!(ErrorKind::from_status(529), ErrorKind::Overloaded);
        assert_eq!(ErrorKind::from_status(418), ErrorKind::InvalidRequest);
        assert_eq!(ErrorKind::from_status(500), ErrorKind::Internal);
    }
}
