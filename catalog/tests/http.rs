//! The catalog served in this process on port 0, spoken to over HTTP as the order leader and the
//! front-end speak to it (every call is internal, so every call carries the secret): queries, takes
//! once per request id, invalidations pushed, restocks, the secret, and error answers. Each test has its own data folder and ports, and stops its servers.

use crossbeam_channel::{unbounded, Receiver};
use serde_json::{json, Value};
use shared::config::ServiceFlags;
use shared::files::{JournalKind, JournalRow, DEFAULT_TOYS, JOURNAL_FILE};
use shared::http::{bind, Handler, Reply, Request, Server, ServerOptions};
use shared::protocol::Invalidate;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET: &str = "test-secret";

/// A catalog on port 0, with a stand-in front-end that records the invalidations it is pushed.
struct TestCatalog {
    running: Option<catalog::Running>,
    url: String,
    frontend: Option<Server>,
    invalidated: Receiver<Vec<String>>,
    dir: tempfile::TempDir,
}

impl TestCatalog {
    fn start(restock_interval: f64) -> TestCatalog {
        let (tx, invalidated) = unbounded();
        let handler: Handler = Arc::new(move |r: &Request| {
            let names = r.json::<Invalidate>().expect("an invalidation").names;
            let _ = tx.send(names);
            Reply::data(0)
        });
        let options = ServerOptions::internal(Some(SECRET.into()));
        let frontend = Server::start(bind("127.0.0.1:0").unwrap(), options, handler).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let config = catalog::Config {
            listen: "127.0.0.1:0".into(),
            data: dir.path().to_path_buf(),
            frontend: format!("http://{}", frontend.addr()),
            restock_interval,
            service: ServiceFlags {
                secret: Some(SECRET.into()),
                workers: 4,
                ..ServiceFlags::default()
            },
        };
        let running = catalog::serve(&config, bind(&config.listen).unwrap()).unwrap();
        TestCatalog {
            url: format!("http://{}", running.addr()),
            running: Some(running),
            frontend: Some(frontend),
            invalidated,
            dir,
        }
    }

    /// Names pushed since the last call, waiting up to `within` for `name` among them.
    fn wait_invalidated(&self, name: &str, within: Duration) -> Vec<String> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        while !seen.iter().any(|n| n == name) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.invalidated.recv_timeout(left) {
                Ok(names) => seen.extend(names),
                Err(_) => panic!("no invalidation of {name} within {within:?}; got {seen:?}"),
            }
        }
        seen
    }

    /// Waits for the push a starting catalog makes of every toy.
    fn wait_startup_push(&self) {
        let mut seen = Vec::new();
        for (name, _) in DEFAULT_TOYS {
            if !seen.iter().any(|n| n == name) {
                seen.extend(self.wait_invalidated(name, Duration::from_secs(5)));
            }
        }
    }

    fn journal(&self) -> Vec<JournalRow> {
        csv::Reader::from_path(self.dir.path().join(JOURNAL_FILE))
            .unwrap()
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn quantity(&self, name: &str) -> u64 {
        let (status, v) = call(
            "GET",
            &format!("{}/products/{name}", self.url),
            None,
            Some(SECRET),
        );
        assert_eq!(status, 200, "{v}");
        v["data"]["quantity"].as_u64().unwrap()
    }

    fn take(&self, request_id: &str, name: &str, quantity: u64) -> (u16, Value) {
        let body =
            json!({"request_id": request_id, "name": name, "quantity": quantity, "epoch": 1});
        let url = format!("{}/internal/take", self.url);
        call("POST", &url, Some(&body), Some(SECRET))
    }
}

impl Drop for TestCatalog {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            shared::testing::assert_stopped(r.stop());
        }
        if let Some(f) = self.frontend.take() {
            f.stop();
        }
    }
}

/// One HTTP call: status and JSON body (Null when the body is not JSON).
fn call(method: &str, url: &str, body: Option<&Value>, secret: Option<&str>) -> (u16, Value) {
    shared::testing::call(Duration::from_secs(5), method, url, body, secret)
}

#[test]
fn products_answer_in_the_contract_s_shape() {
    let c = TestCatalog::start(3600.0);
    let (status, v) = call(
        "GET",
        &format!("{}/products/Tux", c.url),
        None,
        Some(SECRET),
    );
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"data": {"name": "Tux", "price": 25.99, "quantity": 100}})
    );
    let (status, v) = call("GET", &format!("{}/products", c.url), None, Some(SECRET));
    assert_eq!(status, 200);
    assert_eq!(v["data"].as_array().unwrap().len(), 10);
    let url = format!("{}/products/Big%20Nope", c.url);
    let (status, v) = call("GET", &url, None, Some(SECRET));
    assert_eq!(status, 404);
    assert_eq!(v["error"]["code"], 404, "{v}");
}

#[test]
fn a_take_sent_twice_with_one_request_id_takes_once() {
    let c = TestCatalog::start(3600.0);
    let (status, first) = c.take("r-1", "Tux", 2);
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["data"]["repeated"], false);
    let (status, again) = c.take("r-1", "Tux", 2);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["data"]["repeated"], true);
    assert_eq!(again["data"]["seq"], first["data"]["seq"]);
    assert_eq!(c.quantity("Tux"), 98);
    let takes: Vec<JournalRow> = c
        .journal()
        .into_iter()
        .filter(|r| r.kind == JournalKind::Take)
        .collect();
    assert_eq!(takes.len(), 1, "{takes:?}");
    assert_eq!(
        (takes[0].request_id.as_str(), takes[0].quantity),
        ("r-1", 2)
    );

    // Refused for want of stock: for good, even once there is stock again.
    let (status, v) = c.take("r-2", "Tux", 99);
    assert_eq!(status, 409, "{v}");
    let (status, _) = c.take("r-2", "Tux", 1);
    assert_eq!(status, 409);
    assert_eq!(c.quantity("Tux"), 98);
}

#[test]
fn every_change_of_stock_is_pushed_to_the_front_end() {
    let c = TestCatalog::start(3600.0);
    // A starting catalog drops every toy from the front-end's cache.
    c.wait_startup_push();
    let (status, v) = c.take("r-1", "Whale", 1);
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        c.wait_invalidated("Whale", Duration::from_secs(5)),
        vec!["Whale".to_string()]
    );
}

#[test]
fn a_toy_sold_out_is_restocked_and_announced() {
    let c = TestCatalog::start(0.2);
    c.wait_startup_push();
    let (status, v) = c.take("all", "Fox", 100);
    assert_eq!(status, 200, "{v}");
    c.wait_invalidated("Fox", Duration::from_secs(5));
    // The restock is its own change, pushed again.
    c.wait_invalidated("Fox", Duration::from_secs(5));
    assert_eq!(c.quantity("Fox"), 100);
    let restocked: u64 = c
        .journal()
        .iter()
        .filter(|r| r.kind == JournalKind::Restock && r.name == "Fox")
        .map(|r| r.quantity)
        .sum();
    assert_eq!(restocked, 100);
}

#[test]
fn internal_calls_without_the_secret_are_refused_and_change_nothing() {
    let c = TestCatalog::start(3600.0);
    let body = json!({"request_id": "r-1", "name": "Tux", "quantity": 1, "epoch": 1});
    let url = format!("{}/internal/take", c.url);
    for secret in [None, Some("wrong")] {
        let (status, v) = call("POST", &url, Some(&body), secret);
        assert_eq!(status, 403, "{v}");
        assert_eq!(v["error"]["code"], 403);
    }
    assert_eq!(c.quantity("Tux"), 100);
    assert!(c.journal().iter().all(|r| r.kind != JournalKind::Take));
}

#[test]
fn unknown_paths_and_methods_get_json_errors_with_the_path_cut() {
    let c = TestCatalog::start(3600.0);
    let long = "x".repeat(5000);
    let (status, v) = call("GET", &format!("{}/{long}", c.url), None, Some(SECRET));
    assert_eq!(status, 404);
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.len() < 200 && message.ends_with("..."), "{message}");
    let (status, v) = call(
        "GET",
        &format!("{}/internal/take", c.url),
        None,
        Some(SECRET),
    );
    assert_eq!(status, 405, "{v}");
}

#[test]
fn a_refused_setting_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = catalog::Config {
        listen: "127.0.0.1:0".into(),
        data: dir.path().to_path_buf(),
        frontend: String::new(),
        restock_interval: 0.0,
        service: ServiceFlags::default(),
    };
    let refused = catalog::serve(&config, bind("127.0.0.1:0").unwrap()).err();
    assert!(
        matches!(refused, Some(shared::Error::Config(_))),
        "{refused:?}"
    );
}
