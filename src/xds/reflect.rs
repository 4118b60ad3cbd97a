//! The Envoy API's message descriptors, compiled at build time from the protos envoy-types
//! ships: what renders resources as JSON and what lets the sidecar list the fields a
//! resource sets. Shared by both sides of the protocol.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin"));

pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTORS).expect("descriptors built by build.rs"))
}

/// The descriptor of a message given by its type URL or full name.
pub fn descriptor(type_url: &str) -> Option<MessageDescriptor> {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    pool().get_message_by_name(name)
}

/// Why a resource cannot be read or rendered through the descriptors.
#[derive(Debug, thiserror::Error)]
pub enum ReflectError {
    /// A type the Envoy API (as compiled in) does not have.
    #[error("no descriptor for {type_url}")]
    NoDescriptor { type_url: String },
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// Decodes `bytes` as the message `type_url` names.
pub fn decode(type_url: &str, bytes: &[u8]) -> Result<DynamicMessage, ReflectError> {
    let descriptor = descriptor(type_url).ok_or_else(|| ReflectError::NoDescriptor {
        type_url: type_url.to_string(),
    })?;
    Ok(DynamicMessage::decode(descriptor, bytes)?)
}

/// JSON for one resource given as type URL and encoded bytes; `@type` first. A Secret's
/// private key is shown as `[redacted]`, as Envoy's own config dump shows it.
pub fn resource_to_json(type_url: &str, bytes: &[u8]) -> Value {
    let rendered = decode(type_url, bytes).and_then(|message| {
        let options = SerializeOptions::new().use_proto_field_name(true);
        Ok(message.serialize_with_options(serde_json::value::Serializer, &options)?)
    });
    let mut object = serde_json::Map::new();
    object.insert("@type".to_string(), Value::String(type_url.to_string()));
    match rendered {
        Ok(Value::Object(fields)) => object.extend(fields),
        Ok(other) => {
            object.insert("value".to_string(), other);
        }
        Err(error) => {
            object.insert("error".to_string(), Value::String(error.to_string()));
        }
    }
    if type_url == crate::xds::types::SECRET {
        if let Some(key) = object
            .get_mut("tls_certificate")
            .and_then(|certificate| certificate.get_mut("private_key"))
        {
            *key = serde_json::json!({ "inline_string": "[redacted]" });
        }
    }
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_be_rendered_says_why_in_place_of_the_fields() {
        let unknown = resource_to_json("type.googleapis.com/no.such.Type", &[]);
        assert_eq!(
            unknown["error"],
            "no descriptor for type.googleapis.com/no.such.Type"
        );
        assert!(matches!(
            decode("type.googleapis.com/no.such.Type", &[]),
            Err(ReflectError::NoDescriptor { .. })
        ));
        let cluster = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
        assert!(matches!(
            decode(cluster, &[0x0a]),
            Err(ReflectError::Decode(_))
        ));
        let garbled = resource_to_json(cluster, &[0x0a]);
        assert_eq!(garbled["@type"], cluster);
        assert!(garbled["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("failed to decode Protobuf message")));
    }
}
