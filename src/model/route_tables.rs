//! Route tables: what an HTTP proxy does with a request. Virtual hosts, tried in order, each
//! naming the hosts it takes; within one, routes tried in order, the first whose match holds
//! deciding (a service, a weighted split, a redirect or a fixed answer, with what else the
//! route does to the request). The dialects put the routes in the order their cloud decides
//! in; translation keeps that order.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{FrontendHttp, HeaderAction, Loc, MatchRule, Ref, RouteExtras, RouteTarget};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub virtual_hosts: Vec<VirtualHost>,
    /// Headers every request and response through the table gets or loses.
    pub header_action: HeaderAction,
    /// How the proxy in front of the table treats its clients.
    pub frontend: FrontendHttp,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualHost {
    pub name: String,
    /// Host names (`*` wildcards), as clients write them.
    pub domains: Vec<String>,
    pub routes: Vec<Route>,
    pub header_action: HeaderAction,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    #[serde(rename = "match")]
    pub matches: MatchRule,
    pub target: RouteTarget,
    pub extras: RouteExtras,
}

impl RouteTable {
    /// Every route of every virtual host, in order.
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.virtual_hosts
            .iter()
            .flat_map(|host| host.routes.iter())
    }

    /// The names of the services the table sends requests to.
    pub fn services(&self) -> BTreeSet<&str> {
        self.routes()
            .flat_map(|route| route.target.services())
            .map(|service| service.name.as_str())
            .collect()
    }
}

impl RouteTarget {
    /// The services this target sends to.
    pub fn services(&self) -> Vec<&Ref> {
        match self {
            RouteTarget::Service(service) => vec![service],
            RouteTarget::Weighted { services, .. } => services.iter().map(|s| &s.service).collect(),
            RouteTarget::Redirect(_) | RouteTarget::FixedResponse(_) => Vec::new(),
        }
    }
}
