//! Leader selection and the watch on the leader, as pure decisions over the answers to pings.
//!
//! **The choice.** The front-end pings every replica and takes, from the highest id down, the first
//! that answers as ready and able to serve (it reaches a quorum of replicas and the catalog, see
//! [`ReplicaStatus::can_serve`]). That replica leads. If it already leads (the front-end restarted,
//! say), its ballot is kept; otherwise the choice gets a new epoch above every epoch seen, so replicas
//! can tell it from every earlier choice and refuse a leader that was replaced. The chosen replica
//! proves it can lead by collecting its quorum's promises before it serves.
//!
//! **A choice holds until its leader fails.** A sitting leader that still leads its ballot and can
//! serve is kept at every choice, even when a higher id has come back: moving leadership to it would
//! cost every client a takeover and gain nothing, and two replicas that each come and go must not
//! take leadership from each other in turn (flapping). So the highest-id rule picks among the
//! replicas able to serve at the moment a leader has failed, and only then. When nobody else can
//! serve, a leader that still answers is kept too: nothing changes, and purchases get 503.
//!
//! **The watch** ([`Watch`]) decides after each health ping of the leader whether it failed: it does
//! not answer [`MISSED_PINGS`] times in a row, or no longer leads its ballot, or has reported for
//! [`CANNOT_SERVE_GRACE_MS`] that it cannot serve.

use shared::protocol::{Ballot, Epoch, ReplicaId, ReplicaStatus, Role};
use shared::timing::{CANNOT_SERVE_GRACE_MS, MISSED_PINGS};

/// The outcome of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The replica that leads.
    pub leader: ReplicaId,
    /// Its ballot, to announce to every replica.
    pub ballot: Ballot,
}

/// True when `s` answers as the leader (or the candidate) of ballot `b`.
pub fn leads(s: &ReplicaStatus, b: Ballot) -> bool {
    s.promised == b && matches!(s.role, Role::Leader | Role::Candidate)
}

/// Chooses from the answers to pings of every replica (`None`: no answer), in any order.
/// `known_epoch` is the highest epoch the front-end has seen before; `current` the ballot of the
/// leader chosen last, if any (see the module docs for when it is kept).
pub fn choose(
    pings: &[(ReplicaId, Option<ReplicaStatus>)],
    known_epoch: Epoch,
    current: Option<Ballot>,
) -> Option<Choice> {
    let mut answers: Vec<(ReplicaId, &ReplicaStatus)> = pings
        .iter()
        .filter_map(|(id, s)| s.as_ref().map(|s| (*id, s)))
        .collect();
    answers.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
    let seen = answers
        .iter()
        .map(|(_, s)| s.promised.epoch)
        .max()
        .unwrap_or(0);
    let sitting = current.and_then(|b| {
        let (_, s) = answers.iter().find(|(id, _)| *id == b.leader)?;
        Some((b, s))
    });
    if let Some((b, s)) = sitting {
        if leads(s, b) && s.can_serve() {
            return Some(Choice {
                leader: b.leader,
                ballot: b,
            });
        }
    }
    let able = answers.iter().find(|(_, s)| s.can_serve());
    let (id, status) = match (able, sitting) {
        (Some(a), _) => *a,
        // Nobody can serve: a leader that still answers is kept, and nothing changes.
        (None, Some((b, _))) => {
            return Some(Choice {
                leader: b.leader,
                ballot: b,
            })
        }
        // Nobody can serve and nobody leads: the highest ready replica, so that the store starts
        // and answers for itself (503 while it cannot reach what it needs).
        (None, None) => *answers.iter().find(|(_, s)| s.ready)?,
    };
    if status.role == Role::Leader
        && status.promised.leader == id
        && status.promised.epoch >= known_epoch
    {
        return Some(Choice {
            leader: id,
            ballot: status.promised,
        });
    }
    Some(Choice {
        leader: id,
        ballot: Ballot {
            epoch: seen.max(known_epoch) + 1,
            leader: id,
        },
    })
}

/// What the watch of the leader decides after a health ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The leader is well (or not failed yet): ping again after the period.
    Keep,
    /// One ping went unanswered: ping again at once.
    AskAgain,
    /// The leader failed: choose again.
    ChooseAgain(Failure),
}

/// How the leader failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// It did not answer its health pings.
    Silent,
    /// It answers, but no longer as the leader of its ballot.
    NotLeading,
    /// It answers as leader but has reported for the grace time that it cannot serve.
    CannotServe {
        /// It reaches a quorum of replicas.
        quorum: bool,
        /// It reaches the catalog.
        catalog: bool,
    },
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Silent => write!(f, "does not answer"),
            Failure::NotLeading => write!(f, "does not answer as leader"),
            Failure::CannotServe { quorum, catalog } => {
                let mut missing = Vec::new();
                if !quorum {
                    missing.push("a quorum of replicas");
                }
                if !catalog {
                    missing.push("the catalog");
                }
                write!(f, "cannot reach {}", missing.join(" or "))
            }
        }
    }
}

/// The watch of one leader choice: which pings were missed, since when it cannot serve.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watch {
    missed: u32,
    cannot_serve_since: Option<u64>,
}

impl Watch {
    /// A watch with nothing seen yet.
    pub fn new() -> Watch {
        Watch::default()
    }

    /// The verdict on the answer to a health ping of the leader of `chosen` at `now_ms` (`None`: no
    /// answer in time).
    pub fn step(&mut self, now_ms: u64, health: Option<&ReplicaStatus>, chosen: Ballot) -> Verdict {
        let Some(s) = health.filter(|s| leads(s, chosen)) else {
            self.missed += 1;
            if self.missed < MISSED_PINGS {
                return Verdict::AskAgain;
            }
            let failure = if health.is_some() {
                Failure::NotLeading
            } else {
                Failure::Silent
            };
            *self = Watch::new();
            return Verdict::ChooseAgain(failure);
        };
        self.missed = 0;
        if s.can_serve() {
            self.cannot_serve_since = None;
            return Verdict::Keep;
        }
        let since = *self.cannot_serve_since.get_or_insert(now_ms);
        if now_ms < since + CANNOT_SERVE_GRACE_MS {
            return Verdict::Keep;
        }
        // Asked again only after another grace, if nobody better could be chosen.
        self.cannot_serve_since = Some(now_ms);
        Verdict::ChooseAgain(Failure::CannotServe {
            quorum: s.reaches_quorum,
            catalog: s.reaches_catalog,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(
        id: ReplicaId,
        role: Role,
        ready: bool,
        epoch: Epoch,
        leader: ReplicaId,
    ) -> ReplicaStatus {
        let promised = Ballot { epoch, leader };
        ReplicaStatus {
            id,
            role,
            ready,
            promised,
            log_ballot: promised,
            len: 0,
            commit: 0,
            reaches_quorum: true,
            reaches_catalog: true,
        }
    }

    fn cut_off(mut s: ReplicaStatus, quorum: bool, catalog: bool) -> ReplicaStatus {
        s.reaches_quorum = quorum;
        s.reaches_catalog = catalog;
        s
    }

    #[test]
    fn the_highest_ready_replica_leads_in_a_new_epoch() {
        let pings = [(3, None), (2, Some(status(2, Role::Follower, true, 4, 3)))];
        assert_eq!(
            choose(&pings, 0, None),
            Some(Choice {
                leader: 2,
                ballot: Ballot {
                    epoch: 5,
                    leader: 2
                }
            })
        );
        assert_eq!(choose(&pings, 9, None).unwrap().ballot.epoch, 10);
    }

    #[test]
    fn a_replica_still_catching_up_is_passed_over() {
        let pings = [
            (3, Some(status(3, Role::Recovering, false, 1, 3))),
            (2, Some(status(2, Role::Follower, true, 1, 3))),
        ];
        assert_eq!(
            choose(&pings, 0, None).unwrap(),
            Choice {
                leader: 2,
                ballot: Ballot {
                    epoch: 2,
                    leader: 2
                }
            }
        );
    }

    #[test]
    fn a_sitting_leader_keeps_its_ballot() {
        let pings = [(3, Some(status(3, Role::Leader, true, 7, 3)))];
        assert_eq!(
            choose(&pings, 0, None).unwrap().ballot,
            Ballot {
                epoch: 7,
                leader: 3
            }
        );
        // ...unless the front-end already saw a newer epoch: that leader may be a paused old one.
        assert_eq!(
            choose(&pings, 8, None).unwrap().ballot,
            Ballot {
                epoch: 9,
                leader: 3
            }
        );
    }

    #[test]
    fn a_sitting_leader_of_the_newest_known_epoch_is_kept() {
        let pings = [(3, Some(status(3, Role::Leader, true, 7, 3)))];
        assert_eq!(
            choose(&pings, 7, None).unwrap().ballot,
            Ballot {
                epoch: 7,
                leader: 3
            }
        );
    }

    #[test]
    fn a_leader_of_another_ballot_or_a_candidate_gets_a_new_choice() {
        // A replica that says it leads, but whose promise names another leader, is not kept.
        let pings = [(3, Some(status(3, Role::Leader, true, 7, 2)))];
        assert_eq!(
            choose(&pings, 0, None).unwrap().ballot,
            Ballot {
                epoch: 8,
                leader: 3
            }
        );
        let pings = [(3, Some(status(3, Role::Candidate, true, 7, 3)))];
        assert_eq!(choose(&pings, 0, None).unwrap().ballot.epoch, 8);
    }

    #[test]
    fn the_new_epoch_is_above_every_epoch_seen_even_of_replicas_not_chosen() {
        let pings = [
            (3, Some(status(3, Role::Follower, false, 12, 1))),
            (2, Some(status(2, Role::Follower, true, 4, 3))),
        ];
        assert_eq!(
            choose(&pings, 6, None).unwrap(),
            Choice {
                leader: 2,
                ballot: Ballot {
                    epoch: 13,
                    leader: 2
                }
            }
        );
    }

    #[test]
    fn nobody_ready_means_no_choice() {
        assert_eq!(choose(&[(3, None), (2, None), (1, None)], 0, None), None);
        assert_eq!(choose(&[], 0, None), None);
    }

    const B3: Ballot = Ballot {
        epoch: 5,
        leader: 3,
    };
    const B2: Ballot = Ballot {
        epoch: 6,
        leader: 2,
    };

    #[test]
    fn a_replica_that_cannot_reach_a_quorum_or_the_catalog_is_passed_over() {
        for (quorum, catalog) in [(false, true), (true, false), (false, false)] {
            let pings = [
                (
                    3,
                    Some(cut_off(
                        status(3, Role::Follower, true, 5, 3),
                        quorum,
                        catalog,
                    )),
                ),
                (2, Some(status(2, Role::Follower, true, 5, 3))),
                (1, Some(status(1, Role::Follower, true, 5, 3))),
            ];
            assert_eq!(choose(&pings, 5, Some(B3)).unwrap().leader, 2);
        }
    }

    #[test]
    fn a_leader_that_can_serve_is_kept_when_a_higher_id_comes_back() {
        let pings = [
            (3, Some(status(3, Role::Follower, true, 6, 2))),
            (2, Some(status(2, Role::Leader, true, 6, 2))),
            (1, Some(status(1, Role::Follower, true, 6, 2))),
        ];
        let kept = Choice {
            leader: 2,
            ballot: B2,
        };
        assert_eq!(choose(&pings, 6, Some(B2)), Some(kept));
        // Without a choice to keep, the highest id that can serve leads.
        assert_eq!(choose(&pings, 6, None).unwrap().leader, 3);
    }

    #[test]
    fn a_leader_that_cannot_serve_gives_way_to_the_highest_that_can() {
        let pings = [
            (1, Some(status(1, Role::Follower, true, 5, 3))),
            (
                3,
                Some(cut_off(status(3, Role::Leader, true, 5, 3), false, true)),
            ),
            (2, Some(status(2, Role::Follower, true, 5, 3))),
        ];
        assert_eq!(
            choose(&pings, 5, Some(B3)),
            Some(Choice {
                leader: 2,
                ballot: Ballot {
                    epoch: 6,
                    leader: 2
                }
            })
        );
    }

    #[test]
    fn when_nobody_can_serve_nothing_changes() {
        let pings = [
            (
                3,
                Some(cut_off(status(3, Role::Leader, true, 5, 3), false, true)),
            ),
            (
                2,
                Some(cut_off(status(2, Role::Follower, true, 5, 3), false, true)),
            ),
            (1, None),
        ];
        let kept = Choice {
            leader: 3,
            ballot: B3,
        };
        assert_eq!(choose(&pings, 5, Some(B3)), Some(kept));
        // With no leader to keep, the highest ready replica, so the store answers for itself.
        assert_eq!(choose(&pings[1..], 5, None).unwrap().leader, 2);
    }

    fn leader(quorum: bool, catalog: bool) -> ReplicaStatus {
        cut_off(status(3, Role::Leader, true, 5, 3), quorum, catalog)
    }

    #[test]
    fn a_silent_leader_fails_after_two_missed_pings() {
        let mut w = Watch::new();
        assert_eq!(w.step(0, None, B3), Verdict::AskAgain);
        assert_eq!(w.step(200, None, B3), Verdict::ChooseAgain(Failure::Silent));
        // An answer in between starts the count again.
        assert_eq!(w.step(300, None, B3), Verdict::AskAgain);
        assert_eq!(w.step(400, Some(&leader(true, true)), B3), Verdict::Keep);
        assert_eq!(w.step(500, None, B3), Verdict::AskAgain);
    }

    #[test]
    fn a_replica_that_no_longer_leads_the_ballot_has_failed() {
        let mut w = Watch::new();
        let follower = status(3, Role::Follower, true, 6, 2);
        assert_eq!(w.step(0, Some(&follower), B3), Verdict::AskAgain);
        assert_eq!(
            w.step(10, Some(&follower), B3),
            Verdict::ChooseAgain(Failure::NotLeading)
        );
    }

    #[test]
    fn a_leader_that_cannot_serve_fails_after_the_grace() {
        let mut w = Watch::new();
        let cut = leader(false, true);
        assert_eq!(w.step(1000, Some(&cut), B3), Verdict::Keep);
        assert_eq!(
            w.step(1000 + CANNOT_SERVE_GRACE_MS - 1, Some(&cut), B3),
            Verdict::Keep
        );
        let failed = Verdict::ChooseAgain(Failure::CannotServe {
            quorum: false,
            catalog: true,
        });
        assert_eq!(w.step(1000 + CANNOT_SERVE_GRACE_MS, Some(&cut), B3), failed);
        // Kept because nobody else could serve: asked again only after another grace.
        assert_eq!(
            w.step(1000 + CANNOT_SERVE_GRACE_MS + 1, Some(&cut), B3),
            Verdict::Keep
        );
        // A leader that serves again in the grace is kept, and its next lapse has a grace of its own.
        let mut w = Watch::new();
        assert_eq!(w.step(0, Some(&leader(true, false)), B3), Verdict::Keep);
        assert_eq!(w.step(100, Some(&leader(true, true)), B3), Verdict::Keep);
        assert_eq!(w.step(250, Some(&leader(true, false)), B3), Verdict::Keep);
        assert_eq!(w.step(400, Some(&leader(true, false)), B3), Verdict::Keep);
    }

    #[test]
    fn failures_say_what_is_missing() {
        let f = Failure::CannotServe {
            quorum: false,
            catalog: false,
        };
        assert_eq!(
            f.to_string(),
            "cannot reach a quorum of replicas or the catalog"
        );
    }
}
