//! What the experiments write under `results/` and read back to make the plots and the report.
//!
//! Per-request CSVs start with the contract's columns `client,kind,latency_us,ok`, then the run's
//! setting. They are kept compact (no timestamps where none are needed) so that a full run stays a few
//! MB and can be committed:
//!
//! - [`SWEEP_CSV`]: one row per request of the p sweep, [`SweepRow`].
//! - [`SWEEP_RUNS_CSV`]: one row per (p, cache) run, [`RunRow`]: throughput, errors, orders, cache
//!   counters.
//! - [`CRASH_CSV`]: one row per request of the crash run, [`CrashRow`], with its start time (queries
//!   sampled, see [`CRASH_QUERY_SAMPLE`]).
//! - [`CRASH_BUCKETS_CSV`]: latency over time of the crash run from every request.
//! - [`CRASH_EVENTS_CSV`]: every kill, restart and catch-up of a replica, [`EventRow`].
//! - [`RUN_INFO`]: the machine and the settings, [`RunInfo`] as JSON.
//! - [`BENCH_CSV`]: the benchmark's table, [`BenchRow`].

use hdrhistogram::Histogram;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Per-request latencies of the p sweep.
pub const SWEEP_CSV: &str = "latency-sweep.csv";
/// One row per run of the sweep.
pub const SWEEP_RUNS_CSV: &str = "sweep-runs.csv";
/// Per-request latencies of the crash run.
pub const CRASH_CSV: &str = "latency-crash.csv";
/// Latency over time of the crash run: every request, in buckets ([`crate::analysis::Bucket`]).
pub const CRASH_BUCKETS_CSV: &str = "crash-buckets.csv";
/// [`CRASH_CSV`] keeps every purchase and order query but only one query in this many (queries do
/// not touch the order replicas), so that a full run stays small enough to commit;
/// [`CRASH_BUCKETS_CSV`] is made from every request.
pub const CRASH_QUERY_SAMPLE: u64 = 10;
/// Kills and restarts of the crash run.
pub const CRASH_EVENTS_CSV: &str = "crash-events.csv";
/// Outcome of the crash run.
pub const CRASH_OUTCOME: &str = "crash-outcome.json";
/// Machine and settings.
pub const RUN_INFO: &str = "run-info.json";
/// The benchmark's results.
pub const BENCH_CSV: &str = "bench.csv";

/// Which request a row measures: the client's own kinds.
pub use client::Kind;

/// The cache setting of a run, as written in the CSVs.
pub fn cache_label(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// One request of the p sweep.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SweepRow {
    /// Client session id.
    pub client: u64,
    /// What was requested.
    pub kind: Kind,
    /// Latency of the whole request, µs.
    pub latency_us: u64,
    /// Whether it got a 2xx.
    pub ok: bool,
    /// The run's buy probability.
    pub p: f64,
    /// `on` or `off`.
    pub cache: String,
}

/// One (p, cache) run of the sweep.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct RunRow {
    /// Buy probability.
    pub p: f64,
    /// `on` or `off`.
    pub cache: String,
    /// Concurrent clients.
    pub clients: u32,
    /// Iterations per client.
    pub iterations: u64,
    /// Round of the sweep (0, 1, ...).
    #[serde(default)]
    pub round: u32,
    /// Requests measured.
    pub requests: u64,
    /// Wall time of the run, s.
    pub seconds: f64,
    /// Requests per second.
    pub throughput: f64,
    /// Transport errors, 5xx and answers outside the contract.
    pub failures: u64,
    /// Purchases refused for lack of stock (expected under concurrency).
    pub conflicts: u64,
    /// Purchases that got a 200.
    pub orders_made: u64,
    /// Of those, how many the verification found as bought.
    pub orders_verified: u64,
    /// Orders that did not verify.
    pub mismatches: u64,
    /// Queries the front-end answered from its cache during the run.
    pub cache_hits: u64,
    /// Queries it had to ask the catalog for.
    pub cache_misses: u64,
}

/// One request of the crash run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CrashRow {
    /// Client session id.
    pub client: u64,
    /// What was requested.
    pub kind: Kind,
    /// Latency, µs.
    pub latency_us: u64,
    /// Whether it got a 2xx.
    pub ok: bool,
    /// HTTP status, 0 for a transport error.
    pub status: u16,
    /// Start, ms since the crash run began (the clock of the kill events).
    pub start_ms: u64,
}

/// A kill, restart or catch-up of a replica during the crash run.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct EventRow {
    /// ms since the crash run began.
    pub t_ms: u64,
    /// `kill`, `restart` or `synced`.
    pub event: String,
    /// The replica.
    pub replica: u32,
    /// Whether it led when it was killed.
    pub leader: bool,
}

/// One line of the benchmark's table.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct BenchRow {
    /// What was measured: `floor`, `cached_query`, `uncached_query`, `buy`, `order_query`.
    pub target: String,
    /// Concurrent clients.
    pub clients: u32,
    /// Requests measured.
    pub requests: u64,
    /// Requests that did not get a 2xx.
    pub errors: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Requests per second.
    pub throughput: f64,
    /// Median of the floor measured right after this line at the same concurrency, µs: the
    /// reference of this line's ratios, so that a slow spell of the machine hits both alike.
    #[serde(default)]
    pub floor_p50_us: u64,
    /// Throughput of that floor measurement.
    #[serde(default)]
    pub floor_throughput: f64,
}

/// The machine an experiment ran on.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct Machine {
    /// Online CPUs.
    pub nproc: usize,
    /// `model name` from /proc/cpuinfo.
    pub cpu_model: String,
    /// `uname -r` (from /proc/sys/kernel/osrelease).
    pub kernel: String,
    /// Total memory, from /proc/meminfo.
    pub memory: String,
}

impl Machine {
    /// The 1, 5 and 15 minute load averages, as /proc/loadavg shows them (other work on the machine
    /// shows up in the tails).
    pub fn loadavg() -> String {
        let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads this machine's.
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let memory = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:").map(|r| r.trim().to_string()))
            .and_then(|kb| kb.trim_end_matches(" kB").trim().parse::<u64>().ok())
            .map(|kb| format!("{:.1} GiB", kb as f64 / (1024.0 * 1024.0)))
            .unwrap_or_default();
        Machine {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model,
            kernel,
            memory,
        }
    }
}

/// The settings and machine of a run, kept beside its CSVs so that the report can be made again
/// from the files alone.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct RunInfo {
    /// Where it ran.
    pub machine: Machine,
    /// When it started, seconds since the Unix epoch.
    pub started_unix: u64,
    /// Concurrent clients.
    pub clients: u32,
    /// Iterations per client and run.
    pub iterations: u64,
    /// Runs per (p, cache) setting.
    #[serde(default)]
    pub repeats: u32,
    /// The p values.
    pub ps: Vec<f64>,
    /// The catalog's restock interval, s.
    pub restock_interval: f64,
    /// Units of each toy the catalog started with.
    #[serde(default)]
    pub stock: u64,
    /// Network: `loopback`, or a description of the namespaces.
    pub network: String,
    /// Delay added each way between client and front-end, ms.
    pub delay_ms: u64,
    /// Seconds the sweep took (0 when it did not run).
    pub sweep_seconds: f64,
    /// Seconds the crash run took (0 when it did not run).
    pub crash_seconds: f64,
    /// Load averages when the run started.
    #[serde(default)]
    pub loadavg_start: String,
    /// Load averages when it ended.
    #[serde(default)]
    pub loadavg_end: String,
}

/// What the crash run found, besides the per-request rows.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct CrashOutcome {
    /// Requests that failed (transport error, 5xx, other answer outside the contract).
    pub failures: u64,
    /// The first few failures, as text.
    pub failure_examples: Vec<String>,
    /// Purchases that got a 200.
    pub orders_made: u64,
    /// Of those, found as bought by the verification.
    pub orders_verified: u64,
    /// Orders that did not verify.
    pub mismatches: u64,
    /// The store-wide check after the run: `ok: ...` or what was wrong.
    pub consistency: String,
    /// Concurrent clients.
    pub clients: u32,
    /// Kill rounds.
    pub rounds: u32,
    /// Buy probability.
    #[serde(default)]
    pub p: f64,
}

/// Reads every row of a CSV file.
pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let mut reader =
        csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    reader
        .deserialize()
        .map(|r| r.map_err(|e| format!("{}: {e}", path.display())))
        .collect()
}

/// Writes `rows` as a CSV file with a header.
pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<(), String> {
    let mut writer =
        csv::Writer::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for r in rows {
        writer
            .serialize(r)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    writer
        .flush()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Latency percentiles of a set of requests.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stats {
    /// How many.
    pub count: u64,
    /// Median, µs.
    pub p50_us: u64,
    /// 90th percentile, µs.
    pub p90_us: u64,
    /// 99th percentile, µs.
    pub p99_us: u64,
    /// Largest, µs.
    pub max_us: u64,
    /// Mean, µs.
    pub mean_us: f64,
}

impl Stats {
    /// Percentiles of `latencies_us` (3 significant digits, from an HDR histogram).
    pub fn of(latencies_us: impl IntoIterator<Item = u64>) -> Stats {
        let mut h =
            Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds");
        let mut max = 0;
        for l in latencies_us {
            h.saturating_record(l.max(1));
            max = max.max(l);
        }
        if h.is_empty() {
            return Stats::default();
        }
        Stats {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            // Exact, unlike the histogram's (within 0.1 %): the slowest request is a headline number.
            max_us: max,
            mean_us: h.mean(),
        }
    }
}

/// Formats µs as a short human number: `850 µs`, `1.25 ms`, `2.0 s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 10_000 {
        format!("{:.2} ms", us as f64 / 1e3)
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1e3)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_1_to_1000() {
        let s = Stats::of(1..=1000);
        assert_eq!(s.count, 1000);
        assert_eq!(s.p50_us, 500);
        assert_eq!(s.p90_us, 900);
        assert_eq!(s.p99_us, 990);
        assert_eq!(s.max_us, 1000);
        assert_eq!(Stats::of([]), Stats::default());
    }

    #[test]
    fn sweep_rows_round_trip_with_contract_columns_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        let rows = vec![SweepRow {
            client: 3,
            kind: Kind::OrderQuery,
            latency_us: 250,
            ok: true,
            p: 0.2,
            cache: "off".into(),
        }];
        write_csv(&path, &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("client,kind,latency_us,ok,"), "{text}");
        assert!(text.contains("3,order_query,250,true,0.2,off"), "{text}");
        assert_eq!(read_csv::<SweepRow>(&path).unwrap(), rows);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(fmt_us(850), "850 µs");
        assert_eq!(fmt_us(1250), "1.25 ms");
        assert_eq!(fmt_us(25_000), "25.0 ms");
        assert_eq!(fmt_us(2_000_000), "2.00 s");
    }
}
