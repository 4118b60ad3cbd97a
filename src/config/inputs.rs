//! What a config takes from outside its files: template parameter overrides (from
//! `--parameter`, `--parameters-file`), the region and the stack name a template is evaluated
//! in. Given once per command and used by every load, reloads included. Parsing the two
//! parameter-file forms the AWS CLI takes lives here too. Must not: know a dialect's
//! resources, the model or xDS.

/// Values from outside the config files, for every load of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TemplateInputs {
    /// Parameter values given on the command line or in a parameters file, in the order given.
    pub overrides: Vec<ParameterOverride>,
    /// `--aws-region`: the region a template is evaluated in (`AWS::Region`).
    pub region: Option<String>,
    /// `--stack-name`: the stack name (`AWS::StackName`); each file's stem when absent.
    pub stack_name: Option<String>,
}

/// One parameter value given from outside.
#[derive(Clone, Debug, PartialEq)]
pub struct ParameterOverride {
    /// `FILE:` of `FILE:KEY=VALUE`: the override applies only to templates whose file name,
    /// stem or path (as shown in messages) is this; `None` applies to every template.
    pub scope: Option<String>,
    pub key: String,
    pub value: String,
    /// Where it was given, for messages, without the value (which may be secret):
    /// `--parameter Env` or `params.json:3`.
    pub given_by: String,
}

impl ParameterOverride {
    /// Whether this override applies to the template read from `file` (its display path).
    pub fn applies_to(&self, file: &str) -> bool {
        let Some(scope) = &self.scope else {
            return true;
        };
        let name = file.rsplit(['/', '\\']).next().unwrap_or(file);
        let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
        scope == file || scope == name || scope == stem || file.ends_with(&format!("/{scope}"))
    }
}

impl TemplateInputs {
    /// The value given for parameter `key` of the template in `file`: a scoped override wins
    /// over an unscoped one; among equals, the last given wins (as the AWS CLI does).
    pub fn override_for(&self, file: &str, key: &str) -> Option<&ParameterOverride> {
        let matching = || {
            self.overrides
                .iter()
                .filter(move |o| o.key == key && o.applies_to(file))
        };
        matching()
            .rfind(|o| o.scope.is_some())
            .or_else(|| matching().rfind(|o| o.scope.is_none()))
    }
}

/// Reads `[FILE:]KEY=VALUE` as `--parameter` takes it; `given_by` says where it was written.
pub fn parse_override(text: &str, given_by: &str) -> Result<ParameterOverride, String> {
    let Some((name, value)) = text.split_once('=') else {
        return Err(format!(
            "{given_by}: `{}` is not KEY=VALUE (or FILE:KEY=VALUE for one template of a folder)",
            text.split(['=', ':']).next().unwrap_or(text)
        ));
    };
    let (scope, key) = match name.rsplit_once(':') {
        Some((scope, key)) => (Some(scope.to_string()), key),
        None => (None, name),
    };
    let key = key.trim();
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{given_by}: `{key}` is not a parameter name; parameter names are letters and digits only"
        ));
    }
    Ok(ParameterOverride {
        scope: scope.filter(|s| !s.is_empty()),
        key: key.to_string(),
        value: value.to_string(),
        given_by: given_by.to_string(),
    })
}

/// Reads a parameters file in the forms the AWS CLI takes: a JSON list of
/// `{"ParameterKey": …, "ParameterValue": …}` (`create-stack --parameters file://…`), a JSON
/// list of `"Key=Value"` strings or an object `{"Parameters": {Key: Value}}` (`deploy
/// --parameter-overrides file://…`), or text with `Key=Value` per line (blank lines and `#`
/// comments skipped). `file` names it in messages; each override's `given_by` is `file:line`.
pub fn parse_parameters_file(text: &str, file: &str) -> Result<Vec<ParameterOverride>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') || trimmed.starts_with('{') {
        return parse_parameters_json(text, file);
    }
    let mut overrides = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let given_by = format!("{file}:{}", index + 1);
        for word in line.split_whitespace() {
            overrides.push(parse_override(word, &given_by)?);
        }
    }
    Ok(overrides)
}

fn parse_parameters_json(text: &str, file: &str) -> Result<Vec<ParameterOverride>, String> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|error| format!("{file}:{}: {error}", error.line()))?;
    let line_of = |needle: &str| {
        text.lines()
            .position(|line| line.contains(needle))
            .map_or(1, |index| index + 1)
    };
    let entry = |key: &str, value: &str| ParameterOverride {
        scope: None,
        key: key.to_string(),
        value: value.to_string(),
        given_by: format!("{file}:{}", line_of(&format!("\"{key}\""))),
    };
    match value {
        serde_json::Value::Array(items) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(pair) => {
                    parse_override(pair, &format!("{file}:{}", line_of(pair)))
                }
                serde_json::Value::Object(fields) => {
                    let key = fields.get("ParameterKey").and_then(|k| k.as_str());
                    let Some(key) = key else {
                        return Err(format!("{file}: every entry needs a ParameterKey, as `aws cloudformation create-stack --parameters` takes them"));
                    };
                    if fields.get("UsePreviousValue").and_then(|u| u.as_bool()) == Some(true) {
                        return Err(format!("{file}:{}: {key}: UsePreviousValue needs a stack that AWS keeps; give ParameterValue", line_of(&format!("\"{key}\""))));
                    }
                    match fields.get("ParameterValue").map(json_text) {
                        Some(Some(value)) => Ok(entry(key, &value)),
                        _ => Err(format!("{file}:{}: {key}: ParameterValue is missing or not a string, number or list", line_of(&format!("\"{key}\"")))),
                    }
                }
                other => Err(format!("{file}: expected {{\"ParameterKey\", \"ParameterValue\"}} objects or \"Key=Value\" strings, found {other}")),
            })
            .collect(),
        serde_json::Value::Object(fields) => {
            let Some(serde_json::Value::Object(parameters)) = fields.get("Parameters") else {
                return Err(format!("{file}: a JSON object of parameters is written {{\"Parameters\": {{\"Key\": \"Value\"}}}}"));
            };
            parameters
                .iter()
                .map(|(key, value)| match json_text(value) {
                    Some(value) => Ok(entry(key, &value)),
                    None => Err(format!("{file}:{}: {key}: the value is not a string, number or list", line_of(&format!("\"{key}\"")))),
                })
                .collect()
        }
        _ => Err(format!("{file}: expected a JSON list or object of parameters")),
    }
}

/// A JSON value as a parameter's text: strings as they are, numbers and booleans written out,
/// lists joined with commas (as CloudFormation takes a list parameter).
fn json_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(json_text)
            .collect::<Option<Vec<_>>>()
            .map(|texts| texts.join(",")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(overrides: &[ParameterOverride]) -> Vec<(Option<&str>, &str, &str, &str)> {
        overrides
            .iter()
            .map(|o| {
                (
                    o.scope.as_deref(),
                    o.key.as_str(),
                    o.value.as_str(),
                    o.given_by.as_str(),
                )
            })
            .collect()
    }

    #[test]
    fn an_override_may_name_its_template_and_keep_equals_signs_in_its_value() {
        let plain = parse_override("Env=staging", "--parameter Env").unwrap();
        assert_eq!(
            pairs(&[plain]),
            [(None, "Env", "staging", "--parameter Env")]
        );
        let scoped = parse_override("web.yaml:Query=a=b:c", "--parameter Query").unwrap();
        assert_eq!(scoped.scope.as_deref(), Some("web.yaml"));
        assert_eq!(
            (scoped.key.as_str(), scoped.value.as_str()),
            ("Query", "a=b:c")
        );
        assert_eq!(
            parse_override("Env", "--parameter Env").unwrap_err(),
            "--parameter Env: `Env` is not KEY=VALUE (or FILE:KEY=VALUE for one template of a folder)"
        );
        assert!(parse_override("My-Env=x", "--parameter").is_err());
    }

    #[test]
    fn every_form_the_aws_cli_takes_is_read() {
        let create_stack = "[\n  {\"ParameterKey\": \"Env\", \"ParameterValue\": \"prod\"},\n  {\"ParameterKey\": \"Ports\", \"ParameterValue\": [80, 81]}\n]\n";
        assert_eq!(
            pairs(&parse_parameters_file(create_stack, "p.json").unwrap()),
            [
                (None, "Env", "prod", "p.json:2"),
                (None, "Ports", "80,81", "p.json:3")
            ]
        );
        let deploy_list = "[\"Env=prod\", \"Port=8080\"]";
        assert_eq!(
            pairs(&parse_parameters_file(deploy_list, "p.json").unwrap()),
            [
                (None, "Env", "prod", "p.json:1"),
                (None, "Port", "8080", "p.json:1")
            ]
        );
        let deploy_object = "{\"Parameters\": {\"Env\": \"prod\", \"Port\": 8080}}";
        assert_eq!(
            pairs(&parse_parameters_file(deploy_object, "p.json").unwrap()),
            [
                (None, "Env", "prod", "p.json:1"),
                (None, "Port", "8080", "p.json:1")
            ]
        );
        let lines = "# staging\nEnv=staging\n\nPort=8080 Path=/healthz\n";
        assert_eq!(
            pairs(&parse_parameters_file(lines, "p.txt").unwrap()),
            [
                (None, "Env", "staging", "p.txt:2"),
                (None, "Port", "8080", "p.txt:4"),
                (None, "Path", "/healthz", "p.txt:4")
            ]
        );
    }

    #[test]
    fn a_parameters_file_that_cannot_be_used_says_where() {
        assert_eq!(
            parse_parameters_file(
                "[{\"ParameterKey\": \"Env\", \"UsePreviousValue\": true}]",
                "p.json"
            )
            .unwrap_err(),
            "p.json:1: Env: UsePreviousValue needs a stack that AWS keeps; give ParameterValue"
        );
        assert!(
            parse_parameters_file("[{\"ParameterKey\": \"Env\"", "p.json")
                .unwrap_err()
                .starts_with("p.json:1: ")
        );
        assert_eq!(
            parse_parameters_file("Env=a\nbroken\n", "p.txt").unwrap_err(),
            "p.txt:2: `broken` is not KEY=VALUE (or FILE:KEY=VALUE for one template of a folder)"
        );
    }

    #[test]
    fn a_scoped_override_wins_for_its_template_only() {
        let inputs = TemplateInputs {
            overrides: vec![
                parse_override("Env=staging", "a").unwrap(),
                parse_override("web:Env=prod", "b").unwrap(),
                parse_override("Env=dev", "c").unwrap(),
            ],
            ..TemplateInputs::default()
        };
        let value = |file| inputs.override_for(file, "Env").map(|o| o.value.as_str());
        assert_eq!(value("config/web.yaml"), Some("prod"));
        assert_eq!(
            value("config/api.yaml"),
            Some("dev"),
            "the last one given wins"
        );
        assert_eq!(inputs.override_for("config/web.yaml", "Port"), None);
    }
}
