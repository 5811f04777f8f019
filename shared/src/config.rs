//! What the binaries' flags share: the contract's default addresses, the flags every service has
//! ([`ServiceFlags`]), and parsing of the replica list and URLs.

use crate::protocol::ReplicaId;
use std::fmt;
use std::str::FromStr;

/// The order replicas: `1=http://127.0.0.1:8091,2=http://127.0.0.1:8092,3=http://127.0.0.1:8093`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaList(pub Vec<(ReplicaId, String)>);

/// The default replica list of the contract.
pub const DEFAULT_REPLICAS: &str =
    "1=http://127.0.0.1:8091,2=http://127.0.0.1:8092,3=http://127.0.0.1:8093";

/// The catalog's default listen address.
pub const DEFAULT_CATALOG_LISTEN: &str = "127.0.0.1:8081";
/// The URL of a catalog on [`DEFAULT_CATALOG_LISTEN`].
pub const DEFAULT_CATALOG_URL: &str = "http://127.0.0.1:8081";
/// The front-end's default public listen address.
pub const DEFAULT_FRONTEND_LISTEN: &str = "127.0.0.1:8080";
/// The URL of a front-end on [`DEFAULT_FRONTEND_LISTEN`]: where clients go.
pub const DEFAULT_FRONTEND_URL: &str = "http://127.0.0.1:8080";
/// The front-end's default internal listen address.
pub const DEFAULT_FRONTEND_INTERNAL_LISTEN: &str = "127.0.0.1:8082";
/// The URL of [`DEFAULT_FRONTEND_INTERNAL_LISTEN`]: where the catalog pushes invalidations.
pub const DEFAULT_FRONTEND_INTERNAL_URL: &str = "http://127.0.0.1:8082";
/// The default data folder of every service.
pub const DEFAULT_DATA: &str = "data";

/// The flags every service takes besides its addresses. Each can also be set as `TOYSTORE_<FLAG>`.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct ServiceFlags {
    /// Shared secret internal calls must carry (none: internal calls are not checked).
    #[arg(long, env = "TOYSTORE_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// HTTP worker threads.
    #[arg(long, env = "TOYSTORE_WORKERS", default_value_t = crate::http::DEFAULT_WORKERS)]
    pub workers: usize,
    /// Serve GET /metrics on the internal address without the secret (for a scraper on a
    /// private network); every other internal route still needs it.
    #[arg(long, env = "TOYSTORE_METRICS_OPEN")]
    pub metrics_open: bool,
}

impl ServiceFlags {
    /// Options of a server that only services call, with these flags.
    pub fn internal_options(&self) -> crate::http::ServerOptions {
        crate::http::ServerOptions {
            workers: self.workers,
            metrics_open: self.metrics_open,
            ..crate::http::ServerOptions::internal(self.secret.clone())
        }
    }
}

impl Default for ServiceFlags {
    fn default() -> Self {
        ServiceFlags {
            secret: None,
            workers: crate::http::DEFAULT_WORKERS,
            metrics_open: false,
        }
    }
}

/// Where a service finds the catalog and the order replicas (the order service and the front-end).
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct StoreAddrs {
    /// The catalog's URL.
    #[arg(long, env = "TOYSTORE_CATALOG", default_value = DEFAULT_CATALOG_URL)]
    pub catalog: String,
    /// Every order replica: ID=URL,...
    #[arg(long, env = "TOYSTORE_REPLICAS", default_value = DEFAULT_REPLICAS)]
    pub replicas: ReplicaList,
}

impl FromStr for ReplicaList {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut list = Vec::new();
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (id, url) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not ID=URL"))?;
            let id: ReplicaId = id
                .trim()
                .parse()
                .map_err(|_| format!("`{id}` is not a replica id"))?;
            if id == 0 {
                return Err("replica ids start at 1".into());
            }
            if list.iter().any(|(i, _)| *i == id) {
                return Err(format!("replica id {id} appears twice"));
            }
            list.push((id, base_url(url)?));
        }
        if list.is_empty() {
            return Err("no replicas given".into());
        }
        list.sort();
        Ok(ReplicaList(list))
    }
}

impl fmt::Display for ReplicaList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|(id, url)| format!("{id}={url}"))
            .collect();
        write!(f, "{}", items.join(","))
    }
}

impl ReplicaList {
    /// The URL of replica `id`.
    pub fn url(&self, id: ReplicaId) -> Option<&str> {
        self.0
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, u)| u.as_str())
    }

    /// The ids, lowest first.
    pub fn ids(&self) -> Vec<ReplicaId> {
        self.0.iter().map(|(i, _)| *i).collect()
    }
}

/// Checks that `url` is an `http://` base URL and drops a trailing `/`.
pub fn base_url(url: &str) -> Result<String, String> {
    let url = url.trim().trim_end_matches('/');
    match url.strip_prefix("http://") {
        Some(rest) if !rest.is_empty() => Ok(url.to_string()),
        _ => Err(format!("`{url}` is not an http:// URL")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_parses_sorted() {
        let l: ReplicaList = "3=http://h:3/,1=http://h:1".parse().unwrap();
        assert_eq!(l.ids(), vec![1, 3]);
        assert_eq!(l.url(3), Some("http://h:3"));
        assert_eq!(
            DEFAULT_REPLICAS.parse::<ReplicaList>().unwrap().to_string(),
            DEFAULT_REPLICAS
        );
    }

    #[test]
    fn each_default_url_names_its_default_address() {
        for (url, listen) in [
            (DEFAULT_CATALOG_URL, DEFAULT_CATALOG_LISTEN),
            (DEFAULT_FRONTEND_URL, DEFAULT_FRONTEND_LISTEN),
            (
                DEFAULT_FRONTEND_INTERNAL_URL,
                DEFAULT_FRONTEND_INTERNAL_LISTEN,
            ),
        ] {
            assert_eq!(url, format!("http://{listen}"));
        }
    }

    #[test]
    fn bad_lists_are_refused_with_a_reason() {
        for bad in [
            "",
            "1",
            "x=http://a",
            "0=http://a",
            "1=ftp://a",
            "1=http://a,1=http://b",
        ] {
            assert!(bad.parse::<ReplicaList>().is_err(), "{bad}");
        }
    }
}
