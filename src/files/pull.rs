//! `hutch file pull NAME/PATH... DEST`: files out of a container.
//!
//! Where they go, as `incus file pull` puts them:
//! - DEST is a directory when it is one already, when there are several sources, with
//!   `-r`, or when it ends in `/`; then each source goes into it under its own name, and
//!   a DEST that does not exist yet is created (with its missing parents).
//! - Otherwise the one source is written as DEST, whose parent must exist (`-p`
//!   creates it).
//!
//! DEST `-` writes one file's contents on stdout.
//!
//! A directory needs `-r`. Symlinks are pulled as symlinks, the named source's own
//! too: a link the container controls is never followed on either side. Owners stay
//! the numbers stored in the container (container ids), modes are kept but for the
//! setuid and setgid bits, which a file of the container's never gets on the host.
//! Nothing is created before the helper has checked every source, and nothing is
//! written outside the names this plan gives (see the module comment of `files`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::helper::{Done, Flow, JobError, Tree};
use super::push::join;
use super::send::{SendError, Sender};
use super::spec::{CPath, Spec};
use super::{Error, Override, Summary, session};
use crate::base::paths::Paths;
use crate::image::progress::Progress;
use crate::rootfs::unpack::{Placement, unpack_stream};
use crate::runtime::wire::{Kind, WireError};

/// `hutch file pull`.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub sources: Vec<Spec>,
    pub dest: PathBuf,
    pub recursive: bool,
    pub create_dirs: bool,
}

/// Where a pull writes: an existing host directory, and below it the path of each
/// source's copy (its name, behind any directories still to be made).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub root: PathBuf,
    pub tops: Vec<Vec<u8>>,
}

/// What the helper does for a pull.
pub(super) struct PullJob {
    pub sources: Vec<CPath>,
    /// Each source's name in the stream.
    pub tops: Vec<Vec<u8>>,
    pub recursive: bool,
    pub name: String,
}

pub fn pull(paths: &Paths, req: &PullRequest) -> Result<Summary, Error> {
    let name = req.sources[0].name.clone();
    let action = match req.sources.as_slice() {
        [one] => format!("pull {one}"),
        _ => format!("pull from {name}"),
    };
    if let Some(other) = req.sources.iter().find(|s| s.name != name) {
        return Err(Error::Usage {
            action,
            why: format!("{other} is in another container than {}", req.sources[0]),
            hint: Some("pull from one container at a time".into()),
        });
    }
    if req.dest.as_os_str() == "-" {
        return to_stdout(paths, &action, req);
    }
    let plan = plan(&action, req)?;
    let root = rustix::fs::open(&plan.root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::Host { action: action.clone(), path: plan.root.clone(), source: e.into() })?;
    let job = PullJob {
        sources: req.sources.iter().map(|s| s.path.clone()).collect(),
        tops: plan.tops.clone(),
        recursive: req.recursive,
        name: name.clone(),
    };
    let progress = Progress::bytes("pulling", None);
    let receive = |data: File| {
        let place = |p: &[u8]| plan.tops.iter().any(|t| is_under(p, t)).then(|| p.to_vec());
        let label = format!("the files from {name}");
        let placement =
            Placement { label: Path::new(&label), dst: &plan.root, to_host: true, place: &place, max_bytes: None };
        let counted = Counting { inner: io::BufReader::with_capacity(1 << 20, data), n: 0, progress: &progress };
        unpack_stream(counted, root, &placement).map_err(|e| Error::unpack(&action, e))
    };
    let (stats, done, notices) =
        session::run(paths, &name, &action, Flow::FromHelper, |tree, data| send_tree(tree, &job, data), receive)?;
    progress.finish();
    let mut summary = Summary { entries: stats.entries, bytes: stats.bytes, notices };
    if stats.refused > 0 {
        let what = super::entries(stats.refused);
        summary.notices.push(format!("refused {what} from {name} that named something outside the destination"));
    }
    super::left_out(&mut summary.notices, done.skipped, done.vanished);
    Ok(summary)
}

/// `pull NAME/PATH -`: one file's contents on stdout, symlinks followed inside the
/// container's root (as `incus file pull` does for `-`).
fn to_stdout(paths: &Paths, action: &str, req: &PullRequest) -> Result<Summary, Error> {
    if req.sources.len() != 1 || req.recursive {
        return Err(Error::Usage {
            action: action.into(),
            why: "- (standard output) takes the contents of one file".into(),
            hint: Some("pull trees and several files into a directory".into()),
        });
    }
    let src = &req.sources[0];
    let read = |tree: &Tree, data: File| super::edit::read_job(tree, &src.path, &src.name, data);
    let copy = |mut data: File| {
        let out = &mut std::io::stdout().lock();
        let host = |source| Error::Host { action: action.into(), path: "-".into(), source };
        let bytes = io::copy(&mut data, out).map_err(host)?;
        out.flush().map_err(host)?;
        Ok(bytes)
    };
    let (bytes, _, notices) = session::run(paths, &src.name, action, Flow::FromHelper, read, copy)?;
    Ok(Summary { entries: 1, bytes, notices })
}

/// `path` is `top` or below it.
fn is_under(path: &[u8], top: &[u8]) -> bool {
    path == top || path.strip_prefix(top).is_some_and(|rest| rest.starts_with(b"/"))
}

/// Where each source goes (see the module comment). Nothing is created here.
pub(super) fn plan(action: &str, req: &PullRequest) -> Result<Plan, Error> {
    let usage =
        |why: String, hint: Option<&str>| Error::Usage { action: action.into(), why, hint: hint.map(Into::into) };
    let mut names: Vec<Vec<u8>> = Vec::new();
    for s in &req.sources {
        let Some(n) = s.path.file_name() else {
            return Err(usage(
                format!("{s} is the container's root"),
                Some("pull the directories in it, such as web/etc"),
            ));
        };
        if names.iter().any(|m| m == n.as_bytes()) {
            return Err(usage(format!("two sources are named {n}"), None));
        }
        names.push(n.as_bytes().to_vec());
    }
    let dest = &req.dest;
    let dir_mode = req.recursive || names.len() > 1 || dest.as_os_str().as_bytes().ends_with(b"/");
    let host = |path: &Path| {
        let path = path.to_path_buf();
        move |source: io::Error| Error::Host { action: action.into(), path, source }
    };
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => Ok(Plan { root: dest.clone(), tops: names }),
        Ok(_) if dir_mode => Err(usage(format!("{} is not a directory", dest.display()), None)),
        Ok(_) => Ok(Plan { root: parent(dest), tops: vec![file_name(dest, action)?] }),
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(host(dest)(e)),
        Err(_) if dir_mode => {
            let (root, missing) = existing_ancestor(dest, action)?;
            Ok(Plan { root, tops: names.iter().map(|n| join(&missing, n)).collect() })
        }
        Err(_) => {
            let name = file_name(dest, action)?;
            let dir = parent(dest);
            if dir.is_dir() {
                return Ok(Plan { root: dir, tops: vec![name] });
            }
            if !req.create_dirs {
                let why = format!("{} does not exist", dir.display());
                return Err(usage(
                    why,
                    Some("create it first, or pass -p (--create-dirs) to create missing directories"),
                ));
            }
            let (root, missing) = existing_ancestor(&dir, action)?;
            Ok(Plan { root, tops: vec![join(&missing, &name)] })
        }
    }
}

fn parent(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(p: &Path, action: &str) -> Result<Vec<u8>, Error> {
    p.file_name().map(|n| n.as_bytes().to_vec()).ok_or_else(|| Error::Usage {
        action: action.into(),
        why: format!("{} does not name a file", p.display()),
        hint: None,
    })
}

/// The nearest directory at or above `p` that exists, and the path from it to `p`.
fn existing_ancestor(p: &Path, action: &str) -> Result<(PathBuf, Vec<u8>), Error> {
    let usage = |why: String| Error::Usage { action: action.into(), why, hint: None };
    let mut missing: Vec<Vec<u8>> = Vec::new();
    let mut at = p.to_path_buf();
    let root = loop {
        let here = if at.as_os_str().is_empty() { PathBuf::from(".") } else { at.clone() };
        if std::fs::symlink_metadata(&here).is_ok() {
            break here;
        }
        match at.components().next_back() {
            Some(Component::Normal(n)) => missing.push(n.as_bytes().to_vec()),
            Some(Component::CurDir) => {}
            _ => return Err(usage(format!("{} has '..' after a directory that does not exist", p.display()))),
        }
        at = at.parent().map(Path::to_path_buf).unwrap_or_default();
    };
    if !root.is_dir() {
        return Err(usage(format!("{} is not a directory", root.display())));
    }
    missing.reverse();
    Ok((root, missing.join(&b'/')))
}

/// The helper's side: checks every source, then sends them (the stream is written
/// only once all of them are known to be there and of a kind that may be pulled).
pub(super) fn send_tree(tree: &Tree, job: &PullJob, data: File) -> Result<Done, JobError> {
    let mut found = Vec::new();
    for src in &job.sources {
        let (dir, file) = tree.parent_of(src, &job.name)?;
        let st = match rustix::fs::statat(&dir, file, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT | Errno::NOTDIR) => {
                return Err(JobError::new(Kind::Request, format!("{src} does not exist in {}", job.name)));
            }
            Err(e) => return Err(JobError::new(Kind::Storage, format!("failed to stat {src}: {e}"))),
        };
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory && !job.recursive {
            return Err(JobError::new(Kind::Request, format!("{src} is a directory in {}", job.name))
                .hint("pass -r to copy a directory tree"));
        }
        found.push((dir, file));
    }
    let failed = |e: SendError| JobError {
        broken_pipe: e.is_broken_pipe(),
        error: WireError::new(Kind::Storage, e.to_string()),
    };
    let mut s = Sender::new(io::BufWriter::with_capacity(1 << 20, data), Override::default());
    for ((dir, file), top) in found.iter().zip(&job.tops) {
        s.add(dir, file, top, job.recursive).map_err(failed)?;
    }
    let sent = s.sent;
    s.finish().map_err(failed)?.flush().map_err(|e| failed(SendError::Write(e)))?;
    Ok(Done { entries: sent.entries, bytes: sent.bytes, skipped: sent.skipped, vanished: sent.vanished, refused: 0 })
}

/// Counts the bytes read from the pipe, for the progress bar.
struct Counting<'p, R: Read> {
    inner: R,
    n: u64,
    progress: &'p Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        self.progress.set(self.n);
        Ok(n)
    }
}
