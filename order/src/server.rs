//! The replica's I/O: HTTP handlers, the threads that take over, replicate, reconcile and recover,
//! and the files. Every decision is made by [`Core`]; this module carries out its [`Effects`].

use crate::core::{best_source, Core, Effects, LogChange};
use crate::store::Files;
use clap::Parser;
use parking_lot::{Condvar, Mutex, MutexGuard};
use shared::config::ReplicaList;
use shared::http::{self, Handler, Method, Peer, Reply, Request, Server, ServerOptions};
use shared::protocol::{
    Append, AppendReply, Ballot, LeaderNotice, LogChunk, OrderCreated, OrderInfo, OrderNumber,
    Purchase, ReplicaId, ReplicaStatus, Role, TakeRecord, TakeReply,
};
use shared::{log, Error, Result};
use std::collections::{HashMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a purchase or order query may wait inside the replica (for a takeover to finish, for a
/// quorum to store the order) before it is answered 503 or 504.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Timeout of a call to a peer replica with a small body.
const PEER_TIMEOUT: Duration = Duration::from_millis(800);
/// Timeout of a call that moves a batch of orders.
const BULK_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of a call to the catalog.
const CATALOG_TIMEOUT: Duration = Duration::from_millis(1500);
/// Orders in one append or log chunk.
const BATCH: usize = 4096;
/// The leader sends an empty append this often when it has nothing new, so followers learn the
/// commit point and the leader learns which followers are alive.
const HEARTBEAT: Duration = Duration::from_millis(100);
/// A follower that has not answered for this long does not count towards the quorum check made
/// before stock is taken.
const LIVE_WINDOW: Duration = Duration::from_millis(1000);
/// A take at the catalog with no order for this long, and no purchase under way for it, is rolled
/// forward: its leader died between the two steps and nobody retried it.
const ROLL_FORWARD_AGE_MS: u64 = 3000;
/// How long a new leader's purchases wait for its followers' first answers before a missing quorum
/// is answered 503.
const TAKEOVER_GRACE: Duration = Duration::from_millis(500);
/// How long a starting replica tries to reach its peers before it serves with what it has.
const RECOVERY_WINDOW: Duration = Duration::from_secs(3);

/// The order service's flags. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "order",
    version,
    about = "One replica of the toy store's order service"
)]
pub struct Config {
    /// This replica's id (1, 2, 3, ...): its entry in --replicas.
    #[arg(long, env = "TOYSTORE_ID")]
    pub id: ReplicaId,
    /// Address to listen on (default: the host and port of this id's URL in --replicas).
    #[arg(long, env = "TOYSTORE_LISTEN")]
    pub listen: Option<String>,
    /// Folder of orders-<id>.csv and replica-<id>.json.
    #[arg(long, env = "TOYSTORE_DATA", default_value = "data")]
    pub data: PathBuf,
    /// The catalog's URL.
    #[arg(
        long,
        env = "TOYSTORE_CATALOG",
        default_value = "http://127.0.0.1:8081"
    )]
    pub catalog: String,
    /// Every replica, this one included: ID=URL,...
    #[arg(long, env = "TOYSTORE_REPLICAS", default_value = shared::config::DEFAULT_REPLICAS)]
    pub replicas: ReplicaList,
    /// Replicas that must store an order before it is answered (default: a majority). 1 keeps a lone
    /// leader available but loses the orders only it held if it crashes.
    #[arg(long, env = "TOYSTORE_QUORUM")]
    pub quorum: Option<usize>,
    /// Shared secret internal calls must carry (none: internal calls are not checked).
    #[arg(long, env = "TOYSTORE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// HTTP worker threads.
    #[arg(long, env = "TOYSTORE_WORKERS", default_value_t = http::DEFAULT_WORKERS)]
    pub workers: usize,
}

impl Config {
    /// The address to listen on.
    pub fn listen_addr(&self) -> Result<String> {
        if let Some(l) = &self.listen {
            return Ok(l.clone());
        }
        let url = self
            .replicas
            .url(self.id)
            .ok_or_else(|| Error::BadRequest(format!("--id {} is not in --replicas", self.id)))?;
        Ok(url.trim_start_matches("http://").to_string())
    }
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Default)]
struct Follower {
    /// Orders known to match the leader's log.
    matched: u64,
    /// The follower copies this leader's log (its log ballot is the leader's).
    synced: bool,
    /// Last successful answer.
    last_ok: Option<Instant>,
}

/// Everything behind the replica's one lock.
struct Inner {
    core: Core,
    /// Orders of the log that are on this replica's disk.
    durable: u64,
    /// Request ids of purchases between their take of stock and their order.
    inflight: HashSet<String>,
    /// Leader only: its followers.
    followers: HashMap<ReplicaId, Follower>,
    /// Commit point last written to the meta file.
    saved_commit: u64,
    /// When this replica last became leader.
    leader_since: Option<Instant>,
    /// Ticket of the newest order this replica appended as leader, and the newest one the flusher
    /// has made durable.
    leader_ticket: u64,
    flushed_ticket: u64,
    /// Candidate only: fewer replicas than a quorum answered its last prepare, so requests are
    /// refused at once instead of waiting for a takeover that cannot finish.
    stalled: bool,
}

/// One order replica.
pub struct Replica {
    id: ReplicaId,
    who: String,
    inner: Mutex<Inner>,
    /// Signalled whenever the log, the commit point or the role changes.
    changed: Condvar,
    files: Files,
    peers: Vec<(ReplicaId, String)>,
    peer: Peer,
    bulk: Peer,
    catalog_url: String,
    catalog: Peer,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// A running replica.
pub struct Running {
    server: Server,
    replica: Arc<Replica>,
}

impl Running {
    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The replica.
    pub fn replica(&self) -> &Arc<Replica> {
        &self.replica
    }

    /// Stops serving, stops the threads and saves the meta file.
    pub fn stop(self) -> Result<()> {
        self.server.stop();
        self.replica.stop.store(true, Ordering::SeqCst);
        self.replica.changed.notify_all();
        let threads = std::mem::take(&mut *self.replica.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        let inner = self.replica.inner.lock();
        self.replica.files.save_meta(&inner.core.meta)
    }
}

/// Opens replica `config.id` in `config.data`, starts catching up with its peers, and serves.
pub fn serve(config: &Config, listener: TcpListener) -> Result<Running> {
    let n = config.replicas.0.len();
    let quorum = config.quorum.unwrap_or(n / 2 + 1);
    if quorum == 0 || quorum > n {
        return Err(Error::BadRequest(format!(
            "--quorum must be between 1 and {n}"
        )));
    }
    if config.replicas.url(config.id).is_none() {
        return Err(Error::BadRequest(format!(
            "--id {} is not in --replicas",
            config.id
        )));
    }
    let (files, orders, meta) = Files::open(&config.data, config.id)?;
    let who = files.who().to_string();
    log!(
        who,
        "loaded {} orders (last {:?}), promised epoch {}",
        orders.len(),
        orders.last().map(|o| o.number),
        meta.promised.epoch
    );
    let durable = orders.len() as u64;
    let core = Core::new(config.id, quorum, orders, meta);
    let saved_commit = core.meta.commit;
    let replica = Arc::new(Replica {
        id: config.id,
        who,
        inner: Mutex::new(Inner {
            core,
            durable,
            inflight: HashSet::new(),
            followers: HashMap::new(),
            saved_commit,
            leader_since: None,
            leader_ticket: 0,
            flushed_ticket: 0,
            stalled: false,
        }),
        changed: Condvar::new(),
        files,
        peers: config
            .replicas
            .0
            .iter()
            .filter(|(i, _)| *i != config.id)
            .cloned()
            .collect(),
        peer: Peer::new(PEER_TIMEOUT, config.secret.clone()),
        bulk: Peer::new(BULK_TIMEOUT, config.secret.clone()),
        catalog_url: shared::config::base_url(&config.catalog).map_err(Error::BadRequest)?,
        catalog: Peer::new(CATALOG_TIMEOUT, config.secret.clone()),
        stop: AtomicBool::new(false),
        threads: Mutex::new(Vec::new()),
    });
    let r = replica.clone();
    replica.spawn("recover", move || r.recover());
    let r = replica.clone();
    replica.spawn("meta", move || r.save_commit_loop());
    let r = replica.clone();
    replica.spawn("flush", move || r.flush_loop());

    let r = replica.clone();
    let handler: Handler = Arc::new(move |req: &Request| handle(&r, req));
    let mut options = ServerOptions::internal(config.secret.clone());
    options.workers = config.workers;
    let server = Server::start(listener, options, handler)?;
    log!(
        replica.who,
        "serving on {} (quorum {quorum} of {n})",
        server.addr()
    );
    Ok(Running { server, replica })
}

/// Routes one request.
pub fn handle(r: &Arc<Replica>, req: &Request) -> Reply {
    match (&req.method, req.segments().as_slice()) {
        (Method::Post, ["orders"]) => {
            Reply::from_result(req.json::<Purchase>().and_then(|p| r.purchase(&p)))
        }
        (Method::Get, ["orders", n]) => match n.parse::<OrderNumber>() {
            Ok(n) => Reply::from_result(r.order(n)),
            Err(_) => Reply::error(&Error::BadRequest(format!("{n:?} is not an order number"))),
        },
        (Method::Get, ["internal", "health"]) => Reply::data(r.inner.lock().core.status()),
        (Method::Post, ["internal", "leader"]) => Reply::from_result(
            req.json::<LeaderNotice>()
                .and_then(|n| r.on_notice(n.ballot)),
        ),
        (Method::Post, ["internal", "prepare"]) => {
            Reply::from_result(req.json::<Ballot>().and_then(|b| r.on_prepare(b)))
        }
        (Method::Post, ["internal", "append"]) => {
            Reply::from_result(req.json::<Append>().and_then(|a| r.on_append(&a)))
        }
        (Method::Get, ["internal", "log"]) => {
            let from = req.query_param("from").unwrap_or("0").parse::<u64>();
            let limit = req.query_param("limit").unwrap_or("1000").parse::<usize>();
            match (from, limit) {
                (Ok(from), Ok(limit)) => {
                    Reply::data(r.inner.lock().core.chunk(from, limit.min(BATCH)))
                }
                _ => Reply::error(&Error::BadRequest(
                    "`from` and `limit` must be numbers".into(),
                )),
            }
        }
        (
            _,
            ["orders"]
            | ["orders", _]
            | ["internal", "health" | "leader" | "prepare" | "append" | "log"],
        ) => Reply::error(&Error::MethodNotAllowed(format!(
            "{} is not allowed on {}",
            req.method, req.path
        ))),
        _ => Reply::error(&Error::NotFound(format!("no such path: {}", req.path))),
    }
}

/// Checks a purchase's fields.
fn validate(p: &Purchase) -> Result<()> {
    if p.quantity == 0 {
        return Err(Error::BadRequest("quantity must be at least 1".into()));
    }
    if p.name.is_empty() || p.name.len() > 256 {
        return Err(Error::BadRequest("name must have 1 to 256 bytes".into()));
    }
    if !shared::protocol::valid_request_id(&p.request_id) {
        return Err(Error::BadRequest(shared::protocol::REQUEST_ID_RULE.into()));
    }
    Ok(())
}

impl Replica {
    fn spawn(&self, name: &str, f: impl FnOnce() + Send + 'static) {
        let t = std::thread::Builder::new()
            .name(format!("{}-{name}", self.who))
            .spawn(f)
            .expect("spawn");
        self.threads.lock().push(t);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Carries out `effects` under the lock. Returns the ticket of an append still to be waited on.
    /// When the meta file changes too, the orders are made durable first: a log ballot on disk must
    /// never describe orders that are not.
    fn apply(&self, inner: &mut Inner, effects: Effects) -> Result<Option<u64>> {
        let mut ticket = None;
        match effects.change {
            LogChange::None => {}
            LogChange::Append(orders) => {
                let t = self.files.append(&orders);
                if effects.save_meta {
                    self.files.wait(t)?;
                    inner.durable = inner.core.len();
                } else {
                    ticket = Some(t);
                }
            }
            LogChange::Rewrite => {
                self.files.rewrite(inner.core.orders())?;
                inner.durable = inner.core.len();
            }
        }
        if effects.save_meta {
            self.files.save_meta(&inner.core.meta)?;
            inner.saved_commit = inner.core.meta.commit;
        }
        Ok(ticket)
    }

    /// Waits for an append's ticket, then records that the log up to `len` is on disk.
    fn wait_durable(&self, ticket: Option<u64>, len: u64) -> Result<()> {
        if let Some(t) = ticket {
            self.files.wait(t)?;
        }
        let mut inner = self.inner.lock();
        inner.durable = inner.durable.max(len.min(inner.core.len()));
        self.maybe_advance_commit(&mut inner);
        Ok(())
    }

    fn maybe_advance_commit(&self, inner: &mut Inner) {
        if inner.core.role != Role::Leader {
            return;
        }
        let followers: Vec<u64> = inner
            .followers
            .values()
            .filter(|f| f.synced)
            .map(|f| f.matched)
            .collect();
        let durable = inner.durable;
        if inner.core.advance_commit(durable, &followers) {
            self.changed.notify_all();
        }
    }

    fn on_notice(self: &Arc<Self>, ballot: Ballot) -> Result<ReplicaStatus> {
        let mut inner = self.inner.lock();
        let was = inner.core.role;
        let (save, take_over) = inner.core.on_notice(ballot)?;
        self.apply(
            &mut inner,
            Effects {
                change: LogChange::None,
                save_meta: save,
            },
        )?;
        if was == Role::Leader && inner.core.role != Role::Leader {
            log!(
                self.who,
                "stepping down: replica {} leads in epoch {}",
                ballot.leader,
                ballot.epoch
            );
        }
        self.changed.notify_all();
        if take_over {
            log!(
                self.who,
                "chosen as leader for epoch {}; collecting the replicas' logs",
                ballot.epoch
            );
            let r = self.clone();
            self.spawn("takeover", move || r.take_over(ballot));
        }
        Ok(inner.core.status())
    }

    fn on_prepare(&self, ballot: Ballot) -> Result<ReplicaStatus> {
        let mut inner = self.inner.lock();
        let (status, save) = inner.core.on_prepare(ballot)?;
        self.apply(
            &mut inner,
            Effects {
                change: LogChange::None,
                save_meta: save,
            },
        )?;
        self.changed.notify_all();
        Ok(status)
    }

    fn on_append(&self, a: &Append) -> Result<AppendReply> {
        let (reply, ticket) = {
            let mut inner = self.inner.lock();
            let (reply, effects) = inner.core.on_append(a)?;
            let ticket = self.apply(&mut inner, effects)?;
            self.changed.notify_all();
            (reply, ticket)
        };
        self.wait_durable(ticket, reply.len)?;
        Ok(reply)
    }

    /// The statuses of the peers that answer `call` within the peer timeout, asked in parallel.
    fn ask_peers<T: Send>(
        &self,
        call: impl Fn(&str) -> Result<T> + Sync,
    ) -> Vec<(ReplicaId, Result<T>)> {
        http::call_all(&self.peers, call)
    }

    fn url_of(&self, id: ReplicaId) -> &str {
        self.peers
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, u)| u.as_str())
            .expect("a peer")
    }

    /// Copies the log of replica `source` into this one: from this replica's commit point (below it
    /// the logs are the same) to the source's end, keeping matching orders and cutting at a conflict.
    /// Returns how many orders were added.
    fn copy_from(&self, source: ReplicaId) -> Result<u64> {
        let url = self.url_of(source).to_string();
        let mut pos = self.inner.lock().core.meta.commit;
        let mut added = 0;
        loop {
            let chunk: LogChunk = self
                .bulk
                .get(&format!("{url}/internal/log?from={pos}&limit={BATCH}"))?;
            let mut inner = self.inner.lock();
            if pos > inner.core.len() {
                return Err(Error::Internal("log shrank during a copy".into()));
            }
            let before = inner.core.len();
            let mut change = inner.core.merge(pos, &chunk.entries);
            pos += chunk.entries.len() as u64;
            let done = pos >= chunk.len || chunk.entries.is_empty();
            if done {
                change = match (change, inner.core.finish_copy(chunk.len, chunk.log_ballot)) {
                    (LogChange::None, c) => c,
                    (c, LogChange::None) => c,
                    _ => LogChange::Rewrite,
                };
            }
            added += inner.core.len().saturating_sub(before);
            self.apply(
                &mut inner,
                Effects {
                    change,
                    save_meta: done,
                },
            )?;
            if done {
                return Ok(added);
            }
        }
    }

    /// At start: ask the peers how far they are, copy from the most up-to-date one if it is ahead,
    /// then serve.
    fn recover(self: Arc<Self>) {
        let deadline = Instant::now() + RECOVERY_WINDOW;
        let quorum = self.inner.lock().core.quorum;
        loop {
            if self.stopped() {
                return;
            }
            let answers = self.ask_peers(|url| {
                self.peer
                    .get::<ReplicaStatus>(&format!("{url}/internal/health"))
            });
            let mut statuses: Vec<ReplicaStatus> =
                answers.into_iter().filter_map(|(_, s)| s.ok()).collect();
            let reached = statuses.len();
            let own = self.inner.lock().core.status();
            statuses.push(own.clone());
            let best = best_source(&statuses).cloned().expect("own status");
            let mut copied = Ok(0);
            if best.id != self.id && (best.log_ballot, best.len) > (own.log_ballot, own.len) {
                copied = self.copy_from(best.id);
            }
            match copied {
                Ok(n) if reached + 1 >= quorum || Instant::now() > deadline => {
                    let mut inner = self.inner.lock();
                    inner.core.role = Role::Follower;
                    self.changed.notify_all();
                    let len = inner.core.len();
                    if reached + 1 >= quorum {
                        log!(
                            self.who,
                            "ready: resynced {n} orders from replica {}, log has {len} orders",
                            best.id
                        );
                    } else {
                        log!(self.who, "ready with {len} orders; reached {reached} peers, the leader will sync the rest");
                    }
                    return;
                }
                Ok(_) => {}
                Err(e) => log!(
                    self.who,
                    "resync from replica {} failed: {e}; trying again",
                    best.id
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn still_candidate(&self, ballot: Ballot) -> bool {
        let inner = self.inner.lock();
        inner.core.role == Role::Candidate && inner.core.meta.promised == ballot
    }

    /// Chosen as leader of `ballot`: gets promises from a quorum, copies the most up-to-date log among
    /// them, then leads.
    fn take_over(self: Arc<Self>, ballot: Ballot) {
        let mut waiting_logged = false;
        while !self.stopped() && self.still_candidate(ballot) {
            let answers = self.ask_peers(|url| {
                self.peer
                    .post::<_, ReplicaStatus>(&format!("{url}/internal/prepare"), &ballot)
            });
            let mut statuses = Vec::new();
            for (id, a) in answers {
                match a {
                    Ok(s) => statuses.push(s),
                    Err(Error::StaleEpoch(e)) => {
                        log!(
                            self.who,
                            "replica {id} promised epoch {e}; giving up epoch {}",
                            ballot.epoch
                        );
                        let mut inner = self.inner.lock();
                        if inner.core.role == Role::Candidate {
                            inner.core.role = Role::Follower;
                        }
                        self.changed.notify_all();
                        return;
                    }
                    Err(_) => {}
                }
            }
            let own = self.inner.lock().core.status();
            statuses.push(own.clone());
            let stalled = statuses.len() < own_quorum(&self);
            if self.inner.lock().stalled != stalled {
                self.inner.lock().stalled = stalled;
                self.changed.notify_all();
            }
            if stalled {
                if !waiting_logged {
                    log!(
                        self.who,
                        "epoch {}: only {} of {} replicas answer; waiting for a quorum",
                        ballot.epoch,
                        statuses.len(),
                        self.peers.len() + 1
                    );
                    waiting_logged = true;
                }
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
            let best = best_source(&statuses).cloned().expect("own status");
            let mut copied = 0;
            if best.id != self.id && (best.log_ballot, best.len) > (own.log_ballot, own.len) {
                match self.copy_from(best.id) {
                    Ok(n) => copied = n,
                    Err(e) => {
                        log!(
                            self.who,
                            "copy from replica {} failed: {e}; trying again",
                            best.id
                        );
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            let mut inner = self.inner.lock();
            if inner.core.become_leader(ballot).is_err() {
                return;
            }
            if let Err(e) = self.apply(
                &mut inner,
                Effects {
                    change: LogChange::None,
                    save_meta: true,
                },
            ) {
                log!(self.who, "cannot save the meta file: {e}");
                inner.core.role = Role::Follower;
                return;
            }
            inner.leader_since = Some(Instant::now());
            inner.followers = self
                .peers
                .iter()
                .map(|(id, _)| (*id, Follower::default()))
                .collect();
            inner.durable = inner.core.len();
            let len = inner.core.len();
            log!(
                self.who,
                "leader for epoch {} with {len} orders ({copied} copied from replica {})",
                ballot.epoch,
                best.id
            );
            self.changed.notify_all();
            drop(inner);
            for (id, url) in self.peers.clone() {
                let r = self.clone();
                self.spawn("replicate", move || r.replicate(ballot, id, &url));
            }
            let r = self.clone();
            self.spawn("reconcile", move || r.reconcile(ballot));
            return;
        }
    }

    /// Leader: keeps follower `id` a copy of this log, sending batches one at a time, and heartbeats
    /// when there is nothing to send.
    fn replicate(self: Arc<Self>, ballot: Ballot, id: ReplicaId, url: &str) {
        let mut next = self.inner.lock().core.len();
        let mut last_sent = Instant::now() - HEARTBEAT;
        let mut down_logged = false;
        let mut backoff = Duration::from_millis(20);
        let mut commit_sent = 0;
        loop {
            let a = {
                let mut inner = self.inner.lock();
                loop {
                    if self.stopped() || !inner.core.leads(ballot) {
                        return;
                    }
                    let synced = inner.followers.get(&id).is_some_and(|f| f.synced);
                    // A new commit point goes out at once, so a follower that must answer queries
                    // after this leader dies knows every order the leader confirmed.
                    let news = next < inner.core.len() || inner.core.meta.commit > commit_sent;
                    if news || !synced || last_sent.elapsed() >= HEARTBEAT {
                        break;
                    }
                    self.changed.wait_for(&mut inner, HEARTBEAT);
                }
                let core = &inner.core;
                let start = next.min(core.len());
                let chunk = core.chunk(start, BATCH);
                Append {
                    ballot,
                    start,
                    prev_epoch: start
                        .checked_sub(1)
                        .and_then(|p| core.get(p))
                        .map(|o| o.epoch),
                    entries: chunk.entries,
                    commit: core.meta.commit,
                    view_len: core.view_len,
                }
            };
            last_sent = Instant::now();
            commit_sent = a.commit;
            let peer = if a.entries.len() > 64 {
                &self.bulk
            } else {
                &self.peer
            };
            match peer.post::<_, AppendReply>(&format!("{url}/internal/append"), &a) {
                Ok(r) if r.matched => {
                    backoff = Duration::from_millis(20);
                    if down_logged {
                        log!(self.who, "replica {id} answers again");
                        down_logged = false;
                    }
                    next = a.start + a.entries.len() as u64;
                    let mut inner = self.inner.lock();
                    let f = inner.followers.entry(id).or_default();
                    let was_synced = f.synced;
                    f.matched = next;
                    f.synced = r.log_ballot == ballot;
                    f.last_ok = Some(Instant::now());
                    if f.synced && !was_synced {
                        log!(
                            self.who,
                            "replica {id} copies this leader's log ({next} orders)"
                        );
                    }
                    self.maybe_advance_commit(&mut inner);
                }
                Ok(r) => {
                    next = if r.len < a.start {
                        r.len
                    } else {
                        r.commit.min(a.start.saturating_sub(1))
                    };
                }
                Err(Error::StaleEpoch(e)) => {
                    let mut inner = self.inner.lock();
                    if inner.core.leads(ballot) {
                        log!(
                            self.who,
                            "replica {id} promised epoch {e}: stepping down as leader of epoch {}",
                            ballot.epoch
                        );
                        inner.core.role = Role::Follower;
                        self.changed.notify_all();
                    }
                    return;
                }
                Err(e) => {
                    if !down_logged {
                        log!(self.who, "replica {id} does not answer ({e}); retrying");
                        down_logged = true;
                    }
                    if let Some(f) = self.inner.lock().followers.get_mut(&id) {
                        f.last_ok = None;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(250));
                }
            }
        }
    }

    /// True when enough followers answered recently for a new order to reach a quorum.
    fn quorum_alive(inner: &Inner) -> bool {
        let alive = inner
            .followers
            .values()
            .filter(|f| f.synced && f.last_ok.is_some_and(|t| t.elapsed() < LIVE_WINDOW))
            .count();
        alive + 1 >= inner.core.quorum
    }

    /// Waits, up to `deadline`, until this replica leads; the ballot it leads with.
    fn wait_leading(&self, deadline: Instant) -> Result<Ballot> {
        let mut inner = self.inner.lock();
        loop {
            match inner.core.role {
                Role::Leader => return Ok(inner.core.meta.promised),
                Role::Candidate if inner.stalled => {
                    return Err(Error::Unavailable(format!(
                        "fewer than {} order replicas reachable; nothing was changed",
                        inner.core.quorum
                    )))
                }
                Role::Candidate if Instant::now() < deadline => {
                    self.changed.wait_until(&mut inner, deadline);
                }
                Role::Candidate => {
                    return Err(Error::Unavailable(
                        "the leader is still collecting the replicas' logs".into(),
                    ))
                }
                _ => {
                    let leader = inner.core.meta.promised.leader;
                    return Err(Error::Unavailable(format!(
                        "replica {} is not the leader (leader: {leader})",
                        self.id
                    )));
                }
            }
        }
    }

    /// Waits until order `n` is committed, while this replica still leads with `ballot`.
    fn wait_committed(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        n: OrderNumber,
        ballot: Ballot,
        deadline: Instant,
    ) -> Result<()> {
        loop {
            if inner.core.meta.commit > n {
                return Ok(());
            }
            if !inner.core.leads(ballot) {
                return Err(Error::Indeterminate(format!(
                    "order {n} is stored but leadership changed before a quorum confirmed it; the new leader completes it"
                )));
            }
            if Instant::now() >= deadline {
                return Err(Error::Indeterminate(format!(
                    "order {n} is stored but not yet on a quorum; it completes when a replica returns"
                )));
            }
            self.changed.wait_until(&mut inner, deadline);
        }
    }

    /// Leader: a purchase, applied at most once per request id: take the stock at the catalog, store
    /// the order at a quorum, answer its number.
    pub fn purchase(&self, p: &Purchase) -> Result<OrderCreated> {
        validate(p)?;
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let ballot = self.wait_leading(deadline)?;
        {
            let mut inner = self.inner.lock();
            loop {
                if let Some(n) = inner.core.find(&p.request_id) {
                    let o = inner.core.get(n).expect("indexed");
                    if o.name != p.name || o.quantity != p.quantity {
                        return Err(Error::Conflict(format!(
                            "request id {} was used for another purchase",
                            p.request_id
                        )));
                    }
                    self.wait_committed(inner, n, ballot, deadline)?;
                    return Ok(OrderCreated { order_number: n });
                }
                if !inner.core.leads(ballot) {
                    return Err(Error::Unavailable("leadership changed; retry".into()));
                }
                if inner.inflight.contains(&p.request_id) {
                    if self.changed.wait_until(&mut inner, deadline).timed_out() {
                        return Err(Error::Indeterminate(
                            "the same request id is still being processed".into(),
                        ));
                    }
                    continue;
                }
                // A leader that has just taken over has not heard from its followers yet: give them
                // a moment rather than refuse the first purchases of every failover. The wait lets
                // go of the lock, so the checks above are made again after it: a twin request with
                // the same id may have started meanwhile.
                if !Self::quorum_alive(&inner)
                    && inner
                        .leader_since
                        .is_some_and(|t| t.elapsed() < TAKEOVER_GRACE)
                {
                    self.changed.wait_for(&mut inner, Duration::from_millis(10));
                    continue;
                }
                break;
            }
            if !Self::quorum_alive(&inner) {
                return Err(Error::Unavailable(format!(
                    "fewer than {} order replicas reachable; nothing was changed",
                    inner.core.quorum
                )));
            }
            inner.inflight.insert(p.request_id.clone());
        }
        let taken = self.take_stock(p, deadline);
        let mut inner = self.inner.lock();
        inner.inflight.remove(&p.request_id);
        self.changed.notify_all();
        taken?;
        if !inner.core.leads(ballot) {
            return Err(Error::Indeterminate(
                "leadership changed after the stock was taken; the new leader completes the order"
                    .into(),
            ));
        }
        let order = inner.core.create(&p.name, p.quantity, &p.request_id)?;
        self.append_as_leader(&mut inner, &order);
        self.wait_committed(inner, order.number, ballot, deadline)?;
        Ok(OrderCreated {
            order_number: order.number,
        })
    }

    /// Takes the stock at the catalog, retrying a call whose outcome is unknown (the take is
    /// idempotent by request id). 503 only when the catalog surely took nothing.
    fn take_stock(&self, p: &Purchase, deadline: Instant) -> Result<TakeReply> {
        let url = format!("{}/internal/take", self.catalog_url);
        let mut maybe_taken = false;
        loop {
            match self.catalog.post::<_, TakeReply>(&url, p) {
                Ok(r) => return Ok(r),
                Err(Error::Unreachable(e)) if !maybe_taken => {
                    return Err(Error::Unavailable(format!(
                        "the catalog is unreachable ({e}); nothing was changed"
                    )))
                }
                Err(e) if e.is_retryable() && Instant::now() < deadline => {
                    maybe_taken = true;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) if e.is_retryable() => {
                    return Err(Error::Indeterminate(format!(
                    "the catalog did not confirm the take ({e}); it completes or is rolled forward"
                )))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Leader: rolls forward every take of stock at the catalog that has no order, no purchase under
    /// way, and is older than [`ROLL_FORWARD_AGE_MS`]: its leader died between the two steps.
    fn reconcile(self: Arc<Self>, ballot: Ballot) {
        let mut after = 0;
        let mut failing = false;
        while !self.stopped() && self.inner.lock().core.leads(ballot) {
            let url = format!("{}/internal/takes?after={after}", self.catalog_url);
            let takes: Vec<TakeRecord> = match self.catalog.get(&url) {
                Ok(t) => {
                    failing = false;
                    t
                }
                Err(e) => {
                    if !failing {
                        log!(self.who, "cannot list the catalog's takes: {e}");
                        failing = true;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            };
            let full_page = takes.len() >= 1000;
            for t in takes {
                let mut inner = self.inner.lock();
                if !inner.core.leads(ballot) {
                    return;
                }
                if inner.core.find(&t.request_id).is_some() {
                    after = t.seq;
                    continue;
                }
                if inner.inflight.contains(&t.request_id) || t.age_ms < ROLL_FORWARD_AGE_MS {
                    break;
                }
                let order = match inner.core.create(&t.name, t.quantity, &t.request_id) {
                    Ok(o) => o,
                    Err(_) => return,
                };
                log!(
                    self.who,
                    "rolled forward request {}: order {} for {} x {}",
                    t.request_id,
                    order.number,
                    t.quantity,
                    t.name
                );
                self.append_as_leader(&mut inner, &order);
                after = t.seq;
            }
            if !full_page {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }

    /// An order, once committed. The leader waits briefly for an order it holds but has not yet
    /// confirmed; a follower answers from its own copy.
    pub fn order(&self, n: OrderNumber) -> Result<OrderInfo> {
        let deadline = Instant::now() + REQUEST_DEADLINE;
        let mut inner = self.inner.lock();
        loop {
            let core = &inner.core;
            if n < core.meta.commit {
                let o = core.get(n).expect("committed orders are in the log");
                return Ok(OrderInfo {
                    number: o.number,
                    name: o.name.clone(),
                    quantity: o.quantity,
                });
            }
            let waiting = match core.role {
                Role::Leader => n < core.len(),
                Role::Candidate => !inner.stalled,
                _ => false,
            };
            if !waiting && n < core.len() {
                // It holds the order but cannot tell whether a quorum does: not a 404.
                return Err(Error::Unavailable(format!(
                    "order {n} is not known to be committed here yet"
                )));
            }
            if !waiting {
                return Err(Error::NotFound(format!("no order {n}")));
            }
            if self.changed.wait_until(&mut inner, deadline).timed_out() {
                return Err(Error::Unavailable(format!(
                    "order {n} is not confirmed yet"
                )));
            }
        }
    }

    /// Leader: queues a new order for this replica's file and wakes the replicators and the flusher.
    /// The caller does not wait for the local sync: an order is committed once any quorum holds it,
    /// and the two followers' acknowledgements may well come before the leader's own sync.
    fn append_as_leader(&self, inner: &mut Inner, order: &shared::protocol::Order) {
        inner.leader_ticket = self.files.append(std::slice::from_ref(order));
        self.changed.notify_all();
    }

    /// Makes the leader's appended orders durable in the background (one sync for all that queued
    /// up), then counts them towards the quorum. A replica that cannot write its log stops: it must
    /// not go on answering as if its disk held what it does not.
    fn flush_loop(self: Arc<Self>) {
        loop {
            let (ticket, len) = {
                let mut inner = self.inner.lock();
                while inner.leader_ticket <= inner.flushed_ticket {
                    if self.stopped() {
                        return;
                    }
                    self.changed.wait_for(&mut inner, HEARTBEAT);
                }
                (inner.leader_ticket, inner.core.len())
            };
            if let Err(e) = self.files.wait(ticket) {
                log!(self.who, "cannot write the order log, stopping: {e}");
                std::process::exit(1);
            }
            let mut inner = self.inner.lock();
            inner.flushed_ticket = ticket;
            inner.durable = inner.durable.max(len.min(inner.core.len()));
            self.maybe_advance_commit(&mut inner);
        }
    }

    /// Writes the commit point to the meta file about once a second when it moved, so a restart
    /// compares less of the log with its peers.
    fn save_commit_loop(self: Arc<Self>) {
        while !self.stopped() {
            std::thread::sleep(Duration::from_secs(1));
            let mut inner = self.inner.lock();
            if inner.core.meta.commit != inner.saved_commit {
                // Only orders on this replica's disk may be called committed in its file.
                let meta = crate::store::Meta {
                    commit: inner.core.meta.commit.min(inner.durable),
                    ..inner.core.meta
                };
                if self.files.save_meta(&meta).is_ok() {
                    inner.saved_commit = meta.commit;
                }
            }
        }
    }

    /// This replica's status.
    pub fn status(&self) -> ReplicaStatus {
        self.inner.lock().core.status()
    }
}

fn own_quorum(r: &Replica) -> usize {
    r.inner.lock().core.quorum
}
