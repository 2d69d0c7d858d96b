//! `hutch doctor`: what this host offers containers, check by check, each with a verdict
//! and, when it is not right, the fix. The checks are a table; each probes the real
//! thing where it can (a user namespace is made, an idmapped mount is tried on the state
//! filesystem, nft is run) rather than guessing from versions. A `fail` blocks
//! containers from starting (doctor exits 1); a `warn` costs a feature or needs a look.

use std::path::Path;

use serde::Serialize;

use crate::base::paths::Paths;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

type Check = fn(&Paths) -> (Verdict, String, Option<String>);

/// Every check, in the order they are shown.
const CHECKS: &[(&str, Check)] = &[
    ("user namespaces", user_namespaces),
    ("idmapped mounts", idmapped_mounts),
    ("overlayfs", overlayfs),
    ("cgroups", cgroups),
    ("subordinate ids", subordinate_ids),
    ("nftables", nftables),
    ("bridges", bridges),
    ("dnsmasq", dnsmasq),
    ("debootstrap", debootstrap),
    ("inotify", inotify),
    ("lxcfs", lxcfs),
    ("firewall", firewall),
    ("networks", networks),
];

pub fn run(paths: &Paths) -> Vec<Finding> {
    CHECKS
        .iter()
        .map(|(check, f)| {
            let (verdict, detail, fix) = f(paths);
            Finding { check, verdict, detail, fix }
        })
        .collect()
}

fn ok(detail: impl Into<String>) -> (Verdict, String, Option<String>) {
    (Verdict::Ok, detail.into(), None)
}

fn bad(v: Verdict, detail: impl Into<String>, fix: impl Into<String>) -> (Verdict, String, Option<String>) {
    (v, detail.into(), Some(fix.into()))
}

fn read_num(p: &str) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Installed where hutch itself looks for the programs it runs.
fn have(program: &str) -> bool {
    crate::base::fsutil::which(program).is_some()
}

/// A child in a new user namespace, mapped to `0 100000 65536`, for probes; killed on drop.
struct ProbeNs {
    pid: i32,
    _pidfd: std::os::fd::OwnedFd,
    _hold: std::fs::File,
}

impl ProbeNs {
    fn new() -> Result<ProbeNs, String> {
        let (rd, wr) = nix::unistd::pipe().map_err(|e| format!("failed to create a pipe: {e}"))?;
        match crate::sys::clone3_for("make a user namespace", libc::CLONE_NEWUSER as u64, None)
            .map_err(|e| e.to_string())?
        {
            crate::sys::Forked::Child => {
                drop(wr);
                let mut b = [0u8; 1];
                let _ = nix::unistd::read(&rd, &mut b);
                crate::sys::exit_now(0)
            }
            crate::sys::Forked::Parent { pid, pidfd } => {
                drop(rd);
                let ns = ProbeNs { pid, _pidfd: pidfd, _hold: std::fs::File::from(wr) };
                for f in ["uid_map", "gid_map"] {
                    std::fs::write(format!("/proc/{pid}/{f}"), "0 100000 65536\n")
                        .map_err(|e| format!("failed to write its {f}: {e}"))?;
                }
                Ok(ns)
            }
        }
    }
}

impl Drop for ProbeNs {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(self.pid), None);
    }
}

fn user_namespaces(_: &Paths) -> (Verdict, String, Option<String>) {
    if read_num("/proc/sys/user/max_user_namespaces") == Some(0) {
        return bad(Verdict::Fail, "user.max_user_namespaces is 0", "sysctl -w user.max_user_namespaces=15000");
    }
    match ProbeNs::new() {
        Ok(_) => ok("a user namespace with an id map can be made"),
        Err(e) => bad(
            Verdict::Fail,
            format!("failed to make a user namespace: {e}"),
            "enable user namespaces (CONFIG_USER_NS; on Debian, kernel.unprivileged_userns_clone does not matter for root)",
        ),
    }
}

fn idmapped_mounts(paths: &Paths) -> (Verdict, String, Option<String>) {
    let dir = paths.containers();
    let on = if dir.exists() { dir } else { paths.state.clone() };
    let on = if on.exists() { on } else { Path::new("/").to_path_buf() };
    let ns = match ProbeNs::new() {
        Ok(ns) => ns,
        Err(e) => return bad(Verdict::Fail, format!("no user namespace to try it with: {e}"), "see user namespaces"),
    };
    let userns = match std::fs::File::open(format!("/proc/{}/ns/user", ns.pid)) {
        Ok(f) => f,
        Err(e) => return bad(Verdict::Fail, format!("failed to open the probe's user namespace: {e}"), "report this"),
    };
    let tree = match crate::runtime::kernel::open_host_tree(&on) {
        Ok(t) => t,
        Err(e) => return bad(Verdict::Fail, format!("failed to open {} as a mount: {e}", on.display()), "report this"),
    };
    match crate::storage::idmap(&tree, std::os::fd::AsFd::as_fd(&userns)) {
        Ok(()) => ok(format!("the filesystem of {} takes idmapped mounts", on.display())),
        Err(e) => bad(
            Verdict::Fail,
            format!("the filesystem of {} refuses idmapped mounts: {e}", on.display()),
            "keep the hutch root on ext4, xfs, btrfs or tmpfs (Linux 5.12 or later), or use --root on one",
        ),
    }
}

fn overlayfs(_: &Paths) -> (Verdict, String, Option<String>) {
    let listed =
        std::fs::read_to_string("/proc/filesystems").is_ok_and(|t| t.lines().any(|l| l.ends_with("\toverlay")));
    let module = Path::new("/sys/module/overlay").exists()
        || std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| Path::new(&format!("/lib/modules/{}/kernel/fs/overlayfs", r.trim())).exists())
            .unwrap_or(false);
    if listed || module {
        ok("overlayfs is available (idmapped layers need Linux 5.19)")
    } else {
        bad(
            Verdict::Warn,
            "overlayfs is not in this kernel",
            "modprobe overlay; without it, create with --storage dir or btrfs",
        )
    }
}

fn cgroups(_: &Paths) -> (Verdict, String, Option<String>) {
    let (root, layout) = match crate::cgroup::Layout::detect() {
        Ok(crate::cgroup::Layout::Unified { root }) => (root.clone(), format!("cgroup2 alone, at {}", root.display())),
        Ok(crate::cgroup::Layout::Hybrid { unified, v1 }) => {
            let names: Vec<String> = v1.iter().flat_map(|h| h.controllers.clone()).collect();
            (unified.clone(), format!("hybrid: cgroup2 at {}, v1 controllers {}", unified.display(), names.join(", ")))
        }
        Err(e) => return bad(Verdict::Fail, e.to_string(), e.hint().unwrap_or_else(|| "mount cgroup2".into())),
    };
    // Delegation: on a systemd host each container gets a delegated scope; without
    // systemd hutch makes its cgroups itself, so it must be able to.
    if Path::new("/run/systemd/system").exists() {
        return ok(format!("{layout}; systemd host: each container in a delegated scope (hutch-NAME.scope)"));
    }
    let probe = root.join(format!("hutch-doctor-{}", std::process::id()));
    match std::fs::create_dir(&probe).and_then(|_| std::fs::remove_dir(&probe)) {
        Ok(()) => ok(format!("{layout}; no systemd: hutch makes its cgroups itself, and can")),
        Err(e) => bad(
            Verdict::Fail,
            format!("{layout}; failed to make a cgroup in {}: {e}", root.display()),
            "mount cgroup2 read-write (hutch needs to create cgroups there)",
        ),
    }
}

fn subordinate_ids(_: &Paths) -> (Verdict, String, Option<String>) {
    let has_root = |p: &str| {
        std::fs::read_to_string(p).is_ok_and(|t| {
            t.lines().any(|l| {
                let f: Vec<&str> = l.split(':').collect();
                f.len() == 3 && (f[0] == "root" || f[0] == "0") && f[2].trim().parse::<u64>().is_ok_and(|n| n >= 65536)
            })
        })
    };
    if has_root("/etc/subuid") && has_root("/etc/subgid") {
        ok("root has a range of at least 65536 ids in /etc/subuid and /etc/subgid")
    } else {
        bad(
            Verdict::Warn,
            "root has no range of 65536 ids in /etc/subuid and /etc/subgid",
            "the first unprivileged start adds one; or: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 root",
        )
    }
}

fn nftables(_: &Paths) -> (Verdict, String, Option<String>) {
    if !have("nft") {
        return bad(
            Verdict::Fail,
            "nft is not installed (NAT and published ports need it)",
            "apt-get install nftables",
        );
    }
    match std::process::Command::new("nft").args(["list", "tables"]).output() {
        Ok(o) if o.status.success() => ok("nft runs and the kernel has nf_tables"),
        Ok(o) => bad(
            Verdict::Fail,
            format!("nft failed: {}", String::from_utf8_lossy(&o.stderr).trim()),
            "modprobe nf_tables",
        ),
        Err(e) => bad(Verdict::Fail, format!("failed to run nft: {e}"), "apt-get install --reinstall nftables"),
    }
}

fn bridges(_: &Paths) -> (Verdict, String, Option<String>) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    if Path::new("/sys/module/bridge").exists()
        || Path::new(&format!("/lib/modules/{}/kernel/net/bridge", release.trim())).exists()
    {
        ok("the kernel has bridges")
    } else {
        bad(Verdict::Fail, "the kernel has no bridge support", "modprobe bridge (CONFIG_BRIDGE)")
    }
}

fn dnsmasq(_: &Paths) -> (Verdict, String, Option<String>) {
    if have("dnsmasq") {
        ok("dnsmasq is installed (DHCP and DNS on hutch networks)")
    } else {
        bad(
            Verdict::Fail,
            "dnsmasq is not installed: containers on a hutch network cannot start",
            "apt-get install dnsmasq-base (or create containers with --network none)",
        )
    }
}

fn debootstrap(_: &Paths) -> (Verdict, String, Option<String>) {
    if have("debootstrap") {
        ok("debootstrap is installed (Debian and Ubuntu templates without an image server)")
    } else {
        bad(Verdict::Warn, "debootstrap is not installed", "apt-get install debootstrap (for -t debian, -t ubuntu)")
    }
}

fn inotify(_: &Paths) -> (Verdict, String, Option<String>) {
    match read_num("/proc/sys/fs/inotify/max_user_instances") {
        Some(n) if n >= 1024 => ok(format!("fs.inotify.max_user_instances is {n}")),
        Some(n) => bad(
            Verdict::Warn,
            format!("fs.inotify.max_user_instances is {n}: about ten systemd containers exhaust it"),
            "the next unprivileged start raises it to 1024; to keep it: echo fs.inotify.max_user_instances=1024 > /etc/sysctl.d/60-hutch.conf",
        ),
        None => bad(Verdict::Warn, "failed to read fs.inotify.max_user_instances", "check /proc/sys/fs/inotify"),
    }
}

fn lxcfs(paths: &Paths) -> (Verdict, String, Option<String>) {
    use crate::runtime::lxcfs::{Probe, probe, root};
    let root = root(paths);
    match probe(&root) {
        Probe::Ready => ok(format!("LXCFS answers at {}", root.display())),
        Probe::NotRunning => bad(
            Verdict::Warn,
            format!("LXCFS is not mounted at {}: free, top and uptime inside show the host's", root.display()),
            "apt-get install lxcfs (its service mounts it)",
        ),
        Probe::Dead(e) => bad(
            Verdict::Warn,
            format!("LXCFS at {} is mounted but not answering ({e})", root.display()),
            "systemctl restart lxcfs, then restart the containers that use it",
        ),
    }
}

/// Firewalls known to drop forwarded container traffic.
fn firewall(_: &Paths) -> (Verdict, String, Option<String>) {
    let mut found = Vec::new();
    if let Ok(o) = std::process::Command::new("nft").args(["list", "ruleset"]).output() {
        found.extend(forward_drops(&String::from_utf8_lossy(&o.stdout)));
    }
    if std::fs::read_to_string("/etc/ufw/ufw.conf").is_ok_and(|t| t.lines().any(|l| l.trim() == "ENABLED=yes")) {
        found.push("ufw is enabled".to_string());
    }
    if Path::new("/run/firewalld").exists() {
        found.push("firewalld is running".to_string());
    }
    if found.is_empty() {
        return ok("no forward chain drops by default");
    }
    bad(
        Verdict::Warn,
        format!("{}: forwarded container traffic may be dropped", found.join("; ")),
        "accept traffic from and to the hutch bridges there (e.g. Docker: iptables -I DOCKER-USER -i hutchbr0 -j ACCEPT; \
         ufw: ufw route allow in on hutchbr0; firewalld: firewall-cmd --zone=trusted --add-interface=hutchbr0)",
    )
}

/// The base chains hooked on forward with a drop policy, outside hutch's own tables.
pub fn forward_drops(ruleset: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut table, mut chain) = (String::new(), String::new());
    for line in ruleset.lines().map(str::trim) {
        if let Some(t) = line.strip_prefix("table ") {
            table = t.trim_end_matches(" {").to_string();
        } else if let Some(c) = line.strip_prefix("chain ") {
            chain = c.trim_end_matches(" {").to_string();
        } else if line.contains("hook forward") && line.contains("policy drop") && !table.contains("hutch") {
            out.push(format!("chain {chain} of table {table} drops forwarded packets by default"));
        }
    }
    out
}

fn networks(paths: &Paths) -> (Verdict, String, Option<String>) {
    let nets = match crate::network::net::list(paths) {
        Ok(n) => n,
        Err(e) => {
            return bad(
                Verdict::Fail,
                e.to_string(),
                e.hint().unwrap_or_else(|| "check the networks/ directory".into()),
            );
        }
    };
    if nets.is_empty() {
        return ok("no hutch network yet (hutchbr0 is made at the first start)");
    }
    let running: Vec<String> =
        super::list_names(paths).into_iter().filter(|n| super::observe(paths, n).status.is_up()).collect();
    let mut sick = Vec::new();
    let mut good = Vec::new();
    for n in nets {
        let users = crate::network::net::load_reservations(paths, &n.name)
            .map(|r| r.list.into_iter().filter(|x| running.contains(&x.container)).count())
            .unwrap_or(0);
        let bridge = Path::new("/sys/class/net").join(&n.bridge).exists();
        let dns = crate::network::net::dnsmasq_pid(paths, &n.name).is_some();
        if users > 0 && !(bridge && dns) {
            let what = if bridge { "its dnsmasq is not running" } else { "its bridge is gone" };
            sick.push(format!("{} ({what}, {users} running containers on it)", n.name));
        } else {
            good.push(format!("{} ({})", n.name, if bridge && dns { "up" } else { "idle" }));
        }
    }
    if sick.is_empty() {
        ok(good.join(", "))
    } else {
        bad(Verdict::Fail, sick.join("; "), "restart the containers on it (each start brings its network up)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_drop_policies_outside_hutch_are_found() {
        let ruleset = "table ip filter {\n\tchain FORWARD {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n\
                       table inet hutch {\n\tchain forward {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n\
                       table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t}\n}\n";
        assert_eq!(forward_drops(ruleset), ["chain FORWARD of table ip filter drops forwarded packets by default"]);
        assert!(
            forward_drops(
                "table ip filter {\n chain FORWARD {\n type filter hook forward priority 0; policy accept;\n }\n}"
            )
            .is_empty()
        );
    }
}
