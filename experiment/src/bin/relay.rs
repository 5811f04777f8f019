//! `relay`: forwards TCP connections from --listen to --to, holding every chunk for --delay-ms in each
//! direction (a wide-area link on a kernel without netem). Runs until killed.

use clap::Parser;
use std::time::Duration;

/// A TCP relay that delays every chunk by a fixed time each way. Each flag can also be set as
/// `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug)]
#[command(name = "relay", version)]
struct Args {
    /// Address to listen on, e.g. 10.77.0.9:8083.
    #[arg(long, env = "TOYSTORE_LISTEN", value_name = "ADDR")]
    listen: String,
    /// Address to forward to, e.g. 10.77.0.2:8080.
    #[arg(long, env = "TOYSTORE_TO", value_name = "ADDR")]
    to: String,
    /// Delay added to every chunk, in each direction, in ms.
    #[arg(
        long,
        env = "TOYSTORE_DELAY_MS",
        default_value_t = 0,
        value_name = "MS"
    )]
    delay_ms: u64,
}

fn main() {
    let args = Args::parse();
    let listener = match std::net::TcpListener::bind(&args.listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("relay: cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    match experiment::relay::Relay::start(listener, &args.to, Duration::from_millis(args.delay_ms))
    {
        Ok(relay) => {
            eprintln!(
                "relay: {} -> {} with {} ms each way",
                relay.addr(),
                args.to,
                args.delay_ms
            );
            relay.wait();
        }
        Err(e) => {
            eprintln!("relay: {e}");
            std::process::exit(1);
        }
    }
}
