//! A three-member etcd on loopback, for the benchmark to measure the store against a
//! general-purpose Raft store on the same machine and disk, in the same run, with the same client.
//!
//! Each member runs from the `etcd` on the PATH (Debian's `etcd-server`) with its defaults: a 100 ms
//! heartbeat, a 1 s election timeout, and its write-ahead log fsynced before a put is answered, in
//! a data folder under the same temporary folder as the store's. A put goes to the leader through
//! etcd's JSON gateway (`POST /v3/kv/put`), which spares etcd the forwarding hop a follower would add:
//! the comparison is with etcd at its best.

use base64::Engine as _;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use systest::cluster::{Launch, Procs};

/// Members of the etcd cluster.
pub const MEMBERS: u16 = 3;

/// What to print when `etcd` is not on the PATH.
pub const HOW_TO_GET: &str = "etcd is not on the PATH: `apt-get install etcd-server` (Debian) \
                              installs it, and the benchmark then measures it too";

/// The `etcd` binary on the PATH, if there is one.
pub fn find() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

/// A running etcd cluster; its processes are recorded in the [`Procs`] it was started with.
pub struct Etcd {
    procs: Arc<Procs>,
    /// The leader's client URL.
    pub leader_url: String,
}

impl Etcd {
    /// Starts members `etcd-1..=3` of `binary` with client ports `base, base+2, base+4` and peer
    /// ports `base+1, base+3, base+5` on 127.0.0.1, data under `dir`, and waits (up to 20 s)
    /// until every member is healthy and one is leader.
    pub fn start(binary: &Path, procs: &Arc<Procs>, base: u16, dir: &Path) -> Result<Etcd, String> {
        let client_url = |m: u16| format!("http://127.0.0.1:{}", base + 2 * (m - 1));
        let peer_url = |m: u16| format!("http://127.0.0.1:{}", base + 2 * (m - 1) + 1);
        let cluster = (1..=MEMBERS)
            .map(|m| format!("e{m}={}", peer_url(m)))
            .collect::<Vec<_>>()
            .join(",");
        for m in 1..=MEMBERS {
            let data = dir.join(format!("etcd-{m}"));
            let args = [
                "--name".to_string(),
                format!("e{m}"),
                "--data-dir".into(),
                data.display().to_string(),
                "--listen-client-urls".into(),
                client_url(m),
                "--advertise-client-urls".into(),
                client_url(m),
                "--listen-peer-urls".into(),
                peer_url(m),
                "--initial-advertise-peer-urls".into(),
                peer_url(m),
                "--initial-cluster".into(),
                cluster.clone(),
                "--initial-cluster-state".into(),
                "new".into(),
                "--initial-cluster-token".into(),
                format!("toystore-bench-{base}"),
                "--log-level".into(),
                "error".into(),
            ];
            let launch = Launch {
                log: Some(dir.join(format!("etcd-{m}.log"))),
                ..Launch::new(binary.to_path_buf(), args.to_vec())
            };
            procs.spawn(&format!("etcd-{m}"), &launch)?;
        }
        let agent = crate::resolver::agent(1);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let statuses: Vec<Option<Value>> = (1..=MEMBERS)
                .map(|m| status(&agent, &client_url(m)))
                .collect();
            let leader = statuses.iter().enumerate().find_map(|(i, s)| {
                let s = s.as_ref()?;
                let me = s["header"]["member_id"].as_str()?;
                (s["leader"].as_str() == Some(me)).then(|| client_url(i as u16 + 1))
            });
            if let (Some(leader_url), true) = (leader, statuses.iter().all(Option::is_some)) {
                return Ok(Etcd {
                    procs: procs.clone(),
                    leader_url,
                });
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = (1..=MEMBERS)
                    .map(|m| {
                        let log = dir.join(format!("etcd-{m}.log"));
                        format!(
                            "etcd-{m}: {}",
                            std::fs::read_to_string(log).unwrap_or_default()
                        )
                    })
                    .collect();
                return Err(format!(
                    "etcd did not elect a leader within 20 s:\n{}",
                    logs.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for m in 1..=MEMBERS {
            self.procs.kill(&format!("etcd-{m}"));
        }
    }
}

/// A member's `POST /v3/maintenance/status` (its id and its leader's, as decimal strings).
fn status(agent: &ureq::Agent, url: &str) -> Option<Value> {
    let mut reply = agent
        .post(&format!("{url}/v3/maintenance/status"))
        .header("Content-Type", "application/json")
        .send(&b"{}"[..])
        .ok()?;
    if !reply.status().is_success() {
        return None;
    }
    serde_json::from_slice(&reply.body_mut().read_to_vec().ok()?).ok()
}

/// The body of a put of `value` at `key` through the JSON gateway (both base64, as it wants).
pub fn put_body(key: &str, value: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        r#"{{"key":"{}","value":"{}"}}"#,
        b64.encode(key),
        b64.encode(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_put_body_is_base64_json() {
        assert_eq!(
            put_body("toy", "Tux 1"),
            r#"{"key":"dG95","value":"VHV4IDE="}"#
        );
    }
}
