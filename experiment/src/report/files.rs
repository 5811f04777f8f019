//! The report's "Files": what each file in the folder holds.

use super::Inputs;
use crate::data::{
    BENCH_CSV, CRASH_BUCKETS_CSV, CRASH_CSV, CRASH_EVENTS_CSV, CRASH_OUTCOME, CRASH_QUERY_SAMPLE,
    RUN_INFO, SWEEP_CSV, SWEEP_RUNS_CSV,
};
use std::fmt::Write as _;

/// The data files behind the report, each with what it holds; only those of the parts that ran.
pub(super) fn section(o: &mut String, i: &Inputs) {
    let _ = writeln!(o, "## Files\n");
    let sampled = format!(
        "one row per request of the crash run: `client,kind,latency_us,ok,status,start_ms`; every purchase, \
         order query and failed request, and one successful query in {CRASH_QUERY_SAMPLE} (queries do not touch the \
         order replicas), to keep the file small"
    );
    let mut files: Vec<(&str, &str)> = Vec::new();
    if !i.cells.is_empty() {
        files.push((
            SWEEP_CSV,
            "one row per request of the sweep: `client,kind,latency_us,ok,p,cache`",
        ));
        files.push((
            SWEEP_RUNS_CSV,
            "one row per (p, cache) run: throughput, errors, orders, cache counters",
        ));
    }
    if !i.crash_rows.is_empty() {
        files.push((CRASH_CSV, &sampled));
        files.push((
            CRASH_BUCKETS_CSV,
            "latency over time of the crash run from every request: median and slowest per kind and 250 ms",
        ));
        files.push((
            CRASH_EVENTS_CSV,
            "every kill, restart and catch-up: `t_ms,event,replica,leader`",
        ));
        files.push((
            CRASH_OUTCOME,
            "errors, orders and the store check of the crash run",
        ));
    }
    if !i.bench.is_empty() {
        files.push((BENCH_CSV, "the benchmark's table"));
    }
    files.push((RUN_INFO, "machine and settings"));
    for (f, what) in files {
        let _ = writeln!(o, "- [`{f}`]({f}): {what}");
    }
}
