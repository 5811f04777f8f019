//! The p sweep: for each buy probability p, the same load with the front-end's cache on and then off.
//!
//! One store serves the whole sweep; only the front-end is restarted between runs (with or without
//! `--no-cache`). The sweep goes over all p values `repeats` times, the two settings of one p back to
//! back in alternating order, so that a slow spell of the machine (other work on it) affects both
//! settings and every p alike rather than one run. Each run starts with a short unrecorded
//! warm-up (connections opened, the cache filled), then `clients` sessions of the [`client`] library
//! run `iterations` each at once; every request they make becomes a [`SweepRow`].

use crate::data::{cache_label, RunRow, SweepRow};
use crate::ui::Ui;
use std::path::{Path, PathBuf};
use std::time::Instant;
use systest::cluster::Store;

/// Settings of the sweep.
#[derive(Debug, Clone)]
pub struct SweepConfig {
    /// Buy probabilities, in order.
    pub ps: Vec<f64>,
    /// Iterations per client and run.
    pub iterations: u64,
    /// Rounds over all the settings; each (p, cache) setting gets `repeats` runs of `iterations`.
    pub repeats: u32,
    /// Concurrent client sessions.
    pub clients: u32,
    /// Unrecorded iterations per client before each run.
    pub warmup: u64,
    /// Seed of the first run; each run adds its index.
    pub seed: u64,
    /// Scratch folder for the client library's own CSVs.
    pub scratch: PathBuf,
}

/// What the sweep measured.
#[derive(Debug, Clone, Default)]
pub struct SweepResult {
    /// Every request.
    pub rows: Vec<SweepRow>,
    /// One row per run.
    pub runs: Vec<RunRow>,
}

fn client_config(
    store: &Store,
    cfg: &SweepConfig,
    p: f64,
    iterations: u64,
    tag: &str,
    csv: &Path,
) -> client::Config {
    client::Config {
        frontend: store.client_url(),
        iterations,
        p,
        seed: None,
        latency_csv: csv.to_path_buf(),
        threads: cfg.clients,
        client_id: 0,
        tag: tag.to_string(),
        ..client::Config::default()
    }
}

/// Every (p, cache) setting in the order the sweep runs them: rounds over every p, the two cache
/// settings of a p back to back, their order swapped every round, so that a slow spell of the
/// machine falls on both settings and on every p alike.
fn settings(cfg: &SweepConfig) -> Vec<(f64, bool)> {
    (0..cfg.repeats.max(1))
        .flat_map(|round| {
            cfg.ps.iter().flat_map(move |p| {
                let first = round % 2 == 0;
                [(*p, first), (*p, !first)]
            })
        })
        .collect()
}

/// One run of the sweep.
struct Setting<'a> {
    /// Its place in [`settings`].
    index: usize,
    /// The round over every setting it belongs to, from 0.
    round: usize,
    /// Buy probability.
    p: f64,
    /// The front-end's cache on or off.
    cache: bool,
    /// How progress names it.
    label: &'a str,
}

/// Runs the sweep on a started store. Leaves the front-end running with the cache on.
pub fn run(store: &mut Store, cfg: &SweepConfig, ui: &Ui) -> Result<SweepResult, String> {
    let mut result = SweepResult::default();
    let settings = settings(cfg);
    let overall = ui.bar(
        settings.len() as u64,
        "sweep {bar:20} {pos}/{len} runs  {msg}",
    );
    for (index, (p, cache)) in settings.iter().copied().enumerate() {
        let round = index / (2 * cfg.ps.len().max(1));
        let label = format!(
            "round {}/{}: p={p:.1} cache {}",
            round + 1,
            cfg.repeats.max(1),
            cache_label(cache)
        );
        overall.set_message(label.clone());
        let setting = Setting {
            index,
            round,
            p,
            cache,
            label: &label,
        };
        let run = run_setting(store, cfg, ui, &setting, &mut result.rows)?;
        result.runs.push(run);
        overall.inc(1);
    }
    ui.finish(overall);
    store.restart_frontend(true)?;
    Ok(result)
}

/// One run: the front-end restarted with the setting's cache, a warm-up, then the clients; every
/// request they made goes to `rows`. Returns the run's row.
fn run_setting(
    store: &mut Store,
    cfg: &SweepConfig,
    ui: &Ui,
    setting: &Setting,
    rows: &mut Vec<SweepRow>,
) -> Result<RunRow, String> {
    let Setting {
        index,
        p,
        cache,
        label,
        ..
    } = *setting;
    store.restart_frontend(cache)?;
    let scratch = cfg.scratch.join(format!("client-{index}.csv"));
    let seed = cfg.seed.wrapping_add(1000 * index as u64);
    if cfg.warmup > 0 {
        let warm = client_config(store, cfg, p, cfg.warmup, "warmup", &scratch);
        client::run_with_progress(
            &warm,
            seed.wrapping_add(500),
            indicatif::ProgressBar::hidden(),
        )
        .map_err(|e| format!("warm-up of {label}: {e}"))?;
    }
    let (hits0, misses0) = store.cache_counters();
    let config = client_config(store, cfg, p, cfg.iterations, cache_label(cache), &scratch);
    let bar = ui.bar(
        cfg.iterations * u64::from(cfg.clients),
        "  {bar:40} {pos}/{len} iterations ({per_sec}, eta {eta})  {msg}",
    );
    bar.set_message(label.to_string());
    let started = Instant::now();
    let report = client::run_with_progress(&config, seed, bar.clone())
        .map_err(|e| format!("{label}: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    ui.finish(bar);
    let (hits1, misses1) = store.cache_counters();
    let _ = std::fs::remove_file(&scratch);

    let requests = keep_rows(&report, p, cache, rows);
    let summary = &report.summary;
    let run = RunRow {
        p,
        cache: cache_label(cache).into(),
        clients: cfg.clients,
        iterations: cfg.iterations,
        round: setting.round as u32,
        requests,
        seconds,
        throughput: requests as f64 / seconds.max(1e-9),
        failures: summary.failures as u64,
        conflicts: summary.stats(client::Kind::Buy).conflicts,
        orders_made: summary.orders_made as u64,
        orders_verified: summary.orders_verified as u64,
        mismatches: summary.mismatches as u64,
        cache_hits: hits1.saturating_sub(hits0),
        cache_misses: misses1.saturating_sub(misses0),
    };
    tell(ui, label, &run, &report);
    Ok(run)
}

/// Every request of `report` as a row of the setting (p, cache) in `rows`; how many.
fn keep_rows(report: &client::Report, p: f64, cache: bool, rows: &mut Vec<SweepRow>) -> u64 {
    let mut requests = 0;
    for session in &report.sessions {
        for s in &session.samples {
            requests += 1;
            rows.push(SweepRow {
                client: session.client,
                kind: s.kind,
                latency_us: s.latency_us,
                ok: s.ok(),
                p,
                cache: cache_label(cache).into(),
            });
        }
    }
    requests
}

/// Tells how run `run` of `label` went, and its first failures.
fn tell(ui: &Ui, label: &str, run: &RunRow, report: &client::Report) {
    ui.say(&format!(
        "{label}: {} requests in {:.1} s ({:.0}/s); query p50 {} us, buy p50 {} us; {} orders, {} verified, {} failed requests",
        run.requests,
        run.seconds,
        run.throughput,
        report.summary.stats(client::Kind::Query).p50_us,
        report.summary.stats(client::Kind::Buy).p50_us,
        run.orders_made,
        run.orders_verified,
        run.failures
    ));
    for f in report.failures.iter().take(5) {
        ui.say(&format!("  failed: {f}"));
    }
}
