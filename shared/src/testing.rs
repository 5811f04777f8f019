//! Helpers for the services' in-process HTTP tests (`tests/http.rs` of catalog, order and
//! front-end), behind the `testing` feature so that no service binary carries them.

use crate::protocol::SECRET_HEADER;
use serde_json::Value;
use std::fmt::Debug;
use std::time::Duration;

/// One HTTP call with a fresh agent: status and JSON body (Null when the body is not JSON). Panics
/// when no answer comes within `timeout`.
pub fn call(
    timeout: Duration,
    method: &str,
    url: &str,
    body: Option<&Value>,
    secret: Option<&str>,
) -> (u16, Value) {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .proxy(None)
        .build();
    let agent: ureq::Agent = config.into();
    let mut rq = ureq::http::Request::builder().method(method).uri(url);
    if let Some(s) = secret {
        rq = rq.header(SECRET_HEADER, s);
    }
    let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
    let mut response = agent
        .run(rq.body(bytes).unwrap())
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts that a service stopped cleanly, unless the test is already failing (a second panic in a
/// `Drop` would abort and hide the first).
pub fn assert_stopped<E: Debug>(stopped: Result<(), E>) {
    assert!(stopped.is_ok() || std::thread::panicking(), "{stopped:?}");
}
