//! A seeded fault run with a checked history (issue #5).
//!
//! [`run`] starts the real store ([`Cluster`](crate::Cluster)) with a short restock interval, runs client threads
//! that query and buy through the public API, and from one seed injects faults: SIGKILL of an order
//! replica (the leader half the time) and its restart, a torn half line appended to a killed
//! replica's order file (or to the killed catalog's journal) before it restarts, SIGSTOP of the
//! leader for longer than the front-end's failure timeout, SIGKILL and restart of the catalog and of
//! the front-end. At most two faults are active at a time, two only now and then (so a quorum mostly
//! exists, and sometimes does not). With [`Options::netns`] every service runs on a host of its own
//! ([`crate::netns`]) and the network is cut too: the leader from both followers or from one, the
//! front-end or the catalog from the leader, any host unplugged, each healed after 1 to 4 s, one at a
//! time. The summary gives, per fault kind, the longest stretch without a successful purchase that
//! began during a fault of that kind.
//! At the end it heals everything, waits until the store is quiet, and checks the recorded history
//! against what the store's files and answers say ([`check`]).
//!
//! # Replaying a seed
//!
//! The seed fixes the fault plan ([`plan`]: which fault, when, for how long, torn line or not) and
//! each client's random choices. It does not fix the interleaving of threads and processes, nor
//! which replica leads when a fault resolves "the leader", so a replay reruns the same schedule, not
//! the same execution: a rare violation may need a few runs of its seed to show again.
//!
//! # The history
//!
//! Every request a client sends is one [`Entry`]: its invocation (time since the start, and the wall
//! clock in ms), its completion, and its [`Outcome`]:
//!
//! | answer | outcome | why |
//! |---|---|---|
//! | 200 with a `data` body | ok | the store's answer |
//! | any 4xx | fail | refused before anything changed (400, 404, 409; 408 and 413 from the server) |
//! | 503 | fail | the contract: "cannot serve this now, and nothing was changed" |
//! | connection refused, connect timeout | fail | nothing was sent |
//! | 504, any other 5xx, a 200 without `data` | unknown | the contract: the outcome is unknown |
//! | timeout, reset, broken body after sending | unknown | the request may have been applied |
//!
//! A purchase carries its own request id (`s<seed>-c<client>-<k>`). A client retries a purchase whose
//! outcome is unknown with the same id (each attempt is its own entry), now and then sends a new
//! purchase twice at once, and now and then sends an acknowledged purchase again with its id: every
//! 200 for one id must carry the same order number.
//!
//! # The checks, and why each is sound
//!
//! After the heal the store is quiet: every process answers, a leader leads, every replica is ready,
//! and [`Cluster::check_consistent`](crate::Cluster::check_consistent) passes (roll-forward of orphan takes takes about 3 s). Then:
//!
//! 1. **Identical replicas**: every `orders-<id>.csv` is the same text, order `i` has number `i`, and
//!    no request id appears twice. The replicas promise this once in sync.
//! 2. **Acknowledged purchases are kept**: for every purchase answered 200 with number `n`, order `n`
//!    in every replica's file has its request id, toy and quantity, and `GET /orders/n` answers the
//!    same toy and quantity. Two answers never give one number to two request ids, nor two numbers to
//!    one request id. This is the contract's "never lost, never applied twice".
//! 3. **Reads of orders**: an order query answered 200 during the run matches the final order of that
//!    number (a committed order never changes); a 404 for a number whose purchase was acknowledged
//!    before the query was sent is a lost order.
//! 4. **Stock adds up**: the catalog journal's `take` and `restock` rows, per toy in `seq` order, form
//!    a chain from 100 (`stock_after` = previous − taken, or previous + restocked; `refuse`,
//!    `checkpoint` and `fence` rows change no stock); the catalog's stock is the chain's end and
//!    equals 100 + restocked − ordered (orders from the final log). Every take has exactly one order
//!    with the same request id, toy and quantity, and every order one take; no request id is both
//!    taken and refused.
//! 5. **Failures changed nothing**: a request id whose every attempt was answered "fail" has no order
//!    and no take. (One unknown attempt lifts this: its take may be rolled forward, and a later retry
//!    can then honestly get a 503 from a leader that has not rolled it forward yet.)
//! 6. **Reads of stock are not older than what was acknowledged**: a product query answered `q`,
//!    invoked after a purchase of that toy was acknowledged, must show a stock from the journal row of
//!    that purchase's take or a later row of the toy: `q` must be the `stock_after` of some row with
//!    `seq` at or after it (100 counts as the state before every row). Sound because the take is on
//!    disk in the journal before the purchase is answered, the catalog's stock only moves through
//!    journal rows (a restart replays them), and the front-end drops the toy's cache entry before it
//!    answers the purchase and never stores a reply fetched before a drop; a restarted front-end starts
//!    with an empty cache. Stock values repeat, so the check asks only that *some* row at or after the
//!    bound has the value: it can miss a stale read, never invent one. A value that no row of the toy
//!    ever left is flagged too: the store showed a stock that never was (say a take read before it
//!    was on disk and then lost with the catalog).
//! 7. **Bounded staleness**: the same rule with a second bound: a query invoked (wall clock) more than
//!    [`STALE_BOUND_MS`] after a row took effect must show that row or a later one. A row takes effect
//!    at its `unix_ms`, except a row written less than [`STALE_BOUND_MS`] before a SIGKILL of the
//!    catalog, which takes effect when the catalog is started again (it may have been written but not
//!    pushed, and is replayed at the start). Sound on one machine (one wall clock) as long as the
//!    catalog pushes each invalidation within that bound while both processes run; neither the
//!    catalog nor the front-end is ever paused here.
//!
//! Besides: a service process that exits by itself (a panic or an exit on an I/O error) is a
//! violation, and so is a store that does not become quiet within the timeout.
//!
//! # Files
//!
//! `plan.rs` the fault plan; `history.rs` the requests and their outcomes; `check.rs` the final
//! state and the checks above, one function per number; `client.rs` the client threads;
//! `inject.rs` the injector that carries out the plan; `run.rs` the run, its options and its summary.

mod check;
mod client;
mod history;
mod inject;
mod plan;
mod run;

pub use check::{check, FinalState, Findings, INITIAL_STOCK, STALE_BOUND_MS};
pub use history::{classify, longest_stall, Entry, Op, OpKind, Outcome, Reply};
pub use plan::{plan, FaultKind, PlannedFault};
pub use run::{run, Options, Stall, Summary};
