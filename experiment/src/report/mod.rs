//! `REPORT.md` and the plots, made from the files in `results/` alone (see [`crate::data`]).
//!
//! Every number and every sentence that states a finding is computed from the measured rows; the
//! only fixed text explains what was measured and how. Parts that did not run are left out.
//!
//! One module per section of the report, in its order: `machine` (machine and settings), `sweep`
//! (latency against p, cache on and off), `crash` (the crash run), `bench` (the benchmark against
//! the floor), `links` (the hand-written notes) and `files` (the files).

use crate::analysis::{self, SweepCell};
use crate::data::{
    read_csv, BenchRow, CrashOutcome, CrashRow, EventRow, RunInfo, RunRow, SweepRow, BENCH_CSV,
    CRASH_BUCKETS_CSV, CRASH_CSV, CRASH_EVENTS_CSV, CRASH_OUTCOME, RUN_INFO, SWEEP_CSV,
    SWEEP_RUNS_CSV,
};
use crate::plot;
use std::fmt::Write as _;
use std::path::Path;

mod bench;
mod crash;
mod files;
mod links;
mod machine;
mod sweep;

pub use crash::crash_findings;
pub use sweep::{merge_runs, sweep_findings};

/// The report's file name.
pub const REPORT_MD: &str = "REPORT.md";
/// A hand-written profile of the hot paths, linked from the report when present.
pub const PROFILE_MD: &str = "PROFILE.md";
/// The multi-host deployment notes, linked when present.
pub const DEPLOY_MD: &str = "DEPLOY.md";
/// Width of the crash timeline's buckets.
pub const BUCKET_MS: u64 = 250;

/// Everything the report is made from.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// Machine and settings.
    pub info: Option<RunInfo>,
    /// Sweep runs.
    pub runs: Vec<RunRow>,
    /// Sweep percentiles.
    pub cells: Vec<SweepCell>,
    /// Crash run requests.
    pub crash_rows: Vec<CrashRow>,
    /// Crash run latency over time, from every request.
    pub crash_buckets: Vec<analysis::Bucket>,
    /// Crash run events.
    pub events: Vec<EventRow>,
    /// Crash run outcome.
    pub outcome: Option<CrashOutcome>,
    /// Benchmark table.
    pub bench: Vec<BenchRow>,
    /// Whether PROFILE.md exists.
    pub has_profile: bool,
    /// Whether DEPLOY.md exists.
    pub has_deploy: bool,
}

fn read_optional<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    if path.exists() {
        read_csv(path)
    } else {
        Ok(Vec::new())
    }
}

/// Reads what is there in `dir`.
pub fn load(dir: &Path) -> Result<Inputs, String> {
    let json = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let sweep: Vec<SweepRow> = read_optional(&dir.join(SWEEP_CSV))?;
    Ok(Inputs {
        info: json(RUN_INFO)
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| format!("{RUN_INFO}: {e}"))?,
        runs: read_optional(&dir.join(SWEEP_RUNS_CSV))?,
        cells: analysis::sweep_cells(&sweep),
        crash_rows: read_optional(&dir.join(CRASH_CSV))?,
        events: read_optional(&dir.join(CRASH_EVENTS_CSV))?,
        crash_buckets: read_optional(&dir.join(CRASH_BUCKETS_CSV))?,
        outcome: json(CRASH_OUTCOME)
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| format!("{CRASH_OUTCOME}: {e}"))?,
        bench: read_optional(&dir.join(BENCH_CSV))?,
        has_profile: dir.join(PROFILE_MD).exists(),
        has_deploy: dir.join(DEPLOY_MD).exists(),
    })
}

/// Makes the plots and `REPORT.md` in `dir` from its files. Returns the files written.
pub fn write_all(dir: &Path) -> Result<Vec<String>, String> {
    let inputs = load(dir)?;
    let mut written = plot::latency_vs_p(dir, &inputs.cells)?;
    let buckets = if inputs.crash_buckets.is_empty() {
        analysis::buckets(&inputs.crash_rows, BUCKET_MS)
    } else {
        inputs.crash_buckets.clone()
    };
    written.extend(plot::crash_timeline(
        dir,
        &buckets,
        &inputs.events,
        BUCKET_MS,
    )?);
    let text = render(&inputs);
    std::fs::write(dir.join(REPORT_MD), text).map_err(|e| format!("{REPORT_MD}: {e}"))?;
    written.push(REPORT_MD.into());
    Ok(written)
}

/// Percent change from `from` to `to`.
fn pct(from: f64, to: f64) -> f64 {
    if from == 0.0 {
        0.0
    } else {
        (to - from) / from * 100.0
    }
}

/// A plot shown as its SVG, with a link to its PNG.
fn figure(o: &mut String, alt: &str, stem: &str) {
    let _ = writeln!(o, "![{alt}]({stem}.svg)\n");
    let _ = writeln!(o, "(Also as [PNG]({stem}.png).)\n");
}

/// The "What it shows" part of a section: one bullet per finding.
fn findings(o: &mut String, lines: &[String]) {
    let _ = writeln!(o, "### What it shows\n");
    for line in lines {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(o);
}

/// The report's Markdown.
pub fn render(i: &Inputs) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# Evaluation of the toy store\n");
    let _ = writeln!(
        o,
        "Written by `make experiment` from the files in this folder (`make report` writes it and the plots \
         again from them, without running anything). Latencies are measured by the client library around each \
         whole request, from before sending to after reading the whole answer.\n"
    );
    machine::section(&mut o, i);
    if !i.cells.is_empty() {
        sweep::section(&mut o, i);
    }
    if !i.events.is_empty() || i.outcome.is_some() {
        crash::section(&mut o, i);
    }
    if !i.bench.is_empty() {
        bench::section(&mut o, &i.bench);
    }
    links::sections(&mut o, i);
    files::section(&mut o, i);
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{write_csv, Kind, Machine};

    /// A small synthetic results folder: the report and both plots are written from it.
    #[test]
    fn report_and_plots_are_written_from_synthetic_csvs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut sweep = Vec::new();
        let mut runs = Vec::new();
        for p in [0.0, 0.5] {
            for cache in ["on", "off"] {
                for n in 0..50u64 {
                    let q = if cache == "on" { 200 + n } else { 500 + n };
                    sweep.push(SweepRow {
                        client: n % 5,
                        kind: Kind::Query,
                        latency_us: q,
                        ok: true,
                        p,
                        cache: cache.into(),
                    });
                    if p > 0.0 {
                        sweep.push(SweepRow {
                            client: n % 5,
                            kind: Kind::Buy,
                            latency_us: 3000 + n,
                            ok: true,
                            p,
                            cache: cache.into(),
                        });
                    }
                }
                runs.push(RunRow {
                    p,
                    cache: cache.into(),
                    clients: 5,
                    iterations: 10,
                    round: 0,
                    requests: 100,
                    seconds: 1.0,
                    throughput: 100.0,
                    failures: 0,
                    conflicts: 1,
                    orders_made: 25,
                    orders_verified: 25,
                    mismatches: 0,
                    cache_hits: if cache == "on" { 40 } else { 0 },
                    cache_misses: 10,
                });
            }
        }
        write_csv(&d.join(SWEEP_CSV), &sweep).unwrap();
        write_csv(&d.join(SWEEP_RUNS_CSV), &runs).unwrap();
        let crash: Vec<CrashRow> = (0..200u64)
            .map(|t| CrashRow {
                client: t % 5,
                kind: if t % 2 == 0 { Kind::Query } else { Kind::Buy },
                latency_us: if t == 101 { 900_000 } else { 2000 },
                ok: true,
                status: 200,
                start_ms: t * 20,
            })
            .collect();
        write_csv(&d.join(CRASH_CSV), &crash).unwrap();
        let events = vec![
            EventRow {
                t_ms: 2030,
                event: "kill".into(),
                replica: 3,
                leader: true,
            },
            EventRow {
                t_ms: 3000,
                event: "restart".into(),
                replica: 3,
                leader: false,
            },
            EventRow {
                t_ms: 3300,
                event: "synced".into(),
                replica: 3,
                leader: false,
            },
        ];
        write_csv(&d.join(CRASH_EVENTS_CSV), &events).unwrap();
        let outcome = CrashOutcome {
            clients: 5,
            rounds: 1,
            orders_made: 100,
            orders_verified: 100,
            consistency: "ok: fine".into(),
            ..Default::default()
        };
        std::fs::write(
            d.join(CRASH_OUTCOME),
            serde_json::to_string(&outcome).unwrap(),
        )
        .unwrap();
        let info = RunInfo {
            machine: Machine::read(),
            clients: 5,
            iterations: 10,
            network: "loopback".into(),
            ..Default::default()
        };
        std::fs::write(d.join(RUN_INFO), serde_json::to_string(&info).unwrap()).unwrap();
        let bench = vec![
            BenchRow {
                target: "floor".into(),
                clients: 1,
                requests: 1000,
                errors: 0,
                p50_us: 50,
                p90_us: 60,
                p99_us: 90,
                throughput: 18000.0,
                ..Default::default()
            },
            BenchRow {
                target: "cached_query".into(),
                clients: 1,
                requests: 1000,
                errors: 0,
                p50_us: 80,
                p90_us: 90,
                p99_us: 120,
                throughput: 12000.0,
                ..Default::default()
            },
            BenchRow {
                target: "buy".into(),
                clients: 1,
                requests: 1000,
                errors: 0,
                p50_us: 1500,
                p90_us: 1900,
                p99_us: 3000,
                throughput: 650.0,
                ..Default::default()
            },
        ];
        write_csv(&d.join(BENCH_CSV), &bench).unwrap();

        let written = write_all(d).unwrap();
        for f in [
            "latency-vs-p.svg",
            "latency-vs-p.png",
            "crash-timeline.svg",
            "crash-timeline.png",
            REPORT_MD,
        ] {
            assert!(written.iter().any(|w| w == f), "{f} not in {written:?}");
            assert!(d.join(f).exists(), "{f}");
        }
        let report = std::fs::read_to_string(d.join(REPORT_MD)).unwrap();
        for needle in [
            "## Machine and settings",
            "| 0.5 | buy |",
            "the cache saves",
            "80 % (40 of 50)",
            "| 2.0 s | 3 | yes | 3.0 s | 3.3 s | 900.0 ms (buy) |",
            "**Leader killed.**",
            "| cached_query | 1 | 1000 | 80 µs |",
            "1.6x",
            "ok: fine",
        ] {
            assert!(report.contains(needle), "{needle} missing in:\n{report}");
        }
        assert!(!report.contains("PROFILE.md"));
    }

    #[test]
    fn an_empty_folder_gives_a_short_report() {
        let dir = tempfile::tempdir().unwrap();
        let written = write_all(dir.path()).unwrap();
        assert_eq!(written, vec![REPORT_MD.to_string()]);
        let report = std::fs::read_to_string(dir.path().join(REPORT_MD)).unwrap();
        assert!(report.contains("the machine is unknown"));
    }
}
