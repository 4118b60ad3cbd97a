//! Where references lead: whether a named resource exists, with a hint when it does not.
//! Shared by the dialects' checks. Must not: judge anything in a dialect's words (the caller
//! names the collection as its dialect does).

use std::collections::BTreeMap;

use super::{Diagnostics, Ref};

/// Whether `reference` names a resource of `existing` (of `kind`, as the config calls that
/// collection); reports the dangling reference if not.
pub fn expect<T>(
    existing: &BTreeMap<String, T>,
    reference: &Ref,
    kind: &str,
    diagnostics: &mut Diagnostics,
) -> bool {
    if existing.contains_key(&reference.name) {
        return true;
    }
    let known: Vec<&str> = existing.keys().map(String::as_str).collect();
    let hint = match super::diagnostics::suggest(&reference.name, &known) {
        Some(close) => format!("; did you mean `{close}`?"),
        None if known.is_empty() => format!("; the config defines no {kind}"),
        None => format!("; defined {kind}: {}", known.join(", ")),
    };
    diagnostics.error(
        &reference.loc,
        &reference.path,
        format!("`{}` refers to no resource in {kind}{hint}", reference.name),
    );
    false
}
