//! HTTP plumbing: a tiny_http server run by a pool of worker threads, JSON replies in the
//! contract's envelope, and [`Peer`], the ureq client every call between services goes through.
//!
//! Handlers are plain functions `Fn(&Request) -> Reply`. The pool reads the body (refusing one larger
//! than [`MAX_BODY`] with 413), checks the shared secret on internal servers (403), runs the handler
//! and turns a panic into a 500, so a bug never kills a worker.
//!
//! Slow and flooding clients hold connection threads of the (patched) tiny_http, not the workers: a
//! request's head, and a body of up to [`BUFFERED_BODY`] bytes, are read before a worker sees the
//! request, within [`ServerOptions::header_timeout`]. A refused request is answered with
//! `Connection: close` and the rest of its body is not read. Idle connections are closed after
//! [`ServerOptions::read_timeout`], and when [`ServerOptions::max_connections`] are open, the one
//! idle the longest is closed to make room. The answers tiny_http gives by itself (a malformed head,
//! 408, 503 over the cap...) carry the same JSON error body as the handlers' answers.
//!
//! A request that waits on other services (a purchase at the leader waits for a quorum's acks) must
//! never take the last worker from the requests it waits for (those acks, and the health pings that
//! keep the leader chosen). [`ServerOptions::waits`] names such requests; at most
//! [`ServerOptions::waiting_budget`] of them run at once, and the rest queue, in order, for the next
//! worker to finish one. The other requests always find a worker.
//!
//! With [`ServerOptions::metrics`] set, every answer is counted and timed by its route
//! ([`crate::metrics`]), and an internal server answers `GET /metrics` itself, before any handler:
//! the exposition, to a caller with the secret in [`SECRET_HEADER`] or as `Authorization: Bearer
//! <secret>` (what a Prometheus scrape config sends), or to anyone with
//! [`ServerOptions::metrics_open`]. A public server never serves it.

use crate::error::{Error, Result};
use crate::metrics::{Metrics, PeerCalls, METRICS_PATH};
use crate::protocol::{Envelope, ErrorBody, SECRET_HEADER};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{Cursor, Read};
use std::net::{SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest request body any service accepts (a resync batch is sent as a reply, not a request body,
/// but an append batch is a request body: 4 MiB holds tens of thousands of orders).
pub const MAX_BODY: usize = 4 << 20;

/// Largest request body the public API accepts: a purchase is a few dozen bytes.
pub const MAX_PUBLIC_BODY: usize = 16 << 10;

/// Default number of worker threads per server. Handlers block on calls to other services, so the
/// pool is larger than the number of cores.
pub const DEFAULT_WORKERS: usize = 32;

/// A body of at most this many bytes (and at most the server's `max_body`) is read by tiny_http's
/// connection thread before a worker sees the request, so a client that sends it slowly holds no
/// worker. Every body the public API accepts fits.
pub const BUFFERED_BODY: usize = MAX_PUBLIC_BODY;

/// Largest request head (request line and headers): a longer request line gets 414, longer headers
/// 431.
pub const MAX_HEAD: usize = 64 << 10;

/// HTTP method of a request, as far as the services care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// Anything else: always 405 or 404.
    Other(String),
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Method::Get => f.write_str("GET"),
            Method::Post => f.write_str("POST"),
            Method::Other(m) => f.write_str(m),
        }
    }
}

/// A request as a handler sees it: already read, already authorised.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path, without the query string, still percent-encoded.
    pub path: String,
    /// Query string without the `?` (empty when none).
    pub query: String,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Request {
    /// A request for tests and internal dispatch.
    pub fn new(method: Method, url: &str, body: &[u8]) -> Request {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Request {
            method,
            path: path.to_string(),
            query: query.to_string(),
            body: body.to_vec(),
        }
    }

    /// The path split on `/`, without empty segments at the ends.
    pub fn segments(&self) -> Vec<&str> {
        self.path.trim_matches('/').split('/').collect()
    }

    /// A query parameter's value (not percent-decoded: the services only use numbers there).
    pub fn query_param(&self, key: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| {
            kv.split_once('=')
                .filter(|(k, _)| *k == key)
                .map(|(_, v)| v)
        })
    }

    /// The body parsed as JSON of type `T`, or 400 with what is wrong. Every body the services
    /// take is a JSON object (see [`is_json_object`]).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        if !is_json_object(&self.body) {
            return Err(Error::BadRequest(
                "malformed body: not a JSON object".into(),
            ));
        }
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::BadRequest(format!("malformed body: {e}")))
    }
}

/// True when `body` starts like a JSON object (whitespace, then `{`): serde also reads a struct from
/// an array of its fields in order (`["Tux", 1]`), which no caller means to send.
pub fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// A reply: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: Vec<u8>,
}

impl Reply {
    /// 200 with `{"data": data}`.
    pub fn data<T: Serialize>(data: T) -> Reply {
        let body = serde_json::to_vec(&Envelope::Data { data }).expect("serialisable reply");
        Reply { status: 200, body }
    }

    /// The error's status with `{"error": {"code", "message"}}`.
    pub fn error(e: &Error) -> Reply {
        let status = e.status();
        let body: Envelope<()> = Envelope::Error { error: e.body() };
        Reply {
            status,
            body: serde_json::to_vec(&body).expect("serialisable error"),
        }
    }

    /// [`Reply::data`] or [`Reply::error`].
    pub fn from_result<T: Serialize>(r: Result<T>) -> Reply {
        match r {
            Ok(d) => Reply::data(d),
            Err(e) => Reply::error(&e),
        }
    }
}

/// Longest part of a request's path that an error message echoes back.
pub const ECHOED_PATH: usize = 80;

/// A path cut for an error message: a 10 kB path is not echoed back whole.
pub fn short(path: &str) -> String {
    match path.char_indices().nth(ECHOED_PATH) {
        Some((i, _)) => format!("{}...", &path[..i]),
        None => path.to_string(),
    }
}

/// The answer to a request whose path no route knows: 404, with the path cut by [`short`]. Every
/// service answers unknown paths this way.
pub fn no_such_path(r: &Request) -> Reply {
    Reply::error(&Error::NotFound(format!(
        "no such path: {}",
        short(&r.path)
    )))
}

/// The answer to a known path asked with a method it does not take: 405, the path cut by [`short`].
pub fn method_not_allowed(r: &Request) -> Reply {
    Reply::error(&Error::MethodNotAllowed(format!(
        "{} is not allowed on {}",
        r.method,
        short(&r.path)
    )))
}

/// Percent-decodes a path segment; None when the result is not UTF-8 or an escape is malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes a path segment (everything but unreserved characters).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A request handler.
pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// How a server runs.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Worker threads taking requests.
    pub workers: usize,
    /// Largest accepted body.
    pub max_body: usize,
    /// When set, every request must carry this in [`SECRET_HEADER`] (internal servers).
    pub secret: Option<String>,
    /// Whether requests need the secret (false for the front-end's public server).
    pub internal: bool,
    /// Most connections open at once (default 1024). Each holds a thread and 3 file descriptors.
    /// When they are all open, the one idle the longest is closed to make room for a new one; when
    /// none is idle, a new connection gets 503.
    pub max_connections: usize,
    /// How long a connection may stay silent, idle between requests or within one (default 20 s:
    /// longer than the 15 s a ureq pool keeps an idle connection, so that pooled connections are not
    /// cut under a caller).
    pub read_timeout: Duration,
    /// How long a request's head, and its body when that has at most [`BUFFERED_BODY`] bytes, may
    /// take from its first byte (default 10 s); a late one gets 408.
    pub header_timeout: Duration,
    /// Which requests (by method and path, without the query) wait on other services; at most
    /// [`ServerOptions::waiting_budget`] of them hold a worker at once (none named: no limit).
    pub waits: Option<fn(method: &str, path: &str) -> bool>,
    /// Where answers are counted and timed; an internal server also serves them as `GET /metrics`.
    pub metrics: Option<Arc<Metrics>>,
    /// `GET /metrics` needs no secret (a scraper on a private network).
    pub metrics_open: bool,
}

impl ServerOptions {
    /// Options for a server that only services call.
    pub fn internal(secret: Option<String>) -> ServerOptions {
        ServerOptions {
            max_body: MAX_BODY,
            secret,
            internal: true,
            ..ServerOptions::public()
        }
    }

    /// Options for the public API.
    pub fn public() -> ServerOptions {
        ServerOptions {
            workers: DEFAULT_WORKERS,
            max_body: MAX_PUBLIC_BODY,
            secret: None,
            internal: false,
            max_connections: 1024,
            read_timeout: Duration::from_secs(20),
            header_timeout: Duration::from_secs(10),
            waits: None,
            metrics: None,
            metrics_open: false,
        }
    }

    /// These options, with answers counted in `metrics` (and, on an internal server, served).
    pub fn with_metrics(self, metrics: &Arc<Metrics>) -> ServerOptions {
        ServerOptions {
            metrics: Some(metrics.clone()),
            ..self
        }
    }

    /// How many requests named by [`ServerOptions::waits`] run at once: all workers but a quarter
    /// (at least one) kept for the others.
    pub fn waiting_budget(&self) -> usize {
        let workers = self.workers.max(2);
        workers - (workers / 4).max(1)
    }

    /// The limits of the underlying tiny_http server (see `vendor/tiny_http/PATCHES.md`).
    fn limits(&self) -> tiny_http::ConnectionLimits {
        tiny_http::ConnectionLimits {
            read_timeout: Some(self.read_timeout),
            header_timeout: Some(self.header_timeout),
            max_connections: Some(self.max_connections),
            evict_idle: true,
            max_head_size: Some(MAX_HEAD),
            buffered_body: BUFFERED_BODY.min(self.max_body),
            error_response: Some(tiny_http_error),
        }
    }
}

/// An answer tiny_http gives by itself, in the contract's error envelope.
fn tiny_http_error(
    status: tiny_http::StatusCode,
    reason: &str,
) -> tiny_http::Response<Cursor<Vec<u8>>> {
    let body: Envelope<()> = Envelope::Error {
        error: ErrorBody {
            code: status.0,
            message: reason.to_string(),
            promised: None,
        },
    };
    tiny_http::Response::from_data(serde_json::to_vec(&body).expect("serialisable error"))
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header"),
        )
}

/// A running server. Dropping it does not stop it; call [`Server::stop`].
pub struct Server {
    http: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    addr: SocketAddr,
}

/// Binds a listener, with a message that names the address when it fails.
pub fn bind(addr: &str) -> Result<TcpListener> {
    TcpListener::bind(addr).map_err(|e| Error::Io(format!("cannot listen on {addr}: {e}")))
}

impl Server {
    /// Starts serving `handler` on an already bound listener (port 0 in tests).
    pub fn start(
        listener: TcpListener,
        options: ServerOptions,
        handler: Handler,
    ) -> Result<Server> {
        let addr = listener.local_addr()?;
        let http = tiny_http::Server::from_listener_with_limits(listener, None, options.limits())
            .map_err(|e| Error::Io(format!("cannot serve on {addr}: {e}")))?;
        let http = Arc::new(http);
        let stop = Arc::new(AtomicBool::new(false));
        // With a waiting lane one worker at least is always kept for the other requests.
        let workers = options
            .workers
            .max(if options.waits.is_some() { 2 } else { 1 });
        let pool = Arc::new(Pool {
            http: http.clone(),
            stop: stop.clone(),
            handler,
            lane: parking_lot::Mutex::new(Lane::default()),
            budget: options.waiting_budget(),
            options,
        });
        let workers = (0..workers)
            .map(|i| {
                let pool = pool.clone();
                std::thread::Builder::new()
                    .name(format!("http-{}-{i}", addr.port()))
                    .spawn(move || pool.work())
                    .expect("spawn worker")
            })
            .collect();
        Ok(Server {
            http,
            stop,
            workers,
            addr,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops taking requests, lets the workers finish the ones they hold, and joins them.
    pub fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        for _ in 0..self.workers.len() {
            self.http.unblock();
        }
        for w in self.workers {
            let _ = w.join();
        }
    }
}

/// What the workers of one server share.
struct Pool {
    http: Arc<tiny_http::Server>,
    stop: Arc<AtomicBool>,
    handler: Handler,
    options: ServerOptions,
    lane: parking_lot::Mutex<Lane>,
    budget: usize,
}

/// The requests that wait on other services: how many hold a worker, and those queued for one.
#[derive(Default)]
struct Lane {
    running: usize,
    queued: std::collections::VecDeque<tiny_http::Request>,
}

impl Pool {
    fn work(&self) {
        while !self.stop.load(Ordering::SeqCst) {
            match self.http.recv_timeout(Duration::from_millis(250)) {
                Ok(Some(rq)) => self.take(rq),
                Ok(None) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Answers `rq` on this worker, unless it waits on other services and the budget for those is
    /// spent: then it queues, and a worker that finishes one of them takes it. A request is queued
    /// only while the budget's workers are all running, and each of them empties the queue before it
    /// leaves the lane, so no queued request is forgotten.
    fn take(&self, rq: tiny_http::Request) {
        let waits = self.options.waits.is_some_and(|waits| {
            let url = rq.url();
            waits(rq.method().as_str(), url.split('?').next().unwrap_or(url))
        });
        if !waits {
            return respond(rq, &self.handler, &self.options);
        }
        {
            let mut lane = self.lane.lock();
            if lane.running >= self.budget {
                lane.queued.push_back(rq);
                return;
            }
            lane.running += 1;
        }
        let mut next = Some(rq);
        while let Some(rq) = next {
            respond(rq, &self.handler, &self.options);
            let mut lane = self.lane.lock();
            next = lane.queued.pop_front();
            if next.is_none() {
                lane.running -= 1;
            }
        }
    }
}

/// Answers one request; with metrics, counts and times it before the answer leaves, so that a
/// caller that got the answer finds it counted.
fn respond(rq: tiny_http::Request, handler: &Handler, options: &ServerOptions) {
    let started = Instant::now();
    let Some(metrics) = &options.metrics else {
        let (rq, answer) = answer(rq, handler, options);
        answer.send(rq);
        return;
    };
    let route = metrics.route_of(rq.url());
    let (rq, answer) = if options.internal && metrics.route_name(route) == METRICS_PATH {
        serve_metrics(rq, metrics, options)
    } else {
        answer(rq, handler, options)
    };
    metrics.observe_request(route, answer.reply.status, started.elapsed());
    answer.send(rq);
}

/// A reply ready to go out.
struct Answer {
    reply: Reply,
    content_type: &'static str,
    /// Sent with `Connection: close` (the rest of a refused body is not read).
    close: bool,
}

impl Answer {
    fn json(reply: Reply, close: bool) -> Answer {
        Answer {
            reply,
            content_type: "application/json",
            close,
        }
    }

    fn send(self, rq: tiny_http::Request) {
        let mut response = tiny_http::Response::from_data(self.reply.body)
            .with_status_code(self.reply.status)
            .with_header(
                tiny_http::Header::from_bytes("Content-Type", self.content_type).expect("header"),
            );
        if self.close {
            response
                .add_header(tiny_http::Header::from_bytes("Connection", "close").expect("header"));
        }
        let _ = rq.respond(response);
    }
}

/// `GET /metrics` on an internal server: the exposition, to a caller that may read it.
fn serve_metrics(
    rq: tiny_http::Request,
    metrics: &Metrics,
    options: &ServerOptions,
) -> (tiny_http::Request, Answer) {
    let header = |name: &'static str| {
        rq.headers()
            .iter()
            .find(|h| h.field.equiv(name))
            .map(|h| h.value.as_str())
    };
    let allowed = options.metrics_open
        || options.secret.as_ref().is_none_or(|secret| {
            let bearer = header("Authorization")
                .and_then(|v| v.trim().split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, token)| token.trim());
            [header(SECRET_HEADER), bearer]
                .into_iter()
                .flatten()
                .any(|given| same_secret(given.as_bytes(), secret.as_bytes()))
        });
    let refusal = if !allowed {
        Some(Error::Forbidden(
            "internal endpoint: missing or wrong secret (X-Toystore-Secret or Authorization: Bearer)"
                .into(),
        ))
    } else if *rq.method() != tiny_http::Method::Get {
        Some(Error::MethodNotAllowed(format!(
            "{} is not allowed on {METRICS_PATH}",
            rq.method().as_str()
        )))
    } else {
        None
    };
    let answer = match refusal {
        Some(e) => Answer::json(Reply::error(&e), true),
        None => Answer {
            reply: Reply {
                status: 200,
                body: metrics.encode().into_bytes(),
            },
            content_type: crate::metrics::CONTENT_TYPE,
            close: false,
        },
    };
    (rq, answer)
}

/// Checks and reads a request, and runs `handler` on it.
fn answer(
    mut rq: tiny_http::Request,
    handler: &Handler,
    options: &ServerOptions,
) -> (tiny_http::Request, Answer) {
    let answer = match prepare(&mut rq, options) {
        Ok(req) => {
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| handler(&req)));
            let reply =
                r.unwrap_or_else(|_| Reply::error(&Error::Internal("the handler panicked".into())));
            Answer::json(reply, false)
        }
        // The rest of a refused body is not read: close the connection rather than parse it
        // (the patched tiny_http honours `Connection: close` and then skips the rest).
        Err(e) => Answer::json(Reply::error(&e), true),
    };
    (rq, answer)
}

/// Compares a given secret with the expected one in time that does not depend on where they differ,
/// so the secret cannot be guessed byte by byte from answer times.
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = given.len() ^ expected.len();
    for (i, e) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ e);
    }
    diff == 0
}

/// Checks the secret and reads the body of a tiny_http request.
fn prepare(rq: &mut tiny_http::Request, options: &ServerOptions) -> Result<Request> {
    if options.internal {
        if let Some(secret) = &options.secret {
            let given = rq
                .headers()
                .iter()
                .find(|h| h.field.equiv(SECRET_HEADER))
                .map(|h| h.value.as_str());
            if !given.is_some_and(|g| same_secret(g.as_bytes(), secret.as_bytes())) {
                return Err(Error::Forbidden(
                    "internal endpoint: missing or wrong secret".into(),
                ));
            }
        }
    }
    if rq.body_length().is_some_and(|n| n > options.max_body) {
        return Err(Error::TooLarge(format!(
            "body larger than {} bytes",
            options.max_body
        )));
    }
    // A chunked body would be read here, by a worker, however slowly it came: the public API only
    // takes bodies with a length, which tiny_http reads before a worker sees them.
    let chunked = rq
        .headers()
        .iter()
        .any(|h| h.field.equiv("Transfer-Encoding"));
    if chunked && !options.internal {
        return Err(Error::BadRequest(
            "a body needs a Content-Length (chunked bodies are not accepted)".into(),
        ));
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(options.max_body as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Error::BadRequest(format!("cannot read body: {e}")))?;
    if body.len() > options.max_body {
        return Err(Error::TooLarge(format!(
            "body larger than {} bytes",
            options.max_body
        )));
    }
    let method = match rq.method() {
        tiny_http::Method::Get => Method::Get,
        tiny_http::Method::Post => Method::Post,
        m => Method::Other(m.as_str().to_string()),
    };
    let mut req = Request::new(method, rq.url(), &[]);
    req.body = body;
    Ok(req)
}

/// Calls `call` with the URL of every target at once, one thread each, and returns every answer with
/// its target's id: asking three replicas costs one round trip, not three.
pub fn call_all<T: Send>(
    targets: &[(crate::protocol::ReplicaId, String)],
    call: impl Fn(&str) -> Result<T> + Sync,
) -> Vec<(crate::protocol::ReplicaId, Result<T>)> {
    let call = &call;
    std::thread::scope(|s| {
        let handles: Vec<_> = targets
            .iter()
            .map(|(id, url)| (*id, s.spawn(move || call(url))))
            .collect();
        handles
            .into_iter()
            .map(|(id, h)| {
                (
                    id,
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Internal("a call panicked".into()))),
                )
            })
            .collect()
    })
}

/// A ureq resolver that answers IP-literal hosts at once and passes names to ureq's default one.
///
/// ureq 3 resolves the host of every request, pooled connection or not, and with a timeout set (every
/// agent here sets one) its default resolver starts a thread per lookup so the lookup can time out.
/// For `http://127.0.0.1:8081` that is a thread started and joined per call, measured at a large
/// part of a call's cost under load. Names (a multi-host deployment) still go to the default.
#[derive(Debug, Default)]
pub struct LiteralResolver {
    fallback: ureq::unversioned::resolver::DefaultResolver,
}

impl ureq::unversioned::resolver::Resolver for LiteralResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> std::result::Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        if let Some(authority) = uri.authority() {
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let port = authority
                .port_u16()
                .or_else(|| (uri.scheme_str() == Some("http")).then_some(80));
            if let (Ok(ip), Some(port)) = (host.parse::<std::net::IpAddr>(), port) {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                return Ok(addrs);
            }
        }
        self.fallback.resolve(uri, config, timeout)
    }
}

/// An agent with `config` whose IP-literal hosts are resolved without a thread ([`LiteralResolver`]).
pub fn agent_with_literal_resolver(config: ureq::config::Config) -> ureq::Agent {
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        LiteralResolver::default(),
    )
}

/// The client side of calls between services: a pooled ureq agent with timeouts on every call and
/// the shared secret on every request.
#[derive(Clone)]
pub struct Peer {
    agent: ureq::Agent,
    secret: Option<String>,
    calls: Option<PeerCalls>,
}

impl Peer {
    /// A client whose calls fail after `timeout` (connecting fails after at most 500 ms).
    pub fn new(timeout: Duration, secret: Option<String>) -> Peer {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_idle_connections_per_host(DEFAULT_WORKERS)
            .max_idle_connections(4 * DEFAULT_WORKERS)
            .timeout_connect(Some(timeout.min(Duration::from_millis(500))))
            .timeout_global(Some(timeout))
            .proxy(None)
            .build();
        Peer {
            agent: agent_with_literal_resolver(config),
            secret,
            calls: None,
        }
    }

    /// This client, with every call counted in `calls` by the peer it goes to and its outcome.
    pub fn counted(self, calls: &PeerCalls) -> Peer {
        Peer {
            calls: Some(calls.clone()),
            ..self
        }
    }

    fn count<R>(&self, url: &str, result: Result<R>) -> Result<R> {
        if let Some(calls) = &self.calls {
            calls.count(url, &result);
        }
        result
    }

    /// GET `url` and read `{"data": R}`.
    pub fn get<R: DeserializeOwned>(&self, url: &str) -> Result<R> {
        let mut rq = self.agent.get(url);
        if let Some(s) = &self.secret {
            rq = rq.header(SECRET_HEADER, s);
        }
        self.count(url, Self::read(rq.call()))
    }

    /// POST `body` as JSON to `url` and read `{"data": R}`.
    pub fn post<B: Serialize, R: DeserializeOwned>(&self, url: &str, body: &B) -> Result<R> {
        let mut rq = self
            .agent
            .post(url)
            .header("Content-Type", "application/json");
        if let Some(s) = &self.secret {
            rq = rq.header(SECRET_HEADER, s);
        }
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Internal(e.to_string()))?;
        self.count(url, Self::read(rq.send(&bytes[..])))
    }

    fn read<R: DeserializeOwned>(
        response: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<R> {
        let mut response = response?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()?;
        // Parsed by status rather than through the untagged `Envelope`, which buffers the whole
        // value and tries each shape: a measurable part of every call between services.
        let unexpected = || {
            Error::from_status(
                status,
                format!("unexpected reply: {}", String::from_utf8_lossy(&bytes)),
            )
        };
        if status == 200 {
            serde_json::from_slice::<DataReply<R>>(&bytes)
                .map(|r| r.data)
                .map_err(|_| unexpected())
        } else {
            match serde_json::from_slice::<ErrorReply>(&bytes) {
                Ok(r) => Err(Error::from_body(status, r.error)),
                Err(_) => Err(unexpected()),
            }
        }
    }
}

/// A success reply's shape.
#[derive(serde::Deserialize)]
struct DataReply<R> {
    data: R,
}

/// A failure reply's shape.
#[derive(serde::Deserialize)]
struct ErrorReply {
    error: ErrorBody,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_accepts_utf8_and_refuses_the_rest() {
        assert_eq!(percent_decode("Tux").as_deref(), Some("Tux"));
        assert_eq!(percent_decode("Big%20Tux").as_deref(), Some("Big Tux"));
        assert_eq!(percent_decode("%C3%A9").as_deref(), Some("é"));
        assert_eq!(percent_decode("%FF"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        for name in ["Tux", "Big Tux/é%", ""] {
            assert_eq!(percent_decode(&percent_encode(name)).as_deref(), Some(name));
        }
        assert_eq!(percent_encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn error_answers_echo_a_long_path_cut() {
        let long = format!("/{}", "x".repeat(10_000));
        for reply in [
            no_such_path(&Request::new(Method::Get, &long, b"")),
            method_not_allowed(&Request::new(Method::Post, &long, b"")),
        ] {
            let text = String::from_utf8(reply.body).unwrap();
            assert!(text.len() < 200, "{text}");
            assert!(text.contains("xxx..."), "{text}");
        }
        let reply = no_such_path(&Request::new(Method::Get, "/nope", b""));
        assert_eq!(reply.status, 404);
        assert!(String::from_utf8(reply.body)
            .unwrap()
            .contains("no such path: /nope"));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        for given in [&b"abd"[..], b"ab", b"abcd", b"", b"ABC"] {
            assert!(!same_secret(given, b"abc"), "{given:?}");
        }
    }

    #[test]
    fn query_params_are_found_by_key() {
        let r = Request::new(Method::Get, "/internal/log?from=5&limit=10", b"");
        assert_eq!(r.path, "/internal/log");
        assert_eq!(r.query_param("from"), Some("5"));
        assert_eq!(r.query_param("limit"), Some("10"));
        assert_eq!(r.query_param("x"), None);
    }

    #[test]
    fn bodies_must_be_json_objects_not_arrays_of_fields() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Buy {
            name: String,
            quantity: u64,
        }
        let body = |b: &[u8]| Request::new(Method::Post, "/orders", b);
        assert!(body(br#" {"name":"Tux","quantity":1}"#)
            .json::<Buy>()
            .is_ok());
        // serde alone would read this one as a purchase of one Tux
        for bad in [&br#"["Tux",1]"#[..], b"", b"  ", b"null", b"1"] {
            let e = body(bad).json::<Buy>().unwrap_err();
            assert!(matches!(e, Error::BadRequest(_)), "{e:?}");
        }
    }

    fn echo_server(options: ServerOptions) -> Server {
        let handler: Handler = Arc::new(|r: &Request| {
            if r.path == "/panic" {
                panic!("boom");
            }
            Reply::data(String::from_utf8_lossy(&r.body).to_string())
        });
        Server::start(bind("127.0.0.1:0").unwrap(), options, handler).unwrap()
    }

    #[test]
    fn server_answers_checks_secret_limits_body_and_survives_panics() {
        let mut options = ServerOptions::internal(Some("s3cret".into()));
        options.max_body = 100;
        options.workers = 2;
        let server = echo_server(options);
        let base = format!("http://{}", server.addr());
        let good = Peer::new(Duration::from_secs(2), Some("s3cret".into()));
        let bad = Peer::new(Duration::from_secs(2), Some("wrong".into()));
        let none = Peer::new(Duration::from_secs(2), None);

        let echoed: String = good.post(&format!("{base}/x"), &"hi").unwrap();
        assert_eq!(echoed, "\"hi\"");
        assert!(matches!(
            bad.post::<_, String>(&format!("{base}/x"), &"hi"),
            Err(Error::Forbidden(_))
        ));
        assert!(matches!(
            none.get::<String>(&format!("{base}/x")),
            Err(Error::Forbidden(_))
        ));
        let big = "x".repeat(200);
        assert!(matches!(
            good.post::<_, String>(&format!("{base}/x"), &big),
            Err(Error::TooLarge(_))
        ));
        for _ in 0..4 {
            assert!(matches!(
                good.get::<String>(&format!("{base}/panic")),
                Err(Error::Internal(_))
            ));
        }
        // Both workers are still alive after the panics.
        let echoed: String = good.post(&format!("{base}/x"), &1).unwrap();
        assert_eq!(echoed, "1");
        server.stop();
    }

    /// Requests that wait for another request (as a purchase at the leader waits for the followers'
    /// acks) never take every worker: with twice as many of them as workers, the request they wait
    /// for is still answered, and then every one of them, in a bounded time.
    #[test]
    fn waiting_requests_leave_a_worker_for_the_requests_they_wait_for() {
        let open = Arc::new(AtomicBool::new(false));
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (r, m, o) = (running.clone(), most.clone(), open.clone());
        let handler: Handler = Arc::new(move |req: &Request| {
            if req.path == "/release" {
                o.store(true, Ordering::SeqCst);
                return Reply::data("released");
            }
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while !o.load(Ordering::SeqCst) && std::time::Instant::now() < until {
                std::thread::sleep(Duration::from_millis(1));
            }
            let waited = o.load(Ordering::SeqCst);
            r.fetch_sub(1, Ordering::SeqCst);
            Reply::data(waited)
        });
        let mut options = ServerOptions::internal(None);
        options.workers = 4;
        options.waits = Some(|method, path| method == "POST" && path == "/wait");
        assert_eq!(options.waiting_budget(), 3);
        let server = Server::start(bind("127.0.0.1:0").unwrap(), options, handler).unwrap();
        let base = format!("http://{}", server.addr());
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            let waiters: Vec<_> = (0..8)
                .map(|_| {
                    let url = format!("{base}/wait?x=1");
                    s.spawn(move || {
                        Peer::new(Duration::from_secs(20), None)
                            .post::<_, bool>(&url, &())
                            .unwrap()
                    })
                })
                .collect();
            while running.load(Ordering::SeqCst) < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            let peer = Peer::new(Duration::from_secs(5), None);
            let released: String = peer.get(&format!("{base}/release")).unwrap();
            assert_eq!(released, "released");
            for w in waiters {
                assert!(w.join().unwrap(), "a waiting request was released");
            }
        });
        // Loose: a starved pool would hold the waiters for their 10 s.
        assert!(started.elapsed() < Duration::from_secs(8));
        assert_eq!(most.load(Ordering::SeqCst), 3, "at most the budget at once");
        server.stop();
    }

    /// GET `url` with these headers: status, content type, body.
    fn raw_get(url: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(5)))
            .proxy(None)
            .build()
            .into();
        let mut rq = agent.get(url);
        for (k, v) in headers {
            rq = rq.header(*k, *v);
        }
        let mut r = rq.call().unwrap();
        let content_type = r
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (
            r.status().as_u16(),
            content_type,
            r.body_mut().read_to_string().unwrap(),
        )
    }

    fn metrics_server(internal: bool, open: bool) -> (Server, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new("test", &["/x"]));
        let mut options = if internal {
            ServerOptions::internal(Some("s3cret".into()))
        } else {
            ServerOptions::public()
        };
        options.workers = 2;
        options.metrics_open = open;
        (echo_server(options.with_metrics(&metrics)), metrics)
    }

    #[test]
    fn metrics_need_the_secret_as_a_header_or_a_bearer_token() {
        let (server, metrics) = metrics_server(true, false);
        let url = format!("http://{}{METRICS_PATH}", server.addr());
        for refused in [
            &[][..],
            &[(SECRET_HEADER, "wrong")],
            &[("Authorization", "Bearer wrong")],
            &[("Authorization", "Basic s3cret")],
            &[("Authorization", "s3cret")],
        ] {
            let (status, _, body) = raw_get(&url, refused);
            assert_eq!(status, 403, "{refused:?}: {body}");
            assert!(body.contains("\"code\":403"), "{body}");
        }
        for allowed in [
            &[(SECRET_HEADER, "s3cret")][..],
            &[("Authorization", "Bearer s3cret")],
            &[("Authorization", "bearer  s3cret")],
        ] {
            let (status, content_type, body) = raw_get(&url, allowed);
            assert_eq!(status, 200, "{allowed:?}: {body}");
            assert_eq!(content_type, crate::metrics::CONTENT_TYPE);
            assert!(body.contains("toystore_up 1"), "{body}");
        }
        // The Bearer form is for /metrics only: other internal routes keep their header.
        let (status, _, _) = raw_get(
            &format!("http://{}/x", server.addr()),
            &[("Authorization", "Bearer s3cret")],
        );
        assert_eq!(status, 403);
        let (status, _, _) = raw_get(
            &format!("http://{}/x", server.addr()),
            &[(SECRET_HEADER, "s3cret")],
        );
        assert_eq!(status, 200);
        server.stop();
        assert_eq!(metrics.requests(METRICS_PATH, 403), 5);
        assert_eq!(metrics.requests(METRICS_PATH, 200), 3);
        assert_eq!(metrics.requests("/x", 403), 1);
        assert_eq!(metrics.requests("/x", 200), 1);
    }

    #[test]
    fn metrics_open_needs_no_secret_but_other_routes_still_do() {
        let (server, _) = metrics_server(true, true);
        let (status, _, body) = raw_get(&format!("http://{}{METRICS_PATH}", server.addr()), &[]);
        assert_eq!(status, 200, "{body}");
        let (status, _, _) = raw_get(&format!("http://{}/x", server.addr()), &[]);
        assert_eq!(status, 403);
        server.stop();
    }

    #[test]
    fn a_public_server_counts_requests_but_never_serves_metrics() {
        let (server, metrics) = metrics_server(false, false);
        let (status, content_type, body) = raw_get(
            &format!("http://{}{METRICS_PATH}", server.addr()),
            &[(SECRET_HEADER, "s3cret")],
        );
        // The echo handler answers: the server did not serve the exposition.
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        assert!(!body.contains("toystore_up"), "{body}");
        let _ = raw_get(&format!("http://{}/x", server.addr()), &[]);
        server.stop();
        assert_eq!(metrics.requests("/x", 200), 1);
    }

    #[test]
    fn ip_literals_resolve_in_place_and_names_fall_back() {
        use ureq::unversioned::resolver::Resolver;
        let r = LiteralResolver::default();
        let config = ureq::config::Config::default();
        let resolve = |u: &str| {
            r.resolve(
                &u.parse().unwrap(),
                &config,
                ureq::unversioned::transport::NextTimeout::default(),
            )
        };
        assert_eq!(
            resolve("http://127.0.0.1:8081/x").unwrap()[0],
            "127.0.0.1:8081".parse().unwrap()
        );
        assert_eq!(
            resolve("http://[::1]:9/").unwrap()[0],
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            resolve("http://10.0.0.2/").unwrap()[0],
            "10.0.0.2:80".parse().unwrap()
        );
        assert_eq!(
            resolve("http://localhost:7/").unwrap()[0].port(),
            7,
            "a name goes to the default resolver"
        );
    }

    #[test]
    fn a_dead_peer_is_a_retryable_transport_error() {
        let addr = bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let peer = Peer::new(Duration::from_millis(300), None);
        let err = peer.get::<String>(&format!("http://{addr}/x")).unwrap_err();
        assert!(err.is_retryable(), "{err:?}");
    }
}
