//! The catalog's HTTP side: handlers, the restock thread, the invalidation sender and the snapshot
//! writer.

use crate::files::Catalog;
use crate::metrics::{CatalogMetrics, ROUTES};
use clap::Parser;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError};
use shared::config::{self, ServiceFlags};
use shared::http::{self, Handler, Method, Peer, Reply, Request, Server};
use shared::metrics::Metrics;
use shared::protocol::{CancelRequest, Invalidate, TakeRequest};
use shared::{log, Error, Result};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a push of an invalidation to the front-end may take.
const INVALIDATE_TIMEOUT: Duration = Duration::from_millis(500);

/// Shortest time between two rewrites of `catalog.csv`.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(1);

/// Most takes listed by one `GET /internal/takes`.
const TAKES_PAGE: usize = 1000;

/// The catalog's flags. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "catalog",
    version,
    about = "The toy store's catalog: products, stock, restocking, cache invalidation"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "TOYSTORE_LISTEN", default_value = config::DEFAULT_CATALOG_LISTEN)]
    pub listen: String,
    /// Folder of catalog.csv and catalog-journal.csv (created with the default toys when missing).
    #[arg(long, env = "TOYSTORE_DATA", default_value = config::DEFAULT_DATA)]
    pub data: PathBuf,
    /// The front-end's internal address, where invalidations go (empty: send none).
    #[arg(long, env = "TOYSTORE_FRONTEND", default_value = config::DEFAULT_FRONTEND_INTERNAL_URL)]
    pub frontend: String,
    /// Seconds between restock checks; out-of-stock toys go back to 100.
    #[arg(long, env = "TOYSTORE_RESTOCK_INTERVAL", default_value_t = 10.0)]
    pub restock_interval: f64,
    /// The secret and the worker count.
    #[command(flatten)]
    pub service: ServiceFlags,
}

/// A running catalog.
pub struct Running {
    server: Server,
    catalog: Arc<Catalog>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// The catalog itself.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Stops the server and the threads, then writes a checkpoint so hand edits of catalog.csv made
    /// while it is stopped are respected on the next start.
    pub fn stop(self) -> Result<()> {
        self.server.stop();
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            let _ = t.join();
        }
        self.catalog.checkpoint()
    }
}

/// Opens the catalog in `config.data` and serves it on `listener`.
pub fn serve(config: &Config, listener: TcpListener) -> Result<Running> {
    if !(config.restock_interval.is_finite() && config.restock_interval > 0.0) {
        return Err(Error::Config(
            "--restock-interval must be a positive number of seconds".into(),
        ));
    }
    let (changed_tx, changed_rx) = bounded(4096);
    let (snapshot_tx, snapshot_rx) = bounded(1);
    // A catalog that starts may have changed stock it could not announce before it stopped (a
    // restock just before a SIGKILL): the first push drops every toy from the front-end's cache.
    let opened = Catalog::open(&config.data)?;
    for p in opened.products() {
        let _ = changed_tx.try_send(p.name.clone());
    }
    let mut metrics = Metrics::new("catalog", ROUTES);
    let catalog_metrics =
        CatalogMetrics::register(&mut metrics, opened.products().into_iter().map(|p| p.name));
    let catalog = Arc::new(
        opened
            .with_notifications(changed_tx, snapshot_tx)
            .with_metrics(catalog_metrics.clone()),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();

    let (c, s, every) = (
        catalog.clone(),
        stop.clone(),
        Duration::from_secs_f64(config.restock_interval),
    );
    threads.push(spawn("restock", move || restock_loop(&c, &s, every)));
    let (c, s) = (catalog.clone(), stop.clone());
    threads.push(spawn("snapshot", move || {
        snapshot_loop(&c, &s, &snapshot_rx)
    }));
    let frontend = config.frontend.trim_end_matches('/').to_string();
    let calls = metrics.peer_calls(&[("frontend".into(), frontend.clone())]);
    let peer = Peer::new(INVALIDATE_TIMEOUT, config.service.secret.clone()).counted(&calls);
    let s = stop.clone();
    threads.push(spawn("invalidate", move || {
        invalidate_loop(&frontend, &peer, &s, &changed_rx, &catalog_metrics)
    }));

    let c = catalog.clone();
    let handler: Handler = Arc::new(move |r: &Request| handle(&c, r));
    let options = config
        .service
        .internal_options()
        .with_metrics(&Arc::new(metrics));
    let server = Server::start(listener, options, handler)?;
    log!(
        "catalog",
        "serving {} toys on {} (data in {})",
        catalog.products().len(),
        server.addr(),
        config.data.display()
    );
    Ok(Running {
        server,
        catalog,
        stop,
        threads,
    })
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("spawn thread")
}

/// Routes one request.
pub fn handle(catalog: &Catalog, r: &Request) -> Reply {
    match (&r.method, r.segments().as_slice()) {
        (Method::Get, ["products", name]) => match http::percent_decode(name) {
            Some(name) => Reply::from_result(catalog.product(&name)),
            None => Reply::error(&Error::BadRequest("product name is not UTF-8".into())),
        },
        (Method::Get, ["products"]) => Reply::data(catalog.products()),
        (Method::Post, ["internal", "take"]) => {
            Reply::from_result(r.json::<TakeRequest>().and_then(|t| catalog.take(&t)))
        }
        (Method::Post, ["internal", "cancel"]) => {
            Reply::from_result(r.json::<CancelRequest>().and_then(|c| catalog.cancel(&c)))
        }
        (Method::Get, ["internal", "takes"]) => Reply::from_result(
            number_param(r, "after")
                .and_then(|after| Ok((after, number_param(r, "epoch")?)))
                .and_then(|(after, epoch)| catalog.takes_after(after, TAKES_PAGE, epoch)),
        ),
        (Method::Get, ["internal", "health"]) => Reply::data("ok"),
        (
            _,
            ["products", _] | ["products"] | ["internal", "take" | "cancel" | "takes" | "health"],
        ) => http::method_not_allowed(r),
        _ => http::no_such_path(r),
    }
}

/// The query parameter `name` as a number (0 when absent).
fn number_param(r: &Request, name: &str) -> Result<u64> {
    r.query_param(name)
        .unwrap_or("0")
        .parse::<u64>()
        .map_err(|_| Error::BadRequest(format!("`{name}` must be a number")))
}

fn restock_loop(catalog: &Catalog, stop: &AtomicBool, every: Duration) {
    let mut next = Instant::now() + every;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(
            Duration::from_millis(50).min(next.saturating_duration_since(Instant::now())),
        );
        if Instant::now() < next {
            continue;
        }
        next += every;
        match catalog.restock() {
            Ok(names) if !names.is_empty() => log!("catalog", "restocked {}", names.join(", ")),
            Ok(_) => {}
            Err(e) => log!("catalog", "restock failed: {e}"),
        }
    }
}

/// Rewrites `catalog.csv` after changes, at most once per [`SNAPSHOT_EVERY`]: the journal already
/// holds every change on disk, the snapshot is the view people read, so its syncs stay off the
/// purchase path and many takes share one.
fn snapshot_loop(catalog: &Catalog, stop: &AtomicBool, wake_rx: &Receiver<()>) {
    let mut last = Instant::now() - SNAPSHOT_EVERY;
    while !stop.load(Ordering::SeqCst) {
        match wake_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => {
                while last.elapsed() < SNAPSHOT_EVERY && !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                while wake_rx.try_recv().is_ok() {}
                last = Instant::now();
                if let Err(e) = catalog.write_snapshot() {
                    log!("catalog", "cannot write the snapshot: {e}");
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Pushes the names of changed toys to the front-end, in batches: everything that changed while the
/// previous push was under way goes in the next one. A push that fails is retried with the next
/// batch, so a front-end that was briefly unreachable still drops what changed meanwhile.
fn invalidate_loop(
    frontend: &str,
    peer: &Peer,
    stop: &AtomicBool,
    changed_rx: &Receiver<String>,
    metrics: &CatalogMetrics,
) {
    let url = format!("{frontend}/internal/invalidate");
    let mut pending: Vec<String> = Vec::new();
    let mut failing = false;
    while !stop.load(Ordering::SeqCst) {
        match changed_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(n) => pending.push(n),
            Err(RecvTimeoutError::Timeout) if pending.is_empty() => continue,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if frontend.is_empty() {
            pending.clear();
            continue;
        }
        pending.extend(changed_rx.try_iter());
        pending.sort();
        pending.dedup();
        let batch = Invalidate {
            names: pending.clone(),
        };
        let sent = pending.len() as u64;
        match peer.post::<_, serde_json::Value>(&url, &batch) {
            Ok(_) => {
                metrics.invalidations_ok.inc_by(sent);
                pending.clear();
                if failing {
                    failing = false;
                    log!("catalog", "invalidations reach the front-end again");
                }
            }
            Err(e) => {
                metrics.invalidations_failed.inc_by(sent);
                if !failing {
                    failing = true;
                    log!(
                        "catalog",
                        "cannot push an invalidation to {url}: {e}; will retry"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn call(c: &Catalog, method: Method, path: &str, body: Value) -> (u16, Value) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        let reply = handle(c, &Request::new(method, path, &body));
        let v = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        (reply.status, v)
    }

    #[test]
    fn internal_take_cancel_and_listing_speak_the_new_bodies() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let take = json!({"request_id": "r1", "name": "Tux", "quantity": 2, "epoch": 3});
        let (status, v) = call(&c, Method::Post, "/internal/take", take.clone());
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["data"]["repeated"], false);
        let seq = v["data"]["seq"].clone();
        let (status, v) = call(&c, Method::Post, "/internal/take", take);
        assert_eq!((status, v["data"]["repeated"].clone()), (200, json!(true)));
        let (status, v) = call(
            &c,
            Method::Post,
            "/internal/take",
            json!({"request_id": "r1", "name": "Tux", "quantity": 2}),
        );
        assert_eq!(status, 400, "a take without an epoch: {v}");

        let cancel = |id: &str, epoch: u64| {
            call(
                &c,
                Method::Post,
                "/internal/cancel",
                json!({"request_id": id, "epoch": epoch}),
            )
        };
        assert_eq!(cancel("r1", 3), (200, json!({"data": {"taken": seq}})));
        assert_eq!(cancel("r2", 3), (200, json!({"data": {"taken": null}})));
        assert_eq!(cancel("bad id", 3).0, 400);
        let (status, v) = call(
            &c,
            Method::Post,
            "/internal/take",
            json!({"request_id": "r2", "name": "Tux", "quantity": 1, "epoch": 3}),
        );
        assert_eq!(status, 409, "{v}");
        let (status, v) = call(
            &c,
            Method::Post,
            "/internal/take",
            json!({"request_id": "r3", "name": "Tux", "quantity": 1, "epoch": 2}),
        );
        assert_eq!(status, 409, "a stale epoch: {v}");
        assert_eq!(v["error"]["promised"]["epoch"], 3, "{v}");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("older than epoch 3"));

        let (status, v) = call(&c, Method::Get, "/internal/takes?after=0", Value::Null);
        assert_eq!(status, 200);
        assert_eq!(v["data"][0]["request_id"], "r1");
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        let (status, v) = call(
            &c,
            Method::Get,
            "/internal/takes?after=0&epoch=9",
            Value::Null,
        );
        assert_eq!(status, 200, "{v}");
        assert_eq!(c.fence(), 9);
        for bad in ["after=x", "after=-1", "after=0&epoch=x", "epoch=-2"] {
            let (status, _) = call(
                &c,
                Method::Get,
                &format!("/internal/takes?{bad}"),
                Value::Null,
            );
            assert_eq!(status, 400, "{bad}");
        }
        assert_eq!(
            call(&c, Method::Get, "/internal/cancel", Value::Null).0,
            405
        );
        assert_eq!(c.product("Tux").unwrap().quantity, 98);
        let (status, v) = call(&c, Method::Get, "/products/Tux", Value::Null);
        assert_eq!((status, v["data"]["quantity"].clone()), (200, json!(98)));
    }
}
