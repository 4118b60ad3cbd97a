//! Every config a test serves is also handed to the sidecar's converters: what Switchyard emits
//! for it must be something `switchyard proxy` accepts (issue 26, item 5). The check runs in
//! process on the translated resources, so it needs no sidecar and costs a few milliseconds.
//!
//! Must not: decide what the sidecar supports; it only asks the converters the sidecar uses.

use std::path::Path;

use prost::Message;
use switchyard::proxy::resources::{cluster, endpoint, listener, route, tls};
use switchyard::translate::Resources;

/// What the sidecar would NACK of `resources`, one line per refused resource.
pub fn refusals(resources: &Resources) -> Vec<String> {
    let mut refused = Vec::new();
    let mut note = |outcome: Result<(), String>| {
        if let Err(text) = outcome {
            refused.push(text);
        }
    };
    for item in &resources.listeners {
        note(
            listener::convert(&item.name, &item.encode_to_vec())
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    for item in &resources.routes {
        note(
            route::convert(&item.name, &item.encode_to_vec())
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    for item in &resources.clusters {
        note(
            cluster::convert(&item.name, &item.encode_to_vec())
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    for item in &resources.endpoints {
        note(
            endpoint::convert(&item.cluster_name, &item.encode_to_vec())
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    for item in &resources.secrets {
        note(
            tls::convert_secret(&item.name, &item.encode_to_vec())
                .map(drop)
                .map_err(|e| e.to_string()),
        );
    }
    refused
}

/// What the sidecar does not take yet, each a piece of a refusal's text; the list only shrinks
/// and is empty when issue 26 is done. A refusal matching none of these fails the test.
pub const NOT_YET_SUPPORTED: &[&str] = &[];

/// The refusals of `resources` that are not on the [`NOT_YET_SUPPORTED`] list.
pub fn unexpected_refusals(resources: &Resources) -> Vec<String> {
    refusals(resources)
        .into_iter()
        .filter(|refusal| {
            !NOT_YET_SUPPORTED
                .iter()
                .any(|piece| refusal.contains(piece))
        })
        .collect()
}

/// Loads the config at `path` as `serve` would and, when it is valid, fails the test if the
/// sidecar would refuse any of what it translates to.
pub fn assert_sidecar_accepts(path: &Path) {
    let loaded = switchyard::config::load(path);
    let Some(model) = loaded.accepted() else {
        return;
    };
    let refused = unexpected_refusals(&switchyard::translate::translate(model));
    assert!(
        refused.is_empty(),
        "the sidecar would refuse what Switchyard serves for {}:\n{}",
        path.display(),
        refused.join("\n")
    );
}
