//! The `access_log` of an HTTP connection manager or a TCP proxy → what the sidecar logs and
//! where: stdout or stderr in Envoy's default format, kept by the filters Switchyard emits (a
//! CEL test of the upstream cluster's name, a runtime fraction sampled independently, and
//! both together). Pure: proxy/access_log.rs renders and writes the lines.
//!
//! Must not: evaluate CEL in general. The one expression form Switchyard writes is read here;
//! any other is refused by its text.

use envoy_types::pb::envoy::config::accesslog::v3::{
    access_log, access_log_filter::FilterSpecifier, extension_filter, AccessLog as XdsAccessLog,
    AccessLogFilter, RuntimeFilter,
};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::pb::envoy::extensions::access_loggers::stream::v3::{
    StderrAccessLog, StdoutAccessLog,
};
use envoy_types::pb::envoy::r#type::v3::fractional_percent::DenominatorType;
use prost::Name;

use super::{decode_checked, Fault, Problem};

/// One access log: where its lines go, and which requests (or connections) it keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    pub sink: Sink,
    pub filter: Option<LogFilter>,
}

/// Where an access log's lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    Stdout,
    Stderr,
}

/// Which entries a log keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFilter {
    /// The entry went to this upstream cluster (`xds.cluster_name == '<name>'`).
    Cluster(String),
    /// This many entries in a million, drawn independently for each.
    Sampled { per_million: u32 },
    /// Every one of these keeps the entry.
    All(Vec<LogFilter>),
}

/// What the sidecar applies of an AccessLog, under `access_log` in the connection manager
/// and the TCP proxy (their field lists append these).
#[cfg(test)]
const FIELDS: &[&str] = &[
    "access_log.name",
    "access_log.typed_config",
    "access_log.filter.runtime_filter",
    "access_log.filter.extension_filter",
    "access_log.filter.and_filter.filters.runtime_filter",
    "access_log.filter.and_filter.filters.extension_filter",
];

/// What the sidecar applies of StdoutAccessLog and StderrAccessLog: nothing but the logger
/// itself (a `log_format` is refused; lines are in Envoy's default format).
pub(super) const SINK_FIELDS: &[&str] = &[];

/// What the sidecar applies of a CEL ExpressionFilter: the expression's text, in the one form
/// Switchyard writes.
pub(super) const EXPRESSION_FIELDS: &[&str] = &["expression"];

pub const STDOUT: &str = "envoy.access_loggers.stdout";
pub const STDERR: &str = "envoy.access_loggers.stderr";

/// Reads a manager's or proxy's `access_log` list.
pub fn read_all(logs: &[XdsAccessLog]) -> Result<Vec<AccessLog>, Fault> {
    logs.iter()
        .enumerate()
        .map(|(index, log)| read(log).map_err(|fault| fault.under(&format!("access_log[{index}]"))))
        .collect()
}

fn read(log: &XdsAccessLog) -> Result<AccessLog, Fault> {
    let refused = |type_url: String| {
        Fault::at(
            "typed_config",
            Problem::AccessLogger {
                name: log.name.clone(),
                type_url,
            },
        )
    };
    let Some(access_log::ConfigType::TypedConfig(config)) = &log.config_type else {
        return Err(refused(String::new()));
    };
    let sink = if config.type_url == StdoutAccessLog::type_url() {
        decode_checked::<StdoutAccessLog>(&config.value, SINK_FIELDS)
            .map_err(|fault| fault.inside("typed_config (StdoutAccessLog)"))?;
        Sink::Stdout
    } else if config.type_url == StderrAccessLog::type_url() {
        decode_checked::<StderrAccessLog>(&config.value, SINK_FIELDS)
            .map_err(|fault| fault.inside("typed_config (StderrAccessLog)"))?;
        Sink::Stderr
    } else {
        return Err(refused(config.type_url.clone()));
    };
    let filter = match &log.filter {
        None => None,
        Some(filter) => filter_of(filter).map_err(|fault| fault.under("filter"))?,
    };
    Ok(AccessLog { sink, filter })
}

/// One filter (None: a filter with nothing set keeps everything).
fn filter_of(filter: &AccessLogFilter) -> Result<Option<LogFilter>, Fault> {
    match &filter.filter_specifier {
        None => Ok(None),
        Some(FilterSpecifier::RuntimeFilter(runtime)) => sampled(runtime)
            .map(Some)
            .map_err(|fault| fault.under("runtime_filter")),
        Some(FilterSpecifier::ExtensionFilter(extension)) => {
            let at = "extension_filter";
            let Some(extension_filter::ConfigType::TypedConfig(config)) = &extension.config_type
            else {
                return Err(Fault::at(at, Problem::NoTypedConfig));
            };
            if config.type_url != ExpressionFilter::type_url() {
                return Err(Fault::at(
                    at,
                    Problem::AccessLogExtensionFilter {
                        name: extension.name.clone(),
                        type_url: config.type_url.clone(),
                    },
                ));
            }
            let expression: ExpressionFilter = decode_checked(&config.value, EXPRESSION_FIELDS)
                .map_err(|fault| fault.inside(&format!("{at}.typed_config (ExpressionFilter)")))?;
            cluster_test(&expression.expression)
                .map(|cluster| Some(LogFilter::Cluster(cluster)))
                .ok_or_else(|| {
                    Fault::at(
                        format!("{at}.typed_config.expression"),
                        Problem::CelExpression {
                            expression: expression.expression.clone(),
                        },
                    )
                })
        }
        Some(FilterSpecifier::AndFilter(and)) => {
            let mut all = Vec::new();
            for (index, inner) in and.filters.iter().enumerate() {
                let at = format!("and_filter.filters[{index}]");
                if let Some(inner) = filter_of(inner).map_err(|fault| fault.under(&at))? {
                    all.push(inner);
                }
            }
            Ok(Some(LogFilter::All(all)))
        }
        // The field check refuses every other kind by its name before this is reached.
        Some(_) => Err(Problem::UnsupportedField {
            field: "filter".into(),
        }
        .into()),
    }
}

/// A runtime filter: its default fraction (the sidecar has no runtime layer, so the key is
/// never overridden), drawn independently.
fn sampled(runtime: &RuntimeFilter) -> Result<LogFilter, Fault> {
    if !runtime.use_independent_randomness {
        return Err(Fault::at(
            "use_independent_randomness",
            Problem::DependentSampling,
        ));
    }
    let Some(percent) = &runtime.percent_sampled else {
        // Envoy's default without one: 0 of 100.
        return Ok(LogFilter::Sampled { per_million: 0 });
    };
    let scale = match DenominatorType::try_from(percent.denominator) {
        Ok(DenominatorType::Hundred) => 10_000,
        Ok(DenominatorType::TenThousand) => 100,
        Ok(DenominatorType::Million) => 1,
        Err(_) => {
            return Err(Fault::at(
                "percent_sampled.denominator",
                Problem::Denominator {
                    value: percent.denominator,
                },
            ))
        }
    };
    Ok(LogFilter::Sampled {
        per_million: percent.numerator.saturating_mul(scale).min(1_000_000),
    })
}

/// The cluster `expression` tests for, when it is the form Switchyard writes:
/// `xds.cluster_name == '<name>'`.
fn cluster_test(expression: &str) -> Option<String> {
    let quoted = expression
        .trim()
        .strip_prefix("xds.cluster_name")?
        .trim_start()
        .strip_prefix("==")?
        .trim();
    let name = quoted.strip_prefix('\'')?.strip_suffix('\'')?;
    (!name.contains(['\'', '\\'])).then(|| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::accesslog::v3::{AndFilter, ExtensionFilter};
    use envoy_types::pb::envoy::r#type::v3::FractionalPercent;
    use envoy_types::pb::google::protobuf::Any;
    use prost::Message;

    const CEL: &str = "envoy.access_loggers.extension_filters.cel";

    fn any<M: Message + Name>(message: &M) -> Any {
        Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        }
    }

    fn cel(expression: &str) -> AccessLogFilter {
        AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::ExtensionFilter(ExtensionFilter {
                name: CEL.into(),
                config_type: Some(extension_filter::ConfigType::TypedConfig(any(
                    &ExpressionFilter {
                        expression: expression.into(),
                        ..Default::default()
                    },
                ))),
            })),
        }
    }

    fn runtime(numerator: u32, independent: bool) -> AccessLogFilter {
        AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::RuntimeFilter(RuntimeFilter {
                runtime_key: "switchyard.log_sample.web".into(),
                percent_sampled: Some(FractionalPercent {
                    numerator,
                    denominator: DenominatorType::Million as i32,
                }),
                use_independent_randomness: independent,
            })),
        }
    }

    fn stdout_with(filter: AccessLogFilter) -> XdsAccessLog {
        XdsAccessLog {
            name: STDOUT.into(),
            filter: Some(filter),
            config_type: Some(access_log::ConfigType::TypedConfig(any(
                &StdoutAccessLog::default(),
            ))),
        }
    }

    #[test]
    fn the_manager_and_the_tcp_proxy_take_every_access_log_field() {
        for field in FIELDS {
            assert!(
                super::super::listener::MANAGER_FIELDS.contains(field),
                "{field}"
            );
            assert!(
                super::super::listener::TCP_FIELDS.contains(field),
                "{field}"
            );
        }
    }

    #[test]
    fn switchyards_service_log_is_read_as_a_cluster_test_and_a_sample() {
        let both = AccessLogFilter {
            filter_specifier: Some(FilterSpecifier::AndFilter(AndFilter {
                filters: vec![cel("xds.cluster_name == 'web'"), runtime(250_000, true)],
            })),
        };
        assert_eq!(
            read_all(&[stdout_with(both)]).unwrap(),
            vec![AccessLog {
                sink: Sink::Stdout,
                filter: Some(LogFilter::All(vec![
                    LogFilter::Cluster("web".into()),
                    LogFilter::Sampled {
                        per_million: 250_000
                    }
                ])),
            }]
        );
    }

    #[test]
    fn other_expressions_and_request_id_sampling_are_refused_with_their_place() {
        let refused = read_all(&[stdout_with(cel("request.path == '/'"))]).unwrap_err();
        assert_eq!(
            refused,
            Fault::at(
                "access_log[0].filter.extension_filter.typed_config.expression",
                Problem::CelExpression {
                    expression: "request.path == '/'".into()
                }
            )
        );
        let refused = read_all(&[stdout_with(runtime(5, false))]).unwrap_err();
        assert_eq!(
            refused.at,
            "access_log[0].filter.runtime_filter.use_independent_randomness"
        );
    }
}
