//! The history: every request a client sent, and what its answer tells of its effect.

use serde_json::Value;
use std::time::Duration;

/// A request of the history.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `GET /products/<name>`.
    Query {
        /// Toy.
        name: String,
    },
    /// `POST /orders` with a request id.
    Buy {
        /// Idempotency key.
        request_id: String,
        /// Toy.
        name: String,
        /// Units.
        quantity: u64,
    },
    /// `GET /orders/<number>`.
    OrderQuery {
        /// Order number.
        number: u64,
    },
}

/// The kind of a request, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpKind {
    /// Product query.
    Query,
    /// Purchase.
    Buy,
    /// Order query.
    OrderQuery,
}

impl OpKind {
    /// Its name in the summary (as in the latency CSV's `kind`).
    pub fn label(self) -> &'static str {
        match self {
            OpKind::Query => "query",
            OpKind::Buy => "buy",
            OpKind::OrderQuery => "order_query",
        }
    }
}

impl Op {
    /// Its kind.
    pub fn kind(&self) -> OpKind {
        match self {
            Op::Query { .. } => OpKind::Query,
            Op::Buy { .. } => OpKind::Buy,
            Op::OrderQuery { .. } => OpKind::OrderQuery,
        }
    }
}

/// What a request's answer tells of its effect (see the module docs for the rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Outcome {
    /// Answered 200: the answer is the store's.
    Ok,
    /// Surely not applied.
    Fail,
    /// May or may not have been applied.
    Unknown,
}

impl Outcome {
    /// Its name in the summary.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Unknown => "unknown",
        }
    }
}

/// What came back for a request, before it is classified.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// An HTTP answer: status and JSON body (Null when not JSON).
    Status(u16, Value),
    /// The request was not sent: connection refused or not set up in time.
    NotSent(String),
    /// The request may have been sent, and no whole answer came back.
    Lost(String),
}

/// The outcome of a reply, by the rules in the module docs.
pub fn classify(reply: &Reply) -> Outcome {
    match reply {
        Reply::Status(200, body) if body.get("data").is_some() => Outcome::Ok,
        Reply::Status(400..=499 | 503, _) | Reply::NotSent(_) => Outcome::Fail,
        Reply::Status(..) | Reply::Lost(_) => Outcome::Unknown,
    }
}

/// One request of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The client thread.
    pub client: usize,
    /// The request.
    pub op: Op,
    /// When it was sent, from the start of the run.
    pub invoke: Duration,
    /// When it was sent, by the wall clock (ms since the Unix epoch).
    pub invoke_unix_ms: u64,
    /// When its answer (or error) came back, from the start of the run.
    pub complete: Duration,
    /// What its answer tells.
    pub outcome: Outcome,
    /// HTTP status, 0 when there was none.
    pub status: u16,
    /// The `data` of a 200.
    pub data: Value,
    /// Error text, short.
    pub detail: String,
}

impl Entry {
    fn data_u64(&self, key: &str) -> Option<u64> {
        self.data.get(key).and_then(Value::as_u64)
    }

    /// The quantity a product query or an order query answered.
    pub fn quantity(&self) -> Option<u64> {
        self.data_u64("quantity")
    }

    /// The order number a purchase was answered.
    pub fn order_number(&self) -> Option<u64> {
        self.data_u64("order_number")
    }

    pub(super) fn at(&self) -> String {
        format!(
            "client {} at {:.3} s",
            self.client,
            self.invoke.as_secs_f64()
        )
    }
}

/// The longest stretch without a success that begins between `from` and `to`: from `from` to the
/// first success after it, or between two successes. `ok` holds when each success ended, sorted.
pub fn longest_stall(ok: &[Duration], from: Duration, to: Duration) -> Duration {
    let mut last = from;
    let mut longest = Duration::ZERO;
    for t in ok.iter().filter(|t| **t > from) {
        if last >= to {
            break;
        }
        longest = longest.max(*t - last);
        last = *t;
    }
    if last < to {
        // Nothing succeeded after `last` at all.
        longest = longest.max(to - last);
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_are_classified_by_what_they_say_of_the_effect() {
        let ok = Reply::Status(200, json!({"data": {"order_number": 3}}));
        assert_eq!(classify(&ok), Outcome::Ok);
        for s in [400, 404, 408, 409, 413, 503] {
            assert_eq!(
                classify(&Reply::Status(s, Value::Null)),
                Outcome::Fail,
                "{s}"
            );
        }
        for s in [500, 502, 504] {
            assert_eq!(
                classify(&Reply::Status(s, Value::Null)),
                Outcome::Unknown,
                "{s}"
            );
        }
        assert_eq!(classify(&Reply::Status(200, Value::Null)), Outcome::Unknown);
        assert_eq!(classify(&Reply::NotSent("refused".into())), Outcome::Fail);
        assert_eq!(classify(&Reply::Lost("reset".into())), Outcome::Unknown);
    }

    #[test]
    fn the_stall_is_measured_from_the_fault_to_the_next_success() {
        let ms = Duration::from_millis;
        let ok = [ms(100), ms(900), ms(1000), ms(2600), ms(2700)];
        assert_eq!(longest_stall(&ok, ms(500), ms(3000)), ms(1600));
        // From the fault to the first success after it.
        assert_eq!(longest_stall(&ok, ms(950), ms(1100)), ms(1600));
        // Nothing after the fault at all: the whole fault.
        assert_eq!(longest_stall(&ok[..2], ms(1000), ms(3000)), ms(2000));
    }
}
