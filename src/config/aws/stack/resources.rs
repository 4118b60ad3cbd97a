//! What a resource stands for where a value is needed (`${Web.TargetGroupName}` in a Sub,
//! `!GetAtt Box.PrivateIp`): the few attributes that are a property of the template
//! (a target group's or load balancer's Name, an instance's private address and zone); every
//! other one — ARNs, DNS names, hosted zones, ids — AWS assigns when it creates the resource,
//! and is refused naming the resource and the attribute. A resource left out by a false
//! Condition has no value at all. Must not: make up a value AWS would assign.

use crate::config::yaml::Value;

use super::evaluator::{at_line, Declared, Eval, Evaluator};

/// Attributes whose value is a property written in the template: (type, attribute, property).
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        "TargetGroupName",
        "Name",
    ),
    (
        "AWS::ElasticLoadBalancingV2::LoadBalancer",
        "LoadBalancerName",
        "Name",
    ),
    ("AWS::EC2::Instance", "PrivateIp", "PrivateIpAddress"),
    ("AWS::EC2::Instance", "AvailabilityZone", "AvailabilityZone"),
];

impl Evaluator<'_> {
    /// The value of resource `id` (its `Ref` when `attribute` is None), or an error naming
    /// why there is none.
    pub(super) fn resource_value(
        &mut self,
        id: &str,
        attribute: Option<&str>,
        line: usize,
        path: &str,
        written: &str,
    ) -> Eval {
        if let Some(condition) = self.left_out.get(id).cloned() {
            return Err(self.error(
                line,
                path,
                format!("{written}: resource {id} is left out of the stack: its Condition {condition} is false"),
            ));
        }
        let Some(declared) = self.resources.get(id).copied() else {
            return Err(self.unknown_name(written, id, line, path));
        };
        let what = kind_name(declared.type_name);
        let Some(attribute) = attribute else {
            let stands_for = match declared.type_name {
                "AWS::EC2::Instance" => "id",
                name if name.starts_with("AWS::ElasticLoadBalancingV2::") => "ARN",
                _ => "physical id",
            };
            return Err(self.refuse(
                line,
                path,
                format!("{written} has no value outside AWS: it stands for the {what}'s {stands_for}, which AWS assigns when it creates it; write the value itself"),
            ));
        };
        let property = KNOWN
            .iter()
            .find(|(type_name, known, _)| *type_name == declared.type_name && *known == attribute)
            .map(|(_, _, property)| *property);
        match property {
            Some(property) => self.property_value(id, declared, property, line, path, written),
            None => Err(self.refuse(
                line,
                path,
                format!("{written} has no value outside AWS: AWS assigns a {what}'s {attribute} when it creates it; write the value itself"),
            )),
        }
    }

    /// The value of property `property` of resource `id`, evaluated.
    fn property_value(
        &mut self,
        id: &str,
        declared: Declared<'_>,
        property: &str,
        line: usize,
        path: &str,
        written: &str,
    ) -> Eval {
        let node = declared
            .properties
            .and_then(|properties| match &properties.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(key, _)| key.as_scalar() == Some(property))
                    .map(|(_, value)| value.clone()),
                _ => None,
            });
        let Some(node) = node else {
            return Err(self.refuse(
                line,
                path,
                format!("{written} has no value: {id} has no {property}, and AWS makes one up when none is written; write {property} in {id}"),
            ));
        };
        let key = format!("{id}.{property}");
        if self.resolving.contains(&key) {
            return Err(self.error(
                line,
                path,
                format!("{written}: {id}'s {property} refers to itself"),
            ));
        }
        self.resolving.push(key);
        let value = self.value_of(&node, path);
        self.resolving.pop();
        Ok(Some(at_line(value?, line)))
    }
}

/// A resource type in words.
fn kind_name(type_name: &str) -> &'static str {
    match type_name {
        "AWS::ElasticLoadBalancingV2::TargetGroup" => "target group",
        "AWS::ElasticLoadBalancingV2::LoadBalancer" => "load balancer",
        "AWS::ElasticLoadBalancingV2::Listener" => "listener",
        "AWS::ElasticLoadBalancingV2::ListenerRule" => "listener rule",
        "AWS::EC2::Instance" => "instance",
        _ => "resource",
    }
}
