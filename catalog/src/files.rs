//! The catalog's files around its [`Core`]: the journal (group commit), the snapshot, one lock. See
//! the crate docs for the file formats and what is on disk before each answer.

use crate::core::{Core, JournalRow, Step, JOURNAL_HEADER, RESTOCK_QUANTITY};
use crate::metrics::CatalogMetrics;
use crossbeam_channel::Sender;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use shared::durable::{create_dir_all, repair_torn_tail, write_atomic, AppendFile};
use shared::files::csv_line;
use shared::protocol::{
    CancelReply, CancelRequest, Epoch, Product, TakeRecord, TakeReply, TakeRequest,
};
use shared::{log, Error, Result};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

pub use shared::files::{CATALOG_FILE, DEFAULT_TOYS, JOURNAL_FILE};

/// One row of `catalog.csv`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct StockRow {
    name: String,
    price: f64,
    quantity: u64,
}

struct State {
    core: Core,
    /// (seq, journal ticket) of the rows not yet known to be on disk, oldest first.
    tickets: VecDeque<(u64, u64)>,
}

/// The catalog: its core, the journal and the snapshot.
pub struct Catalog {
    dir: PathBuf,
    state: Mutex<State>,
    journal: AppendFile,
    /// Serialises writers of `catalog.csv`, so an older snapshot never replaces a newer one.
    snapshot_lock: Mutex<()>,
    /// Names whose stock changed, for the invalidation sender.
    changed_tx: Option<Sender<String>>,
    /// Wakes the snapshot writer.
    snapshot_tx: Option<Sender<()>>,
    /// Where takes, restocks, stock on disk and journal syncs are counted.
    metrics: Option<CatalogMetrics>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Catalog {
    /// Opens the catalog in `dir`: writes the default `catalog.csv` if there is none, replays the
    /// journal (adding the `epoch` column to a journal written without it), and writes a fresh
    /// snapshot and checkpoint.
    pub fn open(dir: &Path) -> Result<Catalog> {
        create_dir_all(dir)?;
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
        let products = read_stock(&catalog_path)?;

        let journal_path = dir.join(JOURNAL_FILE);
        if let Some(cut) = repair_torn_tail(&journal_path)? {
            log!(
                "catalog",
                "cut a torn last line off {}: {cut:?}",
                journal_path.display()
            );
        }
        let (rows, has_epoch) = read_journal_file(&journal_path)?;
        let core = Core::replay(products, &rows);
        let journal = AppendFile::open(&journal_path)?;
        if std::fs::metadata(&journal_path)?.len() == 0 {
            journal.append_durably(JOURNAL_HEADER.as_bytes())?;
        } else if !has_epoch {
            let mut text = JOURNAL_HEADER.as_bytes().to_vec();
            for r in &rows {
                text.extend(csv_line(r));
            }
            journal.replace(&text)?;
            log!(
                "catalog",
                "added the epoch column to {} ({} rows)",
                journal_path.display(),
                rows.len()
            );
        }
        if !rows.is_empty() {
            log!(
                "catalog",
                "replayed {} journal rows (fence at epoch {})",
                rows.len(),
                core.fence()
            );
        }
        let catalog = Catalog {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                core,
                tickets: VecDeque::new(),
            }),
            journal,
            snapshot_lock: Mutex::new(()),
            changed_tx: None,
            snapshot_tx: None,
            metrics: None,
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

    /// Counts takes, restocks and journal syncs in `metrics`, and keeps its stock gauges at the
    /// stock on disk.
    pub fn with_metrics(mut self, metrics: CatalogMetrics) -> Catalog {
        self.journal.time_syncs(metrics.journal_fsync.clone());
        metrics.set_stock(self.state.lock().core.durable_stock());
        self.metrics = Some(metrics);
        self
    }

    /// The product called `name`, with its stock on disk.
    pub fn product(&self, name: &str) -> Result<Product> {
        self.state.lock().core.product(name)
    }

    /// All products, by name, with their stock on disk.
    pub fn products(&self) -> Vec<Product> {
        self.state.lock().core.products()
    }

    /// The newest leader epoch seen.
    pub fn fence(&self) -> Epoch {
        self.state.lock().core.fence()
    }

    /// Takes stock for `r`, once per request id (see [`Core::take`]). Returns once the answer's row
    /// is on disk.
    pub fn take(&self, r: &TakeRequest) -> Result<TakeReply> {
        let reply = self.run(|c| c.take(r, now_ms()))?;
        if !reply.repeated {
            if let Some(m) = &self.metrics {
                m.takes.inc();
            }
            self.changed(&r.name);
        }
        Ok(reply)
    }

    /// Refuses `r.request_id` for good unless it was taken (see [`Core::cancel`]).
    pub fn cancel(&self, r: &CancelRequest) -> Result<CancelReply> {
        self.run(|c| c.cancel(r, now_ms()))
    }

    /// Takes on disk with a seq above `after`, oldest first, at most `limit`, for a leader of
    /// `epoch`.
    pub fn takes_after(&self, after: u64, limit: usize, epoch: Epoch) -> Result<Vec<TakeRecord>> {
        self.run(|c| c.takes_after(after, limit, now_ms(), epoch))
    }

    /// Sets every toy that is out of stock back to [`RESTOCK_QUANTITY`], durably. Returns the names.
    pub fn restock(&self) -> Result<Vec<String>> {
        let names = self.run(|c| c.restock(now_ms()))?;
        if let Some(m) = &self.metrics {
            m.restocks.inc_by(names.len() as u64);
        }
        for n in &names {
            self.changed(n);
        }
        Ok(names)
    }

    /// Runs one step of the core: appends its rows under the lock (so the journal's order is the
    /// core's), then waits, without the lock, until the answer may be given.
    fn run<T>(&self, f: impl FnOnce(&mut Core) -> Step<T>) -> Result<T> {
        let (answer, wait) = {
            let mut s = self.state.lock();
            let step = f(&mut s.core);
            for row in &step.rows {
                let ticket = self.journal.append(&csv_line(row));
                s.tickets.push_back((row.seq, ticket));
            }
            let wait = if step.after_synced > s.core.synced_seq() {
                let i = s
                    .tickets
                    .partition_point(|(seq, _)| *seq < step.after_synced);
                Some(s.tickets[i])
            } else {
                None
            };
            (step.answer, wait)
        };
        if let Some((seq, ticket)) = wait {
            self.journal.wait(ticket)?;
            let mut s = self.state.lock();
            s.core.synced(seq);
            while s.tickets.front().is_some_and(|(q, _)| *q <= seq) {
                s.tickets.pop_front();
            }
            self.publish_stock(&s.core);
        }
        answer
    }

    /// Sets the stock gauges to the stock on disk (called under the lock, when rows reached it).
    fn publish_stock(&self, core: &Core) {
        if let Some(m) = &self.metrics {
            m.set_stock(core.durable_stock());
        }
    }

    /// Writes `catalog.csv` with the stock on disk, atomically.
    pub fn write_snapshot(&self) -> Result<()> {
        let _writer = self.snapshot_lock.lock();
        let products = self.state.lock().core.products();
        write_atomic(&self.dir.join(CATALOG_FILE), &products_csv(&products))
    }

    /// Writes the snapshot, then a checkpoint row: rows before it need no replay on the next start.
    /// Called at start and at a clean stop.
    pub fn checkpoint(&self) -> Result<()> {
        let _writer = self.snapshot_lock.lock();
        // Hold the lock across both writes, so no take slips between the snapshot and the checkpoint.
        let mut s = self.state.lock();
        self.journal.flush()?;
        let seq = s.core.seq();
        s.core.synced(seq);
        s.tickets.clear();
        write_atomic(
            &self.dir.join(CATALOG_FILE),
            &products_csv(&s.core.products()),
        )?;
        let row = s.core.checkpoint(now_ms())?;
        self.journal.append_durably(&csv_line(&row))?;
        s.core.synced(row.seq);
        self.publish_stock(&s.core);
        Ok(())
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

fn read_stock(path: &Path) -> Result<BTreeMap<String, (f64, u64)>> {
    let mut products = BTreeMap::new();
    let mut reader = csv::Reader::from_path(path)?;
    for (i, row) in reader.deserialize::<StockRow>().enumerate() {
        let row = row.map_err(|e| Error::Io(format!("{} row {}: {e}", path.display(), i + 2)))?;
        if !(row.price.is_finite() && row.price >= 0.0) || row.name.is_empty() {
            return Err(Error::Io(format!(
                "{} row {}: bad name or price",
                path.display(),
                i + 2
            )));
        }
        products.insert(row.name, (row.price, row.quantity));
    }
    if products.is_empty() {
        return Err(Error::Io(format!("{} lists no toys", path.display())));
    }
    Ok(products)
}

fn products_csv(products: &[Product]) -> Vec<u8> {
    let rows: Vec<StockRow> = products
        .iter()
        .map(|p| StockRow {
            name: p.name.clone(),
            price: p.price,
            quantity: p.quantity,
        })
        .collect();
    stock_csv(&rows)
}

fn stock_csv(rows: &[StockRow]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).expect("serialise stock row");
    }
    w.into_inner().expect("in-memory writer")
}

/// Reads every row of a journal file (none when it does not exist), and whether its header has the
/// `epoch` column (true for a missing or empty file).
fn read_journal_file(path: &Path) -> Result<(Vec<JournalRow>, bool)> {
    if !path.exists() || std::fs::metadata(path)?.len() == 0 {
        return Ok((Vec::new(), true));
    }
    let mut reader = csv::Reader::from_path(path)?;
    let has_epoch = reader.headers()?.iter().any(|h| h == "epoch");
    let mut rows = Vec::new();
    for (i, row) in reader.deserialize::<JournalRow>().enumerate() {
        rows.push(row.map_err(|e| Error::Io(format!("{} row {}: {e}", path.display(), i + 2)))?);
    }
    Ok((rows, has_epoch))
}

/// Reads every row of a journal file (none when it does not exist).
pub fn read_journal(path: &Path) -> Result<Vec<JournalRow>> {
    read_journal_file(path).map(|(rows, _)| rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Kind;
    use std::sync::Arc;

    fn take(id: &str, name: &str, quantity: u64) -> TakeRequest {
        TakeRequest {
            request_id: id.into(),
            name: name.into(),
            quantity,
            epoch: 1,
        }
    }

    #[test]
    fn a_new_catalog_has_ten_toys_of_a_hundred() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("new/data")).unwrap();
        let products = c.products();
        assert!(products.len() >= 10);
        assert!(products.iter().all(|p| p.quantity == RESTOCK_QUANTITY));
        let text = std::fs::read_to_string(dir.path().join("new/data").join(CATALOG_FILE)).unwrap();
        assert!(text.starts_with("name,price,quantity\n"), "{text}");
        assert!(text.contains("Tux,25.99,100\n"), "{text}");
        let journal =
            std::fs::read_to_string(dir.path().join("new/data").join(JOURNAL_FILE)).unwrap();
        assert!(journal.starts_with(JOURNAL_HEADER), "{journal}");
    }

    #[test]
    fn takes_check_stock_and_a_repeated_request_id_takes_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let first = c.take(&take("r1", "Tux", 30)).unwrap();
        assert!(!first.repeated);
        let again = c.take(&take("r1", "Tux", 30)).unwrap();
        assert_eq!(
            again,
            TakeReply {
                seq: first.seq,
                repeated: true
            }
        );
        assert_eq!(c.product("Tux").unwrap().quantity, 70);
        assert!(matches!(
            c.take(&take("r2", "Tux", 71)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            c.take(&take("r1", "Tux", 5)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            c.take(&take("r3", "Nope", 1)),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            c.take(&take("r4", "Tux", 0)),
            Err(Error::BadRequest(_))
        ));
        assert_eq!(c.product("Tux").unwrap().quantity, 70);
        let listed = c.takes_after(0, 100, 0).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].request_id, "r1");
        assert!(c.takes_after(first.seq, 100, 0).unwrap().is_empty());
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
                        .filter(|i| c.take(&take(&format!("{t}-{i}"), "Fox", 1)).is_ok())
                        .count()
                })
            })
            .collect();
        let sold: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(sold, 100);
        assert_eq!(c.product("Fox").unwrap().quantity, 0);
        let rows = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(rows.iter().filter(|r| r.kind == Kind::Take).count(), 100);
        assert_eq!(rows.iter().filter(|r| r.kind == Kind::Refuse).count(), 220);
    }

    #[test]
    fn a_crash_loses_no_answered_take_and_forgets_no_request_id() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Catalog::open(dir.path()).unwrap();
            c.take(&take("a", "Lego", 40)).unwrap();
            c.take(&take("b", "Lego", 60)).unwrap();
            assert_eq!(c.restock().unwrap(), vec!["Lego".to_string()]);
            c.take(&take("c", "Bird", 1)).unwrap();
            assert!(c.take(&take("d", "Bird", 100)).is_err());
            assert_eq!(
                c.cancel(&CancelRequest {
                    request_id: "e".into(),
                    epoch: 3
                })
                .unwrap(),
                CancelReply { taken: None }
            );
            // Dropped without a checkpoint or snapshot: as after a SIGKILL.
        }
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.product("Lego").unwrap().quantity, 100);
        assert_eq!(c.product("Bird").unwrap().quantity, 99);
        assert_eq!(c.fence(), 3);
        assert!(c.take(&take("a", "Lego", 40)).unwrap().repeated);
        assert!(matches!(
            c.take(&take("d", "Bird", 1)),
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            c.take(&TakeRequest {
                epoch: 3,
                ..take("e", "Bird", 1)
            }),
            Err(Error::Conflict(_))
        ));
        // The fence survived: epoch 1 is now stale for a new id.
        assert!(matches!(
            c.take(&take("f", "Bird", 1)),
            Err(Error::Stale(b)) if b.epoch == 3
        ));
        assert_eq!(c.product("Bird").unwrap().quantity, 99);
        let rows = read_journal(&dir.path().join(JOURNAL_FILE)).unwrap();
        let restocked: u64 = rows
            .iter()
            .filter(|r| r.kind == Kind::Restock)
            .map(|r| r.quantity)
            .sum();
        assert_eq!(restocked, 100);
    }

    #[test]
    fn finding_3_the_snapshot_never_holds_a_take_that_is_not_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        // A take the core made but whose row has not reached the disk yet.
        c.state
            .lock()
            .core
            .take(&take("unsynced", "Tux", 5), now_ms())
            .answer
            .unwrap();
        c.write_snapshot().unwrap();
        let text = std::fs::read_to_string(dir.path().join(CATALOG_FILE)).unwrap();
        assert!(text.contains("Tux,25.99,100\n"), "{text}");
        assert_eq!(c.product("Tux").unwrap().quantity, 100);
    }

    #[test]
    fn a_journal_without_the_epoch_column_is_read_and_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CATALOG_FILE),
            "name,price,quantity\nTux,25.99,100\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(JOURNAL_FILE),
            "seq,kind,request_id,name,quantity,stock_after,unix_ms\n\
             1,take,old-1,Tux,3,97,5\n2,checkpoint,,,0,0,6\n3,take,old-2,Tux,2,95,7\n",
        )
        .unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.product("Tux").unwrap().quantity, 95);
        // Row 4 is the checkpoint of the start; the repeat from epoch 1 raises the fence (row 5).
        assert!(c.take(&take("old-1", "Tux", 3)).unwrap().repeated);
        assert_eq!(c.take(&take("new", "Tux", 1)).unwrap().seq, 6);
        let text = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert!(text.starts_with(JOURNAL_HEADER), "{text}");
        assert!(text.contains("\n1,take,old-1,Tux,3,97,5,0\n"), "{text}");
        assert!(text.contains("\n4,checkpoint,,,0,0,"), "{text}");
        assert!(text.contains("\n5,fence,,,0,0,"), "{text}");
        assert!(text.contains("\n6,take,new,Tux,1,94,"), "{text}");
        assert!(text.ends_with(",1\n"), "{text}");
    }

    #[test]
    fn hand_edits_after_a_clean_stop_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Catalog::open(dir.path()).unwrap();
            c.take(&take("a", "Tux", 1)).unwrap();
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
            c.take(&take("a", "Tux", 1)).unwrap();
        }
        let path = dir.path().join(JOURNAL_FILE);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("99,take,zz,Tu");
        std::fs::write(&path, text).unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        assert_eq!(c.product("Tux").unwrap().quantity, 99);
    }
}
