//! Measurements and what is made of them: the per-request [`Sample`], the latency CSV, and the
//! [`Summary`] printed at the end of a run.
//!
//! Samples are kept in memory per session while the load runs (a `Vec` push is the only cost on
//! the measurement path) and turned into CSV rows and histograms afterwards.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The columns of the latency CSV, in order.
pub const CSV_HEADER: [&str; 8] = [
    "client",
    "kind",
    "latency_us",
    "ok",
    "status",
    "start_ms",
    "p",
    "tag",
];

/// HTTP status recorded for a request that got no answer (connect failure, timeout, broken body).
pub const STATUS_TRANSPORT_ERROR: u16 = 0;

/// HTTP status of a purchase refused for lack of stock: an expected outcome under concurrency.
pub const STATUS_CONFLICT: u16 = 409;

/// Largest latency the histograms track exactly, in µs (one hour); longer ones are clamped.
const HISTOGRAM_MAX_US: u64 = 3_600_000_000;

/// Which request a sample measures; written to the CSV `kind` column.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `GET /products/<name>`.
    Query,
    /// `POST /orders`.
    Buy,
    /// `GET /orders/<number>`, the verification after the load.
    OrderQuery,
}

impl Kind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [Kind; 3] = [Kind::Query, Kind::Buy, Kind::OrderQuery];

    /// The name used in the CSV and the summary.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Query => "query",
            Kind::Buy => "buy",
            Kind::OrderQuery => "order_query",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measured request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// What was requested.
    pub kind: Kind,
    /// Wall time of the whole request, from before sending to after reading the whole body.
    pub latency_us: u64,
    /// HTTP status, or [`STATUS_TRANSPORT_ERROR`].
    pub status: u16,
    /// When the request started, in ms since the run began.
    pub start_ms: u64,
}

impl Sample {
    /// Whether the answer was a 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// One row of the latency CSV; field order is [`CSV_HEADER`].
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LatencyRow<'a> {
    /// Session id (`--client-id` + session index).
    pub client: u64,
    /// What was requested.
    pub kind: Kind,
    /// Latency of the whole request in µs.
    pub latency_us: u64,
    /// Whether the answer was a 2xx.
    pub ok: bool,
    /// HTTP status, 0 for a transport error.
    pub status: u16,
    /// Start of the request in ms since the run began.
    pub start_ms: u64,
    /// The run's buy probability `--p`.
    pub p: f64,
    /// The run's `--tag`.
    pub tag: &'a str,
}

impl<'a> LatencyRow<'a> {
    /// The row of `sample`, made by session `client` of a run with probability `p` and `tag`.
    pub fn new(client: u64, sample: &Sample, p: f64, tag: &'a str) -> Self {
        LatencyRow {
            client,
            kind: sample.kind,
            latency_us: sample.latency_us,
            ok: sample.ok(),
            status: sample.status,
            start_ms: sample.start_ms,
            p,
            tag,
        }
    }
}

/// Writes the latency CSV: the header (always, even without rows), then `rows`. Returns the number
/// of rows written, header excluded. Flushes before returning.
pub fn write_latency_csv<'a, W: Write>(
    out: W,
    rows: impl IntoIterator<Item = LatencyRow<'a>>,
) -> csv::Result<usize> {
    // The header is written by hand: serde would only write it together with a first row.
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(out);
    writer.write_record(CSV_HEADER)?;
    let mut count = 0;
    for row in rows {
        writer.serialize(row)?;
        count += 1;
    }
    writer.flush()?;
    Ok(count)
}

/// Counts and latency percentiles of one kind of request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindStats {
    /// Which requests.
    pub kind: Kind,
    /// How many were sent.
    pub count: u64,
    /// How many did not get a 2xx (409s included).
    pub errors: u64,
    /// How many got a 409 (out of stock).
    pub conflicts: u64,
    /// Median latency in µs, 0 without samples.
    pub p50_us: u64,
    /// 90th percentile latency in µs.
    pub p90_us: u64,
    /// 99th percentile latency in µs.
    pub p99_us: u64,
    /// Largest latency in µs.
    pub max_us: u64,
}

impl KindStats {
    /// Statistics of the samples of `kind` among `samples` (others are skipped).
    pub fn from_samples<'s>(kind: Kind, samples: impl IntoIterator<Item = &'s Sample>) -> Self {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
            .expect("constant histogram bounds are valid");
        let (mut count, mut errors, mut conflicts) = (0, 0, 0);
        for sample in samples.into_iter().filter(|sample| sample.kind == kind) {
            count += 1;
            errors += u64::from(!sample.ok());
            conflicts += u64::from(sample.status == STATUS_CONFLICT);
            // The histogram's lowest trackable value is 1 µs; a faster answer counts as 1.
            histogram.saturating_record(sample.latency_us.max(1));
        }
        let quantile = |q| {
            if count == 0 {
                0
            } else {
                histogram.value_at_quantile(q)
            }
        };
        KindStats {
            kind,
            count,
            errors,
            conflicts,
            p50_us: quantile(0.5),
            p90_us: quantile(0.9),
            p99_us: quantile(0.99),
            max_us: if count == 0 { 0 } else { histogram.max() },
        }
    }
}

/// What a run did, as printed on stdout at its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The run's seed (session k used seed + k).
    pub seed: u64,
    /// One entry per kind, in [`Kind::ALL`] order.
    pub kinds: Vec<KindStats>,
    /// Purchases that got a 200.
    pub orders_made: usize,
    /// Of those, how many `GET /orders/<n>` confirmed with the right name and quantity.
    pub orders_verified: usize,
    /// Orders that could not be confirmed (see [`crate::Mismatch`]).
    pub mismatches: usize,
    /// Requests that failed: transport errors, 5xx, and other unexpected answers (409 excluded).
    pub failures: usize,
    /// Rows written to the latency CSV.
    pub csv_rows: usize,
    /// Wall time of the load and the verification.
    pub elapsed: Duration,
}

impl Summary {
    /// The statistics of `kind`.
    pub fn stats(&self, kind: Kind) -> &KindStats {
        self.kinds
            .iter()
            .find(|stats| stats.kind == kind)
            .expect("a summary has every kind")
    }

    /// Total number of requests sent.
    pub fn requests(&self) -> u64 {
        self.kinds.iter().map(|stats| stats.count).sum()
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>8} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "kind", "count", "errors", "409s", "p50_us", "p90_us", "p99_us", "max_us"
        )?;
        for stats in &self.kinds {
            writeln!(
                f,
                "{:<12} {:>8} {:>7} {:>6} {:>9} {:>9} {:>9} {:>9}",
                stats.kind.as_str(),
                stats.count,
                stats.errors,
                stats.conflicts,
                stats.p50_us,
                stats.p90_us,
                stats.p99_us,
                stats.max_us
            )?;
        }
        writeln!(
            f,
            "orders: {} made, {} verified, {} mismatched; {} purchases refused with 409 (out of stock, expected)",
            self.orders_made,
            self.orders_verified,
            self.mismatches,
            self.stats(Kind::Buy).conflicts
        )?;
        writeln!(
            f,
            "failed requests (transport error, 5xx, unexpected answer): {}",
            self.failures
        )?;
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.requests() as f64 / seconds
        } else {
            0.0
        };
        writeln!(
            f,
            "{} requests in {seconds:.2} s ({rate:.0}/s), {} latency rows written",
            self.requests(),
            self.csv_rows
        )?;
        writeln!(f, "seed: {} (replay with --seed {})", self.seed, self.seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: Kind, latency_us: u64, status: u16) -> Sample {
        Sample {
            kind,
            latency_us,
            status,
            start_ms: latency_us / 1000,
        }
    }

    #[test]
    fn ok_means_2xx() {
        assert!(sample(Kind::Query, 1, 200).ok());
        assert!(sample(Kind::Query, 1, 204).ok());
        for status in [0, 199, 300, 404, 409, 503] {
            assert!(!sample(Kind::Query, 1, status).ok(), "{status}");
        }
    }

    #[test]
    fn csv_has_exact_header_and_rows() {
        let samples = [
            sample(Kind::Query, 1234, 200),
            sample(Kind::Buy, 99, 409),
            sample(Kind::OrderQuery, 5, 0),
        ];
        let mut out = Vec::new();
        let rows = samples
            .iter()
            .map(|s| LatencyRow::new(7, s, 0.8, "cache-on"));
        assert_eq!(write_latency_csv(&mut out, rows).unwrap(), 3);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "client,kind,latency_us,ok,status,start_ms,p,tag\n\
             7,query,1234,true,200,1,0.8,cache-on\n\
             7,buy,99,false,409,0,0.8,cache-on\n\
             7,order_query,5,false,0,0,0.8,cache-on\n"
        );
    }

    #[test]
    fn csv_without_rows_still_has_header() {
        let mut out = Vec::new();
        assert_eq!(write_latency_csv(&mut out, []).unwrap(), 0);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "client,kind,latency_us,ok,status,start_ms,p,tag\n"
        );
    }

    #[test]
    fn csv_quotes_awkward_tags() {
        let mut out = Vec::new();
        let s = sample(Kind::Query, 1, 200);
        write_latency_csv(&mut out, [LatencyRow::new(0, &s, 1.0, "a,b")]).unwrap();
        let mut reader = csv::Reader::from_reader(&out[..]);
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[7], "a,b");
        assert_eq!(&record[6], "1.0");
    }

    #[test]
    fn percentiles_of_1_to_100() {
        let mut samples: Vec<Sample> = (1..=100).map(|us| sample(Kind::Query, us, 200)).collect();
        samples.push(sample(Kind::Buy, 1_000_000, 409));
        samples.push(sample(Kind::Buy, 10, 200));
        let query = KindStats::from_samples(Kind::Query, &samples);
        assert_eq!(
            query,
            KindStats {
                kind: Kind::Query,
                count: 100,
                errors: 0,
                conflicts: 0,
                p50_us: 50,
                p90_us: 90,
                p99_us: 99,
                max_us: 100,
            }
        );
        let buy = KindStats::from_samples(Kind::Buy, &samples);
        assert_eq!((buy.count, buy.errors, buy.conflicts), (2, 1, 1));
        assert_eq!(buy.p50_us, 10);
        // Three significant digits: a large value is reported within 0.1 %.
        assert!(buy.max_us.abs_diff(1_000_000) <= 1_000, "{}", buy.max_us);
    }

    #[test]
    fn empty_and_zero_latency_stats() {
        let none = KindStats::from_samples(Kind::OrderQuery, &[]);
        assert_eq!((none.count, none.p50_us, none.max_us), (0, 0, 0));
        let zero = KindStats::from_samples(Kind::Query, &[sample(Kind::Query, 0, 200)]);
        assert_eq!((zero.count, zero.p50_us), (1, 1));
    }

    #[test]
    fn summary_prints_every_kind_and_the_seed() {
        let samples = [sample(Kind::Query, 100, 200), sample(Kind::Buy, 200, 409)];
        let summary = Summary {
            seed: 1234,
            kinds: Kind::ALL
                .iter()
                .map(|&kind| KindStats::from_samples(kind, &samples))
                .collect(),
            orders_made: 0,
            orders_verified: 0,
            mismatches: 0,
            failures: 0,
            csv_rows: 2,
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(summary.requests(), 2);
        let text = summary.to_string();
        for needle in [
            "query",
            "buy",
            "order_query",
            "p99_us",
            "1 purchases refused with 409",
            "seed: 1234",
            "2 latency rows",
        ] {
            assert!(text.contains(needle), "{needle} missing in:\n{text}");
        }
    }
}
