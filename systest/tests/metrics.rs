//! `/metrics` of every service, on the real store: counters that move by exactly what was done,
//! histograms whose counts match them, a killed leader seen as a leader change in a new epoch, the
//! secret (or `--metrics-open`), and the `status` tool reading it all. The exposition is read by a
//! real parser of the text format (`prometheus-parse`).

use prometheus_parse::{Scrape, Value};
use shared::protocol::SECRET_HEADER;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use systest::Cluster;

/// How a scrape carries the secret.
#[derive(Clone, Copy, Debug)]
enum Auth<'a> {
    None,
    Header(&'a str),
    Bearer(&'a str),
}

/// GET `{base}/metrics`: status, content type, body; panics when the service does not answer.
fn get_metrics(base: &str, auth: Auth) -> (u16, String, String) {
    try_get_metrics(base, auth).unwrap_or_else(|e| panic!("{e}"))
}

/// GET `{base}/metrics`: status, content type, body, or why there is no answer.
fn try_get_metrics(base: &str, auth: Auth) -> Result<(u16, String, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into();
    let mut rq = agent.get(format!("{base}/metrics"));
    match auth {
        Auth::None => {}
        Auth::Header(s) => rq = rq.header(SECRET_HEADER, s),
        Auth::Bearer(s) => rq = rq.header("Authorization", format!("Bearer {s}")),
    }
    let mut r = rq.call().map_err(|e| format!("{base}/metrics: {e}"))?;
    let content_type = r
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((r.status().as_u16(), content_type, body))
}

/// A parsed scrape.
struct Metrics(Scrape);

impl Metrics {
    /// The sum of every counter, gauge or untyped sample called `name` with `labels` among its
    /// labels (0 when there is none).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// Checks every histogram: cumulative buckets that never fall, ending at `+Inf` with `_count`.
    fn check_histograms(&self) {
        let mut seen = 0;
        for s in &self.0.samples {
            let Value::Histogram(buckets) = &s.value else {
                continue;
            };
            seen += 1;
            assert!(
                buckets
                    .windows(2)
                    .all(|w| w[0].count <= w[1].count && w[0].less_than < w[1].less_than),
                "{} {:?}: {buckets:?}",
                s.metric,
                s.labels
            );
            let last = buckets.last().expect("a bucket");
            assert_eq!(last.less_than, f64::INFINITY, "{}", s.metric);
            let labels: Vec<(&str, &str)> = s
                .labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(
                last.count,
                self.get(&format!("{}_count", s.metric), &labels),
                "{} {:?}: +Inf and _count",
                s.metric,
                s.labels
            );
        }
        assert!(seen > 0, "no histogram in the scrape");
    }
}

/// Scrapes `base` with the secret and checks the answer's shape.
fn scrape(c: &Cluster, base: &str) -> Metrics {
    check(c, base, get_metrics(base, Auth::Bearer(c.secret())))
}

/// Checks a scrape's answer and parses it.
fn check(c: &Cluster, base: &str, (status, content_type, body): (u16, String, String)) -> Metrics {
    assert_eq!(status, 200, "{base}: {body}\n{}", c.logs());
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses");
    let m = Metrics(parsed);
    m.check_histograms();
    assert_eq!(m.get("toystore_up", &[]), 1.0, "{base}");
    m
}

/// Waits (up to `timeout`) until `ok` holds of a scrape of `base`, and returns that scrape.
fn scrape_until(
    c: &Cluster,
    base: &str,
    timeout: Duration,
    ok: impl Fn(&Metrics) -> bool,
) -> Metrics {
    let deadline = Instant::now() + timeout;
    loop {
        // A service just started may not listen yet.
        if let Ok(answer) = try_get_metrics(base, Auth::Bearer(c.secret())) {
            let m = check(c, base, answer);
            if ok(&m) {
                return m;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{base}: not as expected in {timeout:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

const REPLICAS: [u32; 3] = [1, 2, 3];

#[test]
fn counters_and_histograms_move_by_exactly_the_purchases_made() {
    let mut c = Cluster::new(22400);
    c.start_all(60.0);
    let leader = c.leader().expect("a leader");
    let fe = c.frontend_internal_url();
    let cat = c.catalog_url();
    // The catalog's first push drops every toy from the cache: wait for it, so that it does not
    // land in the middle of what is counted.
    let toys = c.stock().len() as f64;
    scrape_until(&c, &cat, Duration::from_secs(10), |m| {
        m.get("toystore_invalidations_sent_total", &[("outcome", "ok")]) >= toys
    });
    let fe0 = scrape(&c, &fe);
    let cat0 = scrape(&c, &cat);
    let rep0: BTreeMap<u32, Metrics> = REPLICAS
        .iter()
        .map(|&id| (id, scrape(&c, &c.order_url(id))))
        .collect();

    const N: f64 = 7.0;
    for _ in 0..N as usize {
        assert_eq!(c.buy("Tux", 1).status, 200);
    }
    // Fox is bought by nobody: one miss, then two hits.
    for _ in 0..3 {
        assert_eq!(c.query("Fox").status, 200);
    }
    let leader_len = rep0[&leader].get("toystore_replica_log_length", &[]) + N;
    let rep1: BTreeMap<u32, Metrics> = REPLICAS
        .iter()
        .map(|&id| {
            let m = scrape_until(&c, &c.order_url(id), Duration::from_secs(10), |m| {
                m.get("toystore_replica_log_length", &[]) == leader_len
                    && m.get("toystore_replica_commit", &[]) == leader_len
            });
            (id, m)
        })
        .collect();
    let fe1 = scrape(&c, &fe);
    let cat1 = scrape(&c, &cat);
    let d = |before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]| {
        after.get(name, labels) - before.get(name, labels)
    };

    // The front-end.
    let orders = [("route", "/orders")];
    let products = [("route", "/products/:name")];
    let fd = |name: &str, labels: &[(&str, &str)]| d(&fe0, &fe1, name, labels);
    assert_eq!(
        fd(
            "toystore_requests_total",
            &[("route", "/orders"), ("status", "200")]
        ),
        N
    );
    assert_eq!(
        fd("toystore_requests_total", &orders),
        N,
        "no purchase answered otherwise"
    );
    assert_eq!(fd("toystore_request_duration_seconds_count", &orders), N);
    assert_eq!(
        fd(
            "toystore_requests_total",
            &[("route", "/products/:name"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        fd("toystore_request_duration_seconds_count", &products),
        3.0
    );
    assert_eq!(fd("toystore_cache_misses_total", &[]), 1.0);
    assert_eq!(fd("toystore_cache_hits_total", &[]), 2.0);
    assert_eq!(
        fd(
            "toystore_cache_invalidations_total",
            &[("source", "purchase")]
        ),
        N
    );
    assert_eq!(
        fe1.get("toystore_cache_entries", &[]),
        1.0,
        "Fox; Tux was dropped by its purchases"
    );
    assert_eq!(fd("toystore_purchase_retries_total", &[]), 0.0);
    assert_eq!(fd("toystore_leader_changes_total", &[]), 0.0);
    assert_eq!(fe1.get("toystore_leader_id", &[]), f64::from(leader));
    let calls_to_leader = fd(
        "toystore_peer_calls_total",
        &[("peer", &format!("order-{leader}")), ("outcome", "ok")],
    );
    assert!(
        calls_to_leader >= N,
        "{calls_to_leader}: the purchases, and the monitor's pings"
    );
    assert_eq!(
        fd(
            "toystore_peer_calls_total",
            &[("peer", "catalog"), ("outcome", "ok")]
        ),
        1.0,
        "Fox's miss"
    );
    assert_eq!(
        fe1.get("toystore_build_info", &[("service", "frontend")]),
        1.0
    );

    // The replicas: the leader answered the purchases, everyone wrote them, each sync counted once
    // in both histograms, and the batches add up to the orders.
    let epoch = fe1.get("toystore_leader_epoch", &[]);
    for id in REPLICAS {
        let (r0, r1) = (&rep0[&id], &rep1[&id]);
        let rd = |name: &str, labels: &[(&str, &str)]| d(r0, r1, name, labels);
        let role = if id == leader { 2.0 } else { 0.0 };
        assert_eq!(r1.get("toystore_replica_role", &[]), role, "replica {id}");
        assert_eq!(r1.get("toystore_replica_epoch", &[]), epoch, "replica {id}");
        assert_eq!(
            r1.get("toystore_replica_leader", &[]),
            f64::from(leader),
            "replica {id}"
        );
        assert_eq!(rd("toystore_replica_log_length", &[]), N, "replica {id}");
        assert_eq!(rd("toystore_replica_commit", &[]), N, "replica {id}");
        assert_eq!(
            rd("toystore_replica_batch_size_sum", &[]),
            N,
            "replica {id}"
        );
        let syncs = rd("toystore_replica_fsync_seconds_count", &[]);
        assert_eq!(
            rd("toystore_replica_batch_size_count", &[]),
            syncs,
            "replica {id}"
        );
        assert!((1.0..=N).contains(&syncs), "replica {id}: {syncs} syncs");
        let answered = if id == leader { N } else { 0.0 };
        assert_eq!(
            rd(
                "toystore_requests_total",
                &[("route", "/orders"), ("status", "200")]
            ),
            answered
        );
        assert_eq!(
            rd("toystore_request_duration_seconds_count", &orders),
            answered,
            "replica {id}"
        );
        assert_eq!(rd("toystore_rolled_forward_total", &[]), 0.0);
        assert_eq!(
            r1.get(
                "toystore_build_info",
                &[("service", &format!("order-{id}"))]
            ),
            1.0
        );
    }
    let leader_calls = d(
        &rep0[&leader],
        &rep1[&leader],
        "toystore_peer_calls_total",
        &[("peer", "catalog"), ("outcome", "ok")],
    );
    assert!(
        leader_calls >= N,
        "{leader_calls}: the takes, and the pings"
    );

    // The catalog: N takes of Tux, its stock as the catalog tells it, each take synced.
    let cd = |name: &str, labels: &[(&str, &str)]| d(&cat0, &cat1, name, labels);
    assert_eq!(cd("toystore_takes_total", &[]), N);
    assert_eq!(cd("toystore_stock", &[("product", "Tux")]), -N);
    assert_eq!(cd("toystore_stock", &[("product", "Fox")]), 0.0);
    assert_eq!(
        cat1.get("toystore_stock", &[("product", "Tux")]),
        c.stock()["Tux"] as f64
    );
    assert_eq!(
        cd(
            "toystore_requests_total",
            &[("route", "/internal/take"), ("status", "200")]
        ),
        N
    );
    assert_eq!(
        cd(
            "toystore_request_duration_seconds_count",
            &[("route", "/internal/take")]
        ),
        N
    );
    let journal_syncs = cd("toystore_journal_fsync_seconds_count", &[]);
    assert!((1.0..=N).contains(&journal_syncs), "{journal_syncs}");
    assert_eq!(cd("toystore_restocks_total", &[]), 0.0);
    assert_eq!(
        cat1.get("toystore_build_info", &[("service", "catalog")]),
        1.0
    );
    // Every take is pushed to the front-end; pushes made while others were under way are merged.
    let pushed = scrape_until(&c, &cat, Duration::from_secs(5), |m| {
        m.get("toystore_invalidations_sent_total", &[("outcome", "ok")])
            > cat0.get("toystore_invalidations_sent_total", &[("outcome", "ok")])
    });
    let sent = d(
        &cat0,
        &pushed,
        "toystore_invalidations_sent_total",
        &[("outcome", "ok")],
    );
    assert!((1.0..=N).contains(&sent), "{sent}");
    c.wait_consistent(Duration::from_secs(10));
}

/// Runs the `status` tool against the cluster and returns its JSON.
fn status_json(c: &Cluster) -> serde_json::Value {
    let bin = systest::cluster::bin_dir_with(&["status"]).join("status");
    let replicas: Vec<String> = REPLICAS
        .iter()
        .map(|id| format!("{id}={}", c.order_url(*id)))
        .collect();
    let out = std::process::Command::new(bin)
        .args(["--catalog", &c.catalog_url()])
        .args(["--replicas", &replicas.join(",")])
        .args(["--frontend-internal", &c.frontend_internal_url()])
        .args(["--secret", c.secret(), "--json"])
        .env_remove("TOYSTORE_SECRET_FILE")
        .output()
        .expect("run status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn a_killed_leader_shows_as_a_leader_change_and_a_new_epoch() {
    let mut c = Cluster::new(22420);
    c.start_all(60.0);
    let fe = c.frontend_internal_url();
    let old = c.leader().expect("a leader");
    for _ in 0..5 {
        assert_eq!(c.buy("Lego", 1).status, 200);
    }
    let before = scrape(&c, &fe);
    let (epoch0, changes0) = (
        before.get("toystore_leader_epoch", &[]),
        before.get("toystore_leader_changes_total", &[]),
    );
    assert_eq!(before.get("toystore_leader_id", &[]), f64::from(old));

    c.kill(&format!("order-{old}"));
    let killed = Instant::now();
    let after = scrape_until(&c, &fe, Duration::from_secs(10), |m| {
        let id = m.get("toystore_leader_id", &[]);
        id != 0.0 && id != f64::from(old)
    });
    eprintln!(
        "the front-end's metrics showed a new leader {:?} after the kill",
        killed.elapsed()
    );
    let new = after.get("toystore_leader_id", &[]) as u32;
    let epoch = after.get("toystore_leader_epoch", &[]);
    assert!(epoch > epoch0, "epoch {epoch0} -> {epoch}");
    assert!(after.get("toystore_leader_changes_total", &[]) > changes0);
    let leader_metrics = scrape_until(&c, &c.order_url(new), Duration::from_secs(10), |m| {
        m.get("toystore_replica_role", &[]) == 2.0
    });
    assert_eq!(leader_metrics.get("toystore_replica_epoch", &[]), epoch);

    // Purchases go on while the old leader is away; once back it copies what it missed.
    const MISSED: usize = 20;
    for _ in 0..MISSED {
        assert_eq!(c.buy("Lego", 1).status, 200);
    }
    c.start_order(old);
    let len = 5.0 + MISSED as f64;
    let back = scrape_until(&c, &c.order_url(old), Duration::from_secs(15), |m| {
        m.get("toystore_replica_role", &[]) == 0.0
            && m.get("toystore_replica_log_length", &[]) == len
    });
    assert_eq!(
        back.get("toystore_replica_resynced_orders_total", &[]),
        MISSED as f64
    );
    assert_eq!(back.get("toystore_replica_epoch", &[]), epoch);

    // The status tool sees the same: the new leader, every replica caught up, nobody down.
    let s = status_json(&c);
    assert_eq!(s["leader"], new, "{s:#}");
    assert_eq!(s["frontend"]["epoch"].as_f64(), Some(epoch), "{s:#}");
    assert_eq!(s["down"], serde_json::json!([]), "{s:#}");
    for r in s["replicas"].as_array().unwrap() {
        assert_eq!(r["lag"], 0, "{s:#}");
        assert_eq!(r["log_length"].as_f64(), Some(len), "{s:#}");
        let role = if r["id"] == new { "leader" } else { "follower" };
        assert_eq!(r["role"], role, "{s:#}");
    }
    assert_eq!(s["catalog"]["stock"]["Lego"], c.stock()["Lego"], "{s:#}");

    // A replica that does not answer is shown as down, with why.
    c.kill(&format!("order-{old}"));
    let s = status_json(&c);
    let down = format!("order-{old}: connection refused");
    assert_eq!(s["down"], serde_json::json!([down]), "{s:#}");
    let r = &s["replicas"][old as usize - 1];
    assert_eq!(r["down"], "connection refused", "{s:#}");
    assert!(r["lag"].is_null(), "{s:#}");
}

#[test]
fn metrics_need_the_secret_unless_open_and_never_show_on_the_public_port() {
    // The catalog alone runs with --metrics-open.
    let mut options = Cluster::options(22440);
    options
        .extra_args
        .insert("catalog", vec!["--metrics-open".into()]);
    let mut c = Cluster::with_options(options);
    c.start_all(60.0);
    let secret = c.secret().to_string();
    let internal = [
        c.frontend_internal_url(),
        c.order_url(1),
        c.order_url(2),
        c.order_url(3),
    ];
    for base in &internal {
        for refused in [Auth::None, Auth::Header("wrong"), Auth::Bearer("wrong")] {
            let (status, _, body) = get_metrics(base, refused);
            assert_eq!(status, 403, "{base} {refused:?}: {body}");
            let error: serde_json::Value = serde_json::from_str(&body).expect("a JSON error");
            assert_eq!(error["error"]["code"], 403, "{body}");
        }
        for allowed in [Auth::Header(&secret), Auth::Bearer(&secret)] {
            let (status, _, body) = get_metrics(base, allowed);
            assert_eq!(status, 200, "{base} {allowed:?}: {body}");
        }
    }
    // Open on the catalog: no secret needed for /metrics, but still for every other internal route.
    let (status, _, body) = get_metrics(&c.catalog_url(), Auth::None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("toystore_stock{"), "{body}");
    let take = serde_json::json!({"request_id": "r1", "name": "Tux", "quantity": 1, "epoch": 99});
    let a = c
        .store()
        .post(&format!("{}/internal/take", c.catalog_url()), &take, false);
    assert_eq!(a.status, 403, "{a:?}");
    // The public port has no /metrics, with or without the secret.
    for auth in [Auth::None, Auth::Bearer(&secret), Auth::Header(&secret)] {
        let (status, _, body) = get_metrics(&c.frontend_url(), auth);
        assert_eq!(status, 404, "{auth:?}: {body}");
        assert!(!body.contains("toystore_"), "{body}");
    }
}
