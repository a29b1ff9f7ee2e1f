//! The per-request work ezrouter does before any upstream byte: route the path, authenticate
//! (KeyStore of 1,000 keys), probe the body (model, stream, user), check the allowlist, look the
//! model up, and splice the body for the upstream (`Probe::rewrite`). ns per request.
//! `cargo bench --bench hot_path`

use std::collections::HashMap;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ezrouter::gateway::routes;
use ezrouter_plugins::keys::sha256;
use ezrouter_plugins::{
    run_on_body, run_on_request, Auth, Chain, ClientKey, Glob, HeaderMap, KeyStore, ModelAllowlist,
    Plugin, RequestCtx,
};
use ezrouter_protocol::probe::{probe, Operation};
use ezrouter_protocol::Dialect;
use http::Method;

#[path = "common/bodies.rs"]
mod bodies;

fn keystore() -> Arc<KeyStore> {
    Arc::new(KeyStore::new((0..1000).map(|i| ClientKey {
        id: format!("client-{i}").into(),
        secret_sha256: sha256(format!("sk-bench-{i}").as_bytes()),
        models: if i % 2 == 0 {
            vec![Glob::Any]
        } else {
            vec![Glob::new("gpt-*"), Glob::new("claude-*"), Glob::new("m")]
        },
    })))
}

fn headers(secret: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "127.0.0.1:8080".parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("user-agent", "OpenAI/Python 1.99.0".parse().unwrap());
    h.insert("accept", "application/json".parse().unwrap());
    h.insert("content-length", "1234".parse().unwrap());
    h.insert("authorization", format!("Bearer {secret}").parse().unwrap());
    h
}

fn hot_path(c: &mut Criterion) {
    let keys = keystore();
    let auth = Auth::new(keys.clone());
    let chain: Chain = vec![Arc::new(Auth::new(keys.clone())), Arc::new(ModelAllowlist)];
    let hdrs = headers("sk-bench-501"); // an odd key: glob allowlist, not `*`
    let models: HashMap<String, u32> = (0..50)
        .map(|i| (format!("model-{i}"), i))
        .chain([("m".to_string(), 99)])
        .collect();

    let mut g = c.benchmark_group("hot_path");
    g.bench_function("route", |b| {
        b.iter(|| routes::route(&Method::POST, std::hint::black_box("/v1/chat/completions")))
    });
    g.bench_function("keystore_find_1000", |b| {
        b.iter(|| {
            keys.find(std::hint::black_box(b"sk-bench-501"))
                .expect("found")
        })
    });
    g.bench_function("auth_on_request", |b| {
        b.iter(|| {
            let mut req = RequestCtx::new(Dialect::OpenAi);
            auth.on_request(&hdrs, &mut req).expect("auth");
            req
        })
    });
    g.bench_function("allowlist_glob", |b| {
        let mut req = RequestCtx::new(Dialect::OpenAi);
        auth.on_request(&hdrs, &mut req).expect("auth");
        req.model = Some("claude-sonnet-4-5".into());
        b.iter(|| {
            ModelAllowlist
                .on_body(std::hint::black_box(&mut req))
                .expect("allowed")
        })
    });
    for size in bodies::SIZES {
        let body = bodies::body(Dialect::OpenAi, size, true);
        g.bench_with_input(BenchmarkId::new("probe", size), &body, |b, body| {
            b.iter(|| probe(Operation::ChatCompletions, body).expect("probe"))
        });
        let p = probe(Operation::ChatCompletions, &body).expect("probe");
        g.bench_with_input(
            BenchmarkId::new("rewrite_same_model", size),
            &body,
            |b, body| b.iter(|| p.rewrite(body, "m", false).len()),
        );
        g.bench_with_input(
            BenchmarkId::new("rewrite_model_and_usage", size),
            &body,
            |b, body| b.iter(|| p.rewrite(body, "m-upstream", true).len()),
        );
        // Everything above, in the gateway's order, for one request.
        g.bench_with_input(
            BenchmarkId::new("full_pass_through", size),
            &body,
            |b, body| {
                b.iter(|| {
                    let endpoint = routes::route(&Method::POST, "/v1/chat/completions");
                    let mut req = RequestCtx::new(Dialect::OpenAi);
                    run_on_request(&chain, &hdrs, &mut req).expect("auth");
                    let probed = probe(Operation::ChatCompletions, body).expect("probe");
                    req.model = Some(probed.model.to_string());
                    req.end_user = probed.end_user.clone();
                    run_on_body(&chain, &mut req).expect("allowed");
                    let model = models.get(probed.model.as_ref()).expect("model");
                    let out = probed.rewrite(body, "m", false).len();
                    (endpoint, req, *model, out)
                })
            },
        );
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = hot_path
}
criterion_main!(benches);
