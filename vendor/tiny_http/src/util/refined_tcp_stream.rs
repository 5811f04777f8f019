use std::io::Result as IoResult;
use std::io::{Error as IoError, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::connection::Connection;
#[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
use crate::ssl::SslStream;

pub(crate) enum Stream {
    Http(Connection),
    #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
    Https(SslStream),
}

// PATCH: was `impl Clone`, which panicked (in the accept thread) when `try_clone()` failed,
// e.g. with EMFILE.
impl Stream {
    fn try_clone(&self) -> IoResult<Self> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.try_clone().map(Stream::Http),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => Ok(Stream::Https(ssl_stream.clone())),
        }
    }
}

impl From<Connection> for Stream {
    fn from(tcp_stream: Connection) -> Self {
        Stream::Http(tcp_stream)
    }
}

impl Stream {
    fn secure(&self) -> bool {
        match self {
            Stream::Http(_) => false,
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => true,
        }
    }

    fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.peer_addr(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.peer_addr(),
        }
    }

    fn shutdown(&mut self, how: Shutdown) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.shutdown(how),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.shutdown(how),
        }
    }

    // PATCH: only used for the request-head deadline, which is installed on plain connections
    // only (see `ClientConnection::new`).
    fn set_read_timeout(&self, dur: Option<Duration>) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.set_read_timeout(dur),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(_) => Ok(()),
        }
    }
}

/// PATCH: deadline for receiving the current request head, shared between a
/// `ClientConnection` (which sets it when the first byte of a request arrives and clears it when
/// the head is complete) and the read half of its socket (which shortens the socket read timeout
/// accordingly and fails with `TimedOut` once it has passed).
pub(crate) type HeadDeadline = Arc<Mutex<Option<Instant>>>;

/// PATCH: the state of one connection that its `ClientConnection`, the read half of its socket,
/// the requests read from it and the accept thread share.
#[derive(Debug, Default)]
pub(crate) struct ConnectionState {
    /// A response carried `Connection: close`: the unread rest of the request body is not
    /// drained, and no further request is read from the connection.
    pub(crate) closing: AtomicBool,
    /// Set by the `ClientConnection` while it waits for the first byte of a request.
    pub(crate) awaiting_head: AtomicBool,
    /// While the read half is blocked waiting for that byte: since when (see [`now_ns`]); 0
    /// otherwise. The accept thread closes the connection idle the longest when it needs room.
    pub(crate) idle_since: AtomicU64,
}

impl ConnectionState {
    /// True once a response asked for the connection to be closed.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }
}

/// PATCH: nanoseconds since the first call, plus one (so that 0 can mean "not idle").
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64 + 1
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.read(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.write(buf),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.write(buf),
        }
    }

    fn flush(&mut self) -> IoResult<()> {
        match self {
            Stream::Http(tcp_stream) => tcp_stream.flush(),
            #[cfg(any(feature = "ssl-openssl", feature = "ssl-rustls"))]
            Stream::Https(ssl_stream) => ssl_stream.flush(),
        }
    }
}

pub struct RefinedTcpStream {
    stream: Stream,
    close_read: bool,
    close_write: bool,
    // PATCH: see `HeadDeadline`
    head_deadline: Option<HeadDeadline>,
    // PATCH: the connection's configured read timeout, restored once the head deadline is cleared
    base_read_timeout: Option<Duration>,
    // PATCH: true while the socket read timeout was shortened for a head deadline
    deadline_timeout_applied: bool,
    // PATCH: see `ConnectionState` (read half only)
    state: Option<Arc<ConnectionState>>,
}

impl RefinedTcpStream {
    pub(crate) fn new<S>(stream: S) -> IoResult<(RefinedTcpStream, RefinedTcpStream)>
    where
        S: Into<Stream>,
    {
        let stream: Stream = stream.into();

        let (read, write) = (stream.try_clone()?, stream);

        let read = RefinedTcpStream {
            stream: read,
            close_read: true,
            close_write: false,
            head_deadline: None,
            base_read_timeout: None,
            deadline_timeout_applied: false,
            state: None,
        };

        let write = RefinedTcpStream {
            stream: write,
            close_read: false,
            close_write: true,
            head_deadline: None,
            base_read_timeout: None,
            deadline_timeout_applied: false,
            state: None,
        };

        Ok((read, write))
    }

    /// Returns true if this struct wraps around a secure connection.
    #[inline]
    pub(crate) fn secure(&self) -> bool {
        self.stream.secure()
    }

    pub(crate) fn peer_addr(&mut self) -> IoResult<Option<SocketAddr>> {
        self.stream.peer_addr()
    }

    /// PATCH: makes reads honour `deadline` while it is set; `base_read_timeout` is the socket
    /// read timeout to restore when it is cleared.
    pub(crate) fn set_head_deadline(
        &mut self,
        deadline: HeadDeadline,
        base_read_timeout: Option<Duration>,
    ) {
        self.head_deadline = Some(deadline);
        self.base_read_timeout = base_read_timeout;
    }

    /// PATCH: lets reads record when the connection is idle between requests.
    pub(crate) fn set_state(&mut self, state: Arc<ConnectionState>) {
        self.state = Some(state);
    }
}

impl Drop for RefinedTcpStream {
    fn drop(&mut self) {
        if self.close_read {
            self.stream.shutdown(Shutdown::Read).ok();
        }

        if self.close_write {
            self.stream.shutdown(Shutdown::Write).ok();
        }
    }
}

impl Read for RefinedTcpStream {
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        // PATCH: request-head deadline (no extra system call unless a head arrives in pieces)
        let deadline = match self.head_deadline {
            Some(ref d) => *d.lock().unwrap_or_else(|e| e.into_inner()),
            None => None,
        };
        let deadline = match deadline {
            Some(deadline) => deadline,
            None => {
                if self.deadline_timeout_applied {
                    self.stream.set_read_timeout(self.base_read_timeout)?;
                    self.deadline_timeout_applied = false;
                }
                // PATCH: idle between requests while this read waits for a request's first byte
                if let Some(state) = self.state.as_ref() {
                    if state.awaiting_head.load(Ordering::SeqCst) {
                        state.idle_since.store(now_ns(), Ordering::SeqCst);
                        let result = self.stream.read(buf);
                        state.idle_since.store(0, Ordering::SeqCst);
                        return result;
                    }
                }
                return self.stream.read(buf);
            }
        };
        let timed_out = || IoError::new(ErrorKind::TimedOut, "request head not received in time");
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(timed_out());
        }
        let timeout = match self.base_read_timeout {
            Some(base) if base < remaining => base,
            _ => remaining,
        };
        self.stream.set_read_timeout(Some(timeout))?;
        self.deadline_timeout_applied = true;
        match self.stream.read(buf) {
            Err(ref e)
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
                    && Instant::now() >= deadline =>
            {
                Err(timed_out())
            }
            result => result,
        }
    }
}

impl Write for RefinedTcpStream {
    fn write(&mut self, buf: &[u8]) -> IoResult<usize> {
        self.stream.write(buf)
    }

    fn flush(&mut self) -> IoResult<()> {
        self.stream.flush()
    }
}
