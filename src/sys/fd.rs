//! File descriptors: close-on-exec ranges, non-blocking mode, dup2 and stdio.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

/// Marks every descriptor from `first` upwards close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`): they stay usable until exec, then vanish. This is how the
/// child keeps its error channel to the parent while guaranteeing that init inherits
/// nothing but stdio (the leaked-fd escape, CVE-2024-21626).
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: plain syscall with integer arguments.
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Closes every descriptor from 3 upwards except those in `keep` (`close_range`
/// over the gaps between them).
pub fn close_all_but(keep: &[RawFd]) -> io::Result<()> {
    let mut keep: Vec<u32> = keep.iter().filter_map(|fd| u32::try_from(*fd).ok()).filter(|fd| *fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 3u32;
    for fd in keep {
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments; the caller owns no descriptor in
    // the range that it still uses (it lists those it keeps).
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// Adds `O_NONBLOCK` to an open descriptor.
pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Duplicates `fd` onto `target` (dup2), leaving `target` without close-on-exec.
pub fn dup_onto(fd: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    // SAFETY: dup2 on valid descriptors.
    if unsafe { libc::dup2(fd.as_raw_fd(), target) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Standard input, output or error (0, 1 or 2) as a borrowed descriptor.
pub fn stdio(fd: u8) -> BorrowedFd<'static> {
    assert!(fd <= 2, "stdio() is only for descriptors 0, 1 and 2");
    // SAFETY: 0, 1 and 2 are open for the whole life of the process (hutch never
    // closes them), so a 'static borrow of them is valid.
    unsafe { BorrowedFd::borrow_raw(RawFd::from(fd)) }
}
