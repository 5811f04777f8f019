//! The catalog's decisions, as a pure state machine: no locks, files, threads or clocks.
//!
//! Every operation returns a [`Step`]: the journal rows to append (in order, after every row already
//! returned) and the answer, which may be given only once the journal is on disk up to
//! [`Step::after_synced`]. The caller reports what reached the disk with [`Core::synced`]. The core
//! keeps two stocks: the live one, which takes are checked against so that concurrent buyers never
//! oversell, and the stock as of the rows on disk, which is what queries see and what the snapshot
//! (`catalog.csv`) holds, so that neither ever shows a take a crash could still undo.
//!
//! The rules, per request id: taken once (a repeat answers the same row); refused for good once
//! refused (for want of stock, or by a cancel); never both. The fence is the newest leader epoch
//! seen in a take, a cancel or a listing; a take of a new id with an older epoch is turned away
//! with [`Error::Stale`], which is not a refusal of the id: the leader that sent
//! it was replaced, and its successor may still take that id for the same purchase (the old leader
//! answers 504, the outcome is its successor's). Every refusal that is remembered, and every raise
//! of the fence, is a journal row, so a restart ([`Core::replay`]) rebuilds exactly the same state
//! (journals written before stale takes were turned away keep their stale refusals for good).

use shared::protocol::{
    valid_request_id, validate_purchase, Ballot, CancelReply, CancelRequest, Epoch, Product,
    TakeRecord, TakeReply, TakeRequest, REQUEST_ID_RULE,
};
use shared::{Error, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};

pub use shared::files::{JournalKind as Kind, JournalRow, JOURNAL_HEADER, RESTOCK_QUANTITY};

/// Why a request id was refused for good.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// A take of `epoch` arrived after the catalog had seen the newer `fence`.
    Stale {
        /// The take's epoch.
        epoch: Epoch,
        /// The fence it was below.
        fence: Epoch,
    },
    /// A take of `quantity` of `name` found only `left`.
    NoStock {
        /// The toy.
        name: String,
        /// Units asked for.
        quantity: u64,
        /// Units there were.
        left: u64,
    },
    /// A leader cancelled the id before any take of it.
    Cancelled,
}

impl Refusal {
    /// The error a take of a request id refused this way is answered with (409).
    pub fn error(&self, request_id: &str) -> Error {
        Error::Conflict(match self {
            Refusal::Stale { epoch, fence } => format!(
                "request id {request_id} refused for good: its leader epoch {epoch} is older than \
                 epoch {fence}, the newest this catalog has seen"
            ),
            Refusal::NoStock {
                name,
                quantity,
                left,
            } => format!(
                "not enough stock: {name} had {left} left for {quantity} (request id \
                 {request_id} refused for good)"
            ),
            Refusal::Cancelled => {
                format!("request id {request_id} was cancelled: refused for good")
            }
        })
    }
}

/// What the catalog knows of a request id.
#[derive(Debug, Clone, PartialEq)]
pub enum IdState {
    /// Stock was taken for it, in journal row `seq`.
    Taken {
        /// The take's journal row.
        seq: u64,
        /// The toy.
        name: String,
        /// Units taken.
        quantity: u64,
        /// The leader epoch of the take.
        epoch: Epoch,
        /// When, by the catalog's clock.
        unix_ms: u64,
    },
    /// It was refused for good, in journal row `seq`.
    Refused {
        /// The refusal's journal row.
        seq: u64,
        /// Why.
        reason: Refusal,
    },
}

/// The outcome of one operation.
#[derive(Debug)]
#[must_use]
pub struct Step<T> {
    /// Rows to append to the journal, in order.
    pub rows: Vec<JournalRow>,
    /// The answer.
    pub answer: Result<T>,
    /// The answer may be given once every row up to this seq is on disk (0: at once).
    pub after_synced: u64,
}

/// The catalog's state.
#[derive(Debug)]
pub struct Core {
    /// name -> (price, live stock); a BTreeMap so listings and the file keep a stable order.
    products: BTreeMap<String, (f64, u64)>,
    /// name -> stock as of the rows on disk.
    durable: BTreeMap<String, u64>,
    /// Stock changes (seq, name, stock after) not yet on disk, oldest first.
    pending: VecDeque<(u64, String, u64)>,
    ids: HashMap<String, IdState>,
    /// Takes in journal order: (seq, request id).
    take_log: Vec<(u64, String)>,
    fence: Epoch,
    seq: u64,
    synced: u64,
}

impl Core {
    /// A catalog of `products` (name -> (price, stock)) with an empty journal.
    pub fn new(products: BTreeMap<String, (f64, u64)>) -> Core {
        Core::replay(products, &[])
    }

    /// The catalog of `products` as read from `catalog.csv`, with the journal's `rows` (all on
    /// disk) replayed: every row rebuilds request ids and the fence; take and restock rows after the
    /// last checkpoint set their toy's stock.
    pub fn replay(products: BTreeMap<String, (f64, u64)>, rows: &[JournalRow]) -> Core {
        let durable = products.iter().map(|(n, (_, q))| (n.clone(), *q)).collect();
        let mut core = Core {
            products,
            durable,
            pending: VecDeque::new(),
            ids: HashMap::new(),
            take_log: Vec::new(),
            fence: 0,
            seq: 0,
            synced: 0,
        };
        let last_checkpoint = rows.iter().rposition(|r| r.kind == Kind::Checkpoint);
        for (i, r) in rows.iter().enumerate() {
            core.record(r.clone(), last_checkpoint.is_none_or(|c| i > c));
        }
        core.synced(core.seq);
        core
    }

    /// Takes stock for `r`, once per request id.
    pub fn take(&mut self, r: &TakeRequest, now_ms: u64) -> Step<TakeReply> {
        if let Err(e) = validate_purchase(&r.request_id, &r.name, r.quantity) {
            return at_once(Err(e));
        }
        match self.ids.get(&r.request_id).cloned() {
            Some(IdState::Taken {
                seq,
                name,
                quantity,
                ..
            }) => {
                let answer = if name == r.name && quantity == r.quantity {
                    Ok(TakeReply {
                        seq,
                        repeated: true,
                    })
                } else {
                    Err(Error::Conflict(format!(
                        "request id {} was used for {quantity} x {name}",
                        r.request_id
                    )))
                };
                self.repeat(seq, r.epoch, now_ms, answer)
            }
            Some(IdState::Refused { seq, reason }) => {
                let answer = Err(reason.error(&r.request_id));
                self.repeat(seq, r.epoch, now_ms, answer)
            }
            None => {
                let Some(&(_, left)) = self.products.get(&r.name) else {
                    return at_once(Err(Error::NotFound(format!(
                        "no product called {:?}",
                        r.name
                    ))));
                };
                if r.epoch < self.fence {
                    return at_once(Err(self.stale()));
                }
                let (kind, stock_after) = if left >= r.quantity {
                    (Kind::Take, left - r.quantity)
                } else {
                    (Kind::Refuse, left)
                };
                let row = self.new_row(
                    kind,
                    &r.request_id,
                    &r.name,
                    r.quantity,
                    stock_after,
                    now_ms,
                    r.epoch,
                );
                let seq = row.seq;
                self.record(row.clone(), true);
                let answer = match &self.ids[&r.request_id] {
                    IdState::Refused { reason, .. } => Err(reason.error(&r.request_id)),
                    IdState::Taken { .. } => Ok(TakeReply {
                        seq,
                        repeated: false,
                    }),
                };
                Step {
                    rows: vec![row],
                    answer,
                    after_synced: seq,
                }
            }
        }
    }

    /// Refuses `r.request_id` for good unless it was taken; answers which.
    pub fn cancel(&mut self, r: &CancelRequest, now_ms: u64) -> Step<CancelReply> {
        if !valid_request_id(&r.request_id) {
            return at_once(Err(Error::BadRequest(REQUEST_ID_RULE.into())));
        }
        match self.ids.get(&r.request_id) {
            Some(IdState::Taken { seq, .. }) => {
                let seq = *seq;
                self.repeat(seq, r.epoch, now_ms, Ok(CancelReply { taken: Some(seq) }))
            }
            Some(IdState::Refused { seq, .. }) => {
                let seq = *seq;
                self.repeat(seq, r.epoch, now_ms, Ok(CancelReply { taken: None }))
            }
            None => {
                let row = self.new_row(Kind::Refuse, &r.request_id, "", 0, 0, now_ms, r.epoch);
                let seq = row.seq;
                self.record(row.clone(), true);
                Step {
                    rows: vec![row],
                    answer: Ok(CancelReply { taken: None }),
                    after_synced: seq,
                }
            }
        }
    }

    /// Sets every toy that is out of stock back to [`RESTOCK_QUANTITY`]; answers their names.
    pub fn restock(&mut self, now_ms: u64) -> Step<Vec<String>> {
        let names: Vec<String> = self
            .products
            .iter()
            .filter(|(_, (_, q))| *q == 0)
            .map(|(n, _)| n.clone())
            .collect();
        let mut rows = Vec::new();
        for name in &names {
            let fence = self.fence;
            let row = self.new_row(
                Kind::Restock,
                "",
                name,
                RESTOCK_QUANTITY,
                RESTOCK_QUANTITY,
                now_ms,
                fence,
            );
            self.record(row.clone(), true);
            rows.push(row);
        }
        let after_synced = rows.last().map_or(0, |r| r.seq);
        Step {
            rows,
            answer: Ok(names),
            after_synced,
        }
    }

    /// Takes on disk with a seq above `after`, oldest first, at most `limit`, for a leader of
    /// `epoch` (which raises the fence).
    pub fn takes_after(
        &mut self,
        after: u64,
        limit: usize,
        now_ms: u64,
        epoch: Epoch,
    ) -> Step<Vec<TakeRecord>> {
        let start = self.take_log.partition_point(|(seq, _)| *seq <= after);
        let listed = self.take_log[start..]
            .iter()
            .take_while(|(seq, _)| *seq <= self.synced)
            .take(limit)
            .filter_map(|(_, id)| match &self.ids[id] {
                IdState::Taken {
                    seq,
                    name,
                    quantity,
                    unix_ms,
                    ..
                } => Some(TakeRecord {
                    seq: *seq,
                    request_id: id.clone(),
                    name: name.clone(),
                    quantity: *quantity,
                    age_ms: now_ms.saturating_sub(*unix_ms),
                }),
                IdState::Refused { .. } => None,
            })
            .collect();
        self.repeat(0, epoch, now_ms, Ok(listed))
    }

    /// Every row up to `seq` is on disk.
    pub fn synced(&mut self, seq: u64) {
        self.synced = self.synced.max(seq.min(self.seq));
        while let Some((s, _, _)) = self.pending.front() {
            if *s > self.synced {
                break;
            }
            let (_, name, stock) = self.pending.pop_front().expect("front exists");
            self.durable.insert(name, stock);
        }
    }

    /// The checkpoint row to append once the snapshot ([`Core::products`]) is written; only when
    /// every row is on disk, since the rows before a checkpoint are not replayed.
    pub fn checkpoint(&mut self, now_ms: u64) -> Result<JournalRow> {
        if self.synced != self.seq {
            return Err(Error::Internal(format!(
                "a checkpoint needs every journal row on disk: {} of {}",
                self.synced, self.seq
            )));
        }
        let fence = self.fence;
        let row = self.new_row(Kind::Checkpoint, "", "", 0, 0, now_ms, fence);
        self.record(row.clone(), true);
        Ok(row)
    }

    /// The product called `name`, with its stock as of the rows on disk.
    pub fn product(&self, name: &str) -> Result<Product> {
        match (self.products.get(name), self.durable.get(name)) {
            (Some((price, _)), Some(quantity)) => Ok(Product {
                name: name.to_string(),
                price: *price,
                quantity: *quantity,
            }),
            _ => Err(Error::NotFound(format!("no product called {name:?}"))),
        }
    }

    /// Every product by name, with its stock as of the rows on disk: what `catalog.csv` holds.
    pub fn products(&self) -> Vec<Product> {
        self.products
            .iter()
            .map(|(n, (price, _))| Product {
                name: n.clone(),
                price: *price,
                quantity: self.durable[n],
            })
            .collect()
    }

    /// Every toy's stock as of the rows on disk, by name.
    pub fn durable_stock(&self) -> impl Iterator<Item = (&str, u64)> {
        self.durable.iter().map(|(n, q)| (n.as_str(), *q))
    }

    /// The live stock of `name`, takes not yet on disk included.
    pub fn live_quantity(&self, name: &str) -> Option<u64> {
        self.products.get(name).map(|(_, q)| *q)
    }

    /// What is known of `request_id`.
    pub fn id_state(&self, request_id: &str) -> Option<&IdState> {
        self.ids.get(request_id)
    }

    /// The newest leader epoch seen.
    pub fn fence(&self) -> Epoch {
        self.fence
    }

    /// The seq of the newest row.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The seq up to which every row is on disk.
    pub fn synced_seq(&self) -> u64 {
        self.synced
    }

    /// The answer to a leader whose epoch is below the fence: it was replaced. Not a refusal of any
    /// request id; the ballot names the fence (its leader is not known here, 0).
    fn stale(&self) -> Error {
        Error::Stale(Ballot {
            epoch: self.fence,
            leader: 0,
        })
    }

    /// An answer that depends on row `seq` (0: none), for a request of `epoch`: raises the fence
    /// with a row of its own when `epoch` is newer.
    fn repeat<T>(&mut self, seq: u64, epoch: Epoch, now_ms: u64, answer: Result<T>) -> Step<T> {
        let mut rows = Vec::new();
        let mut after_synced = seq;
        if epoch > self.fence {
            let row = self.new_row(Kind::Fence, "", "", 0, 0, now_ms, epoch);
            after_synced = row.seq;
            self.record(row.clone(), true);
            rows.push(row);
        }
        Step {
            rows,
            answer,
            after_synced,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn new_row(
        &self,
        kind: Kind,
        request_id: &str,
        name: &str,
        quantity: u64,
        stock_after: u64,
        unix_ms: u64,
        epoch: Epoch,
    ) -> JournalRow {
        JournalRow {
            seq: self.seq + 1,
            kind,
            request_id: request_id.to_string(),
            name: name.to_string(),
            quantity,
            stock_after,
            unix_ms,
            epoch,
        }
    }

    /// Applies one row, new or replayed; `stock`: its stock change applies (false for rows before
    /// the last checkpoint, which `catalog.csv` already holds or a hand edit overrode).
    fn record(&mut self, r: JournalRow, stock: bool) {
        self.seq = r.seq;
        match r.kind {
            Kind::Take => {
                self.take_log.push((r.seq, r.request_id.clone()));
                self.ids.insert(
                    r.request_id.clone(),
                    IdState::Taken {
                        seq: r.seq,
                        name: r.name.clone(),
                        quantity: r.quantity,
                        epoch: r.epoch,
                        unix_ms: r.unix_ms,
                    },
                );
            }
            Kind::Refuse => {
                let reason = if r.name.is_empty() {
                    Refusal::Cancelled
                } else if r.epoch < self.fence {
                    Refusal::Stale {
                        epoch: r.epoch,
                        fence: self.fence,
                    }
                } else {
                    Refusal::NoStock {
                        name: r.name.clone(),
                        quantity: r.quantity,
                        left: r.stock_after,
                    }
                };
                self.ids.insert(
                    r.request_id.clone(),
                    IdState::Refused { seq: r.seq, reason },
                );
            }
            Kind::Restock | Kind::Checkpoint | Kind::Fence => {}
        }
        self.fence = self.fence.max(r.epoch);
        if stock && matches!(r.kind, Kind::Take | Kind::Restock) {
            if let Some((_, q)) = self.products.get_mut(&r.name) {
                *q = r.stock_after;
                self.pending.push_back((r.seq, r.name, r.stock_after));
            }
        }
    }
}

fn at_once<T>(answer: Result<T>) -> Step<T> {
    Step {
        rows: Vec::new(),
        answer,
        after_synced: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_000_000;

    fn toys() -> BTreeMap<String, (f64, u64)> {
        BTreeMap::from([
            ("Fox".to_string(), (22.5, 5)),
            ("Tux".to_string(), (25.99, 100)),
        ])
    }

    fn take(id: &str, name: &str, quantity: u64, epoch: Epoch) -> TakeRequest {
        TakeRequest {
            request_id: id.into(),
            name: name.into(),
            quantity,
            epoch,
        }
    }

    fn cancel(id: &str, epoch: Epoch) -> CancelRequest {
        CancelRequest {
            request_id: id.into(),
            epoch,
        }
    }

    /// The fence a take was turned away below, with no row.
    fn stale<T: std::fmt::Debug>(s: &Step<T>) -> Epoch {
        assert!(s.rows.is_empty(), "{:?}", s.rows);
        match &s.answer {
            Err(Error::Stale(b)) => b.epoch,
            other => panic!("expected a stale refusal, got {other:?}"),
        }
    }

    fn conflict<T: std::fmt::Debug>(s: &Step<T>) -> String {
        match &s.answer {
            Err(Error::Conflict(m)) => m.clone(),
            other => panic!("expected a 409, got {other:?}"),
        }
    }

    /// Syncs every row so far.
    fn sync_all(c: &mut Core) {
        let seq = c.seq();
        c.synced(seq);
    }

    fn quantity(c: &Core, name: &str) -> u64 {
        c.product(name).unwrap().quantity
    }

    #[test]
    fn a_take_journals_a_row_and_is_answered_once_it_is_on_disk() {
        let mut c = Core::new(toys());
        let s = c.take(&take("r1", "Tux", 30, 2), NOW);
        assert_eq!(
            s.rows,
            vec![JournalRow {
                seq: 1,
                kind: Kind::Take,
                request_id: "r1".into(),
                name: "Tux".into(),
                quantity: 30,
                stock_after: 70,
                unix_ms: NOW,
                epoch: 2,
            }]
        );
        assert_eq!(
            s.answer,
            Ok(TakeReply {
                seq: 1,
                repeated: false
            })
        );
        assert_eq!(s.after_synced, 1);
        assert_eq!(c.seq(), 1);
        assert_eq!(c.fence(), 2);
        assert_eq!(c.live_quantity("Tux"), Some(70));
        assert_eq!(
            c.id_state("r1"),
            Some(&IdState::Taken {
                seq: 1,
                name: "Tux".into(),
                quantity: 30,
                epoch: 2,
                unix_ms: NOW
            })
        );
        // Queries see the stock on disk only.
        assert_eq!(quantity(&c, "Tux"), 100);
        c.synced(1);
        assert_eq!(quantity(&c, "Tux"), 70);
        assert_eq!(c.synced_seq(), 1);
    }

    #[test]
    fn the_whole_stock_can_be_taken_but_not_one_more() {
        let mut c = Core::new(toys());
        let s = c.take(&take("a", "Fox", 5, 0), NOW);
        assert!(s.answer.is_ok());
        assert_eq!(c.live_quantity("Fox"), Some(0));
        let s = c.take(&take("b", "Fox", 1, 0), NOW);
        let m = conflict(&s);
        assert!(m.contains("not enough stock"), "{m}");
        assert!(m.contains("Fox had 0 left for 1"), "{m}");
    }

    #[test]
    fn a_take_without_enough_stock_is_refused_for_good_and_journalled() {
        let mut c = Core::new(toys());
        let s = c.take(&take("r1", "Fox", 6, 3), NOW);
        assert_eq!(
            s.rows,
            vec![JournalRow {
                seq: 1,
                kind: Kind::Refuse,
                request_id: "r1".into(),
                name: "Fox".into(),
                quantity: 6,
                stock_after: 5,
                unix_ms: NOW,
                epoch: 3,
            }]
        );
        assert_eq!(s.after_synced, 1);
        let m = conflict(&s);
        assert!(m.contains("Fox had 5 left for 6"), "{m}");
        assert!(m.contains("r1"), "{m}");
        assert_eq!(c.live_quantity("Fox"), Some(5));
        assert_eq!(c.fence(), 3);
        // Restocked, or asked again with less: still refused, with the same answer, no new row.
        let s2 = c.take(&take("r1", "Fox", 1, 3), NOW);
        assert_eq!(conflict(&s2), m);
        assert!(s2.rows.is_empty());
        assert_eq!(s2.after_synced, 1);
        assert_eq!(c.live_quantity("Fox"), Some(5));
        assert!(c.takes_after(0, 10, NOW, 0).answer.unwrap().is_empty());
    }

    #[test]
    fn a_take_of_an_older_epoch_is_turned_away_and_the_id_left_to_the_newer_leader() {
        let mut c = Core::new(toys());
        c.take(&take("new", "Tux", 1, 5), NOW).answer.unwrap();
        // Same epoch: fine.
        c.take(&take("same", "Tux", 1, 5), NOW).answer.unwrap();
        // A replaced leader's take (say, one it asked again after a partition healed) is turned
        // away without a row: it changes nothing, and its id is not refused.
        let s = c.take(&take("old", "Tux", 1, 4), NOW);
        assert_eq!(
            s.answer,
            Err(Error::Stale(Ballot {
                epoch: 5,
                leader: 0
            }))
        );
        assert!(s.rows.is_empty());
        assert_eq!(s.after_synced, 0);
        assert_eq!(c.fence(), 5);
        assert_eq!(c.live_quantity("Tux"), Some(98));
        assert_eq!(c.id_state("old"), None);
        // The newer leader, retrying the same purchase under the same id, takes it.
        let s = c.take(&take("old", "Tux", 1, 5), NOW);
        assert!(!s.answer.unwrap().repeated);
        assert_eq!(s.rows[0].kind, Kind::Take);
        assert_eq!(c.live_quantity("Tux"), Some(97));
    }

    #[test]
    fn a_stale_refusal_in_an_older_journal_stays_refused_for_good() {
        // Journals written before stale takes were turned away hold them as refusals; the promise
        // that answer made (409, for good) is kept.
        let text = format!("{JOURNAL_HEADER}1,take,new,Tux,1,99,6,5\n2,refuse,old,Tux,1,99,7,4\n");
        let rows: Vec<JournalRow> = csv::Reader::from_reader(text.as_bytes())
            .deserialize()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let mut c = Core::replay(toys(), &rows);
        assert_eq!(
            c.id_state("old"),
            Some(&IdState::Refused {
                seq: 2,
                reason: Refusal::Stale { epoch: 4, fence: 5 }
            })
        );
        let m = conflict(&c.take(&take("old", "Tux", 1, 9), NOW));
        assert!(m.contains("epoch 4 is older than epoch 5"), "{m}");
    }

    #[test]
    fn a_repeated_id_answers_the_first_take_once_it_is_on_disk() {
        let mut c = Core::new(toys());
        c.take(&take("r1", "Tux", 30, 1), NOW).answer.unwrap();
        c.take(&take("r2", "Tux", 1, 1), NOW).answer.unwrap();
        let s = c.take(&take("r1", "Tux", 30, 1), NOW);
        assert_eq!(
            s.answer,
            Ok(TakeReply {
                seq: 1,
                repeated: true
            })
        );
        assert!(s.rows.is_empty());
        assert_eq!(s.after_synced, 1);
        assert_eq!(c.live_quantity("Tux"), Some(69));
        // A stale epoch does not undo a take that stands.
        let s = c.take(&take("r1", "Tux", 30, 0), NOW);
        assert!(s.answer.unwrap().repeated);
        assert!(s.rows.is_empty());
    }

    #[test]
    fn a_repeated_id_for_another_purchase_is_a_conflict() {
        let mut c = Core::new(toys());
        c.take(&take("r1", "Tux", 30, 1), NOW).answer.unwrap();
        for other in [take("r1", "Tux", 31, 1), take("r1", "Fox", 30, 1)] {
            let s = c.take(&other, NOW);
            let m = conflict(&s);
            assert!(m.contains("was used for 30 x Tux"), "{m}");
            assert!(s.rows.is_empty());
        }
        assert_eq!(c.live_quantity("Tux"), Some(70));
        assert_eq!(c.live_quantity("Fox"), Some(5));
    }

    #[test]
    fn a_repeat_from_a_newer_leader_raises_the_fence_with_a_row() {
        let mut c = Core::new(toys());
        c.take(&take("r1", "Tux", 1, 1), NOW).answer.unwrap();
        let s = c.take(&take("r1", "Tux", 1, 7), NOW + 5);
        assert_eq!(
            s.rows,
            vec![JournalRow {
                seq: 2,
                kind: Kind::Fence,
                request_id: String::new(),
                name: String::new(),
                quantity: 0,
                stock_after: 0,
                unix_ms: NOW + 5,
                epoch: 7,
            }]
        );
        assert_eq!(s.after_synced, 2);
        assert_eq!(s.answer.unwrap().seq, 1);
        assert_eq!(c.fence(), 7);
        let s = c.take(&take("r2", "Tux", 1, 6), NOW);
        assert_eq!(stale(&s), 7);
    }

    #[test]
    fn bad_takes_and_unknown_products_change_nothing() {
        let mut c = Core::new(toys());
        c.take(&take("r0", "Tux", 1, 3), NOW).answer.unwrap();
        for (t, status) in [
            (take("r1", "Tux", 0, 9), 400),
            (take("", "Tux", 1, 9), 400),
            (take("a b", "Tux", 1, 9), 400),
            (take("r1", "", 1, 9), 400),
            (take("r1", &"N".repeat(10_000), 1, 9), 400),
            (take("r1", "Nope", 1, 9), 404),
            (take("r1", "Nope", 1, 0), 404),
        ] {
            let s = c.take(&t, NOW);
            assert_eq!(s.answer.unwrap_err().status(), status, "{t:?}");
            assert!(s.rows.is_empty());
            assert_eq!(s.after_synced, 0);
        }
        assert_eq!(c.id_state("r1"), None);
        assert_eq!(c.fence(), 3);
        assert_eq!(c.seq(), 1);
        // Not remembered: the id can still be used.
        assert!(c.take(&take("r1", "Tux", 1, 3), NOW).answer.is_ok());
    }

    #[test]
    fn a_huge_quantity_is_refused_not_wrapped() {
        let mut c = Core::new(toys());
        let s = c.take(&take("r1", "Tux", u64::MAX, 0), NOW);
        conflict(&s);
        assert_eq!(c.live_quantity("Tux"), Some(100));
    }

    #[test]
    fn cancel_refuses_an_unknown_id_for_good() {
        let mut c = Core::new(toys());
        let s = c.cancel(&cancel("r1", 4), NOW);
        assert_eq!(s.answer, Ok(CancelReply { taken: None }));
        assert_eq!(
            s.rows,
            vec![JournalRow {
                seq: 1,
                kind: Kind::Refuse,
                request_id: "r1".into(),
                name: String::new(),
                quantity: 0,
                stock_after: 0,
                unix_ms: NOW,
                epoch: 4,
            }]
        );
        assert_eq!(s.after_synced, 1);
        assert_eq!(c.fence(), 4);
        let s = c.take(&take("r1", "Tux", 1, 4), NOW);
        let m = conflict(&s);
        assert!(m.contains("r1 was cancelled"), "{m}");
        assert_eq!(s.after_synced, 1);
        assert_eq!(c.live_quantity("Tux"), Some(100));
        // Cancelling again answers the same.
        let s = c.cancel(&cancel("r1", 4), NOW);
        assert_eq!(s.answer, Ok(CancelReply { taken: None }));
        assert!(s.rows.is_empty());
        assert_eq!(s.after_synced, 1);
    }

    #[test]
    fn cancel_of_a_taken_id_answers_the_take() {
        let mut c = Core::new(toys());
        c.take(&take("x", "Tux", 1, 1), NOW).answer.unwrap();
        c.take(&take("r1", "Tux", 2, 1), NOW).answer.unwrap();
        let s = c.cancel(&cancel("r1", 1), NOW);
        assert_eq!(s.answer, Ok(CancelReply { taken: Some(2) }));
        assert!(s.rows.is_empty());
        assert_eq!(s.after_synced, 2);
        let s = c.cancel(&cancel("r1", 3), NOW);
        assert_eq!(s.answer, Ok(CancelReply { taken: Some(2) }));
        assert_eq!(s.rows.len(), 1);
        assert_eq!(s.after_synced, 3);
        assert_eq!(c.fence(), 3);
        assert_eq!(c.live_quantity("Tux"), Some(97));
    }

    #[test]
    fn cancel_of_a_refused_id_keeps_it_refused_and_a_stale_cancel_still_refuses() {
        let mut c = Core::new(toys());
        c.take(&take("big", "Fox", 50, 5), NOW).answer.unwrap_err();
        let s = c.cancel(&cancel("big", 6), NOW);
        assert_eq!(s.answer, Ok(CancelReply { taken: None }));
        assert_eq!(s.rows[0].kind, Kind::Fence);
        assert_eq!(c.fence(), 6);
        let s = c.cancel(&cancel("gone", 1), NOW);
        assert_eq!(s.answer, Ok(CancelReply { taken: None }));
        assert_eq!(s.rows[0].epoch, 1);
        assert_eq!(c.fence(), 6);
        assert_eq!(
            c.id_state("gone"),
            Some(&IdState::Refused {
                seq: 3,
                reason: Refusal::Cancelled
            })
        );
        let s = c.cancel(&cancel("bad id", 9), NOW);
        assert_eq!(s.answer.unwrap_err().status(), 400);
        assert!(s.rows.is_empty());
        assert_eq!(c.fence(), 6);
    }

    #[test]
    fn restock_sets_toys_out_of_stock_back_to_a_hundred() {
        let mut c = Core::new(toys());
        let s = c.restock(NOW);
        assert_eq!(s.answer, Ok(vec![]));
        assert!(s.rows.is_empty());
        assert_eq!(s.after_synced, 0);
        c.take(&take("a", "Fox", 5, 2), NOW).answer.unwrap();
        c.take(&take("b", "Tux", 99, 2), NOW).answer.unwrap();
        let s = c.restock(NOW + 1);
        assert_eq!(s.answer, Ok(vec!["Fox".to_string()]));
        assert_eq!(
            s.rows,
            vec![JournalRow {
                seq: 3,
                kind: Kind::Restock,
                request_id: String::new(),
                name: "Fox".into(),
                quantity: RESTOCK_QUANTITY,
                stock_after: RESTOCK_QUANTITY,
                unix_ms: NOW + 1,
                epoch: 2,
            }]
        );
        assert_eq!(s.after_synced, 3);
        assert_eq!(c.live_quantity("Fox"), Some(100));
        assert_eq!(c.live_quantity("Tux"), Some(1));
        c.take(&take("c", "Tux", 1, 2), NOW).answer.unwrap();
        let s = c.restock(NOW);
        assert_eq!(s.answer, Ok(vec!["Tux".to_string()]));
        assert_eq!(s.after_synced, 5);
    }

    #[test]
    fn restock_of_two_toys_waits_for_the_last_row() {
        let mut c = Core::new(toys());
        c.take(&take("a", "Fox", 5, 0), NOW).answer.unwrap();
        c.take(&take("b", "Tux", 100, 0), NOW).answer.unwrap();
        let s = c.restock(NOW);
        assert_eq!(s.rows.len(), 2);
        assert_eq!(s.after_synced, 4);
        assert_eq!(s.rows[1].seq, 4);
    }

    #[test]
    fn finding_6_listing_shows_only_takes_on_disk() {
        let mut c = Core::new(toys());
        c.take(&take("a", "Tux", 1, 1), NOW).answer.unwrap();
        c.take(&take("b", "Fox", 9, 1), NOW).answer.unwrap_err();
        c.take(&take("c", "Tux", 2, 1), NOW).answer.unwrap();
        c.take(&take("d", "Tux", 3, 1), NOW + 10).answer.unwrap();
        assert!(c.takes_after(0, 10, NOW, 0).answer.unwrap().is_empty());
        c.synced(3);
        let listed = c.takes_after(0, 10, NOW + 7, 0).answer.unwrap();
        assert_eq!(
            listed,
            vec![
                TakeRecord {
                    seq: 1,
                    request_id: "a".into(),
                    name: "Tux".into(),
                    quantity: 1,
                    age_ms: 7
                },
                TakeRecord {
                    seq: 3,
                    request_id: "c".into(),
                    name: "Tux".into(),
                    quantity: 2,
                    age_ms: 7
                },
            ]
        );
        sync_all(&mut c);
        let ids = |l: Vec<TakeRecord>| l.into_iter().map(|t| t.request_id).collect::<Vec<_>>();
        assert_eq!(
            ids(c.takes_after(0, 10, NOW, 0).answer.unwrap()),
            ["a", "c", "d"]
        );
        assert_eq!(
            ids(c.takes_after(1, 10, NOW, 0).answer.unwrap()),
            ["c", "d"]
        );
        assert_eq!(
            ids(c.takes_after(2, 10, NOW, 0).answer.unwrap()),
            ["c", "d"]
        );
        assert_eq!(ids(c.takes_after(3, 10, NOW, 0).answer.unwrap()), ["d"]);
        assert_eq!(ids(c.takes_after(0, 2, NOW, 0).answer.unwrap()), ["a", "c"]);
        assert!(c.takes_after(4, 10, NOW, 0).answer.unwrap().is_empty());
        // The clock going back gives age 0, not a wrap.
        assert_eq!(c.takes_after(3, 10, NOW, 0).answer.unwrap()[0].age_ms, 0);
    }

    #[test]
    fn a_listing_raises_the_fence_with_a_row() {
        let mut c = Core::new(toys());
        c.take(&take("a", "Tux", 1, 2), NOW).answer.unwrap();
        let s = c.takes_after(0, 10, NOW, 2);
        assert!(s.rows.is_empty());
        assert_eq!(s.after_synced, 0);
        let s = c.takes_after(0, 10, NOW, 1);
        assert!(s.rows.is_empty());
        assert_eq!(c.fence(), 2);
        let s = c.takes_after(0, 10, NOW, 3);
        assert_eq!(s.rows.len(), 1);
        assert_eq!(
            (s.rows[0].kind, s.rows[0].epoch, s.rows[0].seq),
            (Kind::Fence, 3, 2)
        );
        assert_eq!(s.after_synced, 2);
        assert_eq!(c.fence(), 3);
        assert_eq!(stale(&c.take(&take("b", "Tux", 1, 2), NOW)), 3);
    }

    #[test]
    fn finding_3_the_snapshot_holds_only_stock_on_disk() {
        let mut c = Core::new(toys());
        c.take(&take("a", "Tux", 10, 0), NOW).answer.unwrap();
        c.take(&take("b", "Tux", 20, 0), NOW).answer.unwrap();
        c.take(&take("c", "Fox", 5, 0), NOW).answer.unwrap();
        let snap = |c: &Core| -> Vec<(String, u64)> {
            c.products()
                .into_iter()
                .map(|p| (p.name, p.quantity))
                .collect()
        };
        assert_eq!(snap(&c), [("Fox".into(), 5), ("Tux".into(), 100)]);
        c.synced(1);
        assert_eq!(snap(&c), [("Fox".into(), 5), ("Tux".into(), 90)]);
        c.synced(1);
        c.synced(0);
        assert_eq!(c.synced_seq(), 1);
        c.synced(2);
        assert_eq!(snap(&c), [("Fox".into(), 5), ("Tux".into(), 70)]);
        let restock = c.restock(NOW);
        c.synced(99);
        assert_eq!(c.synced_seq(), 4);
        assert_eq!(restock.rows.len(), 1);
        assert_eq!(snap(&c), [("Fox".into(), 100), ("Tux".into(), 70)]);
        assert_eq!(c.products()[0].price, 22.5);
        assert_eq!(c.product("Tux").unwrap().price, 25.99);
        assert!(c.product("Nope").is_err());
    }

    #[test]
    fn a_checkpoint_needs_every_row_on_disk() {
        let mut c = Core::new(toys());
        c.take(&take("a", "Tux", 10, 4), NOW).answer.unwrap();
        assert!(matches!(c.checkpoint(NOW), Err(Error::Internal(_))));
        assert_eq!(c.seq(), 1);
        c.synced(1);
        let row = c.checkpoint(NOW + 2).unwrap();
        assert_eq!(
            row,
            JournalRow {
                seq: 2,
                kind: Kind::Checkpoint,
                request_id: String::new(),
                name: String::new(),
                quantity: 0,
                stock_after: 0,
                unix_ms: NOW + 2,
                epoch: 4,
            }
        );
        assert_eq!(c.seq(), 2);
    }

    /// Every row the core returned, as the journal would hold them.
    fn run(c: &mut Core, journal: &mut Vec<JournalRow>, rows: Vec<JournalRow>) {
        journal.extend(rows);
        sync_all(c);
    }

    #[test]
    fn replay_rebuilds_ids_fence_stock_and_seq() {
        let mut c = Core::new(toys());
        let mut j = Vec::new();
        let s = c.take(&take("a", "Tux", 10, 2), NOW);
        run(&mut c, &mut j, s.rows);
        let s = c.take(&take("no", "Fox", 6, 2), NOW);
        run(&mut c, &mut j, s.rows);
        let s = c.take(&take("all", "Fox", 5, 3), NOW);
        run(&mut c, &mut j, s.rows);
        let s = c.cancel(&cancel("gone", 3), NOW);
        run(&mut c, &mut j, s.rows);
        // Below the fence: turned away, no row, the id untouched.
        let s = c.take(&take("late", "Tux", 1, 2), NOW);
        assert_eq!(stale(&s), 3);
        let s = c.restock(NOW + 3);
        run(&mut c, &mut j, s.rows);
        let s = c.takes_after(0, 10, NOW, 8);
        run(&mut c, &mut j, s.rows);
        assert_eq!(j.len(), 6);

        let r = Core::replay(toys(), &j);
        assert_eq!(r.seq(), 6);
        assert_eq!(r.synced_seq(), 6);
        assert_eq!(r.fence(), 8);
        for id in ["a", "no", "all", "gone", "late"] {
            assert_eq!(r.id_state(id), c.id_state(id), "{id}");
        }
        assert_eq!(r.products(), c.products());
        assert_eq!(r.live_quantity("Tux"), Some(90));
        assert_eq!(r.live_quantity("Fox"), Some(100));
        let mut r = r;
        let listed = r.takes_after(0, 10, NOW + 3, 0).answer.unwrap();
        assert_eq!(listed, c.takes_after(0, 10, NOW + 3, 0).answer.unwrap());
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].age_ms, 3);
        // The next row follows on.
        let s = r.take(&take("next", "Tux", 1, 8), NOW);
        assert_eq!(s.rows[0].seq, 7);
    }

    #[test]
    fn replay_applies_stock_only_after_the_last_checkpoint() {
        let row = |seq, kind, name: &str, stock_after| JournalRow {
            seq,
            kind,
            request_id: format!("r{seq}"),
            name: name.into(),
            quantity: 1,
            stock_after,
            unix_ms: NOW,
            epoch: 0,
        };
        let j = vec![
            row(1, Kind::Take, "Tux", 99),
            row(2, Kind::Checkpoint, "", 0),
            row(3, Kind::Take, "Tux", 50),
            row(4, Kind::Checkpoint, "", 0),
            row(5, Kind::Take, "Fox", 4),
            row(6, Kind::Refuse, "Fox", 77),
            row(7, Kind::Take, "Gone", 3),
        ];
        // catalog.csv was hand-edited after the second checkpoint: Tux 7.
        let mut products = toys();
        products.get_mut("Tux").unwrap().1 = 7;
        let mut c = Core::replay(products, &j);
        assert_eq!(quantity(&c, "Tux"), 7);
        assert_eq!(quantity(&c, "Fox"), 4);
        assert_eq!(c.live_quantity("Fox"), Some(4));
        assert!(c.product("Gone").is_err());
        assert_eq!(c.products().len(), 2);
        // Takes before checkpoints are still known.
        assert!(
            c.take(&take("r1", "Tux", 1, 0), NOW)
                .answer
                .unwrap()
                .repeated
        );
        assert_eq!(
            c.id_state("r6"),
            Some(&IdState::Refused {
                seq: 6,
                reason: Refusal::NoStock {
                    name: "Fox".into(),
                    quantity: 1,
                    left: 77
                }
            })
        );
        // No checkpoint at all: every row's stock applies.
        let c = Core::replay(toys(), &j[..1]);
        assert_eq!(quantity(&c, "Tux"), 99);
        let c = Core::replay(toys(), &[]);
        assert_eq!((c.seq(), c.fence()), (0, 0));
    }

    #[test]
    fn replay_tells_a_stale_refusal_from_a_stock_one() {
        let mut c = Core::new(toys());
        let mut j = Vec::new();
        let s = c.take(&take("a", "Tux", 1, 5), NOW);
        run(&mut c, &mut j, s.rows);
        let s = c.take(&take("much", "Tux", 200, 5), NOW);
        let m = conflict(&s);
        run(&mut c, &mut j, s.rows);
        // A stale refusal as journals written before stale takes were turned away hold it.
        j.push(JournalRow {
            seq: 3,
            kind: Kind::Refuse,
            request_id: "old".into(),
            name: "Tux".into(),
            quantity: 200,
            stock_after: 99,
            unix_ms: NOW,
            epoch: 4,
        });
        let mut r = Core::replay(toys(), &j);
        assert_eq!(conflict(&r.take(&take("much", "Tux", 200, 5), NOW)), m);
        assert_eq!(r.id_state("much"), c.id_state("much"));
        assert_eq!(
            r.id_state("old"),
            Some(&IdState::Refused {
                seq: 3,
                reason: Refusal::Stale { epoch: 4, fence: 5 }
            })
        );
    }

    #[test]
    fn journal_rows_read_with_and_without_the_epoch_column() {
        let old = "seq,kind,request_id,name,quantity,stock_after,unix_ms\n1,take,r1,Tux,2,98,5\n";
        let rows: Vec<JournalRow> = csv::Reader::from_reader(old.as_bytes())
            .deserialize()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(rows[0].epoch, 0);
        assert_eq!(rows[0].kind, Kind::Take);
        let new = format!("{JOURNAL_HEADER}2,refuse,r2,,0,0,6,3\n3,fence,,,0,0,7,4\n");
        let rows: Vec<JournalRow> = csv::Reader::from_reader(new.as_bytes())
            .deserialize()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!((rows[0].kind, rows[0].epoch), (Kind::Refuse, 3));
        assert_eq!(rows[1].kind, Kind::Fence);
    }

    #[test]
    fn messages_name_the_request_and_the_reason() {
        let stale = Refusal::Stale { epoch: 1, fence: 2 }.error("x1");
        assert_eq!(stale.status(), 409);
        assert!(stale.message().contains("x1"), "{stale}");
        let cancelled = Refusal::Cancelled.error("x2").message();
        assert!(cancelled.contains("x2"), "{cancelled}");
        let no = Refusal::NoStock {
            name: "Fox".into(),
            quantity: 3,
            left: 2,
        }
        .error("x3")
        .message();
        assert!(
            no.contains("x3") && no.contains("Fox had 2 left for 3"),
            "{no}"
        );
    }
}
