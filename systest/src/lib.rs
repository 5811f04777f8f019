//! End-to-end harness of the toy store: the real binaries as child processes, killed for real.
//!
//! - [`cluster`]: the one launcher of the store, used by the end-to-end tests (`tests/`), the chaos
//!   runner, the experiment and the benchmark: one port layout from a base (and the allotment of
//!   bases), one spawn that cleans the child's environment, optional hosts in network namespaces,
//!   every process killed when the store is dropped. [`Cluster`] is its panicking form for tests:
//!   it starts `catalog`, the order replicas and `frontend` from `target/release` (or from
//!   `$TOYSTORE_BIN`) in a temporary data folder on 127.0.0.1, sends real signals (SIGKILL, SIGSTOP,
//!   SIGCONT), and a failing test prints the tail of each process's log.
//! - [`netns`]: hosts for a test, one network namespace per service on a bridge, with links to cut
//!   and hosts to unplug (needs root); the partition tests (`tests/partition.rs`) use them.
//! - [`chaos`]: the seeded fault run with a checked history (`make chaos`, the `chaos` binary).
//! - The checks of a store's files that both use: [`check_store`], [`read_orders`],
//!   [`read_journal`], [`tail_logs`].

use serde::de::DeserializeOwned;
pub use shared::files::{JournalKind, JournalRow};
use shared::protocol::{Order, ReplicaId};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

pub mod chaos;
pub mod cluster;
pub mod netns;

pub use cluster::{bin_dir, Answer, Cluster};

/// Replica ids of the default store.
pub const REPLICAS: [ReplicaId; 3] = [1, 2, 3];

/// Reads every row of a CSV file of the store (none when the file does not exist yet).
fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, String> {
    let Ok(mut reader) = csv::Reader::from_path(path) else {
        return Ok(Vec::new());
    };
    reader
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// The orders in `orders-<id>.csv` of the data folder `data`.
pub fn read_orders(data: &Path, id: ReplicaId) -> Result<Vec<Order>, String> {
    read_rows(&data.join(format!("orders-{id}.csv")))
}

/// The rows of `catalog-journal.csv` of the data folder `data`.
pub fn read_journal(data: &Path) -> Result<Vec<JournalRow>, String> {
    read_rows(&data.join("catalog-journal.csv"))
}

/// Checks a store's files against the catalog's current `stock`, once: every replica's order file is
/// the same; order numbers are 0..n; no request id appears twice; every take in the catalog's journal
/// has exactly one order; for every toy, stock = `base` + restocked - ordered. Returns the orders.
pub fn check_store(
    data: &Path,
    stock: &BTreeMap<String, u64>,
    base: u64,
) -> Result<Vec<Order>, String> {
    let texts: Vec<String> = REPLICAS
        .iter()
        .map(|id| {
            std::fs::read_to_string(data.join(format!("orders-{id}.csv"))).unwrap_or_default()
        })
        .collect();
    if texts.iter().any(|t| *t != texts[0]) {
        let lens: Vec<usize> = texts.iter().map(|t| t.lines().count()).collect();
        return Err(format!("order files differ (lines: {lens:?})"));
    }
    let orders = read_orders(data, REPLICAS[0])?;
    for (i, o) in orders.iter().enumerate() {
        if o.number != i as u64 {
            return Err(format!("order {i} has number {}", o.number));
        }
    }
    let mut ids = HashSet::new();
    for o in &orders {
        if !ids.insert(o.request_id.as_str()) {
            return Err(format!("request id {} applied twice", o.request_id));
        }
    }
    let journal = read_journal(data)?;
    let takes: HashSet<&str> = journal
        .iter()
        .filter(|r| r.kind == JournalKind::Take)
        .map(|r| r.request_id.as_str())
        .collect();
    if takes.len() != ids.len() || takes.iter().any(|t| !ids.contains(*t)) {
        return Err(format!(
            "{} takes at the catalog but {} orders",
            takes.len(),
            ids.len()
        ));
    }
    for (name, quantity) in stock {
        let restocked: u64 = journal
            .iter()
            .filter(|r| r.kind == JournalKind::Restock && r.name == *name)
            .map(|r| r.quantity)
            .sum();
        let ordered: u64 = orders
            .iter()
            .filter(|o| o.name == *name)
            .map(|o| o.quantity)
            .sum();
        if base + restocked != quantity + ordered {
            return Err(format!(
                "{name}: stock {quantity} but {base} + {restocked} restocked - {ordered} ordered"
            ));
        }
    }
    Ok(orders)
}

/// The last `lines` lines of every `*.log` file in `dir`, each under its file's name.
pub fn tail_logs(dir: &Path, lines: usize) -> String {
    let mut out = String::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        out.push_str(&format!(
            "--- {} (last {lines} lines)\n",
            p.file_name().unwrap_or_default().to_string_lossy()
        ));
        for l in &all[all.len().saturating_sub(lines)..] {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}
