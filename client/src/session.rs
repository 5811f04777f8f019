//! One client session: a loop of query-then-maybe-buy over the public API, then the verification of
//! every order it made. Each session runs on its own thread with its own seeded random generator;
//! sessions share only the HTTP agent (its connection pool) and the progress bar.

use std::fmt;
use std::time::Instant;

use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::DeserializeOwned;
use ureq::http::Response;
use ureq::Body;

use crate::protocol::{
    describe_error_body, Data, OrderNumber, OrderPlaced, OrderRecord, OrderRequest, Product,
};
use crate::report::{Kind, Sample, STATUS_CONFLICT, STATUS_TRANSPORT_ERROR};

/// What a session needs to run; shared read-only by all sessions of a run.
#[derive(Debug, Clone)]
pub struct SessionPlan<'a> {
    /// Base URL of the front-end, without a trailing `/`.
    pub frontend: &'a str,
    /// Iterations to run.
    pub iterations: u64,
    /// Probability of buying after a query that showed stock.
    pub p: f64,
    /// Toys to pick from, uniformly.
    pub products: &'a [String],
    /// Largest quantity of one purchase.
    pub max_quantity: u64,
    /// Tells this run's request ids apart from those of another run with the same seed against
    /// the same store, whose front-end would otherwise answer with the earlier run's orders.
    pub run_nonce: &'a str,
    /// When the run began; `start_ms` of samples counts from here.
    pub run_start: Instant,
}

/// A purchase the store accepted with a 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedOrder {
    /// The order number the store returned.
    pub number: OrderNumber,
    /// The toy bought.
    pub name: String,
    /// How many.
    pub quantity: u64,
    /// The idempotency key sent with the purchase.
    pub request_id: String,
}

/// An order the store confirmed with a 200 but that the verification could not find as bought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// Session that made the order.
    pub client: u64,
    /// The order as bought.
    pub order: PlacedOrder,
    /// What the store answered instead (or which other purchase got the same number).
    pub found: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {}: order {} bought {} x{} (request {}): {}",
            self.client,
            self.order.number,
            self.order.name,
            self.order.quantity,
            self.order.request_id,
            self.found
        )
    }
}

/// A query or purchase that failed in a way the store promises not to: a transport error, a 5xx,
/// or any other answer than the contract's (409 on a purchase is not a failure).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Session that sent the request.
    pub client: u64,
    /// Iteration of the session.
    pub iteration: u64,
    /// Which request.
    pub kind: Kind,
    /// HTTP status, 0 for a transport error.
    pub status: u16,
    /// What went wrong.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} iteration {}: {} ",
            self.client, self.iteration, self.kind
        )?;
        if self.status == STATUS_TRANSPORT_ERROR {
            write!(f, "transport error: {}", self.detail)
        } else {
            write!(f, "status {}: {}", self.status, self.detail)
        }
    }
}

/// Everything one session measured and found.
#[derive(Debug, Clone, Default)]
pub struct SessionOutcome {
    /// Session id, the CSV `client` column.
    pub client: u64,
    /// One sample per request, in the order sent.
    pub samples: Vec<Sample>,
    /// Purchases that got a 200.
    pub orders: Vec<PlacedOrder>,
    /// How many of `orders` the store confirmed unchanged.
    pub verified: usize,
    /// Orders the store did not confirm.
    pub mismatches: Vec<Mismatch>,
    /// Failed queries and purchases.
    pub failures: Vec<Failure>,
}

/// The quantity of one purchase: uniform over `1..=min(max_quantity, available)`, or `None` when
/// nothing is in stock.
///
/// `unit` is a uniform draw from `[0, 1)`, taken by the caller on every iteration whatever the store
/// answered, so that the random stream, and with it the sequence of toys and buy decisions, depends
/// on the seed alone.
pub fn choose_quantity(max_quantity: u64, available: u64, unit: f64) -> Option<u64> {
    let bound = max_quantity.min(available);
    if bound == 0 {
        return None;
    }
    // The `min` guards against `unit` rounding up to 1.0 in the multiplication.
    let quantity = 1 + (unit.clamp(0.0, 1.0) * bound as f64) as u64;
    Some(quantity.min(bound))
}

/// The idempotency key of the purchase of `iteration` by session `client` in run `run_nonce` with
/// seed `seed`: unique per run, session and iteration.
pub fn request_id(seed: u64, client: u64, iteration: u64, run_nonce: &str) -> String {
    format!("c{seed}-{client}-{iteration}-{run_nonce}")
}

/// Percent-encodes `text` for use as one path segment (toy names are plain, but `--products` is
/// free text): the services' own encoding.
pub use shared::http::percent_encode as encode_path_segment;

/// Runs session `client` with random seed `seed` (the run's seed is in its request ids as
/// `run_seed`), then verifies its orders. Ticks `progress` once per iteration.
pub fn run_session(
    agent: &ureq::Agent,
    plan: &SessionPlan<'_>,
    client: u64,
    run_seed: u64,
    seed: u64,
    progress: &ProgressBar,
) -> SessionOutcome {
    let mut session = Session {
        agent,
        plan,
        outcome: SessionOutcome {
            client,
            ..SessionOutcome::default()
        },
    };
    let mut rng = StdRng::seed_from_u64(seed);
    for iteration in 0..plan.iterations {
        // Draw everything up front, see `choose_quantity`.
        let name = &plan.products[rng.random_range(0..plan.products.len())];
        let wants_to_buy = rng.random_bool(plan.p);
        let unit: f64 = rng.random();

        if let Some(product) = session.query(iteration, name) {
            if wants_to_buy {
                if let Some(quantity) = choose_quantity(plan.max_quantity, product.quantity, unit) {
                    let request_id = request_id(run_seed, client, iteration, plan.run_nonce);
                    session.buy(iteration, name, quantity, request_id);
                }
            }
        }
        progress.inc(1);
    }
    session.verify_orders();
    session.outcome
}

/// An answer read to its end.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// The state of a running session.
struct Session<'a> {
    agent: &'a ureq::Agent,
    plan: &'a SessionPlan<'a>,
    outcome: SessionOutcome,
}

impl Session<'_> {
    /// Sends one request built by `send`, reads the body to its end (so that the connection goes
    /// back to the pool), and records its sample. `Err` is a transport error.
    fn exchange(
        &mut self,
        kind: Kind,
        send: impl FnOnce(&ureq::Agent) -> Result<Response<Body>, ureq::Error>,
    ) -> Result<Answer, ureq::Error> {
        let started = Instant::now();
        let result = send(self.agent).and_then(|mut response| {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_vec()?;
            Ok(Answer { status, body })
        });
        let latency = started.elapsed();
        self.outcome.samples.push(Sample {
            kind,
            latency_us: u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            status: match &result {
                Ok(answer) => answer.status,
                Err(_) => STATUS_TRANSPORT_ERROR,
            },
            start_ms: u64::try_from(started.duration_since(self.plan.run_start).as_millis())
                .unwrap_or(u64::MAX),
        });
        result
    }

    /// Records a failed query or purchase.
    fn fail(&mut self, iteration: u64, kind: Kind, status: u16, detail: String) {
        self.outcome.failures.push(Failure {
            client: self.outcome.client,
            iteration,
            kind,
            status,
            detail,
        });
    }

    /// The data of a well-formed 200 answer (`Some(Ok)`), or another answer to judge (`Some(Err)`).
    /// A transport error, or a 200 whose body is not `{"data": T}` (described as `malformed`), is
    /// recorded as a failure of `kind` (`None`).
    fn data_of<T: DeserializeOwned>(
        &mut self,
        iteration: u64,
        kind: Kind,
        result: Result<Answer, ureq::Error>,
        malformed: &str,
    ) -> Option<Result<T, Answer>> {
        match result {
            Err(err) => self.fail(iteration, kind, STATUS_TRANSPORT_ERROR, err.to_string()),
            Ok(answer) if answer.status == 200 => {
                match serde_json::from_slice::<Data<T>>(&answer.body) {
                    Ok(data) => return Some(Ok(data.data)),
                    Err(err) => self.fail(iteration, kind, 200, format!("{malformed}: {err}")),
                }
            }
            Ok(answer) => return Some(Err(answer)),
        }
        None
    }

    /// `GET /products/<name>`; the product on a well-formed 200, `None` otherwise (recorded as a
    /// failure).
    fn query(&mut self, iteration: u64, name: &str) -> Option<Product> {
        let url = format!(
            "{}/products/{}",
            self.plan.frontend,
            encode_path_segment(name)
        );
        let result = self.exchange(Kind::Query, |agent| agent.get(&url).call());
        match self.data_of::<Product>(iteration, Kind::Query, result, "malformed product")? {
            Ok(product) if product.name == name => return Some(product),
            Ok(product) => self.fail(
                iteration,
                Kind::Query,
                200,
                format!("asked for {name}, got {}", product.name),
            ),
            Err(answer) => {
                let detail = format!("{name}: {}", describe_error_body(&answer.body));
                self.fail(iteration, Kind::Query, answer.status, detail)
            }
        }
        None
    }

    /// `POST /orders`; remembers the order on a 200. A 409 is only counted (by its sample).
    fn buy(&mut self, iteration: u64, name: &str, quantity: u64, request_id: String) {
        let url = format!("{}/orders", self.plan.frontend);
        let request = OrderRequest {
            name: name.to_string(),
            quantity,
            request_id,
        };
        // Serialized before the clock starts: only the exchange is measured.
        let body = serde_json::to_vec(&request).expect("an order request serializes");
        let result = self.exchange(Kind::Buy, |agent| {
            agent
                .post(&url)
                .content_type("application/json")
                .send(&body[..])
        });
        match self.data_of::<OrderPlaced>(iteration, Kind::Buy, result, "malformed order answer") {
            None => {}
            Some(Ok(placed)) => self.outcome.orders.push(PlacedOrder {
                number: placed.order_number,
                name: request.name,
                quantity,
                request_id: request.request_id,
            }),
            // Another client bought the stock between our query and our purchase.
            Some(Err(answer)) if answer.status == STATUS_CONFLICT => {}
            Some(Err(answer)) => {
                let detail = format!("{name} x{quantity}: {}", describe_error_body(&answer.body));
                self.fail(iteration, Kind::Buy, answer.status, detail)
            }
        }
    }

    /// `GET /orders/<n>` for every order made; anything but the order as bought is a mismatch.
    fn verify_orders(&mut self) {
        let orders = self.outcome.orders.clone();
        for order in orders {
            let url = format!("{}/orders/{}", self.plan.frontend, order.number);
            let found = match self.exchange(Kind::OrderQuery, |agent| agent.get(&url).call()) {
                Err(err) => format!("transport error: {err}"),
                Ok(answer) if answer.status == 200 => {
                    match serde_json::from_slice::<Data<OrderRecord>>(&answer.body) {
                        Ok(record)
                            if record.data.number == order.number
                                && record.data.name == order.name
                                && record.data.quantity == order.quantity =>
                        {
                            self.outcome.verified += 1;
                            continue;
                        }
                        Ok(record) => format!(
                            "store has order {}: {} x{}",
                            record.data.number, record.data.name, record.data.quantity
                        ),
                        Err(err) => format!("malformed order: {err}"),
                    }
                }
                Ok(answer) => format!(
                    "status {}: {}",
                    answer.status,
                    describe_error_body(&answer.body)
                ),
            };
            self.outcome.mismatches.push(Mismatch {
                client: self.outcome.client,
                order,
                found,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantity_is_within_bounds() {
        assert_eq!(choose_quantity(3, 0, 0.5), None);
        assert_eq!(choose_quantity(3, 100, 0.0), Some(1));
        assert_eq!(choose_quantity(3, 100, 0.34), Some(2));
        assert_eq!(choose_quantity(3, 100, 0.999_999), Some(3));
        assert_eq!(choose_quantity(3, 100, 1.0), Some(3));
        // Never more than the query showed.
        assert_eq!(choose_quantity(3, 1, 0.999), Some(1));
        assert_eq!(choose_quantity(3, 2, 0.75), Some(2));
        assert_eq!(choose_quantity(1, 100, 0.9), Some(1));
    }

    #[test]
    fn quantity_is_uniform() {
        let mut counts = [0u32; 4];
        let steps = 3000;
        for i in 0..steps {
            // Midpoints of equal slices of [0, 1), away from the boundaries.
            let unit = (f64::from(i) + 0.5) / f64::from(steps);
            counts[choose_quantity(3, 100, unit).unwrap() as usize] += 1;
        }
        assert_eq!(counts, [0, 1000, 1000, 1000]);
        let mut capped = [0u32; 4];
        for i in 0..steps {
            let unit = (f64::from(i) + 0.5) / f64::from(steps);
            capped[choose_quantity(3, 2, unit).unwrap() as usize] += 1;
        }
        assert_eq!(capped, [0, 1500, 1500, 0]);
    }

    #[test]
    fn request_ids_are_unique_per_session_and_iteration() {
        let ids: std::collections::HashSet<String> = (0..3)
            .flat_map(|client| (0..3).map(move |iteration| request_id(9, client, iteration, "r1")))
            .collect();
        assert_eq!(ids.len(), 9);
        assert_eq!(request_id(9, 1, 2, "r1"), "c9-1-2-r1");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(encode_path_segment("Tux"), "Tux");
        assert_eq!(encode_path_segment("Lego-2_x.y~"), "Lego-2_x.y~");
        assert_eq!(encode_path_segment("a b/c"), "a%20b%2Fc");
        assert_eq!(encode_path_segment("é"), "%C3%A9");
    }

    #[test]
    fn reports_read_well() {
        let order = PlacedOrder {
            number: 4,
            name: "Tux".into(),
            quantity: 2,
            request_id: "c1-0-3-r".into(),
        };
        let mismatch = Mismatch {
            client: 0,
            order,
            found: "store has order 4: Tux x3".into(),
        };
        assert_eq!(
            mismatch.to_string(),
            "client 0: order 4 bought Tux x2 (request c1-0-3-r): store has order 4: Tux x3"
        );
        let failure = Failure {
            client: 1,
            iteration: 5,
            kind: Kind::Buy,
            status: 0,
            detail: "connection refused".into(),
        };
        assert_eq!(
            failure.to_string(),
            "client 1 iteration 5: buy transport error: connection refused"
        );
    }
}
