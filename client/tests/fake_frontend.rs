//! Runs the client library against a small in-memory fake of the front-end's public API, served by
//! tiny_http on 127.0.0.1:0, and checks the latency CSV, the verification and the outcome.
//!
//! Nothing here depends on timing: the fake answers from memory, and every assertion holds whatever
//! order the sessions' requests arrive in.

use std::collections::{HashMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use client::protocol::{
    Data, ErrorBody, ErrorEnvelope, OrderPlaced, OrderRecord, OrderRequest, Product,
};
use client::{Config, Report, CSV_HEADER, EXIT_FAILURE, EXIT_SUCCESS};
use indicatif::ProgressBar;
use tiny_http::{Header, Method, Request, Response, Server};

/// Worker threads of the fake.
const WORKERS: usize = 4;

/// How the fake misbehaves, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Follows the contract.
    Honest,
    /// `GET /orders/<n>` answers one more than was bought.
    WrongOrderQuantity,
    /// Every purchase is refused with 409, as if another client always came first.
    RefuseOrders,
    /// Every product query gets a 503.
    FailQueries,
}

/// The fake's memory.
#[derive(Debug, Default)]
struct State {
    stock: HashMap<String, u64>,
    /// Committed orders, index = order number: (name, quantity).
    orders: Vec<(String, u64)>,
    by_request_id: HashMap<String, u64>,
    /// Purchases that reused a request id.
    repeated_request_ids: usize,
    queries: usize,
    buys: usize,
    order_queries: usize,
}

/// A fake front-end; stops and joins its workers when dropped.
struct FakeFrontend {
    server: Arc<Server>,
    workers: Vec<JoinHandle<()>>,
    state: Arc<Mutex<State>>,
    url: String,
}

impl FakeFrontend {
    /// Starts a fake with `stock` units of each of `products`.
    fn start(products: &[&str], stock: u64, behaviour: Behaviour) -> Self {
        let server = Arc::new(Server::http("127.0.0.1:0").unwrap());
        let port = server.server_addr().to_ip().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            stock: products.iter().map(|p| (p.to_string(), stock)).collect(),
            ..State::default()
        }));
        let workers = (0..WORKERS)
            .map(|_| {
                let (server, state) = (server.clone(), state.clone());
                thread::spawn(move || {
                    // `recv` fails once `unblock` is called: that is the stop signal.
                    while let Ok(request) = server.recv() {
                        handle(&state, behaviour, request);
                    }
                })
            })
            .collect();
        FakeFrontend {
            server,
            workers,
            state,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

impl Drop for FakeFrontend {
    fn drop(&mut self) {
        // One unblock wakes one `recv`.
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            worker.join().unwrap();
        }
    }
}

fn json_response(status: u16, body: String) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(body)
        .with_status_code(status)
        .with_header(Header::from_bytes("Content-Type", "application/json").unwrap())
}

fn data<T: serde::Serialize>(data: T) -> (u16, String) {
    (200, serde_json::to_string(&Data { data }).unwrap())
}

fn error(code: u16, message: &str) -> (u16, String) {
    let body = ErrorEnvelope {
        error: ErrorBody {
            code,
            message: message.to_string(),
        },
    };
    (code, serde_json::to_string(&body).unwrap())
}

fn handle(state: &Mutex<State>, behaviour: Behaviour, mut request: Request) {
    let mut body = String::new();
    let (status, text) = match request.as_reader().read_to_string(&mut body) {
        Err(_) => error(400, "unreadable body"),
        Ok(_) => answer(state, behaviour, request.method(), request.url(), &body),
    };
    // The client may have gone; nothing to do about it here.
    let _ = request.respond(json_response(status, text));
}

fn answer(
    state: &Mutex<State>,
    behaviour: Behaviour,
    method: &Method,
    url: &str,
    body: &str,
) -> (u16, String) {
    let mut state = state.lock().unwrap();
    let path = url.trim_start_matches('/');
    let (resource, rest) = match path.split_once('/') {
        Some((resource, rest)) => (resource, Some(rest)),
        None => (path, None),
    };
    match (method, resource, rest) {
        (Method::Get, "products", Some(name)) => {
            state.queries += 1;
            if behaviour == Behaviour::FailQueries {
                return error(503, "catalog unreachable");
            }
            match state.stock.get(name) {
                Some(&quantity) => data(Product {
                    name: name.to_string(),
                    price: 9.99,
                    quantity,
                }),
                None => error(404, "unknown product"),
            }
        }
        (Method::Post, "orders", None) => {
            state.buys += 1;
            let Ok(order) = serde_json::from_str::<OrderRequest>(body) else {
                return error(400, "malformed body");
            };
            if order.quantity < 1 {
                return error(400, "quantity < 1");
            }
            if let Some(&number) = state.by_request_id.get(&order.request_id) {
                state.repeated_request_ids += 1;
                return data(OrderPlaced {
                    order_number: number,
                });
            }
            if behaviour == Behaviour::RefuseOrders {
                return error(409, "not enough stock");
            }
            let Some(stock) = state.stock.get_mut(&order.name) else {
                return error(404, "unknown product");
            };
            if *stock < order.quantity {
                return error(409, "not enough stock");
            }
            *stock -= order.quantity;
            let number = state.orders.len() as u64;
            state.orders.push((order.name, order.quantity));
            state.by_request_id.insert(order.request_id, number);
            data(OrderPlaced {
                order_number: number,
            })
        }
        (Method::Get, "orders", Some(number)) => {
            state.order_queries += 1;
            let Ok(number) = number.parse::<u64>() else {
                return error(400, "not a number");
            };
            match state.orders.get(number as usize) {
                Some((name, quantity)) => data(OrderRecord {
                    number,
                    name: name.clone(),
                    quantity: quantity + u64::from(behaviour == Behaviour::WrongOrderQuantity),
                }),
                None => error(404, "unknown order"),
            }
        }
        _ => error(404, "no such endpoint"),
    }
}

/// A config for `frontend` writing its CSV into `dir`.
fn config(frontend: &str, dir: &Path) -> Config {
    Config {
        frontend: frontend.to_string(),
        iterations: 40,
        p: 0.8,
        seed: Some(7),
        latency_csv: dir.join("nested/folder/latency.csv"),
        threads: 2,
        client_id: 10,
        tag: "fake".to_string(),
        ..Config::default()
    }
}

fn run(config: &Config) -> Report {
    client::run_with_progress(config, config.seed.unwrap(), ProgressBar::hidden()).unwrap()
}

/// One parsed CSV row.
#[derive(Debug, serde::Deserialize)]
struct Row {
    client: u64,
    kind: String,
    latency_us: u64,
    ok: bool,
    status: u16,
    start_ms: u64,
    p: f64,
    tag: String,
}

/// The CSV's rows, after checking its header line.
fn read_csv(path: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        "client,kind,latency_us,ok,status,start_ms,p,tag"
    );
    assert_eq!(CSV_HEADER.join(","), text.lines().next().unwrap());
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn count(rows: &[Row], kind: &str) -> usize {
    rows.iter().filter(|row| row.kind == kind).count()
}

#[test]
fn two_sessions_buy_and_verify() {
    let products = client::config::DEFAULT_PRODUCTS;
    let fake = FakeFrontend::start(&products, 1000, Behaviour::Honest);
    let dir = tempfile::tempdir().unwrap();
    let config = config(&fake.url, dir.path());
    let report = run(&config);

    assert!(
        report.is_success(),
        "{:?} {:?}",
        report.mismatches,
        report.failures
    );
    assert_eq!(report.exit_code(), EXIT_SUCCESS);

    let rows = read_csv(&config.latency_csv);
    let (queries, buys, order_queries) = (
        count(&rows, "query"),
        count(&rows, "buy"),
        count(&rows, "order_query"),
    );
    assert_eq!(rows.len(), queries + buys + order_queries);
    assert_eq!(rows.len(), report.summary.csv_rows);
    assert_eq!(queries, 2 * 40);
    assert!(buys > 0, "p=0.8 over 80 iterations bought nothing");
    // Every purchase succeeded (plenty of stock) and every order was asked for once.
    assert_eq!(report.summary.orders_made, buys);
    assert_eq!(report.summary.orders_verified, buys);
    assert_eq!(order_queries, buys);

    // The fake saw exactly what the CSV says was sent.
    {
        let state = fake.state();
        assert_eq!(state.queries, queries);
        assert_eq!(state.buys, buys);
        assert_eq!(state.order_queries, order_queries);
        assert_eq!(state.orders.len(), buys);
        assert_eq!(state.repeated_request_ids, 0);
        assert!(state.orders.iter().all(|(_, q)| (1..=3).contains(q)));
    }

    // Summary agrees with the CSV.
    let summary = &report.summary;
    assert_eq!(summary.stats(client::Kind::Query).count, queries as u64);
    assert_eq!(summary.stats(client::Kind::Buy).count, buys as u64);
    assert_eq!(
        summary.stats(client::Kind::OrderQuery).count,
        order_queries as u64
    );
    assert_eq!(summary.stats(client::Kind::Buy).conflicts, 0);
    assert!(summary.to_string().contains("seed: 7"));

    // Columns: session ids from --client-id, p and tag copied, 2xx everywhere.
    let clients: HashSet<u64> = rows.iter().map(|row| row.client).collect();
    assert_eq!(clients, HashSet::from([10, 11]));
    for client in [10, 11] {
        let per_client = rows
            .iter()
            .filter(|row| row.client == client && row.kind == "query");
        assert_eq!(per_client.count(), 40);
    }
    for row in &rows {
        assert!(row.ok && row.status == 200, "{row:?}");
        assert_eq!(row.p, 0.8);
        assert_eq!(row.tag, "fake");
        assert!(row.latency_us < 15_000_000 && row.start_ms < 3_600_000);
    }
}

#[test]
fn wrong_order_quantity_is_a_mismatch() {
    let fake = FakeFrontend::start(&["Tux", "Fox"], 1000, Behaviour::WrongOrderQuantity);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        products: vec!["Tux".into(), "Fox".into()],
        p: 1.0,
        iterations: 10,
        ..config(&fake.url, dir.path())
    };
    let report = run(&config);

    assert!(!report.is_success());
    assert_eq!(report.exit_code(), EXIT_FAILURE);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.summary.orders_made, 20);
    assert_eq!(report.summary.orders_verified, 0);
    assert_eq!(report.mismatches.len(), 20);
    for mismatch in &report.mismatches {
        let expected = format!(
            "store has order {}: {} x{}",
            mismatch.order.number,
            mismatch.order.name,
            mismatch.order.quantity + 1
        );
        assert_eq!(mismatch.found, expected);
    }
    // The order queries are in the CSV as successful requests: the HTTP exchange was fine.
    let rows = read_csv(&config.latency_csv);
    assert_eq!(count(&rows, "order_query"), 20);
}

#[test]
fn out_of_stock_409_is_expected() {
    let fake = FakeFrontend::start(&["Tux"], 1000, Behaviour::RefuseOrders);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        products: vec!["Tux".into()],
        p: 1.0,
        iterations: 5,
        ..config(&fake.url, dir.path())
    };
    let report = run(&config);

    assert!(
        report.is_success(),
        "{:?} {:?}",
        report.mismatches,
        report.failures
    );
    assert_eq!(report.summary.orders_made, 0);
    let buy = report.summary.stats(client::Kind::Buy);
    assert_eq!((buy.count, buy.errors, buy.conflicts), (10, 10, 10));
    let rows = read_csv(&config.latency_csv);
    assert_eq!(rows.len(), 20);
    for row in rows.iter().filter(|row| row.kind == "buy") {
        assert!(!row.ok && row.status == 409, "{row:?}");
    }
}

#[test]
fn never_buys_more_than_the_stock() {
    // Two sessions race for 5 units of one toy. Who wins any race is up to the scheduler; what is
    // checked holds either way.
    let fake = FakeFrontend::start(&["Tux"], 5, Behaviour::Honest);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        products: vec!["Tux".into()],
        p: 1.0,
        iterations: 20,
        ..config(&fake.url, dir.path())
    };
    let report = run(&config);

    assert!(
        report.is_success(),
        "{:?} {:?}",
        report.mismatches,
        report.failures
    );
    let bought: u64 = report.orders().map(|order| order.quantity).sum();
    assert_eq!(
        bought, 5,
        "the sessions stop buying only once the stock is gone"
    );
    assert_eq!(fake.state().stock["Tux"], 0);
    let buy = report.summary.stats(client::Kind::Buy);
    assert_eq!(buy.count, report.summary.orders_made as u64 + buy.conflicts);
}

#[test]
fn server_errors_fail_the_run() {
    let fake = FakeFrontend::start(&["Tux"], 1000, Behaviour::FailQueries);
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        products: vec!["Tux".into()],
        iterations: 3,
        threads: 1,
        ..config(&fake.url, dir.path())
    };
    let report = run(&config);

    assert_eq!(report.exit_code(), EXIT_FAILURE);
    assert_eq!(report.failures.len(), 3);
    assert!(report
        .failures
        .iter()
        .all(|f| f.status == 503 && f.detail.contains("catalog unreachable")));
    let rows = read_csv(&config.latency_csv);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|row| !row.ok && row.status == 503));
}

#[test]
fn unreachable_frontend_is_a_transport_error() {
    // A port that was just free: connecting to it is refused at once.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        iterations: 2,
        threads: 1,
        ..config(&format!("http://127.0.0.1:{port}"), dir.path())
    };
    let report = run(&config);

    assert_eq!(report.exit_code(), EXIT_FAILURE);
    assert_eq!(report.failures.len(), 2);
    assert!(report
        .failures
        .iter()
        .all(|f| f.status == client::STATUS_TRANSPORT_ERROR));
    let rows = read_csv(&config.latency_csv);
    assert!(rows.iter().all(|row| !row.ok && row.status == 0));
}

#[test]
fn same_seed_buys_the_same_toys() {
    let products = client::config::DEFAULT_PRODUCTS;
    let purchases = |seed: u64| {
        let fake = FakeFrontend::start(&products, 1000, Behaviour::Honest);
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            seed: Some(seed),
            ..config(&fake.url, dir.path())
        };
        let report = run(&config);
        assert!(report.is_success());
        report
            .sessions
            .iter()
            .map(|session| {
                session
                    .orders
                    .iter()
                    .map(|order| (order.name.clone(), order.quantity))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let first = purchases(99);
    assert_eq!(first, purchases(99));
    assert_ne!(first, purchases(100));
}
