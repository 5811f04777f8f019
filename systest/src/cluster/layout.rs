//! Where the store's processes run: their hosts (this machine's loopback, or a network namespace
//! each) and their ports, all from one base port.

use shared::protocol::ReplicaId;

use crate::REPLICAS;

/// The contract's default port of the front-end; [`Ports::from_base`] with it gives the contract's
/// ports.
pub const CONTRACT_BASE_PORT: u16 = 8080;

/// Ports a store reserves from its base: `base..base + PORT_SPAN`. The store itself uses
/// `base..=base + 13`; bases [`PORT_SPAN`] apart never share a port (see the allotment in
/// [`crate::cluster`]).
pub const PORT_SPAN: u16 = 20;

/// Where one process runs: in a network namespace (`None`: in this process's) and bound to an
/// address of that namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The namespace, as `ip netns` names it.
    pub netns: Option<String>,
    /// The address the process binds and others call it on.
    pub ip: String,
}

impl Host {
    /// This machine's loopback.
    pub fn local() -> Host {
        Host {
            netns: None,
            ip: "127.0.0.1".into(),
        }
    }

    /// Parses `[NETNS@]IP`.
    pub fn parse(text: &str) -> Result<Host, String> {
        let (netns, ip) = match text.split_once('@') {
            Some((ns, ip)) => (Some(ns.trim().to_string()), ip.trim()),
            None => (None, text.trim()),
        };
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(format!("`{ip}` is not an IP address"));
        }
        if netns
            .as_deref()
            .is_some_and(|ns| ns.is_empty() || ns.contains('/'))
        {
            return Err(format!("`{text}`: bad namespace name"));
        }
        Ok(Host {
            netns,
            ip: ip.to_string(),
        })
    }
}

/// The ports of the store's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Front-end, public API.
    pub frontend: u16,
    /// Catalog.
    pub catalog: u16,
    /// Front-end, internal address (invalidations).
    pub frontend_internal: u16,
    /// Order replicas 1, 2, 3.
    pub orders: [u16; 3],
    /// The relay in front of the front-end.
    pub relay: u16,
}

impl Ports {
    /// The contract's layout shifted to start at `base`: front-end `base`, catalog `base+1`,
    /// internal `base+2`, relay `base+3`, replicas `base+11..=base+13` (8080, 8081, 8082, 8083,
    /// 8091-8093 for the default base).
    pub fn from_base(base: u16) -> Ports {
        Ports {
            frontend: base,
            catalog: base + 1,
            frontend_internal: base + 2,
            relay: base + 3,
            orders: [base + 11, base + 12, base + 13],
        }
    }
}

/// Which host each process runs on, and its ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The front-end's host.
    pub frontend: Host,
    /// The catalog's host.
    pub catalog: Host,
    /// Replicas 1, 2, 3.
    pub orders: [Host; 3],
    /// The relay's host (used only with a delay).
    pub relay: Host,
    /// Ports, the same on every host.
    pub ports: Ports,
    /// Each service calls the others through a relay on its own host ([`Layout::links`]), so that a
    /// link can be slowed while the store runs. Only for services on hosts of their own.
    pub relayed: bool,
}

/// One service's calls to another, through a relay on the caller's host when the layout is
/// [`Layout::relayed`]: the relay listens on the caller's loopback at the callee's port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The caller, as the hosts name services (`frontend`, `catalog`, `order1`, ...).
    pub from: String,
    /// The callee.
    pub to: String,
    /// The caller's host, where the relay runs.
    pub host: Host,
    /// The relay's address on that host.
    pub listen: String,
    /// The callee's address.
    pub target: String,
}

impl Link {
    /// Its name, `FROM-TO`.
    pub fn name(&self) -> String {
        format!("{}-{}", self.from, self.to)
    }
}

impl Layout {
    /// Everything on 127.0.0.1 with the ports of [`Ports::from_base`].
    pub fn local(base: u16) -> Layout {
        Layout {
            frontend: Host::local(),
            catalog: Host::local(),
            orders: [Host::local(), Host::local(), Host::local()],
            relay: Host::local(),
            ports: Ports::from_base(base),
            relayed: false,
        }
    }

    /// [`Layout::local`] with the hosts named in `spec` replaced: a comma-separated list of
    /// `SERVICE=[NETNS@]IP` with SERVICE one of frontend, catalog, order1, order2, order3, relay.
    pub fn with_hosts(base: u16, spec: &str) -> Result<Layout, String> {
        let mut layout = Layout::local(base);
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, host) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not SERVICE=[NETNS@]IP"))?;
            let host = Host::parse(host)?;
            match name.trim() {
                "frontend" => layout.frontend = host,
                "catalog" => layout.catalog = host,
                "order1" => layout.orders[0] = host,
                "order2" => layout.orders[1] = host,
                "order3" => layout.orders[2] = host,
                "relay" => layout.relay = host,
                other => return Err(format!("unknown service `{other}` in the host list")),
            }
        }
        Ok(layout)
    }

    /// True when every process runs in this namespace.
    pub fn is_local(&self) -> bool {
        self.hosts().iter().all(|(_, h, _)| h.netns.is_none())
    }

    /// Every process's name, host and port.
    pub fn hosts(&self) -> Vec<(String, &Host, u16)> {
        let p = &self.ports;
        let mut v = vec![
            ("frontend".to_string(), &self.frontend, p.frontend),
            (
                "frontend (internal)".to_string(),
                &self.frontend,
                p.frontend_internal,
            ),
            ("catalog".to_string(), &self.catalog, p.catalog),
        ];
        for (i, h) in self.orders.iter().enumerate() {
            v.push((format!("order-{}", i + 1), h, p.orders[i]));
        }
        v.push(("relay".to_string(), &self.relay, p.relay));
        v
    }

    /// The front-end's public URL (directly, not through the relay).
    pub fn frontend_url(&self) -> String {
        format!("http://{}:{}", self.frontend.ip, self.ports.frontend)
    }

    /// The front-end's internal URL.
    pub fn frontend_internal_url(&self) -> String {
        format!(
            "http://{}:{}",
            self.frontend.ip, self.ports.frontend_internal
        )
    }

    /// The catalog's URL.
    pub fn catalog_url(&self) -> String {
        format!("http://{}:{}", self.catalog.ip, self.ports.catalog)
    }

    /// Replica `id`'s URL.
    pub fn order_url(&self, id: ReplicaId) -> String {
        let i = id as usize - 1;
        format!("http://{}:{}", self.orders[i].ip, self.ports.orders[i])
    }

    /// The relay's URL.
    pub fn relay_url(&self) -> String {
        format!("http://{}:{}", self.relay.ip, self.ports.relay)
    }

    /// The `--replicas` list.
    pub fn replica_list(&self) -> String {
        Self::list(|id| self.order_url(id))
    }

    fn list(url: impl Fn(ReplicaId) -> String) -> String {
        REPLICAS
            .iter()
            .map(|id| format!("{id}={}", url(*id)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The URL the services call `host:port` on: through the relay on their own loopback when the
    /// layout is relayed, directly otherwise.
    fn peer_url(&self, host: &Host, port: u16) -> String {
        if self.relayed {
            format!("http://127.0.0.1:{port}")
        } else {
            format!("http://{}:{port}", host.ip)
        }
    }

    /// The catalog's URL as the services are given it.
    pub fn peer_catalog_url(&self) -> String {
        self.peer_url(&self.catalog, self.ports.catalog)
    }

    /// The front-end's internal URL as the catalog is given it.
    pub fn peer_frontend_internal_url(&self) -> String {
        self.peer_url(&self.frontend, self.ports.frontend_internal)
    }

    /// The `--replicas` list as the services are given it.
    pub fn peer_replica_list(&self) -> String {
        Self::list(|id| {
            let i = id as usize - 1;
            self.peer_url(&self.orders[i], self.ports.orders[i])
        })
    }

    /// Every link between services, with its relay's address; none unless the layout is
    /// [`Layout::relayed`]. The front-end calls the catalog and every replica, each replica the other
    /// replicas and the catalog, the catalog the front-end's internal address.
    pub fn links(&self) -> Vec<Link> {
        if !self.relayed {
            return Vec::new();
        }
        let p = &self.ports;
        let order = |i: usize| (format!("order{}", i + 1), &self.orders[i], p.orders[i]);
        let mut callees = vec![(
            "frontend".to_string(),
            vec![("catalog".to_string(), &self.catalog, p.catalog)],
            &self.frontend,
        )];
        callees[0].1.extend((0..REPLICAS.len()).map(order));
        for i in 0..REPLICAS.len() {
            let mut to: Vec<_> = (0..REPLICAS.len()).filter(|j| *j != i).map(order).collect();
            to.push(("catalog".to_string(), &self.catalog, p.catalog));
            callees.push((format!("order{}", i + 1), to, &self.orders[i]));
        }
        callees.push((
            "catalog".to_string(),
            vec![("frontend".to_string(), &self.frontend, p.frontend_internal)],
            &self.catalog,
        ));
        callees
            .into_iter()
            .flat_map(|(from, to, host)| {
                to.into_iter().map(move |(to, callee, port)| Link {
                    from: from.clone(),
                    to,
                    host: host.clone(),
                    listen: format!("127.0.0.1:{port}"),
                    target: format!("{}:{port}", callee.ip),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_base_gives_the_contract_ports() {
        let l = Layout::local(CONTRACT_BASE_PORT);
        assert_eq!(l.frontend_url(), "http://127.0.0.1:8080");
        assert_eq!(l.catalog_url(), "http://127.0.0.1:8081");
        assert_eq!(l.frontend_internal_url(), "http://127.0.0.1:8082");
        assert_eq!(
            l.replica_list(),
            "1=http://127.0.0.1:8091,2=http://127.0.0.1:8092,3=http://127.0.0.1:8093"
        );
        assert!(l.is_local());
        assert_eq!(l.peer_replica_list(), l.replica_list());
        assert_eq!(l.peer_catalog_url(), l.catalog_url());
        assert!(l.links().is_empty());
    }

    #[test]
    fn a_relayed_layout_sends_every_call_through_the_callers_host() {
        let mut l = Layout::with_hosts(
            8080,
            "frontend=h-fe@10.7.0.2,catalog=h-cat@10.7.0.3,order1=h-o1@10.7.0.4,\
             order2=h-o2@10.7.0.5,order3=h-o3@10.7.0.6",
        )
        .unwrap();
        l.relayed = true;
        assert_eq!(l.peer_catalog_url(), "http://127.0.0.1:8081");
        assert_eq!(l.peer_frontend_internal_url(), "http://127.0.0.1:8082");
        assert_eq!(
            l.peer_replica_list(),
            "1=http://127.0.0.1:8091,2=http://127.0.0.1:8092,3=http://127.0.0.1:8093"
        );
        // The harness still calls the hosts themselves.
        assert_eq!(l.catalog_url(), "http://10.7.0.3:8081");
        let links = l.links();
        let names: Vec<String> = links.iter().map(Link::name).collect();
        assert_eq!(
            names,
            [
                "frontend-catalog",
                "frontend-order1",
                "frontend-order2",
                "frontend-order3",
                "order1-order2",
                "order1-order3",
                "order1-catalog",
                "order2-order1",
                "order2-order3",
                "order2-catalog",
                "order3-order1",
                "order3-order2",
                "order3-catalog",
                "catalog-frontend",
            ]
        );
        let o2_o3 = &links[8];
        assert_eq!(o2_o3.host.netns.as_deref(), Some("h-o2"));
        assert_eq!(o2_o3.listen, "127.0.0.1:8093");
        assert_eq!(o2_o3.target, "10.7.0.6:8093");
        let to_frontend = &links[13];
        assert_eq!(to_frontend.host.netns.as_deref(), Some("h-cat"));
        assert_eq!(to_frontend.target, "10.7.0.2:8082");
    }

    #[test]
    fn hosts_are_parsed() {
        let l = Layout::with_hosts(
            8080,
            "frontend=tsx-frontend@10.77.0.2, order2=10.77.0.5,relay=w@10.77.0.9",
        )
        .unwrap();
        assert_eq!(
            l.frontend,
            Host {
                netns: Some("tsx-frontend".into()),
                ip: "10.77.0.2".into()
            }
        );
        assert_eq!(
            l.orders[1],
            Host {
                netns: None,
                ip: "10.77.0.5".into()
            }
        );
        assert_eq!(l.order_url(2), "http://10.77.0.5:8092");
        assert_eq!(l.relay_url(), "http://10.77.0.9:8083");
        assert_eq!(l.catalog, Host::local());
        assert!(!l.is_local());
        for bad in [
            "frontend",
            "nobody=10.0.0.1",
            "catalog=ns@notanip",
            "catalog=@10.0.0.1",
        ] {
            assert!(Layout::with_hosts(8080, bad).is_err(), "{bad}");
        }
    }
}
