//! The front-end: the only public service of the toy store.
//!
//! # Public API (see the contract)
//! `GET /products/<name>`, `POST /orders`, `GET /orders/<number>`, with JSON errors for everything else.
//!
//! # Cache
//! Product replies are cached in memory ([`cache::Cache`]) until the catalog pushes an invalidation to
//! the internal address (`POST /internal/invalidate`). A reply fetched before an invalidation is never
//! stored after it. A purchase also drops its product's entry before it is answered, so a client
//! always sees its own purchase in its next query.
//!
//! # Leader selection
//! The front-end pings every order replica at once and chooses, from the highest id down, the first
//! that is ready and can serve (reaches a quorum and the catalog), in a new epoch
//! ([`leader::choose`]), then tells every replica. A sitting leader that can serve is kept: a choice
//! holds until its leader fails. A replica that promised a newer choice refuses the notice with its
//! promise (`Error::Stale`), and the front-end chooses again above that epoch. A monitor thread asks
//! the leader's health every 100 ms and chooses again when [`leader::Watch`] says it failed: two
//! missed pings, no longer leading its ballot, or unable to serve for 200 ms; a failed call to the
//! leader makes it choose again too. The numbers and their reasons are in [`shared::timing`].
//!
//! # Failover of a purchase
//! A purchase that failed on a leader is retried, with the same request id, which the order service
//! and the catalog apply at most once, so the client sees a delay, not an error. What follows each
//! attempt is a pure decision ([`failover::Failover`]), which the server's loop carries out:
//! - 200, 400, 404, 409 are final.
//! - A replica that answers it is not the leader names the choice it follows (`Error::NotLeader`): a
//!   choice other than the one the attempt went to makes the front-end choose again at once (above a
//!   newer epoch it reports), with no health check first. A plain 503 (no quorum, catalog down), or the
//!   chosen replica not leading yet, is retried on it with a backoff from 5 to 100 ms for up to 1 s.
//! - A refused connection sent nothing: choose again. A lost answer (reset, timeout) may have taken
//!   effect: choose again. A 504 may have taken effect: retry on the same leader after a backoff.
//! - The answer is 503 ("nothing was changed") only when no attempt may have taken effect; once one
//!   may have, it is the order number or 504. A purchase is answered within about 6 s.
//!
//! Each attempt carries `fresh`: true only when the front-end made the request id and every earlier
//! attempt was refused a connection or answered 503, so no leader can have seen the id. Only for a
//! fresh purchase may a leader that cannot reach the catalog answer 503 rather than 504. A client's
//! own request id is never fresh: the client may have sent it before.
//!
//! # Internal endpoints
//! Served only on `--internal-listen` and, with `--secret`, only to callers that carry it:
//! `POST /internal/invalidate`, `GET /internal/status` (leader and cache counters), `GET /internal/health`,
//! and `GET /metrics` ([`shared::metrics`] and the front-end's own, [`metrics`]).

pub mod cache;
pub mod failover;
pub mod leader;
pub mod metrics;
pub mod server;

pub use server::{serve, Config, FrontendStatus, Running};
