//! A raw HTTP/1.1 client over `std::net::TcpStream`, shared by `bad_input.rs` and `flood.rs`: it
//! sends what HTTP clients refuse to (non-UTF-8 request lines, wrong lengths, malformed heads) and
//! shows every byte of the answer. `TCP_NODELAY` is set on every socket, so small writes go out at
//! once.

// Each test file uses a different part of this module.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long a read may wait for the server (loose: the machine is small and busy).
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer as it came on the wire.
#[derive(Debug, Clone)]
pub struct Raw {
    /// HTTP status.
    pub status: u16,
    /// Status line and headers.
    pub head: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Raw {
    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value (the first one with that name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// `host:port` of a `http://host:port` URL.
pub fn addr(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// A connection to `url` with `TCP_NODELAY` and a read timeout.
pub fn connect(url: &str) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(addr(url))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(stream)
}

/// Sends `bytes` on a new connection to `url` and reads one answer (skipping `100 Continue`).
pub fn exchange(url: &str, bytes: &[u8]) -> std::io::Result<Raw> {
    let mut stream = connect(url)?;
    stream.write_all(bytes)?;
    read_answer(&mut stream, &mut Vec::new())
}

/// A request with `Host`, `Content-Length` (when there is a body) and `Connection: close`, plus
/// `headers`.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: toystore\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// Sends a request (see [`request_bytes`]) and reads the answer; panics when there is none.
pub fn request(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Raw {
    let shown = if path.len() > 60 { &path[..60] } else { path };
    exchange(url, &request_bytes(method, path, headers, body))
        .unwrap_or_else(|e| panic!("{method} {shown}... on {url}: no answer: {e}"))
}

/// Reads one answer from `stream`; `buf` holds bytes already read past the previous one.
pub fn read_answer(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<Raw> {
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            fill(stream, buf)?;
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
        let length = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        });
        if (100..200).contains(&status) {
            buf.drain(..head_end);
            continue;
        }
        let body = match length {
            Some(length) => {
                while buf.len() < head_end + length {
                    fill(stream, buf)?;
                }
                let body = buf[head_end..head_end + length].to_vec();
                buf.drain(..head_end + length);
                body
            }
            None => {
                while fill(stream, buf).is_ok() {}
                buf.drain(..).skip(head_end).collect()
            }
        };
        return Ok(Raw { status, head, body });
    }
}

fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 << 10];
    match stream.read(&mut chunk)? {
        0 => Err(ErrorKind::UnexpectedEof.into()),
        n => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Asserts that `r` is the contract's error: status `code`, a JSON body that is exactly
/// `{"error": {"code": code, "message": "<not empty>"}}`.
pub fn assert_error(r: &Raw, code: u16, what: &str) {
    let body = r.json();
    let shown = String::from_utf8_lossy(&r.body[..r.body.len().min(300)]).into_owned();
    assert_eq!(
        r.status,
        code,
        "{what}: {} {shown}",
        r.head.lines().next().unwrap_or("")
    );
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json"),
        "{what}: {}",
        r.head
    );
    let error = &body["error"];
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "{what}: {shown}"
    );
    assert_eq!(
        error.as_object().map(|o| o.len()),
        Some(2),
        "{what}: {shown}"
    );
    assert_eq!(error["code"].as_u64(), Some(code as u64), "{what}: {shown}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {shown}"
    );
}

/// Threads and open file descriptors of process `pid`, from `/proc`.
pub fn threads_and_fds(pid: u32) -> (usize, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    (threads, fds)
}
