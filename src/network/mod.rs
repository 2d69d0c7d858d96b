//! Managed bridge networks: the bridge and veth pairs (netlink), addresses and
//! reservations, dnsmasq for DHCP and DNS, nftables for NAT and published ports.

pub mod addr;
pub mod attach;
pub(crate) mod dnsmasq;
pub mod link;
pub(crate) mod net;
pub(crate) mod nft;

use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("failed to read network definition {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("failed to find network {name}: it does not exist")]
    NoSuchNetwork { name: String },
    #[error("failed to create network {name}: it already exists")]
    Exists { name: String },
    #[error("failed to use {name:?} as a network name: {message}")]
    BadName { name: String, message: String },
    #[error("failed to use subnet {subnet}: {message}")]
    BadSubnet { subnet: String, message: String },
    #[error("failed to pick a subnet: every /24 in 10.0.0.0/8 collides with a route on this host")]
    NoFreeSubnet,
    #[error("failed to delete network {name}: containers use it ({containers})")]
    InUse { name: String, containers: String },
    #[error("failed to use {name} as a bridge: it is already a {kind} link")]
    NotABridge { name: String, kind: String },
    #[error("failed to use address {address} on {network}: {message}")]
    BadAddress { address: String, network: String, message: String },
    #[error("{message}{}", holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_default())]
    Allocate { network: String, message: String, holder: Option<String>, hint: Option<String> },
    #[error("failed to find {program}: it is not installed")]
    MissingProgram { program: &'static str, package: &'static str },
    #[error("failed to start dnsmasq for {network}: {message}")]
    Dnsmasq { network: String, message: String },
    #[error("failed to load nftables rules: {message}")]
    Nft { message: String },
    #[error(transparent)]
    Link(#[from] link::Error),
    #[error("failed to publish {what}: {message}")]
    Port { what: String, message: String },
    #[error(transparent)]
    Ports(#[from] nft::Error),
    #[error(transparent)]
    Domain(#[from] dnsmasq::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::MissingProgram { package, .. } => Some(format!("install the {package} package")),
            Error::NoSuchNetwork { .. } => {
                Some("see `hutch network list`, or create it with `hutch network create`".into())
            }
            Error::InUse { .. } => Some("destroy those containers, or move their nics to another network".into()),
            Error::NotABridge { name, .. } => {
                Some(format!("hutch will not take over {name}; create the network under another name"))
            }
            Error::Allocate { hint, .. } => hint.clone(),
            Error::NoFreeSubnet => Some("give one with --subnet CIDR".into()),
            Error::BadSubnet { .. } => Some("give a free IPv4 subnet such as 10.66.1.0/24".into()),
            Error::Link(e) => e.hint(),
            Error::Ports(e) => e.hint(),
            Error::Domain(e) => e.hint(),
            _ => None,
        }
    }
}
