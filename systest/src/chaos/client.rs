//! The client threads: queries, purchases (retried with their request id), order queries.

use super::history::{classify, Entry, Op, Outcome, Reply};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest time a client waits for one answer. Above the front-end's failover budget (6 s) plus a
/// leader call (2.5 s), so a timeout means a stuck request, not a slow failover.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(12);
/// Times a client sends a purchase whose outcome is unknown, with the same request id.
const MAX_ATTEMPTS: usize = 4;

/// Counters the progress bar shows.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) requests: AtomicU64,
    pub(super) ok: AtomicU64,
    pub(super) fail: AtomicU64,
    pub(super) unknown: AtomicU64,
}

pub(super) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Sends one request and says what came back.
fn send(agent: &ureq::Agent, url: &str, body: Option<&Value>) -> Reply {
    let result = match body {
        None => agent.get(url).call(),
        Some(b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(serde_json::to_vec(b).expect("JSON")),
    };
    match result {
        Ok(mut r) => {
            let status = r.status().as_u16();
            match r.body_mut().read_to_vec() {
                Ok(bytes) => Reply::Status(
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                ),
                Err(e) => Reply::Lost(format!("status {status}, body: {e}")),
            }
        }
        Err(e) => {
            let refused = matches!(&e, ureq::Error::Io(io)
                if matches!(io.kind(), std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable));
            let not_sent = refused
                || matches!(
                    e,
                    ureq::Error::ConnectionFailed
                        | ureq::Error::HostNotFound
                        | ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve)
                );
            if not_sent {
                Reply::NotSent(e.to_string())
            } else {
                Reply::Lost(e.to_string())
            }
        }
    }
}

/// One client thread's loop.
pub(super) struct Client {
    pub(super) id: usize,
    pub(super) seed: u64,
    pub(super) url: String,
    pub(super) toys: Vec<String>,
    pub(super) start: Instant,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) counters: Arc<Counters>,
    /// Order numbers acknowledged to any client, for order queries.
    pub(super) acked: Arc<Mutex<Vec<u64>>>,
}

impl Client {
    fn request(&self, agent: &ureq::Agent, op: Op, history: &mut Vec<Entry>) -> usize {
        let (url, body) = match &op {
            Op::Query { name } => (format!("{}/products/{name}", self.url), None),
            Op::Buy {
                request_id,
                name,
                quantity,
            } => (
                format!("{}/orders", self.url),
                Some(
                    serde_json::json!({"name": name, "quantity": quantity, "request_id": request_id}),
                ),
            ),
            Op::OrderQuery { number } => (format!("{}/orders/{number}", self.url), None),
        };
        let invoke = self.start.elapsed();
        let invoke_unix_ms = unix_ms();
        let reply = send(agent, &url, body.as_ref());
        let complete = self.start.elapsed();
        let outcome = classify(&reply);
        let (status, data, detail) = match reply {
            Reply::Status(s, b) => {
                let detail = b["error"]["message"].as_str().unwrap_or("").to_string();
                (s, b.get("data").cloned().unwrap_or(Value::Null), detail)
            }
            Reply::NotSent(d) | Reply::Lost(d) => (0, Value::Null, d),
        };
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Ok => &self.counters.ok,
            Outcome::Fail => &self.counters.fail,
            Outcome::Unknown => &self.counters.unknown,
        }
        .fetch_add(1, Ordering::Relaxed);
        history.push(Entry {
            client: self.id,
            op,
            invoke,
            invoke_unix_ms,
            complete,
            outcome,
            status,
            data,
            detail,
        });
        history.len() - 1
    }

    /// Queries, buys (retrying an unknown outcome with the same id), reads orders back, and sends
    /// acknowledged purchases again, until told to stop. Returns its history.
    pub(super) fn run(self) -> Vec<Entry> {
        let mut rng = StdRng::seed_from_u64(
            self.seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(self.id as u64 + 1),
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(1000)))
            .timeout_global(Some(CLIENT_TIMEOUT))
            .proxy(None)
            .build()
            .into();
        let mut history = Vec::new();
        let mut mine: Vec<Op> = Vec::new();
        let mut k = 0;
        while !self.stop.load(Ordering::SeqCst) {
            let roll = rng.random_range(0..100);
            let name = self.toys[rng.random_range(0..self.toys.len())].clone();
            if roll < 45 {
                self.request(&agent, Op::Query { name }, &mut history);
            } else if roll < 88 {
                let op = Op::Buy {
                    request_id: format!("s{}-c{}-{k}", self.seed, self.id),
                    name,
                    quantity: rng.random_range(1..=4),
                };
                k += 1;
                if self.buy(&agent, &mut rng, op, &mut history, &mut mine) {
                    continue;
                }
            } else if roll < 96 {
                let op = match self.order_to_read(&mut rng, &history) {
                    Some(number) => Op::OrderQuery { number },
                    None => Op::Query { name },
                };
                self.request(&agent, op, &mut history);
            } else if !mine.is_empty() {
                let op = mine[rng.random_range(0..mine.len())].clone();
                self.request(&agent, op, &mut history);
            }
            // A refused connection means the front-end is down: wait a little rather than fill the
            // history with refusals.
            let refused = history
                .last()
                .is_some_and(|e| e.status == 0 && e.outcome == Outcome::Fail);
            let pause = if refused { 50..=100 } else { 1..=8 };
            std::thread::sleep(Duration::from_millis(rng.random_range(pause)));
        }
        history
    }

    /// Sends purchase `op`: now and then twice at once, as a client that retries too early would;
    /// otherwise again with the same id while its outcome is unknown (most of the time, up to
    /// [`MAX_ATTEMPTS`]). An acknowledged one goes to `mine` and its number to `acked`. True when
    /// it was sent twice at once: the client then goes on without its pause.
    fn buy(
        &self,
        agent: &ureq::Agent,
        rng: &mut StdRng,
        op: Op,
        history: &mut Vec<Entry>,
        mine: &mut Vec<Op>,
    ) -> bool {
        if rng.random_bool(0.05) {
            let pause = Duration::from_millis(rng.random_range(0..=3));
            for n in self.buy_twice(agent, pause, &op, history) {
                self.acked.lock().unwrap().push(n);
                mine.push(op.clone());
            }
            return true;
        }
        for attempt in 1..=MAX_ATTEMPTS {
            let i = self.request(agent, op.clone(), history);
            let e = &history[i];
            if e.outcome == Outcome::Ok {
                if let Some(n) = e.order_number() {
                    self.acked.lock().unwrap().push(n);
                }
                mine.push(op.clone());
            }
            if e.outcome != Outcome::Unknown
                || attempt == MAX_ATTEMPTS
                || self.stop.load(Ordering::SeqCst)
                || !rng.random_bool(0.8)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(rng.random_range(100..=500)));
        }
        false
    }

    /// Sends purchase `op` twice at once, the second `pause` after the first; the order numbers
    /// the two were acknowledged with.
    fn buy_twice(
        &self,
        agent: &ureq::Agent,
        pause: Duration,
        op: &Op,
        history: &mut Vec<Entry>,
    ) -> Vec<u64> {
        let (i, twin) = std::thread::scope(|s| {
            let t = s.spawn(|| {
                let mut h = Vec::new();
                self.request(agent, op.clone(), &mut h);
                h
            });
            std::thread::sleep(pause);
            let i = self.request(agent, op.clone(), history);
            (i, t.join().expect("twin purchase"))
        });
        let numbers = std::iter::once(&history[i])
            .chain(&twin)
            .filter(|e| e.outcome == Outcome::Ok)
            .filter_map(Entry::order_number)
            .collect();
        history.extend(twin);
        numbers
    }

    /// The order number to read: half the time the client's own newest order, as a buyer checks
    /// what it just bought; else any acknowledged one. None before any was acknowledged.
    fn order_to_read(&self, rng: &mut StdRng, history: &[Entry]) -> Option<u64> {
        let own = history
            .iter()
            .rev()
            .filter(|e| e.outcome == Outcome::Ok)
            .find_map(Entry::order_number);
        match own {
            Some(n) if rng.random_bool(0.5) => Some(n),
            _ => {
                let acked = self.acked.lock().unwrap();
                (!acked.is_empty()).then(|| acked[rng.random_range(0..acked.len())])
            }
        }
    }
}
