//! The values a config took from outside its own text when it was read — template
//! parameters and their sources — kept so `explain` and `/config_status` can show what is in
//! use. Secret values are masked before they get here. Must not: hold a secret in clear.

use serde::Serialize;

/// One value a config was read with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputValue {
    /// The file whose template declares it.
    pub file: String,
    /// The parameter's name (`Env`), or a pseudo parameter's (`AWS::Region`).
    pub name: String,
    /// The value in use, or `****` for a secret one.
    pub value: String,
    /// Where the value came from: `default`, `--parameter Env`, `params.json:3`, ….
    pub source: String,
}
