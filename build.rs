//! Compiles the Envoy API descriptors that `translate::json` needs to render xDS resources as
//! proto3 JSON (the form Envoy's own config_dump uses). The .proto sources are the ones the
//! `envoy-types` crate ships; nothing is downloaded.

use std::path::{Path, PathBuf};

/// Top-level protos whose messages Switchyard emits; their imports are pulled in by protox.
const ROOTS: &[&str] = &[
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/filters/http/stateful_session/v3/stateful_session.proto",
    "envoy/extensions/http/stateful_session/cookie/v3/cookie.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/service/discovery/v3/discovery.proto",
];

/// Include roots inside the envoy-types proto folder.
const INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "protoc-gen-validate",
    "googleapis",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SWITCHYARD_ENVOY_PROTO_DIR");
    let proto_dir = envoy_types_proto_dir();
    let includes: Vec<PathBuf> = INCLUDES.iter().map(|dir| proto_dir.join(dir)).collect();
    let descriptors = protox::compile(ROOTS, &includes).unwrap_or_else(|error| {
        panic!(
            "compiling Envoy protos from {}: {error}",
            proto_dir.display()
        )
    });
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("envoy_descriptors.bin");
    std::fs::write(&out, prost::Message::encode_to_vec(&descriptors)).unwrap();
}

/// Finds the `proto/` folder of the envoy-types crate that Cargo unpacked for this build.
fn envoy_types_proto_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("SWITCHYARD_ENVOY_PROTO_DIR") {
        return PathBuf::from(dir);
    }
    let wanted = format!("envoy-types-{}", envoy_types_version());
    let cargo_home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    let registry = cargo_home.join("registry").join("src");
    let found = std::fs::read_dir(&registry)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join(&wanted).join("proto"))
        .find(|candidate| candidate.is_dir());
    found.unwrap_or_else(|| {
        panic!(
            "cannot find {wanted}/proto under {}; set SWITCHYARD_ENVOY_PROTO_DIR to the proto \
             folder of the envoy-types crate",
            registry.display()
        )
    })
}

/// The envoy-types version pinned in Cargo.lock (falls back to the manifest's requirement).
fn envoy_types_version() -> String {
    let lock = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line == "name = \"envoy-types\"" {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                return version.trim_end_matches('"').to_string();
            }
        }
    }
    "0.7.7".to_string()
}
