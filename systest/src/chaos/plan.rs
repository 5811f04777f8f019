//! The fault plan: which fault, when, for how long, from one seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// No fault is injected in the first moments, so the clients find a working store.
pub(super) const WARM_UP: Duration = Duration::from_secs(2);

/// A kind of fault, as planned and as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL of an order replica that is not (known to be) the leader, restart later.
    KillReplica,
    /// SIGKILL of the leader the front-end names, restart later.
    KillLeader,
    /// SIGSTOP of the leader for 1 to 3 s, then SIGCONT.
    PauseLeader,
    /// SIGSTOP of a replica when the leader could not be asked (the front-end is down).
    PauseReplica,
    /// SIGKILL of the catalog, restart later.
    KillCatalog,
    /// SIGKILL of the front-end, restart later.
    KillFrontend,
    /// Half a CSV row without a newline appended to a killed replica's order file before its restart.
    TornOrderLine,
    /// The same at the end of the killed catalog's journal.
    TornJournalLine,
    /// The leader's links to both followers cut (hosts only).
    CutLeaderFromFollowers,
    /// One host taken off the network: its packets vanish (hosts only).
    UnplugHost,
    /// The front-end's link to the leader cut (hosts only).
    CutFrontendFromLeader,
    /// The catalog's link to the leader cut (hosts only).
    CutCatalogFromLeader,
    /// The leader's link to one follower cut (hosts only).
    CutFollowerFromLeader,
    /// Every link from and to one host slowed by 25 to 200 ms each way (hosts only).
    SlowHost,
}

impl FaultKind {
    /// Its name in the summary.
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::KillReplica => "kill-replica",
            FaultKind::KillLeader => "kill-leader",
            FaultKind::PauseLeader => "pause-leader",
            FaultKind::PauseReplica => "pause-replica",
            FaultKind::KillCatalog => "kill-catalog",
            FaultKind::KillFrontend => "kill-frontend",
            FaultKind::TornOrderLine => "torn-order-line",
            FaultKind::TornJournalLine => "torn-journal-line",
            FaultKind::CutLeaderFromFollowers => "cut-leader-from-followers",
            FaultKind::UnplugHost => "unplug-host",
            FaultKind::CutFrontendFromLeader => "cut-frontend-from-leader",
            FaultKind::CutCatalogFromLeader => "cut-catalog-from-leader",
            FaultKind::CutFollowerFromLeader => "cut-follower-from-leader",
            FaultKind::SlowHost => "slow-host",
        }
    }

    /// True for a fault of the network between hosts.
    pub fn is_network(self) -> bool {
        matches!(
            self,
            FaultKind::CutLeaderFromFollowers
                | FaultKind::UnplugHost
                | FaultKind::CutFrontendFromLeader
                | FaultKind::CutCatalogFromLeader
                | FaultKind::CutFollowerFromLeader
                | FaultKind::SlowHost
        )
    }
}

/// One fault of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    /// When it starts, from the start of the run.
    pub at: Duration,
    /// What: `KillReplica`, `KillLeader`, `PauseLeader`, `KillCatalog` or `KillFrontend`.
    pub kind: FaultKind,
    /// How long the process stays down or paused.
    pub down_for: Duration,
    /// For a replica or catalog kill: append a torn line to its order file or journal before the
    /// restart.
    pub torn: bool,
    /// A random number that picks a replica when the target is not the leader (a host to unplug or
    /// slow, a follower to cut).
    pub pick: u32,
}

/// The shortest and longest delay, each way, of a slowed host's links.
pub const SLOW_LINK_MS: std::ops::RangeInclusive<u64> = 25..=200;

impl PlannedFault {
    /// The delay each way of a [`FaultKind::SlowHost`], from its pick.
    pub fn slow_link_delay(&self) -> Duration {
        let span = SLOW_LINK_MS.end() - SLOW_LINK_MS.start() + 1;
        Duration::from_millis(SLOW_LINK_MS.start() + u64::from(self.pick / 8) % span)
    }

    /// When the process comes back.
    pub fn ends(&self) -> Duration {
        self.at + self.down_for
    }
}

/// The faults of a run of `duration` with `seed`, in time order. A fault starts every 0.5 to 3 s
/// after a quiet warm-up; it is dropped when two are already active, and when one is, it is kept only
/// three times in ten (and never on the same catalog or front-end). A killed replica stays down 0.2
/// to 6 s, a killed catalog or front-end 0.2 to 3 s, a paused leader 1 to 3 s (longer than the
/// front-end's two missed pings). With `network` (every service on its own host), four faults in
/// ten are of the network instead (a cut, an unplugged host, a slowed host), each healed after 1 to
/// 4 s, never two at once; without it, a seed plans what it always planned.
pub fn plan(seed: u64, duration: Duration, network: bool) -> Vec<PlannedFault> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults: Vec<PlannedFault> = Vec::new();
    let mut t = WARM_UP;
    loop {
        t += Duration::from_millis(rng.random_range(500..=3000));
        if t >= duration {
            return faults;
        }
        let roll = rng.random_range(0..100);
        let kind = if network && rng.random_bool(0.4) {
            match roll {
                0..17 => FaultKind::CutLeaderFromFollowers,
                17..34 => FaultKind::UnplugHost,
                34..50 => FaultKind::CutFrontendFromLeader,
                50..67 => FaultKind::CutCatalogFromLeader,
                67..84 => FaultKind::CutFollowerFromLeader,
                _ => FaultKind::SlowHost,
            }
        } else {
            match roll {
                0..20 => FaultKind::KillReplica,
                20..40 => FaultKind::KillLeader,
                40..60 => FaultKind::PauseLeader,
                60..80 => FaultKind::KillCatalog,
                _ => FaultKind::KillFrontend,
            }
        };
        let millis = match kind {
            FaultKind::KillReplica | FaultKind::KillLeader => rng.random_range(200..=6000),
            FaultKind::PauseLeader => rng.random_range(1000..=3000),
            k if k.is_network() => rng.random_range(1000..=4000),
            _ => rng.random_range(200..=3000),
        };
        let torn = rng.random_bool(0.4);
        let pick = rng.random();
        let overlap = rng.random_bool(0.3);
        let active: Vec<&PlannedFault> = faults.iter().filter(|f| f.ends() > t).collect();
        // One network fault at a time: healing one heals every link.
        let same_process = active.iter().any(|f| {
            (f.kind == kind && matches!(kind, FaultKind::KillCatalog | FaultKind::KillFrontend))
                || (f.kind.is_network() && kind.is_network())
        });
        if active.len() >= 2 || (active.len() == 1 && (!overlap || same_process)) {
            continue;
        }
        faults.push(PlannedFault {
            at: t,
            kind,
            down_for: Duration::from_millis(millis),
            torn: torn
                && matches!(
                    kind,
                    FaultKind::KillReplica | FaultKind::KillLeader | FaultKind::KillCatalog
                ),
            pick,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_seed_always_plans_the_same_faults_and_never_more_than_two_at_once() {
        let d = Duration::from_secs(600);
        assert_eq!(plan(7, d, false), plan(7, d, false));
        assert_ne!(plan(7, d, false), plan(8, d, false));
        let faults = plan(7, d, false);
        assert!(faults.len() > 100, "{}", faults.len());
        for f in &faults {
            assert!(f.at >= WARM_UP && f.at < d);
            let active = faults
                .iter()
                .filter(|g| g.at <= f.at && g.ends() > f.at)
                .count();
            assert!(active <= 2, "{f:?}");
        }
        assert!(faults.windows(2).all(|w| w[0].at < w[1].at));
        let kinds: HashSet<FaultKind> = faults.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 5);
        assert!(faults.iter().any(|f| f.torn));
    }

    #[test]
    fn on_hosts_the_network_is_cut_too_one_link_fault_at_a_time() {
        let d = Duration::from_secs(600);
        let faults = plan(7, d, true);
        let kinds: HashSet<FaultKind> = faults.iter().map(|f| f.kind).collect();
        assert_eq!(kinds.len(), 11, "{kinds:?}");
        let delays: HashSet<Duration> = faults
            .iter()
            .filter(|f| f.kind == FaultKind::SlowHost)
            .map(PlannedFault::slow_link_delay)
            .collect();
        assert!(delays.len() > 3, "{delays:?}");
        for d in delays {
            assert!(SLOW_LINK_MS.contains(&(d.as_millis() as u64)), "{d:?}");
        }
        for f in faults.iter().filter(|f| f.kind.is_network()) {
            assert!(!f.torn);
            assert!(f.down_for >= Duration::from_secs(1) && f.down_for <= Duration::from_secs(4));
            let others = faults
                .iter()
                .filter(|g| g.kind.is_network() && g.at <= f.at && g.ends() > f.at)
                .count();
            assert_eq!(others, 1, "{f:?}");
        }
    }
}
