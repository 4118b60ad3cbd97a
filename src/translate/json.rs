//! Renders encoded xDS resources as proto3 JSON with Envoy's field names, the way Envoy's own
//! config_dump shows them (`Any` expanded with its `@type`). Uses descriptors compiled at
//! build time from the Envoy API protos.

use serde_json::Value;

pub use crate::xds::reflect::resource_to_json;

/// JSON for a typed message.
pub fn message_to_json<M: prost::Message + prost::Name>(message: &M) -> Value {
    resource_to_json(&M::type_url(), &message.encode_to_vec())
}

/// Every resource of a translation, grouped by type as Envoy's config_dump groups them.
pub fn resources_to_json(resources: &super::Resources) -> Value {
    serde_json::json!({
        "listeners": resources.listeners.iter().map(message_to_json).collect::<Vec<_>>(),
        "routes": resources.routes.iter().map(message_to_json).collect::<Vec<_>>(),
        "clusters": resources.clusters.iter().map(message_to_json).collect::<Vec<_>>(),
        "endpoints": resources.endpoints.iter().map(message_to_json).collect::<Vec<_>>(),
        "secrets": resources.secrets.iter().map(message_to_json).collect::<Vec<_>>(),
        "proxyless_listeners": resources.proxyless_listeners.iter().map(message_to_json).collect::<Vec<_>>(),
        "proxyless_routes": resources.proxyless_routes.iter().map(message_to_json).collect::<Vec<_>>(),
    })
}
