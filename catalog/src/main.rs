//! `catalog`: parse the flags, serve, stop cleanly on Ctrl-C or SIGTERM.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = catalog::Config::parse();
    shared::service::run(
        "catalog",
        |_| shared::http::bind(&config.listen).and_then(|l| catalog::serve(&config, l)),
        catalog::Running::stop,
    )
}
