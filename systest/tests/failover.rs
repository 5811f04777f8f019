//! Replication under real crashes: SIGKILL and SIGSTOP of order replicas while clients buy.

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use systest::{Answer, Cluster};

fn order_number(a: &Answer) -> u64 {
    assert_eq!(a.status, 200, "{a:?}");
    a.body["data"]["order_number"].as_u64().unwrap()
}

/// Waits until the front-end's leader is `id`'s replica and it leads.
fn wait_leader_not(c: &Cluster, old: u32) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(l) = c.leader().filter(|l| *l != old) {
            if c.replica_status(l).is_some_and(|s| s["role"] == "leader") {
                return l;
            }
        }
        assert!(Instant::now() < deadline, "no new leader\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_ready_replica(c: &Cluster, id: u32) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !c.replica_status(id).is_some_and(|s| s["ready"] == true) {
        assert!(
            Instant::now() < deadline,
            "replica {id} not ready\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn killing_the_leader_while_clients_buy_loses_and_repeats_nothing() {
    let mut c = Cluster::new(21200);
    c.start_all(1.0);
    assert_eq!(c.leader(), Some(3), "the highest id leads first");
    let bin = systest::bin_dir().join("client");
    let clients: Vec<_> = (0..3)
        .map(|k| {
            let url = c.frontend_url();
            let csv = c.data().join(format!("lat-{k}.csv"));
            let bin = bin.clone();
            std::thread::spawn(move || {
                let out = std::process::Command::new(bin)
                    .args([
                        "--frontend",
                        &url,
                        "--iterations",
                        "1500",
                        "--p",
                        "0.9",
                        "--seed",
                        &k.to_string(),
                    ])
                    .args(["--client-id", &k.to_string()])
                    .arg("--latency-csv")
                    .arg(csv)
                    .output()
                    .unwrap();
                (
                    out.status.success(),
                    format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    ),
                )
            })
        })
        .collect();
    // Let purchases flow, then kill the leader in the middle of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.orders(3).len() < 100 {
        assert!(Instant::now() < deadline, "no purchases reached the leader");
        std::thread::sleep(Duration::from_millis(20));
    }
    c.kill("order-3");
    let new = wait_leader_not(&c, 3);
    assert_eq!(new, 2, "the next highest id leads");
    for t in clients {
        let (ok, out) = t.join().unwrap();
        // The client checks every order it was answered 200 for, and fails on any 5xx or transport
        // error: the failover must be invisible but for a delay.
        assert!(ok, "client failed:\n{out}\n{}", c.logs());
    }
    c.start_order(3);
    wait_ready_replica(&c, 3);
    let orders = c.wait_consistent(Duration::from_secs(15));
    assert!(orders.len() > 300, "{} orders", orders.len());
}

#[test]
fn a_follower_killed_and_restarted_catches_up_to_an_identical_file() {
    let mut c = Cluster::new(21220);
    c.start_all(60.0);
    c.kill("order-1");
    for i in 0..100 {
        let a = c.buy(["Tux", "Fox", "Lego"][i % 3], 1);
        assert_eq!(order_number(&a), i as u64);
    }
    assert_eq!(c.orders(1).len(), 0);
    c.start_order(1);
    wait_ready_replica(&c, 1);
    let log = std::fs::read_to_string(c.data().join("../order-1.log")).unwrap_or_default();
    assert!(
        log.contains("resynced"),
        "the restarted replica says what it fetched:\n{log}"
    );
    let orders = c.wait_consistent(Duration::from_secs(10));
    assert_eq!(orders.len(), 100);
    assert_eq!(c.orders_text(1), c.orders_text(3));
}

/// Buys until a purchase succeeds (within 15 s) and returns its order number.
fn buy_until_ok(c: &Cluster, name: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = c.buy(name, 1);
        if a.status == 200 {
            return order_number(&a);
        }
        assert!(
            Instant::now() < deadline,
            "purchases did not resume: {a:?}\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Buys three times and checks each gets 503 and changes nothing at the catalog.
fn assert_refused_without_change(c: &Cluster) {
    let stock = c.stock();
    let journal = c.journal().len();
    for _ in 0..3 {
        let a = c.buy("Bird", 1);
        assert_eq!(a.status, 503, "{a:?}");
        assert_eq!(a.body["error"]["code"], 503);
    }
    assert_eq!(c.stock(), stock, "a 503 took no stock");
    assert_eq!(c.journal().len(), journal);
}

#[test]
fn without_a_quorum_purchases_get_503_and_take_no_stock_then_resume() {
    let mut c = Cluster::new(21240);
    c.start_all(60.0);
    assert_eq!(order_number(&c.buy("Bird", 1)), 0);
    c.kill("order-3");
    c.kill("order-2");
    assert_refused_without_change(&c);
    c.start_order(2);
    c.start_order(3);
    assert_eq!(
        buy_until_ok(&c, "Bird"),
        1,
        "no order number was used by the refused purchases"
    );
    wait_ready_replica(&c, 3);
    let orders = c.wait_consistent(Duration::from_secs(10));
    assert_eq!(orders.len(), 2);
}

#[test]
fn a_leader_alone_refuses_purchases_but_answers_order_queries() {
    let mut c = Cluster::new(21320);
    c.start_all(60.0);
    assert_eq!(order_number(&c.buy("Bird", 1)), 0);
    c.kill("order-1");
    c.kill("order-2");
    // Give the leader a few heartbeats to notice; a purchase in that gap would be stored and
    // answered 504 (completed when a follower returns), never lost.
    std::thread::sleep(Duration::from_millis(500));
    assert_refused_without_change(&c);
    let a = c.order(0);
    assert_eq!(a.body["data"]["name"], "Bird", "{a:?}");
    assert_eq!(c.leader(), Some(3));
    c.start_order(1);
    assert_eq!(buy_until_ok(&c, "Bird"), 1);
    c.start_order(2);
    wait_ready_replica(&c, 2);
    assert_eq!(c.wait_consistent(Duration::from_secs(10)).len(), 2);
}

#[test]
fn a_paused_leader_that_resumes_creates_no_order() {
    let mut c = Cluster::new(21260);
    c.start_all(60.0);
    assert_eq!(order_number(&c.buy("Python", 1)), 0);
    c.pause("order-3");
    // A purchase sent while the leader is paused waits, then succeeds on the new leader.
    let a = c.buy("Python", 2);
    assert_eq!(order_number(&a), 1, "{a:?}");
    let new = wait_leader_not(&c, 3);
    for _ in 0..5 {
        c.buy("Python", 1);
    }
    c.resume("order-3");
    // The old leader learns of the newer epoch and follows.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.replica_status(3).is_some_and(|s| s["role"] == "follower") {
        assert!(
            Instant::now() < deadline,
            "old leader did not step down\n{}",
            c.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let orders = c.wait_consistent(Duration::from_secs(10));
    assert_eq!(orders.len(), 7);
    assert!(
        orders[1..].iter().all(|o| o.epoch > orders[0].epoch),
        "every later order is from the new leader {new}"
    );
}

#[test]
fn a_take_whose_leader_died_before_the_order_is_rolled_forward() {
    let mut c = Cluster::new(21280);
    c.start_all(60.0);
    // What a leader does just before it dies: take the stock at the catalog, write no order.
    let leader = c.leader().expect("a leader");
    let epoch = c.replica_status(leader).expect("the leader answers")["promised"]["epoch"]
        .as_u64()
        .expect("an epoch");
    let take = json!({"request_id": "orphan-1", "name": "Frisbee", "quantity": 4, "epoch": epoch});
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let r = agent
        .post(&format!("{}/internal/take", c.catalog_url()))
        .header(shared::protocol::SECRET_HEADER, c.secret())
        .send_json(&take)
        .unwrap();
    assert_eq!(r.status(), 200);
    // The stock is taken without an order, for now; the leader rolls it forward.
    let orders = c.wait_consistent(Duration::from_secs(10));
    let o = orders
        .iter()
        .find(|o| o.request_id == "orphan-1")
        .expect("rolled forward");
    assert_eq!((o.name.as_str(), o.quantity), ("Frisbee", 4));
    assert_eq!(c.query("Frisbee").data::<Value>()["quantity"], 96);
    // A retry of that purchase gets the same order, not a second one.
    let again = c.post(
        "/orders",
        &json!({"name": "Frisbee", "quantity": 4, "request_id": "orphan-1"}),
    );
    assert_eq!(order_number(&again), o.number);
    assert_eq!(
        c.wait_consistent(Duration::from_secs(5)).len(),
        orders.len()
    );
}

#[test]
fn replicas_restarted_all_at_once_keep_every_order() {
    let mut c = Cluster::new(21300);
    c.start_all(60.0);
    let numbers: Vec<u64> = (0..20).map(|_| order_number(&c.buy("Barbie", 1))).collect();
    for id in [1, 2, 3] {
        c.kill(&format!("order-{id}"));
    }
    for id in [1, 2, 3] {
        c.start_order(id);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = c.buy("Barbie", 1);
        if a.status == 200 {
            assert_eq!(order_number(&a), 20);
            break;
        }
        assert!(Instant::now() < deadline, "{a:?}\n{}", c.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in numbers {
        assert_eq!(c.order(n).body["data"]["name"], "Barbie");
    }
    assert_eq!(c.wait_consistent(Duration::from_secs(10)).len(), 21);
}

#[test]
fn a_replica_far_behind_catches_up_on_100000_orders_in_seconds() {
    const N: u64 = 100_000;
    let mut c = Cluster::new(21340);
    std::fs::create_dir_all(c.data()).unwrap();
    let mut text = String::from("number,name,quantity,request_id,epoch\n");
    for n in 0..N {
        text.push_str(&format!("{n},Tux,1,seed-{n},1\n"));
    }
    let meta = json!({"promised": {"epoch": 1, "leader": 3}, "log_ballot": {"epoch": 1, "leader": 3}, "commit": N});
    for id in [1, 2] {
        std::fs::write(c.data().join(format!("orders-{id}.csv")), &text).unwrap();
        std::fs::write(
            c.data().join(format!("replica-{id}.json")),
            meta.to_string(),
        )
        .unwrap();
    }
    c.start_catalog(60.0);
    c.start_order(1);
    c.start_order(2);
    wait_ready_replica(&c, 1);
    wait_ready_replica(&c, 2);
    let started = Instant::now();
    c.start_order(3);
    wait_ready_replica(&c, 3);
    let took = started.elapsed();
    assert_eq!(c.replica_status(3).unwrap()["len"], N);
    eprintln!("replica 3 caught up on {N} orders in {took:?}");
    // A loose bound: the point is seconds, not minutes, on a busy 2-core machine.
    assert!(took < Duration::from_secs(30), "catching up took {took:?}");
    assert_eq!(c.orders_text(3), text);
    // And the store goes on from there.
    c.start_frontend();
    assert_eq!(buy_until_ok(&c, "Tux"), N);
}

#[test]
fn concurrent_retries_of_one_purchase_during_a_failover_make_one_order() {
    let mut c = Cluster::new(21360);
    c.start_all(60.0);
    assert_eq!(order_number(&c.buy("Elephant", 1)), 0);
    for round in 0..3 {
        let leader = c.leader().expect("a leader");
        c.kill(&format!("order-{leader}"));
        // Right after the kill, eight copies of one purchase race to the next leader while it takes
        // over and waits for its followers.
        let rid = format!("twin-{round}");
        let answers: Vec<Answer> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let body = json!({"name": "Elephant", "quantity": 1, "request_id": rid});
                    let c = &c;
                    s.spawn(move || c.post("/orders", &body))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let numbers: std::collections::BTreeSet<u64> = answers
            .iter()
            .filter(|a| a.status == 200)
            .map(order_number)
            .collect();
        assert!(
            numbers.len() <= 1,
            "one purchase got several order numbers: {answers:?}"
        );
        c.start_order(leader);
        wait_ready_replica(&c, leader);
    }
    let orders = c.wait_consistent(Duration::from_secs(15));
    for round in 0..3 {
        let rid = format!("twin-{round}");
        assert!(orders.iter().filter(|o| o.request_id == rid).count() <= 1);
    }
}
