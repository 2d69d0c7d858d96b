//! Root filesystems: bringing one in (`--from-dir` copies a tree, `--from-tar`
//! unpacks an archive) and recognising its init.
//!
//! A rootfs is untrusted input: paths inside it are resolved with
//! `openat2(RESOLVE_IN_ROOT)`, so a symlink such as `sbin/init -> /usr/bin/evil` is
//! followed inside the rootfs, never on the host.

pub mod copy;
pub(crate) mod in_root;
pub(crate) mod unpack;

pub(crate) use in_root::{
    chown_in_root, exists_in_root, lstat_in_root, mkdir_in_root_owned, read_file_in_root, symlink_in_root,
};

use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use thiserror::Error;

use crate::config::{Init, Ready};

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to use {path} as a root filesystem: it does not exist")]
    Missing { path: PathBuf },
    #[error("failed to use {path} as a root filesystem: it is not a directory")]
    NotDir { path: PathBuf },
    #[error("failed to find an init in {path}: none of {tried} is an executable file")]
    NoInit { path: PathBuf, tried: String },
    #[error("failed to copy {path}: {source}")]
    Copy { path: PathBuf, source: io::Error },
    #[error("failed to unpack {archive}: {message}")]
    Unpack { archive: PathBuf, message: String },
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "failed to unpack {archive}: it needs more than the {free_mib} MiB free on {dst} (unpacked so far: {done_mib} MiB)"
    )]
    NoSpace { archive: PathBuf, dst: PathBuf, free_mib: u64, done_mib: u64 },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NoInit { .. } => Some("point --from-dir or --from-tar at a whole distribution root filesystem (with /sbin/init), or build one with debootstrap".into()),
            Error::Unpack { .. } => Some("check that the archive is a complete .tar, .tar.gz, .tar.xz or .tar.zst of a root filesystem".into()),
            Error::NoSpace { .. } => Some("free some space there (or use --root on a bigger filesystem), and check that the archive is the root filesystem you meant: one that unpacks to this much from a small file is a decompression bomb".into()),
            _ => None,
        }
    }
}

/// Where inits live, in the order they are tried (LXC's default first, then where
/// systemd-nspawn looks).
pub(crate) const INIT_CANDIDATES: &[&str] = &["/sbin/init", "/usr/lib/systemd/systemd", "/lib/systemd/systemd"];

/// How each init family is driven: matched on the file name the candidate resolves
/// to inside the rootfs. The first match wins; the last row is the default.
pub struct InitKind {
    pub file_name: Option<&'static str>,
    pub family: &'static str,
    pub halt_signal: &'static str,
    pub ready: Ready,
}

pub(crate) const INIT_KINDS: &[InitKind] = &[
    // Halts on SIGRTMIN+3 and reports READY=1 on $NOTIFY_SOCKET.
    InitKind { file_name: Some("systemd"), family: "systemd", halt_signal: "SIGRTMIN+3", ready: Ready::Notify },
    // busybox init: SIGUSR1 halts, SIGUSR2 powers off, SIGTERM reboots (LXC's busybox template).
    InitKind { file_name: Some("busybox"), family: "busybox", halt_signal: "SIGUSR1", ready: Ready::Exec },
    // OpenRC's own init: SIGUSR1 halts too.
    InitKind { file_name: Some("openrc-init"), family: "openrc", halt_signal: "SIGUSR1", ready: Ready::Exec },
    // sysvinit and others: SIGPWR (LXC's default halt signal).
    InitKind { file_name: None, family: "sysvinit", halt_signal: "SIGPWR", ready: Ready::Exec },
];

/// The init of `rootfs`: its path and how to drive it.
pub(crate) fn detect_init(rootfs: &Path) -> Result<(Init, &'static str), Error> {
    check_dir(rootfs)?;
    for cand in INIT_CANDIDATES {
        if let Some(target) = resolve_executable(rootfs, cand) {
            let file_name = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let kind = INIT_KINDS
                .iter()
                .find(|k| k.file_name.is_none_or(|f| f == file_name))
                .expect("the last row matches everything");
            return Ok((
                Init {
                    command: vec![cand.to_string()],
                    halt_signal: kind.halt_signal.parse().expect("INIT_KINDS names valid signals"),
                    ready: kind.ready,
                    stop_timeout: 30,
                },
                kind.family,
            ));
        }
    }
    Err(Error::NoInit { path: rootfs.to_path_buf(), tried: INIT_CANDIDATES.join(", ") })
}

/// Whether `path` (inside `rootfs`) is an executable regular file; returns where it
/// leads inside the rootfs after symlinks.
pub(crate) fn resolve_executable(rootfs: &Path, path: &str) -> Option<PathBuf> {
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let fd = crate::sys::openat2(
        &root,
        path.trim_start_matches('/'),
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    let is_file = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    if !is_file || st.st_mode & 0o111 == 0 {
        return None;
    }
    // Where did it lead? /proc/self/fd/N names the file on the host.
    let host = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd))).ok()?;
    let real_root = std::fs::canonicalize(rootfs).ok()?;
    Some(Path::new("/").join(host.strip_prefix(&real_root).unwrap_or(&host)))
}

/// Writes `contents` to `path` inside `rootfs` (e.g. `/etc/hostname`), resolving
/// every component inside the rootfs and replacing the file by rename, so a symlink
/// planted at the path or above it can never redirect the write to the host.
pub(crate) fn write_file(rootfs: &Path, path: &str, contents: &[u8], mode: u32) -> io::Result<()> {
    let rel = path.trim_start_matches('/');
    let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    if name.is_empty() || name == "." || name == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{path} does not name a file")));
    }
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let parent = crate::sys::openat2(
        &root,
        if dir.is_empty() { "." } else { dir },
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let tmp = format!(".{name}.hutch-{}", std::process::id());
    let fd = rustix::fs::openat(
        &parent,
        tmp.as_str(),
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode),
    )?;
    let result = (|| -> io::Result<()> {
        let mut f = std::fs::File::from(fd);
        io::Write::write_all(&mut f, contents)?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
        f.sync_all()?;
        rustix::fs::renameat(&parent, tmp.as_str(), &parent, name)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&parent, tmp.as_str(), rustix::fs::AtFlags::empty());
    }
    result
}

pub(crate) fn check_dir(path: &Path) -> Result<(), Error> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::Missing { path: path.into() }),
        Err(source) => Err(Error::Read { path: path.into(), source }),
        Ok(m) if !m.is_dir() => Err(Error::NotDir { path: path.into() }),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    #[test]
    fn every_init_kind_names_a_valid_signal() {
        for k in INIT_KINDS {
            assert!(k.halt_signal.parse::<crate::base::signal::Signal>().is_ok(), "{}", k.family);
        }
    }

    fn exe(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn systemd_is_recognised_through_its_symlink() {
        let d = tempfile::tempdir().unwrap();
        exe(&d.path().join("lib/systemd/systemd"));
        std::fs::create_dir_all(d.path().join("sbin")).unwrap();
        symlink("/lib/systemd/systemd", d.path().join("sbin/init")).unwrap();
        let (init, family) = detect_init(d.path()).unwrap();
        assert_eq!(family, "systemd");
        assert_eq!(init.command, vec!["/sbin/init"]);
        assert_eq!(init.halt_signal, "SIGRTMIN+3");
        assert_eq!(init.ready, Ready::Notify);
    }

    #[test]
    fn busybox_and_sysvinit_get_their_own_signals() {
        let d = tempfile::tempdir().unwrap();
        exe(&d.path().join("bin/busybox"));
        std::fs::create_dir_all(d.path().join("sbin")).unwrap();
        symlink("../bin/busybox", d.path().join("sbin/init")).unwrap();
        let (init, family) = detect_init(d.path()).unwrap();
        assert_eq!((family, init.halt_signal.as_str(), init.ready), ("busybox", "SIGUSR1", Ready::Exec));

        let d = tempfile::tempdir().unwrap();
        exe(&d.path().join("sbin/init"));
        let (init, family) = detect_init(d.path()).unwrap();
        assert_eq!((family, init.halt_signal.as_str()), ("sysvinit", "SIGPWR"));
    }

    #[test]
    fn a_symlink_pointing_out_of_the_rootfs_is_resolved_inside_it() {
        let d = tempfile::tempdir().unwrap();
        // /sbin/init -> /bin/sh: exists on the host, not in this rootfs.
        std::fs::create_dir_all(d.path().join("sbin")).unwrap();
        symlink("/bin/sh", d.path().join("sbin/init")).unwrap();
        let err = detect_init(d.path()).unwrap_err();
        assert!(matches!(err, Error::NoInit { .. }), "{err}");
        assert!(err.to_string().contains("/sbin/init"));
    }

    #[test]
    fn writes_stay_inside_the_rootfs() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::create_dir_all(&root).unwrap();
        // /etc -> the host's outside dir (absolute symlink), /etc/hostname -> elsewhere.
        symlink(&outside, root.join("etc")).unwrap();
        // Resolved inside the root, the absolute link leads to root/<outside path>,
        // which does not exist: the write fails instead of escaping.
        assert!(write_file(&root, "/etc/hostname", b"web\n", 0o644).is_err());
        assert!(!outside.join("hostname").exists(), "the write escaped through an absolute symlink");
        let inside = root.join(outside.strip_prefix("/").unwrap());
        std::fs::create_dir_all(&inside).unwrap();
        write_file(&root, "/etc/hostname", b"web\n", 0o644).unwrap();
        assert!(!outside.join("hostname").exists(), "the write escaped through an absolute symlink");
        assert_eq!(std::fs::read(inside.join("hostname")).unwrap(), b"web\n");

        let root2 = d.path().join("root2");
        std::fs::create_dir_all(root2.join("etc")).unwrap();
        std::fs::write(outside.join("victim"), b"keep").unwrap();
        symlink(outside.join("victim"), root2.join("etc/hostname")).unwrap();
        write_file(&root2, "etc/hostname", b"web\n", 0o644).unwrap();
        assert_eq!(std::fs::read(outside.join("victim")).unwrap(), b"keep");
        assert_eq!(std::fs::read(root2.join("etc/hostname")).unwrap(), b"web\n");
        assert!(!std::fs::symlink_metadata(root2.join("etc/hostname")).unwrap().file_type().is_symlink());
    }

    #[test]
    fn non_executable_or_missing_inits_are_refused() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("sbin")).unwrap();
        std::fs::write(d.path().join("sbin/init"), b"").unwrap();
        assert!(matches!(detect_init(d.path()), Err(Error::NoInit { .. })));
        assert!(matches!(detect_init(&d.path().join("nope")), Err(Error::Missing { .. })));
        assert!(matches!(detect_init(&d.path().join("sbin/init")), Err(Error::NotDir { .. })));
    }
}
