//! The seeded fault run, short: about 50 s of replica, leader, catalog and front-end faults (kills,
//! pauses, torn lines) under five clients, then every check of `systest::chaos` on the history.
//! `make chaos` runs it longer and with other seeds.

use std::time::Duration;
use systest::chaos::{run, Options};

/// The seed of the short run in `make test`.
const SEED: u64 = 1;

#[test]
fn a_short_seeded_fault_run_keeps_every_promise() {
    let summary = run(&Options::new(SEED, Duration::from_secs(50), 24000));
    eprintln!("{summary}");
    assert!(summary.passed(), "{summary}");
    let faults: u64 = summary.faults.values().sum();
    assert!(faults >= 10, "only {faults} faults were injected");
    assert!(
        summary.findings.orders > 100,
        "only {} orders",
        summary.findings.orders
    );
}
