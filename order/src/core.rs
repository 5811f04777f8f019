//! The replica's decisions, without sockets, files or clocks.
//!
//! [`Core`] holds a replica's log in memory and its promises, and turns each message into a new state
//! plus the [`Effects`] the I/O layer must carry out (append to the file, rewrite it, save the meta
//! file) before answering. Every rule of the protocol described in the crate docs is here, so the unit
//! tests below drive it message by message.

use crate::store::Meta;
use shared::protocol::{
    Append, AppendReply, Ballot, LogChunk, Order, OrderNumber, ReplicaId, ReplicaStatus, Role,
};
use shared::{Error, Result};
use std::collections::HashMap;

/// What the log's file must undergo after a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum LogChange {
    /// Nothing.
    None,
    /// These orders go at the end.
    Append(Vec<Order>),
    /// A conflicting tail was cut: write the whole log anew.
    Rewrite,
}

impl LogChange {
    fn then(self, next: LogChange) -> LogChange {
        match (self, next) {
            (LogChange::Rewrite, _) | (_, LogChange::Rewrite) => LogChange::Rewrite,
            (LogChange::None, n) => n,
            (s, LogChange::None) => s,
            (LogChange::Append(mut a), LogChange::Append(b)) => {
                a.extend(b);
                LogChange::Append(a)
            }
        }
    }
}

/// What the I/O layer must do before it answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    /// Change to the order file.
    pub change: LogChange,
    /// The meta file must be saved (a promise or the log ballot changed).
    pub save_meta: bool,
}

/// A replica's state.
pub struct Core {
    /// Its id.
    pub id: ReplicaId,
    /// Replicas (itself included) that must hold an order before it counts as committed.
    pub quorum: usize,
    /// Promises and commit point.
    pub meta: Meta,
    /// Its role.
    pub role: Role,
    /// Leader only: the log's length when it finished taking over.
    pub view_len: u64,
    log: Vec<Order>,
    by_request: HashMap<String, OrderNumber>,
}

/// The most up-to-date log among `statuses`: the highest log ballot, then the longest. A log copies the
/// log of the leader of its log ballot, and that leader's log held every order committed before it,
/// so this log holds every committed order (see the crate docs).
pub fn best_source(statuses: &[ReplicaStatus]) -> Option<&ReplicaStatus> {
    statuses.iter().max_by_key(|s| (s.log_ballot, s.len))
}

/// The highest commit point that `quorum` of the given durable lengths reach (the leader's own and
/// those of followers that copy its log).
pub fn quorum_point(mut lengths: Vec<u64>, quorum: usize) -> Option<u64> {
    lengths.sort_unstable_by(|a, b| b.cmp(a));
    lengths.get(quorum.max(1) - 1).copied()
}

impl Core {
    /// A replica that starts from the orders and meta of its files, recovering.
    pub fn new(id: ReplicaId, quorum: usize, log: Vec<Order>, meta: Meta) -> Core {
        let by_request = log
            .iter()
            .map(|o| (o.request_id.clone(), o.number))
            .collect();
        Core {
            id,
            quorum,
            meta,
            role: Role::Recovering,
            view_len: 0,
            log,
            by_request,
        }
    }

    /// Its status, as the health check and a prepare answer it.
    pub fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            id: self.id,
            role: self.role,
            ready: self.role != Role::Recovering,
            promised: self.meta.promised,
            log_ballot: self.meta.log_ballot,
            len: self.len(),
            commit: self.meta.commit,
        }
    }

    /// Orders in the log.
    pub fn len(&self) -> u64 {
        self.log.len() as u64
    }

    /// True when the log is empty.
    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }

    /// The whole log.
    pub fn orders(&self) -> &[Order] {
        &self.log
    }

    /// Order `n`, committed or not.
    pub fn get(&self, n: OrderNumber) -> Option<&Order> {
        self.log.get(usize::try_from(n).ok()?)
    }

    /// The number of the order with this request id, if the log holds one.
    pub fn find(&self, request_id: &str) -> Option<OrderNumber> {
        self.by_request.get(request_id).copied()
    }

    /// Up to `limit` orders from `from`.
    pub fn chunk(&self, from: u64, limit: usize) -> LogChunk {
        let start = (from as usize).min(self.log.len());
        let end = start.saturating_add(limit).min(self.log.len());
        LogChunk {
            entries: self.log[start..end].to_vec(),
            len: self.len(),
            log_ballot: self.meta.log_ballot,
        }
    }

    /// True when this replica may act on a message of `b`: a newer epoch, or the very choice it
    /// promised. One promise per epoch, so two leaders never both win the same epoch.
    pub fn admits(&self, b: Ballot) -> bool {
        b.epoch > self.meta.promised.epoch || b == self.meta.promised
    }

    fn refuse_if_stale(&self, b: Ballot) -> Result<()> {
        if self.admits(b) {
            Ok(())
        } else {
            Err(Error::StaleEpoch(self.meta.promised.epoch))
        }
    }

    /// Promises `b`; a leader or candidate of an older choice steps down. True when the promise is new
    /// (the meta file must be saved before answering).
    fn promise(&mut self, b: Ballot) -> bool {
        if b == self.meta.promised {
            return false;
        }
        self.meta.promised = b;
        if matches!(self.role, Role::Leader | Role::Candidate) {
            self.role = Role::Follower;
        }
        true
    }

    /// The front-end's notice that `b.leader` leads in `b.epoch`. Returns (save meta, start taking over).
    pub fn on_notice(&mut self, b: Ballot) -> Result<(bool, bool)> {
        self.refuse_if_stale(b)?;
        let save = self.promise(b);
        if b.leader == self.id {
            if self.role == Role::Leader || self.role == Role::Candidate {
                return Ok((save, false));
            }
            if self.role == Role::Recovering {
                return Err(Error::Unavailable("still catching up after a start".into()));
            }
            self.role = Role::Candidate;
            return Ok((save, true));
        }
        if self.role != Role::Recovering {
            self.role = Role::Follower;
        }
        Ok((save, false))
    }

    /// A candidate's prepare: promise `b` and tell how up to date this log is.
    pub fn on_prepare(&mut self, b: Ballot) -> Result<(ReplicaStatus, bool)> {
        self.refuse_if_stale(b)?;
        if self.role == Role::Recovering {
            return Err(Error::Unavailable("still catching up after a start".into()));
        }
        let save = self.promise(b);
        if b.leader != self.id {
            self.role = Role::Follower;
        }
        Ok((self.status(), save))
    }

    /// Puts `entries` at positions from `start`, keeping what already matches (same epoch at the same
    /// position means the same order) and cutting the log at the first conflict.
    pub fn merge(&mut self, start: u64, entries: &[Order]) -> LogChange {
        let mut change = LogChange::None;
        for (k, e) in entries.iter().enumerate() {
            let i = start as usize + k;
            if let Some(mine) = self.log.get(i) {
                if mine.epoch == e.epoch && mine.request_id == e.request_id {
                    continue;
                }
                change = change.then(self.truncate_to(i as u64));
            }
            debug_assert_eq!(e.number, i as u64);
            self.by_request.insert(e.request_id.clone(), e.number);
            self.log.push(e.clone());
            change = change.then(LogChange::Append(vec![e.clone()]));
        }
        change
    }

    /// Cuts the log to `len` orders.
    pub fn truncate_to(&mut self, len: u64) -> LogChange {
        if len >= self.len() {
            return LogChange::None;
        }
        for o in self.log.drain(len as usize..) {
            self.by_request.remove(&o.request_id);
        }
        self.meta.commit = self.meta.commit.min(len);
        LogChange::Rewrite
    }

    /// A leader's append.
    pub fn on_append(&mut self, a: &Append) -> Result<(AppendReply, Effects)> {
        self.refuse_if_stale(a.ballot)?;
        if self.role == Role::Recovering {
            return Err(Error::Unavailable("still catching up after a start".into()));
        }
        let mut save_meta = self.promise(a.ballot);
        if a.ballot.leader != self.id {
            self.role = Role::Follower;
        }
        let prev_ok = a.start <= self.len()
            && (a.start == 0
                || self.log[a.start as usize - 1].epoch == a.prev_epoch.unwrap_or(u64::MAX));
        if !prev_ok {
            let reply = AppendReply {
                matched: false,
                len: self.len(),
                commit: self.meta.commit,
                log_ballot: self.meta.log_ballot,
            };
            return Ok((
                reply,
                Effects {
                    change: LogChange::None,
                    save_meta,
                },
            ));
        }
        let mut change = self.merge(a.start, &a.entries);
        let end = a.start + a.entries.len() as u64;
        self.meta.commit = self.meta.commit.max(a.commit.min(end));
        if self.meta.log_ballot != a.ballot && end >= a.view_len {
            // This log now holds the leader's whole starting log. Anything after `end` that the leader
            // did not write itself is a leftover of an older leader: cut it, then copy this leader.
            let own = a.ballot.epoch;
            if let Some(i) = (end as usize..self.log.len()).find(|&i| self.log[i].epoch != own) {
                change = change.then(self.truncate_to(i as u64));
            }
            self.meta.log_ballot = a.ballot;
            save_meta = true;
        }
        let reply = AppendReply {
            matched: true,
            len: self.len(),
            commit: self.meta.commit,
            log_ballot: self.meta.log_ballot,
        };
        Ok((reply, Effects { change, save_meta }))
    }

    /// After copying `source_len` orders of a more up-to-date replica, drops what this log has beyond
    /// them and takes that replica's log ballot.
    pub fn finish_copy(&mut self, source_len: u64, source_ballot: Ballot) -> LogChange {
        let change = self.truncate_to(source_len);
        self.meta.log_ballot = self.meta.log_ballot.max(source_ballot);
        change
    }

    /// A candidate that holds the most up-to-date log of a quorum becomes leader of `b`.
    pub fn become_leader(&mut self, b: Ballot) -> Result<()> {
        if self.meta.promised != b || self.role != Role::Candidate {
            return Err(Error::StaleEpoch(self.meta.promised.epoch));
        }
        self.role = Role::Leader;
        self.meta.log_ballot = b;
        self.view_len = self.len();
        Ok(())
    }

    /// True when this replica leads with ballot `b`.
    pub fn leads(&self, b: Ballot) -> bool {
        self.role == Role::Leader && self.meta.promised == b
    }

    /// Leader: appends a new order for a purchase. The caller has checked the request id is new.
    pub fn create(&mut self, name: &str, quantity: u64, request_id: &str) -> Result<Order> {
        if self.role != Role::Leader {
            return Err(Error::Unavailable("not the leader".into()));
        }
        debug_assert!(self.find(request_id).is_none());
        let order = Order {
            number: self.len(),
            name: name.to_string(),
            quantity,
            request_id: request_id.to_string(),
            epoch: self.meta.promised.epoch,
        };
        self.by_request
            .insert(order.request_id.clone(), order.number);
        self.log.push(order.clone());
        Ok(order)
    }

    /// Leader: moves the commit point to what `quorum` replicas hold on disk, given its own durable
    /// length and the matched lengths of the followers that copy its log. True when it moved.
    pub fn advance_commit(&mut self, own_durable: u64, followers: &[u64]) -> bool {
        let mut lengths = vec![own_durable];
        lengths.extend_from_slice(followers);
        match quorum_point(lengths, self.quorum) {
            Some(c) if c > self.meta.commit => {
                self.meta.commit = c;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(epoch: u64, leader: ReplicaId) -> Ballot {
        Ballot { epoch, leader }
    }

    fn o(n: u64, epoch: u64, rid: &str) -> Order {
        Order {
            number: n,
            name: "Tux".into(),
            quantity: 1,
            request_id: rid.into(),
            epoch,
        }
    }

    fn ready(id: ReplicaId, log: Vec<Order>) -> Core {
        let mut c = Core::new(id, 2, log, Meta::default());
        c.role = Role::Follower;
        c
    }

    fn append(
        ballot: Ballot,
        start: u64,
        prev: Option<u64>,
        entries: Vec<Order>,
        commit: u64,
        view_len: u64,
    ) -> Append {
        Append {
            ballot,
            start,
            prev_epoch: prev,
            entries,
            commit,
            view_len,
        }
    }

    #[test]
    fn a_notice_makes_the_named_replica_a_candidate_and_others_followers() {
        let mut c = ready(3, vec![]);
        assert_eq!(c.on_notice(b(1, 3)).unwrap(), (true, true));
        assert_eq!(c.role, Role::Candidate);
        assert_eq!(
            c.on_notice(b(1, 3)).unwrap(),
            (false, false),
            "a repeated notice changes nothing"
        );
        c.become_leader(b(1, 3)).unwrap();
        assert!(c.leads(b(1, 3)));
        assert_eq!(c.on_notice(b(2, 2)).unwrap(), (true, false));
        assert_eq!(
            c.role,
            Role::Follower,
            "a newer choice makes the old leader step down"
        );
    }

    #[test]
    fn stale_and_same_epoch_rival_choices_are_refused() {
        let mut c = ready(1, vec![]);
        c.on_notice(b(5, 3)).unwrap();
        assert_eq!(c.on_notice(b(4, 3)), Err(Error::StaleEpoch(5)));
        assert_eq!(
            c.on_notice(b(5, 2)),
            Err(Error::StaleEpoch(5)),
            "one leader per epoch"
        );
        assert!(c.on_prepare(b(5, 2)).is_err());
        let a = append(b(4, 2), 0, None, vec![o(0, 4, "x")], 0, 0);
        assert_eq!(c.on_append(&a).unwrap_err(), Error::StaleEpoch(5));
        assert!(c.is_empty(), "a stale leader's order is not stored");
    }

    #[test]
    fn a_recovering_replica_refuses_to_promise_or_store() {
        let mut c = Core::new(1, 2, vec![], Meta::default());
        assert!(matches!(c.on_prepare(b(1, 2)), Err(Error::Unavailable(_))));
        assert!(matches!(
            c.on_append(&append(b(1, 2), 0, None, vec![], 0, 0)),
            Err(Error::Unavailable(_))
        ));
    }

    #[test]
    fn append_checks_the_previous_entry_and_reports_a_mismatch() {
        let mut c = ready(1, vec![o(0, 1, "a"), o(1, 1, "b")]);
        let (r, e) = c
            .on_append(&append(b(2, 3), 3, Some(2), vec![o(3, 2, "d")], 0, 4))
            .unwrap();
        assert!(!r.matched);
        assert_eq!((r.len, e.change), (2, LogChange::None));
        let (r, _) = c
            .on_append(&append(b(2, 3), 2, Some(2), vec![], 0, 4))
            .unwrap();
        assert!(!r.matched, "epoch of entry 1 is 1, not 2");
        let (r, e) = c
            .on_append(&append(b(2, 3), 2, Some(1), vec![o(2, 2, "c")], 1, 3))
            .unwrap();
        assert!(r.matched);
        assert_eq!(e.change, LogChange::Append(vec![o(2, 2, "c")]));
        assert_eq!((r.len, r.commit, r.log_ballot), (3, 1, b(2, 3)));
        assert!(e.save_meta);
    }

    #[test]
    fn a_conflicting_tail_is_cut_and_its_request_ids_forgotten() {
        let mut c = ready(1, vec![o(0, 1, "a"), o(1, 1, "old1"), o(2, 1, "old2")]);
        let (r, e) = c
            .on_append(&append(b(2, 3), 1, Some(1), vec![o(1, 2, "new1")], 0, 2))
            .unwrap();
        assert!(r.matched);
        assert_eq!(e.change, LogChange::Rewrite);
        assert_eq!(c.orders(), &[o(0, 1, "a"), o(1, 2, "new1")]);
        assert_eq!(c.find("old1"), None);
        assert_eq!(c.find("old2"), None);
        assert_eq!(c.find("new1"), Some(1));
    }

    #[test]
    fn joining_a_leader_cuts_leftovers_of_older_leaders_beyond_its_starting_log() {
        // Entry 2 was written by the old leader of epoch 1 and never reached the new leader.
        let mut c = ready(1, vec![o(0, 1, "a"), o(1, 1, "b"), o(2, 1, "lost")]);
        let (r, e) = c
            .on_append(&append(
                b(2, 3),
                0,
                None,
                vec![o(0, 1, "a"), o(1, 1, "b")],
                2,
                2,
            ))
            .unwrap();
        assert!(r.matched);
        assert_eq!(e.change, LogChange::Rewrite);
        assert_eq!(c.len(), 2);
        assert_eq!(c.meta.log_ballot, b(2, 3));
        // Later appends of the same leader, delivered out of order, are not cut.
        let mut c = ready(1, vec![o(0, 2, "a"), o(1, 2, "b")]);
        c.meta.log_ballot = b(2, 3);
        c.meta.promised = b(2, 3);
        let (r, e) = c
            .on_append(&append(b(2, 3), 0, None, vec![o(0, 2, "a")], 0, 1))
            .unwrap();
        assert!(r.matched);
        assert_eq!((e.change, c.len()), (LogChange::None, 2));
    }

    #[test]
    fn commit_follows_the_leader_but_never_past_what_matched() {
        let mut c = ready(1, vec![]);
        let (r, _) = c
            .on_append(&append(b(1, 2), 0, None, vec![o(0, 1, "a")], 5, 0))
            .unwrap();
        assert_eq!(r.commit, 1);
    }

    #[test]
    fn the_best_source_has_the_newest_log_ballot_then_the_longest_log() {
        let s = |id, e, len| ReplicaStatus {
            id,
            role: Role::Follower,
            ready: true,
            promised: b(9, 1),
            log_ballot: b(e, 1),
            len,
            commit: 0,
        };
        let all = [s(1, 2, 10), s(2, 3, 4), s(3, 3, 5)];
        assert_eq!(best_source(&all).unwrap().id, 3);
        assert_eq!(best_source(&all[..1]).unwrap().id, 1);
    }

    #[test]
    fn the_leader_commits_what_a_quorum_holds_on_disk() {
        assert_eq!(quorum_point(vec![5, 3, 9], 2), Some(5));
        assert_eq!(quorum_point(vec![5], 2), None);
        assert_eq!(quorum_point(vec![5], 1), Some(5));
        let mut c = ready(3, vec![]);
        c.on_notice(b(1, 3)).unwrap();
        c.become_leader(b(1, 3)).unwrap();
        for rid in ["a", "b", "c"] {
            c.create("Tux", 1, rid).unwrap();
        }
        assert!(!c.advance_commit(3, &[]), "alone it commits nothing");
        assert!(c.advance_commit(3, &[2]));
        assert_eq!(c.meta.commit, 2);
        assert!(!c.advance_commit(1, &[1]), "commit never goes back");
        assert_eq!(c.find("c"), Some(2));
    }

    #[test]
    fn only_a_leader_creates_orders_and_copies_end_at_the_source_length() {
        let mut c = ready(1, vec![o(0, 1, "a"), o(1, 1, "b")]);
        assert!(c.create("Tux", 1, "x").is_err());
        assert_eq!(c.finish_copy(1, b(3, 2)), LogChange::Rewrite);
        assert_eq!(c.len(), 1);
        assert_eq!(c.meta.log_ballot, b(3, 2));
    }
}
