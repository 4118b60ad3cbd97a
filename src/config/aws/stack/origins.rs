//! Where evaluated values came from, for the diagnostics the readers give afterwards: each
//! place (resource path) whose value a parameter, a mapping or a pseudo parameter produced
//! keeps that origin, and a diagnostic at or inside the place says it ("… (the value of
//! parameter ListenerPort, alb.yaml:7, given by --parameter ListenerPort)"); a secret value is
//! masked in those diagnostics. Places where a function was refused drop what the readers say
//! about them: the refusal already said it. Must not: read resources or evaluate anything.

use crate::model::{Diagnostic, Diagnostics};

/// Where one value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// `the value of parameter Env, alb.yaml:25, given by --parameter Env`.
    pub text: String,
    /// The value, when it is secret (`NoEcho`): masked wherever it would be shown.
    pub secret: Option<String>,
}

/// What the evaluation says about places of the template.
#[derive(Debug, Default)]
pub struct Places {
    refused: Vec<String>,
    origins: Vec<(String, Origin)>,
}

impl Places {
    /// A function refused at `path`: nothing more is said about its place.
    pub fn refuse(&mut self, path: &str) {
        self.refused.push(path.to_string());
    }

    /// The value at `path` came from `origins`.
    pub fn record(&mut self, path: &str, origins: Vec<Origin>) {
        for origin in origins {
            let entry = (path.to_string(), origin);
            if !self.origins.contains(&entry) {
                self.origins.push(entry);
            }
        }
    }

    /// `diagnostics` with what is said about refused places left out, and what is said about
    /// evaluated places told where their value came from (secrets masked).
    pub fn explain(&self, diagnostics: Diagnostics) -> Diagnostics {
        let keep = |d: &Diagnostic| !self.refused.iter().any(|place| within(&d.path, place));
        Diagnostics {
            items: diagnostics
                .items
                .into_iter()
                .filter(keep)
                .map(|d| self.told(d))
                .collect(),
            notes: diagnostics
                .notes
                .into_iter()
                .filter(keep)
                .map(|d| self.told(d))
                .collect(),
        }
    }

    fn told(&self, mut diagnostic: Diagnostic) -> Diagnostic {
        let origins: Vec<&Origin> = self
            .origins
            .iter()
            .filter(|(place, _)| within(&diagnostic.path, place))
            .map(|(_, origin)| origin)
            .collect();
        if origins.is_empty() {
            return diagnostic;
        }
        for secret in origins.iter().filter_map(|o| o.secret.as_deref()) {
            if !secret.is_empty() {
                diagnostic.message = diagnostic.message.replace(secret, "****");
            }
        }
        let texts: Vec<&str> = origins.iter().map(|o| o.text.as_str()).collect();
        diagnostic.message = format!("{} ({})", diagnostic.message, texts.join("; "));
        diagnostic
    }
}

/// Whether `path` is `place` or lies inside it.
pub fn within(path: &str, place: &str) -> bool {
    path.strip_prefix(place)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Loc;

    fn paths(diagnostics: &Diagnostics) -> Vec<String> {
        diagnostics.items.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_refusal_hides_what_is_said_about_its_place_only() {
        let mut places = Places::default();
        places.refuse("R.P.Port");
        let mut diagnostics = Diagnostics::default();
        for path in [
            "R.P.Port",
            "R.P.Port.X",
            "R.P.Port[0]",
            "R.P.PortName",
            "R.P",
        ] {
            diagnostics.error(&Loc::new("a.yaml", 1), path, "m");
        }
        let kept: Vec<String> = places
            .explain(diagnostics)
            .items
            .into_iter()
            .map(|d| d.path)
            .collect();
        assert_eq!(kept, ["R.P.PortName", "R.P"]);
    }

    #[test]
    fn what_is_said_inside_an_evaluated_place_names_its_origin_and_masks_secrets() {
        let mut places = Places::default();
        places.record(
            "R.P.Port",
            vec![Origin {
                text: "the value of parameter Port, a.yaml:3, given by --parameter Port".into(),
                secret: None,
            }],
        );
        places.record(
            "R.P.Key",
            vec![Origin {
                text: "the value of parameter Key, a.yaml:5, its Default".into(),
                secret: Some("hunter2".into()),
            }],
        );
        let mut diagnostics = Diagnostics::default();
        diagnostics.error(&Loc::new("a.yaml", 9), "R.P.Port", "`abc` is not a port");
        diagnostics.error(
            &Loc::new("a.yaml", 10),
            "R.P.Key[0]",
            "`hunter2x` is too long",
        );
        diagnostics.error(&Loc::new("a.yaml", 11), "R.P.Other", "`hunter2` stays");
        assert_eq!(
            paths(&places.explain(diagnostics)),
            [
                "error: a.yaml:9: R.P.Port: `abc` is not a port (the value of parameter Port, a.yaml:3, given by --parameter Port)",
                "error: a.yaml:10: R.P.Key[0]: `****x` is too long (the value of parameter Key, a.yaml:5, its Default)",
                "error: a.yaml:11: R.P.Other: `hunter2` stays",
            ]
        );
    }
}
