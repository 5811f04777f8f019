//! The store end to end: real binaries, several clients at once, cache invalidation, restocking, and
//! files that match what was bought.

use serde_json::json;
use std::time::{Duration, Instant};
use systest::Cluster;

#[test]
fn parallel_clients_buy_and_every_order_checks_out() {
    let mut c = Cluster::new(21000);
    c.start_all(1.0);
    let csv = c.data().join("latency.csv");
    let clients: Vec<_> = (0..3)
        .map(|k| {
            let (url, path) = (c.frontend_url(), c.data().join(format!("latency-{k}.csv")));
            let bin = systest::bin_dir().join("client");
            std::thread::spawn(move || {
                let out = std::process::Command::new(bin)
                    .args([
                        "--frontend",
                        &url,
                        "--iterations",
                        "150",
                        "--p",
                        "0.8",
                        "--threads",
                        "2",
                    ])
                    .args([
                        "--seed",
                        &k.to_string(),
                        "--client-id",
                        &(10 * k).to_string(),
                    ])
                    .arg("--latency-csv")
                    .arg(&path)
                    .output()
                    .expect("run client");
                (
                    out.status.success(),
                    String::from_utf8_lossy(&out.stdout).to_string(),
                    path,
                )
            })
        })
        .collect();
    let mut rows = 0;
    for t in clients {
        let (ok, out, path) = t.join().unwrap();
        assert!(ok, "a client failed:\n{out}");
        let text = std::fs::read_to_string(path).unwrap();
        assert!(text.starts_with("client,kind,latency_us,ok"), "{text:.100}");
        rows += text.lines().count() - 1;
    }
    assert!(
        rows >= 3 * 2 * 150,
        "every query has a latency row ({rows})"
    );
    let _ = csv;
    let orders = c.wait_consistent(Duration::from_secs(10));
    assert!(
        orders.len() > 100,
        "clients with p = 0.8 bought only {} times",
        orders.len()
    );
}

#[test]
fn a_query_after_a_purchase_shows_the_new_quantity() {
    let mut c = Cluster::new(21020);
    c.start_all(60.0);
    let before = c.query("Whale").data::<serde_json::Value>()["quantity"]
        .as_u64()
        .unwrap();
    assert_eq!(
        c.query("Whale").data::<serde_json::Value>()["quantity"]
            .as_u64()
            .unwrap(),
        before,
        "cached"
    );
    for i in 1..=5 {
        let a = c.buy("Whale", 2);
        assert_eq!(a.status, 200, "{a:?}");
        let now = c.query("Whale").data::<serde_json::Value>()["quantity"]
            .as_u64()
            .unwrap();
        assert_eq!(
            now,
            before - 2 * i,
            "the cached quantity was dropped on purchase"
        );
    }
    let status = c.internal_get(&format!("{}/internal/status", c.frontend_internal_url()));
    assert!(
        status.body["data"]["hits"].as_u64().unwrap() >= 1,
        "{status:?}"
    );
}

#[test]
fn a_toy_bought_out_is_restocked_within_the_interval() {
    let mut c = Cluster::new(21040);
    c.start_all(1.0);
    let q = c.query("Marbles").data::<serde_json::Value>()["quantity"]
        .as_u64()
        .unwrap();
    assert_eq!(c.buy("Marbles", q).status, 200);
    let a = c.buy("Marbles", 1);
    // Either still out of stock, or the restock already came.
    assert!(a.status == 409 || a.status == 200, "{a:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = c.query("Marbles").data::<serde_json::Value>()["quantity"]
            .as_u64()
            .unwrap();
        if now >= 99 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Marbles not restocked (quantity {now})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    c.wait_consistent(Duration::from_secs(5));
}

#[test]
fn the_public_api_answers_every_error_as_the_contract_says() {
    let mut c = Cluster::new(21060);
    c.start_all(60.0);
    let err = |a: &systest::Answer, code: u16| {
        assert_eq!(a.status, code, "{a:?}");
        assert_eq!(a.body["error"]["code"].as_u64(), Some(code as u64), "{a:?}");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{a:?}"
        );
    };
    err(&c.query("NoSuchToy"), 404);
    err(&c.buy("NoSuchToy", 1), 404);
    err(&c.buy("Tux", 0), 400);
    err(&c.buy("Tux", 101), 409);
    err(
        &c.post("/orders", &json!({"name": "Tux", "quantity": -1})),
        400,
    );
    err(&c.post("/orders", &json!({"name": "Tux"})), 400);
    err(&c.order(999), 404);
    err(&c.get("/orders/abc"), 400);
    err(&c.get("/nothing"), 404);
    let a = c.buy("Tux", 3);
    assert_eq!(a.status, 200);
    let n = a.body["data"]["order_number"].as_u64().unwrap();
    let o = c.order(n);
    assert_eq!(
        o.body,
        json!({"data": {"number": n, "name": "Tux", "quantity": 3}})
    );
    assert_eq!(
        c.query("Tux").body,
        json!({"data": {"name": "Tux", "price": 25.99, "quantity": 97}})
    );
    c.wait_consistent(Duration::from_secs(5));
}

#[test]
fn the_catalog_killed_and_restarted_keeps_every_answered_take() {
    let mut c = Cluster::new(21080);
    c.start_all(60.0);
    for i in 0..30 {
        assert_eq!(c.buy(["Lego", "Fox"][i % 2], 2).status, 200);
    }
    let before = c.stock();
    c.kill("catalog");
    let a = c.buy("Lego", 1);
    assert_eq!(a.status, 503, "catalog down: {a:?}");
    c.start_catalog(60.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.query("Elephant").status != 200 {
        assert!(
            Instant::now() < deadline,
            "catalog did not come back\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        c.stock(),
        before,
        "every take answered before the SIGKILL is still there"
    );
    assert_eq!(c.stock()["Lego"], 70);
    c.wait_consistent(Duration::from_secs(10));
}

#[test]
fn every_service_stops_cleanly_on_sigterm() {
    let mut c = Cluster::new(21100);
    c.start_all(60.0);
    assert_eq!(c.buy("Tux", 1).status, 200);
    for name in ["frontend", "order-1", "order-2", "order-3", "catalog"] {
        let status = c.terminate(name);
        assert!(
            status.success(),
            "{name} exited with {status}\n{}",
            c.logs()
        );
    }
    let journal = c.journal();
    assert_eq!(
        journal.last().map(|r| r.kind),
        Some(systest::JournalKind::Checkpoint),
        "the catalog wrote its checkpoint"
    );
    let text = std::fs::read_to_string(c.data().join("catalog.csv")).unwrap();
    assert!(text.contains("Tux,25.99,99\n"), "{text}");
    for id in [1, 2, 3] {
        assert_eq!(c.orders(id).len(), 1);
    }
}
