//! Published ports (`hutch port add|rm`): a container's `ports` in its config, and
//! the rules that forward them, changed at once while it runs. One host port belongs
//! to one container of this tree, is not taken from a host service, and is on an
//! address of this host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use thiserror::Error;

use super::{Error as ContainerError, io_err};
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::config::{Config, Port};
use crate::network::nft::Proto;

/// `[HOST_IP:]HOST_PORT/PROTO` as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// None: every address of the host.
    pub ip: Option<IpAddr>,
    pub port: u16,
    pub proto: Proto,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            None => write!(f, "{}/{}", self.port, self.proto),
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}/{}", self.port, self.proto),
            Some(ip) => write!(f, "{ip}:{}/{}", self.port, self.proto),
        }
    }
}

impl HostPort {
    /// Whether `p` (a config entry) is this host port, or overlaps it (one of them on
    /// every address).
    fn overlaps(&self, p: &Port) -> bool {
        p.host_port == self.port
            && p.proto == self.proto
            && (p.host_ip.is_none() || self.ip.is_none() || p.host_ip == self.ip)
    }

    fn is(&self, p: &Port) -> bool {
        p.host_port == self.port && p.proto == self.proto && p.host_ip == self.ip
    }
}

#[derive(Debug, Error)]
pub enum PortError {
    #[error(
        "failed to publish {host} for {name}: port 53 or 67 on every host address would take DNS or DHCP from \
         the host and its networks"
    )]
    EveryAddress { name: String, host: HostPort, container_port: u16 },
    #[error("failed to publish {host} for {name}: {other} already publishes it (to its port {container_port})")]
    Taken { name: String, host: HostPort, other: String, container_port: u16 },
    #[error(
        "failed to publish {host} for {name}: it is in use on the host; publishing it would take it from that service"
    )]
    InUseOnHost { name: String, host: HostPort },
    #[error("failed to publish {host} for {name}: {ip} is not an address of this host")]
    NotHostAddress { name: String, host: HostPort, ip: IpAddr },
    #[error("failed to publish {host} for {name}: IPv6 host addresses are not supported for published ports yet")]
    Ipv6 { name: String, host: HostPort },
    #[error("failed to publish {host} for {name}: cannot use {addr}: {source}")]
    Bind { name: String, host: HostPort, addr: SocketAddr, source: std::io::Error },
    #[error("failed to publish {host} for {name}: {key}: {message}")]
    Invalid { name: String, host: HostPort, key: String, message: String },
    #[error("failed to unpublish {host} of {name}: it is not published")]
    NotPublished { name: String, host: HostPort },
}

impl PortError {
    pub fn hint(&self) -> Option<String> {
        match self {
            PortError::EveryAddress { name, host, container_port } => {
                Some(format!("publish on one address: `hutch port add {name} HOST_IP:{} {container_port}`", host.port))
            }
            PortError::Taken { other, host, .. } => {
                let spec = host.ip.map_or(host.port.to_string(), |ip| format!("{ip}:{}", host.port));
                Some(format!("pick another host port, or `hutch port rm {other} {spec}`"))
            }
            PortError::NotPublished { name, .. } => Some(format!("see `hutch port list {name}`")),
            _ => None,
        }
    }
}

/// Publishes `host` as `container_port` of `name`: saved in its config, and forwarded
/// at once if it runs.
pub fn publish(paths: &Paths, name: &str, host: &HostPort, container_port: u16) -> Result<(), ContainerError> {
    super::require_exists(paths, name)?;
    if host.ip.is_none() && (host.port == 53 || (host.port == 67 && host.proto == Proto::Udp)) {
        return Err(PortError::EveryAddress { name: name.into(), host: host.clone(), container_port }.into());
    }
    // Held for the whole check-and-add: one host port, one container.
    let ports_lock = paths.locks().join(".ports.lock");
    let _ports = Lock::acquire(&ports_lock).map_err(io_err("lock", &ports_lock))?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    for other in super::list_names(paths) {
        let Ok(c) = Config::load(&paths.config(&other)) else { continue };
        if let Some(p) = c.ports.iter().find(|p| host.overlaps(p)) {
            let container_port = p.container_port;
            return Err(PortError::Taken { name: name.into(), host: host.clone(), other, container_port }.into());
        }
    }
    host_port_free(name, host)?;
    let mut config = Config::load(&paths.config(name))?;
    config.ports.push(Port { host_ip: host.ip, host_port: host.port, container_port, proto: host.proto });
    config.validate().map_err(|(key, message)| PortError::Invalid {
        name: name.into(),
        host: host.clone(),
        key,
        message,
    })?;
    apply(paths, name, &config)?;
    config.save(&paths.config(name))?;
    Ok(())
}

/// Stops publishing `host` for `name`.
pub fn unpublish(paths: &Paths, name: &str, host: &HostPort) -> Result<(), ContainerError> {
    super::require_exists(paths, name)?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let mut config = Config::load(&paths.config(name))?;
    let before = config.ports.len();
    config.ports.retain(|p| !host.is(p));
    if config.ports.len() == before {
        return Err(PortError::NotPublished { name: name.into(), host: host.clone() }.into());
    }
    apply(paths, name, &config)?;
    config.save(&paths.config(name))?;
    Ok(())
}

/// The ports `name` publishes.
pub fn list(paths: &Paths, name: &str) -> Result<Vec<Port>, ContainerError> {
    super::require_exists(paths, name)?;
    Ok(Config::load(&paths.config(name))?.ports)
}

/// Whether the host itself could listen on the port: refuses a port a host service
/// holds (publishing it would hijack that service) and an address that is not the
/// host's own (it would intercept traffic passing through).
fn host_port_free(name: &str, host: &HostPort) -> Result<(), PortError> {
    let ip = host.ip.unwrap_or(Ipv4Addr::UNSPECIFIED.into());
    if ip.is_ipv6() {
        return Err(PortError::Ipv6 { name: name.into(), host: host.clone() });
    }
    let addr = SocketAddr::new(ip, host.port);
    let bound = match host.proto {
        Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
        Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
    };
    let (name, host) = (name.to_string(), host.clone());
    match bound {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(PortError::InUseOnHost { name, host }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => Err(PortError::NotHostAddress { name, host, ip }),
        Err(source) => Err(PortError::Bind { name, host, addr, source }),
    }
}

/// Rules change at once for a running container; a stopped one gets them at start.
fn apply(paths: &Paths, name: &str, config: &Config) -> Result<(), ContainerError> {
    if super::observe(paths, name).status.is_up() {
        crate::network::attach::apply_ports(paths, name, config)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ip: Option<&str>, host_port: u16, proto: &str) -> Port {
        let host_ip = ip.map(|ip| ip.parse().unwrap());
        Port { host_ip, host_port, container_port: 80, proto: proto.parse().unwrap() }
    }

    #[test]
    fn a_host_port_on_every_address_overlaps_one_on_any_address() {
        let every = HostPort { ip: None, port: 8080, proto: Proto::Tcp };
        let one = HostPort { ip: Some("127.0.0.1".parse().unwrap()), ..every.clone() };
        assert!(every.overlaps(&port(Some("10.0.0.1"), 8080, "tcp")));
        assert!(one.overlaps(&port(None, 8080, "tcp")));
        assert!(one.overlaps(&port(Some("127.0.0.1"), 8080, "tcp")));
        assert!(!one.overlaps(&port(Some("10.0.0.1"), 8080, "tcp")));
        assert!(!one.overlaps(&port(Some("127.0.0.1"), 8080, "udp")));
        assert!(one.is(&port(Some("127.0.0.1"), 8080, "tcp")) && !one.is(&port(None, 8080, "tcp")));
        assert_eq!(one.to_string(), "127.0.0.1:8080/tcp");
        let v6 = HostPort { ip: Some("::1".parse().unwrap()), ..every };
        assert_eq!(v6.to_string(), "[::1]:8080/tcp");
    }

    #[test]
    fn dns_and_dhcp_on_every_address_are_refused_with_a_hint() {
        let e = PortError::EveryAddress {
            name: "web".into(),
            host: HostPort { ip: None, port: 53, proto: Proto::Udp },
            container_port: 53,
        };
        assert!(e.to_string().starts_with("failed to publish 53/udp for web: port 53 or 67"));
        assert_eq!(e.hint().unwrap(), "publish on one address: `hutch port add web HOST_IP:53 53`");
    }
}
