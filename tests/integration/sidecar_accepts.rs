//! Nothing Switchyard serves is refused by its own sidecar: every example, every golden
//! config and every fixture is translated and handed to the sidecar's converters (the ones
//! `switchyard proxy` runs on each xDS update). The configs the other integration tests serve
//! get the same check as they start (`common::sidecar_acceptance`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::repo_root;
use crate::common::sidecar_acceptance::unexpected_refusals;

fn yaml_files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files_under(&path, found);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(path);
        }
    }
}

/// Every config file the repository holds, and the gcloud fixture folder read as one config.
fn configs() -> Vec<PathBuf> {
    let root = repo_root();
    let mut found = Vec::new();
    for dir in ["examples", "tests/golden/configs", "tests/fixtures/aws"] {
        yaml_files_under(&root.join(dir), &mut found);
    }
    found.push(root.join("tests/fixtures/gcloud/described"));
    found.sort();
    found
}

#[test]
fn the_sidecar_accepts_every_config_in_the_repository() {
    let mut refused: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for path in configs() {
        let loaded = switchyard::config::load(&path);
        let Some(model) = loaded.accepted() else {
            continue;
        };
        checked += 1;
        let resources = switchyard::translate::translate(model);
        for refusal in unexpected_refusals(&resources) {
            let name = path
                .strip_prefix(repo_root())
                .unwrap()
                .display()
                .to_string();
            refused.entry(refusal).or_default().push(name);
        }
    }
    assert!(checked > 800, "only {checked} configs loaded");
    let report: Vec<String> = refused
        .iter()
        .map(|(refusal, files)| {
            format!(
                "{refusal}\n    in {} (and {} more)",
                files[0],
                files.len() - 1
            )
        })
        .collect();
    assert!(
        report.is_empty(),
        "the sidecar refuses what Switchyard serves:\n{}",
        report.join("\n")
    );
}
