//! CloudFormation templates evaluated as CloudFormation evaluates them, through the loader
//! every command uses: the shared template tests/fixtures/aws/stack/web-alb.yaml (Parameters,
//! Conditions, Mappings, pseudo parameters) with its defaults and with overrides, constraint
//! failures naming the parameter and the flag, reader errors that say which parameter gave
//! the value, and secrets kept out of messages and of what the load records. Pure loading:
//! the same template served through Envoy is the lead's test.

use std::path::{Path, PathBuf};

use switchyard::config::inputs::{ParameterOverride, TemplateInputs};
use switchyard::config::{load_sources_with, load_with_inputs, source, Loaded, ReadLimits};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aws/stack/web-alb.yaml")
}

fn with(pairs: &[(&str, &str)]) -> TemplateInputs {
    TemplateInputs {
        overrides: pairs
            .iter()
            .map(|(key, value)| ParameterOverride {
                scope: None,
                key: key.to_string(),
                value: value.to_string(),
                given_by: format!("--parameter {key}"),
            })
            .collect(),
        ..TemplateInputs::default()
    }
}

fn load_fixture(inputs: &TemplateInputs) -> Loaded {
    load_with_inputs(&fixture(), &ReadLimits::default(), inputs)
}

fn load_text(text: &str, inputs: &TemplateInputs) -> Loaded {
    load_sources_with(
        &source::sources_from_text(text, "alb.yaml"),
        &ReadLimits::default(),
        inputs,
    )
}

fn errors(loaded: &Loaded) -> Vec<String> {
    loaded
        .diagnostics
        .errors()
        .map(ToString::to_string)
        .collect()
}

fn listener_ports(loaded: &Loaded) -> Vec<u16> {
    loaded.model.frontends.values().map(|f| f.port).collect()
}

/// Whether the debug rule (whose Condition is NotProd) is served: its fixed response.
fn serves_debug_rule(loaded: &Loaded, env: &str) -> bool {
    serde_json::to_string(&loaded.model.route_tables)
        .unwrap()
        .contains(&format!("debug on {env}"))
}

#[test]
fn the_issue_template_loads_with_its_defaults() {
    let loaded = load_fixture(&TemplateInputs::default());
    assert!(loaded.diagnostics.is_empty(), "{}", loaded.diagnostics);
    assert_eq!(listener_ports(&loaded), [10080], "Ports.dev.Listener");
    assert!(serves_debug_rule(&loaded, "dev"));
    let inputs: Vec<String> = loaded
        .model
        .inputs
        .iter()
        .map(|i| format!("{}={} ({})", i.name, i.value, i.source))
        .collect();
    assert_eq!(
        inputs,
        [
            "VpcId=vpc-0a1b2c3d4e5f60718 (default)",
            "Subnets=subnet-0a1b2c3d,subnet-4e5f6a7b (default)",
            "HealthPath=/healthz (default)",
            "Env=dev (default)",
            "AWS::StackName=web-alb (the file's stem)",
        ]
    );
    let health = &loaded.model.health_checks["WebTargets"];
    assert_eq!(health.request_path, "/healthz");
}

#[test]
fn an_override_moves_the_listener_to_the_environments_port() {
    let loaded = load_fixture(&with(&[("Env", "staging")]));
    assert!(loaded.diagnostics.is_empty(), "{}", loaded.diagnostics);
    assert_eq!(listener_ports(&loaded), [10081], "Ports.staging.Listener");
    assert!(serves_debug_rule(&loaded, "staging"));
    let env = loaded
        .model
        .inputs
        .iter()
        .find(|i| i.name == "Env")
        .unwrap();
    assert_eq!(
        (env.value.as_str(), env.source.as_str()),
        ("staging", "--parameter Env")
    );
}

#[test]
fn a_false_condition_removes_the_listener_rule() {
    let loaded = load_fixture(&with(&[("Env", "prod")]));
    assert!(loaded.diagnostics.is_empty(), "{}", loaded.diagnostics);
    assert_eq!(listener_ports(&loaded), [10082]);
    assert!(!serves_debug_rule(&loaded, "prod"), "NotProd is false");
    let tables = serde_json::to_string(&loaded.model.route_tables).unwrap();
    assert!(
        tables.contains("/api/"),
        "the unconditional rule stays: {tables}"
    );
}

#[test]
fn an_override_outside_allowed_values_is_refused_naming_the_parameter() {
    let loaded = load_fixture(&with(&[("Env", "qa")]));
    let file = fixture().display().to_string();
    assert_eq!(
        errors(&loaded),
        [format!("error: {file}:23: Parameters.Env: parameter Env: `qa` (given by --parameter Env) is not one of its AllowedValues: dev, staging, prod")]
    );
    assert!(loaded.accepted().is_none());
}

#[test]
fn a_parameter_without_a_value_is_refused_naming_the_flag() {
    let text = std::fs::read_to_string(fixture())
        .unwrap()
        .replace("    Default: vpc-0a1b2c3d4e5f60718\n", "");
    let loaded = load_text(&text, &TemplateInputs::default());
    assert_eq!(
        errors(&loaded),
        ["error: alb.yaml:9: Parameters.VpcId: parameter VpcId has no Default and no value is given; give one with --parameter VpcId=VALUE (or in a --parameters-file)"]
    );
    let loaded = load_text(&text, &with(&[("VpcId", "vpc-1")]));
    assert!(loaded.diagnostics.is_empty(), "{}", loaded.diagnostics);
}

#[test]
fn an_override_no_template_declares_is_refused() {
    let loaded = load_fixture(&with(&[("Environment", "prod")]));
    assert_eq!(
        errors(&loaded),
        ["error: command line: Parameters: --parameter Environment: `Environment` is no parameter of the templates of this load (they declare Env, HealthPath, Subnets, VpcId); CloudFormation refuses a value for a parameter no template declares"]
    );
}

const PORT_TEMPLATE: &str = "Parameters:
  ListenerPort: {Type: String, Default: '8080'}
  Token: {Type: String, NoEcho: true, Default: s3cr3t-path}
Resources:
  Lb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Metadata: {Switchyard: {Ipv4Address: 127.0.0.1}}
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Lb
      Port: !Ref ListenerPort
      Protocol: HTTP
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref Web}]
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      TargetType: ip
      Protocol: HTTP
      Port: 8081
      Targets: [{Id: 127.0.0.1, AvailabilityZone: us-east-1a}, {Id: !Ref Token}]
";

#[test]
fn a_readers_error_says_which_parameter_gave_the_value() {
    let loaded = load_text(PORT_TEMPLATE, &with(&[("ListenerPort", "abc")]));
    let errors = errors(&loaded);
    assert_eq!(
        errors.len(),
        2,
        "the port, and the secret target below: {errors:?}"
    );
    assert!(
        errors[0].starts_with("error: alb.yaml:12: Resources.Http.Properties.Port: ")
            && errors[0].ends_with(" (the value of parameter ListenerPort, alb.yaml:2, given by --parameter ListenerPort)"),
        "{errors:?}"
    );
    assert!(errors[0].contains("`abc`"), "{errors:?}");
}

#[test]
fn a_secret_parameter_never_shows() {
    let loaded = load_text(PORT_TEMPLATE, &TemplateInputs::default());
    let everything = format!("{}", loaded.diagnostics);
    assert!(!everything.contains("s3cr3t"), "{everything}");
    assert!(
        everything.contains("`****` is not an IP address")
            && everything.contains("(the value of parameter Token, alb.yaml:3, its Default)"),
        "the target that is no address is refused, its value masked: {everything}"
    );
    let token = loaded
        .model
        .inputs
        .iter()
        .find(|i| i.name == "Token")
        .unwrap();
    assert_eq!(token.value, "****");
    let dump = serde_json::to_string(&loaded.model).unwrap();
    assert!(!dump.contains("s3cr3t"), "{dump}");
}
