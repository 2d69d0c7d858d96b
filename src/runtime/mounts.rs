//! Shared folders (`[[mounts]]`) at the kernel: the host source opened once and
//! checked on that descriptor, a detached bind of it (idmapped to the container's user
//! namespace when `shift`), flags the container cannot undo, and the attach at a
//! target resolved inside the container's root.
//!
//! - **The source** is opened once (`openat2`, symlinks followed once, magic links
//!   refused); every check (a directory or regular file, not `/`, `/proc`, `/sys`,
//!   `/dev`, not at, in or above hutch's state, not the hutch binary) is made on that
//!   descriptor, and the mount is cloned from it: swapping a path after the check
//!   changes nothing.
//! - **Locked flags.** A bind made by host root and moved in by container root could be
//!   remounted read-write by container root. The kernel locks mount flags only when it
//!   copies a mount namespace into a less privileged user namespace; so a throwaway
//!   helper attaches the prepared binds on a private tmpfs, joins the container's user
//!   namespace, unshares its mount namespace (the copies come out with `ro`, `nosuid`
//!   and `nodev` locked), and clones each copy again (a clone keeps the locks, and is
//!   not itself locked in place, so `hutch mount rm` can detach it later).
//! - **The target** is resolved from the container's root with `RESOLVE_IN_ROOT`: a
//!   symlink in the rootfs (`/data -> /`) is followed inside it, never to the host.
//!   Missing targets are created (as container root) per `create`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use thiserror::Error;

use crate::config::Mount;
use crate::config::mounts::Create;
use crate::sys::{MOUNT_ATTR_IDMAP, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY};

pub use crate::config::mounts::MAX_MOUNTS;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to share {} at {target}: {} does not exist", source_path.display(), source_path.display())]
    Missing { source_path: PathBuf, target: String },
    #[error("failed to share {} at {target}: {reason}", source_path.display())]
    Refused { source_path: PathBuf, target: String, reason: String },
    #[error("failed to share {} at {target}: the filesystem of {} cannot be idmapped ({source})", source_path.display(), source_path.display())]
    NoIdmap { source_path: PathBuf, target: String, source: io::Error },
    #[error("failed to share {} at {target}: {action}: {source}", source_path.display())]
    Step { source_path: PathBuf, target: String, action: &'static str, source: io::Error },
    #[error("failed to mount a shared folder at {target}: {target} does not exist in the container")]
    NoTarget { target: String },
    #[error("failed to mount a shared folder at {target}: it is {found} in the container, and the source is {wanted}")]
    WrongTarget { target: String, found: &'static str, wanted: &'static str },
    #[error("failed to {action} {target} in the container: {source}")]
    Target { action: &'static str, target: String, source: io::Error },
    #[error(
        "failed to mount a shared folder at {target}: a symlink on the way leads to a path the container does not have"
    )]
    Dangling { target: String },
    #[error("failed to mount a shared folder at {target}: it resolves to the container's root directory")]
    RootTarget { target: String },
    #[error("failed to lock the mount flags of the shared folders: {source}")]
    Lock { source: io::Error },
    #[error("failed to {action}: {source}")]
    Join { action: &'static str, source: io::Error },
    #[error(transparent)]
    Sys(#[from] crate::sys::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Missing { .. } => {
                Some("create it, or mark the mount optional (`optional = true` in config.toml)".into())
            }
            Error::NoIdmap { .. } => Some(
                "share it without shifting (`hutch mount add ... --no-shift`, or `shift = false`): files then keep \
                 their host ids, seen through the container's id map"
                    .into(),
            ),
            Error::NoTarget { .. } => Some("create it inside, or let hutch create it (`create = \"dir\"`)".into()),
            _ => None,
        }
    }
}

/// A host bind ready to attach: a detached mount of the checked source.
#[derive(Debug)]
pub struct Prepared {
    pub source: PathBuf,
    pub target: String,
    pub create: Create,
    pub dir: bool,
    pub readonly: bool,
    pub shift: bool,
    pub tree: OwnedFd,
}

/// Identities (device, inode) of what may never be shared.
pub struct Refusals {
    exact: Vec<((u64, u64), String)>,
    /// hutch's state and runtime roots: a source at, inside or above one is refused.
    roots: Vec<((u64, u64), PathBuf)>,
    /// Every directory above a root, with the root it leads to.
    above: Vec<((u64, u64), PathBuf)>,
}

fn id_of(st: &rustix::fs::Stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

impl Refusals {
    /// For this tree (`state`, `run`), the default tree and the running hutch binaries.
    pub fn new(state: &Path, run: &Path) -> Refusals {
        let mut exact = Vec::new();
        for (p, why) in [
            ("/", "it is the host's root directory"),
            ("/proc", "it is a kernel filesystem"),
            ("/sys", "it is a kernel filesystem"),
            ("/dev", "it holds the host's devices"),
        ] {
            if let Ok(st) = rustix::fs::stat(p) {
                exact.push((id_of(&st), why.to_string()));
            }
        }
        if let Ok(exe) = std::env::current_exe() {
            for bin in [exe.clone(), exe.with_file_name("hutch"), exe.with_file_name("hutch-monitor")] {
                if let Ok(st) = rustix::fs::stat(&bin) {
                    exact.push((id_of(&st), "it is the hutch binary".to_string()));
                }
            }
        }
        let mut roots = Vec::new();
        let mut above = Vec::new();
        let defaults = [Path::new(crate::base::paths::DEFAULT_STATE), Path::new(crate::base::paths::DEFAULT_RUN)];
        for root in [state, run].into_iter().chain(defaults) {
            let Ok(st) = rustix::fs::stat(root) else { continue };
            roots.push((id_of(&st), root.to_path_buf()));
            for dir in root.ancestors().skip(1) {
                if let Ok(st) = rustix::fs::stat(dir) {
                    above.push((id_of(&st), root.to_path_buf()));
                }
            }
        }
        Refusals { exact, roots, above }
    }

    /// Why `fd` (an opened source) may not be shared, if it may not.
    fn reason(&self, fd: &OwnedFd, st: &rustix::fs::Stat) -> Option<String> {
        let id = id_of(st);
        if let Some((_, why)) = self.exact.iter().find(|(i, _)| *i == id) {
            return Some(why.clone());
        }
        if let Some((_, root)) = self.roots.iter().find(|(i, _)| *i == id) {
            return Some(format!("it is hutch's state ({})", root.display()));
        }
        if let Some((_, root)) = self.above.iter().find(|(i, _)| *i == id) {
            return Some(format!("it contains hutch's state ({})", root.display()));
        }
        // At or inside a root: walk up from the source (from its directory's parent
        // chain; a file's own directory is found through /proc/self/fd).
        let mut dir = if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
            rustix::fs::openat(fd, ".", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()
        } else {
            let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
            rustix::fs::open(link.parent()?, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()
        };
        let mut last = None;
        while let Some(d) = dir {
            let st = rustix::fs::fstat(&d).ok()?;
            if let Some((_, root)) = self.roots.iter().find(|(i, _)| *i == id_of(&st)) {
                return Some(format!("it is inside hutch's state ({})", root.display()));
            }
            if last == Some(id_of(&st)) {
                break; // `..` of the root is the root
            }
            last = Some(id_of(&st));
            dir = rustix::fs::openat(&d, "..", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok();
        }
        None
    }
}

/// Opens and checks every source of `mounts` and makes its detached bind (flags are
/// set later, by `set_flags`, once the container's user namespace exists). A missing
/// optional source is left out and returned in the second list.
pub fn prepare(mounts: &[Mount], refusals: &Refusals) -> Result<(Vec<Prepared>, Vec<Mount>), Error> {
    let (mut ready, mut skipped) = (Vec::new(), Vec::new());
    for m in mounts {
        match prepare_one(m, refusals) {
            Ok(p) => ready.push(p),
            Err(Error::Missing { .. }) if m.optional => skipped.push(m.clone()),
            Err(e) => return Err(e),
        }
    }
    Ok((ready, skipped))
}

pub fn prepare_one(m: &Mount, refusals: &Refusals) -> Result<Prepared, Error> {
    prepare_kind(m, refusals, None)
}

/// A bind of the Unix socket `m.source`, which `owner` must own (a dev box's SSH
/// agent): sockets are not shared folders, and only this path makes their binds.
pub fn prepare_socket(m: &Mount, refusals: &Refusals, owner: u32) -> Result<Prepared, Error> {
    prepare_kind(m, refusals, Some(owner))
}

fn prepare_kind(m: &Mount, refusals: &Refusals, socket_of: Option<u32>) -> Result<Prepared, Error> {
    let target = m.target();
    let (source_path, t) = (m.source.clone(), target.clone());
    let step = |action: &'static str| {
        let (source_path, target) = (source_path.clone(), t.clone());
        move |e: rustix::io::Errno| Error::Step { source_path, target, action, source: e.into() }
    };
    let fd = match crate::sys::openat2(
        rustix::fs::CWD,
        m.source.as_path(),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_MAGICLINKS,
    ) {
        Err(rustix::io::Errno::NOENT) => return Err(Error::Missing { source_path, target }),
        other => other.map_err(step("open the source"))?,
    };
    let st = rustix::fs::fstat(&fd).map_err(step("inspect the source"))?;
    let kind = FileType::from_raw_mode(st.st_mode);
    let refused = |reason: String| Error::Refused { source_path: m.source.clone(), target: target.clone(), reason };
    match socket_of {
        None if kind != FileType::Directory && kind != FileType::RegularFile => {
            return Err(refused("only directories and regular files can be shared".into()));
        }
        Some(_) if kind != FileType::Socket => return Err(refused("it is not a Unix socket".into())),
        Some(uid) if st.st_uid != uid => return Err(refused(format!("it is not owned by uid {uid}"))),
        _ => {}
    }
    if let Some(reason) = refusals.reason(&fd, &st) {
        return Err(refused(reason));
    }
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_EMPTY_PATH;
    let tree = rustix::mount::open_tree(&fd, "", flags).map_err(step("clone the source"))?;
    let dir = kind == FileType::Directory;
    let create = m.create.unwrap_or(if dir { Create::Dir } else { Create::File });
    Ok(Prepared { source: m.source.clone(), target, create, dir, readonly: m.readonly, shift: m.shift, tree })
}

/// Sets the bind's flags: always `nosuid` and `nodev`, `ro` when read-only, and the
/// id mapping of `userns` when shifted (unprivileged containers).
pub fn set_flags(p: &Prepared, userns: Option<BorrowedFd<'_>>) -> Result<(), Error> {
    let mut attrs = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if p.readonly {
        attrs |= MOUNT_ATTR_RDONLY;
    }
    let userns = userns.filter(|_| p.shift);
    if userns.is_some() {
        attrs |= MOUNT_ATTR_IDMAP;
    }
    crate::sys::mount_setattr(p.tree.as_fd(), false, attrs, 0, userns).map_err(|e| {
        let (source_path, target) = (p.source.clone(), p.target.clone());
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::EPERM) if userns.is_some() => {
                Error::NoIdmap { source_path, target, source: e }
            }
            _ => Error::Step { source_path, target, action: "set the mount flags", source: e },
        }
    })
}

/// The binds of `prepared` with their flags locked against the container's user
/// namespace `userns`, made in a forked helper (see the module comment). `scratch` is
/// a directory the helper may mount a private tmpfs on.
pub fn locked_clones(prepared: &[Prepared], userns: BorrowedFd<'_>, scratch: &Path) -> Result<Vec<OwnedFd>, Error> {
    use crate::runtime::channel;
    let lock = |source: io::Error| Error::Lock { source };
    let (ours, theirs) = channel::pair().map_err(lock)?;
    match crate::sys::fork_single("lock the shared folders' mount flags").map_err(|e| lock(io::Error::other(e)))? {
        nix::unistd::ForkResult::Child => {
            drop(ours);
            let sent = match lock_flags(prepared, userns, scratch) {
                Ok(fds) => {
                    let fds: Vec<BorrowedFd> = fds.iter().map(|f| f.as_fd()).collect();
                    channel::send_fds(theirs.as_fd(), b"OK", &fds)
                }
                Err(e) => channel::send_fds(theirs.as_fd(), e.to_string().as_bytes(), &[]),
            };
            crate::sys::exit_now(i32::from(sent.is_err()))
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(theirs);
            let got = channel::recv_fds(ours.as_fd());
            let _ = nix::sys::wait::waitpid(child, None);
            match got.map_err(lock)? {
                Some((data, fds)) if data == b"OK" && fds.len() == prepared.len() => Ok(fds),
                Some((data, _)) => Err(lock(io::Error::other(String::from_utf8_lossy(&data).into_owned()))),
                None => Err(lock(io::Error::other("the helper exited without an answer"))),
            }
        }
    }
}

/// In a throwaway process only (it changes this process's namespaces for good): the
/// binds of `prepared` cloned again with their flags locked against the user namespace
/// `userns`. `scratch` is any directory to mount a private tmpfs on.
pub(crate) fn lock_flags(prepared: &[Prepared], userns: BorrowedFd<'_>, scratch: &Path) -> io::Result<Vec<OwnedFd>> {
    crate::sys::unshare_private_mounts(nix::sched::CloneFlags::empty()).map_err(io::Error::other)?;
    let tmpfs = rustix::mount::fsopen("tmpfs", rustix::mount::FsOpenFlags::FSOPEN_CLOEXEC)?;
    rustix::mount::fsconfig_create(&tmpfs)?;
    let tmpfs = rustix::mount::fsmount(
        &tmpfs,
        rustix::mount::FsMountFlags::FSMOUNT_CLOEXEC,
        rustix::mount::MountAttrFlags::empty(),
    )?;
    rustix::mount::move_mount(&tmpfs, "", rustix::fs::CWD, scratch, MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    let here = rustix::fs::open(scratch, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    for (i, p) in prepared.iter().enumerate() {
        let name = i.to_string();
        if p.dir {
            rustix::fs::mkdirat(&here, name.as_str(), Mode::from_raw_mode(0o700))?;
        } else {
            rustix::fs::openat(&here, name.as_str(), OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
        }
        rustix::mount::move_mount(&p.tree, "", &here, name.as_str(), MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH)?;
    }
    nix::sched::setns(userns, nix::sched::CloneFlags::CLONE_NEWUSER)?;
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    // The working directory moved into the copy; clone each (locked) copy from there.
    let mut out = Vec::with_capacity(prepared.len());
    rustix::process::chdir(scratch)?;
    for i in 0..prepared.len() {
        let name = i.to_string();
        let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        out.push(rustix::mount::open_tree(rustix::fs::CWD, name.as_str(), flags)?);
    }
    Ok(out)
}

fn kind_name(dir: bool) -> &'static str {
    if dir { "a directory" } else { "a file" }
}

/// Attaches `tree` at `target` below `root` (the container's root), creating the
/// target per `create` as the calling user (container root).
pub fn attach(
    root: BorrowedFd<'_>,
    target: &str,
    create: Create,
    dir: bool,
    tree: BorrowedFd<'_>,
) -> Result<(), Error> {
    let err =
        |action: &'static str| move |e: io::Error| Error::Target { action, target: target.to_string(), source: e };
    let at = match resolve(root, target) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            if create == Create::None {
                return Err(Error::NoTarget { target: target.to_string() });
            }
            match make_target(root, target, create == Create::Dir) {
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    return Err(Error::Dangling { target: target.to_string() });
                }
                other => other.map_err(err("create"))?,
            }
        }
        Err(e) => return Err(err("resolve")(e)),
    };
    let st = rustix::fs::fstat(&at).map_err(|e| err("inspect")(e.into()))?;
    let root_st = rustix::fs::fstat(root).map_err(|e| err("inspect")(e.into()))?;
    if id_of(&st) == id_of(&root_st) {
        return Err(Error::RootTarget { target: target.to_string() });
    }
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    if is_dir != dir {
        return Err(Error::WrongTarget {
            target: target.to_string(),
            found: kind_name(is_dir),
            wanted: kind_name(dir),
        });
    }
    let flags = MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH;
    rustix::mount::move_mount(tree, "", &at, "", flags).map_err(|e| err("mount on")(e.into()))
}

/// Detaches the mount at `target` below `root` (lazily, as `umount -l`).
pub fn detach(root: BorrowedFd<'_>, target: &str) -> Result<(), Error> {
    let err =
        |action: &'static str| move |e: io::Error| Error::Target { action, target: target.to_string(), source: e };
    let at = resolve(root, target).map_err(err("resolve"))?;
    rustix::process::fchdir(&at).map_err(|e| err("enter")(e.into()))?;
    let r = nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(|e| err("unmount")(e.into()));
    let _ = rustix::process::fchdir(root);
    r
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

fn resolve(root: BorrowedFd<'_>, target: &str) -> io::Result<OwnedFd> {
    let rel = target.trim_start_matches('/');
    Ok(crate::sys::openat2(root, rel, OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT)?)
}

/// Creates the missing components of `target` (directories; the last one a directory
/// or an empty file), each in its parent resolved inside the root.
fn make_target(root: BorrowedFd<'_>, target: &str, dir: bool) -> io::Result<OwnedFd> {
    let comps: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
    for i in 0..comps.len() {
        let path = comps[..=i].join("/");
        match crate::sys::openat2(root, path.as_str(), OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), IN_ROOT) {
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
        let parent = comps[..i].join("/");
        let parent = if parent.is_empty() { ".".to_string() } else { parent };
        let pfd = crate::sys::openat2(
            root,
            parent.as_str(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )?;
        let last = i + 1 == comps.len();
        let made = if last && !dir {
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            rustix::fs::openat(&pfd, comps[i], flags, Mode::from_raw_mode(0o644)).map(drop)
        } else {
            rustix::fs::mkdirat(&pfd, comps[i], Mode::from_raw_mode(0o755))
        };
        match made {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    resolve(root, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_optional_sources_are_skipped_and_others_fail() {
        let tmp = tempfile::tempdir().unwrap();
        let gone = tmp.path().join("gone");
        let refusals = Refusals::new(&tmp.path().join("state"), &tmp.path().join("run"));
        let mut m = Mount::new(&gone, "/data");
        let e = prepare(std::slice::from_ref(&m), &refusals).unwrap_err();
        assert!(matches!(e, Error::Missing { .. }), "{e}");
        assert!(e.hint().unwrap().contains("optional"));
        m.optional = true;
        let (ready, skipped) = prepare(&[m], &refusals).unwrap();
        assert!(ready.is_empty());
        assert_eq!(skipped.len(), 1);
    }

    #[test]
    fn the_host_root_state_and_binary_are_refused_on_the_opened_source() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir_all(state.join("containers/web")).unwrap();
        std::fs::write(tmp.path().join("file"), "x").unwrap();
        // A symlink to / is followed once, and what it opened is refused.
        std::os::unix::fs::symlink("/", tmp.path().join("to-root")).unwrap();
        let refusals = Refusals::new(&state, &tmp.path().join("run"));
        let open = |p: &Path| {
            let fd = rustix::fs::open(p, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
            let st = rustix::fs::fstat(&fd).unwrap();
            refusals.reason(&fd, &st)
        };
        assert_eq!(open(&tmp.path().join("to-root")).unwrap(), "it is the host's root directory");
        assert!(open(Path::new("/proc")).unwrap().contains("kernel filesystem"));
        assert!(open(&state).unwrap().contains("it is hutch's state"));
        assert!(open(&state.join("containers/web")).unwrap().contains("inside hutch's state"));
        assert!(open(tmp.path()).unwrap().contains("contains hutch's state"));
        assert!(open(&std::env::current_exe().unwrap()).unwrap().contains("hutch binary"));
        assert_eq!(open(&tmp.path().join("file")), None);
    }

    #[test]
    fn devices_and_sockets_are_not_shared() {
        let tmp = tempfile::tempdir().unwrap();
        let refusals = Refusals::new(&tmp.path().join("state"), &tmp.path().join("run"));
        let e = prepare_one(&Mount::new("/dev/null", "/null"), &refusals).unwrap_err();
        assert!(e.to_string().contains("only directories and regular files"), "{e}");
    }
}
