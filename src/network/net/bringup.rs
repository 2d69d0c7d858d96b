//! Bringing a network up or down: the bridge and its address (netlink), sysctls,
//! dnsmasq and hutch's nftables table for it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{Network, alias, io, load_reservations, lock, read_alias, run_dir};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::network::addr;
use crate::network::link::Netlink;
use crate::network::{Error, dnsmasq, nft};

/// Brings the network up, or repairs what is missing: bridge, address, sysctls,
/// dnsmasq, nftables table. Idempotent; `start` calls it every time.
pub(crate) fn up(paths: &Paths, net: &Network) -> Result<(), Error> {
    let _lock = lock(paths, &net.name)?;
    up_locked(paths, net)
}

pub(super) fn up_locked(paths: &Paths, net: &Network) -> Result<(), Error> {
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
    nft_apply_if_changed(paths, net, &rules)?;
    write_dns_files(paths, net)?;
    ensure_dnsmasq(paths, net)
}

pub(super) fn down_locked(paths: &Paths, net: &Network) -> Result<(), Error> {
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

pub(super) struct DnsFiles {
    pub(super) conf: PathBuf,
    pub(super) pid: PathBuf,
    pub(super) hosts: PathBuf,
    pub(super) addn: PathBuf,
    pub(super) leases: PathBuf,
    pub(super) log: PathBuf,
}

pub(super) fn dns_files(paths: &Paths, name: &str) -> DnsFiles {
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

pub(super) fn write_dns_files(paths: &Paths, net: &Network) -> Result<(), Error> {
    let run = run_dir(paths, &net.name);
    fsutil::ensure_dir(&run, 0o755).map_err(io("create", &run))?;
    let f = dns_files(paths, &net.name);
    let r = load_reservations(paths, &net.name)?;
    let rs: Vec<dnsmasq::Reservation> =
        r.list.iter().map(|x| dnsmasq::Reservation { mac: x.mac.0, ipv4: x.ipv4, name: x.container.clone() }).collect();
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
pub(crate) fn dnsmasq_pid(paths: &Paths, name: &str) -> Option<i32> {
    let f = dns_files(paths, name);
    let pid: i32 = std::fs::read_to_string(&f.pid).ok()?.trim().parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let conf = f.conf.as_os_str().as_encoded_bytes();
    cmdline.windows(conf.len()).any(|w| w == conf).then_some(pid)
}

pub(super) fn ensure_dnsmasq(paths: &Paths, net: &Network) -> Result<(), Error> {
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

pub(super) fn reload_dnsmasq(paths: &Paths, net: &Network) {
    if let Some(pid) = dnsmasq_pid(paths, &net.name) {
        let _ = crate::sys::kill(pid, libc::SIGHUP);
    }
}

pub(super) fn stop_dnsmasq(paths: &Paths, net: &Network) {
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

/// Loads the network's table unless the one loaded last time is still there as it was:
/// its handle still answers (a table replaced or deleted since has none or another)
/// and the rules are the same. Running `nft` costs tens of milliseconds on every start.
fn nft_apply_if_changed(paths: &Paths, net: &Network, rules: &str) -> Result<(), Error> {
    let table = net.table(paths);
    let run = run_dir(paths, &net.name);
    let record = run.join("nft-loaded");
    let digest = crate::image::index::sha256_hex(rules.as_bytes());
    let loaded = |h: u64| format!("{h} {digest}\n");
    if let Ok(Some(h)) = crate::sys::nft_table_handle(&table) {
        if std::fs::read_to_string(&record).is_ok_and(|r| r == loaded(h)) {
            return Ok(());
        }
    }
    nft_apply(rules)?;
    if let Ok(Some(h)) = crate::sys::nft_table_handle(&table) {
        // Only a shortcut for the next start: without the record, nft runs again.
        let _ =
            fsutil::ensure_dir(&run, 0o755).and_then(|_| fsutil::atomic_replace(&record, loaded(h).as_bytes(), 0o644));
    }
    Ok(())
}

/// Loads an nft script in one transaction.
pub(crate) fn nft_apply(script: &str) -> Result<(), Error> {
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

pub(super) fn require_program(program: &'static str, package: &'static str) -> Result<(), Error> {
    fsutil::which(program).map(|_| ()).ok_or(Error::MissingProgram { program, package })
}
