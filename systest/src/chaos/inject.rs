//! The fault injector: carries out the plan on a cluster and brings every process back.

use super::client::unix_ms;
use super::plan::{FaultKind, PlannedFault};
use super::run::Options;
use crate::netns::{Hosts, SERVICES};
use crate::{Cluster, REPLICAS};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shared::protocol::ReplicaId;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

/// How a process that a fault took away comes back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Back {
    /// Started again (after a torn line at the end of its file, with `torn`).
    Restart { torn: bool },
    /// SIGCONT.
    Resume,
    /// Every cut link mended, every unplugged host plugged in again.
    Heal,
    /// The links of a slowed host back to no delay.
    Unslow { service: &'static str },
}

/// A fault under way.
pub(super) struct Active {
    /// The process it holds (a network fault: what it cut, which no process is named).
    pub(super) process: String,
    pub(super) back_at: Duration,
    pub(super) back: Back,
    pub(super) kind: FaultKind,
    /// When it began.
    pub(super) since: Duration,
}

/// Carries out the plan on a cluster.
pub(super) struct Injector<'a> {
    pub(super) cluster: &'a mut Cluster,
    /// The hosts the services run on, when they run on hosts of their own: network faults need them.
    pub(super) hosts: Option<&'a mut Hosts>,
    pub(super) restock_secs: f64,
    pub(super) active: Vec<Active>,
    pub(super) faults: BTreeMap<FaultKind, u64>,
    pub(super) skipped: u64,
    /// Wall-clock ms of the catalog's SIGKILL not yet followed by a start.
    pub(super) catalog_killed: Option<u64>,
    pub(super) catalog_outages: Vec<(u64, u64)>,
    pub(super) violations: Vec<String>,
    pub(super) rng: StdRng,
    /// What was done when, one line each.
    pub(super) events: Vec<String>,
    /// Every fault that ended: its kind, when it began and when it ended.
    pub(super) windows: Vec<(FaultKind, Duration, Duration)>,
    pub(super) verbose: bool,
    pub(super) start: Instant,
}

impl<'a> Injector<'a> {
    /// An injector of `opts`'s faults on `cluster`, its clock started at `start`.
    pub(super) fn new(
        cluster: &'a mut Cluster,
        hosts: Option<&'a mut Hosts>,
        opts: &Options,
        start: Instant,
    ) -> Injector<'a> {
        Injector {
            cluster,
            hosts,
            restock_secs: opts.restock_secs,
            active: Vec::new(),
            faults: BTreeMap::new(),
            skipped: 0,
            catalog_killed: None,
            catalog_outages: Vec::new(),
            violations: Vec::new(),
            rng: StdRng::seed_from_u64(opts.seed ^ 0x0704_11ED),
            events: Vec::new(),
            windows: Vec::new(),
            verbose: opts.verbose,
            start,
        }
    }

    /// What it recorded: violations, events (one line each), and the catalog's outages (the last
    /// one open-ended when the catalog was not started again).
    pub(super) fn into_record(self) -> (Vec<String>, Vec<String>, Vec<(u64, u64)>) {
        let mut outages = self.catalog_outages;
        if let Some(killed) = self.catalog_killed {
            outages.push((killed, u64::MAX));
        }
        (self.violations, self.events, outages)
    }
}

fn process_of(id: ReplicaId) -> String {
    format!("order-{id}")
}

impl Injector<'_> {
    fn event(&mut self, what: String) {
        let line = format!("{:8.3} s  {what}", self.start.elapsed().as_secs_f64());
        if self.verbose {
            eprintln!("{line}");
        }
        self.events.push(line);
    }

    fn is_hit(&self, process: &str) -> bool {
        self.active.iter().any(|a| a.process == process)
    }

    /// Replicas that run and no fault holds.
    fn healthy_replicas(&self) -> Vec<ReplicaId> {
        REPLICAS
            .into_iter()
            .filter(|id| !self.is_hit(&process_of(*id)))
            .collect()
    }

    /// The leader the front-end names, if it runs and no fault holds it.
    fn healthy_leader(&self) -> Option<ReplicaId> {
        self.cluster
            .leader()
            .filter(|id| !self.is_hit(&process_of(*id)))
    }

    fn count(&mut self, kind: FaultKind) {
        *self.faults.entry(kind).or_default() += 1;
    }

    pub(super) fn inject(&mut self, fault: &PlannedFault, now: Duration) -> Option<String> {
        if fault.kind.is_network() {
            return self.inject_network(fault, now);
        }
        let back_at = now + fault.down_for;
        let (process, back, kind) = match fault.kind {
            FaultKind::KillReplica | FaultKind::KillLeader | FaultKind::PauseLeader => {
                let wants_leader = fault.kind != FaultKind::KillReplica;
                let leader = if wants_leader {
                    self.healthy_leader()
                } else {
                    None
                };
                let id = match leader {
                    Some(id) => id,
                    None => {
                        let candidates = self.healthy_replicas();
                        if candidates.is_empty() {
                            self.skipped += 1;
                            self.event(format!("skipped {}: no replica left", fault.kind.label()));
                            return None;
                        }
                        candidates[fault.pick as usize % candidates.len()]
                    }
                };
                let kind = match (fault.kind, leader.is_some()) {
                    (FaultKind::PauseLeader, true) => FaultKind::PauseLeader,
                    (FaultKind::PauseLeader, false) => FaultKind::PauseReplica,
                    (_, true) => FaultKind::KillLeader,
                    (_, false) => FaultKind::KillReplica,
                };
                let back = if kind == FaultKind::PauseLeader || kind == FaultKind::PauseReplica {
                    Back::Resume
                } else {
                    Back::Restart { torn: fault.torn }
                };
                (process_of(id), back, kind)
            }
            FaultKind::KillCatalog => (
                "catalog".to_string(),
                Back::Restart { torn: fault.torn },
                fault.kind,
            ),
            _ => (
                "frontend".to_string(),
                Back::Restart { torn: false },
                fault.kind,
            ),
        };
        if self.is_hit(&process) || !self.cluster.is_running(&process) {
            self.skipped += 1;
            self.event(format!(
                "skipped {} on {process}: already down",
                kind.label()
            ));
            return None;
        }
        self.event(format!(
            "{} {process} for {:.1} s",
            kind.label(),
            fault.down_for.as_secs_f64()
        ));
        match back {
            Back::Resume => self.cluster.pause(&process),
            Back::Restart { .. } => self.cluster.kill(&process),
            Back::Heal | Back::Unslow { .. } => unreachable!("a process fault"),
        }
        if process == "catalog" {
            self.catalog_killed = Some(unix_ms());
        }
        self.count(kind);
        self.active.push(Active {
            process: process.clone(),
            back_at,
            back,
            kind,
            since: now,
        });
        Some(format!("{} {process}", kind.label()))
    }

    /// Cuts the links (or unplugs the host) of a network fault, around the leader the front-end
    /// names; healed when the fault is over.
    fn inject_network(&mut self, fault: &PlannedFault, now: Duration) -> Option<String> {
        let (Some(leader), Some(hosts)) = (self.cluster.leader(), self.hosts.as_deref_mut()) else {
            self.skipped += 1;
            self.event(format!("skipped {}: no leader", fault.kind.label()));
            return None;
        };
        let l = format!("order{leader}");
        let followers: Vec<String> = REPLICAS
            .into_iter()
            .filter(|id| *id != leader)
            .map(|id| format!("order{id}"))
            .collect();
        let pick = fault.pick as usize;
        if fault.kind == FaultKind::SlowHost {
            return self.slow_host(fault, now);
        }
        let (what, done) = match fault.kind {
            FaultKind::CutLeaderFromFollowers => (
                format!("{l} from {}", followers.join(" and ")),
                followers.iter().try_for_each(|f| hosts.cut(&l, f)),
            ),
            FaultKind::UnplugHost => {
                let service = SERVICES[pick % SERVICES.len()].0;
                (service.to_string(), hosts.unplug(service))
            }
            FaultKind::CutFrontendFromLeader => {
                (format!("frontend from {l}"), hosts.cut("frontend", &l))
            }
            FaultKind::CutCatalogFromLeader => {
                (format!("catalog from {l}"), hosts.cut("catalog", &l))
            }
            _ => {
                let f = &followers[pick % followers.len()];
                (format!("{l} from {f}"), hosts.cut(&l, f))
            }
        };
        if let Err(e) = done {
            self.violations.push(format!(
                "{} {what}: cannot cut the network: {e}",
                fault.kind.label()
            ));
            let _ = hosts.heal();
            return None;
        }
        self.event(format!(
            "{} {what} for {:.1} s",
            fault.kind.label(),
            fault.down_for.as_secs_f64()
        ));
        self.count(fault.kind);
        self.active.push(Active {
            process: format!("network: {what}"),
            back_at: now + fault.down_for,
            back: Back::Heal,
            kind: fault.kind,
            since: now,
        });
        Some(format!("{} {what}", fault.kind.label()))
    }

    /// Slows every link from and to one host (any service) through the links' relays.
    fn slow_host(&mut self, fault: &PlannedFault, now: Duration) -> Option<String> {
        let service = SERVICES[fault.pick as usize % SERVICES.len()].0;
        let delay = fault.slow_link_delay();
        let what = format!("{service} by {} ms each way", delay.as_millis());
        match self.cluster.set_link_delay(service, delay) {
            Ok(links) if !links.is_empty() => {}
            Ok(_) => {
                self.skipped += 1;
                self.event(format!(
                    "skipped slow-host {what}: the links are not relayed"
                ));
                return None;
            }
            Err(e) => {
                self.violations
                    .push(format!("slow-host {what}: cannot slow the links: {e}"));
                return None;
            }
        }
        self.event(format!(
            "slow-host {what} for {:.1} s",
            fault.down_for.as_secs_f64()
        ));
        self.count(fault.kind);
        self.active.push(Active {
            process: format!("network: {service} slowed"),
            back_at: now + fault.down_for,
            back: Back::Unslow { service },
            kind: fault.kind,
            since: now,
        });
        Some(format!("slow-host {what}"))
    }

    /// Appends the start of a row, without its newline, to a stopped process's file: what a crash in
    /// the middle of a write leaves.
    fn tear(&mut self, file: &str, kind: FaultKind) {
        let path = self.cluster.data().join(file);
        let n: u32 = self.rng.random_range(0..100_000);
        let row = match kind {
            FaultKind::TornOrderLine => format!("{n},Marbles,3,torn-{n},7"),
            _ => format!("{n},take,torn-{n},Marbles,3,97,1700000000000"),
        };
        let cut = self.rng.random_range(1..row.len());
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&path) {
            if f.write_all(&row.as_bytes()[..cut]).is_ok() && f.sync_data().is_ok() {
                self.count(kind);
            }
        }
    }

    fn bring_back(&mut self, a: &Active) {
        self.windows.push((a.kind, a.since, self.start.elapsed()));
        self.event(match a.back {
            Back::Heal | Back::Unslow { .. } => format!("heal {}", a.process),
            Back::Resume => format!("resume {}", a.process),
            Back::Restart { torn: true } => format!("restart {} after a torn line", a.process),
            Back::Restart { torn: false } => format!("restart {}", a.process),
        });
        match a.back {
            Back::Heal => {
                if let Some(Err(e)) = self.hosts.as_deref_mut().map(Hosts::heal) {
                    self.violations
                        .push(format!("cannot heal the network: {e}"));
                }
            }
            Back::Unslow { service } => {
                if let Err(e) = self.cluster.set_link_delay(service, Duration::ZERO) {
                    self.violations
                        .push(format!("cannot heal the slow links of {service}: {e}"));
                }
            }
            Back::Resume => self.cluster.resume(&a.process),
            Back::Restart { torn } => {
                if a.process == "catalog" {
                    if torn {
                        self.tear("catalog-journal.csv", FaultKind::TornJournalLine);
                    }
                    self.cluster.start_catalog(self.restock_secs);
                    if let Some(killed) = self.catalog_killed.take() {
                        self.catalog_outages.push((killed, unix_ms()));
                    }
                } else if a.process == "frontend" {
                    self.cluster.start_frontend();
                } else {
                    let id: ReplicaId = a.process["order-".len()..].parse().expect("replica id");
                    if torn {
                        self.tear(&format!("orders-{id}.csv"), FaultKind::TornOrderLine);
                    }
                    self.cluster.start_order(id);
                }
            }
        }
    }

    /// Brings back every process whose fault is over (all of them with `all`).
    pub(super) fn maybe_bring_back(&mut self, now: Duration, all: bool) {
        let (due, rest): (Vec<Active>, Vec<Active>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|a| all || a.back_at <= now);
        self.active = rest;
        for a in &due {
            self.bring_back(a);
        }
    }

    /// A process no fault holds that is not running exited by itself: a violation; it is started
    /// again so the run goes on.
    pub(super) fn check_alive(&mut self, now: Duration) {
        let mut names = vec!["catalog".to_string(), "frontend".to_string()];
        names.extend(REPLICAS.map(process_of));
        for name in names {
            if self.is_hit(&name) || self.cluster.is_running(&name) {
                continue;
            }
            let status = self.cluster.forget_exited(&name);
            self.violations.push(format!(
                "{name} exited by itself ({}) at {:.1} s:\n{}",
                status.map_or("status unknown".into(), |s| s.to_string()),
                now.as_secs_f64(),
                self.cluster.logs()
            ));
            let a = Active {
                process: name,
                back_at: now,
                back: Back::Restart { torn: false },
                kind: FaultKind::KillReplica,
                since: now,
            };
            self.bring_back(&a);
        }
    }
}
