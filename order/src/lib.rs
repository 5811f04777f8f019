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
//! # Messages
//!
//! | from → to | request | what the receiver does before it answers |
//! |---|---|---|
//! | front-end → every replica | `POST /internal/leader` `{ballot}` | refuses an older epoch (409); saves its promise to follow `ballot` to `replica-<id>.json`; the named replica becomes candidate and starts taking over |
//! | candidate → peers | `POST /internal/prepare` `ballot` | same promise, saved; answers its log ballot, log length and commit point |
//! | candidate → most up-to-date peer | `GET /internal/log?from=&limit=` | answers a chunk of its log (also used by a restarted replica to catch up) |
//! | leader → each follower | `POST /internal/append` `{ballot, start, prev_epoch, entries, commit, view_len}` | checks that its entry `start-1` has `prev_epoch`; stores the entries (cutting a conflicting tail), **syncs them to disk**, then answers |
//! | front-end → leader | `POST /orders` `{request_id, name, quantity}` | the purchase (below) |
//! | front-end → leader (or any replica) | `GET /orders/<n>` | answers order `n` once it is known committed |
//! | leader → catalog | `POST /internal/take`, `GET /internal/takes?after=` | take stock once per request id; list takes to roll forward |
//! | anyone → replica | `GET /internal/health` | its role, readiness, ballots, log length, commit point |
//!
//! All of these are internal: they need the shared secret when the store runs with `--secret`.
//!
//! # A purchase
//!
//! 1. The leader looks the request id up in its log: a repeated id (a retry after a failover, or a
//!    client's retry) gets the first order's number, never a second order.
//! 2. It refuses with 503, having changed nothing, if fewer followers than a quorum answered in the
//!    last second.
//! 3. It takes the stock at the catalog with the request id. The catalog applies a take once per id
//!    and syncs it to its journal before answering.
//! 4. It appends the order (number = log length, epoch = its epoch) to its log and file, sends it to
//!    the followers, and answers once a quorum (itself included) has it **on disk**.
//!
//! If the leader dies between 3 and 4, the front-end retries with the same request id on the next
//! leader, whose take is a repeat (nothing taken twice) and which writes the order. If nobody retries,
//! the next leader's reconciler finds the take at the catalog without an order and writes the order
//! itself (roll forward). Stock taken without an order thus always ends as an order. A 503 is given
//! only before the take: it changed nothing. When the outcome is unknown (the quorum vanished after
//! the order was written) the answer is 504: the order is kept and completes when a follower returns.
//!
//! # Taking over
//!
//! A replica named leader becomes a **candidate**: it sends `prepare` to its peers until a quorum
//! (itself included) has promised its ballot. Among those, the most up-to-date log is the one with the
//! highest *log ballot* and then the greatest length; the candidate copies what it lacks from that
//! replica ("fetches every order it lacks before it takes a new one"), sets its own log ballot to its
//! ballot, and leads. The length of its log at that moment is the *view length*. It then sends each
//! follower the log from where they agree: a follower that holds all of the view length joins the
//! ballot (its log ballot becomes the leader's) and drops any tail that an older leader wrote and this
//! one did not.
//!
//! # Why no acknowledged order is lost
//!
//! - A replica's log ballot `B` means: its log is a prefix of the log of `B`'s leader, at least as long
//!   as that leader's view length. It is saved only after the orders it describes are on disk.
//! - An order acknowledged by the leader of `B` is on disk at a quorum of replicas whose log ballot is
//!   `B` and whose logs are longer than its number.
//! - A later leader collects a quorum of promises; two quorums share a replica, so one of those it hears
//!   from holds the order with log ballot `B` or has a newer log ballot. A newer log ballot `B'` means a
//!   copy of the log of `B'`'s leader, which by the same argument held every order acknowledged before
//!   `B'`. The log chosen (highest log ballot, then longest) therefore holds the order, and the new
//!   leader copies it before it writes anything.
//! - Promises are saved to disk before they are answered, so a replica that restarts still refuses the
//!   old leader, and one epoch never has two leaders (a replica promises at most one leader per epoch).
//! - A leader that was paused and resumes sends appends with its old ballot; every replica that promised
//!   the newer one refuses them, it cannot reach a quorum, and it steps down on the first refusal. The
//!   orders it wrote alone conflict with the new leader's log and are cut when it follows again.
//!
//! # On disk before each answer
//!
//! | answer | on disk first |
//! |---|---|
//! | leader notice, prepare | the promise (`replica-<id>.json`, written atomically and synced) |
//! | append | the orders (`orders-<id>.csv`, appended and synced; concurrent appends share one sync); a new log ballot after them |
//! | purchase 200 | the take in the catalog's journal; the order on a quorum's disks |
//!
//! The commit point in `replica-<id>.json` is saved lazily: a stale one only means more of the log is
//! compared on a resync.
//!
//! # Files
//!
//! - `orders-<id>.csv`: `number,name,quantity,request_id,epoch`, oldest first. A torn last line is cut
//!   on start (and fetched again from a peer); a bad line elsewhere stops the start with its line number.
//! - `replica-<id>.json`: `promised`, `log_ballot`, `commit`.
//!
//! # Recovery
//!
//! A replica that starts reads its file, asks its peers for their status, and copies the missing
//! orders from the most up-to-date one in batches of 4,096 orders before it reports ready
//! ("ready: resynced n orders from replica k"). A replica that started while the others were down
//! serves after a few seconds with what it has; the leader brings it up to date.
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
//! HTTP workers; at start a recovery thread; when chosen, a takeover thread; when leading, one
//! replicator thread per follower (batches sent one at a time, heartbeats every 100 ms) and a
//! reconciler thread (once a second); a thread that saves the commit point.

pub mod core;
pub mod server;
pub mod store;

pub use server::{serve, Config, Replica, Running};
