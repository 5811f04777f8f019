//! The workspace's one error type.
//!
//! Services return [`Error`] from their logic; only the HTTP edge turns it into a status code
//! ([`Error::status`]) and only the calling side turns a status code back into an error
//! ([`Error::from_status`]), so that a 409 from the catalog stays a 409 when the order service passes
//! it on to the front-end.

use std::fmt;

/// Result with the workspace's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the toy store.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The request is malformed (400).
    BadRequest(String),
    /// The internal call lacks the shared secret (403).
    Forbidden(String),
    /// The product, order or path does not exist (404).
    NotFound(String),
    /// The method is not allowed on this path (405).
    MethodNotAllowed(String),
    /// Not enough stock, or a request that conflicts with the state (409).
    Conflict(String),
    /// The body is larger than the service accepts (413).
    TooLarge(String),
    /// The store cannot serve this now and nothing was changed (503). Worth retrying.
    Unavailable(String),
    /// The outcome is unknown: the change may still complete (504). Retry with the same request id.
    Indeterminate(String),
    /// A message from an older leader epoch was refused; carries the epoch the replica promised.
    StaleEpoch(u64),
    /// The peer could not be reached: the request surely did not arrive (connection refused).
    Unreachable(String),
    /// The call failed after it may have arrived (reset, timeout): its effect is unknown.
    Transport(String),
    /// A file could not be read or written.
    Io(String),
    /// A bug or an impossible state (500).
    Internal(String),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) | Error::StaleEpoch(_) => 409,
            Error::TooLarge(_) => 413,
            Error::Unavailable(_) | Error::Unreachable(_) | Error::Transport(_) => 503,
            Error::Indeterminate(_) => 504,
            Error::Io(_) | Error::Internal(_) => 500,
        }
    }

    /// The error for an answer with this status and message, as a caller sees it.
    pub fn from_status(status: u16, message: String) -> Error {
        match status {
            400 => Error::BadRequest(message),
            403 => Error::Forbidden(message),
            404 => Error::NotFound(message),
            405 => Error::MethodNotAllowed(message),
            409 => match message
                .strip_prefix(STALE_PREFIX)
                .and_then(|e| e.trim().parse().ok())
            {
                Some(epoch) => Error::StaleEpoch(epoch),
                None => Error::Conflict(message),
            },
            413 => Error::TooLarge(message),
            503 => Error::Unavailable(message),
            504 => Error::Indeterminate(message),
            _ => Error::Internal(format!("status {status}: {message}")),
        }
    }

    /// True when the same request may succeed if sent again (to the same or another peer).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::Unreachable(_)
                | Error::Transport(_)
                | Error::Indeterminate(_)
        )
    }

    /// The message without the kind.
    pub fn message(&self) -> String {
        match self {
            Error::BadRequest(m)
            | Error::Forbidden(m)
            | Error::NotFound(m)
            | Error::MethodNotAllowed(m)
            | Error::Conflict(m)
            | Error::TooLarge(m)
            | Error::Unavailable(m)
            | Error::Indeterminate(m)
            | Error::Unreachable(m)
            | Error::Transport(m)
            | Error::Io(m)
            | Error::Internal(m) => m.clone(),
            Error::StaleEpoch(e) => format!("{STALE_PREFIX}{e}"),
        }
    }
}

/// How a stale-epoch refusal is spelled in an error message, so the caller can read the epoch back.
const STALE_PREFIX: &str = "stale epoch; promised epoch ";

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message(), self.status())
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}

impl From<csv::Error> for Error {
    fn from(e: csv::Error) -> Self {
        Error::Io(format!("csv: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::BadRequest(format!("invalid JSON: {e}"))
    }
}

impl From<ureq::Error> for Error {
    fn from(e: ureq::Error) -> Self {
        use ureq::Timeout;
        let refused = |e: &std::io::Error| {
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::AddrNotAvailable
            )
        };
        match &e {
            ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => {
                Error::Unreachable(e.to_string())
            }
            ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => {
                Error::Unreachable(e.to_string())
            }
            ureq::Error::Io(io) if refused(io) => Error::Unreachable(e.to_string()),
            _ => Error::Transport(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_the_wire() {
        for e in [
            Error::BadRequest("x".into()),
            Error::NotFound("x".into()),
            Error::Conflict("x".into()),
            Error::Unavailable("x".into()),
            Error::Indeterminate("x".into()),
            Error::StaleEpoch(7),
        ] {
            assert_eq!(Error::from_status(e.status(), e.message()), e);
        }
    }

    #[test]
    fn only_unavailable_kinds_are_retryable() {
        assert!(Error::Transport("refused".into()).is_retryable());
        assert!(Error::Unavailable("no quorum".into()).is_retryable());
        assert!(!Error::Conflict("no stock".into()).is_retryable());
        assert!(!Error::NotFound("x".into()).is_retryable());
    }
}
