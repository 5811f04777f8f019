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
            call: Box::new(call),
        }
    }

    fn max_warmup(self, max_warmup: u64) -> Self {
        Target { max_warmup, ..self }
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
        for t in targets {
            for &c in &self.cfg.clients {
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
        }),
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

/// One sentence per target and concurrency on whether it meets its goal against the floor.
pub fn verdicts(rows: &[BenchRow]) -> Vec<String> {
    let mut out = Vec::new();
    for (target, goal) in [("cached_query", 2.0), ("buy", 10.0)] {
        for r in rows.iter().filter(|r| r.target == target) {
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
                if ratio <= goal { "met" } else { "NOT met" }
            ));
        }
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
            row("cached_query", 150),
            row("buy", 1200),
        ]);
        assert_eq!(v.len(), 2);
        assert!(v[0].contains("1.5x") && v[0].ends_with(": met"), "{}", v[0]);
        assert!(
            v[1].contains("12.0x") && v[1].ends_with("NOT met"),
            "{}",
            v[1]
        );
    }
}
