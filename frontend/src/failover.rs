//! The failover rule of a purchase, as a pure decision over the outcome of each attempt.
//!
//! The front-end sends a purchase to the leader it chose, and on a failure tries again, always with
//! the same request id, which the order service and the catalog apply at most once. [`Failover`]
//! decides, from the outcome of one attempt, what comes next ([`Next`]): answer the client, retry on
//! the same leader after a backoff, or choose a leader again. It reads no clock and makes no call: the
//! time since the purchase began comes in with each outcome, and the server carries the decision out.
//!
//! The rules:
//! - 200, 400, 404 and 409 are final: they go to the client as they are.
//! - A 503 from a replica changed nothing. One that names another choice than the one the attempt
//!   went to ([`Error::NotLeader`]) says the choice is stale (or the replica missed it): choose again,
//!   knowing the reported ballot. A plain 503 (no quorum, catalog down), or a "not the leader yet" from
//!   the replica being installed by the very choice, is retried on the same leader after a backoff
//!   of [`FIRST_BACKOFF_MS`] doubling to [`MAX_BACKOFF_MS`], for [`NO_QUORUM_BUDGET_MS`] since the
//!   purchase began; then the 503 goes to the client.
//! - A refused connection ([`Error::Unreachable`]) surely sent nothing: choose again.
//! - A 504 may have taken effect and the leader still works on it: retry on the same leader after a
//!   backoff. Any other failure (a reset or timeout after sending, a 500) may have taken effect, and
//!   the leader may be dead: choose again.
//! - A 503 to an attempt that was not fresh (below) is final at once: a leader gives it only once the
//!   catalog has refused the request id for good, so nothing was changed and nothing ever will be.
//! - After [`FAILOVER_BUDGET_MS`] the purchase is answered. Whenever it gives up, the answer is 503
//!   ("nothing was changed") only while the purchase is fresh; once an attempt may have taken effect
//!   (or the client gave the id, which it may have sent before), its take would be kept and end as an
//!   order (retried or rolled forward), so the answer is 504, never 503.
//!
//! An attempt is *fresh* ([`Failover::fresh`], sent as [`shared::protocol::Purchase::fresh`]) when no
//! earlier attempt with its request id can have reached a leader: the front-end made the id, and every
//! earlier attempt was refused a connection or answered 503. A client's own id is never fresh: the
//! client may have sent it before.

use shared::protocol::{Ballot, OrderCreated};
use shared::{Error, Result};

/// How long (ms) a purchase may spend failing over between leaders before it is answered 503 or 504.
pub const FAILOVER_BUDGET_MS: u64 = 6000;
/// How long (ms since the purchase began) a 503 from the chosen leader is retried on it before the
/// 503 is passed on.
pub const NO_QUORUM_BUDGET_MS: u64 = 1000;
/// The first wait (ms) before a retry on the same leader: a new leader's quorum is often a few ms
/// away.
pub const FIRST_BACKOFF_MS: u64 = 5;
/// The longest wait (ms) before a retry on the same leader.
pub const MAX_BACKOFF_MS: u64 = 100;

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Answer the client with this; the purchase is over.
    Answer(Result<OrderCreated>),
    /// Send the purchase to the same leader again after waiting this many ms.
    Retry {
        /// The wait, in ms.
        after_ms: u64,
    },
    /// Choose a leader again, then send the purchase to whoever leads.
    ChooseAgain {
        /// The ballot a replica said it follows, when it said one: a newer one than the front-end's
        /// choice shows that choice is stale, and the next choice must be newer still.
        reported: Option<Ballot>,
    },
}

/// The failover state of one purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// True when the client gave the request id.
    client_id: bool,
    /// Attempts whose outcome was stepped.
    attempts: u32,
    /// True once an attempt may have reached a leader and taken effect.
    maybe_applied: bool,
    /// Time since the purchase began, at the last outcome (ms).
    elapsed_ms: u64,
    /// The wait before the next retry on the same leader (ms).
    backoff_ms: u64,
}

impl Failover {
    /// The state before the first attempt. `client_id`: the client gave the request id.
    pub fn new(client_id: bool) -> Failover {
        Failover {
            client_id,
            attempts: 0,
            maybe_applied: false,
            elapsed_ms: 0,
            backoff_ms: FIRST_BACKOFF_MS,
        }
    }

    /// True when no attempt so far can have reached a leader and the front-end made the request id:
    /// the flag to send with the next attempt.
    pub fn fresh(&self) -> bool {
        !self.client_id && !self.maybe_applied
    }

    /// True once an attempt may have taken effect.
    pub fn maybe_applied(&self) -> bool {
        self.maybe_applied
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time since the purchase began at the last outcome (ms).
    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms
    }

    /// Decides what follows an attempt that went to the leader of `chosen` and ended with `outcome`,
    /// `elapsed_ms` after the purchase began.
    pub fn step(&mut self, outcome: Result<OrderCreated>, chosen: Ballot, elapsed_ms: u64) -> Next {
        self.attempts += 1;
        self.elapsed_ms = elapsed_ms;
        let error = match outcome {
            Ok(created) => return Next::Answer(Ok(created)),
            Err(e @ (Error::BadRequest(_) | Error::NotFound(_) | Error::Conflict(_))) => {
                return Next::Answer(Err(e))
            }
            Err(e) => e,
        };
        let next = match &error {
            Error::NotLeader(b) if *b != chosen => Next::ChooseAgain { reported: Some(*b) },
            // A leader answers 503 to an attempt that was not fresh only once the catalog has refused
            // the request id for good: nothing was changed, ever, whatever came before. Final.
            Error::Unavailable(_) if !self.fresh() => {
                return Next::Answer(Err(Error::Unavailable(error.message())))
            }
            // No quorum, no catalog, or the chosen replica still taking over: nothing was changed.
            Error::Unavailable(_) | Error::NotLeader(_) => {
                if elapsed_ms > NO_QUORUM_BUDGET_MS {
                    return Next::Answer(self.give_up(error));
                }
                self.backoff()
            }
            Error::Unreachable(_) => Next::ChooseAgain { reported: None },
            Error::Indeterminate(_) => {
                self.maybe_applied = true;
                self.backoff()
            }
            _ => {
                self.maybe_applied = true;
                Next::ChooseAgain { reported: None }
            }
        };
        if elapsed_ms > FAILOVER_BUDGET_MS {
            return Next::Answer(self.give_up(error));
        }
        next
    }

    /// The answer when the purchase ends without an order number, `last` being the last failure (or
    /// why no leader could be chosen): 503 only while the purchase is fresh (no attempt with its id
    /// can have reached a leader, now or before), else 504.
    pub fn give_up(&self, last: Error) -> Result<OrderCreated> {
        let unavailable = matches!(
            last,
            Error::Unavailable(_) | Error::NotLeader(_) | Error::Unreachable(_)
        );
        Err(match (self.fresh(), unavailable) {
            (true, _) => Error::Unavailable(last.message()),
            (false, true) => Error::Indeterminate(format!(
                "{}; an earlier attempt may have reached the leader, so the purchase may still complete",
                last.message()
            )),
            (false, false) => Error::Indeterminate(format!(
                "the order replicas did not confirm the purchase in time ({}); it may still complete",
                last.message()
            )),
        })
    }

    /// A retry on the same leader, after the current backoff, which then doubles up to its cap.
    fn backoff(&mut self) -> Next {
        let after_ms = self.backoff_ms;
        self.backoff_ms = (after_ms * 2).min(MAX_BACKOFF_MS);
        Next::Retry { after_ms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHOSEN: Ballot = Ballot {
        epoch: 5,
        leader: 3,
    };

    fn ballot(epoch: u64, leader: u32) -> Ballot {
        Ballot { epoch, leader }
    }

    fn created(n: u64) -> Result<OrderCreated> {
        Ok(OrderCreated { order_number: n })
    }

    fn unavailable() -> Result<OrderCreated> {
        Err(Error::Unavailable("no quorum".into()))
    }

    fn indeterminate() -> Result<OrderCreated> {
        Err(Error::Indeterminate("quorum did not confirm".into()))
    }

    fn unreachable() -> Result<OrderCreated> {
        Err(Error::Unreachable("connection refused".into()))
    }

    fn transport() -> Result<OrderCreated> {
        Err(Error::Transport("timeout".into()))
    }

    fn choose_again() -> Next {
        Next::ChooseAgain { reported: None }
    }

    fn retry(after_ms: u64) -> Next {
        Next::Retry { after_ms }
    }

    /// The status of the final answer, or None when the purchase goes on.
    fn status(next: &Next) -> Option<u16> {
        match next {
            Next::Answer(Ok(_)) => Some(200),
            Next::Answer(Err(e)) => Some(e.status()),
            _ => None,
        }
    }

    #[test]
    fn a_new_purchase_starts_clean() {
        let f = Failover::new(false);
        assert_eq!(f.attempts(), 0);
        assert!(!f.maybe_applied());
        assert_eq!(f.elapsed_ms(), 0);
        assert!(f.fresh());
        assert!(
            !Failover::new(true).fresh(),
            "a client's id may have been sent before"
        );
    }

    #[test]
    fn an_order_number_is_the_answer_at_once() {
        let mut f = Failover::new(false);
        assert_eq!(f.step(created(7), CHOSEN, 3), Next::Answer(created(7)));
        assert_eq!((f.attempts(), f.elapsed_ms()), (1, 3));
        // ...also after attempts that may have taken effect, and late.
        let mut f = Failover::new(false);
        f.step(transport(), CHOSEN, 1);
        assert_eq!(f.step(created(8), CHOSEN, 9000), Next::Answer(created(8)));
    }

    #[test]
    fn refusals_are_final_and_passed_on_as_they_are() {
        for e in [
            Error::BadRequest("bad".into()),
            Error::NotFound("no such toy".into()),
            Error::Conflict("no stock".into()),
        ] {
            let mut f = Failover::new(false);
            assert_eq!(
                f.step(Err(e.clone()), CHOSEN, 0),
                Next::Answer(Err(e.clone()))
            );
            // A 409 after an attempt that may have applied: the retry found the id not applied.
            let mut f = Failover::new(false);
            f.step(indeterminate(), CHOSEN, 0);
            assert_eq!(f.step(Err(e.clone()), CHOSEN, 1), Next::Answer(Err(e)));
        }
    }

    #[test]
    fn a_replica_following_another_choice_makes_the_front_end_choose_again() {
        for reported in [ballot(6, 2), ballot(5, 4), ballot(4, 3), ballot(0, 0)] {
            let mut f = Failover::new(false);
            assert_eq!(
                f.step(Err(Error::NotLeader(reported)), CHOSEN, 10),
                Next::ChooseAgain {
                    reported: Some(reported)
                },
                "{reported:?}"
            );
            assert!(f.fresh(), "a 503 changed nothing");
            assert!(!f.maybe_applied());
        }
    }

    #[test]
    fn the_chosen_replica_not_leading_yet_is_waited_for() {
        let mut f = Failover::new(false);
        let not_yet = || Err(Error::NotLeader(CHOSEN));
        assert_eq!(f.step(not_yet(), CHOSEN, 0), retry(5));
        assert_eq!(f.step(not_yet(), CHOSEN, 6), retry(10));
        assert!(f.fresh());
        assert_eq!(f.step(not_yet(), CHOSEN, 1000), retry(20));
        let last = f.step(not_yet(), CHOSEN, 1001);
        assert_eq!(status(&last), Some(503));
        // The public answer carries no ballot.
        assert!(matches!(last, Next::Answer(Err(Error::Unavailable(_)))));
    }

    #[test]
    fn no_quorum_is_retried_on_the_same_leader_with_a_growing_backoff() {
        let mut f = Failover::new(false);
        let waits: Vec<Next> = (0..8).map(|_| f.step(unavailable(), CHOSEN, 0)).collect();
        assert_eq!(
            waits,
            [5, 10, 20, 40, 80, 100, 100, 100].map(retry).to_vec()
        );
        assert_eq!(f.attempts(), 8);
        assert!(f.fresh());
    }

    #[test]
    fn no_quorum_for_the_whole_short_budget_is_a_503() {
        let mut f = Failover::new(false);
        assert_eq!(f.step(unavailable(), CHOSEN, NO_QUORUM_BUDGET_MS), retry(5));
        assert_eq!(
            f.step(unavailable(), CHOSEN, NO_QUORUM_BUDGET_MS + 1),
            Next::Answer(Err(Error::Unavailable("no quorum".into())))
        );
        assert_eq!(f.elapsed_ms(), NO_QUORUM_BUDGET_MS + 1);
    }

    #[test]
    fn a_503_to_an_attempt_that_was_not_fresh_is_final() {
        // The leader refused it only after the catalog refused the id for good.
        for earlier in [
            transport(),
            indeterminate(),
            Err(Error::Internal("x".into())),
        ] {
            let mut f = Failover::new(false);
            f.step(earlier, CHOSEN, 0);
            assert!(f.maybe_applied());
            assert_eq!(
                f.step(unavailable(), CHOSEN, 1),
                Next::Answer(Err(Error::Unavailable("no quorum".into())))
            );
        }
        let mut f = Failover::new(true);
        assert_eq!(
            f.step(unavailable(), CHOSEN, 0),
            Next::Answer(Err(Error::Unavailable("no quorum".into())))
        );
    }

    #[test]
    fn giving_up_on_a_purchase_that_is_not_fresh_is_a_504() {
        for earlier in [transport(), indeterminate()] {
            let mut f = Failover::new(false);
            f.step(earlier, CHOSEN, 0);
            let last = f.step(Err(Error::NotLeader(CHOSEN)), CHOSEN, 1001);
            let Next::Answer(Err(Error::Indeterminate(m))) = last else {
                panic!("{last:?}")
            };
            assert!(m.contains("; an earlier attempt may have"), "{m}");
        }
        // A client's own id may have reached a leader in an earlier request.
        let mut f = Failover::new(true);
        let last = f.step(Err(Error::NotLeader(CHOSEN)), CHOSEN, 1001);
        assert_eq!(status(&last), Some(504));
    }

    #[test]
    fn a_refused_connection_sent_nothing() {
        let mut f = Failover::new(false);
        assert_eq!(f.step(unreachable(), CHOSEN, 0), choose_again());
        assert!(f.fresh());
        assert!(!f.maybe_applied());
        assert_eq!(f.step(unreachable(), CHOSEN, 6001), {
            Next::Answer(Err(Error::Unavailable("connection refused".into())))
        });
    }

    #[test]
    fn a_lost_answer_may_have_applied_and_the_leader_may_be_dead() {
        for e in [
            Error::Transport("reset".into()),
            Error::Internal("500".into()),
            Error::Forbidden("403".into()),
            Error::Stale(ballot(9, 1)),
        ] {
            let mut f = Failover::new(false);
            assert_eq!(f.step(Err(e.clone()), CHOSEN, 0), choose_again(), "{e:?}");
            assert!(f.maybe_applied());
            assert!(!f.fresh());
        }
    }

    #[test]
    fn a_504_may_have_applied_and_is_retried_on_the_same_leader() {
        let mut f = Failover::new(false);
        assert_eq!(f.step(indeterminate(), CHOSEN, 0), retry(5));
        assert!(f.maybe_applied());
        assert!(!f.fresh());
        assert_eq!(f.step(indeterminate(), CHOSEN, 2000), retry(10));
    }

    #[test]
    fn once_not_fresh_never_fresh_again() {
        let mut f = Failover::new(false);
        f.step(transport(), CHOSEN, 0);
        f.step(unreachable(), CHOSEN, 1);
        f.step(unavailable(), CHOSEN, 2);
        f.step(Err(Error::NotLeader(ballot(7, 1))), CHOSEN, 3);
        assert!(!f.fresh());
        assert!(f.maybe_applied());
        // A client's id stays not fresh whatever happens.
        let mut f = Failover::new(true);
        f.step(unreachable(), CHOSEN, 0);
        assert!(!f.fresh());
        assert!(!f.maybe_applied());
    }

    #[test]
    fn the_failover_budget_ends_the_purchase() {
        // Just inside the budget every kind goes on.
        for outcome in [transport(), unreachable(), indeterminate()] {
            let mut f = Failover::new(false);
            assert_eq!(status(&f.step(outcome, CHOSEN, FAILOVER_BUDGET_MS)), None);
        }
        let reported = Err(Error::NotLeader(ballot(6, 2)));
        let mut f = Failover::new(false);
        assert_eq!(status(&f.step(reported.clone(), CHOSEN, 6000)), None);
        // Past it: 503 only when nothing may have applied.
        assert_eq!(status(&f.step(reported, CHOSEN, 6001)), Some(503));
        for (outcome, code) in [
            (transport(), 504),
            (unreachable(), 503),
            (indeterminate(), 504),
        ] {
            let mut f = Failover::new(false);
            assert_eq!(
                status(&f.step(outcome.clone(), CHOSEN, FAILOVER_BUDGET_MS + 1)),
                Some(code),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn a_timed_out_purchase_says_it_may_still_complete() {
        let mut f = Failover::new(false);
        let last = f.step(transport(), CHOSEN, 7000);
        assert_eq!(
            last,
            Next::Answer(Err(Error::Indeterminate(
                "the order replicas did not confirm the purchase in time (timeout); it may still complete"
                    .into()
            )))
        );
    }

    #[test]
    fn giving_up_without_a_leader_keeps_the_503_504_rule() {
        let no_leader = || Error::Unavailable("no order replica answers".into());
        let f = Failover::new(false);
        assert_eq!(
            f.give_up(no_leader()),
            Err(Error::Unavailable("no order replica answers".into()))
        );
        assert_eq!(
            status(&Next::Answer(Failover::new(true).give_up(no_leader()))),
            Some(504)
        );
        let mut f = Failover::new(false);
        f.step(transport(), CHOSEN, 0);
        assert_eq!(status(&Next::Answer(f.give_up(no_leader()))), Some(504));
        // A ballot never reaches the client.
        let f = Failover::new(false);
        assert_eq!(
            f.give_up(Error::NotLeader(ballot(2, 1))),
            Err(Error::Unavailable(Error::NotLeader(ballot(2, 1)).message()))
        );
    }
}
