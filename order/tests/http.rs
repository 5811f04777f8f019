//! Three order replicas and a catalog served in this process on port 0, spoken to over HTTP as the
//! front-end speaks to them: a purchase through the leader commits, is readable on every replica
//! and takes its stock once; internal endpoints refuse a call without the secret; unknown paths and
//! refused settings get their errors. Each test has its own data folder and ports, and stops every
//! server it started.

use serde_json::{json, Value};
use shared::config::{ReplicaList, ServiceFlags, StoreAddrs};
use shared::http::bind;
use shared::protocol::ReplicaId;
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret";

/// A catalog and three replicas, all in this process.
struct Cluster {
    catalog: Option<catalog::Running>,
    replicas: Vec<Option<order::Running>>,
    urls: Vec<String>,
    dir: tempfile::TempDir,
}

fn service_flags() -> ServiceFlags {
    ServiceFlags {
        secret: Some(SECRET.into()),
        workers: 4,
        ..ServiceFlags::default()
    }
}

fn replica_config(dir: &std::path::Path, id: ReplicaId, store: &StoreAddrs) -> order::Config {
    order::Config {
        id,
        listen: None,
        data: dir.to_path_buf(),
        store: store.clone(),
        quorum: None,
        service: service_flags(),
    }
}

impl Cluster {
    /// Starts the catalog and the replicas, and waits until every replica is ready.
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let catalog_config = catalog::Config {
            listen: "127.0.0.1:0".into(),
            data: dir.path().to_path_buf(),
            frontend: String::new(),
            restock_interval: 3600.0,
            service: service_flags(),
        };
        let catalog = catalog::serve(&catalog_config, bind("127.0.0.1:0").unwrap()).unwrap();
        let listeners: Vec<_> = (0..3).map(|_| bind("127.0.0.1:0").unwrap()).collect();
        let urls: Vec<String> = listeners
            .iter()
            .map(|l| format!("http://{}", l.local_addr().unwrap()))
            .collect();
        let list: Vec<String> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| format!("{}={u}", i + 1))
            .collect();
        let store = StoreAddrs {
            catalog: format!("http://{}", catalog.addr()),
            replicas: list.join(",").parse::<ReplicaList>().unwrap(),
        };
        let replicas = listeners
            .into_iter()
            .zip(1..)
            .map(|(l, id)| Some(order::serve(&replica_config(dir.path(), id, &store), l).unwrap()))
            .collect();
        let cluster = Cluster {
            catalog: Some(catalog),
            replicas,
            urls,
            dir,
        };
        for id in 1..=3 {
            cluster.wait_for(id, "/internal/health", |v| v["data"]["ready"] == true);
        }
        cluster
    }

    fn url(&self, id: ReplicaId) -> &str {
        &self.urls[id as usize - 1]
    }

    /// Tells every replica that `leader` leads in `epoch`, as the front-end does, and waits until it
    /// does.
    fn choose(&self, leader: ReplicaId, epoch: u64) {
        let notice = json!({"ballot": {"epoch": epoch, "leader": leader}});
        for id in 1..=3 {
            let url = format!("{}/internal/leader", self.url(id));
            let (status, v) = call("POST", &url, Some(&notice), Some(SECRET));
            assert_eq!(status, 200, "replica {id}: {v}");
        }
        self.wait_for(leader, "/internal/health", |v| {
            v["data"]["role"] == "leader"
        });
    }

    /// Asks replica `id` for `path` until the answer passes `check`; panics after 10 s.
    fn wait_for(&self, id: ReplicaId, path: &str, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, v) = call(
                "GET",
                &format!("{}{path}", self.url(id)),
                None,
                Some(SECRET),
            );
            if check(&v) {
                return v;
            }
            assert!(Instant::now() < deadline, "replica {id} {path}: {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn buy(&self, leader: ReplicaId, request_id: &str, name: &str, quantity: u64) -> (u16, Value) {
        let body = json!({"request_id": request_id, "name": name, "quantity": quantity});
        let url = format!("{}/orders", self.url(leader));
        call("POST", &url, Some(&body), Some(SECRET))
    }

    fn stock(&self, name: &str) -> u64 {
        let catalog = self.catalog.as_ref().expect("running");
        catalog.catalog().product(name).unwrap().quantity
    }

    fn order_file(&self, id: ReplicaId) -> String {
        let path = self.dir.path().join(shared::files::orders_file(id));
        std::fs::read_to_string(path).unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for r in self.replicas.iter_mut().filter_map(Option::take) {
            shared::testing::assert_stopped(r.stop());
        }
        if let Some(c) = self.catalog.take() {
            shared::testing::assert_stopped(c.stop());
        }
    }
}

/// One HTTP call: status and JSON body (Null when the body is not JSON).
fn call(method: &str, url: &str, body: Option<&Value>, secret: Option<&str>) -> (u16, Value) {
    shared::testing::call(Duration::from_secs(5), method, url, body, secret)
}

#[test]
fn a_purchase_commits_and_is_readable_on_every_replica() {
    let c = Cluster::start();
    c.choose(3, 1);
    let (status, v) = c.buy(3, "t-1", "Tux", 2);
    assert_eq!(
        (status, v.clone()),
        (200, json!({"data": {"order_number": 0}})),
        "{v}"
    );
    for id in 1..=3 {
        let v = c.wait_for(id, "/orders/0", |v| v["data"].is_object());
        assert_eq!(
            v,
            json!({"data": {"number": 0, "name": "Tux", "quantity": 2}}),
            "replica {id}"
        );
    }
    assert_eq!(c.stock("Tux"), 98);
    let deadline = Instant::now() + Duration::from_secs(5);
    while (1..=3).any(|id| c.order_file(id) != c.order_file(1)) {
        assert!(Instant::now() < deadline, "order files differ");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        c.order_file(2),
        format!("{}0,Tux,2,t-1,1\n", shared::files::ORDERS_HEADER)
    );
}

#[test]
fn a_repeated_request_id_gets_its_first_order_and_takes_stock_once() {
    let c = Cluster::start();
    c.choose(3, 1);
    assert_eq!(c.buy(3, "t-1", "Fox", 1).0, 200);
    let (status, v) = c.buy(3, "t-2", "Fox", 3);
    assert_eq!((status, v["data"]["order_number"].clone()), (200, json!(1)));
    let (status, v) = c.buy(3, "t-2", "Fox", 3);
    assert_eq!(
        (status, v["data"]["order_number"].clone()),
        (200, json!(1)),
        "{v}"
    );
    assert_eq!(c.stock("Fox"), 96);
    let (status, v) = c.buy(3, "t-3", "Fox", 97);
    assert_eq!(status, 409, "not enough stock: {v}");
    let (status, v) = c.buy(3, "t-4", "Nope", 1);
    assert_eq!(status, 404, "{v}");
    assert_eq!(c.stock("Fox"), 96);
}

#[test]
fn a_follower_refuses_a_purchase_naming_the_leader() {
    let c = Cluster::start();
    c.choose(3, 1);
    let (status, v) = c.buy(1, "t-1", "Tux", 1);
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["error"]["promised"], json!({"epoch": 1, "leader": 3}));
    assert_eq!(c.stock("Tux"), 100);
}

#[test]
fn internal_endpoints_refuse_a_call_without_the_secret() {
    let c = Cluster::start();
    let url = c.url(2);
    let batch = json!({"from": 1, "msgs": []});
    for secret in [None, Some("wrong")] {
        for (method, path, body) in [
            ("GET", "/internal/health", None),
            ("POST", "/internal/msg", Some(&batch)),
            (
                "POST",
                "/internal/leader",
                Some(&json!({"ballot": {"epoch": 9, "leader": 2}})),
            ),
            (
                "POST",
                "/orders",
                Some(&json!({"request_id": "x", "name": "Tux", "quantity": 1})),
            ),
        ] {
            let (status, v) = call(method, &format!("{url}{path}"), body, secret);
            assert_eq!(status, 403, "{method} {path} with {secret:?}: {v}");
            assert_eq!(v["error"]["code"], 403);
        }
    }
    // The refused notice changed nothing: replica 2 promised no epoch.
    let v = c.wait_for(2, "/internal/health", |_| true);
    assert_eq!(v["data"]["promised"]["epoch"], 0, "{v}");
}

#[test]
fn unknown_paths_get_a_json_404_with_the_path_cut() {
    let c = Cluster::start();
    let long = "y".repeat(5000);
    let (status, v) = call("GET", &format!("{}/{long}", c.url(1)), None, Some(SECRET));
    assert_eq!(status, 404);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.len() < 200 && message.ends_with("..."), "{message}");
    let (status, _) = call("GET", &format!("{}/orders/x", c.url(1)), None, Some(SECRET));
    assert_eq!(status, 400);
}

#[test]
fn refused_settings_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreAddrs {
        catalog: "http://127.0.0.1:1".into(),
        replicas: "1=http://127.0.0.1:2,2=http://127.0.0.1:3".parse().unwrap(),
    };
    let configs = [
        order::Config {
            quorum: Some(3),
            ..replica_config(dir.path(), 1, &store)
        },
        replica_config(dir.path(), 7, &store),
        order::Config {
            store: StoreAddrs {
                catalog: "ftp://x".into(),
                ..store.clone()
            },
            ..replica_config(dir.path(), 1, &store)
        },
    ];
    for config in configs {
        let refused = order::serve(&config, bind("127.0.0.1:0").unwrap()).err();
        assert!(
            matches!(refused, Some(shared::Error::Config(_))),
            "{refused:?}"
        );
    }
}
