//! `chaos`: the seeded fault run with a checked history (see `systest::chaos`). `make chaos SEED=…
//! DURATION=…` runs it; it exits 0 when no violation was found, 1 otherwise (printing the seed and
//! the command that replays it), and 130 when stopped by Ctrl-C, after killing every process it
//! started in every case.

use clap::Parser;
use std::sync::atomic::Ordering;
use std::time::Duration;
use systest::chaos::{run, Options};

/// The flags of `chaos`.
#[derive(Parser, Debug)]
#[command(
    name = "chaos",
    about = "Runs the toy store under seeded faults with clients, then checks the history"
)]
struct Args {
    /// Seed of the fault plan and of the clients' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds of faults and clients.
    #[arg(long, default_value_t = 120)]
    duration: u64,
    /// Base port of the store on 127.0.0.1: it uses base..=base+13 (see `systest::cluster`).
    #[arg(long, default_value_t = 24100)]
    port_base: u16,
    /// Client threads.
    #[arg(long, default_value_t = 5)]
    clients: usize,
    /// The catalog's restock interval in seconds.
    #[arg(long, default_value_t = 2.0)]
    restock_interval: f64,
    /// Seconds the healed store may take to become quiet.
    #[arg(long, default_value_t = 30)]
    quiet_timeout: u64,
    /// No progress bar.
    #[arg(long)]
    no_progress: bool,
    /// Print every fault and restart as it happens.
    #[arg(long)]
    verbose: bool,
    /// Run every service on a host of its own (network namespaces on a bridge; needs root) and add
    /// network faults: links cut, hosts unplugged. Without root it says so and runs the process
    /// faults only.
    #[arg(long)]
    netns: bool,
}

fn main() {
    let args = Args::parse();
    let mut opts = Options::new(
        args.seed,
        Duration::from_secs(args.duration),
        args.port_base,
    );
    opts.clients = args.clients.max(1);
    opts.restock_secs = args.restock_interval;
    opts.quiet_timeout = Duration::from_secs(args.quiet_timeout);
    opts.progress = !args.no_progress && !args.verbose;
    opts.verbose = args.verbose;
    opts.keep_on_failure = true;
    opts.netns = args.netns;
    let stop = opts.stop.clone();
    // Ctrl-C (or SIGTERM) only sets the flag: the run ends, and dropping its cluster kills every
    // process it started.
    if let Err(e) = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst)) {
        eprintln!("warning: cannot install the Ctrl-C handler: {e}");
    }
    eprintln!(
        "chaos: seed {}, {} s, {} clients, store on {}ports {}..{}",
        args.seed,
        args.duration,
        opts.clients,
        if args.netns {
            "hosts of their own, "
        } else {
            "127.0.0.1, "
        },
        args.port_base,
        args.port_base + 13
    );
    let summary = run(&opts);
    println!("{summary}");
    if summary.interrupted {
        std::process::exit(130);
    }
    if !summary.passed() {
        std::process::exit(1);
    }
}
