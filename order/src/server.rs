//! The replica's I/O: it carries out what [`core::Replica`] decides, and
//! decides nothing itself.
//!
//! One lock guards the core. Every input (an HTTP request, a peer's message, a finished write, a
//! catalog answer, a tick) is stepped under it, and the effects are handed, still under it, to the
//! threads that carry them out, so that they leave in the order the core made them:
//! - a **disk** thread applies writes in order (appends share one `fdatasync`; the meta file and a
//!   rewrite are written only after every earlier append is synced) and reports what is on disk;
//! - one **sender** thread per peer posts queued messages as one batch to `/internal/msg` (a message
//!   that cannot be delivered is dropped: the core's timers send again) and steps the messages the
//!   peer put in its reply;
//! - an HTTP worker that takes a peer's batch keeps the messages for that peer which come of it, up
//!   to once its writes are on disk, and returns them in the reply (an append's ack, without a
//!   request of its own);
//! - a few **catalog** threads make the calls to the catalog and step their outcomes, except the
//!   calls that come of a request itself (a purchase's take), which the HTTP worker that waits for
//!   that request makes before it waits: one wake-up less on a purchase's path;
//! - a **ticker** steps time every [`TICK`];
//! - HTTP workers wait for the answer to their request, which the core gives as an effect.

use crate::core::{
    self, Answer, CatalogCall, CatalogReply, ClientId, Effect, Input, Ms, Tally, Write,
};
use crate::files::Files;
use crate::metrics::{ReplicaMetrics, ROUTES};
use clap::Parser;
use crossbeam_channel::{Receiver, Sender};
use parking_lot::{Condvar, Mutex};
use shared::config::{ServiceFlags, StoreAddrs};
use shared::http::{self, Handler, Method, Peer, Reply, Request, Server, ServerOptions};
use shared::metrics::{Histogram, Metrics, PeerCalls};
use shared::protocol::{
    LeaderNotice, OrderNumber, PeerBatch, Purchase, ReplicaId, ReplicaMsg, ReplicaStatus,
};
use shared::shutdown::Shutdown;
use shared::{log, Error, Result};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often time is stepped: the resolution of every timer in the core.
pub const TICK: Duration = Duration::from_millis(10);
/// Timeout of a batch of messages to a peer with few orders in it (see [`shared::timing`]).
const PEER_TIMEOUT: Duration = Duration::from_millis(shared::timing::PEER_TIMEOUT_MS);
/// How long a batch's reply waits for this replica's writes of it (see [`shared::timing`]).
const PEER_ANSWER_WAIT: Duration = Duration::from_millis(shared::timing::PEER_ANSWER_WAIT_MS);
/// Timeout of a batch that moves many orders.
const BULK_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of a call to the catalog (see [`shared::timing`]).
const CATALOG_TIMEOUT: Duration = Duration::from_millis(shared::timing::CATALOG_TIMEOUT_MS);
/// Threads that call the catalog.
const CATALOG_THREADS: usize = 4;
/// An HTTP worker gives up on the core's answer this long after the core's own deadline (the core
/// always answers by then; this only bounds a bug).
const ANSWER_SLACK: Duration = Duration::from_secs(2);

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
    /// Folder of `orders-<id>.csv` and `replica-<id>.json`.
    #[arg(long, env = "TOYSTORE_DATA", default_value = shared::config::DEFAULT_DATA)]
    pub data: PathBuf,
    /// The catalog and every replica, this one included.
    #[command(flatten)]
    pub store: StoreAddrs,
    /// Replicas that must store an order before it is answered (default: a majority). 1 keeps a lone
    /// leader available but loses the orders only it held if it crashes.
    #[arg(long, env = "TOYSTORE_QUORUM")]
    pub quorum: Option<usize>,
    /// The secret and the worker count.
    #[command(flatten)]
    pub service: ServiceFlags,
}

impl Config {
    /// The address to listen on.
    pub fn listen_addr(&self) -> Result<String> {
        if let Some(l) = &self.listen {
            return Ok(l.clone());
        }
        Ok(self.own_url()?.trim_start_matches("http://").to_string())
    }

    /// This replica's URL in `--replicas`.
    fn own_url(&self) -> Result<&str> {
        self.store
            .replicas
            .url(self.id)
            .ok_or_else(|| Error::Config(format!("--id {} is not in --replicas", self.id)))
    }

    /// The quorum, and the catalog's URL: checked before anything is opened.
    fn check(&self) -> Result<(usize, String)> {
        let n = self.store.replicas.0.len();
        let quorum = self.quorum.unwrap_or(n / 2 + 1);
        if quorum == 0 || quorum > n {
            return Err(Error::Config(format!("--quorum must be between 1 and {n}")));
        }
        self.own_url()?;
        let catalog = shared::config::base_url(&self.store.catalog).map_err(Error::Config)?;
        Ok((quorum, catalog))
    }

    /// The other replicas.
    fn peers(&self) -> Vec<(ReplicaId, String)> {
        let others = self.store.replicas.0.iter().filter(|(i, _)| *i != self.id);
        others.cloned().collect()
    }
}

/// The core and the requests that wait for its answers, behind one lock.
struct Shell {
    core: core::Replica,
    waiting: HashMap<ClientId, Sender<Result<Answer>>>,
    next_client: ClientId,
    /// Messages for a peer whose batch is being taken: they go back in the reply to that batch.
    answering: HashMap<ReplicaId, Vec<ReplicaMsg>>,
    /// The newest write handed to the disk thread, and the newest it has reported on disk.
    written: u64,
    persisted: u64,
    /// The core's tally as last counted in the metrics.
    seen: Tally,
}

/// One order replica: the core and the threads around it.
pub struct Replica {
    id: ReplicaId,
    who: String,
    shell: Mutex<Shell>,
    /// Signalled whenever the disk thread reports writes on disk.
    on_disk: Condvar,
    started: Instant,
    disk_tx: Sender<(u64, Write)>,
    peer_tx: HashMap<ReplicaId, Sender<ReplicaMsg>>,
    catalog_tx: Sender<CatalogCall>,
    /// The catalog, for the calls HTTP workers make themselves.
    catalog: Peer,
    catalog_url: String,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
    files: Arc<Files>,
    failure: Mutex<Failure>,
    metrics: ReplicaMetrics,
}

/// Why a replica stopped by itself, and whom to tell.
#[derive(Default)]
struct Failure {
    error: Option<Error>,
    notify: Option<Shutdown>,
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

    /// Stops serving, lets the disk thread finish what is queued, stops the threads and saves the
    /// meta file. Returns the error that made the replica stop by itself, if one did.
    pub fn stop(self) -> Result<()> {
        self.server.stop();
        self.replica.stop.store(true, Ordering::SeqCst);
        let threads = std::mem::take(&mut *self.replica.threads.lock());
        for t in threads {
            let _ = t.join();
        }
        let meta = self.replica.shell.lock().core.meta();
        let saved = self.replica.files.save_meta(&meta);
        match self.replica.failure.lock().error.clone() {
            Some(e) => Err(e),
            None => saved,
        }
    }

    /// The error that made the replica stop by itself (it could not write its log), if one did.
    /// Such a replica answers every request 503 until it is stopped.
    pub fn failure(&self) -> Option<Error> {
        self.replica.failure.lock().error.clone()
    }

    /// Triggers `shutdown` when the replica stops by itself (at once if it already did), so that
    /// `main` stops the process and exits with [`Running::stop`]'s error.
    pub fn stop_process_on_failure(&self, shutdown: Shutdown) {
        let mut f = self.replica.failure.lock();
        if f.error.is_some() {
            shutdown.trigger();
        }
        f.notify = Some(shutdown);
    }
}

/// Opens replica `config.id` in `config.data`, starts catching up with its peers, and serves.
pub fn serve(config: &Config, listener: TcpListener) -> Result<Running> {
    let (quorum, catalog_url) = config.check()?;
    let (mut files, orders, meta) = Files::open(&config.data, config.id)?;
    let who = files.who().to_string();
    let mut metrics = Metrics::new(&who, ROUTES);
    let replica_metrics = ReplicaMetrics::register(&mut metrics);
    files.time_syncs(replica_metrics.fsync.clone());
    log!(
        who,
        "loaded {} orders (last {:?}), promised epoch {}",
        orders.len(),
        orders.last().map(|o| o.number),
        meta.promised.epoch
    );
    let peers = config.peers();
    let mut named: Vec<(String, String)> = peers
        .iter()
        .map(|(id, url)| (format!("order-{id}"), url.clone()))
        .collect();
    named.push(("catalog".into(), catalog_url.clone()));
    let calls = metrics.peer_calls(&named);
    let (core, first) = core::Replica::new(
        config.id,
        peers.iter().map(|(i, _)| *i).collect(),
        quorum,
        orders,
        meta,
        0,
    );
    let (disk_tx, disk_rx) = crossbeam_channel::unbounded();
    let (catalog_tx, catalog_rx) = crossbeam_channel::unbounded();
    let (peer_tx, peer_rx) = peer_channels(&peers);
    let files = Arc::new(files);
    let replica = Arc::new(Replica {
        id: config.id,
        who,
        shell: Mutex::new(Shell {
            core,
            waiting: HashMap::new(),
            next_client: 0,
            answering: HashMap::new(),
            written: 0,
            persisted: 0,
            seen: Tally::default(),
        }),
        on_disk: Condvar::new(),
        started: Instant::now(),
        disk_tx,
        peer_tx,
        catalog_tx,
        catalog: Peer::new(CATALOG_TIMEOUT, config.service.secret.clone()).counted(&calls),
        catalog_url,
        stop: AtomicBool::new(false),
        threads: Mutex::new(Vec::new()),
        files: files.clone(),
        failure: Mutex::new(Failure::default()),
        metrics: replica_metrics,
    });
    {
        let mut shell = replica.shell.lock();
        replica.dispatch(&mut shell, first);
    }
    let secret = &config.service.secret;
    let r = replica.clone();
    replica.spawn("disk", move || {
        if let Err(e) = r.disk_loop(&files, &disk_rx) {
            r.fail(e);
        }
    });
    for (id, url, rx) in peer_rx {
        let (r, secret, calls) = (replica.clone(), secret.clone(), calls.clone());
        replica.spawn("send", move || r.send_loop(id, &url, &rx, secret, &calls));
    }
    for _ in 0..CATALOG_THREADS {
        let (r, rx) = (replica.clone(), catalog_rx.clone());
        replica.spawn("catalog", move || r.catalog_loop(&rx));
    }
    let r = replica.clone();
    replica.spawn("tick", move || r.tick_loop());

    let r = replica.clone();
    let handler: Handler = Arc::new(move |req: &Request| handle(&r, req));
    let options = ServerOptions {
        waits: Some(waits),
        ..config
            .service
            .internal_options()
            .with_metrics(&Arc::new(metrics))
    };
    let server = Server::start(listener, options, handler)?;
    let n = config.store.replicas.0.len();
    log!(
        replica.who,
        "serving on {} (quorum {quorum} of {n})",
        server.addr()
    );
    Ok(Running { server, replica })
}

/// The requests whose worker waits for other replicas or the catalog: a purchase (for a quorum's
/// acks), an order query and a leader notice (for promises). At most
/// [`ServerOptions::waiting_budget`] of them hold a worker, so the peers' messages and the
/// front-end's health pings they wait for always find one; without that, as many purchases as
/// workers would hold every worker until their deadline while the acks that commit them queued.
fn waits(method: &str, path: &str) -> bool {
    (method == "POST" && (path == "/orders" || path == "/internal/leader"))
        || (method == "GET" && path.starts_with("/orders/"))
}

/// Routes one request.
pub fn handle(r: &Arc<Replica>, req: &Request) -> Reply {
    match (&req.method, req.segments().as_slice()) {
        (Method::Post, ["orders"]) => Reply::from_result(
            req.json::<Purchase>()
                .and_then(|p| r.ask(core::Request::Purchase(p))),
        ),
        (Method::Get, ["orders", n]) => match n.parse::<OrderNumber>() {
            Ok(n) => Reply::from_result(r.ask(core::Request::Order(n))),
            Err(_) => Reply::error(&Error::BadRequest(format!(
                "{:?} is not an order number",
                shared::http::short(n)
            ))),
        },
        (Method::Get, ["internal", "health"]) => Reply::data(r.status()),
        (Method::Post, ["internal", "leader"]) => Reply::from_result(
            req.json::<LeaderNotice>()
                .and_then(|n| r.ask(core::Request::Notice(n.ballot))),
        ),
        (Method::Post, ["internal", "msg"]) => {
            Reply::from_result(req.json::<PeerBatch>().map(|b| r.receive(b)))
        }
        (_, ["orders"] | ["orders", _] | ["internal", "health" | "leader" | "msg"]) => {
            http::method_not_allowed(req)
        }
        _ => http::no_such_path(req),
    }
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

    /// The next item of `rx`; None once the replica stops (checked whenever `rx` is quiet).
    fn next<T>(&self, rx: &Receiver<T>) -> Option<T> {
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(item) => return Some(item),
                Err(_) if self.stopped() => return None,
                Err(_) => {}
            }
        }
    }

    /// Stops the replica because it cannot go on: it must not answer as if its disk held what it
    /// does not. Every thread ends, requests get 503, and whoever waits for a failure is told.
    fn fail(&self, e: Error) {
        log!(self.who, "cannot write the order log, stopping: {e}");
        self.stop.store(true, Ordering::SeqCst);
        let mut f = self.failure.lock();
        f.error.get_or_insert(e);
        if let Some(s) = &f.notify {
            s.trigger();
        }
    }

    fn now(&self) -> Ms {
        self.started.elapsed().as_millis() as Ms
    }

    /// Steps the core with `input` and hands out its effects.
    fn step(&self, input: Input) {
        let mut shell = self.shell.lock();
        let effects = shell.core.step(self.now(), input);
        self.dispatch(&mut shell, effects);
    }

    /// Hands each effect to the thread that carries it out, under the lock, so that writes and
    /// messages leave in the order the core made them, and sets the metrics that mirror the core.
    /// Nothing here blocks.
    fn dispatch(&self, shell: &mut Shell, effects: Vec<Effect>) {
        self.metrics.publish(&shell.core, &mut shell.seen);
        for e in effects {
            match e {
                Effect::Send { to, msg } => {
                    if let Some(answers) = shell.answering.get_mut(&to) {
                        answers.push(msg);
                    } else if let Some(tx) = self.peer_tx.get(&to) {
                        let _ = tx.send(msg);
                    }
                }
                Effect::Write { id, write } => {
                    shell.written = shell.written.max(id);
                    let _ = self.disk_tx.send((id, write));
                }
                Effect::Catalog(call) => {
                    let _ = self.catalog_tx.send(call);
                }
                Effect::Reply { client, result } => {
                    if let Some(tx) = shell.waiting.remove(&client) {
                        let _ = tx.send(result);
                    }
                }
                Effect::Log(line) => log!(self.who, "{line}"),
            }
        }
    }

    /// Asks the core and waits for its answer.
    fn ask(&self, request: core::Request) -> Result<Answer> {
        if let Some(e) = &self.failure.lock().error {
            return Err(Error::Unavailable(format!(
                "this replica stopped: {}; nothing was changed",
                e.message()
            )));
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let calls = {
            let mut shell = self.shell.lock();
            let client = shell.next_client;
            shell.next_client += 1;
            shell.waiting.insert(client, tx);
            let effects = shell
                .core
                .step(self.now(), Input::Request { client, request });
            // A purchase's take is made by its own worker, which waits anyway: one wake-up less.
            let mut calls = Vec::new();
            let others = effects
                .into_iter()
                .filter_map(|e| match e {
                    Effect::Catalog(call) => {
                        calls.push(call);
                        None
                    }
                    e => Some(e),
                })
                .collect();
            self.dispatch(&mut shell, others);
            calls
        };
        for call in calls {
            let reply = self.call_catalog(call);
            self.step(Input::Catalog(reply));
        }
        let wait = Duration::from_millis(core::REQUEST_DEADLINE) + ANSWER_SLACK;
        rx.recv_timeout(wait).unwrap_or_else(|_| {
            Err(Error::Indeterminate(
                "the replica did not answer in time".into(),
            ))
        })
    }

    /// A batch of a peer's messages, stepped in order. The messages for that peer that come of it,
    /// up to once this replica's writes of the batch are on disk (an append's ack), are returned to
    /// go back in the reply: the ack costs no message of its own, and no hand-off to a sender
    /// thread. Whatever comes later, or while another batch of the same peer is being taken, is
    /// sent as usual. A reply that is lost loses its messages like any lost message.
    fn receive(&self, batch: PeerBatch) -> Vec<ReplicaMsg> {
        let from = batch.from;
        let mut shell = self.shell.lock();
        let answer = !shell.answering.contains_key(&from);
        if answer {
            shell.answering.insert(from, Vec::new());
        }
        let before = shell.written;
        // Whatever happens (a panic is answered 500 by the server), the peer's messages must not be
        // left to a reply that will never be sent.
        let stepped = std::panic::catch_unwind(AssertUnwindSafe(|| {
            for msg in batch.msgs {
                let effects = shell.core.step(self.now(), Input::Peer { from, msg });
                self.dispatch(&mut shell, effects);
            }
        }));
        if !answer {
            return stepped.map_or_else(|p| std::panic::resume_unwind(p), |()| Vec::new());
        }
        if stepped.is_ok() && shell.written > before {
            let (target, until) = (shell.written, Instant::now() + PEER_ANSWER_WAIT);
            while shell.persisted < target && !self.stopped() {
                if self.on_disk.wait_until(&mut shell, until).timed_out() {
                    break;
                }
            }
        }
        let answers = shell.answering.remove(&from).unwrap_or_default();
        if let Err(p) = stepped {
            // Sent as messages rather than lost with the reply the panic replaces.
            for msg in answers {
                if let Some(tx) = self.peer_tx.get(&from) {
                    let _ = tx.send(msg);
                }
            }
            drop(shell);
            std::panic::resume_unwind(p);
        }
        answers
    }

    /// Messages a peer put in its reply to ours, stepped in order.
    fn take_answers(&self, from: ReplicaId, msgs: Vec<ReplicaMsg>) {
        let mut shell = self.shell.lock();
        for msg in msgs {
            let effects = shell.core.step(self.now(), Input::Peer { from, msg });
            self.dispatch(&mut shell, effects);
        }
    }

    /// This replica's status.
    pub fn status(&self) -> ReplicaStatus {
        self.shell.lock().core.status()
    }

    fn tick_loop(&self) {
        while !self.stopped() {
            std::thread::sleep(TICK);
            self.step(Input::Tick);
        }
    }

    /// Carries out writes in the order of their ids: appends are queued and synced together, the meta
    /// file and a rewrite only after every earlier append is on disk. Then tells the core. Returns
    /// the first write that fails: the replica then stops ([`Replica::fail`]).
    fn disk_loop(&self, files: &Files, rx: &Receiver<(u64, Write)>) -> Result<()> {
        while let Some(first) = self.next(rx) {
            let mut batch = vec![first];
            batch.extend(rx.try_iter());
            let upto = batch.last().map(|(id, _)| *id).expect("one write");
            apply_writes(files, batch, &self.metrics.batch_size)?;
            let mut shell = self.shell.lock();
            let effects = shell.core.step(self.now(), Input::Persisted(upto));
            shell.persisted = upto;
            self.dispatch(&mut shell, effects);
            drop(shell);
            self.on_disk.notify_all();
        }
        Ok(())
    }

    /// Posts queued messages to peer `id`, as many as are queued in one batch.
    fn send_loop(
        &self,
        id: ReplicaId,
        url: &str,
        rx: &Receiver<ReplicaMsg>,
        secret: Option<String>,
        calls: &PeerCalls,
    ) {
        let peer = Peer::new(PEER_TIMEOUT, secret.clone()).counted(calls);
        let bulk = Peer::new(BULK_TIMEOUT, secret).counted(calls);
        let url = format!("{url}/internal/msg");
        let mut down = false;
        while let Some(first) = self.next(rx) {
            let mut msgs = vec![first];
            msgs.extend(rx.try_iter().take(256));
            let orders: usize = msgs.iter().map(orders_in).sum();
            let batch = PeerBatch {
                from: self.id,
                msgs,
            };
            let via = if orders > 64 { &bulk } else { &peer };
            match via.post::<_, Option<Vec<ReplicaMsg>>>(&url, &batch) {
                Ok(answers) => {
                    if down {
                        log!(self.who, "replica {id} answers again");
                        down = false;
                    }
                    if let Some(answers) = answers.filter(|a| !a.is_empty()) {
                        self.take_answers(id, answers);
                    }
                }
                Err(e) => {
                    if !down {
                        log!(self.who, "replica {id} does not answer ({e}); messages to it are dropped until it does");
                        down = true;
                    }
                    self.step(Input::Unreachable(id));
                }
            }
        }
    }

    /// Makes the catalog calls the core asks for and steps their outcomes.
    fn catalog_loop(&self, rx: &Receiver<CatalogCall>) {
        while let Some(call) = self.next(rx) {
            let reply = self.call_catalog(call);
            self.step(Input::Catalog(reply));
        }
    }

    /// Makes one catalog call.
    fn call_catalog(&self, call: CatalogCall) -> CatalogReply {
        let (url, peer) = (&self.catalog_url, &self.catalog);
        match call {
            CatalogCall::Take(take) => {
                let result = peer.post(&format!("{url}/internal/take"), &take);
                CatalogReply::Take { take, result }
            }
            CatalogCall::Cancel(cancel) => {
                let result = peer.post(&format!("{url}/internal/cancel"), &cancel);
                CatalogReply::Cancel { cancel, result }
            }
            CatalogCall::List { after, epoch } => {
                let result = peer.get(&format!("{url}/internal/takes?after={after}&epoch={epoch}"));
                CatalogReply::List { epoch, result }
            }
            CatalogCall::Ping => CatalogReply::Ping(
                peer.get::<serde_json::Value>(&format!("{url}/internal/health"))
                    .map(|_| ()),
            ),
        }
    }
}

/// The queue of messages to each peer: the ends the core's effects go into, by peer, and the ends
/// each peer's sender thread takes from, with the peer's URL.
type PeerQueues = (
    HashMap<ReplicaId, Sender<ReplicaMsg>>,
    Vec<(ReplicaId, String, Receiver<ReplicaMsg>)>,
);

fn peer_channels(peers: &[(ReplicaId, String)]) -> PeerQueues {
    peers
        .iter()
        .map(|(id, url)| {
            let (tx, rx) = crossbeam_channel::unbounded();
            ((*id, tx), (*id, url.clone(), rx))
        })
        .unzip()
}

/// Orders a message carries.
fn orders_in(m: &ReplicaMsg) -> usize {
    match m {
        ReplicaMsg::Append(a) => a.entries.len(),
        ReplicaMsg::LogChunk { chunk, .. } => chunk.entries.len(),
        _ => 0,
    }
}

/// Applies `batch` in order, with one sync for the appends between two other writes; counts the
/// orders each sync made durable in `batch_size`.
fn apply_writes(files: &Files, batch: Vec<(u64, Write)>, batch_size: &Histogram) -> Result<()> {
    // The ticket of the newest append not yet synced, and the orders appended since the last sync.
    let mut pending = None;
    let mut orders_pending = 0usize;
    for (_, w) in batch {
        match w {
            Write::Append(orders) => {
                orders_pending += orders.len();
                pending = Some(files.append(&orders));
            }
            Write::Rewrite(orders) => {
                // A rewrite first syncs what was appended (then replaces the file).
                if pending.take().is_some() {
                    batch_size.observe(orders_pending as f64);
                }
                orders_pending = 0;
                files.rewrite(&orders)?;
            }
            Write::Meta(meta) => {
                if let Some(t) = pending.take() {
                    files.wait(t)?;
                    batch_size.observe(orders_pending as f64);
                    orders_pending = 0;
                }
                files.save_meta(&meta)?;
            }
        }
    }
    if let Some(t) = pending {
        files.wait(t)?;
        batch_size.observe(orders_pending as f64);
    }
    Ok(())
}
