//! `--from-dir`: a faithful copy of a root filesystem tree. Ownership, permission
//! bits (setuid included), timestamps, extended attributes (file capabilities
//! included), hard links, symlinks and fifos all survive; device nodes are copied only
//! for privileged containers (an unprivileged one gets its /dev from hutch).
//!
//! The source may be a tree someone else can change while it is read (another
//! container's rootfs): it is walked through directory descriptors, every entry opened
//! with `O_NOFOLLOW` relative to its directory and checked to be what `stat` said, so
//! a directory swapped for a symlink mid-copy is never followed out of the tree.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timespec, Timestamps};

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
    pub special: u64,
    /// Device nodes left out (unprivileged) and sockets (never copied).
    pub skipped: u64,
    /// Files whose data was shared with the source (a reflink) instead of copied.
    pub cloned: u64,
    /// Regular files of non-zero size.
    pub files_with_data: u64,
}

impl Stats {
    /// Whether every file with data shares it with the source (the copy was cheap).
    pub fn all_cloned(&self) -> bool {
        self.cloned == self.files_with_data
    }
}

/// Copies the tree at `src` into `dst`, which must not exist yet.
pub fn copy_tree(src: &Path, dst: &Path, devices: bool) -> io::Result<Stats> {
    let root = rustix::fs::open(src, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ctx(e.into(), src))?;
    let st = rustix::fs::fstat(&root).map_err(|e| ctx(e.into(), src))?;
    let mut c = Copier { stats: Stats::default(), hardlinks: HashMap::new(), devices };
    c.dir(&root, &st, src, dst)?;
    Ok(c.stats)
}

/// Copies the contents of the tree at `src` into the existing empty directory `dst`
/// (a new btrfs subvolume, say), and gives `dst` the owner, mode and times of `src`.
pub fn copy_into(src: &Path, dst: &Path, devices: bool) -> io::Result<Stats> {
    let root = rustix::fs::open(src, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| ctx(e.into(), src))?;
    let st = rustix::fs::fstat(&root).map_err(|e| ctx(e.into(), src))?;
    let mut c = Copier { stats: Stats::default(), hardlinks: HashMap::new(), devices };
    c.entries(&root, src, dst)?;
    finish(Some(&root), None, &st, dst)?;
    Ok(c.stats)
}

struct Copier {
    stats: Stats,
    /// (dev, inode) of multiply-linked files already copied → their copy.
    hardlinks: HashMap<(u64, u64), PathBuf>,
    devices: bool,
}

fn kind(st: &Stat) -> FileType {
    FileType::from_raw_mode(st.st_mode)
}

impl Copier {
    /// Copies the directory open at `fd` (shown as `src`) to `dst`.
    fn dir(&mut self, fd: &OwnedFd, st: &Stat, src: &Path, dst: &Path) -> io::Result<()> {
        fs::DirBuilder::new().mode(0o700).create(dst).map_err(|e| ctx(e, dst))?;
        self.stats.dirs += 1;
        self.entries(fd, src, dst)?;
        // Ownership, mode, xattrs and times last, so the children did not disturb them.
        finish(Some(fd), None, st, dst)
    }

    /// Copies every entry of the directory open at `fd` into `dst`.
    fn entries(&mut self, fd: &OwnedFd, src: &Path, dst: &Path) -> io::Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        for entry in rustix::fs::Dir::read_from(fd).map_err(|e| ctx(e.into(), src))? {
            let entry = entry.map_err(|e| ctx(e.into(), src))?;
            let name = entry.file_name().to_bytes();
            if name != b"." && name != b".." {
                names.push(OsStr::from_bytes(name).to_os_string());
            }
        }
        names.sort();
        for name in names {
            self.entry(fd, &name, &src.join(&name), &dst.join(&name))?;
        }
        Ok(())
    }

    fn entry(&mut self, dir: &OwnedFd, name: &OsStr, src: &Path, dst: &Path) -> io::Result<()> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| ctx(e.into(), src))?;
        let multiply_linked = st.st_nlink > 1 && kind(&st) != FileType::Directory && kind(&st) != FileType::Symlink;
        if multiply_linked {
            if let Some(first) = self.hardlinks.get(&(st.st_dev, st.st_ino)) {
                fs::hard_link(first, dst).map_err(|e| ctx(e, dst))?;
                self.stats.links += 1;
                return Ok(());
            }
        }
        match kind(&st) {
            FileType::Directory => {
                let fd = open_checked(dir, name, OFlags::DIRECTORY, &st).map_err(|e| ctx(e, src))?;
                return self.dir(&fd, &st, src, dst);
            }
            FileType::RegularFile => {
                let fd = open_checked(dir, name, OFlags::empty(), &st).map_err(|e| ctx(e, src))?;
                let mut from = fs::File::from(fd);
                let mut to = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(dst)
                    .map_err(|e| ctx(e, dst))?;
                if st.st_size > 0 {
                    self.stats.files_with_data += 1;
                    if clone_data(&from, &to) {
                        self.stats.cloned += 1;
                        self.stats.bytes += st.st_size as u64;
                    } else {
                        self.stats.bytes += io::copy(&mut from, &mut to).map_err(|e| ctx(e, src))?;
                    }
                }
                self.stats.files += 1;
                finish(Some(&from.into()), None, &st, dst)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|e| ctx(e.into(), src))?;
                std::os::unix::fs::symlink(OsStr::from_bytes(target.to_bytes()), dst).map_err(|e| ctx(e, dst))?;
                self.stats.files += 1;
                finish(None, Some((dir, name)), &st, dst)?;
            }
            FileType::CharacterDevice | FileType::BlockDevice if !self.devices => {
                self.stats.skipped += 1;
                return Ok(());
            }
            k @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                rustix::fs::mknodat(rustix::fs::CWD, dst, k, Mode::from_raw_mode(0o600), st.st_rdev)
                    .map_err(|e| ctx(e.into(), dst))?;
                self.stats.special += 1;
                finish(None, Some((dir, name)), &st, dst)?;
            }
            _ => {
                // Sockets belong to a running program, not to a filesystem image.
                self.stats.skipped += 1;
                return Ok(());
            }
        }
        if multiply_linked {
            self.hardlinks.insert((st.st_dev, st.st_ino), dst.to_path_buf());
        }
        Ok(())
    }
}

/// Shares the data of `from` with the empty file `to` (`FICLONE`: btrfs, xfs,
/// bcachefs); false where the filesystem cannot, and the caller copies.
fn clone_data(from: &fs::File, to: &fs::File) -> bool {
    const FICLONE: libc::c_ulong = 0x4004_9409;
    // SAFETY: both are open regular files; FICLONE takes the source's fd as its argument.
    unsafe { libc::ioctl(to.as_raw_fd(), FICLONE as _, from.as_raw_fd()) == 0 }
}

/// Opens `name` in `dir` without following a symlink and checks it is still the inode
/// that `stat` saw.
fn open_checked(dir: &OwnedFd, name: &OsStr, extra: OFlags, seen: &Stat) -> io::Result<OwnedFd> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra, Mode::empty())?;
    let now = rustix::fs::fstat(&fd)?;
    if now.st_ino != seen.st_ino || now.st_dev != seen.st_dev {
        return Err(io::Error::other("it changed while it was being copied"));
    }
    Ok(fd)
}

/// Applies owner, then mode (chown clears setuid bits), then xattrs (chown clears
/// security.capability), then timestamps. The source's xattrs are read through its
/// open descriptor, or for entries that cannot be opened (symlinks, nodes) by name in
/// their directory.
fn finish(src_fd: Option<&OwnedFd>, src_at: Option<(&OwnedFd, &OsStr)>, st: &Stat, dst: &Path) -> io::Result<()> {
    let is_symlink = kind(st) == FileType::Symlink;
    std::os::unix::fs::lchown(dst, Some(st.st_uid), Some(st.st_gid)).map_err(|e| ctx(e, dst))?;
    if !is_symlink {
        rustix::fs::chmodat(rustix::fs::CWD, dst, Mode::from_raw_mode(st.st_mode & 0o7777), AtFlags::empty())
            .map_err(|e| ctx(e.into(), dst))?;
    }
    let src_path = match (src_fd, src_at) {
        (Some(fd), _) => PathBuf::from(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())),
        (None, Some((dir, name))) => PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).join(name),
        (None, None) => return Err(io::Error::other("no source to copy attributes from")),
    };
    copy_xattrs(&src_path, dst, src_fd.is_some())?;
    let ts = Timestamps {
        last_access: Timespec { tv_sec: st.st_atime, tv_nsec: st.st_atime_nsec as _ },
        last_modification: Timespec { tv_sec: st.st_mtime, tv_nsec: st.st_mtime_nsec as _ },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| ctx(e.into(), dst))
}

/// Copies every extended attribute of `src` (not following a final symlink; when
/// `follow` is set, `src` is a /proc/self/fd magic link to the opened source itself).
fn copy_xattrs(src: &Path, dst: &Path, follow: bool) -> io::Result<()> {
    let size = if follow { rustix::fs::listxattr_query(src) } else { rustix::fs::llistxattr_query(src) };
    let size = match size {
        Ok(0) => return Ok(()),
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(ctx(e.into(), src)),
    };
    let mut names = vec![0u8; size];
    let n =
        if follow { rustix::fs::listxattr(src, &mut names[..]) } else { rustix::fs::llistxattr(src, &mut names[..]) }
            .map_err(|e| ctx(e.into(), src))?;
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = OsStr::from_bytes(name);
        let len = if follow { rustix::fs::getxattr_query(src, name) } else { rustix::fs::lgetxattr_query(src, name) };
        let len = match len {
            Ok(l) => l,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(ctx(e.into(), src)),
        };
        let mut value = vec![0u8; len];
        let got = if follow {
            rustix::fs::getxattr(src, name, &mut value[..])
        } else {
            rustix::fs::lgetxattr(src, name, &mut value[..])
        }
        .map_err(|e| ctx(e.into(), src))?;
        match rustix::fs::lsetxattr(dst, name, &value[..got], rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            // user.* xattrs cannot be set on symlinks; nothing is lost that could exist.
            Err(rustix::io::Errno::PERM) if fs::symlink_metadata(dst).is_ok_and(|m| m.file_type().is_symlink()) => {}
            Err(e) => return Err(ctx(e.into(), dst)),
        }
    }
    Ok(())
}

fn ctx(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use super::*;

    #[test]
    fn copies_modes_links_times_and_special_files() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("usr/bin")).unwrap();
        fs::write(src.join("usr/bin/su"), b"binary").unwrap();
        fs::set_permissions(src.join("usr/bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
        fs::hard_link(src.join("usr/bin/su"), src.join("usr/bin/su2")).unwrap();
        std::os::unix::fs::symlink("/etc/shadow-outside", src.join("dangling")).unwrap();
        std::os::unix::fs::symlink("usr", src.join("lib")).unwrap();
        nix::unistd::mkfifo(&src.join("fifo"), nix::sys::stat::Mode::from_bits_truncate(0o640)).unwrap();
        fs::create_dir(src.join("ro")).unwrap();
        fs::write(src.join("ro/file"), b"x").unwrap();
        fs::set_permissions(src.join("ro"), fs::Permissions::from_mode(0o555)).unwrap();
        let _ = rustix::fs::lsetxattr(src.join("usr/bin/su"), "user.hutch", b"kept", rustix::fs::XattrFlags::empty());
        let old = Timestamps {
            last_access: Timespec { tv_sec: 1_000_000, tv_nsec: 5 },
            last_modification: Timespec { tv_sec: 1_000_000, tv_nsec: 5 },
        };
        rustix::fs::utimensat(rustix::fs::CWD, src.join("usr/bin/su"), &old, AtFlags::empty()).unwrap();

        let dst = d.path().join("dst");
        let stats = copy_tree(&src, &dst, false).unwrap();
        assert_eq!(stats.links, 1);
        assert_eq!(stats.special, 1);
        let su = fs::metadata(dst.join("usr/bin/su")).unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755, "setuid bit survives");
        assert_eq!(su.mtime(), 1_000_000);
        assert_eq!(su.ino(), fs::metadata(dst.join("usr/bin/su2")).unwrap().ino(), "hard link kept");
        assert_eq!(fs::read(dst.join("usr/bin/su")).unwrap(), b"binary");
        assert_eq!(fs::read_link(dst.join("dangling")).unwrap(), Path::new("/etc/shadow-outside"));
        assert_eq!(fs::read_link(dst.join("lib")).unwrap(), Path::new("usr"));
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(dst.join("fifo")).unwrap().file_type().is_fifo());
        assert_eq!(fs::metadata(dst.join("ro")).unwrap().mode() & 0o777, 0o555);
        assert_eq!(fs::read(dst.join("ro/file")).unwrap(), b"x");
        if let Ok(v) = rustix::fs::lgetxattr_query(src.join("usr/bin/su"), "user.hutch") {
            let mut buf = vec![0u8; v];
            rustix::fs::lgetxattr(dst.join("usr/bin/su"), "user.hutch", &mut buf[..]).unwrap();
            assert_eq!(buf, b"kept");
        }
    }

    #[test]
    fn refuses_to_copy_into_an_existing_destination() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("src")).unwrap();
        fs::create_dir(d.path().join("dst")).unwrap();
        assert!(copy_tree(&d.path().join("src"), &d.path().join("dst"), false).is_err());
    }

    #[test]
    fn a_swapped_entry_is_refused_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("src");
        fs::create_dir_all(src.join("etc")).unwrap();
        let dir = rustix::fs::open(&src, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let seen = rustix::fs::statat(&dir, "etc", AtFlags::SYMLINK_NOFOLLOW).unwrap();
        // Between stat and open, "etc" becomes a symlink to somewhere else. (The old
        // directory is kept, renamed, so its inode number cannot be reused.)
        fs::rename(src.join("etc"), src.join("etc.old")).unwrap();
        std::os::unix::fs::symlink("/", src.join("etc")).unwrap();
        assert!(open_checked(&dir, OsStr::new("etc"), OFlags::DIRECTORY, &seen).is_err());
        // ...or a different directory altogether.
        fs::remove_file(src.join("etc")).unwrap();
        fs::create_dir(src.join("other")).unwrap();
        fs::rename(src.join("other"), src.join("etc")).unwrap();
        let err = open_checked(&dir, OsStr::new("etc"), OFlags::DIRECTORY, &seen).unwrap_err();
        assert!(err.to_string().contains("changed"), "{err}");
    }
}
