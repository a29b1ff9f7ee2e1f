//! Upstream key pools: which key serves the next request, when a request must wait, and how keys
//! recover. The state here outlives config snapshots (it is keyed by provider and key secret), so
//! a reload neither forgets a cooldown nor loses count of requests in flight.
//!
//! - Selection prefers the key with the most headroom (free concurrency and recent-rate room,
//!   times its weight), never a cooling, disabled or open-circuit key.
//! - When every usable key is at its concurrency limit, the request waits in a fair queue: FIFO
//!   per client key, round-robin across client keys. A freed slot is handed straight to the next
//!   waiter, so newcomers cannot overtake the queue.
//! - Health: 429 cools a key for `Retry-After` (or an exponential backoff); 401/402/403 take it
//!   out of rotation until the next config load; 5xx, connect errors and timeouts feed a circuit
//!   breaker per key (N failures in a window open it; after a pause, one probe may close it).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use prometheus::{register_int_counter_vec, register_int_gauge_vec, IntCounterVec, IntGaugeVec};
use tokio::sync::oneshot;

static IN_FLIGHT: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "ezrouter_upstream_in_flight",
        "Requests in flight per upstream key",
        &["provider", "key"]
    )
    .expect("metric registers once")
});
static QUEUED: Lazy<IntGaugeVec> = Lazy::new(|| {
    register_int_gauge_vec!(
        "ezrouter_queue_depth",
        "Requests waiting for an upstream key",
        &["provider"]
    )
    .expect("metric registers once")
});
static KEY_EVENTS: Lazy<IntCounterVec> = Lazy::new(|| {
    register_int_counter_vec!(
        "ezrouter_upstream_key_events_total",
        "Key health events: cooldown, disabled, circuit_open, circuit_closed",
        &["provider", "key", "event"]
    )
    .expect("metric registers once")
});

/// Circuit-breaker settings of a provider.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    pub failures: u32,
    pub window: Duration,
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 5,
            window: Duration::from_secs(30),
            open_for: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
enum Breaker {
    Closed {
        failures: u32,
        since: Instant,
    },
    Open {
        until: Instant,
    },
    /// One probe request is allowed through; its result decides.
    HalfOpen {
        probing: bool,
    },
}

/// A fixed one-minute window, for RPM and TPM caps.
#[derive(Debug)]
struct MinuteWindow {
    started: Instant,
    used: u64,
}

impl MinuteWindow {
    fn current(&mut self, now: Instant) -> &mut u64 {
        if now.duration_since(self.started) >= Duration::from_secs(60) {
            self.started = now;
            self.used = 0;
        }
        &mut self.used
    }
}

/// The live state of one upstream key.
#[derive(Debug)]
pub struct KeyState {
    pub provider: Arc<str>,
    pub id: Arc<str>,
    /// The auth header carrying this key, formatted once.
    pub header: (http::HeaderName, http::HeaderValue),
    /// This key's `ezrouter_upstream_in_flight` series, looked up once.
    in_flight_gauge: prometheus::IntGauge,
    in_flight: AtomicU32,
    /// 0: unlimited.
    max_concurrency: AtomicU32,
    weight: AtomicU32,
    rpm: AtomicU32,
    tpm: AtomicU32,
    /// Cooling until this many ms after `epoch`.
    cool_until_ms: AtomicU64,
    backoff_level: AtomicU32,
    disabled: AtomicBool,
    breaker: Mutex<Breaker>,
    breaker_config: Mutex<BreakerConfig>,
    requests: Mutex<MinuteWindow>,
    tokens: Mutex<MinuteWindow>,
    epoch: Instant,
    queue: Arc<Queue>,
}

/// Why a key cannot take a request right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    /// Temporarily: at its concurrency limit (worth waiting for).
    Full,
    /// Cooling down, over its rate caps, disabled or circuit open (not worth waiting for).
    Unusable { retry_after: Option<Duration> },
}

impl KeyState {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the key may be used at all now (not disabled, cooling or open-circuit).
    fn health(&self, now: Instant) -> Result<(), Blocked> {
        if self.disabled.load(Ordering::Relaxed) {
            return Err(Blocked::Unusable { retry_after: None });
        }
        let cool = self.cool_until_ms.load(Ordering::Relaxed);
        let now_ms = self.now_ms();
        if cool > now_ms {
            return Err(Blocked::Unusable {
                retry_after: Some(Duration::from_millis(cool - now_ms)),
            });
        }
        match &mut *self.breaker.lock().expect("breaker lock") {
            Breaker::Open { until } if *until > now => Err(Blocked::Unusable {
                retry_after: Some(*until - now),
            }),
            b @ Breaker::Open { .. } => {
                *b = Breaker::HalfOpen { probing: false };
                Ok(())
            }
            Breaker::HalfOpen { probing: true } => Err(Blocked::Unusable {
                retry_after: Some(Duration::from_secs(1)),
            }),
            _ => Ok(()),
        }
    }

    /// Whether the key is under its RPM and TPM caps.
    fn rate_room(&self, now: Instant) -> bool {
        let under = |cap: u32, window: &Mutex<MinuteWindow>| {
            cap == 0 || *window.lock().expect("window lock").current(now) < cap as u64
        };
        under(self.rpm.load(Ordering::Relaxed), &self.requests)
            && under(self.tpm.load(Ordering::Relaxed), &self.tokens)
    }

    /// `Ok(score)` when the key can take a request now; higher is better.
    fn check(&self, now: Instant) -> Result<f64, Blocked> {
        self.health(now)?;
        let window_room = |cap: u32, window: &Mutex<MinuteWindow>| -> Result<f64, Blocked> {
            if cap == 0 {
                return Ok(1.0);
            }
            let mut w = window.lock().expect("window lock");
            let used = *w.current(now);
            if used >= cap as u64 {
                let left = Duration::from_secs(60).saturating_sub(now.duration_since(w.started));
                return Err(Blocked::Unusable {
                    retry_after: Some(left),
                });
            }
            Ok(1.0 - used as f64 / cap as f64)
        };
        let rate = window_room(self.rpm.load(Ordering::Relaxed), &self.requests)?
            .min(window_room(self.tpm.load(Ordering::Relaxed), &self.tokens)?);
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        let max = self.max_concurrency.load(Ordering::Relaxed);
        let concurrency = if max == 0 {
            1.0 / (1.0 + in_flight as f64)
        } else if in_flight >= max {
            return Err(Blocked::Full);
        } else {
            (max - in_flight) as f64 / max as f64
        };
        Ok(concurrency.min(rate) * self.weight.load(Ordering::Relaxed).max(1) as f64)
    }

    fn take(self: &Arc<Self>, now: Instant) -> Permit {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        *self.requests.lock().expect("window lock").current(now) += 1;
        self.mark_probe();
        self.in_flight_gauge.inc();
        Permit {
            key: Some(self.clone()),
        }
    }

    fn event(&self, event: &str) {
        KEY_EVENTS
            .with_label_values(&[&self.provider, &self.id, event])
            .inc();
    }

    /// The upstream answered 429: cool down for `retry_after`, or back off exponentially.
    pub fn rate_limited(&self, retry_after: Option<Duration>) {
        let level = self.backoff_level.fetch_add(1, Ordering::Relaxed).min(6);
        let pause = retry_after
            .unwrap_or(Duration::from_secs(1 << level))
            .min(Duration::from_secs(300));
        self.cool_until_ms
            .store(self.now_ms() + pause.as_millis() as u64, Ordering::Relaxed);
        self.event("cooldown");
        log::warn!(
            "upstream key {}/{} rate limited; cooling for {:?}",
            self.provider,
            self.id,
            pause
        );
    }

    /// The upstream rejected the key itself (401/402/403): out of rotation until the next config load.
    pub fn rejected(&self, status: u16) {
        if !self.disabled.swap(true, Ordering::Relaxed) {
            self.event("disabled");
            log::error!("upstream key {}/{} rejected with {status}; out of rotation until the config is reloaded", self.provider, self.id);
        }
    }

    /// 5xx, connect error or timeout.
    pub fn failed(&self) {
        let config = *self.breaker_config.lock().expect("config lock");
        let now = Instant::now();
        let mut breaker = self.breaker.lock().expect("breaker lock");
        let open = match &mut *breaker {
            Breaker::Closed { failures, since } => {
                if now.duration_since(*since) > config.window {
                    *failures = 0;
                    *since = now;
                }
                *failures += 1;
                *failures >= config.failures
            }
            Breaker::HalfOpen { .. } => true,
            Breaker::Open { .. } => false,
        };
        if open {
            *breaker = Breaker::Open {
                until: now + config.open_for,
            };
            drop(breaker);
            self.event("circuit_open");
            log::warn!(
                "upstream key {}/{}: circuit open for {:?}",
                self.provider,
                self.id,
                config.open_for
            );
        }
    }

    /// A successful answer: close a half-open circuit, reset the backoff.
    pub fn succeeded(&self) {
        self.backoff_level.store(0, Ordering::Relaxed);
        let mut breaker = self.breaker.lock().expect("breaker lock");
        match &mut *breaker {
            Breaker::HalfOpen { .. } => {
                *breaker = Breaker::Closed {
                    failures: 0,
                    since: Instant::now(),
                };
                drop(breaker);
                self.event("circuit_closed");
            }
            Breaker::Closed { failures, .. } => *failures = 0,
            Breaker::Open { .. } => {}
        }
    }

    /// Tokens an exchange used, for the TPM cap.
    pub fn add_tokens(&self, tokens: u64) {
        *self
            .tokens
            .lock()
            .expect("window lock")
            .current(Instant::now()) += tokens;
    }

    /// The request about to use a half-open key is its one probe.
    fn mark_probe(&self) {
        if let Breaker::HalfOpen { probing } = &mut *self.breaker.lock().expect("breaker lock") {
            *probing = true;
        }
    }

    /// After a request that held a half-open probe ended without a verdict (client left).
    fn end_probe(&self) {
        if let Breaker::HalfOpen { probing } = &mut *self.breaker.lock().expect("breaker lock") {
            *probing = false;
        }
    }
}

/// A slot on one key; dropping it frees the slot (or hands it to the next waiter).
#[derive(Debug)]
pub struct Permit {
    key: Option<Arc<KeyState>>,
}

impl Permit {
    pub fn key(&self) -> &Arc<KeyState> {
        self.key.as_ref().expect("a live permit has a key")
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            key.end_probe();
            key.queue.clone().release(key);
        }
    }
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Option<Permit>>,
    /// Keys this request must not be handed (it already failed on them).
    skip: Vec<usize>,
}

#[derive(Default)]
struct QueueInner {
    by_client: HashMap<Arc<str>, VecDeque<Waiter>>,
    /// Clients with waiters, in round-robin order.
    turn: VecDeque<Arc<str>>,
    len: usize,
    next_id: u64,
}

/// The wait queue of one provider's key pool.
pub struct Queue {
    provider: Arc<str>,
    /// This pool's `ezrouter_queue_depth` series, looked up once.
    depth: prometheus::IntGauge,
    inner: Mutex<QueueInner>,
    max_len: AtomicU32,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("provider", &self.provider)
            .finish()
    }
}

impl Queue {
    pub fn len(&self) -> usize {
        self.inner.lock().expect("queue lock").len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pops the next waiter in fair order.
    fn pop(inner: &mut QueueInner) -> Option<Waiter> {
        while let Some(client) = inner.turn.pop_front() {
            let Some(waiters) = inner.by_client.get_mut(&client) else {
                continue;
            };
            let waiter = waiters.pop_front();
            if waiters.is_empty() {
                inner.by_client.remove(&client);
            } else {
                inner.turn.push_back(client);
            }
            if let Some(w) = waiter {
                inner.len -= 1;
                return Some(w);
            }
        }
        None
    }

    /// Pops the next waiter in fair order that may use `key`, leaving the others in place.
    fn pop_for(inner: &mut QueueInner, key: usize) -> Option<Waiter> {
        for i in 0..inner.turn.len() {
            let client = inner.turn[i].clone();
            let Some(waiters) = inner.by_client.get_mut(&client) else {
                continue;
            };
            let Some(pos) = waiters.iter().position(|w| !w.skip.contains(&key)) else {
                continue;
            };
            let w = waiters.remove(pos).expect("position is in range");
            inner.turn.remove(i);
            if waiters.is_empty() {
                inner.by_client.remove(&client);
            } else {
                inner.turn.push_back(client);
            }
            inner.len -= 1;
            return Some(w);
        }
        None
    }

    /// A slot of `key` was freed: hand it to the next waiter that still waits, else free it.
    fn release(&self, key: Arc<KeyState>) {
        // The freed slot is still counted in `in_flight`: it is the slot handed over.
        let now = Instant::now();
        let usable = key.health(now).is_ok() && key.rate_room(now);
        let ptr = Arc::as_ptr(&key) as usize;
        if usable {
            *key.requests.lock().expect("window lock").current(now) += 1;
        }
        let mut inner = self.inner.lock().expect("queue lock");
        self.depth.set(inner.len as i64);
        let mut permit = Permit { key: Some(key) };
        loop {
            let waiter = if usable {
                Self::pop_for(&mut inner, ptr)
            } else {
                Self::pop(&mut inner)
            };
            let Some(waiter) = waiter else { break };
            self.depth.set(inner.len as i64);
            if usable {
                permit.key().mark_probe();
                match waiter.tx.send(Some(permit)) {
                    Ok(()) => return,
                    Err(Some(back)) => permit = back,
                    Err(None) => unreachable!("sent Some"),
                }
            } else if waiter.tx.send(None).is_ok() {
                // The key is unusable: the waiter selects again among the pool's keys.
                break;
            }
        }
        drop(inner);
        let key = permit.key.take().expect("permit still holds its key");
        if usable {
            *key.requests.lock().expect("window lock").current(now) -= 1;
            key.end_probe();
        }
        key.in_flight.fetch_sub(1, Ordering::Relaxed);
        key.in_flight_gauge.dec();
    }

    /// Wakes up to `n` waiters, in fair order, to select a key again.
    fn wake(&self, n: usize) {
        let mut inner = self.inner.lock().expect("queue lock");
        let mut woken = 0;
        while woken < n {
            let Some(waiter) = Self::pop(&mut inner) else {
                break;
            };
            if waiter.tx.send(None).is_ok() {
                woken += 1;
            }
        }
        self.depth.set(inner.len as i64);
    }

    fn remove(&self, client: &Arc<str>, id: u64) {
        let mut guard = self.inner.lock().expect("queue lock");
        let inner = &mut *guard;
        if let Some(waiters) = inner.by_client.get_mut(client) {
            if let Some(pos) = waiters.iter().position(|w| w.id == id) {
                waiters.remove(pos);
                inner.len -= 1;
                if waiters.is_empty() {
                    inner.by_client.remove(client);
                    inner.turn.retain(|c| c != client);
                }
            }
        }
        self.depth.set(inner.len as i64);
    }
}

/// Why no permit was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AcquireError {
    /// Every key is cooling, disabled, open or over its rate cap; the soonest is usable after this.
    Unavailable { retry_after: Option<Duration> },
    /// Every key was busy for the whole wait, or the queue was full.
    Overloaded,
}

/// Picks a key among `keys` (excluding `skip`), waiting in the provider's queue up to `max_wait`
/// while all usable keys are at capacity.
pub async fn acquire(
    keys: &[Arc<KeyState>],
    skip: &[Arc<KeyState>],
    client: &Arc<str>,
    max_wait: Duration,
) -> Result<Permit, AcquireError> {
    let candidates: Vec<&Arc<KeyState>> = keys
        .iter()
        .filter(|k| !skip.iter().any(|s| Arc::ptr_eq(s, k)))
        .collect();
    let Some(first) = candidates.first() else {
        return Err(AcquireError::Unavailable { retry_after: None });
    };
    let queue = first.queue.clone();
    let skip_ids: Vec<usize> = skip.iter().map(|k| Arc::as_ptr(k) as usize).collect();
    let deadline = tokio::time::Instant::now() + max_wait;
    let mut woken = false;
    loop {
        let rx = {
            let mut inner = queue.inner.lock().expect("queue lock");
            let now = Instant::now();
            let mut best: Option<(&Arc<KeyState>, f64)> = None;
            let mut any_full = false;
            let mut soonest: Option<Duration> = None;
            for key in &candidates {
                match key.check(now) {
                    Ok(score) if best.is_none_or(|(_, s)| score > s) => best = Some((key, score)),
                    Ok(_) => {}
                    Err(Blocked::Full) => any_full = true,
                    Err(Blocked::Unusable { retry_after }) => {
                        soonest = match (soonest, retry_after) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        }
                    }
                }
            }
            // Waiters go first: a newcomer takes a free slot only when nobody is queued.
            if let Some((key, _)) = best.filter(|_| woken || inner.len == 0) {
                return Ok(key.take(now));
            }
            if best.is_none() && !any_full {
                return Err(AcquireError::Unavailable {
                    retry_after: soonest,
                });
            }
            if inner.len >= queue.max_len.load(Ordering::Relaxed) as usize {
                return Err(AcquireError::Overloaded);
            }
            let (tx, rx) = oneshot::channel();
            let id = inner.next_id;
            inner.next_id += 1;
            let waiters = inner.by_client.entry(client.clone()).or_default();
            if waiters.is_empty() {
                inner.turn.push_back(client.clone());
            }
            if woken {
                // Woken but raced: keep the place at the head of this client's line.
                inner
                    .by_client
                    .get_mut(client)
                    .expect("just inserted")
                    .push_front(Waiter {
                        id,
                        tx,
                        skip: skip_ids.clone(),
                    });
            } else {
                inner
                    .by_client
                    .get_mut(client)
                    .expect("just inserted")
                    .push_back(Waiter {
                        id,
                        tx,
                        skip: skip_ids.clone(),
                    });
            }
            inner.len += 1;
            queue.depth.set(inner.len as i64);
            (rx, id)
        };
        let (rx, id) = rx;
        // Leaves the queue however the wait ends: timeout, or this future dropped because the
        // client went away (a no-op when a release already popped us).
        let _leave = Leave {
            queue: &queue,
            client,
            id,
        };
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(Some(permit))) => return Ok(permit),
            Ok(Ok(None)) | Ok(Err(_)) => woken = true,
            Err(_) => return Err(AcquireError::Overloaded),
        }
    }
}

struct Leave<'a> {
    queue: &'a Queue,
    client: &'a Arc<str>,
    id: u64,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.queue.remove(self.client, self.id);
    }
}

/// A key as the registry knows it: provider name and SHA-256 of the secret.
type KeyIdentity = (String, [u8; 32]);

/// Pool state that survives config reloads, keyed by provider name and key secret (a changed
/// secret is a new key with a clean record).
#[derive(Default)]
pub struct Registry {
    keys: Mutex<HashMap<KeyIdentity, Weak<KeyState>>>,
    queues: Mutex<HashMap<String, Weak<Queue>>>,
}

/// Per-key settings from the config.
#[derive(Debug, Clone, Copy)]
pub struct KeySettings {
    pub weight: u32,
    pub max_concurrency: Option<u32>,
    pub rpm: Option<u32>,
    pub tpm: Option<u32>,
}

impl Registry {
    pub fn queue(&self, provider: &str, max_len: u32) -> Arc<Queue> {
        let mut queues = self.queues.lock().expect("registry lock");
        queues.retain(|_, q| q.strong_count() > 0);
        let queue = queues
            .get(provider)
            .and_then(Weak::upgrade)
            .unwrap_or_else(|| {
                let q = Arc::new(Queue {
                    provider: provider.into(),
                    depth: QUEUED.with_label_values(&[provider]),
                    inner: Mutex::default(),
                    max_len: AtomicU32::new(max_len),
                });
                queues.insert(provider.to_string(), Arc::downgrade(&q));
                q
            });
        queue.max_len.store(max_len, Ordering::Relaxed);
        queue
    }

    /// The state of a key, reused when it already exists; settings and the queue follow the new
    /// config, and a key taken out of rotation gets another chance on every load.
    pub fn key(
        &self,
        queue: &Arc<Queue>,
        id: &str,
        header: (http::HeaderName, http::HeaderValue),
        settings: KeySettings,
        breaker: BreakerConfig,
    ) -> Arc<KeyState> {
        // The formatted header names both the secret and how it is sent (the dialect).
        let mut identity = header.0.as_str().as_bytes().to_vec();
        identity.extend_from_slice(header.1.as_bytes());
        let hash = ezrouter_plugins::keys::sha256(&identity);
        let mut keys = self.keys.lock().expect("registry lock");
        keys.retain(|_, k| k.strong_count() > 0);
        let slot = (queue.provider.to_string(), hash);
        let key = keys.get(&slot).and_then(Weak::upgrade).unwrap_or_else(|| {
            let now = Instant::now();
            let k = Arc::new(KeyState {
                provider: queue.provider.clone(),
                id: id.into(),
                header,
                in_flight_gauge: IN_FLIGHT.with_label_values(&[&queue.provider, id]),
                in_flight: AtomicU32::new(0),
                max_concurrency: AtomicU32::new(0),
                weight: AtomicU32::new(1),
                rpm: AtomicU32::new(0),
                tpm: AtomicU32::new(0),
                cool_until_ms: AtomicU64::new(0),
                backoff_level: AtomicU32::new(0),
                disabled: AtomicBool::new(false),
                breaker: Mutex::new(Breaker::Closed {
                    failures: 0,
                    since: now,
                }),
                breaker_config: Mutex::new(breaker),
                requests: Mutex::new(MinuteWindow {
                    started: now,
                    used: 0,
                }),
                tokens: Mutex::new(MinuteWindow {
                    started: now,
                    used: 0,
                }),
                epoch: now,
                queue: queue.clone(),
            });
            keys.insert(slot, Arc::downgrade(&k));
            k
        });
        let new_max = settings.max_concurrency.unwrap_or(0);
        let old_max = key.max_concurrency.swap(new_max, Ordering::Relaxed);
        if old_max != 0 && (new_max == 0 || new_max > old_max) {
            // More room than before: requests queued under the old limit re-select now.
            queue.wake(if new_max == 0 {
                usize::MAX
            } else {
                (new_max - old_max) as usize
            });
        }
        key.weight.store(settings.weight, Ordering::Relaxed);
        key.rpm.store(settings.rpm.unwrap_or(0), Ordering::Relaxed);
        key.tpm.store(settings.tpm.unwrap_or(0), Ordering::Relaxed);
        *key.breaker_config.lock().expect("config lock") = breaker;
        key.disabled.store(false, Ordering::Relaxed);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: Option<u32>) -> KeySettings {
        KeySettings {
            weight: 1,
            max_concurrency: max,
            rpm: None,
            tpm: None,
        }
    }

    fn pool(registry: &Registry, n: usize, max: Option<u32>) -> Vec<Arc<KeyState>> {
        let queue = registry.queue("p", 100);
        (0..n)
            .map(|i| {
                registry.key(
                    &queue,
                    &format!("k{i}"),
                    header(&format!("secret-{i}")),
                    settings(max),
                    BreakerConfig::default(),
                )
            })
            .collect()
    }

    fn header(secret: &str) -> (http::HeaderName, http::HeaderValue) {
        (
            http::header::AUTHORIZATION,
            http::HeaderValue::from_str(secret).unwrap(),
        )
    }

    fn client(name: &str) -> Arc<str> {
        Arc::from(name)
    }

    #[tokio::test]
    async fn prefers_headroom_and_skips_cooling_and_disabled_keys() {
        let registry = Registry::default();
        let keys = pool(&registry, 3, Some(4));
        let a = acquire(&keys, &[], &client("c"), Duration::ZERO)
            .await
            .unwrap();
        let b = acquire(&keys, &[], &client("c"), Duration::ZERO)
            .await
            .unwrap();
        assert!(
            !Arc::ptr_eq(a.key(), b.key()),
            "the second request goes to an idle key"
        );
        keys[2].rate_limited(Some(Duration::from_secs(30)));
        keys[1].rejected(401);
        let c = acquire(&keys, &[], &client("c"), Duration::ZERO)
            .await
            .unwrap();
        assert!(Arc::ptr_eq(c.key(), &keys[0]));
        drop((a, b, c));
        assert!(keys.iter().all(|k| k.in_flight() == 0));
        let only_cooling = acquire(&keys[1..], &[], &client("c"), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(
            matches!(only_cooling, AcquireError::Unavailable { retry_after: Some(d) } if d > Duration::from_secs(20))
        );
    }

    #[tokio::test]
    async fn waits_for_a_slot_and_times_out_when_none_frees() {
        let registry = Registry::default();
        let keys = pool(&registry, 1, Some(1));
        let held = acquire(&keys, &[], &client("a"), Duration::ZERO)
            .await
            .unwrap();
        let timed_out = acquire(&keys, &[], &client("b"), Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(timed_out, AcquireError::Overloaded);
        assert_eq!(
            keys[0].queue.len(),
            0,
            "a timed-out waiter leaves the queue"
        );
        let keys2 = keys.clone();
        let waiter = tokio::spawn(async move {
            acquire(&keys2, &[], &client("b"), Duration::from_secs(5))
                .await
                .map(|p| p.key().id.clone())
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(&*waiter.await.unwrap().unwrap(), "k0");
        assert_eq!(keys[0].in_flight(), 0);
    }

    #[tokio::test]
    async fn queue_is_fair_across_clients() {
        let registry = Registry::default();
        let keys = pool(&registry, 1, Some(1));
        let held = acquire(&keys, &[], &client("x"), Duration::ZERO)
            .await
            .unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Heavy client A queues three requests before B and C queue one each.
        for name in ["A", "A", "A", "B", "C"] {
            let (keys, order) = (keys.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let permit = acquire(&keys, &[], &client(name), Duration::from_secs(5))
                    .await
                    .unwrap();
                order.lock().unwrap().push(name);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(permit);
            }));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(held);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), ["A", "B", "C", "A", "A"]);
        assert_eq!(keys[0].in_flight(), 0);
    }

    #[test]
    fn circuit_opens_after_failures_and_a_probe_closes_it() {
        let registry = Registry::default();
        let queue = registry.queue("p", 10);
        let config = BreakerConfig {
            failures: 2,
            window: Duration::from_secs(10),
            open_for: Duration::from_millis(30),
        };
        let key = registry.key(&queue, "k", header("s"), settings(None), config);
        key.failed();
        assert!(key.check(Instant::now()).is_ok());
        key.failed();
        assert!(key.check(Instant::now()).is_err(), "open");
        std::thread::sleep(Duration::from_millis(40));
        assert!(
            key.check(Instant::now()).is_ok(),
            "half-open: a probe may pass"
        );
        let probe = key.take(Instant::now());
        assert!(
            matches!(key.check(Instant::now()), Err(Blocked::Unusable { .. })),
            "one probe at a time"
        );
        key.succeeded();
        drop(probe);
        assert!(key.check(Instant::now()).is_ok(), "closed again");
    }

    #[tokio::test]
    async fn raising_the_limit_on_reload_serves_queued_requests() {
        let registry = Registry::default();
        let keys = pool(&registry, 1, Some(1));
        let held = acquire(&keys, &[], &client("a"), Duration::ZERO)
            .await
            .unwrap();
        let keys2 = keys.clone();
        let waiter = tokio::spawn(async move {
            acquire(&keys2, &[], &client("b"), Duration::from_secs(5))
                .await
                .is_ok()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let queue = registry.queue("p", 100);
        registry.key(
            &queue,
            "k0",
            header("secret-0"),
            settings(Some(2)),
            BreakerConfig::default(),
        );
        assert!(
            tokio::time::timeout(Duration::from_secs(1), waiter)
                .await
                .unwrap()
                .unwrap(),
            "served before `held` ends"
        );
        assert_eq!(keys[0].in_flight(), 1);
        drop(held);
    }

    #[test]
    fn state_survives_a_reload_and_a_changed_secret_starts_clean() {
        let registry = Registry::default();
        let queue = registry.queue("p", 10);
        let key = registry.key(
            &queue,
            "k",
            header("s1"),
            settings(None),
            BreakerConfig::default(),
        );
        key.rate_limited(Some(Duration::from_secs(60)));
        let again = registry.key(
            &queue,
            "k",
            header("s1"),
            settings(Some(3)),
            BreakerConfig::default(),
        );
        assert!(Arc::ptr_eq(&key, &again));
        assert!(
            again.check(Instant::now()).is_err(),
            "still cooling after reload"
        );
        let changed = registry.key(
            &queue,
            "k",
            header("s2"),
            settings(None),
            BreakerConfig::default(),
        );
        assert!(changed.check(Instant::now()).is_ok());
    }
}
