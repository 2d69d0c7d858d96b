//! Executes a mount plan against a new root. Every path is resolved inside the root
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)` and every mount is attached
//! through file descriptors (`fsmount`, `open_tree`, `move_mount`), so a hostile
//! rootfs cannot redirect a mount outside itself with symlinks or races
//! (CVE-2021-30465, CVE-2019-19921 class).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};
use thiserror::Error;

use super::plan::{Check, Step};
use crate::sys;

#[derive(Debug, Error)]
pub enum Error {
    #[error("refusing to mount on /{path}: a component of it is a symlink in the root filesystem")]
    Symlink { path: String },
    #[error("failed to {action} /{path}: {source}")]
    Step { action: &'static str, path: String, source: io::Error },
    #[error("failed to mount {source_path} on /{path}: it is not {expected}")]
    BadSource { source_path: String, path: String, expected: String },
}

/// Host paths bind-mounted into the container, opened by the monitor before the
/// clone as detached mounts (checked, flags set). The container's first process
/// cannot reach host paths itself: it is unprivileged and may not even traverse the
/// directories above them, and a mount of the host namespace cannot be cloned from
/// inside another one.
pub type HostBinds = HashMap<PathBuf, OwnedFd>;

/// Opens, checks and flags every `BindHost` source of `steps` (monitor side).
pub fn prepare_host_binds(steps: &[Step]) -> Result<HostBinds, Error> {
    let mut out = HostBinds::new();
    for step in steps {
        let Step::BindHost { source, target, check, attrs, required } = step else {
            continue;
        };
        let tree = match rustix::mount::open_tree(
            rustix::fs::CWD,
            source,
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
        ) {
            Ok(t) => t,
            Err(rustix::io::Errno::NOENT) if !required => continue,
            Err(e) => {
                return Err(Error::Step {
                    action: "bind-mount onto",
                    path: format!("{target} from {}", source.display()),
                    source: e.into(),
                });
            }
        };
        verify(&tree, *check).map_err(|expected| Error::BadSource {
            source_path: source.display().to_string(),
            path: target.clone(),
            expected,
        })?;
        set_attrs(&tree, *attrs, false).map_err(step_err("set mount flags on", target))?;
        out.insert(source.clone(), tree);
    }
    Ok(out)
}

/// The new root, as an `O_PATH` directory descriptor.
pub struct Root {
    fd: OwnedFd,
    /// One empty read-only tmpfs, cloned for every masked directory.
    mask: Option<OwnedFd>,
    host: HostBinds,
}

fn step_err<'a>(action: &'static str, path: &'a str) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| {
        if source.raw_os_error() == Some(libc::ELOOP) {
            Error::Symlink { path: path.to_string() }
        } else {
            Error::Step { action, path: path.to_string(), source }
        }
    }
}

fn is_missing(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOENT)
}

impl Root {
    pub fn new(fd: OwnedFd, host: HostBinds) -> Root {
        Root { fd, mask: None, host }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens `path` inside the root (O_PATH), refusing symlinks anywhere in it, the
    /// last component included (no O_NOFOLLOW, which would open the link itself).
    pub fn resolve(&self, path: &str) -> io::Result<OwnedFd> {
        rustix::fs::openat2(
            &self.fd,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(io::Error::from)
    }

    /// The parent directory of `path` (resolved inside the root) and the last component.
    fn parent<'p>(&self, path: &'p str) -> io::Result<(OwnedFd, &'p str)> {
        let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
        Ok((self.resolve(dir)?, name))
    }

    pub fn apply(&mut self, steps: &[Step]) -> Result<(), Error> {
        for step in steps {
            self.apply_one(step)?;
        }
        Ok(())
    }

    fn apply_one(&mut self, step: &Step) -> Result<(), Error> {
        match step {
            Step::Dir { path, mode } => {
                let (dir, name) = self.parent(path).map_err(step_err("create directory", path))?;
                match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(*mode)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(step_err("create directory", path)(e.into())),
                }
                let fd = self.resolve(path).map_err(step_err("create directory", path))?;
                let st = rustix::fs::fstat(&fd).map_err(|e| step_err("create directory", path)(e.into()))?;
                if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
                    return Err(Error::Step {
                        action: "create directory",
                        path: path.clone(),
                        source: io::Error::from_raw_os_error(libc::ENOTDIR),
                    });
                }
            }
            Step::File { path } => {
                let (dir, name) = self.parent(path).map_err(step_err("create", path))?;
                match rustix::fs::openat(
                    &dir,
                    name,
                    OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o644),
                ) {
                    Ok(_) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(step_err("create", path)(e.into())),
                }
            }
            Step::Symlink { path, to } => {
                let (dir, name) = self.parent(path).map_err(step_err("create symlink", path))?;
                match rustix::fs::symlinkat(to.as_str(), &dir, name) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(step_err("create symlink", path)(e.into())),
                }
            }
            Step::Fs { fstype, target, options, attrs } => {
                let mnt = new_fs(fstype, options, *attrs).map_err(|source| Error::Step {
                    action: "mount a new filesystem on",
                    path: format!("{target} ({fstype})"),
                    source,
                })?;
                self.attach(&mnt, target, "mount")?;
            }
            Step::BindHost { source, target, required, .. } => match self.host.remove(source) {
                Some(tree) => self.attach(&tree, target, "bind-mount onto")?,
                None if !required => {}
                None => {
                    return Err(Error::Step {
                        action: "bind-mount onto",
                        path: format!("{target} from {}", source.display()),
                        source: io::Error::from_raw_os_error(libc::EBADF),
                    });
                }
            },
            Step::BindInside { source, target, attrs } => {
                let src = self.resolve(source).map_err(step_err("open", source))?;
                let tree = clone_tree(&src, false).map_err(step_err("clone mount of", source))?;
                set_attrs(&tree, *attrs, false).map_err(step_err("set mount flags on", target))?;
                match self.resolve(target) {
                    Err(e) if is_missing(&e) => {}
                    Err(e) => return Err(step_err("bind-mount onto", target)(e)),
                    Ok(t) => move_onto(&tree, &t).map_err(step_err("bind-mount onto", target))?,
                }
            }
            Step::MaskDir { target } => {
                let t = match self.resolve(target) {
                    Err(e) if is_missing(&e) => return Ok(()),
                    other => other.map_err(step_err("mask", target))?,
                };
                if self.mask.is_none() {
                    let opts =
                        [("mode", "0555".to_string()), ("size", "4k".to_string()), ("nr_inodes", "1".to_string())];
                    let m = new_fs(
                        "tmpfs",
                        &opts,
                        sys::MOUNT_ATTR_RDONLY
                            | sys::MOUNT_ATTR_NOSUID
                            | sys::MOUNT_ATTR_NODEV
                            | sys::MOUNT_ATTR_NOEXEC,
                    )
                    .map_err(step_err("create the mask for", target))?;
                    self.mask = Some(m);
                }
                let mask = self.mask.as_ref().expect("mask just created");
                let tree = clone_tree(mask, false).map_err(step_err("mask", target))?;
                move_onto(&tree, &t).map_err(step_err("mask", target))?;
            }
            Step::ReadOnly { target, keep_rw } => {
                let t = match self.resolve(target) {
                    Err(e) if is_missing(&e) => return Ok(()),
                    other => other.map_err(step_err("make read-only", target))?,
                };
                let keep = match keep_rw {
                    Some(k) => match self.resolve(k) {
                        Ok(fd) => Some((k, clone_tree(&fd, true).map_err(step_err("clone mount of", k))?)),
                        Err(e) if is_missing(&e) => None,
                        Err(e) => return Err(step_err("open", k)(e)),
                    },
                    None => None,
                };
                let ro = clone_tree(&t, true).map_err(step_err("make read-only", target))?;
                set_attrs(&ro, sys::MOUNT_ATTR_RDONLY, true).map_err(step_err("make read-only", target))?;
                move_onto(&ro, &t).map_err(step_err("make read-only", target))?;
                if let Some((k, tree)) = keep {
                    self.attach(&tree, k, "keep writable")?;
                }
            }
        }
        Ok(())
    }

    fn attach(&self, mnt: &OwnedFd, target: &str, action: &'static str) -> Result<(), Error> {
        let t = self.resolve(target).map_err(step_err(action, target))?;
        move_onto(mnt, &t).map_err(step_err(action, target))
    }
}

/// `fsopen` + `fsconfig` + `fsmount`: a detached mount of a new filesystem instance.
pub fn new_fs(fstype: &str, options: &[(&str, String)], attrs: u64) -> io::Result<OwnedFd> {
    let fs = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
    for (k, v) in options {
        if v.is_empty() {
            rustix::mount::fsconfig_set_flag(&fs, *k)?;
        } else {
            rustix::mount::fsconfig_set_string(&fs, *k, v.as_str())?;
        }
    }
    rustix::mount::fsconfig_create(&fs)?;
    let attrs = MountAttrFlags::from_bits_retain(attrs as u32);
    Ok(rustix::mount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?)
}

/// A detached copy of the mount at `fd` (with its submounts when `recursive`).
fn clone_tree(fd: &OwnedFd, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(rustix::mount::open_tree(fd, "", flags)?)
}

fn set_attrs(tree: &OwnedFd, attrs: u64, recursive: bool) -> io::Result<()> {
    if attrs == 0 {
        return Ok(());
    }
    sys::mount_setattr(tree.as_fd(), recursive, attrs, 0, None)
}

fn move_onto(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    Ok(rustix::mount::move_mount(
        tree,
        "",
        target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )?)
}

/// Checks what a bind source really is, on the descriptor that will be mounted.
fn verify(tree: &OwnedFd, check: Check) -> Result<(), String> {
    let st = rustix::fs::fstat(tree).map_err(|e| format!("readable ({e})"))?;
    let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    match check {
        Check::CharDev(ma, mi) if kind == rustix::fs::FileType::CharacterDevice && major == ma && minor == mi => Ok(()),
        Check::CharDev(ma, mi) => Err(format!("the character device {ma}:{mi}")),
        Check::Pty if kind == rustix::fs::FileType::CharacterDevice && (136..=143).contains(&major) => Ok(()),
        Check::Pty => Err("a pseudo-terminal".into()),
        Check::Dir if kind == rustix::fs::FileType::Directory => Ok(()),
        Check::Dir => Err("a directory".into()),
    }
}
