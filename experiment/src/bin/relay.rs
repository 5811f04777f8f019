//! `relay`: forwards TCP connections from --listen to --to, holding every chunk for --delay-ms in each
//! direction (a wide-area link on a kernel without netem). Runs until killed. With --delay-file the
//! delay follows the number of ms written in that file (read every 50 ms), so a harness can slow a
//! link and heal it while connections stay open.

use clap::Parser;
use experiment::relay::{Delay, Relay};
use std::path::PathBuf;
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
    /// A file holding the delay in ms (the number alone); read every 50 ms, it overrides
    /// --delay-ms while it exists and holds a number.
    #[arg(long, env = "TOYSTORE_DELAY_FILE", value_name = "PATH")]
    delay_file: Option<PathBuf>,
}

/// How often the delay file is read.
const DELAY_FILE_PERIOD: Duration = Duration::from_millis(50);

/// Sets `delay` from `path` every [`DELAY_FILE_PERIOD`], for as long as the process runs.
fn follow_delay_file(path: PathBuf, delay: Delay) {
    let mut last = None;
    loop {
        let ms = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok());
        if let Some(ms) = ms.filter(|ms| last != Some(*ms)) {
            delay.set(Duration::from_millis(ms));
            eprintln!("relay: delay now {ms} ms each way");
            last = Some(ms);
        }
        std::thread::sleep(DELAY_FILE_PERIOD);
    }
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
    match Relay::start(listener, &args.to, Duration::from_millis(args.delay_ms)) {
        Ok(relay) => {
            if let Some(path) = args.delay_file {
                let delay = relay.delay().clone();
                std::thread::spawn(move || follow_delay_file(path, delay));
            }
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
