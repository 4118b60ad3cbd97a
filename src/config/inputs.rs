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
            .filter(|o| o.scope.is_some())
            .last()
            .or_else(|| matching().filter(|o| o.scope.is_none()).last())
    }
}
