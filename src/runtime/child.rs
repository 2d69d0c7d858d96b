//! The container's first process, from clone to exec of init. It runs in the new
//! user, pid, UTS, IPC and network namespaces, waits for the monitor's go-ahead, then,
//! in this order:
//!
//! 1. becomes root of its user namespace (the monitor has written the id maps);
//! 2. moves onto the root filesystem the monitor attached, and unshares its mount
//!    namespace (so the rootfs's `nodev` is locked) and its cgroup namespace (the
//!    monitor has already put it in its cgroup, which becomes the namespace root);
//! 3. makes every mount private, so nothing below propagates anywhere;
//! 4. applies the mount plan inside the root filesystem, then attaches the shared
//!    folders (their binds come with the go-ahead, flags locked);
//! 5. pivot_roots into it and detaches the old root (never chroot);
//! 6. sets the hostname, brings up loopback, drops bounding capabilities, resets
//!    signals;
//! 7. puts stdio on /dev/console, marks every other fd close-on-exec, and execs init
//!    with a clean environment.
//!
//! Any failure is sent to the monitor as a `WireError` and the process exits.

use std::convert::Infallible;
use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};

use super::apply::{HostBinds, Root};
use super::mounts::{self, Prepared};
use super::plan::Step;
use super::{Error, InitFailure, channel, policy};
use crate::monitor::timeline::{self, Stage};
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
    /// Shared folders (`[[mounts]]`), in config order.
    pub mounts: Vec<crate::config::Mount>,
    /// hutch's state and runtime roots (never shared into a container).
    pub state_roots: [std::path::PathBuf; 2],
}

/// Runs the child side; never returns. `host` holds the host binds the monitor
/// prepared before the clone (the child could not reach those paths itself); the
/// shared folders' binds come with `GO`, in the order of `shares`.
pub fn run(spec: &ChildSpec, host: HostBinds, shares: &[Prepared], sock: OwnedFd) -> ! {
    let Err(e) = setup(spec, host, shares, &sock);
    let _ = channel::send(sock.as_fd(), &e.to_wire().to_json(), None);
    sys::exit_now(1)
}

fn setup(spec: &ChildSpec, host: HostBinds, shares: &[Prepared], sock: &OwnedFd) -> Result<Infallible, Error> {
    let (tree, share_trees) = channel::recv_go(sock.as_fd())?;
    if share_trees.len() != shares.len() {
        return Err(Error::Handshake("the start handshake did not carry every shared folder"));
    }

    if !spec.privileged {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .map_err(Error::step("become root in the user namespace (setresgid)"))?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .map_err(Error::step("become root in the user namespace (setresuid)"))?;
    }
    nix::unistd::setgroups(&[]).map_err(Error::step("clear supplementary groups"))?;

    // Move onto the root filesystem the monitor attached in the mount namespace we
    // still share with it, then take our own copy of that namespace: the copy is made
    // for a less privileged user namespace, so the kernel locks its mount flags (the
    // rootfs's nodev) against us, and our working directory follows into the copy.
    // The cgroup namespace is new too: the monitor has put us in our cgroup already.
    rustix::process::fchdir(&tree)
        .map_err(Error::step(format!("enter the root filesystem {}", spec.rootfs.display())))?;
    drop(tree);
    sys::unshare_private_mounts(nix::sched::CloneFlags::CLONE_NEWCGROUP)?;
    let copy = rustix::fs::open(".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(Error::step("open the root filesystem"))?;
    // That copy is locked to its parent mount, which pivot_root refuses to move; a
    // clone of it stacked on top is ours to pivot into, and keeps the locked flags.
    let root_fd = rustix::mount::open_tree(
        &copy,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .map_err(Error::step("clone the root filesystem mount"))?;
    rustix::mount::move_mount(
        &root_fd,
        "",
        &copy,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .map_err(Error::step("mount the root filesystem"))?;

    let old_umask = rustix::process::umask(Mode::empty());
    let mut root = Root::new(root_fd, host);
    root.apply(&spec.steps)?;
    for (share, tree) in shares.iter().zip(&share_trees) {
        mounts::attach(root.fd(), &share.target, share.create, share.dir, tree.as_fd())?;
    }
    drop(share_trees);
    timeline::child_mark(Stage::MountsDone);

    pivot(&root)?;
    timeline::child_mark(Stage::PivotRoot);
    drop(root);

    nix::unistd::sethostname(&spec.hostname).map_err(Error::step(format!("set the hostname {:?}", spec.hostname)))?;
    sys::loopback_up().map_err(Error::step("bring up the loopback interface"))?;
    // The monitor moved each NIC in under a temporary name.
    for (tmp, name) in &spec.nics {
        sys::rename_link(tmp, name).map_err(Error::step(format!("rename network interface {tmp} to {name}")))?;
        sys::link_up(name).map_err(Error::step(format!("bring up network interface {name}")))?;
    }
    sys::drop_bounding(policy::DROPPED_CAPS)?;
    sys::reset_signals();
    console_stdio()?;
    rustix::process::umask(old_umask);

    sys::cloexec_from(3).map_err(Error::step("close inherited descriptors"))?;
    timeline::child_mark(Stage::InitExec);
    let err = sys::execve(&spec.argv, &spec.env);
    Err(Error::Init { path: spec.argv[0].to_string_lossy().into_owned(), reason: InitFailure::of(err) })
}

/// pivot_root(".", "."), then detach the old root that is now stacked beneath.
fn pivot(root: &Root) -> Result<(), Error> {
    rustix::process::fchdir(root.fd()).map_err(Error::step("enter the root filesystem"))?;
    nix::unistd::pivot_root(".", ".").map_err(Error::step("pivot_root into the root filesystem"))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(Error::step("detach the old root"))?;
    std::env::set_current_dir("/").map_err(Error::step("change to /"))?;
    Ok(())
}

/// A new session with stdio on the console (or /dev/null without one).
fn console_stdio() -> Result<(), Error> {
    let _ = nix::unistd::setsid();
    let open = |p: &str| rustix::fs::open(p, OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty());
    let fd = open("/dev/console").or_else(|_| open("/dev/null")).map_err(Error::step("open /dev/console"))?;
    for target in 0..3 {
        sys::dup_onto(fd.as_fd(), target).map_err(Error::step("set up init's stdio"))?;
    }
    Ok(())
}
