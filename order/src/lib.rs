//! The order service: one replica of the store's replicated order log.
//!
//! Three replicas (ids 1, 2, 3) each keep every order in `orders-<id>.csv`. One of them, chosen by
//! the front-end, is the **leader**: it gives order numbers, takes the stock at the catalog and sends
//! every new order to the **followers**. An order is answered only once a quorum (a majority by
//! default) holds it on disk, so the crash of any one replica, the leader included, loses no
//! acknowledged order, and neither does a later crash of a second one once the first is back.
//!
//! The protocol is Viewstamped Replication's, with the front-end as the one that names the leader:
//! each leader choice is a [`Ballot`](shared::protocol::Ballot) (an epoch that grows, and the leader's
//! id), a new leader first collects the logs of a quorum, and replicas refuse every message of an
//! older epoch.
//!
//! # Where the decisions are
//!
//! Every decision is in [`core`]: a pure state machine, `step(now, input) -> effects`, with no
//! locks, threads, clocks, files or sockets. [`server`] carries its effects out and decides nothing.
//! The same core runs in `tests/sim.rs`, a deterministic simulation that drives three of them (with
//! a model of the catalog and a front-end) through thousands of seeded schedules of crashes that lose
//! unsynced writes, pauses, partitions and lost, duplicated and reordered messages, and checks every
//! promise below over the whole history; and in `tests/scenarios/*.txt`, scripts that print every
//! replica's state after each step.
//!
//! # Messages
//!
//! Replicas talk in one-way messages ([`ReplicaMsg`](shared::protocol::ReplicaMsg)), posted in
//! batches to a peer's `POST /internal/msg`, which steps them. An answer to a message is another
//! message, so the core never waits on a connection, and a lost message is only lost: timers send
//! again. As a shortcut the receiver puts its answers to the sender in the reply to the batch, once
//! its writes of the batch are on disk (at most [`PEER_ANSWER_WAIT_MS`](shared::timing::PEER_ANSWER_WAIT_MS)):
//! an append's ack then costs no request of its own. To the core it is the same message.
//!
//! | from → to | message or request | what the receiver does |
//! |---|---|---|
//! | front-end → every replica | `POST /internal/leader` `{ballot}` | refuses an older epoch (409 with its promise); saves its promise, then answers its status; the named replica becomes candidate |
//! | candidate → peers | `prepare {ballot}` | same promise, saved; then `prepare_ok` with its log ballot, length and commit point |
//! | candidate or starting replica → peer | `log_request {copy, from, limit}` | answers a `log_chunk` of its log, with the epoch of the entry before it |
//! | starting replica → peers | `probe` | answers `probe_ok` with its status |
//! | leader → follower | `append {ballot, start, prev_epoch, entries, commit, view_len}` | checks that its entry `start-1` has `prev_epoch` (else answers a mismatch); stores the entries, cutting a conflicting tail; answers `append_ok` once they are on its disk |
//! | any → sender of an older ballot | `refuse {ballot, promised}` | a leader or candidate of that ballot steps down |
//! | front-end → leader | `POST /orders` `{request_id, name, quantity, fresh}` | the purchase (below) |
//! | front-end → any replica | `GET /orders/<n>` | order `n` once it is known committed; the leader waits a moment for one it holds |
//! | leader → catalog | `POST /internal/take`, `POST /internal/cancel`, `GET /internal/takes?after=&epoch=` | take stock once per request id; refuse an id for good unless taken; list takes to roll forward |
//! | anyone → replica | `GET /internal/health` | its role, readiness, ballots, log length, commit point |
//!
//! All of these are internal: they need the shared secret when the store runs with `--secret`.
//! Refusals carry their facts as fields, not prose: a stale message gets `Stale(promised)` (409) and a
//! purchase sent to a replica that does not lead gets `NotLeader(promised)` (503), both with the
//! ballot in the error body's `promised` field.
//!
//! # A purchase
//!
//! 1. The leader looks the request id up: a repeated id gets the first order's number (once it is
//!    committed), never a second order; one under way here waits for the same outcome.
//! 2. It takes the stock at the catalog with the request id and its epoch. The catalog decides each
//!    id once, for good: taken, or refused (no stock, an epoch older than the newest it saw, or a
//!    cancel), and it syncs that decision to its journal before answering. A refusal goes back as
//!    409 and stays one: no delayed or retried take of that id can succeed later.
//! 3. It appends the order (number = log length, epoch = its epoch) to its log, sends it to the
//!    followers, and answers once a quorum (itself included) has it **on disk**.
//!
//! **Can it serve?** Every replica pings its peers and the catalog every heartbeat; its health
//! (`GET /internal/health`) says whether it heard from a quorum (a leader: whether a quorum
//! acknowledged its appends) and whether the catalog answered, within [`core::SERVE_WINDOW`]. The
//! front-end replaces a leader that says it cannot serve (see [`shared::timing`]).
//!
//! **503 means nothing changed, forever.** A leader that lacks a quorum (fewer followers than a
//! quorum acknowledged within [`core::SERVE_WINDOW`]) or cannot reach the catalog answers 503 at once
//! only for a *fresh* purchase (the front-end made its id and no earlier attempt can have reached a
//! leader). For any other it first asks the catalog to refuse the id for good (`cancel`): if the
//! catalog confirms, the answer is 503; if the id had been taken (an earlier attempt, maybe through
//! another leader), the answer is 504 and the take is rolled forward into an order once a quorum is
//! back; if the catalog cannot be asked, 504.
//!
//! **504 means the outcome is unknown**: the take may have happened, or the order is stored but not
//! yet on a quorum. It completes (retried under the same id, or rolled forward); retrying with the
//! same request id tells its number.
//!
//! **Roll forward.** The leader lists the catalog's takes about once a second (a full page: at
//! once) and writes an order for every take that has none and no purchase under way here: its leader
//! died between the take and the order and nobody retried it. Stock taken always ends as an order.
//!
//! # Taking over
//!
//! A replica named leader becomes a **candidate**: it sends `prepare` to its peers until a quorum
//! (itself included) has promised its ballot. Among those, the most up-to-date log is the one with the
//! highest *log ballot* and then the greatest length; the candidate copies what it lacks from that
//! replica, sets its own log ballot to its ballot, and leads. The length of its log at that moment is
//! the *view length*. It then sends each follower the log from where they agree: a follower that
//! holds all of the view length joins the ballot (its log ballot becomes the leader's) and drops any
//! tail that an older leader wrote and this one did not. A copy is given up when the copier's promise
//! changes, and a chunk must continue the copy (same source log ballot, same epoch at the entry
//! before it); a late chunk of a copy given up is ignored.
//!
//! # Why no acknowledged order is lost
//!
//! - A replica's log ballot `B` means: its log is a prefix of the log of `B`'s leader, at least as long
//!   as that leader's view length. It is saved only after the orders it describes are on disk, and a
//!   replica's promise is never below its log ballot.
//! - An order acknowledged by the leader of `B` is on disk at a quorum of replicas whose log ballot is
//!   `B` (the leader's own vote counts only once its log ballot is on disk) and whose logs are longer
//!   than its number. The simulation checks exactly this at every 200.
//! - A later leader collects a quorum of promises; two quorums share a replica, so one of those it hears
//!   from holds the order with log ballot `B` or has a newer log ballot. A newer log ballot `B'` means a
//!   copy of the log of `B'`'s leader, which by the same argument held every order acknowledged before
//!   `B'`. The log chosen (highest log ballot, then longest) therefore holds the order, and the new
//!   leader copies it before it writes anything.
//! - Promises are saved to disk before they are answered, so a replica that restarts still refuses the
//!   old leader, and one epoch never has two leaders (a replica promises at most one leader per epoch).
//! - A leader that was paused and resumes sends appends with its old ballot; every replica that promised
//!   the newer one refuses them, it cannot reach a quorum, and it steps down on the first refusal. The
//!   orders it wrote alone conflict with the new leader's log and are cut when it follows again; their
//!   takes are rolled forward by the new leader.
//!
//! # On disk before each answer
//!
//! Writes carry a number and reach the disk in that order; the core holds every answer that promises
//! something about the disk until the write it depends on is reported done.
//!
//! | answer | on disk first |
//! |---|---|
//! | leader notice, `prepare_ok` | the promise (`replica-<id>.json`, written atomically and synced) |
//! | `append_ok` up to `n` | the orders up to `n` (`orders-<id>.csv`, appended and synced; concurrent appends share one sync), and the new log ballot after them |
//! | leading (its own vote) | its log ballot |
//! | purchase 200 | the take in the catalog's journal; the order on a quorum's disks |
//! | purchase 503 (not fresh) | the catalog's refusal of the id in its journal |
//!
//! The commit point in `replica-<id>.json` is saved lazily (about once a second): a stale one only
//! means more of the log is compared on a resync.
//!
//! # Files
//!
//! - `orders-<id>.csv`: `number,name,quantity,request_id,epoch`, oldest first. A torn last line is cut
//!   on start (and fetched again from a peer); a bad line elsewhere stops the start with its line number.
//! - `replica-<id>.json`: `promised`, `log_ballot`, `commit`.
//!
//! [`files`] reads and writes them (their names and the order file's header are in
//! [`shared::files`]). A replica that cannot write its log stops serving and reports the error
//! ([`Running::failure`]); its `main` exits with it.
//!
//! # Recovery
//!
//! A replica that starts reads its files, asks its peers for their status, and once a majority has
//! answered copies the missing orders from the most up-to-date one in batches of [`core::BATCH`]
//! before it serves ("ready: resynced n orders from replica k"). A replica that cannot reach a
//! majority serves after [`core::RECOVERY_WINDOW`] with what it has; the leader brings it up to date.
//!
//! # Quorum
//!
//! `--quorum` defaults to a majority. `--quorum 1` lets a leader alone take purchases when both
//! followers are down, at a price: an order only it holds is lost if it then crashes for good, and a
//! leader chosen while it is away may reuse its order numbers. Use it to watch that trade-off, not to
//! run a store.
//!
//! # Threads
//!
//! HTTP workers; a disk thread (writes in order, one sync for the appends between two other
//! writes); one sender thread per peer; a few catalog threads; a ticker that steps time every
//! [`server::TICK`]. One lock guards the core; effects are handed out under it, so they leave in the
//! order the core made them.
//!
//! # Metrics
//!
//! `GET /metrics` (internal, see [`shared::metrics`]) shows the replica's role, promise, log length
//! and commit point as the core last left them, and its fsyncs, group-commit sizes, resynced and
//! rolled-forward orders ([`metrics`]).

pub mod core;
pub mod files;
pub mod metrics;
pub mod server;

pub use server::{serve, Config, Replica, Running};
