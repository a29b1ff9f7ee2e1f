//! Standalone mock upstream: `cargo run -p ezrouter-mock --example mock_upstream -- [LISTEN] [THREADS] [CHUNKS] [CHUNK_DELAY_MS]`.

use std::time::Duration;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let listen = args.first().map_or("127.0.0.1:9000", String::as_str);
    let threads = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    let mut config = ezrouter_mock::MockConfig::default();
    if let Some(n) = args.get(2).and_then(|s| s.parse().ok()) {
        config.chunks = n;
    }
    if let Some(ms) = args.get(3).and_then(|s| s.parse().ok()) {
        config.chunk_delay = Duration::from_millis(ms);
    }
    ezrouter_mock::run_standalone(listen, config, threads)
}
