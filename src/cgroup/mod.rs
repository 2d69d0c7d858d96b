//! Container cgroups on the two host layouts hutch supports:
//!
//! * **unified** (pure cgroup v2, most hosts today): one tree; the container gets
//!   `<cgroup2>/<parent>/<name>`, delegated to its root user.
//! * **hybrid** (v1 controllers plus a controller-less cgroup2 at
//!   `/sys/fs/cgroup/unified`, as on these test machines): the container gets a
//!   cgroup2 directory for its own systemd, for freezing and for `cgroup.kill`, plus a
//!   directory in each v1 controller hierarchy for accounting and limits.
//!
//! Either way the guest sees only a cgroup2 tree (its cgroup namespace root), because
//! current systemd refuses cgroup v1. All paths derive from a parsed mountinfo, so the
//! logic is tested against temp directories.

pub(crate) mod limits;

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "failed to find a cgroup2 hierarchy on this host: hutch needs cgroup2 (unified, or hybrid with /sys/fs/cgroup/unified)"
    )]
    NoCgroup2,
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to open cgroup {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("failed to create cgroup {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("failed to write {value:?} to {path}: {source}")]
    Write { path: PathBuf, value: String, source: io::Error },
    #[error("failed to delegate cgroup {path} to the container's root: {source}")]
    Delegate { path: PathBuf, source: io::Error },
    #[error("failed to remove cgroup {path}: {source}")]
    Remove { path: PathBuf, source: io::Error },
    #[error("failed to {action} cgroup {path}: it did not settle within {secs} s")]
    Timeout { action: &'static str, path: PathBuf, secs: u64 },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoCgroup2 => Some("mount cgroup2 (e.g. boot with systemd.unified_cgroup_hierarchy=1, or mount -t cgroup2 none /sys/fs/cgroup/unified)".into()),
            _ => None,
        }
    }
}

/// A v1 hierarchy: its controllers and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V1Hierarchy {
    pub controllers: Vec<String>,
    pub mount: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Layout {
    Unified { root: PathBuf },
    Hybrid { unified: PathBuf, v1: Vec<V1Hierarchy> },
}

impl Layout {
    /// Reads this process's mountinfo.
    pub fn detect() -> Result<Layout, Error> {
        let path = Path::new("/proc/self/mountinfo");
        let text = fs::read_to_string(path).map_err(|source| Error::Read { path: path.into(), source })?;
        Layout::from_mountinfo(&text)
    }

    /// Works out the layout from mountinfo text.
    pub fn from_mountinfo(text: &str) -> Result<Layout, Error> {
        let mut unified = None;
        let mut v1 = Vec::new();
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            if left.len() < 5 || right.len() < 3 {
                continue;
            }
            let mount = PathBuf::from(unescape(left[4]));
            match right[0] {
                "cgroup2" if unified.is_none() => unified = Some(mount),
                "cgroup" => {
                    let controllers: Vec<String> =
                        right[2].split(',').filter(|o| V1_CONTROLLERS.contains(o)).map(str::to_string).collect();
                    if !controllers.is_empty() {
                        v1.push(V1Hierarchy { controllers, mount });
                    }
                }
                _ => {}
            }
        }
        let unified = unified.ok_or(Error::NoCgroup2)?;
        Ok(if v1.is_empty() { Layout::Unified { root: unified } } else { Layout::Hybrid { unified, v1 } })
    }

    pub fn unified_root(&self) -> &Path {
        match self {
            Layout::Unified { root } => root,
            Layout::Hybrid { unified, .. } => unified,
        }
    }
}

/// v1 controllers hutch places containers in (named hierarchies such as name=systemd
/// are left alone).
const V1_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "hugetlb",
    "perf_event",
    "rdma",
    "misc",
];

/// Files a delegated cgroup2 directory hands to the container's root, beyond the
/// directory itself (systemd's delegation rules; nspawn's list).
const DELEGATED_FILES: &[&str] =
    &["cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "memory.oom.group", "memory.reclaim"];

/// How many levels of cgroups a container may create below its own.
const MAX_DEPTH: u32 = 32;

/// v2 controllers enabled for hutch's parent cgroup on unified hosts, so each
/// container (and its own systemd) can use them.
const V2_CONTROLLERS: &[&str] = &["cpuset", "cpu", "io", "memory", "pids"];

/// mountinfo escapes spaces and such as `\040`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One container's cgroup directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerCgroup {
    /// The cgroup2 directory (the guest's cgroup namespace root).
    pub unified: PathBuf,
    /// One directory per v1 hierarchy on hybrid hosts.
    #[serde(default)]
    pub v1: Vec<PathBuf>,
}

impl ContainerCgroup {
    pub fn new(layout: &Layout, parent: &str, name: &str) -> ContainerCgroup {
        match layout {
            Layout::Unified { root } => ContainerCgroup { unified: root.join(parent).join(name), v1: vec![] },
            Layout::Hybrid { unified, v1 } => ContainerCgroup {
                unified: unified.join(parent).join(name),
                v1: v1.iter().map(|h| h.mount.join(parent).join(name)).collect(),
            },
        }
    }

    /// Creates the directories (and the shared parent), readies v1 cpusets, and on
    /// unprivileged containers delegates the cgroup2 directory to `owner` (the host
    /// uid and gid of the container's root).
    pub fn create(&self, layout: &Layout, owner: Option<(u32, u32)>) -> Result<(), Error> {
        // A concurrent `remove` of the last sibling may delete the shared parent
        // between our mkdirs: try again.
        let mut tries = 0;
        loop {
            match self.create_once(layout, owner) {
                Err(Error::Create { source, .. }) | Err(Error::Write { source, .. })
                    if source.kind() == io::ErrorKind::NotFound && tries < 5 =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    fn create_once(&self, layout: &Layout, owner: Option<(u32, u32)>) -> Result<(), Error> {
        let parent = self.unified.parent().expect("container cgroups have a parent");
        mkdir(parent)?;
        if let Layout::Unified { .. } = layout {
            enable_controllers(parent)?;
        }
        mkdir(&self.unified)?;
        for dir in &self.v1 {
            let parent = dir.parent().expect("container cgroups have a parent");
            mkdir(parent)?;
            init_cpuset(parent)?;
            mkdir(dir)?;
            init_cpuset(dir)?;
        }
        // Bound how deep the container may nest cgroups (systemd needs a handful of
        // levels; nested containers a few more). Best effort: older kernels lack it.
        let _ = fs::write(self.unified.join("cgroup.max.depth"), MAX_DEPTH.to_string());
        if let Some((uid, gid)) = owner {
            let chown = |p: &Path| {
                std::os::unix::fs::chown(p, Some(uid), Some(gid))
                    .map_err(|source| Error::Delegate { path: p.to_path_buf(), source })
            };
            chown(&self.unified)?;
            for f in DELEGATED_FILES {
                let p = self.unified.join(f);
                if p.exists() {
                    chown(&p)?;
                }
            }
        }
        Ok(())
    }

    /// The cgroup2 directory `sub` (relative to the container's root: `/` for the
    /// root, `/init.scope` for init's under systemd), opened for `CLONE_INTO_CGROUP`.
    pub fn open_unified(&self, sub: &Path) -> Result<OwnedFd, Error> {
        let rel = sub.strip_prefix("/").unwrap_or(sub);
        let target = self.unified.join(rel);
        // Refuse anything that climbs out of the container's tree.
        if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            return Err(Error::Open { path: target, source: io::Error::from_raw_os_error(libc::EINVAL) });
        }
        rustix::fs::open(
            &target,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::Open { path: target, source: e.into() })
    }

    /// Moves `pid` (0: the caller) into the v1 directories, on hybrid hosts; its
    /// cgroup2 place comes from `CLONE_INTO_CGROUP` ([`ContainerCgroup::open_unified`]).
    pub fn attach_v1(&self, pid: i32) -> Result<(), Error> {
        for dir in &self.v1 {
            write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn exists(&self) -> bool {
        self.unified.is_dir() || self.v1.iter().any(|d| d.is_dir())
    }

    /// Whether any process is left in the cgroup2 subtree.
    pub fn is_populated(&self) -> bool {
        match fs::read_to_string(self.unified.join("cgroup.events")) {
            Ok(ev) => event(&ev, "populated") == Some(true),
            Err(_) => !self.pids().is_empty(),
        }
    }

    /// Every pid in the cgroup2 subtree (and, on hybrid hosts, the v1 directories).
    pub fn pids(&self) -> Vec<i32> {
        let mut out = Vec::new();
        collect_pids(&self.unified, &mut out);
        for d in &self.v1 {
            collect_pids(d, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Kills every process (cgroup.kill; falls back to SIGKILL per pid).
    pub fn kill(&self) {
        if write(&self.unified.join("cgroup.kill"), "1").is_err() {
            for _ in 0..10 {
                let pids = self.pids();
                if pids.is_empty() {
                    break;
                }
                for p in pids {
                    let _ = crate::sys::kill(p, libc::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Waits until no process is left; false on timeout.
    pub fn wait_empty(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            if !self.is_populated() {
                return true;
            }
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Freezes or thaws the whole subtree (cgroup2 `cgroup.freeze`) and waits for it.
    pub fn set_frozen(&self, frozen: bool) -> Result<(), Error> {
        write(&self.unified.join("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let end = Instant::now() + Duration::from_secs(10);
        while self.is_frozen() != frozen {
            if Instant::now() >= end {
                return Err(Error::Timeout {
                    action: if frozen { "freeze" } else { "thaw" },
                    path: self.unified.clone(),
                    secs: 10,
                });
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    pub fn is_frozen(&self) -> bool {
        fs::read_to_string(self.unified.join("cgroup.events")).ok().and_then(|ev| event(&ev, "frozen")).unwrap_or(false)
    }

    /// Removes the directories, deepest first (the guest's systemd leaves its own
    /// sub-cgroups behind). Missing directories are fine.
    pub fn remove(&self) -> Result<(), Error> {
        for dir in std::iter::once(&self.unified).chain(&self.v1) {
            remove_tree(dir)?;
            // The shared parent goes too once its last container has gone (fails,
            // harmlessly, while others remain); `create` retries if it loses a race.
            // A systemd unit's cgroup is systemd's to remove (see `crate::systemd`).
            if let Some(parent) = dir.parent().filter(|p| !is_systemd_unit(p)) {
                let _ = fs::remove_dir(parent);
            }
        }
        Ok(())
    }
}

/// Reads `key 0|1` out of a cgroup.events file.
fn event(events: &str, key: &str) -> Option<bool> {
    events.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim() == "1")
    })
}

fn mkdir(p: &Path) -> Result<(), Error> {
    match fs::create_dir(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(Error::Create { path: p.to_path_buf(), source }),
    }
}

fn write(p: &Path, value: &str) -> Result<(), Error> {
    fs::write(p, value).map_err(|source| Error::Write { path: p.to_path_buf(), value: value.to_string(), source })
}

/// A new v1 cpuset starts with no CPUs and no memory nodes, and refuses tasks until
/// given some: copy them from the parent.
fn init_cpuset(dir: &Path) -> Result<(), Error> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let p = dir.join(f);
        let Ok(cur) = fs::read_to_string(&p) else {
            continue;
        };
        if cur.trim().is_empty() {
            let parent = dir.parent().expect("cgroup dirs have parents").join(f);
            let v = fs::read_to_string(&parent).map_err(|source| Error::Read { path: parent, source })?;
            write(&p, v.trim())?;
        }
    }
    Ok(())
}

/// Whether `dir` is the cgroup of a systemd unit (a delegated scope or service that
/// holds the container on systemd hosts): systemd names them all after the unit, and
/// hutch's own directories (`hutch`, `hutch-HASH`, containers) never have a dot.
fn is_systemd_unit(dir: &Path) -> bool {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    [".scope", ".service", ".slice"].iter().any(|s| name.ends_with(s))
}

/// Enables the usual controllers in `dir`'s subtree (best effort: a controller that
/// the host does not offer is skipped), and in its parent's to make them available,
/// unless `dir` is a systemd unit's: systemd has enabled what it delegated there, and
/// the parent (a slice) is systemd's alone.
fn enable_controllers(dir: &Path) -> Result<(), Error> {
    let available = |d: &Path| fs::read_to_string(d.join("cgroup.controllers")).unwrap_or_default();
    let parent = dir.parent().filter(|_| !is_systemd_unit(dir)).unwrap_or(dir);
    for d in [parent, dir] {
        let avail = available(d);
        let enabled = fs::read_to_string(d.join("cgroup.subtree_control")).unwrap_or_default();
        for c in V2_CONTROLLERS {
            if avail.split_whitespace().any(|a| a == *c) && !enabled.split_whitespace().any(|a| a == *c) {
                let _ = fs::write(d.join("cgroup.subtree_control"), format!("+{c}"));
            }
        }
    }
    Ok(())
}

// The container owns its cgroup2 subtree and may make it deep: walk it through
// directory descriptors (openat), so no path ever grows past PATH_MAX.

fn open_dir_at(dir: impl std::os::fd::AsFd, name: &std::ffi::OsStr) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Names of the subdirectories (child cgroups) of `dir`.
fn subdirs(dir: &std::os::fd::OwnedFd) -> io::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let mut out = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if entry.file_type() == rustix::fs::FileType::Directory && name != b"." && name != b".." {
            out.push(std::ffi::OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(fd) = open_dir_at(rustix::fs::CWD, dir.as_os_str()) {
        collect_pids_at(&fd, out);
    }
}

fn collect_pids_at(dir: &std::os::fd::OwnedFd, out: &mut Vec<i32>) {
    use std::io::Read;
    if let Ok(f) = rustix::fs::openat(
        dir,
        "cgroup.procs",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        let mut procs = String::new();
        if fs::File::from(f).read_to_string(&mut procs).is_ok() {
            out.extend(procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    for name in subdirs(dir).unwrap_or_default() {
        if let Ok(child) = open_dir_at(dir, &name) {
            collect_pids_at(&child, out);
        }
    }
}

fn remove_tree(dir: &Path) -> Result<(), Error> {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else { return Ok(()) };
    let parent_fd = match open_dir_at(rustix::fs::CWD, parent.as_os_str()) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Remove { path: dir.to_path_buf(), source }),
    };
    remove_at(&parent_fd, name, dir)
}

/// Removes the cgroup `name` in `parent`, its children first. `shown` names it in errors.
fn remove_at(parent: &std::os::fd::OwnedFd, name: &std::ffi::OsStr, shown: &Path) -> Result<(), Error> {
    let fd = match open_dir_at(parent, name) {
        Ok(fd) => fd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(Error::Remove { path: shown.to_path_buf(), source }),
    };
    let children = subdirs(&fd).map_err(|source| Error::Remove { path: shown.to_path_buf(), source })?;
    for child in children {
        remove_at(&fd, &child, &shown.join(&child))?;
    }
    drop(fd);
    // A cgroup whose last process just exited can report EBUSY for a moment.
    let mut tries = 0;
    loop {
        match rustix::fs::unlinkat(parent, name, rustix::fs::AtFlags::REMOVEDIR) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => return Ok(()),
            Err(rustix::io::Errno::BUSY) if tries < 200 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(Error::Remove { path: shown.to_path_buf(), source: e.into() }),
        }
    }
}

#[cfg(test)]
mod tests;
