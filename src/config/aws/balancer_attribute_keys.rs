//! The keys of an Application Load Balancer's `LoadBalancerAttributes` and of its listeners'
//! `ListenerAttributes`: for each, the values it takes and what Switchyard does with it
//! (honoured, noted as without effect with the reason, or refused as another load balancer
//! type's). Data only; `balancer_attributes` reads with it.

/// The values an attribute takes.
#[derive(Clone, Copy, Debug)]
pub(super) enum Values {
    Boolean,
    Integer(u64, u64),
    OneOf(&'static [&'static str]),
    HeaderName,
    Text,
}

/// What Switchyard does with an attribute.
#[derive(Clone, Copy, Debug)]
pub(super) enum Effect {
    Honoured,
    /// Checked, then noted as without effect, for this reason.
    Inert(&'static str),
    /// An error: the attribute belongs elsewhere.
    Refused(&'static str),
}

pub(super) struct Key {
    pub name: &'static str,
    pub values: Values,
    pub effect: Effect,
}

const fn key(name: &'static str, values: Values, effect: Effect) -> Key {
    Key {
        name,
        values,
        effect,
    }
}

const S3_LOGS: Effect =
    Effect::Inert("logs delivered to S3 are AWS's; a self-hosted proxy writes none");
const NLB_ONLY: Effect = Effect::Refused("it belongs to Network Load Balancers");

/// Every key of an Application Load Balancer's `LoadBalancerAttributes` (and the Network Load
/// Balancer keys, named as such).
pub(super) const LOAD_BALANCER_KEYS: &[Key] = &[
    key("access_logs.s3.enabled", Values::Boolean, S3_LOGS),
    key("access_logs.s3.bucket", Values::Text, S3_LOGS),
    key("access_logs.s3.prefix", Values::Text, S3_LOGS),
    key("connection_logs.s3.enabled", Values::Boolean, S3_LOGS),
    key("connection_logs.s3.bucket", Values::Text, S3_LOGS),
    key("connection_logs.s3.prefix", Values::Text, S3_LOGS),
    key(
        "client_keep_alive.seconds",
        Values::Integer(60, 604_800),
        Effect::Honoured,
    ),
    key(
        "deletion_protection.enabled",
        Values::Boolean,
        Effect::Inert("it guards the AWS resource; nothing is deleted here"),
    ),
    key(
        "idle_timeout.timeout_seconds",
        Values::Integer(1, 4000),
        Effect::Honoured,
    ),
    key(
        "ipv6.deny_all_igw_traffic",
        Values::Boolean,
        Effect::Inert("internet gateways are AWS networking; where the load balancer listens is Metadata.Switchyard"),
    ),
    key(
        "load_balancing.cross_zone.enabled",
        Values::OneOf(&["true"]),
        Effect::Inert("an Application Load Balancer always balances across zones; each target group's load_balancing.cross_zone.enabled decides"),
    ),
    key(
        "routing.http.desync_mitigation_mode",
        Values::OneOf(&["monitor", "defensive", "strictest"]),
        Effect::Inert("Envoy's HTTP/1 parser refuses ambiguous requests itself; the modes are not mapped"),
    ),
    key(
        "routing.http.drop_invalid_header_fields.enabled",
        Values::Boolean,
        Effect::Honoured,
    ),
    key(
        "routing.http.preserve_host_header.enabled",
        Values::Boolean,
        Effect::Honoured,
    ),
    key(
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled",
        Values::Boolean,
        Effect::Honoured,
    ),
    key(
        "routing.http.xff_client_port.enabled",
        Values::Boolean,
        Effect::Honoured,
    ),
    key(
        "routing.http.xff_header_processing.mode",
        Values::OneOf(&["append", "preserve", "remove"]),
        Effect::Honoured,
    ),
    key(
        "routing.http2.enabled",
        Values::Boolean,
        Effect::Inert("clients get HTTP/2 or HTTP/1.1 as they negotiate; turning HTTP/2 off is not mapped"),
    ),
    key(
        "waf.fail_open.enabled",
        Values::Boolean,
        Effect::Inert("WAF is not available in a self-hosted control plane"),
    ),
    key(
        "zonal_shift.config.enabled",
        Values::Boolean,
        Effect::Inert("zonal shift is an AWS service; Switchyard's health checks move traffic off failing targets"),
    ),
    key("dns_record.client_routing_policy", Values::Text, NLB_ONLY),
    key("secondary_ips.auto_assigned.per_subnet", Values::Text, NLB_ONLY),
];

const MTLS_HEADER: Effect = Effect::Inert(
    "mutual TLS (MutualAuthentication) is not served, so there is no client certificate to pass on",
);
const RESPONSE_HEADER: Effect =
    Effect::Inert("the load balancer does not add response headers; have the application set them");

/// Every key of an Application Load Balancer listener's `ListenerAttributes`.
pub(super) const LISTENER_KEYS: &[Key] = &[
    key(
        "routing.http.request.x_amzn_mtls_clientcert_serial_number.header_name",
        Values::HeaderName,
        MTLS_HEADER,
    ),
    key(
        "routing.http.request.x_amzn_mtls_clientcert_issuer.header_name",
        Values::HeaderName,
        MTLS_HEADER,
    ),
    key(
        "routing.http.request.x_amzn_mtls_clientcert_subject.header_name",
        Values::HeaderName,
        MTLS_HEADER,
    ),
    key(
        "routing.http.request.x_amzn_mtls_clientcert_validity.header_name",
        Values::HeaderName,
        MTLS_HEADER,
    ),
    key(
        "routing.http.request.x_amzn_mtls_clientcert_leaf.header_name",
        Values::HeaderName,
        MTLS_HEADER,
    ),
    key(
        "routing.http.request.x_amzn_mtls_clientcert.header_name",
        Values::HeaderName,
        MTLS_HEADER,
    ),
    key(
        "routing.http.request.x_amzn_tls_version.header_name",
        Values::HeaderName,
        Effect::Honoured,
    ),
    key(
        "routing.http.request.x_amzn_tls_cipher_suite.header_name",
        Values::HeaderName,
        Effect::Honoured,
    ),
    key(
        "routing.http.response.server.enabled",
        Values::Boolean,
        Effect::Inert("the Server header is Envoy's own"),
    ),
    key(
        "routing.http.response.strict_transport_security.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.access_control_allow_origin.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.access_control_allow_methods.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.access_control_allow_headers.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.access_control_allow_credentials.header_value",
        Values::OneOf(&["true"]),
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.access_control_expose_headers.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.access_control_max_age.header_value",
        Values::Integer(0, u32::MAX as u64),
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.content_security_policy.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.x_content_type_options.header_value",
        Values::OneOf(&["nosniff"]),
        RESPONSE_HEADER,
    ),
    key(
        "routing.http.response.x_frame_options.header_value",
        Values::Text,
        RESPONSE_HEADER,
    ),
    key(
        "tcp.idle_timeout.seconds",
        Values::Integer(60, 6000),
        Effect::Refused("it belongs to TCP listeners of Network Load Balancers"),
    ),
];
