//! The parent side of a container start: clone the first process into new namespaces,
//! write its id maps, put it in its cgroup, hand it the root filesystem as an
//! idmapped mount, and learn whether init was executed.
//!
//! Ownership: the rootfs stays on disk as the distribution shipped it (root-owned).
//! For unprivileged containers it is mounted through an idmapped mount bound to the
//! container's user namespace, so container root sees its files as its own and files
//! it creates land on disk unshifted. Nothing is chowned at create time, and one
//! rootfs works with any id map.
//!
//! The mount is also `nodev`, and the flag must stay: a device node in the rootfs is
//! owned by (mapped) container root. The kernel locks mount flags against the
//! container only when it copies a mount namespace into one owned by the container's
//! user namespace. So the child is cloned *without* a new mount namespace, sharing the
//! monitor's private one; the monitor attaches the rootfs there, and the child moves
//! onto it (fchdir) and only then unshares its own mount namespace: its copy of the
//! rootfs comes with `nodev` locked.
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use super::Error;
use crate::base::state::Proc;
use crate::cgroup::ContainerCgroup;
use crate::idmap::IdMap;
use crate::runtime::child::{self, ChildSpec};
use crate::runtime::{apply, channel, mounts};
use crate::sys::{self, Forked};

pub struct Launched {
    pub init: Proc,
    pub pidfd: OwnedFd,
}

/// Starts the container's init. On failure the child is gone and the message says why.
/// `plug` runs once the child exists and before it goes on (it moves the NICs in).
pub fn launch(
    spec: &ChildSpec,
    idmap: Option<IdMap>,
    cgroup: &ContainerCgroup,
    plug: &dyn Fn(i32) -> Result<(), Error>,
) -> Result<Launched, Error> {
    let (parent_end, child_end) = channel::pair().map_err(Error::os("create the start channel"))?;
    let host = apply::prepare_host_binds(&spec.steps)?;
    let shares = open_shares(spec)?;
    // No CLONE_NEWNS here: the child unshares its mount namespace itself, after it
    // has moved onto the root filesystem (see the module comment).
    let mut flags = (libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET) as u64;
    if idmap.is_some() {
        flags |= libc::CLONE_NEWUSER as u64;
    }
    // Born in the container's cgroup2 root; the v1 directories (hybrid hosts) follow.
    let into = cgroup.open_unified(Path::new("/"))?;
    super::timeline::arm_child();
    let (pid, pidfd) = match sys::clone3(flags, Some(into.as_fd()))? {
        Forked::Child => {
            drop(parent_end);
            child::run(spec, host, &shares, child_end)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    super::timeline::mark(super::timeline::Stage::Cloned);
    drop((child_end, host, into));

    let abort = |e: Error| {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        e
    };

    if let Some(map) = idmap {
        if let Err(e) = write_maps(pid, &map) {
            return Err(abort(e));
        }
        super::timeline::mark(super::timeline::Stage::IdMapsWritten);
    }
    if let Err(e) = cgroup.attach_v1(pid) {
        return Err(abort(e.into()));
    }
    if let Err(e) = plug(pid) {
        return Err(abort(e));
    }
    // Opened once, for the rootfs's idmapped mount and the shared folders'.
    let userns = match idmap.map(|_| open_userns(pid)).transpose() {
        Ok(ns) => ns,
        Err(e) => return Err(abort(e)),
    };
    let tree = match rootfs_mount(spec, userns.as_ref(), idmap.as_ref()) {
        Ok(t) => t,
        Err(e) => return Err(abort(e)),
    };
    // Attached in the monitor's private mount namespace, which the child still shares;
    // detached again once the child has its own copy.
    let attached = match Attached::at(&tree, &spec.rootfs) {
        Ok(a) => a,
        Err(e) => return Err(abort(e)),
    };
    let share_trees = match flag_shares(spec, shares, userns.as_ref()) {
        Ok(t) => t,
        Err(e) => return Err(abort(e)),
    };
    let share_fds: Vec<_> = share_trees.iter().map(|t| t.as_fd()).collect();
    let sent = channel::send_go(parent_end.as_fd(), tree.as_fd(), &share_fds);
    drop(share_fds);
    drop((tree, share_trees, userns));
    if let Err(e) = sent {
        return Err(abort(Error::Os { action: "send the start handshake to the container".into(), source: e }));
    }
    let verdict = channel::recv_verdict(parent_end.as_fd());
    drop(attached);
    if let Err(e) = verdict {
        return Err(abort(Error::Child(e)));
    }
    super::timeline::collect_child();
    let init = Proc::of(pid).map_err(|e| abort(Error::os(format!("read the state of init (pid {pid})"))(e)))?;
    Ok(Launched { init, pidfd })
}

/// Opens and checks the shared folders' sources before the clone; a missing optional
/// one is logged and left out.
fn open_shares(spec: &ChildSpec) -> Result<Vec<mounts::Prepared>, Error> {
    if spec.mounts.is_empty() {
        return Ok(Vec::new());
    }
    let refusals = mounts::Refusals::new(&spec.state_roots[0], &spec.state_roots[1]);
    let (ready, skipped) = mounts::prepare(&spec.mounts, &refusals)?;
    for m in skipped {
        tracing::warn!("skipping the optional mount at {}: {} does not exist", m.target(), m.source.display());
    }
    Ok(ready)
}

/// Sets the shared folders' flags (idmapped to the child's user namespace when
/// shifted) and, for an unprivileged container, locks them against it; returns the
/// binds to hand over, in order.
fn flag_shares(
    spec: &ChildSpec,
    shares: Vec<mounts::Prepared>,
    userns: Option<&std::fs::File>,
) -> Result<Vec<OwnedFd>, Error> {
    for p in &shares {
        mounts::set_flags(p, userns.map(|f| f.as_fd()))?;
    }
    match userns {
        Some(ns) if !shares.is_empty() => Ok(mounts::locked_clones(&shares, ns.as_fd(), &spec.scratch)?),
        _ => Ok(shares.into_iter().map(|p| p.tree).collect()),
    }
}

/// The rootfs attached at its own path in the monitor's private mount namespace;
/// detached on drop.
struct Attached<'a> {
    path: &'a Path,
}

impl<'a> Attached<'a> {
    fn at(tree: &OwnedFd, path: &'a Path) -> Result<Attached<'a>, Error> {
        rustix::mount::move_mount(
            tree,
            "",
            rustix::fs::CWD,
            path,
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
        .map_err(|e| Error::io("attach the root filesystem at", path)(e.into()))?;
        Ok(Attached { path })
    }
}

impl Drop for Attached<'_> {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.path, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Gives the calling process (the monitor) a private mount namespace, so the mounts
/// it makes while starting a container never appear on the host.
pub fn private_mount_namespace() -> Result<(), sys::Error> {
    sys::unshare_private_mounts(nix::sched::CloneFlags::empty())
}

fn write_maps(pid: i32, map: &IdMap) -> Result<(), Error> {
    for (file, line) in [("uid_map", map.uid_map()), ("gid_map", map.gid_map())] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &line).map_err(Error::os(format!("write {path} ({})", line.trim())))?;
    }
    Ok(())
}

/// A detached mount of the rootfs (or of its overlay), idmapped to the child's user
/// namespace when unprivileged.
fn rootfs_mount(spec: &ChildSpec, userns: Option<&std::fs::File>, idmap: Option<&IdMap>) -> Result<OwnedFd, Error> {
    let userns = userns.zip(idmap).map(|(f, m)| crate::storage::overlay::Userns {
        fd: f.as_fd(),
        root_uid: m.uid,
        root_gid: m.gid,
    });
    Ok(crate::storage::root_mount(&spec.rootfs, spec.layers.as_ref(), userns, &spec.scratch)?)
}

/// The child's user namespace (its pid is its own until it is reaped: the monitor is
/// its parent).
fn open_userns(pid: i32) -> Result<std::fs::File, Error> {
    std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(Error::os("open the container's user namespace"))
}

/// Set by `hutch start` when it hands the container's lock to the monitor on that fd
/// (crate::container::lifecycle::spawn_monitor).
pub const START_LOCK_ENV: &str = "HUTCH_START_LOCK_FD";
/// Test hook: milliseconds the monitor waits, holding the start lock, before it sets
/// up, so a test can kill `hutch start` while the monitor is still setting up
/// (tests/state.rs). Passed through only when the CLI's environment has it.
pub const TEST_SETUP_DELAY_ENV: &str = "HUTCH_TEST_MONITOR_SETUP_DELAY_MS";

static START_LOCK: std::sync::Mutex<Option<OwnedFd>> = std::sync::Mutex::new(None);

/// Takes over the container's lock from the spawning `start`: it stays held, even if
/// that CLI dies, until `release_start_lock` (init runs, or the start failed and was
/// cleaned up) or the monitor's exit.
pub fn hold_start_lock() {
    let Some(fd) = std::env::var(START_LOCK_ENV).ok().and_then(|v| v.parse::<i32>().ok()) else { return };
    // SAFETY: the spawning CLI put the lock on this fd with dup2 and set the variable;
    // nothing else in this process owns it.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // Not inherited by init or anything else this monitor runs.
    let _ = rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::CLOEXEC);
    *START_LOCK.lock().unwrap_or_else(|e| e.into_inner()) = Some(fd);
    if let Some(ms) = std::env::var(TEST_SETUP_DELAY_ENV).ok().and_then(|v| v.parse::<u64>().ok()) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Closes this monitor's copy of the start lock (the CLI's copy, if it still runs,
/// is the CLI's to drop).
pub fn release_start_lock() {
    START_LOCK.lock().unwrap_or_else(|e| e.into_inner()).take();
}
