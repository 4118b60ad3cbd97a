//! The `Rules` section: each rule's `RuleCondition` (when absent, the rule always applies)
//! and its `Assertions`, evaluated with the parameter values of this load as CloudFormation
//! evaluates them before creating a stack; a false assertion is an error with its
//! `AssertDescription` and the parameters that took part. Must not: look anything up in the
//! account (rule functions that do are refused in `conditions`).

use crate::config::reader::Fields;
use crate::config::yaml::{Node, Value};
use crate::model::Loc;

use super::conditions::In;
use super::evaluator::Evaluator;

impl Evaluator<'_> {
    /// Checks every rule of the `Rules` section.
    pub fn check_rules(&mut self, section: Option<&Node>) {
        let Some(section) = section else {
            return;
        };
        let Value::Map(entries) = &section.value else {
            self.error(
                section.line,
                "Rules",
                format!(
                    "expected a mapping of rule names to rules, found {}",
                    section.kind()
                ),
            );
            return;
        };
        for (key, rule) in entries {
            let name = key.as_scalar().unwrap_or("");
            self.check_rule(name, rule);
        }
        self.take_used();
    }

    fn check_rule(&mut self, name: &str, rule: &Node) {
        let path = format!("Rules.{name}");
        let file = self.file.clone();
        let mut problems = std::mem::take(&mut self.problems);
        let mut fields = Fields::new(rule, &file, &path, &mut problems);
        let condition = fields.get("RuleCondition");
        let assertions = fields.get("Assertions");
        if assertions.is_none() {
            problems.error(
                &Loc::new(file.clone(), rule.line),
                format!("{path}.Assertions"),
                "this field is required",
            );
        }
        fields.finish(&mut problems);
        self.problems = problems;
        if let Some(condition) = condition {
            match self.truth(condition, &format!("{path}.RuleCondition"), In::Rule) {
                Ok(true) => {}
                Ok(false) | Err(_) => return,
            }
        }
        let Some(Value::Seq(assertions)) = assertions.map(|a| &a.value) else {
            if let Some(assertions) = assertions {
                self.error(
                    assertions.line,
                    &format!("{path}.Assertions"),
                    "expected a list of assertions",
                );
            }
            return;
        };
        for (index, assertion) in assertions.iter().enumerate() {
            self.check_assertion(name, assertion, &format!("{path}.Assertions[{index}]"));
        }
    }

    fn check_assertion(&mut self, rule: &str, assertion: &Node, path: &str) {
        let file = self.file.clone();
        let mut problems = std::mem::take(&mut self.problems);
        let mut fields = Fields::new(assertion, &file, path, &mut problems);
        let test = fields.get("Assert");
        let description = fields.string("AssertDescription", &mut problems);
        if test.is_none() {
            problems.error(
                &Loc::new(file.clone(), assertion.line),
                format!("{path}.Assert"),
                "this field is required",
            );
        }
        fields.finish(&mut problems);
        self.problems = problems;
        let Some(test) = test else {
            return;
        };
        self.take_used();
        let holds = self.truth(test, &format!("{path}.Assert"), In::Rule);
        let origins: Vec<String> = self.take_used().into_iter().map(|o| o.text).collect();
        if holds == Ok(false) {
            let said = description.unwrap_or_else(|| "its assertion is false".to_string());
            let from = if origins.is_empty() {
                String::new()
            } else {
                format!(" ({})", origins.join("; "))
            };
            self.error(test.line, path, format!("rule {rule} fails: {said}{from}"));
        }
    }
}
