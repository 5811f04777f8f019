//! The workspace's one error type.
//!
//! Services return [`Error`] from their logic; only the HTTP edge turns it into a status code
//! ([`Error::status`]) and only the calling side turns a status code back into an error
//! ([`Error::from_status`]), so that a 409 from the catalog stays a 409 when the order service passes
//! it on to the front-end.

use crate::protocol::{Ballot, ErrorBody};
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
    /// A message of an older leader choice was refused; carries the ballot the replica promised (409).
    Stale(Ballot),
    /// This replica is not the leader (or not yet): nothing was changed; carries the ballot it
    /// follows, so the caller learns who leads without asking (503).
    NotLeader(Ballot),
    /// The peer could not be reached: the request surely did not arrive (connection refused).
    Unreachable(String),
    /// The call failed after it may have arrived (reset, timeout): its effect is unknown.
    Transport(String),
    /// A file could not be read or written.
    Io(String),
    /// A bug or an impossible state (500).
    Internal(String),
    /// A flag or setting is invalid: found when a service starts, before it serves anything, and
    /// reported by `main` with its own exit code (see [`crate::service`]). Never an answer to a
    /// request; 500 if it ever were.
    Config(String),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) | Error::Stale(_) => 409,
            Error::TooLarge(_) => 413,
            Error::Unavailable(_)
            | Error::NotLeader(_)
            | Error::Unreachable(_)
            | Error::Transport(_) => 503,
            Error::Indeterminate(_) => 504,
            Error::Io(_) | Error::Internal(_) | Error::Config(_) => 500,
        }
    }

    /// The error for an answer with this status and message, as a caller sees it.
    pub fn from_status(status: u16, message: String) -> Error {
        match status {
            400 => Error::BadRequest(message),
            403 => Error::Forbidden(message),
            404 => Error::NotFound(message),
            405 => Error::MethodNotAllowed(message),
            409 => Error::Conflict(message),
            413 => Error::TooLarge(message),
            503 => Error::Unavailable(message),
            504 => Error::Indeterminate(message),
            _ => Error::Internal(format!("status {status}: {message}")),
        }
    }

    /// The error an answer's body describes: its status, and the promised ballot where one is given.
    pub fn from_body(status: u16, body: ErrorBody) -> Error {
        match (status, body.promised) {
            (409, Some(b)) => Error::Stale(b),
            (503, Some(b)) => Error::NotLeader(b),
            _ => Error::from_status(status, body.message),
        }
    }

    /// The body this error is answered with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            code: self.status(),
            message: self.message(),
            promised: match self {
                Error::Stale(b) | Error::NotLeader(b) => Some(*b),
                _ => None,
            },
        }
    }

    /// True when the same request may succeed if sent again (to the same or another peer).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::NotLeader(_)
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
            | Error::Internal(m)
            | Error::Config(m) => m.clone(),
            // The catalog knows only epochs: its fence names no leader.
            Error::Stale(b) if b.leader == 0 => format!(
                "refused: the request's leader epoch is older than epoch {}, the newest seen here; \
                 nothing was changed",
                b.epoch
            ),
            Error::Stale(b) => format!(
                "refused: this replica promised epoch {} (leader {})",
                b.epoch, b.leader
            ),
            Error::NotLeader(b) => format!(
                "not the leader; nothing was changed (epoch {}, leader {})",
                b.epoch, b.leader
            ),
        }
    }
}

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
        ] {
            assert_eq!(Error::from_status(e.status(), e.message()), e);
        }
        let b = Ballot {
            epoch: 7,
            leader: 2,
        };
        for e in [
            Error::Stale(b),
            Error::NotLeader(b),
            Error::Conflict("x".into()),
        ] {
            assert_eq!(Error::from_body(e.status(), e.body()), e);
        }
    }

    #[test]
    fn only_unavailable_kinds_are_retryable() {
        assert!(Error::Transport("refused".into()).is_retryable());
        assert!(Error::Unavailable("no quorum".into()).is_retryable());
        assert!(!Error::Conflict("no stock".into()).is_retryable());
        assert!(!Error::NotFound("x".into()).is_retryable());
        assert!(!Error::Config("--quorum".into()).is_retryable());
    }
}
