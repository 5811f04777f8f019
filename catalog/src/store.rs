//! The catalog's state and its files (see the crate docs for the file formats).

use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use shared::durable::{repair_torn_tail, write_atomic, AppendFile};
use shared::protocol::{Product, Purchase, TakeRecord, TakeReply};
use shared::{log, Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Stock a toy is set to when new and when restocked.
pub const RESTOCK_QUANTITY: u64 = 100;

/// The toys of a new catalog, with their prices.
pub const DEFAULT_TOYS: [(&str, f64); 10] = [
    ("Tux", 25.99),
    ("Whale", 34.99),
    ("Elephant", 29.99),
    ("Bird", 15.99),
    ("Fox", 22.50),
    ("Python", 19.99),
    ("Lego", 49.99),
    ("Barbie", 24.99),
    ("Frisbee", 9.99),
    ("Marbles", 5.49),
];

/// File name of the stock snapshot.
pub const CATALOG_FILE: &str = "catalog.csv";
/// File name of the journal.
pub const JOURNAL_FILE: &str = "catalog-journal.csv";

/// One row of `catalog.csv`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct StockRow {
    name: String,
    price: f64,
    quantity: u64,
}

/// One row of `catalog-journal.csv`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JournalRow {
    /// Sequence number, one more per row.
    pub seq: u64,
    /// `take`, `restock` or `checkpoint`.
    pub kind: String,
    /// The purchase's request id (empty for restocks and checkpoints).
    pub request_id: String,
    /// The toy (empty for checkpoints).
    pub name: String,
    /// Units taken or added.
    pub quantity: u64,
    /// The toy's stock after this row.
    pub stock_after: u64,
    /// Wall-clock time of the row, ms since the Unix epoch.
    pub unix_ms: u64,
}

struct Take {
    seq: u64,
    name: String,
    quantity: u64,
    unix_ms: u64,
    /// The journal ticket that makes it durable (0 once loaded from the file).
    ticket: u64,
}

struct State {
    /// name -> (price, quantity); a BTreeMap so the file is written in a stable order.
    products: BTreeMap<String, (f64, u64)>,
    takes: HashMap<String, Take>,
    /// Takes in journal order, for listing (request ids).
    take_log: Vec<String>,
    seq: u64,
}

/// The catalog: products, stock and the journal of takes.
pub struct Catalog {
    dir: PathBuf,
    state: Mutex<State>,
    journal: AppendFile,
    /// Names whose stock changed, for the invalidation sender.
    changed_tx: Option<Sender<String>>,
    /// Wakes the snapshot writer.
    snapshot_tx: Option<Sender<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn journal_line(row: &JournalRow) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(row).expect("serialise journal row");
    w.into_inner().expect("in-memory writer")
}

impl Catalog {
    /// Opens the catalog in `dir`: writes the default `catalog.csv` if there is none, replays the
    /// journal after its last checkpoint, and writes a fresh snapshot and checkpoint.
    pub fn open(dir: &Path) -> Result<Catalog> {
        std::fs::create_dir_all(dir)?;
        let catalog_path = dir.join(CATALOG_FILE);
        if !catalog_path.exists() {
            let rows: Vec<StockRow> = DEFAULT_TOYS
                .iter()
                .map(|(n, p)| StockRow {
                    name: n.to_string(),
                    price: *p,
                    quantity: RESTOCK_QUANTITY,
                })
                .collect();
            write_atomic(&catalog_path, &stock_csv(&rows))?;
            log!(
                "catalog",
                "wrote the default {} ({} toys)",
                catalog_path.display(),
                rows.len()
            );
        }
        let mut products = BTreeMap::new();
        let mut reader = csv::Reader::from_path(&catalog_path)?;
        for (i, row) in reader.deserialize::<StockRow>().enumerate() {
            let row = row
                .map_err(|e| Error::Io(format!("{} row {}: {e}", catalog_path.display(), i + 2)))?;
            if !(row.price.is_finite() && row.price >= 0.0) || row.name.is_empty() {
                return Err(Error::Io(format!(
                    "{} row {}: bad name or price",
                    catalog_path.display(),
                    i + 2
                )));
            }
            products.insert(row.name, (row.price, row.quantity));
        }
        if products.is_empty() {
            return Err(Error::Io(format!(
                "{} lists no toys",
                catalog_path.display()
            )));
        }

        let journal_path = dir.join(JOURNAL_FILE);
        if let Some(cut) = repair_torn_tail(&journal_path)? {
            log!(
                "catalog",
                "cut a torn last line off {}: {cut:?}",
                journal_path.display()
            );
        }
        let rows = read_journal(&journal_path)?;
        let last_checkpoint = rows.iter().rposition(|r| r.kind == "checkpoint");
        let mut replayed = 0;
        let mut takes = HashMap::new();
        let mut take_log = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            if r.kind == "take" {
                let t = Take {
                    seq: r.seq,
                    name: r.name.clone(),
                    quantity: r.quantity,
                    unix_ms: r.unix_ms,
                    ticket: 0,
                };
                takes.insert(r.request_id.clone(), t);
                take_log.push(r.request_id.clone());
            }
            if last_checkpoint.is_none_or(|c| i > c) && r.kind != "checkpoint" {
                if let Some(p) = products.get_mut(&r.name) {
                    p.1 = r.stock_after;
                    replayed += 1;
                }
            }
        }
        let seq = rows.last().map_or(0, |r| r.seq);
        let exists = journal_path.exists();
        let journal = AppendFile::open(&journal_path)?;
        if !exists || std::fs::metadata(&journal_path)?.len() == 0 {
            journal.append_durably(b"seq,kind,request_id,name,quantity,stock_after,unix_ms\n")?;
        }
        if replayed > 0 {
            log!(
                "catalog",
                "replayed {replayed} journal rows written after the last clean stop"
            );
        }
        let catalog = Catalog {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                products,
                takes,
                take_log,
                seq,
            }),
            journal,
            changed_tx: None,
            snapshot_tx: None,
        };
        catalog.checkpoint()?;
        Ok(catalog)
    }

    /// Sends the name of every toy whose stock changes to `changed_tx` and wakes `snapshot_tx`.
    pub fn with_notifications(
        mut self,
        changed_tx: Sender<String>,
        snapshot_tx: Sender<()>,
    ) -> Catalog {
        self.changed_tx = Some(changed_tx);
        self.snapshot_tx = Some(snapshot_tx);
        self
    }

    /// The product called `name`.
    pub fn product(&self, name: &str) -> Result<Product> {
        let s = self.state.lock();
        let (price, quantity) = s.products.get(name).ok_or_else(|| unknown(name))?;
        Ok(Product {
            name: name.to_string(),
            price: *price,
            quantity: *quantity,
        })
    }

    /// All products, by name.
    pub fn products(&self) -> Vec<Product> {
        let s = self.state.lock();
        s.products
            .iter()
            .map(|(n, (p, q))| Product {
                name: n.clone(),
                price: *p,
                quantity: *q,
            })
            .collect()
    }

    /// Takes `p.quantity` units of `p.name` for request `p.request_id`, once: a repeated request id
    /// gets the first answer. Returns after the take is on disk.
    pub fn take(&self, p: &Purchase) -> Result<TakeReply> {
        if p.quantity == 0 {
            return Err(Error::BadRequest("quantity must be at least 1".into()));
        }
        let (ticket, reply) = {
            let mut s = self.state.lock();
            if let Some(t) = s.takes.get(&p.request_id) {
                if t.name != p.name || t.quantity != p.quantity {
                    return Err(Error::Conflict(format!(
                        "request id {} was used for {} x {}",
                        p.request_id, t.quantity, t.name
                    )));
                }
                (
                    t.ticket,
                    TakeReply {
                        seq: t.seq,
                        repeated: true,
                    },
                )
            } else {
                let (_, quantity) = s
                    .products
                    .get_mut(&p.name)
                    .ok_or_else(|| unknown(&p.name))?;
                if *quantity < p.quantity {
                    return Err(Error::Conflict(format!(
                        "not enough stock: {} has {} left",
                        p.name, quantity
                    )));
                }
                *quantity -= p.quantity;
                let stock_after = *quantity;
                s.seq += 1;
                let row = JournalRow {
                    seq: s.seq,
                    kind: "take".into(),
                    request_id: p.request_id.clone(),
                    name: p.name.clone(),
                    quantity: p.quantity,
                    stock_after,
                    unix_ms: now_ms(),
                };
                // Appended under the state lock, so the journal's order is the order of the takes.
                let ticket = self.journal.append(&journal_line(&row));
                let take = Take {
                    seq: row.seq,
                    name: row.name,
                    quantity: row.quantity,
                    unix_ms: row.unix_ms,
                    ticket,
                };
                s.takes.insert(p.request_id.clone(), take);
                s.take_log.push(p.request_id.clone());
                (
                    ticket,
                    TakeReply {
                        seq: s.seq,
                        repeated: false,
                    },
                )
            }
        };
        // A repeated id also waits: its first take may still be in the group being synced.
        self.journal.wait(ticket)?;
        if !reply.repeated {
            self.changed(&p.name);
        }
        Ok(reply)
    }

    /// Takes with a journal sequence number above `after`, oldest first, at most `limit`.
    pub fn takes_after(&self, after: u64, limit: usize) -> Vec<TakeRecord> {
        let s = self.state.lock();
        let now = now_ms();
        // Sequence numbers grow along take_log: find the first one above `after` by bisection.
        let start = s.take_log.partition_point(|id| s.takes[id].seq <= after);
        s.take_log[start..]
            .iter()
            .take(limit)
            .map(|id| {
                let t = &s.takes[id];
                TakeRecord {
                    seq: t.seq,
                    request_id: id.clone(),
                    name: t.name.clone(),
                    quantity: t.quantity,
                    age_ms: now.saturating_sub(t.unix_ms),
                }
            })
            .collect()
    }

    /// Sets every toy that is out of stock back to [`RESTOCK_QUANTITY`], durably. Returns the names.
    pub fn restock(&self) -> Result<Vec<String>> {
        let (names, ticket) = {
            let mut s = self.state.lock();
            let names: Vec<String> = s
                .products
                .iter()
                .filter(|(_, (_, q))| *q == 0)
                .map(|(n, _)| n.clone())
                .collect();
            let mut ticket = None;
            for name in &names {
                s.seq += 1;
                let row = JournalRow {
                    seq: s.seq,
                    kind: "restock".into(),
                    request_id: String::new(),
                    name: name.clone(),
                    quantity: RESTOCK_QUANTITY,
                    stock_after: RESTOCK_QUANTITY,
                    unix_ms: now_ms(),
                };
                ticket = Some(self.journal.append(&journal_line(&row)));
                s.products.get_mut(name).expect("listed above").1 = RESTOCK_QUANTITY;
            }
            (names, ticket)
        };
        if let Some(t) = ticket {
            self.journal.wait(t)?;
        }
        for n in &names {
            self.changed(n);
        }
        Ok(names)
    }

    /// Writes `catalog.csv` from memory, atomically.
    pub fn write_snapshot(&self) -> Result<()> {
        let rows: Vec<StockRow> = {
            let s = self.state.lock();
            s.products
                .iter()
                .map(|(n, (p, q))| StockRow {
                    name: n.clone(),
                    price: *p,
                    quantity: *q,
                })
                .collect()
        };
        write_atomic(&self.dir.join(CATALOG_FILE), &stock_csv(&rows))
    }

    /// Writes the snapshot, then a checkpoint row: rows before it need no replay on the next start.
    /// Called at start and at a clean stop.
    pub fn checkpoint(&self) -> Result<()> {
        // Hold the lock across both writes, so no take slips between the snapshot and the checkpoint.
        let mut s = self.state.lock();
        let rows: Vec<StockRow> = s
            .products
            .iter()
            .map(|(n, (p, q))| StockRow {
                name: n.clone(),
                price: *p,
                quantity: *q,
            })
            .collect();
        self.journal.flush()?;
        write_atomic(&self.dir.join(CATALOG_FILE), &stock_csv(&rows))?;
        s.seq += 1;
        let row = JournalRow {
            seq: s.seq,
            kind: "checkpoint".into(),
            request_id: String::new(),
            name: String::new(),
            quantity: 0,
            stock_after: 0,
            unix_ms: now_ms(),
        };
        self.journal.append_durably(&journal_line(&row))
    }

    fn changed(&self, name: &str) {
        if let Some(tx) = &self.changed_tx {
            let _ = tx.try_send(name.to_string());
        }
        if let Some(tx) = &self.snapshot_tx {
            let _ = tx.try_send(());
        }
    }
}

fn unknown(name: &str) -> Error {
    Error::NotFound(format!("no product called {name:?}"))
}

fn stock_csv(rows: &[StockRow]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).expect("serialise stock row");
    }
    w.into_inner().expect("in-memory writer")
}

/// Reads every row of a journal file (none when it does not exist).
pub fn read_journal(path: &Path) -> Result<Vec<JournalRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::new();
    for (i, row) in csv::Reader::from_path(path)?
        .deserialize::<JournalRow>()
        .enumerate()
    {
        rows.push(row.map_err(|e| Error::Io(format!("{} row {}: {e}", path.display(), i + 2)))?);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn purchase(id: &str, name: &str, quantity: u64) -> Purchase {
        Purchase {
            request_id: id.into(),
            name: name.into(),
            quantity,
        }
    }

    #[test]
    fn a_new_catalog_has_ten_toys_of_a_hundred() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let products = c.products();
        assert!(products.len() >= 10);
        assert!(products.iter().all(|p| p.quantity == RESTOCK_QUANTITY));
        let text = std::fs::read_to_string(dir.path().join(CATALOG_FILE)).unwrap();
        assert!(text.starts_with("name,price,quantity\n"), "{text}");
        assert!(text.contains("Tux,25.99,100\n"), "{text}");
    }

    #[test]
    fn takes_check_stock_and_a_repeated_request_id_takes_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let first = c.take(&purchase("r1", "Tux", 30)).unwrap();
        assert!(!first.repeated);
        let again = c.take(&purchase("r1", "Tux", 30)).unwrap();
        assert_eq!(
            again,
            TakeReply {
                seq: first.seq,
                repeated: true
            }
        );
        assert_eq!(c.product("Tux").unwrap().quantity, 70);
        assert!(matches!(
            c.take(&purchase("r2", "Tux", 71)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            c.take(&purchase("r1", "Tux", 5)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            c.take(&purchase("r3", "Nope", 1)),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            c.take(&purchase("r4", "Tux", 0)),
            Err(Error::BadRequest(_))
        ));
        assert!(matches!(
            c.take(&purchase("r5", "Tux", u64::MAX)),
            Err(Error::Conflict(_))
        ));
        assert_eq!(c.product("Tux").unwrap().quantity, 70);
        let listed = c.takes_after(0, 100);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].request_id, "r1");
        assert!(c.takes_after(first.seq, 100).is_empty());
    }

    #[test]
    fn concurrent_buyers_never_oversell() {
        let dir = tempfile::tempdir().unwrap();
        let c = Arc::new(Catalog::open(dir.path()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let c = c.clone();
                std::thread::spawn(move || {
                    (0..40)
                        .filter(|i| c.take(&purchase(&format!("{t}-{i}"), "Fox", 1)).is_ok())
                        .count()
                })
            })
            .collect();
        let sold: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sold, 100);
        assert_eq!(c.product("Fox").unwrap().quantity, 0);
    }

    #[test]
    fn a_crash_loses_no_answered_take_and_forgets_no_request_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Catalog::open(dir.path()).unwrap();
            c.take(&purchase("a", "Lego", 40)).unwrap();
            c.take(&purchase("b", "Lego", 60)).unwrap();
            assert_eq!(c.restock().unwrap(), vec!["Lego".to_string()]);
            c.take(&purchase("c", "Bird", 1)).unwrap();
            // Dropped without a checkpoint or snapshot: as after a SIGKILL.
        }
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.product("Lego").unwrap().quantity, 100);
        assert_eq!(c.product("Bird").unwrap().quantity, 99);
        assert!(c.take(&purchase("a", "Lego", 40)).unwrap().repeated);
        assert_eq!(c.product("Lego").unwrap().quantity, 100);
        let rows = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
        let restocked: u64 = rows
            .iter()
            .filter(|r| r.kind == "restock")
            .map(|r| r.quantity)
            .sum();
        assert_eq!(restocked, 100);
    }

    #[test]
    fn hand_edits_after_a_clean_stop_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Catalog::open(dir.path()).unwrap();
            c.take(&purchase("a", "Tux", 1)).unwrap();
            c.checkpoint().unwrap();
        }
        let path = dir.path().join(CATALOG_FILE);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace("Tux,25.99,99", "Tux,25.99,7");
        std::fs::write(&path, text + "Robot,99.5,3\n").unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.product("Tux").unwrap().quantity, 7);
        assert_eq!(c.product("Robot").unwrap().quantity, 3);
    }

    #[test]
    fn a_torn_journal_line_is_cut_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Catalog::open(dir.path()).unwrap();
            c.take(&purchase("a", "Tux", 1)).unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("99,take,zz,Tu");
        std::fs::write(&path, text).unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.product("Tux").unwrap().quantity, 99);
    }
}
