//! The crash run: clients buy while order replicas are SIGKILLed and started again.
//!
//! `clients` threads each run the [`client`] library in short rounds (`chunk` iterations, then the
//! verification of that round's orders) until the kill schedule is over, so the load covers the
//! whole schedule whatever the machine's speed. Meanwhile the main thread, after a calm start, kills
//! one replica per round: the leader (as the front-end names it) in even rounds, a random replica in
//! odd ones (which may be the leader again), so the leader is at least half the victims. The victim
//! is started again after `down`; the next kill waits until it has caught up with the leader, since
//! killing a second replica before that would leave no quorum, which is a real outage and not the
//! failover this run measures. Every kill, restart and catch-up is an [`EventRow`], on the same clock
//! as the requests' `start_ms`.

use crate::data::{CrashOutcome, CrashRow, EventRow};
use crate::ui::Ui;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::protocol::ReplicaId;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use systest::cluster::Store;
use systest::REPLICAS;

/// Settings of the crash run.
#[derive(Debug, Clone)]
pub struct CrashConfig {
    /// Concurrent clients.
    pub clients: u32,
    /// Kills.
    pub rounds: u32,
    /// Time from one kill to the next (at least; the next waits for the catch-up).
    pub period: Duration,
    /// Time a killed replica stays down.
    pub down: Duration,
    /// Load before the first kill and after the last catch-up.
    pub calm: Duration,
    /// Buy probability.
    pub p: f64,
    /// Iterations per client round.
    pub chunk: u64,
    /// Seed of the clients and of the choice of victims.
    pub seed: u64,
    /// Scratch folder for the client library's own CSVs.
    pub scratch: PathBuf,
}

/// What the crash run measured.
#[derive(Debug, Clone, Default)]
pub struct CrashResult {
    /// Every request.
    pub rows: Vec<CrashRow>,
    /// Kills, restarts, catch-ups.
    pub events: Vec<EventRow>,
    /// Errors, orders, consistency.
    pub outcome: CrashOutcome,
}

/// What one client thread gathered.
#[derive(Default)]
struct ClientTally {
    rows: Vec<CrashRow>,
    failures: Vec<String>,
    failure_count: u64,
    orders_made: u64,
    orders_verified: u64,
    mismatches: u64,
}

fn ms_since(t0: Instant) -> u64 {
    t0.elapsed().as_millis() as u64
}

/// The main thread's part: the kill schedule, with its events.
struct Killer<'a> {
    store: &'a mut Store,
    cfg: &'a CrashConfig,
    ui: &'a Ui,
    bar: &'a indicatif::ProgressBar,
    requests: &'a AtomicU64,
    t0: Instant,
    rng: StdRng,
    events: Vec<EventRow>,
}

impl Killer<'_> {
    fn event(&mut self, event: &str, replica: ReplicaId, leader: bool) {
        self.events.push(EventRow {
            t_ms: ms_since(self.t0),
            event: event.into(),
            replica,
            leader,
        });
    }

    /// Tells the bar what happened, with the requests so far.
    fn tell(&self, what: &str) {
        let n = self.requests.load(Ordering::Relaxed);
        self.bar.set_message(format!("{what}; {n} requests so far"));
    }

    /// The calm start, every round, the calm end.
    fn schedule(&mut self) -> Result<(), String> {
        std::thread::sleep(self.cfg.calm);
        for round in 0..self.cfg.rounds {
            let kill_at = self.round(round)?;
            let next = kill_at + self.cfg.period;
            if round + 1 < self.cfg.rounds && Instant::now() < next {
                std::thread::sleep(next - Instant::now());
            }
        }
        std::thread::sleep(self.cfg.calm);
        Ok(())
    }

    /// One round: the leader (even rounds) or a random replica killed, started again after
    /// `down`, and waited for until it caught up. Returns when the kill was.
    fn round(&mut self, round: u32) -> Result<Instant, String> {
        let leader = self.store.leader();
        let victim = if round.is_multiple_of(2) {
            leader.unwrap_or(REPLICAS[self.rng.random_range(0..REPLICAS.len())])
        } else {
            REPLICAS[self.rng.random_range(0..REPLICAS.len())]
        };
        let is_leader = leader == Some(victim);
        let kill_at = Instant::now();
        self.store.kill(&format!("order-{victim}"));
        self.event("kill", victim, is_leader);
        let what = format!(
            "replica {victim}{}",
            if is_leader { " (leader)" } else { "" }
        );
        self.tell(&format!("killed {what}"));
        let t = self.t0.elapsed().as_secs_f64();
        self.ui.say(&format!("t={t:.1}s kill {what}"));
        std::thread::sleep(self.cfg.down);
        self.store.start_order(victim)?;
        self.event("restart", victim, false);
        self.tell(&format!("restarted replica {victim}"));
        if self
            .store
            .wait_replica_synced(victim, Duration::from_secs(20))
        {
            self.event("synced", victim, false);
            let t = self.t0.elapsed().as_secs_f64();
            self.ui.say(&format!(
                "t={t:.1}s replica {victim} restarted and caught up"
            ));
        } else {
            self.ui
                .say(&format!("replica {victim} did not catch up within 20 s"));
        }
        self.bar.inc(1);
        Ok(kill_at)
    }
}

/// Runs the crash experiment on a started store.
pub fn run(store: &mut Store, cfg: &CrashConfig, ui: &Ui) -> Result<CrashResult, String> {
    let t0 = Instant::now();
    let stop = AtomicBool::new(false);
    let requests = AtomicU64::new(0);
    let tallies: Vec<Mutex<ClientTally>> = (0..cfg.clients)
        .map(|_| Mutex::new(ClientTally::default()))
        .collect();
    let url = store.client_url();
    let bar = ui.bar(
        u64::from(cfg.rounds),
        "crash {bar:20} {pos}/{len} kills  {msg}",
    );
    let mut killer = Killer {
        store,
        cfg,
        ui,
        bar: &bar,
        requests: &requests,
        t0,
        rng: StdRng::seed_from_u64(cfg.seed),
        events: Vec::new(),
    };
    let killer_result = std::thread::scope(|s| {
        for k in 0..cfg.clients {
            let (stop, requests, tally, url) =
                (&stop, &requests, &tallies[k as usize], url.clone());
            s.spawn(move || client_loop(k, cfg, &url, t0, stop, requests, tally));
        }
        let result = killer.schedule();
        stop.store(true, Ordering::SeqCst);
        result
    });
    let events = std::mem::take(&mut killer.events);
    drop(killer);
    ui.finish(bar);
    killer_result?;
    let mut result = gather(tallies, cfg);
    result.events = events;
    result.outcome.consistency = match store.wait_consistent(Duration::from_secs(30)) {
        Ok(c) => format!(
            "ok: the three order files are identical ({} orders), every take of stock has its order, stock adds up",
            c.orders
        ),
        Err(e) => format!("FAILED: {e}"),
    };
    Ok(result)
}

/// Every client's requests, in time order, and their failures and orders summed up.
fn gather(tallies: Vec<Mutex<ClientTally>>, cfg: &CrashConfig) -> CrashResult {
    let mut result = CrashResult::default();
    let outcome = &mut result.outcome;
    outcome.clients = cfg.clients;
    outcome.rounds = cfg.rounds;
    outcome.p = cfg.p;
    for t in tallies {
        let t = t.into_inner();
        result.rows.extend(t.rows);
        outcome.failures += t.failure_count;
        outcome.orders_made += t.orders_made;
        outcome.orders_verified += t.orders_verified;
        outcome.mismatches += t.mismatches;
        for f in t.failures {
            if outcome.failure_examples.len() < 10 {
                outcome.failure_examples.push(f);
            }
        }
    }
    result.rows.sort_by_key(|r| (r.start_ms, r.client));
    result
}

/// One client: rounds of `chunk` iterations until `stop`.
fn client_loop(
    k: u32,
    cfg: &CrashConfig,
    url: &str,
    t0: Instant,
    stop: &AtomicBool,
    requests: &AtomicU64,
    tally: &Mutex<ClientTally>,
) {
    let csv = cfg.scratch.join(format!("crash-client-{k}.csv"));
    let mut round = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let config = client::Config {
            frontend: url.to_string(),
            iterations: cfg.chunk,
            p: cfg.p,
            latency_csv: csv.clone(),
            threads: 1,
            client_id: u64::from(k),
            tag: "crash".into(),
            ..client::Config::default()
        };
        let offset = ms_since(t0);
        let seed = cfg
            .seed
            .wrapping_add(1_000_000 * u64::from(k + 1))
            .wrapping_add(round);
        round += 1;
        let report =
            match client::run_with_progress(&config, seed, indicatif::ProgressBar::hidden()) {
                Ok(r) => r,
                Err(e) => {
                    let mut t = tally.lock();
                    t.failure_count += 1;
                    t.failures.push(format!("client {k}: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
        let mut t = tally.lock();
        for session in &report.sessions {
            for s in &session.samples {
                t.rows.push(CrashRow {
                    client: u64::from(k),
                    kind: s.kind,
                    latency_us: s.latency_us,
                    ok: s.ok(),
                    status: s.status,
                    start_ms: offset + s.start_ms,
                });
            }
            requests.fetch_add(session.samples.len() as u64, Ordering::Relaxed);
        }
        t.failure_count += report.failures.len() as u64;
        for f in report.failures.iter().take(10) {
            t.failures
                .push(format!("at t={:.1}s {f}", offset as f64 / 1000.0));
        }
        for m in &report.mismatches {
            t.failures.push(format!("mismatch: {m}"));
        }
        t.orders_made += report.summary.orders_made as u64;
        t.orders_verified += report.summary.orders_verified as u64;
        t.mismatches += report.mismatches.len() as u64;
    }
    let _ = std::fs::remove_file(&csv);
}
