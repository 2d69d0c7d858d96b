//! Per-container locks: every command that changes a container holds its lock, so two
//! concurrent `start`s give one start and one "already running", and two `create`s of
//! one name give one container and one "already exists".
//!
//! The lock is `flock(2)` on `run/locks/NAME.lock`. A lock file can be removed (by
//! `destroy`) while another process waits on it; a waiter that wakes up re-checks that
//! the path still names the inode it locked, and retries otherwise.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    _flock: Flock<File>,
}

impl Lock {
    /// Waits for the lock at `path`.
    pub fn acquire(path: &Path) -> io::Result<Lock> {
        Self::take(path, true).map(|l| l.expect("blocking lock always returns a lock"))
    }

    /// Takes the lock at `path` if it is free; `None` if another process holds it.
    pub fn try_acquire(path: &Path) -> io::Result<Option<Lock>> {
        Self::take(path, false)
    }

    fn take(path: &Path, wait: bool) -> io::Result<Option<Lock>> {
        if let Some(dir) = path.parent() {
            crate::base::fsutil::ensure_dir(dir, 0o700)?;
        }
        loop {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)?;
            let arg = if wait { FlockArg::LockExclusive } else { FlockArg::LockExclusiveNonblock };
            let flock = match Flock::lock(file, arg) {
                Ok(f) => f,
                Err((_, nix::errno::Errno::EWOULDBLOCK)) if !wait => return Ok(None),
                Err((_, e)) => return Err(e.into()),
            };
            // Did someone remove (or replace) the file while we waited?
            let held = flock.metadata()?;
            match std::fs::metadata(path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(Some(Lock { path: path.to_path_buf(), _flock: flock }));
                }
                _ => continue,
            }
        }
    }

    /// The locked file, to hand to another process: `flock` locks belong to the open
    /// file description, so an inherited copy keeps the lock held after this process
    /// is gone (until every copy is closed, or one of them unlocks).
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&*self._flock)
    }

    /// Removes the lock file while still holding the lock (used by `destroy`, so no
    /// runtime file outlives the container). Waiters retry on a fresh file.
    pub fn remove_file(&self) -> io::Result<()> {
        crate::base::fsutil::remove_file_if_exists(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_is_refused_while_held() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("locks/c.lock");
        let first = Lock::acquire(&p).unwrap();
        assert!(Lock::try_acquire(&p).unwrap().is_none());
        drop(first);
        assert!(Lock::try_acquire(&p).unwrap().is_some());
    }

    #[test]
    fn removed_lock_file_is_recreated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.lock");
        let l = Lock::acquire(&p).unwrap();
        l.remove_file().unwrap();
        assert!(!p.exists());
        drop(l);
        let _again = Lock::acquire(&p).unwrap();
        assert!(p.exists());
    }
}
