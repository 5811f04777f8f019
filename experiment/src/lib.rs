//! The toy store's evaluation: how latency depends on the share of purchases p with the front-end's
//! cache on and off, what a crash of an order replica costs the clients, and how far each request
//! kind is from a bare HTTP round trip.
//!
//! # What runs
//! - The `experiment` binary ([`cli`]): starts the real store from the release binaries with the
//!   launcher the end-to-end tests use ([`systest::cluster::Store`]: the contract's port layout
//!   from `--base-port`, fresh data folder, every process killed at the end, on a failure and on
//!   Ctrl-C), runs the p sweep ([`sweep`]) and the crash run ([`crash`]) with the [`client`]
//!   library as load, writes the CSVs ([`data`]), the plots ([`plot`]) and `REPORT.md`
//!   ([`report`]). With a host list it runs each service in its own network namespace (see
//!   `scripts/netns.sh` and the hosts of [`systest::cluster`]).
//! - The `relay` binary ([`relay`]): a TCP relay that delays every chunk by a fixed time each way,
//!   placed between the client and the front-end to stand in for a wide-area link.
//! - The `store` benchmark (`cargo bench -p experiment`, `make bench`, [`bench`](mod@bench)): the
//!   floor (the `floor` binary, a bare tiny_http server with the services' worker pool answering a
//!   fixed body) against the front-end's cached and uncached queries, purchases and order queries,
//!   with 1 and with 5 concurrent clients, and the pieces of a purchase on their own. Its clients resolve IP-literal
//!   hosts without a thread ([`resolver`]). What a scrape of `/metrics` costs, and what it costs a
//!   purchase, is measured apart ([`bench_scrape`]).
//! - Plots as SVG and as PNG, each drawn once for both ([`plot`]); the PNG's text comes from a font
//!   compiled into the program, so it needs no system library or font.
//!
//! # Threads
//! Experiments are plain threads: one per client session (inside the client library), a killer on
//! the main thread in the crash run, one per benchmark client, and per relayed connection four
//! threads (a reader and a writer each way). No async runtime.
//!
//! # Files (under `results/`, see [`data`])
//! `latency-sweep.csv`, `sweep-runs.csv`, `latency-crash.csv`, `crash-events.csv`,
//! `crash-buckets.csv`, `crash-outcome.json`, `run-info.json`, `bench.csv`, the plots (`*.svg`,
//! `*.png`) and `REPORT.md` (which links the hand-written `PROFILE.md` and `DEPLOY.md` when present).
//! The report and the plots are made from these files alone, so `experiment --parts report` makes
//! them again without running anything.
//!
//! # Invariants
//! - Every process an experiment starts is a child recorded in [`systest::cluster::Procs`] and is
//!   killed when the experiment ends, fails or is interrupted; nothing is left listening.
//! - Latency is measured by the client library around each whole request; the experiment only adds
//!   the setting (p, cache) or the start time on the crash run's clock.

#![warn(missing_docs)]

pub mod analysis;
pub mod bench;
pub mod bench_scrape;
pub mod cli;
pub mod crash;
pub mod data;
pub mod etcd;
pub mod plot;
pub mod relay;
pub mod report;
pub mod resolver;
pub mod sweep;
pub mod ui;

/// The contract's ten toys with their prices (the catalog's default file), for a catalog started
/// with other stock.
pub use shared::files::DEFAULT_TOYS as TOYS;
