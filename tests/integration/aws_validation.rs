//! The AWS dialect as a user meets it from the command line: `validate`, `explain` and
//! `translate` on CloudFormation templates; errors in AWS's words with file, line, resource
//! path, value and what is allowed; a config folder mixing GCP and AWS files, with names that
//! must not clash; and a bad edit of a served template keeping the previous config.

use std::process::Command;

use crate::common::*;

fn switchyard(args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap() + &String::from_utf8(output.stderr).unwrap(),
    )
}

fn example() -> String {
    format!("{}/examples/aws-alb.yaml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_example_template_validates_explains_and_translates() {
    let (code, out) = switchyard(&["validate", &example()]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.ends_with("aws-alb.yaml: 0 error(s), 0 warning(s), 0 note(s)\n"),
        "{out}"
    );

    let (code, out) = switchyard(&["explain", &example(), "WebBlue"]);
    assert_eq!(code, 0, "{out}");
    for expected in [
        "slow start: an endpoint that joins (or comes back healthy) gets max(1%, t ÷ 60s) of its weight",
        "draining: a removed endpoint finishes its requests and gets no new ones for 30s",
        "WebBlue-us-east-1a (us-east-1a, equal shares): target 1 = one share per target × 1 target",
        "WebBlue-us-east-1b (us-east-1b, equal shares)",
        "health check WebBlue (HTTP on the serving port, every 5s, timeout 2s)",
    ] {
        assert!(out.contains(expected), "explain lacks `{expected}`:\n{out}");
    }
    let (_, api) = switchyard(&["explain", &example(), "ApiTargets"]);
    assert!(
        api.contains("localityLbPolicy LEAST_REQUEST")
            && api.contains(
                "sticky: the proxy issues cookie AWSALB naming the endpoint that served (for 600s)"
            ),
        "{api}"
    );

    let (code, out) = switchyard(&["translate", &example(), "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let dump: serde_json::Value = serde_json::from_str(&out).unwrap();
    let clusters: Vec<&str> = dump["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["ApiTargets", "WebBlue", "WebGreen"]);
    let blue = &dump["clusters"][1];
    assert_eq!(
        blue["round_robin_lb_config"]["slow_start_config"]["slow_start_window"],
        "60s"
    );
    assert_eq!(dump["clusters"][0]["lb_policy"], "LEAST_REQUEST");
    assert_eq!(dump["listeners"][0]["name"], "HttpListener");
}

/// Writes `text` as `name` in a fresh folder and validates it.
fn validate_text(name: &str, text: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    switchyard(&["validate", path.to_str().unwrap()])
}

#[test]
fn errors_name_the_file_line_resource_path_value_and_what_is_allowed() {
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace(
            "- Key: slow_start.duration_seconds\n          Value: \"60\"",
            "- Key: slow_start.duration_seconds\n          Value: \"10\"",
        )
        .replace("Value: least_outstanding_requests", "Value: fastest")
        .replace("StatusCode: HTTP_301", "StatusCode: HTTP_308");
    let (code, out) = validate_text("alb.yaml", &text);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "alb.yaml:148: Resources.WebBlue.Properties.TargetGroupAttributes[slow_start.duration_seconds]: `10` is not allowed; slow_start.duration_seconds is 0 (off) or from 30 to 900 seconds",
        "alb.yaml:182: Resources.ApiTargets.Properties.TargetGroupAttributes[load_balancing.algorithm.type]: `fastest` is not allowed; load_balancing.algorithm.type is one of round_robin, least_outstanding_requests, weighted_random",
        "alb.yaml:125: Resources.MovedRule.Properties.Actions[0].RedirectConfig.StatusCode: `HTTP_308` is not allowed; StatusCode is HTTP_301 or HTTP_302",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn what_only_aws_has_is_refused_by_name() {
    let text = r#"
Resources:
  Cert:
    Type: AWS::CertificateManager::Certificate
    Properties: {DomainName: www.example.com}
  Fn:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties: {TargetType: lambda}
"#;
    let (code, out) = validate_text("aws.yaml", text);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("aws.yaml:4: Resources.Cert.Type: AWS::CertificateManager::Certificate: ACM is not available in a self-hosted control plane; give the listener's certificate as files instead"),
        "{out}"
    );
    assert!(
        out.contains("Resources.Fn.Properties.TargetType: target type lambda is not served by a self-hosted control plane"),
        "{out}"
    );
    assert!(
        !out.contains("Resources.Fn.Properties.Port"),
        "a lambda target group is refused for its type, not for a missing port: {out}"
    );
    assert!(!out.contains("unknown field"), "{out}");
}

#[test]
fn a_folder_may_mix_gcp_and_aws_files_but_not_their_names() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(example(), dir.path().join("aws.yaml")).unwrap();
    let gcp = std::fs::read_to_string(format!(
        "{}/examples/quickstart.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("10000", "10001");
    std::fs::write(dir.path().join("gcp.yaml"), &gcp).unwrap();
    let folder = dir.path().to_str().unwrap();
    let (code, out) = switchyard(&["validate", folder]);
    assert_eq!(code, 0, "{out}");
    let (_, translated) = switchyard(&["translate", folder, "--format", "json"]);
    let dump: serde_json::Value = serde_json::from_str(&translated).unwrap();
    let listeners: Vec<&str> = dump["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(
        listeners.contains(&"HttpListener") && listeners.len() >= 2,
        "both dialects' listeners are served: {listeners:?}"
    );
    // A GCP backend service named like an AWS target group clashes.
    let clashing = gcp.replace("name: web\n", "name: WebBlue\n").replace(
        "global/backendServices/web\n",
        "global/backendServices/WebBlue\n",
    );
    std::fs::write(dir.path().join("gcp.yaml"), clashing).unwrap();
    let (code, out) = switchyard(&["validate", folder]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("backendServices[WebBlue]: the name `WebBlue` is already used at")
            && out.contains("aws.yaml:"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_of_a_served_template_keeps_the_previous_config() {
    let text = std::fs::read_to_string(example()).unwrap();
    let switchyard = Switchyard::start(&text).await;
    let listeners_before = served_listeners(&switchyard).await;
    assert!(
        listeners_before.contains("HttpListener")
            && listeners_before.contains("\"port_value\":10000"),
        "{listeners_before}"
    );
    std::fs::write(
        &switchyard.config,
        text.replace("Port: !Ref ListenerPort", "Port: 70000"),
    )
    .unwrap();
    // (The serving version moves with health reports too, so the rejection is waited for.)
    wait_for("the bad edit to be rejected", || async {
        let rejected = switchyard.running.status.read().unwrap().rejected_loads;
        (rejected == 1).then_some(())
    })
    .await;
    let accepted = switchyard.running.status.read().unwrap().accepted_loads;
    assert_eq!(accepted, 1, "only the first load was served");
    let listeners_after = served_listeners(&switchyard).await;
    assert!(
        listeners_after.contains("\"port_value\":10000") && !listeners_after.contains("70000"),
        "the previous listener keeps serving: {listeners_after}"
    );
    let status = get_json(&switchyard.admin_url("/config_status"))
        .await
        .unwrap();
    assert!(
        status
            .to_string()
            .contains("Resources.HttpListener.Properties.Port"),
        "the rejection names the field: {status}"
    );
}

/// The listeners Switchyard serves, from its config dump.
async fn served_listeners(switchyard: &Switchyard) -> String {
    get_json(&switchyard.admin_url("/config_dump?type=listeners"))
        .await
        .map(|dump| dump.to_string())
        .unwrap_or_default()
}

/// A listener and a target group whose properties are written with intrinsic functions.
const INTRINSICS: &str = r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {Switchyard: {Ipv4Address: !Sub '127.0.0.1'}}
    Properties: {Type: application}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: !Join ['', ['90', '90']]
      Protocol: {'Fn::Sub': HTTP}
      DefaultActions: [{Type: forward, TargetGroupArn: !GetAtt Web.TargetGroupArn}]
  Api:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 10
      Conditions: [{Field: path-pattern, Values: [!Sub '/api-${!Version}/*']}]
      Actions: [{Type: forward, TargetGroupArn: !Ref Web}]
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: 8080
      HealthCheckPath: !Join ['/', ['', health, z]]
      Targets: [{Id: 127.0.0.1, AvailabilityZone: us-east-1a}]
"#;

#[test]
fn sub_without_variables_and_join_of_literals_are_evaluated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alb.yaml");
    std::fs::write(&path, INTRINSICS).unwrap();
    let (code, out) = switchyard(&["validate", path.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = switchyard(&["translate", path.to_str().unwrap(), "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let dump: serde_json::Value = serde_json::from_str(&out).unwrap();
    let listener = &dump["listeners"][0];
    assert_eq!(
        listener["address"]["socket_address"]["port_value"], 9090,
        "!Join ['', ['90', '90']] is 9090: {listener}"
    );
    assert_eq!(
        listener["address"]["socket_address"]["address"],
        "127.0.0.1"
    );
    let routes = dump["routes"].to_string();
    assert!(
        routes.contains(r#""regex":"(/api\\-\\$\\{Version\\}/.*)""#),
        "`${{!Version}}` is the literal `${{Version}}`: {routes}"
    );
}

#[test]
fn functions_only_aws_can_answer_are_refused_by_name_with_their_path() {
    let text = INTRINSICS
        .replace("Port: !Join ['', ['90', '90']]", "Port: !Select [0, [80, 8080]]")
        .replace(
            "Port: 8080",
            "Port: 8080\n      Name: !Sub '${AWS::StackName}-web'\n      VpcId: {'Fn::ImportValue': shared-vpc}",
        )
        .replace(
            "HealthCheckPath: !Join ['/', ['', health, z]]",
            "HealthCheckPath: !If [Prod, /healthz, /]\n      Tags: [{Key: zone, Value: !Select [0, !GetAZs '']}]",
        )
        .replace(
            "Values: [!Sub '/api-${!Version}/*']",
            "Values: [!Join ['', [!Ref Web, /*]]]",
        )
        .replace(
            "Ipv4Address: !Sub '127.0.0.1'",
            "Ipv4Address: !GetAtt Lb.DNSName",
        );
    let (code, out) = validate_text("alb.yaml", &text);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "alb.yaml:5: Resources.Lb.Metadata.Switchyard.Ipv4Address: `!GetAtt Lb.DNSName` has no value outside AWS: AWS assigns a load balancer's DNSName when it creates it; write the value itself",
        "alb.yaml:19: Resources.Api.Properties.Conditions[0].Values[0]: `!Ref Web` has no value outside AWS: it stands for the target group's ARN, which AWS assigns when it creates it; write the value itself",
        "alb.yaml:29: Resources.Web.Properties.HealthCheckPath: `Prod` is no condition of the template (its conditions: none)",
        // Where the value only feeds a property Switchyard ignores, it is a note.
        "note: ",
        "alb.yaml:28: Resources.Web.Properties.VpcId: `Fn::ImportValue` is not evaluated: it reads a value another stack exports, and only CloudFormation holds exports; write the value itself; Switchyard ignores this property, so it is left out",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    // Each refusal is said once, at the function: nothing is reported about what the
    // function's place would have held. `!Select [0, [80, 8080]]` (80), the Sub of the stack
    // name and GetAZs of the targets' zones are evaluated.
    for consequence in ["expected", "is required", "Port (1 to 65535)", "Select"] {
        assert!(!out.contains(consequence), "`{consequence}` in:\n{out}");
    }
    assert!(
        out.ends_with("3 error(s), 0 warning(s), 2 note(s)\n"),
        "{out}"
    );
}

#[test]
fn load_balancer_and_listener_attributes_are_checked_and_the_inert_ones_noted() {
    let text = r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      LoadBalancerAttributes:
      - {Key: idle_timeout.timeout_secondz, Value: "30"}
      - {Key: client_keep_alive.seconds, Value: "30"}
      - {Key: deletion_protection.enabled, Value: "true"}
      - {Key: routing.http2.enabled, Value: "false"}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: 80
      Protocol: HTTP
      ListenerAttributes:
      - {Key: tcp.idle_timeout.seconds, Value: "350"}
      - {Key: routing.http.response.x_frame_options.header_value, Value: DENY}
      DefaultActions: [{Type: fixed-response, FixedResponseConfig: {StatusCode: "200"}}]
"#;
    let (code, out) = validate_text("alb.yaml", text);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "alb.yaml:7: Resources.Lb.Properties.LoadBalancerAttributes[idle_timeout.timeout_secondz]: `idle_timeout.timeout_secondz` is not a load balancer attribute; did you mean `idle_timeout.timeout_seconds`?",
        "alb.yaml:8: Resources.Lb.Properties.LoadBalancerAttributes[client_keep_alive.seconds]: `30` is not allowed; client_keep_alive.seconds is an integer from 60 to 604800",
        "alb.yaml:9: Resources.Lb.Properties.LoadBalancerAttributes[deletion_protection.enabled]: deletion_protection.enabled has no effect in Switchyard: it guards the AWS resource; nothing is deleted here",
        "alb.yaml:10: Resources.Lb.Properties.LoadBalancerAttributes[routing.http2.enabled]: routing.http2.enabled has no effect in Switchyard: clients get HTTP/2 or HTTP/1.1 as they negotiate; turning HTTP/2 off is not mapped",
        "alb.yaml:18: Resources.Http.Properties.ListenerAttributes[tcp.idle_timeout.seconds]: `tcp.idle_timeout.seconds` is not an Application Load Balancer listener attribute: it belongs to TCP listeners of Network Load Balancers",
        "alb.yaml:19: Resources.Http.Properties.ListenerAttributes[routing.http.response.x_frame_options.header_value]: routing.http.response.x_frame_options.header_value has no effect in Switchyard: the load balancer does not add response headers; have the application set them",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(
        out.ends_with("3 error(s), 0 warning(s), 3 note(s)\n"),
        "{out}"
    );
}

#[test]
fn newer_and_network_load_balancer_properties_are_refused_by_name() {
    let text = r#"
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {MinimumLoadBalancerCapacity: {CapacityUnits: 100}, EnablePrefixForIpv6SourceNat: "on"}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: 80
      Protocol: HTTP
      DefaultActions: [{Type: jwt-validation, JwtValidationConfig: {}}]
  Rule:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 1
      Conditions: [{Field: host-header, HostHeaderConfig: {RegexValues: ['^a']}}]
      Transforms: [{Type: url-rewrite}]
      Actions: [{Type: fixed-response, FixedResponseConfig: {StatusCode: "200"}}]
"#;
    let (code, out) = validate_text("alb.yaml", text);
    assert_eq!(code, 1, "{out}");
    for expected in [
        "alb.yaml:5: Resources.Lb.Properties.EnablePrefixForIpv6SourceNat: EnablePrefixForIpv6SourceNat belongs to Network Load Balancers",
        "alb.yaml:12: Resources.Http.Properties.DefaultActions[0].Type: jwt-validation is not served yet",
        "alb.yaml:18: Resources.Rule.Properties.Conditions[0].HostHeaderConfig.RegexValues: `RegexValues` is a cloud field Switchyard does not serve yet",
        "alb.yaml:19: Resources.Rule.Properties.Transforms: `Transforms` is a cloud field Switchyard does not serve yet",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
    assert!(!out.contains("unknown field"), "{out}");
    assert!(
        out.ends_with("4 error(s), 0 warning(s), 0 note(s)\n"),
        "{out}"
    );
}
