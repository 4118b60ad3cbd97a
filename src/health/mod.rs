//! Centralized health checking: Switchyard probes the endpoints of backend services that name
//! a health check and publishes the results as endpoint health, so clients stop sending to
//! dead backends without checking anything themselves. A source of endpoint changes beside the
//! config: it must never re-translate listeners, routes or clusters.
//!
//! So far: `state`, the pure per-endpoint threshold logic, and `probe`, one TCP or HTTP probe.
//! The scheduler that runs probes and the publication of their results come next (issue 13).

pub mod probe;
pub mod state;
