//! Serving xDS: the versioned resource cache (what to serve), the stream state machines (how a
//! stream behaves), the registry of connected clients, and the tonic services. Never looks at
//! YAML; takes `translate::Resources` in.

pub mod cache;
pub mod clients;
pub mod lrs;
pub mod server;
pub mod sotw;
pub mod types;

pub use cache::{Cache, Snapshot};
pub use clients::Clients;
