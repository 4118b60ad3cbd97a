//! An ALB target group's `TargetGroupAttributes` as AWS defines them (002): every key with its
//! range and default, and the rules of which settings go together, read from CloudFormation's
//! list of `Key` / `Value` pairs into typed settings. Messages speak AWS's words and name the
//! attribute (`Resources.Web.Properties.TargetGroupAttributes[slow_start.duration_seconds]`).
//! Pure. Must not: know the model or xDS (lowering reads the typed settings).

use std::collections::BTreeMap;

use crate::model::diagnostics::suggest;
use crate::model::{Diagnostics, Loc};

/// One `{Key, Value}` item of `TargetGroupAttributes`, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub key: String,
    pub value: String,
    pub loc: Loc,
}

/// Records `attribute` in `seen` under `key` unless the key was written before, which is
/// reported at `path` (AWS takes each key once); true when recorded.
pub(super) fn record_once<'a>(
    seen: &mut BTreeMap<&'a str, &'a Attribute>,
    key: &'a str,
    attribute: &'a Attribute,
    path: &str,
    diagnostics: &mut Diagnostics,
) -> bool {
    if let Some(first) = seen.get(key) {
        diagnostics.error(
            &attribute.loc,
            path,
            format!(
                "the attribute is set twice (first at {}); AWS takes each key once",
                first.loc
            ),
        );
        return false;
    }
    seen.insert(key, attribute);
    true
}

/// `load_balancing.algorithm.type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Algorithm {
    #[default]
    RoundRobin,
    LeastOutstandingRequests,
    WeightedRandom,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::LeastOutstandingRequests => "least_outstanding_requests",
            Algorithm::WeightedRandom => "weighted_random",
        }
    }
}

/// `load_balancing.cross_zone.enabled`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CrossZone {
    Enabled,
    Disabled,
    #[default]
    UseLoadBalancerConfiguration,
}

/// `stickiness.*` when `stickiness.enabled` is true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stickiness {
    /// A cookie the load balancer issues (AWSALB).
    LbCookie { duration_seconds: u32 },
    /// The application's own cookie, which the load balancer follows.
    AppCookie {
        cookie_name: String,
        duration_seconds: u32,
    },
}

/// The typed attributes of one target group, defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetGroupAttributes {
    pub deregistration_delay_seconds: u32,
    pub algorithm: Algorithm,
    pub anomaly_mitigation: bool,
    pub cross_zone: CrossZone,
    /// 0: off.
    pub slow_start_seconds: u32,
    pub stickiness: Option<Stickiness>,
    /// Below this many healthy targets, route to all targets (fail open).
    pub minimum_healthy_count: u32,
    /// Below this percentage of healthy targets, route to all targets; None: off.
    pub minimum_healthy_percentage: Option<u32>,
}

impl Default for TargetGroupAttributes {
    fn default() -> Self {
        TargetGroupAttributes {
            deregistration_delay_seconds: 300,
            algorithm: Algorithm::RoundRobin,
            anomaly_mitigation: false,
            cross_zone: CrossZone::UseLoadBalancerConfiguration,
            slow_start_seconds: 0,
            stickiness: None,
            minimum_healthy_count: 1,
            minimum_healthy_percentage: None,
        }
    }
}

/// Every attribute key of an ALB target group.
pub const KEYS: &[&str] = &[
    "deregistration_delay.timeout_seconds",
    "load_balancing.algorithm.type",
    "load_balancing.algorithm.anomaly_mitigation",
    "load_balancing.cross_zone.enabled",
    "slow_start.duration_seconds",
    "stickiness.enabled",
    "stickiness.type",
    "stickiness.app_cookie.cookie_name",
    "stickiness.app_cookie.duration_seconds",
    "stickiness.lb_cookie.duration_seconds",
    "target_group_health.dns_failover.minimum_healthy_targets.count",
    "target_group_health.dns_failover.minimum_healthy_targets.percentage",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
    "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
    "lambda.multi_value_headers.enabled",
];

/// Cookie name prefixes the load balancer keeps for itself.
const RESERVED_COOKIE_PREFIXES: [&str; 3] = ["AWSALB", "AWSALBAPP", "AWSALBTG"];

/// The symbols an HTTP token (a cookie's name) may hold besides letters and digits.
const TOKEN_SYMBOLS: &str = "!#$%&'*+-.^_`|~";

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || TOKEN_SYMBOLS.contains(c)
}

/// The longest cookie duration: 7 days.
const MAX_COOKIE_SECONDS: u64 = 604_800;

/// Reads `attributes` of the target group at `base` (`Resources.NAME.Properties`).
pub fn read(
    attributes: &[Attribute],
    base: &str,
    diagnostics: &mut Diagnostics,
) -> TargetGroupAttributes {
    let written = by_key(attributes, base, diagnostics);
    let mut reader = Reader {
        written: &written,
        base,
        diagnostics,
    };
    let mut settings = TargetGroupAttributes {
        deregistration_delay_seconds: reader
            .integer("deregistration_delay.timeout_seconds", 0, 3600)
            .unwrap_or(300),
        algorithm: reader
            .choice(
                "load_balancing.algorithm.type",
                &[
                    ("round_robin", Algorithm::RoundRobin),
                    (
                        "least_outstanding_requests",
                        Algorithm::LeastOutstandingRequests,
                    ),
                    ("weighted_random", Algorithm::WeightedRandom),
                ],
            )
            .unwrap_or_default(),
        cross_zone: reader
            .choice(
                "load_balancing.cross_zone.enabled",
                &[
                    ("true", CrossZone::Enabled),
                    ("false", CrossZone::Disabled),
                    (
                        "use_load_balancer_configuration",
                        CrossZone::UseLoadBalancerConfiguration,
                    ),
                ],
            )
            .unwrap_or_default(),
        minimum_healthy_count: reader
            .integer(
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
                1,
                u64::from(u32::MAX),
            )
            .unwrap_or(1),
        minimum_healthy_percentage: reader.off_or_integer(
            "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
            100,
        ),
        ..Default::default()
    };
    settings.anomaly_mitigation = reader.anomaly_mitigation(settings.algorithm);
    settings.slow_start_seconds = reader.slow_start(settings.algorithm);
    settings.stickiness = reader.stickiness();
    reader.not_applicable();
    settings
}

/// The written attributes by key, each once; unknown and repeated keys are reported.
fn by_key<'a>(
    attributes: &'a [Attribute],
    base: &str,
    diagnostics: &mut Diagnostics,
) -> BTreeMap<&'a str, &'a Attribute> {
    let mut written: BTreeMap<&str, &Attribute> = BTreeMap::new();
    for attribute in attributes {
        let path = format!("{base}.TargetGroupAttributes[{}]", attribute.key);
        if !KEYS.contains(&attribute.key.as_str()) {
            let hint = match suggest(&attribute.key, KEYS) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!(
                    "the attributes of an ALB target group are {}",
                    KEYS.join(", ")
                ),
            };
            diagnostics.error(
                &attribute.loc,
                path,
                format!(
                    "`{}` is not a target group attribute; {hint}",
                    attribute.key
                ),
            );
            continue;
        }
        record_once(&mut written, &attribute.key, attribute, &path, diagnostics);
    }
    written
}

struct Reader<'r, 'a> {
    written: &'r BTreeMap<&'a str, &'a Attribute>,
    base: &'r str,
    diagnostics: &'r mut Diagnostics,
}

impl Reader<'_, '_> {
    fn get(&self, key: &str) -> Option<&Attribute> {
        self.written.get(key).copied()
    }

    fn path(&self, key: &str) -> String {
        format!("{}.TargetGroupAttributes[{key}]", self.base)
    }

    fn error(&mut self, key: &str, message: String) {
        if let Some(attribute) = self.get(key) {
            let loc = attribute.loc.clone();
            let path = self.path(key);
            self.diagnostics.error(&loc, path, message);
        }
    }

    fn warning(&mut self, key: &str, message: String) {
        if let Some(attribute) = self.get(key) {
            let loc = attribute.loc.clone();
            let path = self.path(key);
            self.diagnostics.warning(&loc, path, message);
        }
    }

    /// An integer from `min` to `max`.
    fn integer(&mut self, key: &str, min: u64, max: u64) -> Option<u32> {
        let value = self.get(key)?.value.clone();
        match value.trim().parse::<u64>() {
            Ok(number) if (min..=max).contains(&number) => Some(number as u32),
            _ => {
                let allowed = if max == u64::from(u32::MAX) {
                    format!("an integer, {min} or more")
                } else {
                    format!("an integer from {min} to {max}")
                };
                self.error(key, format!("`{value}` is not allowed; {key} is {allowed}"));
                None
            }
        }
    }

    /// `off`, or an integer from 1 to `max`.
    fn off_or_integer(&mut self, key: &str, max: u64) -> Option<u32> {
        let value = self.get(key)?.value.clone();
        if value.trim() == "off" {
            return None;
        }
        match value.trim().parse::<u64>() {
            Ok(number) if (1..=max).contains(&number) => Some(number as u32),
            _ => {
                self.error(
                    key,
                    format!("`{value}` is not allowed; {key} is off or an integer from 1 to {max}"),
                );
                None
            }
        }
    }

    fn choice<T: Copy>(&mut self, key: &str, choices: &[(&str, T)]) -> Option<T> {
        let value = self.get(key)?.value.clone();
        if let Some((_, found)) = choices.iter().find(|(name, _)| *name == value.trim()) {
            return Some(*found);
        }
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        self.error(
            key,
            format!(
                "`{value}` is not allowed; {key} is one of {}",
                names.join(", ")
            ),
        );
        None
    }

    fn boolean(&mut self, key: &str) -> Option<bool> {
        self.choice(key, &[("true", true), ("false", false)])
    }

    /// Off unless written `on` (002: the API's default is off; the console switching it on
    /// when weighted_random is first picked is the console's doing); only weighted_random
    /// has it.
    fn anomaly_mitigation(&mut self, algorithm: Algorithm) -> bool {
        const KEY: &str = "load_balancing.algorithm.anomaly_mitigation";
        let written = self.choice(KEY, &[("on", true), ("off", false)]);
        if algorithm != Algorithm::WeightedRandom {
            if written.is_some() {
                self.error(
                    KEY,
                    format!(
                        "anomaly mitigation is only available with load_balancing.algorithm.type weighted_random, not {}",
                        algorithm.as_str()
                    ),
                );
            }
            return false;
        }
        written.unwrap_or(false)
    }

    /// 0 (off) or 30–900, and not with least_outstanding_requests or weighted_random.
    fn slow_start(&mut self, algorithm: Algorithm) -> u32 {
        const KEY: &str = "slow_start.duration_seconds";
        let Some(value) = self.get(KEY).map(|a| a.value.clone()) else {
            return 0;
        };
        let seconds = match value.trim().parse::<u32>() {
            Ok(0) => return 0,
            Ok(seconds) if (30..=900).contains(&seconds) => seconds,
            _ => {
                self.error(
                    KEY,
                    format!("`{value}` is not allowed; {KEY} is 0 (off) or from 30 to 900 seconds"),
                );
                return 0;
            }
        };
        if algorithm != Algorithm::RoundRobin {
            self.error(
                KEY,
                format!(
                    "slow start cannot be used with load_balancing.algorithm.type {}; use round_robin or set it to 0",
                    algorithm.as_str()
                ),
            );
            return 0;
        }
        seconds
    }

    fn stickiness(&mut self) -> Option<Stickiness> {
        let enabled = self.boolean("stickiness.enabled").unwrap_or(false);
        let kind = self.choice(
            "stickiness.type",
            &[("lb_cookie", false), ("app_cookie", true)],
        );
        let cookie_name = self.cookie_name();
        let lb_seconds = self.cookie_seconds("stickiness.lb_cookie.duration_seconds");
        let app_seconds = self.cookie_seconds("stickiness.app_cookie.duration_seconds");
        if !enabled {
            return None;
        }
        if kind != Some(true) {
            return Some(Stickiness::LbCookie {
                duration_seconds: lb_seconds,
            });
        }
        let Some(cookie_name) = cookie_name else {
            if self.get("stickiness.app_cookie.cookie_name").is_some() {
                // Its own error is reported already.
                return None;
            }
            self.error(
                "stickiness.type",
                "app_cookie stickiness needs stickiness.app_cookie.cookie_name, the cookie your application sets".to_string(),
            );
            return None;
        };
        Some(Stickiness::AppCookie {
            cookie_name,
            duration_seconds: app_seconds,
        })
    }

    fn cookie_seconds(&mut self, key: &str) -> u32 {
        self.integer(key, 1, MAX_COOKIE_SECONDS).unwrap_or(86_400)
    }

    /// The application's cookie name, which must not use a prefix the load balancer keeps.
    fn cookie_name(&mut self) -> Option<String> {
        const KEY: &str = "stickiness.app_cookie.cookie_name";
        let name = self.get(KEY)?.value.trim().to_string();
        // The longest prefix that matches, to name it as the document does.
        let reserved = RESERVED_COOKIE_PREFIXES
            .iter()
            .filter(|prefix| name.to_ascii_uppercase().starts_with(*prefix))
            .max_by_key(|prefix| prefix.len());
        if let Some(prefix) = reserved {
            self.error(
                KEY,
                format!(
                    "`{name}` starts with {prefix}; cookie names starting with AWSALB, AWSALBAPP or AWSALBTG are kept for the load balancer"
                ),
            );
            return None;
        }
        if name.is_empty() {
            self.error(KEY, "the cookie name is empty".to_string());
            return None;
        }
        if !name.chars().all(is_token_char) {
            self.error(
                KEY,
                format!("`{name}` is not a cookie name; a cookie name is letters, digits and {TOKEN_SYMBOLS}"),
            );
            return None;
        }
        Some(name)
    }

    /// Attributes that mean nothing to a self-hosted proxy, or that Switchyard cannot serve.
    fn not_applicable(&mut self) {
        const COUNT: &str = "target_group_health.dns_failover.minimum_healthy_targets.count";
        const PERCENTAGE: &str =
            "target_group_health.dns_failover.minimum_healthy_targets.percentage";
        let count = self.get(COUNT).map(|a| a.value.trim().to_string());
        if count.as_deref().is_some_and(|v| v != "off") {
            self.integer(COUNT, 1, u64::from(u32::MAX));
        }
        self.off_or_integer(PERCENTAGE, 100);
        for key in [COUNT, PERCENTAGE] {
            self.warning(
                key,
                "DNS failover is not applicable to a self-hosted proxy: Switchyard publishes no DNS records (unhealthy_state_routing is served)".to_string(),
            );
        }
        self.error(
            "lambda.multi_value_headers.enabled",
            "lambda targets are not served by a self-hosted control plane; this attribute applies only to them".to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "Resources.Web.Properties";

    fn read_all(pairs: &[(&str, &str)]) -> (TargetGroupAttributes, Vec<String>) {
        let attributes: Vec<Attribute> = pairs
            .iter()
            .enumerate()
            .map(|(index, (key, value))| Attribute {
                key: key.to_string(),
                value: value.to_string(),
                loc: Loc::new("alb.yaml", 10 + index),
            })
            .collect();
        let mut diagnostics = Diagnostics::default();
        let settings = read(&attributes, BASE, &mut diagnostics);
        let lines = diagnostics.items.iter().map(ToString::to_string).collect();
        (settings, lines)
    }

    #[test]
    fn defaults_are_awss() {
        let (settings, lines) = read_all(&[]);
        assert!(lines.is_empty());
        assert_eq!(settings, TargetGroupAttributes::default());
        assert_eq!(settings.deregistration_delay_seconds, 300);
        assert_eq!(settings.minimum_healthy_count, 1);
    }

    #[test]
    fn ranges_are_checked_with_the_key_in_the_path() {
        let (_, lines) = read_all(&[
            ("deregistration_delay.timeout_seconds", "3601"),
            ("slow_start.duration_seconds", "20"),
            ("stickiness.lb_cookie.duration_seconds", "604801"),
            (
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.count",
                "0",
            ),
            (
                "target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage",
                "101",
            ),
        ]);
        assert_eq!(
            lines,
            [
                "error: alb.yaml:10: Resources.Web.Properties.TargetGroupAttributes[deregistration_delay.timeout_seconds]: `3601` is not allowed; deregistration_delay.timeout_seconds is an integer from 0 to 3600",
                "error: alb.yaml:13: Resources.Web.Properties.TargetGroupAttributes[target_group_health.unhealthy_state_routing.minimum_healthy_targets.count]: `0` is not allowed; target_group_health.unhealthy_state_routing.minimum_healthy_targets.count is an integer, 1 or more",
                "error: alb.yaml:14: Resources.Web.Properties.TargetGroupAttributes[target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage]: `101` is not allowed; target_group_health.unhealthy_state_routing.minimum_healthy_targets.percentage is off or an integer from 1 to 100",
                "error: alb.yaml:11: Resources.Web.Properties.TargetGroupAttributes[slow_start.duration_seconds]: `20` is not allowed; slow_start.duration_seconds is 0 (off) or from 30 to 900 seconds",
                "error: alb.yaml:12: Resources.Web.Properties.TargetGroupAttributes[stickiness.lb_cookie.duration_seconds]: `604801` is not allowed; stickiness.lb_cookie.duration_seconds is an integer from 1 to 604800",
            ]
        );
    }

    #[test]
    fn combinations_follow_the_document() {
        let (_, lines) = read_all(&[
            (
                "load_balancing.algorithm.type",
                "least_outstanding_requests",
            ),
            ("slow_start.duration_seconds", "60"),
            ("load_balancing.algorithm.anomaly_mitigation", "on"),
        ]);
        assert_eq!(
            lines,
            [
                "error: alb.yaml:12: Resources.Web.Properties.TargetGroupAttributes[load_balancing.algorithm.anomaly_mitigation]: anomaly mitigation is only available with load_balancing.algorithm.type weighted_random, not least_outstanding_requests",
                "error: alb.yaml:11: Resources.Web.Properties.TargetGroupAttributes[slow_start.duration_seconds]: slow start cannot be used with load_balancing.algorithm.type least_outstanding_requests; use round_robin or set it to 0",
            ]
        );
        // weighted_random alone leaves anomaly mitigation off; `on` turns it on.
        let (settings, lines) = read_all(&[("load_balancing.algorithm.type", "weighted_random")]);
        assert!(lines.is_empty());
        assert!(!settings.anomaly_mitigation);
        let (settings, _) = read_all(&[
            ("load_balancing.algorithm.type", "weighted_random"),
            ("load_balancing.algorithm.anomaly_mitigation", "on"),
        ]);
        assert!(settings.anomaly_mitigation);
        let (settings, lines) = read_all(&[("slow_start.duration_seconds", "120")]);
        assert!(lines.is_empty());
        assert_eq!(settings.slow_start_seconds, 120);
    }

    #[test]
    fn stickiness_takes_its_type_cookie_and_duration() {
        let (settings, lines) = read_all(&[("stickiness.enabled", "true")]);
        assert!(lines.is_empty());
        assert_eq!(
            settings.stickiness,
            Some(Stickiness::LbCookie {
                duration_seconds: 86_400
            })
        );
        let (settings, _) = read_all(&[
            ("stickiness.enabled", "true"),
            ("stickiness.type", "app_cookie"),
            ("stickiness.app_cookie.cookie_name", "session"),
            ("stickiness.app_cookie.duration_seconds", "3600"),
        ]);
        assert_eq!(
            settings.stickiness,
            Some(Stickiness::AppCookie {
                cookie_name: "session".into(),
                duration_seconds: 3600
            })
        );
        let (_, lines) = read_all(&[
            ("stickiness.enabled", "true"),
            ("stickiness.type", "app_cookie"),
            ("stickiness.app_cookie.cookie_name", "AWSALBTGsession"),
        ]);
        assert_eq!(
            lines,
            ["error: alb.yaml:12: Resources.Web.Properties.TargetGroupAttributes[stickiness.app_cookie.cookie_name]: `AWSALBTGsession` starts with AWSALBTG; cookie names starting with AWSALB, AWSALBAPP or AWSALBTG are kept for the load balancer"]
        );
        let (_, lines) = read_all(&[
            ("stickiness.enabled", "true"),
            ("stickiness.type", "app_cookie"),
            ("stickiness.app_cookie.cookie_name", "my session"),
        ]);
        assert_eq!(
            lines,
            ["error: alb.yaml:12: Resources.Web.Properties.TargetGroupAttributes[stickiness.app_cookie.cookie_name]: `my session` is not a cookie name; a cookie name is letters, digits and !#$%&'*+-.^_`|~"]
        );
        let (_, lines) = read_all(&[
            ("stickiness.enabled", "true"),
            ("stickiness.type", "app_cookie"),
        ]);
        assert_eq!(
            lines,
            ["error: alb.yaml:11: Resources.Web.Properties.TargetGroupAttributes[stickiness.type]: app_cookie stickiness needs stickiness.app_cookie.cookie_name, the cookie your application sets"]
        );
        // Settings of a disabled stickiness are checked but inert.
        let (settings, lines) = read_all(&[("stickiness.type", "app_cookie")]);
        assert!(lines.is_empty());
        assert_eq!(settings.stickiness, None);
    }

    #[test]
    fn unknown_repeated_and_unservable_keys_are_named() {
        let (_, lines) = read_all(&[
            ("slow_start.duration_second", "60"),
            ("stickiness.enabled", "true"),
            ("stickiness.enabled", "false"),
            ("lambda.multi_value_headers.enabled", "true"),
            (
                "target_group_health.dns_failover.minimum_healthy_targets.count",
                "2",
            ),
        ]);
        assert_eq!(
            lines,
            [
                "error: alb.yaml:10: Resources.Web.Properties.TargetGroupAttributes[slow_start.duration_second]: `slow_start.duration_second` is not a target group attribute; did you mean `slow_start.duration_seconds`?",
                "error: alb.yaml:12: Resources.Web.Properties.TargetGroupAttributes[stickiness.enabled]: the attribute is set twice (first at alb.yaml:11); AWS takes each key once",
                "warning: alb.yaml:14: Resources.Web.Properties.TargetGroupAttributes[target_group_health.dns_failover.minimum_healthy_targets.count]: DNS failover is not applicable to a self-hosted proxy: Switchyard publishes no DNS records (unhealthy_state_routing is served)",
                "error: alb.yaml:13: Resources.Web.Properties.TargetGroupAttributes[lambda.multi_value_headers.enabled]: lambda targets are not served by a self-hosted control plane; this attribute applies only to them",
            ]
        );
    }
}
