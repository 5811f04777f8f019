//! The report's "Latency against p, cache on and off": the percentile table, the runs added up,
//! and what they show.

use super::{figure, findings, pct, Inputs};
use crate::analysis::{self, cell, SweepCell};
use crate::data::{fmt_us as ms, Kind, RunRow, Stats};
use crate::plot::LATENCY_VS_P;
use std::fmt::Write as _;

/// The sweep's section.
pub(super) fn section(o: &mut String, i: &Inputs) {
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
    figure(o, "latency against p", LATENCY_VS_P);
    percentiles(o, &i.cells);
    if !i.runs.is_empty() {
        runs(o, &merge_runs(&i.runs));
    }
    findings(o, &sweep_findings(i));
}

/// Median and 99th percentile of every kind at every p, cache on against off.
fn percentiles(o: &mut String, cells: &[SweepCell]) {
    let _ = writeln!(o, "| p | kind | requests (on / off) | median on | median off | p99 on | p99 off | the cache saves (median) |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|");
    for p in &analysis::ps(cells) {
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
}

/// The cache's hit rate of a run as "80 % (40 of 50)", or "–" without the cache or lookups.
fn hit_rate(r: &RunRow) -> String {
    let lookups = r.cache_hits + r.cache_misses;
    if r.cache == "on" && lookups > 0 {
        format!(
            "{:.0} % ({} of {})",
            100.0 * r.cache_hits as f64 / lookups as f64,
            r.cache_hits,
            lookups
        )
    } else {
        "–".into()
    }
}

/// Throughput, purchases, errors and cache counters of each setting's runs added up.
fn runs(o: &mut String, merged: &[RunRow]) {
    let _ = writeln!(o, "### The runs of each setting, added up\n");
    let _ = writeln!(
        o,
        "| p | cache | requests | time | throughput | purchases per query | purchases refused (409, no stock) | failed requests | orders made / verified | cache hit rate |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|---|---|---|---|---|");
    for r in merged {
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
            hit_rate(r)
        );
    }
    let _ = writeln!(o);
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

/// The measured cells of a sweep, read by setting.
struct Sweep<'a> {
    cells: &'a [SweepCell],
    /// The p values, ascending.
    ps: Vec<f64>,
}

impl Sweep<'_> {
    /// The statistics of `kind` at `p` with the cache on or off, when anything was measured there.
    fn stats(&self, p: f64, cache: bool, kind: Kind) -> Option<Stats> {
        cell(self.cells, p, cache, kind)
            .map(|c| c.stats)
            .filter(|s| s.count > 0)
    }

    fn med(&self, p: f64, cache: bool, kind: Kind) -> Option<u64> {
        self.stats(p, cache, kind).map(|s| s.p50_us)
    }

    fn p99(&self, p: f64, cache: bool, kind: Kind) -> Option<u64> {
        self.stats(p, cache, kind).map(|s| s.p99_us)
    }

    /// Each p where `f` has a value, with that value.
    fn over_p<T>(&self, f: impl Fn(f64) -> Option<T>) -> Vec<(f64, T)> {
        self.ps.iter().filter_map(|p| Some((*p, f(*p)?))).collect()
    }
}

/// The sentences of "What it shows", computed from the sweep.
pub fn sweep_findings(i: &Inputs) -> Vec<String> {
    let sweep = Sweep {
        cells: &i.cells,
        ps: analysis::ps(&i.cells),
    };
    let mut out = Vec::new();
    out.extend(queries(&sweep));
    out.extend(hit_rates(&i.runs));
    // Purchases and order queries do not use the cache.
    for kind in [Kind::Buy, Kind::OrderQuery] {
        out.extend(uncached(&sweep, kind));
    }
    out.extend(purchase_cost(&sweep));
    out.extend(tails(&sweep));
    out
}

/// Queries: what the cache saves at each p.
fn queries(sweep: &Sweep) -> Option<String> {
    let savings = sweep.over_p(|p| {
        Some((
            sweep.med(p, true, Kind::Query)?,
            sweep.med(p, false, Kind::Query)?,
        ))
    });
    let (&(p0, (on0, off0)), &(p1, (on1, off1))) = (savings.first()?, savings.last()?);
    let mean_saved: f64 = savings
        .iter()
        .map(|(_, (on, off))| *off as f64 - *on as f64)
        .sum::<f64>()
        / savings.len() as f64;
    let mean_pct: f64 = savings
        .iter()
        .map(|(_, (on, off))| -pct(*off as f64, *on as f64))
        .sum::<f64>()
        / savings.len() as f64;
    Some(format!(
        "**Queries.** With the cache a query's median is {} at p={:.1} against {} without ({:.0} % less); at p={:.1} \
         it is {} against {}. Over all p the cache saves {:.0} µs of the median on average ({:.0} %): a hit is \
         answered by the front-end alone, a miss adds a call to the catalog.",
        ms(on0),
        p0,
        ms(off0),
        -pct(off0 as f64, on0 as f64),
        p1,
        ms(on1),
        ms(off1),
        mean_saved,
        mean_pct
    ))
}

/// How the cache's hit rate falls with p.
fn hit_rates(runs: &[RunRow]) -> Option<String> {
    let hits: Vec<(f64, f64)> = merge_runs(runs)
        .iter()
        .filter(|r| r.cache == "on" && r.cache_hits + r.cache_misses > 0)
        .map(|r| {
            (
                r.p,
                100.0 * r.cache_hits as f64 / (r.cache_hits + r.cache_misses) as f64,
            )
        })
        .collect();
    let (a, b) = (hits.first()?, hits.last()?);
    Some(format!(
        "**Hit rate.** Every purchase invalidates its toy's entry (the catalog pushes an invalidation, and the \
         front-end drops the entry itself before answering), so the hit rate falls from {:.0} % at p={:.1} to {:.0} % \
         at p={:.1}, and with it what the cache saves.",
        a.1, a.0, b.1, b.0
    ))
}

/// A kind the cache is not for: how little its median moves with the cache, and its range over p.
fn uncached(sweep: &Sweep, kind: Kind) -> Option<String> {
    let diffs = sweep.over_p(|p| {
        Some(
            pct(
                sweep.med(p, false, kind)? as f64,
                sweep.med(p, true, kind)? as f64,
            )
            .abs(),
        )
    });
    let max = diffs.iter().map(|(_, d)| *d).reduce(f64::max)?;
    let range: Vec<u64> = sweep
        .over_p(|p| sweep.med(p, true, kind))
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    let (lo, hi) = (
        range.iter().min().copied().unwrap_or(0),
        range.iter().max().copied().unwrap_or(0),
    );
    Some(format!(
        "**{}.** The cache is not on this path: the medians with and without it differ by at most {:.0} % \
         at any p (run-to-run noise and the load of the other requests). With the cache on the median ranges \
         from {} to {} over p.",
        if kind == Kind::Buy { "Purchases" } else { "Order queries" },
        max,
        ms(lo),
        ms(hi)
    ))
}

/// A purchase against a cached query at the highest p.
fn purchase_cost(sweep: &Sweep) -> Option<String> {
    let b = *sweep.over_p(|p| sweep.med(p, true, Kind::Buy)).last()?;
    let q = sweep.over_p(|p| sweep.med(p, true, Kind::Query)).last()?.1;
    Some(format!(
        "**Cost of a purchase.** At p={:.1} a purchase's median is {} against {} for a cached query: it passes the \
         front-end, the leader replica, the catalog (stock taken and written to its journal with fdatasync) and \
         a second replica (the order written to disk on both before the answer).",
        b.0,
        ms(b.1),
        ms(q)
    ))
}

/// The worst 99th percentile of each kind, cache on or off.
fn tails(sweep: &Sweep) -> Option<String> {
    let tails: Vec<String> = Kind::ALL
        .iter()
        .filter_map(|k| {
            let worst = sweep
                .over_p(|p| Some(sweep.p99(p, true, *k)?.max(sweep.p99(p, false, *k)?)))
                .into_iter()
                .max_by_key(|(_, v)| *v)?;
            Some(format!("{} {} (p={:.1})", k.as_str(), ms(worst.1), worst.0))
        })
        .collect();
    if tails.is_empty() {
        return None;
    }
    Some(format!(
        "**Tails.** The worst 99th percentiles: {}. Five clients and five services share the machine's \
         cores, so the tail holds requests that waited for a core or for the disk; the load average above shows \
         how much other work the machine had.",
        tails.join(", ")
    ))
}
