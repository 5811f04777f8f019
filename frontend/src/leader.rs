//! Leader selection, as a pure decision over the answers to pings.
//!
//! The front-end pings the replicas from the highest id down and stops at the first that answers as
//! ready. That replica leads. If it already leads (the front-end restarted, say), its ballot is kept;
//! otherwise the choice gets a new epoch above every epoch seen, so replicas can tell it from every
//! earlier choice and refuse a leader that was replaced.

use shared::protocol::{Ballot, Epoch, ReplicaId, ReplicaStatus, Role};

/// The outcome of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The replica that leads.
    pub leader: ReplicaId,
    /// Its ballot, to announce to every replica.
    pub ballot: Ballot,
}

/// Chooses from pings made highest id first (`None`: no answer). `known_epoch` is the highest epoch
/// the front-end has seen before.
pub fn choose(pings: &[(ReplicaId, Option<ReplicaStatus>)], known_epoch: Epoch) -> Option<Choice> {
    let seen = pings
        .iter()
        .filter_map(|(_, s)| s.as_ref().map(|s| s.promised.epoch))
        .max()
        .unwrap_or(0);
    let (id, status) = pings
        .iter()
        .find_map(|(id, s)| s.as_ref().filter(|s| s.ready).map(|s| (*id, s)))?;
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
        }
    }

    #[test]
    fn the_highest_ready_replica_leads_in_a_new_epoch() {
        let pings = [(3, None), (2, Some(status(2, Role::Follower, true, 4, 3)))];
        assert_eq!(
            choose(&pings, 0),
            Some(Choice {
                leader: 2,
                ballot: Ballot {
                    epoch: 5,
                    leader: 2
                }
            })
        );
        assert_eq!(choose(&pings, 9).unwrap().ballot.epoch, 10);
    }

    #[test]
    fn a_replica_still_catching_up_is_passed_over() {
        let pings = [
            (3, Some(status(3, Role::Recovering, false, 1, 3))),
            (2, Some(status(2, Role::Follower, true, 1, 3))),
        ];
        assert_eq!(
            choose(&pings, 0).unwrap(),
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
            choose(&pings, 0).unwrap().ballot,
            Ballot {
                epoch: 7,
                leader: 3
            }
        );
        // ...unless the front-end already saw a newer epoch: that leader may be a paused old one.
        assert_eq!(
            choose(&pings, 8).unwrap().ballot,
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
            choose(&pings, 7).unwrap().ballot,
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
            choose(&pings, 0).unwrap().ballot,
            Ballot {
                epoch: 8,
                leader: 3
            }
        );
        let pings = [(3, Some(status(3, Role::Candidate, true, 7, 3)))];
        assert_eq!(choose(&pings, 0).unwrap().ballot.epoch, 8);
    }

    #[test]
    fn the_new_epoch_is_above_every_epoch_seen_even_of_replicas_not_chosen() {
        let pings = [
            (3, Some(status(3, Role::Follower, false, 12, 1))),
            (2, Some(status(2, Role::Follower, true, 4, 3))),
        ];
        assert_eq!(
            choose(&pings, 6).unwrap(),
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
        assert_eq!(choose(&[(3, None), (2, None), (1, None)], 0), None);
        assert_eq!(choose(&[], 0), None);
    }
}
