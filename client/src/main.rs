//! `client`: parse the flags, run the load, print the summary, exit 0 (all verified), 1 (a
//! mismatch or failed request) or 2 (bad arguments, from clap).

use std::process::ExitCode;

use clap::Parser;

/// Failed requests shown one by one on stderr; a dead store would otherwise flood it.
const FAILURES_SHOWN: usize = 20;

fn main() -> ExitCode {
    let config = client::Config::parse();
    let seed = config.seed.unwrap_or_else(client::seed_from_time);
    println!(
        "client: seed {seed}, {} session(s) x {} iterations against {}, p={}",
        config.threads, config.iterations, config.frontend, config.p
    );

    let report = match client::run(&config, seed) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("client: {err}");
            return ExitCode::from(client::EXIT_FAILURE);
        }
    };
    print!("{}", report.summary);
    println!("latency CSV: {}", config.latency_csv.display());

    for mismatch in &report.mismatches {
        eprintln!("mismatch: {mismatch}");
    }
    for failure in report.failures.iter().take(FAILURES_SHOWN) {
        eprintln!("failed: {failure}");
    }
    if report.failures.len() > FAILURES_SHOWN {
        eprintln!(
            "failed: … and {} more",
            report.failures.len() - FAILURES_SHOWN
        );
    }
    if !report.mismatches.is_empty() {
        eprintln!(
            "client: {} of {} orders did not verify",
            report.mismatches.len(),
            report.summary.orders_made
        );
    }
    if !report.failures.is_empty() {
        eprintln!(
            "client: {} requests failed with a transport error, a 5xx or an answer outside the \
             contract; the store promises none, even during fail-over (409s are not counted)",
            report.failures.len()
        );
    }
    ExitCode::from(report.exit_code())
}
