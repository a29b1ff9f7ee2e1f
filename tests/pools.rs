//! Issue 4: upstream key pools (failover, silent queueing, timeouts, cancellation), black-box:
//! the real binary over real sockets, against the mock upstream whose behaviour is scripted by
//! the upstream key string (`fail-429-30`, `slow-3000`, `seq-401,ok`, ...).
//!
//! Every test ends with [`assert_idle`]: no permit, queue slot or upstream request left behind.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Client, Gateway, Response, SERVER};
use ezrouter_mock::MockServer;
use serde_json::{json, Value};

const HEAVY: &str = "sk-heavy";
const LIGHT: &str = "sk-light";

/// A gateway config: the shared server section and client keys, plus `body` (providers, models).
fn config(body: &str) -> String {
    format!(
        r#"{SERVER}
max_attempts = 6

[[keys]]
id = "heavy"
secret = "{HEAVY}"

[[keys]]
id = "light"
secret = "{LIGHT}"

{body}"#
    )
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn openai_headers(secret: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {secret}"))]
}

fn anthropic_headers(secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-api-key", secret.to_string()),
        ("anthropic-version", "2023-06-01".to_string()),
    ]
}

fn borrow<'a>(h: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    h.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Which surface a request goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Surface {
    OpenAi,
    Anthropic,
}

impl Surface {
    fn path(self) -> &'static str {
        match self {
            Surface::OpenAi => "/v1/chat/completions",
            Surface::Anthropic => "/anthropic/v1/messages",
        }
    }

    fn body(self, model: &str, stream: bool) -> Value {
        match self {
            Surface::OpenAi => chat(model, stream),
            Surface::Anthropic => messages(model, stream),
        }
    }

    fn headers(self, secret: &str) -> Vec<(&'static str, String)> {
        match self {
            Surface::OpenAi => openai_headers(secret),
            Surface::Anthropic => anthropic_headers(secret),
        }
    }
}

/// One request on `c`, as the heavy client.
async fn call(c: &mut Client, surface: Surface, model: &str, stream: bool) -> Response {
    call_as(c, HEAVY, surface, model, stream).await
}

async fn call_as(
    c: &mut Client,
    secret: &str,
    surface: Surface,
    model: &str,
    stream: bool,
) -> Response {
    let h = surface.headers(secret);
    c.post_json(surface.path(), &borrow(&h), &surface.body(model, stream))
        .await
}

/// Sends a request without reading the answer (for hang-ups and concurrency).
async fn send(c: &mut Client, secret: &str, surface: Surface, body: &Value) {
    let h = surface.headers(secret);
    c.send(
        "POST",
        surface.path(),
        &borrow(&h),
        &serde_json::to_vec(body).unwrap(),
    )
    .await;
}

/// The upstream key of every request the mock received, in arrival order.
fn upstream_keys(mock: &MockServer) -> Vec<String> {
    mock.stats
        .recent_requests()
        .iter()
        .map(|r| {
            r.header("x-api-key")
                .or_else(|| {
                    r.header("authorization")
                        .map(|v| v.trim_start_matches("Bearer ").to_string())
                })
                .unwrap_or_default()
        })
        .collect()
}

/// Polls `cond` every 5 ms for up to `within`; panics with `what` when it never holds.
async fn wait_for<F, Fut>(within: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn queue_depth(gw: &Gateway, provider: &str) -> f64 {
    gw.metrics()
        .await
        .sum("ezrouter_queue_depth", &[("provider", provider)])
}

async fn wait_queue_depth(gw: &Gateway, provider: &str, depth: f64) {
    wait_for(
        Duration::from_secs(2),
        &format!("queue depth {depth} on {provider}"),
        || async move { queue_depth(gw, provider).await == depth },
    )
    .await;
}

async fn wait_mock_in_flight(mock: &MockServer, n: u64) {
    wait_for(
        Duration::from_secs(2),
        &format!("{n} request(s) in flight at the mock"),
        || async move { mock.stats.in_flight() == n },
    )
    .await;
}

/// No leaks: within 1 s every key's in-flight gauge and every queue gauge of the gateway are 0,
/// and the mock has no request still being answered (every upstream exchange ended).
async fn assert_idle(gw: &Gateway, mock: &MockServer) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let m = gw.metrics().await;
        let busy: Vec<String> = m
            .samples
            .iter()
            .filter(|s| {
                (s.name == "ezrouter_upstream_in_flight" || s.name == "ezrouter_queue_depth")
                    && s.value != 0.0
            })
            .map(|s| format!("{} {:?} = {}", s.name, s.labels, s.value))
            .collect();
        let upstream = mock.stats.in_flight();
        if busy.is_empty() && upstream == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leak after the test: gateway {busy:?}, mock in flight {upstream}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn start() -> MockServer {
    common::mock().await
}

/// An SSE body's JSON payloads (skipping `[DONE]`), with their event names.
fn json_events(r: &Response) -> Vec<(Option<String>, Value)> {
    r.events()
        .into_iter()
        .filter(|(_, d)| d != "[DONE]" && !d.is_empty())
        .map(|(n, d)| {
            let v = serde_json::from_str(&d)
                .unwrap_or_else(|e| panic!("event is not JSON ({e}): {d:?} in {}", r.text()));
            (n, v)
        })
        .collect()
}

/// The text an OpenAI stream carried.
fn openai_stream_text(r: &Response) -> String {
    json_events(r)
        .iter()
        .filter_map(|(_, v)| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

/// Asserts a clean OpenAI stream: chunks, text, a finish reason, `[DONE]`, no error.
fn assert_clean_openai_stream(r: &Response) {
    assert_eq!(r.status, 200, "{}", r.text());
    let events = r.events();
    assert_eq!(
        events.last().map(|(_, d)| d.as_str()),
        Some("[DONE]"),
        "{}",
        r.text()
    );
    let payloads = json_events(r);
    assert!(
        payloads
            .iter()
            .all(|(_, v)| v.get("error").is_none() && v["object"] == "chat.completion.chunk"),
        "{}",
        r.text()
    );
    assert!(!openai_stream_text(r).is_empty(), "{}", r.text());
    assert!(
        payloads
            .iter()
            .any(|(_, v)| v["choices"][0]["finish_reason"].is_string()),
        "no finish_reason: {}",
        r.text()
    );
}

fn assert_openai_envelope(v: &Value) {
    for field in ["message", "type", "param", "code"] {
        assert!(
            v["error"].get(field).is_some(),
            "OpenAI envelope lacks {field}: {v}"
        );
    }
    assert!(
        !v["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{v}"
    );
}

fn assert_anthropic_envelope(v: &Value, kind: &str) {
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(
        !v["error"]["message"].as_str().unwrap_or("").is_empty(),
        "{v}"
    );
}

fn retry_after(r: &Response) -> Option<u64> {
    r.header("retry-after").and_then(|v| v.parse().ok())
}

// ---------------------------------------------------------------------------------------------
// Failover
// ---------------------------------------------------------------------------------------------

/// 429 with `Retry-After` on key A: the same request goes to key B, the client sees one clean 200,
/// and A is skipped while it cools (the next requests go straight to B).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limited_key_fails_over_to_the_next_and_cools_down() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.p]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "fail-429-30", id = "a", weight = 2 }}, {{ key = "ok-b", id = "b" }}]
[models.m]
routes = [{{ provider = "p" }}]
"#
    )));
    let mut c = gw.client();

    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    assert!(r.json().get("error").is_none());
    assert_eq!(
        r.header("retry-after"),
        None,
        "a served request carries no Retry-After"
    );
    assert_eq!(
        upstream_keys(&mock),
        ["fail-429-30", "ok-b"],
        "A first (heavier weight), then B"
    );

    // A cools for 30 s: the next requests (either surface, stream or not) go straight to B.
    let r = call(&mut c, Surface::OpenAi, "m", true).await;
    assert_clean_openai_stream(&r);
    let r = call(&mut c, Surface::Anthropic, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["type"], "message");
    assert_eq!(
        upstream_keys(&mock),
        ["fail-429-30", "ok-b", "ok-b", "ok-b"]
    );
    assert_eq!(mock.stats.key_requests("fail-429-30"), 1);

    let metrics = gw.metrics().await;
    assert_eq!(
        metrics.sum(
            "ezrouter_upstream_key_events_total",
            &[("provider", "p"), ("key", "a"), ("event", "cooldown")]
        ),
        1.0
    );
    assert_eq!(
        metrics.sum(
            "ezrouter_failovers_total",
            &[("provider", "p"), ("cause", "rate_limited")]
        ),
        1.0
    );
    assert_eq!(c.connections, 1, "failover kept the client connection");
    assert_idle(&gw, &mock).await;
}

/// 503 on the model's first route (an OpenAI-dialect provider), then success on its second route
/// (an Anthropic-dialect provider): an OpenAI client gets a correct OpenAI answer, JSON and stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_to_the_next_route_through_translation() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.oai_down]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["fail-503"]
[providers.ant]
kind = "anthropic"
base_url = "http://{m}"
keys = ["ok-ant"]
[models.m]
routes = [{{ provider = "oai_down", model = "gpt-up" }}, {{ provider = "ant", model = "claude-up" }}]
"#
    )));
    let mut c = gw.client();

    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion", "{v}");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant", "{v}");
    assert!(
        !v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "{v}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop", "{v}");
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{v}");
    assert!(v.get("type").is_none(), "no Anthropic shape leaks: {v}");

    let seen = mock.stats.recent_requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].path(), "/v1/chat/completions");
    assert_eq!(
        seen[0].header("authorization").as_deref(),
        Some("Bearer fail-503")
    );
    assert_eq!(seen[0].body_json().unwrap()["model"], "gpt-up");
    assert_eq!(seen[1].path(), "/v1/messages");
    assert_eq!(seen[1].header("x-api-key").as_deref(), Some("ok-ant"));
    let translated = seen[1].body_json().unwrap();
    assert_eq!(translated["model"], "claude-up");
    assert!(translated["max_tokens"].is_u64(), "{translated}");

    let r = call(&mut c, Surface::OpenAi, "m", true).await;
    assert_clean_openai_stream(&r);
    assert_eq!(mock.stats.key_requests("fail-503"), 2);
    assert_eq!(mock.stats.key_requests("ok-ant"), 2);
    assert_eq!(
        gw.metrics().await.sum(
            "ezrouter_failovers_total",
            &[("provider", "oai_down"), ("cause", "failure")]
        ),
        2.0
    );
    assert_idle(&gw, &mock).await;
}

/// Every key fails: the client gets the upstream's error in its own envelope with the right
/// status (529 -> OpenAI 503 / Anthropic 529; 429 keeps its Retry-After), never a 200 or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn all_keys_failing_gives_the_upstream_error_in_the_callers_envelope() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.over]
kind = "anthropic"
base_url = "http://{m}"
keys = ["fail-529", "seq-529"]
[providers.limited]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "fail-429-7", id = "l1" }}, {{ key = "seq-429-7", id = "l2" }}]
[models.over]
routes = [{{ provider = "over" }}]
[models.limited]
routes = [{{ provider = "limited" }}]
"#
    )));
    let mut c = gw.client();

    // 529 everywhere: OpenAI 503 server_error, Anthropic 529 overloaded_error.
    let r = call(&mut c, Surface::OpenAi, "over", false).await;
    assert_eq!(r.status, 503, "{}", r.text());
    let v = r.json();
    assert_openai_envelope(&v);
    assert_eq!(v["error"]["type"], "server_error", "{v}");
    assert_eq!(mock.stats.key_requests("fail-529"), 1);
    assert_eq!(
        mock.stats.key_requests("seq-529"),
        1,
        "both keys were tried"
    );

    let r = call(&mut c, Surface::Anthropic, "over", false).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_anthropic_envelope(&r.json(), "overloaded_error");

    // A stream request that fails before its first byte gets a plain JSON error, not SSE.
    let r = call(&mut c, Surface::Anthropic, "over", true).await;
    assert_eq!(r.status, 529, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_anthropic_envelope(&r.json(), "overloaded_error");
    assert_eq!(mock.stats.key_requests("fail-529"), 3);
    assert_eq!(mock.stats.key_requests("seq-529"), 3);

    // 429 everywhere: 429 with the upstream's Retry-After, in each envelope.
    let r = call(&mut c, Surface::OpenAi, "limited", false).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(retry_after(&r), Some(7), "{:?}", r.headers);
    let v = r.json();
    assert_openai_envelope(&v);
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    assert_eq!(upstream_keys(&mock)[6..], ["fail-429-7", "seq-429-7"]);

    // Both keys now cool: the next request fails at once, without touching the upstream, still
    // a 429 with a Retry-After no longer than the cooldown left.
    let r = call(&mut c, Surface::Anthropic, "limited", false).await;
    assert_eq!(r.status, 429, "{}", r.text());
    let ra = retry_after(&r).expect("Retry-After on a 429");
    assert!(
        (5..=7).contains(&ra),
        "Retry-After {ra}: the cooldown left of the upstream's Retry-After: 7"
    );
    assert_anthropic_envelope(&r.json(), "rate_limit_error");
    assert_eq!(mock.stats.requests(), 8, "cooling keys are not tried");
    assert_eq!(c.connections, 1, "every error kept the connection alive");
    assert_idle(&gw, &mock).await;
}

/// The most meaningful error wins: an upstream's own 429 (with its Retry-After) beats another
/// route's transport failure, whatever the route order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstream_answer_beats_a_transport_failure() {
    let mock = start().await;
    let m = mock.addr;
    let dead: SocketAddr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // closed again: connections are refused
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.lim1]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["fail-429-9"]
[providers.lim2]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["fail-429-8"]
[providers.down]
kind = "openai"
base_url = "http://{dead}/v1"
keys = ["ok"]
timeouts = {{ connect_ms = 500 }}
[models.limited_first]
routes = [{{ provider = "lim1" }}, {{ provider = "down" }}]
[models.down_first]
routes = [{{ provider = "down" }}, {{ provider = "lim2" }}]
"#
    )));
    let mut c = gw.client();
    let r = call(&mut c, Surface::OpenAi, "limited_first", false).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(retry_after(&r), Some(9));
    let r = call(&mut c, Surface::Anthropic, "down_first", false).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(retry_after(&r), Some(8));
    assert_anthropic_envelope(&r.json(), "rate_limit_error");
    assert_idle(&gw, &mock).await;
}

/// Keys the upstream rejects (401/403/402) leave rotation: later requests never reach them, the
/// client never sees the rejection, and each is reported once as `disabled`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_keys_leave_rotation() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.p]
kind = "openai"
base_url = "http://{m}/v1"
keys = [
  {{ key = "fail-401", id = "k401", weight = 3 }},
  {{ key = "fail-403", id = "k403", weight = 3 }},
  {{ key = "fail-402", id = "k402", weight = 3 }},
  {{ key = "ok-good", id = "good" }},
]
[models.m]
routes = [{{ provider = "p" }}]
"#
    )));
    let mut c = gw.client();
    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream_keys(&mock),
        ["fail-401", "fail-403", "fail-402", "ok-good"]
    );
    for (surface, stream) in [
        (Surface::OpenAi, true),
        (Surface::Anthropic, false),
        (Surface::OpenAi, false),
        (Surface::Anthropic, true),
    ] {
        let r = call(&mut c, surface, "m", stream).await;
        assert_eq!(r.status, 200, "{surface:?} {}", r.text());
    }
    for bad in ["fail-401", "fail-403", "fail-402"] {
        assert_eq!(
            mock.stats.key_requests(bad),
            1,
            "{bad} was used after rejecting"
        );
    }
    assert_eq!(mock.stats.key_requests("ok-good"), 5);

    let metrics = gw.metrics().await;
    for id in ["k401", "k403", "k402"] {
        assert_eq!(
            metrics.sum(
                "ezrouter_upstream_key_events_total",
                &[("provider", "p"), ("key", id), ("event", "disabled")]
            ),
            1.0,
            "disabled event of {id}"
        );
    }
    assert_eq!(
        metrics.sum(
            "ezrouter_upstream_key_events_total",
            &[("key", "good"), ("event", "disabled")]
        ),
        0.0
    );
    assert_eq!(
        metrics.sum(
            "ezrouter_failovers_total",
            &[("provider", "p"), ("cause", "key_rejected")]
        ),
        3.0
    );
    assert_idle(&gw, &mock).await;
}

/// A circuit breaker per key: N failures open it (the key is skipped), after `open_ms` one probe
/// goes through and a success closes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failing_key_opens_its_circuit_and_a_probe_closes_it() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.p]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "seq-500,500,ok", id = "flaky", weight = 2 }}, {{ key = "ok-steady", id = "steady" }}]
breaker = {{ failures = 2, window_ms = 10000, open_ms = 400 }}
[models.m]
routes = [{{ provider = "p" }}]
"#
    )));
    let mut c = gw.client();
    for _ in 0..3 {
        let r = call(&mut c, Surface::OpenAi, "m", false).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        mock.stats.key_requests("seq-500,500,ok"),
        2,
        "open after 2 failures: the third request skips it"
    );
    let events = |m: &common::metrics::Metrics, event: &str| {
        m.sum(
            "ezrouter_upstream_key_events_total",
            &[("key", "flaky"), ("event", event)],
        )
    };
    assert_eq!(events(&gw.metrics().await, "circuit_open"), 1.0);
    // The breaker's pause is time itself: nothing to poll.
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.stats.key_requests("seq-500,500,ok"),
        3,
        "half-open: one probe"
    );
    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        mock.stats.key_requests("seq-500,500,ok"),
        4,
        "closed again: preferred"
    );
    assert_eq!(events(&gw.metrics().await, "circuit_closed"), 1.0);
    assert_idle(&gw, &mock).await;
}

// ---------------------------------------------------------------------------------------------
// Mid-stream failures and timeouts
// ---------------------------------------------------------------------------------------------

/// The upstream answers 200 and resets before the first event: the client has been sent nothing
/// yet (a stream's head waits for its first event), so the stream fails over to the next key.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_before_the_first_event_fails_over_silently() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.oai]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "fail-reset-0", id = "reset", weight = 2 }}, {{ key = "ok-oai", id = "spare" }}]
[models.o]
routes = [{{ provider = "oai" }}]
"#
    )));
    let mut c = gw.client();
    let r = call(&mut c, Surface::OpenAi, "o", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    assert!(
        events.iter().all(|(_, v)| v.get("error").is_none()),
        "no error event: {}",
        r.text()
    );
    assert!(
        events
            .iter()
            .any(|(_, v)| v["choices"][0]["finish_reason"].is_string()),
        "a clean finish from the spare key: {}",
        r.text()
    );
    assert_eq!(mock.stats.key_requests("fail-reset-0"), 1);
    assert_eq!(mock.stats.key_requests("ok-oai"), 1);
    assert_idle(&gw, &mock).await;
}

/// The upstream closes a kept-alive connection just as the gateway reuses it (the mock reads the
/// request and resets, as a server whose idle timeout fires at that moment does): the request is
/// sent again on a new connection, once, and it costs the key nothing. A new connection that goes
/// unanswered is a real failure and fails over as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reused_connection_the_upstream_closed_is_replaced_not_failed_over() {
    const ONLY: &str = "seq-ok,close,ok,close";
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.oai]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["{ONLY}"]
[models.o]
routes = [{{ provider = "oai" }}]
"#
    )));
    // One client connection: every request is served by the same worker and its idle list.
    let mut c = gw.client();
    let r = call(&mut c, Surface::OpenAi, "o", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The kept connection is reset unanswered; the same request succeeds on a new one.
    let r = call(&mut c, Surface::OpenAi, "o", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_clean_openai_stream(&r);
    assert_eq!(mock.stats.key_requests(ONLY), 3);
    let failovers =
        |m: &common::metrics::Metrics| m.sum("ezrouter_failovers_total", &[("provider", "oai")]);
    assert_eq!(
        failovers(&gw.metrics().await),
        0.0,
        "no failover for a stale connection"
    );
    // Reused and reset, then reset again on a new connection: that one counts (the only key is
    // then out of candidates, so the client gets the upstream failure).
    let r = call(&mut c, Surface::OpenAi, "o", false).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("without an answer"), "{}", r.text());
    assert_eq!(mock.stats.key_requests(ONLY), 5, "replaced once, not again");
    assert_eq!(failovers(&gw.metrics().await), 1.0);
    assert_eq!(
        c.connections, 1,
        "one client connection, so one worker's idle list"
    );
    assert_idle(&gw, &mock).await;
}

/// The upstream resets the connection after the first events: the client's stream ends with an
/// error event in its own dialect, and nothing is retried (another key was free).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_mid_stream_ends_with_an_error_event_and_no_retry() {
    let mock = start().await;
    let m = mock.addr;
    let paced = r#"headers = { "x-mock-chunks" = "6", "x-mock-chunk-delay-ms" = "30" }"#;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.oai]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "fail-reset-3", id = "reset", weight = 2 }}, {{ key = "ok-oai", id = "spare" }}]
{paced}
[providers.ant]
kind = "anthropic"
base_url = "http://{m}"
keys = [{{ key = "fail-reset-4", id = "reset", weight = 2 }}, {{ key = "ok-ant", id = "spare" }}]
{paced}
[models.o]
routes = [{{ provider = "oai" }}]
[models.a]
routes = [{{ provider = "ant" }}]
"#
    )));
    let mut c = gw.client();

    // OpenAI client, OpenAI upstream.
    let r = call(&mut c, Surface::OpenAi, "o", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    let (last, before) = events.split_last().expect("events");
    assert!(
        last.1["error"]["message"].is_string(),
        "the stream ends with an OpenAI error event: {}",
        r.text()
    );
    assert!(
        before
            .iter()
            .any(|(_, v)| v["object"] == "chat.completion.chunk"),
        "{}",
        r.text()
    );
    assert!(
        before
            .iter()
            .all(|(_, v)| v.get("error").is_none() && v["choices"][0]["finish_reason"].is_null()),
        "no clean finish before the error: {}",
        r.text()
    );
    assert_eq!(
        mock.stats.key_requests("ok-oai"),
        0,
        "no retry after the first byte"
    );

    // Anthropic client, Anthropic upstream.
    let r = call(&mut c, Surface::Anthropic, "a", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    assert_eq!(
        events.first().and_then(|(n, _)| n.as_deref()),
        Some("message_start")
    );
    let (name, data) = events.last().unwrap();
    assert_eq!(name.as_deref(), Some("error"), "{}", r.text());
    assert_eq!(data["type"], "error", "{data}");
    assert!(data["error"]["type"].is_string(), "{data}");
    assert!(
        !events
            .iter()
            .any(|(n, _)| n.as_deref() == Some("message_stop")),
        "{}",
        r.text()
    );
    assert_eq!(
        mock.stats.key_requests("ok-ant"),
        0,
        "no retry after the first byte"
    );

    // OpenAI client, Anthropic upstream (translated).
    let r = call(&mut c, Surface::OpenAi, "a", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    assert!(
        events.last().unwrap().1["error"]["message"].is_string(),
        "{}",
        r.text()
    );
    assert!(
        !openai_stream_text(&r).is_empty(),
        "text came before the reset"
    );
    assert_eq!(mock.stats.key_requests("ok-ant"), 0);

    // A non-stream answer cut short has sent nothing to the client yet: it fails over.
    let r = call(&mut c, Surface::OpenAi, "o", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["object"], "chat.completion");
    assert_eq!(mock.stats.key_requests("ok-oai"), 1);
    assert_idle(&gw, &mock).await;
}

/// An upstream slower than the TTFB timeout: failover to the next key; when no key is left, 504
/// in the client's envelope, with a message naming the timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ttfb_timeout_fails_over_then_gives_504() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.fo]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "slow-3000", id = "slow", weight = 2 }}, {{ key = "ok-fast", id = "fast" }}]
timeouts = {{ ttfb_ms = 300 }}
[providers.dead]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["slow-3001", "slow-3002"]
timeouts = {{ ttfb_ms = 300 }}
[models.fo]
routes = [{{ provider = "fo" }}]
[models.dead]
routes = [{{ provider = "dead" }}]
"#
    )));
    let mut c = gw.client();

    let t = Instant::now();
    let r = call(&mut c, Surface::OpenAi, "fo", true).await;
    let took = t.elapsed();
    assert_clean_openai_stream(&r);
    assert_eq!(upstream_keys(&mock), ["slow-3000", "ok-fast"]);
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_millis(1500),
        "{took:?}"
    );

    let timeout_message = |msg: &str| {
        let m = msg.to_lowercase();
        assert!(m.contains("timed out") || m.contains("timeout"), "{msg}");
        assert!(
            ["first byte", "ttfb", "time to first", "before answering"]
                .iter()
                .any(|w| m.contains(w)),
            "the message does not name the TTFB timeout: {msg}"
        );
        assert!(!m.contains("total"), "{msg}");
    };
    let t = Instant::now();
    let r = call(&mut c, Surface::OpenAi, "dead", false).await;
    let took = t.elapsed();
    assert_eq!(r.status, 504, "{}", r.text());
    let v = r.json();
    assert_openai_envelope(&v);
    timeout_message(v["error"]["message"].as_str().unwrap());
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(2000),
        "two keys x 300 ms: {took:?}"
    );
    assert_eq!(mock.stats.key_requests("slow-3001"), 1);
    assert_eq!(mock.stats.key_requests("slow-3002"), 1);

    let r = call(&mut c, Surface::Anthropic, "dead", true).await;
    assert_eq!(r.status, 504, "{}", r.text());
    let v = r.json();
    assert_anthropic_envelope(&v, "timeout_error");
    timeout_message(v["error"]["message"].as_str().unwrap());
    assert_idle(&gw, &mock).await;
}

/// A gap between stream chunks longer than `idle_ms` ends the stream with an error event naming
/// the idle timeout; the total deadline is reported distinctly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_gap_and_total_timeouts_end_the_stream_with_an_error_event() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.idle]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["ok-idle", "ok-idle-spare"]
headers = {{ "x-mock-chunks" = "4", "x-mock-chunk-delay-ms" = "1500" }}
timeouts = {{ idle_ms = 300 }}
[providers.total]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["ok-total"]
headers = {{ "x-mock-chunks" = "40", "x-mock-chunk-delay-ms" = "50" }}
timeouts = {{ total_ms = 700, idle_ms = 300 }}
[models.idle]
routes = [{{ provider = "idle" }}]
[models.total]
routes = [{{ provider = "total" }}]
"#
    )));
    let mut c = gw.client();

    let r = call(&mut c, Surface::OpenAi, "idle", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    let idle_msg = events.last().unwrap().1["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error event at the end: {}", r.text()))
        .to_string();
    assert!(idle_msg.to_lowercase().contains("timed out"), "{idle_msg}");
    let first = r.pieces.first().unwrap().0;
    let last = r.pieces.last().unwrap().0;
    assert!(
        last - first >= Duration::from_millis(250) && last - first < Duration::from_millis(1200),
        "the error came {:?} after the first chunk (idle 300 ms, gap 1500 ms)",
        last - first
    );
    assert_eq!(
        mock.stats.requests(),
        1,
        "no retry after the first byte (another key was free)"
    );

    let r = call(&mut c, Surface::Anthropic, "idle", true).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    assert_eq!(
        events.last().unwrap().0.as_deref(),
        Some("error"),
        "{}",
        r.text()
    );

    let t = Instant::now();
    let r = call(&mut c, Surface::OpenAi, "total", true).await;
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let events = json_events(&r);
    let total_msg = events.last().unwrap().1["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error event at the end: {}", r.text()))
        .to_string();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    assert!(!openai_stream_text(&r).is_empty());
    assert_ne!(idle_msg, total_msg, "each timeout is reported distinctly");
    assert!(total_msg.to_lowercase().contains("total"), "{total_msg}");
    assert_idle(&gw, &mock).await;
}

// ---------------------------------------------------------------------------------------------
// Silent queueing
// ---------------------------------------------------------------------------------------------

/// One key with max_concurrency 2 and 10 concurrent streaming clients: all 10 succeed, the
/// upstream never has more than 2 in flight, and the queue is fair: a light client's 2 requests,
/// queued after a heavy client's 8, are not served last.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_serves_every_client_within_the_concurrency_and_fairly() {
    let mock = start().await;
    let m = mock.addr;
    // The first two requests hold both slots for 1 s while the others queue; then each request
    // streams 3 chunks 40 ms apart, so pairs of streams overlap.
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.q]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "seq-slow-1000,slow-1000,ok", id = "only", max_concurrency = 2 }}]
headers = {{ "x-mock-chunks" = "3", "x-mock-chunk-delay-ms" = "40" }}
[models.q]
routes = [{{ provider = "q" }}]
"#
    )));
    let mut tasks = Vec::new();
    let mut max_gauge = 0.0f64;
    for i in 0..10 {
        let (secret, tag) = if i < 8 {
            (HEAVY, format!("heavy-{i}"))
        } else {
            (LIGHT, format!("light-{}", i - 8))
        };
        let addr = gw.addr;
        let body =
            json!({"model": "q", "stream": true, "messages": [{"role": "user", "content": tag}]});
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(addr);
            send(&mut c, secret, Surface::OpenAi, &body).await;
            (tag, c.read_response().await)
        }));
        if i < 2 {
            wait_mock_in_flight(&mock, i as u64 + 1).await;
        } else {
            wait_queue_depth(&gw, "q", (i - 1) as f64).await;
        }
        let metrics = gw.metrics().await;
        max_gauge = max_gauge.max(metrics.sum(
            "ezrouter_upstream_in_flight",
            &[("provider", "q"), ("key", "only")],
        ));
    }
    assert_eq!(
        mock.stats.requests(),
        2,
        "8 requests wait in the gateway's queue, not upstream"
    );
    assert_eq!(max_gauge, 2.0);
    for task in tasks {
        let (tag, r) = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("every queued client is served")
            .unwrap();
        assert_eq!(r.status, 200, "{tag}: {}", r.text());
        assert_clean_openai_stream(&r);
    }
    assert_eq!(mock.stats.requests(), 10);
    assert!(
        mock.stats.max_in_flight() <= 2,
        "the upstream saw {} requests at once",
        mock.stats.max_in_flight()
    );
    assert_eq!(mock.stats.max_in_flight(), 2, "both slots were used");

    let served: Vec<String> = mock
        .stats
        .recent_requests()
        .iter()
        .map(|r| {
            r.body_json().unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let position = |tag: &str| served.iter().position(|t| t == tag).unwrap() + 1;
    assert_eq!(&served[..2], ["heavy-0", "heavy-1"], "{served:?}");
    // Round-robin across client keys: heavy-2, light-0, heavy-3, light-1, heavy-4, ... (two
    // grants at the same instant may reach the upstream in either order). FIFO would serve the
    // light client 9th and 10th.
    assert!(
        position("light-0") <= 5 && position("light-1") <= 7,
        "the light client waited behind the heavy one: {served:?}"
    );
    assert_idle(&gw, &mock).await;
}

/// With a 1 s max wait (set on the model) and a stuck upstream holding every slot, the extra
/// clients get the overloaded error after about 1 s: OpenAI 503 + Retry-After, Anthropic 529.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_wait_expires_with_an_overloaded_error() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.stuck]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "hang", id = "stuck", max_concurrency = 2 }}]
[models.stuck]
routes = [{{ provider = "stuck" }}]
max_wait_ms = 1000
"#
    )));
    let mut holders = Vec::new();
    for i in 0..2 {
        let mut c = gw.client();
        send(&mut c, HEAVY, Surface::OpenAi, &chat("stuck", true)).await;
        wait_mock_in_flight(&mock, i + 1).await;
        holders.push(c);
    }
    let mut waiters = Vec::new();
    for (surface, stream) in [
        (Surface::OpenAi, false),
        (Surface::OpenAi, true),
        (Surface::Anthropic, false),
    ] {
        let addr = gw.addr;
        waiters.push(tokio::spawn(async move {
            let mut c = Client::new(addr);
            let t = Instant::now();
            let r = call_as(&mut c, LIGHT, surface, "stuck", stream).await;
            (surface, t.elapsed(), r)
        }));
    }
    for w in waiters {
        let (surface, took, r) = tokio::time::timeout(Duration::from_secs(5), w)
            .await
            .expect("a queued client never hangs")
            .unwrap();
        assert!(
            took >= Duration::from_millis(800) && took <= Duration::from_millis(2500),
            "{surface:?}: overloaded after {took:?}"
        );
        let v = r.json();
        match surface {
            Surface::OpenAi => {
                assert_eq!(r.status, 503, "{}", r.text());
                assert_openai_envelope(&v);
                assert!(
                    retry_after(&r).is_some_and(|s| s >= 1),
                    "Retry-After: {:?}",
                    r.headers
                );
            }
            Surface::Anthropic => {
                assert_eq!(r.status, 529, "{}", r.text());
                assert_anthropic_envelope(&v, "overloaded_error");
            }
        }
    }
    assert_eq!(
        mock.stats.requests(),
        2,
        "expired waiters never reached the upstream"
    );
    // The expired waiters left the queue (while the stuck requests still hold every slot).
    wait_queue_depth(&gw, "stuck", 0.0).await;
    drop(holders);
    assert_idle(&gw, &mock).await;
}

/// A full queue answers at once with the overloaded error (no wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_queue_rejects_at_once() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.stuck]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "hang", id = "stuck", max_concurrency = 1 }}]
queue = {{ max_len = 1, max_wait_ms = 10000 }}
[models.stuck]
routes = [{{ provider = "stuck" }}]
"#
    )));
    let mut holder = gw.client();
    send(&mut holder, HEAVY, Surface::OpenAi, &chat("stuck", false)).await;
    wait_mock_in_flight(&mock, 1).await;
    let mut queued = gw.client();
    send(&mut queued, HEAVY, Surface::OpenAi, &chat("stuck", false)).await;
    wait_queue_depth(&gw, "stuck", 1.0).await;

    let mut c = gw.client();
    let t = Instant::now();
    let r = call_as(&mut c, LIGHT, Surface::Anthropic, "stuck", false).await;
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(r.status, 529, "{}", r.text());
    assert_anthropic_envelope(&r.json(), "overloaded_error");
    let r = call_as(&mut c, LIGHT, Surface::OpenAi, "stuck", false).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(retry_after(&r).is_some());

    queued.hang_up();
    wait_queue_depth(&gw, "stuck", 0.0).await;
    holder.hang_up();
    assert_idle(&gw, &mock).await;
}

// ---------------------------------------------------------------------------------------------
// Cancellation
// ---------------------------------------------------------------------------------------------

/// Polls the mock for its `n`-th client close and returns how long after `dropped` it came.
async fn upstream_close_delay(mock: &MockServer, n: u64, dropped: Instant) -> Duration {
    wait_for(
        Duration::from_secs(2),
        "the upstream to see its connection closed",
        || async move { mock.stats.client_closed() >= n },
    )
    .await;
    let closed = mock.stats.last_client_close().expect("a close time");
    closed.saturating_duration_since(dropped)
}

/// The client hangs up during a slow stream: the upstream connection is closed within 100 ms,
/// nothing is retried, and the partial usage is still recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_hang_up_mid_stream_aborts_the_upstream() {
    let mock = start().await;
    let m = mock.addr;
    let paced = r#"headers = { "x-mock-chunks" = "20", "x-mock-chunk-delay-ms" = "300" }"#;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.oai]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["ok-oai", "ok-oai-2"]
{paced}
[providers.ant]
kind = "anthropic"
base_url = "http://{m}"
keys = ["ok-ant"]
{paced}
[models.o]
routes = [{{ provider = "oai" }}]
[models.a]
routes = [{{ provider = "ant" }}]
"#
    )));

    let mut c = gw.client();
    send(&mut c, HEAVY, Surface::OpenAi, &chat("o", true)).await;
    let got = c.read_until(b"data:", Duration::from_secs(2)).await;
    assert!(
        String::from_utf8_lossy(&got).contains("data:"),
        "the stream started"
    );
    c.hang_up();
    let dropped = Instant::now();
    let delay = upstream_close_delay(&mock, 1, dropped).await;
    assert!(
        delay < Duration::from_millis(100),
        "upstream closed {delay:?} after the client"
    );
    assert_idle(&gw, &mock).await;
    assert_eq!(mock.stats.requests(), 1, "no retry for a client that left");

    // Anthropic passthrough: `message_start` carries the input tokens, recorded although the
    // client left before the end.
    let mut c = gw.client();
    send(&mut c, HEAVY, Surface::Anthropic, &messages("a", true)).await;
    let got = c
        .read_until(b"content_block_delta", Duration::from_secs(2))
        .await;
    assert!(String::from_utf8_lossy(&got).contains("message_start"));
    c.hang_up();
    let dropped = Instant::now();
    let delay = upstream_close_delay(&mock, 2, dropped).await;
    assert!(
        delay < Duration::from_millis(100),
        "upstream closed {delay:?} after the client"
    );
    assert_idle(&gw, &mock).await;

    let metrics = gw.metrics().await;
    assert_eq!(
        metrics.sum("ezrouter_requests_total", &[("status", "client_gone")]),
        2.0
    );
    assert!(
        metrics.sum(
            "ezrouter_tokens_total",
            &[("provider", "ant"), ("kind", "input")]
        ) > 0.0,
        "partial usage recorded"
    );
}

/// The client hangs up while the gateway waits for a slow upstream's first byte: the upstream
/// connection is closed within 100 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_hang_up_before_the_first_byte_aborts_the_upstream() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.slow]
kind = "openai"
base_url = "http://{m}/v1"
keys = ["slow-5000", "slow-5001"]
[models.slow]
routes = [{{ provider = "slow" }}]
"#
    )));
    for (n, (surface, stream)) in [(Surface::OpenAi, false), (Surface::Anthropic, true)]
        .into_iter()
        .enumerate()
    {
        let mut c = gw.client();
        send(&mut c, HEAVY, surface, &surface.body("slow", stream)).await;
        wait_mock_in_flight(&mock, 1).await;
        c.hang_up();
        let dropped = Instant::now();
        let delay = upstream_close_delay(&mock, n as u64 + 1, dropped).await;
        assert!(
            delay < Duration::from_millis(100),
            "{surface:?}: upstream closed {delay:?} after the client"
        );
        assert_idle(&gw, &mock).await;
    }
    assert_eq!(mock.stats.requests(), 2, "no retry for a client that left");
}

/// The client hangs up while queued: its queue slot is freed at once, and its request never
/// reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_hang_up_while_queued_frees_the_slot() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.one]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "seq-slow-1000,ok", id = "one", max_concurrency = 1 }}]
[models.one]
routes = [{{ provider = "one" }}]
"#
    )));
    let addr = gw.addr;
    let holder = tokio::spawn(async move {
        let mut c = Client::new(addr);
        let body = json!({"model": "one", "messages": [{"role": "user", "content": "holder"}]});
        send(&mut c, HEAVY, Surface::OpenAi, &body).await;
        c.read_response().await
    });
    wait_mock_in_flight(&mock, 1).await;

    let mut queued = gw.client();
    let body =
        json!({"model": "one", "stream": true, "messages": [{"role": "user", "content": "gone"}]});
    send(&mut queued, LIGHT, Surface::OpenAi, &body).await;
    wait_queue_depth(&gw, "one", 1.0).await;
    queued.hang_up();
    let dropped = Instant::now();
    wait_queue_depth(&gw, "one", 0.0).await;
    assert!(
        dropped.elapsed() < Duration::from_millis(300),
        "queue slot freed {:?} after the hang-up",
        dropped.elapsed()
    );

    // A later client takes the place; the abandoned request never reaches the upstream.
    let later = tokio::spawn(async move {
        let mut c = Client::new(addr);
        let body = json!({"model": "one", "messages": [{"role": "user", "content": "later"}]});
        send(&mut c, LIGHT, Surface::OpenAi, &body).await;
        c.read_response().await
    });
    wait_queue_depth(&gw, "one", 1.0).await;
    let r = holder.await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let r = tokio::time::timeout(Duration::from_secs(5), later)
        .await
        .expect("served")
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let served: Vec<String> = mock
        .stats
        .recent_requests()
        .iter()
        .map(|r| {
            r.body_json().unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(served, ["holder", "later"]);
    assert_idle(&gw, &mock).await;
}

// ---------------------------------------------------------------------------------------------
// Reload
// ---------------------------------------------------------------------------------------------

/// A config reload (SIGHUP) keeps a cooling key cooling and gives a rejected key another chance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reload_keeps_cooldowns_and_reenables_rejected_keys() {
    let mock = start().await;
    let m = mock.addr;
    let body = |extra: &str| {
        config(&format!(
            r#"
[providers.p]
kind = "openai"
base_url = "http://{m}/v1"
keys = [
  {{ key = "fail-429-30", id = "cool", weight = 3 }},
  {{ key = "seq-401,ok", id = "reject", weight = 2 }},
  {{ key = "ok-spare", id = "spare" }},
]
[models.m]
routes = [{{ provider = "p" }}]
{extra}
"#
        ))
    };
    let gw = Gateway::start(&body(""));
    let mut c = gw.client();
    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        upstream_keys(&mock),
        ["fail-429-30", "seq-401,ok", "ok-spare"]
    );
    let r = call(&mut c, Surface::OpenAi, "m", false).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        upstream_keys(&mock)[3..],
        ["ok-spare"],
        "cooling and rejected keys are skipped"
    );

    gw.rewrite_and_sighup(&body("[models.other]\nroutes = [{ provider = \"p\" }]\n"));
    wait_for(Duration::from_secs(3), "the reload", || async {
        gw.metrics()
            .await
            .sum("ezrouter_config_reloads_total", &[("result", "ok")])
            >= 1.0
    })
    .await;
    let r = call(&mut c, Surface::OpenAi, "other", false).await;
    assert_eq!(r.status, 200, "the reloaded config is live: {}", r.text());
    let r = call(&mut c, Surface::Anthropic, "m", false).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        mock.stats.key_requests("fail-429-30"),
        1,
        "the cooling key still cools after the reload"
    );
    assert_eq!(
        mock.stats.key_requests("seq-401,ok"),
        3,
        "the rejected key is back in rotation after the reload"
    );
    assert_eq!(mock.stats.key_requests("ok-spare"), 2);
    assert_idle(&gw, &mock).await;
}

// ---------------------------------------------------------------------------------------------
// Health and selection details
// ---------------------------------------------------------------------------------------------

/// A stream cut by the upstream after the first byte cannot be retried, but it is still a failure
/// of that key (a reset, an idle timeout): it counts toward the key's circuit breaker, so a key
/// that keeps breaking streams is taken out of rotation like one that answers 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mid_stream_failures_count_toward_the_circuit_breaker() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.p]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "fail-reset-2", id = "resetting", weight = 2 }}, {{ key = "ok-steady", id = "steady" }}]
headers = {{ "x-mock-chunks" = "4", "x-mock-chunk-delay-ms" = "20" }}
breaker = {{ failures = 2, window_ms = 10000, open_ms = 30000 }}
[models.m]
routes = [{{ provider = "p" }}]
"#
    )));
    let mut c = gw.client();
    for _ in 0..2 {
        let r = call(&mut c, Surface::OpenAi, "m", true).await;
        assert_eq!(r.status, 200);
        assert!(
            json_events(&r).last().unwrap().1.get("error").is_some(),
            "{}",
            r.text()
        );
    }
    let r = call(&mut c, Surface::OpenAi, "m", true).await;
    assert_eq!(
        mock.stats.key_requests("fail-reset-2"),
        2,
        "two broken streams open the key's circuit; the third request goes elsewhere"
    );
    assert_clean_openai_stream(&r);
    assert_eq!(
        gw.metrics().await.sum(
            "ezrouter_upstream_key_events_total",
            &[("key", "resetting"), ("event", "circuit_open")]
        ),
        1.0
    );
    assert_idle(&gw, &mock).await;
}

/// A request that failed on key A and then waits in the queue for key B is not handed A's next
/// free slot: failover goes to another key, never back to one this request already failed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_request_is_not_handed_a_key_it_already_failed_on() {
    let mock = start().await;
    let m = mock.addr;
    // A: first request slow (holds a slot for 1 s), then 500 forever; B: one slot, held 1.5 s.
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.p]
kind = "openai"
base_url = "http://{m}/v1"
keys = [
  {{ key = "seq-slow-1000,500", id = "a", max_concurrency = 2 }},
  {{ key = "seq-slow-1500,ok", id = "b", max_concurrency = 1, weight = 3 }},
]
[models.m]
routes = [{{ provider = "p" }}]
"#
    )));
    let addr = gw.addr;
    let spawn = || {
        tokio::spawn(async move {
            let mut c = Client::new(addr);
            call(&mut c, Surface::OpenAi, "m", false).await
        })
    };
    let on_b = spawn(); // B (weight 3), held 1.5 s
    wait_mock_in_flight(&mock, 1).await;
    let on_a = spawn(); // A (B is full), held 1 s
    wait_mock_in_flight(&mock, 2).await;
    let failing_over = spawn(); // A: 500; then waits for B
    wait_queue_depth(&gw, "p", 1.0).await;
    assert_eq!(mock.stats.key_requests("seq-slow-1000,500"), 2);

    for task in [on_b, on_a, failing_over] {
        let r = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(
        mock.stats.key_requests("seq-slow-1000,500"),
        2,
        "the request that failed on A was handed A again when A's other slot freed: {:?}",
        upstream_keys(&mock)
    );
    assert_eq!(mock.stats.key_requests("seq-slow-1500,ok"), 2);
    assert_idle(&gw, &mock).await;
}

/// RPM and TPM caps: a key over its cap is skipped for another key, and the cap also holds for
/// requests that waited in the queue (a freed slot handed to a waiter is still a request).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_caps_steer_requests_and_hold_for_queued_requests() {
    let mock = start().await;
    let m = mock.addr;
    let gw = Gateway::start(&config(&format!(
        r#"
[providers.r]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "ok-rpm", id = "capped", rpm = 2, weight = 3 }}, {{ key = "ok-rpm-spare", id = "spare" }}]
[providers.t]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "ok-tpm", id = "capped", tpm = 5, weight = 3 }}, {{ key = "ok-tpm-spare", id = "spare" }}]
[providers.h]
kind = "openai"
base_url = "http://{m}/v1"
keys = [{{ key = "seq-slow-600,ok", id = "held", max_concurrency = 1, rpm = 2 }}]
queue = {{ max_wait_ms = 3000 }}
[models.r]
routes = [{{ provider = "r" }}]
[models.t]
routes = [{{ provider = "t" }}]
[models.h]
routes = [{{ provider = "h" }}]
"#
    )));
    let mut c = gw.client();
    for _ in 0..3 {
        assert_eq!(call(&mut c, Surface::OpenAi, "r", false).await.status, 200);
    }
    assert_eq!(mock.stats.key_requests("ok-rpm"), 2, "rpm = 2");
    assert_eq!(mock.stats.key_requests("ok-rpm-spare"), 1);
    for _ in 0..2 {
        assert_eq!(call(&mut c, Surface::OpenAi, "t", false).await.status, 200);
    }
    assert_eq!(
        mock.stats.key_requests("ok-tpm"),
        1,
        "the first answer used more than tpm = 5 tokens"
    );

    // One key, one slot, rpm = 2: three requests (two queued) must not all reach the upstream
    // within the minute.
    let addr = gw.addr;
    let mut tasks = Vec::new();
    for i in 0..3 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(addr);
            call(&mut c, Surface::OpenAi, "h", false).await
        }));
        if i == 0 {
            wait_for(
                Duration::from_secs(2),
                "the first request upstream",
                || async { mock.stats.key_requests("seq-slow-600,ok") == 1 },
            )
            .await;
        } else {
            wait_queue_depth(&gw, "h", i as f64).await;
        }
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let r = tokio::time::timeout(Duration::from_secs(6), t)
            .await
            .expect("answered")
            .unwrap();
        statuses.push(r.status);
    }
    assert_eq!(
        mock.stats.key_requests("seq-slow-600,ok"),
        2,
        "rpm = 2 but the upstream got more (statuses {statuses:?})"
    );
    assert_idle(&gw, &mock).await;
}
