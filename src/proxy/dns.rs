//! Name resolution for DNS clusters, as Envoy's resolver does it: a name is looked up in
//! /etc/hosts first, then asked of the system's name servers (or of the one the operator gave
//! with `switchyard proxy --dns-resolver`), for the families the cluster's
//! `dns_lookup_family` allows; the answer says how long it holds (its smallest TTL). Nothing
//! is cached here: each refresh asks again, as Envoy's c-ares resolver does.
//!
//! Must not: decide when to look again or touch endpoints (proxy/dns_clusters.rs does).

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, Protocol, ResolverConfig, ResolverOpts,
};
use hickory_resolver::error::{ResolveError, ResolveErrorKind};
use hickory_resolver::TokioAsyncResolver;

use super::resources::dns_cluster::LookupFamily;

/// What one name resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// In the order the lookup family gives them (IPv4 first for ALL).
    pub addresses: Vec<IpAddr>,
    /// How long the answer holds: its smallest TTL (None for an IP address given as the name).
    pub ttl: Option<Duration>,
}

/// Resolves names one family at a time.
pub struct Resolver {
    ipv4: TokioAsyncResolver,
    ipv6: TokioAsyncResolver,
}

impl Resolver {
    /// A resolver asking `server` (UDP), or the system's name servers when None; /etc/hosts
    /// answers first either way.
    pub fn new(server: Option<SocketAddr>) -> Resolver {
        let (config, options) = match server {
            Some(address) => {
                let mut config = ResolverConfig::new();
                config.add_name_server(NameServerConfig::new(address, Protocol::Udp));
                (config, ResolverOpts::default())
            }
            None => hickory_resolver::system_conf::read_system_conf().unwrap_or_else(|error| {
                tracing::warn!(%error, "no system DNS configuration; names resolve from /etc/hosts only");
                (ResolverConfig::new(), ResolverOpts::default())
            }),
        };
        let for_family = |strategy| {
            let mut options = options.clone();
            options.ip_strategy = strategy;
            options.use_hosts_file = true;
            // Each refresh asks the server again, as Envoy does; the TTL decides the refresh
            // only when the cluster respects it.
            options.cache_size = 0;
            TokioAsyncResolver::tokio(config.clone(), options)
        };
        Resolver {
            ipv4: for_family(LookupIpStrategy::Ipv4Only),
            ipv6: for_family(LookupIpStrategy::Ipv6Only),
        }
    }

    /// The addresses of `host` in the families `family` allows. A name with no address in
    /// the families asked is an empty answer; a server that cannot be reached is an error.
    pub async fn resolve(&self, host: &str, family: LookupFamily) -> Result<Answer, ResolveError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Answer {
                addresses: vec![ip],
                ttl: None,
            });
        }
        let answer = match family {
            LookupFamily::V4Only => self.lookup(&self.ipv4, host).await?,
            LookupFamily::V6Only => self.lookup(&self.ipv6, host).await?,
            LookupFamily::V4Preferred => self.first_nonempty(&self.ipv4, &self.ipv6, host).await?,
            LookupFamily::Auto => self.first_nonempty(&self.ipv6, &self.ipv4, host).await?,
            LookupFamily::All => {
                let v4 = self.lookup(&self.ipv4, host).await?;
                let v6 = self.lookup(&self.ipv6, host).await?;
                merged(v4, v6)
            }
        };
        Ok(answer)
    }

    /// `first`'s answer, or `then`'s when `first` has no address.
    async fn first_nonempty(
        &self,
        first: &TokioAsyncResolver,
        then: &TokioAsyncResolver,
        host: &str,
    ) -> Result<Answer, ResolveError> {
        let answer = self.lookup(first, host).await?;
        if !answer.addresses.is_empty() {
            return Ok(answer);
        }
        self.lookup(then, host).await
    }

    /// One family's addresses of `host`; no such record is an empty answer.
    async fn lookup(
        &self,
        resolver: &TokioAsyncResolver,
        host: &str,
    ) -> Result<Answer, ResolveError> {
        match resolver.lookup_ip(host).await {
            Ok(lookup) => Ok(Answer {
                addresses: lookup.iter().collect(),
                ttl: Some(
                    lookup
                        .valid_until()
                        .saturating_duration_since(Instant::now()),
                ),
            }),
            Err(error) => match error.kind() {
                ResolveErrorKind::NoRecordsFound { negative_ttl, .. } => Ok(Answer {
                    addresses: Vec::new(),
                    ttl: negative_ttl.map(|seconds| Duration::from_secs(u64::from(seconds))),
                }),
                _ => Err(error),
            },
        }
    }
}

/// Both families' addresses, IPv4 first, holding as long as the shorter of the two.
fn merged(v4: Answer, v6: Answer) -> Answer {
    let ttl = match (v4.ttl, v6.ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Answer {
        addresses: v4.addresses.into_iter().chain(v6.addresses).collect(),
        ttl,
    }
}
