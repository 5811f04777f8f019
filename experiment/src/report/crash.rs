//! The report's "Crash run: order replicas killed under load": the outcome, the timeline, the
//! failover gap of each kill and what they show.

use super::{figure, findings, Inputs};
use crate::analysis::{self, Gap};
use crate::data::{fmt_us as ms, CrashOutcome, Kind, Stats};
use crate::plot::CRASH_TIMELINE;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The crash run's section.
pub(super) fn section(o: &mut String, i: &Inputs) {
    let _ = writeln!(o, "## Crash run: order replicas killed under load\n");
    let gaps = analysis::gaps(&i.crash_rows, &i.events);
    if let Some(out) = &i.outcome {
        outcome(o, i, out, &gaps);
    }
    figure(o, "latency over time with the kills", CRASH_TIMELINE);
    if !gaps.is_empty() {
        gap_table(o, &gaps);
        let calm = analysis::calm_stats(&i.crash_rows, &gaps);
        findings(o, &crash_findings(&gaps, &calm));
    }
}

/// What was done, and the errors, orders and store check that came of it.
fn outcome(o: &mut String, i: &Inputs, out: &CrashOutcome, gaps: &[Gap]) {
    let _ = writeln!(
        o,
        "{} clients bought (p = {}) while a replica was killed with SIGKILL {} times ({} of them the leader), each \
         started again {} later; the next kill waited until the restarted replica had caught up.\n",
        out.clients,
        out.p,
        gaps.len(),
        gaps.iter().filter(|g| g.leader).count(),
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

/// The failover gap of each kill.
fn gap_table(o: &mut String, gaps: &[Gap]) {
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
    for g in gaps {
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
