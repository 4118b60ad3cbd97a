//! xDS: what both sides of the protocol share — resource types ([`types`]) and encoded
//! resources and responses ([`wire`]) — and the server ([`server`]). Never looks at YAML or
//! the model.

pub mod client;
pub mod reflect;
pub mod server;
pub mod types;
pub mod wire;

pub use server::cache::{Cache, Snapshot};
