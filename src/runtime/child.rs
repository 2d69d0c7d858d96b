//! The container's first process, from clone to exec of init. It runs in the new
//! user, pid, UTS, IPC and network namespaces, waits for the monitor's go-ahead, then,
//! in this order:
//!
//! 1. becomes root of its user namespace (the monitor has written the id maps);
//! 2. moves onto the root filesystem the monitor attached, and unshares its mount
//!    namespace (so the rootfs's `nodev` is locked) and its cgroup namespace (the
//!    monitor has already put it in its cgroup, which becomes the namespace root);
//! 3. makes every mount private, so nothing below propagates anywhere;
//! 4. applies the mount plan inside the root filesystem;
//! 5. pivot_roots into it and detaches the old root (never chroot);
//! 6. sets the hostname, brings up loopback, drops bounding capabilities, resets
//!    signals;
//! 7. puts stdio on /dev/console, marks every other fd close-on-exec, and execs init
//!    with a clean environment.
//!
//! Any failure is sent to the monitor as text and the process exits.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::apply::{HostBinds, Root};
use super::plan::Step;
use super::{channel, policy};
use crate::sys;

/// Everything the child needs; computed by the monitor before clone.
pub struct ChildSpec {
    /// Host path of the root filesystem (the mount is attached on top of it).
    pub rootfs: std::path::PathBuf,
    /// The overlay layers when the rootfs is an overlay over a cached image.
    pub layers: Option<crate::storage::Layers>,
    /// An empty directory the monitor may attach overlay layers on while starting.
    pub scratch: std::path::PathBuf,
    /// Network interfaces the monitor moves in before init: (temporary name, name).
    pub nics: Vec<(String, String)>,
    pub steps: Vec<Step>,
    pub hostname: String,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    pub privileged: bool,
}

/// Runs the child side; never returns. `host` holds the host binds the monitor
/// prepared before the clone (the child could not reach those paths itself).
pub fn run(spec: &ChildSpec, host: HostBinds, sock: OwnedFd) -> ! {
    let Err(msg) = setup(spec, host, &sock);
    let _ = channel::send(sock.as_fd(), msg.as_bytes(), None);
    sys::exit_now(1)
}

fn setup(spec: &ChildSpec, host: HostBinds, sock: &OwnedFd) -> Result<Infallible, String> {
    let tree = channel::recv_go(sock.as_fd())?;

    if !spec.privileged {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(|e| format!("failed to become root in the user namespace (setresgid): {e}"))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(|e| format!("failed to become root in the user namespace (setresuid): {e}"))?;
    }
    nix::unistd::setgroups(&[]).map_err(|e| format!("failed to clear supplementary groups: {e}"))?;

    // Move onto the root filesystem the monitor attached in the mount namespace we
    // still share with it, then take our own copy of that namespace: the copy is made
    // for a less privileged user namespace, so the kernel locks its mount flags (the
    // rootfs's nodev) against us, and our working directory follows into the copy.
    // The cgroup namespace is new too: the monitor has put us in our cgroup already.
    rustix::process::fchdir(&tree)
        .map_err(|e| format!("failed to enter the root filesystem {}: {e}", spec.rootfs.display()))?;
    drop(tree);
    sys::unshare_private_mounts(nix::sched::CloneFlags::CLONE_NEWCGROUP)?;
    let copy = rustix::fs::open(".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| format!("failed to open the root filesystem: {e}"))?;
    // That copy is locked to its parent mount, which pivot_root refuses to move; a
    // clone of it stacked on top is ours to pivot into, and keeps the locked flags.
    let root_fd = rustix::mount::open_tree(
        &copy,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(|e| format!("failed to clone the root filesystem mount: {e}"))?;
    rustix::mount::move_mount(
        &root_fd,
        "",
        &copy,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(|e| format!("failed to mount the root filesystem: {e}"))?;

    let old_umask = rustix::process::umask(Mode::empty());
    let mut root = Root::new(root_fd, host);
    root.apply(&spec.steps).map_err(|e| e.to_string())?;

    pivot(&root)?;
    drop(root);

    nix::unistd::sethostname(&spec.hostname)
        .map_err(|e| format!("failed to set the hostname {:?}: {e}", spec.hostname))?;
    sys::loopback_up().map_err(|e| format!("failed to bring up the loopback interface: {e}"))?;
    // The monitor moved each NIC in under a temporary name.
    for (tmp, name) in &spec.nics {
        sys::rename_link(tmp, name).map_err(|e| format!("failed to rename network interface {tmp} to {name}: {e}"))?;
        sys::link_up(name).map_err(|e| format!("failed to bring up network interface {name}: {e}"))?;
    }
    sys::drop_bounding(policy::DROPPED_CAPS)?;
    sys::reset_signals();
    console_stdio()?;
    rustix::process::umask(old_umask);

    sys::cloexec_from(3).map_err(|e| format!("failed to close inherited descriptors: {e}"))?;
    let err = sys::execve(&spec.argv, &spec.env);
    let init = spec.argv[0].to_string_lossy();
    Err(match err.raw_os_error() {
        Some(libc::ENOENT) => {
            format!("failed to execute init {init}: it does not exist in the root filesystem")
        }
        Some(libc::EACCES) => {
            format!("failed to execute init {init}: permission denied (is it executable?)")
        }
        Some(libc::ENOEXEC) => {
            format!("failed to execute init {init}: not an executable format this kernel runs")
        }
        _ => format!("failed to execute init {init}: {err}"),
    })
}

/// pivot_root(".", "."), then detach the old root that is now stacked beneath.
fn pivot(root: &Root) -> Result<(), String> {
    rustix::process::fchdir(root.fd()).map_err(|e| format!("failed to enter the root filesystem: {e}"))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("failed to pivot_root into the root filesystem: {e}"))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| format!("failed to detach the old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("failed to change to /: {e}"))?;
    Ok(())
}

/// A new session with stdio on the console (or /dev/null without one).
fn console_stdio() -> Result<(), String> {
    let _ = nix::unistd::setsid();
    let open = |p: &str| rustix::fs::open(p, OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty());
    let fd =
        open("/dev/console").or_else(|_| open("/dev/null")).map_err(|e| format!("failed to open /dev/console: {e}"))?;
    for target in 0..3 {
        sys::dup_onto(fd.as_fd(), target).map_err(|e| format!("failed to set up init's stdio: {e}"))?;
    }
    Ok(())
}
