//! `hutch file push SRC... NAME/PATH`: host files into a container.
//!
//! Where they go, as `incus file push` puts them (plus `cp`'s habit for a directory
//! that exists):
//! - PATH names a directory when there are several sources, with `-r`, or when it ends
//!   in `/`. It must exist (`-p` creates it and its parents), and each source goes into
//!   it under its own name.
//! - Otherwise, with one source: into PATH if it is an existing directory, else as
//!   PATH itself, whose parent must exist (or `-p`). What is at PATH is replaced, never
//!   followed if it is a symlink.
//!
//! Without `-r` a source must be a file; a symlink to one is followed (the host's
//! links are the user's own, and `cp` does the same). With `-r` a directory goes with
//! its whole tree, and symlinks are sent as symlinks, the source's own too.
//!
//! Owners go as the numbers the host has (in the container they are container ids);
//! `--uid` and `--gid` replace them for every entry, with `-r` too (Incus refuses them
//! there; a tree owned by one of the container's users is a common need), `--mode` the
//! mode of single files only, so it is refused with `-r`.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags};

use super::helper::{Done, Flow, JobError, Tree};
use super::send::Sender;
use super::spec::{CPath, Spec};
use super::{Error, Override, Summary, session};
use crate::base::paths::Paths;
use crate::image::progress::Progress;
use crate::rootfs::unpack::{Placement, unpack_stream};
use crate::runtime::wire::Kind;

/// `hutch file push`.
#[derive(Debug, Clone)]
pub struct PushRequest {
    pub sources: Vec<PathBuf>,
    pub target: Spec,
    pub recursive: bool,
    pub create_dirs: bool,
    pub owner: Override,
}

/// A host source, opened: its directory, its name there, and its name in the stream.
struct Source {
    dir: OwnedFd,
    name: OsString,
    top: Vec<u8>,
}

/// What the helper does for a push.
pub(super) struct PushJob {
    pub target: CPath,
    /// PATH names a directory (several sources, `-r`, a trailing `/`).
    pub into_dir: bool,
    pub create_dirs: bool,
    /// The single source's name in the stream, renamed to PATH when PATH is not a directory.
    pub top: Vec<u8>,
    /// The container's name, for messages.
    pub name: String,
}

pub fn push(paths: &Paths, req: &PushRequest) -> Result<Summary, Error> {
    let action = format!("push to {}", req.target);
    if req.recursive && req.owner.mode.is_some() {
        return Err(Error::Usage {
            action,
            why: "--mode sets the mode of single files; with -r every entry keeps its own".into(),
            hint: Some("push the tree without --mode, or the files one by one with it".into()),
        });
    }
    let sources = open_sources(&action, req)?;
    let into_dir = req.recursive || sources.len() > 1 || req.target.dir;
    let job = PushJob {
        target: req.target.path.clone(),
        into_dir,
        create_dirs: req.create_dirs,
        top: sources[0].top.clone(),
        name: req.target.name.clone(),
    };
    let progress = Progress::bytes("pushing", None);
    let send = |data: File| -> Result<super::send::Sent, Error> {
        let err = |source| Error::Send { action: action.clone(), source };
        let mut s = Sender::new(
            Counting { inner: io::BufWriter::with_capacity(1 << 20, data), n: 0, progress: &progress },
            req.owner,
        );
        for src in &sources {
            s.add(&src.dir, &src.name, &src.top, req.recursive).map_err(err)?;
        }
        let sent = s.sent;
        s.finish().map_err(err)?.inner.flush().map_err(|e| err(super::send::SendError::Write(e)))?;
        Ok(sent)
    };
    let (sent, done, notices) =
        session::run(paths, &req.target.name, &action, Flow::ToHelper, |tree, data| receive(tree, &job, data), send)?;
    progress.finish();
    let mut summary = Summary { entries: sent.entries, bytes: sent.bytes, notices };
    super::left_out(&mut summary.notices, sent.skipped, sent.vanished);
    if done.refused + done.skipped > 0 {
        let what = super::entries(done.refused + done.skipped);
        summary.notices.push(format!("{what} could not be written in the container"));
    }
    Ok(summary)
}

/// Opens every source before anything is sent: a missing one, or a directory without
/// `-r`, fails the push with nothing changed.
fn open_sources(action: &str, req: &PushRequest) -> Result<Vec<Source>, Error> {
    let mut out: Vec<Source> = Vec::new();
    for src in &req.sources {
        let host = |source: io::Error| Error::Host { action: action.into(), path: src.clone(), source };
        let Some((dir, name)) = split_source(src, !req.recursive).map_err(host)? else {
            return Err(usage(action, format!("{} is the host's root directory", src.display())));
        };
        let top = src.file_name().unwrap_or(&name).as_bytes().to_vec();
        let dir = rustix::fs::open(&dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| host(e.into()))?;
        let st = rustix::fs::statat(&dir, name.as_os_str(), rustix::fs::AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| host(e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory if !req.recursive => {
                return Err(Error::Usage {
                    action: action.into(),
                    why: format!("{} is a directory", src.display()),
                    hint: Some("pass -r to copy a directory tree".into()),
                });
            }
            FileType::RegularFile | FileType::Directory | FileType::Symlink => {}
            _ => return Err(usage(action, format!("{} is not a file, directory or symlink", src.display()))),
        }
        if out.iter().any(|o| o.top == top) {
            return Err(usage(action, format!("two sources are named {}", String::from_utf8_lossy(&top))));
        }
        out.push(Source { dir, name, top });
    }
    Ok(out)
}

/// A source's directory and its name there: the path as given (its own final symlink
/// kept), or with `follow` the file it leads to. `None` for the root directory.
fn split_source(src: &Path, follow: bool) -> io::Result<Option<(PathBuf, OsString)>> {
    let path = if follow || src.file_name().is_none() { std::fs::canonicalize(src)? } else { src.to_path_buf() };
    Ok(match (path.parent(), path.file_name()) {
        (Some(d), Some(n)) if d.as_os_str().is_empty() => Some((PathBuf::from("."), n.to_os_string())),
        (Some(d), Some(n)) => Some((d.to_path_buf(), n.to_os_string())),
        _ => None,
    })
}

fn usage(action: &str, why: String) -> Error {
    Error::Usage { action: action.into(), why, hint: None }
}

/// Counts the bytes written into the pipe, for the progress bar.
struct Counting<'p, W: Write> {
    inner: W,
    n: u64,
    progress: &'p Progress,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        self.progress.set(self.n);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The helper's side: checks where the entries go, then unpacks the stream there
/// (every entry's directory resolved inside the container's root).
pub(super) fn receive(tree: &Tree, job: &PushJob, data: File) -> Result<Done, JobError> {
    let into = if job.into_dir {
        tree.require_dir(&job.target, job.create_dirs, &job.name)?;
        true
    } else {
        tree.is_dir(&job.target)
    };
    if !into {
        let (parent, _) = job.target.split().expect("the root is a directory");
        tree.require_dir(&parent, job.create_dirs, &job.name)?;
    }
    let target = job.target.rel().as_bytes();
    let place = |p: &[u8]| if into { Some(join(target, p)) } else { rename(p, &job.top, target) };
    let root = tree.root.try_clone().map_err(|e| JobError::new(Kind::Storage, e.to_string()))?;
    let label = format!("the files for {}", job.name);
    let placement = Placement {
        label: Path::new(&label),
        dst: Path::new(&job.name),
        to_host: false,
        place: &place,
        max_bytes: None,
    };
    let stats = unpack_stream(data, root, &placement).map_err(|e| {
        let hint = match &e {
            crate::rootfs::Error::NoSpace { .. } => Some("free some space in the container's filesystem".into()),
            _ => None,
        };
        let detail = match e {
            // "etc/x: create: ...": the path from the container's root, as the user named it.
            crate::rootfs::Error::Unpack { message, .. }
                if !message.starts_with("corrupt") && !message.starts_with("the archive") =>
            {
                format!("/{message}")
            }
            crate::rootfs::Error::Unpack { message, .. } => message,
            other => other.to_string(),
        };
        JobError {
            error: crate::runtime::wire::WireError::new(Kind::Storage, detail).with_hint(hint),
            broken_pipe: false,
        }
    })?;
    Ok(Done {
        entries: stats.entries,
        bytes: stats.bytes,
        skipped: stats.devices_skipped,
        refused: stats.refused,
        vanished: 0,
    })
}

/// `dir/path` (`path` alone when `dir` is the root).
pub(super) fn join(dir: &[u8], path: &[u8]) -> Vec<u8> {
    if dir.is_empty() { path.to_vec() } else { [dir, b"/", path].concat() }
}

/// `top` and what is below it, renamed to `to`; anything else is refused.
pub(super) fn rename(path: &[u8], top: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if path == top {
        return Some(to.to_vec());
    }
    let rest = path.strip_prefix(top)?.strip_prefix(b"/")?;
    Some(join(to, rest))
}
