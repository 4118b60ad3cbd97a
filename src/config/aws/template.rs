//! A CloudFormation template as the AWS dialect reads it once `stack` has evaluated it: the
//! `Resources` section, each resource with its logical id, type and `Properties`, and the
//! references between resources (`!Ref X`, `Ref: X`, `!GetAtt X.Attr`, `Fn::GetAtt: [X,
//! Attr]`), a reference to a resource left out by a false Condition naming the condition. The
//! sections `stack` evaluated (Parameters, Conditions, Mappings, Rules, Transform) and each
//! resource's `Condition` are not read again here; resource types that are no part of a load
//! balancer (security groups, VPCs) are ignored with a warning; what only AWS provides (ACM
//! certificates, WAF, Lambda, nested stacks) is refused by name.
//! Must not: know the model or xDS.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::reader::Fields;
use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, Loc};

use super::stack::function_of;

/// The resource types the dialect reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    TargetGroup,
    LoadBalancer,
    Listener,
    ListenerRule,
    ListenerCertificate,
    Instance,
}

impl Kind {
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::TargetGroup => "AWS::ElasticLoadBalancingV2::TargetGroup",
            Kind::LoadBalancer => "AWS::ElasticLoadBalancingV2::LoadBalancer",
            Kind::Listener => "AWS::ElasticLoadBalancingV2::Listener",
            Kind::ListenerRule => "AWS::ElasticLoadBalancingV2::ListenerRule",
            Kind::ListenerCertificate => "AWS::ElasticLoadBalancingV2::ListenerCertificate",
            Kind::Instance => "AWS::EC2::Instance",
        }
    }

    const ALL: [Kind; 6] = [
        Kind::TargetGroup,
        Kind::LoadBalancer,
        Kind::Listener,
        Kind::ListenerRule,
        Kind::ListenerCertificate,
        Kind::Instance,
    ];

    pub(super) fn of(type_name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.type_name() == type_name)
    }
}

/// One resource of the template.
#[derive(Clone, Debug)]
pub struct Resource<'n> {
    pub logical_id: String,
    pub kind: Kind,
    /// The `Properties` mapping (absent: no properties).
    pub properties: Option<&'n Node>,
    /// The resource's `Metadata` (where Switchyard's own settings go).
    pub metadata: Option<&'n Node>,
    /// What `Properties` reads as when none are written: nothing, at the resource's line.
    no_properties: Node,
    pub loc: Loc,
}

impl Resource<'_> {
    /// `Resources.ID.Properties`.
    pub fn path(&self) -> String {
        format!("Resources.{}.Properties", self.logical_id)
    }

    /// Starts reading the resource's `Properties` (none written reads as an empty mapping,
    /// whose missing fields are reported at the resource's line).
    pub fn property_fields(&self, file: &Arc<str>, diagnostics: &mut Diagnostics) -> Fields<'_> {
        let properties = self.properties.unwrap_or(&self.no_properties);
        Fields::new(properties, file, self.path(), diagnostics)
    }
}

/// The resources of one template, by logical id.
#[derive(Debug, Default)]
pub struct Template<'n> {
    pub resources: BTreeMap<String, Resource<'n>>,
    /// Resources left out by a false Condition: logical id → the condition.
    pub left_out: BTreeMap<String, String>,
}

/// A reference from one property to another resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub logical_id: String,
    /// `!GetAtt`'s attribute; None for `!Ref`.
    pub attribute: Option<String>,
    pub loc: Loc,
}

/// Whether `document` is a CloudFormation template rather than a GCP-style config.
pub fn is_template(document: &Node) -> bool {
    let Value::Map(entries) = &document.value else {
        return false;
    };
    entries.iter().any(|(key, _)| {
        matches!(
            key.as_scalar(),
            Some("Resources" | "AWSTemplateFormatVersion")
        )
    })
}

/// Template sections evaluated before the template is read (by `stack`).
const EVALUATED_SECTIONS: [&str; 5] =
    ["Parameters", "Conditions", "Mappings", "Rules", "Transform"];

/// Reads the template's sections and resources.
pub fn read_template<'n>(
    document: &'n Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Template<'n> {
    let mut template = Template::default();
    let mut fields = Fields::new(document, file, "", diagnostics);
    if let Some(version) = fields.string("AWSTemplateFormatVersion", diagnostics) {
        if version != "2010-09-09" {
            diagnostics.error(
                &fields.loc_of("AWSTemplateFormatVersion"),
                "AWSTemplateFormatVersion",
                format!("`{version}` is not a template format version; the only one is 2010-09-09"),
            );
        }
    }
    fields.ignore(&["Description", "Metadata"]);
    fields.ignore(&EVALUATED_SECTIONS);
    if fields.get("Outputs").is_some() {
        diagnostics.warning(
            &fields.loc_of("Outputs"),
            "Outputs",
            "outputs are ignored: nothing is exported from a self-hosted control plane",
        );
    }
    let resources = fields.get("Resources");
    fields.finish(diagnostics);
    let Some(resources) = resources else {
        return template;
    };
    let Value::Map(entries) = &resources.value else {
        diagnostics.error(
            &Loc::new(file.clone(), resources.line),
            "Resources",
            format!(
                "expected a mapping of logical ids to resources, found {}",
                resources.kind()
            ),
        );
        return template;
    };
    for (key, node) in entries {
        let logical_id = key.as_scalar().unwrap_or("").to_string();
        if let Some(resource) = read_resource(&logical_id, node, file, diagnostics) {
            template.resources.insert(logical_id, resource);
        }
    }
    template
}

fn read_resource<'n>(
    logical_id: &str,
    node: &'n Node,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<Resource<'n>> {
    let path = format!("Resources.{logical_id}");
    let loc = Loc::new(file.clone(), node.line);
    if logical_id.is_empty() || !logical_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        diagnostics.error(
            &loc,
            &path,
            format!("`{logical_id}` is not a logical id; logical ids are letters and digits only"),
        );
        return None;
    }
    let mut fields = Fields::new(node, file, &path, diagnostics);
    let type_name = fields.required_string("Type", diagnostics);
    let properties = fields.get("Properties");
    let metadata = fields.get("Metadata");
    fields.ignore(&[
        "DependsOn",
        "DeletionPolicy",
        "UpdateReplacePolicy",
        "UpdatePolicy",
        "CreationPolicy",
        // Evaluated by `stack`: a resource whose Condition is false is not here.
        "Condition",
    ]);
    fields.finish(diagnostics);
    let type_name = type_name?;
    let Some(kind) = Kind::of(&type_name) else {
        refuse_type(&type_name, &loc, &path, diagnostics);
        return None;
    };
    Some(Resource {
        logical_id: logical_id.to_string(),
        kind,
        properties,
        metadata,
        no_properties: Node {
            value: Value::Null,
            line: loc.line,
        },
        loc,
    })
}

/// Says what becomes of a resource of a type the dialect does not read.
fn refuse_type(type_name: &str, loc: &Loc, path: &str, diagnostics: &mut Diagnostics) {
    let path = format!("{path}.Type");
    let not_available =
        |what: &str| format!("{type_name}: {what} is not available in a self-hosted control plane");
    match type_name {
        "AWS::CertificateManager::Certificate" => diagnostics.error(
            loc,
            path,
            format!(
                "{}; give the listener's certificate as files instead (`CertificateFile` and `PrivateKeyFile` in its Certificates)",
                not_available("ACM")
            ),
        ),
        "AWS::CloudFormation::Stack" => diagnostics.error(
            loc,
            path,
            "nested stacks are not read: the nested template lives at its TemplateURL (in S3), which Switchyard does not fetch; give that template as a file of its own",
        ),
        name if name.starts_with("AWS::WAF") => {
            diagnostics.error(loc, path, not_available("WAF"))
        }
        name if name.starts_with("AWS::Lambda::") => diagnostics.error(
            loc,
            path,
            not_available("Lambda (targets of type lambda are not served)"),
        ),
        name if name.starts_with("AWS::ElasticLoadBalancingV2::") => diagnostics.error(
            loc,
            path,
            format!(
                "{type_name} is not served; the load balancer resources read are {}",
                Kind::ALL
                    .iter()
                    .filter(|k| **k != Kind::Instance)
                    .map(|k| k.type_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        _ => diagnostics.warning(
            loc,
            path,
            format!("{type_name} is no part of a load balancer; the resource is ignored"),
        ),
    }
}

/// Reads a reference to another resource: `!Ref X`, `Ref: X`, `!GetAtt X.Attr`,
/// `Fn::GetAtt: [X, Attr]`. Anything else (a plain value, another function) is an error.
pub fn reference(
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Reference> {
    let loc = Loc::new(file.clone(), node.line);
    let Some((function, argument)) = function_of(node) else {
        let found = node
            .as_scalar()
            .map_or_else(|| node.kind().to_string(), |text| format!("`{text}`"));
        diagnostics.error(
            &loc,
            path,
            format!("expected a reference to a resource (`!Ref LogicalId` or `!GetAtt LogicalId.Attribute`), found {found}"),
        );
        return None;
    };
    match function {
        "Ref" | "!Ref" => {
            let Some(target) = argument.as_scalar() else {
                diagnostics.error(&loc, path, "Ref takes the logical id of a resource");
                return None;
            };
            if target.starts_with("AWS::") {
                diagnostics.error(
                    &loc,
                    path,
                    format!("pseudo parameter {target} has no value outside AWS; write the value itself"),
                );
                return None;
            }
            Some(Reference {
                logical_id: target.to_string(),
                attribute: None,
                loc,
            })
        }
        "Fn::GetAtt" | "!GetAtt" => {
            let parts: Option<(String, String)> = match &argument.value {
                Value::Scalar { text, .. } => text
                    .split_once('.')
                    .map(|(id, attribute)| (id.to_string(), attribute.to_string())),
                Value::Seq(items) if items.len() == 2 => items[0]
                    .as_scalar()
                    .zip(items[1].as_scalar())
                    .map(|(id, attribute)| (id.to_string(), attribute.to_string())),
                _ => None,
            };
            let Some((logical_id, attribute)) = parts else {
                diagnostics.error(
                    &loc,
                    path,
                    "GetAtt takes `LogicalId.Attribute` or [LogicalId, Attribute]",
                );
                return None;
            };
            Some(Reference {
                logical_id,
                attribute: Some(attribute),
                loc,
            })
        }
        other => {
            unevaluated(other, &loc, path, diagnostics);
            None
        }
    }
}

/// A plain value: a scalar, or an error naming the function written instead.
pub fn plain<'n>(
    node: &'n Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<&'n str> {
    if let Some(text) = node.as_scalar() {
        return Some(text);
    }
    let loc = Loc::new(file.clone(), node.line);
    match function_of(node) {
        Some((function, _)) => unevaluated(function, &loc, path, diagnostics),
        None => diagnostics.error(
            &loc,
            path,
            format!("expected a value, found {}", node.kind()),
        ),
    }
    None
}

/// A function left in a place that wants something else: `Ref` or `GetAtt` where a plain
/// value is wanted, or (in a template read without [`super::stack::evaluate`]) any other.
fn unevaluated(function: &str, loc: &Loc, path: &str, diagnostics: &mut Diagnostics) {
    diagnostics.error(
        loc,
        path,
        format!("`{function}` is not evaluated here: write the value itself (Ref and GetAtt are read only where a resource is named)"),
    );
}

impl<'n> Template<'n> {
    /// The resource `reference` names, which must be of `kind`.
    pub fn resolve(
        &self,
        reference: &Reference,
        kind: Kind,
        path: &str,
        diagnostics: &mut Diagnostics,
    ) -> Option<&Resource<'n>> {
        if let Some(condition) = self.left_out.get(&reference.logical_id) {
            diagnostics.error(
                &reference.loc,
                path,
                format!(
                    "`{}` is left out of the stack: its Condition {condition} is false, so nothing may refer to it (write the reference inside an Fn::If on the same condition)",
                    reference.logical_id
                ),
            );
            return None;
        }
        let Some(resource) = self.resources.get(&reference.logical_id) else {
            let defined: Vec<&str> = self
                .resources
                .values()
                .filter(|r| r.kind == kind)
                .map(|r| r.logical_id.as_str())
                .collect();
            diagnostics.error(
                &reference.loc,
                path,
                format!(
                    "`{}` is no resource of the template; {} resources: {}",
                    reference.logical_id,
                    kind.type_name(),
                    if defined.is_empty() {
                        "none".to_string()
                    } else {
                        defined.join(", ")
                    }
                ),
            );
            return None;
        };
        if resource.kind != kind {
            diagnostics.error(
                &reference.loc,
                path,
                format!(
                    "`{}` is an {}, not an {}",
                    reference.logical_id,
                    resource.kind.type_name(),
                    kind.type_name()
                ),
            );
            return None;
        }
        Some(resource)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml::parse;

    fn lines(diagnostics: &Diagnostics) -> Vec<String> {
        diagnostics.items.iter().map(ToString::to_string).collect()
    }

    const TEMPLATE: &str = "AWSTemplateFormatVersion: '2010-09-09'
Description: two target groups
Resources:
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 80
  Box:
    Type: AWS::EC2::Instance
  Guard:
    Type: AWS::EC2::SecurityGroup
  Cert:
    Type: AWS::CertificateManager::Certificate
";

    #[test]
    fn resources_are_read_and_other_types_named() {
        let documents = parse(TEMPLATE).unwrap();
        assert!(is_template(&documents[0]));
        let mut diagnostics = Diagnostics::default();
        let template = read_template(&documents[0], &Arc::from("alb.yaml"), &mut diagnostics);
        assert_eq!(
            template.resources.keys().collect::<Vec<_>>(),
            ["Box", "Web"]
        );
        assert_eq!(template.resources["Web"].kind, Kind::TargetGroup);
        assert_eq!(template.resources["Web"].path(), "Resources.Web.Properties");
        assert_eq!(
            lines(&diagnostics),
            [
                "warning: alb.yaml:11: Resources.Guard.Type: AWS::EC2::SecurityGroup is no part of a load balancer; the resource is ignored",
                "error: alb.yaml:13: Resources.Cert.Type: AWS::CertificateManager::Certificate: ACM is not available in a self-hosted control plane; give the listener's certificate as files instead (`CertificateFile` and `PrivateKeyFile` in its Certificates)",
            ]
        );
    }

    #[test]
    fn evaluated_sections_are_not_read_again_and_nested_stacks_are_refused() {
        let text = "Parameters:\n  Port: {Type: Number}\nConditions:\n  Prod: {}\nTransform: AWS::LanguageExtensions\nResources:\n  Web:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Condition: Prod\n  Child:\n    Type: AWS::CloudFormation::Stack\n";
        let documents = parse(text).unwrap();
        let mut diagnostics = Diagnostics::default();
        let template = read_template(&documents[0], &Arc::from("alb.yaml"), &mut diagnostics);
        assert_eq!(template.resources.keys().collect::<Vec<_>>(), ["Web"]);
        assert_eq!(
            lines(&diagnostics),
            ["error: alb.yaml:11: Resources.Child.Type: nested stacks are not read: the nested template lives at its TemplateURL (in S3), which Switchyard does not fetch; give that template as a file of its own"]
        );
    }

    #[test]
    fn a_reference_to_a_resource_left_out_names_its_condition() {
        let documents = parse(TEMPLATE).unwrap();
        let mut diagnostics = Diagnostics::default();
        let mut template = read_template(&documents[0], &Arc::from("alb.yaml"), &mut diagnostics);
        template.left_out.insert("Api".into(), "IsProd".into());
        let mut diagnostics = Diagnostics::default();
        let to_api = Reference {
            logical_id: "Api".into(),
            attribute: None,
            loc: Loc::new("alb.yaml", 30),
        };
        assert!(template
            .resolve(&to_api, Kind::TargetGroup, "p", &mut diagnostics)
            .is_none());
        assert_eq!(
            lines(&diagnostics),
            ["error: alb.yaml:30: p: `Api` is left out of the stack: its Condition IsProd is false, so nothing may refer to it (write the reference inside an Fn::If on the same condition)"]
        );
    }

    #[test]
    fn references_take_every_written_form_and_resolve_by_kind() {
        let text = "a: !Ref Web\nb: {Ref: Web}\nc: !GetAtt Web.TargetGroupName\nd: {'Fn::GetAtt': [Box, PrivateIp]}\ne: !Sub '${Web}'\nf: !Ref AWS::Region\ng: web\n";
        let documents = parse(text).unwrap();
        let Value::Map(entries) = &documents[0].value else {
            panic!()
        };
        let file: Arc<str> = Arc::from("alb.yaml");
        let mut diagnostics = Diagnostics::default();
        let found: Vec<Option<(String, Option<String>)>> = entries
            .iter()
            .map(|(key, node)| {
                reference(node, &file, key.as_scalar().unwrap(), &mut diagnostics)
                    .map(|r| (r.logical_id, r.attribute))
            })
            .collect();
        let some = |id: &str, attribute: Option<&str>| {
            Some((id.to_string(), attribute.map(str::to_string)))
        };
        assert_eq!(
            found,
            [
                some("Web", None),
                some("Web", None),
                some("Web", Some("TargetGroupName")),
                some("Box", Some("PrivateIp")),
                None,
                None,
                None
            ]
        );
        assert_eq!(
            lines(&diagnostics),
            [
                "error: alb.yaml:5: e: `!Sub` is not evaluated here: write the value itself (Ref and GetAtt are read only where a resource is named)",
                "error: alb.yaml:6: f: pseudo parameter AWS::Region has no value outside AWS; write the value itself",
                "error: alb.yaml:7: g: expected a reference to a resource (`!Ref LogicalId` or `!GetAtt LogicalId.Attribute`), found `web`",
            ]
        );
        let documents = parse(TEMPLATE).unwrap();
        let mut diagnostics = Diagnostics::default();
        let template = read_template(&documents[0], &file, &mut diagnostics);
        let mut diagnostics = Diagnostics::default();
        let to = |id: &str| Reference {
            logical_id: id.into(),
            attribute: None,
            loc: Loc::new("alb.yaml", 20),
        };
        assert!(template
            .resolve(&to("Web"), Kind::TargetGroup, "p", &mut diagnostics)
            .is_some());
        assert!(template
            .resolve(&to("Box"), Kind::TargetGroup, "p", &mut diagnostics)
            .is_none());
        assert!(template
            .resolve(&to("Api"), Kind::TargetGroup, "p", &mut diagnostics)
            .is_none());
        assert_eq!(
            lines(&diagnostics),
            [
                "error: alb.yaml:20: p: `Box` is an AWS::EC2::Instance, not an AWS::ElasticLoadBalancingV2::TargetGroup",
                "error: alb.yaml:20: p: `Api` is no resource of the template; AWS::ElasticLoadBalancingV2::TargetGroup resources: Web",
            ]
        );
    }

    #[test]
    fn plain_values_refuse_functions() {
        let documents = parse("a: 80\nb: !Join ['', [a, b]]\n").unwrap();
        let Value::Map(entries) = &documents[0].value else {
            panic!()
        };
        let file: Arc<str> = Arc::from("alb.yaml");
        let mut diagnostics = Diagnostics::default();
        assert_eq!(
            plain(&entries[0].1, &file, "a", &mut diagnostics),
            Some("80")
        );
        assert_eq!(plain(&entries[1].1, &file, "b", &mut diagnostics), None);
        assert_eq!(
            lines(&diagnostics),
            ["error: alb.yaml:2: b: `!Join` is not evaluated here: write the value itself (Ref and GetAtt are read only where a resource is named)"]
        );
    }
}
