//! Every JSON body that crosses a socket.
//!
//! Replies are wrapped as `{"data": …}` on success and `{"error": {"code", "message"}}` on failure,
//! on the public API and on internal calls alike ([`Envelope`]).
//!
//! Internal paths all start with `/internal/` and need the shared secret header [`SECRET_HEADER`]
//! when the services run with `--secret`.

use serde::{Deserialize, Serialize};

/// The id of an order replica (1, 2, 3 in the default deployment).
pub type ReplicaId = u32;
/// An order number: 0 for the first committed order, then one more per order.
pub type OrderNumber = u64;
/// A leader term. Grows with every leader choice; replicas refuse messages from older ones.
pub type Epoch = u64;

/// Header that carries the shared secret on internal calls.
pub const SECRET_HEADER: &str = "X-Toystore-Secret";

/// Longest request id a purchase may carry.
pub const MAX_REQUEST_ID: usize = 128;

/// True for a request id a purchase may carry: 1 to [`MAX_REQUEST_ID`] of `A-Za-z0-9-_.:`. The
/// front-end, the catalog and the order service all hold to it, so an id that one accepts (and, at
/// the catalog, takes stock for) is one every other accepts too.
pub fn valid_request_id(id: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.:".contains(c);
    !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.chars().all(allowed)
}

/// What a refused request id is told.
pub const REQUEST_ID_RULE: &str = "request_id must be 1 to 128 of [A-Za-z0-9-_.:]";

/// A product as the public API shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Product {
    /// Name, unique in the catalog (e.g. `Tux`).
    pub name: String,
    /// Price in dollars.
    pub price: f64,
    /// Units in stock.
    pub quantity: u64,
}

/// The answer to a purchase.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderCreated {
    /// The number of the new (or, for a repeated request id, the earlier) order.
    pub order_number: OrderNumber,
}

/// An order as `GET /orders/<number>` shows it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderInfo {
    /// Its number.
    pub number: OrderNumber,
    /// Product bought.
    pub name: String,
    /// Units bought.
    pub quantity: u64,
}

/// A purchase as the front-end passes it to the order leader, and the leader to the catalog.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Purchase {
    /// Idempotency key: the same id is applied at most once, wherever it is retried.
    pub request_id: String,
    /// Product to buy.
    pub name: String,
    /// Units to buy, at least 1.
    pub quantity: u64,
}

/// What the catalog answers to a take of stock.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TakeReply {
    /// The journal sequence number of the take (the same on a repeated request id).
    pub seq: u64,
    /// True when this request id had been applied before and nothing was taken now.
    pub repeated: bool,
}

/// A take of stock as the catalog's journal remembers it, listed for reconciliation.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TakeRecord {
    /// Journal sequence number.
    pub seq: u64,
    /// The purchase it belongs to.
    pub request_id: String,
    /// Product.
    pub name: String,
    /// Units taken.
    pub quantity: u64,
    /// How long ago (ms) the take happened, by the catalog's clock.
    pub age_ms: u64,
}

/// Product names whose cached replies the front-end must drop.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Invalidate {
    /// Names to drop from the cache.
    pub names: Vec<String>,
}

/// A leader choice: its epoch and the replica that leads in it. Ordered by epoch, then id, so that
/// two choices never compare equal unless they are the same choice.
#[derive(
    Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default,
)]
pub struct Ballot {
    /// The term.
    pub epoch: Epoch,
    /// The leader in that term (0: none yet).
    pub leader: ReplicaId,
}

/// The role a replica plays now.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Catching up with its peers after a start; not yet serving.
    Recovering,
    /// Takes orders from the leader.
    Follower,
    /// Chosen leader, still collecting its peers' logs; purchases wait.
    Candidate,
    /// Assigns order numbers.
    Leader,
}

/// A replica's view of itself: the health check's answer and the answer to a prepare.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ReplicaStatus {
    /// Its id.
    pub id: ReplicaId,
    /// Its role.
    pub role: Role,
    /// True once it has caught up after a start and can serve.
    pub ready: bool,
    /// The newest ballot it has promised to follow.
    pub promised: Ballot,
    /// The ballot whose leader's log this replica's log is a copy of (see the `order` crate docs).
    pub log_ballot: Ballot,
    /// Orders in its log, committed or not.
    pub len: u64,
    /// Orders known to be committed (on a majority).
    pub commit: u64,
}

/// The front-end's notice of a leader choice, sent to every replica.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LeaderNotice {
    /// The new choice.
    pub ballot: Ballot,
}

/// One order in a replica's log, as stored in `orders-<id>.csv` and sent between replicas.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Order {
    /// Its number: its position in the log.
    pub number: OrderNumber,
    /// Product bought.
    pub name: String,
    /// Units bought.
    pub quantity: u64,
    /// The purchase's idempotency key.
    pub request_id: String,
    /// The epoch of the leader that created it.
    pub epoch: Epoch,
}

/// Leader to follower: orders to store, from position `start`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Append {
    /// The leader's ballot.
    pub ballot: Ballot,
    /// Position of the first entry; the follower must hold `start` entries that match the leader's.
    pub start: u64,
    /// Epoch of the entry at `start - 1` in the leader's log (None when `start` is 0).
    pub prev_epoch: Option<Epoch>,
    /// The entries, in order.
    pub entries: Vec<Order>,
    /// How many orders the leader knows to be committed.
    pub commit: u64,
    /// Length of the leader's log when it finished taking over: a follower that holds this much of
    /// it has the leader's whole starting log and joins the leader's ballot.
    pub view_len: u64,
}

/// A follower's answer to an [`Append`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct AppendReply {
    /// False when the follower's log did not match at `start` (the leader then sends from earlier).
    pub matched: bool,
    /// The follower's log length after the call.
    pub len: u64,
    /// The follower's commit point, below which its log is surely the same as the leader's.
    pub commit: u64,
    /// The ballot whose leader's log the follower now copies.
    pub log_ballot: Ballot,
}

/// A range of a replica's log, the answer to `GET /internal/log?from=&limit=`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct LogChunk {
    /// The entries from `from`.
    pub entries: Vec<Order>,
    /// The replica's log length.
    pub len: u64,
    /// The replica's log ballot.
    pub log_ballot: Ballot,
}

/// The body of every reply.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(untagged)]
pub enum Envelope<T> {
    /// Success.
    Data {
        /// The payload.
        data: T,
    },
    /// Failure.
    Error {
        /// What went wrong.
        error: ErrorBody,
    },
}

/// The `error` member of a failure reply.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// The HTTP status, repeated.
    pub code: u16,
    /// What went wrong, for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shapes_match_the_contract() {
        let ok: Envelope<Product> = Envelope::Data {
            data: Product {
                name: "Tux".into(),
                price: 25.99,
                quantity: 100,
            },
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"data":{"name":"Tux","price":25.99,"quantity":100}}"#
        );
        let err: Envelope<Product> = Envelope::Error {
            error: ErrorBody {
                code: 404,
                message: "no such product".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&err).unwrap(),
            r#"{"error":{"code":404,"message":"no such product"}}"#
        );
    }

    #[test]
    fn request_ids_are_short_and_plain() {
        assert!(valid_request_id("fe1a-7"));
        assert!(valid_request_id("c1-2-3:r.x_y"));
        assert!(valid_request_id(&"a".repeat(MAX_REQUEST_ID)));
        for bad in ["", " ", "a b", "é", "a\n", &"a".repeat(MAX_REQUEST_ID + 1)] {
            assert!(!valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn ballots_order_by_epoch_then_leader() {
        let a = Ballot {
            epoch: 2,
            leader: 3,
        };
        assert!(
            a < Ballot {
                epoch: 3,
                leader: 1
            }
        );
        assert!(
            a < Ballot {
                epoch: 2,
                leader: 4
            }
        );
        assert!(Ballot::default() < a);
    }
}
