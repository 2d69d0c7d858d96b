//! Paths in a container's tree, as the helper sees it: every lookup starts at the
//! tree's root directory descriptor and is resolved with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so a symlink anywhere on the way (`/etc -> /`,
//! `a -> ../../..`, an absolute target) is followed inside the container's root and
//! never out of it. These functions need no privilege: unit tests run them on a
//! temporary directory as the root.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::helper::JobError;
use super::spec::CPath;
use crate::runtime::wire::Kind;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The container's tree: its root directory, below which every path is resolved.
pub(crate) struct Tree {
    pub root: OwnedFd,
}

impl Tree {
    /// The tree rooted at the directory `dir`.
    pub(crate) fn at(dir: &Path) -> io::Result<Tree> {
        let root = rustix::fs::open(dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Tree { root })
    }

    /// Opens `path` with `flags`, resolved inside the tree (its final component too).
    pub(crate) fn open(&self, path: &CPath, flags: OFlags) -> Result<OwnedFd, Errno> {
        let rel = if path.is_root() { "." } else { path.rel() };
        crate::sys::openat2(&self.root, rel, flags | OFlags::CLOEXEC, Mode::empty(), RESOLVE)
    }

    /// Whether `path` is a directory (symlinks followed inside the tree).
    pub(crate) fn is_dir(&self, path: &CPath) -> bool {
        self.open(path, OFlags::PATH | OFlags::DIRECTORY).is_ok()
    }

    /// Checks that `path` is a directory; with `create`, makes it and its missing
    /// parents first (mode 0755, owned by whoever the helper is: the container's root).
    pub(crate) fn require_dir(&self, path: &CPath, create: bool, name: &str) -> Result<(), JobError> {
        match self.open(path, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(_) => Ok(()),
            Err(Errno::NOENT) if create => self.mkdirs(path),
            Err(Errno::NOENT) => Err(JobError::new(Kind::Request, format!("{path} does not exist in {name}"))
                .hint("create it first, or pass -p (--create-dirs) to create missing directories")),
            Err(Errno::NOTDIR) => Err(JobError::new(Kind::Request, format!("{path} is not a directory in {name}"))),
            Err(e) => Err(JobError::new(Kind::Storage, format!("failed to open {path}: {e}"))),
        }
    }

    /// Makes `path` and its missing parents, one component at a time, each in its
    /// parent as already resolved inside the tree.
    fn mkdirs(&self, path: &CPath) -> Result<(), JobError> {
        let fail = |e: Errno| JobError::new(Kind::Storage, format!("failed to create {path}: {e}"));
        let mut done = CPath::default();
        for comp in path.rel().split('/') {
            let parent = self.open(&done, OFlags::PATH | OFlags::DIRECTORY).map_err(fail)?;
            done = CPath::parse(&format!("{}/{comp}", done.rel())).map_err(|e| JobError::new(Kind::Request, e))?;
            match rustix::fs::mkdirat(&parent, comp, Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(fail(e)),
            }
            // What is there now must be a directory (or a link to one inside the tree).
            self.open(&done, OFlags::PATH | OFlags::DIRECTORY).map_err(fail)?;
        }
        Ok(())
    }

    /// The directory holding `path` (resolved inside the tree) and the final
    /// component, which is not resolved: `statat`/`openat` on it never follow it.
    pub(crate) fn parent_of<'p>(&self, path: &'p CPath, name: &str) -> Result<(OwnedFd, &'p OsStr), JobError> {
        let Some((dir, file)) = path.split() else {
            return Err(JobError::new(Kind::Request, format!("/ is the root of {name}, not a file in it"))
                .hint("name a file or directory in it, such as web/etc"));
        };
        match self.open(&dir, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(fd) => Ok((fd, OsStr::new(file))),
            Err(Errno::NOENT | Errno::NOTDIR) => {
                Err(JobError::new(Kind::Request, format!("{path} does not exist in {name}")))
            }
            Err(e) => Err(JobError::new(Kind::Storage, format!("failed to open {dir}: {e}"))),
        }
    }

    /// Opens the regular file `path` (symlinks followed inside the tree) for reading
    /// or, with `write`, for writing in place. `O_NONBLOCK | O_NOCTTY`, then checked
    /// to be a regular file, so neither a FIFO nor a device can be used.
    pub(crate) fn open_regular(&self, path: &CPath, write: bool, name: &str) -> Result<File, JobError> {
        let mode = if write { OFlags::WRONLY } else { OFlags::RDONLY };
        let fd = match self.open(path, mode | OFlags::NONBLOCK | OFlags::NOCTTY) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::NOTDIR) => {
                return Err(JobError::new(Kind::Request, format!("{path} does not exist in {name}")));
            }
            Err(Errno::ISDIR) => return Err(not_regular(path, name)),
            Err(e) => return Err(JobError::new(Kind::Storage, format!("failed to open {path}: {e}"))),
        };
        let st =
            rustix::fs::fstat(&fd).map_err(|e| JobError::new(Kind::Storage, format!("failed to stat {path}: {e}")))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Err(not_regular(path, name));
        }
        // Back to blocking reads and writes (a regular file never blocks anyway).
        let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| JobError::new(Kind::Storage, e.to_string()))?;
        rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)
            .map_err(|e| JobError::new(Kind::Storage, e.to_string()))?;
        Ok(File::from(fd))
    }
}

fn not_regular(path: &CPath, name: &str) -> JobError {
    JobError::new(Kind::Request, format!("{path} is not a regular file in {name}"))
}
