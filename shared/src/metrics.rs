//! Prometheus metrics: what every service measures the same way, and the registry each service adds
//! its own metrics to.
//!
//! Each process builds one [`Metrics`] before it serves: [`Metrics::new`] registers the metrics
//! every service has, the service registers its own with [`Metrics::counter`], [`Metrics::gauge`],
//! [`Metrics::histogram`] and [`Metrics::registry`], and then shares it (an `Arc`) with its servers
//! ([`crate::http::ServerOptions::metrics`]) and its [`crate::http::Peer`]s. From then on the
//! registry does not change: a scrape only reads it.
//!
//! The exposition is the Prometheus text format (version 0.0.4), written by the `prometheus-client`
//! crate ([`Metrics::encode`]), served as `GET /metrics` on a service's internal address
//! ([`METRICS_PATH`]; see [`crate::http`] for who may read it).
//!
//! # Every service
//! - `toystore_requests_total{route,status}`: requests answered, by route pattern and status.
//! - `toystore_request_duration_seconds{route}` (histogram): from a worker taking the request to
//!   its answer.
//! - `toystore_peer_calls_total{peer,outcome}`: calls to other services, by the peer's name and
//!   [`outcome`].
//! - `toystore_up` (always 1) and `toystore_build_info{service,version}` (always 1).
//!
//! # What a scrape costs a request
//! Nothing a request does waits for a scrape. Counting a request is an atomic increment behind the
//! read lock of a `prometheus-client` family (written only the first time a route answers a new
//! status); its duration goes to a [`Histogram`] of atomics, chosen by the route's index, with no
//! lock at all (`prometheus-client`'s own histogram takes a mutex on every observation, which a
//! scrape also holds while it reads it). Peer calls count into counters made once, when a
//! [`PeerCalls`] is made. Gauges that mirror a service's state are atomics the service sets when
//! the state changes, under locks it already holds; a scrape reads the atomics.
//!
//! # Labels stay bounded
//! A route label is one of the patterns a service declares (`/products/:name`), [`METRICS_PATH`],
//! or [`OTHER_ROUTE`] for every other path, so a flood of odd paths cannot grow the registry.
//! Statuses are the few the services answer; peers are the ones a service is configured with.

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The path metrics are served on, on every internal address.
pub const METRICS_PATH: &str = "/metrics";

/// The route label of every path no route of the service knows.
pub const OTHER_ROUTE: &str = "other";

/// The `Content-Type` of the exposition: the Prometheus text format, version 0.0.4.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the request-duration buckets: 100 µs (a cached query) to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds (seconds) of the fsync buckets: an `fdatasync` of a small append costs about
/// 180 µs on a quiet disk, and a busy one far more.
pub const FSYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Upper bounds of batch-size buckets (items per group commit or batch).
pub const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0, 16384.0,
];

/// What became of a call to a peer: the `outcome` label of `toystore_peer_calls_total`.
pub mod outcome {
    /// A 2xx answer.
    pub const OK: &str = "ok";
    /// An answer with an error status (409, 503, ...): the peer is there and said no.
    pub const ERROR: &str = "error";
    /// The connection was refused: the call surely did not arrive.
    pub const UNREACHABLE: &str = "unreachable";
    /// A timeout or reset after the call was sent: it may have taken effect.
    pub const LOST: &str = "lost";
    /// Every outcome, in this order.
    pub const ALL: [&str; 4] = [OK, ERROR, UNREACHABLE, LOST];
}

/// A histogram of atomics: observing takes no lock, so a scrape never makes a request wait.
///
/// Buckets are counted apart (not cumulatively); the encoder adds them up. The count written is the
/// sum of the buckets as read, so `+Inf` always equals `_count`; the sum may be a few observations
/// apart from them while requests are answered during a scrape.
#[derive(Clone, Debug)]
pub struct Histogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug)]
struct HistogramInner {
    bounds: &'static [f64],
    /// One per bound, then `+Inf`.
    buckets: Box<[AtomicU64]>,
    /// The sum of the observations, as `f64` bits.
    sum: AtomicU64,
}

impl Histogram {
    /// A histogram with these upper bounds (ascending; `+Inf` is added).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "ascending bounds");
        Histogram {
            inner: Arc::new(HistogramInner {
                bounds,
                buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
                sum: AtomicU64::new(0f64.to_bits()),
            }),
        }
    }

    /// Counts `v` in the first bucket whose bound is at least `v`.
    pub fn observe(&self, v: f64) {
        let i = self.inner.bounds.partition_point(|b| *b < v);
        self.inner.buckets[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .inner
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + v).to_bits())
            });
    }

    /// Counts a duration, in seconds.
    pub fn observe_duration(&self, d: Duration) {
        self.observe(d.as_secs_f64());
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.inner
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .sum()
    }

    /// The sum of the observations so far.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.inner.sum.load(Ordering::Relaxed))
    }
}

impl TypedMetric for Histogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Histogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let bounds = self.inner.bounds.iter().copied().chain([f64::INFINITY]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(self.inner.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        encoder.encode_histogram::<NoLabelSet>(self.sum(), count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// One histogram per route, encoded as one family labelled `route`: a route's histogram is found by
/// its index, without the lock of a `prometheus-client` family.
#[derive(Clone, Debug)]
struct RouteHistograms(Arc<[(&'static str, Histogram)]>);

impl TypedMetric for RouteHistograms {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for RouteHistograms {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (route, h) in self.0.iter() {
            h.encode(encoder.encode_family(&[("route", *route)])?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Labels of `toystore_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

/// Labels of `toystore_peer_calls_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
    outcome: &'static str,
}

/// The route pattern a path matches among `routes`: segments equal, or any segment where the
/// pattern has `:name`. None when no pattern matches.
pub fn match_route(routes: &[&'static str], path: &str) -> Option<usize> {
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let segments = || path.trim_matches('/').split('/');
    routes.iter().position(|pattern| {
        let mut want = pattern.trim_matches('/').split('/');
        let mut got = segments();
        loop {
            match (want.next(), got.next()) {
                (None, None) => return true,
                (Some(w), Some(g)) if w.starts_with(':') || w == g => {}
                _ => return false,
            }
        }
    })
}

/// A process's metrics: the registry and the metrics every service has.
pub struct Metrics {
    service: String,
    registry: Registry,
    /// The service's route patterns, then [`METRICS_PATH`], then [`OTHER_ROUTE`].
    routes: Vec<&'static str>,
    durations: RouteHistograms,
    requests: Family<RequestLabels, Counter>,
    peer_calls: Family<PeerLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.service)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl Metrics {
    /// The metrics of `service` (`catalog`, `order-2`, `frontend`), whose servers answer the paths
    /// `routes` (patterns such as `/products/:name`), with the metrics every service has.
    pub fn new(service: &str, routes: &[&'static str]) -> Metrics {
        let mut all: Vec<&'static str> = routes.to_vec();
        all.extend([METRICS_PATH, OTHER_ROUTE]);
        let durations = RouteHistograms(
            all.iter()
                .map(|r| (*r, Histogram::new(LATENCY_BUCKETS)))
                .collect(),
        );
        let mut m = Metrics {
            service: service.to_string(),
            registry: Registry::default(),
            routes: all,
            durations: durations.clone(),
            requests: Family::default(),
            peer_calls: Family::default(),
        };
        m.registry.register(
            "toystore_requests",
            "Requests answered, by route pattern and HTTP status",
            m.requests.clone(),
        );
        m.registry.register(
            "toystore_request_duration_seconds",
            "Time from a worker taking a request to its answer, by route pattern",
            durations,
        );
        m.registry.register(
            "toystore_peer_calls",
            "Calls to other services of the store, by peer and outcome (ok, error: an error status, \
             unreachable: connection refused, lost: timeout or reset)",
            m.peer_calls.clone(),
        );
        m.gauge("toystore_up", "1 while the service serves").set(1);
        m.registry.register(
            "toystore_build",
            "The service and the version of the toy store it runs",
            Info::new(vec![
                ("service", service.to_string()),
                ("version", env!("CARGO_PKG_VERSION").to_string()),
            ]),
        );
        m
    }

    /// The service's name, as `toystore_build_info` gives it.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The registry, to register what [`Metrics::counter`] and its siblings do not make.
    pub fn registry(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// Registers a counter named `name`, which ends in `_total` as it is exposed.
    pub fn counter(&mut self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        let base = name
            .strip_suffix("_total")
            .expect("a counter's name ends in _total");
        self.registry.register(base, help, c.clone());
        c
    }

    /// Registers a gauge.
    pub fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        self.registry.register(name, help, g.clone());
        g
    }

    /// Registers a histogram with the upper bounds `bounds` (name it with its unit: `_seconds`).
    pub fn histogram(&mut self, name: &str, help: &str, bounds: &'static [f64]) -> Histogram {
        let h = Histogram::new(bounds);
        self.registry.register(name, help, h.clone());
        h
    }

    /// The index of the route that `path` (with or without its query) falls under, for
    /// [`Metrics::observe_request`].
    pub fn route_of(&self, path: &str) -> usize {
        match_route(&self.routes, path).unwrap_or(self.routes.len() - 1)
    }

    /// The route pattern with this index.
    pub fn route_name(&self, route: usize) -> &'static str {
        self.routes[route]
    }

    /// Counts a request of route `route` ([`Metrics::route_of`]) answered with `status` after `took`.
    pub fn observe_request(&self, route: usize, status: u16, took: Duration) {
        let route_name = self.routes[route];
        self.durations.0[route].1.observe_duration(took);
        self.requests
            .get_or_create(&RequestLabels {
                route: route_name,
                status,
            })
            .inc();
    }

    /// Requests of `route` answered with `status` so far (for tests).
    pub fn requests(&self, route: &str, status: u16) -> u64 {
        let Some(route) = self.routes.iter().find(|r| **r == route) else {
            return 0;
        };
        let labels = RequestLabels { route, status };
        self.requests.get(&labels).map_or(0, |c| c.get())
    }

    /// The counters of calls to the named peers, each at its base URL (`("catalog",
    /// "http://127.0.0.1:8081")`), for [`crate::http::Peer::counted`]. A call to a URL under none
    /// of them counts as peer `other`.
    pub fn peer_calls(&self, peers: &[(String, String)]) -> PeerCalls {
        let counters = |peer: &str| {
            outcome::ALL.map(|outcome| {
                self.peer_calls.get_or_create_owned(&PeerLabels {
                    peer: peer.to_string(),
                    outcome,
                })
            })
        };
        let mut list: Vec<(String, [Counter; 4])> = peers
            .iter()
            .map(|(name, url)| (url.trim_end_matches('/').to_string(), counters(name)))
            .collect();
        // The longest base first, so that a base that is a prefix of another one's never wins.
        list.sort_by_key(|(url, _)| std::cmp::Reverse(url.len()));
        PeerCalls {
            peers: list.into(),
            other: counters(OTHER_ROUTE).into(),
        }
    }

    /// The exposition of every metric, in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Counters of calls to a service's peers, found by the URL called.
#[derive(Clone, Debug)]
pub struct PeerCalls {
    peers: Arc<[(String, [Counter; 4])]>,
    other: Arc<[Counter; 4]>,
}

impl PeerCalls {
    /// Counts a call to `url` that ended with `result`.
    pub fn count<T>(&self, url: &str, result: &crate::Result<T>) {
        use crate::Error;
        let i = match result {
            Ok(_) => 0,
            Err(Error::Unreachable(_)) => 2,
            Err(Error::Transport(_)) => 3,
            Err(_) => 1,
        };
        let under = |base: &str| {
            url.strip_prefix(base)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        };
        let counters = self
            .peers
            .iter()
            .find(|(base, _)| under(base))
            .map_or(&*self.other, |(_, c)| c);
        counters[i].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// The exposition parsed by a real parser of the text format.
    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    fn value(
        scrape: &prometheus_parse::Scrape,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<f64> {
        scrape.samples.iter().find_map(|s| {
            let matches =
                s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
            match (&s.value, matches) {
                (prometheus_parse::Value::Counter(v), true)
                | (prometheus_parse::Value::Gauge(v), true)
                | (prometheus_parse::Value::Untyped(v), true) => Some(*v),
                _ => None,
            }
        })
    }

    #[test]
    fn routes_match_by_pattern_and_everything_else_is_other() {
        let m = Metrics::new(
            "catalog",
            &["/products/:name", "/products", "/internal/take"],
        );
        let route = |p: &str| m.route_name(m.route_of(p));
        assert_eq!(route("/products/Tux"), "/products/:name");
        assert_eq!(route("/products/Big%20Tux?x=1"), "/products/:name");
        assert_eq!(route("/products"), "/products");
        assert_eq!(route("/products/"), "/products");
        assert_eq!(route("/internal/take"), "/internal/take");
        assert_eq!(route("/metrics"), METRICS_PATH);
        for odd in [
            "/",
            "",
            "/products/Tux/more",
            "/x",
            "/internal",
            "/internal/take/1",
        ] {
            assert_eq!(route(odd), OTHER_ROUTE, "{odd}");
        }
    }

    #[test]
    fn a_flood_of_odd_paths_adds_one_label_set() {
        let m = Metrics::new("catalog", &["/products/:name"]);
        for i in 0..1000 {
            let route = m.route_of(&format!("/nope/{i}"));
            m.observe_request(route, 404, Duration::from_micros(50));
        }
        assert_eq!(m.requests(OTHER_ROUTE, 404), 1000);
        let text = m.encode();
        let lines = text
            .lines()
            .filter(|l| l.starts_with("toystore_requests_total"))
            .count();
        assert_eq!(lines, 1, "{text}");
    }

    #[test]
    fn histograms_count_each_observation_in_its_bucket() {
        let h = Histogram::new(&[0.001, 0.01, 0.1]);
        for v in [0.0005, 0.001, 0.002, 0.05, 3.0] {
            h.observe(v);
        }
        assert_eq!(h.count(), 5);
        assert!((h.sum() - 3.0535).abs() < 1e-9);
        let mut m = Metrics::new("test", &[]);
        m.registry().register("t_seconds", "a test", h);
        let scrape = parse(&m.encode());
        let t = scrape
            .samples
            .iter()
            .find(|s| s.metric == "t_seconds")
            .expect("the histogram");
        let prometheus_parse::Value::Histogram(buckets) = &t.value else {
            panic!("{t:?}");
        };
        let cumulative: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
        assert_eq!(
            cumulative,
            vec![(0.001, 2.0), (0.01, 3.0), (0.1, 4.0), (f64::INFINITY, 5.0)]
        );
        assert_eq!(value(&scrape, "t_seconds_count", &[]), Some(5.0));
    }

    #[test]
    fn the_exposition_has_every_common_metric_and_parses() {
        let mut m = Metrics::new("order-2", &["/orders"]);
        let takes = m.counter("toystore_takes_total", "takes");
        takes.inc_by(3);
        let route = m.route_of("/orders");
        m.observe_request(route, 200, Duration::from_millis(2));
        m.observe_request(route, 200, Duration::from_millis(3));
        m.observe_request(route, 503, Duration::from_millis(1));
        let calls = m.peer_calls(&[
            ("catalog".into(), "http://127.0.0.1:8081".into()),
            ("order-1".into(), "http://127.0.0.1:8091/".into()),
            ("order-10".into(), "http://127.0.0.1:80910".into()),
        ]);
        calls.count::<()>("http://127.0.0.1:8081/internal/take", &Ok(()));
        calls.count::<()>(
            "http://127.0.0.1:8091/internal/msg",
            &Err(Error::Unreachable("refused".into())),
        );
        calls.count::<()>(
            "http://127.0.0.1:80910/internal/msg",
            &Err(Error::Transport("reset".into())),
        );
        calls.count::<()>(
            "http://127.0.0.1:8081/internal/take",
            &Err(Error::Conflict("no stock".into())),
        );
        calls.count::<()>("http://10.0.0.9:1/x", &Ok(()));
        let text = m.encode();
        let scrape = parse(&text);
        let v = |name: &str, labels: &[(&str, &str)]| value(&scrape, name, labels);
        assert_eq!(v("toystore_up", &[]), Some(1.0), "{text}");
        assert_eq!(
            v("toystore_build_info", &[("service", "order-2")]),
            Some(1.0),
            "{text}"
        );
        assert_eq!(v("toystore_takes_total", &[]), Some(3.0));
        let req = |status| {
            v(
                "toystore_requests_total",
                &[("route", "/orders"), ("status", status)],
            )
        };
        assert_eq!((req("200"), req("503")), (Some(2.0), Some(1.0)));
        assert_eq!(
            v(
                "toystore_request_duration_seconds_count",
                &[("route", "/orders")]
            ),
            Some(3.0)
        );
        assert_eq!(
            v(
                "toystore_request_duration_seconds_count",
                &[("route", OTHER_ROUTE)]
            ),
            Some(0.0)
        );
        let call = |peer, outcome| {
            v(
                "toystore_peer_calls_total",
                &[("peer", peer), ("outcome", outcome)],
            )
        };
        assert_eq!(call("catalog", "ok"), Some(1.0));
        assert_eq!(call("catalog", "error"), Some(1.0));
        assert_eq!(call("order-1", "unreachable"), Some(1.0));
        assert_eq!(call("order-10", "lost"), Some(1.0));
        assert_eq!(call("order-1", "lost"), Some(0.0));
        assert_eq!(call(OTHER_ROUTE, "ok"), Some(1.0));
        // Every sample of a counter is typed as one: the TYPE lines name the samples.
        assert!(
            text.contains("# TYPE toystore_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE toystore_request_duration_seconds histogram"),
            "{text}"
        );
    }
}
