//! Centralized health checking: Switchyard probes the endpoints of backend services that name
//! a health check and publishes the results as endpoint health, so clients stop sending to
//! dead backends without checking anything themselves. A source of endpoint changes beside the
//! config (an [`crate::model::endpoint_facts::EndpointSource`]): it must never
//! re-translate listeners, routes or clusters.
//!
//! `targets` says what a model asks to probe, `state` how results make a standing, `probe`
//! (with `h1`, `h2` and `tls`) makes one probe, `checker` keeps the standings and reports changes,
//! `scheduler` runs the probes and hands changes to the publisher; `sharing` is where replicas
//! split the probing between them (absent for a lone replica).

pub mod checker;
mod h1;
mod h2;
pub mod probe;
pub mod scheduler;
pub mod sharing;
pub mod state;
pub mod targets;
mod tls;
