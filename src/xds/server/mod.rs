//! The xDS server: the cache of snapshots ([`cache`]); subscription tracking and ordering
//! shared by the state-of-the-world and delta state machines ([`subscription`],
//! [`stream_state`], [`sotw`], [`delta`]); the stream on the wire ([`stream`]) and the tonic
//! services ([`services`], [`codec`]); stream hooks feeding the client registry
//! ([`clients`]), CSDS ([`csds`]) and metrics ([`stream_metrics`]); and load reporting ([`lrs`], [`load_reports`]).

pub mod access;
pub mod cache;
pub mod clients;
pub mod codec;
pub mod csds;
pub mod delta;
pub mod hooks;
pub mod incoming;
pub mod limits;
pub mod load_reports;
pub mod lrs;
pub mod services;
pub mod sotw;
pub mod stream;
pub mod stream_metrics;
pub mod stream_state;
pub mod subscription;
pub mod tls;

pub use cache::{Cache, Snapshot};
pub use clients::Clients;
