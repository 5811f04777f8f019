//! `frontend`: parse the flags, serve, stop cleanly on Ctrl-C or SIGTERM.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = frontend::Config::parse();
    shared::service::run(
        "frontend",
        |_| {
            let public = shared::http::bind(&config.listen)?;
            let internal = shared::http::bind(&config.internal_listen)?;
            frontend::serve(&config, public, internal)
        },
        |running| {
            running.stop();
            Ok(())
        },
    )
}
