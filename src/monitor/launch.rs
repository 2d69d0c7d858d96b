//! The parent side of a container start: clone the first process into new namespaces,
//! write its id maps, put it in its cgroup, hand it the root filesystem as an
//! idmapped mount, and learn whether init was executed.
//!
//! Ownership: the rootfs stays on disk as the distribution shipped it (root-owned).
//! For unprivileged containers it is mounted through an idmapped mount bound to the
//! container's user namespace, so container root sees its files as its own and files
//! it creates land on disk unshifted. Nothing is chowned at create time, one rootfs
//! works with any id map, and the mount also gets `nodev`, so device nodes in an
//! untrusted rootfs stay inert.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::mount::OpenTreeFlags;

use crate::cgroup::ContainerCgroup;
use crate::idmap::IdMap;
use crate::runtime::child::{self, ChildSpec};
use crate::runtime::{apply, channel};
use crate::state::Proc;
use crate::sys::{self, Forked};

pub struct Launched {
    pub init: Proc,
    pub pidfd: OwnedFd,
}

/// Starts the container's init. On failure the child is gone and the message says why.
pub fn launch(spec: &ChildSpec, idmap: Option<IdMap>, cgroup: &ContainerCgroup) -> Result<Launched, String> {
    let (parent_end, child_end) = channel::pair().map_err(|e| format!("failed to create the start channel: {e}"))?;
    let host = apply::prepare_host_binds(&spec.steps).map_err(|e| e.to_string())?;
    let mut flags =
        (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC | libc::CLONE_NEWNET) as u64;
    if idmap.is_some() {
        flags |= libc::CLONE_NEWUSER as u64;
    }
    // The child inherits this directory in its own copy of the mount tree and attaches
    // the root filesystem there, without needing to reach the path.
    std::env::set_current_dir(&spec.rootfs).map_err(|e| format!("failed to enter {}: {e}", spec.rootfs.display()))?;
    let forked = sys::clone3(flags);
    let _ = std::env::set_current_dir("/");
    let (pid, pidfd) = match forked.map_err(|e| format!("failed to create the container's namespaces (clone3): {e}"))? {
        Forked::Child => {
            drop(parent_end);
            child::run(spec, host, child_end)
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(child_end);
    drop(host);

    let abort = |msg: String| {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        msg
    };

    if let Some(map) = idmap {
        if let Err(e) = write_maps(pid, &map) {
            return Err(abort(e));
        }
    }
    if let Err(e) = cgroup.attach(pid) {
        return Err(abort(e.to_string()));
    }
    let tree = match rootfs_mount(&spec.rootfs, pid, idmap.is_some()) {
        Ok(t) => t,
        Err(e) => return Err(abort(e)),
    };
    if let Err(e) = channel::send_go(parent_end.as_fd(), tree.as_fd()) {
        return Err(abort(format!("failed to start the container's init: {e}")));
    }
    drop(tree);
    if let Err(e) = channel::recv_verdict(parent_end.as_fd()) {
        return Err(abort(e));
    }
    let init = Proc::of(pid).map_err(|e| abort(format!("failed to read the state of init (pid {pid}): {e}")))?;
    Ok(Launched { init, pidfd })
}

fn write_maps(pid: i32, map: &IdMap) -> Result<(), String> {
    for (file, line) in [("uid_map", map.uid_map()), ("gid_map", map.gid_map())] {
        let path = format!("/proc/{pid}/{file}");
        std::fs::write(&path, &line).map_err(|e| format!("failed to write {path} ({}): {e}", line.trim()))?;
    }
    Ok(())
}

/// A detached copy of the rootfs (with any submounts), idmapped to the child's user
/// namespace when unprivileged.
fn rootfs_mount(rootfs: &Path, pid: i32, idmapped: bool) -> Result<OwnedFd, String> {
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        rootfs,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| format!("failed to open the root filesystem {}: {e}", rootfs.display()))?;
    if idmapped {
        let userns = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .map_err(|e| format!("failed to open the container's user namespace: {e}"))?;
        sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_IDMAP | sys::MOUNT_ATTR_NODEV, 0, Some(userns.as_fd()))
            .map_err(|e| {
                let fstype =
                    rustix::fs::statfs(rootfs).map(|s| format!("{:#x}", s.f_type)).unwrap_or_else(|_| "unknown".into());
                format!(
                    "failed to create an idmapped mount of the root filesystem {} (filesystem magic {fstype}): {e}; \
                 idmapped mounts need Linux 5.12 or later and a filesystem that supports them \
                 (ext4, xfs, btrfs, tmpfs, overlayfs); or create the container with --privileged",
                    rootfs.display()
                )
            })?;
    }
    Ok(tree)
}
