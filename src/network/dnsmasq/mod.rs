//! dnsmasq for a managed network: one instance per bridge serves DHCP (only to
//! containers with a reservation, so hutch knows each address before the guest asks),
//! router advertisements when the network has IPv6, and DNS for `NAME.DOMAIN`,
//! forwarding every other name to the host's resolvers.
//!
//! This module only renders text: the configuration file (run as
//! `dnsmasq --conf-file=PATH`; `--conf-file` stops dnsmasq reading
//! /etc/dnsmasq.conf, dnsmasq(8)), the DHCP hosts file and the extra hosts file
//! (both re-read on SIGHUP, dnsmasq(8) NOTES), and parses the lease file. The flags
//! follow what LXC's `lxc-net` passes (`--strict-order --bind-interfaces
//! --pid-file --listen-address --except-interface=lo --interface
//! --dhcp-leasefile --dhcp-authoritative`) and what libvirt and OpenStack add for
//! static-only DHCP (`--dhcp-range=ADDR,static,...`, `--dhcp-hostsfile`,
//! `--addn-hosts`, `--no-hosts`), with the differences noted in [`render`].

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use thiserror::Error;

use super::addr::{V4Net, V6Net, format_mac, parse_mac};

/// How long a DHCPv4 lease (and an RA's prefix lifetime) lasts; guests renew at half.
pub(crate) const LEASE_TIME: &str = "1h";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    #[error("failed to use DNS domain {domain:?}: {problem}")]
    Domain { domain: String, problem: &'static str },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Domain { .. } => Some(
                "a domain is dot-separated labels of 1-63 characters of a-z, 0-9 and '-' (not starting or ending with '-'), e.g. hutch or lab.internal"
                    .into(),
            ),
        }
    }
}

/// Checks a DNS domain for a network's names: dot-separated labels of `a-z`, `0-9`
/// and `-`, each 1-63 characters not starting or ending with `-`, 253 at most in
/// all, no trailing dot. Lower case only, as hutch's container names are.
pub(crate) fn validate_domain(domain: &str) -> Result<(), Error> {
    let fail = |problem| Err(Error::Domain { domain: domain.to_string(), problem });
    if domain.is_empty() {
        return fail("it is empty");
    }
    if domain.len() > 253 {
        return fail("it is longer than 253 characters");
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return fail("it has an empty label (a leading, trailing or doubled '.')");
        }
        if label.len() > 63 {
            return fail("a label is longer than 63 characters");
        }
        if !label.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-')) {
            return fail("it contains a character other than a-z, 0-9, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return fail("a label starts or ends with '-'");
        }
    }
    if domain.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return fail("its last label is all digits, which reads as an address");
    }
    Ok(())
}

/// One container's DHCP reservation (and DNS name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub mac: [u8; 6],
    pub ipv4: Ipv4Addr,
    /// The container's name: its hostname and DNS label.
    pub name: String,
}

/// Everything the configuration file names. Paths are hutch's own (no newlines).
#[derive(Debug, Clone)]
pub struct Conf<'a> {
    pub bridge: &'a str,
    pub net: V4Net,
    pub v6: Option<V6Net>,
    pub domain: &'a str,
    pub pid_file: &'a Path,
    /// `dhcp-hostsfile`: [`hosts_file`]'s output.
    pub hosts_file: &'a Path,
    /// `addn-hosts`: [`addn_hosts`]'s output.
    pub addn_hosts: &'a Path,
    pub lease_file: &'a Path,
    /// A file to log to; syslog when `None`.
    pub log_file: Option<&'a Path>,
}

/// A complete dnsmasq configuration for one bridge, for `dnsmasq --conf-file=PATH`.
///
/// * DNS binds only the bridge's addresses, so a resolver already on the host's port
///   53 (systemd-resolved, another dnsmasq) is untouched: `interface=` plus
///   `except-interface=lo` and `listen-address=` as `lxc-net` does, but
///   `bind-dynamic` rather than its `bind-interfaces`: a bridge without a running port
///   has no carrier, its IPv6 address stays tentative, and `bind-interfaces` then
///   fails to start ("failed to create listening socket ... Cannot assign requested
///   address"); `bind-dynamic` binds addresses as they become usable (dnsmasq(8);
///   libvirt uses it too).
/// * Names: `no-hosts` (the host's /etc/hosts is not the containers' business),
///   `addn-hosts=` for the reservations, `local=/DOMAIN/` so the domain is never
///   forwarded, `domain=` and `expand-hosts`; `domain-needed` keeps bare names
///   local. Everything else goes to the servers in /etc/resolv.conf, which dnsmasq
///   reads (and polls) by default. No `strict-order` (unlike `lxc-net`): dnsmasq's
///   default prefers whichever server answers, which copes with a dead first one.
/// * DHCPv4 only for reserved hosts: `dhcp-range=NETWORK,static,NETMASK,1h` serves
///   no dynamic pool, reservations come from `dhcp-hostsfile=`, and
///   `dhcp-authoritative` answers at once for a bridge hutch owns.
/// * IPv6: `enable-ra` and `dhcp-range=::,constructor:BRIDGE,ra-stateless,ra-names`
///   advertise the bridge's /64 for SLAAC, stateless DHCPv6 for DNS options, and
///   AAAA records for the names of DHCPv4 clients (dnsmasq(8), `--dhcp-range`).
///
/// dnsmasq drops to user `nobody` after startup: the pid file and the lease and log
/// files are opened as root first, but SIGHUP re-reads the hosts files as `nobody`,
/// so they must be world-readable (root's 0644 is) in directories `nobody` can
/// search. (SIGUSR2, which reopens the log file as `nobody`, is not used.)
pub(crate) fn render(c: &Conf) -> String {
    let gw = c.net.gateway();
    let mut s = String::new();
    let mut line = |l: &str| {
        s.push_str(l);
        s.push('\n');
    };
    line(&format!("# dnsmasq for hutch bridge {}, written by hutch: changes are overwritten.", c.bridge));
    line("# Run as `dnsmasq --conf-file=THIS`: no other configuration is read.");
    line(&format!("interface={}", c.bridge));
    line("except-interface=lo");
    line("bind-dynamic");
    line(&format!("listen-address={gw}"));
    if let Some(v6) = &c.v6 {
        line(&format!("listen-address={}", v6.gateway()));
    }
    line(&format!("pid-file={}", c.pid_file.display()));
    if let Some(log) = c.log_file {
        line(&format!("log-facility={}", log.display()));
        line("log-dhcp");
    }
    line("no-hosts");
    line(&format!("addn-hosts={}", c.addn_hosts.display()));
    line("domain-needed");
    line(&format!("local=/{}/", c.domain));
    line(&format!("domain={}", c.domain));
    line("expand-hosts");
    line(&format!("dhcp-range={},static,{},{LEASE_TIME}", c.net.normalised().network, c.net.netmask()));
    line(&format!("dhcp-hostsfile={}", c.hosts_file.display()));
    line("dhcp-authoritative");
    line(&format!("dhcp-leasefile={}", c.lease_file.display()));
    line(&format!("dhcp-option=option:router,{gw}"));
    line(&format!("dhcp-option=option:dns-server,{gw}"));
    line(&format!("dhcp-option=option:domain-search,{}", c.domain));
    if let Some(v6) = &c.v6 {
        line("enable-ra");
        line(&format!("dhcp-range=::,constructor:{},ra-stateless,ra-names,64,{LEASE_TIME}", c.bridge));
        line(&format!("dhcp-option=option6:dns-server,[{}]", v6.gateway()));
        line(&format!("dhcp-option=option6:domain-search,{}", c.domain));
    }
    s
}

fn by_address(rs: &[Reservation]) -> Vec<&Reservation> {
    let mut sorted: Vec<&Reservation> = rs.iter().collect();
    sorted.sort_by_key(|r| (r.ipv4, r.name.clone()));
    sorted
}

/// The `dhcp-hostsfile`: one `MAC,IP,NAME` line per reservation, by address.
pub(crate) fn hosts_file(rs: &[Reservation]) -> String {
    let mut s = String::new();
    for r in by_address(rs) {
        let _ = writeln!(s, "{},{},{}", format_mac(&r.mac), r.ipv4, r.name);
    }
    s
}

/// The `addn-hosts` file: `IP NAME.DOMAIN NAME` per reservation, by address, so
/// names resolve from the moment a container is created, leased or not.
pub(crate) fn addn_hosts(rs: &[Reservation], domain: &str) -> String {
    let mut s = String::new();
    for r in by_address(rs) {
        let _ = writeln!(s, "{} {}.{domain} {}", r.ipv4, r.name, r.name);
    }
    s
}

/// One DHCPv4 lease from dnsmasq's lease file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// When it expires, in seconds since the epoch; 0 for an infinite lease.
    pub expiry: u64,
    pub mac: [u8; 6],
    pub ipv4: Ipv4Addr,
    /// The client's hostname; `None` when dnsmasq wrote `*`.
    pub hostname: Option<String>,
    /// The client identifier (`01:...`); `None` when dnsmasq wrote `*`.
    pub client_id: Option<String>,
}

/// The IPv4 leases in a dnsmasq lease file, whose lines read
/// `EXPIRY MAC IP HOSTNAME CLIENTID` (`*` for an unknown hostname or client id).
/// The `duid` line and DHCPv6 leases (`EXPIRY IAID IPV6 HOSTNAME DUID`) are skipped,
/// as is any line that does not parse (dnsmasq may be rewriting the file).
pub(crate) fn parse_leases(text: &str) -> Vec<Lease> {
    let star = |f: &str| (f != "*").then(|| f.to_string());
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 4 || f.len() > 5 {
                return None;
            }
            Some(Lease {
                expiry: f[0].parse().ok()?,
                mac: parse_mac(f[1]).ok()?,
                ipv4: f[2].parse().ok()?,
                hostname: star(f[3]),
                client_id: f.get(4).and_then(|c| star(c)),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
