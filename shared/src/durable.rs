//! Files that survive a SIGKILL.
//!
//! [`AppendFile`] is an append-only file with group commit: a request appends its line and then waits
//! until the line is on disk. The first waiter to find no sync running writes everything pending and
//! calls `fdatasync` once for all of it; the others wait for that sync. Under load many requests share
//! one sync (about 180 µs here) instead of paying one each.
//!
//! [`write_atomic`] replaces a whole file so that a crash leaves either the old or the new content.
//! [`repair_torn_tail`] cuts a last line that a crash left half written.
//!
//! A new file, a renamed one and a new folder are only durable once the folder that holds them is
//! synced too (a crash can otherwise lose the name while the data are on disk): [`AppendFile::open`]
//! syncs the folder of a file it creates, [`write_atomic`] the folder of the file it renames, and
//! [`create_dir_all`] the parent of every folder it creates.
//!
//! [`AppendFile::time_syncs`] times each group's `fdatasync` in a [`Histogram`] (the services'
//! `/metrics`).

use crate::error::{Error, Result};
use crate::metrics::Histogram;
use parking_lot::{Condvar, Mutex};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An append-only file whose appends become durable in groups.
pub struct AppendFile {
    path: PathBuf,
    state: Mutex<AppendState>,
    synced: Condvar,
    /// Where the duration of each `fdatasync` of a group goes.
    sync_timer: Option<Histogram>,
}

struct AppendState {
    file: File,
    /// Bytes appended but not yet written.
    pending: Vec<u8>,
    /// Ticket of the newest append.
    appended: u64,
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// A waiter is writing and syncing right now.
    syncing: bool,
    /// A failed write or sync: every later wait fails too, since the file's tail is unknown.
    failed: Option<String>,
}

impl AppendFile {
    /// Opens (creating if needed) `path` for appending. A file it creates is durable, its folder
    /// synced, before it returns.
    pub fn open(path: &Path) -> Result<AppendFile> {
        let file = match OpenOptions::new().append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = OpenOptions::new().create(true).append(true).open(path)?;
                sync_parent(path)?;
                f
            }
            Err(e) => return Err(e.into()),
        };
        Ok(AppendFile {
            path: path.to_path_buf(),
            state: Mutex::new(AppendState {
                file,
                pending: Vec::new(),
                appended: 0,
                durable: 0,
                syncing: false,
                failed: None,
            }),
            synced: Condvar::new(),
            sync_timer: None,
        })
    }

    /// Times every `fdatasync` of a group in `h` from now on.
    pub fn time_syncs(&mut self, h: Histogram) {
        self.sync_timer = Some(h);
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `bytes` for the end of the file and returns a ticket for [`AppendFile::wait`]. Appends
    /// reach the file in the order of their calls.
    pub fn append(&self, bytes: &[u8]) -> u64 {
        let mut s = self.state.lock();
        s.pending.extend_from_slice(bytes);
        s.appended += 1;
        s.appended
    }

    /// Returns once the append with `ticket` (and every earlier one) is on disk.
    pub fn wait(&self, ticket: u64) -> Result<()> {
        let mut s = self.state.lock();
        loop {
            if let Some(e) = &s.failed {
                return Err(Error::Io(format!("{}: {e}", self.path.display())));
            }
            if s.durable >= ticket {
                return Ok(());
            }
            if s.syncing {
                self.synced.wait(&mut s);
                continue;
            }
            // This waiter writes the whole group.
            s.syncing = true;
            let batch = std::mem::take(&mut s.pending);
            let upto = s.appended;
            let mut file = s.file.try_clone()?;
            drop(s);
            let result = file.write_all(&batch).and_then(|_| {
                let started = Instant::now();
                let synced = file.sync_data();
                if let Some(h) = &self.sync_timer {
                    h.observe_duration(started.elapsed());
                }
                synced
            });
            s = self.state.lock();
            s.syncing = false;
            match result {
                Ok(()) => s.durable = upto,
                Err(e) => s.failed = Some(e.to_string()),
            }
            self.synced.notify_all();
        }
    }

    /// Appends and waits: one durable write.
    pub fn append_durably(&self, bytes: &[u8]) -> Result<()> {
        let ticket = self.append(bytes);
        self.wait(ticket)
    }

    /// Makes everything appended so far durable.
    pub fn flush(&self) -> Result<()> {
        let ticket = self.state.lock().appended;
        self.wait(ticket)
    }

    /// Replaces the whole file with `contents`, atomically, after everything appended so far is on
    /// disk. Later appends go to the new file.
    pub fn replace(&self, contents: &[u8]) -> Result<()> {
        self.flush()?;
        let mut s = self.state.lock();
        while s.syncing {
            self.synced.wait(&mut s);
        }
        write_atomic(&self.path, contents)?;
        s.file = OpenOptions::new().append(true).open(&self.path)?;
        Ok(())
    }
}

/// Writes `contents` to `path` so that a crash leaves the old file or the new one, never a mix:
/// a temporary file beside it, synced, renamed over it, and the folder synced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_data()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Syncs the folder that holds `path`, so that a name created or renamed in it survives a crash.
pub fn sync_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Syncs the folder `dir` itself (its list of names).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Creates `dir` and every missing folder above it, like [`std::fs::create_dir_all`], and syncs the
/// parent of each folder it created, so that none of them is lost in a crash.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut p = dir;
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p);
        match p.parent() {
            Some(parent) => p = parent,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        sync_parent(created)?;
    }
    Ok(())
}

/// Cuts an unfinished last line (no final newline: a write torn by a crash) off `path`, and returns
/// the text cut, if any, so the caller can log it.
pub fn repair_torn_tail(path: &Path) -> Result<Option<String>> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes)?;
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(None);
    }
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let cut = String::from_utf8_lossy(&bytes[keep..]).to_string();
    truncate(&mut f, keep as u64)?;
    Ok(Some(cut))
}

/// Shortens an open file to `len` bytes and syncs it.
pub fn truncate(f: &mut File, len: u64) -> Result<()> {
    f.set_len(len)?;
    f.seek(SeekFrom::End(0))?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn concurrent_appends_all_land_in_order_of_their_calls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let file = Arc::new(AppendFile::open(&path).unwrap());
        let order = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (file, order) = (file.clone(), order.clone());
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let line = format!("{t}-{i}\n");
                        // Record the order of appends under the same lock as the caller would hold.
                        let ticket = {
                            let mut o = order.lock();
                            o.push(line.clone());
                            file.append(line.as_bytes())
                        };
                        file.wait(ticket).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written, order.lock().concat());
    }

    #[test]
    fn every_group_sync_is_timed() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = AppendFile::open(&dir.path().join("log.csv")).unwrap();
        let h = Histogram::new(crate::metrics::FSYNC_BUCKETS);
        file.time_syncs(h.clone());
        file.append_durably(b"a\n").unwrap();
        let (t1, t2) = (file.append(b"b\n"), file.append(b"c\n"));
        file.wait(t2).unwrap();
        file.wait(t1).unwrap();
        assert_eq!(h.count(), 2, "two groups, two syncs");
        assert!(h.sum() > 0.0);
    }

    #[test]
    fn replace_swaps_the_content_and_appends_continue_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        let file = AppendFile::open(&path).unwrap();
        file.append_durably(b"a\nb\n").unwrap();
        file.replace(b"x\n").unwrap();
        file.append_durably(b"y\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\ny\n");
    }

    #[test]
    fn finding_7_open_creates_a_missing_file_syncs_its_folder_and_keeps_an_existing_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.csv");
        AppendFile::open(&path)
            .unwrap()
            .append_durably(b"a\n")
            .unwrap();
        AppendFile::open(&path)
            .unwrap()
            .append_durably(b"b\n")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        // A folder that does not exist is an error, not a created file.
        assert!(AppendFile::open(&dir.path().join("no/such.csv")).is_err());
    }

    #[test]
    fn finding_7_create_dir_all_creates_every_missing_folder_and_syncs_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all(&deep).unwrap();
        // A relative path syncs the current folder as the parent of its first component.
        sync_parent(Path::new("file-in-the-current-folder")).unwrap();
        sync_dir(dir.path()).unwrap();
        assert!(sync_dir(&dir.path().join("missing")).is_err());
        let file = dir.path().join("a/f");
        std::fs::write(&file, "x").unwrap();
        assert!(create_dir_all(&file.join("sub")).is_err());
    }

    #[test]
    fn write_atomic_replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.csv");
        write_atomic(&path, b"one\n").unwrap();
        write_atomic(&path, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two\n");
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_torn_last_line_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.csv");
        std::fs::write(&path, "h\n1,a\n2,b").unwrap();
        assert_eq!(repair_torn_tail(&path).unwrap().as_deref(), Some("2,b"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "h\n1,a\n");
        assert_eq!(repair_torn_tail(&path).unwrap(), None);
        assert_eq!(repair_torn_tail(&dir.path().join("missing")).unwrap(), None);
    }
}
