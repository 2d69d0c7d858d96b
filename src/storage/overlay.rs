//! Overlay mounts over a cached image, through the new mount API so the result is a
//! detached mount the caller places where it wants.

use std::io::{Read, Write};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::{Error, Layers, idmap, idmap_error};
use crate::runtime::wire::{Kind, WireError};
use crate::sys::{self, Forked};

/// An overlay of `layers` as a detached mount. With `userns`, each layer is first
/// idmapped to it and attached under `scratch` (overlayfs takes layers by path); the
/// attachments are removed again before returning, since overlayfs keeps its own
/// private references to its layers.
pub fn mount(layers: &Layers, userns: Option<Userns<'_>>, scratch: &Path, nodev: bool) -> Result<OwnedFd, Error> {
    let fail = |message: String| Error::Overlay { path: layers.rw.clone(), message };
    let mut attached = Attachments(Vec::new());
    let (lower, rw) = match userns {
        None => (layers.lower.clone(), layers.rw.clone()),
        Some(Userns { fd: userns, .. }) => {
            let mut place = |src: &Path, name: &str| -> Result<PathBuf, Error> {
                let at = scratch.join(name);
                match std::fs::create_dir(&at) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                        return Err(fail(format!("failed to create {}: {e}", at.display())));
                    }
                    _ => {}
                }
                let tree = rustix::mount::open_tree(
                    rustix::fs::CWD,
                    src,
                    OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
                )
                .map_err(|e| fail(format!("failed to open {}: {e}", src.display())))?;
                idmap(&tree, userns).map_err(|e| idmap_error(src, e))?;
                rustix::mount::move_mount(&tree, "", rustix::fs::CWD, &at, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
                    .map_err(|e| fail(format!("failed to attach {} at {}: {e}", src.display(), at.display())))?;
                attached.0.push(at.clone());
                Ok(at)
            };
            let lower = place(&layers.lower, "lower")?;
            let rw = place(&layers.rw, "rw")?;
            (lower, rw)
        }
    };
    let fs = rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)
        .map_err(|e| fail(format!("overlayfs is not available: {e}")))?;
    let set = |key: &str, value: &Path| {
        rustix::mount::fsconfig_set_string(&fs, key, value).map_err(|e| fail(format!("{key}={}: {e}", value.display())))
    };
    set_lowers(&fs, &layers.lowers(&lower, &rw)).map_err(fail)?;
    if !layers.frozen {
        set("upperdir", &rw.join(&layers.upper))?;
        set("workdir", &rw.join("work"))?;
    }
    let create = || rustix::mount::fsconfig_create(&fs);
    match userns {
        // The upper layer is idmapped: files are created there as container root.
        Some(Userns { root_uid, root_gid, .. }) => sys::with_fsids(root_uid, root_gid, create)
            .map_err(|e| fail(format!("failed to take the ids of the container's root: {e}")))?,
        None => create(),
    }
    .map_err(|e| fail(format!("the kernel refused the overlay: {e}")))?;
    let mut attrs = if nodev { MountAttrFlags::MOUNT_ATTR_NODEV } else { MountAttrFlags::empty() };
    if layers.frozen {
        attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY;
    }
    let m = rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| fail(format!("failed to create the overlay mount: {e}")))?;
    drop(attached);
    Ok(m)
}

/// Gives overlayfs its read-only layers, topmost first: one `lowerdir+` each (Linux
/// 6.8), so no length limit applies; a kernel without it gets the one colon-joined
/// `lowerdir` (whose paths then cannot hold a colon).
fn set_lowers(fs: &OwnedFd, lowers: &[PathBuf]) -> Result<(), String> {
    let mut appended = 0;
    for l in lowers {
        match rustix::mount::fsconfig_set_string(fs, "lowerdir+", l) {
            Ok(()) => appended += 1,
            Err(rustix::io::Errno::INVAL) if appended == 0 => break,
            Err(e) => return Err(format!("lowerdir+={}: {e}", l.display())),
        }
    }
    if appended == lowers.len() {
        return Ok(());
    }
    let joined: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
    if joined.iter().any(|l| l.contains(':')) {
        return Err(format!("a layer path holds ':', which this kernel's lowerdir cannot take: {}", joined.join(" ")));
    }
    rustix::mount::fsconfig_set_string(fs, "lowerdir", joined.join(":"))
        .map_err(|e| format!("lowerdir={}: {e}", joined.join(":")))
}

/// The user namespace the layers are idmapped to, and the host ids of its root.
#[derive(Clone, Copy)]
pub struct Userns<'a> {
    pub fd: BorrowedFd<'a>,
    pub root_uid: u32,
    pub root_gid: u32,
}

/// Layer attachments, detached on drop.
struct Attachments(Vec<PathBuf>);

impl Drop for Attachments {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// Runs `f` on the merged view of `layers`, mounted at `target` in a short-lived child
/// with its own mount namespace, so nothing is ever mounted on the host. Host root
/// sees the layers' own ids; writes land in the upper layer as they would from inside.
pub fn with_merged<E: std::fmt::Display>(
    layers: &Layers,
    target: &Path,
    f: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), Error> {
    let fail = |message: String| Error::Overlay { path: layers.rw.clone(), message };
    let (rd, wr) = nix::unistd::pipe().map_err(|e| fail(format!("failed to create a pipe: {e}")))?;
    let (mut rd, wr) = (std::fs::File::from(rd), std::fs::File::from(wr));
    match sys::clone3(libc::CLONE_NEWNS as u64, None).map_err(|e| fail(format!("failed to fork: {e}")))? {
        Forked::Child => {
            drop(rd);
            let wire = |e: &dyn std::fmt::Display, hint: Option<String>| {
                WireError::new(Kind::Storage, e.to_string()).with_hint(hint)
            };
            let result = (|| {
                let private = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE;
                nix::mount::mount(None::<&str>, "/", None::<&str>, private, None::<&str>)
                    .map_err(|e| wire(&format!("failed to make mounts private: {e}"), None))?;
                let m = mount(layers, None, target, false).map_err(|e| wire(&e, e.hint()))?;
                rustix::mount::move_mount(&m, "", rustix::fs::CWD, target, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)
                    .map_err(|e| wire(&format!("failed to attach the overlay at {}: {e}", target.display()), None))?;
                f(target).map_err(|e| wire(&e, None))
            })();
            let code = match result {
                Ok(()) => 0,
                Err(e) => {
                    let mut wr = wr;
                    let _ = wr.write_all(&e.to_json());
                    1
                }
            };
            sys::exit_now(code)
        }
        Forked::Parent { pid, pidfd } => {
            drop(wr);
            let mut msg = Vec::new();
            let _ = rd.read_to_end(&mut msg);
            let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            drop(pidfd);
            match status {
                Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) => Ok(()),
                _ if !msg.is_empty() => {
                    Err(Error::InMerged { path: layers.rw.clone(), source: WireError::from_json(&msg) })
                }
                other => Err(fail(format!("the helper process ended unexpectedly: {other:?}"))),
            }
        }
    }
}
