//! Load balancers, listeners and listener rules as an ALB reads them: the load balancer's type,
//! address type (ipv4, or dualstack: frontends on both families) and attributes, a listener's
//! port, protocol, certificates (given as files: ACM has no place here), attributes and default
//! action (attributes: `balancer_attributes`), and each rule's priority (unique on its
//! listener), conditions (`conditions`) and action (`actions`). Pure. Must not: know the model
//! or xDS.

use std::sync::Arc;

use crate::config::reader::{list_mappings, Fields};
use crate::config::yaml::Node;
use crate::model::{Diagnostics, Loc};

use super::actions::{read_actions, Action};
use super::balancer_attributes::{self, ListenerAttributes, LoadBalancerAttributes};
use super::conditions::{read_conditions, Condition};
use super::target_groups::attribute_list;
use super::template::{self, Kind, Resource, Template};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadBalancer {
    pub logical_id: String,
    /// Frontends on IPv6 as well as IPv4.
    pub dualstack: bool,
    pub attributes: LoadBalancerAttributes,
}

/// A certificate and key, as files next to the template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    pub certificate_file: String,
    pub private_key_file: String,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub logical_id: String,
    pub load_balancer: String,
    pub port: u16,
    pub https: bool,
    pub certificates: Vec<CertificateFiles>,
    pub ssl_policy: Option<String>,
    pub default_action: Action,
    pub attributes: ListenerAttributes,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub logical_id: String,
    pub listener: String,
    pub priority: u32,
    pub conditions: Vec<Condition>,
    pub action: Action,
    /// Where its priority is written.
    pub priority_loc: Loc,
}

/// Load balancer properties that place, size or name it in AWS: no meaning for a self-hosted
/// proxy, accepted and ignored.
pub const LOAD_BALANCER_PROPERTIES_IGNORED: &[&str] = &[
    "Name",
    "Scheme",
    "Subnets",
    "SubnetMappings",
    "SecurityGroups",
    "Tags",
    "Ipv4IpamPoolId",
    "MinimumLoadBalancerCapacity",
    "EnableCapacityReservationProvisionStabilize",
];

/// Reads an `AWS::ElasticLoadBalancingV2::LoadBalancer`.
pub fn read_load_balancer(
    resource: &Resource<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<LoadBalancer> {
    let mut fields = resource.property_fields(file, diagnostics);
    fields.ignore(LOAD_BALANCER_PROPERTIES_IGNORED);
    for key in [
        "EnablePrefixForIpv6SourceNat",
        "EnforceSecurityGroupInboundRulesOnPrivateLinkTraffic",
    ] {
        if fields.get(key).is_some() {
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!("{key} belongs to Network Load Balancers; an Application Load Balancer has no such property"),
            );
        }
    }
    let attributes_node = fields.get("LoadBalancerAttributes");
    let kind = fields.string("Type", diagnostics);
    let address_type = fields.string("IpAddressType", diagnostics);
    let (type_loc, address_loc) = (fields.loc_of("Type"), fields.loc_of("IpAddressType"));
    let (type_path, address_path) = (
        fields.field_path("Type"),
        fields.field_path("IpAddressType"),
    );
    fields.finish(diagnostics);
    let attributes_path = format!("{}.LoadBalancerAttributes", resource.path());
    let attributes = balancer_attributes::read_load_balancer(
        &attribute_list(attributes_node, file, &attributes_path, diagnostics),
        &attributes_path,
        diagnostics,
    );
    match kind.as_deref() {
        None | Some("application") => {}
        Some(other) => {
            diagnostics.error(
                &type_loc,
                type_path,
                format!("a load balancer of type {other} is not served; the AWS dialect serves Application Load Balancers (Type: application)"),
            );
            return None;
        }
    }
    let dualstack = match address_type.as_deref() {
        None | Some("ipv4") => false,
        Some("dualstack" | "dualstack-without-public-ipv4") => true,
        Some(other) => {
            diagnostics.error(
                &address_loc,
                address_path,
                format!("`{other}` is not allowed; IpAddressType is ipv4, dualstack or dualstack-without-public-ipv4"),
            );
            false
        }
    };
    Some(LoadBalancer {
        logical_id: resource.logical_id.clone(),
        dualstack,
        attributes,
    })
}

/// Reads an `AWS::ElasticLoadBalancingV2::Listener`.
pub fn read_listener(
    template: &Template<'_>,
    resource: &Resource<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<Listener> {
    let mut fields = resource.property_fields(file, diagnostics);
    let load_balancer = fields.get("LoadBalancerArn");
    let port_given = fields.get("Port").is_some();
    let port = fields.integer("Port", 1, 65535, diagnostics);
    let protocol = fields.string("Protocol", diagnostics);
    let certificates = fields.get("Certificates");
    let ssl_policy = fields.string("SslPolicy", diagnostics);
    let actions = fields.get("DefaultActions");
    fields.not_served(&["MutualAuthentication", "AlpnPolicy"], diagnostics);
    let attributes_node = fields.get("ListenerAttributes");
    let loc = fields.loc();
    let (protocol_loc, policy_loc) = (fields.loc_of("Protocol"), fields.loc_of("SslPolicy"));
    let path = resource.path();
    fields.finish(diagnostics);
    let attributes_path = format!("{path}.ListenerAttributes");
    let attributes = balancer_attributes::read_listener(
        &attribute_list(attributes_node, file, &attributes_path, diagnostics),
        &attributes_path,
        diagnostics,
    );
    let https = match protocol.as_deref() {
        Some("HTTP") => false,
        Some("HTTPS") => true,
        None => {
            diagnostics.error(&loc, format!("{path}.Protocol"), "this field is required");
            return None;
        }
        Some(other) => {
            diagnostics.error(
                &protocol_loc,
                format!("{path}.Protocol"),
                format!("`{other}` is not an Application Load Balancer listener protocol; allowed: HTTP, HTTPS"),
            );
            return None;
        }
    };
    if let Some(policy) = &ssl_policy {
        if !policy.starts_with("ELBSecurityPolicy-") {
            diagnostics.error(
                &policy_loc,
                format!("{path}.SslPolicy"),
                format!("`{policy}` is not an ELB security policy (ELBSecurityPolicy-…)"),
            );
        }
    }
    let certificates = certificates
        .map(|node| read_certificates(node, file, &format!("{path}.Certificates"), diagnostics))
        .unwrap_or_default();
    if https && certificates.is_empty() {
        diagnostics.error(
            &loc,
            format!("{path}.Certificates"),
            "an HTTPS listener needs a certificate (CertificateFile and PrivateKeyFile)",
        );
    }
    let Some(load_balancer) = load_balancer else {
        diagnostics.error(
            &loc,
            format!("{path}.LoadBalancerArn"),
            "this field is required",
        );
        return None;
    };
    let lb_path = format!("{path}.LoadBalancerArn");
    let reference = template::reference(load_balancer, file, &lb_path, diagnostics)?;
    let load_balancer = template.resolve(&reference, Kind::LoadBalancer, &lb_path, diagnostics)?;
    let Some(actions) = actions else {
        diagnostics.error(
            &loc,
            format!("{path}.DefaultActions"),
            "this field is required",
        );
        return None;
    };
    let default_action = read_actions(
        template,
        actions,
        file,
        &format!("{path}.DefaultActions"),
        diagnostics,
    )?;
    // A Port written and refused was reported for what it is.
    if !port_given {
        diagnostics.error(&loc, format!("{path}.Port"), "this field is required");
    }
    Some(Listener {
        logical_id: resource.logical_id.clone(),
        load_balancer: load_balancer.logical_id.clone(),
        port: port? as u16,
        https,
        certificates,
        ssl_policy,
        default_action,
        attributes,
        loc,
    })
}

fn read_certificates(
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<CertificateFiles> {
    list_mappings(
        node,
        file,
        path,
        "certificates",
        diagnostics,
        read_certificate,
    )
}

fn read_certificate(
    fields: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> Option<CertificateFiles> {
    if fields.get("CertificateArn").is_some() {
        diagnostics.error(
            &fields.loc_of("CertificateArn"),
            fields.field_path("CertificateArn"),
            "ACM certificates are not available in a self-hosted control plane; give CertificateFile and PrivateKeyFile (PEM files, relative to this template) instead",
        );
        return None;
    }
    let certificate_file = fields.required_string("CertificateFile", diagnostics);
    let private_key_file = fields.required_string("PrivateKeyFile", diagnostics);
    Some(CertificateFiles {
        certificate_file: certificate_file?,
        private_key_file: private_key_file?,
        loc: fields.loc(),
    })
}

/// Reads an `AWS::ElasticLoadBalancingV2::ListenerRule`.
pub fn read_rule(
    template: &Template<'_>,
    resource: &Resource<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<Rule> {
    let mut fields = resource.property_fields(file, diagnostics);
    let listener = fields.get("ListenerArn");
    let priority = fields.integer("Priority", 1, 50_000, diagnostics);
    let conditions = fields.get("Conditions");
    let actions = fields.get("Actions");
    fields.not_served(&["Transforms"], diagnostics);
    let loc = fields.loc();
    let priority_loc = fields.loc_of("Priority");
    let path = resource.path();
    fields.finish(diagnostics);
    let mut missing = |key: &str| {
        diagnostics.error(&loc, format!("{path}.{key}"), "this field is required");
    };
    let (Some(listener), Some(priority), Some(conditions), Some(actions)) =
        (listener, priority, conditions, actions)
    else {
        for (key, absent) in [
            ("ListenerArn", listener.is_none()),
            ("Priority", priority.is_none()),
            ("Conditions", conditions.is_none()),
            ("Actions", actions.is_none()),
        ] {
            if absent {
                missing(key);
            }
        }
        return None;
    };
    let listener_path = format!("{path}.ListenerArn");
    let reference = template::reference(listener, file, &listener_path, diagnostics)?;
    let listener = template.resolve(&reference, Kind::Listener, &listener_path, diagnostics)?;
    let conditions = read_conditions(conditions, file, &format!("{path}.Conditions"), diagnostics);
    let action = read_actions(
        template,
        actions,
        file,
        &format!("{path}.Actions"),
        diagnostics,
    )?;
    Some(Rule {
        logical_id: resource.logical_id.clone(),
        listener: listener.logical_id.clone(),
        priority: priority as u32,
        conditions,
        action,
        priority_loc,
    })
}

/// Rules of one listener must have different priorities.
pub fn check_priorities(rules: &[Rule], diagnostics: &mut Diagnostics) {
    for (index, rule) in rules.iter().enumerate() {
        if let Some(first) = rules[..index]
            .iter()
            .find(|r| r.listener == rule.listener && r.priority == rule.priority)
        {
            diagnostics.error(
                &rule.priority_loc,
                format!("Resources.{}.Properties.Priority", rule.logical_id),
                format!(
                    "priority {} is already taken on listener {} by rule {}; each rule of a listener has its own priority",
                    rule.priority, rule.listener, first.logical_id
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::aws::template::read_template;
    use crate::config::yaml::parse;

    const TEMPLATE: &str = "Resources:
  Alb:
    Type: AWS::ElasticLoadBalancingV2::LoadBalancer
    Properties: {IpAddressType: dualstack}
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
  Http:
    Type: AWS::ElasticLoadBalancingV2::Listener
    Properties:
      LoadBalancerArn: !Ref Alb
      Port: 80
      Protocol: HTTP
      DefaultActions: [{Type: forward, TargetGroupArn: !Ref Web}]
  Api:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 10
      Conditions:
      - {Field: host-header, HostHeaderConfig: {Values: ['api.example.*']}}
      - {Field: path-pattern, Values: ['/v?/*']}
      - {Field: http-header, HttpHeaderConfig: {HttpHeaderName: X-Canary, Values: ['on']}}
      - {Field: query-string, QueryStringConfig: {Values: [{Key: debug, Value: 'tr*'}, {Value: x}]}}
      - {Field: http-request-method, HttpRequestMethodConfig: {Values: [GET, HEAD]}}
      - {Field: source-ip, SourceIpConfig: {Values: [10.0.0.0/8, '2001:db8::/32']}}
      Actions: [{Type: fixed-response, FixedResponseConfig: {StatusCode: '200'}}]
  Same:
    Type: AWS::ElasticLoadBalancingV2::ListenerRule
    Properties:
      ListenerArn: !Ref Http
      Priority: 10
      Conditions: [{Field: path-pattern, Values: [/same]}]
      Actions: [{Type: forward, TargetGroupArn: !Ref Web}]
";

    fn read(text: &str) -> (Vec<LoadBalancer>, Vec<Listener>, Vec<Rule>, Vec<String>) {
        let documents = parse(text).unwrap();
        let file: Arc<str> = Arc::from("alb.yaml");
        let mut diagnostics = Diagnostics::default();
        let template = read_template(&documents[0], &file, &mut diagnostics);
        let of = |kind| template.resources.values().filter(move |r| r.kind == kind);
        let balancers = of(Kind::LoadBalancer)
            .filter_map(|r| read_load_balancer(r, &file, &mut diagnostics))
            .collect();
        let listeners = of(Kind::Listener)
            .filter_map(|r| read_listener(&template, r, &file, &mut diagnostics))
            .collect();
        let rules: Vec<Rule> = of(Kind::ListenerRule)
            .filter_map(|r| read_rule(&template, r, &file, &mut diagnostics))
            .collect();
        check_priorities(&rules, &mut diagnostics);
        diagnostics.sort();
        let lines = diagnostics.items.iter().map(ToString::to_string).collect();
        (balancers, listeners, rules, lines)
    }

    #[test]
    fn listeners_and_rules_read_every_condition() {
        let (balancers, listeners, rules, lines) = read(TEMPLATE);
        assert!(balancers[0].dualstack);
        assert_eq!((listeners[0].port, listeners[0].https), (80, false));
        assert_eq!(listeners[0].load_balancer, "Alb");
        let api = &rules[0];
        assert_eq!((api.listener.as_str(), api.priority), ("Http", 10));
        assert_eq!(
            api.conditions,
            [
                Condition::Host(vec!["api.example.*".into()]),
                Condition::Path(vec!["/v?/*".into()]),
                Condition::Header {
                    name: "X-Canary".into(),
                    values: vec!["on".into()]
                },
                Condition::Query(vec![
                    (Some("debug".into()), "tr*".into()),
                    (None, "x".into())
                ]),
                Condition::Method(vec!["GET".into(), "HEAD".into()]),
                Condition::SourceIp(vec![
                    ("10.0.0.0".parse().unwrap(), 8),
                    ("2001:db8::".parse().unwrap(), 32)
                ]),
            ]
        );
        assert_eq!(
            lines,
            ["error: alb.yaml:31: Resources.Same.Properties.Priority: priority 10 is already taken on listener Http by rule Api; each rule of a listener has its own priority"]
        );
    }

    #[test]
    fn https_listeners_take_certificate_files_not_acm() {
        let text = TEMPLATE.replace(
            "      Port: 80\n      Protocol: HTTP\n",
            "      Port: 443\n      Protocol: HTTPS\n      SslPolicy: ELBSecurityPolicy-TLS13-1-2-2021-06\n      Certificates: [{CertificateArn: arn:aws:acm:us-east-1:1:certificate/x}]\n",
        );
        let (_, _, _, lines) = read(&text);
        assert_eq!(
            &lines[..2],
            [
                "error: alb.yaml:10: Resources.Http.Properties.Certificates: an HTTPS listener needs a certificate (CertificateFile and PrivateKeyFile)",
                "error: alb.yaml:14: Resources.Http.Properties.Certificates[0].CertificateArn: ACM certificates are not available in a self-hosted control plane; give CertificateFile and PrivateKeyFile (PEM files, relative to this template) instead",
            ]
        );
        let text = TEMPLATE.replace(
            "      Port: 80\n      Protocol: HTTP\n",
            "      Port: 443\n      Protocol: HTTPS\n      Certificates: [{CertificateFile: certs/www.pem, PrivateKeyFile: certs/www.key}]\n",
        );
        let (_, listeners, _, _) = read(&text);
        assert!(listeners[0].https);
        assert_eq!(
            listeners[0].certificates[0].certificate_file,
            "certs/www.pem"
        );
    }

    #[test]
    fn other_load_balancers_and_bad_conditions_are_named() {
        let text = TEMPLATE
            .replace(
                "Properties: {IpAddressType: dualstack}",
                "Properties: {Type: network}",
            )
            .replace("[10.0.0.0/8, '2001:db8::/32']", "[10.0.0.0/40]")
            .replace("[GET, HEAD]", "[get]");
        let (_, _, _, lines) = read(&text);
        assert!(lines.contains(&"error: alb.yaml:4: Resources.Alb.Properties.Type: a load balancer of type network is not served; the AWS dialect serves Application Load Balancers (Type: application)".to_string()), "{lines:#?}");
        assert!(lines.contains(&"error: alb.yaml:24: Resources.Api.Properties.Conditions[4].HttpRequestMethodConfig: `get` is not a method; methods are upper-case letters, `-` and `_` (GET, POST)".to_string()), "{lines:#?}");
        assert!(lines.contains(&"error: alb.yaml:25: Resources.Api.Properties.Conditions[5].SourceIpConfig: `10.0.0.0/40` is not a CIDR block (10.0.0.0/8, 2001:db8::/32)".to_string()), "{lines:#?}");
    }
}
