//! LXCFS (Debian's `lxcfs`): a FUSE filesystem whose `/proc` files answer each reader
//! with the figures of its own cgroup, so `free`, `top`, `uptime` and `nproc` inside a
//! container report its memory limit, its CPUs and its uptime. hutch binds them over
//! the container's `/proc` files (and `/sys/devices/system/cpu/online`) when LXCFS runs
//! on the host (`security.lxcfs = "auto"`, the default), always (`"on"`: a start fails
//! without it) or never (`"off"`).
//!
//! A restarted LXCFS daemon leaves every bind made from its old mount dead ("Transport
//! endpoint is not connected" on each read inside): `probe` tells a dead mount from a
//! live one, so a start and `hutch doctor` can say how to recover (restart LXCFS, then
//! the containers using it: each start binds afresh).

use std::path::{Path, PathBuf};

use crate::config::Lxcfs;

/// Where Debian's lxcfs.service mounts it (`[lxcfs] path` in hutch.toml changes it).
pub const DEFAULT_ROOT: &str = "/var/lib/lxcfs";
/// Its `/proc` files hutch binds over the container's.
pub const PROC_FILES: &[&str] = &["meminfo", "cpuinfo", "stat", "uptime", "loadavg", "diskstats", "swaps"];
/// Its `/sys` files, below `sys/`.
pub const SYS_FILES: &[&str] = &["devices/system/cpu/online"];
/// statfs(2) `f_type` of a FUSE filesystem.
const FUSE_SUPER_MAGIC: u32 = 0x6573_5546;

/// The state of LXCFS at `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    Ready,
    /// Nothing (or no FUSE filesystem) is mounted there.
    NotRunning,
    /// Mounted but not answering (the daemon died or was restarted).
    Dead(String),
}

pub fn probe(root: &Path) -> Probe {
    match rustix::fs::statfs(root) {
        Ok(s) if s.f_type as u32 == FUSE_SUPER_MAGIC => {}
        Ok(_) => return Probe::NotRunning,
        Err(rustix::io::Errno::NOTCONN) => return Probe::Dead(rustix::io::Errno::NOTCONN.to_string()),
        Err(_) => return Probe::NotRunning,
    }
    match std::fs::read(root.join("proc/uptime")) {
        Ok(_) => Probe::Ready,
        Err(e) => Probe::Dead(e.to_string()),
    }
}

/// Whether to bind LXCFS into a container, by its setting and the probe; a notice
/// when `auto` goes without; an error when `on` cannot have it.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Use(PathBuf),
    Without(Option<String>),
    Refuse(String),
}

pub fn decide(mode: Lxcfs, nesting: bool, root: &Path, probe: &Probe) -> Decision {
    let why = match probe {
        Probe::Ready if mode == Lxcfs::Off => return Decision::Without(None),
        // Mounts over /proc files hide it from a nested runtime's own proc mounts.
        Probe::Ready if nesting && mode == Lxcfs::Auto => return Decision::Without(None),
        Probe::Ready => return Decision::Use(root.to_path_buf()),
        Probe::NotRunning => format!("LXCFS is not running (nothing is mounted at {})", root.display()),
        Probe::Dead(e) => format!(
            "LXCFS at {} is not answering ({e}): restart it (`systemctl restart lxcfs`), then restart the containers that use it",
            root.display()
        ),
    };
    match mode {
        Lxcfs::Off => Decision::Without(None),
        Lxcfs::On => Decision::Refuse(why),
        Lxcfs::Auto => Decision::Without(Some(format!(
            "{why}; free, top and uptime inside show the host's figures (install lxcfs, or set security.lxcfs = \"off\")"
        ))),
    }
}

/// Where LXCFS is mounted on this host, by hutch.toml (unreadable settings: the default).
pub fn root(paths: &crate::base::paths::Paths) -> PathBuf {
    let settings = crate::base::settings::load(paths).unwrap_or_default();
    settings.lxcfs.path.unwrap_or_else(|| PathBuf::from(DEFAULT_ROOT))
}

/// What a container with these security settings gets of LXCFS now.
pub fn decide_for(paths: &crate::base::paths::Paths, security: &crate::config::Security) -> Decision {
    let root = root(paths);
    decide(security.lxcfs, security.nesting, &root, &probe(&root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_and_the_probe_decide() {
        let root = Path::new("/var/lib/lxcfs");
        let dead = Probe::Dead("Transport endpoint is not connected".into());
        assert_eq!(decide(Lxcfs::Auto, false, root, &Probe::Ready), Decision::Use(root.into()));
        assert_eq!(decide(Lxcfs::Auto, true, root, &Probe::Ready), Decision::Without(None));
        assert_eq!(decide(Lxcfs::On, true, root, &Probe::Ready), Decision::Use(root.into()));
        assert_eq!(decide(Lxcfs::Off, false, root, &Probe::Ready), Decision::Without(None));
        assert_eq!(decide(Lxcfs::Off, false, root, &dead), Decision::Without(None));
        match decide(Lxcfs::Auto, false, root, &Probe::NotRunning) {
            Decision::Without(Some(n)) => assert!(n.contains("not running") && n.contains("security.lxcfs"), "{n}"),
            d => panic!("{d:?}"),
        }
        match decide(Lxcfs::Auto, false, root, &dead) {
            Decision::Without(Some(n)) => assert!(n.contains("systemctl restart lxcfs"), "{n}"),
            d => panic!("{d:?}"),
        }
        assert!(matches!(decide(Lxcfs::On, false, root, &dead), Decision::Refuse(m) if m.contains("not answering")));
    }

    #[test]
    fn a_plain_directory_is_no_lxcfs() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(probe(d.path()), Probe::NotRunning);
        assert_eq!(probe(&d.path().join("missing")), Probe::NotRunning);
    }
}
