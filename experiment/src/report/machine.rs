//! The report's "Machine and settings": where and how the measurements ran.

use super::Inputs;
use crate::data::RUN_INFO;
use std::fmt::Write as _;

/// Machine and settings, from `run-info.json`.
pub(super) fn section(o: &mut String, i: &Inputs) {
    let _ = writeln!(o, "## Machine and settings\n");
    let Some(info) = &i.info else {
        let _ = writeln!(o, "(no `{RUN_INFO}`: the machine is unknown)\n");
        return;
    };
    let m = &info.machine;
    let _ = writeln!(o, "| | |\n|---|---|");
    let _ = writeln!(
        o,
        "| CPU | {} ({} online CPUs, `nproc`) |",
        m.cpu_model, m.nproc
    );
    let _ = writeln!(o, "| kernel | {} |", m.kernel);
    if !m.memory.is_empty() {
        let _ = writeln!(o, "| memory | {} |", m.memory);
    }
    if !info.loadavg_start.is_empty() {
        let _ = writeln!(
            o,
            "| load average (1, 5, 15 min) | {} before the run (other work on the machine), {} after it |",
            info.loadavg_start, info.loadavg_end
        );
    }
    let _ = writeln!(o, "| network | {} |", info.network);
    if info.delay_ms > 0 {
        let _ = writeln!(
            o,
            "| added delay | {} ms each way between the client and the front-end (TCP relay) |",
            info.delay_ms
        );
    }
    let _ = writeln!(
        o,
        "| load | {} concurrent client sessions; in the sweep {} runs per (p, cache) setting of {} iterations per \
         client, each a query and with probability p a purchase of 1 to 3 units, then a check of every order made |",
        info.clients,
        info.repeats.max(1),
        info.iterations
    );
    let stock = if info.stock == 0 || info.stock == systest::cluster::NEW_STOCK {
        format!(
            "{} units of each of the ten toys (the contract's new catalog)",
            systest::cluster::NEW_STOCK
        )
    } else {
        format!(
            "{} units of each of the ten toys, so that no purchase is skipped for lack of stock",
            info.stock
        )
    };
    let _ = writeln!(
        o,
        "| store | catalog, three order replicas (quorum 2, every order on disk with fdatasync), front-end; {stock}; restock every {} s |",
        info.restock_interval
    );
    if info.sweep_seconds > 0.0 {
        let _ = writeln!(o, "| sweep took | {:.0} s |", info.sweep_seconds);
    }
    if info.crash_seconds > 0.0 {
        let _ = writeln!(o, "| crash run took | {:.0} s |", info.crash_seconds);
    }
    let _ = writeln!(o);
}
