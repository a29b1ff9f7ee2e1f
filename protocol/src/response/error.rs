//! Upstream failures as client errors (protocols.md §2.10), and mid-stream error events.

use serde_json::Value;

use crate::sse;
use crate::{ApiError, Dialect, ErrorKind};

/// An upstream non-2xx answer (status + body in the upstream's dialect) as the client's error:
/// the upstream message is kept verbatim, 529/503 (and Anthropic `overloaded_error`, Gemini
/// `UNAVAILABLE`) become [`ErrorKind::Overloaded`], and a retry delay found in the body (Gemini
/// `RetryInfo.retryDelay`, "try again in 20s" texts) becomes `retry_after`.
pub fn upstream_error(upstream: Dialect, status: u16, body: &[u8]) -> ApiError {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    match value.as_ref().and_then(error_object) {
        Some(err) => from_error_object(upstream, Some(status), err),
        None => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            let message = if text.is_empty() {
                format!("upstream answered HTTP {status}")
            } else {
                truncate(text, 1000).to_string()
            };
            let mut e = ApiError::new(ErrorKind::from_status(status), message);
            e.code = default_code(e.kind);
            e.retry_after = retry_from_text(&e.message);
            e
        }
    }
}

/// The error object of an envelope in any dialect: `{"error":{…}}`, `{"type":"error","error":{…}}`,
/// or Gemini's array-wrapped `[{"error":{…}}]`. A bare `{"error":"text"}` counts too.
pub(crate) fn error_object(v: &Value) -> Option<&Value> {
    match v {
        Value::Array(items) => items.first().and_then(error_object),
        Value::Object(map) => map.get("error").filter(|e| !e.is_null()),
        _ => None,
    }
}

/// An error object met inside a 200 answer or a stream (no HTTP status to go by).
pub(crate) fn from_error_value(upstream: Dialect, err: &Value) -> ApiError {
    from_error_object(upstream, None, err)
}

fn from_error_object(upstream: Dialect, status: Option<u16>, err: &Value) -> ApiError {
    let (message, ty, code, gstatus) = match err {
        Value::String(s) => (s.clone(), None, None, None),
        _ => (
            err.get("message")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            err.get("type").and_then(Value::as_str),
            err.get("code").and_then(Value::as_str),
            err.get("status").and_then(Value::as_str),
        ),
    };
    // Gemini's numeric `code` is the HTTP status.
    let status = status
        .filter(|s| !(200..300).contains(s))
        .or_else(|| err.get("code").and_then(Value::as_u64).map(|c| c as u16));
    let named = [ty, code, gstatus]
        .into_iter()
        .flatten()
        .find_map(kind_from_name);
    let mut kind = match (status, named) {
        (Some(s), named) => {
            let by_status = ErrorKind::from_status(s);
            match named {
                // A 429 "insufficient_quota" (OpenAI) is a billing problem, and Anthropic's
                // overloaded_error can come with 500s from some proxies.
                Some(ErrorKind::Billing) | Some(ErrorKind::Overloaded) => named.unwrap(),
                _ => by_status,
            }
        }
        (None, Some(k)) => k,
        (None, None) => ErrorKind::BadGateway,
    };
    if kind == ErrorKind::RateLimited
        && upstream == Dialect::Gemini
        && message.to_ascii_lowercase().contains("billing")
    {
        kind = ErrorKind::Billing;
    }
    let message = if message.is_empty() {
        match status {
            Some(s) => format!("upstream answered HTTP {s}"),
            None => "upstream error".to_string(),
        }
    } else {
        message
    };
    let mut e = ApiError::new(kind, message);
    e.param = err.get("param").and_then(Value::as_str).map(str::to_string);
    e.code = code.and_then(static_code).or_else(|| default_code(kind));
    e.retry_after = retry_from_details(err).or_else(|| retry_from_text(&e.message));
    e
}

fn kind_from_name(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "invalid_request_error" | "INVALID_ARGUMENT" | "FAILED_PRECONDITION" => {
            ErrorKind::InvalidRequest
        }
        "context_length_exceeded" | "invalid_value" => ErrorKind::InvalidRequest,
        "authentication_error" | "invalid_api_key" | "UNAUTHENTICATED" => ErrorKind::Authentication,
        "billing_error" | "insufficient_quota" => ErrorKind::Billing,
        "permission_error" | "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
        "not_found_error" | "model_not_found" | "NOT_FOUND" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" | "rate_limit_exceeded" | "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
        "overloaded_error" | "UNAVAILABLE" => ErrorKind::Overloaded,
        "timeout_error" | "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "api_error" | "server_error" | "INTERNAL" => ErrorKind::Internal,
        _ => return None,
    })
}

/// Upstream OpenAI codes worth keeping (`ApiError::code` is static).
fn static_code(code: &str) -> Option<&'static str> {
    const KNOWN: [&str; 8] = [
        "invalid_api_key",
        "model_not_found",
        "context_length_exceeded",
        "rate_limit_exceeded",
        "insufficient_quota",
        "invalid_value",
        "string_above_max_length",
        "content_filter",
    ];
    KNOWN.into_iter().find(|k| *k == code)
}

fn default_code(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::Authentication => Some("invalid_api_key"),
        ErrorKind::NotFound => Some("model_not_found"),
        ErrorKind::RateLimited => Some("rate_limit_exceeded"),
        ErrorKind::Billing => Some("insufficient_quota"),
        _ => None,
    }
}

/// Gemini `details:[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]`.
fn retry_from_details(err: &Value) -> Option<u64> {
    err.get("details")?
        .as_array()?
        .iter()
        .find_map(|d| d.get("retryDelay")?.as_str())
        .and_then(|s| parse_duration(s.trim()))
}

/// "Please try again in 20s", "try again in 1.5s", "retry in 120ms", "retry after 30 seconds".
fn retry_from_text(message: &str) -> Option<u64> {
    let lower = message.to_ascii_lowercase();
    for marker in [
        "try again in ",
        "retry in ",
        "retry after ",
        "retrydelay\":\"",
    ] {
        if let Some(i) = lower.find(marker) {
            if let Some(s) = parse_duration(&lower[i + marker.len()..]) {
                return Some(s);
            }
        }
    }
    None
}

/// Leading `<number><unit>` (`s`, `ms`, `m`, `seconds`, `minutes`; compound `1m30s`), rounded up.
fn parse_duration(s: &str) -> Option<u64> {
    let mut total_ms = 0f64;
    let mut rest = s;
    let mut any = false;
    loop {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 || !rest.starts_with(|c: char| c.is_ascii_digit()) {
            break;
        }
        let Ok(n) = rest[..num_len].trim_end_matches('.').parse::<f64>() else {
            break;
        };
        let unit = rest[num_len..].trim_start();
        let (mult, len) = if unit.starts_with("ms") || unit.starts_with("millisecond") {
            (
                1.0,
                unit.find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(unit.len()),
            )
        } else if unit.starts_with('m') {
            (
                60_000.0,
                unit.find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(unit.len()),
            )
        } else if unit.starts_with('s') {
            (
                1000.0,
                unit.find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(unit.len()),
            )
        } else if unit.starts_with('h') {
            (
                3_600_000.0,
                unit.find(|c: char| !c.is_ascii_alphabetic())
                    .unwrap_or(unit.len()),
            )
        } else if any {
            break;
        } else {
            (1000.0, 0)
        };
        total_ms += n * mult;
        any = true;
        rest = &unit[len..];
    }
    any.then(|| (total_ms / 1000.0).ceil().max(1.0) as u64)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The error as one event in the client's stream dialect, for when the stream breaks after the
/// first byte (upstream reset, idle timeout): Anthropic `event: error` with
/// `{"type":"error","error":{"type","message"}}`, OpenAI `data: {"error":{…}}` then
/// `data: [DONE]`, Gemini `data: {"error":{…}}`.
pub fn stream_error_event(client: Dialect, err: &ApiError) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + err.message.len());
    write_stream_error(&mut out, client, err);
    out
}

pub(crate) fn write_stream_error(out: &mut Vec<u8>, client: Dialect, err: &ApiError) {
    let body = err.body(client);
    match client {
        Dialect::Anthropic => sse::write_event(out, "error", &body),
        Dialect::OpenAi => {
            sse::write_data(out, &body);
            sse::write_data(out, b"[DONE]");
        }
        Dialect::Gemini => sse::write_data(out, &body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_529_is_overloaded_and_keeps_message() {
        let e = upstream_error(
            Dialect::Anthropic,
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert_eq!(e.message, "Overloaded");
        assert_eq!(e.status(Dialect::OpenAi), 503);
        assert_eq!(e.status(Dialect::Anthropic), 529);
    }

    #[test]
    fn gemini_unavailable_and_retry_info() {
        let body =
            br#"{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED",
            "details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}"#;
        let e = upstream_error(Dialect::Gemini, 429, body);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(37));
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        let e = upstream_error(
            Dialect::Gemini,
            503,
            br#"{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::Overloaded);
        assert_eq!(e.message, "The model is overloaded.");
        let e = upstream_error(
            Dialect::Gemini,
            400,
            br#"[{"error":{"code":400,"message":"bad","status":"INVALID_ARGUMENT"}}]"#,
        );
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::InvalidRequest, "bad")
        );
    }

    #[test]
    fn openai_rate_limit_text_retry_and_quota() {
        let e = upstream_error(
            Dialect::OpenAi,
            429,
            br#"{"error":{"message":"Rate limit reached. Please try again in 1.5s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after, Some(2));
        assert_eq!(e.code, Some("rate_limit_exceeded"));
        let e = upstream_error(
            Dialect::OpenAi,
            429,
            br#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::Billing);
        let e = upstream_error(
            Dialect::OpenAi,
            400,
            br#"{"error":{"message":"too long","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert_eq!(e.code, Some("context_length_exceeded"));
    }

    #[test]
    fn non_json_body_keeps_text_and_status() {
        let e = upstream_error(Dialect::OpenAi, 502, b"<html>Bad gateway</html>");
        assert_eq!(e.kind, ErrorKind::BadGateway);
        assert_eq!(e.message, "<html>Bad gateway</html>");
        let e = upstream_error(Dialect::OpenAi, 504, b"");
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert_eq!(e.message, "upstream answered HTTP 504");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s."), Some(20));
        assert_eq!(parse_duration("120ms"), Some(1));
        assert_eq!(parse_duration("1m30s"), Some(90));
        assert_eq!(parse_duration("30 seconds"), Some(30));
        assert_eq!(parse_duration("x"), None);
    }

    #[test]
    fn stream_error_shapes() {
        let e = ApiError::new(ErrorKind::Overloaded, "Overloaded");
        let a = String::from_utf8(stream_error_event(Dialect::Anthropic, &e)).unwrap();
        assert_eq!(
            a,
            "event: error\ndata: {\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\"},\"type\":\"error\"}\n\n"
        );
        let o = String::from_utf8(stream_error_event(Dialect::OpenAi, &e)).unwrap();
        assert!(o.starts_with("data: {\"error\":{"));
        assert!(o.ends_with("data: [DONE]\n\n"));
    }
}
