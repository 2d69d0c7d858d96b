//! Living with systemd as the host's init (pure cgroup v2 hosts).
//!
//! systemd owns the cgroup tree, and hands a subtree to a program only through a unit
//! with `Delegate=yes`; processes live in leaves. So on such a host the monitor asks
//! systemd (D-Bus, `StartTransientUnit`) for a scope around itself, and splits that
//! delegated scope in two, like systemd-nspawn does:
//!
//! ```text
//! /sys/fs/cgroup/machine.slice/hutch-NAME.scope/    the unit (Delegate=yes); systemd's
//!     supervisor/                                   the monitor
//!     payload/                                      the container: its cgroup namespace
//!                                                   root, delegated to its root user
//! ```
//!
//! Then it registers the container with systemd-machined (leader: init), so
//! `machinectl list` shows it. When the container ends, the monitor unregisters it and
//! removes `payload/`; when the monitor exits the scope is empty, and systemd stops and
//! collects it (`CollectMode=inactive-or-failed`), `supervisor/` included.
//!
//! Under `hutch@.service` (`packaging/`), `HUTCH_KEEP_UNIT=1` asks the monitor to keep
//! the service it runs in instead of making a scope (nspawn's `--keep-unit`): the same
//! two leaves go under `hutch@NAME.service`, which must have `Delegate=yes`.
//!
//! Without systemd (and on hybrid v1/v2 hosts, whose v1 hierarchies would need
//! per-controller delegation), hutch manages cgroupfs itself: `<root>/hutch/NAME`.
//! The saved runtime state names the payload's full path, so `stop`, `destroy` and
//! stale-state reconciliation find it on either kind of host.
//!
//! zbus runs threads and the monitor must not: every D-Bus exchange happens in a
//! short-lived child process (`helper`).

mod bus;
mod helper;

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::base::paths::Paths;
use crate::cgroup::{ContainerCgroup, Layout};
pub use bus::{BusError, Fault};

/// The slice containers' scopes go in (systemd's own for VMs and containers).
pub const SLICE: &str = "machine.slice";
/// Leaf of the unit's cgroup that holds the monitor.
pub const SUPERVISOR: &str = "supervisor";
/// Leaf of the unit's cgroup that holds the container.
pub const PAYLOAD: &str = "payload";
/// Set to `1` (by `hutch@.service`) for `hutch start` to keep the unit it runs in.
pub const KEEP_UNIT_ENV: &str = "HUTCH_KEEP_UNIT";

/// How long one D-Bus exchange may take (a job on a slow, emulated host included).
const BUS_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to {action}: {message}")]
    Systemd { action: String, message: BusError },
    #[error("failed to {action}: {message}")]
    Machined { action: String, message: BusError },
    #[error("failed to keep unit {unit} for the container: {message}")]
    KeepUnit { unit: String, message: String },
    #[error("failed to find the monitor's own cgroup in /proc/self/cgroup: {source}")]
    OwnCgroup { source: io::Error },
    #[error("failed to move the processes of {unit} into {path}: {source}")]
    Cgroup { unit: String, path: PathBuf, source: io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Systemd { .. } => Some("check systemd's D-Bus API with `busctl status org.freedesktop.systemd1`".into()),
            // The bus knows no org.freedesktop.machine1: machined is not installed.
            Error::Machined { message, .. } if message.fault == Fault::ServiceUnknown => Some(
                "install systemd-container (systemd-machined); containers run without it, but `machinectl` does not list them"
                    .into(),
            ),
            Error::Machined { .. } => None,
            Error::KeepUnit { .. } => Some(format!(
                "{KEEP_UNIT_ENV}=1 is for units with Delegate=yes, such as hutch@.service; unset it to give the container a scope of its own"
            )),
            Error::Cgroup { .. } | Error::OwnCgroup { .. } => None,
        }
    }
}

/// Is systemd the host's init (the test `sd_booted()` makes)?
pub fn is_systemd_host() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// `hutch-NAME.scope` for the default tree, `hutch-HASH-NAME.scope` for another root.
pub fn scope_name(paths: &Paths, name: &str) -> String {
    format!("{}-{name}.scope", paths.cgroup_parent)
}

/// The cgroup of container `name`'s own scope, relative to the cgroup2 root.
pub fn scope_cgroup(paths: &Paths, name: &str) -> String {
    format!("{SLICE}/{}", scope_name(paths, name))
}

/// The name machined knows the container by: its own for the default tree,
/// `NAME-HASH` for another root. None if that is longer than machined allows.
pub fn machine_name(paths: &Paths, name: &str) -> Option<String> {
    let m = if paths.scope().is_empty() { name.to_string() } else { format!("{name}-{}", paths.scope()) };
    (m.len() <= 64).then_some(m)
}

/// Starts transient scope `unit` in `slice` around `pid`, delegated, and waits until
/// its start job has finished.
pub fn start_scope(unit: &str, pid: i32, slice: &str, description: &str) -> Result<(), Error> {
    let fail = |message| Error::Systemd { action: format!("start systemd scope {unit}"), message };
    let pid = u32::try_from(pid).map_err(|_| fail(format!("bad pid {pid}").into()))?;
    helper::run(BUS_TIMEOUT, || zbus::block_on(bus::start_scope(unit, pid, slice, description))).map_err(fail)
}

/// Whether `unit` (a loaded service or scope) has `Delegate=yes`.
pub fn unit_delegates(unit: &str) -> Result<bool, Error> {
    helper::run(BUS_TIMEOUT, || zbus::block_on(bus::unit_delegates(unit)))
        .map_err(|message| Error::Systemd { action: format!("read the Delegate property of {unit}"), message })
}

/// Registers container `name` with systemd-machined (class `container`, service
/// `hutch`). machined finds its unit from the leader's cgroup.
pub fn register_machine(name: &str, leader: i32, root_directory: &Path) -> Result<(), Error> {
    let fail = |message| Error::Machined { action: format!("register machine {name} with systemd-machined"), message };
    let leader = u32::try_from(leader).map_err(|_| fail(format!("bad pid {leader}").into()))?;
    let root = root_directory.to_str().ok_or_else(|| fail("the root directory is not UTF-8".into()))?;
    helper::run(BUS_TIMEOUT, || zbus::block_on(bus::register_machine(name, leader, root))).map_err(fail)
}

/// Forgets machine `name` (its processes go on).
pub fn unregister_machine(name: &str) -> Result<(), Error> {
    helper::run(BUS_TIMEOUT, || zbus::block_on(bus::unregister_machine(name))).map_err(|message| Error::Machined {
        action: format!("unregister machine {name} from systemd-machined"),
        message,
    })
}

/// Where a container lives on a systemd host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The delegated unit: `hutch-NAME.scope`, or the kept service.
    pub unit: String,
    /// The unit's cgroup, relative to the cgroup2 root (`machine.slice/hutch-NAME.scope`).
    pub cgroup: String,
    /// Its name for machined, if it has one.
    pub machine: Option<String>,
}

impl Placement {
    /// The container's cgroup: `<unit>/payload`.
    pub fn container_cgroup(&self, layout: &Layout) -> ContainerCgroup {
        ContainerCgroup::new(layout, &self.cgroup, PAYLOAD)
    }
}

/// For the monitor of container `name`, early and while single-threaded: on a systemd
/// host with a unified cgroup tree, gets a delegated unit (a new scope around the
/// calling process, or with `keep_unit` the unit it runs in) and moves the unit's
/// processes into its `supervisor` leaf. None where hutch manages cgroupfs itself.
pub fn enter(paths: &Paths, name: &str, layout: &Layout, keep_unit: bool) -> Result<Option<Placement>, Error> {
    let Layout::Unified { root } = layout else { return Ok(None) };
    if !is_systemd_host() {
        return Ok(None);
    }
    let machine = machine_name(paths, name);
    let (unit, cgroup) = if keep_unit {
        let cgroup = own_cgroup()?;
        let unit = cgroup.rsplit('/').next().unwrap_or_default().to_string();
        let keep = |message: String| Error::KeepUnit { unit: unit.clone(), message };
        if !(unit.ends_with(".service") || unit.ends_with(".scope")) {
            return Err(keep(format!("the monitor's cgroup /{cgroup} is not a service's or scope's own")));
        }
        if !unit_delegates(&unit)? {
            return Err(keep("it does not have Delegate=yes".into()));
        }
        (unit, cgroup)
    } else {
        let unit = scope_name(paths, name);
        start_scope(&unit, std::process::id() as i32, SLICE, &format!("hutch container {name}"))?;
        let cgroup = own_cgroup()?;
        if !cgroup.ends_with(&format!("/{unit}")) {
            return Err(Error::Systemd {
                action: format!("start {unit}"),
                message: format!("the monitor is in /{cgroup} afterwards, not in the new scope").into(),
            });
        }
        (unit, cgroup)
    };
    let unit_dir = root.join(&cgroup);
    move_into(&unit_dir, &unit_dir.join(SUPERVISOR)).map_err(|(path, source)| Error::Cgroup {
        unit: unit.clone(),
        path,
        source,
    })?;
    Ok(Some(Placement { unit, cgroup, machine }))
}

/// This process's cgroup2 path (no leading slash), from /proc/self/cgroup.
fn own_cgroup() -> Result<String, Error> {
    let text = std::fs::read_to_string("/proc/self/cgroup").map_err(|source| Error::OwnCgroup { source })?;
    parse_own_cgroup(&text).ok_or_else(|| Error::OwnCgroup {
        source: io::Error::new(io::ErrorKind::InvalidData, "it names no cgroup2 path"),
    })
}

fn parse_own_cgroup(text: &str) -> Option<String> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rel = path.trim().trim_start_matches('/');
    (!rel.is_empty()).then(|| rel.to_string())
}

/// Moves every process of cgroup `from` into its child `to` (created if need be), so
/// `from` is no leaf and may enable controllers for its children. Repeats while
/// processes keep appearing (a fork racing with the move), a bounded number of times.
fn move_into(from: &Path, to: &Path) -> Result<(), (PathBuf, io::Error)> {
    match std::fs::create_dir(to) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err((to.to_path_buf(), e)),
    }
    let procs = from.join("cgroup.procs");
    for _ in 0..20 {
        let text = std::fs::read_to_string(&procs).map_err(|e| (procs.clone(), e))?;
        let pids: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            match std::fs::write(to.join("cgroup.procs"), pid) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {} // it just exited
                Err(e) => return Err((to.join("cgroup.procs"), e)),
            }
        }
    }
    Err((procs, io::Error::other("processes kept appearing")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_tree() {
        let default = Paths::new(None);
        assert_eq!(scope_name(&default, "web"), "hutch-web.scope");
        assert_eq!(scope_cgroup(&default, "web"), "machine.slice/hutch-web.scope");
        assert_eq!(machine_name(&default, "web").as_deref(), Some("web"));
        let other = Paths::new(Some(Path::new("/tmp/elsewhere")));
        let hash = other.scope().to_string();
        assert_eq!(scope_name(&other, "web"), format!("hutch-{hash}-web.scope"));
        assert_eq!(machine_name(&other, "web"), Some(format!("web-{hash}")));
        assert_eq!(machine_name(&other, &"a".repeat(63)), None);
    }

    #[test]
    fn own_cgroup_is_the_unified_line() {
        let hybrid = "12:pids:/user.slice\n1:name=systemd:/user.slice/x.scope\n0::/machine.slice/hutch-c.scope\n";
        assert_eq!(parse_own_cgroup(hybrid).as_deref(), Some("machine.slice/hutch-c.scope"));
        assert_eq!(parse_own_cgroup("0::/\n"), None);
        assert_eq!(parse_own_cgroup("3:cpu:/x\n"), None);
    }

    #[test]
    fn the_payload_is_a_leaf_of_the_unit() {
        let layout = Layout::Unified { root: "/sys/fs/cgroup".into() };
        let p = Placement {
            unit: "hutch-c.scope".into(),
            cgroup: "machine.slice/hutch-c.scope".into(),
            machine: Some("c".into()),
        };
        let cg = p.container_cgroup(&layout);
        assert_eq!(cg.unified, Path::new("/sys/fs/cgroup/machine.slice/hutch-c.scope/payload"));
        assert!(cg.v1.is_empty());
    }

    #[test]
    fn no_systemd_means_no_placement() {
        // These machines have no systemd; hybrid layouts never get one either.
        let layout = Layout::Hybrid { unified: "/sys/fs/cgroup/unified".into(), v1: vec![] };
        assert_eq!(enter(&Paths::new(None), "c", &layout, false).unwrap(), None);
        if !is_systemd_host() {
            let unified = Layout::Unified { root: "/nonexistent".into() };
            assert_eq!(enter(&Paths::new(None), "c", &unified, false).unwrap(), None);
        }
    }
}
