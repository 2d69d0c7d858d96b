//! Processes: clone3 with a pidfd, pidfd signalling, exec and exit, and the
//! privilege knobs set around them (dumpable, bounding set, fs ids).

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::thread::{Error, require_single_thread};

/// `struct clone_args` from `<linux/sched.h>` (version 2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What `clone3` returned in the calling process.
pub enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent: the child's pid (in our pid namespace) and a pidfd for it.
    Parent { pid: i32, pidfd: OwnedFd },
}

/// `clone3(2)` with fork semantics (no new stack): the child continues from this call.
///
/// `flags` are `CLONE_NEW*` flags; `CLONE_PIDFD` is always added so the parent can
/// signal and wait for the child without pid-reuse races. With `into_cgroup` (a
/// cgroup2 directory) the child is born in that cgroup (`CLONE_INTO_CGROUP`): no
/// migration afterwards, whose cgroup2 write costs several milliseconds (the kernel
/// waits for an RCU grace period). Must be called from a single-threaded process
/// (namespace flags such as `CLONE_NEWUSER` require it, and the child only has this
/// thread).
pub fn clone3(flags: u64, into_cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Error> {
    clone3_for("create the container's namespaces (clone3)", flags, into_cgroup)
}

/// [`clone3`], naming `action` when it fails.
pub fn clone3_for(action: &'static str, flags: u64, into_cgroup: Option<BorrowedFd<'_>>) -> Result<Forked, Error> {
    require_single_thread(action)?;
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = into_cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; the
    // pidfd pointer stays valid for the duration of the call, and the cgroup fd (if
    // any) is borrowed for it. With no stack given the kernel duplicates the calling
    // thread like fork(), which is sound in a single-threaded process (checked above).
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match ret {
        -1 => Err(Error::Call { action: action.into(), source: io::Error::last_os_error() }),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: on success the kernel stored a new, owned pidfd in `pidfd`.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent { pid: pid as i32, pidfd })
        }
    }
}

/// `CLONE_INTO_CGROUP` from `<linux/sched.h>` (Linux 5.7), which libc does not export.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `pidfd_send_signal(2)`: any signal number, including real-time ones like SIGRTMIN+3.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: valid fd, null siginfo (kernel fills it as for kill(2)), no flags.
    let r = unsafe {
        libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), signal, std::ptr::null::<libc::siginfo_t>(), 0)
    };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `kill(2)` with any signal number.
pub fn kill(pid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    if unsafe { libc::kill(pid, signal) } < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

/// `prctl(PR_SET_DUMPABLE, 0)`: stops processes inside a container from ptracing us or
/// opening our `/proc/PID/exe` while we are half inside it (CVE-2019-5736 class).
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Joins the namespaces `flags` of the process behind `pidfd` (init of a container: a
/// pidfd, so a recycled pid is never joined). When `as_root`, the caller has joined
/// (or is already in) the container's user namespace and becomes its root with no
/// supplementary groups. Either way it is made non-dumpable again afterwards: a
/// credential change resets the flag, and processes of the container must not ptrace
/// a helper that holds host descriptors.
pub fn join_container(pidfd: BorrowedFd<'_>, flags: nix::sched::CloneFlags, as_root: bool) -> Result<(), Error> {
    use super::thread::call;
    nix::sched::setns(pidfd, flags).map_err(call("join the container's namespaces"))?;
    if as_root {
        nix::unistd::setgroups(&[]).map_err(call("clear supplementary groups"))?;
        nix::unistd::setresgid(0.into(), 0.into(), 0.into()).map_err(call("become root in the container"))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into()).map_err(call("become root in the container"))?;
    }
    set_non_dumpable().map_err(|source| Error::Call { action: "make the helper non-dumpable".into(), source })
}

/// `prctl(PR_CAPBSET_DROP, cap)`.
pub fn capbset_drop(cap: u32) -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } < 0 {
        let err = io::Error::last_os_error();
        // EINVAL: the running kernel does not know this capability; nothing to drop.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    Ok(())
}

/// Drops each capability in `caps` from the bounding set (named for the error).
pub fn drop_bounding(caps: &[(&str, u32)]) -> Result<(), Error> {
    for (name, cap) in caps {
        capbset_drop(*cap)
            .map_err(|source| Error::Call { action: format!("drop {name} from the bounding set"), source })?;
    }
    Ok(())
}

/// `execve(2)`; returns only on failure.
pub fn execve(argv: &[CString], env: &[CString]) -> io::Error {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: both arrays are NULL-terminated and point into CStrings that outlive the call.
    unsafe { libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    io::Error::last_os_error()
}

/// `_exit(2)`: leaves a forked child without running the parent's atexit handlers or
/// flushing stdio buffers that belong to the parent.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and is always safe to call.
    unsafe { libc::_exit(code) }
}

/// Runs `f` with the filesystem ids `uid`/`gid` while keeping every capability
/// (`SECBIT_NO_SETUID_FIXUP` stops the kernel from dropping them on the switch), then
/// restores both. overlayfs records its creator's credentials when it is created and
/// uses them for every operation on its layers: an overlay over layers idmapped to a
/// container must be created with the ids of the container's root.
pub fn with_fsids<T>(uid: u32, gid: u32, f: impl FnOnce() -> T) -> io::Result<T> {
    const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
    // SAFETY: prctl with integer arguments.
    let old = unsafe { libc::prctl(libc::PR_GET_SECUREBITS) };
    if old < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::prctl(libc::PR_SET_SECUREBITS, old as libc::c_ulong | SECBIT_NO_SETUID_FIXUP) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: setfsuid/setfsgid take plain ids and return the previous ones.
    let (old_gid, old_uid) = unsafe { (libc::setfsgid(gid), libc::setfsuid(uid)) };
    let r = f();
    // SAFETY: as above; restores what was there.
    unsafe {
        libc::setfsuid(old_uid as libc::uid_t);
        libc::setfsgid(old_gid as libc::gid_t);
        libc::prctl(libc::PR_SET_SECUREBITS, old as libc::c_ulong);
    }
    Ok(r)
}
