//! nftables for a managed network: NAT (masquerade) for the containers' traffic out,
//! and published ports (DNAT, like `docker run -p`) reachable from other machines and
//! from the host itself.
//!
//! Each network has its own `inet` table (IPv4 and IPv6 in one), `hutch-NETWORK`,
//! alongside whatever Docker, firewalld or the administrator keep in theirs: hutch
//! replaces only its own table, atomically, and never flushes the ruleset. This module
//! only renders `nft -f` scripts; the caller runs them (`nft -f -` with the script on
//! stdin) and sets the sysctls they rely on.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::addr::{V4Net, V6Net};

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("failed to parse protocol {0:?}: expected tcp or udp")]
    Proto(String),
    #[error("failed to publish {port}: port 0 is not a port")]
    PortZero { port: Port },
    #[error("failed to publish {port}: containers are reachable over IPv4 only")]
    V6HostIp { port: Port },
    #[error("failed to publish {port}: {proto} port {host_port} is already published by {other}")]
    Clash { port: Port, proto: Proto, host_port: u16, other: Port },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Proto(_) => None,
            Error::PortZero { .. } => Some("give ports between 1 and 65535".into()),
            Error::V6HostIp { port } => Some(format!(
                "publish on an IPv4 address, or on all addresses ({}:{}/{})",
                port.host_port, port.dest_port, port.proto
            )),
            Error::Clash { .. } => Some("publish on another host port, or on a different host address".into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

impl FromStr for Proto {
    type Err = Error;
    fn from_str(s: &str) -> Result<Proto, Error> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            _ => Err(Error::Proto(s.to_string())),
        }
    }
}

/// A published port: `host_ip:host_port` (every local address when `host_ip` is
/// `None` or unspecified) forwarded to the container at `dest:dest_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Port {
    pub proto: Proto,
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub dest: Ipv4Addr,
    pub dest_port: u16,
}

impl Port {
    /// The host address this port is bound to; `None` for every local address
    /// (including an explicit `0.0.0.0` or `::`).
    pub fn bound_ip(&self) -> Option<IpAddr> {
        self.host_ip.filter(|ip| !ip.is_unspecified())
    }
}

/// `8080->10.0.3.5:80/tcp`, `127.0.0.1:8080->10.0.3.5:80/tcp`, `[::1]:8080->...`.
impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            None => {}
        }
        write!(f, "{}->{}:{}/{}", self.host_port, self.dest, self.dest_port, self.proto)
    }
}

/// Refuses ports [`render`] cannot express or that would fight: port 0, an IPv6
/// host address (the container has only IPv4 to forward to), and two ports on the
/// same protocol and host port whose host addresses overlap (all addresses overlap
/// every one). Pass every network's ports, not just one network's: each network's
/// table DNATs independently, and two tables claiming a port would race.
pub(crate) fn check_ports(ports: &[Port]) -> Result<(), Error> {
    for (i, p) in ports.iter().enumerate() {
        if p.host_port == 0 || p.dest_port == 0 {
            return Err(Error::PortZero { port: *p });
        }
        if matches!(p.bound_ip(), Some(IpAddr::V6(_))) {
            return Err(Error::V6HostIp { port: *p });
        }
        let clash = ports[..i].iter().find(|o| {
            o.proto == p.proto
                && o.host_port == p.host_port
                && (o.bound_ip().is_none() || p.bound_ip().is_none() || o.bound_ip() == p.bound_ip())
        });
        if let Some(other) = clash {
            return Err(Error::Clash { port: *p, proto: p.proto, host_port: p.host_port, other: *other });
        }
    }
    Ok(())
}

/// What hutch's table for one network holds.
#[derive(Debug, Clone)]
pub struct Ruleset<'a> {
    /// The network's table ([`super::net::Network::table`]).
    pub table: &'a str,
    /// The network's bridge (a name [`super::addr::validate_bridge_name`] accepts).
    pub bridge: &'a str,
    pub net: V4Net,
    pub v6: Option<V6Net>,
    /// Masquerade containers' traffic leaving the subnet.
    pub nat: bool,
    /// Published ports, already through [`check_ports`].
    pub ports: &'a [Port],
    /// Addresses never redirected to a published port: every hutch gateway, so a
    /// container publishing port 53 cannot answer other networks' DNS.
    pub keep: &'a [Ipv4Addr],
}

/// One `nft -f` script that replaces the network's table in a single transaction:
/// `table inet T {}` creates it if missing (adding an existing table is no error),
/// `delete table inet T` drops it with every chain and rule, and the full definition
/// follows. Either all of it applies or none.
///
/// Chains:
/// * `forward` (filter): accepts the bridge's traffic out, replies back in, and new
///   connections to published ports. Our policy is accept, so these rules mostly
///   document intent: a packet must be accepted by *every* base chain on the hook,
///   and another table's drop (Docker sets iptables' FORWARD policy to DROP) still
///   drops it. Letting the bridge through such a firewall is the caller's business.
/// * `prerouting` (dstnat): DNAT for published ports arriving from outside (or from
///   containers: hairpin). Packets from the bridge to the gateway address itself are
///   left alone first, so publishing e.g. port 53 cannot hijack the containers' own
///   DNS (dnsmasq on the gateway).
/// * `output` (nat, -100): the same DNAT for connections the host itself makes, to
///   127.0.0.1 or any of its addresses.
/// * `postrouting` (srcnat): masquerade for traffic leaving the subnet when `nat`;
///   masquerade of 127.0.0.0/8 sources going to the bridge (a DNATed connection from
///   the host's 127.0.0.1 needs the bridge's `net.ipv4.conf.BRIDGE.route_localnet=1`,
///   which the caller sets, and a source the container can answer); and hairpin
///   masquerade, so a container reaching a sibling's published port through a host
///   address gets the reply back through the host (`ct status dnat` limits it to
///   DNATed connections, not siblings talking directly across a bridge that
///   br_netfilter shows to inet hooks).
///
/// Ports with an IPv6 host address are left out ([`check_ports`] refuses them).
pub(crate) fn render(r: &Ruleset) -> String {
    let net = r.net.normalised();
    let ports: Vec<&Port> = r.ports.iter().filter(|p| !matches!(p.bound_ip(), Some(IpAddr::V6(_)))).collect();
    let mut s = String::new();
    let (t, br) = (r.table, r.bridge);
    line(&mut s, &format!("# hutch network table {t} (bridge {br}), replaced whole on every change."));
    line(&mut s, &format!("table inet {t} {{}}"));
    line(&mut s, &format!("delete table inet {t}"));
    line(&mut s, &format!("table inet {t} {{"));
    guard_chains(&mut s, br, &net);
    forward_chain(&mut s, br, &ports);
    dnat_chains(&mut s, r, &net, &ports);
    postrouting_chain(&mut s, r, &net, &ports);
    line(&mut s, "}");
    s
}

fn line(s: &mut String, l: &str) {
    s.push_str(l);
    s.push('\n');
}

/// Before NAT (-100): nothing from the bridge may reach the host's loopback
/// (route_localnet is on for the bridge, CVE-2020-8558), and containers speak only
/// from their subnet (DHCP discovery from 0.0.0.0 aside). The network's dnsmasq
/// answers only its own bridge (and the host itself).
fn guard_chains(s: &mut String, br: &str, net: &V4Net) {
    line(s, "\tchain guard {");
    line(s, "\t\ttype filter hook prerouting priority -150; policy accept;");
    line(s, &format!("\t\tiifname \"{br}\" ip daddr 127.0.0.0/8 drop"));
    line(s, &format!("\t\tiifname \"{br}\" ip saddr 0.0.0.0 udp dport 67 accept"));
    line(s, &format!("\t\tiifname \"{br}\" meta nfproto ipv4 ip saddr != {net} drop"));
    line(s, "\t}");
    line(s, "\tchain input {");
    line(s, "\t\ttype filter hook input priority filter; policy accept;");
    line(
        s,
        &format!(
            "\t\tip daddr {} iifname != {{ \"{br}\", \"lo\" }} meta l4proto {{ tcp, udp }} th dport {{ 53, 67 }} drop",
            net.gateway()
        ),
    );
    line(s, "\t}");
}

fn forward_chain(s: &mut String, br: &str, ports: &[&Port]) {
    line(s, "\tchain forward {");
    line(s, "\t\ttype filter hook forward priority filter; policy accept;");
    line(s, &format!("\t\tiifname \"{br}\" accept"));
    line(s, &format!("\t\toifname \"{br}\" ct state established,related accept"));
    let mut seen = HashSet::new();
    for p in ports.iter().filter(|p| seen.insert((p.proto, p.dest, p.dest_port))) {
        line(
            s,
            &format!("\t\toifname \"{br}\" ip daddr {} {} dport {} ct state new accept", p.dest, p.proto, p.dest_port),
        );
    }
    line(s, "\t}");
}

/// The DNAT rules of one published port; `local` for connections the host makes
/// itself: only 127.0.0.1 of the loopback range (not a stub resolver on 127.0.0.53,
/// say), and the host's other addresses. `keep` lists the addresses never redirected.
fn dnat(p: &Port, local: bool, keep: &str) -> Vec<String> {
    let rule = |matcher: String| {
        format!("\t\t{matcher} {} dport {} dnat ip to {}:{}", p.proto, p.host_port, p.dest, p.dest_port)
    };
    match p.bound_ip() {
        Some(ip) => vec![rule(format!("ip daddr {ip}"))],
        // The family check keeps IPv6 packets away from an IPv4 DNAT: `fib` alone
        // matches both in an inet table.
        None if local => vec![
            rule("ip daddr 127.0.0.1".to_string()),
            rule(format!("meta nfproto ipv4 fib daddr type local ip daddr != 127.0.0.0/8 ip daddr != {{ {keep} }}")),
        ],
        None => vec![rule(format!("meta nfproto ipv4 fib daddr type local ip daddr != {{ {keep} }}"))],
    }
}

/// `prerouting` and `output`: DNAT for published ports, from outside and from the host.
fn dnat_chains(s: &mut String, r: &Ruleset, net: &V4Net, ports: &[&Port]) {
    let mut keep: Vec<String> = r.keep.iter().map(|a| a.to_string()).collect();
    keep.push(net.gateway().to_string());
    keep.sort();
    keep.dedup();
    let keep = keep.join(", ");
    line(s, "\tchain prerouting {");
    line(s, "\t\ttype nat hook prerouting priority dstnat; policy accept;");
    if !ports.is_empty() {
        line(s, &format!("\t\tiifname \"{}\" ip daddr {} return", r.bridge, net.gateway()));
    }
    for p in ports {
        dnat(p, false, &keep).iter().for_each(|l| line(s, l));
    }
    line(s, "\t}");

    line(s, "\tchain output {");
    line(s, "\t\ttype nat hook output priority -100; policy accept;");
    for p in ports {
        dnat(p, true, &keep).iter().for_each(|l| line(s, l));
    }
    line(s, "\t}");
}

fn postrouting_chain(s: &mut String, r: &Ruleset, net: &V4Net, ports: &[&Port]) {
    line(s, "\tchain postrouting {");
    line(s, "\t\ttype nat hook postrouting priority srcnat; policy accept;");
    if r.nat {
        line(s, &format!("\t\tip saddr {net} ip daddr != {net} masquerade"));
        if let Some(v6) = &r.v6 {
            line(s, &format!("\t\tip6 saddr {v6} ip6 daddr != {v6} masquerade"));
        }
    }
    if !ports.is_empty() {
        line(s, &format!("\t\tip saddr 127.0.0.0/8 oifname \"{}\" masquerade", r.bridge));
    }
    // One hairpin rule per destination, however many host ports lead to it.
    let mut seen = HashSet::new();
    for p in ports.iter().filter(|p| seen.insert((p.proto, p.dest, p.dest_port))) {
        line(
            s,
            &format!(
                "\t\tip saddr {net} ip daddr {} {} dport {} ct status dnat masquerade",
                p.dest, p.proto, p.dest_port
            ),
        );
    }
    line(s, "\t}");
}

/// Removes the table if it exists and does nothing otherwise (the same add-then-
/// delete idiom, in one transaction).
pub(crate) fn render_delete(table: &str) -> String {
    format!("table inet {table} {{}}\ndelete table inet {table}\n")
}

#[cfg(test)]
mod tests;
