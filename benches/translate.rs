//! Request translation cost per dialect pair (client -> upstream), ns per request, for a small
//! chat request and an agent-sized one (system prompt, tools, a tool call and its result).
//! `cargo bench --bench translate`

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ezrouter_protocol::caps::Capabilities;
use ezrouter_protocol::{translate_request, Dialect, Target};

#[path = "common/bodies.rs"]
mod bodies;

const DIALECTS: [Dialect; 3] = [Dialect::OpenAi, Dialect::Anthropic, Dialect::Gemini];

fn translation(c: &mut Criterion) {
    let caps = Capabilities::default();
    let mut group = c.benchmark_group("translate_request");
    for size in bodies::SIZES {
        for client in DIALECTS {
            let body = bodies::body(client, size, true);
            for upstream in DIALECTS.into_iter().filter(|&d| d != client) {
                let target = Target {
                    dialect: upstream,
                    model: "m-up",
                    caps: &caps,
                    origin: "up/m-up",
                };
                translate_request(client, &body, "m", &target)
                    .unwrap_or_else(|e| panic!("{client:?}->{upstream:?} {size}: {}", e.message));
                group.throughput(Throughput::Bytes(body.len() as u64));
                let id =
                    BenchmarkId::new(format!("{}->{}", client.as_str(), upstream.as_str()), size);
                group.bench_with_input(id, &body, |b, body| {
                    b.iter(|| {
                        translate_request(client, std::hint::black_box(body), "m", &target)
                            .expect("translates")
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = translation
}
criterion_main!(benches);
