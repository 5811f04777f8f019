//! The catalog service: products, their prices and stock.
//!
//! # What it does
//! - Answers product queries (`GET /products/<name>`) for the front-end.
//! - Takes stock for a purchase (`POST /internal/take`), atomically checking and decrementing under one
//!   lock so concurrent buyers never oversell. A take carries the purchase's request id and is applied
//!   at most once per id: a leader that retries after a crash, or a new leader that retries the same
//!   purchase, gets the first take's answer back instead of a second take.
//! - Lists recent takes (`GET /internal/takes?after=SEQ`) so the order leader can roll forward a take
//!   whose order was never written (its leader died between the two steps).
//! - Every `--restock-interval` seconds sets every toy that is out of stock back to
//!   [`RESTOCK_QUANTITY`].
//! - After every take and restock it pushes an invalidation for that toy to the front-end's internal
//!   address, from a sender thread, so a slow front-end never slows a purchase.
//!
//! # Files
//! - `catalog.csv` (`name,price,quantity`): the stock, rewritten atomically shortly after every change
//!   and at every start and clean stop. Edit it by hand while the catalog is stopped.
//! - `catalog-journal.csv` (`seq,kind,request_id,name,quantity,stock_after,unix_ms`): every take and
//!   restock, appended and synced to disk before the catalog answers. `kind` is `take`, `restock` or
//!   `checkpoint`. A crash loses no answered take: on start the rows after the last checkpoint are
//!   replayed onto `catalog.csv` (each row holds the stock after it, so replaying twice is harmless),
//!   and the request ids of all takes are loaded so a retried take is still recognised.
//!   It is also the history a checker reads: stock = 100 + restocked units - taken units.
//!
//! # Threads
//! A pool of HTTP workers ([`shared::http::Server`]), the restock thread, the invalidation sender, and
//! the snapshot writer. Writes of concurrent takes share one `fdatasync` ([`shared::durable`]).

pub mod server;
pub mod store;

pub use server::{serve, Config, Running};
pub use store::{Catalog, DEFAULT_TOYS, RESTOCK_QUANTITY};
