//! The one internal model that every config dialect lowers into, plus the diagnostics that
//! validation produces. It knows neither YAML nor xDS: `config` fills it, `translate` reads it.

pub mod access;
pub mod capacity;
pub mod diagnostics;
pub mod endpoint_facts;
pub mod frontend;
pub mod references;
pub mod regions;
pub mod resources;
pub mod route_policies;
pub mod service_policies;
pub mod tls;

pub use access::XdsClientRule;
pub use diagnostics::{Diagnostic, Diagnostics, Loc, Severity};
pub use frontend::{ForwardedFor, ForwardedHost, FrontendHttp, TlsHeaders};
pub use resources::*;
pub use route_policies::{CorsPolicy, FaultAbort, FaultDelay, FaultInjection, RequestMirror};
pub use service_policies::{
    CircuitBreakers, ConnectionFact, CustomHeader, CustomHeaders, HeaderValuePart,
};
pub use tls::{ProxyTls, SslCertificate, SslPolicy, SslProfile, TlsVersion};
