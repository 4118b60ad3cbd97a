//! The parameter constraints, each accepted at its edge and refused just past it with the
//! exact message; values from overrides and defaults; secrets kept out of every message and
//! of what the load records.

use std::sync::Arc;

use crate::config::inputs::{ParameterOverride, TemplateInputs};
use crate::config::yaml::parse;
use crate::model::{Diagnostics, Loc};

use super::{check_overrides, evaluate, Evaluated};

fn run(parameters: &str, uses: &str, inputs: &TemplateInputs) -> (Evaluated, Vec<String>) {
    let text = format!(
        "Parameters:\n{parameters}Resources:\n  Web:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n{uses}"
    );
    let document = parse(&text).unwrap().remove(0);
    let mut problems = Diagnostics::default();
    let evaluated = evaluate(&document, &Arc::from("alb.yaml"), inputs, &mut problems);
    let lines = problems
        .items
        .iter()
        .chain(&problems.notes)
        .map(ToString::to_string)
        .collect();
    (evaluated, lines)
}

fn given(key: &str, value: &str) -> TemplateInputs {
    TemplateInputs {
        overrides: vec![ParameterOverride {
            scope: None,
            key: key.into(),
            value: value.into(),
            given_by: format!("--parameter {key}"),
        }],
        ..TemplateInputs::default()
    }
}

/// Each row: a declaration, a value at the constraint's edge (accepted), a value just past it
/// and the error that names the parameter, the value, where it was given and the constraint.
#[test]
fn each_constraint_accepts_its_edge_and_refuses_just_past_it() {
    let rows: &[(&str, &str, &str, &str)] = &[
        (
            "{Type: String, AllowedValues: [dev, staging, prod]}",
            "prod",
            "qa",
            "parameter P: `qa` (given by --parameter P) is not one of its AllowedValues: dev, staging, prod",
        ),
        (
            "{Type: String, AllowedPattern: '[a-z]+'}",
            "abc",
            "abc1",
            "parameter P: `abc1` (given by --parameter P) does not match its AllowedPattern `[a-z]+` (the whole value must match)",
        ),
        (
            "{Type: String, MinLength: 3}",
            "abc",
            "ab",
            "parameter P: `ab` (given by --parameter P) is shorter than its MinLength 3",
        ),
        (
            "{Type: String, MaxLength: 3}",
            "abc",
            "abcd",
            "parameter P: `abcd` (given by --parameter P) is longer than its MaxLength 3",
        ),
        (
            "{Type: Number, MinValue: 1}",
            "1",
            "0.5",
            "parameter P: `0.5` (given by --parameter P) is less than its MinValue 1",
        ),
        (
            "{Type: Number, MaxValue: 65535}",
            "65535",
            "65536",
            "parameter P: `65536` (given by --parameter P) is greater than its MaxValue 65535",
        ),
        (
            "{Type: Number}",
            "-2.5",
            "12a",
            "parameter P: `12a` (given by --parameter P) is not a number (the parameter's Type is Number)",
        ),
        (
            "{Type: 'List<Number>', MaxValue: 9}",
            "1,2",
            "1,x",
            "parameter P: `x` (an item of the list given by --parameter P) is not a number (the parameter's Type is List<Number>)",
        ),
        (
            "{Type: CommaDelimitedList, AllowedValues: [a, b]}",
            "a, b",
            "a,c",
            "parameter P: `c` (an item of the list given by --parameter P) is not one of its AllowedValues: a, b",
        ),
        (
            "{Type: String, AllowedPattern: '/[a-z]*', ConstraintDescription: must be an absolute path}",
            "/x",
            "x/",
            "parameter P: `x/` (given by --parameter P) does not match its AllowedPattern `/[a-z]*` (the whole value must match); must be an absolute path",
        ),
    ];
    for (declaration, edge, past, message) in rows {
        let parameters = format!("  P: {declaration}\n");
        let (evaluated, lines) = run(&parameters, "      A: !Ref P\n", &given("P", edge));
        assert!(lines.is_empty(), "{declaration} {edge}: {lines:?}");
        assert_eq!(evaluated.inputs[0].value, *edge);
        let (_, lines) = run(&parameters, "      A: !Ref P\n", &given("P", past));
        assert_eq!(
            lines,
            [format!("error: alb.yaml:2: Parameters.P: {message}")],
            "{declaration}"
        );
    }
}

#[test]
fn a_default_must_meet_the_constraints_too() {
    let (_, lines) = run(
        "  Env:\n    Type: String\n    Default: qa\n    AllowedValues: [dev, prod]\n",
        "",
        &TemplateInputs::default(),
    );
    assert_eq!(
        lines,
        ["error: alb.yaml:2: Parameters.Env: parameter Env: `qa` (its Default) is not one of its AllowedValues: dev, prod"]
    );
}

#[test]
fn a_parameter_without_default_or_value_names_the_flag_and_its_uses_say_nothing_more() {
    let (evaluated, lines) = run(
        "  VpcId: {Type: 'AWS::EC2::VPC::Id'}\n",
        "      VpcId: !Ref VpcId\n      Name: !Sub '${VpcId}-web'\n",
        &TemplateInputs::default(),
    );
    assert_eq!(
        lines,
        ["error: alb.yaml:2: Parameters.VpcId: parameter VpcId has no Default and no value is given; give one with --parameter VpcId=VALUE (or in a --parameters-file)"]
    );
    assert!(evaluated.inputs.is_empty());
}

#[test]
fn types_are_checked_and_ssm_parameters_refused() {
    let (_, lines) = run(
        "  A: {Type: 'AWS::SSM::Parameter::Value<String>', Default: /app/port}\n  B: {Type: Strng, Default: x}\n  C: {Type: 'List<AWS::EC2::Subnet::Id>', Default: 'subnet-1,subnet-2'}\n  D: {Default: x}\n",
        "",
        &TemplateInputs::default(),
    );
    assert_eq!(
        lines,
        [
            "error: alb.yaml:2: Parameters.A.Type: type AWS::SSM::Parameter::Value<String> takes its value from Systems Manager Parameter Store, which only AWS reads; declare the parameter as String and give the value with --parameter",
            "error: alb.yaml:3: Parameters.B.Type: `Strng` is not a parameter type; allowed: String, Number, List<Number>, CommaDelimitedList, the AWS-specific types (such as AWS::EC2::VPC::Id) and List<> of them",
            "error: alb.yaml:5: Parameters.D.Type: this field is required",
        ]
    );
}

#[test]
fn a_secret_never_shows_in_a_message_or_in_what_the_load_records() {
    let parameters =
        "  Key: {Type: String, NoEcho: true, MinLength: 8, Default: hunter2-hunter2}\n";
    let uses = "      Port: !Ref Key\n";
    let (evaluated, lines) = run(parameters, uses, &given("Key", "hunter2"));
    assert_eq!(
        lines,
        ["error: alb.yaml:2: Parameters.Key: parameter Key: the value (given by --parameter Key) is shorter than its MinLength 8"]
    );
    assert!(evaluated.inputs.is_empty());
    let (evaluated, lines) = run(parameters, uses, &TemplateInputs::default());
    assert!(lines.is_empty(), "{lines:?}");
    assert_eq!(evaluated.inputs[0].value, "****");
    assert_eq!(evaluated.inputs[0].source, "default");
    // What a reader says about the place the secret went is masked and says where it came from.
    let mut found = Diagnostics::default();
    found.error(
        &Loc::new("alb.yaml", 7),
        "Resources.Web.Properties.Port",
        "`hunter2-hunter2` is not a port",
    );
    assert_eq!(
        evaluated.explain(found).items[0].to_string(),
        "error: alb.yaml:7: Resources.Web.Properties.Port: `****` is not a port (the value of parameter Key, alb.yaml:2, its Default)"
    );
}

#[test]
fn an_override_for_a_parameter_no_template_declares_is_refused() {
    let declared = vec![
        (Arc::<str>::from("a/web-alb.yaml"), "Env".to_string()),
        (Arc::<str>::from("a/web-alb.yaml"), "HealthPath".to_string()),
        (Arc::<str>::from("a/api.yaml"), "Port".to_string()),
    ];
    let override_of = |scope: Option<&str>, key: &str, given_by: &str| ParameterOverride {
        scope: scope.map(str::to_string),
        key: key.into(),
        value: "x".into(),
        given_by: given_by.into(),
    };
    let inputs = TemplateInputs {
        overrides: vec![
            override_of(None, "Env", "--parameter Env"),
            override_of(None, "Evn", "--parameter Evn"),
            override_of(Some("api"), "Env", "params.json:3"),
        ],
        ..TemplateInputs::default()
    };
    let mut diagnostics = Diagnostics::default();
    check_overrides(&inputs, &declared, &mut diagnostics);
    let lines: Vec<String> = diagnostics.items.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "error: command line: Parameters: --parameter Evn: `Evn` is no parameter of the templates of this load (they declare Env, HealthPath, Port; did you mean Env?); CloudFormation refuses a value for a parameter no template declares",
            "error: params.json:3: Parameters: params.json:3: `Env` is no parameter of the templates matching `api` (they declare Port); CloudFormation refuses a value for a parameter no template declares",
        ]
    );
}
