//! Node authorization: which client identities (from their certificates) may claim which node
//! ids, and which resources each may receive. The policy travels inside the snapshot, so a
//! config edit changes it atomically with the resources it names.
//!
//! Pure logic: deciding a stream's grant and filtering names. Must not: read certificates
//! (the transport does) or build views (the cache does, with [`Allowed`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use tonic::Status;

use super::cache::{Audience, ViewKey};
use super::limits::for_log;
use crate::xds::types::TypeUrl;

/// A name pattern where `*` stands for any run of characters (none included); every other
/// character matches itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamePattern(String);

impl NamePattern {
    pub fn new(pattern: impl Into<String>) -> Self {
        NamePattern(pattern.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, text: &str) -> bool {
        let mut parts = self.0.split('*');
        let first = parts.next().unwrap_or_default();
        let Some(mut rest) = text.strip_prefix(first) else {
            return false;
        };
        let parts: Vec<&str> = parts.collect();
        let Some((last, middle)) = parts.split_last() else {
            // No `*`: the whole text must be the pattern.
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Whether any of `patterns` matches `text`.
pub fn any_matches(patterns: &[NamePattern], text: &str) -> bool {
    patterns.iter().any(|p| p.matches(text))
}

/// The resources one rule lets its clients receive, by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Allowed {
    pub envoy_listeners: BTreeSet<String>,
    pub envoy_routes: BTreeSet<String>,
    pub proxyless_listeners: BTreeSet<String>,
    pub proxyless_routes: BTreeSet<String>,
    /// Clusters, and the endpoint assignments named after them.
    pub clusters: BTreeSet<String>,
    /// The certificates of the listeners a rule allows.
    pub secrets: BTreeSet<String>,
}

impl Allowed {
    /// Whether a resource called `name`, of the view `type_url`/`key`, may be sent.
    pub fn permits(&self, type_url: TypeUrl, key: &ViewKey, name: &str) -> bool {
        let names = match (type_url, key) {
            (TypeUrl::Cluster | TypeUrl::Endpoint, _) => &self.clusters,
            (TypeUrl::Secret, _) => &self.secrets,
            (TypeUrl::Listener, ViewKey::Audience(Audience::Proxyless)) => {
                &self.proxyless_listeners
            }
            (TypeUrl::Route, ViewKey::Audience(Audience::Proxyless)) => &self.proxyless_routes,
            (TypeUrl::Listener, _) => &self.envoy_listeners,
            (TypeUrl::Route, _) => &self.envoy_routes,
        };
        names.contains(name)
    }
}

/// One rule of the policy: clients whose identity matches `identities` may claim the node ids
/// matching `node_ids` and receive what `allowed` lists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRule {
    pub name: Arc<str>,
    pub identities: Vec<NamePattern>,
    pub node_ids: Vec<NamePattern>,
    pub allowed: Allowed,
}

/// Every rule, sorted by name. No rule at all means no authorization: every client may claim
/// any node id and receives everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    pub rules: Vec<AccessRule>,
}

impl AccessPolicy {
    pub fn new(mut rules: Vec<AccessRule>) -> Self {
        rules.sort_by(|a, b| a.name.cmp(&b.name));
        AccessPolicy { rules }
    }

    pub fn is_open(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn rule(&self, name: &str) -> Option<&AccessRule> {
        self.rules.iter().find(|r| &*r.name == name)
    }

    /// The rule under which a client with `identity` claiming `node_id` is served: None when
    /// the policy is open, the first rule (by name) that matches both otherwise. The error is
    /// the PERMISSION_DENIED status to end the stream with.
    pub fn authorize(
        &self,
        identity: Option<&str>,
        node_id: &str,
    ) -> Result<Option<Arc<str>>, Status> {
        if self.is_open() {
            return Ok(None);
        }
        let Some(identity) = identity else {
            return Err(Status::permission_denied(
                "this server authorizes clients by the identity in their certificate (xdsClients), and this connection presented none",
            ));
        };
        let mut matching = self
            .rules
            .iter()
            .filter(|rule| any_matches(&rule.identities, identity))
            .peekable();
        if matching.peek().is_none() {
            return Err(Status::permission_denied(format!(
                "no xdsClients rule admits the identity `{}`",
                for_log(identity)
            )));
        }
        let mut names = Vec::new();
        for rule in matching {
            if any_matches(&rule.node_ids, node_id) {
                return Ok(Some(rule.name.clone()));
            }
            names.push(&*rule.name);
        }
        Err(Status::permission_denied(format!(
            "the identity `{}` may not claim the node id `{}` (xdsClients rule {} allows other node ids)",
            for_log(identity),
            for_log(node_id),
            names.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars_anywhere() {
        let cases = [
            ("web", "web", true),
            ("web", "web-1", false),
            ("web-*", "web-1", true),
            ("web-*", "web-", true),
            ("web-*", "api-1", false),
            ("*", "", true),
            ("*-edge", "eu-edge", true),
            ("*-edge", "eu-edge-2", false),
            (
                "spiffe://mesh/ns/*/sa/edge",
                "spiffe://mesh/ns/pay/sa/edge",
                true,
            ),
            (
                "spiffe://mesh/ns/*/sa/edge",
                "spiffe://mesh/ns/pay/sa/api",
                false,
            ),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                NamePattern::new(pattern).matches(text),
                expected,
                "{pattern} ~ {text}"
            );
        }
    }

    fn rule(name: &str, identity: &str, node: &str) -> AccessRule {
        AccessRule {
            name: name.into(),
            identities: vec![NamePattern::new(identity)],
            node_ids: vec![NamePattern::new(node)],
            allowed: Allowed::default(),
        }
    }

    #[test]
    fn a_client_is_granted_the_first_rule_matching_identity_and_node_id() {
        let policy = AccessPolicy::new(vec![
            rule("b-edge", "spiffe://t/edge", "edge-*"),
            rule("a-edge-canary", "spiffe://t/edge", "canary-*"),
        ]);
        let grant = |id: Option<&str>, node: &str| policy.authorize(id, node);
        assert_eq!(
            grant(Some("spiffe://t/edge"), "edge-1").unwrap().as_deref(),
            Some("b-edge")
        );
        assert_eq!(
            grant(Some("spiffe://t/edge"), "canary-1")
                .unwrap()
                .as_deref(),
            Some("a-edge-canary")
        );
        let denied = grant(Some("spiffe://t/edge"), "api-1").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied
            .message()
            .contains("may not claim the node id `api-1`"));
        let stranger = grant(Some("spiffe://t/other"), "edge-1").unwrap_err();
        assert!(stranger.message().contains("no xdsClients rule"));
        let anonymous = grant(None, "edge-1").unwrap_err();
        assert!(anonymous.message().contains("presented none"));
        assert_eq!(AccessPolicy::default().authorize(None, "x").unwrap(), None);
    }
}
