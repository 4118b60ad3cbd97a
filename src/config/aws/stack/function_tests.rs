//! Table tests of the evaluator: every function, pseudo parameter and condition function
//! against the value CloudFormation documents for the same input (the examples of AWS's
//! template reference), and the refusals with their exact messages.

use std::sync::Arc;

use crate::config::inputs::{ParameterOverride, TemplateInputs};
use crate::config::yaml::{parse, Node, Value};
use crate::model::Diagnostics;

use super::{evaluate, json, Evaluated};

/// A template whose target group `Web` has the properties `properties` (indented six), after
/// `head` (sections before Resources).
fn template(head: &str, properties: &str) -> String {
    format!(
        "{head}Resources:\n  Web:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n{properties}      Targets:\n        - {{Id: 127.0.0.1, AvailabilityZone: us-east-1b}}\n        - {{Id: 127.0.0.2, AvailabilityZone: us-east-1a}}\n"
    )
}

fn run(text: &str, inputs: &TemplateInputs) -> (Evaluated, Diagnostics) {
    let document = parse(text).unwrap().remove(0);
    let mut problems = Diagnostics::default();
    let evaluated = evaluate(&document, &Arc::from("alb.yaml"), inputs, &mut problems);
    (evaluated, problems)
}

fn lines(diagnostics: &Diagnostics) -> Vec<String> {
    diagnostics
        .items
        .iter()
        .chain(&diagnostics.notes)
        .map(ToString::to_string)
        .collect()
}

fn entry<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    match &node.value {
        Value::Map(entries) => entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v),
        _ => None,
    }
}

/// Property `key` of resource `id`, as JSON (None when removed).
fn property(evaluated: &Evaluated, id: &str, key: &str) -> Option<String> {
    entry(&evaluated.document, "Resources")
        .and_then(|r| entry(r, id))
        .and_then(|r| entry(r, "Properties"))
        .and_then(|p| entry(p, key))
        .map(json)
}

fn given(pairs: &[(&str, &str)]) -> TemplateInputs {
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
        region: Some("us-east-1".into()),
        stack_name: Some("teststack".into()),
    }
}

const HEAD: &str = "Transform: AWS::LanguageExtensions
Parameters:
  RootDomainName: {Type: String, Default: example.com}
  ParameterName: {Type: String, Default: resolvedValue}
  ListParameter: {Type: CommaDelimitedList, Default: 'a,b,c'}
  DbSubnetIpBlocks: {Type: CommaDelimitedList, Default: '10.0.48.0/24, 10.0.112.0/24, 10.0.176.0/24'}
  vpc: {Type: 'AWS::EC2::VPC::Id', Default: vpc-1a2b3c4d}
  Env: {Type: String, Default: prod}
Mappings:
  RegionMap:
    us-east-1: {HVM64: ami-0ff8a91507f77f867, HVMG2: ami-0a584ac55a7631c0c}
    us-west-1: {HVM64: ami-0bdb828fd58c52235}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
";

/// Each row: a property written with a function, and the value CloudFormation gives it.
#[test]
fn every_function_gives_the_value_cloudformation_documents() {
    let rows: &[(&str, &str)] = &[
        // Fn::Select: the docs' basic example and a CommaDelimitedList parameter.
        (r#"!Select [ "1", [ "apples", "grapes", "oranges", "mangoes" ] ]"#, r#""grapes""#),
        ("!Select [0, !Ref DbSubnetIpBlocks]", r#""10.0.48.0/24""#),
        ("!Select [2, !Ref DbSubnetIpBlocks]", r#""10.0.176.0/24""#),
        // Fn::Split: a simple list, empty strings kept, and picked from with Select.
        (r#"!Split [ "|" , "a|b|c" ]"#, r#"["a","b","c"]"#),
        (r#"!Split [ "|" , "a||c|" ]"#, r#"["a","","c",""]"#),
        (r#"!Select [2, !Split [",", "subnet-1,subnet-2,subnet-3"]]"#, r#""subnet-3""#),
        // Fn::Join: the docs' simple list and its ARN built from pseudo parameters.
        (r#"!Join [ ":", [ a, b, c ] ]"#, r#""a:b:c""#),
        (
            "!Join ['', ['arn:', !Ref AWS::Partition, ':s3:::elasticbeanstalk-*-', !Ref AWS::AccountId]]",
            r#""arn:aws:s3:::elasticbeanstalk-*-123456789012""#,
        ),
        ("!Join [',', !Ref ListParameter]", r#""a,b,c""#),
        // Fn::Sub: with a variable map, with parameters and pseudo parameters, and a literal.
        ("!Sub ['www.${Domain}', {Domain: !Ref RootDomainName}]", r#""www.example.com""#),
        (
            "!Sub 'arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${vpc}'",
            r#""arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1a2b3c4d""#,
        ),
        ("!Sub '${!Literal}-${AWS::StackName}'", r#""${Literal}-teststack""#),
        ("{'Fn::Sub': '${Web.TargetGroupName}-x'}", r#""web-prod-x""#),
        // Fn::GetAZs: the zones the targets use, sorted; picked from with Select.
        ("!GetAZs ''", r#"["us-east-1a","us-east-1b"]"#),
        ("!GetAZs {Ref: 'AWS::Region'}", r#"["us-east-1a","us-east-1b"]"#),
        ("!Select [0, !GetAZs '']", r#""us-east-1a""#),
        // Fn::Base64: the docs' example.
        ("!Base64 AWS CloudFormation", r#""QVdTIENsb3VkRm9ybWF0aW9u""#),
        ("{'Fn::Base64': !Sub '${Env}!'}", r#""cHJvZCE=""#),
        // Fn::FindInMap: the docs' region map, and a DefaultValue when a key is missing.
        ("!FindInMap [RegionMap, !Ref 'AWS::Region', HVM64]", r#""ami-0ff8a91507f77f867""#),
        (
            "!FindInMap [RegionMap, !Ref 'AWS::Region', InstanceType, {DefaultValue: t3.micro}]",
            r#""t3.micro""#,
        ),
        // Fn::ToJsonString: the docs' object.
        (
            "{'Fn::ToJsonString': {key1: value1, key2: !Ref ParameterName}}",
            r#""{\"key1\":\"value1\",\"key2\":\"resolvedValue\"}""#,
        ),
        // Fn::Length: of a function's list, of a list parameter, of a written list.
        (r#"{'Fn::Length': !Split ["|", "a|b|c"]}"#, r#""3""#),
        ("{'Fn::Length': !Ref ListParameter}", r#""3""#),
        ("{'Fn::Length': [1, !Ref ParameterName, 3]}", r#""3""#),
        // Fn::If and Ref.
        ("!If [IsProd, big, small]", r#""big""#),
        ("!Ref ListParameter", r#"["a","b","c"]"#),
        ("[x, !If [IsProd, !Ref 'AWS::NoValue', y], z]", r#"["x","z"]"#),
        ("!Ref AWS::NotificationARNs", "[]"),
    ];
    for (written, expected) in rows {
        let text = template(
            HEAD,
            &format!("      Name: !Sub 'web-${{Env}}'\n      A: {written}\n"),
        );
        let (evaluated, problems) = run(&text, &given(&[]));
        let wanted: Vec<String> = vec![];
        let errors: Vec<String> = problems.items.iter().map(ToString::to_string).collect();
        assert_eq!(errors, wanted, "{written}");
        assert_eq!(
            property(&evaluated, "Web", "A").as_deref(),
            Some(*expected),
            "{written}"
        );
    }
}

#[test]
fn no_value_removes_the_property() {
    let text = template(
        HEAD,
        "      A: !If [IsProd, !Ref AWS::NoValue, kept]\n      B: !Ref AWS::NoValue\n",
    );
    let (evaluated, problems) = run(&text, &given(&[]));
    assert!(problems.items.is_empty(), "{:?}", lines(&problems));
    assert_eq!(property(&evaluated, "Web", "A"), None);
    assert_eq!(property(&evaluated, "Web", "B"), None);
    let (evaluated, _) = run(&text, &given(&[("Env", "dev")]));
    assert_eq!(
        property(&evaluated, "Web", "A").as_deref(),
        Some(r#""kept""#)
    );
}

/// The condition functions, each row a condition and whether it holds with Env=prod.
#[test]
fn condition_functions_hold_as_cloudformation_evaluates_them() {
    let rows: &[(&str, bool)] = &[
        ("!Equals [!Ref Env, prod]", true),
        ("!Equals [prod, !Sub '${Env}']", true),
        ("!Equals [!Ref Env, dev]", false),
        ("!Not [!Equals [!Ref Env, dev]]", true),
        ("!And [!Equals [a, a], !Condition IsProd]", true),
        ("!And [!Equals [a, a], !Equals [a, b]]", false),
        ("!Or [!Equals [a, b], {Condition: IsProd}]", true),
        ("!Or [!Equals [a, b], !Equals [c, d]]", false),
        ("!Equals [!Ref ListParameter, [a, b, c]]", true),
    ];
    for (condition, holds) in rows {
        let head = HEAD.replace(
            "Conditions:\n",
            &format!("Conditions:\n  Tested: {condition}\n"),
        );
        let text = template(&head, "      A: !If [Tested, yes, no]\n");
        let (evaluated, problems) = run(&text, &given(&[]));
        assert!(
            problems.items.is_empty(),
            "{condition}: {:?}",
            lines(&problems)
        );
        let expected = if *holds { r#""yes""# } else { r#""no""# };
        assert_eq!(
            property(&evaluated, "Web", "A").as_deref(),
            Some(expected),
            "{condition}"
        );
    }
}

#[test]
fn a_false_condition_leaves_its_resource_out_and_a_loop_is_refused() {
    let head = "Parameters:\n  Env: {Type: String, Default: dev}\nConditions:\n  IsProd: !Equals [!Ref Env, prod]\n  A: !Condition B\n  B: !Not [!Condition A]\n";
    let text = format!(
        "{head}Resources:\n  Prod:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Condition: IsProd\n  Web:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties:\n      A: !Sub '${{Prod.TargetGroupName}}'\n      B: !If [Nope, 1, 2]\n"
    );
    let (evaluated, problems) = run(&text, &given(&[]));
    assert_eq!(
        evaluated.left_out.get("Prod").map(String::as_str),
        Some("IsProd")
    );
    assert!(entry(entry(&evaluated.document, "Resources").unwrap(), "Prod").is_none());
    assert_eq!(
        lines(&problems),
        [
            "error: alb.yaml:5: Conditions.A: condition A depends on itself: A → B → A",
            "error: alb.yaml:14: Resources.Web.Properties.A: `${Prod.TargetGroupName}` in `!Sub`: resource Prod is left out of the stack: its Condition IsProd is false",
            "error: alb.yaml:15: Resources.Web.Properties.B: `Nope` is no condition of the template (its conditions: IsProd, A, B)",
        ]
    );
}

#[test]
fn what_only_aws_knows_is_refused_by_name_and_noted_in_ignored_properties() {
    let head = "Parameters:\n  Env: {Type: String, Default: dev}\n";
    let text = format!(
        "{head}Resources:
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties:
      Name: !ImportValue SharedName
      Tags: [{{Key: k, Value: '{{{{resolve:ssm:/app/tag}}}}'}}]
      SecurityGroups: [!Ref Guard]
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      A: !GetAtt Alb.DNSName
      B: !Sub 'http://${{Alb}}/'
      C: !Cidr [10.0.0.0/16, 2, 8]
      D: '{{{{resolve:secretsmanager:db:SecretString:password}}}}'
      E: !Frobnicate x
      F: !Ref Envv
      G: {{'Fn::Length': [1]}}
      H: !Sub '${{Web.TargetGroupName}}'
      I: !GetAZs eu-west-1
      J: !Sub '${{Env'
  Guard:
    Type: AWS::EC2::SecurityGroup
"
    );
    let (_, problems) = run(&text, &given(&[]));
    assert_eq!(
        lines(&problems),
        [
            "error: alb.yaml:13: Resources.Web.Properties.A: `!GetAtt Alb.DNSName` has no value outside AWS: AWS assigns a load balancer's DNSName when it creates it; write the value itself",
            "error: alb.yaml:14: Resources.Web.Properties.B: `${Alb}` in `!Sub` has no value outside AWS: it stands for the load balancer's ARN, which AWS assigns when it creates it; write the value itself",
            "error: alb.yaml:15: Resources.Web.Properties.C: `!Cidr` is not evaluated: it carves address blocks out of a VPC's, which is AWS networking; no property Switchyard reads takes one; write the value itself",
            "error: alb.yaml:16: Resources.Web.Properties.D: the dynamic reference `{{resolve:secretsmanager:…}}` is not resolved: its value lives in Secrets Manager, which only AWS reads; write the value itself, or pass it as a parameter",
            "error: alb.yaml:17: Resources.Web.Properties.E: `!Frobnicate` is no intrinsic function CloudFormation knows; write the value itself",
            "error: alb.yaml:18: Resources.Web.Properties.F: `!Ref Envv`: `Envv` is no parameter, pseudo parameter or resource of the template; did you mean Env?",
            "error: alb.yaml:19: Resources.Web.Properties.G: `Fn::Length`: the function needs `Transform: AWS::LanguageExtensions` in the template (CloudFormation refuses it otherwise)",
            "error: alb.yaml:20: Resources.Web.Properties.H: `${Web.TargetGroupName}` in `!Sub` has no value: Web has no Name, and AWS makes one up when none is written; write Name in Web",
            "error: alb.yaml:21: Resources.Web.Properties.I: `!GetAZs eu-west-1` is not evaluated: Switchyard answers GetAZs with the zones this template's targets use, which are in the stack's own region; another region's zones only AWS knows",
            "error: alb.yaml:22: Resources.Web.Properties.J: `!Sub`: `${Env` has no closing `}`",
            "note: alb.yaml:7: Resources.Alb.Properties.Name: `!ImportValue` is not evaluated: it reads a value another stack exports, and only CloudFormation holds exports; write the value itself; Switchyard ignores this property, so it is left out",
            "note: alb.yaml:8: Resources.Alb.Properties.Tags[0].Value: the dynamic reference `{{resolve:ssm:…}}` is not resolved: its value lives in Systems Manager Parameter Store, which only AWS reads; write the value itself, or pass it as a parameter; Switchyard ignores this property, so it is left out",
        ]
    );
}

#[test]
fn references_stay_where_a_reader_reads_them() {
    let text = "Parameters:\n  Env: {Type: String, Default: prod}\nConditions:\n  IsProd: !Equals [!Ref Env, prod]\nResources:\n  Rule:\n    Type: AWS::ElasticLoadBalancingV2::ListenerRule\n    Properties:\n      ListenerArn: !Ref Front\n      Actions:\n        - Type: forward\n          TargetGroupArn: !If [IsProd, !Ref Blue, !Ref Green]\n        - Type: forward\n          TargetGroupArn: !Sub '${Green}'\n        - ForwardConfig: {TargetGroups: [{TargetGroupArn: !GetAtt Blue.TargetGroupArn}]}\n  Blue:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n  Green:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n";
    let (evaluated, problems) = run(text, &given(&[]));
    assert!(problems.items.is_empty(), "{:?}", lines(&problems));
    assert_eq!(
        property(&evaluated, "Rule", "ListenerArn").as_deref(),
        Some(r#"{"!Ref":"Front"}"#)
    );
    assert_eq!(
        property(&evaluated, "Rule", "Actions").as_deref(),
        Some(
            r#"[{"Type":"forward","TargetGroupArn":{"!Ref":"Blue"}},{"Type":"forward","TargetGroupArn":{"Ref":"Green"}},{"ForwardConfig":{"TargetGroups":[{"TargetGroupArn":{"!GetAtt":"Blue.TargetGroupArn"}}]}}]"#
        )
    );
}

#[test]
fn transforms_other_than_language_extensions_are_refused() {
    let (_, problems) = run(
        "Transform: [AWS::Serverless-2016-10-31, AWS::LanguageExtensions]\nResources: {}\n",
        &given(&[]),
    );
    assert_eq!(
        lines(&problems),
        ["error: alb.yaml:1: Transform: the transform AWS::Serverless-2016-10-31 is not run: SAM and macros run inside CloudFormation; give the template they produce (the stack's processed template). Only AWS::LanguageExtensions is evaluated"]
    );
}

#[test]
fn pseudo_parameters_used_are_recorded_with_their_source() {
    let text = template("", "      A: !Sub '${AWS::StackName}-${AWS::Region}'\n");
    let inputs = TemplateInputs::default();
    let (evaluated, problems) = run(&text, &inputs);
    assert!(problems.items.is_empty(), "{:?}", lines(&problems));
    assert_eq!(
        property(&evaluated, "Web", "A").as_deref(),
        Some(r#""alb-us-east-1""#)
    );
    let recorded: Vec<(String, String, String)> = evaluated
        .inputs
        .iter()
        .map(|i| (i.name.clone(), i.value.clone(), i.source.clone()))
        .collect();
    assert_eq!(
        recorded,
        [
            (
                "AWS::StackName".into(),
                "alb".into(),
                "the file's stem".into()
            ),
            (
                "AWS::Region".into(),
                "us-east-1".into(),
                "the first target's zone".into()
            ),
        ]
    );
}
