//! The toy store's client: a load generator and checker that uses only the public REST API of the
//! front-end, like any outside user.
//!
//! # What a run does
//!
//! [`run`] starts `--threads` K independent sessions on their own threads. Session k has id
//! `--client-id + k` and its own random generator seeded with `seed + k`. Each of its
//! `--iterations` queries a random toy (`GET /products/<name>`) and, if the answer showed stock,
//! with probability `--p` buys 1 to `--max-quantity` of it (`POST /orders`, capped at the stock
//! shown), sending a unique `request_id` that the front-end uses as an idempotency key. After its
//! iterations a session asks for every order it made (`GET /orders/<n>`) and checks name and
//! quantity. Finally the run checks that no order number was handed out twice across sessions,
//! writes the latency CSV and builds a [`Summary`].
//!
//! # Threads and measurement
//!
//! The sessions share one [`ureq::Agent`] (see [`build_agent`]: status codes as values, a pool large
//! enough for every session, connect and overall timeouts, no proxy) and an `indicatif` progress bar
//! over all iterations, drawn on stderr only when it is a terminal. Latency is measured with
//! [`std::time::Instant`] around each whole request, body read to its end included. Each session
//! keeps its [`Sample`]s in a `Vec`; nothing is written while the load runs.
//!
//! # Outputs and outcomes
//!
//! - The latency CSV (`--latency-csv`), one row per request, columns [`CSV_HEADER`]:
//!   `client,kind,latency_us,ok,status,start_ms,p,tag`.
//! - A [`Report`]: the summary, every [`Mismatch`] (an order confirmed with 200 that the store
//!   does not show as bought: wrong name or quantity, 404, an error, a number handed out twice) and
//!   every [`Failure`] (a query or purchase that got a transport error, a 5xx or another answer
//!   outside the contract).
//! - A 409 on a purchase (another client took the stock between query and purchase) is an expected
//!   outcome: it is recorded in the CSV with `ok=false,status=409` and counted, but it is not a
//!   failure.
//!
//! [`Report::exit_code`] is 0 when every order verified and nothing failed, 1 otherwise (the store
//! promises no errors, even during a fail-over, so a 5xx or transport error is a finding too);
//! clap exits with 2 on bad arguments.
//!
//! The random stream of a session depends on its seed only (every iteration draws the same
//! values whatever the store answers), so a run with the same `--seed` against a fresh store with
//! enough stock sends the same toys and quantities. Request ids also carry a per-run nonce, so a
//! replay against a store that still holds the first run's orders is not mistaken for a retry.

#![warn(missing_docs)]

pub mod config;
pub mod protocol;
pub mod report;
pub mod session;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub use config::{seed_from_time, Config};
pub use report::{
    write_latency_csv, Kind, KindStats, LatencyRow, Sample, Summary, CSV_HEADER,
    STATUS_TRANSPORT_ERROR,
};
pub use session::{choose_quantity, Failure, Mismatch, PlacedOrder, SessionOutcome};

/// Exit code of a run where every order verified and no request failed.
pub const EXIT_SUCCESS: u8 = 0;

/// Exit code of a run with an order mismatch or a failed request (transport error, 5xx, answer
/// outside the contract), and of a run that could not write its CSV.
pub const EXIT_FAILURE: u8 = 1;

/// Exit code for bad arguments (what clap uses).
pub const EXIT_USAGE: u8 = 2;

/// Time allowed to open a connection to the front-end.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Time allowed for one whole request; generous, since the store may hold a request for a few
/// seconds while it fails over to another order replica.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Least number of idle connections the agent keeps to the front-end (ureq's default of 3 would
/// make every extra concurrent session open a new connection per request).
pub const MIN_IDLE_CONNECTIONS: usize = 16;

/// Why a run could not complete. Problems of the store are not errors: they are in the [`Report`].
#[derive(Debug)]
pub enum Error {
    /// The latency CSV could not be created or written.
    LatencyCsv {
        /// The CSV's path.
        path: PathBuf,
        /// The cause.
        source: csv::Error,
    },
    /// A session thread could not be started.
    Spawn(io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::LatencyCsv { path, source } => {
                write!(f, "cannot write latency CSV {}: {source}", path.display())
            }
            Error::Spawn(err) => write!(f, "cannot start a session thread: {err}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::LatencyCsv { source, .. } => Some(source),
            Error::Spawn(err) => Some(err),
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Counts, latency percentiles and the seed, as printed at the end.
    pub summary: Summary,
    /// What each session measured and found, in session order.
    pub sessions: Vec<SessionOutcome>,
    /// Every order the store did not confirm as bought, across sessions.
    pub mismatches: Vec<Mismatch>,
    /// Every failed query or purchase, across sessions.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether every order verified and no request failed (409s allowed).
    pub fn is_success(&self) -> bool {
        self.mismatches.is_empty() && self.failures.is_empty()
    }

    /// The process exit code for this outcome: [`EXIT_SUCCESS`] or [`EXIT_FAILURE`].
    pub fn exit_code(&self) -> u8 {
        if self.is_success() {
            EXIT_SUCCESS
        } else {
            EXIT_FAILURE
        }
    }

    /// Every order made with a 200, across sessions.
    pub fn orders(&self) -> impl Iterator<Item = &PlacedOrder> {
        self.sessions.iter().flat_map(|session| &session.orders)
    }
}

/// The HTTP agent shared by `sessions` concurrent sessions, configured as the project's pitfalls
/// note says: status codes are answers, not errors (to read the JSON error body), a pool with room
/// for every session, timeouts, and no proxy from the environment.
pub fn build_agent(sessions: usize) -> ureq::Agent {
    let idle = sessions.max(MIN_IDLE_CONNECTIONS);
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(idle)
        .max_idle_connections_per_host(idle)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(REQUEST_TIMEOUT))
        .proxy(None)
        .build();
    // Without it ureq starts a thread to resolve `127.0.0.1` on every request, and the client would
    // measure that thread as store latency.
    shared::http::agent_with_literal_resolver(config)
}

/// Runs the load described by `config` with random seed `seed` (the caller resolves
/// `config.seed`, so that it can print it first), showing a progress bar on stderr when that is
/// a terminal. See the crate documentation.
pub fn run(config: &Config, seed: u64) -> Result<Report, Error> {
    let total = config.iterations.saturating_mul(u64::from(config.threads));
    let progress = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:40}] {pos}/{len} iterations ({per_sec}, eta {eta})",
    ) {
        progress.set_style(style.progress_chars("=> "));
    }
    run_with_progress(config, seed, progress)
}

/// [`run`] with a given progress bar, ticked once per iteration (tests pass
/// [`ProgressBar::hidden`]).
pub fn run_with_progress(
    config: &Config,
    seed: u64,
    progress: ProgressBar,
) -> Result<Report, Error> {
    // Open the CSV first: a bad path should fail before any load is generated.
    let csv_file = create_latency_csv(&config.latency_csv).map_err(|err| Error::LatencyCsv {
        path: config.latency_csv.clone(),
        source: err.into(),
    })?;
    let agent = build_agent(config.threads as usize);
    let run_nonce = format!("r{:x}", seed_from_time());
    let run_start = Instant::now();
    let plan = session::SessionPlan {
        frontend: &config.frontend,
        iterations: config.iterations,
        p: config.p,
        products: &config.products,
        max_quantity: u64::from(config.max_quantity),
        run_nonce: &run_nonce,
        run_start,
    };

    let sessions = run_sessions(config, seed, &agent, &plan, &progress)?;
    progress.finish_and_clear();
    let elapsed = run_start.elapsed();
    // Close idle keep-alive connections now rather than when the caller is done with the report.
    drop(agent);

    let mut mismatches: Vec<Mismatch> = sessions
        .iter()
        .flat_map(|session| session.mismatches.iter().cloned())
        .collect();
    mismatches.extend(duplicate_order_numbers(&sessions));
    let failures: Vec<Failure> = sessions
        .iter()
        .flat_map(|session| session.failures.iter().cloned())
        .collect();

    let rows = sessions.iter().flat_map(|session| {
        session
            .samples
            .iter()
            .map(|sample| LatencyRow::new(session.client, sample, config.p, &config.tag))
    });
    let csv_rows = write_latency_csv(csv_file, rows).map_err(|source| Error::LatencyCsv {
        path: config.latency_csv.clone(),
        source,
    })?;

    let summary = summarize(seed, &sessions, &mismatches, &failures, csv_rows, elapsed);
    Ok(Report {
        summary,
        sessions,
        mismatches,
        failures,
    })
}

/// Runs the `config.threads` sessions of a run, each on its own thread, and returns their outcomes.
fn run_sessions(
    config: &Config,
    seed: u64,
    agent: &ureq::Agent,
    plan: &session::SessionPlan<'_>,
    progress: &ProgressBar,
) -> Result<Vec<SessionOutcome>, Error> {
    thread::scope(|scope| -> Result<Vec<SessionOutcome>, Error> {
        let mut handles = Vec::new();
        for k in 0..u64::from(config.threads) {
            let client = config.client_id.wrapping_add(k);
            let handle = thread::Builder::new()
                .name(format!("session-{client}"))
                .spawn_scoped(scope, move || {
                    session::run_session(agent, plan, client, seed, seed.wrapping_add(k), progress)
                })
                .map_err(Error::Spawn)?;
            handles.push(handle);
        }
        Ok(handles
            .into_iter()
            // A panicking session is a bug in the client: pass the panic on.
            .map(|handle| {
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect())
    })
}

/// The summary of a run's sessions.
fn summarize(
    seed: u64,
    sessions: &[SessionOutcome],
    mismatches: &[Mismatch],
    failures: &[Failure],
    csv_rows: usize,
    elapsed: Duration,
) -> Summary {
    let samples: Vec<&Sample> = sessions.iter().flat_map(|s| &s.samples).collect();
    Summary {
        seed,
        kinds: Kind::ALL
            .iter()
            .map(|&kind| KindStats::from_samples(kind, samples.iter().copied()))
            .collect(),
        orders_made: sessions.iter().map(|s| s.orders.len()).sum(),
        orders_verified: sessions.iter().map(|s| s.verified).sum(),
        mismatches: mismatches.len(),
        failures: failures.len(),
        csv_rows,
        elapsed,
    }
}

/// Creates (or truncates) the latency CSV, creating its parent folders.
fn create_latency_csv(path: &Path) -> io::Result<File> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent)?;
    }
    // No BufWriter: the csv writer buffers already.
    File::create(path)
}

/// Orders whose number the store also gave to an earlier purchase of this run: each committed
/// order has its own number, so a repeat means a purchase was lost or applied twice.
pub fn duplicate_order_numbers(sessions: &[SessionOutcome]) -> Vec<Mismatch> {
    let mut first: HashMap<u64, (u64, &PlacedOrder)> = HashMap::new();
    let mut duplicates = Vec::new();
    for session in sessions {
        for order in &session.orders {
            match first.get(&order.number) {
                None => {
                    first.insert(order.number, (session.client, order));
                }
                Some((client, earlier)) => duplicates.push(Mismatch {
                    client: session.client,
                    order: order.clone(),
                    found: format!(
                        "the same order number was returned to client {client} for {} x{} (request {})",
                        earlier.name, earlier.quantity, earlier.request_id
                    ),
                }),
            }
        }
    }
    duplicates
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(number: u64, request_id: &str) -> PlacedOrder {
        PlacedOrder {
            number,
            name: "Tux".into(),
            quantity: 1,
            request_id: request_id.into(),
        }
    }

    #[test]
    fn duplicate_order_numbers_are_mismatches() {
        let sessions = vec![
            SessionOutcome {
                client: 0,
                orders: vec![order(0, "a"), order(2, "b")],
                ..SessionOutcome::default()
            },
            SessionOutcome {
                client: 1,
                orders: vec![order(1, "c"), order(2, "d")],
                ..SessionOutcome::default()
            },
        ];
        let duplicates = duplicate_order_numbers(&sessions);
        assert_eq!(duplicates.len(), 1);
        assert_eq!(duplicates[0].client, 1);
        assert_eq!(duplicates[0].order.request_id, "d");
        assert!(duplicates[0].found.contains("client 0"));
        assert!(duplicate_order_numbers(&sessions[..1]).is_empty());
    }

    #[test]
    fn exit_code_follows_mismatches_and_failures() {
        let summary = Summary {
            seed: 0,
            kinds: Kind::ALL
                .iter()
                .map(|&kind| KindStats::from_samples(kind, []))
                .collect(),
            orders_made: 0,
            orders_verified: 0,
            mismatches: 0,
            failures: 0,
            csv_rows: 0,
            elapsed: Duration::ZERO,
        };
        let mut report = Report {
            summary,
            sessions: Vec::new(),
            mismatches: Vec::new(),
            failures: Vec::new(),
        };
        assert!(report.is_success());
        assert_eq!(report.exit_code(), EXIT_SUCCESS);
        report.failures.push(Failure {
            client: 0,
            iteration: 0,
            kind: Kind::Query,
            status: 503,
            detail: "catalog down".into(),
        });
        assert_eq!(report.exit_code(), EXIT_FAILURE);
        report.failures.clear();
        report.mismatches.push(Mismatch {
            client: 0,
            order: order(0, "a"),
            found: "status 404".into(),
        });
        assert_eq!(report.exit_code(), EXIT_FAILURE);
    }

    #[test]
    fn unwritable_csv_fails_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "not a folder").unwrap();
        let config = Config {
            // Nothing listens here; the run must stop before trying.
            frontend: "http://127.0.0.1:9".into(),
            latency_csv: blocker.join("latency.csv"),
            ..Config::default()
        };
        let err = run_with_progress(&config, 1, ProgressBar::hidden()).unwrap_err();
        assert!(matches!(err, Error::LatencyCsv { .. }), "{err}");
    }
}
