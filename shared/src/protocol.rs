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

/// A purchase as the front-end passes it to the order leader.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Purchase {
    /// Idempotency key: the same id is applied at most once, wherever it is retried.
    pub request_id: String,
    /// Product to buy.
    pub name: String,
    /// Units to buy, at least 1.
    pub quantity: u64,
    /// True when no earlier attempt with this request id can have reached any leader: the front-end
    /// made the id itself and every earlier attempt surely never arrived. Only then may a leader that
    /// cannot reach the catalog answer 503 without asking the catalog to refuse the id first.
    #[serde(default)]
    pub fresh: bool,
}

/// Longest product name a purchase may carry.
pub const MAX_NAME: usize = 256;

/// Checks a purchase's fields, the same way in every service: a name of 1 to [`MAX_NAME`] bytes, a
/// quantity of at least 1, and a request id as [`valid_request_id`] wants it.
pub fn validate_purchase(request_id: &str, name: &str, quantity: u64) -> crate::Result<()> {
    use crate::Error;
    if quantity == 0 {
        return Err(Error::BadRequest("quantity must be at least 1".into()));
    }
    if name.is_empty() || name.len() > MAX_NAME {
        return Err(Error::BadRequest("name must have 1 to 256 bytes".into()));
    }
    if !valid_request_id(request_id) {
        return Err(Error::BadRequest(REQUEST_ID_RULE.into()));
    }
    Ok(())
}

/// The order leader's request to the catalog to take stock for one purchase.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TakeRequest {
    /// The purchase's idempotency key: stock is taken at most once per id, and an id once refused
    /// stays refused.
    pub request_id: String,
    /// Product.
    pub name: String,
    /// Units, at least 1.
    pub quantity: u64,
    /// The epoch of the leader that asks: the catalog refuses an epoch older than the newest it saw.
    pub epoch: Epoch,
}

/// The order leader's request to the catalog to refuse a request id for good, unless it was taken:
/// what a leader asks before it answers a purchase "nothing was changed" (503).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CancelRequest {
    /// The purchase's idempotency key.
    pub request_id: String,
    /// The asking leader's epoch.
    pub epoch: Epoch,
}

/// The catalog's answer to a [`CancelRequest`].
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CancelReply {
    /// None: the id is refused for good (now or before). Some(seq): it had been taken, in journal row
    /// `seq`, and the take stands.
    pub taken: Option<u64>,
}

/// What the catalog answers to a take of stock.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct TakeReply {
    /// The journal sequence number of the take (the same on a repeated request id).
    pub seq: u64,
    /// True when this request id had been applied before and nothing was taken now.
    pub repeated: bool,
}

/// A take of stock as the catalog's journal remembers it, listed for reconciliation (only takes that
/// are on the catalog's disk are listed).
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
    /// True when, within the last [`SERVE_WINDOW_MS`](crate::timing::SERVE_WINDOW_MS), a quorum of
    /// replicas (itself included) was heard from; for a leader, acknowledged its appends.
    #[serde(default)]
    pub reaches_quorum: bool,
    /// True when the catalog answered within the last
    /// [`SERVE_WINDOW_MS`](crate::timing::SERVE_WINDOW_MS).
    #[serde(default)]
    pub reaches_catalog: bool,
}

impl ReplicaStatus {
    /// True when the replica has caught up and reaches a quorum and the catalog: what a purchase
    /// needs of its leader.
    pub fn can_serve(&self) -> bool {
        self.ready && self.reaches_quorum && self.reaches_catalog
    }
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

/// One message between order replicas. Messages go one way: a replica sends a batch of them to a
/// peer's `POST /internal/msg` ([`PeerBatch`]), which answers at once; an answer to a message is
/// another message, sent back the same way. So a reply can wait inside the receiver (an append is
/// acknowledged only once it is on disk) without holding a connection, and a lost message is just
/// lost: the sender's timers send again.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaMsg {
    /// Candidate to peers: promise `ballot` and tell me how up to date your log is.
    Prepare {
        /// The candidate's ballot.
        ballot: Ballot,
    },
    /// Answer to a prepare, sent once the promise is on disk.
    PrepareOk {
        /// The ballot promised.
        ballot: Ballot,
        /// The promiser's state.
        status: ReplicaStatus,
    },
    /// A message of an older leader choice was refused: the receiver has promised `promised`.
    Refuse {
        /// The ballot of the refused message.
        ballot: Ballot,
        /// The refuser's promise.
        promised: Ballot,
    },
    /// Leader to follower: orders to store.
    Append(Append),
    /// A follower's answer to an append, sent once what it acknowledges is on disk.
    AppendOk {
        /// The leader's ballot it answers.
        ballot: Ballot,
        /// What the follower holds.
        reply: AppendReply,
    },
    /// A replica to a peer it sends nothing else to: I am alive (no answer).
    Ping,
    /// A starting replica to its peers: how up to date are you?
    Probe,
    /// Answer to a probe.
    ProbeOk(ReplicaStatus),
    /// Asks for a range of the receiver's log, for copy number `copy` of the asker.
    LogRequest {
        /// The asker's copy, echoed in the answer so that an answer to an abandoned copy is ignored.
        copy: u64,
        /// First position wanted.
        from: u64,
        /// Most entries wanted.
        limit: u64,
    },
    /// A range of the sender's log.
    LogChunk {
        /// The copy it answers.
        copy: u64,
        /// Position of the first entry.
        from: u64,
        /// Epoch of the sender's entry at `from - 1` (None when `from` is 0 or past its log), so the
        /// asker can check that the chunk continues what it copied so far.
        prev_epoch: Option<Epoch>,
        /// The entries, the sender's length and log ballot.
        chunk: LogChunk,
    },
}

/// The body of `POST /internal/msg`: messages from one replica, in the order they were sent.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PeerBatch {
    /// The sending replica.
    pub from: ReplicaId,
    /// Its messages.
    pub msgs: Vec<ReplicaMsg>,
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
    /// Internal calls only: the ballot a replica has promised, when it refuses a message of an older
    /// one (409) or is not the leader (503). Absent from public replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised: Option<Ballot>,
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
                promised: None,
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
