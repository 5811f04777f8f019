//! The front-end served in this process on port 0, with a catalog and three order replicas also in
//! this process, spoken to over HTTP as a client does: the leader chosen is the highest ready
//! replica, and the next one when it goes; purchases commit; a product reply is cached until the
//! catalog's invalidation removes it; unknown toys and paths get JSON errors; internal endpoints
//! are only on the internal address, behind the secret. Each test has its own data folder and ports,
//! and stops every server it started.

use serde_json::{json, Value};
use shared::config::{ReplicaList, ServiceFlags, StoreAddrs};
use shared::http::bind;
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret";

/// A front-end, a catalog and three replicas.
struct Store {
    frontend: Option<frontend::Running>,
    replicas: Vec<Option<order::Running>>,
    catalog: Option<catalog::Running>,
    public: String,
    internal: String,
    catalog_url: String,
    _dir: tempfile::TempDir,
}

fn service_flags() -> ServiceFlags {
    ServiceFlags {
        secret: Some(SECRET.into()),
        workers: 4,
        ..ServiceFlags::default()
    }
}

impl Store {
    /// Binds every listener first, so each service knows the others' addresses, then starts the
    /// front-end (so the catalog's first invalidation finds it), the catalog and the replicas.
    fn start() -> Store {
        let dir = tempfile::tempdir().unwrap();
        let (public, internal, catalog_listener) = (
            bind("127.0.0.1:0").unwrap(),
            bind("127.0.0.1:0").unwrap(),
            bind("127.0.0.1:0").unwrap(),
        );
        let replica_listeners: Vec<_> = (0..3).map(|_| bind("127.0.0.1:0").unwrap()).collect();
        let url = |l: &std::net::TcpListener| format!("http://{}", l.local_addr().unwrap());
        let list: Vec<String> = replica_listeners
            .iter()
            .zip(1..)
            .map(|(l, id)| format!("{id}={}", url(l)))
            .collect();
        let store = StoreAddrs {
            catalog: url(&catalog_listener),
            replicas: list.join(",").parse::<ReplicaList>().unwrap(),
        };
        let config = frontend::Config {
            listen: "127.0.0.1:0".into(),
            internal_listen: "127.0.0.1:0".into(),
            store: store.clone(),
            cache_capacity: 100,
            no_cache: false,
            service: service_flags(),
        };
        let (public_url, internal_url) = (url(&public), url(&internal));
        let frontend = frontend::serve(&config, public, internal).unwrap();
        let catalog_config = catalog::Config {
            listen: "127.0.0.1:0".into(),
            data: dir.path().to_path_buf(),
            frontend: internal_url.clone(),
            restock_interval: 3600.0,
            service: service_flags(),
        };
        let catalog = catalog::serve(&catalog_config, catalog_listener).unwrap();
        let replicas = replica_listeners
            .into_iter()
            .zip(1..)
            .map(|(l, id)| {
                let config = order::Config {
                    id,
                    listen: None,
                    data: dir.path().to_path_buf(),
                    store: store.clone(),
                    quorum: None,
                    service: service_flags(),
                };
                Some(order::serve(&config, l).unwrap())
            })
            .collect();
        Store {
            frontend: Some(frontend),
            replicas,
            catalog: Some(catalog),
            public: public_url,
            internal: internal_url,
            catalog_url: store.catalog,
            _dir: dir,
        }
    }

    fn get(&self, path: &str) -> (u16, Value) {
        call("GET", &format!("{}{path}", self.public), None, None)
    }

    fn buy(&self, name: &str, quantity: u64) -> (u16, Value) {
        let body = json!({"name": name, "quantity": quantity});
        call(
            "POST",
            &format!("{}/orders", self.public),
            Some(&body),
            None,
        )
    }

    fn status(&self) -> Value {
        let (status, v) = call(
            "GET",
            &format!("{}/internal/status", self.internal),
            None,
            Some(SECRET),
        );
        assert_eq!(status, 200, "{v}");
        v["data"].clone()
    }

    /// Waits until the front-end's leader is `id`; panics after 10 s.
    fn wait_leader(&self, id: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status()["leader"] != id {
            assert!(Instant::now() < deadline, "leader: {}", self.status());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops replica `id` (cleanly: its files are as after any stop).
    fn stop_replica(&mut self, id: u32) {
        let r = self.replicas[id as usize - 1].take().expect("running");
        r.stop().unwrap();
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(f) = self.frontend.take() {
            f.stop();
        }
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
    shared::testing::call(Duration::from_secs(10), method, url, body, secret)
}

#[test]
fn the_highest_ready_replica_leads_then_the_next_when_it_goes() {
    let mut s = Store::start();
    s.wait_leader(3);
    let (status, v) = s.buy("Tux", 2);
    assert_eq!(
        (status, v.clone()),
        (200, json!({"data": {"order_number": 0}})),
        "{v}"
    );
    assert_eq!(
        s.get("/orders/0"),
        (
            200,
            json!({"data": {"number": 0, "name": "Tux", "quantity": 2}})
        )
    );

    s.stop_replica(3);
    let (status, v) = s.buy("Tux", 1);
    assert_eq!(
        (status, v.clone()),
        (200, json!({"data": {"order_number": 1}})),
        "{v}"
    );
    s.wait_leader(2);
    assert_eq!(s.get("/orders/0").0, 200);
    let (_, v) = s.get("/products/Tux");
    assert_eq!(v["data"]["quantity"], 97, "{v}");
}

#[test]
fn a_product_is_served_from_the_cache_until_the_catalog_invalidates_it() {
    let s = Store::start();
    let counters = |s: &Store| {
        let st = s.status();
        (st["hits"].as_u64().unwrap(), st["misses"].as_u64().unwrap())
    };
    // Two queries in a row: the second is a hit (again if the catalog's first invalidation of
    // every toy came between them).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        assert_eq!(s.get("/products/Whale").0, 200);
        let before = counters(&s);
        let (status, v) = s.get("/products/Whale");
        assert_eq!((status, v["data"]["quantity"].clone()), (200, json!(100)));
        let after = counters(&s);
        if after == (before.0 + 1, before.1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cache hit: {before:?} {after:?}"
        );
    }
    assert!(s.status()["cached"].as_u64().unwrap() >= 1);

    // Stock taken at the catalog behind the front-end's back, as a leader takes it: only the
    // catalog's invalidation can remove the cached 100.
    let take = json!({"request_id": "behind", "name": "Whale", "quantity": 4, "epoch": 1});
    let url = format!("{}/internal/take", s.catalog_url);
    assert_eq!(call("POST", &url, Some(&take), Some(SECRET)).0, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, v) = s.get("/products/Whale");
        if v["data"]["quantity"] == 96 {
            break;
        }
        assert!(Instant::now() < deadline, "still cached: {v}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn unknown_toys_orders_and_paths_get_json_errors() {
    let s = Store::start();
    for (path, code) in [
        ("/products/NoSuchToy", 404),
        ("/products/Big%20Nope", 404),
        ("/products/%FF", 400),
        ("/orders/12345", 404),
        ("/orders/x", 400),
        ("/nowhere", 404),
    ] {
        let (status, v) = s.get(path);
        assert_eq!(status, code, "{path}: {v}");
        assert_eq!(v["error"]["code"], code, "{path}: {v}");
        assert!(v["error"]["message"].is_string(), "{path}: {v}");
    }
    let long = "z".repeat(5000);
    let (_, v) = s.get(&format!("/{long}"));
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.len() < 200 && message.ends_with("..."), "{message}");
    let url = format!("{}/products/Tux", s.public);
    assert_eq!(call("POST", &url, Some(&json!({})), None).0, 405);
    let (status, v) = s.buy("Tux", 0);
    assert_eq!(status, 400, "{v}");
}

#[test]
fn internal_endpoints_are_only_on_the_internal_address_behind_the_secret() {
    let s = Store::start();
    let body = json!({"names": ["Tux"]});
    let public = format!("{}/internal/invalidate", s.public);
    assert_eq!(call("POST", &public, Some(&body), Some(SECRET)).0, 404);
    let internal = format!("{}/internal/invalidate", s.internal);
    for secret in [None, Some("wrong")] {
        let (status, v) = call("POST", &internal, Some(&body), secret);
        assert_eq!(status, 403, "{v}");
    }
    assert_eq!(call("POST", &internal, Some(&body), Some(SECRET)).0, 200);
}

#[test]
fn a_catalog_address_that_is_not_http_is_a_config_error() {
    let config = frontend::Config {
        listen: "127.0.0.1:0".into(),
        internal_listen: "127.0.0.1:0".into(),
        store: StoreAddrs {
            catalog: "ftp://127.0.0.1:1".into(),
            replicas: shared::config::DEFAULT_REPLICAS.parse().unwrap(),
        },
        cache_capacity: 1,
        no_cache: false,
        service: ServiceFlags::default(),
    };
    let (public, internal) = (bind("127.0.0.1:0").unwrap(), bind("127.0.0.1:0").unwrap());
    let refused = frontend::serve(&config, public, internal).err();
    assert!(
        matches!(refused, Some(shared::Error::Config(_))),
        "{:?}",
        refused.map(|_| ())
    );
}
