//! Clean shutdown on Ctrl-C or SIGTERM.
//!
//! `main` starts its servers, then blocks in [`Shutdown::wait`]; the signal handler only wakes it,
//! and `main` then stops the servers and flushes its files in its own thread.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;

/// A flag the signal handler sets and `main` waits on.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// Installs the handler for SIGINT and SIGTERM.
    pub fn install() -> Shutdown {
        let s = Shutdown::default();
        let handler = s.clone();
        if let Err(e) = ctrlc::set_handler(move || handler.trigger()) {
            eprintln!("warning: cannot install the signal handler: {e}");
        }
        s
    }

    /// Asks for shutdown.
    pub fn trigger(&self) {
        *self.inner.0.lock() = true;
        self.inner.1.notify_all();
    }

    /// Blocks until shutdown is asked for.
    pub fn wait(&self) {
        let mut done = self.inner.0.lock();
        while !*done {
            self.inner.1.wait(&mut done);
        }
    }

    /// True once shutdown was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.inner.0.lock()
    }
}
