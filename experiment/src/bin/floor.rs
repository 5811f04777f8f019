//! `floor`: the benchmark's floor, a bare HTTP server with the services' worker pool
//! ([`shared::http::Server`]) that answers every request with the same small JSON body (a product
//! reply). Runs until killed.

use clap::Parser;

/// The floor's flags. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug)]
#[command(
    name = "floor",
    version,
    about = "A bare HTTP server answering a fixed JSON body: the benchmark's floor"
)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        env = "TOYSTORE_LISTEN",
        default_value = "127.0.0.1:8099",
        value_name = "ADDR"
    )]
    listen: String,
    /// HTTP worker threads (the services' default).
    #[arg(long, env = "TOYSTORE_WORKERS", default_value_t = shared::http::DEFAULT_WORKERS)]
    workers: usize,
}

fn main() {
    let args = Args::parse();
    let shutdown = shared::shutdown::Shutdown::install();
    let server = match experiment::bench::start_floor(&args.listen, args.workers) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("floor: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("floor: serving on {}", server.addr());
    shutdown.wait();
    server.stop();
}
