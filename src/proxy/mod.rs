//! The sidecar, `switchyard proxy`: an xDS client ([`crate::xds::client`]) feeding a data plane
//! that proxies HTTP/1.1, HTTP/2, gRPC and TCP the way Envoy would with the same resources.
//! [`bootstrap`] reads Envoy's bootstrap; [`resources`] turns xDS resources into typed config
//! (refusing what the sidecar does not implement).
//!
//! Must not: import the control plane (config, model, translate, the xDS server).

pub mod bootstrap;
pub mod resources;
