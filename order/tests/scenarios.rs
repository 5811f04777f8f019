//! Replication scenarios, one file each in `tests/scenarios/`, run against the real replica cores in
//! the simulated store of `harness` (no random faults: every fault is a step of the script).
//!
//! A file is a script of commands; after each command the runner prints what happened (replicas'
//! log lines, answers to purchases) and every replica's state, as lines starting with `| `. The
//! file holds the expected output, so a reader sees the protocol move step by step, and a change in
//! behaviour shows as a difference. `UPDATE_SCENARIOS=1 cargo test -p order --test scenarios`
//! writes the new output into the files (read the difference before committing it).
//!
//! ```text
//! start 3                 three empty replicas, a catalog and a front-end; the front-end chooses
//! buy r1 Tux 1            a purchase through the front-end, run until it is answered
//! buy-async r2 Tux 1      a purchase sent, not waited for
//! retry r2 Tux 1          the client retries with its own request id (never fresh)
//! run 500                 500 ms pass
//! crash 3 / restart 3     SIGKILL (unsynced writes lost) / start again from the disk
//! pause 3 / resume 3      SIGSTOP / SIGCONT
//! cut 3 1 / isolate 3     block both ways between two nodes (1..n, catalog, fe) / around one node
//! slow 3 catalog 3000     delay every message from 3 to the catalog by 3 s
//! disk 2 1000             replica 2's syncs take 1 s
//! slow-take-answers 1800  the catalog's answers to takes arrive 1.8 s late
//! slow-chunks 1500        log chunks between replicas arrive 1.5 s late
//! heal                    undo every cut, slow link and slow disk
//! choose 2                the front-end chooses replica 2 in a new epoch
//! stock Tux 0 / restock   set a toy's stock / restock what is out
//! catalog down|up         the catalog stops answering / answers again
//! check                   every promise over the history so far
//! ```

mod harness;

use harness::{Addr, Faults, Sim};
use std::path::Path;

/// Runs a script; the file's text with fresh output.
fn run(script: &str) -> Result<String, String> {
    let mut sim: Option<Sim> = None;
    let mut out = String::new();
    for line in script.lines() {
        if line.starts_with("| ") || line == "|" {
            continue;
        }
        out.push_str(line);
        out.push('\n');
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with('#') || words.is_empty() {
            continue;
        }
        if words[0] == "start" {
            let n = arg(&words, 1)?;
            let mut s = Sim::new(1, n as u32, 0, 0, Faults::none());
            s.trace_len = 0;
            s.auto_restock = false;
            s.run_until(600);
            sim = Some(s);
        } else {
            let s = sim.as_mut().ok_or("the script must begin with `start N`")?;
            step(s, &words)?;
        }
        let s = sim.as_mut().expect("started");
        for news in s.take_news() {
            out.push_str(&format!("| {news}\n"));
        }
        if words[0] != "check" {
            for state in s.describe() {
                out.push_str(&format!("| {state}\n"));
            }
        }
    }
    Ok(out)
}

fn arg(words: &[&str], i: usize) -> Result<u64, String> {
    words
        .get(i)
        .and_then(|w| w.parse().ok())
        .ok_or_else(|| format!("`{}`: argument {i} must be a number", words.join(" ")))
}

fn addr(word: Option<&&str>) -> Result<Addr, String> {
    match word.copied() {
        Some("catalog") => Ok(Addr::Catalog),
        Some("fe") => Ok(Addr::Frontend),
        Some(w) => w
            .parse()
            .map(Addr::Replica)
            .map_err(|_| format!("{w:?} is not a node")),
        None => Err("a node is missing".into()),
    }
}

/// Runs until the purchase `id` is answered (at most 15 s).
fn until_answered(s: &mut Sim, id: &str) {
    let end = s.now + 15_000;
    while s.pending(id) && s.now < end {
        let t = s.now + 10;
        s.run_until(t);
    }
}

fn step(s: &mut Sim, w: &[&str]) -> Result<(), String> {
    let node = |i| arg(w, i).map(|n| n as u32);
    match w[0] {
        "run" => {
            let t = s.now + arg(w, 1)?;
            s.run_until(t);
        }
        "buy" | "buy-async" | "retry" | "retry-async" => {
            let id = w.get(1).ok_or("a request id is missing")?;
            let toy = w.get(2).ok_or("a toy is missing")?;
            let q = arg(w, 3)?;
            s.buy(id, toy, q, w[0].starts_with("retry"));
            if w[0].ends_with("async") {
                let t = s.now + 5;
                s.run_until(t);
            } else {
                until_answered(s, id);
            }
        }
        "crash" => s.crash(node(1)?),
        "restart" => s.start(node(1)?),
        "pause" => s.pause(node(1)?),
        "resume" => s.resume(node(1)?),
        "cut" => s.cut(addr(w.get(1))?, addr(w.get(2))?),
        "isolate" => {
            let a = addr(w.get(1))?;
            let mut all: Vec<Addr> = s.ids().into_iter().map(Addr::Replica).collect();
            all.extend([Addr::Catalog, Addr::Frontend]);
            for b in all.into_iter().filter(|b| *b != a) {
                s.cut(a, b);
            }
        }
        "slow" => {
            let (a, b) = (addr(w.get(1))?, addr(w.get(2))?);
            s.slow.insert((a, b), arg(w, 3)?);
        }
        "slow-take-answers" => s.slow_take_answers = arg(w, 1)?,
        "slow-chunks" => s.slow_chunks = arg(w, 1)?,
        "disk" => {
            s.sync_ms.insert(node(1)?, arg(w, 2)?);
        }
        "heal" => {
            s.heal_network();
            s.slow.clear();
            s.sync_ms.clear();
            s.slow_take_answers = 0;
            s.slow_chunks = 0;
        }
        "choose" => s.choose(node(1)?),
        "stock" => s.set_stock(w.get(1).ok_or("a toy is missing")?, arg(w, 2)?),
        "restock" => s.restock(),
        "catalog" => s.catalog.up = w.get(1) == Some(&"up"),
        "check" => {
            let bad: Vec<String> = s
                .check()
                .into_iter()
                .filter(|b| !b.starts_with("liveness: some purchases"))
                .collect();
            if bad.is_empty() {
                s.note_news("check: every promise holds".into());
            }
            for b in bad {
                s.note_news(format!("check FAILED: {b}"));
            }
        }
        other => return Err(format!("unknown command {other:?}")),
    }
    Ok(())
}

#[test]
fn scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let update = std::env::var_os("UPDATE_SCENARIOS").is_some();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/scenarios")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failed = Vec::new();
    for f in files {
        let script = std::fs::read_to_string(&f).expect("readable");
        let name = f.file_name().expect("name").to_string_lossy().to_string();
        let out = match run(&script) {
            Ok(o) => o,
            Err(e) => {
                failed.push(format!("{name}: {e}"));
                continue;
            }
        };
        if out.contains("check FAILED") {
            failed.push(format!("{name}: a check failed:\n{out}"));
        }
        if update {
            std::fs::write(&f, &out).expect("writable");
        } else if out != script {
            let (n, (want, got)) = script
                .lines()
                .zip(out.lines())
                .enumerate()
                .find(|(_, (a, b))| a != b)
                .unwrap_or((
                    script.lines().count().min(out.lines().count()),
                    ("(end)", "(end)"),
                ));
            failed.push(format!(
                "{name}: line {} differs\n  expected: {want}\n  got:      {got}\n(UPDATE_SCENARIOS=1 writes the new output)",
                n + 1
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
