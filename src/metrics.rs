//! Prometheus metrics, registered once in the default registry and served on the admin port.
//! Labels are bounded: endpoint, status, provider and token kind; never a client key or model
//! string a client chose.

use std::time::Duration;

use ezrouter_protocol::Usage;
use once_cell::sync::Lazy;
use prometheus::{register_histogram_vec, register_int_counter_vec, HistogramVec, IntCounterVec};

static REQUESTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "ezrouter_requests_total",
        "Requests answered, by endpoint, status and provider",
        &["endpoint", "status", "provider"]
    )
    .expect("metric registers once")
});

static DURATION: Lazy<HistogramVec> = Lazy::new(|| {
    register_histogram_vec!(
        "ezrouter_request_duration_seconds",
        "Time from request to the end of the response",
        &["endpoint"],
        vec![0.001, 0.005, 0.025, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]
    )
    .expect("metric registers once")
});

static TOKENS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "ezrouter_tokens_total",
        "Tokens reported by upstreams, by provider, client key id and kind",
        &["provider", "key", "kind"]
    )
    .expect("metric registers once")
});

pub static CONFIG_RELOADS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "ezrouter_config_reloads_total",
        "Config reloads, by result",
        &["result"]
    )
    .expect("metric registers once")
});

pub static CLIENT_DISCONNECTS: Lazy<prometheus::IntCounter> = Lazy::new(|| {
    prometheus::register_int_counter!(
        "ezrouter_client_disconnects_total",
        "Requests whose client left before the end"
    )
    .expect("metric registers once")
});

fn status_label(status: u16) -> &'static str {
    match status {
        0 => "client_gone",
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        529 => "529",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

static FAILOVERS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "ezrouter_failovers_total",
        "Attempts abandoned for another key or route, by cause",
        &["provider", "cause"]
    )
    .expect("metric registers once")
});

pub fn record_failover(provider: &str, cause: &str) {
    FAILOVERS.with_label_values(&[provider, cause]).inc();
}

/// Records one finished request.
pub fn record_request(
    endpoint: &str,
    status: u16,
    provider: &str,
    key: &str,
    elapsed: Duration,
    usage: Option<&Usage>,
) {
    REQUESTS
        .with_label_values(&[endpoint, status_label(status), provider])
        .inc();
    DURATION
        .with_label_values(&[endpoint])
        .observe(elapsed.as_secs_f64());
    if status == 0 {
        CLIENT_DISCONNECTS.inc();
    }
    if let Some(u) = usage {
        for (kind, n) in [
            ("input", u.input),
            ("cache_read", u.cache_read),
            ("cache_write", u.cache_write),
            ("output", u.output),
            ("reasoning", u.reasoning),
        ] {
            if n > 0 {
                TOKENS.with_label_values(&[provider, key, kind]).inc_by(n);
            }
        }
    }
}

/// The text exposition of every registered metric.
pub fn render() -> Vec<u8> {
    use prometheus::Encoder;
    let mut out = Vec::new();
    prometheus::TextEncoder::new()
        .encode(&prometheus::gather(), &mut out)
        .expect("text encoding cannot fail");
    out
}
