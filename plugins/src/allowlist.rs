//! Model allowlist: a client key may only use the models its globs match.

use ezrouter_protocol::{ApiError, ErrorKind};

use crate::{Plugin, RequestCtx};

pub struct ModelAllowlist;

impl Plugin for ModelAllowlist {
    fn name(&self) -> &'static str {
        "model_allowlist"
    }

    fn on_body(&self, req: &mut RequestCtx) -> Result<(), ApiError> {
        let (Some(client), Some(model)) = (&req.client, &req.model) else {
            return Ok(());
        };
        if client.allows(model) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "The API key `{}` is not allowed to use model `{model}`.",
                    client.id
                ),
            )
            .with_code("model_not_allowed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use ezrouter_protocol::Dialect;

    use super::*;
    use crate::{ClientKey, Glob};

    #[test]
    fn denies_models_outside_the_globs() {
        let mut req = RequestCtx::new(Dialect::OpenAi);
        req.client = Some(Arc::new(ClientKey {
            id: "k".into(),
            secret_sha256: [0; 32],
            models: vec![Glob::new("gpt-*")],
        }));
        req.model = Some("gpt-4o".into());
        assert!(ModelAllowlist.on_body(&mut req).is_ok());
        req.model = Some("claude-x".into());
        let err = ModelAllowlist.on_body(&mut req).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(err.message.contains("claude-x"));
    }
}
