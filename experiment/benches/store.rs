//! `cargo bench -p experiment` (`make bench`): the floor against the store's request kinds, printed
//! as percentiles and ratios, and written to `results/bench.csv`; then what a scrape of `/metrics`
//! costs, and what it costs a purchase.
//!
//! Environment: `TOYSTORE_BIN` (the release binaries; default: the `release` folder this benchmark
//! was built into), `BENCH_SECS` (measuring time per line, default 3), `BENCH_BASE_PORT` (default
//! 23900), `BENCH_OUT` (default: the workspace's `results`), `BENCH_ONLY` (a comma-separated list of
//! targets: only those and the floor are measured, and nothing is written unless `BENCH_OUT` is set).

use experiment::bench::{self, BenchConfig};
use experiment::data::{write_csv, Machine, BENCH_CSV};
use std::path::PathBuf;
use std::time::Duration;
use systest::cluster::Procs;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would make no sense here.
    let bin = std::env::var_os("TOYSTORE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/release/deps/store-HASH -> target/release
            let exe = std::env::current_exe().expect("own path");
            exe.parent()
                .and_then(|d| d.parent())
                .expect("release folder")
                .to_path_buf()
        });
    let out = std::env::var_os("BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("results")
        });
    let cfg = BenchConfig {
        bin,
        base_port: env_or("BENCH_BASE_PORT", 23900),
        duration: Duration::from_secs_f64(env_or("BENCH_SECS", 3.0)),
        warmup: 200,
        clients: vec![1, 5],
        load_clients: 32,
        only: std::env::var("BENCH_ONLY")
            .ok()
            .map(|v| v.split(',').map(|t| t.trim().to_string()).collect()),
    };
    println!(
        "benchmark: {:.0} s per line, binaries from {}; load average before: {}",
        cfg.duration.as_secs_f64(),
        cfg.bin.display(),
        Machine::loadavg()
    );
    let procs = Procs::new();
    procs.install_interrupt_handler();
    let result = bench::run(&cfg, &procs, &|line| println!("{line}"));
    // What /metrics costs, on a store of its own (experiment/src/bench_scrape.rs).
    let result = result.and_then(|mut rows| {
        rows.extend(experiment::bench_scrape::run(&cfg, &procs, &|line| {
            println!("{line}")
        })?);
        Ok(rows)
    });
    // Also when the run failed half-way: nothing it started may outlive it.
    procs.kill_all();
    let rows = match result {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    println!();
    println!(
        "{:<15} {:>7} {:>9} {:>9} {:>9} {:>10} {:>11} {:>12}",
        "target", "clients", "p50_us", "p90_us", "p99_us", "req/s", "p50/floor", "req/s/floor"
    );
    for r in &rows {
        let (floor_p50, floor_throughput) = bench::floor_for(&rows, r).expect("floor measured");
        println!(
            "{:<15} {:>7} {:>9} {:>9} {:>9} {:>10.0} {:>10.2}x {:>11.2}x",
            r.target,
            r.clients,
            r.p50_us,
            r.p90_us,
            r.p99_us,
            r.throughput,
            r.p50_us as f64 / floor_p50.max(1) as f64,
            r.throughput / floor_throughput.max(1e-9)
        );
    }
    println!("(ratios to the floor measured right after each line at the same concurrency)");
    println!("load average after: {}", Machine::loadavg());
    println!();
    for v in bench::verdicts(&rows) {
        // A run of a few lines leaves etcd out on purpose.
        if cfg.only.is_none() || !v.starts_with("etcd's put: not measured") {
            println!("{v}");
        }
    }
    let partial = cfg.only.is_some() && std::env::var_os("BENCH_OUT").is_none();
    if !partial && std::fs::create_dir_all(&out).is_ok() {
        match write_csv(&out.join(BENCH_CSV), &rows) {
            Ok(()) => println!("wrote {}", out.join(BENCH_CSV).display()),
            Err(e) => eprintln!("bench: {e}"),
        }
    }
}
