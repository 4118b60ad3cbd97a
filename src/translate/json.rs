//! Renders encoded xDS resources as proto3 JSON with Envoy's field names, the way Envoy's own
//! config_dump shows them (`Any` expanded with its `@type`). Uses descriptors compiled at
//! build time from the Envoy API protos.

use prost_reflect::SerializeOptions;
use serde_json::Value;

use crate::xds::reflect;

/// JSON for one resource given as type URL and encoded bytes; `@type` first.
pub fn resource_to_json(type_url: &str, bytes: &[u8]) -> Value {
    let rendered = reflect::decode(type_url, bytes).and_then(|message| {
        let options = SerializeOptions::new().use_proto_field_name(true);
        message
            .serialize_with_options(serde_json::value::Serializer, &options)
            .map_err(|error| error.to_string())
    });
    let mut object = serde_json::Map::new();
    object.insert("@type".to_string(), Value::String(type_url.to_string()));
    match rendered {
        Ok(Value::Object(fields)) => object.extend(fields),
        Ok(other) => {
            object.insert("value".to_string(), other);
        }
        Err(error) => {
            object.insert("error".to_string(), Value::String(error));
        }
    }
    Value::Object(object)
}

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
        "proxyless_listeners": resources.proxyless_listeners.iter().map(message_to_json).collect::<Vec<_>>(),
        "proxyless_routes": resources.proxyless_routes.iter().map(message_to_json).collect::<Vec<_>>(),
    })
}
