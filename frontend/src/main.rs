//! `frontend`: parse the flags, serve, stop cleanly on Ctrl-C or SIGTERM.

use clap::Parser;
use shared::log;

fn main() {
    let config = frontend::Config::parse();
    shared::limits::raise_open_files_limit();
    let shutdown = shared::shutdown::Shutdown::install();
    let started = shared::http::bind(&config.listen).and_then(|public| {
        let internal = shared::http::bind(&config.internal_listen)?;
        frontend::serve(&config, public, internal)
    });
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            log!("frontend", "cannot start: {}", e.message());
            std::process::exit(1);
        }
    };
    shutdown.wait();
    log!("frontend", "stopping");
    running.stop();
}
