use std::io::ErrorKind;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{post, request, Client};
use crate::server;

#[derive(Clone, Copy, PartialEq, Debug)]
enum D {
    OpenAi,
    Anthropic,
    Gemini,
}

const ALL: [D; 3] = [D::OpenAi, D::Anthropic, D::Gemini];

impl D {
    fn path(self, stream: bool) -> &'static str {
        match (self, stream) {
            (D::OpenAi, _) => "/v1/chat/completions",
            (D::Anthropic, _) => "/v1/messages",
            (D::Gemini, false) => "/v1beta/models/g:generateContent",
            (D::Gemini, true) => "/v1beta/models/g:streamGenerateContent?alt=sse",
        }
    }

    fn body(self, stream: bool) -> Value {
        match self {
            D::OpenAi => {
                json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": stream})
            }
            D::Anthropic => {
                json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}], "stream": stream})
            }
            D::Gemini => json!({"contents": [{"parts": [{"text": "x"}]}]}),
        }
    }

    fn headers(self, key: &str) -> Vec<(String, String)> {
        match self {
            D::OpenAi => vec![("authorization".into(), format!("Bearer {key}"))],
            D::Anthropic => vec![
                ("x-api-key".into(), key.into()),
                ("anthropic-version".into(), "2023-06-01".into()),
            ],
            D::Gemini => vec![("x-goog-api-key".into(), key.into())],
        }
    }

    /// The machine-readable error type of the dialect's envelope.
    fn error_type(self, e: &Value, status: u16) -> String {
        match self {
            D::OpenAi => {
                let err = e["error"].as_object().expect("error object");
                for k in ["message", "type", "param", "code"] {
                    assert!(err.contains_key(k), "OpenAI envelope has {k}");
                }
                format!(
                    "{}/{}",
                    err["type"].as_str().unwrap(),
                    err["code"].as_str().unwrap_or("null")
                )
            }
            D::Anthropic => {
                assert_eq!(e["type"], "error");
                assert!(e["error"]["message"].is_string());
                e["error"]["type"].as_str().unwrap().to_string()
            }
            D::Gemini => {
                assert_eq!(e["error"]["code"], status);
                assert!(e["error"]["message"].is_string());
                e["error"]["status"].as_str().unwrap().to_string()
            }
        }
    }
}

fn h(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

async fn call(
    addr: std::net::SocketAddr,
    d: D,
    key: &str,
    stream: bool,
) -> crate::client::Response {
    post(addr, d.path(stream), &h(&d.headers(key)), &d.body(stream)).await
}

#[tokio::test]
async fn status_faults_in_each_envelope() {
    let s = server().await;
    let table: &[(&str, u16, [&str; 3])] = &[
        (
            "fail-401",
            401,
            [
                "invalid_request_error/invalid_api_key",
                "authentication_error",
                "UNAUTHENTICATED",
            ],
        ),
        (
            "fail-402",
            402,
            [
                "insufficient_quota/insufficient_quota",
                "billing_error",
                "RESOURCE_EXHAUSTED",
            ],
        ),
        (
            "fail-403",
            403,
            [
                "invalid_request_error/permission_denied",
                "permission_error",
                "PERMISSION_DENIED",
            ],
        ),
        (
            "fail-429-7",
            429,
            [
                "requests/rate_limit_exceeded",
                "rate_limit_error",
                "RESOURCE_EXHAUSTED",
            ],
        ),
        (
            "fail-500",
            500,
            ["server_error/null", "api_error", "INTERNAL"],
        ),
        (
            "fail-503",
            503,
            ["server_error/overloaded", "api_error", "UNAVAILABLE"],
        ),
        (
            "fail-529",
            529,
            ["server_error/overloaded", "overloaded_error", "UNAVAILABLE"],
        ),
    ];
    for d in ALL {
        for (key, status, types) in table {
            for stream in [false, true] {
                let r = call(s.addr, d, key, stream).await;
                assert_eq!(r.status, *status, "{d:?} {key}");
                assert_eq!(r.header("content-type"), Some("application/json"));
                let ty = d.error_type(&r.json(), *status);
                assert_eq!(ty, types[d as usize], "{d:?} {key}");
                if *status == 429 {
                    assert_eq!(r.header("retry-after"), Some("7"));
                } else {
                    assert_eq!(r.header("retry-after"), None);
                }
            }
        }
    }
    // Gemini's 429 carries RetryInfo; a non-SSE stream wraps errors in an array.
    let r = call(s.addr, D::Gemini, "fail-429-3", false).await;
    assert_eq!(r.json()["error"]["details"][0]["retryDelay"], "3s");
    let r = post(
        s.addr,
        "/v1beta/models/g:streamGenerateContent",
        &[("x-goog-api-key", "fail-500")],
        &D::Gemini.body(true),
    )
    .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()[0]["error"]["status"], "INTERNAL");
    // fail-429 without seconds → Retry-After: 1.
    assert_eq!(
        call(s.addr, D::OpenAi, "fail-429", false)
            .await
            .header("retry-after"),
        Some("1")
    );
    // Keys that are not scripts succeed.
    for key in ["ok", "sk-live-123", "fail-", "fail-abc", "slow-x"] {
        assert_eq!(
            call(s.addr, D::OpenAi, key, false).await.status,
            200,
            "{key}"
        );
    }
}

#[tokio::test]
async fn reset_after_n_events() {
    let s = server().await;
    for d in ALL {
        let mut c = Client::connect(s.addr).await;
        c.send(
            "POST",
            d.path(true),
            &h(&d.headers("fail-reset-2")),
            d.body(true).to_string().as_bytes(),
        )
        .await
        .unwrap();
        let head = c.read_head().await.unwrap();
        assert_eq!(head.status, 200);
        assert!(head.chunked);
        for _ in 0..2 {
            let chunk = c.next_chunk().await.unwrap().expect("an event");
            assert!(chunk.starts_with(b"data: ") || chunk.starts_with(b"event: "));
        }
        let err = c
            .next_chunk()
            .await
            .expect_err("connection reset after 2 events");
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{d:?}: {err}");
    }
    // Non-stream: the header and half the body, then a reset.
    let mut c = Client::connect(s.addr).await;
    let d = D::Anthropic;
    c.send(
        "POST",
        d.path(false),
        &h(&d.headers("fail-reset-1")),
        d.body(false).to_string().as_bytes(),
    )
    .await
    .unwrap();
    let err = c.read_response().await.expect_err("truncated body");
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    // fail-close: reset before any byte.
    let mut c = Client::connect(s.addr).await;
    let d = D::OpenAi;
    let r = c
        .request(
            "POST",
            d.path(false),
            &h(&d.headers("fail-close")),
            d.body(false).to_string().as_bytes(),
        )
        .await;
    assert!(r.is_err());
}

#[tokio::test]
async fn mid_stream_error() {
    let s = server().await;
    let r = call(s.addr, D::OpenAi, "fail-mid-2", true).await;
    assert_eq!(r.status, 200);
    let ev = r.sse(false);
    assert_eq!(ev.len(), 3);
    assert!(ev[2].json()["error"]["message"].is_string());
    assert!(ev.iter().all(|e| e.data != "[DONE]"));

    let r = call(s.addr, D::Anthropic, "fail-mid-3", true).await;
    let ev = r.sse(false);
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[3].event.as_deref(), Some("error"));
    assert_eq!(ev[3].json()["error"]["type"], "overloaded_error");

    let r = call(s.addr, D::Gemini, "fail-mid-1", true).await;
    let ev = crate::client::parse_sse(r.text(), true);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[1].json()["error"]["status"], "UNAVAILABLE");

    // JSON-array stream with no element yet: still valid JSON.
    let path = "/v1beta/models/g:streamGenerateContent";
    let r = post(
        s.addr,
        path,
        &[("x-goog-api-key", "fail-mid-0")],
        &D::Gemini.body(true),
    )
    .await;
    assert_eq!(r.json()[0]["error"]["code"], 503);
    let r = post(
        s.addr,
        path,
        &[("x-goog-api-key", "fail-mid-2")],
        &D::Gemini.body(true),
    )
    .await;
    let arr = r.json();
    assert_eq!(arr.as_array().unwrap().len(), 3);
    assert!(arr[2]["error"].is_object());

    // Non-stream: a plain 500.
    assert_eq!(
        call(s.addr, D::Anthropic, "fail-mid-1", false).await.status,
        500
    );
}

#[tokio::test]
async fn slow_and_hang() {
    let s = server().await;
    for d in ALL {
        let t = Instant::now();
        let r = call(s.addr, d, "slow-150", true).await;
        assert_eq!(r.status, 200);
        assert!(t.elapsed() >= Duration::from_millis(150), "{d:?}");
    }

    let d = D::Anthropic;
    let mut c = Client::connect(s.addr).await;
    c.send(
        "POST",
        d.path(true),
        &h(&d.headers("hang")),
        d.body(true).to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert!(
        c.silent_for(Duration::from_millis(300)).await,
        "hang sends nothing"
    );
    assert_eq!(s.stats.in_flight(), 1);
    assert_eq!(s.stats.client_closed(), 0);
    let dropped = Instant::now();
    drop(c);
    wait_for(|| s.stats.client_closed() == 1, Duration::from_millis(100)).await;
    let at = s.stats.last_client_close().unwrap();
    assert!(at >= dropped && at <= dropped + Duration::from_millis(100));
    wait_for(|| s.stats.in_flight() == 0, Duration::from_millis(100)).await;
}

/// Poll until `cond` holds, failing after `limit`.
pub async fn wait_for(cond: impl Fn() -> bool, limit: Duration) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "condition not met within {limit:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn seq_scripts() {
    let s = server().await;
    for d in ALL {
        let key = format!("seq-429,ok,fail-500-{d:?}");
        // The last step is "fail-500-OpenAi" etc.: status 500 (the suffix is ignored).
        let r = call(s.addr, d, &key, false).await;
        assert_eq!(r.status, 429);
        assert_eq!(r.header("retry-after"), Some("1"));
        assert_eq!(call(s.addr, d, &key, false).await.status, 200);
        assert_eq!(call(s.addr, d, &key, true).await.status, 500);
        assert_eq!(
            call(s.addr, d, &key, false).await.status,
            500,
            "cycles on the last"
        );
        assert_eq!(s.stats.key_requests(&key), 4);
    }
    let key = "seq-503,529,ok";
    let statuses = [503, 529, 200, 200];
    for want in statuses {
        assert_eq!(call(s.addr, D::Anthropic, key, false).await.status, want);
    }
    // Reset restarts the scripts.
    let r = request(s.addr, "POST", "/_mock/reset", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(call(s.addr, D::Anthropic, key, false).await.status, 503);
    // Steps may be other faults too.
    let key = "seq-reset-1,slow-50,ok";
    let mut c = Client::connect(s.addr).await;
    let d = D::OpenAi;
    let err = c
        .request(
            "POST",
            d.path(true),
            &h(&d.headers(key)),
            d.body(true).to_string().as_bytes(),
        )
        .await;
    assert!(err.is_err());
    let t = Instant::now();
    assert_eq!(call(s.addr, d, key, false).await.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(50));
}
