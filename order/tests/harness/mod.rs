//! A whole store in one thread, for the simulation and the scenarios: three (or more) real replica
//! cores, a model of the catalog, a front-end driver and its clients, a network and disks, all driven
//! by one seeded random generator and a virtual clock.
//!
//! - **Network**: every message, request and answer is an event delivered after a random delay; it
//!   may be dropped, duplicated or delayed far past others; a partition blocks chosen pairs.
//! - **Disks**: a replica's writes reach its disk in order. A sync completes after a random delay and
//!   makes every write so far durable. A crash keeps what was durable and a random prefix of the rest
//!   (the last append possibly cut short, as a torn line is cut on start).
//! - **Catalog**: takes stock once per request id, remembers refusals for good, turns away (without
//!   refusing the id) a take of an epoch older than the newest it saw, lists takes (the same rules
//!   as the catalog service).
//! - **Front-end**: chooses the highest ready replica, announces it, sends purchases to the leader and
//!   retries under the same request id as the real one does; clients retry a 504 with the same id.
//!
//! Every answer a client gets goes into the history; [`Sim::check`] verifies every promise over it.

#![allow(dead_code)]

use frontend::leader::Verdict;
use order::core::{self, Answer, CatalogCall, CatalogReply, Effect, Input, Ms, Write};
use order::files::Meta;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::protocol::{
    Ballot, CancelReply, Order, Purchase, ReplicaId, ReplicaMsg, ReplicaStatus, TakeRecord,
    TakeReply,
};
use shared::Error;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::fmt::Write as _;

/// The toys and their stock when new.
pub const TOYS: [&str; 3] = ["Tux", "Whale", "Fox"];
/// Initial stock: small, so purchases also run out and get 409.
pub const STOCK: u64 = 12;
/// The catalog restocks this often.
pub const RESTOCK_EVERY: Ms = 3_000;
/// How often each replica's clock ticks.
pub const TICK: Ms = 10;
/// The front-end's timeout of a call to a replica.
pub const CALL_TIMEOUT: Ms = shared::timing::LEADER_CALL_TIMEOUT_MS;
/// The front-end's budget for one purchase.
pub const BUDGET: Ms = 6_000;
/// The catalog's timeout as a replica sees it.
pub const CATALOG_TIMEOUT: Ms = shared::timing::CATALOG_TIMEOUT_MS;
/// A run with more events than this is a livelock (runs take a few thousand, a long scenario tens of
/// thousands).
pub const MAX_EVENTS: usize = 300_000;

/// Who is at either end of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Addr {
    /// A replica.
    Replica(ReplicaId),
    /// The catalog.
    Catalog,
    /// The front-end.
    Frontend,
}

/// How often each fault happens, per seed (swarm testing: seeds differ in their mix).
#[derive(Debug, Clone)]
pub struct Faults {
    /// Chance a message is lost.
    pub drop: f64,
    /// Chance a message is delivered twice.
    pub duplicate: f64,
    /// Chance a message is delayed far past others.
    pub delay: f64,
    /// Chance per step of crashing a replica.
    pub crash: f64,
    /// Chance per step of pausing a replica.
    pub pause: f64,
    /// Chance per step of cutting the network somewhere.
    pub partition: f64,
    /// Chance per step of the catalog going down for a while.
    pub catalog_down: f64,
    /// Chance per step of a power loss: every replica crashes at once (they share one machine).
    pub power_loss: f64,
    /// Longest time a disk sync takes (ms).
    pub slowest_sync: Ms,
}

impl Faults {
    /// No faults at all.
    pub fn none() -> Faults {
        Faults {
            drop: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            crash: 0.0,
            pause: 0.0,
            partition: 0.0,
            catalog_down: 0.0,
            power_loss: 0.0,
            slowest_sync: 3,
        }
    }

    /// A random mix for a seed.
    pub fn random(rng: &mut StdRng) -> Faults {
        let mut pick = |max: f64| {
            if rng.random_bool(0.3) {
                0.0
            } else {
                rng.random_range(0.0..max)
            }
        };
        Faults {
            drop: pick(0.15),
            duplicate: pick(0.1),
            delay: pick(0.1),
            crash: pick(0.03),
            pause: pick(0.02),
            partition: pick(0.03),
            catalog_down: pick(0.01),
            power_loss: pick(0.004),
            slowest_sync: if rng.random_bool(0.3) {
                rng.random_range(4..40)
            } else {
                3
            },
        }
    }
}

/// What travels between nodes.
#[derive(Debug, Clone)]
enum Payload {
    Peer(ReplicaMsg),
    /// Front-end to replica: a request with the front-end's call number.
    Request(u64, core::Request),
    /// Replica to front-end: the answer to call `n`.
    Answer(u64, shared::Result<Answer>),
    /// Replica to catalog.
    Call(CatalogCall),
    /// Catalog to replica.
    CatalogAnswer(CatalogReply),
}

#[derive(Debug, Clone)]
enum Event {
    Deliver {
        from: Addr,
        to: Addr,
        payload: Payload,
        /// The receiver's incarnation when sent to a replica from its catalog calls (answers to a
        /// crashed process are lost).
        incarnation: u64,
    },
    Tick(ReplicaId),
    Synced {
        id: ReplicaId,
        incarnation: u64,
        upto: u64,
    },
    /// A replica's catalog call timed out.
    CallTimeout {
        id: ReplicaId,
        incarnation: u64,
        call: CatalogCall,
        unreachable: bool,
    },
    /// A front-end call to a replica timed out.
    FrontendTimeout(u64),
    Restock,
    /// The front-end's monitor pings the leader.
    Monitor,
    /// A client's next step.
    Client(usize),
    /// The front-end tries purchase `n` again.
    Retry(u64),
    /// A scheduled fault or heal.
    Heal(Heal),
    /// A replica's sender learns that its message to `to` did not arrive.
    Undelivered {
        from: ReplicaId,
        to: ReplicaId,
    },
}

#[derive(Debug, Clone)]
enum Heal {
    Restart(ReplicaId),
    Resume(ReplicaId),
    Reconnect(Vec<(Addr, Addr)>),
    CatalogUp,
}

/// A replica's disk.
#[derive(Debug, Clone, Default)]
pub struct Disk {
    /// Orders on disk.
    pub orders: Vec<Order>,
    /// Meta on disk.
    pub meta: Meta,
    /// Writes not yet synced, in order.
    pending: VecDeque<(u64, Write)>,
    /// A sync is under way.
    syncing: bool,
}

impl Disk {
    fn apply(&mut self, w: Write) {
        match w {
            Write::Append(o) => self.orders.extend(o),
            Write::Rewrite(o) => self.orders = o,
            Write::Meta(m) => self.meta = m,
        }
    }
}

/// One replica: its core while it runs, its disk always.
pub struct Node {
    /// The core; None while crashed.
    pub core: Option<core::Replica>,
    /// Its disk.
    pub disk: Disk,
    /// Paused until a resume (it keeps its state; messages wait).
    pub paused: bool,
    /// Messages that arrived while paused.
    held: Vec<Event>,
    /// Bumped at every crash.
    incarnation: u64,
}

/// The catalog's state.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Stock per toy.
    pub stock: BTreeMap<String, u64>,
    /// Taken request ids: seq, name, quantity.
    pub taken: BTreeMap<String, (u64, String, u64)>,
    /// Refused request ids.
    pub refused: BTreeSet<String>,
    /// Request ids a take of which came with an epoch below the fence.
    pub stale_takes: BTreeSet<String>,
    /// Request ids refused for a cause a 409 may give: no stock, or a leader's cancel.
    pub refused_for_cause: BTreeSet<String>,
    /// Takes in journal order.
    pub journal: Vec<String>,
    /// Newest epoch seen.
    pub fence: u64,
    /// Units restocked per toy.
    pub restocked: BTreeMap<String, u64>,
    /// False while down.
    pub up: bool,
    /// Listings of takes answered.
    pub lists: u64,
    /// Units set by hand (a scenario's `stock`), per toy.
    pub set_by_hand: BTreeMap<String, i64>,
}

impl Catalog {
    fn new() -> Catalog {
        Catalog {
            stock: TOYS.iter().map(|t| (t.to_string(), STOCK)).collect(),
            up: true,
            ..Catalog::default()
        }
    }

    fn call(&mut self, call: &CatalogCall) -> CatalogReply {
        match call {
            CatalogCall::Take(t) => {
                let result = if let Some((seq, _, _)) = self.taken.get(&t.request_id) {
                    Ok(TakeReply {
                        seq: *seq,
                        repeated: true,
                    })
                } else if self.refused.contains(&t.request_id) {
                    Err(Error::Conflict("this request id was refused".into()))
                } else if t.epoch < self.fence {
                    // Turned away, but the id stays open to the newer leader.
                    self.stale_takes.insert(t.request_id.clone());
                    Err(Error::Stale(Ballot {
                        epoch: self.fence,
                        leader: 0,
                    }))
                } else {
                    self.fence = t.epoch;
                    match self.stock.get_mut(&t.name) {
                        None => Err(Error::NotFound("no such toy".into())),
                        Some(s) if *s < t.quantity => {
                            self.refused.insert(t.request_id.clone());
                            self.refused_for_cause.insert(t.request_id.clone());
                            Err(Error::Conflict("not enough stock".into()))
                        }
                        Some(s) => {
                            *s -= t.quantity;
                            let seq = self.journal.len() as u64 + 1;
                            self.journal.push(t.request_id.clone());
                            self.taken
                                .insert(t.request_id.clone(), (seq, t.name.clone(), t.quantity));
                            Ok(TakeReply {
                                seq,
                                repeated: false,
                            })
                        }
                    }
                };
                CatalogReply::Take {
                    take: t.clone(),
                    result,
                }
            }
            CatalogCall::Cancel(c) => {
                self.fence = self.fence.max(c.epoch);
                let taken = self.taken.get(&c.request_id).map(|(seq, _, _)| *seq);
                if taken.is_none() {
                    self.refused.insert(c.request_id.clone());
                    self.refused_for_cause.insert(c.request_id.clone());
                }
                CatalogReply::Cancel {
                    cancel: c.clone(),
                    result: Ok(CancelReply { taken }),
                }
            }
            CatalogCall::List { after, epoch } => {
                self.lists += 1;
                self.fence = self.fence.max(*epoch);
                let takes = self
                    .journal
                    .iter()
                    .skip(*after as usize)
                    .take(core::TAKES_PAGE)
                    .map(|id| {
                        let (seq, name, quantity) = &self.taken[id];
                        TakeRecord {
                            seq: *seq,
                            request_id: id.clone(),
                            name: name.clone(),
                            quantity: *quantity,
                            age_ms: 0,
                        }
                    })
                    .collect();
                CatalogReply::List {
                    epoch: *epoch,
                    result: Ok(takes),
                }
            }
            CatalogCall::Ping => CatalogReply::Ping(Ok(())),
        }
    }
}

/// A final answer a client got.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// 200 with this number.
    Ok(u64),
    /// The status of an error.
    Err(u16),
}

/// One purchase's life in the history.
#[derive(Debug, Clone)]
pub struct PurchaseRecord {
    /// Its request id.
    pub request_id: String,
    /// Toy.
    pub name: String,
    /// Units.
    pub quantity: u64,
    /// Every final answer the client got for this id, oldest first.
    pub answers: Vec<(Ms, Outcome)>,
}

/// One front-end purchase under way.
#[derive(Debug, Clone)]
struct FePurchase {
    client: usize,
    purchase: Purchase,
    started: Ms,
    maybe_applied: bool,
    /// The client gave the id (a retry after a 504): never fresh.
    client_id: bool,
    /// The wait before a retry on the same leader, as the front-end's: 5 ms doubling to 100.
    backoff: Ms,
}

/// A call of the front-end's under way.
#[derive(Debug, Clone)]
enum FeCall {
    Purchase(u64),
    Notice,
}

/// The front-end driver.
#[derive(Debug, Default)]
struct Frontend {
    leader: Option<Ballot>,
    known_epoch: u64,
    /// Purchases waiting for a leader, by purchase number.
    waiting: Vec<u64>,
    purchases: BTreeMap<u64, FePurchase>,
    calls: BTreeMap<u64, (FeCall, ReplicaId)>,
    next_call: u64,
    next_purchase: u64,
    /// The front-end's watch of its leader (the real one's rule).
    watch: frontend::leader::Watch,
}

/// A client: how many purchases it still makes, and the id it retries.
#[derive(Debug, Clone)]
struct Client {
    left: u32,
    retry: Option<(String, String, u64)>,
    busy: bool,
}

/// The client number of a purchase a scenario makes.
const SCRIPTED: usize = usize::MAX;

/// The simulated store.
pub struct Sim {
    /// The seed.
    pub seed: u64,
    rng: StdRng,
    /// Virtual time.
    pub now: Ms,
    seq: u64,
    queue: BinaryHeap<Reverse<(Ms, u64, usize)>>,
    events: Vec<Option<Event>>,
    /// The replicas.
    pub nodes: BTreeMap<ReplicaId, Node>,
    /// The catalog.
    pub catalog: Catalog,
    /// Blocked (from, to) pairs.
    pub blocked: BTreeSet<(Addr, Addr)>,
    /// Fault rates.
    pub faults: Faults,
    /// False once faults stop (healing).
    pub faulty: bool,
    fe: Frontend,
    clients: Vec<Client>,
    /// Every purchase, by request id.
    pub history: BTreeMap<String, PurchaseRecord>,
    /// The last events, for a report.
    pub trace: VecDeque<String>,
    /// Keep a trace of this many lines.
    pub trace_len: usize,
    quorum: usize,
    ids: Vec<ReplicaId>,
    /// Log lines of the replicas.
    pub logs: Vec<String>,
    /// Counts of what happened: events, faults, answers.
    pub stats: BTreeMap<String, u64>,
    /// Promises found broken while the run went on (what is on disk when something is promised).
    pub violations: Vec<String>,
    /// Extra delay of every message on a link, for scenarios.
    pub slow: BTreeMap<(Addr, Addr), Ms>,
    /// How long a replica's disk takes to sync, for scenarios (default: 1 to 3 ms).
    pub sync_ms: BTreeMap<ReplicaId, Ms>,
    /// Answers given since the last [`Sim::take_news`], for scenarios.
    news: Vec<String>,
    /// False: the catalog restocks only when a scenario says so.
    pub auto_restock: bool,
    /// Extra delay of the catalog's answers to takes, for scenarios.
    pub slow_take_answers: Ms,
    /// Extra delay of log chunks between replicas, for scenarios.
    pub slow_chunks: Ms,
}

impl Sim {
    /// A store of `n` replicas with `clients` clients that each make `purchases` purchases.
    pub fn new(seed: u64, n: u32, clients: usize, purchases: u32, faults: Faults) -> Sim {
        let ids: Vec<ReplicaId> = (1..=n).collect();
        let mut sim = Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            nodes: BTreeMap::new(),
            catalog: Catalog::new(),
            blocked: BTreeSet::new(),
            faults,
            faulty: true,
            fe: Frontend::default(),
            clients: (0..clients)
                .map(|_| Client {
                    left: purchases,
                    retry: None,
                    busy: false,
                })
                .collect(),
            history: BTreeMap::new(),
            trace: VecDeque::new(),
            trace_len: 60,
            quorum: n as usize / 2 + 1,
            ids: ids.clone(),
            logs: Vec::new(),
            stats: BTreeMap::new(),
            violations: Vec::new(),
            slow: BTreeMap::new(),
            sync_ms: BTreeMap::new(),
            news: Vec::new(),
            auto_restock: true,
            slow_take_answers: 0,
            slow_chunks: 0,
        };
        for id in &ids {
            sim.nodes.insert(
                *id,
                Node {
                    core: None,
                    disk: Disk::default(),
                    paused: false,
                    held: Vec::new(),
                    incarnation: 0,
                },
            );
        }
        for id in ids {
            sim.start(id);
        }
        sim.schedule(RESTOCK_EVERY, Event::Restock);
        sim.schedule(200, Event::Monitor);
        for c in 0..clients {
            sim.schedule(50 + c as Ms, Event::Client(c));
        }
        sim
    }

    /// The ids of the replicas.
    pub fn ids(&self) -> Vec<ReplicaId> {
        self.ids.clone()
    }

    fn schedule(&mut self, after: Ms, e: Event) {
        self.seq += 1;
        self.events.push(Some(e));
        self.queue
            .push(Reverse((self.now + after, self.seq, self.events.len() - 1)));
    }

    fn count(&mut self, what: &str) {
        *self.stats.entry(what.to_string()).or_default() += 1;
    }

    fn note(&mut self, line: String) {
        if self.trace_len == 0 {
            return;
        }
        self.trace.push_back(format!("{:>7} {line}", self.now));
        while self.trace.len() > self.trace_len {
            self.trace.pop_front();
        }
    }

    /// Starts (or restarts) replica `id` from its disk.
    pub fn start(&mut self, id: ReplicaId) {
        let peers: Vec<ReplicaId> = self.ids.iter().copied().filter(|p| *p != id).collect();
        let node = self.nodes.get_mut(&id).expect("node");
        let (core, effects) = core::Replica::new(
            id,
            peers,
            self.quorum,
            node.disk.orders.clone(),
            node.disk.meta,
            self.now,
        );
        node.core = Some(core);
        node.paused = false;
        let first_tick = 1 + self.rng.random_range(0..TICK);
        self.schedule(first_tick, Event::Tick(id));
        self.note(format!("start {id}"));
        self.carry_out(id, effects);
    }

    /// Crashes replica `id`: its unsynced writes are partly lost.
    pub fn crash(&mut self, id: ReplicaId) {
        let keep_torn = self.rng.random_bool(0.5);
        let node = self.nodes.get_mut(&id).expect("node");
        if node.core.is_none() {
            return;
        }
        node.core = None;
        node.paused = false;
        node.held.clear();
        node.incarnation += 1;
        let pending: Vec<(u64, Write)> = node.disk.pending.drain(..).collect();
        node.disk.syncing = false;
        let keep = self.rng.random_range(0..=pending.len());
        let mut kept = 0;
        for (i, (_, w)) in pending.into_iter().enumerate() {
            if i < keep {
                node.disk.apply(w);
                kept += 1;
            } else if i == keep && keep_torn {
                // A torn append: some of its orders made it, the last line is cut on start.
                if let Write::Append(o) = w {
                    let n = o.len() / 2;
                    node.disk.orders.extend(o.into_iter().take(n));
                }
                break;
            } else {
                break;
            }
        }
        self.count("fault: crash");
        self.note(format!("crash {id} (kept {kept} unsynced writes)"));
    }

    /// Pauses replica `id` (SIGSTOP).
    pub fn pause(&mut self, id: ReplicaId) {
        if let Some(n) = self.nodes.get_mut(&id) {
            if n.core.is_some() {
                n.paused = true;
                self.count("fault: pause");
                self.note(format!("pause {id}"));
            }
        }
    }

    /// Resumes replica `id`.
    pub fn resume(&mut self, id: ReplicaId) {
        let held = {
            let n = self.nodes.get_mut(&id).expect("node");
            if !n.paused {
                return;
            }
            n.paused = false;
            std::mem::take(&mut n.held)
        };
        self.note(format!("resume {id}"));
        for e in held {
            self.schedule(0, e);
        }
        self.schedule(0, Event::Tick(id));
    }

    /// Blocks messages both ways between `a` and `b`.
    pub fn cut(&mut self, a: Addr, b: Addr) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    /// Heals every cut.
    pub fn heal_network(&mut self) {
        self.blocked.clear();
    }

    fn reachable(&self, from: Addr, to: Addr) -> bool {
        !self.blocked.contains(&(from, to))
    }

    /// Sends `payload` over the network.
    fn send(&mut self, from: Addr, to: Addr, payload: Payload, incarnation: u64) {
        if let (Addr::Replica(f), Addr::Replica(t), Payload::Peer(_)) = (from, to, &payload) {
            // A peer's post fails at once against a dead process, after its timeout across a cut.
            let down = self.nodes[&t].core.is_none();
            if down || !self.reachable(from, to) {
                let after = if down { 1 } else { 800 };
                self.schedule(after, Event::Undelivered { from: f, to: t });
                return;
            }
        }
        if !self.reachable(from, to) {
            return;
        }
        let faulty = self.faulty;
        if faulty && self.rng.random_bool(self.faults.drop) {
            return;
        }
        // Only peer messages may arrive twice: a request over HTTP is handled at most once and
        // answered at most once.
        let copies = if faulty
            && matches!(payload, Payload::Peer(_))
            && self.rng.random_bool(self.faults.duplicate)
        {
            2
        } else {
            1
        };
        let mut extra = self.slow.get(&(from, to)).copied().unwrap_or(0);
        if let Payload::Peer(ReplicaMsg::LogChunk { .. }) = payload {
            extra += self.slow_chunks;
        }
        for _ in 0..copies {
            let delay = extra
                + if faulty && self.rng.random_bool(self.faults.delay) {
                    self.rng.random_range(50..1500)
                } else {
                    self.rng.random_range(1..6)
                };
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    payload: payload.clone(),
                    incarnation,
                },
            );
        }
    }

    /// Carries out a replica's effects.
    fn carry_out(&mut self, id: ReplicaId, effects: Vec<Effect>) {
        let incarnation = self.nodes[&id].incarnation;
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    self.check_on_disk(id, &msg);
                    self.send(Addr::Replica(id), Addr::Replica(to), Payload::Peer(msg), 0)
                }
                Effect::Write { id: w, write } => {
                    let disk = &mut self.nodes.get_mut(&id).expect("node").disk;
                    disk.pending.push_back((w, write));
                    self.maybe_sync(id);
                }
                Effect::Catalog(call) => {
                    self.note(format!("{id} -> catalog {call:?}"));
                    if !self.catalog.up || !self.reachable(Addr::Replica(id), Addr::Catalog) {
                        let unreachable = true;
                        self.schedule(
                            if self.catalog.up { CATALOG_TIMEOUT } else { 1 },
                            Event::CallTimeout {
                                id,
                                incarnation,
                                call,
                                unreachable,
                            },
                        );
                        continue;
                    }
                    if self.faulty && self.rng.random_bool(self.faults.drop) {
                        // The request is lost or its answer is: either way the outcome is unknown.
                        if self.rng.random_bool(0.5) {
                            let reply = self.catalog.call(&call);
                            self.note(format!("catalog applied {reply:?}, answer lost"));
                        }
                        self.time_out(id, incarnation, call);
                        continue;
                    }
                    // A call always ends: answered, or timed out (handled above).
                    let extra = self.slow.get(&(Addr::Replica(id), Addr::Catalog)).copied();
                    let d = self.rng.random_range(1..6) + extra.unwrap_or(0);
                    self.schedule(
                        d,
                        Event::Deliver {
                            from: Addr::Replica(id),
                            to: Addr::Catalog,
                            payload: Payload::Call(call),
                            incarnation,
                        },
                    );
                }
                Effect::Reply { client, result } => {
                    if let Ok(Answer::Created(c)) = &result {
                        self.check_on_quorum(id, c.order_number);
                    }
                    self.send(
                        Addr::Replica(id),
                        Addr::Frontend,
                        Payload::Answer(client, result),
                        0,
                    );
                }
                Effect::Log(line) => {
                    if line.starts_with("leader for epoch") {
                        self.count("leader changes");
                    }
                    if line.starts_with("rolled forward") {
                        self.count("rolled forward");
                    }
                    self.news.push(format!("order-{id}: {line}"));
                    let l = format!("{:>7} [order-{id}] {line}", self.now);
                    self.logs.push(l.clone());
                    self.note(format!("[order-{id}] {line}"));
                }
            }
        }
    }

    /// What a replica promises in a message must be on its disk when it sends it: an
    /// acknowledgement the orders and log ballot it names, a promise the promise.
    fn check_on_disk(&mut self, id: ReplicaId, msg: &ReplicaMsg) {
        let node = &self.nodes[&id];
        let (Some(core), disk) = (node.core.as_ref(), &node.disk) else {
            return;
        };
        let bad = match msg {
            ReplicaMsg::AppendOk { reply, .. } if reply.matched => {
                let n = reply.len as usize;
                if disk.orders.len() < n || disk.orders[..n] != core.orders()[..n] {
                    Some(format!(
                        "acknowledged {n} orders, {} on disk",
                        disk.orders.len()
                    ))
                } else if disk.meta.log_ballot != reply.log_ballot {
                    Some(format!(
                        "acknowledged with log ballot {:?}, {:?} on disk",
                        reply.log_ballot, disk.meta.log_ballot
                    ))
                } else {
                    None
                }
            }
            ReplicaMsg::PrepareOk { ballot, .. } if disk.meta.promised != *ballot => Some(format!(
                "promised {ballot:?}, {:?} on disk",
                disk.meta.promised
            )),
            _ => None,
        };
        if let Some(b) = bad {
            self.violations
                .push(format!("at {} ms replica {id} {b}", self.now));
        }
    }

    /// An order answered 200 must be on the disks of a quorum of replicas whose log ballot (on disk)
    /// is that of the leader that made it, or newer: what the argument that no acknowledged order is
    /// lost rests on.
    fn check_on_quorum(&mut self, leader: ReplicaId, n: u64) {
        let Some(core) = self.nodes[&leader].core.as_ref() else {
            return;
        };
        let order = core.orders()[n as usize].clone();
        // The leader that made the order, or a later one, had it committed.
        let holders = self
            .nodes
            .values()
            .filter(|node| {
                node.disk.meta.log_ballot.epoch >= order.epoch
                    && node.disk.orders.get(n as usize) == Some(&order)
            })
            .count();
        if holders < self.quorum {
            self.violations.push(format!(
                "at {} ms replica {leader} answered 200 for order {n} ({}) while only {holders} replicas held it on disk with a log ballot of its epoch {} or newer",
                self.now, order.request_id, order.epoch
            ));
        }
    }

    /// Replica `id`'s catalog call ends in a timeout: its outcome is unknown to the replica.
    fn time_out(&mut self, id: ReplicaId, incarnation: u64, call: CatalogCall) {
        let e = Event::CallTimeout {
            id,
            incarnation,
            call,
            unreachable: false,
        };
        self.schedule(CATALOG_TIMEOUT, e);
    }

    /// Starts a sync of what replica `id` has queued, unless one is under way.
    fn maybe_sync(&mut self, id: ReplicaId) {
        let node = self.nodes.get_mut(&id).expect("node");
        let incarnation = node.incarnation;
        let disk = &mut node.disk;
        let Some((upto, _)) = disk.pending.back() else {
            return;
        };
        if disk.syncing {
            return;
        }
        disk.syncing = true;
        let upto = *upto;
        let d = match self.sync_ms.get(&id) {
            Some(ms) => *ms,
            None => self.rng.random_range(1..=self.faults.slowest_sync.max(1)),
        };
        self.schedule(
            d,
            Event::Synced {
                id,
                incarnation,
                upto,
            },
        );
    }

    fn step_node(&mut self, id: ReplicaId, input: Input) {
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("node");
        let Some(core) = node.core.as_mut() else {
            return;
        };
        let effects = core.step(now, input);
        self.carry_out(id, effects);
    }

    /// Runs until time `until`.
    pub fn run_until(&mut self, until: Ms) {
        while let Some(Reverse((t, _, _))) = self.queue.peek() {
            if *t > until {
                break;
            }
            if self.events.len() > MAX_EVENTS {
                // A run normally takes a few thousand events: this one is caught in a storm of
                // messages or timers (a livelock), and stops here with a violation.
                self.violations.push(format!(
                    "livelock: more than {MAX_EVENTS} events by {} ms",
                    self.now
                ));
                self.queue.clear();
                break;
            }
            let Reverse((t, _, i)) = self.queue.pop().expect("event");
            self.now = t;
            let e = self.events[i].take().expect("event once");
            self.count("events");
            self.handle(e);
            if self.faulty {
                self.maybe_fault();
            }
        }
        self.now = until;
    }

    fn maybe_fault(&mut self) {
        let f = self.faults.clone();
        let id = self.ids[self.rng.random_range(0..self.ids.len())];
        if self.rng.random_bool(f.crash / 20.0) {
            self.crash(id);
            let after = self.rng.random_range(100..3000);
            self.schedule(after, Event::Heal(Heal::Restart(id)));
        } else if self.rng.random_bool(f.pause / 20.0) {
            self.pause(id);
            let after = self.rng.random_range(100..3000);
            self.schedule(after, Event::Heal(Heal::Resume(id)));
        } else if self.rng.random_bool(f.partition / 20.0) {
            let mut all: Vec<Addr> = self.ids.iter().map(|i| Addr::Replica(*i)).collect();
            all.push(Addr::Catalog);
            all.push(Addr::Frontend);
            let a = all[self.rng.random_range(0..all.len())];
            let cuts: Vec<(Addr, Addr)> = if self.rng.random_bool(0.5) {
                // Isolate `a` from everyone.
                all.iter().filter(|b| **b != a).map(|b| (a, *b)).collect()
            } else {
                let b = all[self.rng.random_range(0..all.len())];
                if a == b {
                    vec![]
                } else {
                    vec![(a, b)]
                }
            };
            for (a, b) in &cuts {
                self.cut(*a, *b);
            }
            self.count("fault: cut");
            self.note(format!("cut {cuts:?}"));
            let after = self.rng.random_range(100..3000);
            self.schedule(after, Event::Heal(Heal::Reconnect(cuts)));
        } else if self.rng.random_bool(f.power_loss / 20.0) {
            self.count("fault: power loss");
            for id in self.ids.clone() {
                self.crash(id);
                let after = self.rng.random_range(100..2000);
                self.schedule(after, Event::Heal(Heal::Restart(id)));
            }
        } else if self.rng.random_bool(f.catalog_down / 20.0) && self.catalog.up {
            self.catalog.up = false;
            self.count("fault: catalog down");
            self.note("catalog down".into());
            let after = self.rng.random_range(100..2000);
            self.schedule(after, Event::Heal(Heal::CatalogUp));
        }
    }

    fn handle(&mut self, e: Event) {
        match e {
            Event::Tick(id) => {
                let Some(node) = self.nodes.get(&id) else {
                    return;
                };
                if node.core.is_none() || node.paused {
                    return; // a restart or a resume schedules the next tick
                }
                self.schedule(TICK, Event::Tick(id));
                self.step_node(id, Input::Tick);
            }
            Event::Synced {
                id,
                incarnation,
                upto,
            } => {
                let node = self.nodes.get_mut(&id).expect("node");
                if node.incarnation != incarnation || node.core.is_none() {
                    return;
                }
                if node.paused {
                    node.held.push(Event::Synced {
                        id,
                        incarnation,
                        upto,
                    });
                    return;
                }
                // The sync covers the writes queued when it started.
                let mut last = None;
                while node.disk.pending.front().is_some_and(|(w, _)| *w <= upto) {
                    let (w, write) = node.disk.pending.pop_front().expect("write");
                    node.disk.apply(write);
                    last = Some(w);
                }
                node.disk.syncing = false;
                self.maybe_sync(id);
                if let Some(w) = last {
                    self.step_node(id, Input::Persisted(w));
                }
            }
            Event::Deliver {
                from,
                to,
                payload,
                incarnation,
            } => self.deliver(from, to, payload, incarnation),
            Event::CallTimeout {
                id,
                incarnation,
                call,
                unreachable,
            } => {
                let node = &self.nodes[&id];
                if node.incarnation != incarnation || node.core.is_none() {
                    return;
                }
                if node.paused {
                    let e = Event::CallTimeout {
                        id,
                        incarnation,
                        call,
                        unreachable,
                    };
                    self.nodes.get_mut(&id).expect("node").held.push(e);
                    return;
                }
                let e = if unreachable {
                    Error::Unreachable("catalog unreachable".into())
                } else {
                    Error::Transport("timed out".into())
                };
                self.step_node(id, Input::Catalog(call.failed(e)));
            }
            Event::FrontendTimeout(call) => self.fe_answer(call, None),
            Event::Undelivered { from, to } => {
                let node = &self.nodes[&from];
                if node.core.is_some() && !node.paused {
                    self.step_node(from, Input::Unreachable(to));
                }
            }
            Event::Restock => {
                self.schedule(RESTOCK_EVERY, Event::Restock);
                if self.catalog.up && self.auto_restock {
                    self.restock();
                }
            }
            Event::Monitor => {
                let next = self.fe_monitor();
                self.schedule(next, Event::Monitor);
            }
            Event::Client(c) => self.client_next(c),
            Event::Retry(p) => self.fe_attempt(p),
            Event::Heal(h) => match h {
                Heal::Restart(id) => {
                    if self.nodes[&id].core.is_none() {
                        self.start(id);
                    }
                }
                Heal::Resume(id) => self.resume(id),
                Heal::Reconnect(cuts) => {
                    for (a, b) in cuts {
                        self.blocked.remove(&(a, b));
                        self.blocked.remove(&(b, a));
                    }
                    self.note("reconnect".into());
                }
                Heal::CatalogUp => {
                    self.catalog.up = true;
                    self.note("catalog up".into());
                }
            },
        }
    }

    fn deliver(&mut self, from: Addr, to: Addr, payload: Payload, incarnation: u64) {
        match to {
            Addr::Replica(id) => {
                let node = self.nodes.get_mut(&id).expect("node");
                if node.core.is_none() {
                    return;
                }
                if matches!(payload, Payload::CatalogAnswer(_)) && node.incarnation != incarnation {
                    return;
                }
                if node.paused {
                    node.held.push(Event::Deliver {
                        from,
                        to,
                        payload,
                        incarnation,
                    });
                    return;
                }
                match payload {
                    Payload::Peer(msg) => {
                        let Addr::Replica(f) = from else { return };
                        self.note(format!("{f} -> {id} {}", short_msg(&msg)));
                        self.step_node(id, Input::Peer { from: f, msg });
                    }
                    Payload::Request(client, request) => {
                        self.note(format!("fe -> {id} #{client} {request:?}"));
                        self.step_node(id, Input::Request { client, request });
                    }
                    Payload::CatalogAnswer(reply) => {
                        self.note(format!("catalog -> {id} {reply:?}"));
                        self.step_node(id, Input::Catalog(reply));
                    }
                    _ => {}
                }
            }
            Addr::Catalog => {
                let Addr::Replica(id) = from else { return };
                let Payload::Call(call) = payload else { return };
                if !self.catalog.up {
                    self.time_out(id, incarnation, call);
                    return;
                }
                let reply = self.catalog.call(&call);
                self.note(format!("catalog {reply:?}"));
                let what = match &reply {
                    CatalogReply::Take { take, result } => Some(format!(
                        "take {} from order-{id} (epoch {}): {}",
                        take.request_id,
                        take.epoch,
                        match result {
                            Ok(r) if r.repeated => "a repeat".to_string(),
                            Ok(_) => "taken".to_string(),
                            Err(e) => format!("refused, {}", e.message()),
                        }
                    )),
                    CatalogReply::Cancel { cancel, result } => Some(format!(
                        "cancel {} from order-{id}: {}",
                        cancel.request_id,
                        match result {
                            Ok(CancelReply { taken: Some(_) }) => "it was taken",
                            _ => "refused for good",
                        }
                    )),
                    CatalogReply::List { .. } | CatalogReply::Ping(_) => None,
                };
                if let Some(w) = what {
                    self.news.push(format!("catalog: {w}"));
                }
                if !self.reachable(Addr::Catalog, from) {
                    self.time_out(id, incarnation, call);
                    return;
                }
                let mut d = self.rng.random_range(1..6);
                if matches!(reply, CatalogReply::Take { .. }) {
                    d += self.slow_take_answers;
                }
                self.schedule(
                    d,
                    Event::Deliver {
                        from: Addr::Catalog,
                        to: from,
                        payload: Payload::CatalogAnswer(reply),
                        incarnation,
                    },
                );
            }
            Addr::Frontend => {
                if let Payload::Answer(call, result) = payload {
                    self.note(format!("{from:?} -> fe #{call} {result:?}"));
                    self.fe_answer(call, Some(result));
                }
            }
        }
    }

    // ----- the front-end -----

    fn fe_call(&mut self, to: ReplicaId, call: FeCall, request: core::Request) {
        let n = self.fe.next_call;
        self.fe.next_call += 1;
        self.fe.calls.insert(n, (call, to));
        self.send(
            Addr::Frontend,
            Addr::Replica(to),
            Payload::Request(n, request),
            0,
        );
        self.schedule(CALL_TIMEOUT, Event::FrontendTimeout(n));
    }

    /// What a health ping of replica `id` gets: its status, if it runs, is not paused and the
    /// front-end reaches it (a ping is instant).
    fn fe_ping(&self, id: ReplicaId) -> Option<ReplicaStatus> {
        let node = &self.nodes[&id];
        let core = node.core.as_ref()?;
        if node.paused || !self.reachable(Addr::Frontend, Addr::Replica(id)) {
            return None;
        }
        Some(core.status())
    }

    /// Pings every replica and chooses by the real front-end's rule (`frontend::leader::choose`),
    /// then tells every replica.
    fn fe_select(&mut self) {
        let pings: Vec<_> = self.ids.iter().map(|id| (*id, self.fe_ping(*id))).collect();
        let Some(choice) = frontend::leader::choose(&pings, self.fe.known_epoch, self.fe.leader)
        else {
            self.fe.leader = None;
            return;
        };
        let ballot = choice.ballot;
        self.fe.known_epoch = self.fe.known_epoch.max(ballot.epoch);
        self.note(format!("fe chooses {ballot:?}"));
        self.fe.leader = Some(ballot);
        self.fe.watch = frontend::leader::Watch::new();
        for id in self.ids.clone() {
            self.fe_call(id, FeCall::Notice, core::Request::Notice(ballot));
        }
    }

    /// The real front-end's watch of the leader; the next health ping is due after the period, or
    /// after a ping's timeout when one was missed.
    fn fe_monitor(&mut self) -> Ms {
        let Some(b) = self.fe.leader else {
            self.fe_select();
            self.fe_flush_waiting();
            return shared::timing::HEALTH_EVERY_MS;
        };
        let health = self.fe_ping(b.leader);
        let next = match self.fe.watch.step(self.now, health.as_ref(), b) {
            Verdict::Keep => shared::timing::HEALTH_EVERY_MS,
            Verdict::AskAgain => shared::timing::PING_TIMEOUT_MS,
            Verdict::ChooseAgain(why) => {
                self.note(format!("fe: leader {} {why}", b.leader));
                self.fe_select();
                shared::timing::HEALTH_EVERY_MS
            }
        };
        self.fe_flush_waiting();
        next
    }

    fn fe_flush_waiting(&mut self) {
        if self.fe.leader.is_none() {
            return;
        }
        for p in std::mem::take(&mut self.fe.waiting) {
            self.fe_attempt(p);
        }
    }

    fn fe_attempt(&mut self, p: u64) {
        let Some(fp) = self.fe.purchases.get(&p) else {
            return;
        };
        if self.now >= fp.started + BUDGET {
            let outcome = if fp.maybe_applied || fp.client_id {
                Outcome::Err(504)
            } else {
                Outcome::Err(503)
            };
            self.fe_finish(p, outcome);
            return;
        }
        let Some(b) = self.fe.leader else {
            self.fe.waiting.push(p);
            return;
        };
        let mut purchase = fp.purchase.clone();
        purchase.fresh = !fp.maybe_applied && !fp.client_id;
        self.fe_call(
            b.leader,
            FeCall::Purchase(p),
            core::Request::Purchase(purchase),
        );
    }

    fn fe_answer(&mut self, call: u64, result: Option<shared::Result<Answer>>) {
        let Some((kind, to)) = self.fe.calls.remove(&call) else {
            return;
        };
        let p = match kind {
            FeCall::Notice => {
                if let Some(Err(Error::Stale(b))) = result {
                    self.fe.known_epoch = self.fe.known_epoch.max(b.epoch);
                    if self.fe.leader.is_some_and(|l| l.leader == to) {
                        self.fe.leader = None;
                    }
                }
                return;
            }
            FeCall::Purchase(p) => p,
        };
        let Some(fp) = self.fe.purchases.get_mut(&p) else {
            return;
        };
        match result {
            Some(Ok(Answer::Created(c))) => self.fe_finish(p, Outcome::Ok(c.order_number)),
            Some(Err(e @ (Error::BadRequest(_) | Error::NotFound(_) | Error::Conflict(_)))) => {
                let id = &fp.purchase.request_id;
                if self.catalog.stale_takes.contains(id)
                    && !self.catalog.refused_for_cause.contains(id)
                {
                    // A 409 says the purchase cannot be made (no stock, an id reused); a replaced
                    // leader's late take must not make a purchase that never happened fail for good.
                    self.violations.push(format!(
                        "request {id} answered 409 after a replaced leader's take of it was turned away"
                    ));
                }
                self.fe_finish(p, Outcome::Err(e.status()))
            }
            Some(Err(Error::NotLeader(b))) => {
                self.fe.known_epoch = self.fe.known_epoch.max(b.epoch);
                if self.fe.leader != Some(b) {
                    self.fe_reselect(to);
                }
                self.schedule_retry(p, 20);
            }
            Some(Err(Error::Unavailable(_))) => {
                // Nothing was changed by that attempt. To an attempt that was not fresh the leader
                // says so only once the catalog refused the id for good: final. A fresh one is tried
                // again for a while.
                let fresh = !fp.maybe_applied && !fp.client_id;
                if !fresh || self.now >= fp.started + BUDGET / 2 {
                    self.fe_finish(p, Outcome::Err(503));
                } else {
                    self.schedule_retry(p, 50);
                }
            }
            Some(Err(Error::Unreachable(_))) => {
                self.fe_reselect(to);
                self.schedule_retry(p, 5);
            }
            Some(Err(Error::Indeterminate(_))) => {
                fp.maybe_applied = true;
                let after = fp.backoff;
                fp.backoff = (after * 2).min(100);
                self.count("leader answered 504");
                self.schedule_retry(p, after);
            }
            Some(Err(_)) | None => {
                fp.maybe_applied = true;
                self.fe_reselect(to);
                self.schedule_retry(p, 5);
            }
            Some(Ok(_)) => self.fe_finish(p, Outcome::Err(500)),
        }
    }

    fn fe_reselect(&mut self, failed: ReplicaId) {
        if self.fe.leader.is_some_and(|b| b.leader == failed) {
            self.fe_select();
        }
    }

    fn schedule_retry(&mut self, p: u64, after: Ms) {
        self.schedule(after, Event::Retry(p));
    }

    fn fe_finish(&mut self, p: u64, outcome: Outcome) {
        let Some(fp) = self.fe.purchases.remove(&p) else {
            return;
        };
        self.fe.waiting.retain(|w| *w != p);
        self.note(format!("answer {} {outcome:?}", fp.purchase.request_id));
        let label = match &outcome {
            Outcome::Ok(_) => "answer: 200".to_string(),
            Outcome::Err(c) => format!("answer: {c}"),
        };
        self.count(&label);
        let rec = self
            .history
            .entry(fp.purchase.request_id.clone())
            .or_insert_with(|| PurchaseRecord {
                request_id: fp.purchase.request_id.clone(),
                name: fp.purchase.name.clone(),
                quantity: fp.purchase.quantity,
                answers: Vec::new(),
            });
        rec.answers.push((self.now, outcome.clone()));
        let shown = match &outcome {
            Outcome::Ok(n) => format!("200, order {n}"),
            Outcome::Err(c) => c.to_string(),
        };
        self.news
            .push(format!("answer {}: {shown}", fp.purchase.request_id));
        if fp.client == SCRIPTED {
            return;
        }
        let c = &mut self.clients[fp.client];
        c.busy = false;
        c.retry = match outcome {
            Outcome::Err(504) if self.rng.random_bool(0.7) => Some((
                fp.purchase.request_id,
                fp.purchase.name,
                fp.purchase.quantity,
            )),
            _ => None,
        };
        let think = self.rng.random_range(1..30);
        self.schedule(think, Event::Client(fp.client));
    }

    fn client_next(&mut self, c: usize) {
        if self.clients[c].busy {
            return;
        }
        let (request_id, name, quantity, client_id) = match self.clients[c].retry.take() {
            Some((id, name, q)) => (id, name, q, true),
            None => {
                if self.clients[c].left == 0 {
                    return;
                }
                self.clients[c].left -= 1;
                let n = self.fe.next_purchase;
                let name = TOYS[self.rng.random_range(0..TOYS.len())].to_string();
                let q = self.rng.random_range(1..4);
                (format!("s{}-c{c}-{n}", self.seed), name, q, false)
            }
        };
        self.clients[c].busy = true;
        self.fe_start(c, request_id, name, quantity, client_id);
    }

    /// The front-end starts a purchase for `client` and makes its first attempt.
    fn fe_start(
        &mut self,
        client: usize,
        request_id: String,
        name: String,
        quantity: u64,
        client_id: bool,
    ) {
        let p = self.fe.next_purchase;
        self.fe.next_purchase += 1;
        let purchase = Purchase {
            request_id,
            name,
            quantity,
            fresh: false,
        };
        let fp = FePurchase {
            client,
            purchase,
            started: self.now,
            maybe_applied: false,
            client_id,
            backoff: 5,
        };
        self.fe.purchases.insert(p, fp);
        self.fe_attempt(p);
    }

    /// A purchase a scenario makes through the front-end; `client_id`: the client gives the id
    /// (as when it retries after a 504), so it is never fresh.
    pub fn buy(&mut self, request_id: &str, name: &str, quantity: u64, client_id: bool) {
        let (id, toy) = (request_id.to_string(), name.to_string());
        self.fe_start(SCRIPTED, id, toy, quantity, client_id);
    }

    /// The last answer to a purchase with this id.
    pub fn answer(&self, request_id: &str) -> Option<&Outcome> {
        self.history
            .get(request_id)
            .and_then(|r| r.answers.last())
            .map(|(_, a)| a)
    }

    /// True while a purchase with this id is under way at the front-end.
    pub fn pending(&self, request_id: &str) -> bool {
        self.fe
            .purchases
            .values()
            .any(|p| p.purchase.request_id == request_id)
    }

    /// Makes the front-end choose replica `id` in a new epoch and tell everyone.
    pub fn choose(&mut self, id: ReplicaId) {
        let seen = self
            .nodes
            .values()
            .filter_map(|n| n.core.as_ref().map(|c| c.status().promised.epoch))
            .max()
            .unwrap_or(0);
        let ballot = Ballot {
            epoch: seen.max(self.fe.known_epoch) + 1,
            leader: id,
        };
        self.fe.known_epoch = ballot.epoch;
        self.fe.leader = Some(ballot);
        self.fe.watch = frontend::leader::Watch::new();
        for r in self.ids.clone() {
            self.fe_call(r, FeCall::Notice, core::Request::Notice(ballot));
        }
    }

    /// The front-end's choice.
    pub fn choice(&self) -> Option<Ballot> {
        self.fe.leader
    }

    /// Adds a line to what happened.
    pub fn note_news(&mut self, line: String) {
        self.news.push(line);
    }

    /// What happened since the last call: replicas' log lines and answers to purchases.
    pub fn take_news(&mut self) -> Vec<String> {
        std::mem::take(&mut self.news)
    }

    /// One line per replica: its role, promise, log ballot, log, commit point and disk.
    pub fn describe(&self) -> Vec<String> {
        let b = |b: Ballot| format!("{}/{}", b.epoch, b.leader);
        self.nodes
            .iter()
            .map(|(id, n)| match &n.core {
                None => format!("order-{id}: down; on disk [{}]", ids_of(&n.disk.orders)),
                Some(c) => {
                    let s = c.status();
                    let role = format!("{:?}", s.role).to_lowercase();
                    let paused = if n.paused { " (paused)" } else { "" };
                    format!(
                        "order-{id}: {role}{paused} promised {} log {} commit {} durable {} [{}]",
                        b(s.promised),
                        b(s.log_ballot),
                        s.commit,
                        c.durable(),
                        ids_of(c.orders())
                    )
                }
            })
            .chain(std::iter::once({
                let c = &self.catalog;
                let stock: Vec<String> = c.stock.iter().map(|(t, q)| format!("{t} {q}")).collect();
                format!(
                    "catalog{}: stock {}; takes [{}]; refused [{}]; fence {}; listings {}",
                    if c.up { "" } else { " (down)" },
                    stock.join(", "),
                    c.journal.join(" "),
                    c.refused.iter().cloned().collect::<Vec<_>>().join(" "),
                    c.fence,
                    c.lists
                )
            }))
            .collect()
    }

    /// Sets the catalog's stock of a toy.
    pub fn set_stock(&mut self, toy: &str, quantity: u64) {
        let old = self
            .catalog
            .stock
            .insert(toy.to_string(), quantity)
            .unwrap_or(0);
        *self.catalog.set_by_hand.entry(toy.to_string()).or_default() +=
            quantity as i64 - old as i64;
    }

    /// Restocks now, as the catalog's timer does.
    pub fn restock(&mut self) {
        for (name, s) in self.catalog.stock.iter_mut() {
            if *s == 0 {
                *s = STOCK;
                *self.catalog.restocked.entry(name.clone()).or_default() += STOCK;
            }
        }
    }

    /// True when every client is done.
    pub fn clients_done(&self) -> bool {
        self.clients
            .iter()
            .all(|c| !c.busy && c.left == 0 && c.retry.is_none())
    }

    /// Ends every fault: restarts crashed replicas, resumes paused ones, heals the network, brings
    /// the catalog back; no more messages are lost.
    pub fn heal(&mut self) {
        self.faulty = false;
        self.heal_network();
        self.catalog.up = true;
        for id in self.ids.clone() {
            if self.nodes[&id].core.is_none() {
                self.start(id);
            }
            self.resume(id);
        }
        self.note("heal".into());
    }

    /// Runs with faults until `faulty_ms`, heals, and runs until every client is done and the logs
    /// agree (at most `settle_ms` more).
    pub fn run(&mut self, faulty_ms: Ms, settle_ms: Ms) {
        self.run_until(faulty_ms);
        self.heal();
        let end = self.now + settle_ms;
        while self.now < end {
            let t = self.now + 500;
            self.run_until(t);
            if self.clients_done() && self.converged() {
                // A little longer, so that the last roll-forward and commit points settle too.
                let t = self.now + 3000;
                self.run_until(t);
                if self.converged() {
                    return;
                }
            }
        }
    }

    /// True when every replica runs and holds the same log, all of it committed.
    pub fn converged(&self) -> bool {
        let logs: Vec<(&[Order], u64)> = self
            .nodes
            .values()
            .filter_map(|n| n.core.as_ref().map(|c| (c.orders(), c.commit())))
            .collect();
        logs.len() == self.nodes.len()
            && logs
                .iter()
                .all(|(l, c)| *l == logs[0].0 && *c == l.len() as u64)
    }

    /// Every promise the store makes, checked over the history; the list of violations.
    pub fn check(&self) -> Vec<String> {
        let mut bad: Vec<String> = self.violations.iter().take(5).cloned().collect();
        if !self.clients_done() {
            bad.push("liveness: some purchases were never answered after healing".into());
        }
        if !self.converged() {
            bad.push("liveness: the replicas' logs did not converge after healing".into());
            for (id, n) in &self.nodes {
                if let Some(c) = &n.core {
                    bad.push(format!(
                        "  replica {id}: {:?} len {} commit {} {:?}",
                        c.role(),
                        c.orders().len(),
                        c.commit(),
                        c.status().promised
                    ));
                }
            }
        }
        let Some(log) = self
            .nodes
            .values()
            .filter_map(|n| n.core.as_ref())
            .max_by_key(|c| c.commit())
            .map(|c| c.orders().to_vec())
        else {
            return bad;
        };
        let mut by_id: BTreeMap<&str, Vec<&Order>> = BTreeMap::new();
        for (i, o) in log.iter().enumerate() {
            if o.number != i as u64 {
                bad.push(format!("order at position {i} has number {}", o.number));
            }
            by_id.entry(o.request_id.as_str()).or_default().push(o);
        }
        for (id, orders) in &by_id {
            if orders.len() > 1 {
                bad.push(format!("request {id} made {} orders", orders.len()));
            }
            match self.catalog.taken.get(*id) {
                None => bad.push(format!("order for {id} has no take at the catalog")),
                Some((_, name, q)) if *name != orders[0].name || *q != orders[0].quantity => {
                    bad.push(format!("order for {id} differs from its take"))
                }
                Some(_) => {}
            }
        }
        for id in self.catalog.taken.keys() {
            if !by_id.contains_key(id.as_str()) {
                bad.push(format!("take for {id} never became an order"));
            }
        }
        let mut numbers: BTreeMap<u64, &str> = BTreeMap::new();
        for rec in self.history.values() {
            let mut ok_number = None;
            for (t, a) in &rec.answers {
                match a {
                    Outcome::Ok(n) => {
                        if let Some(prev) = ok_number {
                            if prev != *n {
                                bad.push(format!(
                                    "{} answered {prev} and then {n}",
                                    rec.request_id
                                ));
                            }
                        }
                        ok_number = Some(*n);
                        if let Some(other) = numbers.insert(*n, &rec.request_id) {
                            if other != rec.request_id {
                                bad.push(format!(
                                    "order {n} answered to {other} and {}",
                                    rec.request_id
                                ));
                            }
                        }
                        match log.get(*n as usize) {
                            Some(o) if o.request_id == rec.request_id
                                && o.name == rec.name
                                && o.quantity == rec.quantity => {}
                            other => bad.push(format!(
                                "acknowledged order {n} for {} at {t} ms is lost: the log has {other:?}",
                                rec.request_id
                            )),
                        }
                    }
                    Outcome::Err(409 | 503) => {
                        if by_id.contains_key(rec.request_id.as_str())
                            || self.catalog.taken.contains_key(&rec.request_id)
                        {
                            bad.push(format!(
                                "{} was answered {a:?} at {t} ms (nothing changed) but was taken or ordered",
                                rec.request_id
                            ));
                        }
                    }
                    Outcome::Err(_) => {}
                }
            }
        }
        for toy in TOYS {
            let taken: u64 = log
                .iter()
                .filter(|o| o.name == toy)
                .map(|o| o.quantity)
                .sum();
            let restocked = self.catalog.restocked.get(toy).copied().unwrap_or(0);
            let stock = self.catalog.stock[toy];
            let by_hand = self.catalog.set_by_hand.get(toy).copied().unwrap_or(0);
            if (stock + taken) as i64 != (STOCK + restocked) as i64 + by_hand {
                bad.push(format!(
                    "{toy}: stock {stock} + ordered {taken} != {STOCK} + restocked {restocked} + set by hand {by_hand}"
                ));
            }
        }
        for (id, n) in &self.nodes {
            if let Some(c) = &n.core {
                if c.orders() != log.as_slice() {
                    bad.push(format!("replica {id}'s log differs"));
                }
            }
        }
        bad
    }

    /// A report of a failed run: the seed, the faults, the violations, the last events.
    pub fn report(&self, bad: &[String]) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "seed {} failed; faults {:?}", self.seed, self.faults);
        for b in bad {
            let _ = writeln!(s, "  {b}");
        }
        let _ = writeln!(s, "last events:");
        for l in &self.trace {
            let _ = writeln!(s, "  {l}");
        }
        let _ = writeln!(
            s,
            "replay: SEED={} cargo test -p order --test sim -- --nocapture",
            self.seed
        );
        s
    }
}

/// The request ids of orders, with their epochs: `r1@1 r2@2`.
fn ids_of(orders: &[Order]) -> String {
    orders
        .iter()
        .map(|o| format!("{}@{}", o.request_id, o.epoch))
        .collect::<Vec<_>>()
        .join(" ")
}

fn short_msg(m: &ReplicaMsg) -> String {
    match m {
        ReplicaMsg::Append(a) => format!(
            "append {:?} start {} n {} commit {} view {}",
            a.ballot,
            a.start,
            a.entries.len(),
            a.commit,
            a.view_len
        ),
        ReplicaMsg::LogChunk {
            copy, from, chunk, ..
        } => format!(
            "chunk copy {copy} from {from} n {} len {} {:?}",
            chunk.entries.len(),
            chunk.len,
            chunk.log_ballot
        ),
        other => format!("{other:?}"),
    }
}
