//! Property tests, bounded for CI (PROPTEST_CASES sets how many cases; the default here is
//! 256 per property, and `PROPTEST_CASES=100000 cargo test --release --test integration
//! properties::` runs longer on demand):
//! - the config loader on arbitrary bytes and on mutated examples never panics, and what it
//!   accepts translates without panicking;
//! - request decoding on arbitrary bytes never panics, and agrees with prost on valid input;
//! - the xDS stream state machines under model clients ([`streams`]).
//!
//! Failing cases proptest finds are kept next to the file that found them
//! (`<file>.proptest-regressions`) and run first on every later run.

mod streams;

use bytes::Bytes;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use prost::Message;
use switchyard::xds::wire::SotwRequest;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        // Beside the source file, where the one test binary's layout does not hide them.
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

const EXAMPLES: [&str; 3] = ["quickstart.yaml", "grpc.yaml", "dual-stack.yaml"];

fn example(index: usize) -> String {
    let name = EXAMPLES[index % EXAMPLES.len()];
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_default()
}

/// One change to a config's lines.
#[derive(Clone, Debug)]
enum Mutation {
    Delete(usize),
    Duplicate(usize),
    Indent(usize, usize),
    /// Replaces the value after the line's first `: ` with a hostile token.
    Value(usize, usize),
}

const TOKENS: [&str; 14] = [
    "-1",
    "0",
    "1e309",
    "99999999999999999999999",
    "*anchor",
    "&anchor [a, *anchor]",
    "[",
    "{",
    "~",
    "null",
    "\"\\u0000\"",
    "!!binary AAAA",
    "::1",
    "[*a, *a, *a, *a, *a, *a, *a, *a]",
];

fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for mutation in mutations {
        if lines.is_empty() {
            break;
        }
        let at = |index: usize| index % lines.len();
        match *mutation {
            Mutation::Delete(index) => {
                lines.remove(at(index));
            }
            Mutation::Duplicate(index) => {
                let line = lines[at(index)].clone();
                lines.insert(at(index), line);
            }
            Mutation::Indent(index, by) => {
                let index = at(index);
                lines[index] = format!("{}{}", " ".repeat(by % 5), lines[index]);
            }
            Mutation::Value(index, token) => {
                let index = at(index);
                if let Some(colon) = lines[index].find(": ") {
                    lines[index] = format!(
                        "{}: {}",
                        &lines[index][..colon],
                        TOKENS[token % TOKENS.len()]
                    );
                }
            }
        }
    }
    lines.join("\n")
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Delete),
        any::<usize>().prop_map(Mutation::Duplicate),
        (any::<usize>(), any::<usize>()).prop_map(|(i, b)| Mutation::Indent(i, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(i, t)| Mutation::Value(i, t)),
    ]
}

/// Loads `text`; when it is accepted, translates it as `serve` would.
fn load_and_translate(text: &str) {
    let loaded = switchyard::config::load_str(text, "fuzz.yaml");
    if let Some(model) = loaded.accepted() {
        let resources = switchyard::translate::translate(model);
        let _ = switchyard::publish::content_of(model, resources, &[]);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_loader_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        load_and_translate(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn the_loader_survives_mutated_examples(
        which in 0..EXAMPLES.len(),
        mutations in proptest::collection::vec(mutation(), 1..8),
    ) {
        load_and_translate(&mutate(&example(which), &mutations));
    }

    #[test]
    fn request_decoding_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = SotwRequest::decode(Bytes::from(bytes.clone()));
        let _ = DeltaDiscoveryRequest::decode(bytes.as_slice());
    }

    #[test]
    fn request_decoding_agrees_with_prost(
        names in proptest::collection::vec("[a-z*]{0,12}", 0..20),
        type_url in "[a-zA-Z./]{0,40}",
        version in "[0-9a-f]{0,16}",
        nonce in "[0-9]{0,6}",
        detail in proptest::option::of("[ -~]{0,30}"),
    ) {
        let message = DiscoveryRequest {
            node: None,
            version_info: version.clone(),
            resource_names: names.clone(),
            type_url: type_url.clone(),
            response_nonce: nonce.clone(),
            error_detail: detail.map(|message| Status { code: 3, message, details: vec![] }),
            ..Default::default()
        };
        let view = SotwRequest::decode(Bytes::from(message.encode_to_vec())).unwrap();
        prop_assert_eq!(view.type_url(), type_url.as_str());
        prop_assert_eq!(view.version_info(), version.as_str());
        prop_assert_eq!(view.response_nonce(), nonce.as_str());
        prop_assert_eq!(view.resource_names().collect::<Vec<_>>(), names.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(view.error_detail().is_some(), message.error_detail.is_some());
    }
}
