//! `envoy.filters.http.fault`: delays and aborts a share of requests, as Envoy's fault filter
//! does with what Switchyard writes for a URL map's faultInjectionPolicy: a fixed delay and
//! an HTTP status abort, each with a fractional percent. The route's config (else the virtual
//! host's) replaces the listener's whole; a delayed request is then aborted or not by its own
//! draw, as Envoy decides the abort once the delay is over. Header-controlled faults, gRPC
//! aborts, rate limits and the rest are refused by field (Switchyard writes none of them).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::fault_delay::FaultDelaySecifier;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    fault_abort::ErrorType, HttpFault,
};
use envoy_types::pb::envoy::r#type::v3::{fractional_percent::DenominatorType, FractionalPercent};
use envoy_types::pb::google::protobuf::Any as ProtoAny;
use http::{Request, StatusCode};

use super::super::balancer::next_random;
use super::super::http::full;
use super::super::request_body::DownstreamBody;
use super::super::resources::{duration, Fault, Problem};
use super::{read_config, Decoded, HttpFilter, LevelConfigs, Registration, RouteFilterConfig};

pub const NAME: &str = "envoy.filters.http.fault";

pub const REGISTRATION: Registration = Registration {
    name: NAME,
    build,
    per_route,
    messages: &[("envoy.extensions.filters.http.fault.v3.HTTPFault", FIELDS)],
};

const FIELDS: &[&str] = &[
    "delay.fixed_delay",
    "delay.percentage.numerator",
    "delay.percentage.denominator",
    "abort.http_status",
    "abort.percentage.numerator",
    "abort.percentage.denominator",
];

/// The body of an abort, as Envoy writes it.
const ABORT_BODY: &str = "fault filter abort";

/// A share of requests: `numerator` out of `denominator`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    pub numerator: u64,
    pub denominator: u64,
}

impl Share {
    /// Whether a request with the draw `roll` falls in the share (Envoy's test: the draw
    /// modulo the denominator below the numerator).
    fn holds(self, roll: u64) -> bool {
        roll % self.denominator < self.numerator
    }
}

/// What to inject.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultSettings {
    pub delay: Option<(Duration, Share)>,
    pub abort: Option<(StatusCode, Share)>,
}

#[derive(Debug)]
struct FaultFilter {
    listener: FaultSettings,
}

fn build(config: &ProtoAny) -> Result<Arc<dyn HttpFilter>, Fault> {
    Ok(Arc::new(FaultFilter {
        listener: settings(config)?,
    }))
}

fn per_route(config: &ProtoAny) -> Result<RouteFilterConfig, Fault> {
    Ok(Arc::new(settings(config)?))
}

fn settings(config: &ProtoAny) -> Result<FaultSettings, Fault> {
    let fault: HttpFault = read_config(NAME, config, FIELDS)?;
    let delay = match &fault.delay {
        None => None,
        Some(delay) => {
            let Some(FaultDelaySecifier::FixedDelay(fixed)) = &delay.fault_delay_secifier else {
                return Err(Fault::at(
                    "delay",
                    Problem::Missing {
                        what: "a fixed_delay",
                    },
                ));
            };
            let share =
                share(delay.percentage.as_ref()).map_err(|p| Fault::at("delay.percentage", p))?;
            Some((duration(fixed), share))
        }
    };
    let abort = match &fault.abort {
        None => None,
        Some(abort) => {
            let Some(ErrorType::HttpStatus(status)) = abort.error_type else {
                return Err(Fault::at(
                    "abort",
                    Problem::Missing {
                        what: "an http_status",
                    },
                ));
            };
            let status = u16::try_from(status)
                .ok()
                .filter(|s| (200..600).contains(s))
                .and_then(|s| StatusCode::from_u16(s).ok())
                .ok_or(Fault::at(
                    "abort.http_status",
                    Problem::AbortStatus { status },
                ))?;
            let share =
                share(abort.percentage.as_ref()).map_err(|p| Fault::at("abort.percentage", p))?;
            Some((status, share))
        }
    };
    Ok(FaultSettings { delay, abort })
}

/// A FractionalPercent as a share (unset: none, as Envoy reads it).
fn share(percent: Option<&FractionalPercent>) -> Result<Share, Problem> {
    let Some(percent) = percent else {
        return Ok(Share {
            numerator: 0,
            denominator: 100,
        });
    };
    let denominator = match DenominatorType::try_from(percent.denominator) {
        Ok(DenominatorType::Hundred) => 100,
        Ok(DenominatorType::TenThousand) => 10_000,
        Ok(DenominatorType::Million) => 1_000_000,
        Err(_) => {
            return Err(Problem::Denominator {
                value: percent.denominator,
            })
        }
    };
    Ok(Share {
        numerator: u64::from(percent.numerator),
        denominator,
    })
}

fn roll() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0x6A09_E667_F3BC_C908);
    next_random(&STATE)
}

impl FaultFilter {
    /// The settings for a request: its route's, else the listener's.
    fn settings<'s>(&'s self, route: LevelConfigs<'s>) -> &'s FaultSettings {
        route.most_specific().unwrap_or(&self.listener)
    }
}

impl HttpFilter for FaultFilter {
    fn decode_headers(
        &self,
        _request: &mut Request<DownstreamBody>,
        route: LevelConfigs<'_>,
    ) -> Decoded {
        let settings = self.settings(route);
        if let Some((delay, share)) = settings.delay {
            if !delay.is_zero() && share.holds(roll()) {
                return Decoded::Delay(delay);
            }
        }
        self.after_delay(route)
    }

    fn after_delay(&self, route: LevelConfigs<'_>) -> Decoded {
        match self.settings(route).abort {
            Some((status, share)) if share.holds(roll()) => {
                Decoded::Reply(full(status, ABORT_BODY))
            }
            _ => Decoded::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::extensions::filters::common::fault::v3::FaultDelay;
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::FaultAbort;
    use prost::{Message, Name};

    fn any(fault: &HttpFault) -> ProtoAny {
        ProtoAny {
            type_url: HttpFault::type_url(),
            value: fault.encode_to_vec(),
        }
    }

    fn percent(numerator: u32, denominator: DenominatorType) -> Option<FractionalPercent> {
        Some(FractionalPercent {
            numerator,
            denominator: denominator as i32,
        })
    }

    #[test]
    fn a_delay_and_an_abort_are_read_with_their_shares() {
        let fault = HttpFault {
            delay: Some(FaultDelay {
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(
                    envoy_types::pb::google::protobuf::Duration {
                        seconds: 0,
                        nanos: 200_000_000,
                    },
                )),
                percentage: percent(250_000, DenominatorType::Million),
            }),
            abort: Some(FaultAbort {
                error_type: Some(ErrorType::HttpStatus(503)),
                percentage: percent(50, DenominatorType::Hundred),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            settings(&any(&fault)).unwrap(),
            FaultSettings {
                delay: Some((
                    Duration::from_millis(200),
                    Share {
                        numerator: 250_000,
                        denominator: 1_000_000
                    }
                )),
                abort: Some((
                    StatusCode::SERVICE_UNAVAILABLE,
                    Share {
                        numerator: 50,
                        denominator: 100
                    }
                )),
            }
        );
    }

    #[test]
    fn header_controlled_aborts_and_impossible_statuses_are_refused() {
        let header = HttpFault {
            abort: Some(FaultAbort {
                error_type: Some(ErrorType::HeaderAbort(Default::default())),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            settings(&any(&header)).unwrap_err().problem,
            Problem::UnsupportedField {
                field: "abort.header_abort".into()
            }
        );
        let status = HttpFault {
            abort: Some(FaultAbort {
                error_type: Some(ErrorType::HttpStatus(99)),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            settings(&any(&status)).unwrap_err(),
            Fault::at("abort.http_status", Problem::AbortStatus { status: 99 })
        );
    }

    #[test]
    fn a_share_holds_its_numerator_out_of_its_denominator() {
        let half = Share {
            numerator: 50,
            denominator: 100,
        };
        assert_eq!((0..1000).filter(|r| half.holds(*r)).count(), 500);
        let all = Share {
            numerator: 100,
            denominator: 100,
        };
        assert!((0..1000).all(|r| all.holds(r)));
    }
}
