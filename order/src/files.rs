//! A replica's files: `orders-<id>.csv` (the log) and `replica-<id>.json` (its promises). Named
//! `files` for what it holds ("store" is the whole toy store); the formats are in [`shared::files`].

use serde::{Deserialize, Serialize};
use shared::durable::{repair_torn_tail, write_atomic, AppendFile};
use shared::protocol::{Ballot, Order, ReplicaId};
use shared::{log, Error, Result};
use std::path::{Path, PathBuf};

pub use shared::files::ORDERS_HEADER;

/// What a replica must remember across a crash besides its orders.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Default)]
pub struct Meta {
    /// The newest leader choice it promised to follow: it refuses anything older, even after a restart.
    pub promised: Ballot,
    /// The leader choice whose log its own log copies.
    pub log_ballot: Ballot,
    /// Orders known committed (may lag: a lower value only means more is compared on resync).
    pub commit: u64,
}

/// The two files of one replica.
pub struct Files {
    who: String,
    orders: AppendFile,
    meta_path: PathBuf,
}

/// `orders-<id>.csv` in `dir`.
pub fn orders_path(dir: &Path, id: ReplicaId) -> PathBuf {
    dir.join(shared::files::orders_file(id))
}

/// One order as a CSV line.
pub fn order_line(o: &Order) -> Vec<u8> {
    shared::files::csv_line(o)
}

/// Reads an order file; a torn or unreadable last line is cut (and logged), a bad line elsewhere is
/// an error naming the line.
pub fn read_orders(path: &Path, who: &str) -> Result<Vec<Order>> {
    if let Some(cut) = repair_torn_tail(path)? {
        log!(who, "cut a torn last line off {}: {cut:?}", path.display());
    }
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
    let mut orders = Vec::new();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let rows: Vec<_> = reader.deserialize::<Order>().collect();
    let count = rows.len();
    for (i, row) in rows.into_iter().enumerate() {
        match row {
            Ok(o) if o.number == orders.len() as u64 => orders.push(o),
            Ok(o) => {
                return Err(Error::Io(format!(
                    "{} line {}: order number {} where {} was expected",
                    path.display(),
                    i + 2,
                    o.number,
                    orders.len()
                )))
            }
            Err(e) if i + 1 == count => {
                log!(
                    who,
                    "dropping an unreadable last line of {} ({e}); it is fetched again from a peer",
                    path.display()
                );
                let keep: Vec<u8> = orders.iter().flat_map(order_line).collect();
                write_atomic(path, &[ORDERS_HEADER.as_bytes(), &keep].concat())?;
            }
            Err(e) => return Err(Error::Io(format!("{} line {}: {e}", path.display(), i + 2))),
        }
    }
    Ok(orders)
}

impl Files {
    /// Opens the files of replica `id` in `dir` and returns them with the orders and meta they hold.
    pub fn open(dir: &Path, id: ReplicaId) -> Result<(Files, Vec<Order>, Meta)> {
        shared::durable::create_dir_all(dir)?;
        let who = format!("order-{id}");
        let path = orders_path(dir, id);
        let orders = read_orders(&path, &who)?;
        let file = AppendFile::open(&path)?;
        if std::fs::metadata(&path)?.len() == 0 {
            file.append_durably(ORDERS_HEADER.as_bytes())?;
        }
        let meta_path = dir.join(shared::files::replica_file(id));
        let meta = match std::fs::read(&meta_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::Io(format!("{}: {e}", meta_path.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Meta::default(),
            Err(e) => return Err(e.into()),
        };
        let meta = Meta {
            commit: meta.commit.min(orders.len() as u64),
            ..meta
        };
        Ok((
            Files {
                who,
                orders: file,
                meta_path,
            },
            orders,
            meta,
        ))
    }

    /// Times every `fdatasync` of the order log in `h`.
    pub fn time_syncs(&mut self, h: shared::metrics::Histogram) {
        self.orders.time_syncs(h);
    }

    /// Queues orders for the end of the file; returns the ticket to wait on.
    pub fn append(&self, orders: &[Order]) -> u64 {
        let bytes: Vec<u8> = orders.iter().flat_map(order_line).collect();
        self.orders.append(&bytes)
    }

    /// Waits until the append with `ticket` is on disk.
    pub fn wait(&self, ticket: u64) -> Result<()> {
        self.orders.wait(ticket)
    }

    /// Rewrites the whole order file (after a conflicting tail was cut).
    pub fn rewrite(&self, orders: &[Order]) -> Result<()> {
        let mut bytes = ORDERS_HEADER.as_bytes().to_vec();
        for o in orders {
            bytes.extend(order_line(o));
        }
        self.orders.replace(&bytes)
    }

    /// Writes the meta file atomically.
    pub fn save_meta(&self, meta: &Meta) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(meta).expect("serialise meta");
        write_atomic(&self.meta_path, &bytes)
    }

    /// The replica's name for logs.
    pub fn who(&self) -> &str {
        &self.who
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(n: u64) -> Order {
        Order {
            number: n,
            name: "Tux".into(),
            quantity: 1,
            request_id: format!("r{n}"),
            epoch: 1,
        }
    }

    #[test]
    fn orders_and_meta_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (files, orders, meta) = Files::open(dir.path(), 2).unwrap();
        assert!(orders.is_empty());
        assert_eq!(meta, Meta::default());
        let t = files.append(&[order(0), order(1)]);
        files.wait(t).unwrap();
        let meta = Meta {
            promised: Ballot {
                epoch: 3,
                leader: 2,
            },
            log_ballot: Ballot {
                epoch: 3,
                leader: 2,
            },
            commit: 2,
        };
        files.save_meta(&meta).unwrap();
        drop(files);
        let (_, orders, again) = Files::open(dir.path(), 2).unwrap();
        assert_eq!(orders, vec![order(0), order(1)]);
        assert_eq!(again, meta);
        let text = std::fs::read_to_string(dir.path().join("orders-2.csv")).unwrap();
        assert_eq!(
            text,
            "number,name,quantity,request_id,epoch\n0,Tux,1,r0,1\n1,Tux,1,r1,1\n"
        );
    }

    #[test]
    fn a_torn_or_garbled_last_line_is_cut_but_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = orders_path(dir.path(), 1);
        std::fs::write(&path, format!("{ORDERS_HEADER}0,Tux,1,r0,1\n1,Tu")).unwrap();
        assert_eq!(Files::open(dir.path(), 1).unwrap().1, vec![order(0)]);
        std::fs::write(
            &path,
            format!("{ORDERS_HEADER}0,Tux,1,r0,1\n1,Tux,x,r1,1\n"),
        )
        .unwrap();
        assert_eq!(Files::open(dir.path(), 1).unwrap().1, vec![order(0)]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{ORDERS_HEADER}0,Tux,1,r0,1\n")
        );
        std::fs::write(
            &path,
            format!("{ORDERS_HEADER}0,Tux,x,r0,1\n1,Tux,1,r1,1\n"),
        )
        .unwrap();
        assert!(Files::open(dir.path(), 1).is_err());
        std::fs::write(
            &path,
            format!("{ORDERS_HEADER}0,Tux,1,r0,1\n5,Tux,1,r1,1\n"),
        )
        .unwrap();
        assert!(Files::open(dir.path(), 1).is_err());
    }
}
