//! Translation pinned to bytes: every config of tests/golden/configs/ (the examples and the
//! single-file configs the test suite served when the corpus was recorded) translates to
//! exactly what tests/golden/translate.sha256 records — the `translate` output, and the
//! endpoint assignments of every client region and zone the config names. A refactoring that
//! changes no behaviour leaves every digest as it is; a change meant to alter what is served
//! rewrites them (`SWITCHYARD_WRITE_GOLDEN=1 cargo test --test integration golden`) and shows
//! in review which configs it touched.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use switchyard::translate::{self, endpoints, json};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

/// Everything a config makes Switchyard serve, as text.
fn served_text(loaded: switchyard::config::Loaded) -> Result<String, String> {
    if loaded.diagnostics.has_errors() {
        return Err(loaded.diagnostics.to_string());
    }
    let model = &loaded.model;
    let mut text =
        serde_json::to_string_pretty(&json::resources_to_json(&translate::translate(model)))
            .unwrap();
    let localities: BTreeSet<(String, String)> = model
        .endpoint_groups
        .values()
        .map(|group| (group.region.clone(), group.zone.clone()))
        .collect();
    let views = localities
        .iter()
        .map(|(region, _)| (region.as_str(), None))
        .chain(
            localities
                .iter()
                .map(|(r, z)| (r.as_str(), Some(z.as_str()))),
        );
    for (region, zone) in views {
        let assignments = endpoints::assignments_in(
            model,
            Some(region),
            zone,
            endpoints::Overlay::draining_only(&[]),
        );
        let rendered: Vec<_> = assignments.iter().map(json::message_to_json).collect();
        text.push_str(&format!("\n# {region} {zone:?}\n"));
        text.push_str(&serde_json::to_string_pretty(&rendered).unwrap());
    }
    Ok(text)
}

fn digest(text: &str) -> String {
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// The corpus, loaded: the examples where they are (they name files beside them), then the
/// recorded configs, each by a stable name.
fn corpus() -> Vec<(String, switchyard::config::Loaded)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let examples = yaml_files(&root.join("examples")).into_iter().map(|path| {
        let name = format!("examples/{}", path.file_name().unwrap().to_string_lossy());
        (name, switchyard::config::load(&path))
    });
    let recorded = yaml_files(&golden_dir().join("configs"))
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let loaded = switchyard::config::load_str(&text, &name);
            (name, loaded)
        });
    examples.chain(recorded).collect()
}

#[test]
fn every_config_of_the_corpus_translates_to_the_recorded_bytes() {
    let recorded_path = golden_dir().join("translate.sha256");
    let mut now = String::new();
    for (name, loaded) in corpus() {
        let served = served_text(loaded)
            .unwrap_or_else(|errors| panic!("{name} no longer loads:\n{errors}"));
        now.push_str(&format!("{}  {name}\n", digest(&served)));
    }
    if std::env::var_os("SWITCHYARD_WRITE_GOLDEN").is_some() {
        std::fs::write(&recorded_path, &now).unwrap();
        return;
    }
    let recorded = std::fs::read_to_string(&recorded_path).unwrap();
    let changed: Vec<&str> = now
        .lines()
        .zip(recorded.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.split_whitespace().last().unwrap_or(""))
        .collect();
    assert!(
        changed.is_empty() && now.lines().count() == recorded.lines().count(),
        "translation changed for {} config(s): {changed:?} (if that is intended, rewrite the \
         digests with SWITCHYARD_WRITE_GOLDEN=1 and review which configs moved)",
        changed.len()
    );
}
