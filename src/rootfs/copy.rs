//! `--from-dir`: a faithful copy of a root filesystem tree. Ownership, permission
//! bits (setuid included), timestamps, extended attributes (file capabilities
//! included), hard links, symlinks, device nodes and fifos all survive; symlinks are
//! copied as links and never followed. File data moves with `copy_file_range`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, Timespec, Timestamps};

/// What a copy did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
    pub special: u64,
    pub sockets_skipped: u64,
}

/// Copies the tree at `src` into `dst`, which must not exist yet.
pub fn copy_tree(src: &Path, dst: &Path) -> io::Result<Stats> {
    let mut c = Copier { stats: Stats::default(), hardlinks: HashMap::new() };
    let md = fs::symlink_metadata(src)?;
    if !md.is_dir() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not a directory", src.display())));
    }
    c.dir(src, dst, &md)?;
    Ok(c.stats)
}

struct Copier {
    stats: Stats,
    /// (dev, inode) of multiply-linked files already copied → their copy.
    hardlinks: HashMap<(u64, u64), std::path::PathBuf>,
}

impl Copier {
    fn dir(&mut self, src: &Path, dst: &Path, md: &fs::Metadata) -> io::Result<()> {
        fs::DirBuilder::new().mode(0o700).create(dst).map_err(|e| ctx(e, dst))?;
        self.stats.dirs += 1;
        let mut entries: Vec<_> = fs::read_dir(src).map_err(|e| ctx(e, src))?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let (s, d) = (e.path(), dst.join(e.file_name()));
            let emd = fs::symlink_metadata(&s).map_err(|e| ctx(e, &s))?;
            self.entry(&s, &d, &emd)?;
        }
        // Ownership, mode, xattrs and times last, so the children did not disturb them.
        finish(src, dst, md, false)
    }

    fn entry(&mut self, src: &Path, dst: &Path, md: &fs::Metadata) -> io::Result<()> {
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_dir() {
            return self.dir(src, dst, md);
        }
        if md.nlink() > 1 && !ft.is_symlink() {
            if let Some(first) = self.hardlinks.get(&(md.dev(), md.ino())) {
                fs::hard_link(first, dst).map_err(|e| ctx(e, dst))?;
                self.stats.links += 1;
                return Ok(());
            }
        }
        if ft.is_file() {
            let mut from =
                fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(src).map_err(|e| ctx(e, src))?;
            let mut to = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(dst)
                .map_err(|e| ctx(e, dst))?;
            self.stats.bytes += io::copy(&mut from, &mut to).map_err(|e| ctx(e, src))?;
            self.stats.files += 1;
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(|e| ctx(e, src))?;
            std::os::unix::fs::symlink(&target, dst).map_err(|e| ctx(e, dst))?;
            self.stats.files += 1;
        } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
            let kind = if ft.is_fifo() {
                libc::S_IFIFO
            } else if ft.is_char_device() {
                libc::S_IFCHR
            } else {
                libc::S_IFBLK
            };
            nix::sys::stat::mknod(
                dst,
                nix::sys::stat::SFlag::from_bits_truncate(kind),
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                md.rdev(),
            )
            .map_err(|e| ctx(e.into(), dst))?;
            self.stats.special += 1;
        } else {
            // Sockets belong to a running program, not to a filesystem image.
            self.stats.sockets_skipped += 1;
            return Ok(());
        }
        if md.nlink() > 1 && !ft.is_symlink() {
            self.hardlinks.insert((md.dev(), md.ino()), dst.to_path_buf());
        }
        finish(src, dst, md, ft.is_symlink())
    }
}

/// Applies owner, then mode (chown clears setuid bits), then xattrs (chown clears
/// security.capability), then timestamps.
fn finish(src: &Path, dst: &Path, md: &fs::Metadata, is_symlink: bool) -> io::Result<()> {
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid())).map_err(|e| ctx(e, dst))?;
    if !is_symlink {
        fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777)).map_err(|e| ctx(e, dst))?;
    }
    copy_xattrs(src, dst)?;
    let ts = Timestamps {
        last_access: Timespec { tv_sec: md.atime(), tv_nsec: md.atime_nsec() as _ },
        last_modification: Timespec { tv_sec: md.mtime(), tv_nsec: md.mtime_nsec() as _ },
    };
    rustix::fs::utimensat(rustix::fs::CWD, dst, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| ctx(e.into(), dst))
}

/// Copies every extended attribute of `src` (not following symlinks). A filesystem
/// without xattr support on either side simply has none to copy.
fn copy_xattrs(src: &Path, dst: &Path) -> io::Result<()> {
    let size = match rustix::fs::llistxattr_query(src) {
        Ok(0) => return Ok(()),
        Ok(n) => n,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(ctx(e.into(), src)),
    };
    let mut names = vec![0u8; size];
    let n = rustix::fs::llistxattr(src, &mut names[..]).map_err(|e| ctx(e.into(), src))?;
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(name);
        let len = match rustix::fs::lgetxattr_query(src, name) {
            Ok(l) => l,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(ctx(e.into(), src)),
        };
        let mut value = vec![0u8; len];
        let got = rustix::fs::lgetxattr(src, name, &mut value[..]).map_err(|e| ctx(e.into(), src))?;
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
        let stats = copy_tree(&src, &dst).unwrap();
        assert_eq!(stats.links, 1);
        assert_eq!(stats.special, 1);
        let su = fs::metadata(dst.join("usr/bin/su")).unwrap();
        assert_eq!(su.mode() & 0o7777, 0o4755, "setuid bit survives");
        assert_eq!(su.mtime(), 1_000_000);
        assert_eq!(su.ino(), fs::metadata(dst.join("usr/bin/su2")).unwrap().ino(), "hard link kept");
        assert_eq!(fs::read_link(dst.join("dangling")).unwrap(), Path::new("/etc/shadow-outside"));
        assert_eq!(fs::read_link(dst.join("lib")).unwrap(), Path::new("usr"));
        use std::os::unix::fs::FileTypeExt;
        assert!(fs::symlink_metadata(dst.join("fifo")).unwrap().file_type().is_fifo());
        assert_eq!(fs::metadata(dst.join("ro")).unwrap().mode() & 0o777, 0o555);
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
        assert!(copy_tree(&d.path().join("src"), &d.path().join("dst")).is_err());
    }
}
