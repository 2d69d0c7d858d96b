//! A container's side of networking: NICs and their reservations (made at create, so
//! `hutch list` knows addresses before the guest asks), the networks brought up at
//! start, veth pairs plugged in by the monitor, published ports, and cleanup.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::addr;
use super::link::Netlink;
use super::net::{self, Network};
use super::{Error, nft};
use crate::base::paths::Paths;
use crate::config::{Config, Nic};

/// A new NIC on `network`, with a fresh stable MAC.
pub(crate) fn new_nic(network: &str, name: &str, container: &str) -> Nic {
    let seed = format!("{container}/{name}/{}", crate::sys::random_hex128());
    Nic {
        network: network.into(),
        name: name.into(),
        mac: addr::Mac(addr::mac_for(&seed)),
        ipv4: addr::Ipv4Mode::Auto,
        ipv4_address: None,
    }
}

/// Reserves addresses for every NIC (creating the default network on first use) and
/// records them in the NICs. On error nothing stays reserved.
pub(crate) fn reserve_all(paths: &Paths, container: &str, nics: &mut [Nic]) -> Result<(), Error> {
    for i in 0..nics.len() {
        // A generated MAC is 24 random bits: draw again on the rare clash.
        if let Ok(r) = net::load_reservations(paths, &nics[i].network) {
            for _ in 0..16 {
                if !r.list.iter().any(|x| x.mac == nics[i].mac && x.container != container) {
                    break;
                }
                nics[i].mac = new_nic(&nics[i].network, &nics[i].name, container).mac;
            }
        }
        let result = net::ensure(paths, &nics[i].network).and_then(|n| net::reserve(paths, &n, container, &nics[i]));
        match result {
            Ok(ip) => nics[i].ipv4_address = Some(ip),
            Err(e) => {
                release_all(paths, container, &nics[..i]);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Frees the reservations of `container` on the networks of `nics`.
pub(crate) fn release_all(paths: &Paths, container: &str, nics: &[Nic]) {
    for n in nics {
        let _ = net::release(paths, &n.network, container);
    }
}

/// Host-side veth name of NIC `idx`.
pub fn host_name(paths: &Paths, container: &str, idx: usize) -> String {
    addr::ifname("hv-", &link_seed(paths, container, idx))
}

/// Temporary name of the container side, until the container renames it.
pub(crate) fn peer_name(paths: &Paths, container: &str, idx: usize) -> String {
    addr::ifname("hp-", &link_seed(paths, container, idx))
}

fn link_seed(paths: &Paths, container: &str, idx: usize) -> String {
    // '.' cannot occur in container names: web's eth1 is never web-1's eth0.
    let suffix = if idx == 0 { String::new() } else { format!(".{idx}") };
    format!("{}{container}{suffix}", paths.scope())
}

/// At start, before the monitor: every NIC's network up (bridge, dnsmasq, NAT; repaired
/// if something died), its reservation in place, and the published ports loaded.
pub(crate) fn prepare(paths: &Paths, container: &str, config: &Config) -> Result<(), Error> {
    // Reservations the config no longer has (a nic edited away or moved).
    for n in net::list(paths)? {
        let r = net::load_reservations(paths, &n.name)?;
        let stale = r
            .list
            .iter()
            .any(|x| x.container == container && !config.nics.iter().any(|c| c.network == n.name && c.name == x.nic));
        if stale {
            net::release_stale(paths, &n.name, container, &config.nics)?;
        }
    }
    for nic in &config.nics {
        let n = net::require(paths, &nic.network)?;
        net::up(paths, &n)?;
        net::reserve(paths, &n, container, nic)?;
    }
    apply_ports(paths, container, config)
}

/// The gateways of every network of this tree: never redirected to a published port.
fn gateways(paths: &Paths) -> Vec<Ipv4Addr> {
    net::list(paths).unwrap_or_default().iter().map(|n| n.v4().gateway()).collect()
}

/// In the monitor, between clone and init: a veth pair per NIC, the host end on the
/// bridge and up, the other end moved into the container's network namespace (`pid`).
/// Returns (temporary name, final name) pairs for the child to rename.
pub(crate) fn plug(paths: &Paths, container: &str, config: &Config, pid: i32) -> Result<Vec<(String, String)>, Error> {
    if config.nics.is_empty() {
        return Ok(Vec::new());
    }
    let nl = Netlink::new()?;
    let mut renames = Vec::new();
    for (i, nic) in config.nics.iter().enumerate() {
        let n = net::require(paths, &nic.network)?;
        let bridge = nl.get(&n.bridge)?.ok_or_else(|| Error::NoSuchNetwork { name: n.name.clone() })?;
        let (host, peer) = (host_name(paths, container, i), peer_name(paths, container, i));
        // The reservation follows the config (a reboot from inside reloads it).
        net::reserve(paths, &n, container, nic)?;
        // Leftovers of a monitor killed half-way: only veths, never someone's bridge.
        for name in [&host, &peer] {
            if nl.get(name)?.is_some_and(|l| l.kind.as_deref() == Some("veth")) {
                nl.delete(name)?;
            }
        }
        let mac = nic.mac.0;
        let (h, p) = nl.create_veth(&host, &peer, mac)?;
        let plugged = nl
            .set_master(h.index, bridge.index)
            .and_then(|_| nl.set_up(h.index))
            .and_then(|_| nl.move_to_netns_of(p.index, pid));
        if let Err(e) = plugged {
            let _ = nl.delete(&host);
            return Err(e.into());
        }
        renames.push((peer, nic.name.clone()));
    }
    Ok(renames)
}

/// After the container ended: its veths (usually gone with its namespace) and its
/// published ports. Never fails; returns what went wrong, for the log.
pub(crate) fn unplug(paths: &Paths, container: &str, config: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if !config.nics.is_empty() {
        match Netlink::new() {
            Ok(nl) => {
                for i in 0..config.nics.len() {
                    let host = host_name(paths, container, i);
                    let is_veth = nl.get(&host).ok().flatten().is_some_and(|l| l.kind.as_deref() == Some("veth"));
                    if is_veth {
                        if let Err(e) = nl.delete(&host) {
                            problems.push(e.to_string());
                        }
                    }
                }
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    if let Err(e) = remove_ports(paths, container) {
        problems.push(e.to_string());
    }
    problems
}

pub(crate) fn ports_table(paths: &Paths, container: &str) -> String {
    format!("{}c-{container}", net::prefix(paths))
}

/// Loads the container's published ports (its own nftables table, replaced whole),
/// or removes the table when it has none.
pub(crate) fn apply_ports(paths: &Paths, container: &str, config: &Config) -> Result<(), Error> {
    if config.ports.is_empty() {
        return remove_ports(paths, container);
    }
    let nic = config
        .nics
        .first()
        .ok_or_else(|| Error::Port { what: format!("ports of {container}"), message: "it has no nic".into() })?;
    let n = net::require(paths, &nic.network)?;
    let dest: Ipv4Addr = reserved(paths, container, nic)?.ok_or_else(|| Error::Port {
        what: format!("ports of {container}"),
        message: format!("{} has no address reserved on {}", nic.name, n.name),
    })?;
    let ports: Vec<nft::Port> = config
        .ports
        .iter()
        .map(|p| nft::Port {
            proto: p.proto,
            host_ip: p.host_ip,
            host_port: p.host_port,
            dest,
            dest_port: p.container_port,
        })
        .collect();
    nft::check_ports(&ports)?;
    let script = nft::render(&nft::Ruleset {
        table: &ports_table(paths, container),
        bridge: &n.bridge,
        net: n.v4(),
        v6: None,
        nat: false,
        ports: &ports,
        keep: &gateways(paths),
    });
    net::nft_apply(&script)
}

pub(crate) fn remove_ports(paths: &Paths, container: &str) -> Result<(), Error> {
    if crate::base::fsutil::which("nft").is_none() {
        return Ok(());
    }
    // Nothing to remove (asked over netlink: running nft costs tens of ms per start).
    if let Ok(None) = crate::sys::nft_table_handle(&ports_table(paths, container)) {
        return Ok(());
    }
    net::nft_apply(&nft::render_delete(&ports_table(paths, container)))
}

/// The address reserved for `nic` of `container`.
pub(crate) fn reserved(paths: &Paths, container: &str, nic: &Nic) -> Result<Option<Ipv4Addr>, Error> {
    let r = net::load_reservations(paths, &nic.network)?;
    Ok(r.list.iter().find(|x| x.container == container && x.nic == nic.name).map(|x| x.ipv4))
}

/// What `list` and `info` show of a NIC.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NicInfo {
    pub name: String,
    pub network: String,
    pub mac: String,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub host_veth: String,
    /// Bytes received and sent by the container (host side counters, swapped); when up.
    pub rx_bytes: Option<u64>,
    pub tx_bytes: Option<u64>,
}

pub(crate) fn info(paths: &Paths, container: &str, config: &Config) -> Vec<NicInfo> {
    config
        .nics
        .iter()
        .enumerate()
        .map(|(i, nic)| {
            let host = host_name(paths, container, i);
            let stat = |f: &str| {
                std::fs::read_to_string(format!("/sys/class/net/{host}/statistics/{f}")).ok()?.trim().parse().ok()
            };
            let network = net::load(paths, &nic.network).ok().flatten();
            NicInfo {
                name: nic.name.clone(),
                network: nic.network.clone(),
                mac: nic.mac.to_string(),
                ipv4: reserved(paths, container, nic).ok().flatten().map(|a| a.to_string()),
                ipv6: network.as_ref().and_then(|n| slaac(n, &nic.mac)).map(|a| a.to_string()),
                rx_bytes: stat("tx_bytes"),
                tx_bytes: stat("rx_bytes"),
                host_veth: host.clone(),
            }
        })
        .collect()
}

/// The SLAAC (EUI-64) address a NIC takes from its network's IPv6 prefix.
fn slaac(n: &Network, mac: &addr::Mac) -> Option<Ipv6Addr> {
    let v6 = n.v6()?;
    let m = mac.0;
    let mut o = v6.network.octets();
    o[8..16].copy_from_slice(&[m[0] ^ 2, m[1], m[2], 0xff, 0xfe, m[3], m[4], m[5]]);
    Some(Ipv6Addr::from(o))
}
