//! The route policies Envoy's router applies beside forwarding: request mirroring (a shadow
//! cluster and the share of requests it gets), the whole stream's deadline
//! (`max_stream_duration`), the URI-template rewrite of the path, and a redirect's regex
//! rewrite. Conversion only; the data plane applies them (proxy/mirror.rs,
//! proxy/stream_deadline.rs, proxy/rewrite.rs).

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::TypedExtensionConfig;
use envoy_types::pb::envoy::config::route::v3::route_action::{
    MaxStreamDuration, RequestMirrorPolicy,
};
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use regex::Regex;

use super::super::{Fault, Problem};
use super::duration;
use super::matchers::PathMatch;
use super::templates::TemplateRewrite;

/// A shadow cluster and the share of requests (in millionths) copied to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    pub cluster: String,
    pub per_million: u32,
}

/// A pattern and what replaces each of its matches (in the regex crate's syntax: `${1}`).
#[derive(Clone, Debug)]
pub struct RegexRewrite {
    pub pattern: Regex,
    pub replacement: String,
}

impl RegexRewrite {
    /// `text` with every match replaced, as RE2's GlobalReplace does.
    pub fn apply(&self, text: &str) -> String {
        self.pattern
            .replace_all(text, self.replacement.as_str())
            .into_owned()
    }
}

/// The fields of these policies the sidecar applies, under a route (`virtual_hosts.routes`).
pub fn policy_fields(route: &str) -> Vec<String> {
    [
        "route.max_stream_duration.max_stream_duration",
        "route.request_mirror_policies.cluster",
        "route.request_mirror_policies.runtime_fraction.default_value.numerator",
        "route.request_mirror_policies.runtime_fraction.default_value.denominator",
        // Checked by its converter (the URI template rewriter, by its type).
        "route.path_rewrite_policy",
        "redirect.regex_rewrite.pattern.regex",
        "redirect.regex_rewrite.pattern.google_re2",
        "redirect.regex_rewrite.substitution",
    ]
    .iter()
    .map(|field| format!("{route}.{field}"))
    .collect()
}

/// The mirror policies of a route action.
pub fn mirrors(policies: &[RequestMirrorPolicy]) -> Result<Vec<Mirror>, Fault> {
    policies
        .iter()
        .enumerate()
        .map(|(i, policy)| {
            mirror(policy).map_err(|p| Fault::at(format!("route.request_mirror_policies[{i}]"), p))
        })
        .collect()
}

fn mirror(policy: &RequestMirrorPolicy) -> Result<Mirror, Problem> {
    if policy.cluster.is_empty() {
        return Err(Problem::Missing { what: "a cluster" });
    }
    // Without a fraction every request is mirrored.
    let per_million = match policy
        .runtime_fraction
        .as_ref()
        .and_then(|f| f.default_value.as_ref())
    {
        None => 1_000_000,
        Some(percent) => {
            let scale = match DenominatorType::try_from(percent.denominator) {
                Ok(DenominatorType::Hundred) => 10_000,
                Ok(DenominatorType::TenThousand) => 100,
                Ok(DenominatorType::Million) => 1,
                Err(_) => {
                    return Err(Problem::Denominator {
                        value: percent.denominator,
                    })
                }
            };
            percent.numerator.saturating_mul(scale).min(1_000_000)
        }
    };
    Ok(Mirror {
        cluster: policy.cluster.clone(),
        per_million,
    })
}

/// The stream's deadline; Some(zero) (no deadline) still turns the route's timeout off, as
/// Envoy's router then leaves the whole stream to this setting.
pub fn max_stream_duration(limit: Option<&MaxStreamDuration>) -> Option<Duration> {
    let limit = limit?;
    Some(
        limit
            .max_stream_duration
            .as_ref()
            .map(duration)
            .unwrap_or_default(),
    )
}

/// The extension that rewrites paths with a URI template, and the type of its config.
const URI_TEMPLATE_REWRITER: &str =
    "type.googleapis.com/envoy.extensions.path.rewrite.uri_template.v3.UriTemplateRewriteConfig";

/// A `path_rewrite_policy`: Envoy's URI template rewriter, which needs the route to match with
/// a URI template (its variables are the rewrite's).
pub fn template_rewrite(
    policy: Option<&TypedExtensionConfig>,
    path: &PathMatch,
) -> Result<Option<TemplateRewrite>, Fault> {
    use envoy_types::pb::envoy::extensions::path::rewrite::uri_template::v3::UriTemplateRewriteConfig;
    use prost::Message;
    let Some(policy) = policy else {
        return Ok(None);
    };
    let at = |p| Fault::at("route.path_rewrite_policy", p);
    let config = policy
        .typed_config
        .as_ref()
        .ok_or(Problem::NoTypedConfig)
        .map_err(at)?;
    if config.type_url != URI_TEMPLATE_REWRITER {
        return Err(at(Problem::NotValid {
            value: config.type_url.clone(),
            expected: "envoy.extensions.path.rewrite.uri_template.v3.UriTemplateRewriteConfig",
        }));
    }
    let rewrite = UriTemplateRewriteConfig::decode(config.value.as_slice())
        .map_err(|e| at(Problem::Undecodable(e)))?;
    let PathMatch::Template(matched) = path else {
        return Err(at(Problem::Missing {
            what: "a match.path_match_policy (a URI template rewrite needs its variables)",
        }));
    };
    TemplateRewrite::parse(&rewrite.path_template_rewrite, matched)
        .map(Some)
        .map_err(at)
}

/// A redirect's regex rewrite, its substitution turned from RE2's syntax (`\1`, `\\`) into
/// the regex crate's (`${1}`, `$$` for a dollar).
pub fn regex_rewrite(rewrite: &RegexMatchAndSubstitute) -> Result<RegexRewrite, Fault> {
    let at = |p| Fault::at("redirect.regex_rewrite", p);
    let pattern = rewrite
        .pattern
        .as_ref()
        .ok_or(Problem::Missing { what: "a pattern" })
        .map_err(at)?;
    let compiled = Regex::new(&pattern.regex).map_err(|error| {
        at(Problem::Regex {
            pattern: pattern.regex.clone(),
            error,
        })
    })?;
    let replacement = re2_substitution(&rewrite.substitution).ok_or_else(|| {
        at(Problem::NotValid {
            value: rewrite.substitution.clone(),
            expected: "an RE2 substitution (`\\1` to `\\9` for groups, `\\\\` for a backslash)",
        })
    })?;
    Ok(RegexRewrite {
        pattern: compiled,
        replacement,
    })
}

/// An RE2 substitution in the regex crate's syntax; None for a backslash RE2 refuses.
fn re2_substitution(substitution: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = substitution.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                '\\' => out.push('\\'),
                digit @ '0'..='9' => out.push_str(&format!("${{{digit}}}")),
                _ => return None,
            },
            '$' => out.push_str("$$"),
            other => out.push(other),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::RuntimeFractionalPercent;
    use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;

    #[test]
    fn a_mirrors_share_is_read_in_millionths() {
        let policy = |fraction: Option<(u32, DenominatorType)>| RequestMirrorPolicy {
            cluster: "shadow".into(),
            runtime_fraction: fraction.map(|(numerator, denominator)| RuntimeFractionalPercent {
                default_value: Some(FractionalPercent {
                    numerator,
                    denominator: denominator as i32,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let share = |p| mirrors(&[p]).unwrap()[0].per_million;
        assert_eq!(share(policy(None)), 1_000_000);
        assert_eq!(share(policy(Some((25, DenominatorType::Hundred)))), 250_000);
        assert_eq!(share(policy(Some((5, DenominatorType::TenThousand)))), 500);
        assert_eq!(
            share(policy(Some((300_000, DenominatorType::Million)))),
            300_000
        );
        assert_eq!(
            share(policy(Some((200, DenominatorType::Hundred)))),
            1_000_000
        );
    }

    #[test]
    fn a_redirects_regex_rewrite_takes_re2_substitutions() {
        let rewrite = |pattern: &str, substitution: &str| {
            regex_rewrite(&RegexMatchAndSubstitute {
                pattern: Some(RegexMatcher {
                    regex: pattern.into(),
                    ..Default::default()
                }),
                substitution: substitution.into(),
            })
        };
        let kept = rewrite("/(.*)", "/new/\\1").unwrap();
        assert_eq!(kept.apply("/a/b"), "/new/a/b");
        let dollars = rewrite("o", "$\\0\\\\").unwrap();
        assert_eq!(dollars.apply("foo"), "f$o\\$o\\");
        assert!(rewrite("/(.*)", "\\x").is_err());
    }
}
