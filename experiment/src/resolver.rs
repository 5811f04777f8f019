//! A ureq resolver that answers IP-literal hosts without a thread.
//!
//! ureq 3 resolves the host of every request before it looks in its connection pool, and when the
//! call has a timeout (every agent of this project sets one) its default resolver does the lookup on a
//! new thread, so that the lookup can time out. For `http://127.0.0.1:8081` that is a thread started
//! and joined per request, pooled connection or not. [`LiteralResolver`] returns an IP literal's
//! address at once and hands real names to ureq's default resolver. The benchmark's clients use it,
//! so that the floor is a bare round trip; see `results/PROFILE.md` for what it saves. (The services'
//! `shared::http` has since gained the same resolver; this copy keeps the benchmark independent of
//! it, and [`thread_resolver_agent`] keeps the old behaviour to compare with.)

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{DefaultConnector, NextTimeout};

/// Resolves IP-literal hosts in place, anything else with ureq's [`DefaultResolver`].
#[derive(Debug, Default)]
pub struct LiteralResolver {
    fallback: DefaultResolver,
}

impl Resolver for LiteralResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        if let Some(authority) = uri.authority() {
            let host = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let port = authority
                .port_u16()
                .or_else(|| (uri.scheme_str() == Some("http")).then_some(80));
            if let (Ok(ip), Some(port)) = (host.parse::<IpAddr>(), port) {
                let mut addrs = self.empty();
                addrs.push(SocketAddr::new(ip, port));
                return Ok(addrs);
            }
        }
        self.fallback.resolve(uri, config, timeout)
    }
}

/// The configuration of the benchmark's agents: status codes as values, a pool for every session,
/// timeouts, no proxy (as the client library's).
fn config(sessions: usize) -> Config {
    let idle = sessions.max(client::MIN_IDLE_CONNECTIONS);
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(idle)
        .max_idle_connections_per_host(idle)
        .timeout_connect(Some(client::CONNECT_TIMEOUT))
        .timeout_global(Some(Duration::from_secs(15)))
        .proxy(None)
        .build()
}

/// An agent whose IP-literal hosts are resolved without a thread.
pub fn agent(sessions: usize) -> ureq::Agent {
    ureq::Agent::with_parts(
        config(sessions),
        DefaultConnector::default(),
        LiteralResolver::default(),
    )
}

/// The same agent with ureq's default resolver (a thread per request, since a timeout is set).
pub fn thread_resolver_agent(sessions: usize) -> ureq::Agent {
    config(sessions).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_resolve_in_place_and_names_fall_back() {
        let r = LiteralResolver::default();
        let config = Config::default();
        let resolve = |u: &str| r.resolve(&u.parse().unwrap(), &config, NextTimeout::default());
        let a = resolve("http://127.0.0.1:8081/x").unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0], "127.0.0.1:8081".parse().unwrap());
        assert_eq!(
            resolve("http://[::1]:9/").unwrap()[0],
            "[::1]:9".parse().unwrap()
        );
        assert_eq!(
            resolve("http://10.77.0.2/").unwrap()[0],
            "10.77.0.2:80".parse().unwrap()
        );
        assert_eq!(resolve("http://localhost:8081/").unwrap()[0].port(), 8081);
    }

    #[test]
    fn the_agent_calls_a_literal_address() {
        let server = crate::bench::start_floor("127.0.0.1:0", 2).unwrap();
        let mut answer = agent(1)
            .get(&format!("http://{}/p", server.addr()))
            .call()
            .unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.body_mut().read_to_vec().unwrap(),
            crate::bench::FLOOR_BODY
        );
        server.stop();
    }
}
