//! Tests of fixes 5 to 9 of the vendored `tiny_http` 0.12.0 (`vendor/tiny_http/PATCHES.md`): unread
//! bodies, `Connection: close`, malformed and oversized heads, answers with a body, small bodies read
//! before a handler sees them, and idle connections closed to make room.
//!
//! Each test runs a real `tiny_http::Server` on 127.0.0.1 with 4 worker threads calling `recv()`, and
//! talks to it over raw `TcpStream`s (`TCP_NODELAY` set). Time bounds are loose: where a fix gives
//! milliseconds, the fault gives seconds or forever. Unpatched, `an_unread_body_is_not_allocated_whole`
//! aborts the whole test binary (the allocation of the declared size fails).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http::{ConnectionLimits, Header, Request, Response, Server, StatusCode};

const WORKERS: usize = 4;
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// A server with `WORKERS` threads calling `recv()`; stopped and joined on drop.
struct TestServer {
    server: Arc<Server>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl TestServer {
    fn with_limits(limits: ConnectionLimits) -> TestServer {
        let server = Server::http_with_limits("127.0.0.1:0", limits).expect("bind");
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|_| {
                let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
                thread::spawn(move || loop {
                    match server.recv() {
                        Ok(request) => handle(request),
                        Err(_) if stop.load(Ordering::SeqCst) => break,
                        Err(_) => {}
                    }
                })
            })
            .collect();
        TestServer {
            server,
            addr,
            stop,
            workers,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in &self.workers {
            self.server.unblock();
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// `/refuse`: 413 with `Connection: close`, body unread. `/echo`: the body's length. Anything
/// else: `ok`, body unread.
fn handle(mut request: Request) {
    let response = match request.url() {
        "/refuse" => Response::from_string("too large")
            .with_status_code(413)
            .with_header(Header::from_bytes("Connection", "close").unwrap()),
        "/echo" => {
            let mut body = Vec::new();
            match request.as_reader().read_to_end(&mut body) {
                Ok(_) => Response::from_string(body.len().to_string()),
                Err(e) => Response::from_string(e.to_string()).with_status_code(400),
            }
        }
        _ => Response::from_string("ok"),
    };
    let _ = request.respond(response);
}

/// The body tiny_http's own answers get in these tests.
fn error_body(status: StatusCode, reason: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(format!("error {}: {reason}", status.0))
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
        .set_read_timeout(Some(CLIENT_READ_TIMEOUT))
        .expect("read timeout");
    stream
}

/// Everything the server sends until it closes the connection; fails if it is still open after
/// `CLIENT_READ_TIMEOUT`.
fn read_until_closed(stream: &mut TcpStream) -> std::io::Result<String> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&received).into_owned())
}

/// Reads until what was received ends with `end`.
fn read_until(stream: &mut TcpStream, end: &str) -> String {
    let mut received = Vec::new();
    let mut byte = [0u8; 1];
    while !received.ends_with(end.as_bytes()) {
        stream
            .read_exact(&mut byte)
            .unwrap_or_else(|e| panic!("{e} after {:?}", String::from_utf8_lossy(&received)));
        received.push(byte[0]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Sends `bytes` on a new connection and returns all the server sends before it closes.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = connect(addr);
    stream.write_all(bytes).expect("send");
    read_until_closed(&mut stream).expect("the server did not close the connection")
}

/// A `GET /` with `Connection: close`, answered within `within`.
fn assert_served(addr: SocketAddr, within: Duration) {
    let t0 = Instant::now();
    let answer = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(t0.elapsed() < within, "served after {:?}", t0.elapsed());
}

/// Fix 5 (fixed drain buffer). Unpatched, dropping a request whose body was not read allocated the
/// whole declared rest at once: `Content-Length: 10^12` aborted the process. Now a rest larger than
/// 256 KiB is not drained at all: the connection is closed after the response.
#[test]
fn an_unread_body_is_not_allocated_whole() {
    let server = TestServer::with_limits(ConnectionLimits::default());
    let mut stream = connect(server.addr);
    stream
        .write_all(
            b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 1000000000000\r\n\r\n0123456789",
        )
        .expect("send");
    let t0 = Instant::now();
    let answer = read_until_closed(&mut stream).expect("connection not closed");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"),
        "{answer:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        t0.elapsed()
    );
    assert_served(server.addr, Duration::from_secs(1));
}

/// Fix 6 (`Connection: close`). Unpatched, the header was dropped from the response and the worker
/// read the rest of the refused body before taking another request: 8 clients that declare a body
/// and never send it held the 4 workers until the read timeout. Now each gets its answer with
/// `Connection: close`, the connection is closed, and other requests are served at once.
#[test]
fn connection_close_skips_the_rest_of_the_body() {
    let server = TestServer::with_limits(ConnectionLimits::default());
    let mut refused: Vec<TcpStream> = (0..2 * WORKERS)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream
                .write_all(
                    b"POST /refuse HTTP/1.1\r\nHost: test\r\nContent-Length: 100000\r\n\r\nabc",
                )
                .expect("send");
            stream
        })
        .collect();
    assert_served(server.addr, Duration::from_secs(1));
    for (i, stream) in refused.iter_mut().enumerate() {
        let t0 = Instant::now();
        let answer =
            read_until_closed(stream).unwrap_or_else(|e| panic!("client {i}: not closed: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "client {i}: {answer:?}");
        assert!(
            answer.contains("\r\nConnection: close\r\n"),
            "client {i}: {answer:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "client {i}: closed after {:?}",
            t0.elapsed()
        );
    }
}

/// Fix 7 (answers to malformed heads). Unpatched, a request line or header with a byte that is not
/// ASCII closed the connection without any answer, and an `HTTP/2.0` request line was answered into
/// a writer that waited for the request's own writer: no answer, and the connection's thread and
/// socket stayed forever.
#[test]
fn malformed_heads_are_answered_and_closed() {
    let server = TestServer::with_limits(ConnectionLimits::default());
    for (what, bytes, status) in [
        (
            "non-ASCII path",
            &b"GET /T\xc3\xbcx HTTP/1.1\r\nHost: test\r\n\r\n"[..],
            "400",
        ),
        (
            "non-UTF-8 path",
            b"GET /T\xffx HTTP/1.1\r\nHost: test\r\n\r\n",
            "400",
        ),
        (
            "non-ASCII header",
            b"GET / HTTP/1.1\r\nHost: t\xffst\r\n\r\n",
            "400",
        ),
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: test\r\n\r\n", "505"),
    ] {
        let t0 = Instant::now();
        let answer = exchange(server.addr, bytes);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{what}: {answer:?}"
        );
        assert!(
            answer.contains("\r\nConnection: close\r\n"),
            "{what}: {answer:?}"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "{what}: after {:?}",
            t0.elapsed()
        );
    }
    assert_served(server.addr, Duration::from_secs(1));
}

/// Fix 7 (`error_response`). Unpatched, tiny_http's own answers had an empty body; now the server's
/// `error_response` gives them one: a malformed head (400), a late head (408), an unknown `Expect`
/// (417), too many connections (503), `HTTP/2.0` (505).
#[test]
fn error_response_gives_tiny_http_answers_a_body() {
    let server = TestServer::with_limits(ConnectionLimits {
        header_timeout: Some(Duration::from_secs(1)),
        max_connections: Some(3),
        error_response: Some(error_body),
        ..ConnectionLimits::default()
    });
    for (bytes, expected) in [
        (&b"HELLO\r\n\r\n"[..], "error 400: malformed request line"),
        (
            b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "error 400: malformed request header",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: test",
            "error 408: request not received in time",
        ),
        (
            b"POST / HTTP/1.1\r\nExpect: x\r\nContent-Length: 1\r\n\r\n",
            "error 417: unsupported Expect header",
        ),
        (
            b"GET / HTTP/2.0\r\n\r\n",
            "error 505: only HTTP/1.0 and HTTP/1.1 are supported",
        ),
    ] {
        let answer = exchange(server.addr, bytes);
        assert!(answer.ends_with(expected), "{answer:?}");
    }
    // three connections in the middle of a request, then one more
    let busy: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(b"GET / HT").expect("send");
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(100));
    let answer = exchange(server.addr, b"");
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(
        answer.ends_with("error 503: too many open connections"),
        "{answer:?}"
    );
    drop(busy);
}

/// Fix 8 (bounded head). Unpatched, a request head was read into memory for as long as it kept
/// coming (only the header timeout stopped it). Now a request line longer than `max_head_size`
/// gets 414, longer headers 431.
#[test]
fn request_heads_are_bounded() {
    let server = TestServer::with_limits(ConnectionLimits {
        max_head_size: Some(16 * 1024),
        ..ConnectionLimits::default()
    });
    let line = format!("GET /{} HTTP/1.1\r\nHost: test\r\n\r\n", "a".repeat(20_000));
    let answer = exchange(server.addr, line.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 414 "), "{answer:.100}");
    let mut headers = String::from("GET / HTTP/1.1\r\n");
    for i in 0..40 {
        headers.push_str(&format!("X-{i}: {}\r\n", "h".repeat(500)));
    }
    headers.push_str("\r\n");
    let answer = exchange(server.addr, headers.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer:.100}");
    // 10 kB is fine
    let line = format!(
        "GET /{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        "a".repeat(10_000)
    );
    assert!(exchange(server.addr, line.as_bytes()).starts_with("HTTP/1.1 200 "));
}

/// Fix 9 (`buffered_body`). Unpatched, a body over 1024 bytes was read by the worker that took the
/// request: 8 clients sending 2000-byte bodies slowly held the 4 workers. Now a body up to
/// `buffered_body` is read before a worker sees the request, within the header timeout (408 after
/// it); `Expect: 100-continue` gets its `100 Continue` first.
#[test]
fn a_slow_small_body_holds_no_worker() {
    let server = TestServer::with_limits(ConnectionLimits {
        header_timeout: Some(Duration::from_secs(1)),
        buffered_body: 4096,
        ..ConnectionLimits::default()
    });
    let t0 = Instant::now();
    let mut slow: Vec<TcpStream> = (0..2 * WORKERS)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream
                .write_all(
                    b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 2000\r\n\r\n{\"a\":",
                )
                .expect("send");
            stream
        })
        .collect();
    assert_served(server.addr, Duration::from_millis(500));
    for (i, stream) in slow.iter_mut().enumerate() {
        let answer = read_until_closed(stream).unwrap_or_else(|e| panic!("slow body {i}: {e}"));
        assert!(
            answer.starts_with("HTTP/1.1 408 "),
            "slow body {i}: {answer:?}"
        );
    }
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3),
        "slow bodies cut after {elapsed:?} (header timeout 1 s)"
    );

    // `Expect: 100-continue` with a small body: `100 Continue`, then the whole body is read
    let mut stream = connect(server.addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n")
        .expect("send");
    let continued = read_until(&mut stream, "\r\n\r\n");
    assert!(
        continued.starts_with("HTTP/1.1 100 Continue\r\n"),
        "{continued:?}"
    );
    stream.write_all(&[b' '; 2000]).expect("send body");
    let answer = read_until_closed(&mut stream).expect("answer");
    assert!(
        answer.starts_with("HTTP/1.1 200 ") && answer.ends_with("2000"),
        "{answer:?}"
    );
}

/// Fix 10 (`evict_idle`). Without it, when `max_connections` connections are open and idle, a new
/// one is refused (503) until one closes or times out. With it, the connection idle the longest is
/// closed and the new one is served; when none is idle, the new one is still refused.
#[test]
fn idle_connections_make_room_when_the_cap_is_reached() {
    const MAX: usize = 4;
    let server = TestServer::with_limits(ConnectionLimits {
        max_connections: Some(MAX),
        evict_idle: true,
        ..ConnectionLimits::default()
    });
    let keep_alive = |stream: &mut TcpStream| {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            .expect("send");
        read_until(stream, "ok");
    };
    // one keep-alive connection that asked once, then three that never asked
    let mut idle = vec![connect(server.addr)];
    keep_alive(&mut idle[0]);
    idle.extend((1..MAX).map(|_| connect(server.addr)));
    thread::sleep(Duration::from_millis(500));

    // each new keep-alive connection is served, closing an idle one to make room; once as many new
    // ones are open as the cap allows, every old idle connection has been closed (the order in which
    // they go depends on when their threads started waiting, which a busy machine shifts)
    let mut newer = Vec::new();
    for i in 0..MAX {
        let t0 = Instant::now();
        let mut stream = connect(server.addr);
        keep_alive(&mut stream);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "new connection {i} served after {:?}",
            t0.elapsed()
        );
        newer.push(stream);
        thread::sleep(Duration::from_millis(200));
    }
    for (i, old) in idle.iter_mut().enumerate() {
        let received =
            read_until_closed(old).unwrap_or_else(|e| panic!("idle {i} still open: {e}"));
        assert!(received.is_empty(), "idle {i}: {received:?}");
    }
    drop(newer);
    thread::sleep(Duration::from_millis(500));

    // with every connection in the middle of a request, a new one is refused
    let busy: Vec<TcpStream> = (0..MAX)
        .map(|_| {
            let mut stream = connect(server.addr);
            stream.write_all(b"GET / HT").expect("send");
            stream
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let answer = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer:?}");
    drop(busy);
}
