//! Endpoint groups: the addresses a service's traffic can go to, in one zone (a locality).
//! A group's members are machines reached on a named port, endpoints with their own ports,
//! or destinations on the internet (an address, or a name the proxy resolves).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Endpoint, Loc};

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointGroup {
    pub name: String,
    #[serde(skip)]
    pub loc: Loc,
    pub members: Members,
    pub zone: String,
    pub region: String,
    /// Port name → port, for members reached on a service's named port.
    pub named_ports: BTreeMap<String, u16>,
    /// The port of endpoints that do not name one.
    pub default_port: Option<u16>,
    pub endpoints: Vec<Endpoint>,
}

/// What a group's members are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Members {
    /// Machines, reached on the port a service names (or their own).
    Instances,
    /// Endpoints with their own ports.
    Endpoints,
    /// A destination on the internet, by address; without a port, 443 over TLS and 80
    /// otherwise. Not health checked.
    InternetAddress,
    /// A destination on the internet by DNS name, resolved by the proxy; ports as for
    /// InternetAddress.
    InternetName,
}

impl Members {
    /// Internet destinations: reached on the protocol's port, never health checked.
    pub fn is_internet(self) -> bool {
        matches!(self, Members::InternetAddress | Members::InternetName)
    }
}
