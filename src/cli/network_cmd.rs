//! network create, list, show, delete; port add, list, rm.

use std::net::{IpAddr, Ipv4Addr};

use serde::Serialize;

use super::{NetworkCmd, PortCmd};
use crate::base::output::{self, Format};
use crate::base::paths::Paths;
use crate::container::ports::{self, HostPort};
use crate::error::Error;
use crate::network::net;
use crate::network::nft::Proto;

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
            .map(|x| Member { container: x.container, nic: x.nic, mac: x.mac.to_string(), ipv4: x.ipv4.to_string() })
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
                n.ipv6.map(|v| format!(", {v}")).unwrap_or_default(),
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
                                v.network.ipv4.to_string(),
                                v.network.ipv6.map_or_else(|| "-".into(), |v| v.to_string()),
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
                    out!("IPv6:     {}", v.network.ipv6.map_or_else(|| "none".into(), |v| v.to_string()));
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
            net::delete(paths, &name, &crate::container::list_names(paths))?;
            out!("Deleted network {name}");
        }
    }
    Ok(0)
}

/// "[HOST_IP:]PORT" or "[V6]:PORT", with the protocol.
fn parse_host(s: &str, proto: Proto) -> Result<HostPort, Error> {
    let bad = || Error::cli(format!("read {s:?}"), "expected [HOST_IP:]HOST_PORT, e.g. 8080 or 127.0.0.1:8080");
    let (ip, port) = match s.rsplit_once(':') {
        Some((ip, port)) => (Some(ip.trim_start_matches('[').trim_end_matches(']')), port),
        None => (None, s),
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(bad)?;
    let ip: Option<IpAddr> = ip.map(|ip| ip.parse().map_err(|_| bad())).transpose()?;
    // 0.0.0.0 means every address, as no address does.
    Ok(HostPort { ip: ip.filter(|ip| *ip != IpAddr::from(Ipv4Addr::UNSPECIFIED)), port, proto })
}

pub fn port(paths: &Paths, cmd: PortCmd) -> Result<u8, Error> {
    match cmd {
        PortCmd::List { name, format } => {
            let ports = ports::list(paths, &name)?;
            match format {
                Format::Json => super::emit_json("ports", &ports)?,
                Format::Text => {
                    let rows: Vec<Vec<String>> = ports
                        .iter()
                        .map(|p| {
                            vec![
                                p.host_ip.map_or_else(|| "*".into(), |ip| ip.to_string()),
                                p.host_port.to_string(),
                                p.container_port.to_string(),
                                p.proto.to_string(),
                            ]
                        })
                        .collect();
                    super::emit(&output::table(&["HOST_IP", "HOST_PORT", "CONTAINER_PORT", "PROTO"], &rows))?;
                }
            }
        }
        PortCmd::Add { name, host, container_port, proto } => {
            let spec = parse_host(&host, proto)?;
            ports::publish(paths, &name, &spec, container_port)?;
            out!("Published {host}/{proto} -> {name}:{container_port}");
        }
        PortCmd::Rm { name, host, proto } => {
            ports::unpublish(paths, &name, &parse_host(&host, proto)?)?;
            out!("Unpublished {host}/{proto} of {name}");
        }
    }
    Ok(0)
}
