//! Replication scenarios, one file each in `tests/scenarios/`, run against [`Core`] in memory.
//!
//! The driver below plays the I/O layer's part (the same steps as `server.rs`: prepare a quorum, copy
//! the best log, become leader, bring followers up to date with appends), so each scenario reads as a
//! story of crashes and leader changes with checks between the steps:
//!
//! ```text
//! start 3                 three replicas, empty, ready
//! lead 3 epoch 1          the front-end names replica 3 in epoch 1; it takes over and syncs the others
//! buy r1                  the leader creates order r1 and replicates it to every live follower
//! buy r2 only 3 1         ... to the listed replicas only (the leader first)
//! crash 2                 replica 2 stops answering (keeps its log)
//! restart 2               it comes back: recovers from the most up-to-date live peer
//! old-leader-append 3     replica 3 sends an append with the ballot it had: expect it refused
//! check log 2 = r1 r2     replica 2's log holds these request ids, in order
//! check same              every live replica has the same log
//! check committed r1      the leader counts r1 as committed
//! ```

use order::core::{best_source, Core};
use order::store::Meta;
use shared::protocol::{Append, Ballot, ReplicaId, Role};
use shared::Error;
use std::collections::{BTreeMap, BTreeSet};

struct Sim {
    replicas: BTreeMap<ReplicaId, Core>,
    up: BTreeSet<ReplicaId>,
    leader: Option<(ReplicaId, Ballot)>,
    /// What each leader last knew of its own ballot, for `old-leader-append`.
    last_ballot: BTreeMap<ReplicaId, Ballot>,
}

impl Sim {
    fn new(n: u32) -> Sim {
        let mut replicas = BTreeMap::new();
        for id in 1..=n {
            let mut c = Core::new(id, n as usize / 2 + 1, vec![], Meta::default());
            c.role = Role::Follower;
            replicas.insert(id, c);
        }
        Sim {
            up: replicas.keys().copied().collect(),
            replicas,
            leader: None,
            last_ballot: BTreeMap::new(),
        }
    }

    fn copy(&mut self, to: ReplicaId, from: ReplicaId) {
        let src = &self.replicas[&from];
        let chunk = src.chunk(self.replicas[&to].meta.commit, usize::MAX);
        let start = self.replicas[&to].meta.commit;
        let dst = self.replicas.get_mut(&to).unwrap();
        dst.merge(start, &chunk.entries);
        dst.finish_copy(chunk.len, chunk.log_ballot);
    }

    fn lead(&mut self, id: ReplicaId, epoch: u64) -> Result<(), String> {
        let ballot = Ballot { epoch, leader: id };
        for r in self.up.clone() {
            let _ = self.replicas.get_mut(&r).unwrap().on_notice(ballot);
        }
        let mut statuses = vec![];
        for r in self.up.clone() {
            match self.replicas.get_mut(&r).unwrap().on_prepare(ballot) {
                Ok((s, _)) => statuses.push(s),
                Err(e) => return Err(format!("prepare refused by {r}: {e}")),
            }
        }
        let quorum = self.replicas[&id].quorum;
        if statuses.len() < quorum {
            return Err("no quorum".into());
        }
        let best = best_source(&statuses).unwrap().clone();
        let own = self.replicas[&id].status();
        if (best.log_ballot, best.len) > (own.log_ballot, own.len) {
            self.copy(id, best.id);
        }
        self.replicas
            .get_mut(&id)
            .unwrap()
            .become_leader(ballot)
            .map_err(|e| e.to_string())?;
        self.leader = Some((id, ballot));
        self.last_ballot.insert(id, ballot);
        for f in self.up.clone().into_iter().filter(|f| *f != id) {
            self.sync(f);
        }
        Ok(())
    }

    /// The leader's replicator for one follower: sends from the leader's end, backs off on a
    /// mismatch as `server.rs` does, until the follower copies the whole log.
    fn sync(&mut self, f: ReplicaId) {
        let (l, ballot) = self.leader.unwrap();
        let mut next = self.replicas[&l].len();
        for _ in 0..100 {
            let leader = &self.replicas[&l];
            let start = next.min(leader.len());
            let a = Append {
                ballot,
                start,
                prev_epoch: start
                    .checked_sub(1)
                    .and_then(|p| leader.get(p))
                    .map(|o| o.epoch),
                entries: leader.chunk(start, usize::MAX).entries,
                commit: leader.meta.commit,
                view_len: leader.view_len,
            };
            let r = self
                .replicas
                .get_mut(&f)
                .unwrap()
                .on_append(&a)
                .expect("append accepted");
            if r.0.matched {
                next = a.start + a.entries.len() as u64;
                if r.0.log_ballot == ballot && next == self.replicas[&l].len() {
                    return;
                }
            } else {
                next = if r.0.len < a.start {
                    r.0.len
                } else {
                    r.0.commit.min(a.start.saturating_sub(1))
                };
            }
        }
        panic!("replica {f} never synced");
    }

    fn buy(&mut self, rid: &str, only: Option<Vec<ReplicaId>>) {
        let (l, _) = self.leader.expect("a leader");
        self.replicas
            .get_mut(&l)
            .unwrap()
            .create("Tux", 1, rid)
            .unwrap();
        let targets: Vec<ReplicaId> = only.unwrap_or_else(|| self.up.iter().copied().collect());
        let targets: Vec<ReplicaId> = targets
            .into_iter()
            .filter(|f| *f != l && self.up.contains(f))
            .collect();
        for f in targets {
            self.sync(f);
        }
        let matched: Vec<u64> = self
            .up
            .iter()
            .filter(|f| **f != l && self.replicas[f].meta.log_ballot == self.leader.unwrap().1)
            .map(|f| self.replicas[f].len())
            .collect();
        let len = self.replicas[&l].len();
        self.replicas
            .get_mut(&l)
            .unwrap()
            .advance_commit(len, &matched);
    }

    fn restart(&mut self, id: ReplicaId) {
        self.up.insert(id);
        let c = self.replicas.get_mut(&id).unwrap();
        c.role = Role::Recovering;
        let mut statuses: Vec<_> = self
            .up
            .iter()
            .filter(|r| **r != id)
            .map(|r| self.replicas[r].status())
            .collect();
        let own = self.replicas[&id].status();
        statuses.push(own.clone());
        let best = best_source(&statuses).unwrap().clone();
        if best.id != id && (best.log_ballot, best.len) > (own.log_ballot, own.len) {
            self.copy(id, best.id);
        }
        self.replicas.get_mut(&id).unwrap().role = Role::Follower;
        if self
            .leader
            .is_some_and(|(l, _)| self.up.contains(&l) && l != id)
        {
            self.sync(id);
        }
    }

    fn ids(&self, id: ReplicaId) -> Vec<String> {
        self.replicas[&id]
            .orders()
            .iter()
            .map(|o| o.request_id.clone())
            .collect()
    }

    fn step(&mut self, line: &str) -> Result<(), String> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |s: &str| s.parse::<u32>().map_err(|_| format!("not a number: {s}"));
        match w.as_slice() {
            ["start", n] => *self = Sim::new(num(n)?),
            ["lead", id, "epoch", e] => self.lead(num(id)?, num(e)? as u64)?,
            ["lead", id, "epoch", e, "fails"] => {
                if self.lead(num(id)?, num(e)? as u64).is_ok() {
                    return Err("the takeover should have failed".into());
                }
            }
            ["buy", rid] => self.buy(rid, None),
            ["buy", rid, "only", rest @ ..] => {
                let only = rest.iter().map(|r| num(r)).collect::<Result<Vec<_>, _>>()?;
                self.buy(rid, Some(only));
            }
            ["crash", id] => {
                let id = num(id)?;
                self.up.remove(&id);
                if self.leader.is_some_and(|(l, _)| l == id) {
                    self.leader = None;
                }
            }
            ["restart", id] => self.restart(num(id)?),
            ["old-leader-append", id] => {
                let id = num(id)?;
                let ballot = self.last_ballot[&id];
                let len = self.replicas[&id].len();
                for f in self.up.clone().into_iter().filter(|f| *f != id) {
                    let a = Append {
                        ballot,
                        start: len,
                        prev_epoch: None,
                        entries: vec![],
                        commit: 0,
                        view_len: 0,
                    };
                    match self.replicas.get_mut(&f).unwrap().on_append(&a) {
                        Err(Error::StaleEpoch(_)) => {}
                        other => {
                            return Err(format!(
                                "replica {f} accepted an old leader's append: {other:?}"
                            ))
                        }
                    }
                }
            }
            ["check", "log", id, "=", rest @ ..] => {
                let got = self.ids(num(id)?);
                if got != rest.iter().map(|s| s.to_string()).collect::<Vec<_>>() {
                    return Err(format!("log of {id} is {got:?}"));
                }
            }
            ["check", "same"] => {
                let logs: Vec<_> = self
                    .up
                    .iter()
                    .map(|r| (*r, self.replicas[r].orders().to_vec()))
                    .collect();
                if logs.windows(2).any(|w| w[0].1 != w[1].1) {
                    return Err(format!(
                        "logs differ: {:?}",
                        logs.iter()
                            .map(|(r, _)| (r, self.ids(*r)))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            ["check", "committed", rest @ ..] => {
                let (l, _) = self.leader.ok_or("no leader")?;
                let core = &self.replicas[&l];
                for rid in rest {
                    match core.find(rid) {
                        Some(n) if n < core.meta.commit => {}
                        other => {
                            return Err(format!(
                                "{rid} not committed at leader {l}: {other:?}, commit {}",
                                core.meta.commit
                            ))
                        }
                    }
                }
            }
            _ => return Err(format!("unknown step: {line}")),
        }
        Ok(())
    }
}

#[test]
fn every_scenario_holds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 4, "scenarios are missing");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let mut sim = Sim::new(3);
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap().trim();
            if line.is_empty() {
                continue;
            }
            if let Err(e) = sim.step(line) {
                panic!("{}:{}: `{line}`: {e}", file.display(), i + 1);
            }
        }
    }
}
