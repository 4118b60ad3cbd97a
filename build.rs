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
    "envoy/extensions/http/early_header_mutation/header_mutation/v3/header_mutation.proto",
    "envoy/extensions/filters/http/lua/v3/lua.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/service/discovery/v3/discovery.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/tls/v3/secret.proto",
    "envoy/extensions/transport_sockets/proxy_protocol/v3/upstream_proxy_protocol.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/access_loggers/stream/v3/stream.proto",
    "envoy/extensions/access_loggers/filters/cel/v3/cel.proto",
    "envoy/extensions/path/match/uri_template/v3/uri_template_match.proto",
    "envoy/extensions/path/rewrite/uri_template/v3/uri_template_rewrite.proto",
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
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let out = out_dir.join("envoy_descriptors.bin");
    std::fs::write(&out, prost::Message::encode_to_vec(&descriptors)).unwrap();
    std::fs::write(out_dir.join("field_table.rs"), field_table(&descriptors)).unwrap();
}

/// Messages whose fields the sidecar checks, with everything they contain.
const SIDECAR_ROOTS: &[&str] = &[
    ".envoy.config.listener.v3.Listener",
    ".envoy.config.route.v3.RouteConfiguration",
    ".envoy.config.cluster.v3.Cluster",
    ".envoy.config.endpoint.v3.ClusterLoadAssignment",
    ".envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
    ".envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
    ".envoy.extensions.filters.http.router.v3.Router",
    ".envoy.extensions.filters.http.fault.v3.HTTPFault",
    ".envoy.extensions.filters.http.cors.v3.Cors",
    ".envoy.extensions.filters.http.cors.v3.CorsPolicy",
    ".envoy.extensions.filters.http.stateful_session.v3.StatefulSession",
    ".envoy.extensions.filters.http.stateful_session.v3.StatefulSessionPerRoute",
    ".envoy.extensions.http.stateful_session.cookie.v3.CookieBasedSessionState",
    ".envoy.extensions.filters.http.lua.v3.Lua",
    ".envoy.extensions.filters.http.lua.v3.LuaPerRoute",
    ".envoy.config.route.v3.FilterConfig",
    ".envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
    ".envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
    ".envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
    ".envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
    ".envoy.extensions.transport_sockets.tls.v3.Secret",
    ".envoy.extensions.transport_sockets.proxy_protocol.v3.ProxyProtocolUpstreamTransport",
    ".envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
    ".envoy.extensions.access_loggers.stream.v3.StderrAccessLog",
    ".envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter",
];

/// Each message's fields by number, for the messages reachable from SIDECAR_ROOTS: a small
/// table the sidecar walks encoded resources with, instead of a full descriptor pool.
fn field_table(descriptors: &prost_types::FileDescriptorSet) -> String {
    use std::collections::BTreeMap;
    use std::fmt::Write;
    fn collect<'d>(
        prefix: &str,
        message: &'d prost_types::DescriptorProto,
        into: &mut BTreeMap<String, &'d prost_types::DescriptorProto>,
    ) {
        let full = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            collect(&full, nested, into);
        }
        into.insert(full, message);
    }
    let mut all = BTreeMap::new();
    for file in &descriptors.file {
        for message in &file.message_type {
            collect(&format!(".{}", file.package()), message, &mut all);
        }
    }
    let mut order: Vec<String> = Vec::new();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    let mut queue: Vec<String> = SIDECAR_ROOTS.iter().map(|r| r.to_string()).collect();
    while let Some(name) = queue.pop() {
        if index.contains_key(&name) || !all.contains_key(&name) {
            continue;
        }
        index.insert(name.clone(), order.len());
        order.push(name.clone());
        for field in &all[&name].field {
            if field.r#type() == prost_types::field_descriptor_proto::Type::Message {
                queue.push(field.type_name().to_string());
            }
        }
    }
    let mut text = String::from("// Generated by build.rs from the Envoy API protos.\n");
    text.push_str("pub static MESSAGES: &[MessageFields] = &[\n");
    for name in &order {
        write!(
            text,
            "    MessageFields {{ name: {:?}, fields: &[",
            &name[1..]
        )
        .unwrap();
        for field in &all[name].field {
            let message = (field.r#type() == prost_types::field_descriptor_proto::Type::Message)
                .then(|| index.get(field.type_name()).copied())
                .flatten();
            let repeated = field.label() == prost_types::field_descriptor_proto::Label::Repeated;
            write!(
                text,
                "({}, {:?}, {:?}, {}), ",
                field.number(),
                field.name(),
                message,
                repeated
            )
            .unwrap();
        }
        text.push_str("] },\n");
    }
    text.push_str("];\n");
    text
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
