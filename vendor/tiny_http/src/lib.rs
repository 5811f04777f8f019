//! # Simple usage
//!
//! ## Creating the server
//!
//! The easiest way to create a server is to call `Server::http()`.
//!
//! The `http()` function returns an `IoResult<Server>` which will return an error
//! in the case where the server creation fails (for example if the listening port is already
//! occupied).
//!
//! ```no_run
//! let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! ```
//!
//! A newly-created `Server` will immediately start listening for incoming connections and HTTP
//! requests.
//!
//! ## Receiving requests
//!
//! Calling `server.recv()` will block until the next request is available.
//! This function returns an `IoResult<Request>`, so you need to handle the possible errors.
//!
//! ```no_run
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//!
//! loop {
//!     // blocks until the next request is received
//!     let request = match server.recv() {
//!         Ok(rq) => rq,
//!         Err(e) => { println!("error: {}", e); break }
//!     };
//!
//!     // do something with the request
//!     // ...
//! }
//! ```
//!
//! In a real-case scenario, you will probably want to spawn multiple worker tasks and call
//! `server.recv()` on all of them. Like this:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use std::thread;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! let server = Arc::new(server);
//! let mut guards = Vec::with_capacity(4);
//!
//! for _ in (0 .. 4) {
//!     let server = server.clone();
//!
//!     let guard = thread::spawn(move || {
//!         loop {
//!             let rq = server.recv().unwrap();
//!
//!             // ...
//!         }
//!     });
//!
//!     guards.push(guard);
//! }
//! ```
//!
//! If you don't want to block, you can call `server.try_recv()` instead.
//!
//! ## Handling requests
//!
//! The `Request` object returned by `server.recv()` contains informations about the client's request.
//! The most useful methods are probably `request.method()` and `request.url()` which return
//! the requested method (`GET`, `POST`, etc.) and url.
//!
//! To handle a request, you need to create a `Response` object. See the docs of this object for
//! more infos. Here is an example of creating a `Response` from a file:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! ```
//!
//! All that remains to do is call `request.respond()`:
//!
//! ```no_run
//! # use std::fs::File;
//! # use std::path::Path;
//! # let server = tiny_http::Server::http("0.0.0.0:0").unwrap();
//! # let request = server.recv().unwrap();
//! # let response = tiny_http::Response::from_file(File::open(&Path::new("image.png")).unwrap());
//! let _ = request.respond(response);
//! ```
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![allow(clippy::match_like_matches_macro)]
// PATCH: two warnings that 0.12.0 already had, silenced so the workspace builds with -D warnings.
#![allow(dead_code, unused_imports)]

#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use zeroize::Zeroizing;

use std::collections::HashMap;
use std::error::Error;
use std::io::Error as IoError;
use std::io::ErrorKind as IoErrorKind;
use std::io::Result as IoResult;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use client::{ClientConnection, ConnectionOptions};
use connection::Connection;
use util::refined_tcp_stream::ConnectionState;
use util::MessagesQueue;

pub use common::{HTTPVersion, Header, HeaderField, Method, StatusCode};
pub use connection::{ConfigListenAddr, ListenAddr, Listener};
pub use request::{ReadWrite, Request};
pub use response::{Response, ResponseBox};
pub use test::TestRequest;

mod client;
mod common;
mod connection;
mod request;
mod response;
mod ssl;
mod test;
mod util;

/// The main class of this library.
///
/// Destroying this object will immediately close the listening socket and the reading
///  part of all the client's connections. Requests that have already been returned by
///  the `recv()` function will not close and the responses will be transferred to the client.
pub struct Server {
    // should be false as long as the server exists
    // when set to true, all the subtasks will close within a few hundreds ms
    close: Arc<AtomicBool>,

    // queue for messages received by child threads
    messages: Arc<MessagesQueue<Message>>,

    // result of TcpListener::local_addr()
    listening_addr: ListenAddr,
}

enum Message {
    Error(IoError),
    NewRequest(Request),
}

impl From<IoError> for Message {
    fn from(e: IoError) -> Message {
        Message::Error(e)
    }
}

impl From<Request> for Message {
    fn from(rq: Request) -> Message {
        Message::NewRequest(rq)
    }
}

// this trait is to make sure that Server implements Share and Send
#[doc(hidden)]
trait MustBeShareDummy: Sync + Send {}
#[doc(hidden)]
impl MustBeShareDummy for Server {}

pub struct IncomingRequests<'a> {
    server: &'a Server,
}

/// Represents the parameters required to create a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The addresses to try to listen to.
    pub addr: ConfigListenAddr,

    /// If `Some`, then the server will use SSL to encode the communications.
    pub ssl: Option<SslConfig>,
}

/// Limits applied to every accepted connection (a local patch of this vendored copy; see
/// `PATCHES.md`). `Server::http`, `Server::new` and the other constructors use
/// `ConnectionLimits::default()`; the `*_with_limits` constructors take explicit values.
///
/// ```no_run
/// use std::time::Duration;
/// let limits = tiny_http::ConnectionLimits {
///     read_timeout: Some(Duration::from_secs(30)),
///     max_connections: Some(256),
///     ..Default::default()
/// };
/// let server = tiny_http::Server::http_with_limits("0.0.0.0:0", limits).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Read timeout of every accepted connection: a connection on which nothing arrives for this
    /// long while the server waits for the next request (idle keep-alive) or for more of the
    /// current request is closed. Default: 20 s, longer than ureq's 15 s idle pool age so that
    /// pooled connections are not cut under a caller. `None` (or a zero duration): no timeout.
    pub read_timeout: Option<Duration>,

    /// Time allowed from the first byte of a request to the end of its head (request line and
    /// headers); when it passes, the server answers `408` and closes the connection, so that a
    /// client sending its headers byte by byte cannot hold a thread forever. Plain (non-TLS)
    /// connections only. Default: 10 s. `None` (or a zero duration): no bound.
    pub header_timeout: Option<Duration>,

    /// Maximum number of open connections. When it is reached, a newly accepted connection gets
    /// a best-effort `503 Service Unavailable` (`Connection: close`, no body; nothing is written
    /// on TLS listeners) and is closed at once. A connection stops counting when its connection
    /// thread ends (after its last request has been read). Default: 1024. `None`: no cap.
    pub max_connections: Option<usize>,

    /// When `max_connections` is reached, close the connection that has been idle the longest
    /// (waiting for the first byte of a request) and accept the new one, instead of refusing
    /// the new one. Only the read half of the idle connection is shut down, so a response still
    /// being written on it completes. Costs one more file descriptor per connection (plain
    /// connections only). Default: `false`.
    pub evict_idle: bool,

    /// Largest request head (request line and headers) accepted, in bytes. A longer request line
    /// gets `414`, longer headers `431`, and the connection is closed. Upstream has no bound:
    /// a head is buffered in memory for as long as it keeps coming. Default: 64 KiB.
    pub max_head_size: Option<usize>,

    /// A request body of at most this many bytes (with a `Content-Length`) is read by the
    /// connection's thread, within `header_timeout`, before the request is handed to `recv()`;
    /// a larger one is read by whoever reads the request. A client that sends a small body slowly
    /// then holds a connection thread, not a thread that handles requests. If the client sent
    /// `Expect: 100-continue`, the `100 Continue` is sent first. Default: 1024 (as upstream).
    pub buffered_body: usize,

    /// Builds the answers tiny_http gives by itself (400 for a malformed or non-ASCII request
    /// head, 408, 414, 417, 431, 503 over `max_connections`, 505) from the status and a short
    /// reason; the status and a `Connection: close` header are set on the result. Default:
    /// `None`, an empty body (a short text for 505), as upstream.
    pub error_response: Option<ErrorResponder>,
}

/// Builds a response that tiny_http gives by itself, from its status and a short reason (see
/// `ConnectionLimits::error_response`). A local patch, see `PATCHES.md`.
pub type ErrorResponder = fn(StatusCode, &str) -> Response<std::io::Cursor<Vec<u8>>>;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            read_timeout: Some(Duration::from_secs(20)),
            header_timeout: Some(Duration::from_secs(10)),
            max_connections: Some(1024),
            evict_idle: false,
            max_head_size: Some(64 * 1024),
            buffered_body: 1024,
            error_response: None,
        }
    }
}

// PATCH: the open connections: how many, and those that can be closed when idle.
#[derive(Default)]
struct OpenConnections {
    count: AtomicUsize,
    next_id: AtomicU64,
    // a duplicate of each evictable connection's socket, to shut down its read half
    evictable: Mutex<HashMap<u64, (Arc<ConnectionState>, Connection)>>,
}

impl OpenConnections {
    // PATCH: shuts down the read half of the connection idle the longest; false if none is idle.
    fn evict_idle(&self) -> bool {
        let mut evictable = self.evictable.lock().unwrap_or_else(|e| e.into_inner());
        let oldest = evictable
            .iter()
            .map(|(id, (state, _))| (state.idle_since.load(Ordering::SeqCst), *id))
            .filter(|(since, _)| *since != 0)
            .min();
        match oldest.and_then(|(_, id)| evictable.remove(&id)) {
            Some((_, socket)) => {
                let _ = socket.shutdown(Shutdown::Read);
                true
            }
            None => false,
        }
    }
}

// PATCH: counts one open connection while alive.
struct OpenConnection(Arc<OpenConnections>, u64);

impl OpenConnection {
    fn new(
        open: &Arc<OpenConnections>,
        state: &Arc<ConnectionState>,
        evict_handle: Option<Connection>,
    ) -> OpenConnection {
        open.count.fetch_add(1, Ordering::SeqCst);
        let id = open.next_id.fetch_add(1, Ordering::SeqCst);
        if let Some(socket) = evict_handle {
            let mut evictable = open.evictable.lock().unwrap_or_else(|e| e.into_inner());
            evictable.insert(id, (state.clone(), socket));
        }
        OpenConnection(open.clone(), id)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        let mut evictable = self.0.evictable.lock().unwrap_or_else(|e| e.into_inner());
        evictable.remove(&self.1);
        drop(evictable);
        self.0.count.fetch_sub(1, Ordering::SeqCst);
    }
}

// PATCH: best-effort 503 for a connection over the cap, without blocking the accept thread.
fn refuse_connection(mut sock: Connection, error_response: Option<ErrorResponder>) {
    const RESPONSE: &[u8] =
        b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    let mut response = RESPONSE.to_vec();
    if let Some(f) = error_response {
        response.clear();
        let close = Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap();
        f(StatusCode(503), "too many open connections")
            .with_status_code(StatusCode(503))
            .with_header(close)
            .raw_print(&mut response, HTTPVersion(1, 1), &[], false, None)
            .ok();
    }
    if sock.set_nonblocking(true).is_ok() {
        let _ = sock.write(&response);
        let _ = sock.shutdown(Shutdown::Write);
        // reading what the client already sent avoids a reset that could discard the 503
        let _ = sock.read(&mut [0; 2048]);
    }
}

/// Configuration of the server for SSL.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// Contains the public certificate to send to clients.
    pub certificate: Vec<u8>,
    /// Contains the ultra-secret private key used to decode communications.
    pub private_key: Vec<u8>,
}

impl Server {
    /// Shortcut for a simple server on a specific address.
    #[inline]
    pub fn http<A>(addr: A) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: None,
        })
    }

    /// Same as `http()`, with explicit connection limits (patch, see `ConnectionLimits`).
    pub fn http_with_limits<A>(
        addr: A,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new_with_limits(
            ServerConfig {
                addr: ConfigListenAddr::from_socket_addrs(addr)?,
                ssl: None,
            },
            limits,
        )
    }

    /// Shortcut for an HTTPS server on a specific address.
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    #[inline]
    pub fn https<A>(
        addr: A,
        config: SslConfig,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>>
    where
        A: ToSocketAddrs,
    {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::from_socket_addrs(addr)?,
            ssl: Some(config),
        })
    }

    #[cfg(unix)]
    #[inline]
    /// Shortcut for a UNIX socket server at a specific path
    pub fn http_unix(
        path: &std::path::Path,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Server::new(ServerConfig {
            addr: ConfigListenAddr::unix_from_path(path),
            ssl: None,
        })
    }

    /// Builds a new server that listens on the specified address.
    pub fn new(config: ServerConfig) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::new_with_limits(config, ConnectionLimits::default())
    }

    /// Same as `new()`, with explicit connection limits (patch, see `ConnectionLimits`).
    pub fn new_with_limits(
        config: ServerConfig,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = config.addr.bind()?;
        Self::from_listener_with_limits(listener, config.ssl, limits)
    }

    /// Builds a new server using the specified TCP listener.
    ///
    /// This is useful if you've constructed TcpListener using some less usual method
    /// such as from systemd. For other cases, you probably want the `new()` function.
    pub fn from_listener<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        Self::from_listener_with_limits(listener, ssl_config, ConnectionLimits::default())
    }

    /// Same as `from_listener()`, with explicit connection limits (patch, see
    /// `ConnectionLimits`).
    pub fn from_listener_with_limits<L: Into<Listener>>(
        listener: L,
        ssl_config: Option<SslConfig>,
        limits: ConnectionLimits,
    ) -> Result<Server, Box<dyn Error + Send + Sync + 'static>> {
        let listener = listener.into();
        let read_timeout = limits.read_timeout.filter(|d| !d.is_zero());
        let header_timeout = limits.header_timeout.filter(|d| !d.is_zero());
        let max_connections = limits.max_connections;
        let evict_idle = limits.evict_idle;
        let error_response = limits.error_response;
        let options = ConnectionOptions {
            header_timeout,
            read_timeout,
            max_head_size: limits.max_head_size,
            buffered_body: limits.buffered_body,
            error_response,
        };
        let open_connections = Arc::new(OpenConnections::default());
        // building the "close" variable
        let close_trigger = Arc::new(AtomicBool::new(false));

        // building the TcpListener
        let (server, local_addr) = {
            let local_addr = listener.local_addr()?;
            log::debug!("Server listening on {}", local_addr);
            (listener, local_addr)
        };

        // building the SSL capabilities
        #[cfg(all(feature = "ssl-openssl", feature = "ssl-rustls"))]
        compile_error!(
            "Features 'ssl-openssl' and 'ssl-rustls' must not be enabled at the same time"
        );
        #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
        type SslContext = ();
        #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
        type SslContext = crate::ssl::SslContextImpl;
        let ssl: Option<SslContext> = {
            match ssl_config {
                #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                Some(config) => Some(SslContext::from_pem(
                    config.certificate,
                    Zeroizing::new(config.private_key),
                )?),
                #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                Some(_) => return Err(
                    "Building a server with SSL requires enabling the `ssl` feature in tiny-http"
                        .into(),
                ),
                None => None,
            }
        };

        // creating a task where server.accept() is continuously called
        // and ClientConnection objects are pushed in the messages queue
        let messages = MessagesQueue::with_capacity(8);

        let inside_close_trigger = close_trigger.clone();
        let inside_messages = messages.clone();
        thread::spawn(move || {
            // a tasks pool is used to dispatch the connections into threads
            let tasks_pool = util::TaskPool::new();

            log::debug!("Running accept thread");
            while !inside_close_trigger.load(Relaxed) {
                let new_client = match server.accept() {
                    Ok((sock, _)) => {
                        // PATCH: no Nagle delay, and a read timeout, on every connection
                        if let Err(e) = sock.set_nodelay(true) {
                            log::warn!("Could not set TCP_NODELAY: {}", e);
                        }
                        if let Err(e) = sock.set_read_timeout(read_timeout) {
                            log::warn!("Could not set the read timeout: {}", e);
                        }

                        // PATCH: cap on open connections; with `evict_idle`, the connection
                        // idle the longest makes room (it still counts until its thread ends)
                        if let Some(max) = max_connections {
                            if open_connections.count.load(Ordering::SeqCst) >= max
                                && !(evict_idle && open_connections.evict_idle())
                            {
                                log::warn!("{} open connections: refusing a new one", max);
                                if ssl.is_none() {
                                    refuse_connection(sock, error_response);
                                }
                                continue;
                            }
                        }

                        // PATCH: what the accept thread needs to close this connection if idle
                        let evict_handle = match (evict_idle, &ssl) {
                            (true, None) => sock.try_clone().ok(),
                            _ => None,
                        };

                        use util::RefinedTcpStream;
                        // PATCH: `RefinedTcpStream::new` returns an error instead of panicking
                        // when the socket cannot be duplicated (EMFILE); handled like an accept
                        // error below.
                        let streams = match ssl {
                            None => RefinedTcpStream::new(sock),
                            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
                            Some(ref ssl) => {
                                // trying to apply SSL over the connection
                                // if an error occurs, we just close the socket and resume listening
                                let sock = match ssl.accept(sock) {
                                    Ok(s) => s,
                                    Err(_) => continue,
                                };

                                RefinedTcpStream::new(sock)
                            }
                            #[cfg(not(any(feature = "ssl-openssl", feature = "ssl-rustls")))]
                            Some(ref _ssl) => unreachable!(),
                        };

                        streams.map(|(read_closable, write_closable)| {
                            let state = Arc::new(ConnectionState::default());
                            let client = ClientConnection::new(
                                write_closable,
                                read_closable,
                                options.clone(),
                                state.clone(),
                            );
                            (client, state, evict_handle)
                        })
                    }
                    Err(e) => Err(e),
                };

                match new_client {
                    Ok((client, state, evict_handle)) => {
                        let messages = inside_messages.clone();
                        // PATCH: the connection counts as open until this task ends
                        let open = OpenConnection::new(&open_connections, &state, evict_handle);
                        let mut client = Some((client, open));
                        tasks_pool.spawn(Box::new(move || {
                            if let Some((client, _open)) = client.take() {
                                // Synchronization is needed for HTTPS requests to avoid a deadlock
                                if client.secure() {
                                    let (sender, receiver) = mpsc::channel();
                                    for rq in client {
                                        messages.push(rq.with_notify_sender(sender.clone()).into());
                                        receiver.recv().unwrap();
                                    }
                                } else {
                                    for rq in client {
                                        messages.push(rq.into());
                                    }
                                }
                            }
                        }));
                    }

                    Err(e) => {
                        // PATCH: an accept error (EMFILE, EAGAIN...) must not end the server:
                        // log it, wait a little, and accept again (the close flag is checked by
                        // the loop, so dropping the server still ends this thread).
                        log::error!("Error accepting new client: {}", e);
                        thread::sleep(Duration::from_millis(10));
                    }
                }
            }
            log::debug!("Terminating accept thread");
        });

        // result
        Ok(Server {
            messages,
            close: close_trigger,
            listening_addr: local_addr,
        })
    }

    /// Returns an iterator for all the incoming requests.
    ///
    /// The iterator will return `None` if the server socket is shutdown.
    #[inline]
    pub fn incoming_requests(&self) -> IncomingRequests<'_> {
        IncomingRequests { server: self }
    }

    /// Returns the address the server is listening to.
    #[inline]
    pub fn server_addr(&self) -> ListenAddr {
        self.listening_addr.clone()
    }

    /// Returns the number of clients currently connected to the server.
    pub fn num_connections(&self) -> usize {
        unimplemented!()
        //self.requests_receiver.lock().len()
    }

    /// Blocks until an HTTP request has been submitted and returns it.
    pub fn recv(&self) -> IoResult<Request> {
        match self.messages.pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(rq),
            None => Err(IoError::new(IoErrorKind::Other, "thread unblocked")),
        }
    }

    /// Same as `recv()` but doesn't block longer than timeout
    pub fn recv_timeout(&self, timeout: Duration) -> IoResult<Option<Request>> {
        match self.messages.pop_timeout(timeout) {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Same as `recv()` but doesn't block.
    pub fn try_recv(&self) -> IoResult<Option<Request>> {
        match self.messages.try_pop() {
            Some(Message::Error(err)) => Err(err),
            Some(Message::NewRequest(rq)) => Ok(Some(rq)),
            None => Ok(None),
        }
    }

    /// Unblock thread stuck in recv() or incoming_requests().
    /// If there are several such threads, only one is unblocked.
    /// This method allows graceful shutdown of server.
    pub fn unblock(&self) {
        self.messages.unblock();
    }
}

impl Iterator for IncomingRequests<'_> {
    type Item = Request;
    fn next(&mut self) -> Option<Request> {
        self.server.recv().ok()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close.store(true, Relaxed);
        // Connect briefly to ourselves to unblock the accept thread
        let maybe_stream = match &self.listening_addr {
            ListenAddr::IP(addr) => TcpStream::connect(addr).map(Connection::from),
            #[cfg(unix)]
            ListenAddr::Unix(addr) => {
                // TODO: use connect_addr when its stabilized.
                let path = addr.as_pathname().unwrap();
                std::os::unix::net::UnixStream::connect(path).map(Connection::from)
            }
        };
        if let Ok(stream) = maybe_stream {
            let _ = stream.shutdown(Shutdown::Both);
        }

        #[cfg(unix)]
        if let ListenAddr::Unix(addr) = &self.listening_addr {
            if let Some(path) = addr.as_pathname() {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}
