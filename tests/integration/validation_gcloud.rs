//! gcloud's YAML pasted unchanged: a backend service as `gcloud compute backend-services
//! describe --format=yaml` prints it (with `kind`, `port`, `logConfig`, `usedBy` and the
//! read-only metadata) and a URL map as `gcloud compute url-maps edit` shows it (a bare
//! resource, no collection) load next to an ordinary file, with a warning for what has no
//! effect and an error for what Switchyard cannot serve.

use std::path::Path;

use switchyard::config::{load, load_str};

fn diagnostics(loaded: &switchyard::config::Loaded) -> Vec<String> {
    loaded
        .diagnostics
        .items
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn gcloud_output_loads_as_printed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gcloud");
    let loaded = load(&dir);
    let found = diagnostics(&loaded);
    assert_eq!(found, Vec::<String>::new());
    // logConfig is served: an access log for the service, every request (sampleRate 1.0).
    assert_eq!(loaded.model.services["web"].log_sample_rate, Some(1.0));
    let model = &loaded.model;
    let service = &model.services["web"];
    assert_eq!(service.timeout, std::time::Duration::from_secs(30));
    assert_eq!(
        model.route_tables["web-map"].virtual_hosts[0].routes.len(),
        2,
        "the route rule, then the path matcher's default"
    );
    assert!(model.frontends.contains_key("f"));
}

#[test]
fn a_bare_resource_of_a_kind_not_served_is_named() {
    let found = diagnostics(&load_str(
        "kind: compute#backendBucket\nname: bucket\nbucketName: static\n",
        "bucket.yaml",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("error: bucket.yaml:1: kind: `compute#backendBucket` resources are not served; a single resource may be one of: compute#healthCheck,"),
        "{}",
        found[0]
    );
}

#[test]
fn deprecated_port_without_port_name_and_cdn_are_reported() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/gcloud/web-backend-service.yaml"),
    )
    .unwrap()
    .replace("portName: http\n", "")
    .replace("enableCDN: false", "enableCDN: true")
    .replace("logConfig:\n  enable: true\n  sampleRate: 1.0\n", "");
    let found: Vec<String> = diagnostics(&load_str(&text, "bs.yaml"))
        .into_iter()
        .filter(|d| !d.contains("refers to no resource"))
        .collect();
    assert_eq!(
        found,
        [
            "error: bs.yaml:11: backendServices[web].enableCDN: `enableCDN` is a cloud field Switchyard does not serve (there is no cache); remove it or set it to false",
            "warning: bs.yaml:20: backendServices[web].port: deprecated in the cloud API and not used: backends are reached on their named port (portName, default `http`) or their NEG endpoint's port",
        ]
    );
}

#[test]
fn google_run_services_are_named_not_available_never_unknown() {
    let found = diagnostics(&load_str(
        "networkEndpointGroups:\n\
         - {name: run, networkEndpointType: SERVERLESS, region: us-central1, cloudRun: {service: hello}}\n\
         backendServices:\n\
         - name: web\n  securityPolicy: global/securityPolicies/armor\n  iap: {enabled: true}\n  cdnPolicy: {cacheMode: CACHE_ALL_STATIC}\n\
         backendBuckets:\n- {name: static, bucketName: my-bucket}\n",
        "lb.yaml",
    ));
    assert_eq!(
        found,
        [
            "error: lb.yaml:2: networkEndpointGroups[run].cloudRun: `cloudRun` points a serverless NEG at Cloud Run, App Engine or Cloud Functions, reached through Google's network, which is not available in a self-hosted control plane",
            "error: lb.yaml:2: networkEndpointGroups[run].networkEndpointType: `SERVERLESS`: serverless NEGs reach Cloud Run, App Engine and Cloud Functions through Google's network, which is not available in a self-hosted control plane; use GCE_VM_IP_PORT or NON_GCP_PRIVATE_IP_PORT with the addresses to reach",
            "error: lb.yaml:5: backendServices[web].securityPolicy: `securityPolicy` names a Cloud Armor security policy, a Google-run service not available in a self-hosted control plane; remove the field",
            "error: lb.yaml:6: backendServices[web].iap: `iap` turns on Identity-Aware Proxy, a Google-run service not available in a self-hosted control plane; remove the field",
            "error: lb.yaml:7: backendServices[web].cdnPolicy: `cdnPolicy` configures Cloud CDN, a Google-run service not available in a self-hosted control plane; remove the field",
            "error: lb.yaml:9: backendBuckets: backendBuckets serve Cloud Storage buckets, which are not available in a self-hosted control plane; serve the files from a backend service instead",
        ]
    );
}

#[test]
fn exported_resources_load_from_folders_named_after_their_collection() {
    // `gcloud compute backend-services export` writes no `kind`; the folder says what it is.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gcloud");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir(root.join("backendServices")).unwrap();
    std::fs::create_dir(root.join("urlMaps")).unwrap();
    let service = std::fs::read_to_string(fixtures.join("web-backend-service.yaml")).unwrap();
    let exported: String = service
        .lines()
        .filter(|line| !line.starts_with("kind:"))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_ne!(exported, service, "the fixture had a kind to drop");
    std::fs::write(root.join("backendServices/web.yaml"), exported).unwrap();
    std::fs::copy(
        fixtures.join("web-map.yaml"),
        root.join("urlMaps/web-map.yaml"),
    )
    .unwrap();
    std::fs::copy(fixtures.join("rest.yaml"), root.join("rest.yaml")).unwrap();
    let loaded = load(root);
    let errors: Vec<String> = diagnostics(&loaded)
        .into_iter()
        .filter(|d| d.starts_with("error"))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let from_folders = &loaded.model;
    let printed = load(&fixtures);
    // Compared as served (locations left out: they name different files).
    assert_eq!(
        serde_json::to_value(&from_folders.services["web"]).unwrap(),
        serde_json::to_value(&printed.model.services["web"]).unwrap()
    );
    assert_eq!(
        serde_json::to_value(&from_folders.route_tables["web-map"]).unwrap(),
        serde_json::to_value(&printed.model.route_tables["web-map"]).unwrap()
    );
    assert!(from_folders.frontends.contains_key("f"));
}
