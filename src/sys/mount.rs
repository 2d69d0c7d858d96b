//! The new mount API (mount_setattr, idmapped mounts), private mount namespaces and
//! race-free path opening (O_PATH, openat2).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use super::thread::{Error, call};

/// `struct mount_attr` from `<linux/mount.h>`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `mount_setattr(2)` on a mount given by fd (AT_EMPTY_PATH), optionally recursive.
/// `userns` is required when `set` contains [`MOUNT_ATTR_IDMAP`].
pub fn mount_setattr(
    mount: BorrowedFd<'_>,
    recursive: bool,
    set: u64,
    clear: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: userns.map_or(0, |fd| fd.as_raw_fd() as u64),
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: valid fd, a NUL-terminated empty path, a fully initialised mount_attr of
    // the size we pass.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mount.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Unshares the mount namespace (and the namespaces in `also`), then makes every
/// mount in the new copy private, so nothing mounted from now on propagates anywhere.
pub fn unshare_private_mounts(also: nix::sched::CloneFlags) -> Result<(), Error> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | also).map_err(call("create a mount namespace"))?;
    let flags = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE;
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(call("make mounts private"))
}

/// Opens a path `O_PATH|O_CLOEXEC` without following a final symlink.
pub fn open_path_nofollow(path: &Path) -> io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NOFOLLOW,
        rustix::fs::Mode::empty(),
    )
    .map_err(io::Error::from)
}

/// `openat2(2)`, retried when the kernel answers EAGAIN: with `RESOLVE_IN_ROOT` or
/// `RESOLVE_BENEATH` it does so whenever a rename or mount anywhere on the system
/// races the lookup, which is not an error.
pub fn openat2<Fd: AsFd, P: rustix::path::Arg + Copy>(
    dirfd: Fd,
    path: P,
    oflags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
    resolve: rustix::fs::ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match rustix::fs::openat2(&dirfd, path, oflags, mode, resolve) {
            Err(rustix::io::Errno::AGAIN) if tries < 100 => tries += 1,
            other => return other,
        }
    }
}
