//! What every service's `main` does around its `serve`, and how a failure leaves the process.
//!
//! `main` parses its flags (clap exits with 2 on a malformed one), then hands [`run`] a function that
//! binds and serves and one that stops. [`run`] raises the open-files limit, installs the signal
//! handler, starts the service, waits for Ctrl-C or SIGTERM (or for the service to ask for a stop
//! itself, through the [`Shutdown`] it is given), and stops it. The exit code says what happened:
//! [`EXIT_OK`], [`EXIT_CONFIG`] for a setting the service refused ([`Error::Config`]), and
//! [`EXIT_FAILURE`] for anything else (a port in use, a file it cannot read or write).

use crate::error::Error;
use crate::log;
use crate::shutdown::Shutdown;
use std::process::ExitCode;

/// The service started, ran and stopped cleanly.
pub const EXIT_OK: u8 = 0;
/// The service failed: it could not start (a port in use, an unreadable file) or failed while
/// running (its disk), or could not stop cleanly.
pub const EXIT_FAILURE: u8 = 1;
/// A flag or setting was refused: the same code clap uses for a malformed flag.
pub const EXIT_CONFIG: u8 = 2;

/// The exit code for a service that ends with `e`.
pub fn exit_code(e: &Error) -> u8 {
    match e {
        Error::Config(_) => EXIT_CONFIG,
        _ => EXIT_FAILURE,
    }
}

/// Runs service `who`: `start` serves (and may keep the [`Shutdown`] to stop the process itself
/// when it cannot go on), then, once a stop is asked for, `stop` stops it. Every failure is logged
/// once with the service's name.
pub fn run<R>(
    who: &str,
    start: impl FnOnce(&Shutdown) -> crate::Result<R>,
    stop: impl FnOnce(R) -> crate::Result<()>,
) -> ExitCode {
    crate::limits::raise_open_files_limit();
    let shutdown = Shutdown::install();
    let running = match start(&shutdown) {
        Ok(r) => r,
        Err(e) => {
            log!(who, "cannot start: {}", e.message());
            return ExitCode::from(exit_code(&e));
        }
    };
    shutdown.wait();
    log!(who, "stopping");
    match stop(running) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            log!(who, "stopped: {}", e.message());
            ExitCode::from(exit_code(&e))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_setting_exits_like_a_bad_flag() {
        assert_eq!(exit_code(&Error::Config("--quorum".into())), EXIT_CONFIG);
        assert_eq!(exit_code(&Error::Io("port in use".into())), EXIT_FAILURE);
    }
}
