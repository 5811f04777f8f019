//! Every period and timeout that decides how fast a fault is noticed, in one place, with its reason.
//!
//! The budget they serve: a host that goes silent (its packets dropped, so no connection is refused)
//! is noticed within about 500 ms, and purchases go on within about a second of any single crash,
//! pause or network cut wherever a quorum of replicas and the catalog can still talk. A loopback or
//! LAN round trip takes well under a millisecond and a health answer needs no disk, so every timeout
//! below is a stall, not a slow answer: a false alarm costs one needless leader change, never an order.
//!
//! How a silent leader is noticed: the front-end asks the leader's health every [`HEALTH_EVERY_MS`];
//! [`MISSED_PINGS`] answers missing in a row ([`PING_TIMEOUT_MS`] each, asked again at once after a
//! miss) make it choose again, about 100 + 2 x 200 = 500 ms after the cut at the latest. A leader
//! that answers but cannot serve (no quorum of acknowledgements, or no catalog, within
//! [`SERVE_WINDOW_MS`]) is replaced once it has said so for [`CANNOT_SERVE_GRACE_MS`]: at most
//! 300 + 100 + 200 = 600 ms after the cut. A purchase in flight at the cut is given up after
//! [`LEADER_CALL_TIMEOUT_MS`] and retried under its request id at whoever leads then.

/// Period of the messages that show a replica is alive: the leader's append to each follower, every
/// other replica's ping to each peer, and each replica's ping to the catalog.
pub const HEARTBEAT_MS: u64 = 100;

/// A replica can serve while, within this window, a quorum of replicas (itself included) was heard
/// from (for a leader: acknowledged its appends) and the catalog answered. Three heartbeats: one lost
/// or late message is not a fault.
pub const SERVE_WINDOW_MS: u64 = 3 * HEARTBEAT_MS;

/// How often the front-end asks the leader's health.
pub const HEALTH_EVERY_MS: u64 = 100;

/// Timeout of the front-end's health pings and leader notices. A health answer takes under a
/// millisecond; 200 ms leaves room for a loaded two-core machine.
pub const PING_TIMEOUT_MS: u64 = 200;

/// Health pings missed in a row before the front-end chooses again: one alone may be a dropped
/// packet.
pub const MISSED_PINGS: u32 = 2;

/// How long a leader may report that it cannot serve before the front-end replaces it: long enough
/// for a new leader's takeover (its peers' promises come within a millisecond or two) and one late
/// heartbeat, short against the second a client may wait.
pub const CANNOT_SERVE_GRACE_MS: u64 = 200;

/// Timeout of the front-end's purchase call to the leader. A purchase takes a few milliseconds; a
/// call still open after this is taken as lost and retried, under the same request id, at whoever
/// leads by then (the leader applies a request id at most once).
pub const LEADER_CALL_TIMEOUT_MS: u64 = 800;

/// How long a purchase or order query may wait inside a replica (for a quorum, a takeover, the
/// catalog) before it is answered: below [`LEADER_CALL_TIMEOUT_MS`], so that the replica's own answer
/// (504: retry under the same id) arrives rather than a timeout, and the caller's connection is
/// freed.
pub const REQUEST_DEADLINE_MS: u64 = 600;

/// A candidate that has not heard from a quorum for this long refuses purchases at once instead of
/// letting them wait: within [`REQUEST_DEADLINE_MS`].
pub const CANDIDATE_PATIENCE_MS: u64 = 500;

/// Timeout of the front-end's order query to the leader, after which it asks every replica at once.
pub const QUERY_TIMEOUT_MS: u64 = 300;

/// Timeout of a replica's message to a peer: a peer that does not take it in this time counts as
/// unreachable until it answers again.
pub const PEER_TIMEOUT_MS: u64 = 300;

/// How long a replica that took a peer's messages waits for its own writes of them to be on disk, to
/// put its answers (an append's ack) in the reply rather than in a message of its own. A sync takes
/// well under a millisecond; a disk slower than this gets its answers sent as messages, and the
/// reply comes well within the peer's [`PEER_TIMEOUT_MS`].
pub const PEER_ANSWER_WAIT_MS: u64 = 100;

/// Timeout of a replica's call to the catalog. A take is answered in well under a millisecond; one
/// whose answer is lost is asked again under its request id.
pub const CATALOG_TIMEOUT_MS: u64 = 500;

// The budget in the module docs, checked when the crate is compiled: a silent leader is noticed
// within 500 ms, one that cannot serve is replaced within 600 ms, a purchase in flight is retried
// before a client has waited a second, and a replica answers before the front-end gives its call up.
const _: () = {
    assert!(HEALTH_EVERY_MS + MISSED_PINGS as u64 * PING_TIMEOUT_MS <= 500);
    assert!(SERVE_WINDOW_MS + HEALTH_EVERY_MS + CANNOT_SERVE_GRACE_MS <= 600);
    assert!(LEADER_CALL_TIMEOUT_MS < 1000);
    assert!(REQUEST_DEADLINE_MS < LEADER_CALL_TIMEOUT_MS);
    assert!(CANDIDATE_PATIENCE_MS <= REQUEST_DEADLINE_MS);
    assert!(2 * PEER_ANSWER_WAIT_MS < PEER_TIMEOUT_MS);
};
