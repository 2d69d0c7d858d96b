//! The kernel side of the mount executor: the few operations a mount plan needs, as a
//! trait (`MountOps`) so `apply` is tested against a recording fake, and its real
//! implementation over the new mount API (`fsopen`/`fsmount`, `open_tree`,
//! `move_mount`, `mount_setattr`) and `openat2`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::mount::{FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags, OpenTreeFlags};

use super::plan::Check;
use crate::sys;

/// What the executor asks of the kernel. Paths are relative to a directory handle
/// and are resolved inside the root, refusing symlinks (ELOOP).
pub trait MountOps {
    type Handle;
    /// Opens `path` below `dir`, never leaving the root and refusing any symlink.
    fn resolve(&mut self, dir: &Self::Handle, path: &str) -> io::Result<Self::Handle>;
    /// Creates a directory; EEXIST if something is there.
    fn mkdir(&mut self, dir: &Self::Handle, name: &str, mode: u32) -> io::Result<()>;
    /// Creates an empty file; EEXIST if something is there.
    fn create_file(&mut self, dir: &Self::Handle, name: &str) -> io::Result<()>;
    /// Creates a symlink; EEXIST if something is there.
    fn symlink(&mut self, dir: &Self::Handle, name: &str, to: &str) -> io::Result<()>;
    fn is_dir(&mut self, h: &Self::Handle) -> io::Result<bool>;
    /// A detached mount of a new filesystem instance.
    fn new_fs(&mut self, fstype: &str, options: &[(&str, String)], attrs: u64) -> io::Result<Self::Handle>;
    /// A detached copy of the mount at `h` (with submounts when `recursive`).
    fn clone_tree(&mut self, h: &Self::Handle, recursive: bool) -> io::Result<Self::Handle>;
    fn set_attrs(&mut self, tree: &Self::Handle, attrs: u64, recursive: bool) -> io::Result<()>;
    /// Attaches a detached mount on top of `target`.
    fn move_onto(&mut self, tree: &Self::Handle, target: &Self::Handle) -> io::Result<()>;
}

/// The running kernel.
pub struct Kernel;

impl MountOps for Kernel {
    type Handle = OwnedFd;

    fn resolve(&mut self, dir: &OwnedFd, path: &str) -> io::Result<OwnedFd> {
        // No O_NOFOLLOW: with it, a symlink as the last component would be opened
        // itself instead of refused.
        Ok(crate::sys::openat2(
            dir,
            path,
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    fn mkdir(&mut self, dir: &OwnedFd, name: &str, mode: u32) -> io::Result<()> {
        Ok(rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode))?)
    }

    fn create_file(&mut self, dir: &OwnedFd, name: &str) -> io::Result<()> {
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o644))?;
        Ok(())
    }

    fn symlink(&mut self, dir: &OwnedFd, name: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::symlinkat(to, dir, name)?)
    }

    fn is_dir(&mut self, h: &OwnedFd) -> io::Result<bool> {
        let st = rustix::fs::fstat(h)?;
        Ok(rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory)
    }

    fn new_fs(&mut self, fstype: &str, options: &[(&str, String)], attrs: u64) -> io::Result<OwnedFd> {
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

    fn clone_tree(&mut self, h: &OwnedFd, recursive: bool) -> io::Result<OwnedFd> {
        let mut flags =
            OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
        if recursive {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        Ok(rustix::mount::open_tree(h, "", flags)?)
    }

    fn set_attrs(&mut self, tree: &OwnedFd, attrs: u64, recursive: bool) -> io::Result<()> {
        if attrs == 0 {
            return Ok(());
        }
        sys::mount_setattr(tree.as_fd(), recursive, attrs, 0, None)
    }

    fn move_onto(&mut self, tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
        let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
        Ok(rustix::mount::move_mount(tree, "", target, "", flags)?)
    }
}

/// Opens a host path as a detached mount (no submounts).
pub fn open_host_tree(source: &std::path::Path) -> io::Result<OwnedFd> {
    Ok(rustix::mount::open_tree(
        rustix::fs::CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?)
}

/// What a bind source should have been, when it is not.
#[derive(Debug, thiserror::Error)]
pub enum Expected {
    #[error("the character device {0}:{1}")]
    CharDev(u32, u32),
    #[error("a pseudo-terminal")]
    Pty,
    #[error("a directory")]
    Dir,
    #[error("a regular file")]
    File,
    #[error("readable ({0})")]
    Readable(io::Error),
}

/// Checks what a bind source really is, on the descriptor that will be mounted.
/// Returns what it should have been when it is not.
pub fn verify(tree: &OwnedFd, check: Check) -> Result<(), Expected> {
    let st = rustix::fs::fstat(tree).map_err(|e| Expected::Readable(e.into()))?;
    let (major, minor) = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    check_kind(check, kind, major, minor)
}

fn check_kind(check: Check, kind: rustix::fs::FileType, major: u32, minor: u32) -> Result<(), Expected> {
    use rustix::fs::FileType::{CharacterDevice, Directory};
    match check {
        Check::CharDev(ma, mi) if kind == CharacterDevice && major == ma && minor == mi => Ok(()),
        Check::CharDev(ma, mi) => Err(Expected::CharDev(ma, mi)),
        // Unix98 pseudo-terminal slaves have majors 136-143.
        Check::Pty if kind == CharacterDevice && (136..=143).contains(&major) => Ok(()),
        Check::Pty => Err(Expected::Pty),
        Check::Dir if kind == Directory => Ok(()),
        Check::Dir => Err(Expected::Dir),
        Check::File if kind == rustix::fs::FileType::RegularFile => Ok(()),
        Check::File => Err(Expected::File),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::FileType;

    #[test]
    fn sources_must_be_what_they_claim() {
        assert!(check_kind(Check::CharDev(1, 3), FileType::CharacterDevice, 1, 3).is_ok());
        // A /dev/null swapped for /dev/sda (block 8:0) or for another char device.
        assert!(check_kind(Check::CharDev(1, 3), FileType::BlockDevice, 8, 0).is_err());
        assert!(check_kind(Check::CharDev(1, 3), FileType::CharacterDevice, 1, 1).is_err());
        assert!(check_kind(Check::CharDev(1, 3), FileType::Symlink, 0, 0).is_err());
        assert!(check_kind(Check::Pty, FileType::CharacterDevice, 136, 4).is_ok());
        assert!(
            check_kind(Check::Pty, FileType::CharacterDevice, 4, 1)
                .unwrap_err()
                .to_string()
                .contains("pseudo-terminal")
        );
        assert!(check_kind(Check::Dir, FileType::RegularFile, 0, 0).is_err());
    }
}
