//! The store's files, as the contract and the README describe them: their names, header lines and
//! rows, and the toys of a new catalog. The services write them; tests and tools that read a data
//! folder use the same definitions, so a column added here is added for every reader.

use crate::protocol::{Epoch, ReplicaId};
use serde::{Deserialize, Serialize};

/// The toys of a new catalog, with their prices: what `catalog.csv` holds when the catalog writes it.
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

/// Stock a toy has when new, and is set back to when restocked.
pub const RESTOCK_QUANTITY: u64 = 100;

/// File name of the catalog's stock snapshot (`name,price,quantity`).
pub const CATALOG_FILE: &str = "catalog.csv";

/// File name of the catalog's journal (see [`JournalRow`]).
pub const JOURNAL_FILE: &str = "catalog-journal.csv";

/// The journal's header line.
pub const JOURNAL_HEADER: &str = "seq,kind,request_id,name,quantity,stock_after,unix_ms,epoch\n";

/// Header line of an order file (`orders-<id>.csv`, one row a [`crate::protocol::Order`]).
pub const ORDERS_HEADER: &str = "number,name,quantity,request_id,epoch\n";

/// File name of replica `id`'s order log.
pub fn orders_file(id: ReplicaId) -> String {
    format!("orders-{id}.csv")
}

/// File name of replica `id`'s promises (its meta file).
pub fn replica_file(id: ReplicaId) -> String {
    format!("replica-{id}.json")
}

/// What a journal row records.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JournalKind {
    /// Stock taken for a request id.
    Take,
    /// A request id refused for good: a take without enough stock or with a stale epoch, or a cancel.
    Refuse,
    /// An out-of-stock toy set back to [`RESTOCK_QUANTITY`].
    Restock,
    /// `catalog.csv` holds the stock of every row before this one.
    Checkpoint,
    /// The fence was raised (by a listing, or by a repeated request) to `epoch`.
    Fence,
}

/// One row of `catalog-journal.csv`. Only `take` and `restock` rows change stock: for every toy,
/// stock = [`RESTOCK_QUANTITY`] + restocked units - taken units.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JournalRow {
    /// Sequence number, one more per row.
    pub seq: u64,
    /// What the row records.
    pub kind: JournalKind,
    /// The request id (takes and refusals; empty otherwise).
    pub request_id: String,
    /// The toy (empty for checkpoints, fences and cancels).
    pub name: String,
    /// Units taken, asked for (refusals) or added (restocks).
    pub quantity: u64,
    /// The toy's stock after the row (0 when the row names no toy).
    pub stock_after: u64,
    /// Wall-clock time of the row, ms since the Unix epoch.
    pub unix_ms: u64,
    /// The request's leader epoch (takes, refusals), else the fence when the row was written. Journals
    /// written before this column read as 0.
    #[serde(default)]
    pub epoch: Epoch,
}

/// One row as a CSV line, without a header: what an append-only CSV file gets per record.
pub fn csv_line<T: Serialize>(row: &T) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    w.serialize(row).expect("a row serialises to CSV");
    w.into_inner().expect("an in-memory writer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_journal_row_is_one_line_under_its_header() {
        let row = JournalRow {
            seq: 3,
            kind: JournalKind::Take,
            request_id: "r1".into(),
            name: "Big, Tux".into(),
            quantity: 2,
            stock_after: 98,
            unix_ms: 7,
            epoch: 4,
        };
        let line = csv_line(&row);
        assert_eq!(line, b"3,take,r1,\"Big, Tux\",2,98,7,4\n");
        let text = [JOURNAL_HEADER.as_bytes(), &line].concat();
        let read: Vec<JournalRow> = csv::Reader::from_reader(&text[..])
            .deserialize()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, vec![row]);
        assert_eq!(orders_file(2), "orders-2.csv");
    }
}
