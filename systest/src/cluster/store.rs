//! The store as child processes: the catalog, three order replicas, the front-end and, with a
//! delay, the relay in front of it. Every call returns a `Result` whose error says what went wrong.

use super::layout::{Host, Layout, Link};
use super::procs::{Launch, Procs};
use crate::REPLICAS;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::protocol::{Order, ReplicaId, ReplicaStatus, Role, SECRET_HEADER};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Stock of every toy in a new catalog (the contract's).
pub const NEW_STOCK: u64 = shared::files::RESTOCK_QUANTITY;

/// Lines of each log that an error message of the store quotes.
const LOG_LINES: usize = 20;

/// An HTTP answer: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status, 0 for a transport error.
    pub status: u16,
    /// Parsed body, or the transport error's text.
    pub body: Value,
}

impl Answer {
    /// `body.data`, deserialised; panics with the answer when it is not a `T`.
    pub fn data<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body["data"].clone())
            .unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }

    fn of(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Answer {
        match result {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let bytes = r.body_mut().read_to_vec().unwrap_or_default();
                Answer {
                    status,
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                }
            }
            Err(e) => Answer {
                status: 0,
                body: Value::String(e.to_string()),
            },
        }
    }
}

/// How to run the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Folder of the release binaries (`catalog`, `order`, `frontend`, `relay`).
    pub bin: PathBuf,
    /// Hosts and ports.
    pub layout: Layout,
    /// The shared secret of internal calls (`TOYSTORE_SECRET` of every service).
    pub secret: String,
    /// The catalog's `--restock-interval` in seconds.
    pub restock_interval: f64,
    /// Delay the relay adds each way, in ms; 0: no relay, clients call the front-end directly.
    pub delay_ms: u64,
    /// When set, the catalog starts with this stock of every toy of [`StoreOptions::toys`] instead
    /// of the contract's 100 (a load that must not run out); the consistency check counts from it.
    pub stock: Option<u64>,
    /// The toys and prices of the catalog written when [`StoreOptions::stock`] is set.
    pub toys: &'static [(&'static str, f64)],
    /// Extra arguments per service (`catalog`, `order`, `frontend`), e.g. `--workers 8`.
    pub extra_args: BTreeMap<&'static str, Vec<String>>,
    /// The catalog sends no invalidations (it runs without a front-end, e.g. measured on its own).
    pub catalog_alone: bool,
    /// Time limit of each call the store makes to a service.
    pub call_timeout: Duration,
}

impl StoreOptions {
    /// Everything on 127.0.0.1 on the ports from `base`, binaries from `bin`, a fresh secret,
    /// restock every second, calls limited to 5 s.
    pub fn local(bin: PathBuf, base: u16) -> StoreOptions {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        StoreOptions {
            bin,
            layout: Layout::local(base),
            secret: format!("store-{:x}", nanos as u64),
            restock_interval: 1.0,
            delay_ms: 0,
            stock: None,
            toys: &[],
            extra_args: BTreeMap::new(),
            catalog_alone: false,
            call_timeout: Duration::from_secs(5),
        }
    }
}

/// What [`Store::check_consistent`] found when all was well.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consistency {
    /// Orders in every replica's file.
    pub orders: usize,
    /// Takes of stock in the catalog's journal (one per order).
    pub takes: usize,
    /// Restocks in the journal.
    pub restocks: usize,
}

/// Calls `attempt` until it passes or `timeout` passes; its last error otherwise.
pub fn retry<T>(
    timeout: Duration,
    pause: Duration,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(pause),
        }
    }
}

/// The store as child processes in a fresh temporary folder. Dropping it kills them.
pub struct Store {
    options: StoreOptions,
    dir: tempfile::TempDir,
    procs: Arc<Procs>,
    agent: ureq::Agent,
    cache: bool,
}

impl Store {
    /// A store in a fresh temporary folder, its processes recorded in `procs`. Nothing runs yet.
    pub fn new(options: StoreOptions, procs: Arc<Procs>) -> Result<Store, String> {
        let dir = tempfile::Builder::new()
            .prefix("toystore-")
            .tempdir()
            .map_err(|e| format!("cannot make a temporary folder: {e}"))?;
        procs.remember_dir(dir.path());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(500)))
            .timeout_global(Some(options.call_timeout))
            .proxy(None)
            .build()
            .into();
        Ok(Store {
            options,
            dir,
            procs,
            agent,
            cache: true,
        })
    }

    /// The shared secret of internal calls.
    pub fn secret(&self) -> &str {
        &self.options.secret
    }

    /// The store's temporary folder: `data/` and one `<process>.log` per process.
    pub fn folder(&self) -> &Path {
        self.dir.path()
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.options.layout
    }

    /// The options.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Sets the catalog's restock interval for its next start.
    pub fn set_restock_interval(&mut self, secs: f64) {
        self.options.restock_interval = secs;
    }

    /// The process registry.
    pub fn procs(&self) -> &Arc<Procs> {
        &self.procs
    }

    /// The URL clients use: the relay's when there is a delay, else the front-end's.
    pub fn client_url(&self) -> String {
        if self.options.delay_ms > 0 {
            self.options.layout.relay_url()
        } else {
            self.options.layout.frontend_url()
        }
    }

    /// Fails, naming each one, when a port of a process that runs here is taken.
    pub fn check_ports_free(&self) -> Result<(), String> {
        let mut busy = Vec::new();
        for (name, host, port) in self.options.layout.hosts() {
            if host.netns.is_some() || (name == "relay" && self.options.delay_ms == 0) {
                continue;
            }
            if TcpListener::bind((host.ip.as_str(), port)).is_err() {
                busy.push(format!("{}:{port} ({name})", host.ip));
            }
        }
        if busy.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "these ports are in use: {}. Is a store already running (make run)? Stop it, or pick other \
                 ports with --base-port (BASE_PORT=... for make).",
                busy.join(", ")
            ))
        }
    }

    /// Starts `binary` as process `name` on `host`, with the secret, logging to `<name>.log`.
    fn spawn(
        &self,
        name: &str,
        binary: &str,
        host: &Host,
        mut args: Vec<String>,
    ) -> Result<(), String> {
        if let Some(extra) = self.options.extra_args.get(binary) {
            args.extend(extra.iter().cloned());
        }
        let launch = Launch {
            netns: host.netns.clone(),
            env: vec![("TOYSTORE_SECRET", self.options.secret.clone())],
            log: Some(self.dir.path().join(format!("{name}.log"))),
            ..Launch::new(self.options.bin.join(binary), args)
        };
        self.procs.spawn(name, &launch)
    }

    /// Starts the catalog and waits (up to 10 s) until it answers.
    pub fn start_catalog_alone(&self) -> Result<(), String> {
        self.start_catalog()?;
        let url = format!("{}/products/Tux", self.options.layout.catalog_url());
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get(&url, true).status != 200 {
            if Instant::now() > deadline || !self.is_running("catalog") {
                return Err(format!("the catalog did not start:\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the catalog (first writing its file when [`StoreOptions::stock`] is set).
    pub fn start_catalog(&self) -> Result<(), String> {
        if let Some(stock) = self.options.stock {
            let mut text = String::from("name,price,quantity\n");
            for (name, price) in self.options.toys {
                text.push_str(&format!("{name},{price},{stock}\n"));
            }
            std::fs::write(self.data().join("catalog.csv"), text).map_err(|e| e.to_string())?;
        }
        let l = &self.options.layout;
        let args = vec![
            "--listen".into(),
            format!("{}:{}", l.catalog.ip, l.ports.catalog),
            "--data".into(),
            self.data().display().to_string(),
            "--frontend".into(),
            if self.options.catalog_alone {
                String::new()
            } else {
                l.peer_frontend_internal_url()
            },
            "--restock-interval".into(),
            self.options.restock_interval.to_string(),
        ];
        self.spawn("catalog", "catalog", &l.catalog, args)
    }

    /// Starts order replica `id`.
    pub fn start_order(&self, id: ReplicaId) -> Result<(), String> {
        let l = &self.options.layout;
        let i = id as usize - 1;
        let args = vec![
            "--id".into(),
            id.to_string(),
            "--listen".into(),
            format!("{}:{}", l.orders[i].ip, l.ports.orders[i]),
            "--data".into(),
            self.data().display().to_string(),
            "--catalog".into(),
            l.peer_catalog_url(),
            "--replicas".into(),
            l.peer_replica_list(),
        ];
        self.spawn(&format!("order-{id}"), "order", &l.orders[i], args)
    }

    /// Starts the front-end, with its cache on or off.
    pub fn start_frontend(&mut self, cache: bool) -> Result<(), String> {
        self.cache = cache;
        let l = &self.options.layout;
        let mut args = vec![
            "--listen".into(),
            format!("{}:{}", l.frontend.ip, l.ports.frontend),
            "--internal-listen".into(),
            format!("{}:{}", l.frontend.ip, l.ports.frontend_internal),
            "--catalog".into(),
            l.peer_catalog_url(),
            "--replicas".into(),
            l.peer_replica_list(),
        ];
        if !cache {
            args.push("--no-cache".into());
        }
        self.spawn("frontend", "frontend", &l.frontend, args)
    }

    /// Whether the front-end was last started with its cache on.
    pub fn cache(&self) -> bool {
        self.cache
    }

    /// Starts the relay in front of the front-end (only with a delay).
    pub fn start_relay(&self) -> Result<(), String> {
        let l = &self.options.layout;
        let args = vec![
            "--listen".into(),
            format!("{}:{}", l.relay.ip, l.ports.relay),
            "--to".into(),
            format!("{}:{}", l.frontend.ip, l.ports.frontend),
            "--delay-ms".into(),
            self.options.delay_ms.to_string(),
        ];
        self.spawn("relay", "relay", &l.relay, args)
    }

    /// Where the delay of `link`'s relay is written.
    fn link_delay_file(&self, link: &Link) -> PathBuf {
        self.dir.path().join(format!("link-{}.delay", link.name()))
    }

    /// Starts the relay of every link of a relayed layout ([`Layout::links`]), each as process
    /// `link-FROM-TO` on the caller's host, with no delay.
    pub fn start_links(&self) -> Result<(), String> {
        for link in self.options.layout.links() {
            let file = self.link_delay_file(&link);
            std::fs::write(&file, "0\n").map_err(|e| format!("{}: {e}", file.display()))?;
            let args = vec![
                "--listen".into(),
                link.listen.clone(),
                "--to".into(),
                link.target.clone(),
                "--delay-file".into(),
                file.display().to_string(),
            ];
            self.spawn(&format!("link-{}", link.name()), "relay", &link.host, args)?;
        }
        Ok(())
    }

    /// Sets the delay, each way, of every link from or to `service` (as the hosts name it:
    /// `frontend`, `catalog`, `order1`, ...); `Duration::ZERO` heals them. The relays take it within
    /// 50 ms. Returns the links changed.
    pub fn set_link_delay(&self, service: &str, delay: Duration) -> Result<Vec<String>, String> {
        let mut changed = Vec::new();
        for link in self.options.layout.links() {
            if link.from == service || link.to == service {
                let file = self.link_delay_file(&link);
                // Written whole, then renamed: a relay never reads half a number.
                let tmp = file.with_extension("tmp");
                std::fs::write(&tmp, format!("{}\n", delay.as_millis()))
                    .and_then(|()| std::fs::rename(&tmp, &file))
                    .map_err(|e| format!("{}: {e}", file.display()))?;
                changed.push(link.name());
            }
        }
        Ok(changed)
    }

    /// Starts every process (the relay only with a delay, the links' relays only when the layout is
    /// relayed), without waiting for them.
    pub fn start_processes(&mut self, cache: bool) -> Result<(), String> {
        self.start_links()?;
        self.start_catalog()?;
        for id in REPLICAS {
            self.start_order(id)?;
        }
        self.start_frontend(cache)?;
        if self.options.delay_ms > 0 {
            self.start_relay()?;
        }
        Ok(())
    }

    /// Starts everything and waits (up to 30 s) until a purchase can be served.
    pub fn start_all(&mut self, cache: bool) -> Result<(), String> {
        self.start_processes(cache)?;
        self.wait_ready(Duration::from_secs(30))
    }

    /// Restarts the front-end with the cache on or off and waits until it serves.
    pub fn restart_frontend(&mut self, cache: bool) -> Result<(), String> {
        self.procs.kill("frontend");
        self.wait_port_released(
            &self.options.layout.frontend.clone(),
            self.options.layout.ports.frontend,
        );
        self.start_frontend(cache)?;
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_port_released(&self, host: &Host, port: u16) {
        if host.netns.is_some() {
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpListener::bind((host.ip.as_str(), port)).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs process `name` (`catalog`, `order-N`, `frontend`, `relay`) and reaps it. False
    /// when it was not running.
    pub fn kill(&self, name: &str) -> bool {
        self.procs.kill(name)
    }

    /// True while `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.procs.pid(name).is_some()
    }

    /// Waits until the front-end answers a query and its leader answers as leader. Fails at once
    /// when a process that was started has exited by itself.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let tux = format!("{}/products/Tux", self.client_url());
        loop {
            if let Some(l) = self.leader() {
                if self
                    .replica_status(l)
                    .is_some_and(|s| s.role == Role::Leader)
                    && self.get(&tux, false).status == 200
                {
                    return Ok(());
                }
            }
            for name in ["catalog", "order-1", "order-2", "order-3", "frontend"] {
                if self.procs.exited(name) {
                    return Err(format!(
                        "{name} exited while the store was starting:\n{}",
                        self.logs()
                    ));
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the store did not become ready in {timeout:?}:\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// GET `url`, with the secret when `internal`.
    pub fn get(&self, url: &str, internal: bool) -> Answer {
        let mut rq = self.agent.get(url);
        if internal {
            rq = rq.header(SECRET_HEADER, &self.options.secret);
        }
        Answer::of(rq.call())
    }

    /// POST `body` as JSON to `url`, with the secret when `internal`.
    pub fn post(&self, url: &str, body: &Value, internal: bool) -> Answer {
        let mut rq = self.agent.post(url);
        if internal {
            rq = rq.header(SECRET_HEADER, &self.options.secret);
        }
        Answer::of(rq.send(serde_json::to_vec(body).unwrap_or_default()))
    }

    /// The front-end's `/internal/status` data (leader, cache counters).
    pub fn frontend_status(&self) -> Option<Value> {
        let url = self.options.layout.frontend_internal_url();
        let a = self.get(&format!("{url}/internal/status"), true);
        (a.status == 200).then(|| a.body["data"].clone())
    }

    /// The replica the front-end sends purchases to.
    pub fn leader(&self) -> Option<ReplicaId> {
        self.frontend_status()
            .and_then(|s| s["leader"].as_u64())
            .map(|l| l as ReplicaId)
    }

    /// The front-end's cache hits and misses so far.
    pub fn cache_counters(&self) -> (u64, u64) {
        let s = self.frontend_status().unwrap_or(Value::Null);
        (
            s["hits"].as_u64().unwrap_or(0),
            s["misses"].as_u64().unwrap_or(0),
        )
    }

    /// Replica `id`'s `/internal/health` data, if it answers.
    pub fn replica_health(&self, id: ReplicaId) -> Option<Value> {
        let url = self.options.layout.order_url(id);
        let a = self.get(&format!("{url}/internal/health"), true);
        (a.status == 200).then(|| a.body["data"].clone())
    }

    /// Replica `id`'s health answer, typed.
    pub fn replica_status(&self, id: ReplicaId) -> Option<ReplicaStatus> {
        serde_json::from_value(self.replica_health(id)?).ok()
    }

    /// Waits until replica `id` has caught up: ready, and a copy of the leader's log.
    pub fn wait_replica_synced(&self, id: ReplicaId, timeout: Duration) -> bool {
        let synced = || {
            let leader = self.leader().and_then(|l| self.replica_status(l));
            match (self.replica_status(id), leader) {
                (Some(me), Some(leader))
                    if me.ready
                        && (me.id == leader.id
                            || (me.log_ballot == leader.promised && me.role == Role::Follower)) =>
                {
                    Ok(())
                }
                _ => Err(String::new()),
            }
        };
        retry(timeout, Duration::from_millis(50), synced).is_ok()
    }

    /// The last lines of every process's log.
    pub fn logs(&self) -> String {
        crate::tail_logs(self.dir.path(), LOG_LINES)
    }

    /// The catalog's stock of every toy, asked directly.
    pub fn stock(&self) -> Result<BTreeMap<String, u64>, String> {
        let url = format!("{}/products", self.options.layout.catalog_url());
        let a = self.get(&url, true);
        if a.status != 200 {
            return Err(format!(
                "the catalog's product list answered {}: {}",
                a.status, a.body
            ));
        }
        let products = a.body["data"].as_array().cloned().unwrap_or_default();
        Ok(products
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap_or_default().to_string();
                (name, p["quantity"].as_u64().unwrap_or(0))
            })
            .collect())
    }

    /// Checks once, with [`crate::check_store`]: every replica's order file holds the same orders,
    /// numbered 0..n; no request id appears twice; every take of stock in the catalog's journal has
    /// exactly one order; for every toy, stock = the starting stock + restocked - ordered. Returns
    /// the orders.
    pub fn check_orders(&self) -> Result<Vec<Order>, String> {
        let base = self.options.stock.unwrap_or(NEW_STOCK);
        crate::check_store(&self.data(), &self.stock()?, base)
    }

    /// [`Store::check_orders`], counted.
    pub fn check_consistent(&self) -> Result<Consistency, String> {
        let orders = self.check_orders()?;
        let journal = crate::read_journal(&self.data())?;
        Ok(Consistency {
            orders: orders.len(),
            takes: journal
                .iter()
                .filter(|r| r.kind == crate::JournalKind::Take)
                .count(),
            restocks: journal
                .iter()
                .filter(|r| r.kind == crate::JournalKind::Restock)
                .count(),
        })
    }

    /// [`Store::check_consistent`] until it passes or `timeout` passes (replicas that were just
    /// restarted may still be catching up); the last error otherwise.
    pub fn wait_consistent(&self, timeout: Duration) -> Result<Consistency, String> {
        retry(timeout, Duration::from_millis(200), || {
            self.check_consistent()
        })
    }
}

impl Drop for Store {
    /// Kills the store's processes (others in the same registry, such as the benchmark's floor, are
    /// left to their owner).
    fn drop(&mut self) {
        for name in [
            "relay", "frontend", "order-1", "order-2", "order-3", "catalog",
        ] {
            self.procs.kill(name);
        }
    }
}
