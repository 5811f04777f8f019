//! The catalog service: products, their prices and stock.
//!
//! # What it does
//! - Answers product queries (`GET /products/<name>`, `GET /products`) for the front-end, with the
//!   stock as of the journal rows on disk: a query never shows a take that a crash could still undo.
//! - Takes stock for a purchase (`POST /internal/take`, body [`TakeRequest`]: `request_id`, `name`,
//!   `quantity`, `epoch`), checking and decrementing under one lock so concurrent buyers never
//!   oversell. Each request id is decided once, for good: taken (a repeat, from the same leader or a
//!   new one, gets the first take's [`TakeReply`] back with `repeated: true`), or refused (for want
//!   of stock, or by a cancel; every later take of that id gets the same 409). A 400 (malformed), a
//!   404 (unknown toy) or a stale epoch (below) decides nothing.
//! - Cancels a request id (`POST /internal/cancel`, body [`CancelRequest`] → [`CancelReply`]): an
//!   order leader asks this before it answers a purchase "nothing was changed". An id that was taken
//!   answers `{"taken": <seq>}` and the take stands; any other id is refused for good and answers
//!   `{"taken": null}`, so a take of it that is still on its way (a delayed or retried request)
//!   never succeeds later.
//! - Lists takes (`GET /internal/takes?after=SEQ&epoch=E`, `epoch` optional, default 0) so the order
//!   leader can roll forward a take whose order was never written (its leader died between the two
//!   steps). Only takes whose row is on disk are listed: a take listed and rolled forward is never
//!   lost with the catalog.
//! - Every `--restock-interval` seconds sets every toy that is out of stock back to
//!   [`RESTOCK_QUANTITY`].
//! - After every take and restock it pushes an invalidation for that toy to the front-end's internal
//!   address, from a sender thread, so a slow front-end never slows a purchase.
//!
//! # The fence
//! The catalog keeps the newest order-leader epoch it has seen in a take, a cancel or a listing: the
//! fence. A take of a new request id with an older epoch is turned away (409 with the fence as
//! `promised`, [`shared::Error::Stale`]): a leader that was paused, or cut off, and comes back after
//! a new leader took over cannot take stock that nobody will write an order for. The id is not
//! refused: the newer leader, retrying the same purchase under the same id, may still take it, so
//! the old leader answers 504 and leaves the outcome to it. (Refusing the id for good, as journals
//! written before kept it, made such a purchase fail with 409 when the old leader's retried take
//! reached the catalog first after a partition healed.) Every raise of the fence is in the journal
//! (a row's `epoch`), so a restart keeps it. A repeated id is answered as decided whatever its epoch.
//!
//! # What is on disk before each answer
//! | answer | on disk first |
//! |---|---|
//! | take 200 | its `take` row (a repeat: the first take's row) |
//! | take 409, refused | its `refuse` row (a repeat: the first refusal's row) |
//! | take 409, id used for another purchase or a stale epoch; 400; 404 | nothing (nothing was decided) |
//! | cancel | the `take` or `refuse` row of the id |
//! | listing | every row listed; a `fence` row when the listing raised the fence |
//! | any of these from a newer epoch than the fence | also the `fence` row that raises it, unless the answer's own row carries the epoch |
//! | restock (internal) | its `restock` rows, before the invalidations are pushed |
//!
//! # Files
//! - `catalog.csv` (`name,price,quantity`): the stock as of the journal rows on disk (never stock
//!   taken by a row still on its way to the disk), rewritten atomically shortly after every change
//!   and at every start and clean stop. Edit it by hand while the catalog is stopped.
//! - `catalog-journal.csv` (`seq,kind,request_id,name,quantity,stock_after,unix_ms,epoch`): every
//!   decision, appended and synced to disk before the answer that depends on it. `kind` is
//!   - `take`: `quantity` of `name` taken for `request_id` by a leader of `epoch`;
//!   - `refuse`: `request_id` refused for good; with a `name`, a take of `quantity` that found
//!     `stock_after` left (in older journals also one whose `epoch` was below the fence); without
//!     one, a cancel;
//!   - `restock`: `name` set back to 100 (`quantity` units added);
//!   - `checkpoint`: `catalog.csv` holds every row before it (written at start and clean stop);
//!   - `fence`: the fence raised to `epoch` by a listing or a repeated request.
//!
//!   `stock_after` is the toy's stock after the row (a refusal leaves it as it was); `epoch` is the
//!   request's leader epoch, or the fence when the row was written. A crash loses no answer: on
//!   start the take and restock rows after the last checkpoint are replayed onto `catalog.csv` (each
//!   holds the stock after it, so replaying twice is harmless), and every request id's decision and
//!   the fence are rebuilt from all rows. A journal written before the `epoch` column existed is
//!   read (as epoch 0) and rewritten with it. The journal is also the history a checker reads:
//!   stock = 100 + restocked units - taken units, counting `take` and `restock` rows only.
//!
//! # Structure
//! [`core`] holds every decision as a pure state machine (no locks, files, threads or clocks); its
//! operations return the rows to append and the seq that must be on disk before the answer.
//! [`files`] is the I/O around it: one lock, the journal, the snapshot (named for what it holds:
//! "store" is the whole toy store). [`server`] routes HTTP. [`metrics`] is what its `/metrics`
//! shows besides what every service shows. The file formats, the default toys and
//! the journal's row are defined in [`shared::files`], where tests and tools read them too.
//!
//! # Threads
//! A pool of HTTP workers ([`shared::http::Server`]), the restock thread, the invalidation sender, and
//! the snapshot writer. Writes of concurrent requests share one `fdatasync` ([`shared::durable`]).
//!
//! [`TakeRequest`]: shared::protocol::TakeRequest
//! [`TakeReply`]: shared::protocol::TakeReply
//! [`CancelRequest`]: shared::protocol::CancelRequest
//! [`CancelReply`]: shared::protocol::CancelReply

pub mod core;
pub mod files;
pub mod metrics;
pub mod server;

pub use crate::core::RESTOCK_QUANTITY;
pub use files::{Catalog, DEFAULT_TOYS};
pub use server::{serve, Config, Running};
