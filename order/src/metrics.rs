//! A replica's own metrics (besides those of every service, [`shared::metrics`]).
//!
//! The gauges mirror the core's state: the server sets them after every step, under the lock the
//! step already holds, so a scrape reads atomics and never waits for the core (nor a purchase for
//! a scrape).
//! - `toystore_replica_role`: 0 follower, 1 candidate, 2 leader, 3 recovering ([`role_value`]).
//! - `toystore_replica_epoch`, `toystore_replica_leader`: the ballot it promised to follow (its
//!   epoch, and the replica that leads it).
//! - `toystore_replica_log_length`, `toystore_replica_commit`: orders in its log, and known
//!   committed.
//! - `toystore_replica_fsync_seconds` (histogram): each `fdatasync` of its order log.
//! - `toystore_replica_batch_size` (histogram): orders made durable by each of those syncs (group
//!   commit), so its count matches the fsync histogram's and its sum is the orders written.
//! - `toystore_replica_resynced_orders_total`: orders copied from a peer (on start, or as a
//!   candidate catching up).
//! - `toystore_rolled_forward_total`: orders written for takes that had none.

use crate::core::{self, Tally};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use shared::metrics::{Histogram, Metrics, BATCH_BUCKETS, FSYNC_BUCKETS};
use shared::protocol::Role;

/// The replica's routes, as `toystore_requests_total` labels them.
pub const ROUTES: &[&str] = &[
    "/orders",
    "/orders/:number",
    "/internal/health",
    "/internal/leader",
    "/internal/msg",
];

/// The value of `toystore_replica_role` for `role`.
pub fn role_value(role: Role) -> i64 {
    match role {
        Role::Follower => 0,
        Role::Candidate => 1,
        Role::Leader => 2,
        Role::Recovering => 3,
    }
}

/// Handles of a replica's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct ReplicaMetrics {
    role: Gauge,
    epoch: Gauge,
    leader: Gauge,
    log_length: Gauge,
    commit: Gauge,
    resynced: Counter,
    rolled_forward: Counter,
    /// Duration of each `fdatasync` of the order log.
    pub fsync: Histogram,
    /// Orders made durable by each of those syncs.
    pub batch_size: Histogram,
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl ReplicaMetrics {
    /// Registers a replica's metrics in `m`.
    pub fn register(m: &mut Metrics) -> ReplicaMetrics {
        ReplicaMetrics {
            role: m.gauge(
                "toystore_replica_role",
                "The replica's role: 0 follower, 1 candidate, 2 leader, 3 recovering",
            ),
            epoch: m.gauge(
                "toystore_replica_epoch",
                "Epoch of the newest leader choice the replica promised to follow",
            ),
            leader: m.gauge(
                "toystore_replica_leader",
                "The replica that leads the choice it promised to follow (0: none yet)",
            ),
            log_length: m.gauge("toystore_replica_log_length", "Orders in the replica's log"),
            commit: m.gauge(
                "toystore_replica_commit",
                "Orders the replica knows committed (on a quorum)",
            ),
            resynced: m.counter(
                "toystore_replica_resynced_orders_total",
                "Orders copied from a peer's log: on start, or as a candidate catching up",
            ),
            rolled_forward: m.counter(
                "toystore_rolled_forward_total",
                "Orders written for takes at the catalog that had none (their leader died between the two)",
            ),
            fsync: m.histogram(
                "toystore_replica_fsync_seconds",
                "Duration of each fdatasync of the order log",
                FSYNC_BUCKETS,
            ),
            batch_size: m.histogram(
                "toystore_replica_batch_size",
                "Orders made durable by each fdatasync of the order log (group commit)",
                BATCH_BUCKETS,
            ),
        }
    }

    /// Sets the gauges from `core`, and counts what its tally grew by since `seen` (then the new
    /// tally).
    pub fn publish(&self, core: &core::Replica, seen: &mut Tally) {
        let meta = core.meta();
        self.role.set(role_value(core.role()));
        self.epoch.set(gauge_value(meta.promised.epoch));
        self.leader.set(i64::from(meta.promised.leader));
        self.log_length.set(gauge_value(core.orders().len() as u64));
        self.commit.set(gauge_value(core.commit()));
        let now = core.tally();
        if now != *seen {
            self.resynced.inc_by(now.copied.saturating_sub(seen.copied));
            self.rolled_forward
                .inc_by(now.rolled_forward.saturating_sub(seen.rolled_forward));
            *seen = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_the_documented_values() {
        let values: Vec<i64> = [
            Role::Follower,
            Role::Candidate,
            Role::Leader,
            Role::Recovering,
        ]
        .into_iter()
        .map(role_value)
        .collect();
        assert_eq!(values, [0, 1, 2, 3]);
    }
}
