//! `order`: parse the flags, serve one replica, stop cleanly on Ctrl-C or SIGTERM, or when the
//! replica cannot go on (its disk): then exit with the error.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = order::Config::parse();
    shared::service::run(
        &format!("order-{}", config.id),
        |shutdown| {
            let listener = shared::http::bind(&config.listen_addr()?)?;
            let running = order::serve(&config, listener)?;
            running.stop_process_on_failure(shutdown.clone());
            Ok(running)
        },
        order::Running::stop,
    )
}
