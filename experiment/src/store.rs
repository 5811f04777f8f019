//! Running the real store for an experiment: the catalog, three order replicas, the front-end and,
//! when a delay is asked for, the [`relay`](crate::relay) in front of the front-end.
//!
//! Every process is a child of this one, started from the release binaries with the contract's
//! flags, and recorded in [`Procs`], which kills them all when the [`Store`] is dropped, and from a
//! Ctrl-C or SIGTERM handler (see [`Procs::install_interrupt_handler`]). A process runs either here,
//! bound to 127.0.0.1, or on a "host" made as a network namespace (`ip netns exec NS BINARY ...`,
//! which execs the binary, so the child's pid is the service's own and a SIGKILL reaches it).
//!
//! The data folder is a fresh temporary folder per [`Store`], so every experiment starts from the
//! contract's default catalog (ten toys, 100 each) and empty order logs.

use parking_lot::Mutex;
use serde_json::Value;
use shared::protocol::{ReplicaId, ReplicaStatus, Role, SECRET_HEADER};
use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use systest::REPLICAS;

/// Stock of every toy in a new catalog (the contract's).
pub const NEW_STOCK: u64 = 100;

/// The contract's default port of the front-end; [`Ports::from_base`] with it gives the contract's
/// ports.
pub const CONTRACT_BASE_PORT: u16 = 8080;

/// Where one process runs: in a network namespace (`None`: in this process's) and bound to an
/// address of that namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The namespace, as `ip netns` names it.
    pub netns: Option<String>,
    /// The address the process binds and others call it on.
    pub ip: String,
}

impl Host {
    /// This machine's loopback.
    pub fn local() -> Host {
        Host {
            netns: None,
            ip: "127.0.0.1".into(),
        }
    }

    /// Parses `[NETNS@]IP`.
    pub fn parse(text: &str) -> Result<Host, String> {
        let (netns, ip) = match text.split_once('@') {
            Some((ns, ip)) => (Some(ns.trim().to_string()), ip.trim()),
            None => (None, text.trim()),
        };
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("`{ip}` is not an IP address"));
        }
        if netns
            .as_deref()
            .is_some_and(|ns| ns.is_empty() || ns.contains('/'))
        {
            return Err(format!("`{text}`: bad namespace name"));
        }
        Ok(Host {
            netns,
            ip: ip.to_string(),
        })
    }
}

/// The ports of the store's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Front-end, public API.
    pub frontend: u16,
    /// Catalog.
    pub catalog: u16,
    /// Front-end, internal address (invalidations).
    pub frontend_internal: u16,
    /// Order replicas 1, 2, 3.
    pub orders: [u16; 3],
    /// The relay in front of the front-end.
    pub relay: u16,
}

impl Ports {
    /// The contract's layout shifted to start at `base`: front-end `base`, catalog `base+1`,
    /// internal `base+2`, relay `base+3`, replicas `base+11..=base+13` (8080, 8081, 8082, 8083,
    /// 8091-8093 for the default base).
    pub fn from_base(base: u16) -> Ports {
        Ports {
            frontend: base,
            catalog: base + 1,
            frontend_internal: base + 2,
            relay: base + 3,
            orders: [base + 11, base + 12, base + 13],
        }
    }
}

/// Which host each process runs on, and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The front-end's host.
    pub frontend: Host,
    /// The catalog's host.
    pub catalog: Host,
    /// Replicas 1, 2, 3.
    pub orders: [Host; 3],
    /// The relay's host (used only with a delay).
    pub relay: Host,
    /// Ports, the same on every host.
    pub ports: Ports,
}

impl Layout {
    /// Everything on 127.0.0.1 with the ports of [`Ports::from_base`].
    pub fn local(base: u16) -> Layout {
        Layout {
            frontend: Host::local(),
            catalog: Host::local(),
            orders: [Host::local(), Host::local(), Host::local()],
            relay: Host::local(),
            ports: Ports::from_base(base),
        }
    }

    /// [`Layout::local`] with the hosts named in `spec` replaced: a comma-separated list of
    /// `SERVICE=[NETNS@]IP` with SERVICE one of frontend, catalog, order1, order2, order3, relay.
    pub fn with_hosts(base: u16, spec: &str) -> Result<Layout, String> {
        let mut layout = Layout::local(base);
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, host) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not SERVICE=[NETNS@]IP"))?;
            let host = Host::parse(host)?;
            match name.trim() {
                "frontend" => layout.frontend = host,
                "catalog" => layout.catalog = host,
                "order1" => layout.orders[0] = host,
                "order2" => layout.orders[1] = host,
                "order3" => layout.orders[2] = host,
                "relay" => layout.relay = host,
                other => return Err(format!("unknown service `{other}` in the host list")),
            }
        }
        Ok(layout)
    }

    /// True when every process runs in this namespace.
    pub fn is_local(&self) -> bool {
        self.hosts().iter().all(|(_, h, _)| h.netns.is_none())
    }

    /// Every process's name, host and port.
    pub fn hosts(&self) -> Vec<(String, &Host, u16)> {
        let p = &self.ports;
        let mut v = vec![
            ("frontend".to_string(), &self.frontend, p.frontend),
            (
                "frontend (internal)".to_string(),
                &self.frontend,
                p.frontend_internal,
            ),
            ("catalog".to_string(), &self.catalog, p.catalog),
        ];
        for (i, h) in self.orders.iter().enumerate() {
            v.push((format!("order-{}", i + 1), h, p.orders[i]));
        }
        v.push(("relay".to_string(), &self.relay, p.relay));
        v
    }

    /// The front-end's public URL (directly, not through the relay).
    pub fn frontend_url(&self) -> String {
        format!("http://{}:{}", self.frontend.ip, self.ports.frontend)
    }

    /// The front-end's internal URL.
    pub fn frontend_internal_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.frontend.ip, self.ports.frontend_internal
        )
    }

    /// The catalog's URL.
    pub fn catalog_url(&self) -> String {
        format!("http://{}:{}", self.catalog.ip, self.ports.catalog)
    }

    /// Replica `id`'s URL.
    pub fn order_url(&self, id: ReplicaId) -> String {
        let i = id as usize - 1;
        format!("http://{}:{}", self.orders[i].ip, self.ports.orders[i])
    }

    /// The relay's URL.
    pub fn relay_url(&self) -> String {
        format!("http://{}:{}", self.relay.ip, self.ports.relay)
    }

    /// The `--replicas` list.
    pub fn replica_list(&self) -> String {
        REPLICAS
            .iter()
            .map(|id| format!("{id}={}", self.order_url(*id)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Every process an experiment started, by name, so that all of them can be killed from anywhere:
/// when the [`Store`] is dropped, on a panic, and from the Ctrl-C / SIGTERM handler.
#[derive(Default)]
pub struct Procs {
    children: Mutex<BTreeMap<String, Child>>,
    dirs: Mutex<Vec<PathBuf>>,
}

impl Procs {
    /// An empty registry, shared.
    pub fn new() -> Arc<Procs> {
        Arc::new(Procs::default())
    }

    /// Records a started child.
    pub fn insert(&self, name: &str, child: Child) {
        if let Some(mut old) = self.children.lock().insert(name.to_string(), child) {
            kill_child(&mut old);
        }
    }

    /// Records a folder to delete when the run is interrupted.
    pub fn remember_dir(&self, dir: &Path) {
        self.dirs.lock().push(dir.to_path_buf());
    }

    /// The pid of `name`, while it runs.
    pub fn pid(&self, name: &str) -> Option<u32> {
        let mut children = self.children.lock();
        let child = children.get_mut(name)?;
        match child.try_wait() {
            Ok(None) => Some(child.id()),
            _ => None,
        }
    }

    /// SIGKILLs `name` and reaps it. False when it was not running.
    pub fn kill(&self, name: &str) -> bool {
        let child = self.children.lock().remove(name);
        match child {
            Some(mut c) => {
                kill_child(&mut c);
                true
            }
            None => false,
        }
    }

    /// SIGKILLs and reaps every process.
    pub fn kill_all(&self) {
        let children = std::mem::take(&mut *self.children.lock());
        for (_, mut c) in children {
            kill_child(&mut c);
        }
    }

    /// Installs a Ctrl-C / SIGTERM handler that kills every process, deletes the remembered
    /// folders and exits with 130. Call once, from a binary's `main`.
    pub fn install_interrupt_handler(self: &Arc<Self>) {
        let procs = self.clone();
        let result = ctrlc::set_handler(move || {
            eprintln!("\ninterrupted: stopping every process this run started");
            procs.kill_all();
            for d in procs.dirs.lock().iter() {
                let _ = std::fs::remove_dir_all(d);
            }
            std::process::exit(130);
        });
        if let Err(e) = result {
            eprintln!(
                "warning: no Ctrl-C handler ({e}); the store is still stopped on a normal exit"
            );
        }
    }
}

impl Drop for Procs {
    /// The last owner gone (also when a run fails half-way): nothing it started may outlive it.
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// SIGCONT (a stopped child would not die promptly), SIGKILL, reap.
fn kill_child(child: &mut Child) {
    if let Ok(None) = child.try_wait() {
        // SAFETY: kill(2) on the pid of a child this process started and has not reaped yet.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGCONT);
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}

/// How to run the store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Folder of the release binaries (`catalog`, `order`, `frontend`, `relay`).
    pub bin: PathBuf,
    /// Hosts and ports.
    pub layout: Layout,
    /// The catalog's `--restock-interval` in seconds.
    pub restock_interval: f64,
    /// Delay the relay adds each way, in ms; 0: no relay, clients call the front-end directly.
    pub delay_ms: u64,
    /// When set, the catalog starts with this stock of every toy instead of the contract's 100 (a
    /// load that must not run out); the consistency check counts from it.
    pub stock: Option<u64>,
    /// Extra arguments of the front-end (e.g. `--workers 8`).
    pub frontend_args: Vec<String>,
    /// The catalog sends no invalidations (it runs without a front-end, e.g. measured on its own).
    pub catalog_alone: bool,
}

impl StoreOptions {
    /// Local store on the ports from `base`, binaries from `bin`.
    pub fn local(bin: PathBuf, base: u16) -> StoreOptions {
        StoreOptions {
            bin,
            layout: Layout::local(base),
            restock_interval: 1.0,
            delay_ms: 0,
            stock: None,
            frontend_args: Vec::new(),
            catalog_alone: false,
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

/// The store as child processes. Dropping it kills them.
pub struct Store {
    options: StoreOptions,
    dir: tempfile::TempDir,
    secret: String,
    procs: Arc<Procs>,
    agent: ureq::Agent,
    cache: bool,
}

impl Store {
    /// A store in a fresh temporary folder. Nothing runs yet.
    pub fn new(options: StoreOptions, procs: Arc<Procs>) -> std::io::Result<Store> {
        let dir = tempfile::Builder::new()
            .prefix("toystore-experiment-")
            .tempdir()?;
        procs.remember_dir(dir.path());
        std::fs::create_dir_all(dir.path().join("data"))?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(500)))
            .timeout_global(Some(Duration::from_secs(5)))
            .proxy(None)
            .build()
            .into();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Ok(Store {
            options,
            dir,
            secret: format!("experiment-{:x}", nanos as u64),
            procs,
            agent,
            cache: true,
        })
    }

    /// The shared secret of internal calls.
    pub fn secret(&self) -> &str {
        &self.secret
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

    fn spawn(
        &self,
        name: &str,
        binary: &str,
        host: &Host,
        args: Vec<String>,
    ) -> Result<(), String> {
        let log_path = self.dir.path().join(format!("{name}.log"));
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        let program = self.options.bin.join(binary);
        if !program.exists() {
            return Err(format!(
                "{} is missing: run `make build` first (or set TOYSTORE_BIN)",
                program.display()
            ));
        }
        let mut command = match &host.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        // The services read every flag from TOYSTORE_* too: none of this process's may leak in.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TOYSTORE_") {
                command.env_remove(key);
            }
        }
        let child = command
            .args(&args)
            .env("TOYSTORE_SECRET", &self.secret)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        self.procs.insert(name, child);
        Ok(())
    }

    /// Starts the catalog and waits (up to 10 s) until it answers.
    pub fn start_catalog_alone(&self) -> Result<(), String> {
        self.start_catalog()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .get(
                &format!("{}/products/Tux", self.options.layout.catalog_url()),
                true,
            )
            .0
            != 200
        {
            if Instant::now() > deadline || !self.is_running("catalog") {
                return Err(format!("the catalog did not start:\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Starts the catalog.
    pub fn start_catalog(&self) -> Result<(), String> {
        if let Some(stock) = self.options.stock {
            let mut text = String::from("name,price,quantity\n");
            for (name, price) in crate::TOYS {
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
                l.frontend_internal_url()
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
            l.catalog_url(),
            "--replicas".into(),
            l.replica_list(),
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
            l.catalog_url(),
            "--replicas".into(),
            l.replica_list(),
        ];
        if !cache {
            args.push("--no-cache".into());
        }
        args.extend(self.options.frontend_args.iter().cloned());
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

    /// Starts everything and waits until a purchase can be served.
    pub fn start_all(&mut self, cache: bool) -> Result<(), String> {
        self.start_catalog()?;
        for id in REPLICAS {
            self.start_order(id)?;
        }
        self.start_frontend(cache)?;
        if self.options.delay_ms > 0 {
            self.start_relay()?;
        }
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

    /// SIGKILLs process `name` (`catalog`, `order-N`, `frontend`, `relay`).
    pub fn kill(&self, name: &str) -> bool {
        self.procs.kill(name)
    }

    /// True while `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.procs.pid(name).is_some()
    }

    /// Waits until the front-end answers a query and its leader answers as leader.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader() {
                if self
                    .replica_status(l)
                    .is_some_and(|s| s.role == Role::Leader)
                    && self
                        .get(&format!("{}/products/Tux", self.client_url()), false)
                        .0
                        == 200
                {
                    return Ok(());
                }
            }
            for name in ["catalog", "order-1", "order-2", "order-3", "frontend"] {
                if !self.is_running(name) {
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

    /// GET `url`: status (0 on a transport error) and JSON body.
    pub fn get(&self, url: &str, internal: bool) -> (u16, Value) {
        let mut rq = self.agent.get(url);
        if internal {
            rq = rq.header(SECRET_HEADER, &self.secret);
        }
        match rq.call() {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let bytes = r.body_mut().read_to_vec().unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    /// The front-end's `/internal/status` data (leader, cache counters).
    pub fn frontend_status(&self) -> Option<Value> {
        let (status, body) = self.get(
            &format!(
                "{}/internal/status",
                self.options.layout.frontend_internal_url()
            ),
            true,
        );
        (status == 200).then(|| body["data"].clone())
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

    /// Replica `id`'s health answer.
    pub fn replica_status(&self, id: ReplicaId) -> Option<ReplicaStatus> {
        let (status, body) = self.get(
            &format!("{}/internal/health", self.options.layout.order_url(id)),
            true,
        );
        if status != 200 {
            return None;
        }
        serde_json::from_value(body["data"].clone()).ok()
    }

    /// Waits until replica `id` has caught up: ready, and a copy of the leader's log.
    pub fn wait_replica_synced(&self, id: ReplicaId, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let leader = self.leader().and_then(|l| self.replica_status(l));
            if let (Some(me), Some(leader)) = (self.replica_status(id), leader) {
                if me.ready
                    && (me.id == leader.id
                        || (me.log_ballot == leader.promised && me.role == Role::Follower))
                {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The last lines of every process's log.
    pub fn logs(&self) -> String {
        systest::tail_logs(self.dir.path(), 20)
    }

    /// Checks once, with [`systest::check_store`]: every replica's order file holds the same orders,
    /// numbered 0..n; no request id appears twice; every take of stock in the catalog's journal has
    /// exactly one order; for every toy, stock = the starting stock + restocked - ordered.
    pub fn check_consistent(&self) -> Result<Consistency, String> {
        let (status, body) = self.get(
            &format!("{}/products", self.options.layout.catalog_url()),
            true,
        );
        if status != 200 {
            return Err(format!(
                "the catalog's product list answered {status}: {body}"
            ));
        }
        let stock: BTreeMap<String, u64> = body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| {
                let name = p["name"].as_str().unwrap_or_default().to_string();
                (name, p["quantity"].as_u64().unwrap_or(0))
            })
            .collect();
        let base = self.options.stock.unwrap_or(NEW_STOCK);
        let orders = systest::check_store(&self.data(), &stock, base)?;
        let journal = systest::read_journal(&self.data())?;
        Ok(Consistency {
            orders: orders.len(),
            takes: journal.iter().filter(|r| r.kind == "take").count(),
            restocks: journal.iter().filter(|r| r.kind == "restock").count(),
        })
    }

    /// [`Store::check_consistent`] until it passes or `timeout` passes (replicas that were just
    /// restarted may still be catching up); the last error otherwise.
    pub fn wait_consistent(&self, timeout: Duration) -> Result<Consistency, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.check_consistent() {
                Ok(c) => return Ok(c),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_base_gives_the_contract_ports() {
        let l = Layout::local(CONTRACT_BASE_PORT);
        assert_eq!(l.frontend_url(), "http://127.0.0.1:8080");
        assert_eq!(l.catalog_url(), "http://127.0.0.1:8081");
        assert_eq!(l.frontend_internal_url(), "http://127.0.0.1:8082");
        assert_eq!(
            l.replica_list(),
            "1=http://127.0.0.1:8091,2=http://127.0.0.1:8092,3=http://127.0.0.1:8093"
        );
        assert!(l.is_local());
    }

    #[test]
    fn hosts_are_parsed() {
        let l = Layout::with_hosts(
            8080,
            "frontend=tsx-frontend@10.77.0.2, order2=10.77.0.5,relay=w@10.77.0.9",
        )
        .unwrap();
        assert_eq!(
            l.frontend,
            Host {
                netns: Some("tsx-frontend".into()),
                ip: "10.77.0.2".into()
            }
        );
        assert_eq!(
            l.orders[1],
            Host {
                netns: None,
                ip: "10.77.0.5".into()
            }
        );
        assert_eq!(l.order_url(2), "http://10.77.0.5:8092");
        assert_eq!(l.relay_url(), "http://10.77.0.9:8083");
        assert_eq!(l.catalog, Host::local());
        assert!(!l.is_local());
        for bad in [
            "frontend",
            "nobody=10.0.0.1",
            "catalog=ns@notanip",
            "catalog=@10.0.0.1",
        ] {
            assert!(Layout::with_hosts(8080, bad).is_err(), "{bad}");
        }
    }
}
