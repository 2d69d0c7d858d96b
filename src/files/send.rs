//! The sending side of a copy: files and trees written as a tar stream. The CLI sends
//! the host's files this way for a push, and the helper sends the container's for a
//! pull, so both walk the same way: through directory descriptors, each entry looked
//! at with `statat(AT_SYMLINK_NOFOLLOW)` in its already-open directory and opened with
//! `O_NOFOLLOW`, then checked to be the inode that was looked at. A symlink is sent as
//! a symlink and never followed, and a directory swapped for a symlink mid-walk is
//! never entered, so a walk cannot leave the tree it started in. Files are opened
//! `O_NONBLOCK | O_NOCTTY` and sent only if they are regular files (a FIFO swapped in
//! cannot stall the walk); device nodes and sockets are left out.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::Override;

/// How deep a tree may go: every level holds one directory descriptor.
pub(crate) const MAX_DEPTH: usize = 256;

/// What a sender sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sent {
    pub entries: u64,
    pub bytes: u64,
    /// Device nodes and sockets, left out.
    pub skipped: u64,
    /// Entries that vanished or changed kind between being listed and being read.
    pub vanished: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// An entry of the tree could not be read.
    #[error("failed to read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("failed to read {path}: the tree is deeper than {MAX_DEPTH} levels")]
    TooDeep { path: String },
    /// The stream could not be written (the other side went away: `EPIPE`).
    #[error("failed to send the files: {0}")]
    Write(io::Error),
}

impl SendError {
    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, SendError::Write(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

pub(crate) struct Sender<W: Write> {
    tar: tar::Builder<W>,
    owner: Override,
    pub sent: Sent,
}

fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn read_err(path: &[u8]) -> impl FnOnce(Errno) -> SendError + '_ {
    move |e| SendError::Read { path: show(path), source: e.into() }
}

/// The header of an entry: its kind, mode and owner from `st`, with `owner`'s
/// overrides (the mode only for regular files), and its mtime.
pub(crate) fn header(kind: tar::EntryType, st: &Stat, owner: &Override) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    let mode = match owner.mode {
        Some(m) if kind == tar::EntryType::Regular => m,
        _ => st.st_mode & 0o7777,
    };
    h.set_mode(mode);
    h.set_uid(owner.uid.unwrap_or(st.st_uid).into());
    h.set_gid(owner.gid.unwrap_or(st.st_gid).into());
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

impl<W: Write> Sender<W> {
    pub(crate) fn new(out: W, owner: Override) -> Sender<W> {
        Sender { tar: tar::Builder::new(out), owner, sent: Sent::default() }
    }

    /// Sends `name` in the open directory `dir` as the entry `top` (a relative tar
    /// path); with `recursive`, a directory's whole tree below it.
    pub(crate) fn add(&mut self, dir: &OwnedFd, name: &OsStr, top: &[u8], recursive: bool) -> Result<(), SendError> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(read_err(top))?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Directory && !recursive {
            return Err(SendError::Read { path: show(top), source: io::Error::from(io::ErrorKind::IsADirectory) });
        }
        self.entry(dir, name, &st, top, 0)
    }

    /// Writes the end-of-archive marker and returns the stream.
    pub(crate) fn finish(self) -> Result<W, SendError> {
        self.tar.into_inner().map_err(SendError::Write)
    }

    fn entry(&mut self, dir: &OwnedFd, name: &OsStr, st: &Stat, path: &[u8], depth: usize) -> Result<(), SendError> {
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => self.file(dir, name, st, path),
            FileType::Directory => self.dir(dir, name, st, path, depth),
            FileType::Symlink => match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(target) => self.symlink(st, path, target.to_bytes()),
                Err(Errno::NOENT | Errno::INVAL) => {
                    self.sent.vanished += 1;
                    Ok(())
                }
                Err(e) => Err(read_err(path)(e)),
            },
            FileType::Fifo => {
                let mut h = header(tar::EntryType::Fifo, st, &self.owner);
                self.append(&mut h, path, io::empty())
            }
            // Device nodes and sockets: never read, never sent.
            _ => {
                self.sent.skipped += 1;
                Ok(())
            }
        }
    }

    fn file(&mut self, dir: &OwnedFd, name: &OsStr, st: &Stat, path: &[u8]) -> Result<(), SendError> {
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY;
        let Some((fd, now)) = open_checked(dir, name, flags, st).map_err(read_err(path))? else {
            self.sent.vanished += 1;
            return Ok(());
        };
        let size = now.st_size.max(0) as u64;
        let mut h = header(tar::EntryType::Regular, &now, &self.owner);
        h.set_size(size);
        self.sent.bytes += size;
        // Exactly `size` bytes: a file that shrinks meanwhile is padded with zeros, one
        // that grows is cut, so the stream stays well formed (as GNU tar does).
        let data = std::fs::File::from(fd).take(size);
        let mut exact = Exact { inner: data, left: size, path, failed: None };
        let r = self.append(&mut h, path, &mut exact);
        match exact.failed.take() {
            Some(source) => Err(SendError::Read { path: show(path), source }),
            None => r,
        }
    }

    fn dir(&mut self, dir: &OwnedFd, name: &OsStr, st: &Stat, path: &[u8], depth: usize) -> Result<(), SendError> {
        if depth >= MAX_DEPTH {
            return Err(SendError::TooDeep { path: show(path) });
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let Some((fd, now)) = open_checked(dir, name, flags, st).map_err(read_err(path))? else {
            self.sent.vanished += 1;
            return Ok(());
        };
        let mut h = header(tar::EntryType::Directory, &now, &self.owner);
        self.append(&mut h, path, io::empty())?;
        let mut names = Vec::new();
        for entry in rustix::fs::Dir::read_from(&fd).map_err(read_err(path))? {
            let entry = entry.map_err(read_err(path))?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(n.to_vec());
            }
        }
        names.sort();
        for n in names {
            let child = [path, b"/", &n].concat();
            let name = OsStr::from_bytes(&n);
            match rustix::fs::statat(&fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => self.entry(&fd, name, &st, &child, depth + 1)?,
                Err(Errno::NOENT) => self.sent.vanished += 1,
                Err(e) => return Err(read_err(&child)(e)),
            }
        }
        Ok(())
    }

    fn symlink(&mut self, st: &Stat, path: &[u8], target: &[u8]) -> Result<(), SendError> {
        let mut h = header(tar::EntryType::Symlink, st, &self.owner);
        // The target byte for byte (tar's own setter would normalise it as a path);
        // a long one goes first in a GNU long-link entry, as tar::Builder does.
        let field = h.as_old().linkname.len();
        if target.len() > field {
            let mut long = tar::Header::new_gnu();
            long.as_gnu_mut().expect("a GNU header").name[..13].copy_from_slice(b"././@LongLink");
            long.set_entry_type(tar::EntryType::GNULongLink);
            long.set_mode(0o644);
            long.set_size(target.len() as u64 + 1);
            long.set_cksum();
            self.tar.append(&long, target.chain(&[0u8][..])).map_err(SendError::Write)?;
        }
        h.set_link_name_literal(&target[..target.len().min(field)]).map_err(SendError::Write)?;
        self.append(&mut h, path, io::empty())
    }

    fn append(&mut self, h: &mut tar::Header, path: &[u8], data: impl Read) -> Result<(), SendError> {
        self.sent.entries += 1;
        self.tar.append_data(h, Path::new(OsStr::from_bytes(path)), data).map_err(SendError::Write)
    }
}

/// Opens `name` in `dir` (never following a symlink) and checks it is still the inode
/// `seen` describes, of the same kind; `None` if it vanished or changed meanwhile.
fn open_checked(dir: &OwnedFd, name: &OsStr, flags: OFlags, seen: &Stat) -> Result<Option<(OwnedFd, Stat)>, Errno> {
    let fd = match rustix::fs::openat(dir, name, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        // Gone, or something else is there now (a symlink: ELOOP; a file: ENOTDIR).
        Err(Errno::NOENT | Errno::LOOP | Errno::NOTDIR | Errno::NXIO) => return Ok(None),
        Err(e) => return Err(e),
    };
    let now = rustix::fs::fstat(&fd)?;
    let same_kind = FileType::from_raw_mode(now.st_mode) == FileType::from_raw_mode(seen.st_mode);
    if !same_kind || (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino) {
        return Ok(None);
    }
    Ok(Some((fd, now)))
}

/// A file's data as exactly `left` bytes (zeros after a premature end). A read error
/// is kept aside, so that it is reported as the file's, not as the stream's.
struct Exact<'a, R: Read> {
    inner: R,
    left: u64,
    path: &'a [u8],
    failed: Option<io::Error>,
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    buf[..want].fill(0);
                    break want;
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let msg = format!("{}: {e}", show(self.path));
                    self.failed = Some(e);
                    return Err(io::Error::other(msg));
                }
            }
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[path = "send_tests.rs"]
mod tests;
