use ascii::AsciiString;

use std::io::Error as IoError;
use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{HTTPVersion, Header, Method, StatusCode};
use crate::util::refined_tcp_stream::{ConnectionState, HeadDeadline};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::{ErrorResponder, Request, Response};

/// PATCH: how long, and how much of, what a client still sends is read and dropped before a
/// connection the server closes early (a response with `Connection: close`, a head too large)
/// is closed: closing a socket with unread input resets the connection, and the client could
/// lose the response.
const LINGER_TIME: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1 << 20;

/// PATCH: how each accepted connection is served (from `ConnectionLimits`).
#[derive(Clone, Default)]
pub(crate) struct ConnectionOptions {
    /// See `ConnectionLimits::header_timeout`.
    pub(crate) header_timeout: Option<Duration>,
    /// The read timeout already set on the socket.
    pub(crate) read_timeout: Option<Duration>,
    /// See `ConnectionLimits::max_head_size`.
    pub(crate) max_head_size: Option<usize>,
    /// See `ConnectionLimits::buffered_body`.
    pub(crate) buffered_body: usize,
    /// See `ConnectionLimits::error_response`.
    pub(crate) error_response: Option<ErrorResponder>,
}

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<BufReader<RefinedTcpStream>>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<BufWriter<RefinedTcpStream>>,

    // Reader to read the next header from
    next_header_source: SequentialReader<BufReader<RefinedTcpStream>>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // PATCH: deadline shared with the read socket, and the time allowed for one request head
    head_deadline: Option<(HeadDeadline, Duration)>,

    // PATCH: true once the first byte of the current request head has been received
    head_started: bool,

    // PATCH: bytes of the current request head received so far
    head_size: usize,

    // PATCH: shared with the read socket, the requests and the accept thread
    state: Arc<ConnectionState>,

    // PATCH: limits and error answers
    options: ConnectionOptions,
}

/// PATCH: why a line of a request head could not be read.
enum LineError {
    Io(IoError),
    NotAscii,
    TooLong,
    /// The connection is closing (see `ConnectionState::closing`).
    Closing,
}

/// Error that can happen when reading a request.
#[derive(Debug)]
enum ReadError {
    WrongRequestLine,
    WrongHeader(HTTPVersion),
    /// the client sent an unrecognized `Expect` header
    ExpectationFailed(HTTPVersion),
    ReadIoError(IoError),
    /// PATCH: the head is larger than `max_head_size`: 414 when the request line is, else 431
    HeadTooLarge(u16, HTTPVersion),
    /// PATCH: a response asked to close the connection
    Closing,
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    ///
    /// PATCH: `options.header_timeout` bounds the time from the first byte of a request to the
    /// end of its head and of its body when that is read here (plain connections only);
    /// `state` is shared with the accept thread.
    pub(crate) fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        options: ConnectionOptions,
        state: Arc<ConnectionState>,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let head_deadline = match options.header_timeout {
            Some(timeout) if !secure => {
                let deadline: HeadDeadline = Arc::new(Mutex::new(None));
                read_socket.set_head_deadline(deadline.clone(), options.read_timeout);
                Some((deadline, timeout))
            }
            _ => None,
        };
        read_socket.set_state(state.clone());

        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, read_socket));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, write_socket)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            head_deadline,
            head_started: false,
            head_size: 0,
            state,
            options,
        }
    }

    // PATCH: sets (`Some`) or clears (`None`) the request-head deadline.
    fn set_head_deadline(&self, deadline: Option<Instant>) {
        if let Some((ref shared, _)) = self.head_deadline {
            *shared.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
        }
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Reads the next line from self.next_header_source.
    ///
    /// Reads until `CRLF` is reached. The next read will start
    ///  at the first byte of the new line.
    fn read_next_line(&mut self) -> Result<AsciiString, LineError> {
        let mut buf = Vec::new();
        let mut prev_byte_was_cr = false;

        loop {
            let byte = self.next_header_source.by_ref().bytes().next();

            let byte = match byte {
                Some(b) => b.map_err(LineError::Io)?,
                None => {
                    let eof = IoError::new(ErrorKind::ConnectionAborted, "Unexpected EOF");
                    return Err(LineError::Io(eof));
                }
            };

            // PATCH: the head deadline starts with the first byte of the request
            if !self.head_started {
                self.head_started = true;
                self.state.awaiting_head.store(false, Ordering::SeqCst);
                // PATCH: nothing more is read once a response asked to close the connection
                if self.state.closing() {
                    return Err(LineError::Closing);
                }
                if let Some((_, timeout)) = self.head_deadline {
                    self.set_head_deadline(Some(Instant::now() + timeout));
                }
            }

            // PATCH: a bound on the size of the head
            self.head_size += 1;
            if self
                .options
                .max_head_size
                .is_some_and(|max| self.head_size > max)
            {
                return Err(LineError::TooLong);
            }

            // PATCH: a line that is not ASCII was an `InvalidInput` I/O error, which closed the
            // connection without an answer
            if byte == b'\n' && prev_byte_was_cr {
                buf.pop(); // removing the '\r'
                return AsciiString::from_ascii(buf).map_err(|_| LineError::NotAscii);
            }

            prev_byte_was_cr = byte == b'\r';

            buf.push(byte);
        }
    }

    // PATCH: the request line and headers, moved out of `read()` unchanged so that the head
    // deadline can be cleared on every path.
    fn read_head(&mut self) -> Result<(Method, String, HTTPVersion, Vec<Header>), ReadError> {
        // reading the request line
        let (method, path, version) = {
            // PATCH: a request line that is not ASCII is a malformed request line, and one that
            // is too long gets 414
            let line = self.read_next_line().map_err(|e| match e {
                LineError::Io(e) => ReadError::ReadIoError(e),
                LineError::NotAscii => ReadError::WrongRequestLine,
                LineError::TooLong => ReadError::HeadTooLarge(414, HTTPVersion(1, 1)),
                LineError::Closing => ReadError::Closing,
            })?;

            parse_request_line(
                line.as_str().trim(), // TODO: remove this conversion
            )?
        };

        // getting all headers
        let headers = {
            let mut headers = Vec::new();
            loop {
                // PATCH: a header that is not ASCII is a malformed header, and too many of them
                // get 431
                let line = self.read_next_line().map_err(|e| match e {
                    LineError::Io(e) => ReadError::ReadIoError(e),
                    LineError::NotAscii => ReadError::WrongHeader(version.clone()),
                    LineError::TooLong => ReadError::HeadTooLarge(431, version.clone()),
                    LineError::Closing => ReadError::Closing,
                })?;

                if line.is_empty() {
                    break;
                };
                headers.push(match FromStr::from_str(line.as_str().trim()) {
                    // TODO: remove this conversion
                    Ok(h) => h,
                    _ => return Err(ReadError::WrongHeader(version)),
                });
            }

            headers
        };

        Ok((method, path, version, headers))
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    fn read(&mut self) -> Result<Request, ReadError> {
        // PATCH: the head deadline covers the request line, the headers and a body small enough
        // to be read here
        self.head_started = false;
        self.head_size = 0;
        self.state.awaiting_head.store(true, Ordering::SeqCst);
        let request = self.read_request();
        self.state.awaiting_head.store(false, Ordering::SeqCst);
        self.set_head_deadline(None);
        request
    }

    // PATCH: the rest of `read()`, moved unchanged but for the arguments of `new_request`.
    fn read_request(&mut self) -> Result<Request, ReadError> {
        let (method, path, version, headers) = self.read_head()?;

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        let request = crate::request::new_request(
            self.secure,
            method,
            path,
            version.clone(),
            headers,
            *self.remote_addr.as_ref().unwrap(),
            data_source,
            writer,
            self.options.buffered_body,
            Some(self.state.clone()),
        )
        .map_err(|e| {
            use crate::request;
            match e {
                request::RequestCreationError::CreationIoError(e) => ReadError::ReadIoError(e),
                request::RequestCreationError::ExpectationFailed => {
                    ReadError::ExpectationFailed(version)
                }
            }
        })?;

        // return the request
        Ok(request)
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        if self.no_more_requests {
            return None;
        }

        // PATCH: every answer tiny_http gives itself goes through `answer_and_close()`: it may
        // carry a body (`ConnectionLimits::error_response`), says `Connection: close`, and is
        // flushed. The connection is closed after each of them, as before.
        let rq = match self.read() {
            Err(ReadError::WrongRequestLine) => {
                // we don't know where the next request would start, so we have to close
                self.answer_and_close(400, HTTPVersion(1, 1), "malformed request line");
                return None;
            }

            Err(ReadError::WrongHeader(ver)) => {
                // we don't know where the next request would start, so we have to close
                self.answer_and_close(400, ver, "malformed request header");
                return None;
            }

            Err(ReadError::ReadIoError(ref err)) if err.kind() == ErrorKind::TimedOut => {
                // request timeout
                self.answer_and_close(408, HTTPVersion(1, 1), "request not received in time");
                return None;
            }

            Err(ReadError::ExpectationFailed(ver)) => {
                // TODO: should be recoverable, but needs handling in case of body
                self.answer_and_close(417, ver, "unsupported Expect header");
                return None;
            }

            Err(ReadError::HeadTooLarge(status, ver)) => {
                let reason = if status == 414 {
                    "request line too long"
                } else {
                    "request headers too large"
                };
                self.answer_and_close(status, ver, reason);
                self.linger();
                return None;
            }

            Err(ReadError::Closing) => {
                self.linger();
                return None;
            }

            Err(ReadError::ReadIoError(_)) => return None,

            Ok(rq) => rq,
        };

        // checking HTTP version
        if *rq.http_version() > (1, 1) {
            // PATCH: the answer goes through the request's own writer. It used to be written to
            // the next writer, which waits for this request's writer to be dropped: the
            // connection's thread then waited forever, and the connection stayed open.
            let response = self.error_response(505, "only HTTP/1.0 and HTTP/1.1 are supported");
            self.state.closing.store(true, Ordering::SeqCst);
            let mut writer = rq.into_writer();
            response
                .raw_print(&mut writer, HTTPVersion(1, 1), &[], false, None)
                .and_then(|()| writer.flush())
                .ok();
            return None;
        }

        // updating the status of the connection
        let connection_header = rq
            .headers()
            .iter()
            .find(|h| h.field.equiv("Connection"))
            .map(|h| h.value.as_str());

        let lowercase = connection_header.map(|h| h.to_ascii_lowercase());

        match lowercase {
            Some(ref val) if val.contains("close") => self.no_more_requests = true,
            Some(ref val) if val.contains("upgrade") => self.no_more_requests = true,
            Some(ref val)
                if !val.contains("keep-alive") && *rq.http_version() == HTTPVersion(1, 0) =>
            {
                self.no_more_requests = true
            }
            None if *rq.http_version() == HTTPVersion(1, 0) => self.no_more_requests = true,
            _ => (),
        };

        // returning the request
        Some(rq)
    }
}

impl ClientConnection {
    /// PATCH: an answer tiny_http gives by itself: `ConnectionLimits::error_response`, or an
    /// empty body (a short text for 505, as before), with `Connection: close`.
    fn error_response(&self, status: u16, reason: &str) -> Response<std::io::Cursor<Vec<u8>>> {
        let response = match self.options.error_response {
            Some(f) => f(StatusCode(status), reason),
            None if status == 505 => Response::from_string(
                "This server only supports HTTP versions 1.0 and 1.1".to_owned(),
            ),
            None => Response::from_data(Vec::new()),
        };
        response
            .with_status_code(StatusCode(status))
            .with_header(Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap())
    }

    /// PATCH: writes `error_response(status, reason)` after the responses still to come on this
    /// connection, and flushes it; the caller then closes the connection.
    fn answer_and_close(&mut self, status: u16, version: HTTPVersion, reason: &str) {
        let response = self.error_response(status, reason);
        let mut writer = self.sink.next().unwrap();
        response
            .raw_print(&mut writer, version, &[], false, None)
            .and_then(|()| writer.flush())
            .ok();
    }

    /// PATCH: before a connection the server closes early is closed, reads and drops what the
    /// client still sends, for at most `LINGER_TIME` and `LINGER_BYTES` (plain connections with
    /// a header timeout only).
    fn linger(&mut self) {
        if self.head_deadline.is_none() {
            return;
        }
        self.set_head_deadline(Some(Instant::now() + LINGER_TIME));
        let mut buf = [0u8; 8192];
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match self.next_header_source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
        self.set_head_deadline(None);
    }
}

/// Parses a "HTTP/1.1" string.
fn parse_http_version(version: &str) -> Result<HTTPVersion, ReadError> {
    let (major, minor) = match version {
        "HTTP/0.9" => (0, 9),
        "HTTP/1.0" => (1, 0),
        "HTTP/1.1" => (1, 1),
        "HTTP/2.0" => (2, 0),
        "HTTP/3.0" => (3, 0),
        _ => return Err(ReadError::WrongRequestLine),
    };

    Ok(HTTPVersion(major, minor))
}

/// Parses the request line of the request.
/// eg. GET / HTTP/1.1
fn parse_request_line(line: &str) -> Result<(Method, String, HTTPVersion), ReadError> {
    let mut parts = line.split(' ');

    let method = parts.next().and_then(|w| w.parse().ok());
    let path = parts.next().map(ToOwned::to_owned);
    let version = parts.next().and_then(|w| parse_http_version(w).ok());

    method
        .and_then(|method| Some((method, path?, version?)))
        .ok_or(ReadError::WrongRequestLine)
}

#[cfg(test)]
mod test {
    #[test]
    fn test_parse_request_line() {
        let (method, path, ver) = super::parse_request_line("GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(super::parse_request_line("GET /hello").is_err());
        assert!(super::parse_request_line("qsd qsd qsd").is_err());
    }
}
