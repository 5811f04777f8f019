//! `order`: parse the flags, serve one replica, stop cleanly on Ctrl-C or SIGTERM.

use clap::Parser;
use shared::log;

fn main() {
    let config = order::Config::parse();
    let who = format!("order-{}", config.id);
    shared::limits::raise_open_files_limit();
    let shutdown = shared::shutdown::Shutdown::install();
    let started = config
        .listen_addr()
        .and_then(|a| shared::http::bind(&a))
        .and_then(|l| order::serve(&config, l));
    let running = match started {
        Ok(r) => r,
        Err(e) => {
            log!(who, "cannot start: {}", e.message());
            std::process::exit(1);
        }
    };
    shutdown.wait();
    log!(who, "stopping");
    if let Err(e) = running.stop() {
        log!(who, "stop: {}", e.message());
        std::process::exit(1);
    }
}
