//! [`Cluster`]: the [`Store`] for tests, every failure a panic that quotes the processes' logs.

use super::store::{retry, Answer, Store, StoreOptions};
use super::Procs;
use crate::{read_journal, read_orders, JournalRow};
use serde_json::Value;
use shared::protocol::{Order, ReplicaId};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// Lines of each log a failing test prints.
const LOG_LINES: usize = 40;

/// The store as child processes for a test, on 127.0.0.1 from a base port of its own (see the
/// allotment in [`crate::cluster`]). Dropping it, also when the test panics, kills every process;
/// a panicking test prints the tail of each log first.
pub struct Cluster {
    store: Store,
}

impl Cluster {
    /// The options of a test's store whose ports start at `base`: binaries from [`crate::bin_dir`],
    /// calls limited to 15 s.
    pub fn options(base: u16) -> StoreOptions {
        StoreOptions {
            secret: format!("test-secret-{base}"),
            call_timeout: Duration::from_secs(15),
            ..StoreOptions::local(crate::bin_dir(), base)
        }
    }

    /// A store whose ports start at `base` ([`Cluster::options`]). Nothing runs yet.
    pub fn new(base: u16) -> Cluster {
        Cluster::with_options(Cluster::options(base))
    }

    /// A store run with `options`. Nothing runs yet.
    pub fn with_options(options: StoreOptions) -> Cluster {
        let store = Store::new(options, Procs::new()).unwrap_or_else(|e| panic!("{e}"));
        Cluster { store }
    }

    /// The store underneath, for what returns a `Result`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Panics with `e` and the logs.
    fn fail(&self, e: String) -> ! {
        panic!("{e}\n{}", self.logs())
    }

    /// The data folder.
    pub fn data(&self) -> PathBuf {
        self.store.data()
    }

    /// The shared secret.
    pub fn secret(&self) -> &str {
        self.store.secret()
    }

    /// Sets the delay each way of every link from or to `service` (a relayed layout only); returns
    /// the links changed.
    pub fn set_link_delay(&self, service: &str, delay: Duration) -> Result<Vec<String>, String> {
        self.store.set_link_delay(service, delay)
    }

    /// Public URL of the front-end.
    pub fn frontend_url(&self) -> String {
        self.store.layout().frontend_url()
    }

    /// Internal URL of the front-end.
    pub fn frontend_internal_url(&self) -> String {
        self.store.layout().frontend_internal_url()
    }

    /// URL of the catalog.
    pub fn catalog_url(&self) -> String {
        self.store.layout().catalog_url()
    }

    /// URL of order replica `id`.
    pub fn order_url(&self, id: ReplicaId) -> String {
        self.store.layout().order_url(id)
    }

    /// Starts the catalog, restocking every `restock_secs`.
    pub fn start_catalog(&mut self, restock_secs: f64) {
        self.store.set_restock_interval(restock_secs);
        if let Err(e) = self.store.start_catalog() {
            self.fail(e)
        }
    }

    /// Starts order replica `id`.
    pub fn start_order(&mut self, id: ReplicaId) {
        if let Err(e) = self.store.start_order(id) {
            self.fail(e)
        }
    }

    /// Starts the front-end.
    pub fn start_frontend(&mut self) {
        if let Err(e) = self.store.start_frontend(true) {
            self.fail(e)
        }
    }

    /// Starts everything and waits until a purchase path is ready.
    pub fn start_all(&mut self, restock_secs: f64) {
        self.store.set_restock_interval(restock_secs);
        if let Err(e) = self.store.start_processes(true) {
            self.fail(e)
        }
        self.wait_ready();
    }

    /// Waits (up to 20 s) until the front-end answers queries and has chosen a leader that leads.
    pub fn wait_ready(&self) {
        if let Err(e) = self.store.wait_ready(Duration::from_secs(20)) {
            panic!("the store did not become ready: {e}")
        }
    }

    /// True while process `name` runs.
    pub fn is_running(&self, name: &str) -> bool {
        self.store.is_running(name)
    }

    /// SIGKILLs process `name` and reaps it.
    pub fn kill(&mut self, name: &str) {
        assert!(self.store.kill(name), "{name} is not running");
    }

    /// SIGTERMs process `name` and waits for it to exit.
    pub fn terminate(&mut self, name: &str) -> ExitStatus {
        self.store
            .procs()
            .terminate(name)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// SIGSTOPs process `name`.
    pub fn pause(&self, name: &str) {
        let signalled = self.store.procs().signal(name, libc::SIGSTOP);
        signalled.unwrap_or_else(|e| panic!("{e}"));
    }

    /// SIGCONTs process `name`.
    pub fn resume(&self, name: &str) {
        let signalled = self.store.procs().signal(name, libc::SIGCONT);
        signalled.unwrap_or_else(|e| panic!("{e}"));
    }

    /// `GET` on the public API.
    pub fn get(&self, path: &str) -> Answer {
        self.store
            .get(&format!("{}{path}", self.frontend_url()), false)
    }

    /// `POST` of raw JSON on the public API.
    pub fn post(&self, path: &str, body: &Value) -> Answer {
        self.store
            .post(&format!("{}{path}", self.frontend_url()), body, false)
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
        self.store.get(url, true)
    }

    /// The replica the front-end sends purchases to.
    pub fn leader(&self) -> Option<ReplicaId> {
        self.store.leader()
    }

    /// Replica `id`'s health answer, if it answers.
    pub fn replica_status(&self, id: ReplicaId) -> Option<Value> {
        self.store.replica_health(id)
    }

    /// The catalog's stock of every toy, asked directly.
    pub fn stock(&self) -> BTreeMap<String, u64> {
        self.store.stock().unwrap_or_else(|e| panic!("{e}"))
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
        crate::tail_logs(self.store.folder(), LOG_LINES)
    }

    /// Runs the `client` binary and returns its exit status and output.
    pub fn run_client(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(self.store.options().bin.join("client"))
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
        let checked = retry(timeout, Duration::from_millis(200), || {
            self.check_consistent()
        });
        checked.unwrap_or_else(|e| self.fail(format!("store not consistent: {e}")))
    }

    /// Checks, once, the store's files against the catalog's stock ([`crate::check_store`]).
    pub fn check_consistent(&self) -> Result<Vec<Order>, String> {
        self.store.check_orders()
    }

    /// Forgets process `name` if it has exited by itself (reaping it), so it can be started again.
    /// Returns how it exited; None when it still runs or was not started.
    pub fn forget_exited(&mut self, name: &str) -> Option<ExitStatus> {
        self.store.procs().forget_exited(name)
    }

    /// The process id of `name` (`catalog`, `order-<id>`, `frontend`) while it runs: for reading
    /// `/proc/<pid>/status` (threads) and `/proc/<pid>/fd`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.store.procs().pid(name)
    }
}

impl Drop for Cluster {
    /// Prints the logs of a failing test; the store, dropped next, kills every process.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}
