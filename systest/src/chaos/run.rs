//! The run: the store started, the clients and the injector at work, the heal, the checks, the
//! summary.

use super::check::{check, FinalState, Findings};
use super::client::{Client, Counters};
use super::history::{longest_stall, Entry, Op, OpKind, Outcome};
use super::inject::Injector;
use super::plan::{plan, FaultKind};
use crate::netns::Hosts;
use crate::{Cluster, REPLICAS};
use indicatif::{ProgressBar, ProgressStyle};
use shared::protocol::Order;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Violations printed in full; the rest are counted.
const SHOWN_VIOLATIONS: usize = 40;
/// The hosts of a run with every service on its own host: their name prefix and network.
const HOSTS_PREFIX: &str = "tschaos-";
const HOSTS_NET: &str = "10.79.9";

/// How a fault run is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// The seed of the fault plan and of the clients' choices.
    pub seed: u64,
    /// How long faults are injected and clients run.
    pub duration: Duration,
    /// Base port of the store (see [`crate::cluster`]): it uses `port_base..=port_base + 13`.
    pub port_base: u16,
    /// Client threads.
    pub clients: usize,
    /// The catalog's restock interval (s).
    pub restock_secs: f64,
    /// How long the healed store may take to become quiet.
    pub quiet_timeout: Duration,
    /// Draw a progress bar on stderr.
    pub progress: bool,
    /// Print every fault and restart on stderr as it happens.
    pub verbose: bool,
    /// On a violation, copy the store's files and logs to a folder that outlives the run.
    pub keep_on_failure: bool,
    /// Set from outside (Ctrl-C) to end the run early; it then skips the checks.
    pub stop: Arc<AtomicBool>,
    /// Every service on a host of its own (network namespaces, needs root), and network faults
    /// added to the plan. Without root the run says so and injects the process faults only.
    pub netns: bool,
}

impl Options {
    /// A run of `duration` with `seed` on ports from `port_base`; 5 clients, restock every 2 s,
    /// 30 s to become quiet, no progress bar.
    pub fn new(seed: u64, duration: Duration, port_base: u16) -> Options {
        Options {
            seed,
            duration,
            port_base,
            clients: 5,
            restock_secs: 2.0,
            quiet_timeout: Duration::from_secs(30),
            progress: false,
            verbose: false,
            keep_on_failure: false,
            stop: Arc::new(AtomicBool::new(false)),
            netns: false,
        }
    }
}

/// What a run did and found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The seed.
    pub seed: u64,
    /// Planned length of the run.
    pub duration: Duration,
    /// How long clients ran and faults were injected.
    pub ran: Duration,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Faults of the plan that found no process to hit.
    pub skipped: u64,
    /// The services ran on hosts of their own, and the network was cut too.
    pub on_hosts: bool,
    /// Per fault kind, the longest stretch without a successful purchase that began while a fault
    /// of that kind was on.
    pub stalls: BTreeMap<FaultKind, Stall>,
    /// Requests by kind and outcome.
    pub requests: BTreeMap<(OpKind, Outcome), u64>,
    /// Requests that did not get a 200, by kind and status (0: no answer).
    pub statuses: BTreeMap<(OpKind, u16), u64>,
    /// What the checks found.
    pub findings: Findings,
    /// How long the healed store took to become quiet.
    pub quiet_after: Option<Duration>,
    /// The run was stopped from outside before its end; nothing was checked.
    pub interrupted: bool,
    /// Where the files and logs of a failed run were kept.
    pub kept: Option<PathBuf>,
}

impl Summary {
    /// True when the run ended and found no violation.
    pub fn passed(&self) -> bool {
        !self.interrupted && self.findings.violations.is_empty()
    }

    /// The command that runs this seed again.
    pub fn replay_command(&self) -> String {
        format!(
            "make chaos SEED={} DURATION={}{}",
            self.seed,
            self.duration.as_secs(),
            if self.on_hosts { " NETNS=1" } else { "" }
        )
    }
}

impl Summary {
    /// The request table: per kind, totals by outcome, then the statuses that were not 200.
    fn fmt_requests(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests: {:>13} {:>9} {:>9} {:>9}",
            "total", "ok", "fail", "unknown"
        )?;
        let mut all = [0u64; 4];
        for kind in [OpKind::Query, OpKind::Buy, OpKind::OrderQuery] {
            let n = |o| self.requests.get(&(kind, o)).copied().unwrap_or(0);
            let row = [
                n(Outcome::Ok) + n(Outcome::Fail) + n(Outcome::Unknown),
                n(Outcome::Ok),
                n(Outcome::Fail),
                n(Outcome::Unknown),
            ];
            for (a, r) in all.iter_mut().zip(row) {
                *a += r;
            }
            fmt_row(f, kind.label(), row)?;
        }
        fmt_row(f, "all", all)?;
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|((kind, status), n)| match status {
                0 => format!("{} no answer {n}", kind.label()),
                s => format!("{} {s} {n}", kind.label()),
            })
            .collect();
        if !statuses.is_empty() {
            writeln!(f, "  not 200: {}", statuses.join(", "))?;
        }
        Ok(())
    }

    /// The orders, the heal, the violations, and how to replay a failed run.
    fn fmt_findings(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "orders: {} in every replica's file; purchases with an unknown outcome: {} ({} became orders)",
            self.findings.orders, self.findings.unknown_purchases, self.findings.unknown_applied
        )?;
        match self.quiet_after {
            Some(d) => writeln!(f, "quiet {:.1} s after the heal", d.as_secs_f64())?,
            None => writeln!(f, "the store did not become quiet")?,
        }
        let v = &self.findings.violations;
        writeln!(f, "violations: {}", v.len())?;
        for line in v.iter().take(SHOWN_VIOLATIONS) {
            writeln!(f, "  - {line}")?;
        }
        if v.len() > SHOWN_VIOLATIONS {
            writeln!(f, "  ... and {} more", v.len() - SHOWN_VIOLATIONS)?;
        }
        if let Some(k) = &self.kept {
            writeln!(f, "files and logs kept in {}", k.display())?;
        }
        if !v.is_empty() {
            writeln!(
                f,
                "FAILED with seed {}; replay: {}",
                self.seed,
                self.replay_command()
            )?;
        }
        Ok(())
    }
}

/// One row of the request table.
fn fmt_row(f: &mut fmt::Formatter<'_>, label: &str, row: [u64; 4]) -> fmt::Result {
    writeln!(
        f,
        "  {:<12} {:>9} {:>9} {:>9} {:>9}",
        label, row[0], row[1], row[2], row[3]
    )
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "chaos: seed {}, {:.0} s of faults and clients{}",
            self.seed,
            self.ran.as_secs_f64(),
            if self.interrupted {
                " (interrupted: not checked)"
            } else {
                ""
            }
        )?;
        let total: u64 = self.faults.values().sum();
        let kinds: Vec<String> = self
            .faults
            .iter()
            .map(|(k, n)| format!("{} {n}", k.label()))
            .collect();
        writeln!(f, "faults: {total} ({})", kinds.join(", "))?;
        if self.skipped > 0 {
            writeln!(f, "  planned faults that found no target: {}", self.skipped)?;
        }
        if !self.stalls.is_empty() {
            let stalls: Vec<String> = self
                .stalls
                .iter()
                .map(|(k, s)| {
                    let alone = s
                        .alone
                        .map_or("-".into(), |d| format!("{:.2} s", d.as_secs_f64()));
                    format!(
                        "  {:<26} {:>7.2} s {alone:>9}",
                        k.label(),
                        s.any.as_secs_f64()
                    )
                })
                .collect();
            writeln!(
                f,
                "longest stretch without a successful purchase, by fault (alone: no other fault at \
                 the same time):\n  {:<26} {:>9} {:>9}\n{}",
                "fault",
                "any",
                "alone",
                stalls.join("\n")
            )?;
        }
        if self.interrupted {
            return Ok(());
        }
        self.fmt_requests(f)?;
        self.fmt_findings(f)
    }
}

/// Sets a flag when dropped, so client threads stop also when the runner panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One look at the healed store: Ok when it is quiet.
fn quiet_once(c: &Cluster) -> std::result::Result<(), String> {
    let a = c.query("Tux");
    if a.status != 200 {
        return Err(format!("the front-end answers a query {}", a.status));
    }
    let Some(leader) = c.leader() else {
        return Err("the front-end has no leader".into());
    };
    if !c
        .replica_status(leader)
        .is_some_and(|s| s["role"] == "leader")
    {
        return Err(format!("replica {leader} does not lead yet"));
    }
    for id in REPLICAS {
        if !c.replica_status(id).is_some_and(|s| s["ready"] == true) {
            return Err(format!("replica {id} is not ready"));
        }
    }
    if c.internal_get(&format!("{}/products", c.catalog_url()))
        .status
        != 200
    {
        return Err("the catalog does not answer".into());
    }
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.check_consistent()))
        .map_err(|_| "the consistency check panicked".to_string())?
        .map(|_| ())
}

/// Waits until the store is quiet; how long that took, or what was still wrong at the timeout.
fn wait_quiet(
    c: &Cluster,
    timeout: Duration,
    stop: &AtomicBool,
) -> std::result::Result<Duration, String> {
    let started = Instant::now();
    loop {
        match quiet_once(c) {
            Ok(()) => return Ok(started.elapsed()),
            Err(e) if started.elapsed() > timeout || stop.load(Ordering::SeqCst) => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// Reads what the quiet store holds and answers.
fn final_state(c: &Cluster, history: &[Entry], catalog_outages: Vec<(u64, u64)>) -> FinalState {
    let files = REPLICAS
        .iter()
        .map(|id| {
            let text = c.orders_text(*id);
            let rows = csv::Reader::from_reader(text.as_bytes())
                .deserialize::<Order>()
                .collect::<std::result::Result<Vec<Order>, _>>()
                .map_err(|e| e.to_string());
            (*id, text, rows)
        })
        .collect();
    // The catalog still restocks: read the stock between two reads of the journal that agree.
    let read_journal = || crate::read_journal(&c.data());
    let mut problems = Vec::new();
    let (mut journal, mut stock) = (Vec::new(), BTreeMap::new());
    for _ in 0..20 {
        let before = read_journal();
        stock = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.stock()))
            .unwrap_or_default();
        let after = read_journal();
        match (before, after) {
            (Ok(b), Ok(a)) if a == b => {
                journal = a;
                problems.clear();
                break;
            }
            (_, Ok(a)) => journal = a,
            (_, Err(e)) => problems = vec![e],
        }
    }
    let numbers: BTreeSet<u64> = history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok && e.op.kind() == OpKind::Buy)
        .filter_map(Entry::order_number)
        .collect();
    let mut reads = BTreeMap::new();
    for n in numbers {
        let mut a = c.order(n);
        for _ in 0..20 {
            if a.status == 200 || a.status == 404 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
            a = c.order(n);
        }
        reads.insert(n, (a.status, a.body["data"].clone()));
    }
    FinalState {
        files,
        journal,
        stock,
        reads,
        problems,
        catalog_outages,
    }
}

/// Copies the store's folder (data and logs) to a folder that outlives the run.
fn keep_files(from: &Path, seed: u64) -> Option<PathBuf> {
    let to =
        std::env::temp_dir().join(format!("toystore-chaos-seed-{seed}-{}", std::process::id()));
    fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(to)?;
        for e in std::fs::read_dir(from)? {
            let e = e?;
            if e.file_type()?.is_dir() {
                copy(&e.path(), &to.join(e.file_name()))?;
            } else {
                std::fs::copy(e.path(), to.join(e.file_name()))?;
            }
        }
        Ok(())
    }
    copy(from, &to).ok().map(|_| to)
}

/// Writes the history as CSV, one request a line, for a person reading a failed run.
fn write_history(path: &Path, history: &[Entry]) -> std::io::Result<()> {
    let mut out = String::from(
        "client,invoke_ms,complete_ms,invoke_unix_ms,kind,request,outcome,status,data,detail\n",
    );
    for e in history {
        let request = match &e.op {
            Op::Query { name } => name.clone(),
            Op::Buy {
                request_id,
                name,
                quantity,
            } => format!("{request_id} {name} x{quantity}"),
            Op::OrderQuery { number } => number.to_string(),
        };
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            e.client,
            e.invoke.as_millis(),
            e.complete.as_millis(),
            e.invoke_unix_ms,
            e.op.kind().label(),
            quote(&request),
            e.outcome.label(),
            e.status,
            quote(&e.data.to_string()),
            quote(&e.detail)
        ));
    }
    std::fs::write(path, out)
}

/// The client threads, started on `cluster`'s front-end; each returns its history when `stop` is
/// set.
fn start_clients(
    opts: &Options,
    cluster: &Cluster,
    start: Instant,
    stop: &Arc<AtomicBool>,
    counters: &Arc<Counters>,
) -> Vec<JoinHandle<Vec<Entry>>> {
    let toys: Vec<String> = cluster.stock().into_keys().collect();
    let acked = Arc::new(Mutex::new(Vec::new()));
    (0..opts.clients)
        .map(|id| {
            let client = Client {
                id,
                seed: opts.seed,
                url: cluster.frontend_url(),
                toys: toys.clone(),
                start,
                stop: stop.clone(),
                counters: counters.clone(),
                acked: acked.clone(),
            };
            std::thread::Builder::new()
                .name(format!("chaos-client-{id}"))
                .spawn(move || client.run())
                .expect("spawn client")
        })
        .collect()
}

/// The progress bar, hidden unless `opts.progress`.
fn progress_bar(opts: &Options) -> ProgressBar {
    if !opts.progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(opts.duration.as_secs().max(1));
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    bar
}

/// Carries out the plan until the run's end (or a stop from outside): faults on time, processes
/// back on time, a look every 500 ms for one that exited by itself.
fn inject_faults(opts: &Options, injector: &mut Injector, bar: &ProgressBar, counters: &Counters) {
    let plan = plan(opts.seed, opts.duration, injector.hosts.is_some());
    let start = injector.start;
    let mut next = 0;
    let mut last_alive_check = Duration::ZERO;
    let mut last_event = String::new();
    while start.elapsed() < opts.duration && !opts.stop.load(Ordering::SeqCst) {
        let now = start.elapsed();
        injector.maybe_bring_back(now, false);
        while next < plan.len() && plan[next].at <= now {
            if let Some(event) = injector.inject(&plan[next], now) {
                last_event = event;
            }
            next += 1;
        }
        if now >= last_alive_check + Duration::from_millis(500) {
            injector.check_alive(now);
            last_alive_check = now;
        }
        let down: Vec<&str> = injector.active.iter().map(|a| a.process.as_str()).collect();
        bar.set_position(now.as_secs());
        bar.set_message(format!(
            "faults {} | requests {} ok {} fail {} unknown {} | down: {} | last: {last_event}",
            injector.faults.values().sum::<u64>(),
            counters.requests.load(Ordering::Relaxed),
            counters.ok.load(Ordering::Relaxed),
            counters.fail.load(Ordering::Relaxed),
            counters.unknown.load(Ordering::Relaxed),
            if down.is_empty() {
                "none".to_string()
            } else {
                down.join(", ")
            },
        ));
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every client's history, in invocation order, counted into `summary`.
fn gather_history(clients: Vec<JoinHandle<Vec<Entry>>>, summary: &mut Summary) -> Vec<Entry> {
    let mut history: Vec<Entry> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    history.sort_by_key(|e| e.invoke);
    for e in &history {
        *summary
            .requests
            .entry((e.op.kind(), e.outcome))
            .or_default() += 1;
        if e.status != 200 {
            *summary.statuses.entry((e.op.kind(), e.status)).or_default() += 1;
        }
    }
    history
}

/// The hosts of a run on hosts; None, said on stderr, when they cannot be made (without root, say).
fn make_hosts() -> Option<Hosts> {
    match Hosts::up(HOSTS_PREFIX, HOSTS_NET) {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!(
                "chaos: no hosts of their own ({e}); the run injects the process faults only"
            );
            None
        }
    }
}

/// The longest stretch without a successful purchase during the faults of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stall {
    /// Over every fault of the kind.
    pub any: Duration,
    /// Over those that no other fault overlapped (`None`: every one was overlapped): what the
    /// fault alone costs, as the partition tests measure it.
    pub alone: Option<Duration>,
}

/// Per fault kind, the longest stretch without a successful purchase that began during a fault of
/// that kind (`windows`: kind, start, end), over all of them and over those alone.
fn stalls(
    history: &[Entry],
    windows: &[(FaultKind, Duration, Duration)],
) -> BTreeMap<FaultKind, Stall> {
    let mut ok: Vec<Duration> = history
        .iter()
        .filter(|e| e.op.kind() == OpKind::Buy && e.outcome == Outcome::Ok)
        .map(|e| e.complete)
        .collect();
    ok.sort();
    let mut out: BTreeMap<FaultKind, Stall> = BTreeMap::new();
    for (i, (kind, from, to)) in windows.iter().enumerate() {
        let stall = longest_stall(&ok, *from, *to);
        let alone = windows
            .iter()
            .enumerate()
            .all(|(j, (_, f, t))| j == i || t <= from || f >= to);
        let longest = out.entry(*kind).or_default();
        longest.any = longest.any.max(stall);
        if alone {
            longest.alone = Some(longest.alone.unwrap_or_default().max(stall));
        }
    }
    out
}

/// Copies the files, the logs, the history and the faults of a failed run where they outlive it.
fn keep_failed(
    cluster: &Cluster,
    seed: u64,
    history: &[Entry],
    events: &[String],
) -> Option<PathBuf> {
    let kept = cluster.data().parent().and_then(|d| keep_files(d, seed))?;
    if let Err(e) = write_history(&kept.join("history.csv"), history) {
        eprintln!("cannot write the history: {e}");
    }
    let _ = std::fs::write(kept.join("faults.txt"), events.join("\n") + "\n");
    Some(kept)
}

/// Runs the store under the faults of `opts.seed` with clients for `opts.duration`, heals it, and
/// checks the history. Every process it started is killed when it returns (or panics).
pub fn run(opts: &Options) -> Summary {
    // Made before the cluster, so dropped after it: its processes are killed before their hosts go.
    let mut hosts = opts.netns.then(make_hosts).flatten();
    let mut options = Cluster::options(opts.port_base);
    if let Some(h) = &hosts {
        options.layout = h.layout(opts.port_base);
        // Every call between services goes through a relay on the caller's host, so that links
        // can be slowed (a slow-host fault).
        options.layout.relayed = true;
    }
    let mut cluster = Cluster::with_options(options);
    cluster.start_all(opts.restock_secs);
    let start = Instant::now();
    let stop_clients = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop_clients.clone());
    let counters = Arc::new(Counters::default());
    let clients = start_clients(opts, &cluster, start, &stop_clients, &counters);
    let bar = progress_bar(opts);
    let on_hosts = hosts.is_some();
    let mut injector = Injector::new(&mut cluster, hosts.as_mut(), opts, start);
    inject_faults(opts, &mut injector, &bar, &counters);
    let ran = start.elapsed();
    stop_clients.store(true, Ordering::SeqCst);
    let mut summary = Summary {
        seed: opts.seed,
        duration: opts.duration,
        ran,
        faults: std::mem::take(&mut injector.faults),
        skipped: injector.skipped,
        on_hosts,
        ..Summary::default()
    };
    if opts.stop.load(Ordering::SeqCst) {
        // Stopped from outside: no heal, no checks, no wait for the clients' last answers (they stop
        // by themselves); the cluster's drop kills every process.
        bar.finish_and_clear();
        summary.interrupted = true;
        return summary;
    }
    injector.maybe_bring_back(ran, true);
    bar.set_message("healing; waiting for the clients' last answers");
    let history = gather_history(clients, &mut summary);
    summary.stalls = stalls(&history, &injector.windows);
    let (mut violations, events, outages) = injector.into_record();
    bar.set_message("waiting for the store to become quiet");
    match wait_quiet(&cluster, opts.quiet_timeout, &opts.stop) {
        Ok(d) => summary.quiet_after = Some(d),
        Err(e) => violations.push(format!(
            "the healed store was not quiet after {} s: {e}",
            opts.quiet_timeout.as_secs()
        )),
    }
    bar.set_message("checking the history");
    let state = final_state(&cluster, &history, outages);
    summary.findings = check(&history, &state);
    violations.append(&mut summary.findings.violations);
    summary.findings.violations = violations;
    bar.finish_and_clear();
    if !summary.findings.violations.is_empty() {
        eprintln!("{}", cluster.logs());
        if opts.keep_on_failure {
            summary.kept = keep_failed(&cluster, opts.seed, &history, &events);
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn bought_at(ms: u64) -> Entry {
        Entry {
            client: 0,
            op: Op::Buy {
                request_id: format!("r{ms}"),
                name: "Tux".into(),
                quantity: 1,
            },
            invoke: Duration::from_millis(ms),
            invoke_unix_ms: ms,
            complete: Duration::from_millis(ms),
            outcome: Outcome::Ok,
            status: 200,
            data: Value::Null,
            detail: String::new(),
        }
    }

    #[test]
    fn a_stall_counts_as_alone_only_when_no_other_fault_overlaps_it() {
        let ms = Duration::from_millis;
        // Purchases every 100 ms except 1.0-2.5 s and 5.0-5.4 s.
        let history: Vec<Entry> = (0..80)
            .map(|i| i * 100)
            .filter(|t| !(1000 < *t && *t < 2500 || 5000 < *t && *t < 5400))
            .map(bought_at)
            .collect();
        let windows = [
            // A cut overlapped by a kill: the 1.5 s stall counts only as "any".
            (FaultKind::CutFollowerFromLeader, ms(900), ms(2000)),
            (FaultKind::KillFrontend, ms(1500), ms(2600)),
            // The same kind alone, later: its 0.4 s is what it costs alone.
            (FaultKind::CutFollowerFromLeader, ms(4900), ms(6000)),
            // Overlapped by the kill above.
            (FaultKind::SlowHost, ms(2400), ms(3000)),
        ];
        let s = stalls(&history, &windows);
        let cut = s[&FaultKind::CutFollowerFromLeader];
        assert_eq!(cut.any, ms(1500));
        assert_eq!(cut.alone, Some(ms(400)));
        assert_eq!(s[&FaultKind::KillFrontend].alone, None);
        assert_eq!(s[&FaultKind::SlowHost].alone, None);
        assert_eq!(s[&FaultKind::SlowHost].any, ms(100));
    }
}
