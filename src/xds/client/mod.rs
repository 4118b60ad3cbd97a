//! The sidecar's xDS client: the state machine that keeps subscriptions, versions and the
//! accepted resources and answers every response with an ACK or a NACK ([`state`]), and the
//! transport that runs it over an ADS stream and reconnects ([`ads`]).
//!
//! Must not: import the control plane (config, model, translate, the server). It works
//! against any conforming xDS server.

pub mod ads;
pub mod state;

pub use state::{Checker, ClientState, Held, HeldMap, Outcome, Protocol, Rejection, Request};
