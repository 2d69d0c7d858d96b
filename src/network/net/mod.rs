//! Managed networks: the definition (`networks/NAME.toml`), the address reservations
//! (`networks/NAME.reservations.toml`, in `reservations`), and bringing one up or down
//! (`bringup`): the bridge and its address (netlink), dnsmasq, and hutch's nftables
//! table for it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod bringup;
mod reservations;

pub(crate) use bringup::{dnsmasq_pid, nft_apply, up};
use bringup::{down_locked, up_locked};
pub(crate) use reservations::{load_reservations, release, release_stale, rename as rename_reservations, reserve};

use super::Error;
use super::addr::{self, V4Net, V6Net};
use crate::base::fsutil;
use crate::base::lock::Lock;
use crate::base::paths::Paths;

/// The network new containers join unless told otherwise.
pub(crate) const DEFAULT: &str = "hutchbr0";
pub(crate) const DEFAULT_DOMAIN: &str = "hutch";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    /// The bridge's interface name (15 characters at most).
    pub bridge: String,
    /// The IPv4 subnet, e.g. "10.42.7.0/24"; the bridge takes its first address.
    pub ipv4: V4Net,
    /// An IPv6 /64 announced to containers (SLAAC), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<V6Net>,
    /// Masquerade traffic leaving the subnet.
    pub nat: bool,
    /// DNS names of containers are NAME.DOMAIN.
    pub domain: String,
}

impl Network {
    pub fn v4(&self) -> V4Net {
        self.ipv4
    }
    pub fn v6(&self) -> Option<V6Net> {
        self.ipv6
    }
    pub fn table(&self, paths: &Paths) -> String {
        format!("{}n-{}", prefix(paths), self.name)
    }
}

/// Prefix of hutch's nftables tables for this state tree.
pub(crate) fn prefix(paths: &Paths) -> String {
    match paths.scope() {
        "" => "hutch-".into(),
        s => format!("hutch-{s}-"),
    }
}

pub(super) fn io(action: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = p.to_path_buf();
    move |source| Error::Io { action, path, source }
}

pub(crate) fn file(paths: &Paths, name: &str) -> PathBuf {
    paths.networks().join(format!("{name}.toml"))
}
pub(super) fn reservations_file(paths: &Paths, name: &str) -> PathBuf {
    paths.networks().join(format!("{name}.reservations.toml"))
}
pub(super) fn run_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.run.join("networks").join(name)
}

/// Serialises changes to a network (reservations, up, down) between hutch processes.
pub(super) fn lock(paths: &Paths, name: &str) -> Result<Lock, Error> {
    let p = paths.locks().join(format!(".net-{name}.lock"));
    Lock::acquire(&p).map_err(io("lock", &p))
}

/// Host-wide: subnets are picked against the host's routes, which every state tree
/// shares. In root's own /run/hutch, where no other user can hold it.
pub(super) fn subnet_lock() -> Result<Lock, Error> {
    let dir = Path::new(crate::base::paths::DEFAULT_RUN);
    fsutil::ensure_dir(dir, 0o755).map_err(io("create", dir))?;
    let p = dir.join(".subnets.lock");
    Lock::acquire(&p).map_err(io("lock", &p))
}

/// The `ifalias` hutch puts on bridges it creates; a bridge without it is not hutch's.
pub(super) fn alias(paths: &Paths, name: &str) -> String {
    format!("hutch:{}:{name}", paths.scope())
}

pub(super) fn read_alias(bridge: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{bridge}/ifalias")).unwrap_or_default().trim().to_string()
}

pub(crate) fn load(paths: &Paths, name: &str) -> Result<Option<Network>, Error> {
    let f = file(paths, name);
    let text = match std::fs::read_to_string(&f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        r => r.map_err(io("read", &f))?,
    };
    let net: Network =
        toml::from_str(&text).map_err(|e| Error::Invalid { path: f.clone(), message: e.message().trim().into() })?;
    // Every value ends up in dnsmasq's configuration or an nft script: check them all.
    let invalid = |message: String| Error::Invalid { path: f.clone(), message };
    if net.name != name {
        return Err(invalid(format!("name {:?} does not match the file name", net.name)));
    }
    addr::validate_bridge_name(&net.bridge).map_err(|e| invalid(e.to_string()))?;
    super::dnsmasq::validate_domain(&net.domain).map_err(|e| invalid(e.to_string()))?;
    Ok(Some(net))
}

pub(crate) fn require(paths: &Paths, name: &str) -> Result<Network, Error> {
    load(paths, name)?.ok_or_else(|| Error::NoSuchNetwork { name: name.into() })
}

pub(crate) fn list(paths: &Paths) -> Result<Vec<Network>, Error> {
    let dir = paths.networks();
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(&dir) else { return Ok(out) };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(name) = n.strip_suffix(".toml").filter(|s| !s.ends_with(".reservations")) {
            if let Some(net) = load(paths, name)? {
                out.push(net);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

pub struct CreateOptions<'a> {
    pub subnet: Option<&'a str>,
    /// "none", "auto" or a /64.
    pub ipv6: Option<&'a str>,
    pub nat: bool,
    pub domain: &'a str,
}

/// Defines network `name` and brings it up. The subnet, when not given, is a free /24
/// in 10.0.0.0/8 that collides with no route on the host.
pub(crate) fn create(paths: &Paths, name: &str, opts: &CreateOptions<'_>) -> Result<Network, Error> {
    crate::base::name::validate(name).map_err(|e| Error::BadName { name: name.into(), message: e.to_string() })?;
    if ["hv-", "hp-", "hb-"].iter().any(|p| name.starts_with(p)) {
        return Err(Error::BadName {
            name: name.into(),
            message: "names starting with hv-, hp- or hb- are hutch's own interface names".into(),
        });
    }
    let _lock = lock(paths, name)?;
    if load(paths, name)?.is_some() {
        return Err(Error::Exists { name: name.into() });
    }
    let _subnets = subnet_lock()?;
    let mut routes = addr::parse_proc_net_route(&std::fs::read_to_string("/proc/net/route").unwrap_or_default());
    // Networks whose bridges are down (after a reboot) have no route yet: still taken.
    routes.extend(list(paths)?.iter().map(|n| n.v4()));
    let v4 = match opts.subnet {
        Some(s) => {
            let net = V4Net::parse(s).map_err(|e| Error::BadSubnet { subnet: s.into(), message: e.to_string() })?;
            if let Some(r) = routes.iter().find(|r| r.overlaps(&net)) {
                return Err(Error::BadSubnet { subnet: s.into(), message: format!("it overlaps the host route {r}") });
            }
            net
        }
        None => {
            let seed = crate::base::paths::fnv1a(format!("{}{name}", paths.scope()).as_bytes()) as u32;
            addr::pick_free_subnet(&routes, seed).ok_or(Error::NoFreeSubnet)?
        }
    };
    let ipv6 = match opts.ipv6 {
        None | Some("none") => None,
        // A random ULA prefix, as RFC 4193 asks; stored in the network's file.
        Some("auto") => Some(addr::ula_subnet(&crate::sys::random_hex128())),
        Some(s) => Some(V6Net::parse(s).map_err(|e| Error::BadSubnet { subnet: s.into(), message: e.to_string() })?),
    };
    super::dnsmasq::validate_domain(opts.domain)?;
    let bridge = match paths.scope() {
        "" if addr::validate_ifname(name).is_ok() => name.to_string(),
        scope => addr::ifname("hb-", &format!("{scope}{name}")),
    };
    let net = Network { name: name.into(), bridge, ipv4: v4, ipv6, nat: opts.nat, domain: opts.domain.into() };
    fsutil::ensure_dir(&paths.networks(), 0o755).map_err(io("create", &paths.networks()))?;
    let text = toml::to_string(&net).expect("serialisable");
    let f = file(paths, name);
    fsutil::atomic_write(&f, text.as_bytes(), 0o644).map_err(io("write", &f))?;
    let bridge_existed = std::path::Path::new(&format!("/sys/class/net/{}", net.bridge)).exists();
    if let Err(e) = up_locked(paths, &net) {
        if !bridge_existed {
            let _ = down_locked(paths, &net);
        }
        let _ = std::fs::remove_file(&f);
        return Err(e);
    }
    Ok(net)
}

/// The default network, created on first use.
pub(crate) fn ensure(paths: &Paths, name: &str) -> Result<Network, Error> {
    match load(paths, name)? {
        Some(n) => Ok(n),
        None if name == DEFAULT => {
            match create(paths, name, &CreateOptions { subnet: None, ipv6: None, nat: true, domain: DEFAULT_DOMAIN }) {
                Err(Error::Exists { .. }) => require(paths, name),
                r => r,
            }
        }
        None => Err(Error::NoSuchNetwork { name: name.into() }),
    }
}

/// Containers with a NIC on network `name`.
/// Those of `containers` with a NIC on network `name` (or whose config cannot be read).
fn users(paths: &Paths, name: &str, containers: &[String]) -> Vec<String> {
    containers
        .iter()
        .filter(|c| {
            crate::config::Config::load(&paths.config(c)).map_or(true, |cfg| cfg.nics.iter().any(|n| n.network == name))
        })
        .cloned()
        .collect()
}

/// Deletes network `name`, refused while one of `containers` (every container of this
/// tree, from the container layer) or a create in progress uses it.
pub(crate) fn delete(paths: &Paths, name: &str, containers: &[String]) -> Result<(), Error> {
    let net = require(paths, name)?;
    let _lock = lock(paths, name)?;
    let mut users = users(paths, name, containers);
    // Reservations are the record: a create in progress holds one before its config exists.
    for r in load_reservations(paths, name)?.list {
        if !users.contains(&r.container) {
            users.push(r.container);
        }
    }
    if !users.is_empty() {
        return Err(Error::InUse { name: name.into(), containers: users.join(", ") });
    }
    down_locked(paths, &net)?;
    for f in [reservations_file(paths, name), file(paths, name)] {
        fsutil::remove_file_if_exists(&f).map_err(io("remove", &f))?;
    }
    Ok(())
}
