//! network create, list, show, delete; port add, list, rm.

use serde::Serialize;

use super::{NetworkCmd, PortCmd};
use crate::base::lock::Lock;
use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::config::{Config, Port};
use crate::error::Error;
use crate::network::{attach, net};

#[derive(Serialize)]
struct NetworkView {
    #[serde(flatten)]
    network: net::Network,
    gateway: String,
    dnsmasq_pid: Option<i32>,
    containers: Vec<Member>,
}

#[derive(Serialize)]
struct Member {
    container: String,
    nic: String,
    mac: String,
    ipv4: String,
}

fn view(paths: &Paths, n: net::Network) -> Result<NetworkView, Error> {
    let r = net::load_reservations(paths, &n.name)?;
    Ok(NetworkView {
        gateway: n.v4().gateway().to_string(),
        dnsmasq_pid: net::dnsmasq_pid(paths, &n.name),
        containers: r
            .list
            .into_iter()
            .map(|x| Member { container: x.container, nic: x.nic, mac: x.mac, ipv4: x.ipv4 })
            .collect(),
        network: n,
    })
}

pub fn network(paths: &Paths, cmd: NetworkCmd) -> Result<u8, Error> {
    match cmd {
        NetworkCmd::Create { name, subnet, ipv6, no_nat, domain } => {
            let opts =
                net::CreateOptions { subnet: subnet.as_deref(), ipv6: Some(&ipv6), nat: !no_nat, domain: &domain };
            let n = net::create(paths, &name, &opts)?;
            out!(
                "Created network {name}: bridge {}, {} (gateway {}){}{}",
                n.bridge,
                n.ipv4,
                n.v4().gateway(),
                n.ipv6.as_deref().map(|v| format!(", {v}")).unwrap_or_default(),
                if n.nat { ", NAT" } else { "" }
            );
        }
        NetworkCmd::List { format } => {
            let views = net::list(paths)?.into_iter().map(|n| view(paths, n)).collect::<Result<Vec<_>, _>>()?;
            match format {
                Format::Json => super::emit_json("networks", &views)?,
                Format::Text => {
                    let rows: Vec<Vec<String>> = views
                        .iter()
                        .map(|v| {
                            vec![
                                v.network.name.clone(),
                                v.network.bridge.clone(),
                                v.network.ipv4.clone(),
                                v.network.ipv6.clone().unwrap_or_else(|| "-".into()),
                                if v.network.nat { "yes".into() } else { "no".into() },
                                v.containers.len().to_string(),
                                if v.dnsmasq_pid.is_some() { "up".into() } else { "down".into() },
                            ]
                        })
                        .collect();
                    super::emit(&output::table(
                        &["NAME", "BRIDGE", "IPV4", "IPV6", "NAT", "CONTAINERS", "DNSMASQ"],
                        &rows,
                    ))?;
                }
            }
        }
        NetworkCmd::Show { name, format } => {
            let v = view(paths, net::require(paths, &name)?)?;
            match format {
                Format::Json => super::emit_json("network", &v)?,
                Format::Text => {
                    out!("Name:     {}", v.network.name);
                    out!("Bridge:   {}", v.network.bridge);
                    out!("IPv4:     {} (gateway {})", v.network.ipv4, v.gateway);
                    out!("IPv6:     {}", v.network.ipv6.as_deref().unwrap_or("none"));
                    out!("NAT:      {}", if v.network.nat { "yes" } else { "no" });
                    out!("DNS:      NAME.{} at {}", v.network.domain, v.gateway);
                    out!("dnsmasq:  {}", v.dnsmasq_pid.map_or("not running".to_string(), |p| format!("pid {p}")));
                    let rows: Vec<Vec<String>> = v
                        .containers
                        .iter()
                        .map(|m| vec![m.container.clone(), m.nic.clone(), m.ipv4.clone(), m.mac.clone()])
                        .collect();
                    super::emit(&output::table(&["CONTAINER", "NIC", "IPV4", "MAC"], &rows))?;
                }
            }
        }
        NetworkCmd::Delete { name } => {
            net::delete(paths, &name)?;
            out!("Deleted network {name}");
        }
    }
    Ok(0)
}

/// "[HOST_IP:]PORT" or "[V6]:PORT".
fn parse_host(s: &str) -> Result<(Option<String>, u16), Error> {
    let bad = || Error::cli(format!("read {s:?}"), "expected [HOST_IP:]HOST_PORT, e.g. 8080 or 127.0.0.1:8080");
    let (ip, port) = match s.rsplit_once(':') {
        Some((ip, port)) => (Some(ip.trim_start_matches('[').trim_end_matches(']').to_string()), port),
        None => (None, s),
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    if let Some(ip) = &ip {
        ip.parse::<std::net::IpAddr>().map_err(|_| bad())?;
    }
    // 0.0.0.0 means every address, as no address does.
    Ok((ip.filter(|s| s != "0.0.0.0"), port))
}

pub fn port(paths: &Paths, cmd: PortCmd) -> Result<u8, Error> {
    match cmd {
        PortCmd::List { name, format } => {
            crate::container::require_exists(paths, &name)?;
            let config = Config::load(&paths.config(&name))?;
            match format {
                Format::Json => super::emit_json("ports", &config.ports)?,
                Format::Text => {
                    let rows: Vec<Vec<String>> = config
                        .ports
                        .iter()
                        .map(|p| {
                            vec![
                                p.host_ip.clone().unwrap_or_else(|| "*".into()),
                                p.host_port.to_string(),
                                p.container_port.to_string(),
                                p.proto.clone(),
                            ]
                        })
                        .collect();
                    super::emit(&output::table(&["HOST_IP", "HOST_PORT", "CONTAINER_PORT", "PROTO"], &rows))?;
                }
            }
        }
        PortCmd::Add { name, host, container_port, proto } => {
            let proto = proto.to_string();
            crate::container::require_exists(paths, &name)?;
            let (host_ip, host_port) = parse_host(&host)?;
            let what = format!("publish {host}/{proto} for {name}");
            if host_ip.is_none() && (host_port == 53 || (host_port == 67 && proto == "udp")) {
                return Err(Error::with_hint(
                    what,
                    "port 53 or 67 on every host address would take DNS or DHCP from the host and its networks",
                    format!("publish on one address: `hutch port add {name} HOST_IP:{host_port} {container_port}`"),
                ));
            }
            // Held for the whole check-and-add: one host port, one container.
            let ports_lock = paths.locks().join(".ports.lock");
            let _ports = Lock::acquire(&ports_lock)
                .map_err(|e| Error::cli(format!("lock {}", ports_lock.display()), e.to_string()))?;
            let _lock =
                Lock::acquire(&paths.lock(&name)).map_err(|e| Error::cli(format!("lock {name}"), e.to_string()))?;
            // One host port, one container: across every container of this tree.
            for other in crate::container::list_names(paths) {
                let Ok(c) = Config::load(&paths.config(&other)) else { continue };
                if let Some(p) = c.ports.iter().find(|p| {
                    p.host_port == host_port
                        && p.proto == proto
                        && (p.host_ip.is_none() || host_ip.is_none() || p.host_ip == host_ip)
                }) {
                    return Err(Error::with_hint(
                        format!("publish {host}/{proto} for {name}"),
                        format!("{other} already publishes it (to its port {})", p.container_port),
                        format!("pick another host port, or `hutch port rm {other} {host}`"),
                    ));
                }
            }
            // Not taken by a host service, and an address of this host.
            host_port_free(host_ip.as_deref(), host_port, &proto).map_err(|m| Error::cli(what.clone(), m))?;
            let mut config = Config::load(&paths.config(&name))?;
            config.ports.push(Port { host_ip, host_port, container_port, proto: proto.clone() });
            config
                .validate()
                .map_err(|(k, m)| Error::cli(format!("publish {host} for {name}"), format!("{k}: {m}")))?;
            apply(paths, &name, &config)?;
            config.save(&paths.config(&name))?;
            out!("Published {host}/{proto} -> {name}:{container_port}");
        }
        PortCmd::Rm { name, host, proto } => {
            let proto = proto.to_string();
            crate::container::require_exists(paths, &name)?;
            let (host_ip, host_port) = parse_host(&host)?;
            let _lock =
                Lock::acquire(&paths.lock(&name)).map_err(|e| Error::cli(format!("lock {name}"), e.to_string()))?;
            let mut config = Config::load(&paths.config(&name))?;
            let before = config.ports.len();
            config.ports.retain(|p| !(p.host_port == host_port && p.proto == proto && p.host_ip == host_ip));
            if config.ports.len() == before {
                return Err(Error::with_hint(
                    format!("unpublish {host}/{proto} of {name}"),
                    "it is not published",
                    format!("see `hutch port list {name}`"),
                ));
            }
            apply(paths, &name, &config)?;
            config.save(&paths.config(&name))?;
            out!("Unpublished {host}/{proto} of {name}");
        }
    }
    Ok(0)
}

/// Whether the host itself could listen on the port: refuses a port a host service
/// holds (publishing it would hijack that service) and an address that is not the
/// host's own (it would intercept traffic passing through).
fn host_port_free(host_ip: Option<&str>, port: u16, proto: &str) -> Result<(), String> {
    let ip: std::net::IpAddr = match host_ip {
        None => std::net::Ipv4Addr::UNSPECIFIED.into(),
        Some(s) => s.parse().map_err(|_| format!("{s:?} is not an IP address"))?,
    };
    if ip.is_ipv6() {
        return Err("IPv6 host addresses are not supported for published ports yet".into());
    }
    let addr = std::net::SocketAddr::new(ip, port);
    let bound = match proto {
        "udp" => std::net::UdpSocket::bind(addr).map(drop),
        _ => std::net::TcpListener::bind(addr).map(drop),
    };
    match bound {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            Err(format!("port {port}/{proto} is in use on the host; publishing it would take it from that service"))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            Err(format!("{ip} is not an address of this host"))
        }
        Err(e) => Err(format!("cannot use {addr}: {e}")),
    }
}

/// Rules change at once for a running container; a stopped one gets them at start.
fn apply(paths: &Paths, name: &str, config: &Config) -> Result<(), Error> {
    if crate::container::observe(paths, name).status.is_up() {
        attach::apply_ports(paths, name, config)?;
    }
    Ok(())
}
