//! Client authentication: `Authorization: Bearer` on every surface, `x-api-key` also on the
//! Anthropic one (its SDK's default; Claude Code may send either).

use std::sync::Arc;

use ezrouter_protocol::{ApiError, Dialect, ErrorKind};
use http::HeaderMap;

use crate::{KeyStore, Plugin, RequestCtx};

pub struct Auth {
    keys: Arc<KeyStore>,
}

impl Auth {
    pub fn new(keys: Arc<KeyStore>) -> Self {
        Auth { keys }
    }
}

fn presented_secret(headers: &HeaderMap, surface: Dialect) -> Option<&[u8]> {
    if surface == Dialect::Anthropic {
        if let Some(v) = headers.get("x-api-key") {
            return Some(v.as_bytes().trim_ascii());
        }
    }
    let v = headers.get(http::header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

impl Plugin for Auth {
    fn name(&self) -> &'static str {
        "auth"
    }

    fn on_request(&self, headers: &HeaderMap, req: &mut RequestCtx) -> Result<(), ApiError> {
        let secret = presented_secret(headers, req.surface)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                let how = match req.surface {
                    Dialect::Anthropic => "an `x-api-key` header or `Authorization: Bearer <key>`",
                    _ => "an `Authorization: Bearer <key>` header",
                };
                ApiError::new(
                    ErrorKind::Authentication,
                    format!("Missing API key: send {how}."),
                )
                .with_code("missing_api_key")
            })?;
        let key = self.keys.find(secret).ok_or_else(|| {
            ApiError::new(ErrorKind::Authentication, "Invalid API key.")
                .with_code("invalid_api_key")
        })?;
        req.client = Some(key.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::sha256;
    use crate::{ClientKey, Glob};

    fn auth() -> Auth {
        Auth::new(Arc::new(KeyStore::new([ClientKey {
            id: "k1".into(),
            secret_sha256: sha256(b"sk-1"),
            models: vec![Glob::Any],
        }])))
    }

    fn run(surface: Dialect, headers: &[(&'static str, &str)]) -> Result<String, ApiError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        let mut req = RequestCtx::new(surface);
        auth().on_request(&map, &mut req)?;
        Ok(req.client.unwrap().id.to_string())
    }

    #[test]
    fn bearer_on_both_surfaces_and_x_api_key_on_anthropic() {
        assert_eq!(
            run(Dialect::OpenAi, &[("authorization", "Bearer sk-1")]).unwrap(),
            "k1"
        );
        assert_eq!(
            run(Dialect::Anthropic, &[("authorization", "bearer  sk-1")]).unwrap(),
            "k1"
        );
        assert_eq!(
            run(Dialect::Anthropic, &[("x-api-key", "sk-1")]).unwrap(),
            "k1"
        );
        assert!(
            run(Dialect::OpenAi, &[("x-api-key", "sk-1")]).is_err(),
            "x-api-key is Anthropic's"
        );
    }

    #[test]
    fn missing_and_wrong_keys_are_401() {
        let missing = run(Dialect::OpenAi, &[]).unwrap_err();
        assert_eq!(
            (missing.kind, missing.code),
            (ErrorKind::Authentication, Some("missing_api_key"))
        );
        let wrong = run(Dialect::OpenAi, &[("authorization", "Bearer sk-2")]).unwrap_err();
        assert_eq!(wrong.code, Some("invalid_api_key"));
        assert!(run(Dialect::OpenAi, &[("authorization", "Basic sk-1")]).is_err());
    }
}
