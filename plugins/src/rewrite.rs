//! Request body rewriting: per-model defaults, overrides and removals of top-level fields
//! (e.g. cap `max_tokens`, force a `temperature`, drop `logprobs`), configured per model.

use ezrouter_protocol::ApiError;
use serde_json::{Map, Value};

use crate::{Plugin, RequestCtx};

/// One change to a top-level field of the client's request body.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldEdit {
    /// Set the field, replacing what the client sent.
    Set(String, Value),
    /// Set the field only when the client did not send it.
    Default(String, Value),
    /// Remove the field.
    Remove(String),
}

/// Fields no rewrite may touch: routing and framing depend on them.
pub const PROTECTED: [&str; 3] = ["model", "messages", "stream"];

/// The `rewrite` plugin: adds its edits to every request of the models it is attached to.
pub struct Rewrite {
    edits: Vec<FieldEdit>,
}

impl Rewrite {
    /// Fails when an edit targets a protected field.
    pub fn new(edits: Vec<FieldEdit>) -> Result<Self, String> {
        for edit in &edits {
            let (FieldEdit::Set(f, _) | FieldEdit::Default(f, _) | FieldEdit::Remove(f)) = edit;
            if PROTECTED.contains(&f.as_str()) {
                return Err(format!("`{f}` cannot be rewritten"));
            }
        }
        Ok(Rewrite { edits })
    }
}

impl Plugin for Rewrite {
    fn name(&self) -> &'static str {
        "rewrite"
    }

    fn on_body(&self, req: &mut RequestCtx) -> Result<(), ApiError> {
        req.edits.extend(self.edits.iter().cloned());
        Ok(())
    }
}

/// Applies `edits` in order to a JSON object body.
pub fn apply_edits(body: &[u8], edits: &[FieldEdit]) -> Result<Vec<u8>, ApiError> {
    let mut object: Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("request body is not a JSON object: {e}")))?;
    for edit in edits {
        match edit {
            FieldEdit::Set(field, value) => {
                object.insert(field.clone(), value.clone());
            }
            FieldEdit::Default(field, value) => {
                object.entry(field.clone()).or_insert_with(|| value.clone());
            }
            FieldEdit::Remove(field) => {
                object.remove(field);
            }
        }
    }
    Ok(serde_json::to_vec(&object).expect("a map serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_default_and_remove() {
        let body = br#"{"model":"m","messages":[],"temperature":1.5,"logprobs":true}"#;
        let edits = [
            FieldEdit::Set("temperature".into(), json!(0.2)),
            FieldEdit::Default("max_tokens".into(), json!(256)),
            FieldEdit::Default("temperature".into(), json!(0.9)),
            FieldEdit::Remove("logprobs".into()),
        ];
        let out: Value = serde_json::from_slice(&apply_edits(body, &edits).unwrap()).unwrap();
        assert_eq!(
            out,
            json!({"model":"m","messages":[],"temperature":0.2,"max_tokens":256})
        );
    }

    #[test]
    fn protected_fields_are_refused_at_construction() {
        assert!(Rewrite::new(vec![FieldEdit::Remove("model".into())]).is_err());
        let plugin = Rewrite::new(vec![FieldEdit::Set("top_p".into(), json!(1))]).unwrap();
        let mut req = RequestCtx::new(ezrouter_protocol::Dialect::OpenAi);
        plugin.on_body(&mut req).unwrap();
        assert_eq!(req.edits.len(), 1);
    }
}
