//! `status`: read every service's `/metrics` and print the store at a glance, once (as text or
//! JSON) or redrawn every second (`--watch`).

use clap::Parser;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let config = status::Config::parse();
    let secret = match config.secret() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("status: {e}");
            return ExitCode::from(2);
        }
    };
    let every = Duration::from_secs_f64(config.interval.max(0.1));
    let mut previous: Option<(Instant, status::Snapshot)> = None;
    let mut next = Instant::now();
    loop {
        let snapshot = status::gather(&config, secret.as_deref());
        let now = Instant::now();
        let text = if config.json {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&snapshot).expect("serialisable snapshot")
            )
        } else {
            let since = previous
                .as_ref()
                .map(|(at, before)| (before, now.duration_since(*at)));
            status::render(&snapshot, since, config.watch.then_some(every))
        };
        let mut out = std::io::stdout().lock();
        // In --watch, each frame replaces the last: cursor home, clear the screen.
        let clear = if config.watch && !config.json {
            "\x1b[H\x1b[2J"
        } else {
            ""
        };
        if out
            .write_all(format!("{clear}{text}").as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::SUCCESS; // stdout closed (a pipe ended): nothing more to show
        }
        drop(out);
        if !config.watch {
            return ExitCode::SUCCESS;
        }
        previous = Some((now, snapshot));
        next += every;
        let wait = next.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            next = Instant::now();
        }
        std::thread::sleep(wait);
    }
}
