//! Network cuts with each service on its own host (network namespaces on a bridge, see
//! `systest::netns`): while four buyers buy, one link is cut or one host unplugged for a few seconds,
//! then healed. Wherever a quorum of replicas and the catalog can still talk, purchases must go on
//! within 2 s of the cut, none may fail, an order query is answered within the same 2 s, and after
//! healing the replicas' files are identical and the stock adds up. These tests need root (CI runs
//! as root); without it they fail and say so.

use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use systest::chaos::longest_stall;
use systest::cluster::{Procs, Store, StoreOptions};
use systest::netns::Hosts;

/// One cut at a time: each measures how long purchases stall, which another run's load would blur.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Buyers, each on its own keep-alive connection.
const BUYERS: usize = 4;
/// Purchases before the cut.
const BEFORE: Duration = Duration::from_millis(1500);
/// How long the cut lasts.
const CUT: Duration = Duration::from_secs(5);
/// Purchases after healing.
const AFTER: Duration = Duration::from_millis(1500);
/// The longest stretch without a successful purchase a cut may cause.
const MOST_STALL: Duration = Duration::from_secs(2);

/// What one run saw.
struct Seen {
    /// Longest stretch without a successful purchase from the cut to the heal, ms.
    stall_ms: u64,
    purchases: usize,
    failed: Vec<u16>,
    /// The slowest answer to `GET /orders/<n>` of an order bought before the cut, ms, and the
    /// statuses of those that were not 200.
    slowest_query_ms: u64,
    failed_queries: Vec<u16>,
}

/// The store on its own hosts; `cut` is given the hosts and the leader's id.
fn run(name: &str, prefix: &str, net: &str, base: u16, cut: impl FnOnce(&mut Hosts, u32)) -> Seen {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut hosts = Hosts::up(prefix, net).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut options = StoreOptions::local(systest::bin_dir(), base);
    options.layout = hosts.layout(base);
    // Enough stock that nothing runs out: every purchase should be a 200.
    options.stock = Some(1_000_000);
    options.toys = &shared::files::DEFAULT_TOYS;
    options.restock_interval = 10.0;
    let mut store = Store::new(options, Procs::new()).unwrap();
    store
        .start_all(true)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let leader = store.leader().expect("a leader");
    let url = format!("{}/orders", store.client_url());
    let first = store.post(&url, &json!({"name": "Tux", "quantity": 1}), false);
    assert_eq!(first.status, 200, "{name}: {first:?}");
    let order_url = format!("{url}/{}", first.body["data"]["order_number"]);
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut queries = Vec::new();
    let outcomes: Vec<(Duration, u16)> = std::thread::scope(|s| {
        let buyers: Vec<_> = (0..BUYERS)
            .map(|_| s.spawn(|| buy_until(&url, &stop, started)))
            .collect();
        let querier = s.spawn(|| query_until(&order_url, &stop));
        std::thread::sleep(BEFORE);
        cut(&mut hosts, leader);
        std::thread::sleep(CUT);
        hosts.heal().unwrap();
        std::thread::sleep(AFTER);
        stop.store(true, Ordering::SeqCst);
        queries = querier.join().expect("the querier");
        buyers
            .into_iter()
            .flat_map(|b| b.join().expect("a buyer"))
            .collect()
    });
    let consistent = store.wait_consistent(Duration::from_secs(20));
    assert!(
        consistent.is_ok(),
        "{name}: after healing: {consistent:?}\n{}",
        store.logs()
    );
    let mut ok: Vec<Duration> = outcomes
        .iter()
        .filter(|(_, s)| *s == 200)
        .map(|(t, _)| *t)
        .collect();
    ok.sort();
    let seen = Seen {
        stall_ms: longest_stall(&ok, BEFORE, BEFORE + CUT).as_millis() as u64,
        purchases: outcomes.len(),
        failed: outcomes
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| *s != 200)
            .collect(),
        slowest_query_ms: queries
            .iter()
            .map(|(d, _)| d.as_millis() as u64)
            .max()
            .unwrap_or(0),
        failed_queries: queries
            .iter()
            .map(|(_, s)| *s)
            .filter(|s| *s != 200)
            .collect(),
    };
    println!(
        "{name}: longest stretch without a successful purchase {} ms; {} purchases, {} failed; \
         slowest order query {} ms of {}, {} failed",
        seen.stall_ms,
        seen.purchases,
        seen.failed.len(),
        seen.slowest_query_ms,
        queries.len(),
        seen.failed_queries.len()
    );
    let most = MOST_STALL.as_millis() as u64;
    if !seen.failed.is_empty() || seen.stall_ms > most || seen.slowest_query_ms > most {
        println!("{}", store.logs());
    }
    seen
}

/// Asks `GET /orders/<n>` again and again until `stop`; how long each answer took and its status.
fn query_until(url: &str, stop: &AtomicBool) -> Vec<(Duration, u16)> {
    let agent = agent();
    let mut seen = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let asked = Instant::now();
        let status = agent
            .get(url)
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        seen.push((asked.elapsed(), status));
        std::thread::sleep(Duration::from_millis(20));
    }
    seen
}

/// A client on its own keep-alive connection, which waits up to 10 s for an answer.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .proxy(None)
        .build()
        .into()
}

/// Buys one unit at a time until `stop`; when each purchase ended (since `started`) and its status
/// (0: no answer).
fn buy_until(url: &str, stop: &AtomicBool, started: Instant) -> Vec<(Duration, u16)> {
    let agent = agent();
    let mut seen = Vec::new();
    let body = json!({"name": "Tux", "quantity": 1}).to_string();
    while !stop.load(Ordering::SeqCst) {
        let status = agent
            .post(url)
            .send(body.as_bytes())
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        seen.push((started.elapsed(), status));
    }
    seen
}

fn followers(leader: u32) -> Vec<String> {
    (1..=3)
        .filter(|id| *id != leader)
        .map(|id| format!("order{id}"))
        .collect()
}

fn assert_goes_on(name: &str, seen: &Seen) {
    assert!(
        seen.failed.is_empty(),
        "{name}: purchases failed with {:?}",
        seen.failed
    );
    assert!(
        seen.stall_ms <= MOST_STALL.as_millis() as u64,
        "{name}: purchases stopped for {} ms",
        seen.stall_ms
    );
    assert!(
        seen.failed_queries.is_empty(),
        "{name}: order queries failed with {:?}",
        seen.failed_queries
    );
    assert!(
        seen.slowest_query_ms <= MOST_STALL.as_millis() as u64,
        "{name}: an order query took {} ms",
        seen.slowest_query_ms
    );
}

#[test]
fn the_leader_cut_from_both_followers_is_replaced() {
    let name = "leader cut from both followers";
    let seen = run(name, "tpa-", "10.79.1", 24200, |h, leader| {
        for f in followers(leader) {
            h.cut(&format!("order{leader}"), &f).unwrap();
        }
    });
    assert_goes_on(name, &seen);
}

#[test]
fn the_leader_s_host_unplugged_is_replaced() {
    let name = "leader's host unplugged";
    let seen = run(name, "tpb-", "10.79.2", 24220, |h, leader| {
        h.unplug(&format!("order{leader}")).unwrap();
    });
    assert_goes_on(name, &seen);
}

#[test]
fn the_front_end_cut_from_the_leader_chooses_another() {
    let name = "front-end cut from the leader";
    let seen = run(name, "tpc-", "10.79.3", 24240, |h, leader| {
        h.cut("frontend", &format!("order{leader}")).unwrap();
    });
    assert_goes_on(name, &seen);
}

#[test]
fn one_follower_unplugged_changes_nothing() {
    let name = "one follower unplugged";
    let seen = run(name, "tpd-", "10.79.4", 24260, |h, leader| {
        h.unplug(&followers(leader)[0]).unwrap();
    });
    assert_goes_on(name, &seen);
}

#[test]
fn the_catalog_cut_from_the_leader_is_routed_around() {
    let name = "catalog cut from the leader";
    let seen = run(name, "tpe-", "10.79.5", 24280, |h, leader| {
        h.cut("catalog", &format!("order{leader}")).unwrap();
    });
    assert_goes_on(name, &seen);
}
