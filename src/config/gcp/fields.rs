//! What the GCP dialect does with each field of the Compute API resources it reads: one table
//! per schema type (`field_tables`), applied by the readers as they open a mapping, and
//! rendered into docs/gcp-fields.md. A field is honoured (read and served), ignored
//! (output-only, or without meaning on a self-hosted proxy), noted (ignored, with a note
//! when written), or refused by name with the reason — never an "unknown field" or a "did
//! you mean" to another real field. Does not read values: the readers do.

use crate::config::reader::Fields;
use crate::config::yaml::{Node, Value};
use crate::model::Diagnostics;

pub use super::field_tables::TABLES;

/// What Switchyard does with one field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Treatment {
    /// Read and served.
    Honoured,
    /// Read and served, though not in the resource's Compute API schema: Switchyard's own
    /// field, one of gcloud's list commands, or a field newer than the schema read.
    Own(&'static str),
    /// Read; some values are served and others refused or warned about (the reason says which).
    Conditional(&'static str),
    /// Accepted without effect: output-only, or without meaning on a self-hosted proxy.
    Ignored(&'static str),
    /// Accepted without effect, with a note when written (and not saying off), since a reader
    /// could expect one.
    Noted(&'static str),
    /// Refused when written.
    Refused(&'static str),
    /// Refused unless it says the feature is off (`false`, `DISABLED`, `NONE`, `DEFAULT`, or a
    /// mapping whose `enabled`/`enable` is false), as gcloud prints defaults.
    RefusedUnlessOff(&'static str),
    /// Refused as a cloud field not served yet (the reason is for the docs).
    NotYet(&'static str),
}

impl Treatment {
    /// The word the docs use.
    pub fn label(self) -> &'static str {
        match self {
            Treatment::Honoured => "honoured",
            Treatment::Own(_) => "honoured (Switchyard)",
            Treatment::Conditional(_) => "honoured, some values refused",
            Treatment::Ignored(_) => "ignored",
            Treatment::Noted(_) => "ignored, with a note",
            Treatment::Refused(_) | Treatment::NotYet(_) => "refused",
            Treatment::RefusedUnlessOff(_) => "refused unless off",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Treatment::Honoured => "",
            Treatment::Own(reason)
            | Treatment::Conditional(reason)
            | Treatment::Ignored(reason)
            | Treatment::Noted(reason)
            | Treatment::Refused(reason)
            | Treatment::RefusedUnlessOff(reason)
            | Treatment::NotYet(reason) => reason,
        }
    }
}

/// The fields of one Compute API schema type.
pub struct FieldTable {
    /// The schema type's name (`BackendService`, `HttpRouteAction`).
    pub api_type: &'static str,
    /// Where it is written, for people (`backendServices[]`, `…routeRules[].routeAction`).
    pub written_at: &'static str,
    pub fields: &'static [(&'static str, Treatment)],
}

/// The table of `api_type`.
pub fn table(api_type: &str) -> Option<&'static FieldTable> {
    TABLES.iter().find(|table| table.api_type == api_type)
}

/// What Switchyard does with `field` of `api_type`, if the tables say.
pub fn treatment(api_type: &str, field: &str) -> Option<Treatment> {
    table(api_type)?
        .fields
        .iter()
        .find(|(name, _)| *name == field)
        .map(|(_, treatment)| *treatment)
}

/// The message of a field not served yet, as every dialect words it.
const NOT_YET: &str = "is a cloud field Switchyard does not serve yet; remove it (its traffic \
                       would otherwise behave differently than written)";

/// Applies the table of `api_type` to a mapping being read: ignored fields are accepted,
/// noted ones get a note, refused ones an error naming them with the reason. Honoured fields
/// are left to the reader.
pub(super) fn classify(fields: &mut Fields<'_>, api_type: &str, diagnostics: &mut Diagnostics) {
    let Some(table) = table(api_type) else {
        return;
    };
    for (key, treatment) in table.fields {
        match treatment {
            Treatment::Honoured | Treatment::Own(_) | Treatment::Conditional(_) => {}
            Treatment::Ignored(_) => fields.ignore(&[key]),
            Treatment::Noted(reason) => {
                if fields.get(key).is_some_and(|node| !says_off(node)) {
                    diagnostics.note(
                        &fields.loc_of(key),
                        fields.field_path(key),
                        format!("`{key}` has no effect here: {reason}"),
                    );
                }
            }
            Treatment::Refused(reason) => {
                if fields.get(key).is_some() {
                    refuse(fields, key, reason, diagnostics);
                }
            }
            Treatment::RefusedUnlessOff(reason) => {
                if fields.get(key).is_some_and(|node| !says_off(node)) {
                    refuse(fields, key, reason, diagnostics);
                }
            }
            Treatment::NotYet(_) => {
                if fields.get(key).is_some() {
                    refuse(fields, key, NOT_YET, diagnostics);
                }
            }
        }
    }
}

fn refuse(fields: &Fields<'_>, key: &str, reason: &str, diagnostics: &mut Diagnostics) {
    diagnostics.error(
        &fields.loc_of(key),
        fields.field_path(key),
        format!("`{key}` {reason}"),
    );
}

/// Whether a value says its feature is off, as gcloud prints a default.
fn says_off(node: &Node) -> bool {
    match &node.value {
        Value::Scalar { text, .. } => matches!(
            text.as_str(),
            "false" | "False" | "FALSE" | "DISABLED" | "NONE" | "DEFAULT"
        ),
        Value::Map(entries) => entries.iter().any(|(key, value)| {
            matches!(key.as_scalar(), Some("enabled" | "enable"))
                && matches!(value.as_scalar(), Some("false" | "False" | "FALSE"))
        }),
        _ => false,
    }
}

/// The tables as the Markdown of docs/gcp-fields.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "# GCP fields: what Switchyard does with each\n\n\
         Every field of the Compute API resources the GCP dialect reads (the v1 schema of \
         2024-06-04, plus the newer fields and Switchyard's own that it reads), and what \
         happens to it: **honoured** (read and served), **ignored** (output-only, or without \
         meaning on a self-hosted proxy), **ignored, with a note** (a `note:` diagnostic \
         when written), or **refused** (an error naming the field and the reason). \
         Generated from `src/config/gcp/field_tables.rs`; `cargo test --test integration \
         gcp_fields` checks that this file matches it (set `SWITCHYARD_WRITE_DOCS=1` to \
         rewrite it).\n",
    );
    for table in TABLES {
        out.push_str(&format!(
            "\n## {} (`{}`)\n\n| field | treatment | why |\n|---|---|---|\n",
            table.api_type, table.written_at
        ));
        for (field, treatment) in table.fields {
            out.push_str(&format!(
                "| `{field}` | {} | {} |\n",
                treatment.label(),
                treatment.reason().replace('|', "\\|")
            ));
        }
    }
    out
}
