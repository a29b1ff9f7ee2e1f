//! The operators' port: `/metrics` for Prometheus and `/health`. Served on its own listener and
//! thread, so scrapes never compete with client traffic for the proxy's workers.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_core::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;

use crate::gateway::next_request;

pub struct Admin;

impl Admin {
    /// Status, content type and body for `path`.
    fn answer(path: &str) -> (u16, &'static str, Vec<u8>) {
        match path {
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
        }
    }
}

#[async_trait]
impl HttpServerApp for Admin {
    /// One request, then the connection back for the next: a scraper's keep-alive connection is
    /// closed when the server shuts down, not waited for (`next_request`).
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !next_request(&mut session, shutdown).await {
            return None;
        }
        if *shutdown.borrow() {
            session.set_keepalive(None);
        }
        let (status, content_type, body) = Self::answer(session.req_header().uri.path());
        let mut header = ResponseHeader::build(status, Some(4)).ok()?;
        header
            .insert_header(http::header::CONTENT_TYPE, content_type)
            .ok()?;
        header
            .insert_header(http::header::CONTENT_LENGTH, body.len())
            .ok()?;
        session.write_response_header(Box::new(header)).await.ok()?;
        session
            .write_response_body(Bytes::from(body), true)
            .await
            .ok()?;
        let settings = HttpPersistentSettings::for_session(&session);
        let reusable = session.finish().await.ok()??;
        Some(ReusedHttpStream::from_reusable_stream(reusable, settings))
    }
}
