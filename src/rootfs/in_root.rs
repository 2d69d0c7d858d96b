//! Creating and inspecting paths inside an untrusted rootfs, next to
//! [`super::write_file`]: every path is resolved with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)` from the rootfs, so a symlink planted anywhere in it
//! (`etc -> /tmp/outside`, `etc/netplan -> ../../..`) is followed inside the rootfs and
//! never leads to the host. The final component is never followed: entries are
//! created under a temporary name and renamed over it, or created with `*at` calls
//! that do not follow it.
//!
//! Paths are rootfs-absolute strings such as `/etc/hostname`; `..` components are
//! refused (a symlink that says `..` is still resolved, and clamped at the root).

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Uid};
use rustix::io::Errno;

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn invalid(path: &str, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{path} {why}"))
}

fn open_root(rootfs: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// The normal components of `path`; `..` is refused.
fn components(path: &str) -> io::Result<Vec<&str>> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(invalid(path, "must not contain '..'")),
            c if c.contains('\0') => return Err(invalid(path, "must not contain NUL")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Opens the directory `rel` (components joined by `/`, empty for the root itself)
/// with every symlink resolved inside the root.
fn open_dir(root: &OwnedFd, rel: &[&str]) -> io::Result<OwnedFd> {
    let joined = rel.join("/");
    Ok(crate::sys::openat2(
        root,
        if joined.is_empty() { "." } else { joined.as_str() },
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )?)
}

/// The parent directory of `path` (an `O_PATH` descriptor for `*at` calls) and the
/// final component, which is not resolved.
fn open_parent<'a>(root: &OwnedFd, path: &'a str) -> io::Result<(OwnedFd, &'a str)> {
    let comps = components(path)?;
    let (name, dirs) = comps.split_last().ok_or_else(|| invalid(path, "does not name a file"))?;
    Ok((open_dir(root, dirs)?, name))
}

/// Creates `path` as a symlink to `target` (which is stored as is, not resolved) inside
/// `rootfs`, replacing whatever non-directory is there. The parent must exist.
pub(crate) fn symlink_in_root(rootfs: &Path, path: &str, target: &str) -> io::Result<()> {
    let root = open_root(rootfs)?;
    let (parent, name) = open_parent(&root, path)?;
    let tmp = format!(".{name}.hutch-link-{}", std::process::id());
    // A leftover from an interrupted run has our own temporary name.
    let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
    rustix::fs::symlinkat(target, &parent, tmp.as_str())?;
    if let Err(e) = rustix::fs::renameat(&parent, tmp.as_str(), &parent, name) {
        let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), AtFlags::empty());
        return Err(e.into());
    }
    Ok(())
}

/// Creates the directory `path` and its missing parents inside `rootfs`, one component
/// at a time: each existing component is opened with `RESOLVE_IN_ROOT` (so a symlink
/// such as `/lib -> usr/lib` is followed inside the rootfs), each missing one is made
/// with `mkdirat` in its already-resolved parent. A dangling symlink in the way is an
/// error, never followed out of the rootfs. Each directory it creates goes to `owner`
/// (uid, gid) when given; returns how many directories it created.
pub(crate) fn mkdir_in_root_owned(
    rootfs: &Path,
    path: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<usize> {
    let root = open_root(rootfs)?;
    let comps = components(path)?;
    let mut created = 0;
    for i in 0..comps.len() {
        match open_dir(&root, &comps[..=i]) {
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let parent = open_dir(&root, &comps[..i])?;
        match rustix::fs::mkdirat(&parent, comps[i], Mode::from_raw_mode(mode)) {
            Ok(()) => {
                created += 1;
                let dir = rustix::fs::openat(
                    &parent,
                    comps[i],
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                // mkdirat applied the umask.
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(mode))?;
                if let Some((uid, gid)) = owner {
                    rustix::fs::fchown(&dir, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))?;
                }
            }
            // Made concurrently, or a dangling symlink: the check below decides.
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        open_dir(&root, &comps[..=i])?;
    }
    Ok(created)
}

/// Whether `path` exists inside `rootfs`, following symlinks inside it (a symlink to
/// a host path that the rootfs does not have does not exist).
pub(crate) fn exists_in_root(rootfs: &Path, path: &str) -> bool {
    let (Ok(root), Ok(comps)) = (open_root(rootfs), components(path)) else { return false };
    let joined = comps.join("/");
    crate::sys::openat2(
        &root,
        if joined.is_empty() { "." } else { joined.as_str() },
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        RESOLVE,
    )
    .is_ok()
}

/// `lstat` of `path` inside `rootfs`: the parent is resolved inside the rootfs, the
/// final component is not followed.
pub(crate) fn lstat_in_root(rootfs: &Path, path: &str) -> io::Result<Stat> {
    let root = open_root(rootfs)?;
    let (parent, name) = open_parent(&root, path)?;
    Ok(rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW)?)
}

/// Changes the owner of `path` inside `rootfs` without following its final component
/// (a symlink gets the new owner itself).
pub(crate) fn chown_in_root(rootfs: &Path, path: &str, uid: u32, gid: u32) -> io::Result<()> {
    let root = open_root(rootfs)?;
    let (parent, name) = open_parent(&root, path)?;
    Ok(rustix::fs::chownat(
        &parent,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Reads the regular file `path` inside `rootfs` (symlinks followed inside it), at
/// most `limit` bytes; anything else (a FIFO, a device, a larger file) is refused.
pub(crate) fn read_file_in_root(rootfs: &Path, path: &str, limit: u64) -> io::Result<Vec<u8>> {
    let root = open_root(rootfs)?;
    let rel = components(path)?.join("/");
    if rel.is_empty() {
        return Err(invalid(path, "does not name a file"));
    }
    // O_PATH first: a device node or FIFO is never opened, only looked at.
    let pfd = crate::sys::openat2(&root, rel.as_str(), OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), RESOLVE)?;
    let st = rustix::fs::fstat(&pfd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(invalid(path, "is not a regular file"));
    }
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&pfd)).as_str(),
        OFlags::RDONLY | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(std::fs::File::from(fd), limit + 1), &mut out)?;
    if out.len() as u64 > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path} is larger than {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "in_root_tests.rs"]
mod tests;
