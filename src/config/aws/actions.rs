//! Listener and rule actions as an ALB reads them: `forward` (one target group, or a
//! `ForwardConfig` of weighted target groups with `TargetGroupStickinessConfig`), `redirect`
//! (`#{protocol}`, `#{host}`, `#{port}`, `#{path}`, `#{query}` placeholders, HTTP_301 /
//! HTTP_302) and `fixed-response` (status, content type, body). Authentication actions are
//! refused by name: only AWS has Cognito and its OIDC integration. Pure. Must not: know the
//! model or xDS.

use std::sync::Arc;

use crate::config::reader::{list_mappings, Fields};
use crate::config::yaml::{Node, Value};
use crate::model::{Diagnostics, Loc};

use super::template::{self, Kind, Template};

/// One target group of a forward, with its weight (0–999).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WeightedGroup {
    pub target_group: String,
    pub weight: u32,
}

/// A redirect's parts; each keeps `#{…}` placeholders as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub protocol: String,
    pub host: String,
    pub port: String,
    pub path: String,
    pub query: String,
    pub permanent: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Forward {
        groups: Vec<WeightedGroup>,
        /// Group stickiness: how long a client stays on the group it was first sent to.
        stickiness_seconds: Option<u32>,
    },
    Redirect(Redirect),
    FixedResponse {
        status: u16,
        content_type: Option<String>,
        body: Option<String>,
    },
}

/// The content types a fixed response may declare.
const CONTENT_TYPES: [&str; 5] = [
    "text/plain",
    "text/css",
    "text/html",
    "application/javascript",
    "application/json",
];

/// Reads the list of actions at `path`: the one that ends the request, after any others.
pub fn read_actions(
    template: &Template<'_>,
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Action> {
    let written = list_mappings(
        node,
        file,
        path,
        "actions",
        diagnostics,
        |fields, diagnostics| {
            let order = fields.integer("Order", 1, 50_000, diagnostics);
            Some((order, read_action(template, fields, diagnostics)))
        },
    );
    // An action without an Order takes its place in the list.
    let mut ordered: Vec<(i64, Action)> = written
        .into_iter()
        .enumerate()
        .filter_map(|(index, (order, action))| Some((order.unwrap_or(index as i64 + 1), action?)))
        .collect();
    ordered.sort_by_key(|(order, _)| *order);
    if ordered.len() > 1 {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            path,
            "more than one action ends the request; an ALB takes one forward, redirect or fixed-response action",
        );
    }
    ordered.into_iter().map(|(_, action)| action).next()
}

fn read_action(
    template: &Template<'_>,
    fields: &mut Fields<'_>,
    diagnostics: &mut Diagnostics,
) -> Option<Action> {
    let kind = fields.required_string("Type", diagnostics)?;
    let target_group = fields.get("TargetGroupArn");
    let forward = fields.get("ForwardConfig");
    let redirect = fields.get("RedirectConfig");
    let fixed = fields.get("FixedResponseConfig");
    // Their actions are refused by type below.
    fields.ignore(&[
        "AuthenticateCognitoConfig",
        "AuthenticateOidcConfig",
        "JwtValidationConfig",
    ]);
    let file = fields.file().clone();
    match kind.as_str() {
        "forward" => read_forward(template, fields, target_group, forward, &file, diagnostics),
        "redirect" => read_config(
            fields,
            "RedirectConfig",
            redirect,
            read_redirect,
            diagnostics,
        ),
        "fixed-response" => read_config(
            fields,
            "FixedResponseConfig",
            fixed,
            read_fixed,
            diagnostics,
        ),
        "jwt-validation" => {
            diagnostics.error(
                &fields.loc_of("Type"),
                fields.field_path("Type"),
                "jwt-validation is not served yet; validate tokens in the application instead",
            );
            None
        }
        "authenticate-cognito" | "authenticate-oidc" => {
            diagnostics.error(
                &fields.loc_of("Type"),
                fields.field_path("Type"),
                format!("{kind} is not available in a self-hosted control plane (it needs AWS's identity integration); authenticate in the application instead"),
            );
            None
        }
        other => {
            diagnostics.error(
                &fields.loc_of("Type"),
                fields.field_path("Type"),
                format!(
                    "`{other}` is not an action type; allowed: forward, redirect, fixed-response"
                ),
            );
            None
        }
    }
}

fn required<'n>(
    fields: &Fields<'n>,
    key: &str,
    node: Option<&'n Node>,
    diagnostics: &mut Diagnostics,
) -> Option<&'n Node> {
    if node.is_none() {
        diagnostics.error(
            &fields.loc(),
            fields.field_path(key),
            format!("this action needs {key}"),
        );
    }
    node
}

/// The action's config `key` (`node`, reported when missing), read by `read`.
fn read_config(
    fields: &Fields<'_>,
    key: &str,
    node: Option<&Node>,
    read: fn(&Node, &Arc<str>, &str, &mut Diagnostics) -> Option<Action>,
    diagnostics: &mut Diagnostics,
) -> Option<Action> {
    let node = required(fields, key, node, diagnostics)?;
    read(node, fields.file(), &fields.field_path(key), diagnostics)
}

fn read_forward(
    template: &Template<'_>,
    fields: &Fields<'_>,
    target_group: Option<&Node>,
    forward: Option<&Node>,
    file: &Arc<str>,
    diagnostics: &mut Diagnostics,
) -> Option<Action> {
    if let Some(node) = target_group {
        let path = fields.field_path("TargetGroupArn");
        let group = group_of(template, node, file, &path, diagnostics)?;
        return Some(Action::Forward {
            groups: vec![WeightedGroup {
                target_group: group,
                weight: 1,
            }],
            stickiness_seconds: None,
        });
    }
    let node = required(
        fields,
        "TargetGroupArn or ForwardConfig",
        forward,
        diagnostics,
    )?;
    let path = fields.field_path("ForwardConfig");
    let mut config = Fields::new(node, file, &path, diagnostics);
    let groups_node = config.get("TargetGroups");
    let stickiness = config.get("TargetGroupStickinessConfig");
    config.finish(diagnostics);
    let groups = match groups_node {
        // Anything but a list holds no groups, which is reported below.
        Some(list) if matches!(list.value, Value::Seq(_)) => {
            let groups_path = format!("{path}.TargetGroups");
            let what = "target groups";
            list_mappings(
                list,
                file,
                &groups_path,
                what,
                diagnostics,
                |group, diagnostics| {
                    let arn = group.get("TargetGroupArn");
                    let weight = group.integer("Weight", 0, 999, diagnostics).unwrap_or(1) as u32;
                    let arn_path = group.field_path("TargetGroupArn");
                    Some(WeightedGroup {
                        target_group: group_of(template, arn?, file, &arn_path, diagnostics)?,
                        weight,
                    })
                },
            )
        }
        _ => Vec::new(),
    };
    if groups.is_empty() {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            format!("{path}.TargetGroups"),
            "a forward needs at least one target group",
        );
        return None;
    }
    let stickiness_seconds = stickiness.and_then(|node| {
        let path = format!("{path}.TargetGroupStickinessConfig");
        let mut config = Fields::new(node, file, path, diagnostics);
        let enabled = config.bool("Enabled", false, diagnostics);
        let written = config.get("DurationSeconds").is_some();
        let seconds = config.whole_seconds("DurationSeconds", 1, 604_800, diagnostics);
        let loc = config.loc();
        let duration_path = config.field_path("DurationSeconds");
        config.finish(diagnostics);
        if enabled && !written {
            diagnostics.error(
                &loc,
                duration_path,
                "group stickiness needs DurationSeconds (1 to 604800)",
            );
        }
        enabled.then_some(seconds? as u32)
    });
    Some(Action::Forward {
        groups,
        stickiness_seconds,
    })
}

/// The logical id of the target group a reference names.
fn group_of(
    template: &Template<'_>,
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<String> {
    let reference = template::reference(node, file, path, diagnostics)?;
    let resource = template.resolve(&reference, Kind::TargetGroup, path, diagnostics)?;
    Some(resource.logical_id.clone())
}

fn read_redirect(
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Action> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let mut part = |key: &'static str, default: &str| {
        fields
            .string(key, diagnostics)
            .unwrap_or_else(|| default.to_string())
    };
    let protocol = part("Protocol", "#{protocol}");
    let host = part("Host", "#{host}");
    let port = part("Port", "#{port}");
    let redirect_path = part("Path", "/#{path}");
    let query = part("Query", "#{query}");
    let status = fields.required_string("StatusCode", diagnostics);
    let loc = fields.loc();
    let status_loc = fields.loc_of("StatusCode");
    fields.finish(diagnostics);
    if !matches!(protocol.as_str(), "HTTP" | "HTTPS" | "#{protocol}") {
        diagnostics.error(
            &loc,
            format!("{path}.Protocol"),
            format!("`{protocol}` is not allowed; Protocol is HTTP, HTTPS or #{{protocol}}"),
        );
    }
    if !redirect_path.starts_with('/') {
        diagnostics.error(
            &loc,
            format!("{path}.Path"),
            format!("`{redirect_path}` is not allowed; a redirect's Path starts with /"),
        );
    }
    let permanent = match status.as_deref()? {
        "HTTP_301" => true,
        "HTTP_302" => false,
        other => {
            diagnostics.error(
                &status_loc,
                format!("{path}.StatusCode"),
                format!("`{other}` is not allowed; StatusCode is HTTP_301 or HTTP_302"),
            );
            return None;
        }
    };
    Some(Action::Redirect(Redirect {
        protocol,
        host,
        port,
        path: redirect_path,
        query,
        permanent,
    }))
}

fn read_fixed(
    node: &Node,
    file: &Arc<str>,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> Option<Action> {
    let mut fields = Fields::new(node, file, path, diagnostics);
    let status = fields.required_string("StatusCode", diagnostics);
    let content_type = fields.string("ContentType", diagnostics);
    let body = fields.string("MessageBody", diagnostics);
    let (status_loc, type_loc, body_loc) = (
        fields.loc_of("StatusCode"),
        fields.loc_of("ContentType"),
        fields.loc_of("MessageBody"),
    );
    fields.finish(diagnostics);
    if let Some(kind) = &content_type {
        if !CONTENT_TYPES.contains(&kind.as_str()) {
            diagnostics.error(
                &type_loc,
                format!("{path}.ContentType"),
                format!(
                    "`{kind}` is not allowed; ContentType is one of {}",
                    CONTENT_TYPES.join(", ")
                ),
            );
        }
    }
    if body.as_ref().is_some_and(|b| b.chars().count() > 1024) {
        diagnostics.error(
            &body_loc,
            format!("{path}.MessageBody"),
            "the message body is longer than 1024 characters, the most a fixed response holds",
        );
    }
    let status_text = status?;
    let status = status_text
        .parse::<u16>()
        .ok()
        .filter(|code| matches!(code / 100, 2 | 4 | 5));
    let Some(status) = status else {
        diagnostics.error(
            &status_loc,
            format!("{path}.StatusCode"),
            format!("`{status_text}` is not allowed; StatusCode is a 2XX, 4XX or 5XX code"),
        );
        return None;
    };
    Some(Action::FixedResponse {
        status,
        content_type,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::aws::template::read_template;
    use crate::config::yaml::parse;

    const GROUPS: &str = "Resources:\n  Blue:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n  Green:\n    Type: AWS::ElasticLoadBalancingV2::TargetGroup\n  Box:\n    Type: AWS::EC2::Instance\n";

    fn action_of(actions: &str) -> (Option<Action>, Vec<String>) {
        let text = format!("{GROUPS}actions: {actions}\n");
        let documents = parse(&text).unwrap();
        let file: Arc<str> = Arc::from("alb.yaml");
        let mut diagnostics = Diagnostics::default();
        // The template reader sees only Resources; `actions` is read here.
        let resources = parse(GROUPS).unwrap();
        let template = read_template(&resources[0], &file, &mut diagnostics);
        let Value::Map(entries) = &documents[0].value else {
            panic!()
        };
        let node = &entries
            .iter()
            .find(|(k, _)| k.as_scalar() == Some("actions"))
            .unwrap()
            .1;
        let action = read_actions(&template, node, &file, "Actions", &mut diagnostics);
        let lines = diagnostics.items.iter().map(ToString::to_string).collect();
        (action, lines)
    }

    #[test]
    fn forwards_read_one_group_or_weighted_groups_with_stickiness() {
        let (action, lines) = action_of("[{Type: forward, TargetGroupArn: !Ref Blue}]");
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(
            action,
            Some(Action::Forward {
                groups: vec![WeightedGroup {
                    target_group: "Blue".into(),
                    weight: 1
                }],
                stickiness_seconds: None
            })
        );
        let (action, lines) = action_of("[{Type: forward, ForwardConfig: {TargetGroups: [{TargetGroupArn: !Ref Blue, Weight: 80}, {TargetGroupArn: !Ref Green, Weight: 20}], TargetGroupStickinessConfig: {Enabled: true, DurationSeconds: 3600}}}]");
        assert!(lines.is_empty(), "{lines:?}");
        let Some(Action::Forward {
            groups,
            stickiness_seconds,
        }) = action
        else {
            panic!("{action:?}")
        };
        assert_eq!(
            groups
                .iter()
                .map(|g| (g.target_group.as_str(), g.weight))
                .collect::<Vec<_>>(),
            [("Blue", 80), ("Green", 20)]
        );
        assert_eq!(stickiness_seconds, Some(3600));
    }

    #[test]
    fn redirects_and_fixed_responses_keep_the_documents_rules() {
        let (action, lines) =
            action_of("[{Type: redirect, RedirectConfig: {Protocol: HTTPS, Port: '443', StatusCode: HTTP_301}}]");
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(
            action,
            Some(Action::Redirect(Redirect {
                protocol: "HTTPS".into(),
                host: "#{host}".into(),
                port: "443".into(),
                path: "/#{path}".into(),
                query: "#{query}".into(),
                permanent: true
            }))
        );
        let (action, lines) = action_of("[{Type: fixed-response, FixedResponseConfig: {StatusCode: '503', ContentType: text/plain, MessageBody: down}}]");
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(
            action,
            Some(Action::FixedResponse {
                status: 503,
                content_type: Some("text/plain".into()),
                body: Some("down".into())
            })
        );
        let (_, lines) = action_of("[{Type: fixed-response, FixedResponseConfig: {StatusCode: '302', ContentType: text/xml}}]");
        assert_eq!(
            lines,
            [
                "error: alb.yaml:8: Actions[0].FixedResponseConfig.ContentType: `text/xml` is not allowed; ContentType is one of text/plain, text/css, text/html, application/javascript, application/json",
                "error: alb.yaml:8: Actions[0].FixedResponseConfig.StatusCode: `302` is not allowed; StatusCode is a 2XX, 4XX or 5XX code",
            ]
        );
    }

    #[test]
    fn what_only_aws_has_and_wrong_references_are_named() {
        let (_, lines) = action_of("[{Type: authenticate-oidc, AuthenticateOidcConfig: {}}, {Type: forward, TargetGroupArn: !Ref Box}]");
        assert_eq!(
            lines,
            [
                "error: alb.yaml:8: Actions[0].Type: authenticate-oidc is not available in a self-hosted control plane (it needs AWS's identity integration); authenticate in the application instead",
                "error: alb.yaml:8: Actions[1].TargetGroupArn: `Box` is an AWS::EC2::Instance, not an AWS::ElasticLoadBalancingV2::TargetGroup",
            ]
        );
    }
}
