//! Hosts for a test on one machine: one network namespace per service, all joined by a bridge in a
//! namespace of its own, and links that can be cut and healed while the store runs. Made with
//! iproute2 alone (no iptables), so it needs root; [`Hosts::up`] says so when it is missing.
//!
//! The test itself stays in this machine's namespace and reaches the hosts through one more port
//! on the bridge, at `NET.1`. Each set of hosts has its own name prefix and its own `/24`, so tests
//! that make hosts at the same time do not meet; [`Hosts`] removes everything it made when it is
//! dropped, also when the test panics.
//!
//! Two kinds of fault, as a network gives them:
//! - [`Hosts::cut`]: a blackhole route on each side, so the two hosts no longer reach each other
//!   while both still reach everyone else;
//! - [`Hosts::unplug`]: the host's port on the bridge is set down, and its packets vanish without an
//!   answer (a silent host: no connection is refused, every call waits for its timeout).

use crate::cluster::{Host, Layout, Ports};
use std::process::Command;

/// The store's services, as the hosts name them, with the last byte of each address.
pub const SERVICES: [(&str, u8); 5] = [
    ("frontend", 2),
    ("catalog", 3),
    ("order1", 4),
    ("order2", 5),
    ("order3", 6),
];

/// The short name of a service's namespace and bridge port (interface names have 15 bytes).
fn short(service: &str) -> &str {
    match service {
        "frontend" => "fe",
        "catalog" => "cat",
        "order1" => "o1",
        "order2" => "o2",
        "order3" => "o3",
        other => other,
    }
}

/// Runs `ip ARGS`; the command and its error when it fails.
fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip (iproute2): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A set of hosts on one bridge, removed when dropped.
pub struct Hosts {
    prefix: String,
    net: String,
    /// Blackhole routes in place: (namespace, address).
    cuts: Vec<(String, String)>,
    /// Services whose bridge port is down.
    unplugged: Vec<String>,
}

impl Hosts {
    /// Makes the hosts: namespaces `PREFIX` + `fe`, `cat`, `o1`, `o2`, `o3` on the network `NET.0/24`
    /// (`net` is its first three bytes), and this machine's port at `NET.1`. `prefix` is at most 9
    /// bytes. Fails, with the reason, without root or when hosts of that prefix exist already.
    pub fn up(prefix: &str, net: &str) -> Result<Hosts, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "this test makes network namespaces, veth pairs and a bridge: it must run as root"
                    .into(),
            );
        }
        if prefix.len() > 9 {
            return Err(format!("prefix `{prefix}` is longer than 9 bytes"));
        }
        let hosts = Hosts {
            prefix: prefix.to_string(),
            net: net.to_string(),
            cuts: Vec::new(),
            unplugged: Vec::new(),
        };
        if std::path::Path::new(&format!("/run/netns/{}", hosts.switch())).exists() {
            return Err(format!(
                "hosts with prefix {prefix} exist already (another run, or one that was killed): \
                 remove them with `ip netns del` for each {prefix}* namespace"
            ));
        }
        // Dropped on an error half way: what was made is removed.
        hosts.make()?;
        Ok(hosts)
    }

    fn switch(&self) -> String {
        format!("{}sw", self.prefix)
    }

    /// The namespace of `service`.
    pub fn netns(&self, service: &str) -> String {
        format!("{}{}", self.prefix, short(service))
    }

    /// The address of `service`.
    pub fn ip(&self, service: &str) -> String {
        let last = SERVICES
            .iter()
            .find(|(s, _)| *s == service)
            .map(|(_, n)| *n)
            .unwrap_or_else(|| panic!("no host for {service}"));
        format!("{}.{last}", self.net)
    }

    fn make(&self) -> Result<(), String> {
        let sw = self.switch();
        ip(&["netns", "add", &sw])?;
        ip(&["-n", &sw, "link", "set", "lo", "up"])?;
        ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &sw, "link", "set", "br0", "up"])?;
        for (service, _) in SERVICES {
            let ns = self.netns(service);
            ip(&["netns", "add", &ns])?;
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            self.plug(&ns, Some(&ns), &format!("{}/24", self.ip(service)))?;
        }
        // This machine's own port on the bridge, for the test's calls.
        let own = format!("{}t", self.prefix);
        self.plug(&own, None, &format!("{}.1/24", self.net))
    }

    /// A veth pair `port` (on the bridge) and `port`h: moved into `netns` as eth0, or left here.
    fn plug(&self, port: &str, netns: Option<&str>, addr: &str) -> Result<(), String> {
        let sw = self.switch();
        let inner = format!("{port}h");
        ip(&["link", "add", port, "type", "veth", "peer", "name", &inner])?;
        match netns {
            Some(ns) => {
                ip(&["link", "set", &inner, "netns", ns])?;
                ip(&["-n", ns, "link", "set", &inner, "name", "eth0"])?;
                ip(&["-n", ns, "addr", "add", addr, "dev", "eth0"])?;
                ip(&["-n", ns, "link", "set", "eth0", "up"])?;
            }
            None => {
                ip(&["addr", "add", addr, "dev", &inner])?;
                ip(&["link", "set", &inner, "up"])?;
            }
        }
        ip(&["link", "set", port, "netns", &sw])?;
        ip(&["-n", &sw, "link", "set", port, "master", "br0"])?;
        ip(&["-n", &sw, "link", "set", port, "up"])
    }

    /// Every service on its host, with the ports of `base`.
    pub fn layout(&self, base: u16) -> Layout {
        let host = |service: &str| Host {
            netns: Some(self.netns(service)),
            ip: self.ip(service),
        };
        Layout {
            frontend: host("frontend"),
            catalog: host("catalog"),
            orders: [host("order1"), host("order2"), host("order3")],
            relay: Host::local(),
            ports: Ports::from_base(base),
            relayed: false,
        }
    }

    /// Cuts the link between services `a` and `b` (both ways); each still reaches the others.
    pub fn cut(&mut self, a: &str, b: &str) -> Result<(), String> {
        for (from, to) in [(a, b), (b, a)] {
            let (ns, addr) = (self.netns(from), self.ip(to));
            ip(&[
                "-n",
                &ns,
                "route",
                "add",
                "blackhole",
                &format!("{addr}/32"),
            ])?;
            self.cuts.push((ns, addr));
        }
        Ok(())
    }

    /// Takes `service`'s host off the bridge: its packets are dropped without an answer.
    pub fn unplug(&mut self, service: &str) -> Result<(), String> {
        let port = self.netns(service);
        ip(&["-n", &self.switch(), "link", "set", &port, "down"])?;
        self.unplugged.push(port);
        Ok(())
    }

    /// Undoes every cut and unplug.
    pub fn heal(&mut self) -> Result<(), String> {
        for (ns, addr) in std::mem::take(&mut self.cuts) {
            ip(&[
                "-n",
                &ns,
                "route",
                "del",
                "blackhole",
                &format!("{addr}/32"),
            ])?;
        }
        for port in std::mem::take(&mut self.unplugged) {
            ip(&["-n", &self.switch(), "link", "set", &port, "up"])?;
        }
        Ok(())
    }
}

impl Drop for Hosts {
    /// Kills what still runs in the hosts and removes them; deleting the switch's namespace
    /// removes every veth pair with it.
    fn drop(&mut self) {
        let mut all: Vec<String> = SERVICES.iter().map(|(s, _)| self.netns(s)).collect();
        all.push(self.switch());
        for ns in all {
            if let Ok(out) = Command::new("ip").args(["netns", "pids", &ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(pid) = pid.parse::<i32>() {
                        // SAFETY: kill has no memory preconditions; the pid runs in our namespace.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            let _ = ip(&["netns", "del", &ns]);
        }
    }
}
