//! Every integration test, in one binary: the suite links the whole crate (and Envoy's
//! generated types) once instead of once per file, which keeps a clean build of the tests
//! to a fraction of the disk and link time. Each module is one area; the shared harness is
//! `common`. Run one area with `cargo test --test integration sidecar::`.

mod common;
#[path = "../../benches/support/fleet_config.rs"]
mod fleet_config;

mod architecture;
mod authorization;
mod aws_alb;
mod aws_attributes;
mod aws_parameters;
mod aws_proxyless;
mod aws_stack_values;
mod aws_target_groups;
mod aws_validation;
mod capacity_spill;
mod capacity_splits;
mod cli;
mod config_source;
mod conformance;
mod differential;
mod durations;
mod durations_refused;
mod durations_served;
mod envoy_backends;
mod envoy_delta;
mod envoy_dual_stack;
mod envoy_routing;
mod gcp_fields;
mod gcp_fields_served;
mod golden;
mod hardening;
mod health_checking;
mod health_probes;
mod https;
mod illegal_requests;
mod internet_negs;
mod load_measured;
mod mtls;
mod observability;
mod packaging;
mod properties;
mod proxyless_grpc;
mod reload_stress;
mod replicas;
mod sidecar;
mod sidecar_accepts;
mod sidecar_balancers;
mod sidecar_cluster_policies;
mod sidecar_connections;
mod sidecar_dns;
mod sidecar_edge;
mod sidecar_listener_settings;
mod sidecar_load_reports;
mod sidecar_outlier;
mod sidecar_routing;
mod sidecar_stickiness;
mod sidecar_tls;
mod sidecar_tls_rotation;
mod sidecar_xds;
mod slow_consumers;
mod translation;
mod url_map_actions;
mod url_map_policies;
mod validation;
mod validation_gcloud;
mod validation_health_checks;
mod validation_tls;
mod validation_url_maps;
mod websocket;
