//! Pieces every service of the toy store shares.
//!
//! - [`protocol`]: every JSON body that crosses a socket, public or internal, in one place.
//! - [`error`]: one error enum for the workspace, with the HTTP status chosen only at the edge.
//! - [`http`]: the tiny_http worker pool, JSON replies, body limits, the shared secret on internal
//!   calls, and the ureq agent every outgoing call uses (always with timeouts).
//! - [`durable`]: an append-only file with group commit (one `fdatasync` for the writes of many
//!   concurrent requests) and atomic whole-file replacement.
//! - [`files`]: the store's files (names, headers, journal rows) and the toys of a new catalog.
//! - [`config`]: the contract's default addresses, the flags every service shares, parsing of the
//!   replica list and other flag values.
//! - [`limits`]: raising the open-files limit, since every connection holds descriptors.
//! - [`shutdown`]: Ctrl-C / SIGTERM handling that lets `main` stop its servers and flush files.
//! - `testing` (feature `testing`): the services' in-process HTTP tests' call helper.
//! - [`timing`]: every heartbeat, window and timeout that decides how fast a fault is noticed.
//! - [`service`]: what every service's `main` does around `serve`: start, wait, stop, exit codes.
//! - [`logging`]: the [`log!`] macro, one line per event on stderr.
//! - [`metrics`]: the Prometheus registry every service builds, the request and peer-call metrics
//!   they all have, and a lock-free histogram.

pub mod config;
pub mod durable;
pub mod error;
pub mod files;
pub mod http;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod protocol;
pub mod service;
pub mod shutdown;
#[cfg(feature = "testing")]
pub mod testing;
pub mod timing;

pub use error::{Error, Result};
