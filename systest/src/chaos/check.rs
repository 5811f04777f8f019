//! The final state of the healed store, and the checks of the history against it (one function
//! per numbered check of the module docs).

use super::history::{Entry, Op, OpKind, Outcome};
use crate::{JournalKind, JournalRow};
use serde_json::Value;
use shared::protocol::{Order, ReplicaId};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

/// Stock of every toy in a new catalog.
pub const INITIAL_STOCK: u64 = crate::cluster::NEW_STOCK;
/// How long after a row of the catalog journal took effect no query may show an older stock (ms).
pub const STALE_BOUND_MS: u64 = 2000;

/// What the healed, quiet store holds, and what it answers.
#[derive(Debug, Clone, Default)]
pub struct FinalState {
    /// Each replica's order file: its text and its rows (or why they could not be read).
    pub files: Vec<(ReplicaId, String, std::result::Result<Vec<Order>, String>)>,
    /// The catalog journal's rows.
    pub journal: Vec<JournalRow>,
    /// The catalog's stock per toy, asked directly.
    pub stock: BTreeMap<String, u64>,
    /// `GET /orders/<n>` through the front-end for every acknowledged number: (status, data).
    pub reads: BTreeMap<u64, (u16, Value)>,
    /// What could not be read.
    pub problems: Vec<String>,
    /// Wall-clock intervals (ms) from each SIGKILL of the catalog to its next start (`u64::MAX` when
    /// it was not started again while clients ran).
    pub catalog_outages: Vec<(u64, u64)>,
}

/// Figures the checks gather besides violations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Findings {
    /// What went wrong, one line each.
    pub violations: Vec<String>,
    /// Orders in the final log.
    pub orders: usize,
    /// Purchases (request ids) answered only "unknown" or "fail" with an unknown among them.
    pub unknown_purchases: usize,
    /// Of those, how many ended as orders.
    pub unknown_applied: usize,
}

/// The toy's rows that change stock, as the reads check needs them.
struct ToyRows {
    /// For each stock value the toy has had: the highest `seq` of a row that left it there (0 for
    /// the initial stock).
    last_seq_of: HashMap<u64, u64>,
    /// (effective wall-clock ms, seq), sorted by time, with `seq` replaced by the running maximum.
    effective: Vec<(u64, u64)>,
    /// (ack time, seq of the take), sorted by time, `seq` as a running maximum.
    acked: Vec<(Duration, u64)>,
}

/// The largest `seq` among `points` whose time is at most `t` (0 when none).
fn bound_at<T: Ord + Copy>(points: &[(T, u64)], t: T) -> u64 {
    let i = points.partition_point(|(at, _)| *at <= t);
    if i == 0 {
        0
    } else {
        points[i - 1].1
    }
}

fn running_max<T>(points: &mut [(T, u64)]) {
    let mut max = 0;
    for p in points.iter_mut() {
        max = max.max(p.1);
        p.1 = max;
    }
}

/// Checks `history` against `state` (see the module docs for each check and why it is sound).
pub fn check(history: &[Entry], state: &FinalState) -> Findings {
    let mut f = Findings::default();
    let v = &mut f.violations;
    v.extend(state.problems.iter().cloned());
    let log = identical_replicas(state, v);
    let by_request = request_numbers(&log, v);
    let takes = stock_adds_up(state, &log, &by_request, v);
    let mut attempts: BTreeMap<&str, Vec<&Entry>> = BTreeMap::new();
    for e in history {
        if let Op::Buy { request_id, .. } = &e.op {
            attempts.entry(request_id.as_str()).or_default().push(e);
        }
    }
    let mut numbers: HashMap<u64, &str> = HashMap::new();
    for (id, tries) in &attempts {
        acknowledged_kept(id, tries, state, &log, &mut numbers, v);
        failures_changed_nothing(id, tries, &by_request, &takes, v);
        let outcomes: HashSet<Outcome> = tries.iter().map(|e| e.outcome).collect();
        if !outcomes.contains(&Outcome::Ok) && outcomes.contains(&Outcome::Unknown) {
            f.unknown_purchases += 1;
            f.unknown_applied += usize::from(by_request.contains_key(id));
        }
    }
    order_reads(history, &log, v);
    let toys = toy_rows(history, state, &takes);
    for e in history.iter().filter(|e| e.outcome == Outcome::Ok) {
        if let Op::Query { name } = &e.op {
            v.extend(stock_read(e, name, toys.get(name.as_str())));
        }
    }
    f.orders = log.len();
    f
}

/// Check 1: every replica's file is the same text. Returns the log (the first readable file's rows).
fn identical_replicas(state: &FinalState, v: &mut Vec<String>) -> Vec<Order> {
    let mut log: Vec<Order> = Vec::new();
    for (id, text, rows) in &state.files {
        match rows {
            Ok(rows) if log.is_empty() => log = rows.clone(),
            Ok(_) => {}
            Err(e) => v.push(format!("orders-{id}.csv cannot be read: {e}")),
        }
        let (first_id, first_text, _) = &state.files[0];
        if text != first_text {
            let line = text
                .lines()
                .zip(first_text.lines())
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| text.lines().count().min(first_text.lines().count()));
            v.push(format!(
                "orders-{id}.csv ({} lines) differs from orders-{first_id}.csv ({} lines) from line {}",
                text.lines().count(),
                first_text.lines().count(),
                line + 1
            ));
        }
    }
    log
}

/// Check 1, continued: order `i` has number `i`, and no request id appears twice. Returns each
/// request id's order number.
fn request_numbers<'a>(log: &'a [Order], v: &mut Vec<String>) -> HashMap<&'a str, u64> {
    let mut by_request: HashMap<&str, u64> = HashMap::new();
    for (i, o) in log.iter().enumerate() {
        if o.number != i as u64 {
            v.push(format!("order at position {i} has number {}", o.number));
        }
        if let Some(first) = by_request.insert(o.request_id.as_str(), o.number) {
            v.push(format!(
                "request id {} applied twice: orders {first} and {}",
                o.request_id, o.number
            ));
        }
    }
    by_request
}

/// What check 4 reads from the journal: the chain per toy and the takes.
#[derive(Default)]
struct Chains<'a> {
    /// Each toy's stock at the end of its chain.
    stock: BTreeMap<&'a str, u64>,
    /// Units restocked per toy.
    restocked: BTreeMap<&'a str, u64>,
    /// The take of each request id.
    takes: HashMap<&'a str, &'a JournalRow>,
}

/// Check 4, the journal alone: rows in `seq` order, each toy's takes and restocks a chain from 100,
/// no request id taken twice, or both taken and refused.
fn journal_chains<'a>(journal: &'a [JournalRow], v: &mut Vec<String>) -> Chains<'a> {
    let mut c = Chains::default();
    let mut last_seq = 0;
    let mut refused: HashMap<&str, u64> = HashMap::new();
    for r in journal {
        if r.seq <= last_seq {
            v.push(format!("journal row seq {} follows seq {last_seq}", r.seq));
        }
        last_seq = r.seq;
        if r.kind == JournalKind::Refuse {
            refused.insert(r.request_id.as_str(), r.seq);
        }
        // Only takes and restocks change stock; refusals, checkpoints and fences do not.
        if !matches!(r.kind, JournalKind::Take | JournalKind::Restock) {
            continue;
        }
        let cur = c.stock.entry(r.name.as_str()).or_insert(INITIAL_STOCK);
        let expected = match r.kind {
            JournalKind::Take => {
                if let Some(first) = c.takes.insert(r.request_id.as_str(), r) {
                    v.push(format!(
                        "request id {} took stock twice: journal rows {} and {}",
                        r.request_id, first.seq, r.seq
                    ));
                }
                cur.checked_sub(r.quantity)
            }
            JournalKind::Restock => {
                *c.restocked.entry(r.name.as_str()).or_default() += r.quantity;
                Some(*cur + r.quantity)
            }
            _ => continue,
        };
        if expected != Some(r.stock_after) {
            v.push(format!(
                "journal row {} ({:?} {} x{}): stock after {} but {} before it",
                r.seq, r.kind, r.name, r.quantity, r.stock_after, cur
            ));
        }
        *cur = r.stock_after;
    }
    for (id, t) in &c.takes {
        if let Some(seq) = refused.get(id) {
            v.push(format!(
                "request id {id} was both taken (journal row {}) and refused (row {seq})",
                t.seq
            ));
        }
    }
    c
}

/// Check 4: the journal's chains ([`journal_chains`]), one order per take and one take per order,
/// and the catalog's stock at the chains' ends and equal to 100 + restocked - ordered. Returns the
/// takes by request id.
fn stock_adds_up<'a>(
    state: &'a FinalState,
    log: &[Order],
    by_request: &HashMap<&str, u64>,
    v: &mut Vec<String>,
) -> HashMap<&'a str, &'a JournalRow> {
    let c = journal_chains(&state.journal, v);
    let mut ordered: BTreeMap<&str, u64> = BTreeMap::new();
    for o in log {
        *ordered.entry(o.name.as_str()).or_default() += o.quantity;
        match c.takes.get(o.request_id.as_str()) {
            None => v.push(format!(
                "order {} ({} x{}, request {}) has no take at the catalog",
                o.number, o.name, o.quantity, o.request_id
            )),
            Some(t) if t.name != o.name || t.quantity != o.quantity => v.push(format!(
                "order {} is {} x{} but its take (row {}) is {} x{}",
                o.number, o.name, o.quantity, t.seq, t.name, t.quantity
            )),
            Some(_) => {}
        }
    }
    for (id, t) in &c.takes {
        if !by_request.contains_key(id) {
            v.push(format!(
                "take at journal row {} ({} x{}, request {id}) has no order",
                t.seq, t.name, t.quantity
            ));
        }
    }
    if state.stock.is_empty() {
        v.push("the catalog's stock could not be read".into());
    }
    for (name, quantity) in &state.stock {
        let chain = c.stock.get(name.as_str()).copied().unwrap_or(INITIAL_STOCK);
        let added = c.restocked.get(name.as_str()).copied().unwrap_or(0);
        let taken = ordered.get(name.as_str()).copied().unwrap_or(0);
        if *quantity != chain || INITIAL_STOCK + added != quantity + taken {
            v.push(format!(
                "{name}: the catalog has {quantity}, its journal ends at {chain}, and 100 + {added} restocked - {taken} ordered = {}",
                (INITIAL_STOCK + added) as i128 - taken as i128
            ));
        }
    }
    c.takes
}

/// Check 2 for purchase `id` (its attempts `tries`): every 200 carries the same number, no number
/// goes to two ids (`numbers` so far), and the acknowledged order is in every file and read back.
fn acknowledged_kept<'a>(
    id: &'a str,
    tries: &[&Entry],
    state: &FinalState,
    log: &[Order],
    numbers: &mut HashMap<u64, &'a str>,
    v: &mut Vec<String>,
) {
    let Op::Buy { name, quantity, .. } = &tries[0].op else {
        unreachable!("grouped purchases")
    };
    let mut answered: Option<u64> = None;
    for e in tries.iter().filter(|e| e.outcome == Outcome::Ok) {
        let Some(n) = e.order_number() else {
            v.push(format!(
                "{}: purchase {id} answered 200 without a number",
                e.at()
            ));
            continue;
        };
        if let Some(m) = answered.filter(|m| *m != n) {
            v.push(format!(
                "purchase {id} was answered order {m} and later order {n}"
            ));
        }
        answered = Some(n);
        if let Some(other) = numbers.insert(n, id).filter(|o| *o != id) {
            v.push(format!(
                "order {n} was given to purchase {other} and to {id}"
            ));
        }
    }
    let Some(n) = answered else {
        return;
    };
    match log.get(n as usize) {
        Some(o) if o.request_id == id && o.name == *name && o.quantity == *quantity => {}
        Some(o) => v.push(format!(
            "acknowledged order {n} ({name} x{quantity}, request {id}) is {} x{} of request {} in the log",
            o.name, o.quantity, o.request_id
        )),
        None => v.push(format!(
            "acknowledged order {n} ({name} x{quantity}, request {id}) is missing: the log has {} orders",
            log.len()
        )),
    }
    for (rid, _, rows) in &state.files {
        if let Ok(rows) = rows {
            if rows.get(n as usize).is_none_or(|o| o.request_id != id) {
                v.push(format!(
                    "acknowledged order {n} (request {id}) is not in orders-{rid}.csv"
                ));
            }
        }
    }
    match state.reads.get(&n) {
        Some((200, d)) if d["name"] == name.as_str() && d["quantity"].as_u64() == Some(*quantity) => {}
        Some((status, d)) => v.push(format!(
            "GET /orders/{n} after the heal answered {status} {d} for acknowledged {name} x{quantity}"
        )),
        None => v.push(format!("acknowledged order {n} was not read back")),
    }
}

/// Check 5 for purchase `id`: when every attempt was answered "fail", it has no order and no take.
fn failures_changed_nothing(
    id: &str,
    tries: &[&Entry],
    by_request: &HashMap<&str, u64>,
    takes: &HashMap<&str, &JournalRow>,
    v: &mut Vec<String>,
) {
    let Op::Buy { name, quantity, .. } = &tries[0].op else {
        unreachable!("grouped purchases")
    };
    let applied = by_request.contains_key(id) || takes.contains_key(id);
    if !applied || tries.iter().any(|e| e.outcome != Outcome::Fail) {
        return;
    }
    let answers: Vec<String> = tries
        .iter()
        .map(|e| {
            if e.status == 0 {
                e.detail.clone()
            } else {
                e.status.to_string()
            }
        })
        .collect();
    v.push(format!(
        "purchase {id} ({name} x{quantity}) was answered only failures ({}) but {}",
        answers.join(", "),
        match by_request.get(id) {
            Some(n) => format!("holds order {n}"),
            None => "took stock".into(),
        }
    ));
}

/// Check 3: an order query answered 200 matches the final order of that number, and a 404 is
/// never the answer for a number acknowledged before the query was sent.
fn order_reads(history: &[Entry], log: &[Order], v: &mut Vec<String>) {
    let mut acks: Vec<(Duration, u64)> = history
        .iter()
        .filter(|e| e.outcome == Outcome::Ok && e.op.kind() == OpKind::Buy)
        .filter_map(|e| e.order_number().map(|n| (e.complete, n)))
        .collect();
    acks.sort();
    for e in history {
        let Op::OrderQuery { number } = &e.op else {
            continue;
        };
        match e.outcome {
            Outcome::Ok => {
                let (name, quantity) = (e.data["name"].as_str(), e.quantity());
                match log.get(*number as usize) {
                    Some(o) if Some(o.name.as_str()) == name && Some(o.quantity) == quantity => {}
                    o => v.push(format!(
                        "{}: GET /orders/{number} answered {} but the log holds {}",
                        e.at(),
                        e.data,
                        o.map_or("nothing".into(), |o| format!("{} x{}", o.name, o.quantity))
                    )),
                }
            }
            _ if e.status == 404 => {
                let acked_before = acks
                    .iter()
                    .take_while(|(at, _)| *at < e.invoke)
                    .any(|(_, n)| n == number);
                if acked_before {
                    v.push(format!(
                        "{}: GET /orders/{number} answered 404 for an order acknowledged before it",
                        e.at()
                    ));
                }
            }
            _ => {}
        }
    }
}

/// For checks 6 and 7: each toy's rows that change stock, with the time each took effect and the
/// acknowledgements of its takes.
fn toy_rows<'a>(
    history: &[Entry],
    state: &'a FinalState,
    takes: &HashMap<&str, &JournalRow>,
) -> HashMap<&'a str, ToyRows> {
    let mut toys: HashMap<&str, ToyRows> = HashMap::new();
    for r in state
        .journal
        .iter()
        .filter(|r| matches!(r.kind, JournalKind::Take | JournalKind::Restock))
    {
        let t = toys.entry(r.name.as_str()).or_insert_with(|| ToyRows {
            last_seq_of: HashMap::from([(INITIAL_STOCK, 0)]),
            effective: Vec::new(),
            acked: Vec::new(),
        });
        t.last_seq_of.insert(r.stock_after, r.seq);
        let effective = state
            .catalog_outages
            .iter()
            .filter(|(killed, _)| *killed >= r.unix_ms && *killed < r.unix_ms + STALE_BOUND_MS)
            .map(|(_, started)| *started)
            .max()
            .unwrap_or(r.unix_ms);
        t.effective.push((effective, r.seq));
    }
    for e in history.iter().filter(|e| e.outcome == Outcome::Ok) {
        if let Op::Buy { request_id, .. } = &e.op {
            if let Some(r) = takes.get(request_id.as_str()) {
                if let Some(t) = toys.get_mut(r.name.as_str()) {
                    t.acked.push((e.complete, r.seq));
                }
            }
        }
    }
    for t in toys.values_mut() {
        t.effective.sort();
        running_max(&mut t.effective);
        t.acked.sort();
        running_max(&mut t.acked);
    }
    toys
}

/// Checks 6 and 7 of the query `e` of toy `name` (whose rows are `toy`): what it answered is a
/// stock some row left, no older than what was acknowledged before it (6), nor than what took
/// effect [`STALE_BOUND_MS`] before it (7).
fn stock_read(e: &Entry, name: &str, toy: Option<&ToyRows>) -> Option<String> {
    let Some(q) = e.quantity() else {
        return Some(format!("{}: query of {name} answered no quantity", e.at()));
    };
    let Some(t) = toy else {
        return (q != INITIAL_STOCK).then(|| {
            format!(
                "{}: query of {name} answered {q}, but the toy never changed from 100",
                e.at()
            )
        });
    };
    let Some(last) = t.last_seq_of.get(&q).copied() else {
        return Some(format!(
            "{}: query of {name} answered {q}, a stock no journal row left",
            e.at()
        ));
    };
    not_older_than_acknowledged(e, name, q, last, t)
        .or_else(|| bounded_staleness(e, name, q, last, t))
}

/// Check 6: the stock `q` a query answered, last left by journal row `last`, is not older than the
/// take of a purchase acknowledged before the query was sent.
fn not_older_than_acknowledged(
    e: &Entry,
    name: &str,
    q: u64,
    last: u64,
    t: &ToyRows,
) -> Option<String> {
    let by_ack = bound_at(&t.acked, e.invoke.saturating_sub(Duration::from_nanos(1)));
    (last < by_ack).then(|| {
        format!(
            "{}: query of {name} answered {q}, last the stock at journal row {last}, \
             but a purchase whose take is row {by_ack} was acknowledged before the query",
            e.at()
        )
    })
}

/// Check 7: the stock `q` a query answered, last left by journal row `last`, is not older than a
/// row that took effect more than [`STALE_BOUND_MS`] before the query was sent.
fn bounded_staleness(e: &Entry, name: &str, q: u64, last: u64, t: &ToyRows) -> Option<String> {
    let by_clock = bound_at(
        &t.effective,
        e.invoke_unix_ms.saturating_sub(STALE_BOUND_MS),
    );
    (last < by_clock).then(|| {
        format!(
            "{}: query of {name} answered {q}, last the stock at journal row {last}, \
             but row {by_clock} took effect more than {STALE_BOUND_MS} ms before the query",
            e.at()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::history::{classify, Reply};
    use super::*;
    use crate::REPLICAS;
    use serde_json::json;

    fn entry(client: usize, op: Op, at_ms: u64, took_ms: u64, reply: Reply) -> Entry {
        let outcome = classify(&reply);
        let (status, data) = match reply {
            Reply::Status(s, b) => (s, b.get("data").cloned().unwrap_or(Value::Null)),
            _ => (0, Value::Null),
        };
        Entry {
            client,
            op,
            invoke: Duration::from_millis(at_ms),
            invoke_unix_ms: 1_000_000 + at_ms,
            complete: Duration::from_millis(at_ms + took_ms),
            outcome,
            status,
            data,
            detail: String::new(),
        }
    }

    fn buy(id: &str, name: &str, quantity: u64) -> Op {
        Op::Buy {
            request_id: id.into(),
            name: name.into(),
            quantity,
        }
    }

    fn query(name: &str) -> Op {
        Op::Query { name: name.into() }
    }

    fn order(n: u64, name: &str, quantity: u64, id: &str) -> Order {
        Order {
            number: n,
            name: name.into(),
            quantity,
            request_id: id.into(),
            epoch: 1,
        }
    }

    fn row(
        seq: u64,
        kind: &str,
        id: &str,
        name: &str,
        q: u64,
        after: u64,
        at_ms: u64,
    ) -> JournalRow {
        JournalRow {
            seq,
            kind: serde_json::from_value(serde_json::Value::String(kind.into())).expect("a kind"),
            request_id: id.into(),
            name: name.into(),
            quantity: q,
            stock_after: after,
            unix_ms: 1_000_000 + at_ms,
            epoch: 0,
        }
    }

    /// Two purchases of Tux (orders 0 and 1), the second acknowledged at 300 ms.
    fn state() -> FinalState {
        let log = vec![order(0, "Tux", 2, "a"), order(1, "Tux", 1, "b")];
        let text = "number,name,quantity,request_id,epoch\n0,Tux,2,a,1\n1,Tux,1,b,1\n".to_string();
        FinalState {
            files: REPLICAS
                .iter()
                .map(|id| (*id, text.clone(), Ok(log.clone())))
                .collect(),
            journal: vec![
                row(1, "checkpoint", "", "", 0, 0, 0),
                row(2, "take", "a", "Tux", 2, 98, 100),
                row(3, "take", "b", "Tux", 1, 97, 250),
            ],
            stock: BTreeMap::from([("Tux".into(), 97), ("Fox".into(), 100)]),
            reads: BTreeMap::from([
                (0, (200, json!({"number": 0, "name": "Tux", "quantity": 2}))),
                (1, (200, json!({"number": 1, "name": "Tux", "quantity": 1}))),
            ]),
            problems: Vec::new(),
            catalog_outages: Vec::new(),
        }
    }

    fn good_history() -> Vec<Entry> {
        let created = |n: u64| Reply::Status(200, json!({"data": {"order_number": n}}));
        let stock = |q: u64| Reply::Status(200, json!({"data": {"name": "Tux", "quantity": q}}));
        vec![
            entry(0, buy("a", "Tux", 2), 50, 100, created(0)),
            entry(1, query("Tux"), 120, 10, stock(100)),
            entry(1, buy("b", "Tux", 1), 200, 100, created(1)),
            entry(2, query("Tux"), 310, 10, stock(97)),
            entry(
                2,
                buy("c", "Tux", 500),
                320,
                10,
                Reply::Status(409, Value::Null),
            ),
            entry(
                2,
                buy("d", "Fox", 1),
                330,
                10,
                Reply::Status(503, Value::Null),
            ),
            entry(
                2,
                Op::OrderQuery { number: 1 },
                340,
                10,
                Reply::Status(
                    200,
                    json!({"data": {"number": 1, "name": "Tux", "quantity": 1}}),
                ),
            ),
        ]
    }

    /// `f` found exactly one violation, and it says `text`.
    fn assert_one_violation(f: &Findings, text: &str) {
        assert_eq!(f.violations.len(), 1, "{:?}", f.violations);
        assert!(f.violations[0].contains(text), "{}", f.violations[0]);
    }

    #[test]
    fn a_history_that_keeps_every_promise_passes() {
        let f = check(&good_history(), &state());
        assert_eq!(f.violations, Vec::<String>::new());
        assert_eq!(f.orders, 2);
    }

    #[test]
    fn a_lost_or_changed_acknowledged_order_is_found() {
        let mut s = state();
        for (_, text, rows) in &mut s.files {
            text.truncate(text.len() - "1,Tux,1,b,1\n".len());
            rows.as_mut().unwrap().pop();
        }
        let f = check(&good_history(), &s);
        let all = f.violations.join("\n");
        assert!(
            all.contains("acknowledged order 1 (Tux x1, request b) is missing"),
            "{all}"
        );
        assert!(all.contains("take at journal row 3"), "{all}");
        assert!(all.contains("GET /orders/1 answered"), "{all}");
    }

    #[test]
    fn replicas_that_differ_are_found() {
        let mut s = state();
        s.files[2].1.push_str("2,Fox,1,x,2\n");
        let f = check(&good_history(), &s);
        assert!(
            f.violations[0].contains("orders-3.csv (4 lines) differs"),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn a_failed_purchase_that_left_an_order_is_found() {
        let mut h = good_history();
        // The 409 of "c" was in truth applied: its order and take are in the files.
        let mut s = state();
        let extra = order(2, "Tux", 500, "c");
        for (_, text, rows) in &mut s.files {
            text.push_str("2,Tux,500,c,1\n");
            rows.as_mut().unwrap().push(extra.clone());
        }
        s.journal.push(row(4, "take", "c", "Tux", 500, 0, 330));
        let f = check(&h, &s);
        assert!(
            f.violations
                .iter()
                .any(|v| v.contains("purchase c (Tux x500) was answered only failures (409)")),
            "{:?}",
            f.violations
        );
        // With an unknown attempt too, the order may honestly exist.
        h.push(entry(
            2,
            buy("c", "Tux", 500),
            400,
            10,
            Reply::Lost("reset".into()),
        ));
        let f = check(&h, &s);
        assert!(
            !f.violations.iter().any(|v| v.contains("purchase c")),
            "{:?}",
            f.violations
        );
        assert_eq!((f.unknown_purchases, f.unknown_applied), (1, 1));
    }

    #[test]
    fn a_query_older_than_an_acknowledged_purchase_is_found() {
        let mut h = good_history();
        // Invoked after "b" was acknowledged (at 300 ms), answered the stock from before its take.
        h.push(entry(
            3,
            query("Tux"),
            301,
            5,
            Reply::Status(200, json!({"data": {"name": "Tux", "quantity": 98}})),
        ));
        assert_one_violation(&check(&h, &state()), "take is row 3");
        // Sent before the acknowledgement, the same answer is fine.
        let last = h.last_mut().unwrap();
        last.invoke = Duration::from_millis(299);
        last.invoke_unix_ms = 1_000_299;
        assert_eq!(check(&h, &state()).violations, Vec::<String>::new());
    }

    #[test]
    fn a_stock_stale_long_after_its_row_is_found_unless_the_catalog_was_down() {
        let mut h = good_history();
        // Client 3 never bought; long after row 3 it still sees 98.
        let mut e = entry(
            3,
            query("Tux"),
            250 + STALE_BOUND_MS + 10,
            5,
            Reply::Status(200, json!({"data": {"name": "Tux", "quantity": 98}})),
        );
        e.invoke = Duration::from_millis(100); // before the acknowledgement by the run's clock
        h.push(e);
        assert_one_violation(&check(&h, &state()), "took effect more than");
        // The catalog was killed right after row 3 and started again later: row 3 took effect then.
        let mut s = state();
        s.catalog_outages = vec![(1_000_260, 1_000_000 + 250 + STALE_BOUND_MS)];
        assert_eq!(check(&h, &s).violations, Vec::<String>::new());
    }

    #[test]
    fn stock_that_does_not_add_up_is_found() {
        let mut s = state();
        s.stock.insert("Tux".into(), 96);
        let f = check(&good_history(), &s);
        assert!(
            f.violations[0].starts_with("Tux: the catalog has 96"),
            "{:?}",
            f.violations
        );
        let mut s = state();
        s.journal[2].stock_after = 95;
        let f = check(&good_history(), &s);
        assert!(
            f.violations.iter().any(|v| v.contains("journal row 3")),
            "{:?}",
            f.violations
        );
    }

    #[test]
    fn one_number_for_two_purchases_or_a_404_for_an_acknowledged_order_is_found() {
        let mut h = good_history();
        h.push(entry(
            4,
            buy("e", "Fox", 1),
            400,
            10,
            Reply::Status(200, json!({"data": {"order_number": 1}})),
        ));
        h.push(entry(
            4,
            Op::OrderQuery { number: 0 },
            500,
            10,
            Reply::Status(404, Value::Null),
        ));
        let f = check(&h, &state());
        let all = f.violations.join("\n");
        assert!(
            all.contains("order 1 was given to purchase b and to e"),
            "{all}"
        );
        assert!(all.contains("GET /orders/0 answered 404"), "{all}");
    }
}
