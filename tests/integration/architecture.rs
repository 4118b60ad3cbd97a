//! The layout's rules, checked on the source: data flows one way, so a folder imports only
//! the parts it builds on (docs/architecture.md draws them). A unit test inside a file may use
//! what its assertions need (the config reader, to build a model from YAML); everything before
//! a file's `#[cfg(test)]` may not.
//!
//! What each part may import of the crate, besides itself:
//! - model: nothing (it is the shared language);
//! - config: model;
//! - translate: model, and xds's shared message helpers (types, wire, reflect);
//! - health: model, metrics, unverified_tls; capacity: model, metrics;
//! - cluster (replicas through etcd): health, model, metrics, capacity (the load it shares),
//!   config and validation_report (configs kept in etcd are read and validated as files are);
//! - publish: model, config, cluster (a config may come from etcd), translate, capacity,
//!   metrics, memory, and the xDS cache it publishes to;
//! - xds/server: xds's shared helpers, metrics, memory;
//! - xds/client and proxy (the sidecar, which stands apart): xds's shared helpers and the
//!   xDS client, memory (and, for proxy, unverified_tls);
//! - memory, descriptors, metrics, unverified_tls: nothing (leaves every part may use).
//!
//! The commands' wiring (main, serve, admin, explain, status, validation_report) may use all.

use std::path::{Path, PathBuf};

/// (part, the imports it may make), the part named by its path under src/.
const RULES: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("config", &["model"]),
    (
        "translate",
        &["model", "xds::types", "xds::wire", "xds::reflect"],
    ),
    ("health", &["model", "metrics", "unverified_tls"]),
    ("capacity", &["model", "metrics"]),
    (
        "cluster",
        &[
            "health",
            "model",
            "metrics",
            "capacity",
            "config",
            "validation_report",
        ],
    ),
    (
        "publish",
        &[
            "model",
            "config",
            "cluster",
            "translate",
            "capacity",
            "metrics",
            "memory",
            "xds::server",
            "xds::types",
            "xds::wire",
        ],
    ),
    (
        "xds/server",
        &[
            "xds::types",
            "xds::wire",
            "xds::reflect",
            "metrics",
            "memory",
        ],
    ),
    (
        "xds/client",
        &["xds::types", "xds::wire", "xds::reflect", "memory"],
    ),
    (
        "proxy",
        &[
            "xds::types",
            "xds::wire",
            "xds::reflect",
            "xds::client",
            "memory",
            "unverified_tls",
        ],
    ),
    ("memory.rs", &[]),
    ("unverified_tls.rs", &[]),
    ("descriptors.rs", &[]),
    ("metrics", &[]),
];

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every `crate::a::b` path the non-test code of `text` names, as `a::b` (or `a`).
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut found = Vec::new();
    for (index, line) in code.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let path: String = rest[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            if let Some(first) = parts.first() {
                let named = match parts.get(1) {
                    Some(second) if *first == "xds" => format!("xds::{second}"),
                    _ => first.to_string(),
                };
                found.push((index + 1, named));
            }
            rest = &rest[at + 7..];
        }
    }
    found
}

fn allowed(own: &str, import: &str, rules: &[&str]) -> bool {
    let own_module = own.trim_end_matches(".rs").replace('/', "::");
    import == own_module
        || import.starts_with(&format!("{own_module}::"))
        || rules
            .iter()
            .any(|rule| import == *rule || import.starts_with(&format!("{rule}::")))
}

#[test]
fn each_part_imports_only_what_it_builds_on() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    for (part, rules) in RULES {
        for file in rust_files(&src.join(part)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, import) in crate_paths(&text) {
                if !allowed(part, &import, rules) {
                    let shown = file.strip_prefix(&src).unwrap().display().to_string();
                    wrong.push(format!(
                        "src/{shown}:{line}: {part} imports crate::{import}"
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layout (tests/integration/architecture.rs lists what each part \
         may use):\n{}",
        wrong.join("\n")
    );
}

/// Words of the clouds' own resource models: a dialect resolves them when it lowers, so that
/// translation and the model never depend on which cloud wrote a config.
const DIALECT_WORDS: &[&str] = &[
    "BackendService",
    "backend_service",
    "UrlMap",
    "url_map",
    "TargetProxy",
    "target_prox",
    "ForwardingRule",
    "forwarding_rule",
    "PathMatcher",
    "path_matcher",
    "HostRule",
    "host_rule",
    "LoadBalancingScheme",
    "load_balancing_scheme",
    "SessionAffinity",
    "BalancingMode",
    "balancing_mode",
    "GroupKind",
    "LocalityLbPolicy",
    "capacity_scaler",
    "GCLB",
    "GCILB",
    "GCE_VM_IP_PORT",
    "NON_GCP",
    "INTERNET_FQDN_PORT",
    "INTERNET_IP_PORT",
    "httpHealthCheck",
    "USE_FIXED_PORT",
    "TargetGroup",
    "target_group",
    "AWSALB",
    "ELBSecurityPolicy",
    "gcp::",
    "aws::",
];

/// The code of `text` (comments left out: a comment may cite a cloud's document), before its
/// tests.
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.split("//").next().unwrap_or("")))
}

#[test]
fn translation_and_the_model_speak_no_dialect() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for part in ["model", "translate"] {
        for file in rust_files(&src.join(part)) {
            let text = std::fs::read_to_string(&file).unwrap();
            for (line, code) in code_lines(&text) {
                for word in DIALECT_WORDS {
                    if code.contains(word) {
                        let shown = file.strip_prefix(&src).unwrap().display().to_string();
                        found.push(format!("src/{shown}:{line}: `{word}`"));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "a dialect's words in the neutral parts (resolve them in config/<dialect>):\n{}",
        found.join("\n")
    );
}
