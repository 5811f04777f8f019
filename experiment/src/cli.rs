//! The `experiment` binary's flags and its run: start the store, the sweep, the crash run, the
//! files, the report.

use crate::crash::{self, CrashConfig};
use crate::data::{
    write_csv, Machine, RunInfo, CRASH_BUCKETS_CSV, CRASH_CSV, CRASH_EVENTS_CSV, CRASH_OUTCOME,
    CRASH_QUERY_SAMPLE, RUN_INFO, SWEEP_CSV, SWEEP_RUNS_CSV,
};
use crate::report;
use crate::sweep::{self, SweepConfig};
use crate::ui::Ui;
use clap::{Parser, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use systest::cluster::{Layout, Procs, Store, StoreOptions, CONTRACT_BASE_PORT, NEW_STOCK};

/// A part of the experiment.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Latency against p, cache on and off.
    Sweep,
    /// Replicas killed under load.
    Crash,
    /// Only make the plots and REPORT.md again from the files in --out.
    Report,
}

/// The experiment's flags. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "experiment",
    version,
    about = "Measures the toy store: latency against p with the cache on and off, replicas killed under load; \
             writes CSVs, plots and REPORT.md",
    after_help = "Starts the store from the release binaries (every process is killed at the end, on a failure and \
                  on Ctrl-C). Exit codes: 0 done (findings are in the report), 1 the experiment could not run, \
                  3 the store lost or doubled an order or failed its consistency check."
)]
pub struct Args {
    /// Folder of the release binaries [default: the folder of this binary].
    #[arg(long, env = "TOYSTORE_BIN", value_name = "DIR")]
    pub bin: Option<PathBuf>,
    /// Where the CSVs, plots and REPORT.md go.
    #[arg(
        long,
        env = "TOYSTORE_OUT",
        default_value = "results",
        value_name = "DIR"
    )]
    pub out: PathBuf,
    /// What to run, comma-separated; the report is always made at the end.
    #[arg(
        long,
        env = "TOYSTORE_PARTS",
        value_enum,
        value_delimiter = ',',
        default_value = "sweep,crash"
    )]
    pub parts: Vec<Part>,
    /// Iterations per client and (p, cache) setting in the sweep, spread over --repeats runs.
    #[arg(
        long,
        env = "TOYSTORE_ITERATIONS",
        default_value_t = 600,
        value_name = "N"
    )]
    pub iterations: u64,
    /// Runs per (p, cache) setting: the sweep goes over every setting this many times, so that a slow
    /// spell of the machine does not fall on one setting only.
    #[arg(long, env = "TOYSTORE_REPEATS", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub repeats: u32,
    /// Concurrent clients.
    #[arg(long, env = "TOYSTORE_CLIENTS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub clients: u32,
    /// The p values of the sweep.
    #[arg(long, env = "TOYSTORE_PS", value_delimiter = ',', default_value = "0,0.2,0.4,0.6,0.8",
          value_parser = client::config::parse_probability)]
    pub ps: Vec<f64>,
    /// Kills in the crash run.
    #[arg(long, env = "TOYSTORE_CRASH_ROUNDS", default_value_t = 6)]
    pub crash_rounds: u32,
    /// Seconds from one kill to the next (at least: the next waits until the last victim caught up).
    #[arg(
        long,
        env = "TOYSTORE_CRASH_PERIOD",
        default_value_t = 4.0,
        value_name = "SECS"
    )]
    pub crash_period: f64,
    /// Seconds a killed replica stays down.
    #[arg(
        long,
        env = "TOYSTORE_CRASH_DOWN",
        default_value_t = 2.0,
        value_name = "SECS"
    )]
    pub crash_down: f64,
    /// Seconds of load before the first kill and after the last catch-up.
    #[arg(
        long,
        env = "TOYSTORE_CRASH_CALM",
        default_value_t = 2.0,
        value_name = "SECS"
    )]
    pub crash_calm: f64,
    /// Buy probability in the crash run.
    #[arg(long, env = "TOYSTORE_CRASH_P", default_value_t = 0.5, value_parser = client::config::parse_probability)]
    pub crash_p: f64,
    /// First port: front-end PORT, catalog PORT+1, internal PORT+2, relay PORT+3, replicas PORT+11..13
    /// (the contract's ports for 8080).
    #[arg(long, env = "TOYSTORE_BASE_PORT", default_value_t = CONTRACT_BASE_PORT, value_name = "PORT")]
    pub base_port: u16,
    /// Hosts of the services, SERVICE=[NETNS@]IP,... with SERVICE one of frontend, catalog, order1, order2,
    /// order3, relay (scripts/netns.sh sets it); services not named run on 127.0.0.1.
    #[arg(long, env = "TOYSTORE_HOSTS", default_value = "", value_name = "LIST")]
    pub hosts: String,
    /// Delay in ms the relay adds each way between the clients and the front-end (0: no relay).
    #[arg(
        long,
        env = "TOYSTORE_DELAY_MS",
        default_value_t = 0,
        value_name = "MS"
    )]
    pub delay_ms: u64,
    /// Units of each toy the catalog starts with (the contract's new catalog has 100; the default is large
    /// so that the share of purchases is p and not limited by stock running out).
    #[arg(
        long,
        env = "TOYSTORE_STOCK",
        default_value_t = 1_000_000,
        value_name = "N"
    )]
    pub stock: u64,
    /// The catalog's restock interval in seconds.
    #[arg(
        long,
        env = "TOYSTORE_RESTOCK_INTERVAL",
        default_value_t = 1.0,
        value_name = "SECS"
    )]
    pub restock_interval: f64,
    /// Unrecorded iterations per client before each sweep run.
    #[arg(long, env = "TOYSTORE_WARMUP", default_value_t = 20, value_name = "N")]
    pub warmup: u64,
    /// Seed of the clients and of the choice of victims [default: from the clock].
    #[arg(long, env = "TOYSTORE_SEED", value_name = "S")]
    pub seed: Option<u64>,
}

/// The folder of the binaries when --bin is not given: this binary's own.
pub fn default_bin() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/release"))
}

/// Why a run ended badly.
#[derive(Debug)]
pub enum Failure {
    /// The experiment could not run (exit 1).
    Setup(String),
    /// The store broke its promise: an order lost or doubled, or the store check failed (exit 3).
    Store(String),
}

/// Runs what `args` asks for, showing progress on `ui`, killing everything on an interrupt via
/// `procs`.
pub fn run(args: &Args, ui: &Ui, procs: std::sync::Arc<Procs>) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| Failure::Setup(format!("{}: {e}", args.out.display())))?;
    let measure = args.parts.iter().any(|p| *p != Part::Report);
    let store_failure = if measure {
        measure_parts(args, ui, procs)?
    } else {
        None
    };
    let written = report::write_all(&args.out).map_err(Failure::Setup)?;
    ui.say(&format!(
        "wrote {} in {}",
        written.join(", "),
        args.out.display()
    ));
    match store_failure {
        Some(e) => Err(Failure::Store(e)),
        None => Ok(()),
    }
}

/// Starts the store, runs the sweep and the crash run as `args` asks, writes their files and the
/// run info. Returns what the store got wrong, if anything (the last such finding).
fn measure_parts(
    args: &Args,
    ui: &Ui,
    procs: std::sync::Arc<Procs>,
) -> Result<Option<String>, Failure> {
    let setup = Failure::Setup;
    let (mut store, mut info) = start_store(args, ui, procs)?;
    let scratch = tempfile::tempdir().map_err(|e| setup(e.to_string()))?;
    let seed = args.seed.unwrap_or_else(client::seed_from_time);
    let mut store_failure = None;
    if args.parts.contains(&Part::Sweep) {
        store_failure = run_sweep(args, &mut store, ui, scratch.path(), seed, &mut info)?;
    }
    if args.parts.contains(&Part::Crash) {
        let cfg = CrashConfig {
            clients: args.clients,
            rounds: args.crash_rounds,
            period: Duration::from_secs_f64(args.crash_period),
            down: Duration::from_secs_f64(args.crash_down),
            calm: Duration::from_secs_f64(args.crash_calm),
            p: args.crash_p,
            chunk: 200,
            seed: seed.wrapping_add(77),
            scratch: scratch.path().to_path_buf(),
        };
        if let Some(e) = run_crash(args, &mut store, ui, &cfg, &mut info)? {
            store_failure = Some(e);
        }
    }
    drop(store);
    info.loadavg_end = Machine::loadavg();
    let json = serde_json::to_string_pretty(&info).map_err(|e| setup(e.to_string()))?;
    std::fs::write(args.out.join(RUN_INFO), json).map_err(|e| setup(e.to_string()))?;
    Ok(store_failure)
}

/// The store as `args` lays it out, started with the cache on, and the run info so far.
fn start_store(
    args: &Args,
    ui: &Ui,
    procs: std::sync::Arc<Procs>,
) -> Result<(Store, RunInfo), Failure> {
    let setup = Failure::Setup;
    let layout = Layout::with_hosts(args.base_port, &args.hosts).map_err(setup)?;
    let network = if layout.is_local() {
        "loopback (every service on 127.0.0.1)".to_string()
    } else {
        format!(
            "each service on its own host (a network namespace with its own address): {}",
            args.hosts
        )
    };
    let options = StoreOptions {
        layout,
        delay_ms: args.delay_ms,
        restock_interval: args.restock_interval,
        stock: (args.stock != NEW_STOCK).then_some(args.stock),
        toys: &crate::TOYS,
        ..StoreOptions::local(args.bin.clone().unwrap_or_else(default_bin), args.base_port)
    };
    let mut store = Store::new(options, procs).map_err(setup)?;
    store.check_ports_free().map_err(setup)?;
    let mut info = previous_info(&args.out);
    info.machine = Machine::read();
    info.started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    info.clients = args.clients;
    info.restock_interval = args.restock_interval;
    info.stock = args.stock;
    info.network = network;
    info.delay_ms = args.delay_ms;
    info.loadavg_start = Machine::loadavg();
    ui.say(&format!(
        "starting the store ({}; data in a temporary folder; clients call {})",
        info.network,
        store.client_url()
    ));
    store.start_all(true).map_err(setup)?;
    Ok((store, info))
}

/// The sweep and its files; what the store got wrong in it, if anything.
fn run_sweep(
    args: &Args,
    store: &mut Store,
    ui: &Ui,
    scratch: &Path,
    seed: u64,
    info: &mut RunInfo,
) -> Result<Option<String>, Failure> {
    let setup = Failure::Setup;
    let started = Instant::now();
    let cfg = SweepConfig {
        ps: args.ps.clone(),
        iterations: args.iterations.div_ceil(u64::from(args.repeats)),
        repeats: args.repeats,
        clients: args.clients,
        warmup: args.warmup,
        seed,
        scratch: scratch.to_path_buf(),
    };
    let result = sweep::run(store, &cfg, ui).map_err(setup)?;
    write_csv(&args.out.join(SWEEP_CSV), &result.rows).map_err(setup)?;
    write_csv(&args.out.join(SWEEP_RUNS_CSV), &result.runs).map_err(setup)?;
    info.iterations = cfg.iterations;
    info.repeats = args.repeats;
    info.ps = args.ps.clone();
    info.sweep_seconds = started.elapsed().as_secs_f64();
    let mut store_failure = None;
    let lost: u64 = result.runs.iter().map(|r| r.mismatches).sum();
    if lost > 0 {
        store_failure = Some(format!("{lost} orders of the sweep did not verify"));
    }
    match store.wait_consistent(Duration::from_secs(20)) {
        Ok(c) => ui.say(&format!(
            "sweep done in {:.0} s; store check ok ({} orders)",
            info.sweep_seconds, c.orders
        )),
        Err(e) => store_failure = Some(format!("store check after the sweep: {e}")),
    }
    Ok(store_failure)
}

/// The crash run and its files; what the store got wrong in it, if anything.
fn run_crash(
    args: &Args,
    store: &mut Store,
    ui: &Ui,
    cfg: &CrashConfig,
    info: &mut RunInfo,
) -> Result<Option<String>, Failure> {
    let setup = Failure::Setup;
    let started = Instant::now();
    let result = crash::run(store, cfg, ui).map_err(setup)?;
    write_crash_files(&args.out, &result).map_err(setup)?;
    info.crash_seconds = started.elapsed().as_secs_f64();
    let o = &result.outcome;
    ui.say(&format!(
        "crash run done in {:.0} s: {} requests, {} failed, {} orders made, {} verified; {}",
        info.crash_seconds,
        result.rows.len(),
        o.failures,
        o.orders_made,
        o.orders_verified,
        o.consistency
    ));
    if o.mismatches > 0 || !o.consistency.starts_with("ok") {
        return Ok(Some(format!(
            "crash run: {} orders did not verify; {}",
            o.mismatches, o.consistency
        )));
    }
    Ok(None)
}

/// The crash run's files in `out`: the buckets, the requests (every purchase and order query, one
/// query in [`CRASH_QUERY_SAMPLE`]), the events and the outcome.
fn write_crash_files(out: &Path, result: &crash::CrashResult) -> Result<(), String> {
    let buckets = crate::analysis::buckets(&result.rows, report::BUCKET_MS);
    write_csv(&out.join(CRASH_BUCKETS_CSV), &buckets)?;
    let mut queries = 0u64;
    let kept: Vec<_> = result
        .rows
        .iter()
        .filter(|r| {
            if r.kind != crate::data::Kind::Query || !r.ok {
                return true;
            }
            queries += 1;
            queries % CRASH_QUERY_SAMPLE == 1
        })
        .cloned()
        .collect();
    write_csv(&out.join(CRASH_CSV), &kept)?;
    write_csv(&out.join(CRASH_EVENTS_CSV), &result.events)?;
    let json = serde_json::to_string_pretty(&result.outcome).map_err(|e| e.to_string())?;
    std::fs::write(out.join(CRASH_OUTCOME), json).map_err(|e| e.to_string())
}

/// The run info already in `out` (so that a crash-only run keeps the sweep's settings).
fn previous_info(out: &Path) -> RunInfo {
    std::fs::read_to_string(out.join(RUN_INFO))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent_and_help_names_every_env() {
        Args::command().debug_assert();
        let help = Args::command().render_long_help().to_string();
        for env in [
            "TOYSTORE_BIN",
            "TOYSTORE_ITERATIONS",
            "TOYSTORE_HOSTS",
            "TOYSTORE_DELAY_MS",
            "TOYSTORE_PARTS",
        ] {
            assert!(help.contains(env), "{env} missing:\n{help}");
        }
    }

    /// Parses ignoring the TOYSTORE_* variables of the environment the tests run in.
    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        use clap::FromArgMatches;
        let command = Args::command().mut_args(|a| a.env(None::<&'static str>));
        Args::from_arg_matches(
            &command
                .try_get_matches_from(std::iter::once("experiment").chain(args.iter().copied()))?,
        )
    }

    #[test]
    fn defaults_are_the_issue_s() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.ps, vec![0.0, 0.2, 0.4, 0.6, 0.8]);
        assert_eq!(args.clients, 5);
        assert_eq!(args.parts, vec![Part::Sweep, Part::Crash]);
        assert_eq!(args.base_port, 8080);
        assert!(parse(&["--ps", "0,1.5"]).is_err());
        let args = parse(&["--parts", "report", "--ps", "0.5"]).unwrap();
        assert_eq!((args.parts, args.ps), (vec![Part::Report], vec![0.5]));
    }
}
