//! The toy store at a glance, from the `/metrics` of every service.
//!
//! [`gather`] reads, all at once, the exposition of the catalog, of each order replica and of the
//! front-end's internal address (with the shared secret as `Authorization: Bearer`), parses it with
//! `prometheus-parse`, and makes one [`Snapshot`]: each replica's role, epoch, log length, commit
//! point and lag behind the leader; the front-end's leader, cache and retries; the catalog's stock;
//! and which services do not answer. [`render`] draws it as text, with rates when it is given the
//! snapshot before (what `--watch` does every second); the `status` binary prints it, or its JSON.
//!
//! A service that does not answer within `--timeout` (killed, paused, or on a cut link) is shown as
//! down with the reason, and never holds up the others: every service is asked in its own thread.

use clap::Parser;
use serde::Serialize;
use shared::config::{self, ReplicaList};
use shared::protocol::ReplicaId;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The flags. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "status",
    version,
    about = "The toy store at a glance: every replica's role, epoch, log and lag, the front-end's \
             leader and cache, the catalog's stock, and who does not answer; from each service's \
             /metrics"
)]
pub struct Config {
    /// The catalog's URL.
    #[arg(long, env = "TOYSTORE_CATALOG", default_value = config::DEFAULT_CATALOG_URL)]
    pub catalog: String,
    /// Every order replica: ID=URL,...
    #[arg(long, env = "TOYSTORE_REPLICAS", default_value = config::DEFAULT_REPLICAS)]
    pub replicas: ReplicaList,
    /// The front-end's internal URL (where its /metrics is).
    #[arg(
        long,
        env = "TOYSTORE_FRONTEND_INTERNAL",
        default_value = config::DEFAULT_FRONTEND_INTERNAL_URL
    )]
    pub frontend_internal: String,
    /// The shared secret (default: the content of --secret-file).
    #[arg(long, env = "TOYSTORE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// Where the secret is when --secret is not given (what `make run` writes); none there: ask
    /// without a secret (a store run with --metrics-open).
    #[arg(long, env = "TOYSTORE_SECRET_FILE", default_value = "data/.secret")]
    pub secret_file: PathBuf,
    /// Print the snapshot as JSON.
    #[arg(long, env = "TOYSTORE_JSON")]
    pub json: bool,
    /// Redraw every --interval seconds until Ctrl-C (clears the terminal each time).
    #[arg(long, env = "TOYSTORE_WATCH")]
    pub watch: bool,
    /// Seconds between two frames of --watch.
    #[arg(long, env = "TOYSTORE_INTERVAL", default_value_t = 1.0)]
    pub interval: f64,
    /// Milliseconds a service has to answer before it is shown as down.
    #[arg(long, env = "TOYSTORE_TIMEOUT", default_value_t = 500)]
    pub timeout: u64,
}

impl Config {
    /// The secret: `--secret`, else the trimmed content of `--secret-file` if it exists.
    pub fn secret(&self) -> Result<Option<String>, String> {
        if let Some(s) = &self.secret {
            return Ok(Some(s.clone()));
        }
        match std::fs::read_to_string(&self.secret_file) {
            Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", self.secret_file.display())),
        }
    }
}

/// An exposition, parsed.
#[derive(Debug, Clone)]
pub struct Exposition {
    samples: Vec<prometheus_parse::Sample>,
}

impl Exposition {
    /// Parses the Prometheus text format.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let lines = text.lines().map(|l| Ok(l.to_string()));
        prometheus_parse::Scrape::parse(lines)
            .map(|s| Exposition { samples: s.samples })
            .map_err(|e| format!("unreadable exposition: {e}"))
    }

    /// The values of the counters, gauges and untyped samples called `name` whose labels include
    /// `labels`.
    fn scalars<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = (&'a prometheus_parse::Sample, f64)> + 'a {
        self.samples.iter().filter_map(move |s| {
            let matches =
                s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
            match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v)
                    if matches =>
                {
                    Some((s, *v))
                }
                _ => None,
            }
        })
    }

    /// The value of the first sample called `name` with `labels` among its labels.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.scalars(name, labels).map(|(_, v)| v).next()
    }

    /// The sum of every sample called `name` with `labels` among its labels (0 when none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.scalars(name, labels).map(|(_, v)| v).sum()
    }

    /// Every sample called `name`, by the value of its label `label`.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        self.scalars(name, &[])
            .filter_map(|(s, v)| s.labels.get(label).map(|l| (l.to_string(), v)))
            .collect()
    }

    /// The histogram called `name` with `labels`: its buckets (upper bound, cumulative count).
    pub fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Option<Vec<(f64, f64)>> {
        self.samples.iter().find_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(buckets)
                if s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)) =>
            {
                Some(buckets.iter().map(|b| (b.less_than, b.count)).collect())
            }
            _ => None,
        })
    }
}

/// The name of a `toystore_replica_role` value.
pub fn role_name(value: f64) -> &'static str {
    match value as i64 {
        0 => "follower",
        1 => "candidate",
        2 => "leader",
        3 => "recovering",
        _ => "unknown",
    }
}

/// One order replica as its metrics show it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ReplicaView {
    /// Its id.
    pub id: ReplicaId,
    /// Its URL.
    pub url: String,
    /// Why it is shown as down; None while it answers.
    pub down: Option<String>,
    /// `follower`, `candidate`, `leader` or `recovering`.
    pub role: Option<String>,
    /// The epoch of the leader choice it promised to follow.
    pub epoch: Option<u64>,
    /// The leader of that choice.
    pub follows: Option<ReplicaId>,
    /// Orders in its log.
    pub log_length: Option<u64>,
    /// Orders it knows committed.
    pub commit: Option<u64>,
    /// Orders the leader's log has beyond its own (0 for the leader; None when no leader answers).
    pub lag: Option<u64>,
    /// Orders it copied from a peer since it started.
    pub resynced: Option<u64>,
    /// Requests it answered since it started.
    pub requests: Option<u64>,
}

/// The front-end as its metrics show it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct FrontendView {
    /// Its internal URL.
    pub url: String,
    /// Why it is shown as down; None while it answers.
    pub down: Option<String>,
    /// The replica purchases go to (None: none chosen).
    pub leader: Option<ReplicaId>,
    /// The epoch of that choice.
    pub epoch: Option<u64>,
    /// Leader choices since it started.
    pub leader_changes: Option<u64>,
    /// Products cached.
    pub cache_entries: Option<u64>,
    /// Queries answered from the cache since it started.
    pub cache_hits: Option<u64>,
    /// Queries that asked the catalog since it started.
    pub cache_misses: Option<u64>,
    /// hits / (hits + misses) since it started (None before the first query).
    pub hit_rate: Option<f64>,
    /// Purchase attempts after the first since it started.
    pub purchase_retries: Option<u64>,
    /// Purchases answered since it started.
    pub purchases: Option<u64>,
    /// Product queries answered since it started.
    pub queries: Option<u64>,
}

/// The catalog as its metrics show it.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct CatalogView {
    /// Its URL.
    pub url: String,
    /// Why it is shown as down; None while it answers.
    pub down: Option<String>,
    /// Each toy's stock.
    pub stock: BTreeMap<String, u64>,
    /// Takes of stock since it started.
    pub takes: Option<u64>,
    /// Toys restocked since it started.
    pub restocks: Option<u64>,
}

/// The whole store at one moment.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When it was taken (ms since the Unix epoch).
    pub unix_ms: u64,
    /// The leader: the front-end's choice, or, while the front-end does not answer, the replica
    /// that says it leads the newest epoch.
    pub leader: Option<ReplicaId>,
    /// Every replica, by id.
    pub replicas: Vec<ReplicaView>,
    /// The front-end.
    pub frontend: FrontendView,
    /// The catalog.
    pub catalog: CatalogView,
    /// The services that do not answer, each with why (`order-2: connection refused`).
    pub down: Vec<String>,
}

/// Reads `{base}/metrics` with the secret as a bearer token.
pub fn scrape(agent: &ureq::Agent, base: &str, secret: Option<&str>) -> Result<Exposition, String> {
    let mut rq = agent.get(format!("{}/metrics", base.trim_end_matches('/')));
    if let Some(s) = secret {
        rq = rq.header("Authorization", format!("Bearer {s}"));
    }
    let mut response = rq.call().map_err(|e| why_down(&e))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 << 20)
        .read_to_string()
        .map_err(|e| why_down(&e))?;
    match status {
        200 => Exposition::parse(&text),
        403 => Err("403: missing or wrong secret (--secret, or data/.secret)".into()),
        s => Err(format!("answered {s} to /metrics")),
    }
}

/// A short reason for a failed call.
fn why_down(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused".into()
        }
        ureq::Error::Timeout(_) => "no answer in time".into(),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => {
            "no answer in time".into()
        }
        e => e.to_string(),
    }
}

fn whole(v: Option<f64>) -> Option<u64> {
    v.filter(|v| v.is_finite() && *v >= 0.0).map(|v| v as u64)
}

/// Reads every service at once and makes the snapshot.
pub fn gather(config: &Config, secret: Option<&str>) -> Snapshot {
    let timeout = Duration::from_millis(config.timeout.max(1));
    let agent_config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_global(Some(timeout))
        .proxy(None)
        .build();
    let agent = shared::http::agent_with_literal_resolver(agent_config);
    let (catalog, frontend, replicas) = std::thread::scope(|s| {
        let get = |url: &str| {
            let (agent, url) = (agent.clone(), url.to_string());
            s.spawn(move || scrape(&agent, &url, secret))
        };
        let catalog = get(&config.catalog);
        let frontend = get(&config.frontend_internal);
        let replicas: Vec<_> = config
            .replicas
            .0
            .iter()
            .map(|(id, url)| (*id, url.clone(), get(url)))
            .collect();
        let join = |h: std::thread::ScopedJoinHandle<'_, Result<Exposition, String>>| {
            h.join()
                .unwrap_or_else(|_| Err("the scrape panicked".into()))
        };
        (
            join(catalog),
            join(frontend),
            replicas
                .into_iter()
                .map(|(id, url, h)| (id, url, join(h)))
                .collect::<Vec<_>>(),
        )
    });
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    build(
        unix_ms,
        (&config.catalog, catalog),
        (&config.frontend_internal, frontend),
        replicas,
    )
}

/// The snapshot from what each service's scrape gave.
pub fn build(
    unix_ms: u64,
    catalog: (&str, Result<Exposition, String>),
    frontend: (&str, Result<Exposition, String>),
    replicas: Vec<(ReplicaId, String, Result<Exposition, String>)>,
) -> Snapshot {
    let mut down = Vec::new();
    let mut replica_views: Vec<ReplicaView> = replicas
        .into_iter()
        .map(|(id, url, scraped)| match scraped {
            Ok(e) => ReplicaView {
                id,
                url,
                down: None,
                role: e
                    .value("toystore_replica_role", &[])
                    .map(|v| role_name(v).to_string()),
                epoch: whole(e.value("toystore_replica_epoch", &[])),
                follows: whole(e.value("toystore_replica_leader", &[]))
                    .filter(|l| *l > 0)
                    .map(|l| l as ReplicaId),
                log_length: whole(e.value("toystore_replica_log_length", &[])),
                commit: whole(e.value("toystore_replica_commit", &[])),
                lag: None,
                resynced: whole(e.value("toystore_replica_resynced_orders_total", &[])),
                requests: whole(Some(e.sum("toystore_requests_total", &[]))),
            },
            Err(why) => {
                down.push(format!("order-{id}: {why}"));
                ReplicaView {
                    id,
                    url,
                    down: Some(why),
                    role: None,
                    epoch: None,
                    follows: None,
                    log_length: None,
                    commit: None,
                    lag: None,
                    resynced: None,
                    requests: None,
                }
            }
        })
        .collect();

    let frontend_view = match frontend.1 {
        Ok(e) => {
            let hits = whole(e.value("toystore_cache_hits_total", &[]));
            let misses = whole(e.value("toystore_cache_misses_total", &[]));
            let hit_rate = match (hits, misses) {
                (Some(h), Some(m)) if h + m > 0 => Some(h as f64 / (h + m) as f64),
                _ => None,
            };
            FrontendView {
                url: frontend.0.to_string(),
                down: None,
                leader: whole(e.value("toystore_leader_id", &[]))
                    .filter(|l| *l > 0)
                    .map(|l| l as ReplicaId),
                epoch: whole(e.value("toystore_leader_epoch", &[])),
                leader_changes: whole(e.value("toystore_leader_changes_total", &[])),
                cache_entries: whole(e.value("toystore_cache_entries", &[])),
                cache_hits: hits,
                cache_misses: misses,
                hit_rate,
                purchase_retries: whole(Some(e.sum("toystore_purchase_retries_total", &[]))),
                purchases: whole(Some(
                    e.sum("toystore_requests_total", &[("route", "/orders")]),
                )),
                queries: whole(Some(
                    e.sum("toystore_requests_total", &[("route", "/products/:name")]),
                )),
            }
        }
        Err(why) => {
            down.push(format!("frontend: {why}"));
            FrontendView {
                url: frontend.0.to_string(),
                down: Some(why),
                leader: None,
                epoch: None,
                leader_changes: None,
                cache_entries: None,
                cache_hits: None,
                cache_misses: None,
                hit_rate: None,
                purchase_retries: None,
                purchases: None,
                queries: None,
            }
        }
    };

    let catalog_view = match catalog.1 {
        Ok(e) => CatalogView {
            url: catalog.0.to_string(),
            down: None,
            stock: e
                .by_label("toystore_stock", "product")
                .into_iter()
                .filter_map(|(name, v)| whole(Some(v)).map(|v| (name, v)))
                .collect(),
            takes: whole(e.value("toystore_takes_total", &[])),
            restocks: whole(e.value("toystore_restocks_total", &[])),
        },
        Err(why) => {
            down.push(format!("catalog: {why}"));
            CatalogView {
                url: catalog.0.to_string(),
                down: Some(why),
                stock: BTreeMap::new(),
                takes: None,
                restocks: None,
            }
        }
    };
    // Services in a fixed order: catalog, replicas, front-end.
    down.sort_by_key(|d| match d.split(':').next() {
        Some("catalog") => 0,
        Some("frontend") => 2,
        _ => 1,
    });

    let leader = frontend_view.leader.or_else(|| {
        replica_views
            .iter()
            .filter(|r| r.role.as_deref() == Some("leader"))
            .max_by_key(|r| r.epoch)
            .map(|r| r.id)
    });
    let leader_len = leader.and_then(|l| {
        replica_views
            .iter()
            .find(|r| r.id == l)
            .and_then(|r| r.log_length)
    });
    for r in &mut replica_views {
        r.lag = match (leader_len, r.log_length) {
            (Some(l), Some(mine)) => Some(l.saturating_sub(mine)),
            _ => None,
        };
    }
    Snapshot {
        unix_ms,
        leader,
        replicas: replica_views,
        frontend: frontend_view,
        catalog: catalog_view,
        down,
    }
}

/// `now - before` per second, when both are known and the counter did not restart.
fn rate(now: Option<u64>, before: Option<u64>, elapsed: Duration) -> Option<f64> {
    let (now, before) = (now?, before?);
    (now >= before && elapsed > Duration::ZERO)
        .then(|| (now - before) as f64 / elapsed.as_secs_f64())
}

fn show<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".into(), |v| v.to_string())
}

/// `HH:MM:SS` of a time in ms since the Unix epoch, in UTC.
fn clock(unix_ms: u64) -> String {
    let s = unix_ms / 1000 % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The snapshot as text. With `since` (the snapshot before, and how long ago it was taken) it also
/// shows rates and the hit rate over that time; `every` is the redraw period of `--watch`.
pub fn render(
    s: &Snapshot,
    since: Option<(&Snapshot, Duration)>,
    every: Option<Duration>,
) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = write!(o, "toy store at {} UTC", clock(s.unix_ms));
    if let Some(every) = every {
        let _ = write!(
            o,
            "   (redrawn every {:.1} s; Ctrl-C stops)",
            every.as_secs_f64()
        );
    }
    let _ = writeln!(o, "\n");
    let _ = writeln!(
        o,
        "{:<8} {:<11} {:>6} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8}",
        "replica", "role", "epoch", "follows", "log", "commit", "lag", "resynced", "req/s"
    );
    for r in &s.replicas {
        if let Some(why) = &r.down {
            let _ = writeln!(o, "{:<8} {:<11} {}", r.id, "DOWN", why);
            continue;
        }
        let before =
            since.and_then(|(b, t)| b.replicas.iter().find(|x| x.id == r.id).map(|x| (x, t)));
        let req_rate = before.and_then(|(b, t)| rate(r.requests, b.requests, t));
        let mark = if s.leader == Some(r.id) { "*" } else { "" };
        let _ = writeln!(
            o,
            "{:<8} {:<11} {:>6} {:>8} {:>8} {:>8} {:>6} {:>9} {:>8}",
            format!("{}{mark}", r.id),
            show(r.role.as_deref()),
            show(r.epoch),
            show(r.follows),
            show(r.log_length),
            show(r.commit),
            show(r.lag),
            show(r.resynced),
            req_rate.map_or("-".into(), |v| format!("{v:.0}")),
        );
    }
    let _ = writeln!(
        o,
        "(* the leader; lag: orders the leader's log has beyond the replica's; req/s: every \
         request, heartbeats included)\n"
    );

    let f = &s.frontend;
    match &f.down {
        Some(why) => {
            let _ = writeln!(o, "front-end  DOWN: {why}");
        }
        None => {
            let changes = f.leader_changes.unwrap_or(0);
            let _ = writeln!(
                o,
                "front-end  leader {} (epoch {}, {} leader choice{} since it started)",
                f.leader.map_or("none".into(), |l| format!("replica {l}")),
                show(f.epoch),
                changes,
                if changes == 1 { "" } else { "s" }
            );
            let mut cache = format!(
                "           cache {} entries, hit rate {}",
                show(f.cache_entries),
                f.hit_rate
                    .map_or("-".into(), |h| format!("{:.1}%", 100.0 * h))
            );
            if let Some((b, t)) = since {
                let b = &b.frontend;
                let hits = rate(f.cache_hits, b.cache_hits, t);
                let misses = rate(f.cache_misses, b.cache_misses, t);
                if let (Some(h), Some(m)) = (hits, misses) {
                    if h + m > 0.0 {
                        let _ = write!(
                            cache,
                            " ({:.1}% over the last {:.0} s)",
                            100.0 * h / (h + m),
                            t.as_secs_f64()
                        );
                    }
                }
                let _ = write!(
                    cache,
                    "; {} purchases/s, {} queries/s",
                    rate(f.purchases, b.purchases, t).map_or("-".into(), |v| format!("{v:.0}")),
                    rate(f.queries, b.queries, t).map_or("-".into(), |v| format!("{v:.0}"))
                );
            }
            let _ = writeln!(o, "{cache}");
            let _ = writeln!(
                o,
                "           purchase retries {} (hits {}, misses {})",
                show(f.purchase_retries),
                show(f.cache_hits),
                show(f.cache_misses)
            );
        }
    }
    let _ = writeln!(o);
    let c = &s.catalog;
    match &c.down {
        Some(why) => {
            let _ = writeln!(o, "catalog    DOWN: {why}");
        }
        None => {
            let stock: Vec<String> = c.stock.iter().map(|(n, q)| format!("{n} {q}")).collect();
            let mut line = String::from("catalog  ");
            for item in stock {
                if line.len() + item.len() + 2 > 100 {
                    let _ = writeln!(o, "{line}");
                    line = String::from("         ");
                }
                line.push_str("  ");
                line.push_str(&item);
            }
            let _ = writeln!(o, "{line}");
            let _ = writeln!(
                o,
                "           takes {}, toys restocked {}",
                show(c.takes),
                show(c.restocks)
            );
        }
    }
    let _ = writeln!(o);
    if s.down.is_empty() {
        let _ = writeln!(o, "every service answers");
    } else {
        let _ = writeln!(o, "do not answer:");
        for d in &s.down {
            let _ = writeln!(o, "  {d}");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICA: &str = "\
# HELP toystore_replica_role The replica's role.
# TYPE toystore_replica_role gauge
toystore_replica_role ROLE
# TYPE toystore_replica_epoch gauge
toystore_replica_epoch 4
# TYPE toystore_replica_leader gauge
toystore_replica_leader 3
# TYPE toystore_replica_log_length gauge
toystore_replica_log_length LEN
# TYPE toystore_replica_commit gauge
toystore_replica_commit LEN
# TYPE toystore_replica_resynced_orders_total counter
toystore_replica_resynced_orders_total 7
# TYPE toystore_requests_total counter
toystore_requests_total{route=\"/orders\",status=\"200\"} 10
toystore_requests_total{route=\"/internal/msg\",status=\"200\"} 5
";

    const FRONTEND: &str = "\
# TYPE toystore_leader_id gauge
toystore_leader_id 3
# TYPE toystore_leader_epoch gauge
toystore_leader_epoch 4
# TYPE toystore_leader_changes_total counter
toystore_leader_changes_total 2
# TYPE toystore_cache_entries gauge
toystore_cache_entries 5
# TYPE toystore_cache_hits_total counter
toystore_cache_hits_total 30
# TYPE toystore_cache_misses_total counter
toystore_cache_misses_total 10
# TYPE toystore_purchase_retries_total counter
toystore_purchase_retries_total{kind=\"same_leader\"} 1
toystore_purchase_retries_total{kind=\"new_leader\"} 2
# TYPE toystore_requests_total counter
toystore_requests_total{route=\"/orders\",status=\"200\"} 9
toystore_requests_total{route=\"/orders\",status=\"409\"} 1
";

    const CATALOG: &str = "\
# TYPE toystore_stock gauge
toystore_stock{product=\"Tux\"} 90
toystore_stock{product=\"Fox\"} 100
# TYPE toystore_takes_total counter
toystore_takes_total 10
# TYPE toystore_restocks_total counter
toystore_restocks_total 0
";

    fn replica(role: u8, len: u64) -> Result<Exposition, String> {
        Exposition::parse(
            &REPLICA
                .replace("ROLE", &role.to_string())
                .replace("LEN", &len.to_string()),
        )
    }

    fn snapshot(frontend: Result<Exposition, String>) -> Snapshot {
        build(
            1_000,
            ("http://c", Exposition::parse(CATALOG)),
            ("http://f", frontend),
            vec![
                (1, "http://1".into(), replica(0, 95)),
                (2, "http://2".into(), Err("connection refused".into())),
                (3, "http://3".into(), replica(2, 100)),
            ],
        )
    }

    #[test]
    fn a_snapshot_reads_every_service_and_computes_the_lag() {
        let s = snapshot(Exposition::parse(FRONTEND));
        assert_eq!(s.leader, Some(3));
        let r1 = &s.replicas[0];
        assert_eq!(
            (
                r1.role.as_deref(),
                r1.epoch,
                r1.follows,
                r1.log_length,
                r1.lag
            ),
            (Some("follower"), Some(4), Some(3), Some(95), Some(5))
        );
        assert_eq!((r1.resynced, r1.requests), (Some(7), Some(15)));
        assert_eq!(s.replicas[2].lag, Some(0));
        assert_eq!(s.replicas[1].down.as_deref(), Some("connection refused"));
        assert_eq!(s.down, vec!["order-2: connection refused".to_string()]);
        let f = &s.frontend;
        assert_eq!(
            (f.leader, f.epoch, f.leader_changes),
            (Some(3), Some(4), Some(2))
        );
        assert_eq!(f.hit_rate, Some(0.75));
        assert_eq!((f.purchase_retries, f.purchases), (Some(3), Some(10)));
        assert_eq!(s.catalog.stock["Tux"], 90);
        assert_eq!(s.catalog.takes, Some(10));
        let text = render(&s, None, None);
        assert!(text.contains("DOWN"), "{text}");
        assert!(text.contains("hit rate 75.0%"), "{text}");
        assert!(text.contains("Tux 90"), "{text}");
        assert!(text.contains("order-2: connection refused"), "{text}");
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["replicas"][0]["lag"], 5);
        assert_eq!(json["frontend"]["leader"], 3);
    }

    #[test]
    fn without_the_front_end_the_leader_is_the_replica_that_leads() {
        let s = snapshot(Err("no answer in time".into()));
        assert_eq!(s.leader, Some(3));
        assert_eq!(s.replicas[0].lag, Some(5));
        assert_eq!(s.down.last().unwrap(), "frontend: no answer in time");
        assert!(render(&s, None, None).contains("front-end  DOWN: no answer in time"));
    }

    #[test]
    fn a_second_snapshot_gives_rates() {
        let before = snapshot(Exposition::parse(FRONTEND));
        let mut now = before.clone();
        now.frontend.cache_hits = Some(38);
        now.frontend.cache_misses = Some(12);
        now.frontend.purchases = Some(20);
        let text = render(
            &now,
            Some((&before, Duration::from_secs(1))),
            Some(Duration::from_secs(1)),
        );
        assert!(text.contains("(80.0% over the last 1 s)"), "{text}");
        assert!(text.contains("10 purchases/s"), "{text}");
        assert!(text.contains("Ctrl-C"), "{text}");
    }

    #[test]
    fn roles_are_named() {
        let names: Vec<&str> = [0.0, 1.0, 2.0, 3.0, 9.0]
            .into_iter()
            .map(role_name)
            .collect();
        assert_eq!(
            names,
            ["follower", "candidate", "leader", "recovering", "unknown"]
        );
    }
}
