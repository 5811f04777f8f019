//! The public wire types as the client reads and sends them (see `CONTRACT.md`, "Public REST API").
//!
//! The payloads (product, order placed, order record) are the services' own types from
//! [`shared::protocol`], so a field is defined once; what holds them to the contract is the tests
//! below and in `shared::protocol`, which parse the contract's literal examples. The envelopes and
//! the purchase body are the client's: it always sends a request id, and reads an error without the
//! internal fields. Unknown fields are ignored, since the contract allows answers to grow.

use serde::{Deserialize, Serialize};

/// Number of a committed order, as the store hands it out (0, 1, 2, …).
pub type OrderNumber = u64;

/// The `{"data": …}` envelope of every successful answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// Answer of `GET /products/<name>` (the quantity maybe from the front-end's cache).
pub use shared::protocol::Product;

/// Body of `POST /orders`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderRequest {
    /// The toy to buy.
    pub name: String,
    /// How many, at least 1.
    pub quantity: u64,
    /// Idempotency key: the front-end applies a purchase with a given key at most once.
    pub request_id: String,
}

/// Answer of a successful `POST /orders`: the number of the committed order.
pub use shared::protocol::OrderCreated as OrderPlaced;

/// Answer of `GET /orders/<number>`.
pub use shared::protocol::OrderInfo as OrderRecord;

/// The `{"error": …}` envelope of every error answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// An error as the store reports it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ErrorBody {
    /// Same as the HTTP status.
    pub code: u16,
    /// Human-readable cause.
    pub message: String,
}

/// A short description of an error answer's body for reports: the store's message when the body
/// has the contract's error shape, otherwise the start of the raw body.
pub fn describe_error_body(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorEnvelope>(body) {
        Ok(envelope) => envelope.error.message,
        Err(_) => {
            const SHOWN: usize = 200;
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                "empty body".to_string()
            } else if text.chars().count() > SHOWN {
                format!("{}…", text.chars().take(SHOWN).collect::<String>())
            } else {
                text.to_string()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_contract_examples() {
        let product: Data<Product> =
            serde_json::from_str(r#"{"data": {"name": "Tux", "price": 25.99, "quantity": 100}}"#)
                .unwrap();
        assert_eq!(product.data.name, "Tux");
        assert_eq!(product.data.quantity, 100);

        let placed: Data<OrderPlaced> =
            serde_json::from_str(r#"{"data": {"order_number": 0}}"#).unwrap();
        assert_eq!(placed.data.order_number, 0);

        let record: Data<OrderRecord> = serde_json::from_str(
            r#"{"data": {"number": 0, "name": "Tux", "quantity": 1, "extra": true}}"#,
        )
        .unwrap();
        assert_eq!(
            record.data,
            OrderRecord {
                number: 0,
                name: "Tux".into(),
                quantity: 1
            }
        );
    }

    #[test]
    fn order_request_has_contract_fields() {
        let body = serde_json::to_value(OrderRequest {
            name: "Tux".into(),
            quantity: 2,
            request_id: "c1-0-3".into(),
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"name": "Tux", "quantity": 2, "request_id": "c1-0-3"})
        );
    }

    #[test]
    fn error_bodies_are_described() {
        assert_eq!(
            describe_error_body(br#"{"error": {"code": 409, "message": "out of stock"}}"#),
            "out of stock"
        );
        assert_eq!(describe_error_body(b"  "), "empty body");
        assert_eq!(describe_error_body(b"oops"), "oops");
        assert!(describe_error_body(&[b'x'; 500]).ends_with('…'));
    }
}
