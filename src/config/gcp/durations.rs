//! Durations as the cloud API writes them (google.protobuf.Duration: `{seconds, nanos}`),
//! within the API's range, with a fraction of a second pointed at `nanos`; and the durations
//! that must be longer than zero, refused with what a zero would do.

use std::sync::Arc;

use crate::config::reader::{has_fraction, Fields};
use crate::config::yaml::Node;
use crate::model::{Diagnostics, Loc};

/// The longest Duration the cloud API takes: 10,000 years of seconds.
const MAX_DURATION_SECONDS: i64 = 315_576_000_000;

/// A `{seconds, nanos}` duration (google.protobuf.Duration as the cloud API writes it),
/// fraction kept; `{}` is zero. None only after an error was reported.
pub(super) fn duration(
    node: &Node,
    file: &Arc<str>,
    path: String,
    diagnostics: &mut Diagnostics,
) -> Option<std::time::Duration> {
    let errors_before = diagnostics.errors().count();
    let mut fields = Fields::new(node, file, path, diagnostics);
    let seconds = duration_seconds(&mut fields, diagnostics);
    let nanos = fields.integer("nanos", 0, 999_999_999, diagnostics);
    fields.finish(diagnostics);
    if diagnostics.errors().count() > errors_before {
        return None;
    }
    Some(std::time::Duration::new(
        seconds.unwrap_or(0) as u64,
        nanos.unwrap_or(0) as u32,
    ))
}

/// `seconds` of a Duration; a fraction there is pointed at `nanos`.
fn duration_seconds(fields: &mut Fields<'_>, diagnostics: &mut Diagnostics) -> Option<i64> {
    let written = fields.get("seconds")?.as_scalar().unwrap_or("").trim();
    let value: f64 = written.parse().unwrap_or_default();
    if !has_fraction(written) || value < 0.0 {
        return fields.integer("seconds", 0, MAX_DURATION_SECONDS, diagnostics);
    }
    let (whole, nanos) = (value.trunc(), (value.fract() * 1e9).round());
    diagnostics.error(
        &fields.loc_of("seconds"),
        fields.field_path("seconds"),
        format!(
            "`{written}` has a fraction; seconds takes whole seconds from 0 to \
             {MAX_DURATION_SECONDS} (write the fraction in nanos: {written} s is \
             {{seconds: {whole}, nanos: {nanos}}})"
        ),
    );
    None
}

/// Why a maxStreamDuration (of a backend service or a route) of 0 is refused.
pub(super) const STREAM_LIMIT_OF_ZERO: &str =
    "Envoy and gRPC read a stream limit of 0 as no limit (leave maxStreamDuration out for no limit)";

/// A duration that must be longer than zero: a zero (however written) is refused with
/// `why_not_zero` — what the cloud or the clients would make of it — never passed on.
pub(super) fn positive_duration(
    node: &Node,
    file: &Arc<str>,
    path: String,
    why_not_zero: &str,
    diagnostics: &mut Diagnostics,
) -> Option<std::time::Duration> {
    let duration = duration(node, file, path.clone(), diagnostics)?;
    if duration.is_zero() {
        diagnostics.error(
            &Loc::new(file.clone(), node.line),
            path,
            format!(
                "a duration of 0 is not allowed here: {why_not_zero}; allowed: more than 0 \
                 (seconds 0 to {MAX_DURATION_SECONDS}, nanos 0 to 999999999, not both 0)"
            ),
        );
        return None;
    }
    Some(duration)
}
