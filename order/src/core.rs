//! The whole replica as one pure state machine.
//!
//! [`Replica::step`] takes the time (ms, from any clock the caller likes) and one [`Input`], changes
//! the state, and returns the [`Effect`]s for the I/O layer to carry out: messages to peers, writes
//! to the replica's files, calls to the catalog, and answers to waiting requests. It never reads a
//! clock, locks, sleeps, spawns or touches a socket or a file, so the same code runs in the server
//! (`server.rs` only carries effects out) and in the deterministic simulation (`tests/sim.rs`), which
//! drives three of them through crashes, partitions and lost writes.
//!
//! Two rules tie the state to the disk:
//! - Every write has a [`WriteId`]; the I/O layer carries writes out in that order and reports with
//!   [`Input::Persisted`] that every write up to an id is on disk. A crash keeps a prefix of them.
//! - Anything that promises what is on disk (an answer to a notice or a prepare, the acknowledgement
//!   of an append, the leader's own vote for a commit) is held back until the write it depends on is
//!   persisted.

use crate::files::Meta;
use shared::protocol::{
    Append, AppendReply, Ballot, CancelReply, CancelRequest, Epoch, LogChunk, Order, OrderCreated,
    OrderInfo, OrderNumber, Purchase, ReplicaId, ReplicaMsg, ReplicaStatus, Role, TakeRecord,
    TakeReply, TakeRequest,
};
use shared::{Error, Result};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Time in milliseconds, as the caller's clock tells it.
pub type Ms = u64;
/// The I/O layer's handle of a request waiting for its answer.
pub type ClientId = u64;
/// The number of a write to the replica's files; writes reach the disk in this order.
pub type WriteId = u64;

/// How long a purchase or an order query may wait inside the replica before it is answered (see
/// [`shared::timing`]).
pub const REQUEST_DEADLINE: Ms = shared::timing::REQUEST_DEADLINE_MS;
/// The leader sends every follower an append at least this often; every other replica pings each
/// peer, and every replica the catalog, as often.
pub const HEARTBEAT: Ms = shared::timing::HEARTBEAT_MS;
/// A replica reports it can serve while a quorum was heard from and the catalog answered within
/// this window (see [`shared::timing`]). A leader takes stock for a purchase only while it reaches a
/// quorum by this rule, so it refuses purchases exactly when its health says it cannot serve.
pub const SERVE_WINDOW: Ms = shared::timing::SERVE_WINDOW_MS;
/// A new leader's purchases wait this long for its followers' first answers before a missing quorum
/// is answered 503.
pub const TAKEOVER_GRACE: Ms = 500;
/// A candidate that has not heard from a quorum for this long refuses purchases at once instead of
/// letting them wait.
pub const CANDIDATE_PATIENCE: Ms = shared::timing::CANDIDATE_PATIENCE_MS;
/// How often a candidate or a starting replica asks its peers again, and resends a lost log request.
pub const RETRY: Ms = 200;
/// A copy that has had no chunk for this long is given up, and the peers are asked again: its
/// source may be gone, and another replica may hold the same log.
pub const COPY_PATIENCE: Ms = 1000;
/// How long a starting replica tries to reach a quorum of peers before it serves with what it has.
pub const RECOVERY_WINDOW: Ms = 3000;
/// How often the leader lists the catalog's takes to roll forward the ones without an order.
pub const RECONCILE_EVERY: Ms = 1000;
/// A take at the catalog whose outcome is unknown is asked again after this long.
pub const TAKE_RETRY: Ms = 50;
/// Orders in one append or log chunk.
pub const BATCH: u64 = 4096;
/// The commit point is saved to the meta file at most this often when nothing else is saved.
pub const SAVE_COMMIT_EVERY: Ms = 1000;
/// Most takes the catalog lists at once: a full page means there may be more.
pub const TAKES_PAGE: usize = 1000;

/// Something that happened to the replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Time passed; timers may fire.
    Tick,
    /// A request from outside, to be answered with [`Effect::Reply`] for `client`.
    Request {
        /// Who waits for the answer.
        client: ClientId,
        /// What is asked.
        request: Request,
    },
    /// A message from a peer replica.
    Peer {
        /// The sender.
        from: ReplicaId,
        /// The message.
        msg: ReplicaMsg,
    },
    /// Every write up to this id is on disk.
    Persisted(WriteId),
    /// The answer to an [`Effect::Catalog`] call.
    Catalog(CatalogReply),
    /// Messages to this peer could not be delivered (refused connection, timeout): it does not count
    /// as live until it answers again.
    Unreachable(ReplicaId),
}

/// A request from outside.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// A purchase (only the leader serves it).
    Purchase(Purchase),
    /// `GET /orders/<n>`.
    Order(OrderNumber),
    /// The front-end's notice that `ballot.leader` leads.
    Notice(Ballot),
}

/// The answer to a [`Request`], sent as the payload it holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Answer {
    /// A purchase's order number.
    Created(OrderCreated),
    /// An order.
    Order(OrderInfo),
    /// The replica's status (the answer to a notice).
    Status(ReplicaStatus),
}

/// A call to the catalog.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogCall {
    /// Take stock for a purchase.
    Take(TakeRequest),
    /// Refuse a request id for good unless it was taken.
    Cancel(CancelRequest),
    /// List the takes after journal row `after`.
    List {
        /// Journal sequence number to list after.
        after: u64,
        /// The listing leader's epoch.
        epoch: Epoch,
    },
    /// Ask the catalog's health, to know whether it can be reached.
    Ping,
}

/// The outcome of a [`CatalogCall`]. `Err(Error::Unreachable)` means the call surely never arrived;
/// any other error but a refusal (400, 404, 409) means its effect is unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogReply {
    /// Of a take.
    Take {
        /// The take asked.
        take: TakeRequest,
        /// Its outcome.
        result: Result<TakeReply>,
    },
    /// Of a cancel.
    Cancel {
        /// The cancel asked.
        cancel: CancelRequest,
        /// Its outcome.
        result: Result<CancelReply>,
    },
    /// Of a listing.
    List {
        /// The epoch it was asked with.
        epoch: Epoch,
        /// The takes, oldest first.
        result: Result<Vec<TakeRecord>>,
    },
    /// Of a ping.
    Ping(Result<()>),
}

impl CatalogCall {
    /// The reply of this call when it failed with `e` (it timed out, or the catalog is unreachable).
    pub fn failed(self, e: Error) -> CatalogReply {
        match self {
            CatalogCall::Take(take) => CatalogReply::Take {
                take,
                result: Err(e),
            },
            CatalogCall::Cancel(cancel) => CatalogReply::Cancel {
                cancel,
                result: Err(e),
            },
            CatalogCall::List { epoch, .. } => CatalogReply::List {
                epoch,
                result: Err(e),
            },
            CatalogCall::Ping => CatalogReply::Ping(Err(e)),
        }
    }

    /// True for the calls a replica makes on its own timers (listings, pings), not for a purchase.
    pub fn is_background(&self) -> bool {
        matches!(self, CatalogCall::List { .. } | CatalogCall::Ping)
    }
}

impl CatalogReply {
    /// True when the catalog answered (whatever it said): it can be reached.
    fn answered(&self) -> bool {
        let error = match self {
            CatalogReply::Take { result, .. } => result.as_ref().err(),
            CatalogReply::Cancel { result, .. } => result.as_ref().err(),
            CatalogReply::List { result, .. } => result.as_ref().err(),
            CatalogReply::Ping(result) => result.as_ref().err(),
        };
        !error.is_some_and(|e| matches!(e, Error::Unreachable(_) | Error::Transport(_)))
    }
}

/// A write to the replica's files.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// These orders go at the end of `orders-<id>.csv`.
    Append(Vec<Order>),
    /// `orders-<id>.csv` is replaced by these orders (a conflicting tail was cut).
    Rewrite(Vec<Order>),
    /// `replica-<id>.json` is replaced by this.
    Meta(Meta),
}

/// What the I/O layer must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send `msg` to replica `to` (it may be lost).
    Send {
        /// The receiver.
        to: ReplicaId,
        /// The message.
        msg: ReplicaMsg,
    },
    /// Write to disk, after every write with a smaller id; report [`Input::Persisted`] when done.
    Write {
        /// Its number.
        id: WriteId,
        /// What to write.
        write: Write,
    },
    /// Call the catalog; report the outcome with [`Input::Catalog`].
    Catalog(CatalogCall),
    /// Answer the waiting request.
    Reply {
        /// Who waits.
        client: ClientId,
        /// The answer.
        result: Result<Answer>,
    },
    /// A line for the log, saying what happened.
    Log(String),
}

/// What a purchase waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Waiter {
    Purchase,
    Query,
}

/// Something to do once a write is on disk.
#[derive(Debug, Clone, PartialEq)]
enum Deferred {
    /// Give this answer.
    Reply(ClientId, Result<Answer>),
    /// Acknowledge a leader's append up to `end`, if this replica still follows `ballot`.
    Ack { ballot: Ballot, end: u64 },
    /// Answer a prepare, if this replica still promises `ballot`.
    PrepareOk(Ballot),
}

/// The state of one purchase at this leader, by request id, from admission to its order.
#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    name: String,
    quantity: u64,
    /// True while no call for this id can have reached the catalog from anywhere.
    fresh: bool,
    stage: Stage,
    /// Requests waiting for the outcome, with their deadlines.
    waiting: Vec<(ClientId, Ms)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// A take is on its way to the catalog with this epoch; `retry_at` is set when its outcome was
    /// unknown and it is to be sent again.
    Taking { epoch: Epoch, retry_at: Option<Ms> },
    /// A cancel is on its way: the purchase is to be refused, if the catalog confirms no take.
    Cancelling,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Default, PartialEq)]
struct Progress {
    /// Next position to send.
    next: u64,
    /// Length of the follower's log known to match this leader's and be on its disk.
    matched: u64,
    /// True once the follower's log ballot is this leader's.
    joined: bool,
    /// Last acknowledgement.
    last_ok: Option<Ms>,
    /// Last append sent.
    last_sent: Option<Ms>,
}

/// Leader only.
#[derive(Debug, Clone, PartialEq)]
struct Leading {
    ballot: Ballot,
    /// The log's length when it took over.
    view_len: u64,
    /// The write that saved its log ballot: its own log counts for a commit only after it.
    meta_write: WriteId,
    since: Ms,
    followers: BTreeMap<ReplicaId, Progress>,
    /// Every take at the catalog up to this journal row has an order.
    reconciled: u64,
    /// When the catalog is to be listed next; None while a listing is under way.
    list_at: Option<Ms>,
}

/// Candidate only.
#[derive(Debug, Clone, PartialEq)]
struct Candidacy {
    ballot: Ballot,
    since: Ms,
    asked_at: Ms,
    /// The write that saved its own promise.
    promise_write: WriteId,
    answers: BTreeMap<ReplicaId, ReplicaStatus>,
}

/// Recovering only.
#[derive(Debug, Clone, PartialEq)]
struct Recovery {
    since: Ms,
    asked_at: Ms,
    answers: BTreeMap<ReplicaId, ReplicaStatus>,
}

/// A copy of a more up-to-date peer's log, in chunks.
#[derive(Debug, Clone, PartialEq)]
struct Copy {
    id: u64,
    source: ReplicaId,
    /// The source's log ballot, from its first chunk: every chunk must have the same.
    source_ballot: Option<Ballot>,
    /// Next position to ask for.
    pos: u64,
    asked_at: Ms,
    /// When the last chunk was merged (or the copy began).
    progress_at: Ms,
    /// Orders this copy added.
    added: u64,
}

/// What a replica has done since it started, counted for its `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Orders written into its log by copies from a peer: a resync on start, a candidate catching
    /// up with the most up-to-date log of a quorum.
    pub copied: u64,
    /// Orders it wrote for takes that had none (roll forward).
    pub rolled_forward: u64,
}

/// Replica `id`'s state.
#[derive(Debug, Clone)]
pub struct Replica {
    id: ReplicaId,
    peers: Vec<ReplicaId>,
    quorum: usize,
    promised: Ballot,
    log_ballot: Ballot,
    commit: u64,
    log: Vec<Order>,
    by_request: HashMap<String, OrderNumber>,
    role: Role,
    /// Next write id to give.
    next_write: WriteId,
    /// The newest meta write: what an answer about a promise waits for.
    meta_write: WriteId,
    /// Every write up to this is on disk.
    persisted: WriteId,
    /// Log writes not yet on disk: (write, log length once it is, clamped by later cuts).
    unpersisted: Vec<(WriteId, u64)>,
    /// Length of the log's prefix that is on disk.
    durable: u64,
    deferred: Vec<(WriteId, Deferred)>,
    commit_saved: u64,
    commit_saved_at: Ms,
    leading: Option<Leading>,
    candidacy: Option<Candidacy>,
    recovery: Option<Recovery>,
    copy: Option<Copy>,
    copies: u64,
    tally: Tally,
    attempts: BTreeMap<String, Attempt>,
    /// Request ids the catalog said were taken when asked to refuse them, with no order here yet: a
    /// retry is answered 504 at once instead of asking again (a take is never undone).
    known_taken: BTreeSet<String>,
    /// Requests that wait for an order to be committed: number -> (client, deadline, what).
    commit_waiters: BTreeMap<OrderNumber, Vec<(ClientId, Ms, Waiter)>>,
    /// Purchases and queries that wait for this replica to lead (candidate, or new leader's grace).
    parked: Vec<(ClientId, Ms, Request)>,
    /// The time of the latest step: what the status's reachability is judged at.
    clock: Ms,
    /// When each peer was last heard from (any message).
    heard: BTreeMap<ReplicaId, Ms>,
    /// When the catalog last answered a call.
    catalog_answered: Option<Ms>,
    /// When the peers and the catalog were last pinged.
    pinged_at: Option<Ms>,
    /// True while a ping to the catalog waits for its answer.
    catalog_ping_out: bool,
    /// True when the catalog's answer to the latest call was lost (refused, timed out) and none came
    /// since: a fresh purchase is refused at once rather than sent where it cannot arrive.
    catalog_down: bool,
    out: Vec<Effect>,
}

/// The peer whose log is more up to date than `own` and than every other of `peers`: the highest
/// log ballot, then the longest; None when `own` is at least as up to date as all of them. A log
/// copies the log of the leader of its log ballot, and that leader's log held every order committed
/// before it, so the most up-to-date log of a quorum holds every committed order (see the crate docs).
pub fn better_source<'a>(
    own: &ReplicaStatus,
    peers: impl IntoIterator<Item = &'a ReplicaStatus>,
) -> Option<&'a ReplicaStatus> {
    let key = |s: &ReplicaStatus| (s.log_ballot, s.len);
    peers
        .into_iter()
        .filter(|s| key(s) > key(own))
        .max_by_key(|s| key(s))
}

/// The highest commit point that `quorum` of the given durable lengths reach (the leader's own and
/// those of followers that copy its log).
pub fn quorum_point(mut lengths: Vec<u64>, quorum: usize) -> Option<u64> {
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths.get(quorum.max(1) - 1).copied()
}

fn unavailable_no_quorum(quorum: usize) -> Error {
    Error::Unavailable(format!(
        "fewer than {quorum} order replicas reachable; nothing was changed"
    ))
}

impl Replica {
    /// Replica `id` of `peers` (the others), starting from the orders and meta its files hold. It
    /// begins by asking its peers how up to date they are.
    pub fn new(
        id: ReplicaId,
        peers: Vec<ReplicaId>,
        quorum: usize,
        log: Vec<Order>,
        meta: Meta,
        now: Ms,
    ) -> (Replica, Vec<Effect>) {
        let by_request = log
            .iter()
            .map(|o| (o.request_id.clone(), o.number))
            .collect();
        let durable = log.len() as u64;
        let mut r = Replica {
            id,
            peers,
            quorum,
            // A log ballot is never above the promise (see `finish_copy`).
            promised: meta.promised.max(meta.log_ballot),
            log_ballot: meta.log_ballot,
            commit: meta.commit.min(durable),
            log,
            by_request,
            role: Role::Recovering,
            next_write: 1,
            meta_write: 0,
            persisted: 0,
            unpersisted: Vec::new(),
            durable,
            deferred: Vec::new(),
            commit_saved: meta.commit,
            commit_saved_at: now,
            leading: None,
            candidacy: None,
            recovery: Some(Recovery {
                since: now,
                asked_at: now,
                answers: BTreeMap::new(),
            }),
            copy: None,
            copies: 0,
            tally: Tally::default(),
            attempts: BTreeMap::new(),
            known_taken: BTreeSet::new(),
            commit_waiters: BTreeMap::new(),
            parked: Vec::new(),
            clock: now,
            heard: BTreeMap::new(),
            catalog_answered: None,
            pinged_at: None,
            catalog_ping_out: false,
            catalog_down: false,
            out: Vec::new(),
        };
        r.broadcast(ReplicaMsg::Probe);
        r.maybe_finish_recovery(now);
        let out = std::mem::take(&mut r.out);
        (r, out)
    }

    /// Handles one input at time `now`; the effects to carry out, in order.
    pub fn step(&mut self, now: Ms, input: Input) -> Vec<Effect> {
        self.clock = self.clock.max(now);
        match input {
            Input::Tick => self.tick(now),
            Input::Request { client, request } => self.on_request(now, client, request),
            Input::Peer { from, msg } => self.on_peer(now, from, msg),
            Input::Persisted(w) => self.on_persisted(now, w),
            Input::Catalog(reply) => self.on_catalog(now, reply),
            Input::Unreachable(peer) => {
                self.heard.remove(&peer);
                if let Some(p) = self
                    .leading
                    .as_mut()
                    .and_then(|l| l.followers.get_mut(&peer))
                {
                    p.last_ok = None;
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    // ----- what others may read -----

    /// Its role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Its status, as the health check and a prepare answer it.
    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            id: self.id,
            role: self.role,
            ready: self.role != Role::Recovering,
            promised: self.promised,
            log_ballot: self.log_ballot,
            len: self.len(),
            commit: self.commit,
            reaches_quorum: self.reaches_quorum(self.clock),
            reaches_catalog: self
                .catalog_answered
                .is_some_and(|t| self.clock < t + SERVE_WINDOW),
        }
    }

    /// True when a quorum (itself included) was heard from within [`SERVE_WINDOW`]: for a leader,
    /// followers that acknowledged its appends; for any other replica, peers that sent anything.
    fn reaches_quorum(&self, now: Ms) -> bool {
        let recent = |t: Option<Ms>| t.is_some_and(|t| now < t + SERVE_WINDOW);
        let heard = match &self.leading {
            Some(l) => l
                .followers
                .values()
                .filter(|f| f.joined && recent(f.last_ok))
                .count(),
            None => self
                .peers
                .iter()
                .filter(|p| recent(self.heard.get(p).copied()))
                .count(),
        };
        heard + 1 >= self.quorum
    }

    /// Orders in the log.
    fn len(&self) -> u64 {
        self.log.len() as u64
    }

    /// The whole log, on disk or not.
    pub fn orders(&self) -> &[Order] {
        &self.log
    }

    /// What it has done since it started.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Orders known committed.
    pub fn commit(&self) -> u64 {
        self.commit
    }

    /// Length of the log's prefix known to be on disk.
    pub fn durable(&self) -> u64 {
        self.durable
    }

    /// What the meta file should hold now (the commit point only as far as the disk holds orders).
    pub fn meta(&self) -> Meta {
        Meta {
            promised: self.promised,
            log_ballot: self.log_ballot,
            commit: self.commit.min(self.durable),
        }
    }

    /// The ballot it leads with, when it leads.
    pub fn leads(&self) -> Option<Ballot> {
        self.leading.as_ref().map(|l| l.ballot)
    }

    /// The number of the order with this request id, if the log holds one.
    pub fn find(&self, request_id: &str) -> Option<OrderNumber> {
        self.by_request.get(request_id).copied()
    }

    // ----- writes -----

    fn write(&mut self, write: Write) -> WriteId {
        let id = self.next_write;
        self.next_write += 1;
        match &write {
            Write::Append(_) | Write::Rewrite(_) => self.unpersisted.push((id, self.len())),
            Write::Meta(m) => {
                self.commit_saved = m.commit;
                self.meta_write = id;
            }
        }
        self.out.push(Effect::Write { id, write });
        id
    }

    fn save_meta(&mut self, now: Ms) -> WriteId {
        self.commit_saved_at = now;
        let meta = self.meta();
        self.write(Write::Meta(meta))
    }

    /// The newest write id given, or what is on disk when nothing is pending: what a promise about
    /// the present state must wait for.
    fn last_write(&self) -> WriteId {
        self.next_write - 1
    }

    fn defer(&mut self, after: WriteId, d: Deferred) {
        if after <= self.persisted {
            self.release(d);
        } else {
            self.deferred.push((after, d));
        }
    }

    fn on_persisted(&mut self, now: Ms, w: WriteId) {
        if w <= self.persisted {
            return;
        }
        self.persisted = w;
        let done = self
            .unpersisted
            .iter()
            .take_while(|(id, _)| *id <= w)
            .count();
        if done > 0 {
            self.durable = self.unpersisted[done - 1].1.min(self.len());
            self.unpersisted.drain(..done);
        }
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|(id, _)| *id <= w);
        self.deferred = later;
        for (_, d) in ready {
            self.release(d);
        }
        // A candidate whose own promise was the last thing missing takes over now.
        self.maybe_take_over(now);
        self.maybe_advance_commit(now);
    }

    fn release(&mut self, d: Deferred) {
        match d {
            Deferred::Reply(client, result) => self.out.push(Effect::Reply { client, result }),
            Deferred::Ack { ballot, end } => {
                if self.promised == ballot && self.role == Role::Follower {
                    let reply = AppendReply {
                        matched: true,
                        len: end.min(self.len()),
                        commit: self.commit,
                        log_ballot: self.log_ballot,
                    };
                    self.send(ballot.leader, ReplicaMsg::AppendOk { ballot, reply });
                }
            }
            Deferred::PrepareOk(ballot) => {
                if self.promised == ballot {
                    let status = self.status();
                    self.send(ballot.leader, ReplicaMsg::PrepareOk { ballot, status });
                }
            }
        }
    }

    // ----- the log -----

    /// Appends `order` to the log (memory, and a write queued).
    fn push(&mut self, order: Order) -> WriteId {
        self.by_request
            .insert(order.request_id.clone(), order.number);
        self.log.push(order.clone());
        self.write(Write::Append(vec![order]))
    }

    /// Cuts the log to `len` orders; the file is rewritten.
    fn truncate(&mut self, len: u64) {
        if len >= self.len() {
            return;
        }
        for o in self.log.drain(len as usize..) {
            self.by_request.remove(&o.request_id);
        }
        self.commit = self.commit.min(len);
        self.durable = self.durable.min(len);
        for (_, l) in self.unpersisted.iter_mut() {
            *l = (*l).min(len);
        }
        let all = self.log.clone();
        self.write(Write::Rewrite(all));
    }

    /// Puts `entries` at positions from `start`, keeping what already matches (same epoch and request
    /// id at the same position is the same order) and cutting the log at the first conflict. Returns
    /// how many orders it wrote.
    fn merge(&mut self, start: u64, entries: &[Order]) -> u64 {
        let mut new = Vec::new();
        for (k, e) in entries.iter().enumerate() {
            let i = start + k as u64;
            if let Some(mine) = self.log.get(i as usize) {
                if mine.epoch == e.epoch && mine.request_id == e.request_id {
                    continue;
                }
                self.truncate(i);
            }
            if i != self.len() {
                break;
            }
            self.by_request.insert(e.request_id.clone(), e.number);
            self.log.push(e.clone());
            new.push(e.clone());
        }
        let written = new.len() as u64;
        if written > 0 {
            self.write(Write::Append(new));
        }
        written
    }

    fn epoch_at(&self, len: u64) -> Option<Epoch> {
        len.checked_sub(1)
            .and_then(|i| self.log.get(i as usize))
            .map(|o| o.epoch)
    }

    fn chunk(&self, from: u64, limit: u64) -> LogChunk {
        let start = from.min(self.len()) as usize;
        let end = (start as u64).saturating_add(limit).min(self.len()) as usize;
        LogChunk {
            entries: self.log[start..end].to_vec(),
            len: self.len(),
            log_ballot: self.log_ballot,
        }
    }

    // ----- promises and roles -----

    /// True when this replica may act on a message of `b`: a newer epoch, or the very choice it
    /// promised. One promise per epoch, so two leaders never both win the same epoch.
    fn admits(&self, b: Ballot) -> bool {
        b.epoch > self.promised.epoch || b == self.promised
    }

    /// Promises `b` (already admitted); a leader or candidate of an older choice steps down. The
    /// promise is written; what depends on it waits for the meta write.
    fn promise(&mut self, now: Ms, b: Ballot) {
        if b == self.promised {
            return;
        }
        self.promised = b;
        self.copy = None;
        if self.leading.is_some() || self.candidacy.is_some() {
            self.out.push(Effect::Log(format!(
                "stepping down: replica {} leads in epoch {}",
                b.leader, b.epoch
            )));
            self.step_down(now);
        }
        if let Some(r) = &mut self.recovery {
            // Whatever it learnt of its peers before the promise is asked again.
            r.answers.clear();
            r.asked_at = now;
            self.broadcast(ReplicaMsg::Probe);
        }
        self.save_meta(now);
    }

    /// Leaves leadership or candidacy: every request waiting on it is answered.
    fn step_down(&mut self, _now: Ms) {
        self.leading = None;
        self.candidacy = None;
        self.copy = None;
        if self.role != Role::Recovering {
            self.role = Role::Follower;
        }
        let promised = self.promised;
        // What waited for this replica to lead was not begun here: the new leader serves it.
        for (client, _, _) in std::mem::take(&mut self.parked) {
            self.out.push(Effect::Reply {
                client,
                result: Err(Error::NotLeader(promised)),
            });
        }
        for (n, waiters) in std::mem::take(&mut self.commit_waiters) {
            for (client, _, what) in waiters {
                let e = match what {
                    Waiter::Purchase => Error::Indeterminate(format!(
                        "order {n} is stored but leadership changed before a quorum confirmed it; the new leader completes it"
                    )),
                    Waiter::Query => Error::NotLeader(promised),
                };
                self.out.push(Effect::Reply {
                    client,
                    result: Err(e),
                });
            }
        }
        // Purchases under way at the catalog are answered now, so that the front-end retries them
        // at the new leader under the same request id at once. The attempts stay until the
        // catalog's answers come, but are not asked again (see `tick`): a take of this replica's
        // epoch that reached the catalog is rolled forward by the new leader.
        let e = Error::Indeterminate(
            "leadership changed while the purchase was under way; the new leader completes it"
                .into(),
        );
        for a in self.attempts.values_mut() {
            for (client, _) in a.waiting.drain(..) {
                self.out.push(Effect::Reply {
                    client,
                    result: Err(e.clone()),
                });
            }
        }
    }

    fn refused(&mut self, from: ReplicaId, ballot: Ballot) {
        self.send(
            from,
            ReplicaMsg::Refuse {
                ballot,
                promised: self.promised,
            },
        );
    }

    fn send(&mut self, to: ReplicaId, msg: ReplicaMsg) {
        self.out.push(Effect::Send { to, msg });
    }

    fn broadcast(&mut self, msg: ReplicaMsg) {
        for to in self.peers.clone() {
            self.send(to, msg.clone());
        }
    }

    // ----- requests -----

    fn on_request(&mut self, now: Ms, client: ClientId, request: Request) {
        match request {
            Request::Notice(b) => self.on_notice(now, client, b),
            Request::Order(n) => self.on_order_query(now, client, n),
            Request::Purchase(p) => self.on_purchase(now, client, p),
        }
    }

    fn reply(&mut self, client: ClientId, result: Result<Answer>) {
        self.out.push(Effect::Reply { client, result });
    }

    /// The front-end's notice that `b.leader` leads in `b.epoch`.
    fn on_notice(&mut self, now: Ms, client: ClientId, b: Ballot) {
        if !self.admits(b) {
            self.reply(client, Err(Error::Stale(self.promised)));
            return;
        }
        // A leader or candidate of another choice stepped down in `promise`.
        self.promise(now, b);
        let result = if b.leader != self.id {
            Ok(())
        } else if self.role == Role::Recovering {
            Err(Error::Unavailable("still catching up after a start".into()))
        } else {
            if self.role == Role::Follower {
                self.become_candidate(now, b);
            }
            Ok(())
        };
        let result = result.map(|()| Answer::Status(self.status()));
        self.defer(self.meta_write, Deferred::Reply(client, result));
    }

    fn become_candidate(&mut self, now: Ms, b: Ballot) {
        self.role = Role::Candidate;
        self.out.push(Effect::Log(format!(
            "chosen as leader for epoch {}; collecting the replicas' logs",
            b.epoch
        )));
        self.candidacy = Some(Candidacy {
            ballot: b,
            since: now,
            asked_at: now,
            promise_write: self.meta_write,
            answers: BTreeMap::new(),
        });
        self.broadcast(ReplicaMsg::Prepare { ballot: b });
    }

    fn on_order_query(&mut self, now: Ms, client: ClientId, n: OrderNumber) {
        if n < self.commit {
            let o = &self.log[n as usize];
            let info = OrderInfo {
                number: o.number,
                name: o.name.clone(),
                quantity: o.quantity,
            };
            self.reply(client, Ok(Answer::Order(info)));
            return;
        }
        let deadline = now + REQUEST_DEADLINE;
        match self.role {
            Role::Leader if n < self.len() => {
                self.commit_waiters
                    .entry(n)
                    .or_default()
                    .push((client, deadline, Waiter::Query))
            }
            Role::Candidate => self.parked.push((client, deadline, Request::Order(n))),
            _ if n < self.len() => self.reply(
                client,
                Err(Error::Unavailable(format!(
                    "order {n} is not known to be committed here yet"
                ))),
            ),
            _ => self.reply(client, Err(Error::NotFound(format!("no order {n}")))),
        }
    }

    fn on_purchase(&mut self, now: Ms, client: ClientId, p: Purchase) {
        if let Err(e) = shared::protocol::validate_purchase(&p.request_id, &p.name, p.quantity) {
            self.reply(client, Err(e));
            return;
        }
        let deadline = now + REQUEST_DEADLINE;
        match self.role {
            Role::Leader => self.admit(now, client, deadline, p),
            Role::Candidate => {
                let patient = self
                    .candidacy
                    .as_ref()
                    .is_some_and(|c| now < c.since + CANDIDATE_PATIENCE);
                if patient {
                    self.parked.push((client, deadline, Request::Purchase(p)));
                } else {
                    self.refuse(client, deadline, p, unavailable_no_quorum(self.quorum));
                }
            }
            _ => self.reply(client, Err(Error::NotLeader(self.promised))),
        }
    }

    /// True when this replica leads and enough followers acknowledged recently for a new order to
    /// reach a quorum.
    fn quorum_alive(&self, now: Ms) -> bool {
        self.leading.is_some() && self.reaches_quorum(now)
    }

    /// Leader: a purchase, applied at most once per request id.
    fn admit(&mut self, now: Ms, client: ClientId, deadline: Ms, p: Purchase) {
        if let Some(n) = self.find(&p.request_id) {
            let o = &self.log[n as usize];
            if o.name != p.name || o.quantity != p.quantity {
                self.reply(client, Err(conflicting_id(&p.request_id)));
            } else if n < self.commit {
                self.reply(client, Ok(created(n)));
            } else {
                self.commit_waiters.entry(n).or_default().push((
                    client,
                    deadline,
                    Waiter::Purchase,
                ));
            }
            return;
        }
        if let Some(a) = self.attempts.get_mut(&p.request_id) {
            if a.name != p.name || a.quantity != p.quantity {
                self.reply(client, Err(conflicting_id(&p.request_id)));
            } else {
                a.fresh &= p.fresh;
                a.waiting.push((client, deadline));
            }
            return;
        }
        if !self.quorum_alive(now) {
            let grace = self
                .leading
                .as_ref()
                .is_some_and(|l| now < l.since + TAKEOVER_GRACE);
            if grace {
                self.parked.push((client, deadline, Request::Purchase(p)));
            } else {
                self.refuse(client, deadline, p, unavailable_no_quorum(self.quorum));
            }
            return;
        }
        if self.catalog_down && p.fresh {
            let e = Error::Unavailable("the catalog does not answer; nothing was changed".into());
            self.reply(client, Err(e));
            return;
        }
        let epoch = self.promised.epoch;
        let take = TakeRequest {
            request_id: p.request_id.clone(),
            name: p.name.clone(),
            quantity: p.quantity,
            epoch,
        };
        self.attempts.insert(
            p.request_id,
            Attempt {
                name: p.name,
                quantity: p.quantity,
                fresh: p.fresh,
                stage: Stage::Taking {
                    epoch,
                    retry_at: None,
                },
                waiting: vec![(client, deadline)],
            },
        );
        self.out.push(Effect::Catalog(CatalogCall::Take(take)));
    }

    /// Answers a purchase "nothing was changed" (`why`), which must then hold forever: at once when
    /// no attempt with its id can have reached the catalog, otherwise once the catalog has refused
    /// the id for good (if it had taken stock for it, the answer is 504: the order completes).
    fn refuse(&mut self, client: ClientId, deadline: Ms, p: Purchase, why: Error) {
        if p.fresh {
            self.reply(client, Err(why));
            return;
        }
        if self.known_taken.contains(&p.request_id) {
            self.reply(client, Err(taken_elsewhere()));
            return;
        }
        if let Some(a) = self.attempts.get_mut(&p.request_id) {
            a.waiting.push((client, deadline));
            return;
        }
        self.attempts.insert(
            p.request_id.clone(),
            Attempt {
                name: p.name,
                quantity: p.quantity,
                fresh: false,
                stage: Stage::Cancelling,
                waiting: vec![(client, deadline)],
            },
        );
        let cancel = CancelRequest {
            request_id: p.request_id,
            epoch: self.promised.epoch,
        };
        self.out.push(Effect::Catalog(CatalogCall::Cancel(cancel)));
    }

    // ----- the catalog's answers -----

    fn on_catalog(&mut self, now: Ms, reply: CatalogReply) {
        self.catalog_down = !reply.answered();
        if !self.catalog_down {
            self.catalog_answered = Some(now);
        }
        match reply {
            CatalogReply::Ping(_) => self.catalog_ping_out = false,
            CatalogReply::Take { take, result } => self.on_take(now, take, result),
            CatalogReply::Cancel { cancel, result } => self.on_cancel(cancel, result),
            CatalogReply::List { epoch, result } => self.on_list(now, epoch, result),
        }
    }

    fn answer_attempt(&mut self, request_id: &str, result: Result<Answer>) {
        if let Some(a) = self.attempts.remove(request_id) {
            for (client, _) in a.waiting {
                self.reply(client, result.clone());
            }
        }
    }

    fn on_take(&mut self, now: Ms, take: TakeRequest, result: Result<TakeReply>) {
        let Some(a) = self.attempts.get_mut(&take.request_id) else {
            return;
        };
        if a.stage
            != (Stage::Taking {
                epoch: take.epoch,
                retry_at: None,
            })
        {
            return; // an answer to an earlier call that was already handled
        }
        match result {
            Ok(_) => {
                let id = take.request_id.clone();
                if self.leads()
                    != Some(Ballot {
                        epoch: take.epoch,
                        leader: self.id,
                    })
                {
                    self.answer_attempt(&id, Err(Error::Indeterminate(
                        "leadership changed after the stock was taken; the new leader completes the order".into(),
                    )));
                    return;
                }
                let a = self.attempts.remove(&id).expect("attempt");
                let n = match self.find(&id) {
                    Some(n) => n, // rolled forward meanwhile
                    None => self.create(now, take.name, take.quantity, id),
                };
                let waiters = a.waiting.into_iter().map(|(c, d)| (c, d, Waiter::Purchase));
                self.commit_waiters.entry(n).or_default().extend(waiters);
                self.maybe_advance_commit(now);
            }
            Err(e @ (Error::Conflict(_) | Error::NotFound(_) | Error::BadRequest(_))) => {
                // The catalog refused the id, and keeps refusing it.
                self.answer_attempt(&take.request_id, Err(e));
            }
            Err(Error::Stale(fence)) => {
                // The catalog has seen a newer leader: this one was replaced, and the id is left to
                // its successor, which may still take it for the same purchase. Nothing is known
                // for good, so 504, and the take is not asked again.
                let e = Error::Indeterminate(format!(
                    "a newer leader (epoch {}) completes the purchase; retry with the same request id",
                    fence.epoch
                ));
                self.answer_attempt(&take.request_id, Err(e));
            }
            Err(Error::Unreachable(m)) if a.fresh => {
                let e = Error::Unavailable(format!(
                    "the catalog is unreachable ({m}); nothing was changed"
                ));
                self.answer_attempt(&take.request_id, Err(e));
            }
            Err(_) => {
                // The take may have happened: ask again (it is idempotent by request id) until every
                // waiter's deadline has passed; the reconciler rolls forward a take nobody waits for.
                a.fresh = false;
                a.stage = Stage::Taking {
                    epoch: take.epoch,
                    retry_at: Some(now + TAKE_RETRY),
                };
            }
        }
    }

    fn on_cancel(&mut self, cancel: CancelRequest, result: Result<CancelReply>) {
        match self.attempts.get(&cancel.request_id) {
            Some(a) if a.stage == Stage::Cancelling => {}
            _ => return,
        }
        let answer = match result {
            Ok(CancelReply { taken: None }) => Err(unavailable_no_quorum(self.quorum)),
            Ok(CancelReply { taken: Some(_) }) => {
                self.known_taken.insert(cancel.request_id.clone());
                Err(taken_elsewhere())
            }
            Err(e) => Err(Error::Indeterminate(format!(
                "the store cannot serve this now and could not confirm with the catalog that an earlier attempt left nothing ({})",
                e.message()
            ))),
        };
        self.answer_attempt(&cancel.request_id, answer);
    }

    /// Leader: rolls forward every take of stock at the catalog that has no order and no purchase
    /// under way here: its leader died between the take and the order, and nobody retried it.
    fn on_list(&mut self, now: Ms, epoch: Epoch, result: Result<Vec<TakeRecord>>) {
        let Some(l) = &self.leading else {
            return;
        };
        if l.ballot.epoch != epoch || l.list_at.is_some() {
            return;
        }
        let takes = match result {
            Ok(t) => t,
            Err(e) => {
                self.out
                    .push(Effect::Log(format!("cannot list the catalog's takes: {e}")));
                self.leading.as_mut().expect("leading").list_at = Some(now + RECONCILE_EVERY);
                return;
            }
        };
        let full_page = takes.len() >= TAKES_PAGE;
        let mut reconciled = l.reconciled;
        let mut blocked = false;
        for t in takes {
            if self.find(&t.request_id).is_some() {
                reconciled = t.seq;
                continue;
            }
            if self.attempts.contains_key(&t.request_id) {
                blocked = true;
                break;
            }
            let n = self.create(now, t.name.clone(), t.quantity, t.request_id.clone());
            self.tally.rolled_forward += 1;
            self.out.push(Effect::Log(format!(
                "rolled forward request {}: order {n} for {} x {}",
                t.request_id, t.quantity, t.name
            )));
            reconciled = t.seq;
        }
        let l = self.leading.as_mut().expect("leading");
        l.reconciled = reconciled;
        // A page that was not empty may have a next one: ask again at once, unless a take under way
        // here blocks the way (then wait, rather than spin on the same page).
        l.list_at = Some(if full_page && !blocked {
            now
        } else {
            now + RECONCILE_EVERY
        });
    }

    /// Leader: a new order at the end of the log, sent to the followers.
    fn create(&mut self, now: Ms, name: String, quantity: u64, request_id: String) -> OrderNumber {
        self.known_taken.remove(&request_id);
        let number = self.len();
        let order = Order {
            number,
            name,
            quantity,
            request_id,
            epoch: self.promised.epoch,
        };
        self.push(order);
        self.replicate_new(now);
        number
    }

    // ----- peers -----

    fn on_peer(&mut self, now: Ms, from: ReplicaId, msg: ReplicaMsg) {
        if !self.peers.contains(&from) {
            return;
        }
        self.heard.insert(from, now);
        match msg {
            ReplicaMsg::Ping => {}
            ReplicaMsg::Prepare { ballot } => self.on_prepare(now, from, ballot),
            ReplicaMsg::PrepareOk { ballot, status } => {
                self.on_prepare_ok(now, from, ballot, status)
            }
            ReplicaMsg::Refuse { ballot, promised } => self.on_refuse(now, from, ballot, promised),
            ReplicaMsg::Append(a) => self.on_append(now, from, a),
            ReplicaMsg::AppendOk { ballot, reply } => self.on_append_ok(now, from, ballot, reply),
            ReplicaMsg::Probe => {
                let status = self.status();
                self.send(from, ReplicaMsg::ProbeOk(status));
            }
            ReplicaMsg::ProbeOk(status) => {
                if let Some(r) = &mut self.recovery {
                    if self.copy.is_none() && status.id == from {
                        r.answers.insert(from, status);
                        self.maybe_finish_recovery(now);
                    }
                }
            }
            ReplicaMsg::LogRequest {
                copy,
                from: pos,
                limit,
            } => {
                let chunk = self.chunk(pos, limit.min(BATCH));
                let prev_epoch = if pos <= self.len() {
                    self.epoch_at(pos)
                } else {
                    None
                };
                self.send(
                    from,
                    ReplicaMsg::LogChunk {
                        copy,
                        from: pos,
                        prev_epoch,
                        chunk,
                    },
                );
            }
            ReplicaMsg::LogChunk {
                copy,
                from: pos,
                prev_epoch,
                chunk,
            } => self.on_chunk(now, from, copy, pos, prev_epoch, chunk),
        }
    }

    /// A candidate's prepare: promise `b` and tell how up to date this log is, once the promise is on
    /// disk.
    fn on_prepare(&mut self, now: Ms, from: ReplicaId, b: Ballot) {
        if !self.admits(b) || b.leader != from {
            self.refused(from, b);
            return;
        }
        if self.role == Role::Recovering {
            return; // it answers once it has caught up; the candidate asks again
        }
        self.promise(now, b);
        self.defer(self.meta_write, Deferred::PrepareOk(b));
    }

    fn on_prepare_ok(&mut self, now: Ms, from: ReplicaId, b: Ballot, status: ReplicaStatus) {
        let Some(c) = &mut self.candidacy else {
            return;
        };
        if c.ballot != b || status.id != from {
            return;
        }
        c.answers.insert(from, status);
        self.maybe_take_over(now);
    }

    fn on_refuse(&mut self, now: Ms, from: ReplicaId, b: Ballot, promised: Ballot) {
        if b != self.promised || promised.epoch < b.epoch || promised == b {
            return;
        }
        if self.leading.is_some() || self.candidacy.is_some() {
            self.out.push(Effect::Log(format!(
                "replica {from} promised epoch {}: giving up epoch {}",
                promised.epoch, b.epoch
            )));
            self.step_down(now);
        }
    }

    /// Candidate: once a quorum (itself included) has promised, copies the most up-to-date log
    /// among them if it is not its own, then leads.
    fn maybe_take_over(&mut self, now: Ms) {
        let Some(c) = &self.candidacy else {
            return;
        };
        if self.copy.is_some() || c.promise_write > self.persisted {
            return;
        }
        if c.answers.len() + 1 < self.quorum {
            return;
        }
        if let Some(best) = better_source(&self.status(), c.answers.values()) {
            let source = best.id;
            self.start_copy(now, source);
            return;
        }
        self.become_leader(now);
    }

    fn become_leader(&mut self, now: Ms) {
        let c = self.candidacy.take().expect("candidate");
        let b = c.ballot;
        self.role = Role::Leader;
        self.log_ballot = b;
        let meta_write = self.save_meta(now);
        let len = self.len();
        let followers = self
            .peers
            .iter()
            .map(|id| {
                (
                    *id,
                    Progress {
                        next: len,
                        ..Progress::default()
                    },
                )
            })
            .collect();
        self.leading = Some(Leading {
            ballot: b,
            view_len: len,
            meta_write,
            since: now,
            followers,
            reconciled: 0,
            list_at: Some(now),
        });
        self.out.push(Effect::Log(format!(
            "leader for epoch {} with {len} orders",
            b.epoch
        )));
        for f in self.peers.clone() {
            self.send_append(now, f);
        }
        // Requests that waited for the takeover are served now.
        self.serve_parked(now);
    }

    /// Leader: serves the requests that waited for it to lead (a purchase may wait again, within the
    /// takeover grace).
    fn serve_parked(&mut self, now: Ms) {
        for (client, deadline, request) in std::mem::take(&mut self.parked) {
            match request {
                Request::Purchase(p) => self.admit(now, client, deadline, p),
                other => self.on_request(now, client, other),
            }
        }
    }

    /// Leader: sends follower `f` the log from where it is believed to be, at most [`BATCH`] orders.
    fn send_append(&mut self, now: Ms, f: ReplicaId) {
        let Some(l) = &mut self.leading else {
            return;
        };
        let p = l.followers.get_mut(&f).expect("a follower");
        let start = p.next.min(self.log.len() as u64);
        let end = start.saturating_add(BATCH).min(self.log.len() as u64);
        p.next = end;
        p.last_sent = Some(now);
        let a = Append {
            ballot: l.ballot,
            start,
            prev_epoch: start.checked_sub(1).map(|i| self.log[i as usize].epoch),
            entries: self.log[start as usize..end as usize].to_vec(),
            commit: self.commit,
            view_len: l.view_len,
        };
        self.send(f, ReplicaMsg::Append(a));
    }

    /// Leader: new orders go at once to every follower that had all the earlier ones (pipelined);
    /// one still catching up gets them after its next acknowledgement.
    fn replicate_new(&mut self, now: Ms) {
        let Some(l) = &self.leading else {
            return;
        };
        let before = self.len() - 1;
        let caught_up: Vec<ReplicaId> = l
            .followers
            .iter()
            .filter(|(_, p)| p.next >= before)
            .map(|(id, _)| *id)
            .collect();
        for f in caught_up {
            self.send_append(now, f);
        }
    }

    /// A leader's append.
    fn on_append(&mut self, now: Ms, from: ReplicaId, a: Append) {
        if !self.admits(a.ballot) || a.ballot.leader != from {
            self.refused(from, a.ballot);
            return;
        }
        if self.role == Role::Recovering {
            return; // the leader sends again; it answers once it has caught up
        }
        self.promise(now, a.ballot);
        let reply = |r: &Replica, matched: bool, len: u64| AppendReply {
            matched,
            len,
            commit: r.commit,
            log_ballot: r.log_ballot,
        };
        let prev_ok =
            a.start <= self.len() && (a.start == 0 || self.epoch_at(a.start) == a.prev_epoch);
        if !prev_ok {
            let r = reply(self, false, self.len());
            self.send(
                from,
                ReplicaMsg::AppendOk {
                    ballot: a.ballot,
                    reply: r,
                },
            );
            return;
        }
        self.merge(a.start, &a.entries);
        let end = a.start + a.entries.len() as u64;
        let mut joined = false;
        if self.log_ballot != a.ballot && end >= a.view_len {
            // This log now holds the leader's whole starting log. Anything after `end` that the leader
            // did not write itself is a leftover of an older leader: cut it, then copy this leader.
            let own = a.ballot.epoch;
            if let Some(i) = (end as usize..self.log.len()).find(|&i| self.log[i].epoch != own) {
                self.truncate(i as u64);
            }
            self.log_ballot = a.ballot;
            joined = true;
        }
        // The log matches the leader's up to `end`, so what the leader knows committed up to there is.
        self.commit = self.commit.max(a.commit.min(end));
        if joined {
            // The new log ballot is saved after the orders it describes (writes keep their order).
            self.save_meta(now);
        } else if self.commit > self.commit_saved && now >= self.commit_saved_at + SAVE_COMMIT_EVERY
        {
            self.save_meta(now);
        }
        let after = self.last_write();
        self.defer(
            after,
            Deferred::Ack {
                ballot: a.ballot,
                end,
            },
        );
    }

    fn on_append_ok(&mut self, now: Ms, from: ReplicaId, b: Ballot, r: AppendReply) {
        let Some(l) = &mut self.leading else {
            return;
        };
        if l.ballot != b {
            return;
        }
        let len = self.log.len() as u64;
        let p = l.followers.get_mut(&from).expect("a follower");
        p.last_ok = Some(now);
        if r.matched {
            p.matched = r.len.min(len);
            p.joined = r.log_ballot == b;
            p.next = p.next.max(p.matched);
            let more = p.next < len;
            self.maybe_advance_commit(now);
            if more {
                self.send_append(now, from);
            }
        } else {
            // Its log differs at or before `next`: go back to where it surely agrees.
            p.matched = p.matched.min(r.len);
            p.next = r.len.min(r.commit.max(p.matched)).min(p.next);
            self.send_append(now, from);
        }
    }

    /// Leader: moves the commit point to what a quorum holds on disk, and answers what waited for it.
    fn maybe_advance_commit(&mut self, now: Ms) {
        let Some(l) = &self.leading else {
            return;
        };
        let own = if self.persisted >= l.meta_write {
            self.durable
        } else {
            0
        };
        let mut lengths = vec![own];
        lengths.extend(l.followers.values().filter(|p| p.joined).map(|p| p.matched));
        match quorum_point(lengths, self.quorum) {
            Some(c) if c > self.commit => self.commit = c.min(self.len()),
            _ => return,
        }
        let commit = self.commit;
        let later = self.commit_waiters.split_off(&commit);
        for (n, waiters) in std::mem::replace(&mut self.commit_waiters, later) {
            for (client, _, what) in waiters {
                let answer = match what {
                    Waiter::Purchase => created(n),
                    Waiter::Query => {
                        let o = &self.log[n as usize];
                        Answer::Order(OrderInfo {
                            number: o.number,
                            name: o.name.clone(),
                            quantity: o.quantity,
                        })
                    }
                };
                self.reply(client, Ok(answer));
            }
        }
        // A new commit point goes out at once, so a follower that must answer queries after this
        // leader dies knows every order the leader confirmed.
        for f in self.peers.clone() {
            self.send_append(now, f);
        }
    }

    // ----- copying a peer's log -----

    fn start_copy(&mut self, now: Ms, source: ReplicaId) {
        self.copies += 1;
        let pos = self.commit;
        self.copy = Some(Copy {
            id: self.copies,
            source,
            source_ballot: None,
            pos,
            asked_at: now,
            progress_at: now,
            added: 0,
        });
        self.send(
            source,
            ReplicaMsg::LogRequest {
                copy: self.copies,
                from: pos,
                limit: BATCH,
            },
        );
    }

    fn on_chunk(
        &mut self,
        now: Ms,
        from: ReplicaId,
        id: u64,
        pos: u64,
        prev_epoch: Option<Epoch>,
        chunk: LogChunk,
    ) {
        if !self
            .copy
            .as_ref()
            .is_some_and(|c| c.id == id && c.source == from && c.pos == pos)
        {
            // Of a copy given up, or a duplicate of one already merged.
            self.out.push(Effect::Log(format!(
                "ignored a log chunk from replica {from} that does not continue a copy"
            )));
            return;
        }
        let c = self.copy.as_ref().expect("copy");
        let stitched = c.source_ballot.is_none_or(|b| b == chunk.log_ballot)
            && (pos == 0 || self.epoch_at(pos) == prev_epoch)
            && pos <= self.len();
        if !stitched {
            // The source's log changed under the copy: start again from what is surely shared.
            self.out.push(Effect::Log(format!(
                "the log of replica {from} changed during a copy; copying again"
            )));
            self.start_copy(now, from);
            return;
        }
        let written = self.merge(pos, &chunk.entries);
        self.tally.copied += written;
        let c = self.copy.as_mut().expect("copy");
        c.source_ballot = Some(chunk.log_ballot);
        c.pos = pos + chunk.entries.len() as u64;
        c.added += written;
        c.asked_at = now;
        c.progress_at = now;
        if c.pos < chunk.len && !chunk.entries.is_empty() {
            let next = ReplicaMsg::LogRequest {
                copy: c.id,
                from: c.pos,
                limit: BATCH,
            };
            self.send(from, next);
            return;
        }
        let c = self.copy.take().expect("copy");
        self.finish_copy(now, &c, chunk.len, chunk.log_ballot);
    }

    /// After copying a more up-to-date replica's log: drops what this log has beyond it and takes its
    /// log ballot (and a promise at least as new, so no older leader's append is accepted after).
    fn finish_copy(&mut self, now: Ms, c: &Copy, source_len: u64, source_ballot: Ballot) {
        self.truncate(source_len);
        self.log_ballot = self.log_ballot.max(source_ballot);
        // The source may have followed a newer leader than this replica promised: promise it too,
        // or an append of a ballot in between would still be accepted. A candidate then gives up.
        let promised = self.promised.max(self.log_ballot);
        if promised != self.promised {
            self.promised = promised;
            if self.candidacy.is_some() {
                self.step_down(now);
            }
        }
        self.save_meta(now);
        if self.candidacy.is_some() {
            self.out.push(Effect::Log(format!(
                "copied {} orders from replica {}",
                c.added, c.source
            )));
            self.become_leader(now);
        } else if self.recovery.is_some() {
            self.ready(c.added, Some(c.source));
        }
    }

    // ----- starting -----

    fn maybe_finish_recovery(&mut self, now: Ms) {
        let Some(r) = &self.recovery else {
            return;
        };
        if self.copy.is_some() {
            return;
        }
        // A majority of the replicas is heard (whatever --quorum says), so that the most up-to-date
        // log among them holds every committed order.
        let replicas = self.peers.len() + 1;
        let majority = replicas / 2 + 1;
        let quorum_heard = r.answers.len() + 1 >= majority.max(self.quorum);
        if !quorum_heard && now < r.since + RECOVERY_WINDOW {
            return;
        }
        if let Some(best) = better_source(&self.status(), r.answers.values()) {
            let source = best.id;
            self.start_copy(now, source);
            return;
        }
        if quorum_heard {
            self.ready(0, None);
        } else {
            let reached = r.answers.len();
            self.out.push(Effect::Log(format!(
                "ready with {} orders; reached {reached} peers, the leader will sync the rest",
                self.len()
            )));
            self.recovery = None;
            self.role = Role::Follower;
        }
    }

    fn ready(&mut self, added: u64, source: Option<ReplicaId>) {
        self.recovery = None;
        self.role = Role::Follower;
        let from = source.map_or(String::new(), |s| format!(" from replica {s}"));
        self.out.push(Effect::Log(format!(
            "ready: resynced {added} orders{from}, log has {} orders",
            self.len()
        )));
    }

    // ----- time -----

    /// Time passed: every timer that is due fires, in this order.
    fn tick(&mut self, now: Ms) {
        self.expire(now);
        self.maybe_ping(now);
        self.maybe_abandon_copy(now);
        self.tick_catch_up(now);
        self.tick_candidacy(now);
        self.tick_leading(now);
        self.retry_takes(now);
        if self.commit > self.commit_saved && now >= self.commit_saved_at + SAVE_COMMIT_EVERY {
            self.save_meta(now);
        }
    }

    /// Gives up a copy that made no progress for [`COPY_PATIENCE`]: what the peers said is asked
    /// again, so that the best log among those that answer now is copied instead.
    fn maybe_abandon_copy(&mut self, now: Ms) {
        let Some(c) = self.copy.take_if(|c| now >= c.progress_at + COPY_PATIENCE) else {
            return;
        };
        self.out.push(Effect::Log(format!(
            "the copy from replica {} made no progress; asking the replicas again",
            c.source
        )));
        if let Some(k) = &mut self.candidacy {
            k.answers.clear();
            k.asked_at = now.saturating_sub(RETRY);
        }
        if let Some(r) = &mut self.recovery {
            r.answers.clear();
            r.asked_at = now.saturating_sub(RETRY);
        }
    }

    /// Asks again for the next chunk of a copy, or, recovering without one, probes the peers that
    /// have not answered and sees whether recovery can finish.
    fn tick_catch_up(&mut self, now: Ms) {
        if let Some(c) = &mut self.copy {
            if now >= c.asked_at + RETRY {
                c.asked_at = now;
                let msg = ReplicaMsg::LogRequest {
                    copy: c.id,
                    from: c.pos,
                    limit: BATCH,
                };
                let to = c.source;
                self.send(to, msg);
            }
        } else if let Some(r) = &mut self.recovery {
            if now >= r.asked_at + RETRY {
                r.asked_at = now;
                for p in unanswered(&self.peers, &r.answers) {
                    self.send(p, ReplicaMsg::Probe);
                }
            }
            self.maybe_finish_recovery(now);
        }
    }

    /// A candidate asks the peers that have not answered its prepare again (not while it copies),
    /// and sees whether it can take over.
    fn tick_candidacy(&mut self, now: Ms) {
        if let Some(c) = &mut self.candidacy {
            if self.copy.is_none() && now >= c.asked_at + RETRY {
                c.asked_at = now;
                let b = c.ballot;
                for p in unanswered(&self.peers, &c.answers) {
                    self.send(p, ReplicaMsg::Prepare { ballot: b });
                }
            }
            self.maybe_take_over(now);
        }
    }

    /// A leader's timers: heartbeats to followers that are due, the catalog listing when it is due,
    /// and the parked purchases once the grace is over.
    fn tick_leading(&mut self, now: Ms) {
        let Some(l) = &self.leading else {
            return;
        };
        let due: Vec<ReplicaId> = l
            .followers
            .iter()
            .filter(|(_, p)| p.last_sent.is_none_or(|t| now >= t + HEARTBEAT))
            .map(|(id, _)| *id)
            .collect();
        let list = l.list_at.is_some_and(|t| now >= t);
        let (after, epoch) = (l.reconciled, l.ballot.epoch);
        // A heartbeat carries the commit point and checks the follower's log at `next`: a follower
        // that lost an append answers a mismatch, and the leader sends from where it agrees.
        for f in due {
            self.send_append(now, f);
        }
        if list {
            self.leading.as_mut().expect("leading").list_at = None;
            self.out
                .push(Effect::Catalog(CatalogCall::List { after, epoch }));
        }
        // Parked purchases of a new leader are admitted (or refused) once the grace is over.
        let grace_over = now >= self.leading.as_ref().expect("leading").since + TAKEOVER_GRACE;
        if grace_over || self.quorum_alive(now) {
            self.serve_parked(now);
        }
    }

    /// Takes whose outcome was unknown are asked again once their retry time has come.
    fn retry_takes(&mut self, now: Ms) {
        // Takes whose outcome was unknown are asked again, by a leader only: one that stepped down
        // forgets them (the new leader completes what reached the catalog).
        if self.leading.is_none() {
            self.attempts.retain(|_, a| {
                !matches!(
                    a.stage,
                    Stage::Taking {
                        retry_at: Some(_),
                        ..
                    }
                )
            });
        }
        let retry: Vec<TakeRequest> = self
            .attempts
            .iter_mut()
            .filter_map(|(id, a)| match a.stage {
                Stage::Taking {
                    epoch,
                    retry_at: Some(t),
                } if now >= t => {
                    a.stage = Stage::Taking {
                        epoch,
                        retry_at: None,
                    };
                    Some(TakeRequest {
                        request_id: id.clone(),
                        name: a.name.clone(),
                        quantity: a.quantity,
                        epoch,
                    })
                }
                _ => None,
            })
            .collect();
        for t in retry {
            self.out.push(Effect::Catalog(CatalogCall::Take(t)));
        }
    }

    /// Every [`HEARTBEAT`]: pings each peer that no append goes to (a leader's appends are its
    /// heartbeat), and the catalog unless a ping to it is still out, so that the status can say
    /// whether this replica reaches a quorum and the catalog.
    fn maybe_ping(&mut self, now: Ms) {
        if self.pinged_at.is_some_and(|t| now < t + HEARTBEAT) {
            return;
        }
        self.pinged_at = Some(now);
        if self.leading.is_none() {
            self.broadcast(ReplicaMsg::Ping);
        }
        if !self.catalog_ping_out {
            self.catalog_ping_out = true;
            self.out.push(Effect::Catalog(CatalogCall::Ping));
        }
    }

    /// Answers every request whose deadline has passed.
    fn expire(&mut self, now: Ms) {
        for waiters in self.commit_waiters.values_mut() {
            let (gone, keep): (Vec<_>, Vec<_>) = waiters.drain(..).partition(|(_, d, _)| now >= *d);
            *waiters = keep;
            for (client, _, what) in gone {
                let e = match what {
                    Waiter::Purchase => Error::Indeterminate(
                        "the order is stored but not yet on a quorum; it completes when a replica returns".into(),
                    ),
                    Waiter::Query => Error::Unavailable("the order is not confirmed yet".into()),
                };
                self.out.push(Effect::Reply {
                    client,
                    result: Err(e),
                });
            }
        }
        self.commit_waiters.retain(|_, w| !w.is_empty());
        let (gone, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|(_, d, _)| now >= *d);
        self.parked = keep;
        for (client, _, request) in gone {
            let e = match request {
                Request::Purchase(p) if !p.fresh => Error::Indeterminate(
                    "the leader is still taking over; retry with the same request id".into(),
                ),
                _ => Error::Unavailable(
                    "the leader is still taking over; nothing was changed".into(),
                ),
            };
            self.out.push(Effect::Reply {
                client,
                result: Err(e),
            });
        }
        let mut finished = Vec::new();
        for (id, a) in self.attempts.iter_mut() {
            let (gone, keep): (Vec<_>, Vec<_>) = a.waiting.drain(..).partition(|(_, d)| now >= *d);
            a.waiting = keep;
            for (client, _) in gone {
                self.out.push(Effect::Reply {
                    client,
                    result: Err(Error::Indeterminate(
                        "the catalog did not confirm the take in time; the purchase completes or is rolled forward".into(),
                    )),
                });
            }
            // Nobody waits for an unknown take: the reconciler rolls it forward if it happened.
            if a.waiting.is_empty()
                && matches!(
                    a.stage,
                    Stage::Taking {
                        retry_at: Some(_),
                        ..
                    }
                )
            {
                finished.push(id.clone());
            }
        }
        for id in finished {
            self.attempts.remove(&id);
        }
    }
}

/// The peers that have not answered yet, to ask again.
fn unanswered(peers: &[ReplicaId], answers: &BTreeMap<ReplicaId, ReplicaStatus>) -> Vec<ReplicaId> {
    peers
        .iter()
        .filter(|p| !answers.contains_key(p))
        .copied()
        .collect()
}

fn created(n: OrderNumber) -> Answer {
    Answer::Created(OrderCreated { order_number: n })
}

fn taken_elsewhere() -> Error {
    Error::Indeterminate(
        "an earlier attempt took the stock; the order completes once a quorum is back".into(),
    )
}

fn conflicting_id(request_id: &str) -> Error {
    Error::Conflict(format!(
        "request id {request_id} was used for another purchase"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn b(epoch: u64, leader: ReplicaId) -> Ballot {
        Ballot { epoch, leader }
    }

    fn o(n: u64, epoch: u64, rid: &str) -> Order {
        Order {
            number: n,
            name: "Tux".into(),
            quantity: 1,
            request_id: rid.into(),
            epoch,
        }
    }

    fn purchase(rid: &str, fresh: bool) -> Request {
        Request::Purchase(Purchase {
            request_id: rid.into(),
            name: "Tux".into(),
            quantity: 1,
            fresh,
        })
    }

    /// Three replicas whose messages are delivered at once and whose writes are on disk at once,
    /// unless held; catalog calls wait for the test to answer them.
    struct Cluster {
        nodes: BTreeMap<ReplicaId, Replica>,
        queue: VecDeque<(ReplicaId, Input)>,
        replies: BTreeMap<ClientId, Result<Answer>>,
        calls: Vec<(ReplicaId, CatalogCall)>,
        logs: Vec<String>,
        sent: Vec<(ReplicaId, ReplicaId, ReplicaMsg)>,
        /// Replicas whose writes are held (not reported persisted).
        slow_disk: BTreeSet<ReplicaId>,
        held: Vec<(ReplicaId, WriteId)>,
        /// Replicas that receive nothing.
        down: BTreeSet<ReplicaId>,
        now: Ms,
        next_client: ClientId,
    }

    impl Cluster {
        fn new(logs: [Vec<Order>; 3]) -> Cluster {
            let mut c = Cluster {
                nodes: BTreeMap::new(),
                queue: VecDeque::new(),
                replies: BTreeMap::new(),
                calls: Vec::new(),
                logs: Vec::new(),
                sent: Vec::new(),
                slow_disk: BTreeSet::new(),
                held: Vec::new(),
                down: BTreeSet::new(),
                now: 0,
                next_client: 0,
            };
            for (i, log) in logs.into_iter().enumerate() {
                let id = i as ReplicaId + 1;
                let peers = (1..=3).filter(|p| *p != id).collect();
                let (r, effects) = Replica::new(id, peers, 2, log, Meta::default(), 0);
                c.nodes.insert(id, r);
                c.carry_out(id, effects);
            }
            c.settle();
            c
        }

        fn carry_out(&mut self, id: ReplicaId, effects: Vec<Effect>) {
            for e in effects {
                match e {
                    Effect::Send { to, msg } => {
                        self.sent.push((id, to, msg.clone()));
                        if !self.down.contains(&to) {
                            self.queue.push_back((to, Input::Peer { from: id, msg }));
                        }
                    }
                    Effect::Write { id: w, .. } => {
                        if self.slow_disk.contains(&id) {
                            self.held.push((id, w));
                        } else {
                            self.queue.push_back((id, Input::Persisted(w)));
                        }
                    }
                    Effect::Catalog(call) => self.calls.push((id, call)),
                    Effect::Reply { client, result } => {
                        assert!(
                            self.replies.insert(client, result).is_none(),
                            "a request is answered once"
                        );
                    }
                    Effect::Log(l) => self.logs.push(format!("{id}: {l}")),
                }
            }
        }

        fn input(&mut self, id: ReplicaId, input: Input) {
            if self.down.contains(&id) {
                return;
            }
            let now = self.now;
            let effects = self.nodes.get_mut(&id).unwrap().step(now, input);
            self.carry_out(id, effects);
        }

        fn settle(&mut self) {
            let mut steps = 0;
            while let Some((id, input)) = self.queue.pop_front() {
                steps += 1;
                assert!(steps < 20_000, "messages never settle: a livelock");
                self.input(id, input);
            }
        }

        /// Lets time pass in ticks of 10 ms, delivering everything between them.
        fn pass(&mut self, ms: Ms) {
            let end = self.now + ms;
            while self.now < end {
                self.now += 10;
                for id in 1..=3 {
                    self.input(id, Input::Tick);
                }
                self.settle();
            }
        }

        fn ask(&mut self, id: ReplicaId, request: Request) -> ClientId {
            let client = self.next_client;
            self.next_client += 1;
            self.input(id, Input::Request { client, request });
            self.settle();
            client
        }

        fn answer(&self, client: ClientId) -> Option<&Result<Answer>> {
            self.replies.get(&client)
        }

        fn release_disk(&mut self, id: ReplicaId) {
            self.slow_disk.remove(&id);
            let held: Vec<WriteId> = self
                .held
                .iter()
                .filter(|(r, _)| *r == id)
                .map(|(_, w)| *w)
                .collect();
            self.held.retain(|(r, _)| *r != id);
            if let Some(w) = held.into_iter().max() {
                self.input(id, Input::Persisted(w));
                self.settle();
            }
        }

        fn elect(&mut self, id: ReplicaId, epoch: u64) -> ClientId {
            let mut last = 0;
            for r in 1..=3 {
                last = self.ask(r, Request::Notice(b(epoch, id)));
            }
            self.settle();
            last
        }

        /// The oldest catalog call that is not a listing of takes or a ping (those stay).
        fn take_call(&mut self) -> (ReplicaId, CatalogCall) {
            let i = self
                .calls
                .iter()
                .position(|(_, c)| !c.is_background())
                .expect("a catalog call was made");
            self.calls.remove(i)
        }

        /// The oldest listing of takes.
        fn list_call(&mut self) -> CatalogCall {
            let i = self
                .calls
                .iter()
                .position(|(_, c)| matches!(c, CatalogCall::List { .. }))
                .expect("a listing was asked");
            self.calls.remove(i).1
        }

        /// True when no call but listings and pings is waiting.
        fn no_calls(&self) -> bool {
            self.calls.iter().all(|(_, c)| c.is_background())
        }

        fn answer_take(&mut self, result: Result<TakeReply>) {
            let (id, call) = self.take_call();
            let CatalogCall::Take(take) = call else {
                panic!("a take, not {call:?}")
            };
            self.input(id, Input::Catalog(CatalogReply::Take { take, result }));
            self.settle();
        }

        fn node(&self, id: ReplicaId) -> &Replica {
            &self.nodes[&id]
        }

        fn ids(&self, id: ReplicaId) -> Vec<String> {
            self.node(id)
                .orders()
                .iter()
                .map(|o| o.request_id.clone())
                .collect()
        }
    }

    fn taken() -> Result<TakeReply> {
        Ok(TakeReply {
            seq: 1,
            repeated: false,
        })
    }

    fn created(n: u64) -> Result<Answer> {
        Ok(Answer::Created(OrderCreated { order_number: n }))
    }

    fn status_of(r: &Result<Answer>) -> u16 {
        match r {
            Ok(_) => 200,
            Err(e) => e.status(),
        }
    }

    fn led() -> Cluster {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.elect(3, 1);
        c.pass(20);
        c
    }

    #[test]
    fn the_leader_commits_what_a_quorum_holds_on_disk() {
        assert_eq!(quorum_point(vec![5, 3, 9], 2), Some(5));
        assert_eq!(quorum_point(vec![5, 3, 9], 3), Some(3));
        assert_eq!(quorum_point(vec![5, 3, 9], 1), Some(9));
        assert_eq!(quorum_point(vec![5], 2), None);
        assert_eq!(quorum_point(vec![5], 0), Some(5));
    }

    #[test]
    fn the_best_source_has_the_newest_log_ballot_then_the_longest_log() {
        let s = |id, e, len| ReplicaStatus {
            id,
            role: Role::Follower,
            ready: true,
            promised: b(9, 1),
            log_ballot: b(e, 1),
            len,
            commit: 0,
            reaches_quorum: true,
            reaches_catalog: true,
        };
        let all = [s(1, 2, 10), s(2, 3, 4), s(3, 3, 5)];
        let own = s(9, 1, 100);
        assert_eq!(better_source(&own, &all).unwrap().id, 3);
        assert_eq!(better_source(&own, &all[..1]).unwrap().id, 1);
        assert!(better_source(&own, &[]).is_none());
        // Only a log more up to date than its own is worth a copy.
        assert!(better_source(&s(9, 3, 5), &all).is_none(), "equal");
        assert_eq!(better_source(&s(9, 3, 4), &all).unwrap().id, 3);
        assert!(
            better_source(&s(9, 4, 0), &all).is_none(),
            "a newer log ballot wins over length"
        );
    }

    #[test]
    fn starting_replicas_ask_their_peers_then_follow() {
        let c = Cluster::new([vec![o(0, 1, "a")], vec![], vec![]]);
        for id in 1..=3 {
            assert_eq!(c.node(id).role(), Role::Follower, "replica {id}");
        }
        // The empty ones copied replica 1's log before serving.
        assert_eq!(c.ids(2), ["a"]);
        assert_eq!(c.ids(3), ["a"]);
        assert!(c
            .logs
            .iter()
            .any(|l| l == "2: ready: resynced 1 orders from replica 1, log has 1 orders"));
        assert_eq!(c.node(2).tally().copied, 1);
        assert_eq!(c.node(1).tally(), Tally::default());
    }

    #[test]
    fn a_lone_starting_replica_waits_then_serves_with_what_it_has() {
        let (mut r, effects) =
            Replica::new(1, vec![2, 3], 2, vec![o(0, 1, "a")], Meta::default(), 0);
        let probes = effects
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Effect::Send {
                        msg: ReplicaMsg::Probe,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(probes, 2);
        assert_eq!(r.role(), Role::Recovering);
        assert!(!r.status().ready);
        r.step(RECOVERY_WINDOW - 1, Input::Tick);
        assert_eq!(r.role(), Role::Recovering);
        let e = r.step(RECOVERY_WINDOW, Input::Tick);
        assert_eq!(r.role(), Role::Follower);
        assert!(e.iter().any(
            |e| matches!(e, Effect::Log(l) if l.starts_with("ready with 1 orders; reached 0 peers"))
        ));
    }

    #[test]
    fn a_starting_replica_waits_for_a_majority_whatever_the_quorum() {
        let ok = |id, len| {
            ReplicaMsg::ProbeOk(ReplicaStatus {
                id,
                role: Role::Follower,
                ready: true,
                promised: Ballot::default(),
                log_ballot: Ballot::default(),
                len,
                commit: 0,
                reaches_quorum: true,
                reaches_catalog: true,
            })
        };
        // Three replicas, --quorum 1: still two of three (itself and one peer).
        let mut r = Replica::new(1, vec![2, 3], 1, vec![], Meta::default(), 0).0;
        assert_eq!(r.role(), Role::Recovering);
        r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ok(2, 0),
            },
        );
        assert_eq!(r.role(), Role::Follower);
        // Four replicas: three of four.
        let mut r = Replica::new(1, vec![2, 3, 4], 1, vec![], Meta::default(), 0).0;
        r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ok(2, 0),
            },
        );
        assert_eq!(r.role(), Role::Recovering);
        r.step(
            1,
            Input::Peer {
                from: 3,
                msg: ok(3, 0),
            },
        );
        assert_eq!(r.role(), Role::Follower);
        // Five replicas: three of five.
        let mut r = Replica::new(1, vec![2, 3, 4, 5], 1, vec![], Meta::default(), 0).0;
        r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ok(2, 0),
            },
        );
        assert_eq!(r.role(), Role::Recovering);
        r.step(
            1,
            Input::Peer {
                from: 3,
                msg: ok(3, 0),
            },
        );
        assert_eq!(r.role(), Role::Follower);
        // Equal logs: nothing to copy.
        let log = vec![o(0, 1, "a")];
        let mut r = Replica::new(1, vec![2, 3], 2, log, Meta::default(), 0).0;
        let e = r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ok(2, 1),
            },
        );
        assert!(!e.iter().any(|e| matches!(
            e,
            Effect::Send {
                msg: ReplicaMsg::LogRequest { .. },
                ..
            }
        )));
        assert_eq!(r.role(), Role::Follower);
        // A longer one is copied.
        let mut r = Replica::new(1, vec![2, 3], 2, vec![], Meta::default(), 0).0;
        let e = r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ok(2, 1),
            },
        );
        assert!(e.iter().any(|e| matches!(
            e,
            Effect::Send {
                to: 2,
                msg: ReplicaMsg::LogRequest { from: 0, .. }
            }
        )));
        assert_eq!(r.role(), Role::Recovering, "serves once the copy is done");
    }

    #[test]
    fn a_notice_makes_the_named_replica_lead_once_a_quorum_promised() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        let answer = c.elect(3, 1);
        assert_eq!(c.node(3).role(), Role::Leader);
        assert_eq!(c.node(3).leads(), Some(b(1, 3)));
        for id in [1, 2] {
            assert_eq!(c.node(id).leads(), None);
            assert_eq!(c.node(id).status().promised, b(1, 3));
        }
        let Some(Ok(Answer::Status(s))) = c.answer(answer) else {
            panic!("{:?}", c.answer(answer))
        };
        assert_eq!((s.id, s.promised), (3, b(1, 3)));
        assert_eq!(c.node(3).meta().log_ballot, b(1, 3));
        assert!(c
            .logs
            .contains(&"3: leader for epoch 1 with 0 orders".to_string()));
    }

    #[test]
    fn stale_and_same_epoch_rival_choices_are_refused() {
        let mut c = led();
        let a = c.ask(1, Request::Notice(b(0, 2)));
        assert_eq!(c.answer(a), Some(&Err(Error::Stale(b(1, 3)))));
        let a = c.ask(1, Request::Notice(b(1, 2)));
        assert_eq!(
            c.answer(a),
            Some(&Err(Error::Stale(b(1, 3)))),
            "one leader per epoch"
        );
        let a = c.ask(1, Request::Notice(b(1, 3)));
        assert!(
            matches!(c.answer(a), Some(Ok(Answer::Status(_)))),
            "the same choice again is fine"
        );
        // A stale leader's append is refused with the promise.
        c.sent.clear();
        c.input(
            1,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(0, 2),
                    start: 0,
                    prev_epoch: None,
                    entries: vec![o(0, 0, "x")],
                    commit: 0,
                    view_len: 0,
                }),
            },
        );
        assert!(c.node(1).orders().is_empty());
        assert!(c.sent.iter().any(|(f, t, m)| (*f, *t) == (1, 2)
            && *m
                == ReplicaMsg::Refuse {
                    ballot: b(0, 2),
                    promised: b(1, 3)
                }));
    }

    #[test]
    fn a_notice_is_answered_only_once_its_promise_is_on_disk() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.slow_disk.insert(1);
        let a = c.ask(1, Request::Notice(b(1, 3)));
        assert_eq!(c.answer(a), None);
        c.release_disk(1);
        assert!(c.answer(a).is_some());
    }

    #[test]
    fn a_purchase_takes_stock_then_is_answered_once_a_quorum_has_it() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        let (id, call) = c.take_call();
        assert_eq!(id, 3);
        assert_eq!(
            call,
            CatalogCall::Take(TakeRequest {
                request_id: "r1".into(),
                name: "Tux".into(),
                quantity: 1,
                epoch: 1
            })
        );
        assert_eq!(c.answer(p), None, "not before the take");
        c.input(
            3,
            Input::Catalog(CatalogReply::Take {
                take: TakeRequest {
                    request_id: "r1".into(),
                    name: "Tux".into(),
                    quantity: 1,
                    epoch: 1,
                },
                result: taken(),
            }),
        );
        c.settle();
        assert_eq!(c.answer(p), Some(&created(0)));
        for id in 1..=3 {
            assert_eq!(c.ids(id), ["r1"]);
        }
        assert_eq!(c.node(3).commit(), 1);
        assert_eq!(c.node(3).find("r1"), Some(0));
        assert_eq!(c.node(3).find("r2"), None);
        // A repeat of the id gets the same number, with no second take.
        let again = c.ask(3, purchase("r1", false));
        assert_eq!(c.answer(again), Some(&created(0)));
        assert!(c.no_calls());
        // The same id for another purchase is refused.
        let other = c.ask(
            3,
            Request::Purchase(Purchase {
                request_id: "r1".into(),
                name: "Whale".into(),
                quantity: 1,
                fresh: false,
            }),
        );
        assert_eq!(status_of(c.answer(other).unwrap()), 409);
    }

    #[test]
    fn an_order_waits_for_a_follower_whose_disk_is_slow_only_if_it_is_needed() {
        let mut c = led();
        c.slow_disk.insert(1);
        c.slow_disk.insert(2);
        c.slow_disk.insert(3);
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(taken());
        assert_eq!(c.answer(p), None, "no disk holds it yet");
        c.release_disk(3);
        assert_eq!(c.answer(p), None, "the leader alone is not a quorum");
        assert_eq!(c.node(3).durable(), 1);
        c.release_disk(1);
        assert_eq!(c.answer(p), Some(&created(0)));
    }

    #[test]
    fn a_follower_acknowledges_only_what_is_on_its_disk() {
        let mut c = led();
        c.slow_disk.insert(1);
        c.sent.clear();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(taken());
        let acks_from_1 = |c: &Cluster| {
            c.sent
                .iter()
                .filter(|(f, _, m)| {
                    *f == 1 && matches!(m, ReplicaMsg::AppendOk { reply, .. } if reply.len == 1)
                })
                .count()
        };
        // Replica 2 acknowledged, so the order is committed; replica 1 holds it unsynced.
        assert_eq!(c.answer(p), Some(&created(0)));
        assert_eq!(c.ids(1), ["r1"]);
        assert_eq!(acks_from_1(&c), 0);
        // The leader sends it again (a heartbeat): still no acknowledgement before the sync.
        c.pass(150);
        assert_eq!(acks_from_1(&c), 0);
        c.release_disk(1);
        assert!(acks_from_1(&c) >= 1);
    }

    #[test]
    fn a_refused_take_is_passed_on_and_makes_no_order() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(Err(Error::Conflict("not enough stock".into())));
        assert_eq!(
            c.answer(p),
            Some(&Err(Error::Conflict("not enough stock".into())))
        );
        assert!(c.node(3).orders().is_empty());
        let p = c.ask(3, purchase("r2", true));
        c.answer_take(Err(Error::NotFound("no such toy".into())));
        assert_eq!(status_of(c.answer(p).unwrap()), 404);
    }

    #[test]
    fn a_take_turned_away_as_stale_is_a_504_and_not_asked_again() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(Err(Error::Stale(b(9, 0))));
        // Not a refusal: the newer leader may still complete it, so the outcome is unknown.
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
        assert!(c.node(3).orders().is_empty());
        c.pass(10 * TAKE_RETRY);
        assert!(c.no_calls(), "the take is not asked again");
    }

    #[test]
    fn an_unreachable_catalog_is_a_503_only_for_a_fresh_purchase() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(Err(Error::Unreachable("refused".into())));
        assert_eq!(status_of(c.answer(p).unwrap()), 503);
        // Not fresh: the take may have happened elsewhere; it is asked again until the deadline.
        let p = c.ask(3, purchase("r2", false));
        c.answer_take(Err(Error::Unreachable("refused".into())));
        assert_eq!(c.answer(p), None);
        c.pass(TAKE_RETRY + 10);
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
    }

    #[test]
    fn a_take_of_unknown_outcome_is_asked_again_and_ends_as_504_at_the_deadline() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(Err(Error::Transport("timeout".into())));
        assert!(c.no_calls());
        c.pass(TAKE_RETRY - 10);
        assert!(c.no_calls(), "not before the retry time");
        c.pass(20);
        c.answer_take(Err(Error::Transport("timeout".into())));
        // A late answer to an earlier call is not taken for the current one.
        c.input(
            3,
            Input::Catalog(CatalogReply::Take {
                take: TakeRequest {
                    request_id: "r1".into(),
                    name: "Tux".into(),
                    quantity: 1,
                    epoch: 1,
                },
                result: taken(),
            }),
        );
        assert!(c.node(3).orders().is_empty());
        c.pass(REQUEST_DEADLINE);
        let Some(Err(Error::Indeterminate(m))) = c.answer(p) else {
            panic!("{:?}", c.answer(p))
        };
        assert!(m.contains("completes or is rolled forward"), "{m}");
    }

    #[test]
    fn without_a_quorum_a_purchase_that_may_have_been_taken_asks_the_catalog_to_refuse_it() {
        let mut c = led();
        c.pass(TAKEOVER_GRACE);
        c.down.insert(1);
        c.down.insert(2);
        c.input(3, Input::Unreachable(1));
        c.input(3, Input::Unreachable(2));
        // Fresh: refused at once, nothing asked.
        let p = c.ask(3, purchase("r1", true));
        assert_eq!(status_of(c.answer(p).unwrap()), 503);
        assert!(c.no_calls());
        // Not fresh: the catalog refuses the id for good first.
        let p = c.ask(3, purchase("r2", false));
        let (_, call) = c.take_call();
        let CatalogCall::Cancel(cancel) = call else {
            panic!("{call:?}")
        };
        assert_eq!(cancel.epoch, 1);
        let again = c.ask(3, purchase("r2", false));
        assert!(c.no_calls(), "one cancel for both");
        c.input(
            3,
            Input::Catalog(CatalogReply::Cancel {
                cancel: cancel.clone(),
                result: Ok(CancelReply { taken: None }),
            }),
        );
        assert_eq!(status_of(c.answer(p).unwrap()), 503);
        assert_eq!(status_of(c.answer(again).unwrap()), 503);
        // An id the catalog had taken is a 504, and is remembered.
        let p = c.ask(3, purchase("r3", false));
        let (_, CatalogCall::Cancel(cancel)) = c.take_call() else {
            panic!()
        };
        c.input(
            3,
            Input::Catalog(CatalogReply::Cancel {
                cancel,
                result: Ok(CancelReply { taken: Some(7) }),
            }),
        );
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
        let p = c.ask(3, purchase("r3", false));
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
        assert!(c.no_calls());
        // A catalog that cannot be asked leaves the outcome unknown.
        let p = c.ask(3, purchase("r4", false));
        let (_, CatalogCall::Cancel(cancel)) = c.take_call() else {
            panic!()
        };
        c.input(
            3,
            Input::Catalog(CatalogReply::Cancel {
                cancel,
                result: Err(Error::Unreachable("down".into())),
            }),
        );
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
    }

    #[test]
    fn a_new_leader_gives_its_followers_a_moment_before_refusing() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.down.insert(1);
        c.down.insert(2);
        for r in 1..=3 {
            c.ask(r, Request::Notice(b(1, 3)));
        }
        assert_eq!(c.node(3).role(), Role::Candidate);
        // A candidate lets purchases wait while it is patient...
        let p = c.ask(3, purchase("r1", true));
        assert_eq!(c.answer(p), None);
        c.pass(CANDIDATE_PATIENCE);
        // ...then refuses them at once, and the ones that waited at their deadline.
        let q = c.ask(3, purchase("r2", true));
        assert_eq!(status_of(c.answer(q).unwrap()), 503);
        c.pass(REQUEST_DEADLINE);
        assert_eq!(status_of(c.answer(p).unwrap()), 503);
        let q = c.ask(3, purchase("r3", false));
        assert!(matches!(c.take_call().1, CatalogCall::Cancel(_)));
        let _ = q;
    }

    #[test]
    fn followers_that_stop_answering_stop_counting() {
        let mut c = led();
        c.pass(TAKEOVER_GRACE);
        c.down.insert(1);
        c.input(3, Input::Unreachable(1));
        let p = c.ask(3, purchase("r1", true));
        assert!(c.answer(p).is_none(), "replica 2 still answers");
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        c.down.insert(2);
        c.pass(SERVE_WINDOW);
        let p = c.ask(3, purchase("r2", true));
        assert_eq!(status_of(c.answer(p).unwrap()), 503);
    }

    #[test]
    fn order_queries_answer_committed_orders_and_wait_at_the_leader() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        let info = Ok(Answer::Order(OrderInfo {
            number: 0,
            name: "Tux".into(),
            quantity: 1,
        }));
        let q = c.ask(3, Request::Order(0));
        assert_eq!(c.answer(q), Some(&info));
        let q = c.ask(1, Request::Order(0));
        assert_eq!(
            c.answer(q),
            Some(&info),
            "a follower knows the commit point"
        );
        let q = c.ask(1, Request::Order(1));
        assert_eq!(status_of(c.answer(q).unwrap()), 404);
        // An order the leader holds but no quorum confirmed yet: the leader waits, a follower
        // that holds it cannot tell.
        c.slow_disk.insert(1);
        c.slow_disk.insert(2);
        let p = c.ask(3, purchase("r2", true));
        c.answer_take(taken());
        let q = c.ask(3, Request::Order(1));
        let f = c.ask(1, Request::Order(1));
        assert_eq!(c.answer(q), None);
        assert_eq!(status_of(c.answer(f).unwrap()), 503);
        c.release_disk(2);
        assert_eq!(status_of(c.answer(q).unwrap()), 200);
        assert_eq!(c.answer(p), Some(&created(1)));
        // And at its deadline a waiting query is a 503.
        c.slow_disk.insert(2);
        let p = c.ask(3, purchase("r3", true));
        c.answer_take(taken());
        let q = c.ask(3, Request::Order(2));
        c.pass(REQUEST_DEADLINE);
        assert_eq!(status_of(c.answer(q).unwrap()), 503);
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
    }

    #[test]
    fn a_candidate_lets_order_queries_wait_until_it_leads() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.down.insert(1);
        c.down.insert(2);
        for r in 1..=3 {
            c.ask(r, Request::Notice(b(1, 3)));
        }
        assert_eq!(c.node(3).role(), Role::Candidate);
        let q = c.ask(3, Request::Order(0));
        let p = c.ask(3, purchase("r1", true));
        assert_eq!(c.answer(q), None);
        c.down.remove(&2);
        c.pass(RETRY + 20);
        assert_eq!(c.node(3).role(), Role::Leader);
        assert_eq!(
            status_of(c.answer(q).unwrap()),
            404,
            "no such order, once it leads"
        );
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        // A leader answers at once for an order it does not hold.
        let q = c.ask(3, Request::Order(1));
        assert_eq!(status_of(c.answer(q).unwrap()), 404);
        // What waits on a candidate that is replaced is told who leads.
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.down.insert(1);
        c.down.insert(2);
        c.ask(3, Request::Notice(b(1, 3)));
        let q = c.ask(3, Request::Order(0));
        let p = c.ask(3, purchase("r2", false));
        c.ask(3, Request::Notice(b(2, 2)));
        assert_eq!(c.answer(q), Some(&Err(Error::NotLeader(b(2, 2)))));
        assert_eq!(c.answer(p), Some(&Err(Error::NotLeader(b(2, 2)))));
        assert_eq!(c.node(3).role(), Role::Follower);
    }

    #[test]
    fn a_request_id_used_for_another_quantity_is_refused() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        let other = c.ask(
            3,
            Request::Purchase(Purchase {
                request_id: "r1".into(),
                name: "Tux".into(),
                quantity: 2,
                fresh: false,
            }),
        );
        assert_eq!(status_of(c.answer(other).unwrap()), 409);
        // ...also while the first is under way.
        let p = c.ask(3, purchase("r2", true));
        let other = c.ask(
            3,
            Request::Purchase(Purchase {
                request_id: "r2".into(),
                name: "Tux".into(),
                quantity: 3,
                fresh: true,
            }),
        );
        assert_eq!(status_of(c.answer(other).unwrap()), 409);
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(1)));
    }

    #[test]
    fn a_purchase_joined_by_a_retry_that_is_not_fresh_is_not_fresh() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        let q = c.ask(3, purchase("r1", false));
        c.answer_take(Err(Error::Unreachable("refused".into())));
        assert_eq!(c.answer(p), None, "it may have been taken before: no 503");
        assert_eq!(c.answer(q), None);
        c.pass(TAKE_RETRY + 10);
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        assert_eq!(c.answer(q), Some(&created(0)));
    }

    #[test]
    fn the_takeover_grace_is_counted_from_when_it_began_to_lead() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.pass(5_000);
        for r in 1..=3 {
            c.ask(r, Request::Notice(b(1, 3)));
        }
        assert_eq!(c.node(3).role(), Role::Leader);
        let since = c.now;
        c.down.insert(1);
        c.down.insert(2);
        c.input(3, Input::Unreachable(1));
        c.input(3, Input::Unreachable(2));
        let p = c.ask(3, purchase("r1", true));
        assert_eq!(c.answer(p), None, "waits within the grace");
        c.now = since + TAKEOVER_GRACE;
        let q = c.ask(3, purchase("r2", true));
        assert_eq!(status_of(c.answer(q).unwrap()), 503, "not at its end");
        c.input(3, Input::Tick);
        assert_eq!(status_of(c.answer(p).unwrap()), 503);
    }

    #[test]
    fn stray_answers_are_ignored() {
        let mut c = led();
        // A cancel answer for a purchase whose take is under way.
        let p = c.ask(3, purchase("r1", true));
        c.input(
            3,
            Input::Catalog(CatalogReply::Cancel {
                cancel: CancelRequest {
                    request_id: "r1".into(),
                    epoch: 1,
                },
                result: Ok(CancelReply { taken: None }),
            }),
        );
        assert_eq!(c.answer(p), None);
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        // A listing nobody asked for (none is under way).
        let asked = c.list_call();
        let CatalogCall::List { epoch, .. } = asked else {
            panic!()
        };
        c.input(
            3,
            Input::Catalog(CatalogReply::List {
                epoch,
                result: Ok(vec![]),
            }),
        );
        c.input(
            3,
            Input::Catalog(CatalogReply::List {
                epoch,
                result: Ok(vec![TakeRecord {
                    seq: 9,
                    request_id: "stray".into(),
                    name: "Tux".into(),
                    quantity: 1,
                    age_ms: 0,
                }]),
            }),
        );
        assert_eq!(c.ids(3), ["r1"]);
        // A prepare answer for another ballot, or naming another replica, counts for nothing.
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.down.insert(1);
        c.down.insert(2);
        c.ask(3, Request::Notice(b(1, 3)));
        let mut status = c.node(1).status();
        status.promised = b(1, 3);
        let ok = |ballot, status| Input::Peer {
            from: 1,
            msg: ReplicaMsg::PrepareOk { ballot, status },
        };
        c.input(3, ok(b(0, 3), status.clone()));
        let mut other = status.clone();
        other.id = 2;
        c.input(3, ok(b(1, 3), other));
        c.settle();
        assert_eq!(c.node(3).role(), Role::Candidate);
        c.input(3, ok(b(1, 3), status));
        c.settle();
        assert_eq!(c.node(3).role(), Role::Leader);
        // A refusal of a ballot it no longer has changes nothing.
        c.input(
            3,
            Input::Peer {
                from: 1,
                msg: ReplicaMsg::Refuse {
                    ballot: b(0, 3),
                    promised: b(5, 1),
                },
            },
        );
        assert_eq!(c.node(3).role(), Role::Leader);
        // Probe answers while not starting, naming another replica, or during a copy.
        let mut r = Replica::new(1, vec![2, 3], 2, vec![], Meta::default(), 0).0;
        let mut s2 = r.status();
        s2.id = 3;
        s2.len = 5;
        r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::ProbeOk(s2),
            },
        );
        assert_eq!(
            r.role(),
            Role::Recovering,
            "an answer naming another replica is not counted"
        );
        r.start_copy(1, 3);
        let mut s3 = r.status();
        s3.id = 2;
        r.step(
            2,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::ProbeOk(s3),
            },
        );
        assert!(
            r.recovery.as_ref().unwrap().answers.is_empty(),
            "not during a copy"
        );
    }

    #[test]
    fn a_refusal_steps_a_leader_down_only_when_it_is_newer() {
        let refuse = |promised| Input::Peer {
            from: 1,
            msg: ReplicaMsg::Refuse {
                ballot: b(1, 3),
                promised,
            },
        };
        let mut c = led();
        c.input(3, refuse(b(0, 1)));
        assert_eq!(c.node(3).role(), Role::Leader, "an older promise");
        c.input(3, refuse(b(1, 2)));
        assert_eq!(
            c.node(3).role(),
            Role::Follower,
            "another leader of the same epoch"
        );
    }

    #[test]
    fn a_candidate_leads_only_once_its_own_promise_is_on_disk() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.slow_disk.insert(3);
        for r in 1..=3 {
            c.ask(r, Request::Notice(b(1, 3)));
        }
        assert_eq!(
            c.node(3).role(),
            Role::Candidate,
            "its peers promised, its disk has not"
        );
        c.release_disk(3);
        assert_eq!(c.node(3).role(), Role::Leader);
    }

    #[test]
    fn a_candidate_copies_nothing_from_a_peer_with_the_same_log() {
        let log = vec![o(0, 1, "a")];
        let mut c = Cluster::new([log.clone(), log.clone(), log]);
        c.sent.clear();
        c.elect(3, 2);
        assert_eq!(c.node(3).role(), Role::Leader);
        assert!(!c
            .sent
            .iter()
            .any(|(_, _, m)| matches!(m, ReplicaMsg::LogRequest { .. })));
    }

    #[test]
    fn a_follower_far_behind_gets_batch_after_batch_without_waiting_for_heartbeats() {
        let n = BATCH as usize * 2 + 10;
        let log: Vec<Order> = (0..n).map(|i| o(i as u64, 1, &format!("r{i}"))).collect();
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        c.down.insert(1);
        c.down.insert(2);
        c.down.insert(3);
        // Replica 3 has the long log; 1 is empty and 2 away.
        let peers = vec![1, 2];
        let meta = Meta {
            promised: b(1, 3),
            log_ballot: b(1, 3),
            commit: n as u64,
        };
        let (r3, _) = Replica::new(3, peers, 2, log, meta, 0);
        c.nodes.insert(3, r3);
        c.nodes.get_mut(&3).unwrap().role = Role::Follower;
        c.nodes.get_mut(&3).unwrap().recovery = None;
        c.down.remove(&1);
        c.down.remove(&3);
        c.elect(3, 2);
        assert_eq!(c.node(3).role(), Role::Leader);
        assert_eq!(
            c.node(1).orders().len(),
            n,
            "all of it, with no tick in between"
        );
    }

    #[test]
    fn only_the_leader_takes_purchases_and_says_who_leads() {
        let mut c = led();
        let p = c.ask(1, purchase("r1", true));
        assert_eq!(c.answer(p), Some(&Err(Error::NotLeader(b(1, 3)))));
        let p = c.ask(
            3,
            Request::Purchase(Purchase {
                request_id: "bad id".into(),
                name: "Tux".into(),
                quantity: 1,
                fresh: true,
            }),
        );
        assert_eq!(status_of(c.answer(p).unwrap()), 400);
    }

    #[test]
    fn a_leader_refused_by_a_newer_promise_steps_down_and_answers_its_waiters() {
        let mut c = led();
        c.slow_disk.insert(1);
        c.slow_disk.insert(2);
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(taken());
        let q = c.ask(3, Request::Order(0));
        c.input(
            3,
            Input::Peer {
                from: 1,
                msg: ReplicaMsg::Refuse {
                    ballot: b(1, 3),
                    promised: b(2, 2),
                },
            },
        );
        assert_eq!(c.node(3).role(), Role::Follower);
        assert_eq!(c.node(3).leads(), None);
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
        assert_eq!(status_of(c.answer(q).unwrap()), 503);
        // A refusal that is not newer changes nothing.
        let mut c = led();
        c.input(
            3,
            Input::Peer {
                from: 1,
                msg: ReplicaMsg::Refuse {
                    ballot: b(1, 3),
                    promised: b(1, 3),
                },
            },
        );
        assert_eq!(c.node(3).role(), Role::Leader);
    }

    #[test]
    fn a_take_answered_after_leadership_changed_is_completed_by_the_next_leader() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.elect(2, 2);
        c.answer_take(taken());
        assert!(c.node(3).orders().is_empty());
        assert_eq!(status_of(c.answer(p).unwrap()), 504);
    }

    #[test]
    fn append_checks_the_previous_entry_and_reports_a_mismatch() {
        let mut c = Cluster::new([vec![o(0, 1, "a"), o(1, 1, "b")], vec![], vec![]]);
        c.down.insert(2);
        c.down.insert(3);
        c.sent.clear();
        let append = |start, prev, entries: Vec<Order>, view_len| Input::Peer {
            from: 3,
            msg: ReplicaMsg::Append(Append {
                ballot: b(2, 3),
                start,
                prev_epoch: prev,
                entries,
                commit: 0,
                view_len,
            }),
        };
        c.input(1, append(3, Some(2), vec![o(3, 2, "d")], 4));
        c.input(1, append(2, Some(2), vec![], 4));
        let replies: Vec<&AppendReply> = c
            .sent
            .iter()
            .filter_map(|(_, _, m)| match m {
                ReplicaMsg::AppendOk { reply, .. } => Some(reply),
                _ => None,
            })
            .collect();
        assert_eq!(replies.len(), 2);
        assert!(replies.iter().all(|r| !r.matched && r.len == 2));
        c.settle();
        c.sent.clear();
        c.input(1, append(2, Some(1), vec![o(2, 2, "c")], 3));
        c.settle();
        assert_eq!(c.ids(1), ["a", "b", "c"]);
        let ack = c.sent.iter().find_map(|(_, _, m)| match m {
            ReplicaMsg::AppendOk { reply, .. } => Some(reply.clone()),
            _ => None,
        });
        assert_eq!(
            ack,
            Some(AppendReply {
                matched: true,
                len: 3,
                commit: 0,
                log_ballot: b(2, 3)
            })
        );
        assert_eq!(c.node(1).meta().log_ballot, b(2, 3));
    }

    #[test]
    fn a_conflicting_tail_is_cut_and_its_request_ids_forgotten() {
        let mut c = Cluster::new([
            vec![o(0, 1, "a"), o(1, 1, "old1"), o(2, 1, "old2")],
            vec![],
            vec![],
        ]);
        c.down.insert(2);
        c.down.insert(3);
        c.input(
            1,
            Input::Peer {
                from: 3,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(2, 3),
                    start: 1,
                    prev_epoch: Some(1),
                    entries: vec![o(1, 2, "new1")],
                    commit: 0,
                    view_len: 2,
                }),
            },
        );
        assert_eq!(c.ids(1), ["a", "new1"]);
        assert_eq!(c.node(1).find("old1"), None);
        assert_eq!(c.node(1).find("old2"), None);
        assert_eq!(c.node(1).find("new1"), Some(1));
    }

    #[test]
    fn joining_a_leader_cuts_leftovers_of_older_leaders_beyond_its_starting_log() {
        let mut c = Cluster::new([
            vec![o(0, 1, "a"), o(1, 1, "b"), o(2, 1, "lost")],
            vec![],
            vec![],
        ]);
        c.down.insert(2);
        c.down.insert(3);
        c.input(
            1,
            Input::Peer {
                from: 3,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(2, 3),
                    start: 0,
                    prev_epoch: None,
                    entries: vec![o(0, 1, "a"), o(1, 1, "b")],
                    commit: 2,
                    view_len: 2,
                }),
            },
        );
        assert_eq!(c.ids(1), ["a", "b"]);
        assert_eq!(c.node(1).status().log_ballot, b(2, 3));
        assert_eq!(c.node(1).commit(), 2);
        // Later appends of the same leader, delivered out of order, are not cut.
        c.input(
            1,
            Input::Peer {
                from: 3,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(2, 3),
                    start: 2,
                    prev_epoch: Some(1),
                    entries: vec![o(2, 2, "c"), o(3, 2, "d")],
                    commit: 2,
                    view_len: 2,
                }),
            },
        );
        c.input(
            1,
            Input::Peer {
                from: 3,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(2, 3),
                    start: 0,
                    prev_epoch: None,
                    entries: vec![o(0, 1, "a")],
                    commit: 9,
                    view_len: 2,
                }),
            },
        );
        assert_eq!(c.ids(1), ["a", "b", "c", "d"]);
        assert_eq!(c.node(1).commit(), 2, "commit never past what matched");
    }

    #[test]
    fn a_leader_brings_a_follower_that_lost_appends_up_to_date() {
        let mut c = led();
        c.down.insert(1);
        for (i, rid) in ["r1", "r2"].into_iter().enumerate() {
            let p = c.ask(3, purchase(rid, true));
            c.answer_take(taken());
            assert_eq!(c.answer(p), Some(&created(i as u64)));
        }
        c.down.remove(&1);
        c.pass(HEARTBEAT + 20);
        assert_eq!(c.ids(1), ["r1", "r2"]);
        assert_eq!(c.node(1).commit(), 2);
    }

    #[test]
    fn a_candidate_copies_the_most_up_to_date_log_of_a_quorum() {
        let mut c = Cluster::new([vec![], vec![], vec![]]);
        // Replica 1 leads epoch 1 and commits a with 2 while 3 is away.
        c.down.insert(3);
        for r in 1..=2 {
            c.ask(r, Request::Notice(b(1, 1)));
        }
        c.pass(20);
        let p = c.ask(1, purchase("a", true));
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        // 3 returns, 1 goes; 3 is chosen and must copy a from 2.
        c.down.remove(&3);
        c.down.insert(1);
        c.ask(2, Request::Notice(b(2, 3)));
        c.ask(3, Request::Notice(b(2, 3)));
        c.pass(300);
        assert_eq!(c.node(3).role(), Role::Leader);
        assert_eq!(c.ids(3), ["a"]);
        assert!(c
            .logs
            .iter()
            .any(|l| l == "3: copied 1 orders from replica 2"));
        let p = c.ask(3, purchase("b", true));
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(1)));
    }

    #[test]
    fn a_copy_is_given_up_when_the_promise_changes_and_its_late_chunks_ignored() {
        let mut c = Cluster::new([vec![o(0, 1, "a")], vec![], vec![]]);
        // 2 is catching up from 1 ... (it already did at start); make a fresh copy by hand.
        let r = c.nodes.get_mut(&2).unwrap();
        r.start_copy(0, 1);
        let copy = r.copy.as_ref().unwrap().id;
        c.input(
            2,
            Input::Request {
                client: 99,
                request: Request::Notice(b(5, 1)),
            },
        );
        assert!(c.node(2).copy.is_none(), "a new promise drops the copy");
        c.logs.clear();
        c.input(
            2,
            Input::Peer {
                from: 1,
                msg: ReplicaMsg::LogChunk {
                    copy,
                    from: 0,
                    prev_epoch: None,
                    chunk: LogChunk {
                        entries: vec![o(0, 9, "stale")],
                        len: 1,
                        log_ballot: b(9, 1),
                    },
                },
            },
        );
        assert_eq!(c.ids(2), ["a"]);
        assert!(c.logs[0].contains("ignored a log chunk from replica 1 that does not continue"));
    }

    #[test]
    fn chunks_that_do_not_continue_the_copy_start_it_again() {
        let mut c = Cluster::new([vec![o(0, 1, "a"), o(1, 1, "b")], vec![], vec![]]);
        c.down.insert(1);
        let r = c.nodes.get_mut(&2).unwrap();
        r.start_copy(0, 1);
        r.copy.as_mut().unwrap().source_ballot = Some(b(1, 1));
        r.copy.as_mut().unwrap().pos = 1;
        let copy = r.copy.as_ref().unwrap().id;
        // The source's log ballot changed between two chunks.
        c.input(
            2,
            Input::Peer {
                from: 1,
                msg: ReplicaMsg::LogChunk {
                    copy,
                    from: 1,
                    prev_epoch: Some(1),
                    chunk: LogChunk {
                        entries: vec![o(1, 4, "x")],
                        len: 2,
                        log_ballot: b(4, 1),
                    },
                },
            },
        );
        assert_eq!(c.ids(2), ["a", "b"], "nothing merged");
        let again = c.node(2).copy.as_ref().unwrap();
        assert_ne!(again.id, copy);
        assert_eq!(again.pos, c.node(2).commit());
        // A chunk whose previous entry differs from the copy so far.
        let r = c.nodes.get_mut(&2).unwrap();
        r.copy.as_mut().unwrap().pos = 1;
        let copy = r.copy.as_ref().unwrap().id;
        c.input(
            2,
            Input::Peer {
                from: 1,
                msg: ReplicaMsg::LogChunk {
                    copy,
                    from: 1,
                    prev_epoch: Some(3),
                    chunk: LogChunk {
                        entries: vec![o(1, 3, "y")],
                        len: 2,
                        log_ballot: b(3, 1),
                    },
                },
            },
        );
        assert_eq!(c.ids(2), ["a", "b"]);
        assert_ne!(c.node(2).copy.as_ref().unwrap().id, copy);
    }

    #[test]
    fn a_copy_longer_than_a_chunk_is_fetched_chunk_after_chunk() {
        let n = BATCH as usize * 2 + 10;
        let log: Vec<Order> = (0..n).map(|i| o(i as u64, 1, &format!("r{i}"))).collect();
        let c = Cluster::new([log, vec![], vec![]]);
        assert_eq!(c.node(2).orders().len(), n);
        assert_eq!(c.node(3).orders().len(), n);
        assert!(c
            .logs
            .iter()
            .any(|l| l.starts_with(&format!("2: ready: resynced {n} orders"))));
        assert_eq!(c.node(2).tally().copied, n as u64);
    }

    #[test]
    fn chunks_of_another_copy_source_or_place_are_ignored() {
        let mut c = Cluster::new([vec![o(0, 1, "a")], vec![], vec![]]);
        c.down.insert(1);
        c.down.insert(3);
        let chunk = |copy, from, pos| Input::Peer {
            from,
            msg: ReplicaMsg::LogChunk {
                copy,
                from: pos,
                prev_epoch: None,
                chunk: LogChunk {
                    entries: vec![o(0, 7, "x")],
                    len: 1,
                    log_ballot: b(7, 1),
                },
            },
        };
        let r = c.nodes.get_mut(&2).unwrap();
        r.start_copy(0, 1);
        let old = r.copy.as_ref().unwrap().id;
        r.start_copy(0, 1);
        let copy = r.copy.as_ref().unwrap().id;
        r.copy.as_mut().unwrap().pos = 0;
        c.logs.clear();
        c.input(2, chunk(old, 1, 0));
        c.input(2, chunk(copy, 3, 0));
        c.input(2, chunk(copy, 1, 1));
        assert_eq!(c.ids(2), ["a"], "nothing merged");
        assert_eq!(c.logs.len(), 3);
        assert!(c
            .logs
            .iter()
            .all(|l| l.contains("does not continue a copy")));
        assert_eq!(
            c.node(2).copy.as_ref().unwrap().id,
            copy,
            "the copy goes on"
        );
    }

    #[test]
    fn a_lost_log_request_is_asked_again() {
        let mut r = Replica::new(1, vec![2, 3], 2, vec![], Meta::default(), 0).0;
        r.start_copy(1000, 2);
        let asks = |e: &[Effect]| {
            e.iter()
                .filter(|e| {
                    matches!(
                        e,
                        Effect::Send {
                            to: 2,
                            msg: ReplicaMsg::LogRequest { .. }
                        }
                    )
                })
                .count()
        };
        assert_eq!(asks(&r.step(1000, Input::Tick)), 1, "the first request");
        assert_eq!(asks(&r.step(1000 + RETRY - 1, Input::Tick)), 0);
        assert_eq!(asks(&r.step(1000 + RETRY, Input::Tick)), 1);
        assert_eq!(asks(&r.step(1000 + RETRY + 1, Input::Tick)), 0);
    }

    #[test]
    fn finishing_a_copy_promises_the_log_ballot_it_took() {
        let mut r = Replica::new(1, vec![2, 3], 2, vec![], Meta::default(), 0).0;
        r.start_copy(0, 2);
        let copy = r.copy.as_ref().unwrap().id;
        r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::LogChunk {
                    copy,
                    from: 0,
                    prev_epoch: None,
                    chunk: LogChunk {
                        entries: vec![o(0, 4, "a")],
                        len: 1,
                        log_ballot: b(4, 2),
                    },
                },
            },
        );
        let s = r.status();
        assert_eq!((s.log_ballot, s.promised), (b(4, 2), b(4, 2)));
        assert_eq!(r.role(), Role::Follower);
        // An append of an epoch in between is refused now.
        let e = r.step(
            2,
            Input::Peer {
                from: 3,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(3, 3),
                    start: 1,
                    prev_epoch: Some(4),
                    entries: vec![],
                    commit: 0,
                    view_len: 0,
                }),
            },
        );
        assert!(e.iter().any(|e| matches!(
            e,
            Effect::Send {
                msg: ReplicaMsg::Refuse { .. },
                ..
            }
        )));
    }

    #[test]
    fn a_recovering_replica_neither_promises_a_candidate_nor_stores_appends() {
        let mut r = Replica::new(1, vec![2, 3], 2, vec![], Meta::default(), 0).0;
        let e = r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::Prepare { ballot: b(1, 2) },
            },
        );
        assert!(e.is_empty());
        let e = r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::Append(Append {
                    ballot: b(1, 2),
                    start: 0,
                    prev_epoch: None,
                    entries: vec![o(0, 1, "a")],
                    commit: 0,
                    view_len: 0,
                }),
            },
        );
        assert!(e.is_empty());
        assert!(r.orders().is_empty());
        let e = r.step(
            1,
            Input::Request {
                client: 1,
                request: Request::Notice(b(1, 1)),
            },
        );
        let reply = e.iter().find_map(|e| match e {
            Effect::Reply { result, .. } => Some(result.clone()),
            _ => None,
        });
        // The reply waits for the promise's write; it is an Unavailable once released.
        assert!(reply.is_none());
        let w = r.meta_write;
        let e = r.step(1, Input::Persisted(w));
        assert!(e.iter().any(|e| matches!(
            e,
            Effect::Reply {
                result: Err(Error::Unavailable(_)),
                ..
            }
        )));
        // Messages from strangers are ignored.
        assert!(r
            .step(
                1,
                Input::Peer {
                    from: 9,
                    msg: ReplicaMsg::Probe
                }
            )
            .is_empty());
        let e = r.step(
            1,
            Input::Peer {
                from: 2,
                msg: ReplicaMsg::Probe,
            },
        );
        assert!(
            matches!(&e[..], [Effect::Send { to: 2, msg: ReplicaMsg::ProbeOk(s) }] if s.id == 1 && !s.ready)
        );
    }

    #[test]
    fn the_leader_rolls_forward_takes_without_an_order() {
        let mut c = led();
        let call = c.list_call();
        assert_eq!(
            call,
            CatalogCall::List { after: 0, epoch: 1 },
            "listed at once on leading"
        );
        let take = |seq, rid: &str| TakeRecord {
            seq,
            request_id: rid.into(),
            name: "Tux".into(),
            quantity: 1,
            age_ms: 0,
        };
        // One under way here blocks the page; the one before it is rolled forward.
        let p = c.ask(3, purchase("busy", true));
        c.input(
            3,
            Input::Catalog(CatalogReply::List {
                epoch: 1,
                result: Ok(vec![take(1, "orphan"), take(2, "busy"), take(3, "later")]),
            }),
        );
        c.settle();
        assert_eq!(c.ids(3), ["orphan"]);
        assert!(c
            .logs
            .iter()
            .any(|l| l == "3: rolled forward request orphan: order 0 for 1 x Tux"));
        assert_eq!(c.node(3).tally().rolled_forward, 1);
        // The next listing waits a round, and starts after what was reconciled.
        c.pass(RECONCILE_EVERY - 20);
        assert!(
            c.calls
                .iter()
                .all(|(_, call)| !matches!(call, CatalogCall::List { .. })),
            "{:?}",
            c.calls
        );
        c.pass(30);
        assert_eq!(c.list_call(), CatalogCall::List { after: 1, epoch: 1 });
        // A listing that failed is asked again a round later; one of another epoch is ignored.
        c.input(
            3,
            Input::Catalog(CatalogReply::List {
                epoch: 1,
                result: Err(Error::Unreachable("x".into())),
            }),
        );
        c.input(
            3,
            Input::Catalog(CatalogReply::List {
                epoch: 7,
                result: Ok(vec![take(2, "zzz")]),
            }),
        );
        assert_eq!(c.ids(3), ["orphan"]);
        c.pass(RECONCILE_EVERY + 10);
        assert!(matches!(c.list_call(), CatalogCall::List { after: 1, .. }));
        let _ = p;
    }

    #[test]
    fn a_full_page_of_takes_is_followed_by_the_next_one_at_once() {
        let mut c = led();
        c.list_call();
        let page: Vec<TakeRecord> = (1..=TAKES_PAGE as u64)
            .map(|seq| TakeRecord {
                seq,
                request_id: format!("t{seq}"),
                name: "Tux".into(),
                quantity: 1,
                age_ms: 0,
            })
            .collect();
        c.input(
            3,
            Input::Catalog(CatalogReply::List {
                epoch: 1,
                result: Ok(page),
            }),
        );
        c.settle();
        assert_eq!(c.node(3).orders().len(), TAKES_PAGE);
        c.pass(10);
        assert_eq!(
            c.list_call(),
            CatalogCall::List {
                after: TAKES_PAGE as u64,
                epoch: 1
            }
        );
    }

    #[test]
    fn the_commit_point_is_saved_about_once_a_second() {
        let mut c = led();
        let p = c.ask(3, purchase("r1", true));
        c.answer_take(taken());
        assert_eq!(c.answer(p), Some(&created(0)));
        assert_eq!(c.node(3).meta().commit, 1);
        let saved = |c: &Cluster, id| c.node(id).commit_saved;
        c.pass(SAVE_COMMIT_EVERY + 20);
        assert_eq!(saved(&c, 3), 1);
        assert_eq!(saved(&c, 1), 1);
    }
}
