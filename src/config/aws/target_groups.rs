//! `AWS::ElasticLoadBalancingV2::TargetGroup` read as an ALB target group (002): target type,
//! protocol and version, port, address type, targets (by IP, or by `!Ref` to an
//! `AWS::EC2::Instance` whose private addresses and zone give the target's), the health check
//! (`health_check`) and the attributes (`attributes`). Messages speak AWS's words.
//! Pure. Must not: know the model or xDS.

use std::net::IpAddr;
use std::sync::Arc;

use crate::config::reader::{list_mappings, Fields};
use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, Loc};

use super::attributes::{self, Attribute, TargetGroupAttributes};
use super::health_check::{health_check, HealthCheck};
use super::template::{self, Kind, Resource, Template};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetType {
    Instance,
    Ip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtocolVersion {
    Http1,
    Http2,
    Grpc,
}

/// One registered target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub address: IpAddr,
    /// The target's own port, or the group's.
    pub port: u16,
    /// `us-east-1a`; empty when neither the target nor its instance says.
    pub zone: String,
    pub loc: Loc,
}

impl Target {
    /// The region of the target's zone (`us-east-1a` → `us-east-1`).
    pub fn region(&self) -> &str {
        self.zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroup {
    pub logical_id: String,
    pub target_type: TargetType,
    pub protocol: Protocol,
    pub protocol_version: ProtocolVersion,
    pub port: u16,
    pub ipv6: bool,
    pub targets: Vec<Target>,
    pub health_check: HealthCheck,
    pub attributes: TargetGroupAttributes,
    pub loc: Loc,
}

/// The properties of an `AWS::EC2::Instance` that Switchyard reads: where a target is.
pub const INSTANCE_PROPERTIES_READ: &[&str] =
    &["PrivateIpAddress", "Ipv6Addresses", "AvailabilityZone"];

/// Target group properties that name or place it in AWS, accepted and ignored.
pub const TARGET_GROUP_PROPERTIES_IGNORED: &[&str] = &["Name", "Tags", "VpcId"];

/// Reads one target group resource of `template`.
pub fn read_target_group(
    template: &Template<'_>,
    resource: &Resource<'_>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<TargetGroup> {
    let mut fields = resource.property_fields(file, diagnostics);
    fields.ignore(TARGET_GROUP_PROPERTIES_IGNORED);
    let target_type = match fields.string("TargetType", diagnostics).as_deref() {
        None | Some("instance") => Some(TargetType::Instance),
        Some("ip") => Some(TargetType::Ip),
        Some(other @ ("lambda" | "alb")) => {
            diagnostics.error(
                &fields.loc_of("TargetType"),
                fields.field_path("TargetType"),
                format!("target type {other} is not served by a self-hosted control plane; the target types served are instance and ip"),
            );
            None
        }
        Some(other) => {
            diagnostics.error(
                &fields.loc_of("TargetType"),
                fields.field_path("TargetType"),
                format!("`{other}` is not a target type; allowed: instance, ip, lambda, alb"),
            );
            None
        }
    };
    let protocol = protocol(&mut fields, "Protocol", diagnostics).unwrap_or(Protocol::Http);
    let protocol_version = match fields.string("ProtocolVersion", diagnostics).as_deref() {
        None | Some("HTTP1") => ProtocolVersion::Http1,
        Some("HTTP2") => ProtocolVersion::Http2,
        Some("GRPC") => ProtocolVersion::Grpc,
        Some(other) => {
            diagnostics.error(
                &fields.loc_of("ProtocolVersion"),
                fields.field_path("ProtocolVersion"),
                format!("`{other}` is not a protocol version; allowed: HTTP1, HTTP2, GRPC"),
            );
            ProtocolVersion::Http1
        }
    };
    let port_given = fields.get("Port").is_some();
    let port = fields.integer("Port", 1, 65535, diagnostics);
    // A refused target type is reported for itself, not for what it would have needed.
    if !port_given && target_type.is_some() {
        diagnostics.error(
            &fields.loc(),
            fields.field_path("Port"),
            "a target group of type instance or ip needs a Port (1 to 65535)",
        );
    }
    let ipv6 = match fields.string("IpAddressType", diagnostics).as_deref() {
        None | Some("ipv4") => false,
        Some("ipv6") => true,
        Some(other) => {
            diagnostics.error(
                &fields.loc_of("IpAddressType"),
                fields.field_path("IpAddressType"),
                format!("`{other}` is not an address type; allowed: ipv4, ipv6"),
            );
            false
        }
    };
    let health_check = health_check(&mut fields, protocol, protocol_version, diagnostics);
    let attributes_node = fields.get("TargetGroupAttributes");
    let targets_node = fields.get("Targets");
    let loc = fields.loc();
    fields.finish(diagnostics);
    let attributes = attributes::read(
        &attribute_list(
            attributes_node,
            file,
            &format!("{}.TargetGroupAttributes", resource.path()),
            diagnostics,
        ),
        &resource.path(),
        diagnostics,
    );
    let (target_type, port) = (target_type?, port? as u16);
    let targets = targets_node
        .map(|node| {
            read_targets(
                template,
                node,
                file,
                &format!("{}.Targets", resource.path()),
                (target_type, port, ipv6),
                diagnostics,
            )
        })
        .unwrap_or_default();
    Some(TargetGroup {
        logical_id: resource.logical_id.clone(),
        target_type,
        protocol,
        protocol_version,
        port,
        ipv6,
        targets,
        health_check,
        attributes,
        loc,
    })
}

pub(super) fn protocol(
    fields: &mut Fields<'_>,
    key: &'static str,
    diagnostics: &mut Diagnostics,
) -> Option<Protocol> {
    match fields.string(key, diagnostics).as_deref() {
        None => None,
        Some("HTTP") => Some(Protocol::Http),
        Some("HTTPS") => Some(Protocol::Https),
        Some(other @ ("TCP" | "TLS" | "UDP" | "TCP_UDP" | "GENEVE")) => {
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!("{other} belongs to Network and Gateway Load Balancers; an Application Load Balancer target group speaks HTTP or HTTPS"),
            );
            None
        }
        Some(other) => {
            diagnostics.error(
                &fields.loc_of(key),
                fields.field_path(key),
                format!("`{other}` is not a protocol; allowed: HTTP, HTTPS"),
            );
            None
        }
    }
}

/// The `{Key, Value}` items of an attribute list property (`TargetGroupAttributes`,
/// `LoadBalancerAttributes`, `ListenerAttributes`) written at `path`.
pub(super) fn attribute_list(
    node: Option<&Node>,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Vec<Attribute> {
    let Some(node) = node else {
        return Vec::new();
    };
    list_mappings(
        node,
        file,
        path,
        "{Key, Value}",
        diagnostics,
        |fields, diagnostics| {
            let key = fields.required_string("Key", diagnostics);
            let value = fields.required_string("Value", diagnostics);
            Some(Attribute {
                key: key?,
                value: value?,
                loc: fields.loc(),
            })
        },
    )
}

/// The targets, each by IP or by instance; every address must be of the group's family.
fn read_targets(
    template: &Template<'_>,
    node: &Node,
    file: &Arc<str>,
    path: &str,
    group: (TargetType, u16, bool),
    diagnostics: &mut Diagnostics,
) -> Vec<Target> {
    list_mappings(
        node,
        file,
        path,
        "targets",
        diagnostics,
        |fields, diagnostics| read_target(template, fields, group, diagnostics),
    )
}

fn read_target(
    template: &Template<'_>,
    fields: &mut Fields<'_>,
    (target_type, group_port, ipv6): (TargetType, u16, bool),
    diagnostics: &mut Diagnostics,
) -> Option<Target> {
    let id = fields.get("Id");
    let port = fields
        .integer("Port", 1, 65535, diagnostics)
        .map_or(group_port, |p| p as u16);
    let zone = fields.string("AvailabilityZone", diagnostics);
    let loc = fields.loc();
    let id_path = fields.field_path("Id");
    let Some(id) = id else {
        diagnostics.error(&loc, id_path, "this field is required");
        return None;
    };
    let file = fields.file();
    let found = match target_type {
        TargetType::Ip => template::plain(id, file, &id_path, diagnostics).and_then(|text| {
            let parsed = text.parse::<IpAddr>().ok();
            if parsed.is_none() {
                diagnostics.error(
                    &Loc::new(file.clone(), id.line),
                    &id_path,
                    format!("`{text}` is not an IP address; targets of type ip are addresses"),
                );
            }
            parsed.map(|address| (address, String::new()))
        }),
        TargetType::Instance => instance_address(template, id, file, &id_path, ipv6, diagnostics),
    };
    let (address, instance_zone) = found?;
    if address.is_ipv6() != ipv6 {
        diagnostics.error(
            &Loc::new(file.clone(), id.line),
            &id_path,
            format!(
                "{address} is an {} address, and this target group's IpAddressType is {}; all targets of a group share its address type",
                if address.is_ipv6() { "IPv6" } else { "IPv4" },
                if ipv6 { "ipv6" } else { "ipv4" }
            ),
        );
        return None;
    }
    Some(Target {
        address,
        port,
        zone: zone.unwrap_or(instance_zone),
        loc,
    })
}

/// An instance target's address (its private IPv4, or first IPv6 in an ipv6 group) and zone.
fn instance_address(
    template: &Template<'_>,
    id: &Node,
    file: &Arc<str>,
    path: &str,
    ipv6: bool,
    diagnostics: &mut Diagnostics,
) -> Option<(IpAddr, String)> {
    let reference = template::reference(id, file, path, diagnostics)?;
    let instance = template.resolve(&reference, Kind::Instance, path, diagnostics)?;
    let empty = Node {
        value: Value::Null,
        line: instance.loc.line,
    };
    let properties = instance.properties.unwrap_or(&empty);
    let mut fields = Fields::new(
        properties,
        file,
        instance.path(),
        &mut Diagnostics::default(),
    );
    let zone = fields.string("AvailabilityZone", &mut Diagnostics::default());
    let address = if ipv6 {
        fields
            .get("Ipv6Addresses")
            .and_then(|node| match &node.value {
                Value::Seq(items) => items.first(),
                _ => None,
            })
            .and_then(|first| match &first.value {
                Value::Map(entries) => entries
                    .iter()
                    .find(|(key, _)| key.as_scalar() == Some("Ipv6Address"))
                    .and_then(|(_, value)| value.as_scalar()),
                _ => None,
            })
    } else {
        fields.get("PrivateIpAddress").and_then(Node::as_scalar)
    };
    let address = address.and_then(|text| text.parse::<IpAddr>().ok());
    if address.is_none() {
        let wanted = if ipv6 {
            "Ipv6Addresses (an ipv6 target group)"
        } else {
            "PrivateIpAddress"
        };
        diagnostics.error(
            &reference.loc,
            path,
            format!(
                "instance `{}` has no {wanted}; Switchyard reaches an instance target at the address its template gives",
                reference.logical_id
            ),
        );
    }
    Some((address?, zone.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::aws::health_check::{CheckPort, Matcher};
    use crate::config::aws::template::read_template;
    use crate::config::yaml::parse;

    fn groups(text: &str) -> (Vec<TargetGroup>, Vec<String>) {
        let documents = parse(text).unwrap();
        let file: Arc<str> = Arc::from("alb.yaml");
        let mut diagnostics = Diagnostics::default();
        let template = read_template(&documents[0], &file, &mut diagnostics);
        let groups = template
            .resources
            .values()
            .filter(|r| r.kind == Kind::TargetGroup)
            .filter_map(|r| read_target_group(&template, r, &file, &mut diagnostics))
            .collect();
        let lines = diagnostics.items.iter().map(ToString::to_string).collect();
        (groups, lines)
    }

    const TEMPLATE: &str = "Resources:
  WebA:
    Type: AWS::EC2::Instance
    Properties: {PrivateIpAddress: 10.0.1.10, AvailabilityZone: us-east-1a, Ipv6Addresses: [{Ipv6Address: 'fd00::10'}]}
  Web:
    Type: AWS::ElasticLoadBalancingV2::TargetGroup
    Properties:
      Port: 8080
      Protocol: HTTP
      HealthCheckPath: /healthz
      Matcher: {HttpCode: '200-299'}
      Targets:
      - Id: !Ref WebA
      - {Id: !Ref WebA, Port: 8081, AvailabilityZone: us-east-1b}
      TargetGroupAttributes:
      - {Key: slow_start.duration_seconds, Value: '60'}
";

    #[test]
    fn a_target_group_reads_with_albs_defaults() {
        let (groups, lines) = groups(TEMPLATE);
        assert!(lines.is_empty(), "{lines:?}");
        let web = &groups[0];
        assert_eq!(
            (
                web.target_type,
                web.protocol,
                web.protocol_version,
                web.port,
                web.ipv6
            ),
            (
                TargetType::Instance,
                Protocol::Http,
                ProtocolVersion::Http1,
                8080,
                false
            )
        );
        let targets: Vec<(String, u16, &str, &str)> = web
            .targets
            .iter()
            .map(|t| (t.address.to_string(), t.port, t.zone.as_str(), t.region()))
            .collect();
        assert_eq!(
            targets,
            [
                ("10.0.1.10".to_string(), 8080, "us-east-1a", "us-east-1"),
                ("10.0.1.10".to_string(), 8081, "us-east-1b", "us-east-1")
            ]
        );
        let check = &web.health_check;
        assert_eq!(
            (
                check.path.as_str(),
                check.port,
                check.interval_seconds,
                check.timeout_seconds
            ),
            ("/healthz", CheckPort::TrafficPort, 30, 5)
        );
        assert_eq!((check.healthy_threshold, check.unhealthy_threshold), (5, 2));
        assert_eq!(check.matcher, Matcher::Http(vec![(200, 299)]));
        assert_eq!(web.attributes.slow_start_seconds, 60);
    }

    #[test]
    fn the_documents_rules_are_errors_in_its_words() {
        let text = TEMPLATE
            .replace("      Protocol: HTTP\n", "      Protocol: HTTP\n      IpAddressType: ipv6\n      HealthCheckTimeoutSeconds: 30\n      HealthCheckIntervalSeconds: 30\n")
            .replace("{HttpCode: '200-299'}", "{HttpCode: '200-600'}")
            .replace("      - Id: !Ref WebA\n", "      - Id: !Ref WebA\n      - Id: 10.0.0.9\n");
        let (_, lines) = groups(&text);
        assert_eq!(
            lines,
            [
                "error: alb.yaml:11: Resources.Web.Properties.HealthCheckTimeoutSeconds: the timeout (30s) must be shorter than HealthCheckIntervalSeconds (30s)",
                "error: alb.yaml:14: Resources.Web.Properties.Matcher.HttpCode: `200-600` is not allowed; HttpCode is codes from 200 to 499, as `200`, `200,202` or `200-299`",
                "error: alb.yaml:17: Resources.Web.Properties.Targets[1].Id: expected a reference to a resource (`!Ref LogicalId` or `!GetAtt LogicalId.Attribute`), found `10.0.0.9`",
            ]
        );
        // An IPv4 target in an IPv6 group.
        let text = TEMPLATE
            .replace("      Protocol: HTTP\n", "      Protocol: HTTP\n      TargetType: ip\n      IpAddressType: ipv6\n")
            .replace("      - Id: !Ref WebA\n      - {Id: !Ref WebA, Port: 8081, AvailabilityZone: us-east-1b}\n", "      - {Id: 'fd00::1', AvailabilityZone: us-east-1a}\n      - {Id: 10.0.0.9, AvailabilityZone: us-east-1a}\n");
        let (groups, lines) = groups(&text);
        assert_eq!(
            lines,
            ["error: alb.yaml:16: Resources.Web.Properties.Targets[1].Id: 10.0.0.9 is an IPv4 address, and this target group's IpAddressType is ipv6; all targets of a group share its address type"]
        );
        assert_eq!(groups[0].targets.len(), 1);
    }

    #[test]
    fn lambda_and_network_load_balancer_groups_are_refused_by_name() {
        let text = "Resources:\n  Fn:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties: {TargetType: lambda}\n  Tcp:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n    Properties: {Port: 80, Protocol: TCP}\n";
        let (_, lines) = groups(text);
        assert_eq!(
            lines,
            [
                "error: alb.yaml:4: Resources.Fn.Properties.TargetType: target type lambda is not served by a self-hosted control plane; the target types served are instance and ip",
                "error: alb.yaml:7: Resources.Tcp.Properties.Protocol: TCP belongs to Network and Gateway Load Balancers; an Application Load Balancer target group speaks HTTP or HTTPS",
            ]
        );
    }

    #[test]
    fn grpc_groups_default_to_albs_grpc_check() {
        let text = TEMPLATE
            .replace(
                "      Protocol: HTTP\n",
                "      Protocol: HTTPS\n      ProtocolVersion: GRPC\n",
            )
            .replace(
                "      HealthCheckPath: /healthz\n      Matcher: {HttpCode: '200-299'}\n",
                "",
            );
        let (groups, lines) = groups(&text);
        assert!(lines.is_empty(), "{lines:?}");
        let check = &groups[0].health_check;
        assert_eq!(check.path, "/AWS.ALB/healthcheck");
        assert_eq!(check.matcher, Matcher::Grpc(vec![(12, 12)]));
        assert_eq!(check.protocol, Protocol::Https);
    }
}
