//! The services' log lines.
//!
//! Every service logs to stderr, one line per event, prefixed with its name. The macro is exported
//! at the crate root, so it is used as `shared::log!` (or `use shared::log;`).

/// Prints one log line to stderr with the service's name: `[order-2] leader for epoch 4`. The line
/// goes out in one write, so the lines of services that share a terminal never interleave.
#[macro_export]
macro_rules! log {
    ($who:expr, $($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!("[{}] {}\n", $who, format!($($arg)*));
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }};
}
