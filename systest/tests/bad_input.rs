//! Bad input to every service of the real store (issue #5, items 4 and 6): each answer is a clear 4xx
//! in the contract's error shape `{"error": {"code": N, "message": "..."}}`, and nothing changes: the
//! stock, every replica's order file and the catalog journal are the same afterwards. Internal
//! endpoints are refused without the shared secret (403) and are not served on the public address
//! (404).
//!
//! Requests go over raw sockets (`common`), so that what HTTP clients refuse to send (non-UTF-8 request
//! lines, malformed heads, lengths that do not match) can be sent too.

mod common;

use common::{assert_error, exchange, request, Raw};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;
use systest::{Cluster, REPLICAS};

/// 2^63: fits a u64, and is far more than any stock.
const TWO_POW_63: &str = "9223372036854775808";
/// 2^64: one more than the largest u64.
const TWO_POW_64: &str = "18446744073709551616";

/// What bad input must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    stock: BTreeMap<String, u64>,
    orders: Vec<String>,
    journal: String,
}

/// The catalog journal's rows that change stock or record a take: a bad purchase that reaches the
/// catalog well-formed (2^63 units) is refused for good there, which adds a `refuse` row and changes
/// nothing else; a leader that answers 503 may cancel an id the same way.
fn snapshot(c: &Cluster) -> Snapshot {
    let journal: Vec<_> = c
        .journal()
        .into_iter()
        .filter(|r| r.kind != systest::JournalKind::Refuse)
        .collect();
    Snapshot {
        stock: c.stock(),
        orders: REPLICAS.iter().map(|id| c.orders_text(*id)).collect(),
        journal: format!("{journal:?}"),
    }
}

/// A catalog body with the sitting leader's `epoch` put first into each JSON object, so that a take
/// is refused for the fault the test means, not for a missing or a stale epoch (the catalog turns
/// away a take older than the newest leader it has seen). Bodies that are not objects stay as they
/// are.
fn with_epoch(body: &[u8], epoch: u64) -> Vec<u8> {
    match body.strip_prefix(b"{") {
        Some(rest) => [format!("{{\"epoch\":{epoch},").as_bytes(), rest].concat(),
        None => body.to_vec(),
    }
}

/// The epoch of the leader the front-end names.
fn leader_epoch(c: &Cluster) -> u64 {
    let leader = c.leader().expect("a leader");
    c.replica_status(leader).expect("its status")["promised"]["epoch"]
        .as_u64()
        .expect("an epoch")
}

/// Starts the store, buys once so that every file exists, waits until every replica has the order,
/// and returns the snapshot to compare with at the end.
fn started(base: u16) -> (Cluster, Snapshot) {
    let mut c = Cluster::new(base);
    c.start_all(600.0);
    let a = c.buy("Tux", 1);
    assert_eq!(a.status, 200, "{a:?}");
    c.wait_consistent(Duration::from_secs(10));
    let before = snapshot(&c);
    (c, before)
}

/// Asserts that nothing changed, then that the store still takes a purchase.
fn assert_unchanged_and_working(c: &Cluster, before: &Snapshot) {
    assert_eq!(&snapshot(c), before, "bad input changed the store");
    c.check_consistent()
        .unwrap_or_else(|e| panic!("inconsistent after bad input: {e}"));
    let a = c.buy("Whale", 1);
    assert_eq!(a.status, 200, "a good purchase after the bad input: {a:?}");
    c.wait_consistent(Duration::from_secs(10));
}

/// Every replica's status once they all hold every order as committed (followers learn the commit
/// point with the next heartbeat), so that two of these can be compared.
fn settled_statuses(c: &Cluster) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let statuses: Vec<Value> = REPLICAS
            .iter()
            .map(|id| c.replica_status(*id).unwrap_or(Value::Null))
            .collect();
        let settled = statuses.iter().all(|s| {
            s["len"].as_u64().is_some() && s["len"] == statuses[0]["len"] && s["commit"] == s["len"]
        });
        if settled {
            return statuses;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replicas did not settle: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn secret_header(c: &Cluster) -> [(&str, &str); 1] {
    [("X-Toystore-Secret", c.secret())]
}

/// A name of 10 kB.
fn long_name() -> String {
    "N".repeat(10_000)
}

/// Bodies that are not a purchase at all, or have a field of the wrong type or none, or a quantity
/// that is not a whole number from 1 to 2^64-1: all 400 wherever a purchase is read.
/// `id` is the request id added where the body has one (the internal form needs it).
fn malformed_purchases(id: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let with = |fields: &str| -> Vec<u8> {
        match id {
            Some(id) => format!(r#"{{"request_id":"{id}",{fields}}}"#).into_bytes(),
            None => format!("{{{fields}}}").into_bytes(),
        }
    };
    let mut bodies: Vec<(String, Vec<u8>)> = vec![
        ("empty body".into(), b"".to_vec()),
        ("not JSON".into(), b"buy me a Tux".to_vec()),
        ("truncated object".into(), b"{".to_vec()),
        (
            "truncated value".into(),
            br#"{"name":"Tux","quantity":"#.to_vec(),
        ),
        ("truncated string".into(), br#"{"name":"Tu"#.to_vec()),
        ("an array".into(), b"[\"Tux\",1]".to_vec()),
        ("a string".into(), b"\"Tux\"".to_vec()),
        ("null".into(), b"null".to_vec()),
        (
            "not UTF-8".into(),
            b"{\"name\":\"T\xffx\",\"quantity\":1}".to_vec(),
        ),
        (
            "trailing garbage".into(),
            with(r#""name":"Tux","quantity":1} and more"#),
        ),
        ("no fields".into(), b"{}".to_vec()),
        ("no quantity".into(), with(r#""name":"Tux""#)),
        ("no name".into(), with(r#""quantity":1"#)),
        ("name a number".into(), with(r#""name":5,"quantity":1"#)),
        ("name null".into(), with(r#""name":null,"quantity":1"#)),
        ("name a list".into(), with(r#""name":["Tux"],"quantity":1"#)),
        (
            "quantity a string".into(),
            with(r#""name":"Tux","quantity":"1""#),
        ),
        (
            "quantity a bool".into(),
            with(r#""name":"Tux","quantity":true"#),
        ),
        (
            "quantity null".into(),
            with(r#""name":"Tux","quantity":null"#),
        ),
        (
            "quantity an object".into(),
            with(r#""name":"Tux","quantity":{"n":1}"#),
        ),
        ("quantity 0".into(), with(r#""name":"Tux","quantity":0"#)),
        ("quantity -1".into(), with(r#""name":"Tux","quantity":-1"#)),
        (
            "quantity -2^63".into(),
            with(r#""name":"Tux","quantity":-9223372036854775808"#),
        ),
        (
            "quantity 1.5".into(),
            with(r#""name":"Tux","quantity":1.5"#),
        ),
        (
            "quantity 0.5".into(),
            with(r#""name":"Tux","quantity":0.5"#),
        ),
        (
            "quantity 1e30".into(),
            with(r#""name":"Tux","quantity":1e30"#),
        ),
        (
            "quantity 2^64".into(),
            with(&format!(r#""name":"Tux","quantity":{TWO_POW_64}"#)),
        ),
        (
            "quantity 10^30".into(),
            with(r#""name":"Tux","quantity":1000000000000000000000000000000"#),
        ),
        (
            "name twice".into(),
            with(r#""name":"Tux","name":"Whale","quantity":1"#),
        ),
    ];
    if id.is_some() {
        bodies.push((
            "no request id".into(),
            br#"{"name":"Tux","quantity":1}"#.to_vec(),
        ));
        bodies.push((
            "request id a number".into(),
            br#"{"request_id":7,"name":"Tux","quantity":1}"#.to_vec(),
        ));
    }
    bodies
}

/// Well-formed purchases with a request id no service accepts: 400.
fn bad_request_ids() -> Vec<(String, Vec<u8>)> {
    ["", "a b", "tux\nwhale", "é", &"r".repeat(10_000)]
        .iter()
        .map(|id| {
            let shown: String = id.chars().take(20).collect();
            let body = json!({"request_id": id, "name": "Tux", "quantity": 1});
            (
                format!("request id {shown:?}"),
                body.to_string().into_bytes(),
            )
        })
        .collect()
}

/// A request whose line is not UTF-8: HTTP clients refuse to send it, so it goes over a raw socket.
fn non_utf8_request_line(path_prefix: &str) -> Vec<u8> {
    let mut bytes = format!("GET {path_prefix}T").into_bytes();
    bytes.extend_from_slice(b"\xff\xfex HTTP/1.1\r\nHost: toystore\r\nConnection: close\r\n\r\n");
    bytes
}

/// Asserts the answer to a raw request is the contract's error with status `code`.
fn raw_error(url: &str, bytes: &[u8], code: u16, what: &str) {
    let r = exchange(url, bytes).unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
    assert_error(&r, code, what);
}

/// Sends a body of `Content-Length: 10^12` without the body: 413 at once, and the server neither
/// allocates the declared size nor waits for it.
fn huge_declared_body(url: &str, path: &str, headers: &[(&str, &str)], what: &str) {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: toystore\r\nContent-Length: 1000000000000\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n{\"name\":");
    raw_error(url, head.as_bytes(), 413, what);
}

/// Sends a body of `len` bytes for real, from another thread (the server may answer and close
/// before it is all sent), and returns the answer.
fn streamed_body(url: &str, path: &str, headers: &[(&str, &str)], len: usize) -> Raw {
    let mut head = format!("POST {path} HTTP/1.1\r\nHost: toystore\r\nContent-Length: {len}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = common::connect(url).expect("connect");
    stream.write_all(head.as_bytes()).expect("send the head");
    let mut writer = stream.try_clone().expect("clone");
    std::thread::scope(|s| {
        s.spawn(move || {
            let chunk = vec![b' '; 64 << 10];
            let mut sent = 0;
            while sent < len
                && writer
                    .write_all(&chunk[..chunk.len().min(len - sent)])
                    .is_ok()
            {
                sent += chunk.len();
            }
        });
        common::read_answer(&mut stream, &mut Vec::new())
            .unwrap_or_else(|e| panic!("{path}: no answer to a body of {len} bytes: {e}"))
    })
}

fn data(r: &Raw) -> Value {
    r.json()["data"].clone()
}

/// Item 4 on the public API: `POST /orders` with every kind of bad body, and `GET /orders/<n>` with
/// bad numbers.
#[test]
fn the_public_api_refuses_bad_purchases_and_changes_nothing() {
    let (c, before) = started(22000);
    let url = c.frontend_url();
    let post = |body: &[u8]| request(&url, "POST", "/orders", &[], body);

    for (what, body) in malformed_purchases(None) {
        assert_error(&post(&body), 400, &what);
    }
    for (what, body) in bad_request_ids() {
        assert_error(&post(&body), 400, &what);
    }
    let name = long_name();
    assert_error(
        &post(json!({"name": name, "quantity": 1}).to_string().as_bytes()),
        400,
        "10 kB name",
    );
    assert_error(&post(br#"{"name":"","quantity":1}"#), 400, "empty name");
    assert_error(
        &post(br#"{"name":"NoSuchToy","quantity":1}"#),
        404,
        "unknown product",
    );
    // 2^63 and 2^64-1 are whole numbers a u64 holds: not enough stock, not malformed.
    let q63 = format!(r#"{{"name":"Tux","quantity":{TWO_POW_63}}}"#);
    assert_error(&post(q63.as_bytes()), 409, "quantity 2^63");
    assert_error(
        &post(br#"{"name":"Tux","quantity":18446744073709551615}"#),
        409,
        "quantity 2^64-1",
    );

    // Bodies the server refuses before parsing.
    let padded = format!(r#"{{"name":"Tux","quantity":1{}}}"#, " ".repeat(20_000));
    assert_error(&post(padded.as_bytes()), 413, "a 20 kB purchase");
    let r = streamed_body(&url, "/orders", &[], 5 << 20);
    assert_error(&r, 413, "a body of 5 MiB");
    let chunked = b"POST /orders HTTP/1.1\r\nHost: toystore\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1b\r\n{\"name\":\"Tux\",\"quantity\":1}\r\n0\r\n\r\n";
    raw_error(&url, chunked, 400, "a chunked purchase");
    huge_declared_body(&url, "/orders", &[], "Content-Length: 10^12");
    assert!(
        c.is_running("frontend"),
        "the front-end died on a huge Content-Length"
    );

    for (path, code) in [
        ("/orders/abc", 400),
        ("/orders/-1", 400),
        ("/orders/1.5", 400),
        ("/orders/%30", 400),
        (&format!("/orders/{TWO_POW_64}") as &str, 400),
        ("/orders/999", 404),
        ("/orders/18446744073709551615", 404),
    ] {
        assert_error(&request(&url, "GET", path, &[], b""), code, path);
    }
    assert_unchanged_and_working(&c, &before);
}

/// Item 4 on the public API: bad paths (10 kB, non-UTF-8 raw or percent-encoded), malformed request
/// heads that tiny_http answers by itself, wrong methods and unknown paths.
#[test]
fn the_public_api_refuses_bad_paths_methods_and_heads() {
    let (c, before) = started(22020);
    let url = c.frontend_url();
    let get = |path: &str| request(&url, "GET", path, &[], b"");

    // Paths the handler sees.
    let long = format!("/products/{}", long_name());
    assert_error(&get(&long), 400, "10 kB product name in the path");
    for path in [
        "/products/%FF%FE",
        "/products/%zz",
        "/products/%E2%82",
        "/products/Tux%",
    ] {
        assert_error(&get(path), 400, path);
    }
    assert_error(
        &get("/products/No%20Such%20Toy"),
        404,
        "unknown product, percent-encoded",
    );
    assert_error(&get("/products/NoSuchToy"), 404, "unknown product");
    let tux = get("/products/%54ux");
    assert_eq!(
        tux.status, 200,
        "a percent-encoded name is decoded: {tux:?}"
    );
    assert_eq!(data(&tux)["name"], "Tux");

    // Heads tiny_http refuses before a handler sees them: the same JSON error shape.
    raw_error(
        &url,
        &non_utf8_request_line("/products/"),
        400,
        "non-UTF-8 path",
    );
    let raw =
        |line: &str| format!("{line}\r\nHost: toystore\r\nConnection: close\r\n\r\n").into_bytes();
    raw_error(
        &url,
        &raw("GET /products/Tüx HTTP/1.1"),
        400,
        "non-ASCII UTF-8 path",
    );
    raw_error(&url, b"HELLO\r\n\r\n", 400, "garbage request line");
    raw_error(&url, &raw("GET /products/Tux"), 400, "no HTTP version");
    raw_error(
        &url,
        &raw("GET /products/Tux HTTP/9.9"),
        400,
        "unknown HTTP version",
    );
    raw_error(
        &url,
        &raw("GET /products/Tux HTTP/2.0"),
        505,
        "HTTP/2.0 request line",
    );
    raw_error(
        &url,
        b"GET /products/Tux HTTP/1.1\r\nHost: toystore\r\nno colon here\r\n\r\n",
        400,
        "header without a colon",
    );
    raw_error(
        &url,
        b"GET /products/Tux HTTP/1.1\r\nHost: toystore\r\nX-Name: T\xfcx\r\n\r\n",
        400,
        "non-ASCII header",
    );
    raw_error(
        &url,
        b"POST /orders HTTP/1.1\r\nHost: toystore\r\nExpect: a miracle\r\nContent-Length: 2\r\n\r\n",
        417,
        "unknown Expect",
    );
    let line = raw(&format!("GET /products/{} HTTP/1.1", "a".repeat(70_000)));
    raw_error(&url, &line, 414, "a 70 kB request line");
    let mut headers = b"GET /products/Tux HTTP/1.1\r\nHost: toystore\r\n".to_vec();
    for i in 0..100 {
        headers.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "p".repeat(1000)).as_bytes());
    }
    headers.extend_from_slice(b"\r\n");
    raw_error(&url, &headers, 431, "100 kB of headers");

    // Wrong methods on known paths, and unknown paths.
    for (method, path) in [
        ("PUT", "/products/Tux"),
        ("DELETE", "/products/Tux"),
        ("PATCH", "/products/Tux"),
        ("OPTIONS", "/products/Tux"),
        ("BREW", "/products/Tux"),
        ("POST", "/products/Tux"),
        ("GET", "/orders"),
        ("PUT", "/orders"),
        ("DELETE", "/orders/0"),
        ("POST", "/orders/0"),
    ] {
        assert_error(
            &request(&url, method, path, &[], b""),
            405,
            &format!("{method} {path}"),
        );
    }
    for path in [
        "/",
        "/nothing",
        "/products",
        "/products/Tux/price",
        "/orders/0/1",
        "/ORDERS/0",
    ] {
        assert_error(&get(path), 404, path);
    }
    assert_error(
        &request(&url, "DELETE", "/nothing", &[], b""),
        404,
        "DELETE /nothing",
    );

    // Plain HTTP/1.0 still works.
    let r = exchange(&url, b"GET /products/Tux HTTP/1.0\r\n\r\n").expect("HTTP/1.0");
    assert_eq!(r.status, 200, "{r:?}");
    assert_unchanged_and_working(&c, &before);
}

/// Item 4 on the catalog (with the secret): bad takes, paths, methods and bodies.
#[test]
fn the_catalog_refuses_bad_input_and_changes_nothing() {
    let (c, before) = started(22040);
    let url = c.catalog_url();
    let secret = secret_header(&c);
    let epoch = leader_epoch(&c);
    let take = |body: &[u8]| {
        request(
            &url,
            "POST",
            "/internal/take",
            &secret,
            &with_epoch(body, epoch),
        )
    };

    for (what, body) in malformed_purchases(Some("bad-1")) {
        assert_error(&take(&body), 400, &what);
    }
    for (what, body) in bad_request_ids() {
        assert_error(&take(&body), 400, &what);
    }
    let name = long_name();
    let body = json!({"request_id": "bad-2", "name": name, "quantity": 1}).to_string();
    assert_error(&take(body.as_bytes()), 400, "10 kB name");
    assert_error(
        &take(br#"{"request_id":"bad-3","name":"NoSuchToy","quantity":1}"#),
        404,
        "unknown product",
    );
    // Well-formed: refused for good (a `refuse` row), no stock taken.
    let q63 = format!(r#"{{"request_id":"bad-4","name":"Tux","quantity":{TWO_POW_63}}}"#);
    assert_error(&take(q63.as_bytes()), 409, "quantity 2^63");
    let take_without_epoch = request(
        &url,
        "POST",
        "/internal/take",
        &secret,
        br#"{"request_id":"bad-5","name":"Tux","quantity":1}"#,
    );
    assert_error(&take_without_epoch, 400, "a take without an epoch");
    let cancel = |body: &[u8]| request(&url, "POST", "/internal/cancel", &secret, body);
    for (what, body) in [
        ("empty cancel", &b""[..]),
        ("cancel without an epoch", br#"{"request_id":"bad-6"}"#),
        ("cancel with a bad id", br#"{"request_id":"a b","epoch":0}"#),
        (
            "cancel with a negative epoch",
            br#"{"request_id":"bad-7","epoch":-1}"#,
        ),
    ] {
        assert_error(&cancel(body), 400, what);
    }

    let get = |path: &str| request(&url, "GET", path, &secret, b"");
    assert_error(
        &get(&format!("/products/{}", long_name())),
        404,
        "10 kB name in the path",
    );
    assert_error(
        &get("/products/%FF%FE"),
        400,
        "percent-encoded non-UTF-8 name",
    );
    assert_error(&get("/internal/takes?after=x"), 400, "takes after x");
    assert_error(&get("/internal/takes?after=-1"), 400, "takes after -1");
    assert_error(
        &get("/internal/takes?after=0&epoch=x"),
        400,
        "takes for epoch x",
    );
    raw_error(
        &url,
        &non_utf8_request_line("/products/"),
        400,
        "non-UTF-8 path",
    );
    for (method, path) in [
        ("POST", "/products/Tux"),
        ("PUT", "/products"),
        ("GET", "/internal/take"),
        ("GET", "/internal/cancel"),
        ("DELETE", "/internal/takes"),
        ("POST", "/internal/health"),
    ] {
        assert_error(
            &request(&url, method, path, &secret, b""),
            405,
            &format!("{method} {path}"),
        );
    }
    for path in [
        "/",
        "/internal",
        "/internal/nothing",
        "/internal/take/1",
        "/products/Tux/x",
    ] {
        assert_error(&get(path), 404, path);
    }
    huge_declared_body(&url, "/internal/take", &secret, "Content-Length: 10^12");
    let r = streamed_body(&url, "/internal/take", &secret, 5 << 20);
    assert_error(&r, 413, "a body of 5 MiB");
    assert!(
        c.is_running("catalog"),
        "the catalog died on a huge Content-Length"
    );
    assert_unchanged_and_working(&c, &before);
}

/// Item 4 on the order replicas (with the secret): bad purchases to the leader and to a follower,
/// and malformed messages to the internal endpoints of replication and leader choice.
#[test]
fn the_order_replicas_refuse_bad_input_and_change_nothing() {
    let (c, before) = started(22060);
    let leader = c.leader().expect("a leader");
    let follower = REPLICAS.into_iter().find(|id| *id != leader).unwrap();
    let status_before = settled_statuses(&c);
    let secret = secret_header(&c);

    for id in [leader, follower] {
        let url = c.order_url(id);
        let post = |path: &str, body: &[u8]| request(&url, "POST", path, &secret, body);
        let get = |path: &str| request(&url, "GET", path, &secret, b"");
        for (what, body) in malformed_purchases(Some("bad-1")) {
            assert_error(
                &post("/orders", &body),
                400,
                &format!("replica {id}: {what}"),
            );
        }
        for (what, body) in bad_request_ids() {
            assert_error(
                &post("/orders", &body),
                400,
                &format!("replica {id}: {what}"),
            );
        }
        let name = long_name();
        let body = json!({"request_id": "bad-2", "name": name, "quantity": 1}).to_string();
        assert_error(&post("/orders", body.as_bytes()), 400, "10 kB name");
        for endpoint in ["/internal/msg", "/internal/leader"] {
            for body in [
                &b"{"[..],
                b"[]",
                b"null",
                b"",
                br#"{"ballot":{"epoch":"x","leader":1}}"#,
                br#"{"from":"x","msgs":[]}"#,
                br#"{"from":1,"msgs":[{"prepare":{"ballot":{"epoch":-1,"leader":1}}}]}"#,
                br#"{"from":1,"msgs":[{"no_such_message":{}}]}"#,
            ] {
                let what = format!("replica {id}: {endpoint} {}", String::from_utf8_lossy(body));
                assert_error(&post(endpoint, body), 400, &what);
            }
        }
        for path in ["/orders/abc", "/orders/-1"] {
            assert_error(&get(path), 400, &format!("replica {id}: {path}"));
        }
        assert_error(&get("/orders/999"), 404, "order 999");
        for (method, path) in [
            ("GET", "/orders"),
            ("DELETE", "/orders/0"),
            ("GET", "/internal/msg"),
            ("GET", "/internal/leader"),
            ("PUT", "/internal/msg"),
            ("POST", "/internal/health"),
        ] {
            let what = format!("replica {id}: {method} {path}");
            assert_error(&request(&url, method, path, &secret, b""), 405, &what);
        }
        for path in [
            "/",
            "/internal",
            "/internal/nothing",
            "/internal/log?from=0",
            "/internal/append",
            "/orders/0/1",
            "/products/Tux",
        ] {
            assert_error(&get(path), 404, &format!("replica {id}: {path}"));
        }
        raw_error(
            &url,
            &non_utf8_request_line("/orders/"),
            400,
            "non-UTF-8 path",
        );
        huge_declared_body(&url, "/internal/msg", &secret, "Content-Length: 10^12");
    }
    // The leader refuses what no catalog has, and what no stock covers.
    let url = c.order_url(leader);
    let post = |body: &[u8]| request(&url, "POST", "/orders", &secret, body);
    assert_error(
        &post(br#"{"request_id":"bad-3","name":"NoSuchToy","quantity":1}"#),
        404,
        "unknown product",
    );
    let q63 = format!(r#"{{"request_id":"bad-4","name":"Tux","quantity":{TWO_POW_63}}}"#);
    assert_error(&post(q63.as_bytes()), 409, "quantity 2^63");

    for id in REPLICAS {
        assert!(c.is_running(&format!("order-{id}")), "replica {id} died");
    }
    assert_eq!(
        settled_statuses(&c),
        status_before,
        "bad input changed a replica's state"
    );
    assert_eq!(c.leader(), Some(leader));
    assert_unchanged_and_working(&c, &before);
}

/// Item 4 on the front-end's internal address (with the secret): bad invalidations, paths, methods
/// and bodies.
#[test]
fn the_frontend_internal_address_refuses_bad_input() {
    let (c, before) = started(22080);
    let url = c.frontend_internal_url();
    let secret = secret_header(&c);
    let post = |body: &[u8]| request(&url, "POST", "/internal/invalidate", &secret, body);
    for body in [
        &b""[..],
        b"{",
        b"null",
        b"[\"Tux\"]",
        b"{}",
        br#"{"names":"Tux"}"#,
        br#"{"names":[1]}"#,
        br#"{"names":["Tux"]"#,
        b"{\"names\":[\"T\xffx\"]}",
    ] {
        assert_error(&post(body), 400, &String::from_utf8_lossy(body));
    }
    // Dropping an unknown name, however long, is harmless.
    let name = long_name();
    let r = post(json!({"names": [name]}).to_string().as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    for (method, path) in [
        ("GET", "/internal/invalidate"),
        ("POST", "/internal/status"),
        ("DELETE", "/internal/health"),
    ] {
        assert_error(
            &request(&url, method, path, &secret, b""),
            405,
            &format!("{method} {path}"),
        );
    }
    for path in [
        "/",
        "/internal",
        "/internal/nothing",
        "/products/Tux",
        "/orders/0",
    ] {
        assert_error(&request(&url, "GET", path, &secret, b""), 404, path);
    }
    raw_error(
        &url,
        &non_utf8_request_line("/internal/"),
        400,
        "non-UTF-8 path",
    );
    huge_declared_body(
        &url,
        "/internal/invalidate",
        &secret,
        "Content-Length: 10^12",
    );
    assert!(
        c.is_running("frontend"),
        "the front-end died on a huge Content-Length"
    );
    assert_unchanged_and_working(&c, &before);
}

/// Item 6: every internal endpoint of every service answers 403 to a call without the secret or with
/// a wrong one (even a call that would change something), and none is served on the public address.
#[test]
fn internal_endpoints_need_the_secret_and_are_not_public() {
    let (c, before) = started(22100);
    let status_before = settled_statuses(&c);
    let leader = c.leader().expect("a leader");
    let epoch = status_before[0]["promised"]["epoch"].as_u64().unwrap();

    // (server, method, path, a body that, with the secret, would be accepted)
    let mut endpoints: Vec<(String, &str, &str, Value)> = vec![
        (
            c.frontend_internal_url(),
            "POST",
            "/internal/invalidate",
            json!({"names": ["Tux"]}),
        ),
        (
            c.frontend_internal_url(),
            "GET",
            "/internal/status",
            Value::Null,
        ),
        (
            c.frontend_internal_url(),
            "GET",
            "/internal/health",
            Value::Null,
        ),
        (
            c.catalog_url(),
            "POST",
            "/internal/take",
            json!({"request_id": "no-secret-1", "name": "Tux", "quantity": 5, "epoch": epoch}),
        ),
        (
            c.catalog_url(),
            "POST",
            "/internal/cancel",
            json!({"request_id": "no-secret-2", "epoch": epoch}),
        ),
        (
            c.catalog_url(),
            "GET",
            "/internal/takes?after=0",
            Value::Null,
        ),
        (c.catalog_url(), "GET", "/internal/health", Value::Null),
        (c.catalog_url(), "GET", "/products", Value::Null),
        (c.catalog_url(), "GET", "/products/Tux", Value::Null),
    ];
    for id in REPLICAS {
        let url = c.order_url(id);
        let ballot = json!({"epoch": epoch + 10, "leader": id});
        let order = json!({"number": 1, "name": "Tux", "quantity": 7, "request_id": "forged-1", "epoch": epoch + 10});
        let append = json!({
            "ballot": ballot, "start": 1, "prev_epoch": epoch, "entries": [order],
            "commit": 2, "view_len": 2,
        });
        let forger = if id == 1 { 2 } else { 1 };
        let prepare = json!({"from": forger, "msgs": [{"prepare": {"ballot": ballot}}]});
        let append = json!({"from": forger, "msgs": [{"append": append}]});
        endpoints.extend([
            (
                url.clone(),
                "POST",
                "/internal/leader",
                json!({ "ballot": ballot }),
            ),
            (url.clone(), "POST", "/internal/msg", prepare),
            (url.clone(), "POST", "/internal/msg", append),
            (url.clone(), "GET", "/internal/health", Value::Null),
            (
                url.clone(),
                "POST",
                "/orders",
                json!({"request_id": "no-secret-2", "name": "Tux", "quantity": 5}),
            ),
            (url.clone(), "GET", "/orders/0", Value::Null),
        ]);
    }

    let wrong = format!("{}x", c.secret());
    let prefix = &c.secret()[..c.secret().len() - 1];
    let refusals: [(&str, Vec<(&str, &str)>); 5] = [
        ("no secret", vec![]),
        ("a wrong secret", vec![("X-Toystore-Secret", "guess")]),
        ("the secret and more", vec![("X-Toystore-Secret", &wrong)]),
        (
            "a prefix of the secret",
            vec![("X-Toystore-Secret", prefix)],
        ),
        (
            "the secret in another header",
            vec![("Authorization", c.secret())],
        ),
    ];
    for (url, method, path, body) in &endpoints {
        let body = if body.is_null() {
            Vec::new()
        } else {
            body.to_string().into_bytes()
        };
        for (what, headers) in &refusals {
            let r = request(url, method, path, headers, &body);
            assert_error(&r, 403, &format!("{method} {url}{path} with {what}"));
        }
        // The public address serves none of the internal paths, secret or not.
        if !path.starts_with("/internal/") {
            continue;
        }
        for headers in [vec![], secret_header(&c).to_vec()] {
            let r = request(&c.frontend_url(), method, path, &headers, &body);
            assert_error(&r, 404, &format!("{method} {path} on the public address"));
        }
    }
    // With the secret, the same servers answer: the 403s were the secret check.
    for url in std::iter::once(c.frontend_internal_url())
        .chain(std::iter::once(c.catalog_url()))
        .chain(REPLICAS.iter().map(|id| c.order_url(*id)))
    {
        let r = request(&url, "GET", "/internal/health", &secret_header(&c), b"");
        assert_eq!(r.status, 200, "{url}: {r:?}");
    }
    assert_eq!(
        settled_statuses(&c),
        status_before,
        "a call without the secret changed a replica"
    );
    assert_eq!(c.leader(), Some(leader));
    assert_unchanged_and_working(&c, &before);
}
