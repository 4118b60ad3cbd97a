//! Encoded resources and the responses that carry them. A [`Resource`] is encoded once, when
//! its content changes, and held as shared bytes; a response is a list of such resources,
//! written onto the wire around those bytes — framing, names and versions only — so that
//! sending one resource to a thousand clients never copies it a thousand times in memory.
//! Must not: know how resources were made, or which client gets what.

use std::sync::Arc;

use bytes::{BufMut, Bytes};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource as DeltaResource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use sha2::{Digest, Sha256};

use super::types::TypeUrl;

/// One encoded resource, shared by every snapshot and response that holds it.
#[derive(Debug, PartialEq, Eq)]
pub struct Resource {
    pub type_url: TypeUrl,
    pub name: String,
    /// Content hash of the encoded message: stable across restarts and replicas.
    pub version: String,
    /// The encoded message (the `value` of its `Any`).
    pub value: Bytes,
}

impl Resource {
    pub fn new(type_url: TypeUrl, name: impl Into<String>, value: impl Into<Bytes>) -> Resource {
        let value = value.into();
        Resource {
            type_url,
            name: name.into(),
            version: content_hash(&value),
            value,
        }
    }

    /// The resource as `Any` (a copy; for rendering and tests, not for sending).
    pub fn to_any(&self) -> Any {
        Any {
            type_url: self.type_url.url().to_string(),
            value: self.value.to_vec(),
        }
    }

    fn any_len(&self) -> usize {
        string_field_len(1, self.type_url.url()) + bytes_field_len(2, self.value.len())
    }

    /// The `Any` up to (not including) the value bytes.
    fn write_any_prefix(&self, buf: &mut impl BufMut) {
        write_string_field(1, self.type_url.url(), buf);
        if !self.value.is_empty() {
            write_message_header(2, self.value.len(), buf);
        }
    }

    /// Length of this resource wrapped as a delta `Resource` message.
    fn delta_len(&self) -> usize {
        string_field_len(1, &self.version)
            + string_field_len(3, &self.name)
            + message_field_len(2, self.any_len())
    }
}

/// Hex of the first 8 bytes of SHA-256: a content version.
pub fn content_hash(bytes: &[u8]) -> String {
    hex16(&Sha256::digest(bytes))
}

/// Hex of the first 8 bytes of a digest.
pub fn hex16(digest: &[u8]) -> String {
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// The type of a response: one the server serves, or one it does not (answered empty).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeName {
    Served(TypeUrl),
    Other(Arc<str>),
}

impl TypeName {
    pub fn url(&self) -> &str {
        match self {
            TypeName::Served(type_url) => type_url.url(),
            TypeName::Other(url) => url,
        }
    }

    pub fn served(&self) -> Option<TypeUrl> {
        match self {
            TypeName::Served(type_url) => Some(*type_url),
            TypeName::Other(_) => None,
        }
    }
}

/// A response as it goes onto the wire: a small head; each resource as a small prefix (its
/// framing, name, version) followed by its shared value bytes; a small tail. Written in that
/// order, the parts are the encoded message, so a sender can copy the small parts and send
/// the values as they are.
pub trait WireParts {
    fn encoded_len(&self) -> usize;
    fn write_head(&self, buf: &mut impl BufMut);
    fn resource_count(&self) -> usize;
    fn write_prefix(&self, index: usize, buf: &mut impl BufMut);
    fn value(&self, index: usize) -> &Bytes;
    /// The encoded length of resource `index`: its prefix and its value.
    fn entry_len(&self, index: usize) -> usize;
    fn write_tail(&self, buf: &mut impl BufMut);

    /// The whole message into `buf`.
    fn encode(&self, buf: &mut impl BufMut) {
        self.write_head(buf);
        for index in 0..self.resource_count() {
            self.write_prefix(index, buf);
            buf.put_slice(self.value(index));
        }
        self.write_tail(buf);
    }
}

/// A state-of-the-world response.
#[derive(Clone, Debug)]
pub struct SotwResponse {
    pub type_url: TypeName,
    pub version_info: Arc<str>,
    pub nonce: u64,
    pub resources: Vec<Arc<Resource>>,
}

impl WireParts for SotwResponse {
    fn encoded_len(&self) -> usize {
        string_field_len(1, &self.version_info)
            + self
                .resources
                .iter()
                .map(|r| message_field_len(2, r.any_len()))
                .sum::<usize>()
            + string_field_len(4, self.type_url.url())
            + string_field_len(5, &self.nonce.to_string())
    }

    fn write_head(&self, buf: &mut impl BufMut) {
        write_string_field(1, &self.version_info, buf);
    }

    fn resource_count(&self) -> usize {
        self.resources.len()
    }

    fn write_prefix(&self, index: usize, buf: &mut impl BufMut) {
        let resource = &self.resources[index];
        write_message_header(2, resource.any_len(), buf);
        resource.write_any_prefix(buf);
    }

    fn value(&self, index: usize) -> &Bytes {
        &self.resources[index].value
    }

    fn entry_len(&self, index: usize) -> usize {
        message_field_len(2, self.resources[index].any_len())
    }

    fn write_tail(&self, buf: &mut impl BufMut) {
        write_string_field(4, self.type_url.url(), buf);
        write_string_field(5, &self.nonce.to_string(), buf);
    }
}

impl SotwResponse {
    /// As the generated message (a copy; for tests and clients in tests).
    pub fn to_message(&self) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: self.version_info.to_string(),
            resources: self.resources.iter().map(|r| r.to_any()).collect(),
            type_url: self.type_url.url().to_string(),
            nonce: self.nonce.to_string(),
            ..Default::default()
        }
    }
}

/// A delta (incremental) response.
#[derive(Clone, Debug)]
pub struct DeltaResponse {
    pub type_url: TypeName,
    pub system_version_info: Arc<str>,
    pub nonce: u64,
    pub resources: Vec<Arc<Resource>>,
    pub removed: Vec<String>,
}

impl WireParts for DeltaResponse {
    fn encoded_len(&self) -> usize {
        string_field_len(1, &self.system_version_info)
            + self
                .resources
                .iter()
                .map(|r| message_field_len(2, r.delta_len()))
                .sum::<usize>()
            + string_field_len(4, self.type_url.url())
            + string_field_len(5, &self.nonce.to_string())
            + self
                .removed
                .iter()
                .map(|name| message_field_len(6, name.len()))
                .sum::<usize>()
    }

    fn write_head(&self, buf: &mut impl BufMut) {
        write_string_field(1, &self.system_version_info, buf);
    }

    fn resource_count(&self) -> usize {
        self.resources.len()
    }

    /// A delta `Resource` with its fields in the order version, name, resource, so that the
    /// value bytes come last.
    fn write_prefix(&self, index: usize, buf: &mut impl BufMut) {
        let resource = &self.resources[index];
        write_message_header(2, resource.delta_len(), buf);
        write_string_field(1, &resource.version, buf);
        write_string_field(3, &resource.name, buf);
        write_message_header(2, resource.any_len(), buf);
        resource.write_any_prefix(buf);
    }

    fn value(&self, index: usize) -> &Bytes {
        &self.resources[index].value
    }

    fn entry_len(&self, index: usize) -> usize {
        message_field_len(2, self.resources[index].delta_len())
    }

    fn write_tail(&self, buf: &mut impl BufMut) {
        write_string_field(4, self.type_url.url(), buf);
        write_string_field(5, &self.nonce.to_string(), buf);
        for name in &self.removed {
            write_message_header(6, name.len(), buf);
            buf.put_slice(name.as_bytes());
        }
    }
}

impl DeltaResponse {
    /// As the generated message (a copy; for tests and clients in tests).
    pub fn to_message(&self) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: self.system_version_info.to_string(),
            resources: self
                .resources
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.to_any()),
                    ..Default::default()
                })
                .collect(),
            type_url: self.type_url.url().to_string(),
            nonce: self.nonce.to_string(),
            removed_resources: self.removed.clone(),
            ..Default::default()
        }
    }
}

// Protobuf framing, written by hand around shared bytes. Empty strings are left out, as
// proto3 encoders do, so the bytes equal what prost would write.

fn string_field_len(tag: u32, value: &str) -> usize {
    if value.is_empty() {
        0
    } else {
        bytes_field_len(tag, value.len())
    }
}

fn bytes_field_len(tag: u32, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn message_field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn write_string_field(tag: u32, value: &str, buf: &mut impl BufMut) {
    if !value.is_empty() {
        write_bytes_field(tag, value.as_bytes(), buf);
    }
}

fn write_bytes_field(tag: u32, value: &[u8], buf: &mut impl BufMut) {
    if !value.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(value.len() as u64, buf);
        buf.put_slice(value);
    }
}

fn write_message_header(tag: u32, len: usize, buf: &mut impl BufMut) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn resources() -> Vec<Arc<Resource>> {
        vec![
            Arc::new(Resource::new(TypeUrl::Cluster, "a", vec![1u8, 2, 3])),
            Arc::new(Resource::new(TypeUrl::Cluster, "b", vec![0u8; 300])),
            Arc::new(Resource::new(TypeUrl::Cluster, "empty", Vec::<u8>::new())),
        ]
    }

    #[test]
    fn sotw_bytes_are_what_prost_would_write() {
        let response = SotwResponse {
            type_url: TypeName::Served(TypeUrl::Cluster),
            version_info: "v1".into(),
            nonce: 42,
            resources: resources(),
        };
        let mut ours = Vec::new();
        response.encode(&mut ours);
        assert_eq!(ours.len(), response.encoded_len());
        assert_eq!(ours, response.to_message().encode_to_vec());
        let decoded = DiscoveryResponse::decode(ours.as_slice()).unwrap();
        assert_eq!(decoded.nonce, "42");
        assert_eq!(decoded.resources[1].value.len(), 300);
    }

    #[test]
    fn delta_bytes_are_what_prost_would_write() {
        let response = DeltaResponse {
            type_url: TypeName::Served(TypeUrl::Endpoint),
            system_version_info: "".into(),
            nonce: 7,
            resources: resources(),
            removed: vec!["gone".into(), "".into()],
        };
        let mut ours = Vec::new();
        response.encode(&mut ours);
        assert_eq!(ours.len(), response.encoded_len());
        assert_eq!(
            DeltaDiscoveryResponse::decode(ours.as_slice()).unwrap(),
            response.to_message(),
            "the same message (fields of a resource in another order)"
        );
    }

    #[test]
    fn versions_are_content_hashes() {
        let a = Resource::new(TypeUrl::Route, "r", vec![1u8]);
        let b = Resource::new(TypeUrl::Route, "other-name", vec![1u8]);
        assert_eq!(a.version, b.version);
        assert_eq!(a.version.len(), 16);
        assert_ne!(
            a.version,
            Resource::new(TypeUrl::Route, "r", vec![2u8]).version
        );
    }
}

/// Why a discovery request cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestDecodeError {
    /// Not protobuf, or not a message of the request's type.
    #[error(transparent)]
    Protobuf(#[from] prost::DecodeError),
    /// A length-delimited field longer than what is left of the request.
    #[error("a field runs past the end of the request")]
    FieldPastEnd,
    /// A string field (by number) whose bytes are not UTF-8.
    #[error("field {tag} is a string that is not valid UTF-8")]
    NotUtf8 { tag: u32 },
}

/// A state-of-the-world request, read in place: its strings stay in the received bytes (an
/// ACK from an Envoy subscribed to a thousand clusters lists a thousand names, and is
/// compared with what the stream has without allocating them), and the node and error are
/// decoded only when asked for.
#[derive(Clone, Debug)]
pub struct SotwRequest {
    raw: Bytes,
    version_info: (u32, u32),
    type_url: (u32, u32),
    response_nonce: (u32, u32),
    names: Vec<(u32, u32)>,
    node: Option<(u32, u32)>,
    error_detail: Option<(u32, u32)>,
}

impl SotwRequest {
    /// Reads an encoded `DiscoveryRequest`; fields Switchyard does not use are skipped.
    pub fn decode(raw: Bytes) -> Result<SotwRequest, RequestDecodeError> {
        use prost::encoding::{decode_key, decode_varint, skip_field, DecodeContext};
        let mut request = SotwRequest {
            raw: raw.clone(),
            version_info: (0, 0),
            type_url: (0, 0),
            response_nonce: (0, 0),
            names: Vec::new(),
            node: None,
            error_detail: None,
        };
        let total = raw.len();
        let mut buf = raw;
        while !buf.is_empty() {
            let (tag, wire_type) = decode_key(&mut buf)?;
            if wire_type != WireType::LengthDelimited || !(1..=6).contains(&tag) {
                skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
                continue;
            }
            let len = decode_varint(&mut buf)? as usize;
            if len > buf.len() {
                return Err(RequestDecodeError::FieldPastEnd);
            }
            let start = (total - buf.len()) as u32;
            let span = (start, start + len as u32);
            if matches!(tag, 1 | 3 | 4 | 5) && std::str::from_utf8(&buf[..len]).is_err() {
                return Err(RequestDecodeError::NotUtf8 { tag });
            }
            match tag {
                1 => request.version_info = span,
                2 => request.node = Some(span),
                3 => request.names.push(span),
                4 => request.type_url = span,
                5 => request.response_nonce = span,
                _ => request.error_detail = Some(span),
            }
            bytes::Buf::advance(&mut buf, len);
        }
        Ok(request)
    }

    /// The request as read from `message` (for tests, and the one-shot Fetch call).
    pub fn from_message(
        message: &envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest,
    ) -> SotwRequest {
        use prost::Message;
        SotwRequest::decode(Bytes::from(message.encode_to_vec()))
            .expect("prost encodes valid messages")
    }

    fn text(&self, (start, end): (u32, u32)) -> &str {
        // Checked to be UTF-8 when decoded.
        std::str::from_utf8(&self.raw[start as usize..end as usize]).unwrap_or_default()
    }

    pub fn version_info(&self) -> &str {
        self.text(self.version_info)
    }

    pub fn type_url(&self) -> &str {
        self.text(self.type_url)
    }

    pub fn response_nonce(&self) -> &str {
        self.text(self.response_nonce)
    }

    /// The names asked for, in the order sent.
    pub fn resource_names(&self) -> impl ExactSizeIterator<Item = &str> + Clone {
        self.names.iter().map(|span| self.text(*span))
    }

    /// The node, when the request carries one.
    pub fn node(&self) -> Option<envoy_types::pb::envoy::config::core::v3::Node> {
        use prost::Message;
        let (start, end) = self.node?;
        envoy_types::pb::envoy::config::core::v3::Node::decode(
            &self.raw[start as usize..end as usize],
        )
        .ok()
    }

    pub fn has_node(&self) -> bool {
        self.node.is_some()
    }

    /// Encoded size of the node (0 without one).
    pub fn node_len(&self) -> usize {
        self.node.map_or(0, |(start, end)| (end - start) as usize)
    }

    /// The client's error, when the request is a NACK.
    pub fn error_detail(&self) -> Option<envoy_types::pb::google::rpc::Status> {
        use prost::Message;
        let (start, end) = self.error_detail?;
        Some(
            envoy_types::pb::google::rpc::Status::decode(&self.raw[start as usize..end as usize])
                .unwrap_or_else(|_| envoy_types::pb::google::rpc::Status {
                    message: "(an error_detail that could not be decoded)".into(),
                    ..Default::default()
                }),
        )
    }
}

#[cfg(test)]
mod request_tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::Node;
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;

    #[test]
    fn a_request_reads_in_place_as_prost_would() {
        let message = DiscoveryRequest {
            version_info: "v1".into(),
            node: Some(Node {
                id: "n".into(),
                ..Default::default()
            }),
            resource_names: vec!["a".into(), "".into(), "ä".into()],
            type_url: TypeUrl::Endpoint.url().into(),
            response_nonce: "7".into(),
            error_detail: Some(envoy_types::pb::google::rpc::Status {
                code: 3,
                message: "no".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let request = SotwRequest::from_message(&message);
        assert_eq!(request.version_info(), "v1");
        assert_eq!(request.type_url(), TypeUrl::Endpoint.url());
        assert_eq!(request.response_nonce(), "7");
        assert_eq!(request.resource_names().collect::<Vec<_>>(), ["a", "", "ä"]);
        assert_eq!(request.node().unwrap().id, "n");
        assert_eq!(request.error_detail().unwrap().message, "no");
        let past_end = SotwRequest::decode(Bytes::from_static(&[0x0a, 0x05, b'a'])).unwrap_err();
        assert_eq!(past_end, RequestDecodeError::FieldPastEnd);
        assert_eq!(
            past_end.to_string(),
            "a field runs past the end of the request"
        );
        let latin = SotwRequest::decode(Bytes::from_static(&[0x1a, 0x01, 0xff])).unwrap_err();
        assert_eq!(latin, RequestDecodeError::NotUtf8 { tag: 3 });
        assert_eq!(
            latin.to_string(),
            "field 3 is a string that is not valid UTF-8"
        );
        let truncated = SotwRequest::decode(Bytes::from_static(&[0x80])).unwrap_err();
        assert!(
            matches!(truncated, RequestDecodeError::Protobuf(_)),
            "{truncated}"
        );
    }
}
