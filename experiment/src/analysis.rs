//! Pure functions from the measured rows to what the plots and the report show: percentiles per
//! setting, the failover gap around each kill, latency over time in buckets.

use crate::data::{CrashRow, EventRow, Kind, Stats, SweepRow};
use std::collections::BTreeMap;

/// Percentiles of one kind of request in one (p, cache) run.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepCell {
    /// Buy probability.
    pub p: f64,
    /// Cache on.
    pub cache: bool,
    /// Request kind.
    pub kind: Kind,
    /// Its latencies (successful and refused requests alike: a 409 is an answer too).
    pub stats: Stats,
}

/// `p` as a sortable key (the CSV holds it as a decimal).
fn p_key(p: f64) -> i64 {
    (p * 1000.0).round() as i64
}

/// One cell per (p, cache, kind) present in `rows`, sorted by p, then cache on before off, then kind.
pub fn sweep_cells(rows: &[SweepRow]) -> Vec<SweepCell> {
    let mut groups: BTreeMap<(i64, bool, Kind), Vec<u64>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((p_key(r.p), r.cache != "on", r.kind))
            .or_default()
            .push(r.latency_us);
    }
    groups
        .into_iter()
        .map(|((p, off, kind), lat)| SweepCell {
            p: p as f64 / 1000.0,
            cache: !off,
            kind,
            stats: Stats::of(lat),
        })
        .collect()
}

/// The cell of (p, cache, kind), if measured.
pub fn cell(cells: &[SweepCell], p: f64, cache: bool, kind: Kind) -> Option<&SweepCell> {
    cells
        .iter()
        .find(|c| p_key(c.p) == p_key(p) && c.cache == cache && c.kind == kind)
}

/// The distinct p values of `cells`, ascending.
pub fn ps(cells: &[SweepCell]) -> Vec<f64> {
    let mut v: Vec<i64> = cells.iter().map(|c| p_key(c.p)).collect();
    v.sort();
    v.dedup();
    v.into_iter().map(|p| p as f64 / 1000.0).collect()
}

/// What one kill did to the clients.
#[derive(Debug, Clone, PartialEq)]
pub struct Gap {
    /// When the replica was killed, ms since the crash run began.
    pub kill_ms: u64,
    /// Which replica.
    pub replica: u32,
    /// Whether it led.
    pub leader: bool,
    /// When it was started again, if it was.
    pub restart_ms: Option<u64>,
    /// When it had caught up with the leader, if it did.
    pub synced_ms: Option<u64>,
    /// The slowest request in flight at the kill or started in the window after it, µs.
    pub slowest_us: u64,
    /// Its kind.
    pub slowest_kind: Option<Kind>,
    /// Time between the last purchase completed before the kill and the first one completed after
    /// it, ms: how long purchases stood still.
    pub buy_gap_ms: Option<u64>,
    /// Requests that did not get a 2xx or 409 in the window.
    pub failures: u64,
}

/// How long after a kill requests still count as affected by it when the replica's catch-up time
/// is unknown.
pub const DEFAULT_WINDOW_MS: u64 = 3000;

/// The failover gap of every kill in `events`, from the requests in `rows`.
///
/// A kill's window runs from the kill to the moment the replica had caught up again (or
/// [`DEFAULT_WINDOW_MS`] after the kill when that is unknown). A request belongs to it when it was in
/// flight at the kill or started within the window.
pub fn gaps(rows: &[CrashRow], events: &[EventRow]) -> Vec<Gap> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        if e.event != "kill" {
            continue;
        }
        let later = &events[i + 1..];
        let next_of = |kind: &str| {
            later
                .iter()
                .take_while(|x| x.event != "kill")
                .find(|x| x.event == kind && x.replica == e.replica)
                .map(|x| x.t_ms)
        };
        let restart_ms = next_of("restart");
        let synced_ms = next_of("synced");
        let window_end = synced_ms
            .unwrap_or(e.t_ms + DEFAULT_WINDOW_MS)
            .max(e.t_ms + 1);
        let in_window = |r: &&CrashRow| {
            let end = r.start_ms + r.latency_us / 1000;
            (r.start_ms <= e.t_ms && end >= e.t_ms)
                || (r.start_ms >= e.t_ms && r.start_ms <= window_end)
        };
        let affected: Vec<&CrashRow> = rows.iter().filter(in_window).collect();
        let slowest = affected.iter().max_by_key(|r| r.latency_us);
        let completions: Vec<u64> = {
            let mut v: Vec<u64> = rows
                .iter()
                .filter(|r| r.kind == Kind::Buy && r.ok)
                .map(|r| r.start_ms + r.latency_us / 1000)
                .collect();
            v.sort_unstable();
            v
        };
        let before = completions.iter().rev().find(|t| **t < e.t_ms);
        let after = completions.iter().find(|t| **t >= e.t_ms);
        let buy_gap_ms = match (before, after) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        out.push(Gap {
            kill_ms: e.t_ms,
            replica: e.replica,
            leader: e.leader,
            restart_ms,
            synced_ms,
            slowest_us: slowest.map(|r| r.latency_us).unwrap_or(0),
            slowest_kind: slowest.map(|r| r.kind),
            buy_gap_ms,
            failures: affected.iter().filter(|r| !r.ok && r.status != 409).count() as u64,
        });
    }
    out
}

/// Percentiles of each kind over the requests outside every kill's window: the store undisturbed.
pub fn calm_stats(rows: &[CrashRow], gaps: &[Gap]) -> BTreeMap<Kind, Stats> {
    let disturbed = |r: &CrashRow| {
        let end = r.start_ms + r.latency_us / 1000;
        gaps.iter().any(|g| {
            let until = g.synced_ms.unwrap_or(g.kill_ms + DEFAULT_WINDOW_MS) + 500;
            end >= g.kill_ms && r.start_ms <= until
        })
    };
    let mut by_kind: BTreeMap<Kind, Vec<u64>> = BTreeMap::new();
    for r in rows.iter().filter(|r| !disturbed(r)) {
        by_kind.entry(r.kind).or_default().push(r.latency_us);
    }
    by_kind
        .into_iter()
        .map(|(k, v)| (k, Stats::of(v)))
        .collect()
}

/// Latency of one kind over one time bucket.
#[derive(serde::Serialize, serde::Deserialize, Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Start of the bucket, ms.
    pub t_ms: u64,
    /// Kind.
    pub kind: Kind,
    /// Requests started in it.
    #[serde(default)]
    pub count: u64,
    /// Median of the requests started in it, µs.
    pub p50_us: u64,
    /// Slowest, µs.
    pub max_us: u64,
}

/// Requests grouped by start time into buckets of `bucket_ms`, per kind, in time order.
pub fn buckets(rows: &[CrashRow], bucket_ms: u64) -> Vec<Bucket> {
    let mut groups: BTreeMap<(Kind, u64), Vec<u64>> = BTreeMap::new();
    for r in rows {
        groups
            .entry((r.kind, r.start_ms / bucket_ms))
            .or_default()
            .push(r.latency_us);
    }
    groups
        .into_iter()
        .map(|((kind, b), lat)| {
            let s = Stats::of(lat);
            Bucket {
                t_ms: b * bucket_ms,
                kind,
                count: s.count,
                p50_us: s.p50_us,
                max_us: s.max_us,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: Kind, start_ms: u64, latency_ms: u64) -> CrashRow {
        CrashRow {
            client: 0,
            kind,
            latency_us: latency_ms * 1000,
            ok: true,
            status: 200,
            start_ms,
        }
    }

    fn ev(t_ms: u64, event: &str, replica: u32, leader: bool) -> EventRow {
        EventRow {
            t_ms,
            event: event.into(),
            replica,
            leader,
        }
    }

    #[test]
    fn cells_group_by_p_cache_and_kind() {
        let rows: Vec<SweepRow> = [
            (0.2, "on", 100),
            (0.2, "on", 300),
            (0.2, "off", 500),
            (0.0, "on", 50),
        ]
        .iter()
        .map(|(p, c, l)| SweepRow {
            client: 0,
            kind: Kind::Query,
            latency_us: *l,
            ok: true,
            p: *p,
            cache: c.to_string(),
        })
        .collect();
        let cells = sweep_cells(&rows);
        assert_eq!(cells.len(), 3);
        assert_eq!(ps(&cells), vec![0.0, 0.2]);
        let on = cell(&cells, 0.2, true, Kind::Query).unwrap();
        assert_eq!(
            (on.stats.count, on.stats.p50_us, on.stats.max_us),
            (2, 100, 300)
        );
        assert_eq!(
            cell(&cells, 0.2, false, Kind::Query).unwrap().stats.p50_us,
            500
        );
        assert!(cell(&cells, 0.4, true, Kind::Query).is_none());
    }

    #[test]
    fn the_gap_of_a_leader_kill_is_the_stalled_purchase() {
        let mut rows = vec![];
        // Purchases every 10 ms, each 5 ms, until 1000; one started at 995 takes 800 ms (failover);
        // then purchases again from 1800.
        for t in (0..1000).step_by(10) {
            rows.push(row(Kind::Buy, t, 5));
        }
        rows.push(row(Kind::Buy, 995, 800));
        for t in (1800..3000).step_by(10) {
            rows.push(row(Kind::Buy, t, 5));
        }
        rows.push(row(Kind::Query, 1500, 1));
        let mut failed = row(Kind::Query, 1600, 1);
        failed.ok = false;
        failed.status = 503;
        rows.push(failed);
        let events = vec![
            ev(1000, "kill", 3, true),
            ev(2000, "restart", 3, false),
            ev(2500, "synced", 3, false),
        ];
        let g = gaps(&rows, &events);
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].slowest_us, 800_000);
        assert_eq!(g[0].slowest_kind, Some(Kind::Buy));
        assert_eq!((g[0].restart_ms, g[0].synced_ms), (Some(2000), Some(2500)));
        // Last completion before the kill: 990 + 5 = 995; first after: 995 + 800 = 1795.
        assert_eq!(g[0].buy_gap_ms, Some(800));
        assert_eq!(g[0].failures, 1);
        let calm = calm_stats(&rows, &g);
        assert_eq!(calm[&Kind::Buy].max_us, 5000);
        assert!(!calm.contains_key(&Kind::Query));
    }

    #[test]
    fn buckets_hold_median_and_max() {
        let rows = vec![
            row(Kind::Query, 10, 1),
            row(Kind::Query, 20, 3),
            row(Kind::Query, 30, 2),
            row(Kind::Buy, 250, 9),
        ];
        let b = buckets(&rows, 100);
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].t_ms, b[0].kind, b[0].count, b[0].p50_us, b[0].max_us),
            (0, Kind::Query, 3, 2000, 3000)
        );
        assert_eq!((b[1].t_ms, b[1].kind), (200, Kind::Buy));
    }
}
