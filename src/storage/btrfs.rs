//! btrfs subvolumes and snapshots, through the filesystem's ioctls.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{Error, io_err};

const BTRFS_SUPER_MAGIC: u32 = 0x9123_683e;
/// The inode number of every subvolume's root directory.
const FIRST_FREE_OBJECTID: u64 = 256;
const NAME_MAX: usize = 4087;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; NAME_MAX + 1],
}

const fn iow(nr: u64) -> u64 {
    (1 << 30) | ((std::mem::size_of::<VolArgs>() as u64) << 16) | (0x94 << 8) | nr
}
const SNAP_CREATE: u64 = iow(1);
const SNAP_DESTROY: u64 = iow(15);
const SUBVOL_CREATE: u64 = iow(14);

pub fn is_btrfs(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as u32 == BTRFS_SUPER_MAGIC)
}

pub fn is_subvolume(path: &Path) -> bool {
    is_btrfs(path) && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == FIRST_FREE_OBJECTID)
}

/// Creates `path` as a new, empty subvolume.
pub fn create_subvolume(path: &Path) -> Result<(), Error> {
    let (parent, name) = split(path)?;
    let dir = std::fs::File::open(parent).map_err(io_err("open", parent))?;
    ioctl(&dir, SUBVOL_CREATE, -1, name).map_err(io_err("create a btrfs subvolume at", path))
}

/// Creates `dst` as a writable snapshot of the subvolume `src`.
pub fn snapshot(src: &Path, dst: &Path) -> Result<(), Error> {
    let (parent, name) = split(dst)?;
    let source = std::fs::File::open(src).map_err(io_err("open", src))?;
    let dir = std::fs::File::open(parent).map_err(io_err("open", parent))?;
    ioctl(&dir, SNAP_CREATE, source.as_raw_fd().into(), name).map_err(io_err("snapshot", src))
}

/// Deletes the subvolume `path` (its extents are freed in the background).
pub fn delete_subvolume(path: &Path) -> Result<(), Error> {
    let (parent, name) = split(path)?;
    let dir = std::fs::File::open(parent).map_err(io_err("open", parent))?;
    ioctl(&dir, SNAP_DESTROY, 0, name).map_err(io_err("delete the btrfs subvolume", path))
}

fn split(path: &Path) -> Result<(&Path, &[u8]), Error> {
    let bad = || Error::Io {
        action: "name a subvolume",
        path: path.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
    };
    let name = path.file_name().ok_or_else(bad)?.as_encoded_bytes();
    let parent = path.parent().ok_or_else(bad)?;
    if !is_btrfs(parent) {
        return Err(Error::NotBtrfs { path: parent.to_path_buf() });
    }
    if name.len() > NAME_MAX {
        return Err(bad());
    }
    Ok((parent, name))
}

fn ioctl(dir: &std::fs::File, request: u64, fd: i64, name: &[u8]) -> std::io::Result<()> {
    let mut args = VolArgs { fd, name: [0; NAME_MAX + 1] };
    args.name[..name.len()].copy_from_slice(name);
    // SAFETY: `dir` is an open directory, `args` a fully initialised vol_args of the
    // size encoded in `request`, NUL-terminated (the name is shorter than the array).
    let r = unsafe { libc::ioctl(dir.as_raw_fd(), request as _, &mut args as *mut VolArgs) };
    if r < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_headers() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(SNAP_CREATE, 0x5000_9401);
        assert_eq!(SUBVOL_CREATE, 0x5000_940e);
        assert_eq!(SNAP_DESTROY, 0x5000_940f);
    }

    #[test]
    fn a_plain_directory_is_not_a_subvolume() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_subvolume(d.path()) || is_btrfs(d.path()));
        if !is_btrfs(d.path()) {
            assert!(matches!(snapshot(d.path(), &d.path().join("x")), Err(Error::NotBtrfs { .. })));
        }
    }
}
