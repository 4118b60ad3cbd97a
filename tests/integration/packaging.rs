//! What ships beside the binary is checked against it: every flag the Kubernetes manifests,
//! the systemd unit and the Dockerfile pass to `switchyard serve` exists in its `--help`; the
//! manifests are the Kubernetes objects they claim to be (read into k8s-openapi's types and
//! written back unchanged, so a misspelt field is caught, not dropped); the config they ship
//! validates; and the Envoy bootstrap for clients passes Envoy's own validation.

use std::path::Path;
use std::process::Command;

use crate::cli::switchyard;
use crate::common::{envoy_binary, repo_root};

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The YAML documents of every manifest in deploy/kubernetes/.
fn manifests() -> Vec<(String, serde_json::Value)> {
    let dir = repo_root().join("deploy/kubernetes");
    let mut found = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value: serde_json::Value = serde::Deserialize::deserialize(document).unwrap();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            found.push((name, value));
        }
    }
    found
}

/// Reads `value` as `T` and writes it back: what comes back must be what was written.
fn round_trips<T>(file: &str, value: &serde_json::Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let object: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| {
        panic!(
            "{file}: {} is not a valid {}: {e}",
            value["metadata"]["name"], value["kind"]
        )
    });
    let back = serde_json::to_value(&object).unwrap();
    assert_eq!(
        &back, value,
        "{file}: fields Kubernetes does not have were dropped"
    );
}

#[test]
fn the_manifests_are_the_kubernetes_objects_they_claim_to_be() {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{ConfigMap, Service};
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let mut kinds = Vec::new();
    for (file, value) in manifests() {
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "Deployment" => round_trips::<Deployment>(&file, &value),
            "Service" => round_trips::<Service>(&file, &value),
            "ConfigMap" => round_trips::<ConfigMap>(&file, &value),
            "PodDisruptionBudget" => round_trips::<PodDisruptionBudget>(&file, &value),
            other => panic!("{file}: a {other} is not checked here; add it"),
        }
        kinds.push(kind);
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "ConfigMap",
            "Deployment",
            "PodDisruptionBudget",
            "Service"
        ]
    );
}

/// The `--flags` of `switchyard serve` in a command line's words.
fn flags_of<'a>(words: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    words
        .into_iter()
        .map(|word| word.trim_matches('"'))
        .filter(|word| word.starts_with("--"))
        .map(|word| word.split('=').next().unwrap().to_string())
        .collect()
}

#[test]
fn every_flag_shipped_exists_in_serve_help() {
    let (_, help, _) = switchyard(&["serve", "--help"]);
    let mut shipped = Vec::new();
    for (file, value) in manifests() {
        if value["kind"] == "Deployment" {
            for container in value["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
            {
                let args: Vec<&str> = container["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert_eq!(args[0], "serve", "{file}");
                shipped.push((file.clone(), flags_of(args)));
            }
        }
    }
    let unit = read("deploy/systemd/switchyard.service");
    let exec: String = unit
        .lines()
        .skip_while(|line| !line.starts_with("ExecStart="))
        .take_while(|line| !line.starts_with("ExecReload="))
        .collect::<Vec<_>>()
        .join(" ");
    assert!(exec.contains("switchyard serve"), "{exec}");
    shipped.push((
        "switchyard.service".into(),
        flags_of(exec.split_whitespace()),
    ));
    let dockerfile = read("Dockerfile");
    let cmd = dockerfile.lines().find(|l| l.starts_with("CMD [")).unwrap();
    assert!(cmd.contains("\"serve\""), "{cmd}");
    shipped.push((
        "Dockerfile".into(),
        flags_of(cmd.split([',', ' ', '[', ']'])),
    ));
    for (file, flags) in shipped {
        assert!(flags.len() >= 3, "{file}: {flags:?}");
        for flag in flags {
            assert!(
                help.contains(&format!("{flag} ")) || help.contains(&format!("{flag}\n")),
                "{file} passes {flag}, which `switchyard serve --help` does not have"
            );
        }
    }
}

#[test]
fn the_shipped_config_validates_and_the_client_bootstrap_passes_envoys_validation() {
    let dir = tempfile::tempdir().unwrap();
    let mut bootstraps = 0;
    for (file, value) in manifests() {
        if value["kind"] != "ConfigMap" {
            continue;
        }
        for (key, text) in value["data"].as_object().unwrap() {
            let text = text.as_str().unwrap();
            let path = dir.path().join(key);
            std::fs::write(&path, text).unwrap();
            if text.contains("dynamic_resources") {
                bootstraps += 1;
                let output = Command::new(envoy_binary())
                    .args(["--mode", "validate", "--service-node", "validate", "-c"])
                    .arg(&path)
                    .output()
                    .expect("Envoy runs");
                assert!(
                    output.status.success(),
                    "{file}: {key} fails Envoy's validation: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            } else {
                let (code, out, _) = switchyard(&["validate", path.to_str().unwrap()]);
                assert_eq!(code, 0, "{file}: {key}: {out}");
            }
        }
    }
    assert_eq!(bootstraps, 1);
    assert!(Path::new(&repo_root().join("LICENSE")).exists());
}
