//! The report's "Benchmark against the floor", from `bench.csv`.

use crate::data::{fmt_us as ms, BenchRow};
use std::fmt::Write as _;

/// The goal of `target` against the floor (at `clients`, for a goal that depends on them).
fn goal(target: &str, clients: Option<u32>) -> f64 {
    crate::bench::GOALS
        .iter()
        .find(|(t, c, _)| *t == target && *c == clients)
        .map_or(f64::NAN, |(_, _, g)| *g)
}

/// The benchmark table with each line against the floor, and the verdicts on the targets.
pub(super) fn section(o: &mut String, rows: &[BenchRow]) {
    let _ = writeln!(o, "## Benchmark against the floor\n");
    let _ = writeln!(
        o,
        "`make bench` measures, in one run, a bare loopback HTTP round trip (the floor: a tiny_http server with the \
         services' worker pool answering a fixed product-sized JSON body, called with a keep-alive ureq agent), then \
         the front-end's requests, with 1 and with 5 concurrent clients, and purchases also with 32 (throughput under load). Ratios are to the floor at the same \
         concurrency measured right after each line (the floor runs through the whole benchmark, and a slow \
         spell of a shared machine then hits a line and its reference alike); `floor` and `floor_again` are \
         the floor at the start and at the end. The catalog starts with enough stock that no purchase is refused. The clients' agent \
         resolves IP-literal hosts in place; `floor_thread_resolver` is the floor called with ureq's default \
         resolver instead, which starts a thread for every request when the agent has a timeout. `leader_buy` is a purchase sent straight to the leader replica. \
         `catalog_query`, `fdatasync` and `catalog_take` are the parts of a purchase on \
         their own, on a catalog started alone: a call to it, an fdatasync of a small append on the same disk, \
         and a take of stock (a call and a journal write with fdatasync). `etcd_put` is a put to a three-member etcd \
         (Debian's `etcd-server`, its defaults: a write-ahead log synced before each answer) on loopback and on the \
         same disk, sent to its leader through its JSON gateway by the same client, when `etcd` is on the PATH.\n"
    );
    let _ = writeln!(
        o,
        "| target | clients | requests | p50 | p90 | p99 | throughput | floor p50 right after | p50 / floor | throughput / floor |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (lat, thr) = match crate::bench::floor_for(rows, r) {
            Some((p50, throughput)) if throughput > 0.0 => (
                format!("{:.1}x", r.p50_us as f64 / p50 as f64),
                format!("{:.2}x", r.throughput / throughput),
            ),
            _ => ("–".into(), "–".into()),
        };
        let errors = if r.errors > 0 {
            format!(" ({} errors)", r.errors)
        } else {
            String::new()
        };
        let _ = writeln!(
            o,
            "| {} | {} | {}{} | {} | {} | {} | {:.0}/s | {} | {} | {} |",
            r.target,
            r.clients,
            r.requests,
            errors,
            ms(r.p50_us),
            ms(r.p90_us),
            ms(r.p99_us),
            r.throughput,
            crate::bench::floor_for(rows, r)
                .map(|(p50, _)| ms(p50))
                .unwrap_or_else(|| "–".into()),
            lat,
            thr
        );
    }
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Targets (medians against the floor): cached query within {}x, uncached query and order query within {}x, \
         a purchase within {}x at 1 client and {}x at 5; at {} clients at least {:.0} purchases/s; a purchase at least \
         {}x as fast as etcd's put at 1 and at 5 clients.\n",
        goal("cached_query", None),
        goal("uncached_query", None),
        goal("buy", Some(1)),
        goal("buy", Some(5)),
        rows.iter().filter(|r| r.target == "buy").map(|r| r.clients).max().unwrap_or(32),
        crate::bench::LOAD_THROUGHPUT_GOAL,
        crate::bench::ETCD_GOAL,
    );
    for line in crate::bench::verdicts(rows) {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(o);
}
