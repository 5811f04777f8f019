//! Tests of the fixes applied to the vendored `tiny_http` 0.12.0 (`vendor/tiny_http/PATCHES.md`).
//!
//! Each test runs a real `tiny_http::Server` on 127.0.0.1 with worker threads calling `recv()`,
//! and talks to it with raw `TcpStream` clients (`TCP_NODELAY` set). Time bounds are loose: the
//! machine is a noisy 2-core box, and the faults give seconds or forever where the fixes give
//! milliseconds. The accept-error test under fd exhaustion is in `tiny_http_accept_error.rs`
//! (it lowers the process's `RLIMIT_NOFILE`, so it needs a test binary of its own).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tiny_http::{ConnectionLimits, Request, Response, Server};

const WORKERS: usize = 4;
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(3);
const BIG_BODY: usize = 4000;

/// A server with `WORKERS` threads calling `recv()`; stopped and joined on drop.
struct TestServer {
    server: Arc<Server>,
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

impl TestServer {
    fn start(server: Server) -> TestServer {
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..WORKERS)
            .map(|_| {
                let server = Arc::clone(&server);
                let stop = Arc::clone(&stop);
                thread::spawn(move || loop {
                    match server.recv() {
                        Ok(request) => handle(request),
                        // `unblock()` (or, unpatched, an accept error) ends up here
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

    fn with_limits(limits: ConnectionLimits) -> TestServer {
        TestServer::start(Server::http_with_limits("127.0.0.1:0", limits).expect("bind"))
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

/// `/big` answers a body of `BIG_BODY` bytes, anything else `ok`.
fn handle(request: Request) {
    let body = if request.url() == "/big" {
        vec![b'x'; BIG_BODY]
    } else {
        b"ok".to_vec()
    };
    let _ = request.respond(Response::from_data(body));
}

/// A raw keep-alive HTTP/1.1 client.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT))?;
        Ok(Client {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends `GET path` and reads the response: (status, body).
    fn get(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.stream.write_all(request.as_bytes())?;
        self.read_response()
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk)? {
            0 => Err(ErrorKind::UnexpectedEof.into()),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }

    fn read_response(&mut self) -> std::io::Result<(u16, Vec<u8>)> {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line in {head:?}"));
        let length = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())?
            })
            .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
        while self.buf.len() < head_end + length {
            self.fill()?;
        }
        let body = self.buf[head_end..head_end + length].to_vec();
        self.buf.drain(..head_end + length);
        Ok((status, body))
    }

    /// Waits until the server closes the connection; returns the bytes received before that.
    /// Fails if the connection is still open after `CLIENT_READ_TIMEOUT`.
    fn read_until_closed(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            match self.fill() {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => return Err(e),
            }
        }
        Ok(std::mem::take(&mut self.buf))
    }
}

/// Fix 1 (task pool). Unpatched, with several clients opening keep-alive connections at the
/// same moment, one or two of them get no answer until another client closes its connection.
#[test]
fn simultaneous_keep_alive_clients_are_all_served_promptly() {
    const CLIENTS: usize = 8;
    // a fresh server each round: the fault shows when the pool still has only its 4 initial
    // threads, and does not show every time (about 2 rounds in 3 here)
    for round in 0..5 {
        let server = TestServer::start(Server::http("127.0.0.1:0").expect("bind"));
        let addr = server.addr;
        let start = Arc::new(Barrier::new(CLIENTS));
        // every client keeps its connection open until all of them are done
        let done = Arc::new(Barrier::new(CLIENTS));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (start, done) = (Arc::clone(&start), Arc::clone(&done));
                thread::spawn(move || {
                    start.wait();
                    let t0 = Instant::now();
                    let result = (|| {
                        let mut client = Client::connect(addr)?;
                        let (status, _) = client.get("/")?;
                        let first_answer = t0.elapsed();
                        assert_eq!(status, 200);
                        for _ in 0..5 {
                            assert_eq!(client.get("/")?.0, 200);
                        }
                        Ok::<_, std::io::Error>((first_answer, client))
                    })();
                    done.wait();
                    result.map(|(first_answer, _client)| first_answer)
                })
            })
            .collect();
        for (i, client) in clients.into_iter().enumerate() {
            match client.join().expect("client thread") {
                Ok(first_answer) => assert!(
                    first_answer < Duration::from_secs(1),
                    "round {round}, client {i}: first answer after {first_answer:?}"
                ),
                Err(e) => panic!("round {round}, client {i}: no answer ({e}) while others kept their connections open"),
            }
        }
    }
}

/// Fix 2 (`TCP_NODELAY`). Unpatched, a 4,000-byte response takes ~44 ms (Nagle against delayed
/// ACK), so 20 of them take ~900 ms instead of a few ms.
#[test]
fn large_responses_are_not_delayed_by_nagle() {
    let server = TestServer::start(Server::http("127.0.0.1:0").expect("bind"));
    let mut client = Client::connect(server.addr).expect("connect");
    assert_eq!(client.get("/big").expect("warm-up").1.len(), BIG_BODY);

    let t0 = Instant::now();
    for _ in 0..20 {
        let (status, body) = client.get("/big").expect("response");
        assert_eq!(status, 200);
        assert_eq!(body.len(), BIG_BODY);
    }
    let elapsed = t0.elapsed();
    assert!(
        elapsed < Duration::from_millis(400),
        "20 responses of {BIG_BODY} bytes took {elapsed:?}"
    );
}

/// Fix 3 (read timeout). Unpatched, a connection that sends nothing holds a thread forever.
#[test]
fn idle_connections_are_closed_after_the_read_timeout() {
    let server = TestServer::with_limits(ConnectionLimits {
        read_timeout: Some(Duration::from_millis(300)),
        ..ConnectionLimits::default()
    });

    // a connection that never sends anything
    let mut silent = Client::connect(server.addr).expect("connect");
    // a keep-alive connection that goes idle after one request
    let mut idle = Client::connect(server.addr).expect("connect");
    assert_eq!(idle.get("/").expect("response").0, 200);

    let t0 = Instant::now();
    for (name, client) in [("silent", &mut silent), ("idle", &mut idle)] {
        let received = client
            .read_until_closed()
            .unwrap_or_else(|e| panic!("{name} connection not closed by the server: {e}"));
        assert!(received.is_empty(), "{name}: unexpected {received:?}");
    }
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(1500),
        "idle connections closed after {elapsed:?} (read timeout 300 ms)"
    );

    // the server still serves
    let mut client = Client::connect(server.addr).expect("connect");
    assert_eq!(client.get("/").expect("response").0, 200);
}

/// Fix 3 (header timeout). Unpatched, a client that sends its headers one byte at a time
/// (faster than any read timeout) holds a thread forever. Also checks that the head deadline
/// starts with the first byte of a request, not with the idle wait before it.
#[test]
fn slow_header_sender_is_cut_after_the_header_timeout() {
    let server = TestServer::with_limits(ConnectionLimits {
        read_timeout: Some(Duration::from_secs(2)),
        header_timeout: Some(Duration::from_millis(500)),
        ..ConnectionLimits::default()
    });

    // idle keep-alive for longer than the header timeout (but shorter than the read timeout)
    let mut patient = Client::connect(server.addr).expect("connect");
    assert_eq!(patient.get("/").expect("first response").0, 200);
    thread::sleep(Duration::from_millis(800));
    assert_eq!(patient.get("/").expect("response after idling").0, 200);

    // slow-loris: one byte every 100 ms, endless headers
    let mut loris = TcpStream::connect(server.addr).expect("connect");
    loris.set_nodelay(true).expect("nodelay");
    loris
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    let bytes = b"GET / HTTP/1.1\r\nHost: test\r\n".iter().chain(
        std::iter::repeat(b"X-Slow: abcdefgh\r\n")
            .flatten()
            .take(1000),
    );
    let t0 = Instant::now();
    let mut received = Vec::new();
    let mut closed_after = None;
    for &byte in bytes {
        if loris.write_all(&[byte]).is_err() {
            closed_after = Some(t0.elapsed());
            break;
        }
        let mut chunk = [0u8; 256];
        match loris.read(&mut chunk) {
            Ok(0) => {
                closed_after = Some(t0.elapsed());
                break;
            }
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                closed_after = Some(t0.elapsed());
                break;
            }
        }
        if t0.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let closed_after = closed_after.expect("slow-loris connection still open after 4 s");
    assert!(
        closed_after < Duration::from_millis(1500),
        "slow-loris cut after {closed_after:?} (header timeout 500 ms)"
    );
    let received = String::from_utf8_lossy(&received);
    assert!(
        received.is_empty() || received.starts_with("HTTP/1.1 408"),
        "unexpected answer to slow-loris: {received:?}"
    );

    // the server still serves
    let mut client = Client::connect(server.addr).expect("connect");
    assert_eq!(client.get("/").expect("response").0, 200);
}

/// Fix 3 (connection cap). Unpatched, there is no cap: every connection gets a thread.
#[test]
fn connections_over_the_cap_get_503_and_the_server_recovers() {
    const MAX: usize = 3;
    let server = TestServer::with_limits(ConnectionLimits {
        max_connections: Some(MAX),
        ..ConnectionLimits::default()
    });

    let mut open: Vec<Client> = (0..MAX)
        .map(|_| {
            let mut client = Client::connect(server.addr).expect("connect");
            assert_eq!(client.get("/").expect("response").0, 200);
            client
        })
        .collect();

    // one more: refused with a 503 and closed at once
    let t0 = Instant::now();
    let mut extra = Client::connect(server.addr).expect("connect");
    let received = extra
        .read_until_closed()
        .expect("connection over the cap not closed");
    let received = String::from_utf8_lossy(&received);
    assert!(
        received.starts_with("HTTP/1.1 503 Service Unavailable\r\n")
            && received.contains("Connection: close\r\n"),
        "connection over the cap got {received:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(1));

    // the others are still served
    for client in &mut open {
        assert_eq!(client.get("/").expect("response").0, 200);
    }

    // once one closes, a new connection is served again
    drop(open.remove(0));
    let t0 = Instant::now();
    loop {
        let answered = Client::connect(server.addr)
            .and_then(|mut client| client.get("/"))
            .is_ok_and(|(status, _)| status == 200);
        if answered {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "no connection served after one of the capped ones closed"
        );
        thread::sleep(Duration::from_millis(20));
    }
    for client in &mut open {
        assert_eq!(client.get("/").expect("response").0, 200);
    }
}

/// Fix 4 (accept errors), triggered with a receive timeout on the listening socket: `accept()`
/// then fails with EAGAIN every 20 ms. Unpatched, the accept thread ends on the first error and
/// the server refuses every connection from then on. Running out of file descriptors (EMFILE)
/// is tested in `tiny_http_accept_error.rs`.
#[test]
fn accept_errors_do_not_stop_the_server() {
    use std::os::unix::io::AsRawFd;

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 20_000,
    };
    // SAFETY: a valid socket and a pointer to a `timeval` of the given size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            libc::socklen_t::try_from(std::mem::size_of::<libc::timeval>()).expect("size"),
        )
    };
    assert_eq!(rc, 0, "setsockopt: {}", std::io::Error::last_os_error());
    let server = TestServer::start(Server::from_listener(listener, None).expect("server"));

    // several accept() calls fail with EAGAIN meanwhile
    thread::sleep(Duration::from_millis(200));

    for _ in 0..3 {
        let t0 = Instant::now();
        let mut client = Client::connect(server.addr).expect("connect after accept errors");
        let (status, _) = client.get("/").expect("response after accept errors");
        assert_eq!(status, 200);
        assert!(t0.elapsed() < Duration::from_secs(1));
        thread::sleep(Duration::from_millis(100));
    }
}
