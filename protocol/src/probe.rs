//! The pass-through fast path: read the few fields the gateway needs from a client body without
//! building a JSON tree, and rewrite the body by splicing bytes.
//!
//! `serde_json` still checks the syntax of the whole document (ignored fields are skipped by a
//! validating parser), so a malformed body is rejected here, once, with a 400 naming the field.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::ApiError;

/// What kind of request a body belongs to; decides the required fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// OpenAI `chat/completions`: `model` and `messages`.
    ChatCompletions,
    /// Anthropic `messages`: `model`, `messages` and `max_tokens`.
    Messages,
    /// Anthropic `messages/count_tokens`: `model` and `messages`.
    CountTokens,
    /// OpenAI `embeddings`: `model` and `input`.
    Embeddings,
}

#[derive(Deserialize)]
struct Fields<'a> {
    #[serde(borrow)]
    model: Option<&'a RawValue>,
    #[serde(borrow)]
    messages: Option<&'a RawValue>,
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    #[serde(borrow)]
    stream_options: Option<&'a RawValue>,
    #[serde(borrow)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow)]
    input: Option<&'a RawValue>,
    #[serde(borrow)]
    user: Option<&'a RawValue>,
    #[serde(borrow)]
    metadata: Option<&'a RawValue>,
}

/// The fields of a client request that routing and accounting need, borrowed from the body.
#[derive(Debug)]
pub struct Probe<'a> {
    pub model: Cow<'a, str>,
    pub stream: bool,
    /// The client asked for the usage chunk (`stream_options.include_usage: true`).
    pub include_usage: bool,
    /// The end user: OpenAI `user` or Anthropic `metadata.user_id`.
    pub end_user: Option<String>,
    model_span: Range<usize>,
    stream_options: Option<Range<usize>>,
}

fn span_of(body: &[u8], raw: &RawValue) -> Range<usize> {
    // A borrowed RawValue is a slice of `body`: its offset is the pointer difference.
    let start = raw.get().as_ptr() as usize - body.as_ptr() as usize;
    start..start + raw.get().len()
}

fn first_byte(raw: &RawValue) -> u8 {
    raw.get().as_bytes().first().copied().unwrap_or(b' ')
}

fn syntax_error(e: serde_json::Error) -> ApiError {
    // serde's messages name the field for type errors ("invalid type ... for key `model`"),
    // and the position for syntax errors.
    ApiError::invalid(format!("request body is not valid JSON: {e}"))
}

/// Reads the routing fields of `body`, checking the required ones for `op`.
pub fn probe(op: Operation, body: &[u8]) -> Result<Probe<'_>, ApiError> {
    let text =
        crate::utf8(body).map_err(|_| ApiError::invalid("request body is not valid UTF-8"))?;
    if !text.trim_start().starts_with('{') {
        return Err(ApiError::invalid("request body must be a JSON object"));
    }
    let fields: Fields = serde_json::from_str(text).map_err(syntax_error)?;

    let model_raw = fields
        .model
        .ok_or_else(|| ApiError::invalid_param("model", "`model` is required"))?;
    let model: Cow<str> = serde_json::from_str(model_raw.get())
        .map_err(|_| ApiError::invalid_param("model", "`model` must be a string"))?;
    if model.is_empty() {
        return Err(ApiError::invalid_param(
            "model",
            "`model` must not be empty",
        ));
    }

    match op {
        Operation::ChatCompletions | Operation::Messages | Operation::CountTokens => {
            let messages = fields
                .messages
                .ok_or_else(|| ApiError::invalid_param("messages", "`messages` is required"))?;
            if first_byte(messages) != b'[' {
                return Err(ApiError::invalid_param(
                    "messages",
                    "`messages` must be an array",
                ));
            }
        }
        Operation::Embeddings => {
            let input = fields
                .input
                .ok_or_else(|| ApiError::invalid_param("input", "`input` is required"))?;
            if !matches!(first_byte(input), b'"' | b'[') {
                return Err(ApiError::invalid_param(
                    "input",
                    "`input` must be a string or an array",
                ));
            }
        }
    }
    if op == Operation::Messages {
        let max_tokens = fields
            .max_tokens
            .ok_or_else(|| ApiError::invalid_param("max_tokens", "`max_tokens` is required"))?;
        if !max_tokens.get().bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::invalid_param(
                "max_tokens",
                "`max_tokens` must be a non-negative integer",
            ));
        }
    }

    let stream = match fields.stream.map(RawValue::get) {
        None | Some("null") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stream",
                "`stream` must be a boolean",
            ))
        }
    };
    let include_usage = match fields.stream_options {
        Some(raw) if first_byte(raw) == b'{' => {
            #[derive(Deserialize)]
            struct StreamOptions {
                include_usage: Option<bool>,
            }
            serde_json::from_str::<StreamOptions>(raw.get())
                .map_err(|_| {
                    ApiError::invalid_param("stream_options.include_usage", "must be a boolean")
                })?
                .include_usage
                .unwrap_or(false)
        }
        Some(raw) if raw.get() == "null" => false,
        Some(_) => {
            return Err(ApiError::invalid_param(
                "stream_options",
                "`stream_options` must be an object",
            ))
        }
        None => false,
    };
    let end_user = end_user(fields.user, fields.metadata);

    Ok(Probe {
        model_span: span_of(body, model_raw),
        stream_options: fields.stream_options.map(|raw| span_of(body, raw)),
        model,
        stream,
        include_usage,
        end_user,
    })
}

fn end_user(user: Option<&RawValue>, metadata: Option<&RawValue>) -> Option<String> {
    if let Some(user) = user.and_then(|raw| serde_json::from_str::<String>(raw.get()).ok()) {
        return Some(user);
    }
    #[derive(Deserialize)]
    struct Metadata {
        user_id: Option<String>,
    }
    metadata
        .and_then(|raw| serde_json::from_str::<Metadata>(raw.get()).ok())
        .and_then(|m| m.user_id)
}

impl Probe<'_> {
    /// The body with `model` replaced by `upstream_model` and, when `request_usage` is set on a
    /// streaming request, `stream_options.include_usage: true` added. Borrows when nothing changes.
    pub fn rewrite<'b>(
        &self,
        body: &'b [u8],
        upstream_model: &str,
        request_usage: bool,
    ) -> Cow<'b, [u8]> {
        let add_usage = request_usage && self.stream && !self.include_usage;
        if upstream_model == self.model && !add_usage {
            return Cow::Borrowed(body);
        }
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::with_capacity(2);
        if upstream_model != self.model {
            edits.push((
                self.model_span.clone(),
                serde_json::to_vec(upstream_model).expect("a str serializes"),
            ));
        }
        if add_usage {
            match &self.stream_options {
                Some(span) if body[span.start] == b'{' => {
                    let mut options: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_slice(&body[span.clone()]).expect("probed as an object");
                    options.insert("include_usage".into(), serde_json::Value::Bool(true));
                    edits.push((
                        span.clone(),
                        serde_json::to_vec(&options).expect("a map serializes"),
                    ));
                }
                Some(span) => edits.push((span.clone(), br#"{"include_usage":true}"#.to_vec())),
                None => {
                    let open = body
                        .iter()
                        .position(|&b| b == b'{')
                        .expect("probed as an object")
                        + 1;
                    let empty =
                        body[open..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'}');
                    let insert: &[u8] = if empty {
                        br#""stream_options":{"include_usage":true}"#
                    } else {
                        br#""stream_options":{"include_usage":true},"#
                    };
                    edits.push((open..open, insert.to_vec()));
                }
            }
        }
        edits.sort_by_key(|(range, _)| range.start);
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut at = 0;
        for (range, bytes) in edits {
            out.extend_from_slice(&body[at..range.start]);
            out.extend_from_slice(&bytes);
            at = range.end;
        }
        out.extend_from_slice(&body[at..]);
        Cow::Owned(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn rewritten(body: &str, model: &str, usage: bool) -> Value {
        let p = probe(Operation::ChatCompletions, body.as_bytes()).unwrap();
        serde_json::from_slice(&p.rewrite(body.as_bytes(), model, usage)).unwrap()
    }

    #[test]
    fn reads_model_stream_and_user() {
        let body = br#"{"model":"gpt-x","messages":[],"stream":true,"user":"u1"}"#;
        let p = probe(Operation::ChatCompletions, body).unwrap();
        assert_eq!(p.model, "gpt-x");
        assert!(p.stream && !p.include_usage);
        assert_eq!(p.end_user.as_deref(), Some("u1"));
    }

    #[test]
    fn escaped_model_is_decoded_and_replaced_whole() {
        let v = rewritten(r#"{"messages":[],"model":"a\"b"}"#, "up", false);
        assert_eq!(v, json!({"messages":[],"model":"up"}));
    }

    #[test]
    fn same_model_without_usage_borrows() {
        let body = br#"{"model":"m","messages":[]}"#;
        let p = probe(Operation::ChatCompletions, body).unwrap();
        assert!(
            matches!(p.rewrite(body, "m", true), Cow::Borrowed(_)),
            "not streaming: no usage option"
        );
    }

    #[test]
    fn adds_include_usage_to_streams() {
        let v = rewritten(r#"{"model":"m","messages":[],"stream":true}"#, "m2", true);
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        assert_eq!(v["model"], "m2");
        let v = rewritten(
            r#"{"model":"m","stream":true,"messages":[],"stream_options":{"x":1}}"#,
            "m",
            true,
        );
        assert_eq!(v["stream_options"], json!({"x":1,"include_usage": true}));
    }

    #[test]
    fn missing_and_mistyped_fields_name_the_param() {
        let cases: &[(Operation, &str, &str)] = &[
            (Operation::ChatCompletions, r#"{"messages":[]}"#, "model"),
            (
                Operation::ChatCompletions,
                r#"{"model":3,"messages":[]}"#,
                "model",
            ),
            (Operation::ChatCompletions, r#"{"model":"m"}"#, "messages"),
            (
                Operation::ChatCompletions,
                r#"{"model":"m","messages":"hi"}"#,
                "messages",
            ),
            (
                Operation::ChatCompletions,
                r#"{"model":"m","messages":[],"stream":"yes"}"#,
                "stream",
            ),
            (
                Operation::Messages,
                r#"{"model":"m","messages":[]}"#,
                "max_tokens",
            ),
            (
                Operation::Messages,
                r#"{"model":"m","messages":[],"max_tokens":"9"}"#,
                "max_tokens",
            ),
            (Operation::Embeddings, r#"{"model":"m"}"#, "input"),
        ];
        for (op, body, param) in cases {
            let err = probe(*op, body.as_bytes()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(*param), "{body}");
        }
    }

    #[test]
    fn malformed_json_is_rejected() {
        for body in [
            r#"{"model":"m","messages":[}"#,
            "[]",
            "",
            r#"{"model":"m","model":"n","messages":[]}"#,
        ] {
            assert!(
                probe(Operation::ChatCompletions, body.as_bytes()).is_err(),
                "{body}"
            );
        }
    }
}
