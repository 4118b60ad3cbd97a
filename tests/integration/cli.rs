//! The `switchyard` binary's validate and translate commands, run as a user runs them.

use std::process::Command;

/// Runs the `switchyard` binary with `args`: exit code, standard output, standard error.
pub fn switchyard(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn quickstart() -> String {
    format!("{}/examples/quickstart.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn validate_exits_zero_on_a_good_config_and_one_on_errors() {
    let (code, out, _) = switchyard(&["validate", &quickstart()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("quickstart.yaml: 0 error(s), 0 warning(s), 1 note(s)\n"),
        "{out}"
    );

    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(quickstart())
        .unwrap()
        .replace("maxRate: 10", "maxRate: -1");
    std::fs::write(&broken, text).unwrap();
    let (code, out, _) = switchyard(&["validate", broken.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("broken.yaml:47: backendServices[web].backends[1].maxRate: -1 is out of range; allowed: 0 to 2147483647"),
        "{out}"
    );
}

#[test]
fn translate_prints_envoy_style_json_and_yaml() {
    let (code, out, err) = switchyard(&["translate", &quickstart(), "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let dump: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listener = &dump["listeners"][0];
    assert_eq!(
        listener["@type"],
        "type.googleapis.com/envoy.config.listener.v3.Listener"
    );
    assert_eq!(listener["address"]["socket_address"]["port_value"], 10000);
    let manager = &listener["filter_chains"][0]["filters"][0]["typed_config"];
    assert_eq!(
        manager["rds"]["route_config_name"], "quickstart",
        "Any is expanded"
    );
    let weights: Vec<u64> = dump["endpoints"][1]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["load_balancing_weight"].as_u64().unwrap())
        .collect();
    assert_eq!(weights, vec![10000, 3333]);

    let (code, yaml, _) = switchyard(&["translate", &quickstart()]);
    assert_eq!(code, 0);
    let from_yaml: serde_json::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, dump, "YAML and JSON carry the same resources");
}

#[test]
fn explain_shows_priorities_capacities_and_shares() {
    let failover = format!("{}/examples/failover.yaml", env!("CARGO_MANIFEST_DIR"));
    let (code, out, err) = switchyard(&[
        "explain",
        &failover,
        "backendServices/web",
        "--client-locality",
        "us-central1/us-central1-a",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    for expected in [
        "priority 0: us-central1 (the client's own region)",
        "  web-a (us-central1-a, RATE): target 30 = maxRatePerEndpoint 10 × 3 endpoints; scaler 1; effective 30; weight 6000; share 85.7%",
        "  web-b (us-central1-b, RATE): target 10 = maxRate 10; scaler 0.5; effective 5; weight 1000; share 14.3%",
        "priority 1: europe-west4 (listed in regionOrder for the client's region)",
        "  web-eu (europe-west4-a, RATE): target 50 = maxRate 50; scaler 1; effective 50; weight 10000; share 100.0%",
        "  web-east (us-east1-b): capacityScaler 0; target 20 = maxRate 20",
    ] {
        assert!(lines.contains(&expected), "missing line {expected:?} in:\n{out}");
    }
    let (_, from_europe, _) = switchyard(&[
        "explain",
        &failover,
        "web",
        "--client-locality",
        "europe-west4",
    ]);
    assert!(
        from_europe.contains("priority 0: europe-west4 (the client's own region)"),
        "{from_europe}"
    );
    assert!(
        from_europe.contains("priority 1: us-central1 (another continent)"),
        "{from_europe}"
    );
}

#[test]
fn explain_shows_the_address_family_each_endpoint_is_reached_on() {
    let example = format!("{}/examples/dual-stack.yaml", env!("CARGO_MANIFEST_DIR"));
    let (code, prefer, err) = switchyard(&[
        "explain",
        &example,
        "BACKEND_SERVICE_IPV6",
        "--client-locality",
        "us-central1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        prefer.contains("    vm-a1: [::1]:8091 over IPv6 (PREFER_IPV6: IPv6 first; happy eyeballs falls back to 127.0.0.1:8091 over IPv4)\n"),
        "{prefer}"
    );
    let (_, ipv4, _) = switchyard(&["explain", &example, "backendServices/BACKEND_SERVICE"]);
    assert!(
        ipv4.contains("    vm-a2: 127.0.0.1:8092 over IPv4 (IPV4_ONLY)\n"),
        "{ipv4}"
    );
}

#[test]
fn validate_refuses_an_empty_or_comment_only_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("empty.yaml", ""),
        ("blank.yaml", "  \n\n\t\n"),
        ("comments.yaml", "# nothing yet\n"),
    ] {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (code, out, _) = switchyard(&["validate", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {out}");
        assert!(
            out.contains(&format!("{name}:1: : the file holds no YAML document (it is empty, or only whitespace and comments)")),
            "{out}"
        );
    }
}

#[test]
fn serve_exits_on_an_invalid_config_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, "backendServices: [\n").unwrap();
    let (code, _, err) = switchyard(&[
        "serve",
        file.to_str().unwrap(),
        "--exit-on-invalid",
        "--xds-listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("the config has errors"), "{err}");
    assert!(err.contains("lb.yaml:2: : YAML syntax error"), "{err}");
}

#[test]
fn serve_refuses_plaintext_xds_off_loopback_unless_asked_and_half_tls_flags() {
    let (code, _, err) = switchyard(&[
        "serve",
        &quickstart(),
        "--xds-listen",
        "0.0.0.0:0",
        "--admin-listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("reachable from other hosts") && err.contains("--xds-plaintext"),
        "{err}"
    );
    // A certificate without its key and CA is a usage error.
    let (code, _, err) = switchyard(&["serve", &quickstart(), "--xds-tls-cert", "cert.pem"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--xds-tls-key") && err.contains("--xds-client-ca"),
        "{err}"
    );
    // Files that are not there are named.
    let (code, _, err) = switchyard(&[
        "serve",
        &quickstart(),
        "--admin-listen",
        "127.0.0.1:0",
        "--xds-listen",
        "127.0.0.1:0",
        "--xds-tls-cert",
        "/nonexistent/cert.pem",
        "--xds-tls-key",
        "/nonexistent/key.pem",
        "--xds-client-ca",
        "/nonexistent/ca.pem",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/cert.pem"), "{err}");
}

#[test]
fn translate_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    // The reader has gone before the first byte: every write meets a broken pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["translate", &quickstart()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{:?}: {stderr}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.is_empty(),
        "nothing to say about a reader that left: {stderr}"
    );
}

#[test]
fn validating_a_folder_of_separate_configs_names_the_files_that_clash() {
    let examples = format!("{}/examples", env!("CARGO_MANIFEST_DIR"));
    let (code, out, _) = switchyard(&["validate", &examples]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("examples/grpc.yaml clashes with ") && out.contains("examples/authorized.yaml (5 name(s) or address:port pair(s) used by both: instanceGroups and networkEndpointGroups[who-a], backendServices[who], urlMaps[who-map], target proxies[who-proxy], forwardingRules[who-grpc])"),
        "{out}"
    );
    assert!(
        out.contains("hint: the files of a folder are merged into one config"),
        "{out}"
    );
    // One line per pair of files instead of one per clashing name.
    assert!(
        !out.contains("the name `who` is already used"),
        "clashes between files are summed up: {out}"
    );
    let error_lines = out.lines().filter(|l| l.starts_with("error:")).count();
    assert!(error_lines < 12, "{error_lines} error lines:\n{out}");
    assert!(out.contains(" error(s), 0 warning(s), "), "{out}");
}

#[test]
fn validate_reports_json_for_ci_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(quickstart())
        .unwrap()
        .replace("maxRate: 10", "maxRate: -1");
    std::fs::write(&broken, text).unwrap();
    let (code, out, _) = switchyard(&["validate", broken.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(report["valid"], false, "{out}");
    assert_eq!(report["errors"], 1, "{out}");
    let error = &report["diagnostics"][0];
    assert_eq!(error["severity"], "error", "{out}");
    assert_eq!(error["line"], 47, "{out}");
    assert_eq!(
        error["path"], "backendServices[web].backends[1].maxRate",
        "{out}"
    );
    assert!(
        error["file"].as_str().unwrap().ends_with("broken.yaml"),
        "{out}"
    );

    let (code, out, _) = switchyard(&["validate", &quickstart(), "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["valid"].clone(), report["notes"].clone()),
        (true.into(), 1.into())
    );
    assert_eq!(report["diagnostics"][0]["severity"], "note", "{out}");
}

#[test]
fn logs_are_json_lines_on_request_and_never_carry_colour_codes_into_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("lb.yaml");
    std::fs::write(&file, "backendServices: [\n").unwrap();
    let serve = |format: &str| {
        switchyard(&[
            "serve",
            file.to_str().unwrap(),
            "--exit-on-invalid",
            "--xds-listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--log-format",
            format,
        ])
    };
    let (_, _, text) = serve("text");
    assert!(text.contains("YAML syntax error"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI codes in a non-terminal log: {text:?}"
    );
    let (_, _, json) = serve("json");
    let lines: Vec<serde_json::Value> = json
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("each log line is one JSON object"))
        .collect();
    assert!(
        lines.iter().any(|line| line["level"] == "ERROR"
            && line["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .contains("YAML syntax error")),
        "{json}"
    );
    let (code, _, err) = switchyard(&[
        "validate",
        file.to_str().unwrap(),
        "--log-level",
        "switchyard=loud",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--log-level switchyard=loud"), "{err}");
}

#[test]
fn completions_and_the_manual_page_come_from_the_same_flags_as_help() {
    let (code, bash, _) = switchyard(&["completions", "bash"]);
    assert_eq!(code, 0);
    for flag in [
        "--xds-listen",
        "--load-report-interval",
        "--log-format",
        "--bootstrap",
    ] {
        assert!(bash.contains(flag), "bash completion lacks {flag}");
    }
    let (code, page, _) = switchyard(&["man"]);
    assert_eq!(code, 0);
    assert!(
        page.starts_with(".ie") && page.contains(".TH switchyard 1"),
        "{page}"
    );
}
