//! The benchmark's HTTP agents: one whose IP-literal hosts are resolved in place
//! ([`shared::http::LiteralResolver`], as every service and the client use), and one with ureq's
//! default resolver, which starts a thread per request, to show what that costs. See
//! `results/PROFILE.md`.

use std::time::Duration;
use ureq::config::Config;

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
    shared::http::agent_with_literal_resolver(config(sessions))
}

/// The same agent with ureq's default resolver (a thread per request, since a timeout is set).
pub fn thread_resolver_agent(sessions: usize) -> ureq::Agent {
    config(sessions).into()
}

#[cfg(test)]
mod tests {
    use super::*;

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
