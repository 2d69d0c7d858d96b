//! Address reservations of a network (`networks/NAME.reservations.toml`): one per
//! container NIC, handed to dnsmasq as static leases.

use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::bringup::{dns_files, dnsmasq_pid, ensure_dnsmasq, reload_dnsmasq, stop_dnsmasq, write_dns_files};
use super::{Network, io, load, lock, reservations_file};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::network::addr::{self, Mac};
use crate::network::{Error, dnsmasq};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservations {
    #[serde(default, rename = "reservation")]
    pub list: Vec<Reservation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub container: String,
    pub nic: String,
    pub mac: Mac,
    pub ipv4: Ipv4Addr,
}

pub(crate) fn load_reservations(paths: &Paths, name: &str) -> Result<Reservations, Error> {
    let f = reservations_file(paths, name);
    match std::fs::read_to_string(&f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Reservations::default()),
        Err(e) => Err(Error::Io { action: "read", path: f, source: e }),
        Ok(t) => toml::from_str(&t).map_err(|e| Error::Invalid { path: f, message: e.message().trim().into() }),
    }
}

fn save_reservations(paths: &Paths, name: &str, r: &Reservations) -> Result<(), Error> {
    let f = reservations_file(paths, name);
    fsutil::atomic_write(&f, toml::to_string(r).expect("serialisable").as_bytes(), 0o644).map_err(io("write", &f))
}

/// Reserves an address for `container`'s NIC (auto, or the fixed one it asks for) and
/// tells dnsmasq. Returns the address. A reservation it already holds is kept.
pub(crate) fn reserve(
    paths: &Paths,
    net: &Network,
    container: &str,
    nic: &crate::config::Nic,
) -> Result<Ipv4Addr, Error> {
    let _lock = lock(paths, &net.name)?;
    let mut r = load_reservations(paths, &net.name)?;
    let fixed = nic.ipv4.fixed();
    if let Some(other) = r.list.iter().find(|x| x.mac == nic.mac && x.container != container) {
        return Err(Error::BadAddress {
            address: nic.mac.to_string(),
            network: net.name.clone(),
            message: format!("{} already uses this MAC", other.container),
        });
    }
    let mut forget = Vec::new();
    if let Some(mine) = r.list.iter().find(|x| x.container == container && x.nic == nic.name) {
        let ip = mine.ipv4;
        if fixed.is_none_or(|f| f == ip) && mine.mac == nic.mac {
            return Ok(ip);
        }
        forget.push(mine.clone());
        r.list.retain(|x| !(x.container == container && x.nic == nic.name));
    }
    let used: Vec<Ipv4Addr> = r.list.iter().map(|x| x.ipv4).collect();
    let ip = addr::allocate(&net.v4(), &used, fixed, &net.name).map_err(|e| {
        // Name the holder of a taken address.
        let holder = fixed.and_then(|f| r.list.iter().find(|x| x.ipv4 == f)).map(|x| x.container.clone());
        Error::Allocate { network: net.name.clone(), message: e.to_string(), holder, hint: e.hint() }
    })?;
    r.list.push(Reservation { container: container.into(), nic: nic.name.clone(), mac: nic.mac, ipv4: ip });
    save_reservations(paths, &net.name, &r)?;
    write_dns_files(paths, net)?;
    forget_leases(paths, net, &forget);
    reload_dnsmasq(paths, net);
    Ok(ip)
}

/// Hands `old`'s reservations on network `name` to `new` (a renamed container keeps
/// its addresses, and its DNS name follows). Returns how many moved.
pub(crate) fn rename(paths: &Paths, name: &str, old: &str, new: &str) -> Result<usize, Error> {
    let _lock = lock(paths, name)?;
    let mut r = load_reservations(paths, name)?;
    let mut moved = 0;
    for x in r.list.iter_mut().filter(|x| x.container == old) {
        x.container = new.into();
        moved += 1;
    }
    if moved > 0 {
        save_reservations(paths, name, &r)?;
        if let Ok(Some(net)) = load(paths, name) {
            write_dns_files(paths, &net)?;
            reload_dnsmasq(paths, &net);
        }
    }
    Ok(moved)
}

/// Frees `container`'s reservations on `name` that none of `keep` matches.
pub(crate) fn release_stale(
    paths: &Paths,
    name: &str,
    container: &str,
    keep: &[crate::config::Nic],
) -> Result<(), Error> {
    let Some(net) = load(paths, name)? else { return Ok(()) };
    let _lock = lock(paths, name)?;
    let mut r = load_reservations(paths, name)?;
    let (gone, kept): (Vec<_>, Vec<_>) = r
        .list
        .into_iter()
        .partition(|x| x.container == container && !keep.iter().any(|k| k.network == name && k.name == x.nic));
    r.list = kept;
    if !gone.is_empty() {
        save_reservations(paths, name, &r)?;
        write_dns_files(paths, &net)?;
        forget_leases(paths, &net, &gone);
        reload_dnsmasq(paths, &net);
    }
    Ok(())
}

/// Drops dnsmasq's leases of freed reservations, so the address can go to its next
/// owner at once (dnsmasq keeps leases in memory: stop it, edit, start it again).
fn forget_leases(paths: &Paths, net: &Network, gone: &[Reservation]) {
    let f = dns_files(paths, &net.name);
    let Ok(text) = std::fs::read_to_string(&f.leases) else { return };
    let drop_line = |l: &str| {
        dnsmasq::parse_leases(l).first().is_some_and(|x| gone.iter().any(|g| g.mac.0 == x.mac || g.ipv4 == x.ipv4))
    };
    if !text.lines().any(drop_line) {
        return;
    }
    let was_running = dnsmasq_pid(paths, &net.name).is_some();
    stop_dnsmasq(paths, net);
    let kept: String = text.lines().filter(|l| !drop_line(l)).map(|l| format!("{l}\n")).collect();
    let _ = fsutil::atomic_write(&f.leases, kept.as_bytes(), 0o644);
    if was_running {
        let _ = ensure_dnsmasq(paths, net);
    }
}

/// Frees every reservation of `container` on network `name`.
pub(crate) fn release(paths: &Paths, name: &str, container: &str) -> Result<(), Error> {
    release_stale(paths, name, container, &[])
}
