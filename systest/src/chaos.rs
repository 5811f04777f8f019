//! A seeded fault run with a checked history (issue #5).
//!
//! [`run`] starts the real store ([`Cluster`]) with a short restock interval, runs client threads
//! that query and buy through the public API, and from one seed injects faults: SIGKILL of an order
//! replica (the leader half the time) and its restart, a torn half line appended to a killed
//! replica's order file (or to the killed catalog's journal) before it restarts, SIGSTOP of the
//! leader for longer than the front-end's failure timeout, SIGKILL and restart of the catalog and of
//! the front-end. At most two faults are active at a time, two only now and then (so a quorum mostly
//! exists, and sometimes does not).
//! At the end it heals everything, waits until the store is quiet, and checks the recorded history
//! against what the store's files and answers say ([`check`]).
//!
//! # Replaying a seed
//!
//! The seed fixes the fault plan ([`plan`]: which fault, when, for how long, torn line or not) and
//! each client's random choices. It does not fix the interleaving of threads and processes, nor
//! which replica leads when a fault resolves "the leader", so a replay reruns the same schedule, not
//! the same execution: a rare violation may need a few runs of its seed to show again.
//!
//! # The history
//!
//! Every request a client sends is one [`Entry`]: its invocation (time since the start, and the wall
//! clock in ms), its completion, and its [`Outcome`]:
//!
//! | answer | outcome | why |
//! |---|---|---|
//! | 200 with a `data` body | ok | the store's answer |
//! | any 4xx | fail | refused before anything changed (400, 404, 409; 408 and 413 from the server) |
//! | 503 | fail | the contract: "cannot serve this now, and nothing was changed" |
//! | connection refused, connect timeout | fail | nothing was sent |
//! | 504, any other 5xx, a 200 without `data` | unknown | the contract: the outcome is unknown |
//! | timeout, reset, broken body after sending | unknown | the request may have been applied |
//!
//! A purchase carries its own request id (`s<seed>-c<client>-<k>`). A client retries a purchase whose
//! outcome is unknown with the same id (each attempt is its own entry), now and then sends a new
//! purchase twice at once, and now and then sends an acknowledged purchase again with its id: every
//! 200 for one id must carry the same order number.
//!
//! # The checks, and why each is sound
//!
//! After the heal the store is quiet: every process answers, a leader leads, every replica is ready,
//! and [`Cluster::check_consistent`] passes (roll-forward of orphan takes takes about 3 s). Then:
//!
//! 1. **Identical replicas**: every `orders-<id>.csv` is the same text, order `i` has number `i`, and
//!    no request id appears twice. The replicas promise this once in sync.
//! 2. **Acknowledged purchases are kept**: for every purchase answered 200 with number `n`, order `n`
//!    in every replica's file has its request id, toy and quantity, and `GET /orders/n` answers the
//!    same toy and quantity. Two answers never give one number to two request ids, nor two numbers to
//!    one request id. This is the contract's "never lost, never applied twice".
//! 3. **Reads of orders**: an order query answered 200 during the run matches the final order of that
//!    number (a committed order never changes); a 404 for a number whose purchase was acknowledged
//!    before the query was sent is a lost order.
//! 4. **Stock adds up**: the catalog journal's `take` and `restock` rows, per toy in `seq` order, form
//!    a chain from 100 (`stock_after` = previous − taken, or previous + restocked; `refuse`,
//!    `checkpoint` and `fence` rows change no stock); the catalog's stock is the chain's end and
//!    equals 100 + restocked − ordered (orders from the final log). Every take has exactly one order
//!    with the same request id, toy and quantity, and every order one take; no request id is both
//!    taken and refused.
//! 5. **Failures changed nothing**: a request id whose every attempt was answered "fail" has no order
//!    and no take. (One unknown attempt lifts this: its take may be rolled forward, and a later retry
//!    can then honestly get a 503 from a leader that has not rolled it forward yet.)
//! 6. **Reads of stock are not older than what was acknowledged**: a product query answered `q`,
//!    invoked after a purchase of that toy was acknowledged, must show a stock from the journal row of
//!    that purchase's take or a later row of the toy: `q` must be the `stock_after` of some row with
//!    `seq` at or after it (100 counts as the state before every row). Sound because the take is on
//!    disk in the journal before the purchase is answered, the catalog's stock only moves through
//!    journal rows (a restart replays them), and the front-end drops the toy's cache entry before it
//!    answers the purchase and never stores a reply fetched before a drop; a restarted front-end starts
//!    with an empty cache. Stock values repeat, so the check asks only that *some* row at or after the
//!    bound has the value: it can miss a stale read, never invent one. A value that no row of the toy
//!    ever left is flagged too: the store showed a stock that never was (say a take read before it
//!    was on disk and then lost with the catalog).
//! 7. **Bounded staleness**: the same rule with a second bound: a query invoked (wall clock) more than
//!    [`STALE_BOUND_MS`] after a row took effect must show that row or a later one. A row takes effect
//!    at its `unix_ms`, except a row written less than [`STALE_BOUND_MS`] before a SIGKILL of the
//!    catalog, which takes effect when the catalog is started again (it may have been written but not
//!    pushed, and is replayed at the start). Sound on one machine (one wall clock) as long as the
//!    catalog pushes each invalidation within that bound while both processes run; neither the
//!    catalog nor the front-end is ever paused here.
//!
//! Besides: a service process that exits by itself (a panic or an exit on an I/O error) is a
//! violation, and so is a store that does not become quiet within the timeout.

use crate::{Cluster, JournalRow, REPLICAS};
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use shared::protocol::{Order, ReplicaId};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Stock of every toy in a new catalog.
pub const INITIAL_STOCK: u64 = 100;
/// How long after a row of the catalog journal took effect no query may show an older stock (ms).
pub const STALE_BOUND_MS: u64 = 2000;
/// No fault is injected in the first moments, so the clients find a working store.
const WARM_UP: Duration = Duration::from_secs(2);
/// Longest time a client waits for one answer. Above the front-end's failover budget (6 s) plus a
/// leader call (2.5 s), so a timeout means a stuck request, not a slow failover.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(12);
/// Times a client sends a purchase whose outcome is unknown, with the same request id.
const MAX_ATTEMPTS: usize = 4;
/// Violations printed in full; the rest are counted.
const SHOWN_VIOLATIONS: usize = 40;

/// How a fault run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of the fault plan and of the clients' choices.
    pub seed: u64,
    /// How long faults are injected and clients run.
    pub duration: Duration,
    /// First of the seven ports the store uses.
    pub port_base: u16,
    /// Client threads.
    pub clients: usize,
    /// The catalog's restock interval (s).
    pub restock_secs: f64,
    /// How long the healed store may take to become quiet.
    pub quiet_timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Print every fault and restart on stderr as it happens.
    pub verbose: bool,
    /// On a violation, copy the store's files and logs to a folder that outlives the run.
    pub keep_on_failure: bool,
    /// Set from outside (Ctrl-C) to end the run early; it then skips the checks.
    pub stop: Arc<AtomicBool>,
}

impl Options {
    /// A run of `duration` with `seed` on ports from `port_base`; 5 clients, restock every 2 s,
    /// 30 s to become quiet, no progress bar.
    pub fn new(seed: u64, duration: Duration, port_base: u16) -> Options {
        Options {
            seed,
            duration,
            port_base,
            clients: 5,
            restock_secs: 2.0,
            quiet_timeout: Duration::from_secs(30),
            progress: false,
            verbose: false,
            keep_on_failure: false,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The fault plan
// ---------------------------------------------------------------------------------------------

/// A kind of fault, as planned and as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL of an order replica that is not (known to be) the leader, restart later.
    KillReplica,
    /// SIGKILL of the leader the front-end names, restart later.
    KillLeader,
    /// SIGSTOP of the leader for 1 to 3 s, then SIGCONT.
    PauseLeader,
    /// SIGSTOP of a replica when the leader could not be asked (the front-end is down).
    PauseReplica,
    /// SIGKILL of the catalog, restart later.
    KillCatalog,
    /// SIGKILL of the front-end, restart later.
    KillFrontend,
    /// Half a CSV row without a newline appended to a killed replica's order file before its restart.
    TornOrderLine,
    /// The same at the end of the killed catalog's journal.
    TornJournalLine,
}

impl FaultKind {
    /// Its name in the summary.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::KillReplica => "kill-replica",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PauseReplica => "pause-replica",
            FaultKind::KillCatalog => "kill-catalog",
            FaultKind::KillFrontend => "kill-frontend",
            FaultKind::TornOrderLine => "torn-order-line",
            FaultKind::TornJournalLine => "torn-journal-line",
        }
    }
}

/// One fault of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    /// When it starts, from the start of the run.
    pub at: Duration,
    /// What: `KillReplica`, `KillLeader`, `PauseLeader`, `KillCatalog` or `KillFrontend`.
    pub kind: FaultKind,
    /// How long the process stays down or paused.
    pub down_for: Duration,
    /// For a replica or catalog kill: append a torn line to its order file or journal before the
    /// restart.
    pub torn: bool,
    /// A random number that picks a replica when the target is not the leader.
    pub pick: u32,
}

impl PlannedFault {
    /// When the process comes back.
    pub fn ends(&self) -> Duration {
        self.at + self.down_for
    }
}

/// The faults of a run of `duration` with `seed`, in time order. A fault starts every 0.5 to 3 s
/// after a quiet warm-up; it is dropped when two are already active, and when one is, it is kept only
/// three times in ten (and never on the same catalog or front-end). A killed replica stays down 0.2
/// to 6 s, a killed catalog or front-end 0.2 to 3 s, a paused leader 1 to 3 s (longer than the
/// front-end's two missed pings of 200 ms).
pub fn plan(seed: u64, duration: Duration) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults: Vec<PlannedFault> = Vec::new();
    let mut t = WARM_UP;
    loop {
        t += Duration::from_millis(rng.random_range(500..=3000));
        if t >= duration {
            return faults;
        }
        let kind = match rng.random_range(0..100) {
            0..20 => FaultKind::KillReplica,
            20..40 => FaultKind::KillLeader,
            40..60 => FaultKind::PauseLeader,
            60..80 => FaultKind::KillCatalog,
            _ => FaultKind::KillFrontend,
        };
        let millis = match kind {
            FaultKind::KillReplica | FaultKind::KillLeader => rng.random_range(200..=6000),
            FaultKind::PauseLeader => rng.random_range(1000..=3000),
            _ => rng.random_range(200..=3000),
        };
        let torn = rng.random_bool(0.4);
        let pick = rng.random();
        let overlap = rng.random_bool(0.3);
        let active: Vec<&PlannedFault> = faults.iter().filter(|f| f.ends() > t).collect();
        let same_process = active.iter().any(|f| {
            f.kind == kind && matches!(kind, FaultKind::KillCatalog | FaultKind::KillFrontend)
        });
        if active.len() >= 2 || (active.len() == 1 && (!overlap || same_process)) {
            continue;
        }
        faults.push(PlannedFault {
            at: t,
            kind,
            down_for: Duration::from_millis(millis),
            torn: torn
                && matches!(
                    kind,
                    FaultKind::KillReplica | FaultKind::KillLeader | FaultKind::KillCatalog
                ),
            pick,
        });
    }
}

// ---------------------------------------------------------------------------------------------
// The history
// ---------------------------------------------------------------------------------------------

/// A request of the history.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `GET /products/<name>`.
    Query {
        /// Toy.
        name: String,
    },
    /// `POST /orders` with a request id.
    Buy {
        /// Idempotency key.
        request_id: String,
        /// Toy.
        name: String,
        /// Units.
        quantity: u64,
    },
    /// `GET /orders/<number>`.
    OrderQuery {
        /// Order number.
        number: u64,
    },
}

/// The kind of a request, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// Product query.
    Query,
    /// Purchase.
    Buy,
    /// Order query.
    OrderQuery,
}

impl OpKind {
    /// Its name in the summary (as in the latency CSV's `kind`).
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Query => "query",
            OpKind::Buy => "buy",
            OpKind::OrderQuery => "order_query",
        }
    }
}

impl Op {
    /// Its kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Query { .. } => OpKind::Query,
            Op::Buy { .. } => OpKind::Buy,
            Op::OrderQuery { .. } => OpKind::OrderQuery,
        }
    }
}

/// What a request's answer tells of its effect (see the module docs for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Answered 200: the answer is the store's.
    Ok,
    /// Surely not applied.
    Fail,
    /// May or may not have been applied.
    Unknown,
}

impl Outcome {
    /// Its name in the summary.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// What came back for a request, before it is classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An HTTP answer: status and JSON body (Null when not JSON).
    Status(u16, Value),
    /// The request was not sent: connection refused or not set up in time.
    NotSent(String),
    /// The request may have been sent, and no whole answer came back.
    Lost(String),
}

/// The outcome of a reply, by the rules in the module docs.
pub fn classify(reply: &Reply) -> Outcome {
    match reply {
        Reply::Status(200, body) if body.get("data").is_some() => Outcome::Ok,
        Reply::Status(400..=499 | 503, _) | Reply::NotSent(_) => Outcome::Fail,
        Reply::Status(..) | Reply::Lost(_) => Outcome::Unknown,
    }
}

/// One request of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The client thread.
    pub client: usize,
    /// The request.
    pub op: Op,
    /// When it was sent, from the start of the run.
    pub invoke: Duration,
    /// When it was sent, by the wall clock (ms since the Unix epoch).
    pub invoke_unix_ms: u64,
    /// When its answer (or error) came back, from the start of the run.
    pub complete: Duration,
    /// What its answer tells.
    pub outcome: Outcome,
    /// HTTP status, 0 when there was none.
    pub status: u16,
    /// The `data` of a 200.
    pub data: Value,
    /// Error text, short.
    pub detail: String,
}

impl Entry {
    fn data_u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }

    /// The quantity a product query or an order query answered.
    pub fn quantity(&self) -> Option<u64> {
        self.data_u64("quantity")
    }

    /// The order number a purchase was answered.
    pub fn order_number(&self) -> Option<u64> {
        self.data_u64("order_number")
    }

    fn at(&self) -> String {
        format!(
            "client {} at {:.3} s",
            self.client,
            self.invoke.as_secs_f64()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The final state and the checks
// ---------------------------------------------------------------------------------------------

/// What the healed, quiet store holds, and what it answers.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Each replica's order file: its text and its rows (or why they could not be read).
    pub files: Vec<(ReplicaId, String, std::result::Result<Vec<Order>, String>)>,
    /// The catalog journal's rows.
    pub journal: Vec<JournalRow>,
    /// The catalog's stock per toy, asked directly.
    pub stock: BTreeMap<String, u64>,
    /// `GET /orders/<n>` through the front-end for every acknowledged number: (status, data).
    pub reads: BTreeMap<u64, (u16, Value)>,
    /// What could not be read.
    pub problems: Vec<String>,
    /// Wall-clock intervals (ms) from each SIGKILL of the catalog to its next start (`u64::MAX` when
    /// it was not started again while clients ran).
    pub catalog_outages: Vec<(u64, u64)>,
}

/// Figures the checks gather besides violations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// What went wrong, one line each.
    pub violations: Vec<String>,
    /// Orders in the final log.
    pub orders: usize,
    /// Purchases (request ids) answered only "unknown" or "fail" with an unknown among them.
    pub unknown_purchases: usize,
    /// Of those, how many ended as orders.
    pub unknown_applied: usize,
}

/// The toy's rows that change stock, as the reads check needs them.
struct ToyRows {
    /// For each stock value the toy has had: the highest `seq` of a row that left it there (0 for
    /// the initial stock).
    last_seq_of: HashMap<u64, u64>,
    /// (effective wall-clock ms, seq), sorted by time, with `seq` replaced by the running maximum.
    effective: Vec<(u64, u64)>,
    /// (ack time, seq of the take), sorted by time, `seq` as a running maximum.
    acked: Vec<(Duration, u64)>,
}

/// The largest `seq` among `points` whose time is at most `t` (0 when none).
fn bound_at<T: Ord + Copy>(points: &[(T, u64)], t: T) -> u64 {
    let i = points.partition_point(|(at, _)| *at <= t);
    if i == 0 {
        0
    } else {
        points[i - 1].1
    }
}

fn running_max<T>(points: &mut [(T, u64)]) {
    let mut max = 0;
    for p in points.iter_mut() {
        max = max.max(p.1);
        p.1 = max;
    }
}

/// Checks `history` against `state` (see the module docs for each check and why it is sound).
pub fn check(history: &[Entry], state: &FinalState) -> Findings {
    let mut f = Findings::default();
    let v = &mut f.violations;
    v.extend(state.problems.iter().cloned());

    // 1. Identical replicas, numbers in order, no request id twice.
    let mut log: Vec<Order> = Vec::new();
    for (id, text, rows) in &state.files {
        match rows {
            Ok(rows) if log.is_empty() => log = rows.clone(),
            Ok(_) => {}
            Err(e) => v.push(format!("orders-{id}.csv cannot be read: {e}")),
        }
        let (first_id, first_text, _) = &state.files[0];
        if text != first_text {
            let line = text
                .lines()
                .zip(first_text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| text.lines().count().min(first_text.lines().count()));
            v.push(format!(
                "orders-{id}.csv ({} lines) differs from orders-{first_id}.csv ({} lines) from line {}",
                text.lines().count(),
                first_text.lines().count(),
                line + 1
            ));
        }
    }
    f.orders = log.len();
    let mut by_request: HashMap<&str, u64> = HashMap::new();
    for (i, o) in log.iter().enumerate() {
        if o.number != i as u64 {
            v.push(format!("order at position {i} has number {}", o.number));
        }
        if let Some(first) = by_request.insert(o.request_id.as_str(), o.number) {
            v.push(format!(
                "request id {} applied twice: orders {first} and {}",
                o.request_id, o.number
            ));
        }
    }

    // 4. The journal: a chain per toy, the stock at its end, one order per take and one take per order.
    let mut stock: BTreeMap<&str, u64> = BTreeMap::new();
    let mut restocked: BTreeMap<&str, u64> = BTreeMap::new();
    let mut takes: HashMap<&str, &JournalRow> = HashMap::new();
    let mut last_seq = 0;
    let mut refused: HashMap<&str, u64> = HashMap::new();
    for r in &state.journal {
        if r.seq <= last_seq {
            v.push(format!("journal row seq {} follows seq {last_seq}", r.seq));
        }
        last_seq = r.seq;
        if r.kind == "refuse" {
            refused.insert(r.request_id.as_str(), r.seq);
        }
        // Only takes and restocks change stock; refusals, checkpoints and fences do not.
        if r.kind != "take" && r.kind != "restock" {
            continue;
        }
        let cur = stock.entry(r.name.as_str()).or_insert(INITIAL_STOCK);
        let expected = match r.kind.as_str() {
            "take" => {
                if let Some(first) = takes.insert(r.request_id.as_str(), r) {
                    v.push(format!(
                        "request id {} took stock twice: journal rows {} and {}",
                        r.request_id, first.seq, r.seq
                    ));
                }
                cur.checked_sub(r.quantity)
            }
            "restock" => {
                *restocked.entry(r.name.as_str()).or_default() += r.quantity;
                Some(*cur + r.quantity)
            }
            _ => continue,
        };
        if expected != Some(r.stock_after) {
            v.push(format!(
                "journal row {} ({} {} x{}): stock after {} but {} before it",
                r.seq, r.kind, r.name, r.quantity, r.stock_after, cur
            ));
        }
        *cur = r.stock_after;
    }
    for (id, t) in &takes {
        if let Some(seq) = refused.get(id) {
            v.push(format!(
                "request id {id} was both taken (journal row {}) and refused (row {seq})",
                t.seq
            ));
        }
    }
    let mut ordered: BTreeMap<&str, u64> = BTreeMap::new();
    for o in &log {
        *ordered.entry(o.name.as_str()).or_default() += o.quantity;
        match takes.get(o.request_id.as_str()) {
            None => v.push(format!(
                "order {} ({} x{}, request {}) has no take at the catalog",
                o.number, o.name, o.quantity, o.request_id
            )),
            Some(t) if t.name != o.name || t.quantity != o.quantity => v.push(format!(
                "order {} is {} x{} but its take (row {}) is {} x{}",
                o.number, o.name, o.quantity, t.seq, t.name, t.quantity
            )),
            Some(_) => {}
        }
    }
    for (id, t) in &takes {
        if !by_request.contains_key(id) {
            v.push(format!(
                "take at journal row {} ({} x{}, request {id}) has no order",
                t.seq, t.name, t.quantity
            ));
        }
    }
    if state.stock.is_empty() {
        v.push("the catalog's stock could not be read".into());
    }
    for (name, quantity) in &state.stock {
        let chain = stock.get(name.as_str()).copied().unwrap_or(INITIAL_STOCK);
        let added = restocked.get(name.as_str()).copied().unwrap_or(0);
        let taken = ordered.get(name.as_str()).copied().unwrap_or(0);
        if *quantity != chain || INITIAL_STOCK + added != quantity + taken {
            v.push(format!(
                "{name}: the catalog has {quantity}, its journal ends at {chain}, and 100 + {added} restocked - {taken} ordered = {}",
                (INITIAL_STOCK + added) as i128 - taken as i128
            ));
        }
    }

    // 2. and 5. Purchases: what each request id was answered.
    let mut attempts: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in history {
        if let Op::Buy { request_id, .. } = &e.op {
            attempts.entry(request_id.as_str()).or_default().push(e);
        }
    }
    let mut numbers: HashMap<u64, &str> = HashMap::new();
    for (id, tries) in &attempts {
        let Op::Buy { name, quantity, .. } = &tries[0].op else {
            unreachable!("grouped purchases")
        };
        let mut answered: Option<u64> = None;
        for e in tries.iter().filter(|e| e.outcome == Outcome::Ok) {
            let Some(n) = e.order_number() else {
                v.push(format!(
                    "{}: purchase {id} answered 200 without a number",
                    e.at()
                ));
                continue;
            };
            if let Some(m) = answered.filter(|m| *m != n) {
                v.push(format!(
                    "purchase {id} was answered order {m} and later order {n}"
                ));
            }
            answered = Some(n);
            if let Some(other) = numbers.insert(n, id).filter(|o| o != id) {
                v.push(format!(
                    "order {n} was given to purchase {other} and to {id}"
                ));
            }
        }
        if let Some(n) = answered {
            match log.get(n as usize) {
                Some(o) if o.request_id == *id && o.name == *name && o.quantity == *quantity => {}
                Some(o) => v.push(format!(
                    "acknowledged order {n} ({name} x{quantity}, request {id}) is {} x{} of request {} in the log",
                    o.name, o.quantity, o.request_id
                )),
                None => v.push(format!(
                    "acknowledged order {n} ({name} x{quantity}, request {id}) is missing: the log has {} orders",
                    log.len()
                )),
            }
            for (rid, _, rows) in &state.files {
                if let Ok(rows) = rows {
                    if rows.get(n as usize).is_none_or(|o| o.request_id != *id) {
                        v.push(format!(
                            "acknowledged order {n} (request {id}) is not in orders-{rid}.csv"
                        ));
                    }
                }
            }
            match state.reads.get(&n) {
                Some((200, d))
                    if d["name"] == name.as_str() && d["quantity"].as_u64() == Some(*quantity) => {}
                Some((status, d)) => v.push(format!(
                    "GET /orders/{n} after the heal answered {status} {d} for acknowledged {name} x{quantity}"
                )),
                None => v.push(format!("acknowledged order {n} was not read back")),
            }
        }
        let outcomes: HashSet<Outcome> = tries.iter().map(|e| e.outcome).collect();
        let applied = by_request.contains_key(id) || takes.contains_key(id);
        if outcomes.iter().all(|o| *o == Outcome::Fail) && applied {
            let answers: Vec<String> = tries
                .iter()
                .map(|e| {
                    if e.status == 0 {
                        e.detail.clone()
                    } else {
                        e.status.to_string()
                    }
                })
                .collect();
            v.push(format!(
                "purchase {id} ({name} x{quantity}) was answered only failures ({}) but {}",
                answers.join(", "),
                match by_request.get(id) {
                    Some(n) => format!("holds order {n}"),
                    None => "took stock".into(),
                }
            ));
        }
        if !outcomes.contains(&Outcome::Ok) && outcomes.contains(&Outcome::Unknown) {
            f.unknown_purchases += 1;
            f.unknown_applied += usize::from(by_request.contains_key(id));
        }
    }

    // 3. Order queries during the run.
    let mut acks: Vec<(Duration, u64)> = history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok && e.op.kind() == OpKind::Buy)
        .filter_map(|e| e.order_number().map(|n| (e.complete, n)))
        .collect();
    acks.sort();
    for e in history {
        let Op::OrderQuery { number } = &e.op else {
            continue;
        };
        match e.outcome {
            Outcome::Ok => {
                let (name, quantity) = (e.data["name"].as_str(), e.quantity());
                match log.get(*number as usize) {
                    Some(o) if Some(o.name.as_str()) == name && Some(o.quantity) == quantity => {}
                    o => v.push(format!(
                        "{}: GET /orders/{number} answered {} but the log holds {}",
                        e.at(),
                        e.data,
                        o.map_or("nothing".into(), |o| format!("{} x{}", o.name, o.quantity))
                    )),
                }
            }
            _ if e.status == 404 => {
                let acked_before = acks
                    .iter()
                    .take_while(|(at, _)| *at < e.invoke)
                    .any(|(_, n)| n == number);
                if acked_before {
                    v.push(format!(
                        "{}: GET /orders/{number} answered 404 for an order acknowledged before it",
                        e.at()
                    ));
                }
            }
            _ => {}
        }
    }

    // 6. and 7. Product queries against acknowledged takes and the journal's clock.
    let mut toys: HashMap<&str, ToyRows> = HashMap::new();
    for r in state
        .journal
        .iter()
        .filter(|r| r.kind == "take" || r.kind == "restock")
    {
        let t = toys.entry(r.name.as_str()).or_insert_with(|| ToyRows {
            last_seq_of: HashMap::from([(INITIAL_STOCK, 0)]),
            effective: Vec::new(),
            acked: Vec::new(),
        });
        t.last_seq_of.insert(r.stock_after, r.seq);
        let effective = state
            .catalog_outages
            .iter()
            .filter(|(killed, _)| *killed >= r.unix_ms && *killed < r.unix_ms + STALE_BOUND_MS)
            .map(|(_, started)| *started)
            .max()
            .unwrap_or(r.unix_ms);
        t.effective.push((effective, r.seq));
    }
    for e in history.iter().filter(|e| e.outcome == Outcome::Ok) {
        if let Op::Buy { request_id, .. } = &e.op {
            if let Some(r) = takes.get(request_id.as_str()) {
                if let Some(t) = toys.get_mut(r.name.as_str()) {
                    t.acked.push((e.complete, r.seq));
                }
            }
        }
    }
    for t in toys.values_mut() {
        t.effective.sort();
        running_max(&mut t.effective);
        t.acked.sort();
        running_max(&mut t.acked);
    }
    for e in history.iter().filter(|e| e.outcome == Outcome::Ok) {
        let Op::Query { name } = &e.op else {
            continue;
        };
        let Some(q) = e.quantity() else {
            v.push(format!("{}: query of {name} answered no quantity", e.at()));
            continue;
        };
        let Some(t) = toys.get(name.as_str()) else {
            if q != INITIAL_STOCK {
                v.push(format!(
                    "{}: query of {name} answered {q}, but the toy never changed from 100",
                    e.at()
                ));
            }
            continue;
        };
        let by_ack = bound_at(&t.acked, e.invoke.saturating_sub(Duration::from_nanos(1)));
        let by_clock = bound_at(
            &t.effective,
            e.invoke_unix_ms.saturating_sub(STALE_BOUND_MS),
        );
        match t.last_seq_of.get(&q) {
            None => v.push(format!(
                "{}: query of {name} answered {q}, a stock no journal row left",
                e.at()
            )),
            Some(last) if *last < by_ack => v.push(format!(
                "{}: query of {name} answered {q}, last the stock at journal row {last}, \
                 but a purchase whose take is row {by_ack} was acknowledged before the query",
                e.at()
            )),
            Some(last) if *last < by_clock => v.push(format!(
                "{}: query of {name} answered {q}, last the stock at journal row {last}, \
                 but row {by_clock} took effect more than {STALE_BOUND_MS} ms before the query",
                e.at()
            )),
            Some(_) => {}
        }
    }
    f
}

// ---------------------------------------------------------------------------------------------
// The summary
// ---------------------------------------------------------------------------------------------

/// What a run did and found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Planned length of the run.
    pub duration: Duration,
    /// How long clients ran and faults were injected.
    pub ran: Duration,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Faults of the plan that found no process to hit.
    pub skipped: u64,
    /// Requests by kind and outcome.
    pub requests: BTreeMap<(OpKind, Outcome), u64>,
    /// Requests that did not get a 200, by kind and status (0: no answer).
    pub statuses: BTreeMap<(OpKind, u16), u64>,
    /// What the checks found.
    pub findings: Findings,
    /// How long the healed store took to become quiet.
    pub quiet_after: Option<Duration>,
    /// The run was stopped from outside before its end; nothing was checked.
    pub interrupted: bool,
    /// Where the files and logs of a failed run were kept.
    pub kept: Option<PathBuf>,
}

impl Summary {
    /// True when the run ended and found no violation.
    pub fn passed(&self) -> bool {
        !self.interrupted && self.findings.violations.is_empty()
    }

    /// The command that runs this seed again.
    pub fn replay_command(&self) -> String {
        format!(
            "make chaos SEED={} DURATION={}",
            self.seed,
            self.duration.as_secs()
        )
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos: seed {}, {:.0} s of faults and clients{}",
            self.seed,
            self.ran.as_secs_f64(),
            if self.interrupted {
                " (interrupted: not checked)"
            } else {
                ""
            }
        )?;
        let total: u64 = self.faults.values().sum();
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{} {n}", k.label()))
            .collect();
        writeln!(f, "faults: {total} ({})", kinds.join(", "))?;
        if self.skipped > 0 {
            writeln!(f, "  planned faults that found no target: {}", self.skipped)?;
        }
        if self.interrupted {
            return Ok(());
        }
        writeln!(
            f,
            "requests: {:>13} {:>9} {:>9} {:>9}",
            "total", "ok", "fail", "unknown"
        )?;
        let mut all = [0u64; 4];
        for kind in [OpKind::Query, OpKind::Buy, OpKind::OrderQuery] {
            let n = |o| self.requests.get(&(kind, o)).copied().unwrap_or(0);
            let row = [
                n(Outcome::Ok) + n(Outcome::Fail) + n(Outcome::Unknown),
                n(Outcome::Ok),
                n(Outcome::Fail),
                n(Outcome::Unknown),
            ];
            for (a, r) in all.iter_mut().zip(row) {
                *a += r;
            }
            writeln!(
                f,
                "  {:<12} {:>9} {:>9} {:>9} {:>9}",
                kind.label(),
                row[0],
                row[1],
                row[2],
                row[3]
            )?;
        }
        writeln!(
            f,
            "  {:<12} {:>9} {:>9} {:>9} {:>9}",
            "all", all[0], all[1], all[2], all[3]
        )?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|((kind, status), n)| match status {
                0 => format!("{} no answer {n}", kind.label()),
                s => format!("{} {s} {n}", kind.label()),
            })
            .collect();
        if !statuses.is_empty() {
            writeln!(f, "  not 200: {}", statuses.join(", "))?;
        }
        writeln!(
            f,
            "orders: {} in every replica's file; purchases with an unknown outcome: {} ({} became orders)",
            self.findings.orders, self.findings.unknown_purchases, self.findings.unknown_applied
        )?;
        match self.quiet_after {
            Some(d) => writeln!(f, "quiet {:.1} s after the heal", d.as_secs_f64())?,
            None => writeln!(f, "the store did not become quiet")?,
        }
        let v = &self.findings.violations;
        writeln!(f, "violations: {}", v.len())?;
        for line in v.iter().take(SHOWN_VIOLATIONS) {
            writeln!(f, "  - {line}")?;
        }
        if v.len() > SHOWN_VIOLATIONS {
            writeln!(f, "  ... and {} more", v.len() - SHOWN_VIOLATIONS)?;
        }
        if let Some(k) = &self.kept {
            writeln!(f, "files and logs kept in {}", k.display())?;
        }
        if !v.is_empty() {
            writeln!(
                f,
                "FAILED with seed {}; replay: {}",
                self.seed,
                self.replay_command()
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The clients
// ---------------------------------------------------------------------------------------------

/// Counters the progress bar shows.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    ok: AtomicU64,
    fail: AtomicU64,
    unknown: AtomicU64,
}

fn unix_ms() -> u64 {
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
struct Client {
    id: usize,
    seed: u64,
    url: String,
    toys: Vec<String>,
    start: Instant,
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    /// Order numbers acknowledged to any client, for order queries.
    acked: Arc<Mutex<Vec<u64>>>,
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
    fn run(self) -> Vec<Entry> {
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
                if rng.random_bool(0.05) {
                    // The same purchase twice at once, as a client that retries too early would.
                    let pause = Duration::from_millis(rng.random_range(0..=3));
                    let twin = std::thread::scope(|s| {
                        let t = s.spawn(|| {
                            let mut h = Vec::new();
                            self.request(&agent, op.clone(), &mut h);
                            h
                        });
                        std::thread::sleep(pause);
                        let i = self.request(&agent, op.clone(), &mut history);
                        (i, t.join().expect("twin purchase"))
                    });
                    for e in std::iter::once(&history[twin.0]).chain(&twin.1) {
                        if let (Outcome::Ok, Some(n)) = (e.outcome, e.order_number()) {
                            self.acked.lock().unwrap().push(n);
                            mine.push(op.clone());
                        }
                    }
                    history.extend(twin.1);
                    continue;
                }
                for attempt in 1..=MAX_ATTEMPTS {
                    let i = self.request(&agent, op.clone(), &mut history);
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
            } else if roll < 96 {
                // Half the time the client's own newest order, as a buyer checks what it just
                // bought; else any acknowledged one.
                let own = history
                    .iter()
                    .rev()
                    .filter(|e| e.outcome == Outcome::Ok)
                    .find_map(Entry::order_number);
                let number = match own {
                    Some(n) if rng.random_bool(0.5) => Some(n),
                    _ => {
                        let acked = self.acked.lock().unwrap();
                        (!acked.is_empty()).then(|| acked[rng.random_range(0..acked.len())])
                    }
                };
                match number {
                    Some(number) => self.request(&agent, Op::OrderQuery { number }, &mut history),
                    None => self.request(&agent, Op::Query { name }, &mut history),
                };
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
}

// ---------------------------------------------------------------------------------------------
// The fault injector
// ---------------------------------------------------------------------------------------------

/// How a process that a fault took away comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Back {
    /// Started again (after a torn line at the end of its file, with `torn`).
    Restart { torn: bool },
    /// SIGCONT.
    Resume,
}

/// A fault under way.
struct Active {
    process: String,
    back_at: Duration,
    back: Back,
}

/// Carries out the plan on a cluster.
struct Injector<'a> {
    cluster: &'a mut Cluster,
    restock_secs: f64,
    active: Vec<Active>,
    faults: BTreeMap<FaultKind, u64>,
    skipped: u64,
    /// Wall-clock ms of the catalog's SIGKILL not yet followed by a start.
    catalog_killed: Option<u64>,
    catalog_outages: Vec<(u64, u64)>,
    violations: Vec<String>,
    rng: StdRng,
    /// What was done when, one line each.
    events: Vec<String>,
    verbose: bool,
    start: Instant,
}

fn process_of(id: ReplicaId) -> String {
    format!("order-{id}")
}

impl Injector<'_> {
    fn event(&mut self, what: String) {
        let line = format!("{:8.3} s  {what}", self.start.elapsed().as_secs_f64());
        if self.verbose {
            eprintln!("{line}");
        }
        self.events.push(line);
    }

    fn is_hit(&self, process: &str) -> bool {
        self.active.iter().any(|a| a.process == process)
    }

    /// Replicas that run and no fault holds.
    fn healthy_replicas(&self) -> Vec<ReplicaId> {
        REPLICAS
            .into_iter()
            .filter(|id| !self.is_hit(&process_of(*id)))
            .collect()
    }

    /// The leader the front-end names, if it runs and no fault holds it.
    fn healthy_leader(&self) -> Option<ReplicaId> {
        self.cluster
            .leader()
            .filter(|id| !self.is_hit(&process_of(*id)))
    }

    fn count(&mut self, kind: FaultKind) {
        *self.faults.entry(kind).or_default() += 1;
    }

    fn inject(&mut self, fault: &PlannedFault, now: Duration) -> Option<String> {
        let back_at = now + fault.down_for;
        let (process, back, kind) = match fault.kind {
            FaultKind::KillReplica | FaultKind::KillLeader | FaultKind::PauseLeader => {
                let wants_leader = fault.kind != FaultKind::KillReplica;
                let leader = if wants_leader {
                    self.healthy_leader()
                } else {
                    None
                };
                let id = match leader {
                    Some(id) => id,
                    None => {
                        let candidates = self.healthy_replicas();
                        if candidates.is_empty() {
                            self.skipped += 1;
                            self.event(format!("skipped {}: no replica left", fault.kind.label()));
                            return None;
                        }
                        candidates[fault.pick as usize % candidates.len()]
                    }
                };
                let kind = match (fault.kind, leader.is_some()) {
                    (FaultKind::PauseLeader, true) => FaultKind::PauseLeader,
                    (FaultKind::PauseLeader, false) => FaultKind::PauseReplica,
                    (_, true) => FaultKind::KillLeader,
                    (_, false) => FaultKind::KillReplica,
                };
                let back = if kind == FaultKind::PauseLeader || kind == FaultKind::PauseReplica {
                    Back::Resume
                } else {
                    Back::Restart { torn: fault.torn }
                };
                (process_of(id), back, kind)
            }
            FaultKind::KillCatalog => (
                "catalog".to_string(),
                Back::Restart { torn: fault.torn },
                fault.kind,
            ),
            _ => (
                "frontend".to_string(),
                Back::Restart { torn: false },
                fault.kind,
            ),
        };
        if self.is_hit(&process) || !self.cluster.is_running(&process) {
            self.skipped += 1;
            self.event(format!(
                "skipped {} on {process}: already down",
                kind.label()
            ));
            return None;
        }
        self.event(format!(
            "{} {process} for {:.1} s",
            kind.label(),
            fault.down_for.as_secs_f64()
        ));
        match back {
            Back::Resume => self.cluster.pause(&process),
            Back::Restart { .. } => self.cluster.kill(&process),
        }
        if process == "catalog" {
            self.catalog_killed = Some(unix_ms());
        }
        self.count(kind);
        self.active.push(Active {
            process: process.clone(),
            back_at,
            back,
        });
        Some(format!("{} {process}", kind.label()))
    }

    /// Appends the start of a row, without its newline, to a stopped process's file: what a crash in
    /// the middle of a write leaves.
    fn tear(&mut self, file: &str, kind: FaultKind) {
        let path = self.cluster.data().join(file);
        let n: u32 = self.rng.random_range(0..100_000);
        let row = match kind {
            FaultKind::TornOrderLine => format!("{n},Marbles,3,torn-{n},7"),
            _ => format!("{n},take,torn-{n},Marbles,3,97,1700000000000"),
        };
        let cut = self.rng.random_range(1..row.len());
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
            if f.write_all(&row.as_bytes()[..cut]).is_ok() && f.sync_data().is_ok() {
                self.count(kind);
            }
        }
    }

    fn bring_back(&mut self, a: &Active) {
        self.event(match a.back {
            Back::Resume => format!("resume {}", a.process),
            Back::Restart { torn: true } => format!("restart {} after a torn line", a.process),
            Back::Restart { torn: false } => format!("restart {}", a.process),
        });
        match a.back {
            Back::Resume => self.cluster.resume(&a.process),
            Back::Restart { torn } => {
                if a.process == "catalog" {
                    if torn {
                        self.tear("catalog-journal.csv", FaultKind::TornJournalLine);
                    }
                    self.cluster.start_catalog(self.restock_secs);
                    if let Some(killed) = self.catalog_killed.take() {
                        self.catalog_outages.push((killed, unix_ms()));
                    }
                } else if a.process == "frontend" {
                    self.cluster.start_frontend();
                } else {
                    let id: ReplicaId = a.process["order-".len()..].parse().expect("replica id");
                    if torn {
                        self.tear(&format!("orders-{id}.csv"), FaultKind::TornOrderLine);
                    }
                    self.cluster.start_order(id);
                }
            }
        }
    }

    /// Brings back every process whose fault is over (all of them with `all`).
    fn maybe_bring_back(&mut self, now: Duration, all: bool) {
        let (due, rest): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| all || a.back_at <= now);
        self.active = rest;
        for a in &due {
            self.bring_back(a);
        }
    }

    /// A process no fault holds that is not running exited by itself: a violation; it is started
    /// again so the run goes on.
    fn check_alive(&mut self, now: Duration) {
        let mut names = vec!["catalog".to_string(), "frontend".to_string()];
        names.extend(REPLICAS.map(process_of));
        for name in names {
            if self.is_hit(&name) || self.cluster.is_running(&name) {
                continue;
            }
            let status = self.cluster.forget_exited(&name);
            self.violations.push(format!(
                "{name} exited by itself ({}) at {:.1} s:\n{}",
                status.map_or("status unknown".into(), |s| s.to_string()),
                now.as_secs_f64(),
                self.cluster.logs()
            ));
            let a = Active {
                process: name,
                back_at: now,
                back: Back::Restart { torn: false },
            };
            self.bring_back(&a);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------------

/// Sets a flag when dropped, so client threads stop also when the runner panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One look at the healed store: Ok when it is quiet.
fn quiet_once(c: &Cluster) -> std::result::Result<(), String> {
    let a = c.query("Tux");
    if a.status != 200 {
        return Err(format!("the front-end answers a query {}", a.status));
    }
    let Some(leader) = c.leader() else {
        return Err("the front-end has no leader".into());
    };
    if !c
        .replica_status(leader)
        .is_some_and(|s| s["role"] == "leader")
    {
        return Err(format!("replica {leader} does not lead yet"));
    }
    for id in REPLICAS {
        if !c.replica_status(id).is_some_and(|s| s["ready"] == true) {
            return Err(format!("replica {id} is not ready"));
        }
    }
    if c.internal_get(&format!("{}/products", c.catalog_url()))
        .status
        != 200
    {
        return Err("the catalog does not answer".into());
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.check_consistent()))
        .map_err(|_| "the consistency check panicked".to_string())?
        .map(|_| ())
}

/// Waits until the store is quiet; how long that took, or what was still wrong at the timeout.
fn wait_quiet(
    c: &Cluster,
    timeout: Duration,
    stop: &AtomicBool,
) -> std::result::Result<Duration, String> {
    let started = Instant::now();
    loop {
        match quiet_once(c) {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) if started.elapsed() > timeout || stop.load(Ordering::SeqCst) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Reads what the quiet store holds and answers.
fn final_state(c: &Cluster, history: &[Entry], catalog_outages: Vec<(u64, u64)>) -> FinalState {
    let files = REPLICAS
        .iter()
        .map(|id| {
            let text = c.orders_text(*id);
            let rows = csv::Reader::from_reader(text.as_bytes())
                .deserialize::<Order>()
                .collect::<std::result::Result<Vec<Order>, _>>()
                .map_err(|e| e.to_string());
            (*id, text, rows)
        })
        .collect();
    // The catalog still restocks: read the stock between two reads of the journal that agree.
    let read_journal = || crate::read_journal(&c.data());
    let mut problems = Vec::new();
    let (mut journal, mut stock) = (Vec::new(), BTreeMap::new());
    for _ in 0..20 {
        let before = read_journal();
        stock = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.stock()))
            .unwrap_or_default();
        let after = read_journal();
        match (before, after) {
            (Ok(b), Ok(a)) if a == b => {
                journal = a;
                problems.clear();
                break;
            }
            (_, Ok(a)) => journal = a,
            (_, Err(e)) => problems = vec![e],
        }
    }
    let numbers: BTreeSet<u64> = history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok && e.op.kind() == OpKind::Buy)
        .filter_map(Entry::order_number)
        .collect();
    let mut reads = BTreeMap::new();
    for n in numbers {
        let mut a = c.order(n);
        for _ in 0..20 {
            if a.status == 200 || a.status == 404 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            a = c.order(n);
        }
        reads.insert(n, (a.status, a.body["data"].clone()));
    }
    FinalState {
        files,
        journal,
        stock,
        reads,
        problems,
        catalog_outages,
    }
}

/// Copies the store's folder (data and logs) to a folder that outlives the run.
fn keep_files(from: &Path, seed: u64) -> Option<PathBuf> {
    let to =
        std::env::temp_dir().join(format!("toystore-chaos-seed-{seed}-{}", std::process::id()));
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(e.file_name()))?;
            } else {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
        Ok(())
    }
    copy(from, &to).ok().map(|_| to)
}

/// Writes the history as CSV, one request a line, for a person reading a failed run.
fn write_history(path: &Path, history: &[Entry]) -> std::io::Result<()> {
    let mut out = String::from(
        "client,invoke_ms,complete_ms,invoke_unix_ms,kind,request,outcome,status,data,detail\n",
    );
    for e in history {
        let request = match &e.op {
            Op::Query { name } => name.clone(),
            Op::Buy {
                request_id,
                name,
                quantity,
            } => format!("{request_id} {name} x{quantity}"),
            Op::OrderQuery { number } => number.to_string(),
        };
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            e.client,
            e.invoke.as_millis(),
            e.complete.as_millis(),
            e.invoke_unix_ms,
            e.op.kind().label(),
            quote(&request),
            e.outcome.label(),
            e.status,
            quote(&e.data.to_string()),
            quote(&e.detail)
        ));
    }
    std::fs::write(path, out)
}

/// Runs the store under the faults of `opts.seed` with clients for `opts.duration`, heals it, and
/// checks the history. Every process it started is killed when it returns (or panics).
pub fn run(opts: &Options) -> Summary {
    let plan = plan(opts.seed, opts.duration);
    let mut cluster = Cluster::new(opts.port_base);
    cluster.start_all(opts.restock_secs);
    let toys: Vec<String> = cluster.stock().into_keys().collect();
    let start = Instant::now();
    let stop_clients = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop_clients.clone());
    let counters = Arc::new(Counters::default());
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..opts.clients)
        .map(|id| {
            let client = Client {
                id,
                seed: opts.seed,
                url: cluster.frontend_url(),
                toys: toys.clone(),
                start,
                stop: stop_clients.clone(),
                counters: counters.clone(),
                acked: acked.clone(),
            };
            std::thread::Builder::new()
                .name(format!("chaos-client-{id}"))
                .spawn(move || client.run())
                .expect("spawn client")
        })
        .collect();

    let bar = if opts.progress {
        let bar = ProgressBar::new(opts.duration.as_secs().max(1));
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}")
                .expect("template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut injector = Injector {
        cluster: &mut cluster,
        restock_secs: opts.restock_secs,
        active: Vec::new(),
        faults: BTreeMap::new(),
        skipped: 0,
        catalog_killed: None,
        catalog_outages: Vec::new(),
        violations: Vec::new(),
        rng: StdRng::seed_from_u64(opts.seed ^ 0x0704_11ED),
        events: Vec::new(),
        verbose: opts.verbose,
        start,
    };
    let mut next = 0;
    let mut last_alive_check = Duration::ZERO;
    let mut last_event = String::new();
    while start.elapsed() < opts.duration && !opts.stop.load(Ordering::SeqCst) {
        let now = start.elapsed();
        injector.maybe_bring_back(now, false);
        while next < plan.len() && plan[next].at <= now {
            if let Some(event) = injector.inject(&plan[next], now) {
                last_event = event;
            }
            next += 1;
        }
        if now >= last_alive_check + Duration::from_millis(500) {
            injector.check_alive(now);
            last_alive_check = now;
        }
        let down: Vec<&str> = injector.active.iter().map(|a| a.process.as_str()).collect();
        bar.set_position(now.as_secs());
        bar.set_message(format!(
            "faults {} | requests {} ok {} fail {} unknown {} | down: {} | last: {last_event}",
            injector.faults.values().sum::<u64>(),
            counters.requests.load(Ordering::Relaxed),
            counters.ok.load(Ordering::Relaxed),
            counters.fail.load(Ordering::Relaxed),
            counters.unknown.load(Ordering::Relaxed),
            if down.is_empty() {
                "none".to_string()
            } else {
                down.join(", ")
            },
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
    let ran = start.elapsed();
    stop_clients.store(true, Ordering::SeqCst);
    let mut summary = Summary {
        seed: opts.seed,
        duration: opts.duration,
        ran,
        faults: std::mem::take(&mut injector.faults),
        skipped: injector.skipped,
        ..Summary::default()
    };
    if opts.stop.load(Ordering::SeqCst) {
        // Stopped from outside: no heal, no checks, no wait for the clients' last answers (they stop
        // by themselves); the cluster's drop kills every process.
        bar.finish_and_clear();
        summary.interrupted = true;
        return summary;
    }
    injector.maybe_bring_back(ran, true);
    bar.set_message("healing; waiting for the clients' last answers");
    let mut history: Vec<Entry> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    history.sort_by_key(|e| e.invoke);
    for e in &history {
        *summary
            .requests
            .entry((e.op.kind(), e.outcome))
            .or_default() += 1;
        if e.status != 200 {
            *summary.statuses.entry((e.op.kind(), e.status)).or_default() += 1;
        }
    }
    let mut violations = std::mem::take(&mut injector.violations);
    let events = std::mem::take(&mut injector.events);
    let mut outages = std::mem::take(&mut injector.catalog_outages);
    if let Some(killed) = injector.catalog_killed {
        outages.push((killed, u64::MAX));
    }
    bar.set_message("waiting for the store to become quiet");
    match wait_quiet(&cluster, opts.quiet_timeout, &opts.stop) {
        Ok(d) => summary.quiet_after = Some(d),
        Err(e) => violations.push(format!(
            "the healed store was not quiet after {} s: {e}",
            opts.quiet_timeout.as_secs()
        )),
    }
    bar.set_message("checking the history");
    let state = final_state(&cluster, &history, outages);
    summary.findings = check(&history, &state);
    violations.append(&mut summary.findings.violations);
    summary.findings.violations = violations;
    bar.finish_and_clear();
    if !summary.findings.violations.is_empty() {
        eprintln!("{}", cluster.logs());
        if opts.keep_on_failure {
            summary.kept = cluster
                .data()
                .parent()
                .and_then(|d| keep_files(d, opts.seed));
            if let Some(k) = &summary.kept {
                if let Err(e) = write_history(&k.join("history.csv"), &history) {
                    eprintln!("cannot write the history: {e}");
                }
                let _ = std::fs::write(k.join("faults.txt"), events.join("\n") + "\n");
            }
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_seed_always_plans_the_same_faults_and_never_more_than_two_at_once() {
        let d = Duration::from_secs(600);
        assert_eq!(plan(7, d), plan(7, d));
        assert_ne!(plan(7, d), plan(8, d));
        let faults = plan(7, d);
        assert!(faults.len() > 100, "{}", faults.len());
        for f in &faults {
            assert!(f.at >= WARM_UP && f.at < d);
            let active = faults
                .iter()
                .filter(|g| g.at <= f.at && g.ends() > f.at)
                .count();
            assert!(active <= 2, "{f:?}");
        }
        assert!(faults.windows(2).all(|w| w[0].at < w[1].at));
        let kinds: HashSet<FaultKind> = faults.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 5);
        assert!(faults.iter().any(|f| f.torn));
    }

    #[test]
    fn replies_are_classified_by_what_they_say_of_the_effect() {
        let ok = Reply::Status(200, json!({"data": {"order_number": 3}}));
        assert_eq!(classify(&ok), Outcome::Ok);
        for s in [400, 404, 408, 409, 413, 503] {
            assert_eq!(
                classify(&Reply::Status(s, Value::Null)),
                Outcome::Fail,
                "{s}"
            );
        }
        for s in [500, 502, 504] {
            assert_eq!(
                classify(&Reply::Status(s, Value::Null)),
                Outcome::Unknown,
                "{s}"
            );
        }
        assert_eq!(classify(&Reply::Status(200, Value::Null)), Outcome::Unknown);
        assert_eq!(classify(&Reply::NotSent("refused".into())), Outcome::Fail);
        assert_eq!(classify(&Reply::Lost("reset".into())), Outcome::Unknown);
    }

    fn entry(client: usize, op: Op, at_ms: u64, took_ms: u64, reply: Reply) -> Entry {
        let outcome = classify(&reply);
        let (status, data) = match reply {
            Reply::Status(s, b) => (s, b.get("data").cloned().unwrap_or(Value::Null)),
            _ => (0, Value::Null),
        };
        Entry {
            client,
            op,
            invoke: Duration::from_millis(at_ms),
            invoke_unix_ms: 1_000_000 + at_ms,
            complete: Duration::from_millis(at_ms + took_ms),
            outcome,
            status,
            data,
            detail: String::new(),
        }
    }

    fn buy(id: &str, name: &str, quantity: u64) -> Op {
        Op::Buy {
            request_id: id.into(),
            name: name.into(),
            quantity,
        }
    }

    fn query(name: &str) -> Op {
        Op::Query { name: name.into() }
    }

    fn order(n: u64, name: &str, quantity: u64, id: &str) -> Order {
        Order {
            number: n,
            name: name.into(),
            quantity,
            request_id: id.into(),
            epoch: 1,
        }
    }

    fn row(
        seq: u64,
        kind: &str,
        id: &str,
        name: &str,
        q: u64,
        after: u64,
        at_ms: u64,
    ) -> JournalRow {
        JournalRow {
            seq,
            kind: kind.into(),
            request_id: id.into(),
            name: name.into(),
            quantity: q,
            stock_after: after,
            unix_ms: 1_000_000 + at_ms,
            epoch: 0,
        }
    }

    /// Two purchases of Tux (orders 0 and 1), the second acknowledged at 300 ms.
    fn state() -> FinalState {
        let log = vec![order(0, "Tux", 2, "a"), order(1, "Tux", 1, "b")];
        let text = "number,name,quantity,request_id,epoch\n0,Tux,2,a,1\n1,Tux,1,b,1\n".to_string();
        FinalState {
            files: REPLICAS
                .iter()
                .map(|id| (*id, text.clone(), Ok(log.clone())))
                .collect(),
            journal: vec![
                row(1, "checkpoint", "", "", 0, 0, 0),
                row(2, "take", "a", "Tux", 2, 98, 100),
                row(3, "take", "b", "Tux", 1, 97, 250),
            ],
            stock: BTreeMap::from([("Tux".into(), 97), ("Fox".into(), 100)]),
            reads: BTreeMap::from([
                (0, (200, json!({"number": 0, "name": "Tux", "quantity": 2}))),
                (1, (200, json!({"number": 1, "name": "Tux", "quantity": 1}))),
            ]),
            problems: Vec::new(),
            catalog_outages: Vec::new(),
        }
    }

    fn good_history() -> Vec<Entry> {
        let created = |n: u64| Reply::Status(200, json!({"data": {"order_number": n}}));
        let stock = |q: u64| Reply::Status(200, json!({"data": {"name": "Tux", "quantity": q}}));
        vec![
            entry(0, buy("a", "Tux", 2), 50, 100, created(0)),
            entry(1, query("Tux"), 120, 10, stock(100)),
            entry(1, buy("b", "Tux", 1), 200, 100, created(1)),
            entry(2, query("Tux"), 310, 10, stock(97)),
            entry(
                2,
                buy("c", "Tux", 500),
                320,
                10,
                Reply::Status(409, Value::Null),
            ),
            entry(
                2,
                buy("d", "Fox", 1),
                330,
                10,
                Reply::Status(503, Value::Null),
            ),
            entry(
                2,
                Op::OrderQuery { number: 1 },
                340,
                10,
                Reply::Status(
                    200,
                    json!({"data": {"number": 1, "name": "Tux", "quantity": 1}}),
                ),
            ),
        ]
    }

    #[test]
    fn a_history_that_keeps_every_promise_passes() {
        let f = check(&good_history(), &state());
        assert_eq!(f.violations, Vec::<String>::new());
        assert_eq!(f.orders, 2);
    }

    #[test]
    fn a_lost_or_changed_acknowledged_order_is_found() {
        let mut s = state();
        for (_, text, rows) in &mut s.files {
            text.truncate(text.len() - "1,Tux,1,b,1\n".len());
            rows.as_mut().unwrap().pop();
        }
        let f = check(&good_history(), &s);
        let all = f.violations.join("\n");
        assert!(
            all.contains("acknowledged order 1 (Tux x1, request b) is missing"),
            "{all}"
        );
        assert!(all.contains("take at journal row 3"), "{all}");
        assert!(all.contains("GET /orders/1 answered"), "{all}");
    }

    #[test]
    fn replicas_that_differ_are_found() {
        let mut s = state();
        s.files[2].1.push_str("2,Fox,1,x,2\n");
        let f = check(&good_history(), &s);
        assert!(
            f.violations[0].contains("orders-3.csv (4 lines) differs"),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn a_failed_purchase_that_left_an_order_is_found() {
        let mut h = good_history();
        // The 409 of "c" was in truth applied: its order and take are in the files.
        let mut s = state();
        let extra = order(2, "Tux", 500, "c");
        for (_, text, rows) in &mut s.files {
            text.push_str("2,Tux,500,c,1\n");
            rows.as_mut().unwrap().push(extra.clone());
        }
        s.journal.push(row(4, "take", "c", "Tux", 500, 0, 330));
        let f = check(&h, &s);
        assert!(
            f.violations
                .iter()
                .any(|v| v.contains("purchase c (Tux x500) was answered only failures (409)")),
            "{:?}",
            f.violations
        );
        // With an unknown attempt too, the order may honestly exist.
        h.push(entry(
            2,
            buy("c", "Tux", 500),
            400,
            10,
            Reply::Lost("reset".into()),
        ));
        let f = check(&h, &s);
        assert!(
            !f.violations.iter().any(|v| v.contains("purchase c")),
            "{:?}",
            f.violations
        );
        assert_eq!((f.unknown_purchases, f.unknown_applied), (1, 1));
    }

    #[test]
    fn a_query_older_than_an_acknowledged_purchase_is_found() {
        let mut h = good_history();
        // Invoked after "b" was acknowledged (at 300 ms), answered the stock from before its take.
        h.push(entry(
            3,
            query("Tux"),
            301,
            5,
            Reply::Status(200, json!({"data": {"name": "Tux", "quantity": 98}})),
        ));
        let f = check(&h, &state());
        assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
        assert!(
            f.violations[0].contains("take is row 3"),
            "{}",
            f.violations[0]
        );
        // Sent before the acknowledgement, the same answer is fine.
        let last = h.last_mut().unwrap();
        last.invoke = Duration::from_millis(299);
        last.invoke_unix_ms = 1_000_299;
        assert_eq!(check(&h, &state()).violations, Vec::<String>::new());
    }

    #[test]
    fn a_stock_stale_long_after_its_row_is_found_unless_the_catalog_was_down() {
        let mut h = good_history();
        // Client 3 never bought; long after row 3 it still sees 98.
        let mut e = entry(
            3,
            query("Tux"),
            250 + STALE_BOUND_MS + 10,
            5,
            Reply::Status(200, json!({"data": {"name": "Tux", "quantity": 98}})),
        );
        e.invoke = Duration::from_millis(100); // before the acknowledgement by the run's clock
        h.push(e);
        let f = check(&h, &state());
        assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
        assert!(
            f.violations[0].contains("took effect more than"),
            "{}",
            f.violations[0]
        );
        // The catalog was killed right after row 3 and started again later: row 3 took effect then.
        let mut s = state();
        s.catalog_outages = vec![(1_000_260, 1_000_000 + 250 + STALE_BOUND_MS)];
        assert_eq!(check(&h, &s).violations, Vec::<String>::new());
    }

    #[test]
    fn stock_that_does_not_add_up_is_found() {
        let mut s = state();
        s.stock.insert("Tux".into(), 96);
        let f = check(&good_history(), &s);
        assert!(
            f.violations[0].starts_with("Tux: the catalog has 96"),
            "{:?}",
            f.violations
        );
        let mut s = state();
        s.journal[2].stock_after = 95;
        let f = check(&good_history(), &s);
        assert!(
            f.violations.iter().any(|v| v.contains("journal row 3")),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn one_number_for_two_purchases_or_a_404_for_an_acknowledged_order_is_found() {
        let mut h = good_history();
        h.push(entry(
            4,
            buy("e", "Fox", 1),
            400,
            10,
            Reply::Status(200, json!({"data": {"order_number": 1}})),
        ));
        h.push(entry(
            4,
            Op::OrderQuery { number: 0 },
            500,
            10,
            Reply::Status(404, Value::Null),
        ));
        let f = check(&h, &state());
        let all = f.violations.join("\n");
        assert!(
            all.contains("order 1 was given to purchase b and to e"),
            "{all}"
        );
        assert!(all.contains("GET /orders/0 answered 404"), "{all}");
    }
}
