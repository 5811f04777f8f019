//! The catalog's own metrics (besides those of every service, [`shared::metrics`]).
//!
//! - `toystore_stock{product}`: each toy's stock as of the journal rows on disk (what queries see),
//!   set whenever rows reach the disk, under the catalog's lock that the take already holds.
//! - `toystore_takes_total`: takes of stock (a repeated request id is not a take).
//! - `toystore_restocks_total`: toys set back to full stock.
//! - `toystore_invalidations_sent_total{outcome}`: toys named in pushes to the front-end, `ok` or
//!   `failed` (a failed push is sent again with the next one).
//! - `toystore_journal_fsync_seconds` (histogram): each group commit's `fdatasync` of the journal.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use shared::metrics::{Histogram, Metrics, FSYNC_BUCKETS};
use std::collections::BTreeMap;

/// The catalog's routes, as `toystore_requests_total` labels them.
pub const ROUTES: &[&str] = &[
    "/products/:name",
    "/products",
    "/internal/take",
    "/internal/cancel",
    "/internal/takes",
    "/internal/health",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProductLabel {
    product: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// Handles of the catalog's metrics; clones share them.
#[derive(Clone, Debug)]
pub struct CatalogMetrics {
    /// Stock on disk, by toy (made once for every toy of the catalog).
    stock: BTreeMap<String, Gauge>,
    /// Takes of stock.
    pub takes: Counter,
    /// Toys restocked.
    pub restocks: Counter,
    /// Toys named in pushes that the front-end answered.
    pub invalidations_ok: Counter,
    /// Toys named in pushes that failed (and are sent again).
    pub invalidations_failed: Counter,
    /// Duration of each `fdatasync` of the journal.
    pub journal_fsync: Histogram,
}

impl CatalogMetrics {
    /// Registers the catalog's metrics in `m`, with a stock gauge for each of `toys`.
    pub fn register(m: &mut Metrics, toys: impl IntoIterator<Item = String>) -> CatalogMetrics {
        let stock_family = Family::<ProductLabel, Gauge>::default();
        let stock = toys
            .into_iter()
            .map(|product| {
                let g = stock_family.get_or_create_owned(&ProductLabel {
                    product: product.clone(),
                });
                (product, g)
            })
            .collect();
        m.registry().register(
            "toystore_stock",
            "Stock of each toy as of the journal rows on disk",
            stock_family,
        );
        let sent = Family::<OutcomeLabel, Counter>::default();
        let invalidations_ok = sent.get_or_create_owned(&OutcomeLabel { outcome: "ok" });
        let invalidations_failed = sent.get_or_create_owned(&OutcomeLabel { outcome: "failed" });
        m.registry().register(
            "toystore_invalidations_sent",
            "Toys named in invalidations pushed to the front-end, by outcome (a failed push is sent again)",
            sent,
        );
        CatalogMetrics {
            stock,
            takes: m.counter("toystore_takes_total", "Takes of stock (a repeated request id is not one)"),
            restocks: m.counter("toystore_restocks_total", "Toys set back to full stock"),
            invalidations_ok,
            invalidations_failed,
            journal_fsync: m.histogram(
                "toystore_journal_fsync_seconds",
                "Duration of each fdatasync of the catalog's journal (one per group of concurrent writes)",
                FSYNC_BUCKETS,
            ),
        }
    }

    /// Sets the stock gauges from `(toy, stock on disk)`.
    pub fn set_stock<'a>(&self, stock: impl Iterator<Item = (&'a str, u64)>) {
        for (name, quantity) in stock {
            if let Some(g) = self.stock.get(name) {
                g.set(i64::try_from(quantity).unwrap_or(i64::MAX));
            }
        }
    }
}
