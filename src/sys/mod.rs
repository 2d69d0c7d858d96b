//! The raw kernel boundary: the few system calls that neither `nix` nor `rustix` wrap
//! (clone3 with a pidfd, mount_setattr, close_range, pidfd signalling with real-time
//! signals, TIOCGPTPEER), each behind a small safe function.
//!
//! Everything here is a thin wrapper: policy (which flags, which order) lives in the
//! callers, so this file stays auditable at a glance. Every `unsafe` block says why it
//! is sound.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to {action}: {source}")]
    Call { action: String, source: io::Error },
    #[error("failed to {action}: this process runs {threads} threads, and it must run one")]
    NotSingleThreaded { action: &'static str, threads: usize },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            // A bug in hutch, not something the user did: say where to look.
            Error::NotSingleThreaded { .. } => {
                Some("this is a bug in hutch (something started a thread before a fork); please report it".into())
            }
            Error::Call { .. } => None,
        }
    }
}

fn call(action: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> Error {
    let action = action.into();
    move |e| Error::Call { action, source: e.into() }
}

/// Counts this process's threads (the `Threads:` line of /proc/self/status). The file
/// is opened once and re-read on each count, so a count still works after `setns`
/// into another mount namespace, whose /proc does not show this process.
pub struct ThreadCounter(std::fs::File);

impl ThreadCounter {
    pub fn open() -> io::Result<ThreadCounter> {
        std::fs::File::open("/proc/self/status").map(ThreadCounter)
    }

    pub fn count(&self) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = self.0.read_at(&mut buf, text.len() as u64)?;
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&text)
            .lines()
            .find_map(|l| l.strip_prefix("Threads:"))
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "/proc/self/status has no Threads: line"))
    }

    /// Checks, right before a fork or clone, the premise of every `unsafe` fork here:
    /// this process has one thread, so the child (a copy of this thread alone) holds
    /// no lock another thread held, and namespace flags such as `CLONE_NEWUSER` work.
    ///
    /// A thread that was just joined may still be counted for a moment (the kernel
    /// wakes the joiner before it has finished the thread's exit), so a count above
    /// one is looked at again for a few milliseconds before it is refused.
    pub fn require_single(&self, action: &'static str) -> Result<(), Error> {
        let counting = |source| Error::Call { action: format!("{action} (counting this process's threads)"), source };
        let mut threads = self.count().map_err(counting)?;
        for _ in 0..20 {
            if threads == 1 {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            threads = self.count().map_err(counting)?;
        }
        if threads == 1 { Ok(()) } else { Err(Error::NotSingleThreaded { action, threads }) }
    }

    /// `fork(2)` once `require_single` passes.
    pub fn fork(&self, action: &'static str) -> Result<nix::unistd::ForkResult, Error> {
        self.require_single(action)?;
        // SAFETY: this process has exactly one thread (checked just above, and nothing
        // between the check and the fork starts one), so the child is a complete copy
        // of its only thread and may run arbitrary code until it execs or exits.
        unsafe { nix::unistd::fork() }.map_err(call(action))
    }
}

/// `ThreadCounter::require_single` with a counter of its own.
pub fn require_single_thread(action: &'static str) -> Result<(), Error> {
    let counter = ThreadCounter::open()
        .map_err(|source| Error::Call { action: format!("{action} (counting this process's threads)"), source })?;
    counter.require_single(action)
}

/// `fork(2)` after checking that this process is single-threaded; `action` names the
/// fork in errors ("start the exec helper").
pub fn fork_single(action: &'static str) -> Result<nix::unistd::ForkResult, Error> {
    ThreadCounter::open()
        .map_err(|source| Error::Call { action: format!("{action} (counting this process's threads)"), source })?
        .fork(action)
}

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
/// signal and wait for the child without pid-reuse races. Must be called from a
/// single-threaded process (namespace flags such as `CLONE_NEWUSER` require it, and
/// the child only has this thread).
pub fn clone3(flags: u64) -> Result<Forked, Error> {
    const ACTION: &str = "create the container's namespaces (clone3)";
    require_single_thread(ACTION)?;
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: flags | libc::CLONE_PIDFD as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid, fully initialised clone_args of the size we pass; the
    // pidfd pointer stays valid for the duration of the call. With no stack given the
    // kernel duplicates the calling thread like fork(), which is sound in a
    // single-threaded process (checked just above).
    let ret = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
    match ret {
        -1 => Err(Error::Call { action: ACTION.into(), source: io::Error::last_os_error() }),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: on success the kernel stored a new, owned pidfd in `pidfd`.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent { pid: pid as i32, pidfd })
        }
    }
}

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

/// `prctl(PR_SET_DUMPABLE, 0)`: stops processes inside a container from ptracing us or
/// opening our `/proc/PID/exe` while we are half inside it (CVE-2019-5736 class).
pub fn set_non_dumpable() -> io::Result<()> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// Unblocks every signal and resets every disposition to the default: ignored
/// signals survive exec, and init or a command must not inherit ours.
pub fn reset_signals() {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, signal, sigprocmask};
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    for sig in Signal::iterator() {
        if sig != Signal::SIGKILL && sig != Signal::SIGSTOP {
            // SAFETY: installing SIG_DFL is always sound; no handler code runs.
            let _ = unsafe { signal(sig, SigHandler::SigDfl) };
        }
    }
}

/// Drops this process's mappings of executable file pages (`r-xp` mappings of files:
/// the binary's and the libraries' code), which then fault back in from the page
/// cache when next executed. A long-lived process calls this after its start-up, so
/// its resident set holds only the code it keeps running. Only executable,
/// non-writable private file mappings are touched. This relies on their pages never
/// having been written: true for code built without text relocations (Rust and
/// Debian's libraries are), but a debugger's breakpoints, which are such writes,
/// would be silently dropped. Returns the bytes released.
pub fn release_startup_code() -> usize {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return 0 };
    let mut released = 0;
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        let path = f.nth(3).unwrap_or("");
        if perms != "r-xp" || !path.starts_with('/') {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(start), Ok(end)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        // SAFETY: the range is a whole, read-only, executable private file mapping of
        // this process; MADV_DONTNEED only unmaps its pages, which are re-read from the
        // file on the next access. No page in it was ever written.
        if unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) } == 0 {
            released += end - start;
        }
    }
    released
}

/// Blocks `signals` for this thread and returns a non-blocking, close-on-exec
/// signalfd that delivers them instead (for a poll loop).
pub fn signalfd(signals: &[nix::sys::signal::Signal]) -> Result<nix::sys::signalfd::SignalFd, Error> {
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut mask = nix::sys::signal::SigSet::empty();
    for s in signals {
        mask.add(*s);
    }
    mask.thread_block().map_err(call("block signals"))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).map_err(call("create a signalfd"))
}

/// Adds `O_NONBLOCK` to an open descriptor.
pub fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    rustix::fs::fcntl_setfl(&fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// Unshares the mount namespace (and the namespaces in `also`), then makes every
/// mount in the new copy private, so nothing mounted from now on propagates anywhere.
pub fn unshare_private_mounts(also: nix::sched::CloneFlags) -> Result<(), Error> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS | also).map_err(call("create a mount namespace"))?;
    let flags = nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE;
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(call("make mounts private"))
}

/// Brings the loopback interface of the caller's network namespace up. A new network
/// namespace starts with `lo` down, and not every init raises it.
pub fn loopback_up() -> io::Result<()> {
    link_up("lo")
}

/// A datagram socket for interface ioctls, and an ifreq naming `name`.
fn ifreq(name: &str) -> io::Result<(OwnedFd, libc::ifreq)> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {name:?}")));
    }
    // SAFETY: plain socket(2) call; the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: socket(2) returned a new descriptor that nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: all-zero is a valid ifreq.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    Ok((sock, req))
}

/// Sets IFF_UP on interface `name` of the caller's network namespace
/// (`SIOCGIFFLAGS`/`SIOCSIFFLAGS`, as ifconfig does).
pub fn link_up(name: &str) -> io::Result<()> {
    let (sock, mut req) = ifreq(name)?;
    // SAFETY: ioctl on a valid socket with a pointer to a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above, with the flags to set.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets the MAC address of interface `name` (`SIOCSIFHWADDR`).
pub fn set_mac(name: &str, mac: [u8; 6]) -> io::Result<()> {
    let (sock, mut req) = ifreq(name)?;
    // SAFETY: writing the hardware address member of the ifreq union.
    unsafe {
        req.ifr_ifru.ifru_hwaddr.sa_family = libc::ARPHRD_ETHER;
        for (dst, src) in req.ifr_ifru.ifru_hwaddr.sa_data.iter_mut().zip(mac) {
            *dst = src as libc::c_char;
        }
    }
    // SAFETY: ioctl on a valid socket with a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFHWADDR, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Renames interface `from` to `to` (`SIOCSIFNAME`; the interface must be down).
pub fn rename_link(from: &str, to: &str) -> io::Result<()> {
    let (sock, mut req) = ifreq(from)?;
    if to.is_empty() || to.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("bad interface name {to:?}")));
    }
    // SAFETY: writing bytes into the newname member of the ifreq union.
    unsafe {
        for (dst, src) in req.ifr_ifru.ifru_newname.iter_mut().zip(to.as_bytes()) {
            *dst = *src as libc::c_char;
        }
    }
    // SAFETY: ioctl on a valid socket with a valid ifreq.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFNAME, &req) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ioctl(master, TIOCGPTPEER)`: opens the slave side of a pty from its master without
/// a path lookup (so a container cannot swap `/dev/pts/N` under us).
pub fn pty_peer(master: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: ioctl on a valid fd with integer flags; returns a new fd on success.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unlocks a pty master (`TIOCSPTLCK` 0), as `unlockpt(3)` does.
pub fn unlock_pty(master: BorrowedFd<'_>) -> io::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: ioctl with a pointer to a valid c_int.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `tty` the controlling terminal of the calling session leader.
pub fn set_controlling_tty(tty: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: ioctl with an integer argument.
    if unsafe { libc::ioctl(tty.as_raw_fd(), libc::TIOCSCTTY, 0) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads a terminal's window size.
pub fn get_winsize(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    // SAFETY: all-zero is a valid winsize.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: ioctl with a pointer to a valid winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ws.ws_row, ws.ws_col))
}

/// Sets a terminal's window size.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: ioctl with a pointer to a valid winsize.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
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

/// Host view of a path's process-independent identity: (start time in clock ticks since
/// boot) of process `pid`, from field 22 of /proc/PID/stat.
pub fn process_start_time(pid: i32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_start_time(&stat).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
}

/// Parses the start time out of a `/proc/PID/stat` line. The command name (field 2) may
/// contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_start_time(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // After ")": field 3 (state) is the first token; start time is field 22.
    after.split_whitespace().nth(22 - 3)?.parse().ok()
}

/// Whether a `/proc/PID/stat` line describes a process that has exited but was not
/// reaped yet (state Z or X).
pub fn parse_is_zombie(stat: &str) -> bool {
    let Some(i) = stat.rfind(')') else {
        return false;
    };
    matches!(stat[i + 1..].split_whitespace().next(), Some("Z" | "X"))
}

/// Start time of `pid` if it is running (not a zombie).
pub fn live_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    if parse_is_zombie(&stat) { None } else { parse_start_time(&stat) }
}

/// The host's boot id (changes at every reboot): how stale runtime state is recognised.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// A random 128-bit id as 32 hex digits, from the kernel's random pool.
pub fn random_hex128() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // Fall back on something unique enough for a machine/boot id.
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        buf.copy_from_slice(&(t ^ (std::process::id() as u128) << 64).to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
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

/// Current errno-carrying error for an `AsFd` operation, for callers that only have
/// the fd.
pub fn fd_is_tty(fd: impl AsFd) -> bool {
    rustix::termios::isatty(fd)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forks_refuse_a_multi_threaded_process() {
        // The test harness runs threads of its own: decide in a forked child, which
        // has one thread (it only allocates and reads /proc, which glibc allows).
        // SAFETY: the child runs only the checks below and leaves through _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let alone = require_single_thread("fork alone").is_ok();
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let t = std::thread::spawn(move || rx.recv());
                let refused = matches!(
                    require_single_thread("fork beside a thread"),
                    Err(Error::NotSingleThreaded { threads: 2, .. })
                );
                let cloned = matches!(clone3(0), Err(Error::NotSingleThreaded { .. }));
                let forked = matches!(fork_single("fork"), Err(Error::NotSingleThreaded { .. }));
                drop(tx);
                let _ = t.join();
                let code = if !alone {
                    1
                } else if !refused {
                    2
                } else if !cloned {
                    3
                } else if !forked {
                    4
                } else {
                    0
                };
                exit_now(code)
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0), "see the codes in the child");
            }
        }
        let e = Error::NotSingleThreaded { action: "start the exec helper", threads: 3 };
        assert_eq!(e.to_string(), "failed to start the exec helper: this process runs 3 threads, and it must run one");
    }

    #[test]
    fn start_time_parses_after_the_last_paren() {
        let stat = "4242 (we ird) cmd)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start_time(stat), Some(987654));
    }

    #[test]
    fn zombies_are_recognised() {
        assert!(parse_is_zombie("42 (x) Z 1 42"));
        assert!(!parse_is_zombie("42 (Z) S 1 42"));
    }

    #[test]
    fn start_time_of_self_is_readable() {
        let t = process_start_time(std::process::id() as i32).unwrap();
        assert!(t > 0);
    }

    #[test]
    fn random_ids_differ() {
        let a = random_hex128();
        let b = random_hex128();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
