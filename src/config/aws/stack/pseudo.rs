//! CloudFormation's pseudo parameters as a self-hosted control plane can answer them:
//! `AWS::Region` (from `--aws-region`, else the region of the first target's zone),
//! `AWS::StackName` (from `--stack-name`, else the file's stem), `AWS::Partition` and
//! `AWS::URLSuffix` (from the region), `AWS::AccountId` (a fixed placeholder, noted),
//! `AWS::StackId` (an ARN built from those), `AWS::NotificationARNs` (no topics) and
//! `AWS::NoValue` (handled by the evaluator: it removes its place). Records which were used,
//! and where each value came from. Must not: ask AWS anything.

/// The account id a template sees: AWS's documented example, since there is no account.
pub const ACCOUNT_ID: &str = "123456789012";

/// The unique part of a stack id that AWS would assign: fixed, so loads are reproducible.
const STACK_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// The pseudo parameters, by name.
pub const NAMES: &[&str] = &[
    "AWS::AccountId",
    "AWS::NotificationARNs",
    "AWS::NoValue",
    "AWS::Partition",
    "AWS::Region",
    "AWS::StackId",
    "AWS::StackName",
    "AWS::URLSuffix",
];

/// A pseudo parameter's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PseudoValue {
    Text(String),
    /// `AWS::NotificationARNs`: a list.
    List(Vec<String>),
}

/// The values a template's pseudo parameters take, and which of them it used.
#[derive(Debug)]
pub struct Pseudo {
    /// The region and where it came from (`--aws-region`, `the first target's zone`).
    region: Option<(String, String)>,
    /// The stack name and where it came from (`--stack-name`, `the file's stem`).
    stack_name: (String, String),
    /// Names used, in the order first used, with the value and its source.
    pub used: Vec<(&'static str, PseudoValue, String)>,
}

impl Pseudo {
    /// The pseudo parameters of the template in `file`, given the `--aws-region` and
    /// `--stack-name` values and the zone of its first target.
    pub fn new(
        region: Option<&str>,
        stack_name: Option<&str>,
        file: &str,
        first_zone: Option<&str>,
    ) -> Pseudo {
        let region = match (region, first_zone) {
            (Some(region), _) => Some((region.to_string(), "--aws-region".to_string())),
            (None, Some(zone)) => Some((
                region_of_zone(zone).to_string(),
                "the first target's zone".to_string(),
            )),
            (None, None) => None,
        };
        let stack_name = match stack_name {
            Some(name) => (name.to_string(), "--stack-name".to_string()),
            None => (stem(file).to_string(), "the file's stem".to_string()),
        };
        Pseudo {
            region,
            stack_name,
            used: Vec::new(),
        }
    }

    /// The value of pseudo parameter `name` and where it came from; or why it has none.
    /// `AWS::NoValue` is not asked here.
    pub fn value(&mut self, name: &str) -> Result<(PseudoValue, String), String> {
        let (known, value, source) = self.answer(name)?;
        if !self.used.iter().any(|(used, _, _)| *used == known) {
            self.used.push((known, value.clone(), source.clone()));
        }
        Ok((value, source))
    }

    fn answer(&self, name: &str) -> Result<(&'static str, PseudoValue, String), String> {
        let text = |s: &str| PseudoValue::Text(s.to_string());
        let no_region = || {
            format!("{name} has no value: give the region with --aws-region REGION (no target of the template names an AvailabilityZone to take it from)")
        };
        let need_region = || {
            self.region
                .as_ref()
                .map(|(region, _)| region.as_str())
                .ok_or_else(no_region)
        };
        let derived = "derived from AWS::Region".to_string();
        Ok(match name {
            "AWS::Region" => {
                let (region, source) = self.region.as_ref().ok_or_else(no_region)?;
                ("AWS::Region", text(region), source.clone())
            }
            "AWS::StackName" => (
                "AWS::StackName",
                text(&self.stack_name.0),
                self.stack_name.1.clone(),
            ),
            "AWS::AccountId" => ("AWS::AccountId", text(ACCOUNT_ID), "fixed".to_string()),
            "AWS::Partition" => ("AWS::Partition", text(partition(need_region()?)), derived),
            "AWS::URLSuffix" => ("AWS::URLSuffix", text(url_suffix(need_region()?)), derived),
            "AWS::StackId" => {
                let region = need_region()?;
                (
                    "AWS::StackId",
                    PseudoValue::Text(format!(
                        "arn:{}:cloudformation:{region}:{ACCOUNT_ID}:stack/{}/{STACK_UUID}",
                        partition(region),
                        self.stack_name.0
                    )),
                    "derived from AWS::Region and AWS::StackName".to_string(),
                )
            }
            "AWS::NotificationARNs" => (
                "AWS::NotificationARNs",
                PseudoValue::List(Vec::new()),
                "fixed".to_string(),
            ),
            other => {
                return Err(format!(
                    "`{other}` is no pseudo parameter; the pseudo parameters are {}",
                    NAMES.join(", ")
                ))
            }
        })
    }
}

/// `us-east-1a` → `us-east-1` (a Local Zone `us-west-2-lax-1a` → `us-west-2-lax-1` is not
/// told apart: it is taken as written, less its letter).
pub fn region_of_zone(zone: &str) -> &str {
    zone.trim_end_matches(|c: char| c.is_ascii_lowercase())
}

/// The partition of a region: `aws-cn` in China, `aws-us-gov` in GovCloud, else `aws`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The domain suffix of a region: `amazonaws.com.cn` in China, else `amazonaws.com`.
pub fn url_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

/// `configs/web-alb.yaml` → `web-alb`.
fn stem(file: &str) -> &str {
    let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
    name.rsplit_once('.').map_or(name, |(stem, _)| stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: &str) -> PseudoValue {
        PseudoValue::Text(value.to_string())
    }

    /// Each pseudo parameter against the value CloudFormation documents for the same stack.
    #[test]
    fn every_pseudo_parameter_answers_as_cloudformation_does() {
        let mut pseudo = Pseudo::new(Some("us-west-2"), Some("teststack"), "alb.yaml", None);
        let table: &[(&str, PseudoValue, &str)] = &[
            ("AWS::Region", text("us-west-2"), "--aws-region"),
            ("AWS::StackName", text("teststack"), "--stack-name"),
            ("AWS::AccountId", text("123456789012"), "fixed"),
            ("AWS::Partition", text("aws"), "derived from AWS::Region"),
            ("AWS::URLSuffix", text("amazonaws.com"), "derived from AWS::Region"),
            (
                "AWS::StackId",
                text("arn:aws:cloudformation:us-west-2:123456789012:stack/teststack/00000000-0000-0000-0000-000000000000"),
                "derived from AWS::Region and AWS::StackName",
            ),
            ("AWS::NotificationARNs", PseudoValue::List(vec![]), "fixed"),
        ];
        for (name, value, source) in table {
            assert_eq!(
                pseudo.value(name),
                Ok((value.clone(), source.to_string())),
                "{name}"
            );
        }
        assert_eq!(pseudo.used.len(), table.len());
        assert_eq!(
            pseudo.value("AWS::Regoin"),
            Err("`AWS::Regoin` is no pseudo parameter; the pseudo parameters are AWS::AccountId, AWS::NotificationARNs, AWS::NoValue, AWS::Partition, AWS::Region, AWS::StackId, AWS::StackName, AWS::URLSuffix".to_string())
        );
    }

    #[test]
    fn partitions_and_suffixes_follow_the_region() {
        for (region, partition_name, suffix) in [
            ("cn-north-1", "aws-cn", "amazonaws.com.cn"),
            ("cn-northwest-1", "aws-cn", "amazonaws.com.cn"),
            ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
            ("eu-west-1", "aws", "amazonaws.com"),
        ] {
            let mut pseudo = Pseudo::new(Some(region), None, "a.yaml", None);
            assert_eq!(
                pseudo.value("AWS::Partition").unwrap().0,
                text(partition_name)
            );
            assert_eq!(pseudo.value("AWS::URLSuffix").unwrap().0, text(suffix));
        }
    }

    #[test]
    fn the_region_and_stack_name_fall_back_to_the_zone_and_the_stem() {
        let mut pseudo = Pseudo::new(None, None, "configs/web-alb.yaml", Some("eu-central-1b"));
        assert_eq!(
            pseudo.value("AWS::Region"),
            Ok((text("eu-central-1"), "the first target's zone".to_string()))
        );
        assert_eq!(
            pseudo.value("AWS::StackName"),
            Ok((text("web-alb"), "the file's stem".to_string()))
        );
        let mut nowhere = Pseudo::new(None, None, "a.yaml", None);
        assert_eq!(
            nowhere.value("AWS::URLSuffix"),
            Err("AWS::URLSuffix has no value: give the region with --aws-region REGION (no target of the template names an AvailabilityZone to take it from)".to_string())
        );
        assert!(nowhere.used.is_empty());
    }
}
