//! The front-end's own metrics (besides those of every service, [`shared::metrics`]).
//!
//! - `toystore_cache_hits_total`, `toystore_cache_misses_total`: product queries answered from the
//!   cache, and those that asked the catalog.
//! - `toystore_cache_invalidations_total{source}`: names dropped from the cache, pushed by the
//!   `catalog` or by a `purchase` of the toy (read your writes).
//! - `toystore_cache_entries`: products cached, set under the cache's lock when it changes.
//! - `toystore_leader_id`, `toystore_leader_epoch`: the replica purchases go to (0: none) and the
//!   epoch of that choice.
//! - `toystore_leader_changes_total`: choices of a new leader installed (the first one included).
//! - `toystore_purchase_retries_total{kind}`: purchase attempts after the first, on the
//!   `same_leader` after a backoff or on a `new_leader` chosen after a failure.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use shared::metrics::Metrics;

/// The front-end's routes, public and internal, as `toystore_requests_total` labels them.
pub const ROUTES: &[&str] = &[
    "/products/:name",
    "/orders",
    "/orders/:number",
    "/internal/invalidate",
    "/internal/status",
    "/internal/health",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Who dropped a name from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The catalog's push after a change of stock.
    Catalog,
    /// A purchase of the toy, before it is answered.
    Purchase,
}

/// Handles of the front-end's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct FrontendMetrics {
    /// Queries answered from the cache.
    pub cache_hits: Counter,
    /// Queries that asked the catalog.
    pub cache_misses: Counter,
    invalidated_by_catalog: Counter,
    invalidated_by_purchase: Counter,
    /// Products cached.
    pub cache_entries: Gauge,
    /// The replica purchases go to (0: none).
    pub leader_id: Gauge,
    /// The epoch of that choice.
    pub leader_epoch: Gauge,
    /// New leader choices installed.
    pub leader_changes: Counter,
    /// Retries on the same leader.
    pub retries_same_leader: Counter,
    /// Retries on a leader chosen again.
    pub retries_new_leader: Counter,
}

impl FrontendMetrics {
    /// Registers the front-end's metrics in `m`.
    pub fn register(m: &mut Metrics) -> FrontendMetrics {
        let invalidations = Family::<SourceLabel, Counter>::default();
        let by = |source| invalidations.get_or_create_owned(&SourceLabel { source });
        let (invalidated_by_catalog, invalidated_by_purchase) = (by("catalog"), by("purchase"));
        m.registry().register(
            "toystore_cache_invalidations",
            "Names dropped from the product cache, by who dropped them (the catalog's push, or a purchase)",
            invalidations,
        );
        let retries = Family::<KindLabel, Counter>::default();
        let kind = |kind| retries.get_or_create_owned(&KindLabel { kind });
        let (retries_same_leader, retries_new_leader) = (kind("same_leader"), kind("new_leader"));
        m.registry().register(
            "toystore_purchase_retries",
            "Purchase attempts after the first: on the same leader after a backoff, or on a new leader",
            retries,
        );
        FrontendMetrics {
            cache_hits: m.counter(
                "toystore_cache_hits_total",
                "Product queries answered from the cache",
            ),
            cache_misses: m.counter(
                "toystore_cache_misses_total",
                "Product queries that asked the catalog",
            ),
            invalidated_by_catalog,
            invalidated_by_purchase,
            cache_entries: m.gauge("toystore_cache_entries", "Products in the cache"),
            leader_id: m.gauge(
                "toystore_leader_id",
                "The order replica purchases go to (0: none)",
            ),
            leader_epoch: m.gauge(
                "toystore_leader_epoch",
                "The epoch of the current leader choice",
            ),
            leader_changes: m.counter(
                "toystore_leader_changes_total",
                "Choices of a new leader installed, the first one included",
            ),
            retries_same_leader,
            retries_new_leader,
        }
    }

    /// Counts one name dropped from the cache.
    pub fn invalidated(&self, by: Invalidation) {
        match by {
            Invalidation::Catalog => self.invalidated_by_catalog.inc(),
            Invalidation::Purchase => self.invalidated_by_purchase.inc(),
        };
    }
}
