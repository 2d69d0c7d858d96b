//! Managed networks: the definition (`networks/NAME.toml`), the address reservations
//! (`networks/NAME.reservations.toml`), and bringing one up or down: the bridge and
//! its address (netlink), dnsmasq, and hutch's nftables table for it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use super::addr::{self, V4Net, V6Net};
use super::link::Netlink;
use super::{Error, dnsmasq, nft};
use crate::base::fsutil;
use crate::base::lock::Lock;
use crate::base::paths::Paths;

/// The network new containers join unless told otherwise.
pub const DEFAULT: &str = "hutchbr0";
pub const DEFAULT_DOMAIN: &str = "hutch";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    /// The bridge's interface name (15 characters at most).
    pub bridge: String,
    /// The IPv4 subnet, e.g. "10.42.7.0/24"; the bridge takes its first address.
    pub ipv4: String,
    /// An IPv6 /64 announced to containers (SLAAC), or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// Masquerade traffic leaving the subnet.
    pub nat: bool,
    /// DNS names of containers are NAME.DOMAIN.
    pub domain: String,
}

impl Network {
    pub fn v4(&self) -> V4Net {
        V4Net::parse(&self.ipv4).expect("validated when loaded")
    }
    pub fn v6(&self) -> Option<V6Net> {
        self.ipv6.as_deref().map(|s| V6Net::parse(s).expect("validated when loaded"))
    }
    pub fn table(&self, paths: &Paths) -> String {
        format!("{}n-{}", prefix(paths), self.name)
    }
}

/// Prefix of hutch's nftables tables for this state tree.
pub fn prefix(paths: &Paths) -> String {
    match paths.scope() {
        "" => "hutch-".into(),
        s => format!("hutch-{s}-"),
    }
}

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
    pub mac: String,
    pub ipv4: String,
}

fn io(action: &'static str, p: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = p.to_path_buf();
    move |source| Error::Io { action, path, source }
}

pub fn file(paths: &Paths, name: &str) -> PathBuf {
    paths.networks().join(format!("{name}.toml"))
}
fn reservations_file(paths: &Paths, name: &str) -> PathBuf {
    paths.networks().join(format!("{name}.reservations.toml"))
}
fn run_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.run.join("networks").join(name)
}

/// Serialises changes to a network (reservations, up, down) between hutch processes.
fn lock(paths: &Paths, name: &str) -> Result<Lock, Error> {
    let p = paths.locks().join(format!(".net-{name}.lock"));
    Lock::acquire(&p).map_err(io("lock", &p))
}

/// Host-wide: subnets are picked against the host's routes, which every state tree
/// shares. In root's own /run/hutch, where no other user can hold it.
fn subnet_lock() -> Result<Lock, Error> {
    let dir = Path::new(crate::base::paths::DEFAULT_RUN);
    fsutil::ensure_dir(dir, 0o755).map_err(io("create", dir))?;
    let p = dir.join(".subnets.lock");
    Lock::acquire(&p).map_err(io("lock", &p))
}

/// The `ifalias` hutch puts on bridges it creates; a bridge without it is not hutch's.
fn alias(paths: &Paths, name: &str) -> String {
    format!("hutch:{}:{name}", paths.scope())
}

fn read_alias(bridge: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{bridge}/ifalias")).unwrap_or_default().trim().to_string()
}

pub fn load(paths: &Paths, name: &str) -> Result<Option<Network>, Error> {
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
    V4Net::parse(&net.ipv4).map_err(|e| Error::Invalid { path: f.clone(), message: e.to_string() })?;
    if let Some(v6) = &net.ipv6 {
        V6Net::parse(v6).map_err(|e| Error::Invalid { path: f.clone(), message: e.to_string() })?;
    }
    Ok(Some(net))
}

pub fn require(paths: &Paths, name: &str) -> Result<Network, Error> {
    load(paths, name)?.ok_or_else(|| Error::NoSuchNetwork { name: name.into() })
}

pub fn list(paths: &Paths) -> Result<Vec<Network>, Error> {
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
pub fn create(paths: &Paths, name: &str, opts: &CreateOptions<'_>) -> Result<Network, Error> {
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
        Some("auto") => Some(addr::ula_subnet(&crate::sys::random_hex128()).to_string()),
        Some(s) => Some(
            V6Net::parse(s).map_err(|e| Error::BadSubnet { subnet: s.into(), message: e.to_string() })?.to_string(),
        ),
    };
    super::dnsmasq::validate_domain(opts.domain)
        .map_err(|e| Error::BadName { name: opts.domain.into(), message: e.to_string() })?;
    let bridge = match paths.scope() {
        "" if addr::validate_ifname(name).is_ok() => name.to_string(),
        scope => addr::ifname("hb-", &format!("{scope}{name}")),
    };
    let net =
        Network { name: name.into(), bridge, ipv4: v4.to_string(), ipv6, nat: opts.nat, domain: opts.domain.into() };
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
pub fn ensure(paths: &Paths, name: &str) -> Result<Network, Error> {
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

/// Those of `containers` with a NIC on network `name` (or whose config cannot be read).
fn users(paths: &Paths, name: &str, containers: &[String]) -> Vec<String> {
    containers
        .iter()
        .cloned()
        .filter(|c| {
            crate::config::Config::load(&paths.config(c)).map_or(true, |cfg| cfg.nics.iter().any(|n| n.network == name))
        })
        .collect()
}

/// Deletes network `name`, refused while one of `containers` (every container of this
/// tree, from the container layer) or a create in progress uses it.
pub fn delete(paths: &Paths, name: &str, containers: &[String]) -> Result<(), Error> {
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

/// Brings the network up, or repairs what is missing: bridge, address, sysctls,
/// dnsmasq, nftables table. Idempotent; `start` calls it every time.
pub fn up(paths: &Paths, net: &Network) -> Result<(), Error> {
    let _lock = lock(paths, &net.name)?;
    up_locked(paths, net)
}

fn up_locked(paths: &Paths, net: &Network) -> Result<(), Error> {
    require_program("dnsmasq", "dnsmasq-base")?;
    require_program("nft", "nftables")?;
    let nl = Netlink::new()?;
    let link = match nl.get(&net.bridge)? {
        Some(l) if l.kind.as_deref() == Some("bridge") && read_alias(&net.bridge) == alias(paths, &net.name) => l,
        Some(l) if l.kind.as_deref() == Some("bridge") => {
            return Err(Error::NotABridge { name: net.bridge.clone(), kind: "bridge hutch did not create, a".into() });
        }
        Some(l) => {
            return Err(Error::NotABridge {
                name: net.bridge.clone(),
                kind: l.kind.unwrap_or_else(|| "unknown".into()),
            });
        }
        None => {
            let l = nl.create_bridge(&net.bridge)?;
            let mark = format!("/sys/class/net/{}/ifalias", net.bridge);
            std::fs::write(&mark, alias(paths, &net.name)).map_err(io("write", Path::new(&mark)))?;
            // A fixed MAC: otherwise the bridge takes its lowest port's, and the
            // gateway's MAC would change as containers come and go.
            let mut mac = addr::mac_for(&format!("bridge/{}", alias(paths, &net.name)));
            mac[0] = 0x02; // locally administered
            crate::sys::set_mac(&net.bridge, mac).map_err(io("set the MAC of", Path::new(&net.bridge)))?;
            l
        }
    };
    let v4 = net.v4();
    nl.add_address(link.index, v4.gateway().into(), v4.prefix)?;
    if let Some(v6) = net.v6() {
        nl.add_address(link.index, v6.gateway().into(), v6.prefix)?;
    }
    nl.set_up(link.index)?;
    drop(nl);
    // Forwarding for NAT; route_localnet lets ports published on 127.0.0.1 reach the bridge.
    let mut sysctls = vec![(format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.bridge), "1")];
    if net.nat {
        sysctls.push(("/proc/sys/net/ipv4/ip_forward".into(), "1"));
    }
    if net.v6().is_some() {
        // Forwarding makes interfaces with accept_ra=1 ignore router advertisements:
        // keep the host's own SLAAC working (as libvirt does) with accept_ra=2.
        if let Ok(rd) = std::fs::read_dir("/proc/sys/net/ipv6/conf") {
            for e in rd.flatten() {
                let f = e.path().join("accept_ra");
                if std::fs::read_to_string(&f).is_ok_and(|v| v.trim() == "1") {
                    sysctls.push((f.display().to_string(), "2"));
                }
            }
        }
        sysctls.push(("/proc/sys/net/ipv6/conf/all/forwarding".into(), "1"));
    }
    for (k, v) in sysctls {
        std::fs::write(&k, v).map_err(io("write", Path::new(&k)))?;
    }
    let rules = nft::render(&nft::Ruleset {
        table: &net.table(paths),
        bridge: &net.bridge,
        net: v4,
        v6: net.v6(),
        nat: net.nat,
        ports: &[],
        keep: &[],
    });
    nft_apply(&rules)?;
    write_dns_files(paths, net)?;
    ensure_dnsmasq(paths, net)
}

fn down_locked(paths: &Paths, net: &Network) -> Result<(), Error> {
    stop_dnsmasq(paths, net);
    if fsutil::which("nft").is_some() {
        nft_apply(&nft::render_delete(&net.table(paths)))?;
    }
    let nl = Netlink::new()?;
    if let Some(l) = nl.get(&net.bridge)? {
        if l.kind.as_deref() == Some("bridge") && read_alias(&net.bridge) == alias(paths, &net.name) {
            nl.delete(&net.bridge)?;
        }
    }
    let run = run_dir(paths, &net.name);
    fsutil::remove_tree(&run).map_err(io("remove", &run))
}

pub fn load_reservations(paths: &Paths, name: &str) -> Result<Reservations, Error> {
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
pub fn reserve(paths: &Paths, net: &Network, container: &str, nic: &crate::config::Nic) -> Result<Ipv4Addr, Error> {
    let _lock = lock(paths, &net.name)?;
    let mut r = load_reservations(paths, &net.name)?;
    let fixed = match nic.ipv4.as_str() {
        "auto" => None,
        s => Some(s.parse::<Ipv4Addr>().map_err(|_| Error::BadAddress {
            address: s.into(),
            network: net.name.clone(),
            message: "not an IPv4 address".into(),
        })?),
    };
    if let Some(other) = r.list.iter().find(|x| x.mac.eq_ignore_ascii_case(&nic.mac) && x.container != container) {
        return Err(Error::BadAddress {
            address: nic.mac.clone(),
            network: net.name.clone(),
            message: format!("{} already uses this MAC", other.container),
        });
    }
    let mut forget = Vec::new();
    if let Some(mine) = r.list.iter().find(|x| x.container == container && x.nic == nic.name) {
        let ip: Ipv4Addr = mine.ipv4.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
        if fixed.is_none_or(|f| f == ip) && mine.mac.eq_ignore_ascii_case(&nic.mac) {
            return Ok(ip);
        }
        forget.push(mine.clone());
        r.list.retain(|x| !(x.container == container && x.nic == nic.name));
    }
    let used: Vec<Ipv4Addr> = r.list.iter().filter_map(|x| x.ipv4.parse().ok()).collect();
    let ip = addr::allocate(&net.v4(), &used, fixed, &net.name).map_err(|e| {
        // Name the holder of a taken address.
        let holder = fixed.and_then(|f| r.list.iter().find(|x| x.ipv4 == f.to_string())).map(|x| x.container.clone());
        Error::Allocate { network: net.name.clone(), message: e.to_string(), holder, hint: e.hint() }
    })?;
    r.list.push(Reservation {
        container: container.into(),
        nic: nic.name.clone(),
        mac: nic.mac.clone(),
        ipv4: ip.to_string(),
    });
    save_reservations(paths, &net.name, &r)?;
    write_dns_files(paths, net)?;
    forget_leases(paths, net, &forget);
    reload_dnsmasq(paths, net);
    Ok(ip)
}

/// Frees `container`'s reservations on `name` that none of `keep` matches.
pub fn release_stale(paths: &Paths, name: &str, container: &str, keep: &[crate::config::Nic]) -> Result<(), Error> {
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
        let mut it = l.split_whitespace().skip(1);
        let (mac, ip) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        gone.iter().any(|g| g.mac.eq_ignore_ascii_case(mac) || g.ipv4 == ip)
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
pub fn release(paths: &Paths, name: &str, container: &str) -> Result<(), Error> {
    release_stale(paths, name, container, &[])
}

struct DnsFiles {
    conf: PathBuf,
    pid: PathBuf,
    hosts: PathBuf,
    addn: PathBuf,
    leases: PathBuf,
    log: PathBuf,
}

fn dns_files(paths: &Paths, name: &str) -> DnsFiles {
    let d = run_dir(paths, name);
    DnsFiles {
        conf: d.join("dnsmasq.conf"),
        pid: d.join("dnsmasq.pid"),
        hosts: d.join("dhcp-hosts"),
        addn: d.join("hosts"),
        leases: d.join("leases"),
        log: d.join("dnsmasq.log"),
    }
}

fn write_dns_files(paths: &Paths, net: &Network) -> Result<(), Error> {
    let run = run_dir(paths, &net.name);
    fsutil::ensure_dir(&run, 0o755).map_err(io("create", &run))?;
    let f = dns_files(paths, &net.name);
    let r = load_reservations(paths, &net.name)?;
    let rs: Vec<dnsmasq::Reservation> = r
        .list
        .iter()
        .filter_map(|x| {
            Some(dnsmasq::Reservation {
                mac: addr::parse_mac(&x.mac).ok()?,
                ipv4: x.ipv4.parse().ok()?,
                name: x.container.clone(),
            })
        })
        .collect();
    let conf = dnsmasq::render(&dnsmasq::Conf {
        bridge: &net.bridge,
        net: net.v4(),
        v6: net.v6(),
        domain: &net.domain,
        pid_file: &f.pid,
        hosts_file: &f.hosts,
        addn_hosts: &f.addn,
        lease_file: &f.leases,
        log_file: Some(&f.log),
    });
    for (p, text) in
        [(&f.conf, conf), (&f.hosts, dnsmasq::hosts_file(&rs)), (&f.addn, dnsmasq::addn_hosts(&rs, &net.domain))]
    {
        fsutil::atomic_write(p, text.as_bytes(), 0o644).map_err(io("write", p))?;
    }
    Ok(())
}

/// The pid of this network's dnsmasq, if it runs (checked against its command line).
pub fn dnsmasq_pid(paths: &Paths, name: &str) -> Option<i32> {
    let f = dns_files(paths, name);
    let pid: i32 = std::fs::read_to_string(&f.pid).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let conf = f.conf.as_os_str().as_encoded_bytes();
    cmdline.windows(conf.len()).any(|w| w == conf).then_some(pid)
}

fn ensure_dnsmasq(paths: &Paths, net: &Network) -> Result<(), Error> {
    if dnsmasq_pid(paths, &net.name).is_some() {
        reload_dnsmasq(paths, net);
        return Ok(());
    }
    let f = dns_files(paths, &net.name);
    let bin = fsutil::which("dnsmasq").ok_or(Error::MissingProgram { program: "dnsmasq", package: "dnsmasq-base" })?;
    let out = Command::new(bin)
        .arg(format!("--conf-file={}", f.conf.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(io("run", Path::new("dnsmasq")))?;
    if !out.status.success() {
        return Err(Error::Dnsmasq {
            network: net.name.clone(),
            message: String::from_utf8_lossy(&out.stderr).trim().into(),
        });
    }
    Ok(())
}

fn reload_dnsmasq(paths: &Paths, net: &Network) {
    if let Some(pid) = dnsmasq_pid(paths, &net.name) {
        let _ = crate::sys::kill(pid, libc::SIGHUP);
    }
}

fn stop_dnsmasq(paths: &Paths, net: &Network) {
    if let Some(pid) = dnsmasq_pid(paths, &net.name) {
        let _ = crate::sys::kill(pid, libc::SIGTERM);
        for _ in 0..100 {
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Loads an nft script in one transaction.
pub fn nft_apply(script: &str) -> Result<(), Error> {
    let bin = fsutil::which("nft").ok_or(Error::MissingProgram { program: "nft", package: "nftables" })?;
    let mut child = Command::new(bin)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("run", Path::new("nft")))?;
    std::io::Write::write_all(child.stdin.as_mut().expect("piped"), script.as_bytes())
        .map_err(io("run", Path::new("nft")))?;
    drop(child.stdin.take());
    let out = child.wait_with_output().map_err(io("run", Path::new("nft")))?;
    if !out.status.success() {
        return Err(Error::Nft { message: String::from_utf8_lossy(&out.stderr).trim().into() });
    }
    Ok(())
}

fn require_program(program: &'static str, package: &'static str) -> Result<(), Error> {
    fsutil::which(program).map(|_| ()).ok_or(Error::MissingProgram { program, package })
}
