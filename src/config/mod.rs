//! Configuration: one internal type ([`schema::File`]) that the TOML file parses into, checked as a
//! whole at load so that every mistake is reported with its path, before any request runs.

pub mod env;
pub mod schema;

use std::net::SocketAddr;
use std::path::Path;

pub use schema::File;
use schema::ProviderKind;

/// The default configuration, compiled in: `ezrouter serve` without `-c` runs on it.
pub const DEFAULT_CONFIG: &str = include_str!("../../conf/ezrouter.toml");

/// The client key the default config accepts. Only allowed on loopback listeners.
pub const DEV_KEY: &str = "ezr-local-dev";

/// One problem in a config file, with the path of the offending setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A validated config plus what was skipped on purpose (optional providers without keys).
#[derive(Debug)]
pub struct Loaded {
    pub file: File,
    pub notes: Vec<String>,
}

/// Reads `path` (or the built-in default), interpolates `${ENV}`, parses and validates.
pub fn load(path: Option<&Path>) -> Result<Loaded, Vec<Problem>> {
    let (origin, text) = match path {
        Some(p) => (
            p.display().to_string(),
            std::fs::read_to_string(p).map_err(|e| {
                vec![Problem {
                    path: p.display().to_string(),
                    message: e.to_string(),
                }]
            })?,
        ),
        None => ("<built-in default>".to_string(), DEFAULT_CONFIG.to_string()),
    };
    parse(&origin, &text, |name| std::env::var(name).ok())
}

/// Parses and validates config text; `env` resolves `${NAME}`.
pub fn parse(
    origin: &str,
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Loaded, Vec<Problem>> {
    let (text, _missing) = env::interpolate(text, env);
    let file: File = toml::from_str(&text).map_err(|e| {
        vec![Problem {
            path: origin.to_string(),
            message: e.to_string().trim().replace('\n', " | "),
        }]
    })?;
    validate(file)
}

fn problem(problems: &mut Vec<Problem>, path: impl Into<String>, message: impl Into<String>) {
    problems.push(Problem {
        path: path.into(),
        message: message.into(),
    });
}

fn is_loopback(addr: &str) -> bool {
    addr.parse::<SocketAddr>()
        .map(|a| a.ip().is_loopback())
        .unwrap_or(false)
}

/// Checks every cross-reference and value; drops optional providers whose keys are unset.
pub fn validate(mut file: File) -> Result<Loaded, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut notes = Vec::new();

    let s = &file.server;
    if s.listen.parse::<SocketAddr>().is_err() {
        problem(
            &mut problems,
            "server.listen",
            format!("`{}` is not an address like 127.0.0.1:8080", s.listen),
        );
    }
    if !s.admin_listen.is_empty() && s.admin_listen.parse::<SocketAddr>().is_err() {
        problem(
            &mut problems,
            "server.admin_listen",
            format!("`{}` is not an address", s.admin_listen),
        );
    }
    if s.threads == 0 {
        problem(&mut problems, "server.threads", "must be at least 1");
    }
    if s.max_attempts == 0 {
        problem(&mut problems, "server.max_attempts", "must be at least 1");
    }
    if s.max_body_bytes == 0 {
        problem(&mut problems, "server.max_body_bytes", "must be positive");
    }

    let mut skipped = Vec::new();
    for (name, p) in &file.providers {
        let at = format!("providers.{name}");
        if p.kind != ProviderKind::Mock {
            if p.keys.is_empty() {
                problem(
                    &mut problems,
                    format!("{at}.keys"),
                    "at least one upstream key is required",
                );
            }
            let empty = p.keys.iter().position(|k| k.spec().key.trim().is_empty());
            if let Some(i) = empty {
                if p.optional {
                    notes.push(format!(
                        "{at}: skipped (its key is not set in the environment)"
                    ));
                    skipped.push(name.clone());
                    continue;
                }
                problem(
                    &mut problems,
                    format!("{at}.keys[{i}]"),
                    "empty key (is its ${ENV} variable set?)",
                );
            }
        }
        if let Some(url) = &p.base_url {
            if let Err(e) = crate::upstream::BaseUrl::parse(url) {
                problem(&mut problems, format!("{at}.base_url"), e);
            }
        }
        let anthropic = p.kind == ProviderKind::Anthropic
            || p.dialect == Some(ezrouter_protocol::Dialect::Anthropic);
        if p.anthropic_betas.is_some() && !anthropic {
            problem(
                &mut problems,
                format!("{at}.anthropic_betas"),
                "only for providers that speak the Anthropic dialect",
            );
        }
        if let Err(e) = p.capabilities() {
            problem(&mut problems, format!("{at}.capabilities"), e);
        }
        if p.breaker.failures == 0 || p.queue.max_wait_ms == 0 && p.queue.max_len > 0 {
            problem(
                &mut problems,
                &at,
                "`breaker.failures` must be at least 1 and a queue needs `max_wait_ms`",
            );
        }
        let mock_only = p.dialect.is_some()
            || p.chunks.is_some()
            || p.chunk_delay_ms.is_some()
            || p.ttfb_ms.is_some();
        if mock_only && p.kind != ProviderKind::Mock {
            problem(
                &mut problems,
                &at,
                "`dialect`, `chunks`, `chunk_delay_ms` and `ttfb_ms` are for kind = \"mock\"",
            );
        }
        if p.dialect == Some(ezrouter_protocol::Dialect::Gemini) {
            problem(
                &mut problems,
                format!("{at}.dialect"),
                "the mock provider speaks `openai` or `anthropic`",
            );
        }
        for (h, v) in &p.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err()
                || http::HeaderValue::from_str(v).is_err()
            {
                problem(
                    &mut problems,
                    format!("{at}.headers.{h}"),
                    "not a valid HTTP header",
                );
            }
        }
        let t = &p.timeouts;
        if t.connect_ms == 0 || t.ttfb_ms == 0 || t.idle_ms == 0 || t.total_ms == 0 {
            problem(
                &mut problems,
                format!("{at}.timeouts"),
                "every timeout must be positive",
            );
        }
    }
    for name in &skipped {
        file.providers.remove(name);
    }

    let mut empty_models = Vec::new();
    for (id, m) in &mut file.models {
        let at = format!("models.{id}");
        if m.routes.is_empty() {
            problem(
                &mut problems,
                format!("{at}.routes"),
                "at least one route is required",
            );
        }
        for (i, plugin) in m.plugins.iter().enumerate() {
            if let Err(e) = plugin.build() {
                problem(&mut problems, format!("{at}.plugins[{i}]"), e);
            }
        }
        let before = m.routes.len();
        m.routes.retain(|r| !skipped.contains(&r.provider));
        if before > 0 && m.routes.is_empty() {
            empty_models.push(id.clone());
            continue;
        }
        for (i, r) in m.routes.iter().enumerate() {
            if !file.providers.contains_key(&r.provider) {
                problem(
                    &mut problems,
                    format!("{at}.routes[{i}].provider"),
                    format!("no provider named `{}`", r.provider),
                );
            }
        }
    }
    for id in empty_models {
        notes.push(format!(
            "models.{id}: skipped (all its providers were skipped)"
        ));
        file.models.remove(&id);
    }

    let mut ids = std::collections::HashSet::new();
    let public = !is_loopback(&file.server.listen);
    for (i, k) in file.keys.iter().enumerate() {
        let at = format!("keys[{i}]");
        if k.id.is_empty() || !ids.insert(k.id.as_str()) {
            problem(
                &mut problems,
                format!("{at}.id"),
                "ids must be non-empty and unique",
            );
        }
        match (&k.secret, &k.sha256) {
            (Some(s), None) if s.trim().is_empty() => problem(
                &mut problems,
                format!("{at}.secret"),
                "empty secret (is its ${ENV} variable set?)",
            ),
            (Some(s), None) if s == DEV_KEY && public => problem(
                &mut problems,
                format!("{at}.secret"),
                "the well-known development key is only accepted on a loopback `server.listen`",
            ),
            (None, Some(h)) if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                problem(
                    &mut problems,
                    format!("{at}.sha256"),
                    "must be 64 hex digits",
                )
            }
            (Some(_), None) | (None, Some(_)) => {}
            _ => problem(
                &mut problems,
                &at,
                "set exactly one of `secret` and `sha256`",
            ),
        }
        if k.models.iter().any(|g| g.is_empty()) {
            problem(&mut problems, format!("{at}.models"), "empty model glob");
        }
    }

    if problems.is_empty() {
        Ok(Loaded { file, notes })
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse("t", text, |_| None) {
            Ok(_) => vec![],
            Err(p) => p.into_iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn built_in_default_is_valid_without_environment() {
        let loaded = parse("default", DEFAULT_CONFIG, |_| None).expect("valid");
        assert!(loaded.file.providers.contains_key("mock"));
        assert!(loaded
            .file
            .providers
            .values()
            .all(|p| p.kind == ProviderKind::Mock));
        assert!(
            !loaded.notes.is_empty(),
            "real providers are skipped without keys"
        );
    }

    #[test]
    fn default_enables_providers_whose_key_is_set() {
        let env = |n: &str| (n == "OPENAI_API_KEY").then(|| "sk-test".to_string());
        let loaded = parse("default", DEFAULT_CONFIG, env).expect("valid");
        assert!(loaded.file.providers.contains_key("openai"));
        assert!(!loaded.file.providers.contains_key("anthropic"));
    }

    #[test]
    fn unknown_fields_are_errors() {
        let p = problems("[server]\nlisen = \"127.0.0.1:1\"\n");
        assert!(p[0].contains("unknown field `lisen`"), "{p:?}");
    }

    #[test]
    fn dangling_references_and_bad_values_have_paths() {
        let p = problems(
            r#"
            [server]
            listen = "nowhere"
            [providers.a]
            kind = "openai"
            keys = ["k"]
            base_url = "ftp://x"
            [models.m]
            routes = [{ provider = "b" }]
            [[keys]]
            id = "x"
            "#,
        );
        let joined = p.join("\n");
        for path in [
            "server.listen",
            "providers.a.base_url",
            "models.m.routes[0].provider",
            "keys[0]",
        ] {
            assert!(joined.contains(path), "missing {path} in:\n{joined}");
        }
    }

    #[test]
    fn dev_key_refused_on_public_listener() {
        let p = problems(&format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\n[[keys]]\nid = \"dev\"\nsecret = \"{DEV_KEY}\"\n"
        ));
        assert!(p.iter().any(|p| p.contains("keys[0].secret")), "{p:?}");
    }
}
