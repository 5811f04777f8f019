//! `REPORT.md` and the plots, made from the files in `results/` alone (see [`crate::data`]).
//!
//! Every number and every sentence that states a finding is computed from the measured rows; the
//! only fixed text explains what was measured and how. Parts that did not run are left out.

use crate::analysis::{self, cell, Gap, SweepCell};
use crate::data::{
    fmt_us, read_csv, BenchRow, CrashOutcome, CrashRow, EventRow, Kind, RunInfo, RunRow, Stats,
    SweepRow, BENCH_CSV, CRASH_BUCKETS_CSV, CRASH_CSV, CRASH_EVENTS_CSV, CRASH_OUTCOME,
    CRASH_QUERY_SAMPLE, RUN_INFO, SWEEP_CSV, SWEEP_RUNS_CSV,
};
use crate::plot;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

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

/// The runs of each (p, cache) setting added up, in the order the settings first appear.
pub fn merge_runs(runs: &[RunRow]) -> Vec<RunRow> {
    let mut merged: Vec<RunRow> = Vec::new();
    for r in runs {
        let same = |m: &&mut RunRow| (m.p - r.p).abs() < 1e-9 && m.cache == r.cache;
        match merged.iter_mut().find(same) {
            Some(m) => {
                m.iterations += r.iterations;
                m.requests += r.requests;
                m.seconds += r.seconds;
                m.failures += r.failures;
                m.conflicts += r.conflicts;
                m.orders_made += r.orders_made;
                m.orders_verified += r.orders_verified;
                m.mismatches += r.mismatches;
                m.cache_hits += r.cache_hits;
                m.cache_misses += r.cache_misses;
                m.throughput = m.requests as f64 / m.seconds.max(1e-9);
            }
            None => merged.push(r.clone()),
        }
    }
    merged.sort_by(|a, b| a.p.total_cmp(&b.p).then(b.cache.cmp(&a.cache)));
    merged
}

/// Percent change from `from` to `to`.
fn pct(from: f64, to: f64) -> f64 {
    if from == 0.0 {
        0.0
    } else {
        (to - from) / from * 100.0
    }
}

fn ms(us: u64) -> String {
    fmt_us(us)
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
    machine_section(&mut o, i);
    if !i.cells.is_empty() {
        sweep_section(&mut o, i);
    }
    if !i.events.is_empty() || i.outcome.is_some() {
        crash_section(&mut o, i);
    }
    if !i.bench.is_empty() {
        bench_section(&mut o, &i.bench);
    }
    if i.has_profile {
        let _ = writeln!(
            o,
            "## Hot paths\n\nWhat limits each request kind, measured with a profiler, and the code changes that \
             would help: see [{PROFILE_MD}]({PROFILE_MD}).\n"
        );
    }
    if i.has_deploy {
        let _ = writeln!(
            o,
            "## Running on several machines\n\nSee [{DEPLOY_MD}]({DEPLOY_MD}).\n"
        );
    }
    files_section(&mut o, i);
    o
}

fn machine_section(o: &mut String, i: &Inputs) {
    let _ = writeln!(o, "## Machine and settings\n");
    let Some(info) = &i.info else {
        let _ = writeln!(o, "(no `{RUN_INFO}`: the machine is unknown)\n");
        return;
    };
    let m = &info.machine;
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| CPU | {} ({} online CPUs, `nproc`) |",
        m.cpu_model, m.nproc
    );
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    if !m.memory.is_empty() {
        let _ = writeln!(o, "| memory | {} |", m.memory);
    }
    if !info.loadavg_start.is_empty() {
        let _ = writeln!(
            o,
            "| load average (1, 5, 15 min) | {} before the run (other work on the machine), {} after it |",
            info.loadavg_start, info.loadavg_end
        );
    }
    let _ = writeln!(o, "| network | {} |", info.network);
    if info.delay_ms > 0 {
        let _ = writeln!(
            o,
            "| added delay | {} ms each way between the client and the front-end (TCP relay) |",
            info.delay_ms
        );
    }
    let _ = writeln!(
        o,
        "| load | {} concurrent client sessions; in the sweep {} runs per (p, cache) setting of {} iterations per \
         client, each a query and with probability p a purchase of 1 to 3 units, then a check of every order made |",
        info.clients,
        info.repeats.max(1),
        info.iterations
    );
    let stock = if info.stock == 0 || info.stock == systest::cluster::NEW_STOCK {
        format!(
            "{} units of each of the ten toys (the contract's new catalog)",
            systest::cluster::NEW_STOCK
        )
    } else {
        format!(
            "{} units of each of the ten toys, so that no purchase is skipped for lack of stock",
            info.stock
        )
    };
    let _ = writeln!(
        o,
        "| store | catalog, three order replicas (quorum 2, every order on disk with fdatasync), front-end; {stock}; restock every {} s |",
        info.restock_interval
    );
    if info.sweep_seconds > 0.0 {
        let _ = writeln!(o, "| sweep took | {:.0} s |", info.sweep_seconds);
    }
    if info.crash_seconds > 0.0 {
        let _ = writeln!(o, "| crash run took | {:.0} s |", info.crash_seconds);
    }
    let _ = writeln!(o);
}

fn sweep_section(o: &mut String, i: &Inputs) {
    let cells = &i.cells;
    let ps = analysis::ps(cells);
    let _ = writeln!(o, "## Latency against p, cache on and off\n");
    let _ = writeln!(
        o,
        "For each p the same load ran with the front-end's cache on and with `--no-cache`, on one store (only the \
         front-end is restarted between runs). The sweep went over all p values {} times, the two settings of \
         a p back to back in alternating order, and the tables add the rounds up, so that a slow spell of the \
         machine falls on both settings alike. `query` is `GET /products/<name>`, `buy` is `POST /orders`, \
         `order_query` is `GET /orders/<n>` (each client checks its orders after its iterations).\n",
        i.info.as_ref().map(|x| x.repeats.max(1)).unwrap_or(1)
    );
    let _ = writeln!(o, "![latency against p](latency-vs-p.svg)\n");
    let _ = writeln!(o, "(Also as [PNG](latency-vs-p.png).)\n");
    let _ = writeln!(o, "| p | kind | requests (on / off) | median on | median off | p99 on | p99 off | the cache saves (median) |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for p in &ps {
        for kind in Kind::ALL {
            let (on, off) = (cell(cells, *p, true, kind), cell(cells, *p, false, kind));
            if on.is_none() && off.is_none() {
                continue;
            }
            let s = |c: Option<&SweepCell>| c.map(|c| c.stats).unwrap_or_default();
            let (a, b) = (s(on), s(off));
            let saves = if a.count > 0 && b.count > 0 {
                let d = b.p50_us as i64 - a.p50_us as i64;
                format!("{} µs ({:.0} %)", d, -pct(b.p50_us as f64, a.p50_us as f64))
            } else {
                "–".into()
            };
            let cellv = |st: Stats, v: u64| if st.count > 0 { ms(v) } else { "–".into() };
            let _ = writeln!(
                o,
                "| {p:.1} | {} | {} / {} | {} | {} | {} | {} | {saves} |",
                kind.as_str(),
                a.count,
                b.count,
                cellv(a, a.p50_us),
                cellv(b, b.p50_us),
                cellv(a, a.p99_us),
                cellv(b, b.p99_us)
            );
        }
    }
    let _ = writeln!(o);
    if !i.runs.is_empty() {
        let _ = writeln!(o, "### The runs of each setting, added up\n");
        let _ = writeln!(
            o,
            "| p | cache | requests | time | throughput | purchases per query | purchases refused (409, no stock) | failed requests | orders made / verified | cache hit rate |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
        for r in &merge_runs(&i.runs) {
            let lookups = r.cache_hits + r.cache_misses;
            let hit = if r.cache == "on" && lookups > 0 {
                format!(
                    "{:.0} % ({} of {})",
                    100.0 * r.cache_hits as f64 / lookups as f64,
                    r.cache_hits,
                    lookups
                )
            } else {
                "–".into()
            };
            let queries = (r.iterations * u64::from(r.clients)).max(1);
            let _ = writeln!(
                o,
                "| {:.1} | {} | {} | {:.1} s | {:.0}/s | {:.2} | {} | {} | {} / {} | {} |",
                r.p,
                r.cache,
                r.requests,
                r.seconds,
                r.throughput,
                (r.orders_made + r.conflicts) as f64 / queries as f64,
                r.conflicts,
                r.failures,
                r.orders_made,
                r.orders_verified,
                hit
            );
        }
        let _ = writeln!(o);
    }
    let _ = writeln!(o, "### What it shows\n");
    for line in sweep_findings(i) {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(o);
}

/// The sentences of "What it shows", computed from the sweep.
pub fn sweep_findings(i: &Inputs) -> Vec<String> {
    let cells = &i.cells;
    let ps = analysis::ps(cells);
    let mut out = Vec::new();
    let med = |p: f64, cache: bool, kind: Kind| {
        cell(cells, p, cache, kind)
            .filter(|c| c.stats.count > 0)
            .map(|c| c.stats.p50_us)
    };
    let p99 = |p: f64, cache: bool, kind: Kind| {
        cell(cells, p, cache, kind)
            .filter(|c| c.stats.count > 0)
            .map(|c| c.stats.p99_us)
    };
    // Queries: what the cache saves at each p.
    let savings: Vec<(f64, u64, u64)> = ps
        .iter()
        .filter_map(|p| {
            Some((
                *p,
                med(*p, true, Kind::Query)?,
                med(*p, false, Kind::Query)?,
            ))
        })
        .collect();
    if let (Some(first), Some(last)) = (savings.first(), savings.last()) {
        let mean_saved: f64 = savings
            .iter()
            .map(|(_, on, off)| *off as f64 - *on as f64)
            .sum::<f64>()
            / savings.len() as f64;
        let mean_pct: f64 = savings
            .iter()
            .map(|(_, on, off)| -pct(*off as f64, *on as f64))
            .sum::<f64>()
            / savings.len() as f64;
        out.push(format!(
            "**Queries.** With the cache a query's median is {} at p={:.1} against {} without ({:.0} % less); at p={:.1} \
             it is {} against {}. Over all p the cache saves {:.0} µs of the median on average ({:.0} %): a hit is \
             answered by the front-end alone, a miss adds a call to the catalog.",
            ms(first.1),
            first.0,
            ms(first.2),
            -pct(first.2 as f64, first.1 as f64),
            last.0,
            ms(last.1),
            ms(last.2),
            mean_saved,
            mean_pct
        ));
    }
    let hits: Vec<(f64, f64)> = merge_runs(&i.runs)
        .iter()
        .filter(|r| r.cache == "on" && r.cache_hits + r.cache_misses > 0)
        .map(|r| {
            (
                r.p,
                100.0 * r.cache_hits as f64 / (r.cache_hits + r.cache_misses) as f64,
            )
        })
        .collect();
    if let (Some(a), Some(b)) = (hits.first(), hits.last()) {
        out.push(format!(
            "**Hit rate.** Every purchase invalidates its toy's entry (the catalog pushes an invalidation, and the \
             front-end drops the entry itself before answering), so the hit rate falls from {:.0} % at p={:.1} to {:.0} % \
             at p={:.1}, and with it what the cache saves.",
            a.1, a.0, b.1, b.0
        ));
    }
    // Purchases and order queries do not use the cache.
    for kind in [Kind::Buy, Kind::OrderQuery] {
        let diffs: Vec<f64> = ps
            .iter()
            .filter_map(|p| {
                Some(pct(med(*p, false, kind)? as f64, med(*p, true, kind)? as f64).abs())
            })
            .collect();
        if let Some(max) = diffs.iter().copied().reduce(f64::max) {
            let range: Vec<u64> = ps.iter().filter_map(|p| med(*p, true, kind)).collect();
            let (lo, hi) = (
                range.iter().min().copied().unwrap_or(0),
                range.iter().max().copied().unwrap_or(0),
            );
            out.push(format!(
                "**{}.** The cache is not on this path: the medians with and without it differ by at most {:.0} % \
                 at any p (run-to-run noise and the load of the other requests). With the cache on the median ranges \
                 from {} to {} over p.",
                if kind == Kind::Buy { "Purchases" } else { "Order queries" },
                max,
                ms(lo),
                ms(hi)
            ));
        }
    }
    let buys: Vec<(f64, u64)> = ps
        .iter()
        .filter_map(|p| Some((*p, med(*p, true, Kind::Buy)?)))
        .collect();
    let queries_at: Vec<u64> = ps
        .iter()
        .filter_map(|p| med(*p, true, Kind::Query))
        .collect();
    if let (Some(b), Some(q)) = (buys.last(), queries_at.last()) {
        out.push(format!(
            "**Cost of a purchase.** At p={:.1} a purchase's median is {} against {} for a cached query: it passes the \
             front-end, the leader replica, the catalog (stock taken and written to its journal with fdatasync) and \
             a second replica (the order written to disk on both before the answer).",
            b.0,
            ms(b.1),
            ms(*q)
        ));
    }
    let tails: Vec<String> = Kind::ALL
        .iter()
        .filter_map(|k| {
            let worst = ps
                .iter()
                .filter_map(|p| Some((*p, p99(*p, true, *k)?, p99(*p, false, *k)?)))
                .max_by_key(|(_, a, b)| *a.max(b))?;
            Some(format!(
                "{} {} (p={:.1})",
                k.as_str(),
                ms(worst.1.max(worst.2)),
                worst.0
            ))
        })
        .collect();
    if !tails.is_empty() {
        out.push(format!(
            "**Tails.** The worst 99th percentiles: {}. Five clients and five services share the machine's \
             cores, so the tail holds requests that waited for a core or for the disk; the load average above shows \
             how much other work the machine had.",
            tails.join(", ")
        ));
    }
    out
}

fn crash_section(o: &mut String, i: &Inputs) {
    let _ = writeln!(o, "## Crash run: order replicas killed under load\n");
    let gaps = analysis::gaps(&i.crash_rows, &i.events);
    let leaders = gaps.iter().filter(|g| g.leader).count();
    if let Some(out) = &i.outcome {
        let _ = writeln!(
            o,
            "{} clients bought (p = {}) while a replica was killed with SIGKILL {} times ({} of them the leader), each \
             started again {} later; the next kill waited until the restarted replica had caught up.\n",
            out.clients,
            out.p,
            gaps.len(),
            leaders,
            gaps.iter()
                .filter_map(|g| Some(g.restart_ms? - g.kill_ms))
                .max()
                .map(|d| format!("about {:.1} s", d as f64 / 1000.0))
                .unwrap_or_else(|| "some time".into())
        );
        let _ = writeln!(o, "| | |\n|---|---|");
        let requests: u64 = if i.crash_buckets.is_empty() {
            i.crash_rows.len() as u64
        } else {
            i.crash_buckets.iter().map(|b| b.count).sum()
        };
        let _ = writeln!(o, "| requests | {requests} |");
        let _ = writeln!(o, "| failed requests (transport error, 5xx, other answer outside the contract; expected: none) | {} |", out.failures);
        let _ = writeln!(
            o,
            "| orders made / verified by the clients | {} / {} |",
            out.orders_made, out.orders_verified
        );
        let _ = writeln!(o, "| orders that did not verify | {} |", out.mismatches);
        let _ = writeln!(o, "| store check after the run | {} |", out.consistency);
        let _ = writeln!(o);
        if !out.failure_examples.is_empty() {
            let _ = writeln!(o, "Failures seen (first {}):\n", out.failure_examples.len());
            for f in &out.failure_examples {
                let _ = writeln!(o, "    {f}");
            }
            let _ = writeln!(o);
        }
    }
    let _ = writeln!(
        o,
        "![latency over time with the kills](crash-timeline.svg)\n"
    );
    let _ = writeln!(o, "(Also as [PNG](crash-timeline.png).)\n");
    if !gaps.is_empty() {
        let _ = writeln!(
            o,
            "The failover gap of each kill: the slowest request in flight at the kill or started before the replica had \
             caught up, and how long purchases stood still (from the last purchase completed before the kill to the \
             first completed after it).\n"
        );
        let _ = writeln!(o, "| kill at | replica | leader | restarted at | caught up at | slowest request | purchases stood still | failed requests |");
        let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
        let t = |v: Option<u64>| {
            v.map(|v| format!("{:.1} s", v as f64 / 1000.0))
                .unwrap_or_else(|| "–".into())
        };
        for g in &gaps {
            let _ = writeln!(
                o,
                "| {:.1} s | {} | {} | {} | {} | {} ({}) | {} | {} |",
                g.kill_ms as f64 / 1000.0,
                g.replica,
                if g.leader { "yes" } else { "no" },
                t(g.restart_ms),
                t(g.synced_ms),
                ms(g.slowest_us),
                g.slowest_kind.map(|k| k.as_str()).unwrap_or("–"),
                g.buy_gap_ms
                    .map(|v| format!("{v} ms"))
                    .unwrap_or_else(|| "–".into()),
                g.failures
            );
        }
        let _ = writeln!(o);
        let calm = analysis::calm_stats(&i.crash_rows, &gaps);
        let _ = writeln!(o, "### What it shows\n");
        for line in crash_findings(&gaps, &calm) {
            let _ = writeln!(o, "- {line}");
        }
        let _ = writeln!(o);
    }
}

/// The sentences about the crash run.
pub fn crash_findings(gaps: &[Gap], calm: &BTreeMap<Kind, Stats>) -> Vec<String> {
    let mut out = Vec::new();
    let worst = |leader: bool| {
        gaps.iter()
            .filter(|g| g.leader == leader)
            .map(|g| g.slowest_us)
            .max()
    };
    let stall = |leader: bool| {
        gaps.iter()
            .filter(|g| g.leader == leader)
            .filter_map(|g| g.buy_gap_ms)
            .max()
    };
    if let Some(w) = worst(true) {
        out.push(format!(
            "**Leader killed.** The slowest request around a leader kill took {} and purchases stood still for up to {} \
             ms: the front-end notices the dead leader (a failed call, or two missed pings 200 ms apart), chooses the \
             next replica, which collects its peers' logs before it takes purchases; the purchase in flight is retried \
             with the same request id, so it is delayed, not failed or doubled.",
            ms(w),
            stall(true).unwrap_or(0)
        ));
    }
    if let Some(w) = worst(false) {
        out.push(format!(
            "**Follower killed.** Around a follower kill the slowest request took {} and purchases stood still for up to \
             {} ms: the leader still has a quorum with the other follower.",
            ms(w),
            stall(false).unwrap_or(0)
        ));
    }
    if let Some(b) = calm.get(&Kind::Buy) {
        out.push(format!(
            "**Undisturbed.** Away from the kills a purchase's median was {} and its 99th percentile {}{}.",
            ms(b.p50_us),
            ms(b.p99_us),
            calm.get(&Kind::Query).map(|q| format!("; a query's {} and {}", ms(q.p50_us), ms(q.p99_us))).unwrap_or_default()
        ));
    }
    let failed: u64 = gaps.iter().map(|g| g.failures).sum();
    out.push(if failed == 0 {
        "**Errors.** No request around any kill failed.".to_string()
    } else {
        format!("**Errors.** {failed} requests around the kills failed; see the failures above.")
    });
    out
}

fn bench_section(o: &mut String, rows: &[BenchRow]) {
    let _ = writeln!(o, "## Benchmark against the floor\n");
    let _ = writeln!(
        o,
        "`make bench` measures, in one run, a bare loopback HTTP round trip (the floor: a tiny_http server with the \
         services' worker pool answering a fixed product-sized JSON body, called with a keep-alive ureq agent), then \
         the front-end's requests, with 1 and with 5 concurrent clients. Ratios are to the floor at the same \
         concurrency measured right after each line (the floor runs through the whole benchmark, and a slow \
         spell of a shared machine then hits a line and its reference alike); `floor` and `floor_again` are \
         the floor at the start and at the end. The catalog starts with enough stock that no purchase is refused. The clients' agent \
         resolves IP-literal hosts in place; `floor_thread_resolver` is the floor called with ureq's default \
         resolver instead, which starts a thread for every request when the agent has a timeout. `leader_buy` is a purchase sent straight to the leader replica. \
         `catalog_query`, `fdatasync` and `catalog_take` are the parts of a purchase on \
         their own, on a catalog started alone: a call to it, an fdatasync of a small append on the same disk, \
         and a take of stock (a call and a journal write with fdatasync).\n"
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
        "Targets: a cached query within 2x of the floor at the median, a purchase within 10x.\n"
    );
    for line in crate::bench::verdicts(rows) {
        let _ = writeln!(o, "- {line}");
    }
    let _ = writeln!(o);
}

fn files_section(o: &mut String, i: &Inputs) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{write_csv, Machine};

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
