//! The client's own copy of the public wire types (see `CONTRACT.md`, "Public REST API").
//!
//! The client is an outside user of the store, so it mirrors the contract here instead of sharing the
//! services' types: if a service drifts from the contract, the client notices. Unknown fields are
//! ignored, since the contract allows answers to grow.

use serde::{Deserialize, Serialize};

/// Number of a committed order, as the store hands it out (0, 1, 2, …).
pub type OrderNumber = u64;

/// The `{"data": …}` envelope of every successful answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// Answer of `GET /products/<name>`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Product {
    /// The toy's name.
    pub name: String,
    /// Its price.
    pub price: f64,
    /// Units in stock when the answer was made (maybe from the front-end's cache).
    pub quantity: u64,
}

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

/// Answer of a successful `POST /orders`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderPlaced {
    /// Number of the committed order.
    pub order_number: OrderNumber,
}

/// Answer of `GET /orders/<number>`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct OrderRecord {
    /// The order's number.
    pub number: OrderNumber,
    /// The toy bought.
    pub name: String,
    /// How many were bought.
    pub quantity: u64,
}

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
