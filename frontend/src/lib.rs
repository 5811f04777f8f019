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
//! The front-end pings the order replicas from the highest id down and chooses the first that answers
//! as ready, in a new epoch ([`leader::choose`]), then tells every replica. A monitor thread pings the
//! leader every 200 ms; after two misses, or when a call to the leader fails, it chooses again. A
//! purchase that failed on the old leader is retried on the new one with the same request id, which
//! the order service and the catalog apply at most once, so the client sees a delay, not an error.
//!
//! # Internal endpoints
//! Served only on `--internal-listen` and, with `--secret`, only to callers that carry it:
//! `POST /internal/invalidate`, `GET /internal/status` (leader and cache counters), `GET /internal/health`.

pub mod cache;
pub mod leader;
pub mod server;

pub use server::{serve, Config, FrontendStatus, Running};
