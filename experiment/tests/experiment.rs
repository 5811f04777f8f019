//! The whole experiment, small: a short sweep and one kill, against the real binaries (built by
//! `make build` or `make test`, or found in `$TOYSTORE_BIN`), on ports 23000-23013, once directly and
//! once through the delaying relay. Checks that every file of `results/` is written and that the
//! store kept its promises.

use clap::Parser;
use experiment::cli::{self, Args};
use experiment::data::{read_csv, CrashRow, EventRow, RunRow, SweepRow};
use experiment::ui::Ui;
use std::path::PathBuf;
use systest::cluster::Procs;

fn bin_dir() -> PathBuf {
    systest::cluster::bin_dir_with(&["catalog", "order", "frontend", "relay"])
}

fn args(out: &std::path::Path, extra: &[&str]) -> Args {
    let mut argv = vec![
        "experiment".to_string(),
        "--bin".into(),
        bin_dir().display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--base-port".into(),
        "23000".into(),
        "--iterations".into(),
        "20".into(),
        "--ps".into(),
        "0,0.5".into(),
        "--repeats".into(),
        "2".into(),
        "--crash-rounds".into(),
        "1".into(),
        "--crash-period".into(),
        "1".into(),
        "--crash-down".into(),
        "0.5".into(),
        "--crash-calm".into(),
        "0.5".into(),
        "--warmup".into(),
        "2".into(),
        "--seed".into(),
        "7".into(),
        "--hosts".into(),
        String::new(),
    ];
    argv.extend(extra.iter().map(|s| s.to_string()));
    Args::try_parse_from(argv).unwrap()
}

/// Both runs share the ports, so they run one after the other in one test.
#[test]
fn a_small_experiment_writes_every_file_and_the_store_keeps_its_promises() {
    for delay in ["0", "5"] {
        let dir = tempfile::tempdir().unwrap();
        let procs = Procs::new();
        let result = cli::run(
            &args(dir.path(), &["--delay-ms", delay]),
            &Ui::hidden(),
            procs.clone(),
        );
        procs.kill_all();
        if let Err(e) = result {
            panic!("delay {delay}: {e:?}");
        }
        let sweep: Vec<SweepRow> = read_csv(&dir.path().join("latency-sweep.csv")).unwrap();
        assert!(sweep.len() >= 4 * 5 * 20, "{}", sweep.len());
        assert!(
            sweep
                .iter()
                .filter(|r| r.kind == experiment::data::Kind::Query)
                .count()
                == 4 * 5 * 20
        );
        assert!(sweep.iter().any(|r| r.cache == "off" && r.p == 0.5));
        let runs: Vec<RunRow> = read_csv(&dir.path().join("sweep-runs.csv")).unwrap();
        assert_eq!(runs.len(), 8, "two rounds of four settings");
        assert!(
            runs.iter().all(|r| r.failures == 0 && r.mismatches == 0),
            "{runs:?}"
        );
        let events: Vec<EventRow> = read_csv(&dir.path().join("crash-events.csv")).unwrap();
        assert_eq!(events.iter().filter(|e| e.event == "kill").count(), 1);
        assert!(
            events[0].leader,
            "the first victim is the leader: {events:?}"
        );
        let crash: Vec<CrashRow> = read_csv(&dir.path().join("latency-crash.csv")).unwrap();
        assert!(!crash.is_empty());
        let report = std::fs::read_to_string(dir.path().join("REPORT.md")).unwrap();
        assert!(
            report.contains("## Latency against p") && report.contains("## Crash run"),
            "{report}"
        );
        assert!(
            report.contains("ok: the three order files are identical"),
            "{report}"
        );
        for f in [
            "latency-vs-p.svg",
            "latency-vs-p.png",
            "crash-timeline.svg",
            "crash-timeline.png",
            "run-info.json",
            "crash-buckets.csv",
        ] {
            assert!(dir.path().join(f).exists(), "{f}");
        }
        if delay == "5" {
            // Every request crossed the relay twice: at least 10 ms.
            assert!(
                sweep.iter().all(|r| r.latency_us >= 10_000),
                "a request was faster than the delay"
            );
        }
    }
}
