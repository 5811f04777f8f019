//! Slow and flooding clients against the real store (issue #5, item 5): clients that send their heads
//! or bodies byte by byte, thousands of idle connections, a house full of half-sent requests, many
//! clients at once. Normal requests keep being answered within a loose bound, and the front-end never
//! runs out of threads or file descriptors, nor dies: its `/proc/<pid>` counts are bounded during
//! the flood and fall back afterwards, and it still answers.
//!
//! The limits under test are those of `shared::http::ServerOptions` (10 s for a request's head and
//! small body, 1024 connections per server, the one idle the longest closed to make room).

mod common;

use common::{assert_error, connect, read_answer, threads_and_fds};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use systest::Cluster;

/// A normal request must be answered within this, whatever the flood (loose: a busy 2-core box).
const PROMPT: Duration = Duration::from_secs(2);
/// The servers' `header_timeout`.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The servers' cap on open connections.
const MAX_CONNECTIONS: usize = 1024;

/// Raises this process's soft limit on open files to its hard limit: a test here opens thousands of
/// sockets.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on this process with a valid, initialised struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

/// The front-end's threads and file descriptors.
fn frontend_usage(c: &Cluster) -> (usize, usize) {
    threads_and_fds(c.pid("frontend").expect("the front-end runs"))
}

/// One purchase and one query through the public API (the purchase drops the toy from the
/// front-end's cache, so the query goes to the catalog); panics unless both succeed within
/// [`PROMPT`]. Returns the slower of the two.
fn normal_requests(c: &Cluster, what: &str) -> Duration {
    let t = Instant::now();
    let b = c.buy("Elephant", 1);
    let buy = t.elapsed();
    assert_eq!(b.status, 200, "{what}: a purchase: {b:?}");
    let t = Instant::now();
    let q = c.query("Elephant");
    let query = t.elapsed();
    assert_eq!(q.status, 200, "{what}: a query: {q:?}");
    assert!(
        query < PROMPT && buy < PROMPT,
        "{what}: purchase {buy:?}, query {query:?}"
    );
    query.max(buy)
}

/// Waits (up to `within`) until the front-end's descriptors fall to `fds` or fewer.
fn wait_fds_below(c: &Cluster, fds: usize, within: Duration) -> (usize, usize) {
    let deadline = Instant::now() + within;
    loop {
        let usage = frontend_usage(c);
        if usage.1 <= fds || Instant::now() > deadline {
            return usage;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A client that sends its request a byte at a time.
struct Slow {
    stream: TcpStream,
    bytes: Vec<u8>,
    sent: usize,
    opened: Instant,
    /// When the server answered or closed: the client stops sending then.
    answered: Option<Instant>,
}

impl Slow {
    fn open(url: &str, bytes: Vec<u8>, first: usize) -> Slow {
        let mut stream = connect(url).expect("connect");
        stream.write_all(&bytes[..first]).expect("first bytes");
        Slow {
            stream,
            bytes,
            sent: first,
            opened: Instant::now(),
            answered: None,
        }
    }

    /// Sends one more byte, unless the server has already answered or closed.
    fn step(&mut self) {
        if self.answered.is_some() || self.sent >= self.bytes.len() {
            return;
        }
        self.stream.set_nonblocking(true).expect("non-blocking");
        let peeked = self.stream.peek(&mut [0u8; 1]);
        self.stream.set_nonblocking(false).expect("blocking");
        let answered = !matches!(peeked, Err(ref e) if e.kind() == ErrorKind::WouldBlock);
        if answered
            || self
                .stream
                .write_all(&self.bytes[self.sent..=self.sent])
                .is_err()
        {
            self.answered = Some(Instant::now());
        } else {
            self.sent += 1;
        }
    }

    /// How long after it was opened the server answered (or closed) it.
    fn answered_after(&self) -> Option<Duration> {
        self.answered.map(|t| t - self.opened)
    }
}

/// Items 5a and 5b: 100 clients send a head byte by byte (slow loris), 100 send a small body byte by
/// byte, 50 declare a body of 10^12 bytes and trickle it: together far more than the front-end's 32
/// workers. Normal requests are answered promptly throughout; the slow heads and bodies get a JSON
/// 408 once the header timeout has passed, the huge bodies a JSON 413 at once.
#[test]
fn slow_clients_hold_no_worker_and_are_cut_after_the_header_timeout() {
    raise_fd_limit();
    let mut c = Cluster::new(22200);
    c.start_all(600.0);
    let url = c.frontend_url();
    let (threads0, fds0) = frontend_usage(&c);

    let padding = "p".repeat(400);
    let head =
        format!("GET /products/Tux HTTP/1.1\r\nHost: toystore\r\nX-Padding: {padding}\r\n\r\n");
    let body = format!(r#"{{"name":"Tux","quantity":1{}}}"#, " ".repeat(2000));
    let post = format!(
        "POST /orders HTTP/1.1\r\nHost: toystore\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let huge = format!(
        "POST /orders HTTP/1.1\r\nHost: toystore\r\nContent-Length: 1000000000000\r\n\r\n{}",
        "x".repeat(1000)
    );
    let started = Instant::now();
    let mut heads: Vec<Slow> = (0..100)
        .map(|_| Slow::open(&url, head.clone().into_bytes(), 1))
        .collect();
    let mut bodies: Vec<Slow> = (0..100)
        .map(|_| Slow::open(&url, post.clone().into_bytes(), post.len() - body.len() + 1))
        .collect();
    let huge_start = huge.len() - 999;
    let mut huges: Vec<Slow> = (0..50)
        .map(|_| Slow::open(&url, huge.clone().into_bytes(), huge_start))
        .collect();

    // Every 200 ms each slow client sends one more byte; meanwhile, normal requests.
    let stop = AtomicBool::new(false);
    let (slowest, peak) = std::thread::scope(|s| {
        let driver = s.spawn(|| {
            while !stop.load(Ordering::SeqCst)
                && started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(5)
            {
                for slow in heads
                    .iter_mut()
                    .chain(bodies.iter_mut())
                    .chain(huges.iter_mut())
                {
                    slow.step();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        let mut slowest = Duration::ZERO;
        let mut peak = (0, 0);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            while started.elapsed() < HEADER_TIMEOUT - Duration::from_millis(500) {
                slowest = slowest.max(normal_requests(&c, "during the slow clients"));
                let usage = frontend_usage(&c);
                peak = (peak.0.max(usage.0), peak.1.max(usage.1));
                std::thread::sleep(Duration::from_millis(300));
            }
        }));
        stop.store(true, Ordering::SeqCst);
        driver.join().expect("driver");
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
        (slowest, peak)
    });
    eprintln!(
        "slow clients: slowest normal request {slowest:?}; front-end threads {threads0} -> peak {}, fds {fds0} -> peak {}",
        peak.0, peak.1
    );

    // The huge bodies were refused at once; the slow heads and bodies are cut by the header timeout.
    for (i, slow) in huges.iter_mut().enumerate() {
        let r = read_answer(&mut slow.stream, &mut Vec::new())
            .unwrap_or_else(|e| panic!("huge body {i}: {e}"));
        assert_error(&r, 413, &format!("huge body {i}"));
    }
    for (kind, slows) in [("slow head", &mut heads), ("slow body", &mut bodies)] {
        for (i, slow) in slows.iter_mut().enumerate() {
            let r = read_answer(&mut slow.stream, &mut Vec::new())
                .unwrap_or_else(|e| panic!("{kind} {i}: {e}"));
            assert_error(&r, 408, &format!("{kind} {i}"));
            let after = slow
                .answered_after()
                .unwrap_or_else(|| slow.opened.elapsed());
            assert!(
                after >= HEADER_TIMEOUT - Duration::from_millis(500)
                    && after < HEADER_TIMEOUT + Duration::from_secs(4),
                "{kind} {i} cut after {after:?}"
            );
            // And the connection is closed after the 408.
            let mut rest = [0u8; 64];
            assert!(
                matches!(slow.stream.read(&mut rest), Ok(0) | Err(_)),
                "{kind} {i}: still open after its 408"
            );
        }
    }
    assert!(
        started.elapsed() < HEADER_TIMEOUT + Duration::from_secs(5),
        "the slow clients were cut late: {:?}",
        started.elapsed()
    );
    drop((heads, bodies, huges));
    assert!(c.is_running("frontend"));
    normal_requests(&c, "after the slow clients");
    let after = wait_fds_below(&c, fds0 + 20, Duration::from_secs(5));
    assert!(
        after.1 <= fds0 + 20,
        "descriptors left open: {fds0} before, {} after",
        after.1
    );
    c.wait_consistent(Duration::from_secs(10));
}

/// Item 5c: 3000 idle connections to the public address (the cap is 1024) and 1500 to the catalog,
/// some after a first request (keep-alive), most without sending anything. Normal requests are
/// answered promptly throughout: the connection idle the longest is closed to make room. The
/// front-end's threads and descriptors stay bounded by the cap, and fall back afterwards.
#[test]
fn thousands_of_idle_connections_neither_block_requests_nor_exhaust_the_process() {
    raise_fd_limit();
    let mut c = Cluster::new(22220);
    c.start_all(600.0);
    let (threads0, fds0) = frontend_usage(&c);
    let catalog_pid = c.pid("catalog").expect("the catalog runs");

    let mut idle: Vec<TcpStream> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut peak = (0, 0);
    let mut catalog_peak = (0, 0);
    let opened = Instant::now();
    for i in 0..4500 {
        let url = if i % 3 == 2 {
            c.catalog_url()
        } else {
            c.frontend_url()
        };
        let mut stream = match connect(&url) {
            Ok(s) => s,
            Err(e) => panic!("connection {i}: {e}"),
        };
        if i % 10 == 0 && i % 3 != 2 {
            // A keep-alive client that asked once and stays connected.
            stream
                .write_all(b"GET /products/Tux HTTP/1.1\r\nHost: toystore\r\n\r\n")
                .expect("send");
            let r = read_answer(&mut stream, &mut Vec::new())
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(r.status, 200, "request {i} on a new connection: {r:?}");
        }
        idle.push(stream);
        if i % 500 == 499 {
            slowest = slowest.max(normal_requests(
                &c,
                &format!("with {} idle connections", i + 1),
            ));
        }
    }
    eprintln!("opened 4500 idle connections in {:?}", opened.elapsed());
    for round in 0..10 {
        slowest = slowest.max(normal_requests(
            &c,
            &format!("round {round} with 4500 idle connections"),
        ));
        let usage = frontend_usage(&c);
        peak = (peak.0.max(usage.0), peak.1.max(usage.1));
        let usage = threads_and_fds(catalog_pid);
        catalog_peak = (catalog_peak.0.max(usage.0), catalog_peak.1.max(usage.1));
    }
    let order = c.order(0);
    assert_eq!(order.status, 200, "an order query: {order:?}");
    eprintln!(
        "idle flood: slowest normal request {slowest:?}; front-end threads {threads0} -> peak {}, fds {fds0} -> peak {}; catalog peak threads {}, fds {}",
        peak.0, peak.1, catalog_peak.0, catalog_peak.1
    );
    for (who, (threads, fds)) in [("front-end", peak), ("catalog", catalog_peak)] {
        assert!(threads <= MAX_CONNECTIONS + 150, "{who}: {threads} threads");
        assert!(fds <= 3 * MAX_CONNECTIONS + 150, "{who}: {fds} descriptors");
    }
    drop(idle);
    assert!(c.is_running("frontend") && c.is_running("catalog"));
    normal_requests(&c, "after the idle flood");
    let after = wait_fds_below(&c, fds0 + 20, Duration::from_secs(5));
    assert!(
        after.1 <= fds0 + 20,
        "descriptors left open: {fds0} before, {} after",
        after.1
    );
    c.wait_consistent(Duration::from_secs(10));
}

/// Item 5d: 1100 connections that each send the start of a request and then nothing fill the
/// front-end's 1024 connections with requests in progress (nothing idle to close). A new connection
/// then gets a JSON 503 at once instead of waiting; once the header timeout cuts the half-sent
/// requests, normal requests are served again.
#[test]
fn a_full_house_of_half_sent_requests_gets_503_then_recovers() {
    raise_fd_limit();
    let mut c = Cluster::new(22240);
    c.start_all(600.0);
    let url = c.frontend_url();
    let (threads0, fds0) = frontend_usage(&c);

    let started = Instant::now();
    let half: Vec<TcpStream> = (0..1100)
        .map(|i| {
            let mut s = connect(&url).unwrap_or_else(|e| panic!("connection {i}: {e}"));
            s.write_all(b"GET /prod").expect("send");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let (threads, fds) = frontend_usage(&c);
    eprintln!("full house: front-end threads {threads0} -> {threads}, fds {fds0} -> {fds}");
    assert!(threads <= MAX_CONNECTIONS + 150, "{threads} threads");
    assert!(fds <= 3 * MAX_CONNECTIONS + 150, "{fds} descriptors");

    let t = Instant::now();
    let r = common::request(&url, "GET", "/products/Tux", &[], b"");
    assert_error(&r, 503, "a new connection while every connection is busy");
    assert!(t.elapsed() < PROMPT, "the 503 took {:?}", t.elapsed());

    // Once the header timeout has cut the half-sent requests, normal requests are served again.
    let deadline = started + HEADER_TIMEOUT + Duration::from_secs(5);
    loop {
        let r = common::request(&url, "GET", "/products/Tux", &[], b"");
        if r.status == 200 {
            break;
        }
        assert_error(&r, 503, "while the house is full");
        assert!(
            Instant::now() < deadline,
            "still refused after {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("served again after {:?}", started.elapsed());
    assert!(
        started.elapsed() >= HEADER_TIMEOUT - Duration::from_secs(1),
        "recovered before the timeout?"
    );
    drop(half);
    assert!(c.is_running("frontend"));
    normal_requests(&c, "after the full house");
    let after = wait_fds_below(&c, fds0 + 20, Duration::from_secs(5));
    assert!(
        after.1 <= fds0 + 20,
        "descriptors left open: {fds0} before, {} after",
        after.1
    );
}

/// Item 5e: 64 clients at once, each on its own keep-alive connection, mixing queries, purchases,
/// order queries and bad requests: every request gets its right answer within a loose bound, and
/// every purchase is in the order files.
#[test]
fn many_concurrent_clients_are_all_served() {
    raise_fd_limit();
    let mut c = Cluster::new(22260);
    c.start_all(600.0);
    let url = c.frontend_url();
    let (threads0, fds0) = frontend_usage(&c);
    // 64 x 6 purchases over 8 toys: 48 of each, within their stock of 100.
    const CLIENTS: usize = 64;
    const ROUNDS: usize = 6;
    let toys = [
        "Tux", "Whale", "Bird", "Fox", "Python", "Lego", "Barbie", "Frisbee",
    ];

    let started = Instant::now();
    let results: Vec<(usize, Duration)> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let url = url.clone();
                s.spawn(move || {
                    let mut stream = connect(&url).expect("connect");
                    let mut buf = Vec::new();
                    let mut bought = 0;
                    let mut slowest = Duration::ZERO;
                    for round in 0..ROUNDS {
                        let toy = toys[(k + round) % toys.len()];
                        let buy = format!(r#"{{"name":"{toy}","quantity":1}}"#);
                        let steps: [(&str, String, &[u8], u16); 3] = [
                            ("GET", format!("/products/{toy}"), b"", 200),
                            ("POST", "/orders".into(), buy.as_bytes(), 200),
                            ("POST", "/orders".into(), br#"{"name":"Tux","quantity":0}"#, 400),
                        ];
                        for (method, path, body, expected) in steps {
                            let request = format!(
                                "{method} {path} HTTP/1.1\r\nHost: toystore\r\nContent-Length: {}\r\n\r\n",
                                body.len()
                            );
                            let t = Instant::now();
                            stream.write_all(request.as_bytes()).expect("send");
                            stream.write_all(body).expect("send body");
                            let r = read_answer(&mut stream, &mut buf)
                                .unwrap_or_else(|e| panic!("client {k}: {method} {path}: {e}"));
                            slowest = slowest.max(t.elapsed());
                            assert_eq!(r.status, expected, "client {k}: {method} {path}: {r:?}");
                            if method == "POST" && expected == 200 {
                                bought += 1;
                                let n = r.json()["data"]["order_number"].as_u64().expect("a number");
                                let request = format!("GET /orders/{n} HTTP/1.1\r\nHost: toystore\r\n\r\n");
                                stream.write_all(request.as_bytes()).expect("send");
                                let o = read_answer(&mut stream, &mut buf).expect("order");
                                assert_eq!(o.status, 200, "client {k}: order {n}: {o:?}");
                                assert_eq!(o.json()["data"]["name"], toy);
                            }
                        }
                    }
                    (bought, slowest)
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|t| t.join().expect("client"))
            .collect()
    });
    let elapsed = started.elapsed();
    let (threads, fds) = frontend_usage(&c);
    let slowest = results.iter().map(|r| r.1).max().unwrap_or_default();
    let bought: usize = results.iter().map(|r| r.0).sum();
    eprintln!(
        "{CLIENTS} clients x {ROUNDS} rounds: {} requests in {elapsed:?}, slowest {slowest:?}; front-end threads {threads0} -> {threads}, fds {fds0} -> {fds}",
        CLIENTS * ROUNDS * 4
    );
    assert!(
        slowest < Duration::from_secs(5),
        "a request took {slowest:?}"
    );
    assert!(threads <= threads0 + CLIENTS + 50, "{threads} threads");
    let orders = c.wait_consistent(Duration::from_secs(10));
    assert_eq!(
        orders.len(),
        bought,
        "every purchase answered 200 is an order"
    );
}

/// More buyers at once than the leader has HTTP workers (32 by default, and the front-end's 32
/// workers can all be waiting on a purchase at the leader). A purchase's worker waits for its order
/// to be on a quorum's disks, so if purchases could take every worker, the followers' acks and the
/// front-end's health pings would queue behind them: nothing would commit until purchases gave up
/// at their deadline (600 ms), and the front-end would take the leader for dead. Purchases must go
/// on at their usual pace (a few ms; the bound is loose), with the leader kept.
#[test]
fn more_buyers_than_workers_neither_starve_the_leader_nor_move_it() {
    raise_fd_limit();
    let mut c = Cluster::new(22280);
    c.start_all(600.0);
    let url = c.frontend_url();
    let leader = c.leader().expect("a leader");
    let epoch = c.replica_status(leader).expect("leader status")["promised"].clone();
    const CLIENTS: usize = 48;
    const ROUNDS: usize = 12;
    // 48 x 12 purchases over ten toys: at most 60 of each, within their stock of 100.
    let toys = [
        "Tux", "Whale", "Elephant", "Bird", "Fox", "Python", "Lego", "Barbie", "Frisbee", "Marbles",
    ];
    let mut took: Vec<Duration> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let url = url.clone();
                s.spawn(move || {
                    let mut stream = connect(&url).expect("connect");
                    let mut buf = Vec::new();
                    let mut took = Vec::new();
                    for round in 0..ROUNDS {
                        let toy = toys[(k * ROUNDS + round) % toys.len()];
                        let body = format!(r#"{{"name":"{toy}","quantity":1}}"#);
                        let request = format!(
                            "POST /orders HTTP/1.1\r\nHost: toystore\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        let t = Instant::now();
                        stream.write_all(request.as_bytes()).expect("send");
                        let r = read_answer(&mut stream, &mut buf)
                            .unwrap_or_else(|e| panic!("client {k}: purchase: {e}"));
                        took.push(t.elapsed());
                        assert_eq!(r.status, 200, "client {k}: {toy}: {r:?}");
                    }
                    took
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|t| t.join().expect("client"))
            .collect()
    });
    took.sort();
    let median = took[took.len() / 2];
    let slowest = took[took.len() - 1];
    eprintln!("{CLIENTS} buyers x {ROUNDS}: median {median:?}, slowest {slowest:?}");
    assert!(
        median < Duration::from_millis(200),
        "median purchase took {median:?} (slowest {slowest:?}): purchases wait for their deadline"
    );
    assert_eq!(
        c.leader(),
        Some(leader),
        "the leader moved under plain load"
    );
    assert_eq!(
        c.replica_status(leader).expect("leader status")["promised"],
        epoch,
        "a new election under plain load"
    );
    let orders = c.wait_consistent(Duration::from_secs(10));
    assert_eq!(orders.len(), CLIENTS * ROUNDS, "every purchase is an order");
}
