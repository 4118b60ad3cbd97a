//! The connection manager's `early_header_mutation_extensions` (the
//! `envoy.http.early_header_mutation.header_mutation` extension): header changes made to a
//! request before anything routes it, each mutation in turn, with Envoy's connection variables
//! in values — what Switchyard writes so that routes can match the client's address
//! (translate/source_address.rs). Conversion only; proxy/http.rs applies them. Must not: let a
//! mutation touch what routes may not change (pseudo-headers, Host).

use envoy_types::pb::envoy::config::common::mutation_rules::v3::header_mutation::Action;
use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::extensions::http::early_header_mutation::header_mutation::v3::HeaderMutation;
use prost::Name;

use super::route::{header_changes, HeaderEdits};
use super::{decode_checked, Fault, Problem};

/// The fields of the extension's config the sidecar applies.
pub const FIELDS: &[&str] = &[
    "mutations.append.header.key",
    "mutations.append.header.value",
    "mutations.append.append_action",
    "mutations.remove",
];

/// The early mutations of a connection manager, in order. Two are equal when read from the
/// same configs, so an unchanged listener keeps running.
#[derive(Clone, Debug, Default)]
pub struct EarlyMutations {
    configs: Vec<TypedExtensionConfig>,
    /// One level of edits per mutation, applied in order.
    pub edits: Vec<HeaderEdits>,
}

impl PartialEq for EarlyMutations {
    fn eq(&self, other: &Self) -> bool {
        self.configs == other.configs
    }
}

impl Eq for EarlyMutations {}

impl EarlyMutations {
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }
}

/// Reads `early_header_mutation_extensions`.
pub fn read(extensions: &[TypedExtensionConfig]) -> Result<EarlyMutations, Fault> {
    let mut edits = Vec::new();
    for (index, extension) in extensions.iter().enumerate() {
        let at = format!("early_header_mutation_extensions[{index}]");
        let config = extension.typed_config.clone().unwrap_or_default();
        if config.type_url != HeaderMutation::type_url() {
            return Err(Fault::at(
                format!("{at}.typed_config"),
                Problem::FilterConfigType {
                    filter: "envoy.http.early_header_mutation.header_mutation",
                    type_url: config.type_url,
                    expected: HeaderMutation::type_url(),
                },
            ));
        }
        let mutation: HeaderMutation = decode_checked(&config.value, FIELDS)
            .map_err(|f| f.inside(&format!("{at}.typed_config (HeaderMutation)")))?;
        for (step, one) in mutation.mutations.iter().enumerate() {
            let level = match &one.action {
                Some(Action::Append(option)) => {
                    header_changes(std::slice::from_ref(option), &[], &[], &[])
                }
                Some(Action::Remove(name)) => {
                    header_changes(&[], std::slice::from_ref(name), &[], &[])
                }
                _ => Err(Fault::from(Problem::Missing {
                    what: "an append or a remove",
                })),
            };
            let level = level.map_err(|f| {
                f.under(&format!("mutations[{step}]"))
                    .inside(&format!("{at}.typed_config (HeaderMutation)"))
            })?;
            edits.push(level.request);
        }
    }
    Ok(EarlyMutations {
        configs: extensions.to_vec(),
        edits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::source_address::{source_address_mutation, SOURCE_ADDRESS_HEADER};

    #[test]
    fn switchyards_source_address_mutation_is_read_as_an_overwrite_of_its_header() {
        let read = read(&[source_address_mutation()]).unwrap();
        let [level] = read.edits.as_slice() else {
            panic!("one mutation: {read:?}");
        };
        assert_eq!(level.add.len(), 1);
        assert_eq!(level.add[0].name.as_str(), SOURCE_ADDRESS_HEADER);
        assert_eq!(level.add[0].mode, super::super::route::AddMode::Overwrite);
        assert_eq!(read, read.clone());
    }

    #[test]
    fn another_extension_is_refused_by_type() {
        let mut other = source_address_mutation();
        if let Some(config) = &mut other.typed_config {
            config.type_url = "type.googleapis.com/x.Y".into();
        }
        let refused = read(&[other]).unwrap_err();
        assert_eq!(
            refused.at,
            "early_header_mutation_extensions[0].typed_config"
        );
    }
}
