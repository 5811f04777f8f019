//! placeholder
pub mod core;
pub mod server;
pub mod store;

pub use server::{serve, Config, Replica, Running};
