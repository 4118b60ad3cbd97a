//! Switchyard: an xDS control plane that serves cloud-style load-balancer configs to Envoy,
//! proxyless gRPC clients and its own sidecar.
//!
//! Data flows left to right through the modules:
//! `config` (YAML) → `model` (validated) → `translate` (pure xDS) → `publish` (snapshots,
//! draining, the removal guard) → `xds` (cache and streams),
//! with `admin` exposing what is served and to whom, and `cluster` sharing health checking
//! between replicas through etcd.

pub mod admin;
pub mod capacity;
pub mod cluster;
pub mod config;
pub mod descriptors;
pub mod explain;
pub mod health;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod publish;
pub mod serve;
pub mod status;
pub mod status_replicas;
pub mod translate;
pub mod unverified_tls;
pub mod validation_report;
pub mod xds;
