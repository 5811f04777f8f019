//! `experiment`: runs the store's evaluation and writes `results/` (see the crate documentation).

use clap::Parser;
use experiment::cli::{self, Args, Failure};
use experiment::ui::Ui;
use std::process::ExitCode;
use systest::cluster::Procs;

fn main() -> ExitCode {
    let args = Args::parse();
    let procs = Procs::new();
    procs.install_interrupt_handler();
    let ui = Ui::stderr();
    let started = std::time::Instant::now();
    let outcome = cli::run(&args, &ui, procs.clone());
    procs.kill_all();
    let took = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            eprintln!("experiment: done in {took:.0} s");
            ExitCode::SUCCESS
        }
        Err(Failure::Setup(e)) => {
            eprintln!("experiment: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Store(e)) => {
            eprintln!("experiment: the store broke a promise: {e} (see the report)");
            ExitCode::from(3)
        }
    }
}
