//! The one launcher of the real store: the end-to-end tests, the chaos runner, the experiment and
//! the benchmark all start the store here.
//!
//! # Pieces
//! - [`Layout`] says where each process runs ([`Host`]) and on which port ([`Ports`]).
//! - [`Procs`] records every process a run started, by name. [`Procs::spawn`] is the only place a
//!   child is started: it fails with a message that names the missing binary or the error, and it
//!   removes every inherited `TOYSTORE_*` variable from the child's environment before setting what
//!   the launcher means to set (the services read each flag from such a variable too, so an exported
//!   `TOYSTORE_QUORUM=1` would silently change what a test tests).
//! - [`Store`] starts, restarts, kills and asks the services of one store in a fresh temporary
//!   folder; every call returns a `Result`. Dropping it kills its processes; dropping the last owner
//!   of its [`Procs`] kills everything the registry holds, also on a panic, and
//!   [`Procs::install_interrupt_handler`] does the same on Ctrl-C or SIGTERM.
//! - [`Cluster`] is the store for tests: the same calls, every failure a panic, and a panicking test
//!   prints the tail of each process's log.
//!
//! # Ports
//! One layout, the contract's shifted to a base ([`Ports::from_base`]): front-end `base`, catalog
//! `base+1`, front-end internal `base+2`, relay `base+3`, replicas `base+11..=base+13`. The base 8080
//! ([`CONTRACT_BASE_PORT`]) gives the contract's ports. A base reserves [`PORT_SPAN`] ports, so bases
//! that far apart never share one. The bases are allotted here, and nowhere else:
//!
//! | bases | used by |
//! |---|---|
//! | 8080 | `make run`, the experiment's default (`--base-port`) |
//! | 21000, 21020, … 21100 | `systest/tests/store.rs`, one per test |
//! | 21200, 21220, … 21360 | `systest/tests/failover.rs`, one per test |
//! | 22000, 22020, … 22100 | `systest/tests/bad_input.rs`, one per test |
//! | 22200, 22220, … 22280 | `systest/tests/flood.rs`, one per test |
//! | 22400, 22420, 22440 | `systest/tests/metrics.rs`, one per test |
//! | 23000 | `experiment/tests/experiment.rs` (its runs one after the other) |
//! | 23900 | the benchmark (`BENCH_BASE_PORT`); its floor takes `base+20`, its lone catalog `base+30..=base+43`, etcd's three members `base+50..=base+55`, the store of its scrape lines `base+60..=base+73` |
//! | 24000 | `systest/tests/chaos.rs` |
//! | 24100 | `make chaos` (`PORT_BASE`) |
//! | 24200, 24220, … 24280 | `systest/tests/partition.rs`, one per cut (each on hosts of its own) |
//!
//! A new test takes the next free base of its file's row, [`PORT_SPAN`] after the last one.
//!
//! # Hosts
//! By default every process binds 127.0.0.1. A [`Host`] with a network namespace runs its process as
//! `ip netns exec NS BINARY ARGS...` (`ip` execs the binary, so the child's pid is the service's own
//! and SIGKILL, SIGSTOP and SIGCONT reach it), bound to that host's address; [`Layout::with_hosts`]
//! reads a list such as `frontend=tsx-frontend@10.77.0.2,order2=tsx-order2@10.77.0.5`, which
//! `scripts/netns.sh` makes, and [`crate::netns::Hosts::layout`] gives the hosts a test makes itself.
//! Ports are the same on every host. Making and joining the namespaces is the caller's (it needs
//! root); the launcher only starts processes in them.

mod layout;
mod procs;
mod store;
mod testing;

pub use layout::{Host, Layout, Link, Ports, CONTRACT_BASE_PORT, PORT_SPAN};
pub use procs::{Launch, Procs};
pub use store::{retry, Answer, Consistency, Store, StoreOptions, NEW_STOCK};
pub use testing::Cluster;

use std::path::{Path, PathBuf};

/// The folder of the release binaries: `$TOYSTORE_BIN`, else the workspace's `target/release`,
/// which must hold each of `binaries`.
pub fn bin_dir_with(binaries: &[&str]) -> PathBuf {
    if let Some(dir) = std::env::var_os("TOYSTORE_BIN") {
        return PathBuf::from(dir);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let dir = root.join("target/release");
    for b in binaries {
        assert!(
            dir.join(b).exists(),
            "{} is missing: run `make build` (or `make test`) first",
            dir.join(b).display()
        );
    }
    dir
}

/// [`bin_dir_with`] the store's binaries and the client.
pub fn bin_dir() -> PathBuf {
    bin_dir_with(&["catalog", "order", "frontend", "client"])
}
