//! Counters and the ring of recently received requests.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::{json, Map, Value};

/// How many received requests [`Stats::recent_requests`] keeps.
pub const RING_SIZE: usize = 64;

/// Live counters of a [`crate::MockServer`]. Requests to `/_mock/*` are not
/// counted or recorded.
#[derive(Debug)]
pub struct Stats {
    /// Requests received (every path except `/_mock/*`).
    pub requests: AtomicU64,
    /// Requests currently being answered.
    pub in_flight: AtomicU64,
    /// High-water mark of `in_flight` since start or the last reset.
    pub max_in_flight: AtomicU64,
    /// Responses cut short because the client closed the connection (while
    /// waiting before the header, between chunks or on a failed write).
    pub client_closed: AtomicU64,
    /// Nanoseconds after `epoch` of the last client close, plus one (0 = never).
    last_close: AtomicU64,
    epoch: Instant,
    /// Requests per upstream key; also the attempt counter of `seq-` scripts.
    keys: Mutex<HashMap<String, u64>>,
    ring: Mutex<VecDeque<RecordedRequest>>,
}

/// One request as received: the raw head (request line and headers) and the
/// body (de-chunked), shared with the connection buffer (no copy).
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    head: Bytes,
    body: Bytes,
}

impl RecordedRequest {
    pub(crate) fn new(head: Bytes, body: Bytes) -> RecordedRequest {
        RecordedRequest { head, body }
    }

    fn parse<T>(&self, f: impl FnOnce(&httparse::Request) -> T) -> T {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        let _ = req.parse(&self.head);
        f(&req)
    }

    /// The request method, e.g. `POST`.
    pub fn method(&self) -> String {
        self.parse(|r| r.method.unwrap_or("").to_string())
    }

    /// The request target: path and query, e.g. `/v1/messages?beta=true`.
    pub fn path(&self) -> String {
        self.parse(|r| r.path.unwrap_or("").to_string())
    }

    /// All headers in order, names lowercased.
    pub fn headers(&self) -> Vec<(String, String)> {
        self.parse(|r| {
            r.headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_ascii_lowercase(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect()
        })
    }

    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        self.parse(|r| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        })
    }

    /// The raw body bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn body_json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// `{"method","path","headers":{name: value},"body": string,"json": value|null}`
    /// (repeated headers are joined with `, `).
    pub fn to_json(&self) -> Value {
        let mut headers = Map::new();
        for (k, v) in self.headers() {
            match headers.get_mut(&k) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(&v);
                }
                _ => {
                    headers.insert(k, Value::String(v));
                }
            }
        }
        json!({
            "method": self.method(),
            "path": self.path(),
            "headers": headers,
            "body": String::from_utf8_lossy(&self.body),
            "json": self.body_json(),
        })
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            requests: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
            client_closed: AtomicU64::new(0),
            last_close: AtomicU64::new(0),
            epoch: Instant::now(),
            keys: Mutex::new(HashMap::new()),
            ring: Mutex::new(VecDeque::with_capacity(RING_SIZE)),
        }
    }
}

impl Stats {
    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Requests received with this upstream key.
    pub fn key_requests(&self, key: &str) -> u64 {
        self.keys.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Requests per upstream key.
    pub fn per_key(&self) -> HashMap<String, u64> {
        self.keys.lock().unwrap().clone()
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Relaxed)
    }

    /// Most requests answered at the same time.
    pub fn max_in_flight(&self) -> u64 {
        self.max_in_flight.load(Relaxed)
    }

    /// Responses the client cut short by closing the connection.
    pub fn client_closed(&self) -> u64 {
        self.client_closed.load(Relaxed)
    }

    /// When the client last closed a connection mid-response.
    pub fn last_client_close(&self) -> Option<Instant> {
        match self.last_close.load(Relaxed) {
            0 => None,
            n => Some(self.epoch + Duration::from_nanos(n - 1)),
        }
    }

    /// The last [`RING_SIZE`] requests received, oldest first.
    pub fn recent_requests(&self) -> Vec<RecordedRequest> {
        self.ring.lock().unwrap().iter().cloned().collect()
    }

    /// The most recent request received.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.ring.lock().unwrap().back().cloned()
    }

    /// Clear all counters, the per-key counts (restarting `seq-` scripts)
    /// and the request ring. `max_in_flight` restarts from the current
    /// `in_flight`.
    pub fn reset(&self) {
        self.requests.store(0, Relaxed);
        self.client_closed.store(0, Relaxed);
        self.last_close.store(0, Relaxed);
        self.max_in_flight
            .store(self.in_flight.load(Relaxed), Relaxed);
        self.keys.lock().unwrap().clear();
        self.ring.lock().unwrap().clear();
    }

    /// The counters as served by `GET /_mock/stats`.
    pub fn to_json(&self) -> Value {
        let keys: Map<String, Value> = self
            .per_key()
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        json!({
            "requests": self.requests(),
            "in_flight": self.in_flight(),
            "max_in_flight": self.max_in_flight(),
            "client_closed": self.client_closed(),
            "last_client_close_ms_ago": self.last_client_close().map(|t| t.elapsed().as_millis() as u64),
            "keys": keys,
        })
    }

    pub(crate) fn record(&self, req: RecordedRequest) {
        self.requests.fetch_add(1, Relaxed);
        let mut ring = self.ring.lock().unwrap();
        if ring.len() == RING_SIZE {
            ring.pop_front();
        }
        ring.push_back(req);
    }

    /// Count a request with `key`; returns how many came before it.
    pub(crate) fn count_key(&self, key: &str) -> u64 {
        let mut keys = self.keys.lock().unwrap();
        if let Some(n) = keys.get_mut(key) {
            *n += 1;
            return *n - 1;
        }
        keys.insert(key.to_string(), 1);
        0
    }

    pub(crate) fn note_client_close(&self) {
        self.client_closed.fetch_add(1, Relaxed);
        let nanos = self.epoch.elapsed().as_nanos() as u64 + 1;
        self.last_close.store(nanos, Relaxed);
    }

    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        InFlight(self)
    }
}

/// Decrements `in_flight` on drop.
pub(crate) struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}
