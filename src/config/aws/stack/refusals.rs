//! How the evaluator says what it cannot evaluate: a function refused by name with why (what
//! only AWS can answer), a dynamic reference to an AWS store, a name the template does not
//! have (with the likely one meant), a function's argument of the wrong shape. In a property
//! Switchyard ignores a refusal is a note, since nothing is lost. Must not: evaluate anything.

use crate::model::diagnostics::suggest;
use crate::model::Loc;

use super::evaluator::{Evaluator, Refused};

impl Evaluator<'_> {
    /// An error about a function's argument: what it takes.
    pub fn takes(&mut self, function: &str, what: &str, line: usize, path: &str) -> Refused {
        self.error(line, path, format!("`{function}` takes {what}"))
    }

    /// Refuses a function that is not evaluated, naming it and why.
    pub(super) fn refuse_function(
        &mut self,
        function: &str,
        name: &str,
        line: usize,
        path: &str,
    ) -> Refused {
        let why = match name {
            "ImportValue" => "it reads a value another stack exports, and only CloudFormation holds exports",
            "Cidr" => "it carves address blocks out of a VPC's, which is AWS networking; no property Switchyard reads takes one",
            "Transform" => "it runs a macro, which only CloudFormation can run",
            "ForEach" => "it writes resources from a loop of AWS::LanguageExtensions; write the resources themselves",
            "Equals" | "And" | "Or" | "Not" | "Condition" => {
                "condition functions belong in the Conditions section, or name a condition in an Fn::If"
            }
            "Contains" | "EachMemberEquals" | "EachMemberIn" | "RefAll" | "ValueOf" | "ValueOfAll" => {
                "rule functions belong in the assertions of the Rules section"
            }
            _ => {
                return self.refuse(
                    line,
                    path,
                    format!("`{function}` is no intrinsic function CloudFormation knows; write the value itself"),
                )
            }
        };
        self.refuse(
            line,
            path,
            format!("`{function}` is not evaluated: {why}; write the value itself"),
        )
    }

    pub(super) fn dynamic_reference(&mut self, text: &str, line: usize, path: &str) -> Refused {
        let service = text
            .split("{{resolve:")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or("");
        let store = match service {
            "ssm" | "ssm-secure" => "Systems Manager Parameter Store",
            "secretsmanager" => "Secrets Manager",
            _ => "an AWS service",
        };
        self.refuse(
            line,
            path,
            format!("the dynamic reference `{{{{resolve:{service}:…}}}}` is not resolved: its value lives in {store}, which only AWS reads; write the value itself, or pass it as a parameter"),
        )
    }

    /// Refuses something that cannot be evaluated: an error, or in a property Switchyard
    /// ignores, a note.
    pub fn refuse(&mut self, line: usize, path: &str, message: impl Into<String>) -> Refused {
        let loc = Loc::new(self.file.clone(), line);
        if self.ignored {
            let message = format!(
                "{}; Switchyard ignores this property, so it is left out",
                message.into()
            );
            self.problems.note(&loc, path, message);
        } else {
            self.problems.error(&loc, path, message);
        }
        Refused
    }

    /// A mistake in the template (always an error).
    pub fn error(&mut self, line: usize, path: &str, message: impl Into<String>) -> Refused {
        if self.ignored {
            return self.refuse(line, path, message);
        }
        self.problems
            .error(&Loc::new(self.file.clone(), line), path, message);
        Refused
    }

    /// A note, given once per template.
    pub fn note_once(&mut self, line: usize, path: &str, message: String) {
        if self.noted.insert(message.clone()) {
            self.problems
                .note(&Loc::new(self.file.clone(), line), path, message);
        }
    }

    /// An unknown name: the error says what the template has, and the likely one meant.
    pub fn unknown_name(&mut self, written: &str, name: &str, line: usize, path: &str) -> Refused {
        let mut known: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
        known.extend(self.resources.keys().map(String::as_str));
        known.extend(super::pseudo::NAMES.iter().copied());
        let hint = suggest(name, &known)
            .map(|s| format!("; did you mean {s}?"))
            .unwrap_or_default();
        self.error(
            line,
            path,
            format!("{written}: `{name}` is no parameter, pseudo parameter or resource of the template{hint}"),
        )
    }
}
