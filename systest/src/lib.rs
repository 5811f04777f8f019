//! A harness that runs the real toy store as child processes, for end-to-end and fault tests.
//!
//! [`Cluster`] starts `catalog`, the order replicas and `frontend` from `target/release` (or from
//! `$TOYSTORE_BIN`) in a temporary data folder, on ports from a base that each test picks apart from
//! the others, all bound to 127.0.0.1. It sends real signals (SIGKILL, SIGSTOP, SIGCONT) and, when
//! dropped (also when a test panics), kills every process it started. A failing test prints the tail
//! of each process's log.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use shared::protocol::{Order, ReplicaId, SECRET_HEADER};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Replica ids of the default store.
pub const REPLICAS: [ReplicaId; 3] = [1, 2, 3];

/// The folder of the release binaries.
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("TOYSTORE_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let dir = root.join("target/release");
    for b in ["catalog", "order", "frontend", "client"] {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run `make build` (or `make test`) first",
            dir.join(b).display()
        );
    }
    dir
}

/// An HTTP answer: status and JSON body (Null when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status, 0 for a transport error.
    pub status: u16,
    /// Parsed body.
    pub body: Value,
}

impl Answer {
    /// `body.data`, deserialised.
    pub fn data<T: DeserializeOwned>(&self) -> T {
        serde_json::from_value(self.body["data"].clone())
            .unwrap_or_else(|e| panic!("{self:?}: {e}"))
    }
}

/// A row of `catalog-journal.csv`, every column.
#[derive(Deserialize, Debug, Clone, PartialEq)]
pub struct JournalRow {
    /// Sequence number.
    pub seq: u64,
    /// `take`, `refuse`, `restock`, `checkpoint` or `fence`; only `take` and `restock` rows change
    /// stock.
    pub kind: String,
    /// Purchase request id (takes).
    pub request_id: String,
    /// Toy.
    pub name: String,
    /// Units taken or added.
    pub quantity: u64,
    /// The toy's stock after the row.
    pub stock_after: u64,
    /// Wall clock of the row, ms since the Unix epoch.
    pub unix_ms: u64,
    /// The leader epoch of the row's request, or the catalog's fence (0 in journals written before
    /// the column existed).
    #[serde(default)]
    pub epoch: u64,
}

/// Reads every row of a CSV file of the store (none when the file does not exist yet).
fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let Ok(mut reader) = csv::Reader::from_path(path) else {
        return Ok(Vec::new());
    };
    reader
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The orders in `orders-<id>.csv` of the data folder `data`.
pub fn read_orders(data: &Path, id: ReplicaId) -> Result<Vec<Order>, String> {
    read_rows(&data.join(format!("orders-{id}.csv")))
}

/// The rows of `catalog-journal.csv` of the data folder `data`.
pub fn read_journal(data: &Path) -> Result<Vec<JournalRow>, String> {
    read_rows(&data.join("catalog-journal.csv"))
}

/// Checks a store's files against the catalog's current `stock`, once: every replica's order file is
/// the same; order numbers are 0..n; no request id appears twice; every take in the catalog's journal
/// has exactly one order; for every toy, stock = `base` + restocked - ordered. Returns the orders.
pub fn check_store(
    data: &Path,
    stock: &BTreeMap<String, u64>,
    base: u64,
) -> Result<Vec<Order>, String> {
    let texts: Vec<String> = REPLICAS
        .iter()
        .map(|id| {
            std::fs::read_to_string(data.join(format!("orders-{id}.csv"))).unwrap_or_default()
        })
        .collect();
    if texts.iter().any(|t| *t != texts[0]) {
        let lens: Vec<usize> = texts.iter().map(|t| t.lines().count()).collect();
        return Err(format!("order files differ (lines: {lens:?})"));
    }
    let orders = read_orders(data, REPLICAS[0])?;
    for (i, o) in orders.iter().enumerate() {
        if o.number != i as u64 {
            return Err(format!("order {i} has number {}", o.number));
        }
    }
    let mut ids = HashSet::new();
    for o in &orders {
        if !ids.insert(o.request_id.as_str()) {
            return Err(format!("request id {} applied twice", o.request_id));
        }
    }
    let journal = read_journal(data)?;
    let takes: HashSet<&str> = journal
        .iter()
        .filter(|r| r.kind == "take")
        .map(|r| r.request_id.as_str())
        .collect();
    if takes.len() != ids.len() || takes.iter().any(|t| !ids.contains(*t)) {
        return Err(format!(
            "{} takes at the catalog but {} orders",
            takes.len(),
            ids.len()
        ));
    }
    for (name, quantity) in stock {
        let restocked: u64 = journal
            .iter()
            .filter(|r| r.kind == "restock" && r.name == *name)
            .map(|r| r.quantity)
            .sum();
        let ordered: u64 = orders
            .iter()
            .filter(|o| o.name == *name)
            .map(|o| o.quantity)
            .sum();
        if base + restocked != quantity + ordered {
            return Err(format!(
                "{name}: stock {quantity} but {base} + {restocked} restocked - {ordered} ordered"
            ));
        }
    }
    Ok(orders)
}

/// The last `lines` lines of every `*.log` file in `dir`, each under its file's name.
pub fn tail_logs(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        out.push_str(&format!(
            "--- {} (last {lines} lines)\n",
            p.file_name().unwrap_or_default().to_string_lossy()
        ));
        for l in &all[all.len().saturating_sub(lines)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// The store, run as child processes.
pub struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    base: u16,
    secret: String,
    /// Extra arguments per service name (`catalog`, `order`, `frontend`).
    pub extra_args: HashMap<&'static str, Vec<String>>,
    children: BTreeMap<String, Child>,
    agent: ureq::Agent,
}

impl Cluster {
    /// A store whose ports start at `base` (it uses `base..base+6`). Nothing runs yet.
    pub fn new(base: u16) -> Cluster {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_millis(500)))
            .timeout_global(Some(Duration::from_secs(15)))
            .proxy(None)
            .build()
            .into();
        Cluster {
            dir: tempfile::tempdir().expect("temp dir"),
            bin: bin_dir(),
            base,
            secret: format!("test-secret-{base}"),
            extra_args: HashMap::new(),
            children: BTreeMap::new(),
            agent,
        }
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The shared secret.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Public URL of the front-end.
    pub fn frontend_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.base)
    }

    /// Internal URL of the front-end.
    pub fn frontend_internal_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 1)
    }

    /// URL of the catalog.
    pub fn catalog_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.base + 2)
    }

    /// URL of order replica `id`.
    pub fn order_url(&self, id: ReplicaId) -> String {
        format!("http://127.0.0.1:{}", self.base + 2 + id as u16)
    }

    fn replica_list(&self) -> String {
        REPLICAS
            .iter()
            .map(|id| format!("{id}={}", self.order_url(*id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn(&mut self, name: &str, binary: &str, args: Vec<String>) {
        assert!(!self.children.contains_key(name), "{name} already runs");
        std::fs::create_dir_all(self.data()).unwrap();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("{name}.log")))
            .unwrap();
        let child = Command::new(self.bin.join(binary))
            .args(&args)
            .env("TOYSTORE_SECRET", &self.secret)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        self.children.insert(name.to_string(), child);
    }

    fn extra(&self, service: &'static str) -> Vec<String> {
        self.extra_args.get(service).cloned().unwrap_or_default()
    }

    /// Starts the catalog, restocking every `restock_secs`.
    pub fn start_catalog(&mut self, restock_secs: f64) {
        let mut args = vec![
            "--listen".into(),
            format!("127.0.0.1:{}", self.base + 2),
            "--data".into(),
            self.data().display().to_string(),
            "--frontend".into(),
            self.frontend_internal_url(),
            "--restock-interval".into(),
            restock_secs.to_string(),
        ];
        args.extend(self.extra("catalog"));
        self.spawn("catalog", "catalog", args);
    }

    /// Starts order replica `id`.
    pub fn start_order(&mut self, id: ReplicaId) {
        let mut args = vec![
            "--id".into(),
            id.to_string(),
            "--data".into(),
            self.data().display().to_string(),
            "--catalog".into(),
            self.catalog_url(),
            "--replicas".into(),
            self.replica_list(),
        ];
        args.extend(self.extra("order"));
        self.spawn(&format!("order-{id}"), "order", args);
    }

    /// Starts the front-end.
    pub fn start_frontend(&mut self) {
        let mut args = vec![
            "--listen".into(),
            format!("127.0.0.1:{}", self.base),
            "--internal-listen".into(),
            format!("127.0.0.1:{}", self.base + 1),
            "--catalog".into(),
            self.catalog_url(),
            "--replicas".into(),
            self.replica_list(),
        ];
        args.extend(self.extra("frontend"));
        self.spawn("frontend", "frontend", args);
    }

    /// Starts everything and waits until a purchase path is ready.
    pub fn start_all(&mut self, restock_secs: f64) {
        self.start_catalog(restock_secs);
        for id in REPLICAS {
            self.start_order(id);
        }
        self.start_frontend();
        self.wait_ready();
    }

    /// Waits (up to 20 s) until the front-end answers queries and has chosen a leader that leads.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.leader() {
                if self
                    .replica_status(l)
                    .is_some_and(|s| s["role"] == "leader")
                    && self.query("Tux").status == 200
                {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the store did not become ready:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True while process `name` runs.
    pub fn is_running(&mut self, name: &str) -> bool {
        match self.children.get_mut(name) {
            Some(c) => c.try_wait().ok().flatten().is_none(),
            None => false,
        }
    }

    fn signal(&self, name: &str, sig: i32) {
        let child = self
            .children
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not running"));
        // SAFETY: kill(2) on the pid of a child this harness started and has not reaped.
        let rc = unsafe { libc::kill(child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill {name}");
    }

    /// SIGKILLs process `name` and reaps it.
    pub fn kill(&mut self, name: &str) {
        self.signal(name, libc::SIGKILL);
        let mut child = self.children.remove(name).expect("running");
        let _ = child.wait();
    }

    /// SIGTERMs process `name` and waits for it to exit.
    pub fn terminate(&mut self, name: &str) -> std::process::ExitStatus {
        self.signal(name, libc::SIGTERM);
        let mut child = self.children.remove(name).expect("running");
        child.wait().expect("wait")
    }

    /// SIGSTOPs process `name`.
    pub fn pause(&self, name: &str) {
        self.signal(name, libc::SIGSTOP);
    }

    /// SIGCONTs process `name`.
    pub fn resume(&self, name: &str) {
        self.signal(name, libc::SIGCONT);
    }

    fn call(&self, method: &str, url: &str, body: Option<&Value>, secret: bool) -> Answer {
        let result = match (method, body) {
            ("GET", _) => {
                let mut rq = self.agent.get(url);
                if secret {
                    rq = rq.header(SECRET_HEADER, &self.secret);
                }
                rq.call()
            }
            (_, body) => {
                let mut rq = self.agent.post(url);
                if secret {
                    rq = rq.header(SECRET_HEADER, &self.secret);
                }
                rq.send(serde_json::to_vec(&body.cloned().unwrap_or(Value::Null)).unwrap())
            }
        };
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

    /// `GET` on the public API.
    pub fn get(&self, path: &str) -> Answer {
        self.call(
            "GET",
            &format!("{}{path}", self.frontend_url()),
            None,
            false,
        )
    }

    /// `POST` of raw JSON on the public API.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.call(
            "POST",
            &format!("{}{path}", self.frontend_url()),
            Some(body),
            false,
        )
    }

    /// `GET /products/<name>`.
    pub fn query(&self, name: &str) -> Answer {
        self.get(&format!("/products/{name}"))
    }

    /// `POST /orders`.
    pub fn buy(&self, name: &str, quantity: u64) -> Answer {
        self.post(
            "/orders",
            &serde_json::json!({"name": name, "quantity": quantity}),
        )
    }

    /// `GET /orders/<n>`.
    pub fn order(&self, n: u64) -> Answer {
        self.get(&format!("/orders/{n}"))
    }

    /// An internal GET with the secret.
    pub fn internal_get(&self, url: &str) -> Answer {
        self.call("GET", url, None, true)
    }

    /// The replica the front-end sends purchases to.
    pub fn leader(&self) -> Option<ReplicaId> {
        let a = self.internal_get(&format!("{}/internal/status", self.frontend_internal_url()));
        a.body["data"]["leader"].as_u64().map(|l| l as ReplicaId)
    }

    /// Replica `id`'s health answer, if it answers.
    pub fn replica_status(&self, id: ReplicaId) -> Option<Value> {
        let a = self.internal_get(&format!("{}/internal/health", self.order_url(id)));
        (a.status == 200).then(|| a.body["data"].clone())
    }

    /// The catalog's stock of every toy, asked directly.
    pub fn stock(&self) -> BTreeMap<String, u64> {
        let a = self.internal_get(&format!("{}/products", self.catalog_url()));
        assert_eq!(a.status, 200, "{a:?}");
        a.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["quantity"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    /// The orders in `orders-<id>.csv`.
    pub fn orders(&self, id: ReplicaId) -> Vec<Order> {
        read_orders(&self.data(), id).expect("order rows")
    }

    /// The raw text of `orders-<id>.csv`.
    pub fn orders_text(&self, id: ReplicaId) -> String {
        std::fs::read_to_string(self.data().join(format!("orders-{id}.csv"))).unwrap_or_default()
    }

    /// The catalog journal's rows.
    pub fn journal(&self) -> Vec<JournalRow> {
        read_journal(&self.data()).expect("journal rows")
    }

    /// The last lines of every process's log.
    pub fn logs(&self) -> String {
        tail_logs(self.dir.path(), 40)
    }

    /// Runs the `client` binary and returns its exit status and output.
    pub fn run_client(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(self.bin.join("client"))
            .arg("--frontend")
            .arg(self.frontend_url())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run client");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Waits (up to `timeout`) until every running replica's order file is identical and the catalog's
    /// stock matches the orders; then returns the orders. Panics with the differences otherwise.
    pub fn wait_consistent(&self, timeout: Duration) -> Vec<Order> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.check_consistent() {
                Ok(orders) => return orders,
                Err(e) if Instant::now() > deadline => {
                    panic!("store not consistent: {e}\n{}", self.logs())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Checks, once, the store's files against the catalog's stock ([`check_store`]).
    pub fn check_consistent(&self) -> Result<Vec<Order>, String> {
        check_store(&self.data(), &self.stock(), 100)
    }

    /// Forgets process `name` if it has exited by itself (reaping it), so it can be started again.
    /// Returns how it exited; None when it still runs or was not started.
    pub fn forget_exited(&mut self, name: &str) -> Option<std::process::ExitStatus> {
        let status = self.children.get_mut(name)?.try_wait().ok().flatten()?;
        self.children.remove(name);
        Some(status)
    }

    /// The process id of `name` (`catalog`, `order-<id>`, `frontend`), if this harness started it
    /// and has not reaped it: for reading `/proc/<pid>/status` (threads) and `/proc/<pid>/fd`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.children.get(name).map(|c| c.id())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut() {
            // SAFETY: SIGCONT then SIGKILL to children this harness started; a paused child must be
            // woken for the kill to be reaped promptly.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGCONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

pub mod chaos;
