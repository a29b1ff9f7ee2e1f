use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::anthropic::HEADERS as AN;
use crate::client::{post, request, Client};
use crate::faults::wait_for;
use crate::gemini::KEY as GEM;
use crate::server;

const OA: &[(&str, &str)] = &[("authorization", "Bearer ok-http")];

fn chat(stream: bool) -> String {
    json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": stream})
        .to_string()
}

#[tokio::test]
async fn keep_alive_reuse() {
    let s = server().await;
    let mut c = Client::connect(s.addr).await;
    for i in 0..6 {
        let stream = i % 2 == 1;
        let r = c
            .request("POST", "/v1/chat/completions", OA, chat(stream).as_bytes())
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), None, "keep-alive is the default");
        if stream {
            assert!(r.text().ends_with("data: [DONE]\n\n"));
        } else {
            r.json();
        }
    }
    let body = json!({"model": "m", "max_tokens": 5, "messages": []}).to_string();
    let r = c
        .request("POST", "/v1/messages", AN, body.as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Errors keep the connection too.
    let r = c
        .request("POST", "/v1/chat/completions", &[], b"{}")
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = c.request("GET", "/nope", &[], b"").await.unwrap();
    assert_eq!(r.status, 404);
    let r = c
        .request("POST", "/v1/chat/completions", OA, chat(false).as_bytes())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(s.stats.requests(), 10);

    // Connection: close is honoured.
    let r = c
        .request(
            "POST",
            "/v1/chat/completions",
            &[OA[0], ("connection", "close")],
            chat(true).as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    assert_eq!(
        c.stream.read_to_end(&mut rest).await.unwrap(),
        0,
        "closed after the response"
    );
}

#[tokio::test]
async fn pipelined_requests() {
    let s = server().await;
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    let body = chat(false);
    let one = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer k\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    raw.write_all(format!("{one}{one}{one}").as_bytes())
        .await
        .unwrap();
    let mut c = Client::from_stream(raw);
    for _ in 0..3 {
        assert_eq!(c.read_response().await.unwrap().status, 200);
    }
}

#[tokio::test]
async fn chunked_request_body_and_expect() {
    let s = server().await;
    let body = chat(true);
    let (a, b) = body.split_at(10);
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer k\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut c = Client::from_stream(raw);
    let r = c.read_response().await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("data: [DONE]\n\n"));
    let rec = s.stats.last_request().unwrap();
    assert_eq!(rec.body().as_ref(), body.as_bytes(), "recorded de-chunked");

    // Expect: 100-continue gets an interim response before the body is sent.
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    let body = chat(false);
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nauthorization: Bearer k\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    raw.write_all(head.as_bytes()).await.unwrap();
    let mut buf = [0u8; 25];
    raw.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    raw.write_all(body.as_bytes()).await.unwrap();
    let mut c = Client::from_stream(raw);
    assert_eq!(c.read_response().await.unwrap().status, 200);
}

#[tokio::test]
async fn http10_close_delimited_stream() {
    let s = server().await;
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    let body = chat(true);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.0\r\nauthorization: Bearer k\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    raw.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    raw.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("HTTP/1.0 200 OK\r\n"));
    assert!(!text.contains("transfer-encoding"));
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn overrides() {
    let s = server().await;
    // x-mock-chunks
    let r = post(
        s.addr,
        "/v1/chat/completions",
        &[OA[0], ("x-mock-chunks", "3")],
        &serde_json::from_str(&chat(true)).unwrap(),
    )
    .await;
    let deltas = r.sse(false).len() - 3; // role, finish, [DONE]
    assert_eq!(deltas, 3);
    let body = json!({"model": "m", "max_tokens": 5, "messages": []});
    let v = post(
        s.addr,
        "/v1/messages",
        &[AN[0], AN[1], ("x-mock-chunks", "1")],
        &body,
    )
    .await
    .json();
    assert_eq!(v["content"][0]["text"], crate::OPENING);

    // x-mock-ttfb-ms
    let t = Instant::now();
    let r = post(
        s.addr,
        "/v1/messages",
        &[AN[0], AN[1], ("x-mock-ttfb-ms", "120")],
        &body,
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(120));

    // x-mock-chunk-delay-ms: events arrive spaced out.
    let mut c = Client::connect(s.addr).await;
    let h = &[
        OA[0],
        ("x-mock-chunk-delay-ms", "40"),
        ("x-mock-chunks", "2"),
    ];
    c.send("POST", "/v1/chat/completions", h, chat(true).as_bytes())
        .await
        .unwrap();
    c.read_head().await.unwrap();
    let t = Instant::now();
    let mut at = Vec::new();
    while c.next_chunk().await.unwrap().is_some() {
        at.push(t.elapsed());
    }
    assert_eq!(at.len(), 5, "role, 2 deltas, finish, [DONE]");
    assert!(
        at[0] < Duration::from_millis(35),
        "header and first event at once: {at:?}"
    );
    for w in at.windows(2) {
        assert!(w[1] - w[0] >= Duration::from_millis(35), "spaced: {at:?}");
    }
    // Gemini too.
    let body = json!({"contents": []});
    let h = &[GEM[0], ("x-mock-chunks", "4")];
    let r = post(
        s.addr,
        "/v1beta/models/g:streamGenerateContent?alt=sse",
        h,
        &body,
    )
    .await;
    assert_eq!(r.chunks.len(), 4);
}

#[tokio::test]
async fn config_defaults() {
    let cfg = ezrouter_mock::MockConfig {
        chunks: 2,
        chunk_delay: Duration::from_millis(20),
        ttfb: Duration::from_millis(300),
    };
    let s = ezrouter_mock::start("127.0.0.1:0", cfg).await.unwrap();
    let t = Instant::now();
    let r = request(s.addr, "POST", "/v1/chat/completions", OA, &chat(true)).await;
    let took = t.elapsed();
    assert_eq!(r.sse(false).len(), 5);
    assert!(took >= Duration::from_millis(300 + 4 * 20), "{took:?}");
    // Headers still override.
    let t = Instant::now();
    let h = &[
        OA[0],
        ("x-mock-ttfb-ms", "0"),
        ("x-mock-chunk-delay-ms", "0"),
    ];
    request(s.addr, "POST", "/v1/chat/completions", h, &chat(true)).await;
    assert!(t.elapsed() < Duration::from_millis(250));
}

#[tokio::test]
async fn malformed_json_and_unknown_paths() {
    let s = server().await;
    let r = request(s.addr, "POST", "/v1/chat/completions", OA, "{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = request(s.addr, "POST", "/v1/messages", AN, "[1,").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    assert_eq!(r.json()["type"], "error");
    let r = request(s.addr, "POST", "/v1/messages/count_tokens", AN, "").await;
    assert_eq!(r.status, 400);
    let r = request(
        s.addr,
        "POST",
        "/v1beta/models/g:generateContent",
        GEM,
        "nope",
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["status"], "INVALID_ARGUMENT");
    let r = request(s.addr, "POST", "/v1/embeddings", OA, "{").await;
    assert_eq!(r.status, 400);

    for (method, path) in [
        ("GET", "/"),
        ("POST", "/v1/completions"),
        ("GET", "/v1/chat/completions"),
        ("POST", "/v2/messages"),
    ] {
        let r = request(s.addr, method, path, OA, "").await;
        assert_eq!(r.status, 404, "{method} {path}");
        assert!(r.json()["error"]["message"].is_string());
    }
    let r = request(s.addr, "POST", "/v1/messages/batches", AN, "{}").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["type"], "not_found_error");
    // Garbage that is not HTTP: 400 and close.
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    raw.write_all(b"\x00\x01 nonsense\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    raw.read_to_end(&mut out).await.unwrap();
    assert!(out.starts_with(b"HTTP/1.1 400 "));
}

#[tokio::test]
async fn stats_and_request_ring() {
    let s = server().await;
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": "ring"}], "stream": false});
    let h = &[OA[0], ("x-custom", "abc")];
    post(s.addr, "/v1/chat/completions?x=1", h, &body).await;
    post(
        s.addr,
        "/v1/messages",
        AN,
        &json!({"model": "m", "max_tokens": 1, "messages": []}),
    )
    .await;
    post(
        s.addr,
        "/v1/messages",
        &[("x-api-key", "k2"), AN[1]],
        &json!({"model": "m", "max_tokens": 1, "messages": []}),
    )
    .await;
    assert_eq!(s.stats.requests(), 3);
    assert_eq!(s.stats.key_requests("ok-http"), 1);
    assert_eq!(s.stats.key_requests("ok-test"), 1);
    assert_eq!(s.stats.key_requests("k2"), 1);

    let recs = s.stats.recent_requests();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].method(), "POST");
    assert_eq!(recs[0].path(), "/v1/chat/completions?x=1");
    assert_eq!(recs[0].header("X-Custom").as_deref(), Some("abc"));
    assert_eq!(recs[0].body_json().unwrap(), body);
    assert!(recs[0]
        .headers()
        .iter()
        .any(|(k, v)| k == "authorization" && v == "Bearer ok-http"));

    // Over HTTP; /_mock/* requests are not counted.
    let v = request(s.addr, "GET", "/_mock/stats", &[], "").await.json();
    assert_eq!(v["requests"], 3);
    assert_eq!(v["keys"]["k2"], 1);
    assert_eq!(v["in_flight"], 0);
    assert_eq!(v["client_closed"], 0);
    assert_eq!(v["last_client_close_ms_ago"], Value::Null);
    let v = request(s.addr, "GET", "/_mock/requests", &[], "")
        .await
        .json();
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 3);
    assert_eq!(arr[0]["path"], "/v1/chat/completions?x=1");
    assert_eq!(arr[0]["headers"]["x-custom"], "abc");
    assert_eq!(arr[0]["json"], body);
    assert_eq!(arr[2]["headers"]["x-api-key"], "k2");
    assert_eq!(s.stats.requests(), 3);

    // The ring keeps the last 64.
    let mut c = Client::connect(s.addr).await;
    for i in 0..70 {
        let path = format!("/v1/chat/completions?i={i}");
        c.request("POST", &path, OA, chat(false).as_bytes())
            .await
            .unwrap();
    }
    let recs = s.stats.recent_requests();
    assert_eq!(recs.len(), ezrouter_mock::RING_SIZE);
    assert_eq!(recs.last().unwrap().path(), "/v1/chat/completions?i=69");
    assert_eq!(recs[0].path(), "/v1/chat/completions?i=6");

    let r = request(s.addr, "POST", "/_mock/reset", &[], "").await;
    assert_eq!(r.json(), json!({"ok": true}));
    assert_eq!(s.stats.requests(), 0);
    assert!(s.stats.recent_requests().is_empty());
    assert!(s.stats.per_key().is_empty());
    assert_eq!(
        request(s.addr, "GET", "/_mock/nope", &[], "").await.status,
        404
    );
}

#[tokio::test]
async fn max_in_flight() {
    let s = server().await;
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let addr = s.addr;
        tasks.push(tokio::spawn(async move {
            request(
                addr,
                "POST",
                "/v1/chat/completions",
                &[("authorization", "Bearer slow-150")],
                &chat(false),
            )
            .await
        }));
    }
    wait_for(|| s.stats.in_flight() == 4, Duration::from_millis(500)).await;
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert_eq!(s.stats.max_in_flight(), 4);
    assert_eq!(s.stats.in_flight(), 0);
    assert_eq!(s.stats.key_requests("slow-150"), 4);
    s.stats.reset();
    assert_eq!(s.stats.max_in_flight(), 0);
}

#[tokio::test]
async fn client_close_mid_stream_is_detected() {
    let s = server().await;
    for (path, headers, body) in [
        ("/v1/chat/completions", OA, chat(true)),
        (
            "/v1/messages",
            AN,
            json!({"model": "m", "max_tokens": 1, "messages": [], "stream": true}).to_string(),
        ),
        (
            "/v1beta/models/g:streamGenerateContent?alt=sse",
            GEM,
            json!({"contents": []}).to_string(),
        ),
    ] {
        let before = s.stats.client_closed();
        let mut c = Client::connect(s.addr).await;
        let mut h = headers.to_vec();
        h.push(("x-mock-chunk-delay-ms", "50"));
        h.push(("x-mock-chunks", "100"));
        c.send("POST", path, &h, body.as_bytes()).await.unwrap();
        assert_eq!(c.read_head().await.unwrap().status, 200);
        c.next_chunk().await.unwrap().unwrap();
        c.next_chunk().await.unwrap().unwrap();
        let dropped = Instant::now();
        drop(c);
        wait_for(
            || s.stats.client_closed() == before + 1,
            Duration::from_millis(100),
        )
        .await;
        let at = s.stats.last_client_close().unwrap();
        assert!(
            at >= dropped && at - dropped < Duration::from_millis(100),
            "{path}"
        );
        wait_for(|| s.stats.in_flight() == 0, Duration::from_millis(100)).await;
    }
    // A close during ttfb counts as well.
    let mut c = Client::connect(s.addr).await;
    c.send(
        "POST",
        "/v1/chat/completions",
        &[OA[0], ("x-mock-ttfb-ms", "5000")],
        chat(false).as_bytes(),
    )
    .await
    .unwrap();
    wait_for(|| s.stats.in_flight() == 1, Duration::from_millis(100)).await;
    drop(c);
    wait_for(|| s.stats.client_closed() == 4, Duration::from_millis(100)).await;
    let v = request(s.addr, "GET", "/_mock/stats", &[], "").await.json();
    assert_eq!(v["client_closed"], 4);
    assert!(v["last_client_close_ms_ago"].as_u64().unwrap() < 1000);
    // A close between keep-alive requests is not counted.
    let mut c = Client::connect(s.addr).await;
    c.request("POST", "/v1/chat/completions", OA, chat(true).as_bytes())
        .await
        .unwrap();
    drop(c);
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(s.stats.client_closed(), 4);
}
