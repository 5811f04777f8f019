//! The front-end's HTTP side: the public API, the internal endpoint for invalidations, the monitor
//! thread that watches the leader, and the loop that carries out [`Failover`]'s decisions.

use crate::cache::Cache;
use crate::failover::{Failover, Next};
use crate::leader::{choose, Choice, Verdict, Watch};
use crate::metrics::{FrontendMetrics, Invalidation, ROUTES};
use clap::Parser;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use shared::config::{self, ReplicaList, ServiceFlags, StoreAddrs};
use shared::http::{self, Handler, Method, Peer, Reply, Request, Server, ServerOptions};
use shared::metrics::Metrics;
use shared::protocol::{
    Ballot, Invalidate, LeaderNotice, OrderCreated, OrderInfo, OrderNumber, Product, Purchase,
    ReplicaId, ReplicaStatus, MAX_NAME,
};
use shared::{log, Error, Result};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use shared::timing::{HEALTH_EVERY_MS, LEADER_CALL_TIMEOUT_MS, PING_TIMEOUT_MS, QUERY_TIMEOUT_MS};

/// Timeout of a ping or leader notice (see [`shared::timing`] for every timeout's reason).
const PING_TIMEOUT: Duration = Duration::from_millis(PING_TIMEOUT_MS);
/// Timeout of a purchase call to the leader: a call open longer is retried at whoever leads then.
const LEADER_TIMEOUT: Duration = Duration::from_millis(LEADER_CALL_TIMEOUT_MS);
/// Timeout of an order query to the leader, after which every replica is asked at once.
const QUERY_TIMEOUT: Duration = Duration::from_millis(QUERY_TIMEOUT_MS);
/// Timeout of a call to the catalog.
const CATALOG_TIMEOUT: Duration = Duration::from_millis(1000);
/// How often the monitor pings the leader.
const MONITOR_EVERY: Duration = Duration::from_millis(HEALTH_EVERY_MS);
/// The public requests that wait on the leader (a purchase, through a failover if need be, and an
/// order query): they never take every worker, so product queries are answered however many
/// purchases wait (see [`ServerOptions::waits`]).
fn waits_on_the_leader(_method: &str, path: &str) -> bool {
    path == "/orders" || path.starts_with("/orders/")
}

/// Workers of the internal server: it only takes invalidations and status checks.
const INTERNAL_WORKERS: usize = 4;

/// The front-end's flags. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "frontend",
    version,
    about = "The toy store's front-end: public API, product cache, leader selection"
)]
pub struct Config {
    /// Public address (the REST API).
    #[arg(long, env = "TOYSTORE_LISTEN", default_value = config::DEFAULT_FRONTEND_LISTEN)]
    pub listen: String,
    /// Internal address, where the catalog pushes invalidations.
    #[arg(
        long,
        env = "TOYSTORE_INTERNAL_LISTEN",
        default_value = config::DEFAULT_FRONTEND_INTERNAL_LISTEN
    )]
    pub internal_listen: String,
    /// The catalog and the order replicas.
    #[command(flatten)]
    pub store: StoreAddrs,
    /// Products the cache holds at most.
    #[arg(
        long,
        env = "TOYSTORE_CACHE_CAPACITY",
        default_value_t = 1000,
        conflicts_with = "no_cache"
    )]
    pub cache_capacity: usize,
    /// Turn the product cache off.
    #[arg(long, env = "TOYSTORE_NO_CACHE")]
    pub no_cache: bool,
    /// The secret and the worker count (of the public server; the internal one has 4).
    #[command(flatten)]
    pub service: ServiceFlags,
}

/// The public body of `POST /orders`. Quantity is read as any JSON value and checked by hand, so that
/// `1.5`, `"1"`, `-1` and `1e30` all get the same clear 400.
#[derive(Deserialize, Debug)]
struct BuyBody {
    name: serde_json::Value,
    quantity: serde_json::Value,
    #[serde(default)]
    request_id: Option<serde_json::Value>,
}

/// What `GET /internal/status` answers: for tests, tools and curious people.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct FrontendStatus {
    /// The replica the front-end sends purchases to, if any.
    pub leader: Option<ReplicaId>,
    /// Its ballot.
    pub ballot: Option<Ballot>,
    /// Products cached.
    pub cached: usize,
    /// Cache hits so far.
    pub hits: u64,
    /// Cache misses so far.
    pub misses: u64,
}

#[derive(Clone)]
struct Leader {
    choice: Choice,
    url: String,
}

/// The front-end's state.
pub struct Frontend {
    catalog_url: String,
    replicas: ReplicaList,
    cache: Mutex<Cache>,
    leader: Mutex<Option<Leader>>,
    /// Held while a selection runs, so concurrent failures select once.
    selecting: Mutex<()>,
    known_epoch: AtomicU64,
    ping: Peer,
    orders: Peer,
    queries: Peer,
    catalog: Peer,
    next_request: AtomicU64,
    instance: String,
    stop: AtomicBool,
    metrics: FrontendMetrics,
}

/// A running front-end.
pub struct Running {
    public: Server,
    internal: Server,
    frontend: Arc<Frontend>,
    monitor: JoinHandle<()>,
}

impl Running {
    /// The public address.
    pub fn addr(&self) -> SocketAddr {
        self.public.addr()
    }

    /// The internal address.
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal.addr()
    }

    /// The front-end.
    pub fn frontend(&self) -> &Arc<Frontend> {
        &self.frontend
    }

    /// Stops both servers and the monitor.
    pub fn stop(self) {
        self.frontend.stop.store(true, Ordering::SeqCst);
        self.public.stop();
        self.internal.stop();
        let _ = self.monitor.join();
    }
}

/// Starts the front-end on two bound listeners: public and internal.
pub fn serve(config: &Config, public: TcpListener, internal: TcpListener) -> Result<Running> {
    let capacity = if config.no_cache {
        0
    } else {
        config.cache_capacity
    };
    let secret = &config.service.secret;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let catalog_url = config::base_url(&config.store.catalog).map_err(Error::Config)?;
    let mut metrics = Metrics::new("frontend", ROUTES);
    let frontend_metrics = FrontendMetrics::register(&mut metrics);
    let mut named = vec![("catalog".to_string(), catalog_url.clone())];
    for (id, url) in &config.store.replicas.0 {
        named.push((format!("order-{id}"), url.clone()));
    }
    let calls = metrics.peer_calls(&named);
    let metrics = Arc::new(metrics);
    let frontend = Arc::new(Frontend {
        catalog_url,
        replicas: config.store.replicas.clone(),
        cache: Mutex::new(Cache::new(capacity)),
        leader: Mutex::new(None),
        selecting: Mutex::new(()),
        known_epoch: AtomicU64::new(0),
        ping: Peer::new(PING_TIMEOUT, secret.clone()).counted(&calls),
        orders: Peer::new(LEADER_TIMEOUT, secret.clone()).counted(&calls),
        queries: Peer::new(QUERY_TIMEOUT, secret.clone()).counted(&calls),
        catalog: Peer::new(CATALOG_TIMEOUT, secret.clone()).counted(&calls),
        next_request: AtomicU64::new(0),
        instance: format!("fe{:x}", nanos as u64),
        stop: AtomicBool::new(false),
        metrics: frontend_metrics,
    });
    let f = frontend.clone();
    let public_handler: Handler = Arc::new(move |r: &Request| handle_public(&f, r));
    // Public requests are counted too; only the internal server serves /metrics.
    let options = ServerOptions {
        workers: config.service.workers,
        waits: Some(waits_on_the_leader),
        ..ServerOptions::public()
    }
    .with_metrics(&metrics);
    let public = Server::start(public, options, public_handler)?;
    let f = frontend.clone();
    let internal_handler: Handler = Arc::new(move |r: &Request| handle_internal(&f, r));
    let options = ServerOptions {
        workers: INTERNAL_WORKERS,
        metrics_open: config.service.metrics_open,
        ..ServerOptions::internal(secret.clone())
    }
    .with_metrics(&metrics);
    let internal = Server::start(internal, options, internal_handler)?;
    let f = frontend.clone();
    let monitor = std::thread::Builder::new()
        .name("monitor".into())
        .spawn(move || f.monitor())
        .expect("spawn");
    log!(
        "frontend",
        "serving on {} (internal {}), cache {}",
        public.addr(),
        internal.addr(),
        if capacity == 0 {
            "off".to_string()
        } else {
            format!("of {capacity} products")
        }
    );
    Ok(Running {
        public,
        internal,
        frontend,
        monitor,
    })
}

/// Routes a request to the public API.
pub fn handle_public(f: &Frontend, r: &Request) -> Reply {
    match (&r.method, r.segments().as_slice()) {
        (Method::Get, ["products", name]) => Reply::from_result(f.product(name)),
        (Method::Post, ["orders"]) => Reply::from_result(f.buy(&r.body)),
        (Method::Get, ["orders", n]) => match n.parse::<OrderNumber>() {
            Ok(n) => Reply::from_result(f.order(n)),
            Err(_) => Reply::error(&Error::BadRequest(format!(
                "order number must be a whole number, not {n:?}"
            ))),
        },
        (_, ["products", _] | ["orders"] | ["orders", _]) => http::method_not_allowed(r),
        _ => http::no_such_path(r),
    }
}

/// Routes a request to the internal server.
pub fn handle_internal(f: &Frontend, r: &Request) -> Reply {
    match (&r.method, r.segments().as_slice()) {
        (Method::Post, ["internal", "invalidate"]) => {
            Reply::from_result(r.json::<Invalidate>().map(|inv| {
                f.invalidate(&inv.names, Invalidation::Catalog);
                inv.names.len()
            }))
        }
        (Method::Get, ["internal", "status"]) => Reply::data(f.status()),
        (Method::Get, ["internal", "health"]) => Reply::data("ok"),
        (_, ["internal", "invalidate" | "status" | "health"]) => http::method_not_allowed(r),
        _ => http::no_such_path(r),
    }
}

/// Reads and checks the public purchase body: its JSON shape here, its fields with
/// [`shared::protocol::validate_purchase`], as every service checks them. `make_id` gives the request
/// id when the client gave none. Also says whether the client gave it.
fn parse_buy(body: &[u8], make_id: impl FnOnce() -> String) -> Result<(Purchase, bool)> {
    if !http::is_json_object(body) {
        return Err(Error::BadRequest(
            "body must be {\"name\": string, \"quantity\": integer}".into(),
        ));
    }
    let b: BuyBody = serde_json::from_slice(body).map_err(|e| {
        Error::BadRequest(format!(
            "body must be {{\"name\": string, \"quantity\": integer}}: {e}"
        ))
    })?;
    let name = b
        .name
        .as_str()
        .ok_or_else(|| Error::BadRequest("name must be a string".into()))?;
    let quantity = match &b.quantity {
        serde_json::Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(q), _) => q,
            (None, Some(_)) => return Err(Error::BadRequest("quantity must be at least 1".into())),
            _ => {
                return Err(Error::BadRequest(
                    "quantity must be a whole number from 1 to 2^64-1".into(),
                ))
            }
        },
        _ => return Err(Error::BadRequest("quantity must be a whole number".into())),
    };
    let (request_id, client_id) = match b.request_id {
        None | Some(serde_json::Value::Null) => (make_id(), false),
        Some(serde_json::Value::String(s)) => (s, true),
        Some(_) => return Err(Error::BadRequest("request_id must be a string".into())),
    };
    shared::protocol::validate_purchase(&request_id, name, quantity)?;
    let purchase = Purchase {
        request_id,
        name: name.to_string(),
        quantity,
        fresh: false,
    };
    Ok((purchase, client_id))
}

impl Frontend {
    /// `GET /products/<name>`, from the cache when it can.
    pub fn product(&self, raw_name: &str) -> Result<Product> {
        let name = http::percent_decode(raw_name).ok_or_else(|| {
            Error::BadRequest("product name must be percent-encoded UTF-8".into())
        })?;
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(Error::BadRequest(format!(
                "product name must have 1 to {MAX_NAME} bytes"
            )));
        }
        let generation = match self.cache.lock().lookup(&name) {
            Ok(p) => {
                self.metrics.cache_hits.inc();
                return Ok(p);
            }
            Err(g) => {
                self.metrics.cache_misses.inc();
                g
            }
        };
        let url = format!(
            "{}/products/{}",
            self.catalog_url,
            http::percent_encode(&name)
        );
        let product: Product = self.catalog.get(&url).map_err(|e| match e {
            Error::NotFound(_) => Error::NotFound(format!("no product called {name:?}")),
            e if e.is_retryable() => {
                Error::Unavailable(format!("the catalog is unavailable: {}", e.message()))
            }
            e => e,
        })?;
        let mut cache = self.cache.lock();
        if cache.store(product.clone(), generation) {
            self.metrics.cache_entries.set(cache.len() as i64);
        }
        Ok(product)
    }

    /// Drops `names` from the cache, counted as dropped `by` whom.
    fn invalidate(&self, names: &[String], by: Invalidation) {
        let mut cache = self.cache.lock();
        for n in names {
            cache.invalidate(n);
            self.metrics.invalidated(by);
        }
        self.metrics.cache_entries.set(cache.len() as i64);
    }

    /// `POST /orders`: passes the purchase to the leader with a request id, and on a leader failure
    /// chooses again and retries with the same id, so the purchase is applied once.
    pub fn buy(&self, body: &[u8]) -> Result<OrderCreated> {
        let (purchase, client_id) = parse_buy(body, || {
            format!(
                "{}-{}",
                self.instance,
                self.next_request.fetch_add(1, Ordering::Relaxed)
            )
        })?;
        let name = purchase.name.clone();
        let result = self.buy_with_failover(purchase, client_id);
        // Whatever the outcome but a refusal, the stock may have changed: a later query from this
        // client must not see the quantity from before it (read your writes), even if the catalog's
        // own invalidation is still on its way.
        if !matches!(result, Err(Error::BadRequest(_) | Error::NotFound(_))) {
            self.invalidate(&[name], Invalidation::Purchase);
        }
        result
    }

    /// Tries the purchase on whoever leads until [`Failover`] says what to answer: this loop only
    /// makes the calls, waits and choices it decides.
    fn buy_with_failover(&self, mut purchase: Purchase, client_id: bool) -> Result<OrderCreated> {
        let start = Instant::now();
        let mut failover = Failover::new(client_id);
        loop {
            let leader = match self.current_leader() {
                Ok(l) => l,
                Err(e) => return failover.give_up(e),
            };
            purchase.fresh = failover.fresh();
            let outcome = self
                .orders
                .post::<_, OrderCreated>(&format!("{}/orders", leader.url), &purchase);
            let elapsed_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            match failover.step(outcome, leader.choice.ballot, elapsed_ms) {
                Next::Answer(result) => return result,
                Next::Retry { after_ms } => {
                    self.metrics.retries_same_leader.inc();
                    std::thread::sleep(Duration::from_millis(after_ms))
                }
                Next::ChooseAgain { reported } => {
                    self.metrics.retries_new_leader.inc();
                    if let Some(b) = reported {
                        // The next choice must be newer than any the replicas follow.
                        self.known_epoch.fetch_max(b.epoch, Ordering::SeqCst);
                    }
                    self.reselect(&leader);
                }
            }
        }
    }

    /// `GET /orders/<n>`: asks the leader; when it does not answer in [`QUERY_TIMEOUT`], every
    /// replica at once, and the first that holds the order committed answers.
    pub fn order(&self, n: OrderNumber) -> Result<OrderInfo> {
        if let Some(leader) = self.leader.lock().clone() {
            match self
                .queries
                .get::<OrderInfo>(&format!("{}/orders/{n}", leader.url))
            {
                Ok(o) => return Ok(o),
                Err(e @ (Error::NotFound(_) | Error::BadRequest(_))) => return Err(e),
                Err(_) => {}
            }
        }
        let answers = http::call_all(&self.replicas.0, |url| {
            self.queries.get::<OrderInfo>(&format!("{url}/orders/{n}"))
        });
        let mut missing = 0;
        for (_, answer) in &answers {
            match answer {
                Ok(o) => return Ok(o.clone()),
                Err(Error::NotFound(_)) => missing += 1,
                Err(_) => {}
            }
        }
        if missing == answers.len() {
            return Err(Error::NotFound(format!("no order {n}")));
        }
        Err(Error::Unavailable("no order replica can answer now".into()))
    }

    /// What `GET /internal/status` shows.
    pub fn status(&self) -> FrontendStatus {
        let leader = self.leader.lock().clone();
        let cache = self.cache.lock();
        FrontendStatus {
            leader: leader.as_ref().map(|l| l.choice.leader),
            ballot: leader.map(|l| l.choice.ballot),
            cached: cache.len(),
            hits: cache.hits,
            misses: cache.misses,
        }
    }

    fn current_leader(&self) -> Result<Leader> {
        if let Some(l) = self.leader.lock().clone() {
            return Ok(l);
        }
        self.select(None)
    }

    /// The leader's answer to a health ping, if it answers in time.
    fn health(&self, leader: &Leader) -> Option<ReplicaStatus> {
        self.ping
            .get::<ReplicaStatus>(&format!("{}/internal/health", leader.url))
            .ok()
    }

    /// Chooses again after `failed` failed, unless another request already did.
    fn reselect(&self, failed: &Leader) {
        let _ = self.select(Some(failed.choice));
    }

    /// Pings every replica at once, chooses by [`choose`]'s rule (the highest id that can serve,
    /// unless the sitting leader still can), and tells every replica. `failed`: the choice that
    /// failed, so a selection another thread just made is kept.
    fn select(&self, failed: Option<Choice>) -> Result<Leader> {
        let _one_at_a_time = self.selecting.lock();
        let current = self.leader.lock().clone();
        if let Some(current) = &current {
            if Some(current.choice) != failed {
                return Ok(current.clone());
            }
        }
        let mut sitting = current.map(|l| l.choice.ballot);
        for _ in 0..4 {
            let pings: Vec<(ReplicaId, Option<ReplicaStatus>)> =
                http::call_all(&self.replicas.0, |url| {
                    self.ping
                        .get::<ReplicaStatus>(&format!("{url}/internal/health"))
                })
                .into_iter()
                .map(|(id, r)| (id, r.ok()))
                .collect();
            let known = self.known_epoch.load(Ordering::SeqCst);
            let Some(choice) = choose(&pings, known, sitting) else {
                self.no_leader();
                return Err(Error::Unavailable("no order replica answers".into()));
            };
            self.known_epoch
                .fetch_max(choice.ballot.epoch, Ordering::SeqCst);
            match self.announce(choice) {
                Ok(()) => return Ok(self.install(choice)),
                Err(Error::Stale(b)) => {
                    self.known_epoch.fetch_max(b.epoch, Ordering::SeqCst);
                    // A replica follows a newer choice: the sitting one is over.
                    sitting = None;
                }
                Err(e) => log!("frontend", "replica {} refused to lead: {e}", choice.leader),
            }
        }
        self.no_leader();
        Err(Error::Unavailable(
            "no order replica accepts to lead".into(),
        ))
    }

    /// Forgets the leader: purchases choose again.
    fn no_leader(&self) {
        *self.leader.lock() = None;
        self.metrics.leader_id.set(0);
    }

    /// Makes `choice` the leader purchases go to.
    fn install(&self, choice: Choice) -> Leader {
        let url = self
            .replicas
            .url(choice.leader)
            .expect("chosen from the list")
            .to_string();
        let leader = Leader { choice, url };
        let previous = self.leader.lock().replace(leader.clone());
        self.metrics.leader_id.set(i64::from(choice.leader));
        self.metrics
            .leader_epoch
            .set(i64::try_from(choice.ballot.epoch).unwrap_or(i64::MAX));
        if previous.map(|p| p.choice) != Some(choice) {
            self.metrics.leader_changes.inc();
            log!(
                "frontend",
                "leader chosen: replica {} (epoch {})",
                choice.leader,
                choice.ballot.epoch
            );
        }
        leader
    }

    /// Tells every replica who leads. Fails when the leader itself refuses or any replica has
    /// promised a newer choice ([`Error::Stale`], carrying that replica's promise).
    fn announce(&self, choice: Choice) -> Result<()> {
        let notice = &LeaderNotice {
            ballot: choice.ballot,
        };
        let results = http::call_all(&self.replicas.0, |url| {
            self.ping
                .post::<_, ReplicaStatus>(&format!("{url}/internal/leader"), notice)
        });
        let mut outcome = Ok(());
        for (id, r) in results {
            match r {
                Err(Error::Stale(b)) => return Err(Error::Stale(b)),
                Err(e) if id == choice.leader => outcome = Err(e),
                _ => {}
            }
        }
        outcome
    }

    /// Pings the leader every [`MONITOR_EVERY`] (at once again after a missed ping) and chooses
    /// again when [`Watch`] says it failed; selects when no leader is known.
    fn monitor(&self) {
        let started = Instant::now();
        let mut watch = Watch::new();
        let mut watched = None;
        let mut wait = true;
        while !self.stop.load(Ordering::SeqCst) {
            if wait {
                std::thread::sleep(MONITOR_EVERY);
            }
            wait = true;
            let Some(l) = self.leader.lock().clone() else {
                let _ = self.select(None);
                continue;
            };
            if watched != Some(l.choice) {
                watched = Some(l.choice);
                watch = Watch::new();
            }
            let health = self.health(&l);
            let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            match watch.step(now_ms, health.as_ref(), l.choice.ballot) {
                Verdict::Keep => {}
                Verdict::AskAgain => wait = false,
                Verdict::ChooseAgain(why) => {
                    log!(
                        "frontend",
                        "leader replica {} {why}; choosing again",
                        l.choice.leader
                    );
                    self.reselect(&l);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn made_id() -> String {
        "fe1-0".into()
    }

    fn purchase(request_id: &str, name: &str, quantity: u64) -> Purchase {
        Purchase {
            request_id: request_id.into(),
            name: name.into(),
            quantity,
            fresh: false,
        }
    }

    #[test]
    fn purchase_bodies_are_checked_field_by_field() {
        assert_eq!(
            parse_buy(br#"{"name":"Tux","quantity":2}"#, made_id).unwrap(),
            (purchase("fe1-0", "Tux", 2), false)
        );
        assert_eq!(
            parse_buy(br#"{"name":"Tux","quantity":2,"request_id":null}"#, made_id).unwrap(),
            (purchase("fe1-0", "Tux", 2), false)
        );
        assert_eq!(
            parse_buy(
                br#"{"name":"Tux","quantity":1,"request_id":"abc"}"#,
                || unreachable!("the client gave an id")
            )
            .unwrap(),
            (purchase("abc", "Tux", 1), true)
        );
        for bad in [
            &br#"{"name":"Tux","quantity":0}"#[..],
            br#"{"name":"Tux","quantity":-1}"#,
            br#"{"name":"Tux","quantity":1.5}"#,
            br#"{"name":"Tux","quantity":"1"}"#,
            br#"{"name":"Tux","quantity":1e30}"#,
            br#"{"name":"Tux","quantity":99999999999999999999999}"#,
            br#"{"name":"Tux"}"#,
            br#"{"quantity":1}"#,
            br#"{"name":5,"quantity":1}"#,
            br#"{"name":"","quantity":1}"#,
            br#"{"name":"Tux","quantity":1,"request_id":7}"#,
            br#"{"name":"Tux","quantity":"#,
            br#"[1,2]"#,
            br#"["Tux",1]"#,
            b"\xff\xfe",
            b"",
        ] {
            let e = parse_buy(bad, made_id).unwrap_err();
            assert!(
                matches!(e, Error::BadRequest(_)),
                "{}: {e:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn refused_purchases_say_why() {
        for (body, message) in [
            (
                &br#"{"name":"Tux","quantity":0}"#[..],
                "quantity must be at least 1",
            ),
            (
                br#"{"name":"Tux","quantity":-3}"#,
                "quantity must be at least 1",
            ),
            (
                br#"{"name":"","quantity":1}"#,
                "name must have 1 to 256 bytes",
            ),
            (
                br#"{"name":"Tux","quantity":1,"request_id":"a b"}"#,
                shared::protocol::REQUEST_ID_RULE,
            ),
            (
                br#"{"name":"Tux","quantity":1,"request_id":""}"#,
                shared::protocol::REQUEST_ID_RULE,
            ),
            (
                br#"{"name":"Tux","quantity":1,"request_id":7}"#,
                "request_id must be a string",
            ),
            (br#"{"name":5,"quantity":1}"#, "name must be a string"),
        ] {
            assert_eq!(
                parse_buy(body, made_id),
                Err(Error::BadRequest(message.into())),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let long = format!(r#"{{"name":"{}","quantity":1}}"#, "a".repeat(MAX_NAME + 1));
        assert!(parse_buy(long.as_bytes(), made_id).is_err());
        let longest = format!(r#"{{"name":"{}","quantity":1}}"#, "a".repeat(MAX_NAME));
        assert!(parse_buy(longest.as_bytes(), made_id).is_ok());
    }

    #[test]
    fn long_paths_are_cut_in_messages() {
        assert_eq!(http::short("/x"), "/x");
        assert_eq!(http::short(&"a".repeat(10_000)).len(), 83);
    }
}
