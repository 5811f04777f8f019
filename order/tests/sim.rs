//! Deterministic simulation of the replicas: thousands of seeded runs through crashes that lose
//! unsynced writes, pauses, partitions, lost, duplicated and reordered messages and a catalog that
//! goes away, each checked against every promise of the store (see `harness`).
//!
//! `SEEDS=N` runs N seeds (default 5,000), `SEED=S` replays one with its trace, `FIRST=F` starts at F.

mod harness;

use harness::{Faults, Sim};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;

/// Runs seed `seed` with its own fault mix; its counts, or the report of what it broke.
fn run_seed(seed: u64, trace: usize) -> Result<BTreeMap<String, u64>, String> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let faults = Faults::random(&mut rng);
    let mut sim = Sim::new(seed, 3, 3, 6, faults);
    sim.trace_len = trace;
    sim.run(4_000, 60_000);
    let bad = sim.check();
    if bad.is_empty() {
        Ok(sim.stats)
    } else {
        Err(sim.report(&bad))
    }
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn every_seed_keeps_every_promise() {
    if let Some(seed) = env("SEED") {
        match run_seed(seed, 400) {
            Ok(stats) => println!("seed {seed} kept every promise: {stats:?}"),
            Err(report) => panic!("{report}"),
        }
        return;
    }
    let seeds = env("SEEDS").unwrap_or(5_000);
    let first = env("FIRST").unwrap_or(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let (failed, totals) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    let mut failed = Vec::new();
                    let mut totals = BTreeMap::new();
                    let mut seed = first + t;
                    while seed < first + seeds && failed.len() < 3 {
                        match run_seed(seed, 0) {
                            Ok(stats) => add(&mut totals, stats),
                            Err(_) => failed.push(seed),
                        }
                        seed += threads;
                    }
                    (failed, totals)
                })
            })
            .collect();
        let mut failed = Vec::new();
        let mut totals = BTreeMap::new();
        for h in handles {
            let (f, t) = h.join().expect("a simulation thread");
            failed.extend(f);
            add(&mut totals, t);
        }
        (failed, totals)
    });
    println!("{seeds} seeds from {first}: {totals:?}");
    if let Some(seed) = failed.iter().min() {
        let report = run_seed(*seed, 120).expect_err("a failing seed fails again");
        panic!(
            "{} seed(s) failed: {failed:?}; the first:\n{report}",
            failed.len()
        );
    }
    // The runs must have exercised what they claim to: faults, failovers, every kind of answer.
    for what in [
        "fault: crash",
        "fault: pause",
        "fault: cut",
        "leader changes",
        "answer: 200",
        "answer: 409",
        "answer: 503",
        // A leader's 504 is retried under the same id; a client sees one only when the front-end's
        // budget of 6 s runs out, which a single fault no longer makes happen.
        "leader answered 504",
    ] {
        if seeds >= 1000 {
            assert!(
                totals.get(what).copied().unwrap_or(0) > 0,
                "no run saw {what}: {totals:?}"
            );
        }
    }
}

fn add(totals: &mut BTreeMap<String, u64>, more: BTreeMap<String, u64>) {
    for (k, v) in more {
        *totals.entry(k).or_default() += v;
    }
}

/// Answers other than 200 and 409 in a run.
fn failures(sim: &Sim) -> Vec<String> {
    sim.history
        .values()
        .flat_map(|r| {
            r.answers
                .iter()
                .filter(|(_, a)| !matches!(a, harness::Outcome::Ok(_) | harness::Outcome::Err(409)))
                .map(move |(t, a)| format!("{} at {t} ms: {a:?}", r.request_id))
        })
        .collect()
}

#[test]
fn without_faults_every_purchase_succeeds_or_is_out_of_stock() {
    for seed in 0..200 {
        let mut sim = Sim::new(seed, 3, 3, 10, Faults::none());
        sim.run(2_000, 30_000);
        let bad = sim.check();
        assert!(bad.is_empty(), "{}", sim.report(&bad));
        assert_eq!(failures(&sim), Vec::<String>::new(), "seed {seed}");
        assert!(
            sim.history.len() >= 30,
            "seed {seed}: {}",
            sim.history.len()
        );
    }
}

#[test]
fn any_one_replica_down_for_good_leaves_purchases_going() {
    for seed in 0..60 {
        let victim = 1 + (seed % 3) as u32;
        let mut sim = Sim::new(seed, 3, 3, 40, Faults::none());
        sim.run_until(1_000);
        sim.crash(victim);
        sim.run_until(40_000);
        assert!(
            sim.clients_done(),
            "seed {seed}: purchases stopped without replica {victim}"
        );
        assert_eq!(
            failures(&sim),
            Vec::<String>::new(),
            "seed {seed}, replica {victim} down"
        );
        // Every acknowledged order is on both replicas that remain.
        let bad: Vec<String> = sim
            .check()
            .into_iter()
            .filter(|b| !b.starts_with("liveness") && !b.starts_with("  replica"))
            .filter(|b| !b.contains(&format!("replica {victim}'s log differs")))
            .collect();
        assert!(bad.is_empty(), "{}", sim.report(&bad));
    }
}
