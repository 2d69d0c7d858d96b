//! Executes a mount plan against a new root. Every path is resolved inside the root
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)` and every mount is attached
//! through file descriptors (`fsmount`, `open_tree`, `move_mount`), so a hostile
//! rootfs cannot redirect a mount outside itself with symlinks or races
//! (CVE-2021-30465, CVE-2019-19921 class). The kernel is reached through `MountOps`,
//! so this logic is unit-tested against a recording fake.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use thiserror::Error;

use super::kernel::{self, Kernel, MountOps};
use super::plan::Step;
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
        let Step::BindHost { source, target, check, attrs, required } = step else { continue };
        let tree = match kernel::open_host_tree(source) {
            Ok(t) => t,
            Err(e) if is_missing(&e) && !required => continue,
            Err(source_err) => {
                return Err(Error::Step {
                    action: "bind-mount onto",
                    path: format!("{target} from {}", source.display()),
                    source: source_err,
                });
            }
        };
        kernel::verify(&tree, *check).map_err(|expected| Error::BadSource {
            source_path: source.display().to_string(),
            path: target.clone(),
            expected: expected.to_string(),
        })?;
        Kernel.set_attrs(&tree, *attrs, false).map_err(step_err("set mount flags on", target))?;
        out.insert(source.clone(), tree);
    }
    Ok(out)
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

fn exists_ok(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        other => other,
    }
}

/// Options of the one empty read-only tmpfs cloned over every masked directory.
const MASK_TMPFS: &[(&str, &str)] = &[("mode", "0555"), ("size", "4k"), ("nr_inodes", "1")];

/// The new root and what is needed to build the tree inside it.
pub struct Root<K: MountOps = Kernel> {
    ops: K,
    root: K::Handle,
    /// The masking tmpfs, mounted on first use (at the first masked directory).
    mask: Option<K::Handle>,
    /// Prepared host binds, by source path.
    host: HashMap<PathBuf, K::Handle>,
}

impl Root<Kernel> {
    pub fn new(fd: OwnedFd, host: HostBinds) -> Root<Kernel> {
        Root { ops: Kernel, root: fd, mask: None, host }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }
}

impl<K: MountOps> Root<K> {
    pub fn with_ops(ops: K, root: K::Handle, host: HashMap<PathBuf, K::Handle>) -> Root<K> {
        Root { ops, root, mask: None, host }
    }

    fn resolve(&mut self, path: &str) -> io::Result<K::Handle> {
        self.ops.resolve(&self.root, path)
    }

    /// The parent directory of `path` (resolved inside the root) and the last component.
    fn parent<'p>(&mut self, path: &'p str) -> io::Result<(K::Handle, &'p str)> {
        let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
        Ok((self.resolve(dir)?, name))
    }

    /// `path` resolved, or `None` when it does not exist (optional targets).
    fn resolve_optional(&mut self, path: &str, action: &'static str) -> Result<Option<K::Handle>, Error> {
        match self.resolve(path) {
            Ok(h) => Ok(Some(h)),
            Err(e) if is_missing(&e) => Ok(None),
            Err(e) => Err(step_err(action, path)(e)),
        }
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
                exists_ok(self.ops.mkdir(&dir, name, *mode)).map_err(step_err("create directory", path))?;
                let h = self.resolve(path).map_err(step_err("create directory", path))?;
                if !self.ops.is_dir(&h).map_err(step_err("create directory", path))? {
                    let source = io::Error::from_raw_os_error(libc::ENOTDIR);
                    return Err(Error::Step { action: "create directory", path: path.clone(), source });
                }
            }
            Step::File { path } => {
                let (dir, name) = self.parent(path).map_err(step_err("create", path))?;
                exists_ok(self.ops.create_file(&dir, name)).map_err(step_err("create", path))?;
            }
            Step::Symlink { path, to } => {
                let (dir, name) = self.parent(path).map_err(step_err("create symlink", path))?;
                exists_ok(self.ops.symlink(&dir, name, to)).map_err(step_err("create symlink", path))?;
            }
            Step::Fs { fstype, target, options, attrs } => {
                let mnt = self.ops.new_fs(fstype, options, *attrs).map_err(|source| Error::Step {
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
                let Some(t) = self.resolve_optional(target, "bind-mount onto")? else { return Ok(()) };
                let src = self.resolve(source).map_err(step_err("open", source))?;
                let tree = self.ops.clone_tree(&src, false).map_err(step_err("clone mount of", source))?;
                self.ops.set_attrs(&tree, *attrs, false).map_err(step_err("set mount flags on", target))?;
                self.ops.move_onto(&tree, &t).map_err(step_err("bind-mount onto", target))?;
            }
            Step::MaskDir { target } => self.mask_dir(target)?,
            Step::ReadOnly { target, keep_rw } => self.read_only(target, keep_rw.as_deref())?,
        }
        Ok(())
    }

    fn mask_dir(&mut self, target: &str) -> Result<(), Error> {
        let Some(t) = self.resolve_optional(target, "mask")? else { return Ok(()) };
        // One tmpfs serves every mask: the first is mounted, the others are clones of
        // it once attached (kernels before 6.15 cannot clone a mount that is still
        // detached).
        let tree = match &self.mask {
            Some(first) => self.ops.clone_tree(first, false).map_err(step_err("mask", target))?,
            None => {
                let opts: Vec<(&str, String)> = MASK_TMPFS.iter().map(|(k, v)| (*k, v.to_string())).collect();
                let attrs =
                    sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;
                self.ops.new_fs("tmpfs", &opts, attrs).map_err(step_err("create the mask for", target))?
            }
        };
        self.ops.move_onto(&tree, &t).map_err(step_err("mask", target))?;
        if self.mask.is_none() {
            self.mask = Some(tree);
        }
        Ok(())
    }

    fn read_only(&mut self, target: &str, keep_rw: Option<&str>) -> Result<(), Error> {
        let Some(t) = self.resolve_optional(target, "make read-only")? else { return Ok(()) };
        // Clone the writable sub-path first, while it still is writable.
        let keep = match keep_rw {
            Some(k) => match self.resolve_optional(k, "open")? {
                Some(h) => Some((k, self.ops.clone_tree(&h, true).map_err(step_err("clone mount of", k))?)),
                None => None,
            },
            None => None,
        };
        let ro = self.ops.clone_tree(&t, true).map_err(step_err("make read-only", target))?;
        self.ops.set_attrs(&ro, sys::MOUNT_ATTR_RDONLY, true).map_err(step_err("make read-only", target))?;
        self.ops.move_onto(&ro, &t).map_err(step_err("make read-only", target))?;
        if let Some((k, tree)) = keep {
            self.attach(&tree, k, "keep writable")?;
        }
        Ok(())
    }

    fn attach(&mut self, mnt: &K::Handle, target: &str, action: &'static str) -> Result<(), Error> {
        let t = self.resolve(target).map_err(step_err(action, target))?;
        self.ops.move_onto(mnt, &t).map_err(step_err(action, target))
    }
}

#[cfg(test)]
mod tests;
