//! What `/metrics` costs: the benchmark's scrape lines.
//!
//! On a store of its own (the benchmark's stock, ports from [`BenchConfig::base_port`] + 60):
//! - `scrape_catalog`, `scrape_order`, `scrape_frontend`: [`SCRAPES`] scrapes of each service's
//!   `/metrics` one after the other (the leader replica's for `scrape_order`), each timed around the
//!   whole call, body read;
//! - `buy_unscraped` and `buy_scraped`: purchases through the front-end from one client, without
//!   and then with a scraper that reads all five services' `/metrics` back to back every
//!   [`SCRAPE_EVERY`] (a hundred times what `scripts/prometheus.yml` asks), so that what a scrape
//!   makes a purchase wait is the difference.

use crate::bench::{measure, BenchConfig, BENCH_STOCK};
use crate::data::{BenchRow, Stats};
use crate::TOYS;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use systest::cluster::{Procs, Store, StoreOptions};

/// Scrapes of each service per `scrape_*` line.
pub const SCRAPES: usize = 300;

/// The background scraper's period in `buy_scraped`.
pub const SCRAPE_EVERY: Duration = Duration::from_millis(10);

/// The ports of the scrape lines' store, from the benchmark's base.
pub const PORT_OFFSET: u16 = 60;

/// Reads `{base}/metrics` with the secret; its size in bytes, or None on a failure.
fn scrape(agent: &ureq::Agent, base: &str, secret: &str) -> Option<usize> {
    let r = agent
        .get(format!("{base}/metrics"))
        .header("Authorization", format!("Bearer {secret}"))
        .call();
    match r {
        Ok(mut r) if r.status() == 200 => r.body_mut().read_to_vec().ok().map(|b| b.len()),
        Ok(mut r) => {
            let _ = r.body_mut().read_to_vec();
            None
        }
        Err(_) => None,
    }
}

/// [`SCRAPES`] scrapes of `base`, as a benchmark line called `target`; also the exposition's size.
fn scrape_line(target: &str, base: &str, secret: &str) -> (BenchRow, usize) {
    let agent = crate::resolver::agent(1);
    let (mut latencies, mut errors, mut bytes) = (Vec::with_capacity(SCRAPES), 0, 0);
    let started = Instant::now();
    for _ in 0..SCRAPES {
        let t = Instant::now();
        match scrape(&agent, base, secret) {
            Some(n) => bytes = n,
            None => errors += 1,
        }
        latencies.push(t.elapsed().as_micros() as u64);
    }
    let elapsed = started.elapsed();
    let stats = Stats::of(latencies);
    let row = BenchRow {
        target: target.to_string(),
        clients: 1,
        requests: stats.count,
        errors,
        p50_us: stats.p50_us,
        p90_us: stats.p90_us,
        p99_us: stats.p99_us,
        throughput: stats.count as f64 / elapsed.as_secs_f64().max(1e-9),
        ..BenchRow::default()
    };
    (row, bytes)
}

/// A purchase of one unit of the toy for request `i`, through the front-end at `url`.
fn buy(agent: &ureq::Agent, url: &str, i: u64) -> bool {
    let toy = TOYS[(i % TOYS.len() as u64) as usize].0;
    let body = format!(r#"{{"name":"{toy}","quantity":1}}"#);
    match agent
        .post(format!("{url}/orders"))
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
    {
        Ok(mut r) => {
            let ok = r.status().is_success();
            let _ = r.body_mut().read_to_vec();
            ok
        }
        Err(_) => false,
    }
}

/// The scrape lines, on a store of their own; every process is recorded in `procs` and the store
/// is stopped before this returns. `progress` is told each line.
pub fn run(
    cfg: &BenchConfig,
    procs: &Arc<Procs>,
    progress: &dyn Fn(&str),
) -> Result<Vec<BenchRow>, String> {
    let mut options = StoreOptions::local(cfg.bin.clone(), cfg.base_port + PORT_OFFSET);
    options.stock = Some(BENCH_STOCK);
    options.toys = &TOYS;
    options.restock_interval = 10.0;
    let mut store = Store::new(options, procs.clone())?;
    store.check_ports_free()?;
    store.start_all(true)?;
    let leader = store.leader().ok_or("no leader")?;
    let layout = store.layout().clone();
    let secret = store.secret().to_string();
    let mut rows = Vec::new();
    for (target, base) in [
        ("scrape_catalog", layout.catalog_url()),
        ("scrape_order", layout.order_url(leader)),
        ("scrape_frontend", layout.frontend_internal_url()),
    ] {
        let (row, bytes) = scrape_line(target, &base, &secret);
        progress(&format!(
            "{target:<15} {} scrapes of {bytes} bytes: p50 {} us  p90 {} us  p99 {} us{}",
            row.requests,
            row.p50_us,
            row.p90_us,
            row.p99_us,
            errors_note(&row)
        ));
        rows.push(row);
    }

    let url = store.client_url();
    let warmup = cfg.warmup.min(50);
    let unscraped = measure("buy_unscraped", 1, cfg.duration, warmup, |a, _, i| {
        buy(a, &url, i)
    });
    let stop = AtomicBool::new(false);
    let scraped_count = AtomicU64::new(0);
    let bases: Vec<String> = [layout.catalog_url(), layout.frontend_internal_url()]
        .into_iter()
        .chain(systest::REPLICAS.iter().map(|id| layout.order_url(*id)))
        .collect();
    let scraped = std::thread::scope(|s| {
        s.spawn(|| {
            let agent = crate::resolver::agent(1);
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                for base in &bases {
                    if scrape(&agent, base, &secret).is_some() {
                        scraped_count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(SCRAPE_EVERY.saturating_sub(t.elapsed()));
            }
        });
        let row = measure("buy_scraped", 1, cfg.duration, warmup, |a, _, i| {
            buy(a, &url, 1_000_000 + i)
        });
        stop.store(true, Ordering::Relaxed);
        row
    });
    for row in [&unscraped, &scraped] {
        progress(&format!(
            "{:<15} 1 client(s): p50 {:>6} us  p90 {:>6} us  p99 {:>6} us  {:>7.0}/s{}",
            row.target,
            row.p50_us,
            row.p90_us,
            row.p99_us,
            row.throughput,
            errors_note(row)
        ));
    }
    progress(&format!(
        "(the scraper read {} expositions while buy_scraped ran)",
        scraped_count.load(Ordering::Relaxed)
    ));
    rows.extend([unscraped, scraped]);
    drop(store);
    Ok(rows)
}

/// "  (n errors)" after a line that had any.
fn errors_note(row: &BenchRow) -> String {
    if row.errors > 0 {
        format!("  ({} errors)", row.errors)
    } else {
        String::new()
    }
}
