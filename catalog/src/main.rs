//! `catalog`: parse the flags, serve, stop cleanly on Ctrl-C or SIGTERM.

use clap::Parser;
use shared::log;

fn main() {
    let config = catalog::Config::parse();
    shared::limits::raise_open_files_limit();
    let shutdown = shared::shutdown::Shutdown::install();
    let running = match shared::http::bind(&config.listen).and_then(|l| catalog::serve(&config, l))
    {
        Ok(r) => r,
        Err(e) => {
            log!("catalog", "cannot start: {}", e.message());
            std::process::exit(1);
        }
    };
    shutdown.wait();
    log!("catalog", "stopping");
    if let Err(e) = running.stop() {
        log!("catalog", "stop: {}", e.message());
        std::process::exit(1);
    }
}
