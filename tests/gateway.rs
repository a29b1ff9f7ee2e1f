//! Issue 2: both API surfaces through the real binary, over real sockets, against the mock
//! upstream speaking each provider's wire format.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{Gateway, SERVER};
use serde_json::{json, Value};

const KEY: &str = "sk-test-1";
const NARROW_KEY: &str = "sk-narrow";

fn config(mock: std::net::SocketAddr, extra: &str) -> String {
    format!(
        r#"{SERVER}
max_body_bytes = 2000000
[providers.oai]
kind = "openai"
base_url = "http://{mock}/v1"
keys = ["ok-oai"]
[providers.ant]
kind = "anthropic"
base_url = "http://{mock}"
keys = ["ok-ant"]
[providers.ant-compatible]
kind = "anthropic"
base_url = "http://{mock}"
keys = ["ok-compat"]
anthropic_betas = ["interleaved-thinking-2025-05-14"]
[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
keys = ["ok"]
timeouts = {{ connect_ms = 500 }}
[providers.slow]
kind = "openai"
base_url = "http://{mock}/v1"
keys = ["slow-3000"]
timeouts = {{ ttfb_ms = 300 }}
[providers.paced]
kind = "openai"
base_url = "http://{mock}/v1"
keys = ["ok"]
headers = {{ "x-mock-chunks" = "3", "x-mock-chunk-delay-ms" = "700" }}
[models.paced]
routes = [{{ provider = "paced" }}]
[models.gpt]
routes = [{{ provider = "oai", model = "up-gpt" }}]
[models.claude]
routes = [{{ provider = "ant", model = "up-claude" }}]
[models.compat]
routes = [{{ provider = "ant-compatible" }}]
[models.tuned]
routes = [{{ provider = "oai", model = "up-gpt" }}]
plugins = [{{ kind = "rewrite", set = {{ temperature = 0.2 }}, default = {{ max_tokens = 77 }}, remove = ["logprobs"] }}]
[models.unreachable]
routes = [{{ provider = "down" }}]
[models.sluggish]
routes = [{{ provider = "slow" }}]
[[keys]]
id = "full"
secret = "{KEY}"
[[keys]]
id = "narrow"
secret = "{NARROW_KEY}"
models = ["gpt"]
{extra}"#
    )
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn chat(stream: bool) -> Value {
    json!({"model": "gpt", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(stream: bool) -> Value {
    json!({"model": "claude", "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

async fn last_upstream_request(mock: &ezrouter_mock::MockServer) -> Value {
    let mut c = common::Client::new(mock.addr);
    let r = c.get("/_mock/requests", &[]).await;
    r.json()
        .as_array()
        .and_then(|a| a.last().cloned())
        .expect("the mock saw a request")
}

#[tokio::test]
async fn openai_surface_json_and_stream() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let auth = bearer(KEY);

    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &chat(false),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let body = r.json();
    assert_eq!(body["object"], "chat.completion");
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());

    let seen = last_upstream_request(&mock).await;
    let sent: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["model"], "up-gpt",
        "the model is renamed to the upstream name"
    );
    let headers = seen["headers"].to_string().to_lowercase();
    assert!(
        headers.contains("bearer ok-oai"),
        "upstream key inserted: {headers}"
    );
    assert!(!headers.contains(KEY), "client credential stripped");

    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &chat(true),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/event-stream"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("x-accel-buffering"), Some("no"));
    let events = r.events();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    let first: Value = serde_json::from_str(&events[0].1).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(
        events.iter().all(|(_, d)| d == "[DONE]"
            || !serde_json::from_str::<Value>(d).unwrap()["choices"]
                .as_array()
                .unwrap()
                .is_empty()),
        "the usage chunk the gateway asked for is not forwarded to a client that did not ask"
    );
    assert_eq!(c.connections, 1, "keep-alive across requests");
}

#[tokio::test]
async fn anthropic_surface_json_and_stream_with_headers_forwarded() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let h = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "interleaved-thinking-2025-05-14"),
    ];

    let r = c
        .post_json("/anthropic/v1/messages", &h, &messages(false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    let seen = last_upstream_request(&mock).await;
    let headers = seen["headers"].to_string().to_lowercase();
    assert!(
        headers.contains("interleaved-thinking-2025-05-14"),
        "anthropic-beta forwarded: {headers}"
    );
    assert!(headers.contains("ok-ant") && !headers.contains(KEY));

    // Claude Code's spelling: bare /v1/messages with ?beta=true and a Bearer token.
    let auth = bearer(KEY);
    let r = c
        .post_json(
            "/v1/messages?beta=true",
            &[
                ("authorization", &auth),
                ("anthropic-version", "2023-06-01"),
            ],
            &messages(true),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.events();
    let names: Vec<_> = events.iter().filter_map(|(n, _)| n.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    assert!(
        events.iter().all(|(n, _)| n.is_some()),
        "every Anthropic event has its event: line"
    );
}

#[tokio::test]
async fn models_are_listed_per_allowlist_on_both_surfaces() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let ids = |v: &Value| -> Vec<String> {
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = c
        .get("/v1/models", &[("authorization", &bearer(KEY))])
        .await;
    assert_eq!(
        ids(&all.json()),
        [
            "claude",
            "compat",
            "gpt",
            "paced",
            "sluggish",
            "tuned",
            "unreachable"
        ]
    );
    let narrow = c
        .get("/v1/models", &[("authorization", &bearer(NARROW_KEY))])
        .await;
    assert_eq!(ids(&narrow.json()), ["gpt"]);
    let anthropic = c.get("/anthropic/v1/models", &[("x-api-key", KEY)]).await;
    assert_eq!(anthropic.json()["data"][0]["type"], "model");
}

/// Every client error, in each surface's envelope, on one keep-alive connection.
/// An OpenAI-surface error case: status, path, headers, body, error type.
type OpenAiCase<'a> = (u16, &'a str, Vec<(&'a str, &'a str)>, Vec<u8>, &'a str);
/// An Anthropic-surface error case: status, headers, body, error type.
type AnthropicCase<'a> = (u16, Vec<(&'a str, &'a str)>, Value, &'a str);

#[tokio::test]
async fn errors_in_the_callers_envelope_and_the_connection_survives() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let auth = bearer(KEY);
    let narrow = bearer(NARROW_KEY);

    let openai_cases: Vec<OpenAiCase> = vec![
        (
            401,
            "/v1/chat/completions",
            vec![],
            serde_json::to_vec(&chat(false)).unwrap(),
            "authentication_error",
        ),
        (
            401,
            "/v1/chat/completions",
            vec![("authorization", "Bearer nope")],
            serde_json::to_vec(&chat(false)).unwrap(),
            "authentication_error",
        ),
        (
            403,
            "/v1/chat/completions",
            vec![("authorization", &narrow)],
            serde_json::to_vec(&json!({"model":"claude","messages":[]})).unwrap(),
            "invalid_request_error",
        ),
        (
            404,
            "/v1/chat/completions",
            vec![("authorization", &auth)],
            serde_json::to_vec(&json!({"model":"nope","messages":[]})).unwrap(),
            "invalid_request_error",
        ),
        (
            404,
            "/v1/nothing-here",
            vec![("authorization", &auth)],
            b"{}".to_vec(),
            "invalid_request_error",
        ),
        (
            400,
            "/v1/chat/completions",
            vec![("authorization", &auth)],
            b"{\"model\": ".to_vec(),
            "invalid_request_error",
        ),
        (
            400,
            "/v1/chat/completions",
            vec![("authorization", &auth)],
            br#"{"model":"gpt"}"#.to_vec(),
            "invalid_request_error",
        ),
        (
            400,
            "/v1/chat/completions",
            vec![("authorization", &auth)],
            br#"{"model":"gpt","messages":{}}"#.to_vec(),
            "invalid_request_error",
        ),
    ];
    for (status, path, headers, body, kind) in openai_cases {
        let r = c.request("POST", path, &headers, &body).await;
        assert_eq!(r.status, status, "{path} {}", r.text());
        let v = r.json();
        assert_eq!(v["error"]["type"], kind, "{v}");
        for field in ["message", "type", "param", "code"] {
            assert!(
                v["error"].get(field).is_some(),
                "OpenAI envelope lacks {field}: {v}"
            );
        }
    }
    let missing = c
        .request(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            br#"{"model":"gpt"}"#,
        )
        .await;
    assert_eq!(missing.json()["error"]["param"], "messages");

    let anthropic_cases: Vec<AnthropicCase> = vec![
        (401, vec![], messages(false), "authentication_error"),
        (
            403,
            vec![("x-api-key", NARROW_KEY)],
            messages(false),
            "permission_error",
        ),
        (
            404,
            vec![("x-api-key", KEY)],
            json!({"model":"nope","max_tokens":1,"messages":[]}),
            "not_found_error",
        ),
        (
            400,
            vec![("x-api-key", KEY)],
            json!({"model":"claude","messages":[]}),
            "invalid_request_error",
        ),
    ];
    for (status, headers, body, kind) in anthropic_cases {
        let r = c.post_json("/anthropic/v1/messages", &headers, &body).await;
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert_eq!(
            (v["type"].as_str(), v["error"]["type"].as_str()),
            (Some("error"), Some(kind)),
            "{v}"
        );
    }

    let ok = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &chat(false),
        )
        .await;
    assert_eq!(ok.status, 200);
    assert_eq!(c.connections, 1, "every error kept the connection alive");
}

#[tokio::test]
async fn upstream_unreachable_is_502_and_slow_upstream_is_504() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let auth = bearer(KEY);
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &json!({"model":"unreachable","messages":[]}),
        )
        .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["type"], "server_error");
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &json!({"model":"sluggish","messages":[]}),
        )
        .await;
    assert_eq!(r.status, 504, "{}", r.text());
    let r = c
        .post_json(
            "/anthropic/v1/messages",
            &[("x-api-key", KEY)],
            &json!({"model":"sluggish","max_tokens":1,"messages":[]}),
        )
        .await;
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["error"]["type"], "timeout_error");
}

#[tokio::test]
async fn bodies_over_one_mebibyte_pass_and_over_the_cap_are_413() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let auth = bearer(KEY);
    let big = "x".repeat(1_500_000);
    let body = json!({"model":"gpt","messages":[{"role":"user","content": big}]});
    let r = c
        .post_json("/v1/chat/completions", &[("authorization", &auth)], &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = last_upstream_request(&mock).await;
    assert!(
        seen["body"].as_str().unwrap().len() > 1_500_000,
        "the whole body reached the upstream"
    );

    let huge = json!({"model":"gpt","messages":[{"role":"user","content": "y".repeat(2_100_000)}]});
    let r = c
        .post_json("/v1/chat/completions", &[("authorization", &auth)], &huge)
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
}

/// The first chunk reaches the client while the upstream is still pausing before the second.
#[tokio::test]
async fn stream_chunks_are_not_buffered() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let body = json!({"model":"paced","stream":true,"messages":[{"role":"user","content":"hi"}]});
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &bearer(KEY))],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let text_pieces: Vec<_> = r
        .pieces
        .iter()
        .filter(|(_, p)| String::from_utf8_lossy(p).contains("\"content\":\""))
        .collect();
    assert!(text_pieces.len() >= 2, "{:?}", r.pieces);
    let (first, second) = (text_pieces[0].0, text_pieces[1].0);
    assert!(
        second - first >= Duration::from_millis(500),
        "chunks arrived together: first at {first:?}, second at {second:?}"
    );
}

#[tokio::test]
async fn per_model_rewrite_plugin_edits_the_upstream_body() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let body = json!({"model":"tuned","temperature":1.5,"logprobs":true,"stream":true,"messages":[{"role":"user","content":"hi"}]});
    let r = c
        .post_json(
            "/v1/chat/completions",
            &[("authorization", &bearer(KEY))],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.events().last().unwrap().1, "[DONE]");
    let seen = last_upstream_request(&mock).await;
    let sent: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        (sent["temperature"].as_f64(), sent["max_tokens"].as_u64()),
        (Some(0.2), Some(77))
    );
    assert!(sent.get("logprobs").is_none());
    assert_eq!(sent["model"], "up-gpt");
    assert_eq!(
        sent["stream_options"]["include_usage"], true,
        "the rewritten body is still probed and patched"
    );
}

#[tokio::test]
async fn anthropic_beta_flags_are_filtered_for_compatible_vendors() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let h = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        (
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        ),
    ];
    let body =
        json!({"model":"compat","max_tokens":16,"messages":[{"role":"user","content":"hi"}]});
    let r = c.post_json("/anthropic/v1/messages", &h, &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = mock.stats.last_request().unwrap();
    assert_eq!(
        seen.header("anthropic-beta").as_deref(),
        Some("interleaved-thinking-2025-05-14")
    );
}

/// Sends raw bytes on a fresh connection and reads until the gateway closes it.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_malformed_request_head_is_400_and_connect_is_405_then_closed() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let malformed = b"POST /v1/chat/completions HTTP/1.1\r\nno colon here\r\n\r\n";
    let bad = raw_exchange(gw.addr, malformed).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    // The admin port answers a malformed head the same way.
    let bad = raw_exchange(gw.admin.unwrap(), malformed).await;
    assert!(bad.starts_with("HTTP/1.1 400"), "admin: {bad}");
    let tunnel = raw_exchange(
        gw.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
    )
    .await;
    assert!(tunnel.starts_with("HTTP/1.1 405"), "{tunnel}");
    // The gateway is unharmed.
    let ok = gw.client().get("/health", &[]).await;
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_lets_streams_finish() {
    let mock = common::mock().await;
    let graceful =
        config(mock.addr, "").replace("grace_period_seconds = 0", "grace_period_seconds = 5");
    let gw = Gateway::start(&graceful);
    let auth = bearer(KEY);

    let mut idle = gw.client();
    assert_eq!(idle.get("/health", &[]).await.status, 200);
    // A scraper's keep-alive connection to the admin port, idle too.
    let mut scraper = common::Client::new(gw.admin.expect("the admin port is on"));
    assert_eq!(scraper.get("/metrics", &[]).await.status, 200);

    // A stream of 3 events 700 ms apart, under way when the signal arrives.
    let mut streaming = gw.client();
    let body = serde_json::to_vec(
        &json!({"model":"paced","messages":[{"role":"user","content":"hi"}],"stream":true}),
    )
    .unwrap();
    streaming
        .send(
            "POST",
            "/v1/chat/completions",
            &[("authorization", &auth)],
            &body,
        )
        .await;
    let head = streaming.read_until(b"data:", Duration::from_secs(5)).await;
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    gw.signal("TERM");
    let started = std::time::Instant::now();
    let rest = idle.read_for(Duration::from_secs(3)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the idle keep-alive connection was closed at shutdown, not left to time out"
    );
    let rest = scraper.read_for(Duration::from_secs(3)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the idle admin connection was closed at shutdown too"
    );
    let tail = streaming
        .read_until(b"[DONE]", Duration::from_secs(5))
        .await;
    assert!(
        tail.windows(6).any(|w| w == b"[DONE]"),
        "the stream in flight finished: {}",
        String::from_utf8_lossy(&tail)
    );
}

/// A raw upstream for one exchange: accepts one connection, reads the request head, then hands
/// the socket to `answer`.
async fn one_exchange_upstream<F, Fut>(answer: F) -> std::net::SocketAddr
where
    F: FnOnce(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed before sending its request");
            req.extend_from_slice(&buf[..n]);
        }
        answer(sock).await;
    });
    addr
}

/// An OpenAI-style upstream that sends its response head at once and the first event 800 ms
/// later (the mock sends both together), for the one behaviour that needs them apart.
async fn upstream_with_a_late_first_event() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    one_exchange_upstream(|mut sock| async move {
        sock.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let event = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}

data: [DONE]

"#;
        let body = format!("{:x}\r\n{event}\r\n0\r\n\r\n", event.len());
        sock.write_all(body.as_bytes()).await.unwrap();
        let _ = sock.read(&mut [0u8; 64]).await;
    })
    .await
}

#[tokio::test]
async fn a_streams_head_leaves_with_its_first_event() {
    let mock = common::mock().await;
    let late = upstream_with_a_late_first_event().await;
    let extra = format!(
        "[providers.late]\nkind = \"openai\"\nbase_url = \"http://{late}/v1\"\nkeys = [\"ok\"]\n\
         [models.late]\nroutes = [{{ provider = \"late\" }}]\n"
    );
    let gw = Gateway::start(&config(mock.addr, &extra));
    let mut c = gw.client();
    let body = serde_json::to_vec(
        &json!({"model":"late","messages":[{"role":"user","content":"hi"}],"stream":true}),
    )
    .unwrap();
    c.send(
        "POST",
        "/v1/chat/completions",
        &[("authorization", &bearer(KEY))],
        &body,
    )
    .await;
    // The upstream's head is in, its first event is not: the client sees nothing yet.
    let early = c.read_for(Duration::from_millis(400)).await;
    assert!(
        early.is_empty(),
        "the head went out before any event: {}",
        String::from_utf8_lossy(&early)
    );
    let head = c.read_until(b"[DONE]", Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&head);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("\"content\":\"hi\"") && text.contains("[DONE]"),
        "{text}"
    );
}

/// A raw upstream that answers each request with a small keep-alive JSON answer, then closes
/// the connection after `close_after` (an upstream's own keep-alive timeout), or never (`None`).
/// Returns its address and how many connections it has accepted.
async fn keep_alive_upstream(
    close_after: Option<Duration>,
) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let wait = close_after.unwrap_or(Duration::from_secs(3600));
                    let read = tokio::time::timeout(wait, sock.read(&mut buf)).await;
                    let Ok(Ok(n)) = read else { return }; // idle too long: close
                    if n == 0 {
                        return;
                    }
                    req.extend_from_slice(&buf[..n]);
                    // Every test request carries a small body after its head.
                    if !req.windows(4).any(|w| w == b"\r\n\r\n") || !req.ends_with(b"}") {
                        continue;
                    }
                    req.clear();
                    let body = r#"{"id":"c1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    sock.write_all(answer.as_bytes()).await.unwrap();
                }
            });
        }
    });
    (addr, accepted)
}

/// Idle upstream connections are reused, and one the upstream has closed while idle is not
/// (the request goes out on a new connection instead of failing over).
#[tokio::test]
async fn idle_upstream_connections_are_reused_unless_the_upstream_closed_them() {
    let mock = common::mock().await;
    let (kept, kept_accepts) = keep_alive_upstream(None).await;
    let (closing, closing_accepts) = keep_alive_upstream(Some(Duration::from_millis(100))).await;
    let extra = format!(
        "[providers.kept]\nkind = \"openai\"\nbase_url = \"http://{kept}/v1\"\nkeys = [\"ok\"]\n\
         [providers.closing]\nkind = \"openai\"\nbase_url = \"http://{closing}/v1\"\nkeys = [\"ok\"]\n\
         [models.kept]\nroutes = [{{ provider = \"kept\" }}]\n\
         [models.closing]\nroutes = [{{ provider = \"closing\" }}]\n"
    );
    let gw = Gateway::start(&config(mock.addr, &extra));
    let mut c = gw.client();
    for model in ["kept", "closing", "kept", "closing"] {
        let r = c
            .post_json(
                "/v1/chat/completions",
                &[("authorization", &bearer(KEY))],
                &json!({"model": model, "messages":[{"role":"user","content":"hi"}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{model}: {}", r.text());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        kept_accepts.load(Ordering::SeqCst),
        1,
        "the idle connection is reused"
    );
    assert_eq!(
        closing_accepts.load(Ordering::SeqCst),
        2,
        "a closed one is not"
    );
    let failovers = gw.metrics().await.sum("ezrouter_failovers_total", &[]);
    assert_eq!(failovers, 0.0, "no attempt failed on a dead connection");
}

/// Each worker thread serves the connections it accepted, with its own idle upstream
/// connections: 32 client connections, one request at a time, reach the upstream over exactly
/// two connections (one per worker, each reused). The kernel hashes connections over the
/// workers' sockets; all 32 landing on one worker has odds of 2^-31.
#[tokio::test]
async fn connections_are_spread_over_the_workers_and_each_worker_reuses_its_own_upstream() {
    let mock = common::mock().await;
    let (kept, kept_accepts) = keep_alive_upstream(None).await;
    let extra = format!(
        "[providers.kept]\nkind = \"openai\"\nbase_url = \"http://{kept}/v1\"\nkeys = [\"ok\"]\n\
         [models.kept]\nroutes = [{{ provider = \"kept\" }}]\n"
    );
    let gw = Gateway::start(&config(mock.addr, &extra).replace("threads = 1", "threads = 2"));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let mut c = gw.client();
        let r = c
            .post_json(
                "/v1/chat/completions",
                &[("authorization", &bearer(KEY))],
                &json!({"model": "kept", "messages":[{"role":"user","content":"hi"}]}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        clients.push(c);
    }
    assert_eq!(kept_accepts.load(Ordering::SeqCst), 2);
}

/// A stream for an HTTP/1.0 client has no chunked framing: it ends when the connection closes,
/// and all of it arrives (the gateway's "last write with its end" applies to chunked bodies only).
#[tokio::test]
async fn an_http_1_0_client_gets_the_whole_stream_then_the_close() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let body = json!({"model":"gpt","stream":true,"messages":[{"role":"user","content":"hi"}]})
        .to_string();
    let mut sock = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.0\r\nhost: gw\r\nauthorization: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        bearer(KEY),
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut got))
        .await
        .expect("the gateway closes the connection at the end of the body")
        .unwrap();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        !text
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}

/// An OpenAI-style upstream that answers one request with `events` as a chunked SSE body.
async fn upstream_streaming(events: String) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    one_exchange_upstream(move |mut sock| async move {
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n\
             {:x}\r\n{events}\r\n0\r\n\r\n",
            events.len()
        );
        sock.write_all(answer.as_bytes()).await.unwrap();
        let _ = sock.read(&mut [0u8; 64]).await;
    })
    .await
}

/// A gateway whose model `vendor` routes to the raw upstream at `vendor` (`stream_options` off,
/// `timeouts` as a TOML inline table), and one streaming chat request to it.
async fn stream_through_vendor(vendor: std::net::SocketAddr, timeouts: &str) -> common::Response {
    let mock = common::mock().await;
    let extra = format!(
        "[providers.vendor]\nkind = \"openai\"\nbase_url = \"http://{vendor}/v1\"\nkeys = [\"ok\"]\n\
         timeouts = {timeouts}\n\
         [providers.vendor.capabilities]\nstream_options = false\n\
         [models.vendor]\nroutes = [{{ provider = \"vendor\" }}]\n"
    );
    let gw = Gateway::start(&config(mock.addr, &extra));
    let mut c = gw.client();
    c.post_json(
        "/v1/chat/completions",
        &[("authorization", &bearer(KEY))],
        &json!({"model":"vendor","messages":[{"role":"user","content":"hi"}],"stream":true}),
    )
    .await
}

#[tokio::test]
async fn a_usage_chunk_the_gateway_did_not_ask_for_is_the_clients() {
    // Some OpenAI-compatible vendors send the usage chunk unasked. With `stream_options` off the
    // gateway never asks for it, so it is forwarded like every other byte, not dropped.
    const EVENTS: &str = concat!(
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#,
        "\n\n",
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
        "\n\ndata: [DONE]\n\n"
    );
    let r = stream_through_vendor(upstream_streaming(EVENTS.into()).await, "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), EVENTS);
}

/// A stream whose upstream ended before its first event left (the whole body in one burst) is
/// sent with `Content-Length`: nothing waits, so there is nothing to chunk. One whose events come
/// apart stays chunked, its first event sent before the rest exists.
#[tokio::test]
async fn a_stream_in_hand_before_its_head_is_length_delimited_others_are_chunked() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const FIRST: &str = concat!(
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"finish_reason":null}]}"#,
        "\n\n"
    );
    const REST: &str = concat!(
        r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
        "\n\ndata: [DONE]\n\n"
    );
    let whole = format!("{FIRST}{REST}");
    let r = stream_through_vendor(upstream_streaming(whole.clone()).await, "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), whole);
    assert_eq!(r.header("content-length"), Some(&*whole.len().to_string()));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(r.header("content-type"), Some("text/event-stream"));

    let vendor = one_exchange_upstream(|mut sock| async move {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        let first = format!("{head}{:x}\r\n{FIRST}\r\n", FIRST.len());
        sock.write_all(first.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let rest = format!("{:x}\r\n{REST}\r\n0\r\n\r\n", REST.len());
        sock.write_all(rest.as_bytes()).await.unwrap();
        let _ = sock.read(&mut [0u8; 64]).await;
    })
    .await;
    let r = stream_through_vendor(vendor, "{}").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), whole);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(
        r.pieces[0].1,
        FIRST.as_bytes(),
        "the first event left alone"
    );
}

/// An upstream that sends one event with its head, a second 150 ms later (in the middle of an
/// idle wait), then nothing more: the idle timeout must count from that second event. It used to
/// be re-armed from each timer wake-up instead, so once an event had arrived mid-wait the stream
/// was never cut (only the total deadline ended it).
#[tokio::test]
async fn the_idle_timeout_counts_from_the_last_event_even_one_that_came_mid_wait() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const EVENT: &str = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}

"#;
    let vendor = one_exchange_upstream(|mut sock| async move {
        let chunk = format!("{:x}\r\n{EVENT}\r\n", EVENT.len());
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        sock.write_all(format!("{head}{chunk}").as_bytes())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        sock.write_all(chunk.as_bytes()).await.unwrap();
        // Silence until the gateway gives up and closes.
        let _ = sock.read(&mut [0u8; 64]).await;
    })
    .await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        stream_through_vendor(vendor, "{ idle_ms = 300, total_ms = 20000 }"),
    )
    .await
    .expect("the idle timeout ended the stream well before the total deadline");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("timed out"), "{}", r.text());
    let second = r.pieces[1].0;
    let end = r.pieces.last().unwrap().0;
    assert!(
        end - second >= Duration::from_millis(250) && end - second < Duration::from_millis(1500),
        "the error came {:?} after the last event (idle 300 ms)",
        end - second
    );
}

/// Pingora's own timeouts (the keep-alive wait between a client's requests, upstream connects) run
/// on the worker's tokio timer, not on Pingora's timer thread, which would wake every 10 ms for
/// the life of the process (an idle gateway: ~100 wake-ups a second instead of ~20).
#[tokio::test]
async fn serving_requests_starts_no_timer_thread() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    let mut c = gw.client();
    let auth = bearer(KEY);
    for stream in [false, true] {
        let r = c
            .post_json(
                "/v1/chat/completions",
                &[("authorization", &auth)],
                &chat(stream),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // The connection now waits for its next request, under the keep-alive timeout.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let threads: Vec<String> = std::fs::read_dir(format!("/proc/{}/task", gw.pid()))
        .expect("the gateway's threads")
        .map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).unwrap())
        .map(|name| name.trim_end().to_string())
        .collect();
    assert!(
        threads.iter().any(|t| t.starts_with("ezrouter-")),
        "{threads:?}"
    );
    assert!(!threads.iter().any(|t| t == "Timer thread"), "{threads:?}");
}

/// Voluntary context switches (wake-ups) of the gateway's proxy worker threads so far.
fn worker_wake_ups(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the gateway's threads")
        .map(|t| t.unwrap().path())
        .filter(|t| {
            std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.starts_with("ezrouter-"))
        })
        .map(|t| {
            let status = std::fs::read_to_string(t.join("status")).unwrap();
            let line = status
                .lines()
                .find(|l| l.starts_with("voluntary_ctxt_switches:"))
                .expect("voluntary_ctxt_switches");
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

/// A worker keeps a timer due within a second while it has connections (so request timers
/// register without waking its timer driver, `listener.rs`); with none, it sleeps. It used to tick
/// twice a second for the life of the process.
#[tokio::test]
async fn workers_without_connections_sleep() {
    let mock = common::mock().await;
    let gw = Gateway::start(&config(mock.addr, ""));
    {
        let mut c = gw.client();
        let r = c
            .post_json(
                "/v1/chat/completions",
                &[("authorization", &bearer(KEY))],
                &chat(false),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        // While the connection is open, the timer ticks.
        let before = worker_wake_ups(gw.pid());
        tokio::time::sleep(Duration::from_millis(1600)).await;
        assert!(
            worker_wake_ups(gw.pid()) >= before + 2,
            "the timer ticks while serving"
        );
    }
    // The connection is closed; the timer fires at most once more.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let before = worker_wake_ups(gw.pid());
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let woken = worker_wake_ups(gw.pid()) - before;
    assert!(woken <= 1, "idle workers woke {woken} times in 2 s");
}
