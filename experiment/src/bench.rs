//! The benchmark: how far each request kind of the store is from a bare HTTP round trip.
//!
//! The floor is the `floor` binary: a [`shared::http::Server`] (the services' own tiny_http worker
//! pool, in a process of its own like each service) whose handler answers a fixed JSON body the size
//! of a product reply. It and the store are called the same way: `clients` threads share one
//! keep-alive ureq agent, each sends requests back to back for a fixed time after a short warm-up,
//! and each request's latency is taken around the whole call, body read. The store runs
//! from the release binaries on its own ports with a catalog of a billion units per toy, so no
//! purchase is refused for lack of stock; the uncached query runs against the same store after
//! the front-end is restarted with `--no-cache`.
//!
//! `leader_buy` is a purchase sent straight to the leader replica, so that the difference to `buy` is
//! what the front-end adds. Then the parts of a purchase on their own, to see what limits it, on a catalog started alone: a
//! call to it (`catalog_query`), an `fdatasync` of a small append on the same disk (`fdatasync`), and
//! a take of stock (`catalog_take`: a call and a journal write with fdatasync).
//!
//! Purchases are also measured with 32 clients ([`BenchConfig::load_clients`]): latency and
//! throughput under load. When `etcd` is on the PATH, a three-member etcd on loopback
//! ([`crate::etcd`]) is measured in the same run with the same client (`etcd_put`, at the purchases'
//! concurrencies), so a purchase can be set against a general-purpose Raft store's write.
//!
//! The clients' agent resolves IP-literal hosts without a thread ([`crate::resolver`]); the floor is
//! also measured with ureq's default resolver (`floor_thread_resolver`), which starts a thread per
//! request when a timeout is set, to show what that costs.

use crate::data::{BenchRow, Stats};
use crate::TOYS;
use shared::http::{Handler, Reply, Server, ServerOptions};
use shared::protocol::SECRET_HEADER;
use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use systest::cluster::{Launch, Procs, Store, StoreOptions};

/// The floor's body: a product reply as the front-end sends it.
pub const FLOOR_BODY: &[u8] = br#"{"data":{"name":"Tux","price":25.99,"quantity":100}}"#;

/// Stock of every toy in the benchmark's catalog.
pub const BENCH_STOCK: u64 = 1_000_000_000;

/// Settings of a benchmark run.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// Folder of the release binaries.
    pub bin: PathBuf,
    /// First port of the store (see [`systest::cluster::Ports::from_base`]); the floor uses this + 20.
    pub base_port: u16,
    /// Measuring time per (target, clients).
    pub duration: Duration,
    /// Unmeasured requests per client before each measurement.
    pub warmup: u64,
    /// Concurrency levels.
    pub clients: Vec<u32>,
    /// The concurrency of the purchases (and of etcd's puts) under load, measured besides
    /// [`BenchConfig::clients`].
    pub load_clients: u32,
    /// When set, only these targets are measured (and the floor, always): to compare two builds on
    /// the lines a change is about.
    pub only: Option<Vec<String>>,
}

/// Sends requests with `clients` threads sharing `agent` for `duration` after `warmup` requests
/// each; `call` makes request number `i` of client `k` and says whether it got a 2xx.
pub fn measure_with<F>(
    target: &str,
    clients: u32,
    duration: Duration,
    warmup: u64,
    agent: ureq::Agent,
    call: F,
) -> BenchRow
where
    F: Fn(&ureq::Agent, u32, u64) -> bool + Sync,
{
    let barrier = Barrier::new(clients as usize);
    let errors = AtomicU64::new(0);
    let started = std::sync::Mutex::new(None::<Instant>);
    let mut latencies: Vec<u64> = Vec::new();
    let mut elapsed = Duration::ZERO;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|k| {
                let (agent, barrier, errors, call, started) =
                    (&agent, &barrier, &errors, &call, &started);
                s.spawn(move || {
                    for i in 0..warmup {
                        call(agent, k, i);
                    }
                    barrier.wait();
                    let t0 = *started
                        .lock()
                        .expect("lock")
                        .get_or_insert_with(Instant::now);
                    let deadline = t0 + duration;
                    let mut mine = Vec::with_capacity(4096);
                    let mut i = warmup;
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let ok = call(agent, k, i);
                        mine.push(t.elapsed().as_micros() as u64);
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                        i += 1;
                    }
                    (mine, t0.elapsed())
                })
            })
            .collect();
        for h in handles {
            let (mine, took) = h.join().expect("bench thread");
            latencies.extend(mine);
            elapsed = elapsed.max(took);
        }
    });
    let stats = Stats::of(latencies.iter().copied());
    BenchRow {
        target: target.to_string(),
        clients,
        requests: stats.count,
        errors: errors.load(Ordering::Relaxed),
        p50_us: stats.p50_us,
        p90_us: stats.p90_us,
        p99_us: stats.p99_us,
        throughput: stats.count as f64 / elapsed.as_secs_f64().max(1e-9),
        ..BenchRow::default()
    }
}

/// [`measure_with`] an agent whose IP-literal hosts are resolved without a thread
/// ([`crate::resolver::agent`]).
pub fn measure<F>(target: &str, clients: u32, duration: Duration, warmup: u64, call: F) -> BenchRow
where
    F: Fn(&ureq::Agent, u32, u64) -> bool + Sync,
{
    measure_with(
        target,
        clients,
        duration,
        warmup,
        crate::resolver::agent(clients as usize),
        call,
    )
}

/// Reads the whole answer of a request; true on a 2xx.
fn answered(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> bool {
    match result {
        Ok(mut r) => {
            let ok = r.status().is_success();
            let _ = r.body_mut().read_to_vec();
            ok
        }
        Err(_) => false,
    }
}

/// GET `url`, read the whole body; true on a 2xx.
fn get(agent: &ureq::Agent, url: &str) -> bool {
    answered(agent.get(url).call())
}

/// An internal GET of `url` with the secret; true on a 2xx.
fn internal_get(agent: &ureq::Agent, url: &str, secret: &str) -> bool {
    answered(agent.get(url).header(SECRET_HEADER, secret).call())
}

/// POST `body` as JSON to `url` (with the secret when given), read the whole answer; true on a 2xx.
fn post(agent: &ureq::Agent, url: &str, body: &[u8], secret: Option<&str>) -> bool {
    let mut rq = agent.post(url).header("Content-Type", "application/json");
    if let Some(secret) = secret {
        rq = rq.header(SECRET_HEADER, secret);
    }
    answered(rq.send(body))
}

/// The floor server on `addr` with `workers` worker threads: every request gets [`FLOOR_BODY`].
pub fn start_floor(addr: &str, workers: usize) -> Result<Server, String> {
    let handler: Handler = Arc::new(|_| Reply {
        status: 200,
        body: FLOOR_BODY.to_vec(),
    });
    let listener = shared::http::bind(addr).map_err(|e| e.message())?;
    let mut options = ServerOptions::public();
    options.workers = workers;
    Server::start(listener, options, handler).map_err(|e| e.message())
}

/// Starts the `floor` binary on `port` as a child recorded in `procs` (a process of its own, like
/// the front-end, so that both are called across the same process boundary), and waits until it
/// accepts connections.
fn spawn_floor(bin: &std::path::Path, port: u16, procs: &Procs) -> Result<String, String> {
    let addr = format!("127.0.0.1:{port}");
    std::net::TcpListener::bind(&addr).map_err(|e| format!("port {port} for the floor: {e}"))?;
    let launch = Launch::new(bin.join("floor"), vec!["--listen".into(), addr.clone()]);
    procs.spawn("floor", &launch)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() > deadline || procs.pid("floor").is_none() {
            return Err(format!(
                "{} did not start listening on {addr}",
                launch.program.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(format!("http://{addr}/products/Tux"))
}

/// Makes request number `i` of client `k` of `clients` and says whether it got a 2xx.
type Call<'a> = Box<dyn Fn(&ureq::Agent, u32, u32, u64) -> bool + Sync + 'a>;

/// One line of the benchmark: a request kind, measured at every concurrency of the run.
struct Target<'a> {
    /// Its name in the table and the CSV.
    name: &'static str,
    /// Most warm-up requests per client (fewer than the run's when each one writes to disk).
    max_warmup: u64,
    /// Measured with ureq's default resolver, which starts a thread per request.
    thread_resolver: bool,
    /// Also measured at [`BenchConfig::load_clients`].
    under_load: bool,
    /// The request.
    call: Call<'a>,
}

impl<'a> Target<'a> {
    fn new(
        name: &'static str,
        call: impl Fn(&ureq::Agent, u32, u32, u64) -> bool + Sync + 'a,
    ) -> Self {
        Target {
            name,
            max_warmup: u64::MAX,
            thread_resolver: false,
            under_load: false,
            call: Box::new(call),
        }
    }

    fn max_warmup(self, max_warmup: u64) -> Self {
        Target { max_warmup, ..self }
    }

    fn under_load(self) -> Self {
        Target {
            under_load: true,
            ..self
        }
    }
}

/// The toy client `k` asks for in its request `i`.
fn toy(k: u32, i: u64) -> &'static str {
    TOYS[((u64::from(k) * 7 + i) % TOYS.len() as u64) as usize].0
}

/// Measures targets and keeps the rows, each with the floor measured right after it.
struct Bench<'a> {
    cfg: &'a BenchConfig,
    floor_url: String,
    progress: &'a dyn Fn(&str),
    rows: Vec<BenchRow>,
}

impl Bench<'_> {
    /// Each target at each concurrency, in the table's order.
    fn measure_all(&mut self, targets: &[Target]) {
        let skipped = |t: &Target| {
            !t.name.starts_with("floor")
                && self
                    .cfg
                    .only
                    .as_ref()
                    .is_some_and(|only| !only.iter().any(|o| o == t.name))
        };
        for t in targets.iter().filter(|t| !skipped(t)) {
            let mut levels = self.cfg.clients.clone();
            if t.under_load && !levels.contains(&self.cfg.load_clients) {
                levels.push(self.cfg.load_clients);
            }
            for c in levels {
                let agent = if t.thread_resolver {
                    crate::resolver::thread_resolver_agent(c as usize)
                } else {
                    crate::resolver::agent(c as usize)
                };
                let warmup = self.cfg.warmup.min(t.max_warmup);
                let call = |a: &ureq::Agent, k, i| (t.call)(a, c, k, i);
                let row = measure_with(t.name, c, self.cfg.duration, warmup, agent, call);
                self.record(row);
            }
        }
    }

    /// Adds the floor reference to `row` (a floor line is its own), tells it, keeps it.
    fn record(&mut self, mut row: BenchRow) {
        if row.target.starts_with("floor") {
            row.floor_p50_us = row.p50_us;
            row.floor_throughput = row.throughput;
        } else {
            let (duration, warmup) = (self.cfg.duration / 2, self.cfg.warmup / 4);
            let url = &self.floor_url;
            let floor = measure("floor", row.clients, duration, warmup, |a, _, _| {
                get(a, url)
            });
            // A floor measurement with errors is no reference: the line falls back to floor_of.
            if floor.errors == 0 {
                row.floor_p50_us = floor.p50_us;
                row.floor_throughput = floor.throughput;
            }
        }
        (self.progress)(&format!(
            "{:<15} {} client(s): p50 {:>6} us  p90 {:>6} us  p99 {:>6} us  {:>7.0}/s{}   (floor right after: p50 {} us, {:.0}/s)",
            row.target,
            row.clients,
            row.p50_us,
            row.p90_us,
            row.p99_us,
            row.throughput,
            if row.errors > 0 { format!("  ({} errors)", row.errors) } else { String::new() },
            row.floor_p50_us,
            row.floor_throughput
        ));
        self.rows.push(row);
    }
}

/// The floor, and the floor with ureq's default resolver (a thread per request).
fn floor_targets<'a>(name: &'static str, floor_url: &'a str) -> Vec<Target<'a>> {
    let floor = Target::new(name, move |a, _, _, _| get(a, floor_url));
    let mut targets = vec![floor];
    if name == "floor" {
        let mut threaded =
            Target::new("floor_thread_resolver", move |a, _, _, _| get(a, floor_url));
        threaded.thread_resolver = true;
        targets.push(threaded);
    }
    targets
}

/// The store's request kinds through the front-end `url`, and a purchase sent straight to the
/// leader replica at `leader_url` (what the front-end adds is the difference). `bought` counts the
/// orders made, which the order queries then ask for.
fn store_targets<'a>(
    url: &'a str,
    leader_url: &'a str,
    secret: &'a str,
    bought: &'a AtomicU64,
) -> Vec<Target<'a>> {
    let run_id = client::seed_from_time();
    vec![
        Target::new("cached_query", move |a, _, k, i| {
            get(a, &format!("{url}/products/{}", toy(k, i)))
        }),
        Target::new("buy", move |a, _, k, i| {
            let body = format!(r#"{{"name":"{}","quantity":1}}"#, toy(k, i));
            let ok = post(a, &format!("{url}/orders"), body.as_bytes(), None);
            bought.fetch_add(u64::from(ok), Ordering::Relaxed);
            ok
        })
        .under_load(),
        Target::new("leader_buy", move |a, c, k, i| {
            let body = format!(
                r#"{{"request_id":"lb-{run_id:x}-{c}-{k}-{i}","name":"{}","quantity":1}}"#,
                toy(k, i)
            );
            let ok = post(
                a,
                &format!("{leader_url}/orders"),
                body.as_bytes(),
                Some(secret),
            );
            bought.fetch_add(u64::from(ok), Ordering::Relaxed);
            ok
        }),
        Target::new("order_query", move |a, _, k, i| {
            let n = (u64::from(k) * 7919 + i * 104_729) % bought.load(Ordering::Relaxed).max(1);
            get(a, &format!("{url}/orders/{n}"))
        }),
    ]
}

/// The parts of a purchase on their own, on the lone catalog at `catalog`: a call to it (what a
/// cache miss adds), an fdatasync of a small append to `file` on the same disk, and a take of stock
/// (a call and a journal write with fdatasync).
fn catalog_targets<'a>(catalog: &'a str, secret: &'a str, file: &'a File) -> Vec<Target<'a>> {
    let run_id = client::seed_from_time();
    vec![
        Target::new("catalog_query", move |a, _, k, i| {
            internal_get(a, &format!("{catalog}/products/{}", toy(k, i)), secret)
        }),
        Target::new("fdatasync", move |_, _, k, i| {
            let line = format!("{k},{i},Tux,1,0123456789abcdef0123456789abcdef\n");
            (&*file).write_all(line.as_bytes()).is_ok() && file.sync_data().is_ok()
        })
        .max_warmup(20),
        Target::new("catalog_take", move |a, c, k, i| {
            let body = format!(
                r#"{{"request_id":"bench-{run_id:x}-{c}-{k}-{i}","name":"{}","quantity":1,"epoch":1}}"#,
                toy(k, i)
            );
            post(a, &format!("{catalog}/internal/take"), body.as_bytes(), Some(secret))
        })
        .max_warmup(20),
    ]
}

/// A store for the benchmark on the ports from `base`, with stock that does not run out.
fn bench_store(
    cfg: &BenchConfig,
    procs: &Arc<Procs>,
    base: u16,
    alone: bool,
) -> Result<Store, String> {
    let mut options = StoreOptions::local(cfg.bin.clone(), base);
    options.stock = Some(BENCH_STOCK);
    options.toys = &TOYS;
    options.restock_interval = 10.0;
    options.catalog_alone = alone;
    let store = Store::new(options, procs.clone())?;
    store.check_ports_free()?;
    Ok(store)
}

/// A three-member etcd on loopback ([`crate::etcd`]), when `etcd` is on the PATH: a put through its
/// JSON gateway at every concurrency of a purchase (`etcd_put`), each with the floor right after it.
/// Without etcd, one line says how to get it.
fn measure_etcd(bench: &mut Bench, procs: &Arc<Procs>) {
    if bench
        .cfg
        .only
        .as_ref()
        .is_some_and(|only| !only.iter().any(|o| o == "etcd_put"))
    {
        return;
    }
    let Some(binary) = crate::etcd::find() else {
        (bench.progress)(&format!(
            "etcd_put: not measured: {}",
            crate::etcd::HOW_TO_GET
        ));
        return;
    };
    let dir = match tempfile::Builder::new().prefix("toystore-etcd-").tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            (bench.progress)(&format!("etcd_put: not measured: no temporary folder: {e}"));
            return;
        }
    };
    let etcd = match crate::etcd::Etcd::start(&binary, procs, bench.cfg.base_port + 50, dir.path())
    {
        Ok(etcd) => etcd,
        Err(e) => {
            (bench.progress)(&format!("etcd_put: not measured: {e}"));
            return;
        }
    };
    let url = format!("{}/v3/kv/put", etcd.leader_url);
    let run_id = client::seed_from_time();
    let put = Target::new("etcd_put", |a, c, k, i| {
        let key = format!("bench-{run_id:x}-{c}-{k}-{i}");
        let body =
            crate::etcd::put_body(&key, &format!(r#"{{"name":"{}","quantity":1}}"#, toy(k, i)));
        post(a, &url, body.as_bytes(), None)
    })
    .max_warmup(20)
    .under_load();
    bench.measure_all(&[put]);
    drop(etcd);
}

/// Runs the whole benchmark; every process it starts is recorded in `procs` (and killed before it
/// returns); `progress` is told each line as it is measured.
pub fn run(
    cfg: &BenchConfig,
    procs: &Arc<Procs>,
    progress: &dyn Fn(&str),
) -> Result<Vec<BenchRow>, String> {
    // The floor runs for the whole benchmark: after every line it is measured again at the same
    // concurrency, and that measurement is the line's reference.
    let floor_url = spawn_floor(&cfg.bin, cfg.base_port + 20, procs)?;
    let mut bench = Bench {
        cfg,
        floor_url: floor_url.clone(),
        progress,
        rows: Vec::new(),
    };
    bench.measure_all(&floor_targets("floor", &floor_url));

    let mut store = bench_store(cfg, procs, cfg.base_port, false)?;
    store.start_all(true)?;
    let url = store.client_url();
    let leader = store.leader().ok_or("no leader")?;
    let leader_url = store.layout().order_url(leader);
    let bought = AtomicU64::new(0);
    bench.measure_all(&store_targets(&url, &leader_url, store.secret(), &bought));
    store.restart_frontend(false)?;
    bench.measure_all(&[Target::new("uncached_query", |a, _, k, i| {
        get(a, &format!("{url}/products/{}", toy(k, i)))
    })]);
    drop(store);
    measure_etcd(&mut bench, procs);

    // On a catalog of its own: no front-end, no order replica that would roll the takes forward.
    let alone = bench_store(cfg, procs, cfg.base_port + 30, true)?;
    alone.start_catalog_alone()?;
    let file = File::options()
        .create(true)
        .append(true)
        .open(alone.data().join("bench-fsync.log"))
        .map_err(|e| e.to_string())?;
    let catalog = alone.layout().catalog_url();
    bench.measure_all(&catalog_targets(&catalog, alone.secret(), &file));
    drop(alone);
    // The floor once more: how much the machine drifted while the benchmark ran.
    bench.measure_all(&floor_targets("floor_again", &floor_url));
    procs.kill_all();
    Ok(bench.rows)
}

/// The floor at `clients` clients: the lower median and the higher throughput of the two floor
/// measurements (`floor` at the start, `floor_again` at the end), so that a slow spell of the machine
/// during one of them does not flatter the ratios.
pub fn floor_of(rows: &[BenchRow], clients: u32) -> Option<(u64, f64)> {
    let floors: Vec<&BenchRow> = rows
        .iter()
        .filter(|f| (f.target == "floor" || f.target == "floor_again") && f.clients == clients)
        .collect();
    let p50 = floors.iter().map(|f| f.p50_us).filter(|v| *v > 0).min()?;
    let throughput = floors.iter().map(|f| f.throughput).fold(0.0, f64::max);
    Some((p50, throughput))
}

/// The reference floor of `row`: the floor measured right after it when there is one, else
/// [`floor_of`] its concurrency.
pub fn floor_for(rows: &[BenchRow], row: &BenchRow) -> Option<(u64, f64)> {
    if row.floor_p50_us > 0 && row.floor_throughput > 0.0 {
        Some((row.floor_p50_us, row.floor_throughput))
    } else {
        floor_of(rows, row.clients)
    }
}

/// The targets of the median against the floor: (target, clients, most times the floor); `None`
/// clients: at every concurrency.
pub const GOALS: [(&str, Option<u32>, f64); 5] = [
    ("cached_query", None, 1.2),
    ("uncached_query", None, 2.5),
    ("order_query", None, 2.5),
    ("buy", Some(1), 6.0),
    ("buy", Some(5), 8.0),
];

/// Purchases per second at the load concurrency (every one on a quorum's disks), at least.
pub const LOAD_THROUGHPUT_GOAL: f64 = 5000.0;

/// How many times faster than etcd's put a purchase is to be, at 1 and at 5 clients.
pub const ETCD_GOAL: f64 = 2.0;

/// One sentence per target and concurrency on whether it meets its goal: against the floor
/// ([`GOALS`]), the purchases' throughput under load ([`LOAD_THROUGHPUT_GOAL`], at the most clients
/// measured) and against etcd's put ([`ETCD_GOAL`]) when it was measured.
pub fn verdicts(rows: &[BenchRow]) -> Vec<String> {
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let mut out = Vec::new();
    for (target, clients, goal) in GOALS {
        for r in rows
            .iter()
            .filter(|r| r.target == target && clients.is_none_or(|c| c == r.clients))
        {
            let Some((floor_p50, _)) = floor_for(rows, r) else {
                continue;
            };
            let ratio = r.p50_us as f64 / floor_p50 as f64;
            out.push(format!(
                "{} with {} client(s): median {:.1}x the floor measured right after it ({} µs against {} µs), goal {}x: {}",
                target,
                r.clients,
                ratio,
                r.p50_us,
                floor_p50,
                goal,
                verdict(ratio <= goal)
            ));
        }
    }
    let most = rows
        .iter()
        .filter(|r| r.target == "buy")
        .max_by_key(|r| r.clients);
    if let Some(r) = most.filter(|r| r.clients > 5) {
        out.push(format!(
            "buy with {} clients: {:.0} purchases/s, goal {LOAD_THROUGHPUT_GOAL:.0}/s: {}",
            r.clients,
            r.throughput,
            verdict(r.throughput >= LOAD_THROUGHPUT_GOAL)
        ));
    }
    for buy in rows.iter().filter(|r| r.target == "buy") {
        let Some(put) = rows
            .iter()
            .find(|r| r.target == "etcd_put" && r.clients == buy.clients)
        else {
            continue;
        };
        let times = put.p50_us as f64 / buy.p50_us.max(1) as f64;
        let goal = if buy.clients <= 5 {
            format!(", goal {ETCD_GOAL}x: {}", verdict(times >= ETCD_GOAL))
        } else {
            String::new()
        };
        out.push(format!(
            "buy with {} client(s) against a three-member etcd's put: {:.1}x as fast ({} µs against {} µs; {:.0}/s against {:.0}/s){goal}",
            buy.clients, times, buy.p50_us, put.p50_us, buy.throughput, put.throughput
        ));
    }
    if !rows.iter().any(|r| r.target == "etcd_put") {
        out.push(format!(
            "etcd's put: not measured ({})",
            crate::etcd::HOW_TO_GET
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_answers_and_is_measured() {
        let floor = start_floor("127.0.0.1:0", 4).unwrap();
        let url = format!("http://{}/x", floor.addr());
        let row = measure("floor", 2, Duration::from_millis(200), 5, |a, _, _| {
            get(a, &url)
        });
        floor.stop();
        assert_eq!(row.errors, 0);
        assert!(row.requests > 10, "{row:?}");
        assert!(row.p50_us > 0 && row.p50_us <= row.p99_us, "{row:?}");
        assert!(row.throughput > 0.0);
    }

    #[test]
    fn verdicts_compare_medians_with_the_floor() {
        let row = |target: &str, p50_us| BenchRow {
            target: target.into(),
            clients: 1,
            requests: 1,
            errors: 0,
            p50_us,
            p90_us: p50_us,
            p99_us: p50_us,
            throughput: 1.0,
            ..BenchRow::default()
        };
        let v = verdicts(&[
            row("floor", 100),
            row("cached_query", 110),
            row("buy", 1200),
        ]);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].contains("1.1x") && v[0].ends_with(": met"), "{}", v[0]);
        assert!(
            v[1].contains("12.0x") && v[1].ends_with("NOT met"),
            "{}",
            v[1]
        );
        assert!(v[2].contains("not measured"), "{}", v[2]);
    }

    #[test]
    fn verdicts_compare_purchases_with_etcd_and_count_the_load() {
        let row = |target: &str, clients, p50_us, throughput| BenchRow {
            target: target.into(),
            clients,
            requests: 1,
            errors: 0,
            p50_us,
            p90_us: p50_us,
            p99_us: p50_us,
            throughput,
            ..BenchRow::default()
        };
        let v = verdicts(&[
            row("floor", 1, 100, 10_000.0),
            row("floor", 5, 200, 20_000.0),
            row("floor", 32, 1000, 30_000.0),
            row("buy", 1, 500, 2000.0),
            row("buy", 5, 1000, 5000.0),
            row("buy", 32, 5000, 6000.0),
            row("etcd_put", 1, 1500, 600.0),
            row("etcd_put", 5, 1500, 3000.0),
            row("etcd_put", 32, 8000, 4000.0),
        ]);
        let has = |needle: &str| v.iter().any(|l| l.contains(needle));
        assert!(has("buy with 1 client(s): median 5.0x"), "{v:?}");
        assert!(has("buy with 5 client(s): median 5.0x"), "{v:?}");
        assert!(
            has("buy with 32 clients: 6000 purchases/s, goal 5000/s: met"),
            "{v:?}"
        );
        assert!(
            has("1 client(s) against a three-member etcd's put: 3.0x as fast"),
            "{v:?}"
        );
        assert!(
            has("5 client(s) against a three-member etcd's put: 1.5x as fast (1000 µs against 1500 µs; 5000/s against 3000/s), goal 2x: NOT met"),
            "{v:?}"
        );
        assert!(
            v.iter()
                .any(|l| l.contains("32 client(s) against") && !l.contains("goal")),
            "{v:?}"
        );
        assert!(!has("not measured"), "{v:?}");
    }
}
