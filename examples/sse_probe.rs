//! A small load prober for LLM streams (used by bench/run.sh): N keep-alive connections, each
//! sending the same POST again and again for a duration (or until a total count), measuring per
//! stream the time to the first SSE data event (TTFB), the gaps between deliveries of data
//! events, and the whole latency. It counts errors (connect, status != 2xx, read failures and
//! timeouts), stalled streams (a gap longer than `--stall-ms`) and truncated streams (no terminal
//! event: `data: [DONE]` or `message_stop`). Non-stream JSON answers are measured too (TTFB is
//! then the first response byte). Prints one JSON line. `--samples FILE` also writes one line per
//! completed request (`start_us ttfb_us latency_us nth`: start since the prober began, and which
//! request of its connection it was), to see where a tail comes from.
//!
//! Raw HTTP/1.1 over tokio sockets (Content-Length and chunked bodies), no HTTP client crate, so
//! it holds 10,000 connections in a few MB (raise `ulimit -n` first).
//!
//! ```text
//! cargo run --release --example sse_probe -- --url http://127.0.0.1:8080/v1/chat/completions \
//!   -H 'authorization: Bearer sk-bench' --body '{"model":"m","messages":[...],"stream":true}' \
//!   --concurrency 256 --duration-s 5
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser, Debug, Clone)]
#[command(about = "Concurrent SSE/JSON prober: TTFB, inter-chunk gaps, stalls, truncation")]
struct Args {
    /// `http://HOST:PORT/PATH` (plain HTTP/1.1 only; benchmarks target 127.0.0.1).
    #[arg(long)]
    url: String,
    /// Extra request header `name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// Request body, or `@FILE`.
    #[arg(long)]
    body: String,
    /// Concurrent connections (each runs one request at a time, keep-alive).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Run for this long after the ramp (ignored when --count is given).
    #[arg(long, default_value_t = 5.0)]
    duration_s: f64,
    /// Stop after this many requests in total instead of a duration.
    #[arg(long)]
    count: Option<usize>,
    /// Spread the connection starts over this window (avoids a SYN storm at 10k).
    #[arg(long, default_value_t = 0)]
    ramp_ms: u64,
    /// A gap between two data deliveries longer than this marks the stream as stalled.
    #[arg(long, default_value_t = 1000)]
    stall_ms: u64,
    /// Give up on one request after this long (counted as an error).
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Write every completed request's timings to this file, one line each.
    #[arg(long)]
    samples: Option<String>,
}

#[derive(Default)]
struct Samples {
    /// `(start_us, ttfb_us, latency_us, nth)` per completed request, with `--samples` only.
    trace: Vec<(u64, u32, u32, u32)>,
    ttfb: Vec<u32>,
    latency: Vec<u32>,
    gaps: Vec<u32>,
    ok: usize,
    errors: usize,
    truncated: usize,
    stalled: usize,
    events: u64,
    error_kinds: std::collections::BTreeMap<String, usize>,
}

impl Samples {
    fn merge(&mut self, o: Samples) {
        self.trace.extend(o.trace);
        self.ttfb.extend(o.ttfb);
        self.latency.extend(o.latency);
        self.gaps.extend(o.gaps);
        self.ok += o.ok;
        self.errors += o.errors;
        self.truncated += o.truncated;
        self.stalled += o.stalled;
        self.events += o.events;
        for (k, v) in o.error_kinds {
            *self.error_kinds.entry(k).or_default() += v;
        }
    }
    fn error(&mut self, kind: &str) {
        self.errors += 1;
        *self.error_kinds.entry(kind.to_string()).or_default() += 1;
    }
}

struct Shared {
    addr: String,
    request: Vec<u8>,
    stall: Duration,
    timeout: Duration,
    deadline: Option<Instant>,
    remaining: Option<AtomicUsize>,
    open: AtomicUsize,
    peak_open: AtomicUsize,
    stop: AtomicBool,
    /// The prober's start, and whether to keep a trace (`--samples`).
    started: Instant,
    trace: bool,
}

impl Shared {
    /// Takes a ticket for one more request, or says stop.
    fn next(&self) -> bool {
        if self.stop.load(Ordering::Relaxed) {
            return false;
        }
        if let Some(d) = self.deadline {
            if Instant::now() >= d {
                return false;
            }
        }
        match &self.remaining {
            Some(r) => r
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
            None => true,
        }
    }
}

/// What one response looked like.
enum Outcome {
    Ok {
        ttfb: Duration,
        gaps: Vec<u32>,
        events: u64,
        terminal: bool,
        keep_alive: bool,
    },
    Err(&'static str),
    /// A complete answer with a non-2xx status.
    Status(u16),
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Incremental scanner of a decoded SSE body: counts event ends and spots terminal events.
#[derive(Default)]
struct SseScan {
    tail: Vec<u8>,
    events: u64,
    data_seen: bool,
    terminal: bool,
}

impl SseScan {
    /// Returns whether `bytes` completed at least one data event.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(bytes);
        let skip = window.len() - bytes.len(); // bytes already scanned for event ends
        let mut new_events = 0;
        let mut i = skip.saturating_sub(1);
        while i + 1 < window.len() {
            if window[i] == b'\n' && window[i + 1] == b'\n' && i + 1 >= skip {
                new_events += 1;
            }
            i += 1;
        }
        if !self.terminal
            && (find(&window, b"data: [DONE]").is_some()
                || find(&window, b"message_stop").is_some())
        {
            self.terminal = true;
        }
        if !self.data_seen && find(&window, b"data:").is_some() {
            self.data_seen = true;
        }
        self.events += new_events;
        let keep = window.len().min(16);
        self.tail = window[window.len() - keep..].to_vec();
        new_events > 0 && self.data_seen
    }
}

/// Chunked transfer decoding, incremental.
enum Chunked {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
}

struct Conn {
    sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn fill(&mut self) -> Result<usize, &'static str> {
        let mut tmp = [0u8; 16 * 1024];
        match self.sock.read(&mut tmp).await {
            Ok(0) => Err("eof"),
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                Ok(n)
            }
            Err(_) => Err("read"),
        }
    }
}

async fn one_request(c: &mut Conn, sh: &Shared) -> Outcome {
    let t0 = Instant::now();
    if c.sock.write_all(&sh.request).await.is_err() {
        return Outcome::Err("write");
    }
    // Response header.
    let head_end = loop {
        if let Some(p) = find(&c.buf, b"\r\n\r\n") {
            break p + 4;
        }
        if let Err(e) = c.fill().await {
            return Outcome::Err(e);
        }
    };
    let first_byte = t0.elapsed();
    let head = String::from_utf8_lossy(&c.buf[..head_end]).to_ascii_lowercase();
    c.buf.drain(..head_end);
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut content_length = None;
    let mut chunked = false;
    let mut keep_alive = !head.starts_with("http/1.0");
    let mut sse = false;
    for line in head.lines().skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        match k.trim() {
            "content-length" => content_length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.contains("chunked"),
            "connection" if v.contains("close") => keep_alive = false,
            "connection" if v.contains("keep-alive") => keep_alive = true,
            "content-type" => sse = v.starts_with("text/event-stream"),
            _ => {}
        }
    }
    let mut scan = SseScan::default();
    let mut ttfb = if sse { None } else { Some(first_byte) };
    let mut last = Instant::now();
    let mut gaps = Vec::new();
    let mut on_data =
        |bytes: &[u8], scan: &mut SseScan, ttfb: &mut Option<Duration>, gaps: &mut Vec<u32>| {
            if !sse {
                return;
            }
            if scan.push(bytes) {
                let now = Instant::now();
                match ttfb {
                    None => *ttfb = Some(now - t0),
                    Some(_) => gaps.push((now - last).as_micros() as u32),
                }
                last = now;
            }
        };
    if let Some(len) = content_length.filter(|_| !chunked) {
        while c.buf.len() < len {
            if let Err(e) = c.fill().await {
                return Outcome::Err(e);
            }
        }
        let body: Vec<u8> = c.buf.drain(..len).collect();
        on_data(&body, &mut scan, &mut ttfb, &mut gaps);
    } else if chunked {
        let mut state = Chunked::Size;
        loop {
            // Consume what is buffered, then read more.
            loop {
                match state {
                    Chunked::Size => {
                        let Some(p) = find(&c.buf, b"\r\n") else {
                            break;
                        };
                        let line = std::str::from_utf8(&c.buf[..p]).unwrap_or("");
                        let size =
                            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16);
                        c.buf.drain(..p + 2);
                        state = match size {
                            Ok(0) => Chunked::Trailer,
                            Ok(n) => Chunked::Data(n),
                            Err(_) => return Outcome::Err("bad_chunk"),
                        };
                    }
                    Chunked::Data(n) => {
                        if c.buf.is_empty() {
                            break;
                        }
                        let take = n.min(c.buf.len());
                        let data: Vec<u8> = c.buf.drain(..take).collect();
                        on_data(&data, &mut scan, &mut ttfb, &mut gaps);
                        state = if take == n {
                            Chunked::DataEnd
                        } else {
                            Chunked::Data(n - take)
                        };
                    }
                    Chunked::DataEnd => {
                        if c.buf.len() < 2 {
                            break;
                        }
                        c.buf.drain(..2);
                        state = Chunked::Size;
                    }
                    Chunked::Trailer => {
                        let Some(p) = find(&c.buf, b"\r\n") else {
                            break;
                        };
                        c.buf.drain(..p + 2);
                        if p == 0 {
                            state = Chunked::Done;
                        }
                    }
                    Chunked::Done => break,
                }
            }
            if matches!(state, Chunked::Done) {
                break;
            }
            if let Err(e) = c.fill().await {
                return Outcome::Err(if e == "eof" { "eof_mid_body" } else { e });
            }
        }
    } else {
        // Close-delimited.
        loop {
            let data = std::mem::take(&mut c.buf);
            on_data(&data, &mut scan, &mut ttfb, &mut gaps);
            match c.fill().await {
                Ok(_) => {}
                Err("eof") => break,
                Err(e) => return Outcome::Err(e),
            }
        }
        keep_alive = false;
    }
    if !(200..300).contains(&status) {
        return Outcome::Status(status);
    }
    Outcome::Ok {
        ttfb: ttfb.unwrap_or(first_byte),
        gaps,
        events: scan.events,
        terminal: !sse || scan.terminal,
        keep_alive,
    }
}

async fn worker(sh: Arc<Shared>, delay: Duration) -> Samples {
    let mut s = Samples::default();
    tokio::time::sleep(delay).await;
    let mut conn: Option<Conn> = None;
    // Requests completed on the current connection.
    let mut nth = 0u32;
    while sh.next() {
        if conn.is_none() {
            match TcpStream::connect(&sh.addr).await {
                Ok(sock) => {
                    let _ = sock.set_nodelay(true);
                    nth = 0;
                    conn = Some(Conn {
                        sock,
                        buf: Vec::with_capacity(16 * 1024),
                    });
                }
                Err(_) => {
                    s.error("connect");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected");
        let open = sh.open.fetch_add(1, Ordering::Relaxed) + 1;
        sh.peak_open.fetch_max(open, Ordering::Relaxed);
        let t0 = Instant::now();
        let out = tokio::time::timeout(sh.timeout, one_request(c, &sh)).await;
        sh.open.fetch_sub(1, Ordering::Relaxed);
        match out {
            Ok(Outcome::Ok {
                ttfb,
                gaps,
                events,
                terminal,
                keep_alive,
            }) => {
                let (latency, ttfb) = (t0.elapsed().as_micros() as u32, ttfb.as_micros() as u32);
                s.latency.push(latency);
                s.ttfb.push(ttfb);
                if sh.trace {
                    let start = t0.duration_since(sh.started).as_micros() as u64;
                    s.trace.push((start, ttfb, latency, nth));
                }
                nth += 1;
                if gaps.iter().any(|&g| g as u128 > sh.stall.as_micros()) {
                    s.stalled += 1;
                }
                s.gaps.extend(gaps);
                s.events += events;
                if terminal {
                    s.ok += 1;
                } else {
                    s.truncated += 1;
                }
                if !keep_alive {
                    conn = None;
                }
            }
            Ok(Outcome::Err(kind)) => {
                s.error(kind);
                conn = None;
            }
            Ok(Outcome::Status(code)) => s.error(&format!("status_{code}")),
            Err(_) => {
                s.error("timeout");
                conn = None;
            }
        }
    }
    s
}

fn pct(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    Some(sorted[i])
}

fn main() {
    let args = Args::parse();
    let rest = args
        .url
        .strip_prefix("http://")
        .expect("--url must start with http://");
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let body = match args.body.strip_prefix('@') {
        Some(file) => std::fs::read(file).expect("read --body file"),
        None => args.body.clone().into_bytes(),
    };
    let mut request = format!("POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n", body.len());
    for h in &args.headers {
        request.push_str(h.trim());
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(&body);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let ramp = Duration::from_millis(args.ramp_ms);
    let sh = Arc::new(Shared {
        addr: authority.to_string(),
        request,
        stall: Duration::from_millis(args.stall_ms),
        timeout: Duration::from_secs(args.timeout_s),
        deadline: match args.count {
            Some(_) => None,
            None => Some(started + ramp + Duration::from_secs_f64(args.duration_s)),
        },
        remaining: args.count.map(AtomicUsize::new),
        open: AtomicUsize::new(0),
        peak_open: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        started,
        trace: args.samples.is_some(),
    });
    let total = Arc::new(Mutex::new(Samples::default()));
    let n = args.concurrency.max(1);
    rt.block_on(async {
        let mut tasks = Vec::with_capacity(n);
        for i in 0..n {
            let delay = ramp.mul_f64(i as f64 / n as f64);
            tasks.push(tokio::spawn(worker(sh.clone(), delay)));
        }
        for t in tasks {
            if let Ok(s) = t.await {
                total.lock().expect("lock").merge(s);
            }
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let mut s = std::mem::take(&mut *total.lock().expect("lock"));
    s.ttfb.sort_unstable();
    s.latency.sort_unstable();
    s.gaps.sort_unstable();
    let completed = s.ok + s.truncated;
    let out = serde_json::json!({
        "concurrency": n,
        "requests": completed,
        "ok": s.ok,
        "errors": s.errors,
        "error_kinds": s.error_kinds,
        "truncated": s.truncated,
        "stalled": s.stalled,
        "stall_ms": args.stall_ms,
        "events": s.events,
        "peak_open": sh.peak_open.load(Ordering::Relaxed),
        "elapsed_s": (elapsed * 1000.0).round() / 1000.0,
        "rps": ((completed as f64 / (elapsed - ramp.as_secs_f64()).max(1e-3)) * 10.0).round() / 10.0,
        "ttfb_us": {"p50": pct(&s.ttfb, 50.0), "p90": pct(&s.ttfb, 90.0), "p99": pct(&s.ttfb, 99.0), "max": s.ttfb.last()},
        "latency_us": {"p50": pct(&s.latency, 50.0), "p90": pct(&s.latency, 90.0), "p99": pct(&s.latency, 99.0), "p99.9": pct(&s.latency, 99.9)},
        "gap_us": {"p50": pct(&s.gaps, 50.0), "p99": pct(&s.gaps, 99.0), "max": s.gaps.last()},
    });
    println!("{out}");
    if let Some(path) = &args.samples {
        s.trace.sort_unstable();
        let mut text = String::with_capacity(s.trace.len() * 32);
        for (start, ttfb, latency, nth) in &s.trace {
            text.push_str(&format!("{start} {ttfb} {latency} {nth}\n"));
        }
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(1);
        }
    }
}
