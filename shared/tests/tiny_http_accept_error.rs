//! Fix 4 of the vendored `tiny_http` (`vendor/tiny_http/PATCHES.md`): running out of file
//! descriptors must not end the server's accept thread.
//!
//! This lowers `RLIMIT_NOFILE`, which is per process, so it is a test binary of its own with a
//! single test. Server and clients share the process's descriptors: the test fills them with
//! `/dev/null` files, leaves one or two free, connects, and then frees them again.
//!
//! Linux reserves the descriptor for `accept()` before blocking in it, so a connection that
//! arrives while the table is full is still accepted; what fails is what comes next:
//! - with two free descriptors, the client takes one and `tiny_http`'s `try_clone()` of the
//!   accepted socket the other, so the next `accept()` fails with EMFILE (unpatched: the accept
//!   thread `break`s and drops the listener);
//! - with one free descriptor, the client takes it and `try_clone()` fails with EMFILE
//!   (unpatched: `unwrap()` panics in the accept thread).
//!
//! Either way, once descriptors are free again, a new connection must be served.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{Response, Server};

/// Restores the original `RLIMIT_NOFILE` on drop.
struct NofileLimit {
    original: libc::rlimit,
}

impl NofileLimit {
    fn lower_to(soft: libc::rlim_t) -> NofileLimit {
        let mut original = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid pointer to an `rlimit`.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut original) },
            0
        );
        let lowered = libc::rlimit {
            rlim_cur: soft.min(original.rlim_cur),
            rlim_max: original.rlim_max,
        };
        // SAFETY: a valid pointer to an `rlimit`.
        assert_eq!(
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lowered) },
            0,
            "setrlimit: {}",
            std::io::Error::last_os_error()
        );
        NofileLimit { original }
    }
}

impl Drop for NofileLimit {
    fn drop(&mut self) {
        // SAFETY: a valid pointer to an `rlimit`.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const self.original) };
    }
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Opens `/dev/null` until the process runs out of descriptors.
fn fill_descriptors() -> Vec<File> {
    let mut files = Vec::new();
    loop {
        match File::open("/dev/null") {
            Ok(file) => files.push(file),
            Err(e) if e.raw_os_error() == Some(libc::EMFILE) => return files,
            Err(e) => panic!("unexpected error while filling descriptors: {e}"),
        }
        assert!(files.len() < 10_000, "RLIMIT_NOFILE not effective");
    }
}

/// Sends `GET /` on a new connection; true if answered with 200 `ok`.
fn served(addr: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")?;
        let mut response = Vec::new();
        match stream.read_to_end(&mut response) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Ok(false),
            Err(e) => return Err(e),
        }
        Ok(response.starts_with(b"HTTP/1.1 200") && response.ends_with(b"ok"))
    };
    attempt().unwrap_or(false)
}

#[test]
fn server_survives_running_out_of_file_descriptors() {
    let server = Arc::new(Server::http("127.0.0.1:0").expect("bind"));
    let addr = server.server_addr().to_ip().expect("an IP listener");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server, stop) = (Arc::clone(&server), Arc::clone(&stop));
            thread::spawn(move || loop {
                match server.recv() {
                    Ok(request) => {
                        let _ = request.respond(Response::from_string("ok"));
                    }
                    Err(_) if stop.load(Ordering::SeqCst) => break,
                    // unpatched, the accept error is also handed to `recv()`
                    Err(_) => {}
                }
            })
        })
        .collect();
    assert!(served(addr), "not served before the test");

    for (free, what) in [(2, "accept() failing"), (1, "try_clone() failing")] {
        // let the accept thread block in accept() again
        thread::sleep(Duration::from_millis(100));
        let limit = NofileLimit::lower_to((open_descriptors() + 32) as libc::rlim_t);
        let mut files = fill_descriptors();
        files.truncate(files.len().saturating_sub(free));
        let client = TcpStream::connect(addr);
        // the accept thread runs into EMFILE meanwhile
        thread::sleep(Duration::from_millis(200));
        drop(files);
        drop(client);
        drop(limit);

        let t0 = Instant::now();
        while !served(addr) {
            assert!(
                t0.elapsed() < Duration::from_secs(1),
                "no connection served after {what} with EMFILE"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    stop.store(true, Ordering::SeqCst);
    for _ in &workers {
        server.unblock();
    }
    for worker in workers {
        worker.join().expect("worker");
    }
}
