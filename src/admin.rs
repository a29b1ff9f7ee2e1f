//! The operators' port: `/metrics` for Prometheus and `/health`. A separate Pingora service, so
//! scrapes never compete with client traffic for the proxy's listener.

use async_trait::async_trait;
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

pub struct Admin;

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let (status, content_type, body) = match path.as_str() {
            "/metrics" => (200, "text/plain; version=0.0.4", crate::metrics::render()),
            "/health" | "/healthz" => {
                let body = format!(r#"{{"status":"ok","pid":{}}}"#, std::process::id());
                (200, "application/json", body.into_bytes())
            }
            _ => (
                404,
                "application/json",
                br#"{"error":"not found"}"#.to_vec(),
            ),
        };
        http::Response::builder()
            .status(status)
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::CONTENT_LENGTH, body.len())
            .body(body)
            .expect("static response parts are valid")
    }
}
