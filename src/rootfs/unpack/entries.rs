//! The writing side: each tar entry made inside the destination, resolved beneath its
//! root (never following a symlink out of it), with its owner, mode, times and
//! attributes applied.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use super::stream::{Source, TAIL_CHECK};
use super::{Error, Stats};

/// What an entry's header says about its owner, mode, times and attributes.
pub(super) struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: Timespec,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory made (or found) by a directory entry: its attributes are applied
/// at the end, deepest first, so a read-only directory does not block its children.
pub(super) struct DirMeta {
    path: Vec<u8>,
    dev: u64,
    ino: u64,
    meta: Meta,
}

pub(super) struct Unpacker<'a> {
    pub(super) archive: &'a Path,
    pub(super) dst: &'a Path,
    pub(super) root: OwnedFd,
    pub(super) privileged: bool,
    pub(super) limit: u64,
    pub(super) stats: Stats,
    pub(super) dirs: Vec<DirMeta>,
    /// The parent directory of the last regular file, reused only by the regular
    /// files right after it in the same directory: anything else may change what
    /// that path resolves to, so it drops this.
    pub(super) cached: Option<(Vec<u8>, OwnedFd)>,
    pub(super) buf: Vec<u8>,
    /// How entry paths are resolved beneath the root: symlinks followed inside it
    /// (a rootfs), or none followed at all (the host side of a stream from a container).
    pub(super) how: ResolveFlags,
    /// The destination is on the host and the stream came from a container: no
    /// extended attributes, no setuid or setgid bits, no hard links.
    pub(super) to_host: bool,
    /// Where each entry goes (its normalized path in, the path under the root out);
    /// `None` refuses it.
    pub(super) place: Option<&'a Place<'a>>,
}

/// Maps an entry's normalized path to its path under the root (`None`: refused).
pub(crate) type Place<'a> = dyn Fn(&[u8]) -> Option<Vec<u8>> + 'a;

/// `RESOLVE_*` for a rootfs: symlinks are followed, clamped at the root.
pub(super) const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
/// `RESOLVE_*` for the host side of a stream from a container: no symlink is followed
/// (one the stream made could otherwise lead its later entries elsewhere below the root).
pub(super) const NO_SYMLINKS: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

/// An entry's path made relative to the root: `/`, `.` and empty components
/// dropped. `None` when it has a `..` component.
pub(crate) fn normalize(path: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(path.len());
    for c in path.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return None,
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    Some(out)
}

/// (parent, name) of a normalized, non-empty path.
pub(super) fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (b"", path),
    }
}

pub(super) fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

pub(super) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Opens `path` (relative, normalized; empty for the root itself) inside `root`,
/// resolved as `how` says.
pub(super) fn resolve(root: &OwnedFd, path: &[u8], flags: OFlags, how: ResolveFlags) -> rustix::io::Result<OwnedFd> {
    let p: &[u8] = if path.is_empty() { b"." } else { path };
    let mut tries = 0;
    loop {
        match crate::sys::openat2(root, os(p), flags | OFlags::CLOEXEC, Mode::empty(), how) {
            // A concurrent rename elsewhere on the system: the kernel asks to retry.
            Err(Errno::AGAIN) if tries < 64 => tries += 1,
            r => return r,
        }
    }
}

/// Removes whatever is at `name` in `dir` (an empty directory too), without following it.
pub(super) fn remove(dir: &OwnedFd, name: &[u8]) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(Errno::ISDIR) => match rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR) {
            Err(Errno::NOTEMPTY | Errno::EXIST) => Err(io::Error::other("a directory that is not empty is in the way")),
            r => r.map_err(Into::into),
        },
        Err(e) => Err(e.into()),
    }
}

/// The `/proc/self/fd` name of `fd`, for the few calls that have no fd form.
pub(super) fn proc_fd(fd: BorrowedFd<'_>) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

/// Sets owner, then mode (chown clears setuid bits), then extended attributes
/// (chown clears security.capability), then times, on an open file or directory.
pub(super) fn apply_fd(fd: BorrowedFd<'_>, m: &Meta) -> Result<(), (&'static str, io::Error)> {
    rustix::fs::fchown(fd, Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)))
        .map_err(|e| ("set its owner", e.into()))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(m.mode)).map_err(|e| ("set its mode", e.into()))?;
    for (name, value) in &m.xattrs {
        match rustix::fs::fsetxattr(fd, os(name), value, XattrFlags::empty()) {
            Ok(()) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => {
                return Err(("set its extended attributes", io::Error::new(e.kind(), format!("{}: {e}", show(name)))));
            }
        }
    }
    rustix::fs::futimens(fd, &Timestamps { last_access: m.mtime, last_modification: m.mtime })
        .map_err(|e| ("set its times", e.into()))
}

impl Unpacker<'_> {
    fn fail(&self, message: String) -> Error {
        Error::Unpack { archive: self.archive.to_path_buf(), message }
    }

    fn corrupt(&self, e: impl std::fmt::Display) -> Error {
        self.fail(format!("corrupt or truncated archive: {e}"))
    }

    fn fs(&self, path: &[u8], what: &str, e: impl std::fmt::Display) -> Error {
        self.fail(format!("{}: {what}: {e}", show(path)))
    }

    fn no_space(&self) -> Error {
        Error::NoSpace {
            archive: self.archive.to_path_buf(),
            dst: self.dst.to_path_buf(),
            free_mib: self.limit >> 20,
            done_mib: self.stats.bytes >> 20,
        }
    }

    /// Where an entry's normalized path goes under the root (`None`: refused).
    fn placed(&self, path: Vec<u8>) -> Option<Vec<u8>> {
        match self.place {
            Some(place) => place(&path),
            None => Some(path),
        }
    }

    pub(super) fn run<S: Source>(&mut self, chunks: S) -> Result<(), Error> {
        let mut ar = tar::Archive::new(chunks);
        for entry in ar.entries().map_err(|e| self.corrupt(e))? {
            let mut entry = entry.map_err(|e| self.corrupt(e))?;
            self.entry(&mut entry)?;
        }
        let mut chunks = ar.into_inner();
        if self.stats.entries == 0 {
            return Err(self.fail("the archive is empty".into()));
        }
        if chunks.hit_eof() {
            return Err(self.corrupt("it ends before its end-of-archive marker"));
        }
        // Whatever follows the marker is padding; reading (some of) it makes the
        // decompressor check the end of its stream.
        io::copy(&mut (&mut chunks).take(TAIL_CHECK), &mut io::sink()).map_err(|e| self.corrupt(e))?;
        chunks.done();
        drop(chunks);
        self.cached = None;
        self.finish_dirs()
    }

    fn entry<R: Read>(&mut self, e: &mut tar::Entry<'_, R>) -> Result<(), Error> {
        use tar::EntryType as T;
        let kind = e.header().entry_type();
        if kind.is_pax_global_extensions() || kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.as_byte() == b'V'
        {
            return Ok(());
        }
        self.stats.entries += 1;
        if kind != T::Regular && kind != T::Continuous {
            self.cached = None;
        }
        let raw = e.path_bytes().into_owned();
        let Some(path) = normalize(&raw).and_then(|p| self.placed(p)) else {
            self.stats.refused += 1;
            return Ok(());
        };
        if matches!(kind, T::Char | T::Block) && !self.privileged {
            self.stats.devices_skipped += 1;
            return Ok(());
        }
        let meta = self.meta(e, &path)?;
        match kind {
            T::Directory => self.dir(path, meta),
            T::Symlink => {
                let target =
                    e.link_name_bytes().ok_or_else(|| self.corrupt(format!("{}: no link target", show(&path))))?;
                self.symlink(&path, &target, &meta)
            }
            T::Link => {
                let target =
                    e.link_name_bytes().ok_or_else(|| self.corrupt(format!("{}: no link target", show(&path))))?;
                match normalize(&target).and_then(|t| self.placed(t)) {
                    Some(t) if !t.is_empty() && !path.is_empty() && !self.to_host => self.hardlink(&path, &t),
                    _ => {
                        self.stats.refused += 1;
                        Ok(())
                    }
                }
            }
            T::Char | T::Block | T::Fifo => {
                let dev = match kind {
                    T::Fifo => 0,
                    _ => {
                        let h = e.header();
                        let major = h.device_major().map_err(|e| self.corrupt(e))?.unwrap_or(0);
                        let minor = h.device_minor().map_err(|e| self.corrupt(e))?.unwrap_or(0);
                        rustix::fs::makedev(major, minor)
                    }
                };
                let ft = match kind {
                    T::Char => FileType::CharacterDevice,
                    T::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                self.node(&path, ft, dev, &meta)
            }
            // Regular files; POSIX says unknown types are read as regular files too.
            _ => self.file(e, &path, &meta),
        }
    }

    fn meta<R: Read>(&self, e: &mut tar::Entry<'_, R>, path: &[u8]) -> Result<Meta, Error> {
        let h = e.header();
        let bad = |what: &str, err: io::Error| self.corrupt(format!("{}: bad {what}: {err}", show(path)));
        let uid = h.uid().map_err(|err| bad("owner", err))?;
        let gid = h.gid().map_err(|err| bad("group", err))?;
        let mut mode = h.mode().map_err(|err| bad("mode", err))? & 0o7777;
        if self.to_host {
            // A container's setuid file must not become one of the host's.
            mode &= 0o1777;
        }
        let mtime = h.mtime().map_err(|err| bad("mtime", err))?;
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Err(self.corrupt(format!("{}: owner {uid}:{gid} is out of range", show(path))));
        };
        let mut meta = Meta {
            uid,
            gid,
            mode,
            mtime: Timespec { tv_sec: mtime.min(i64::MAX as u64) as i64, tv_nsec: 0 },
            xattrs: Vec::new(),
        };
        if let Some(exts) = e.pax_extensions().map_err(|err| self.corrupt(err))? {
            for ext in exts {
                let ext = ext.map_err(|err| self.corrupt(err))?;
                let key = ext.key_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    // Not on the host: a container's security.capability would be the host's.
                    if !self.to_host {
                        meta.xattrs.push((name.to_vec(), ext.value_bytes().to_vec()));
                    }
                } else if key == b"mtime"
                    && let Some(t) = parse_pax_time(ext.value_bytes())
                {
                    meta.mtime = t;
                }
            }
        }
        Ok(meta)
    }

    /// The parent directory `parent` inside the root, with any missing levels made
    /// (mode 0755, like tar does for directories the archive does not list).
    fn open_parent(&self, parent: &[u8]) -> io::Result<OwnedFd> {
        let flags = OFlags::PATH | OFlags::DIRECTORY;
        match resolve(&self.root, parent, flags, self.how) {
            Err(Errno::NOENT) => {}
            r => return r.map_err(Into::into),
        }
        let mut at = resolve(&self.root, b"", flags, self.how)?;
        let mut end = 0;
        for comp in parent.split(|b| *b == b'/') {
            end += comp.len();
            let prefix = &parent[..end];
            end += 1;
            at = match resolve(&self.root, prefix, flags, self.how) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&at, os(comp), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    resolve(&self.root, prefix, flags, self.how)?
                }
                Err(e) => return Err(e.into()),
            };
        }
        Ok(at)
    }

    fn parent_of(&mut self, path: &[u8]) -> Result<OwnedFd, Error> {
        let (parent, _) = split(path);
        self.open_parent(parent).map_err(|e| self.fs(path, "open its directory", e))
    }

    fn file<R: Read>(&mut self, e: &mut tar::Entry<'_, R>, path: &[u8], m: &Meta) -> Result<(), Error> {
        if path.is_empty() {
            self.stats.refused += 1;
            return Ok(());
        }
        let size = e.size();
        if self.stats.bytes.saturating_add(size) > self.limit {
            return Err(self.no_space());
        }
        let (parent, name) = split(path);
        let dir = match self.cached.take() {
            Some((p, fd)) if p == parent => fd,
            _ => self.parent_of(path)?,
        };
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let mode = Mode::from_raw_mode(0o600);
        let mut replaced = false;
        // O_CREAT|O_EXCL never follows a symlink at the name: anything there is
        // removed first, then the file is made anew.
        let fd = match rustix::fs::openat(&dir, os(name), flags, mode) {
            Err(Errno::EXIST) => {
                replaced = true;
                remove(&dir, name).map_err(|e| self.fs(path, "replace what is there", e))?;
                rustix::fs::openat(&dir, os(name), flags, mode)
            }
            r => r,
        }
        .map_err(|e| self.fs(path, "create", e))?;
        let mut f = File::from(fd);
        let mut written = 0u64;
        loop {
            let n = match e.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(self.corrupt(format!("{}: {err}", show(path)))),
            };
            if self.stats.bytes + n as u64 > self.limit {
                return Err(self.no_space());
            }
            f.write_all(&self.buf[..n]).map_err(|err| self.fs(path, "write", err))?;
            written += n as u64;
            self.stats.bytes += n as u64;
        }
        if written < size && e.header().entry_type() != tar::EntryType::GNUSparse {
            return Err(self.corrupt(format!("{}: the data ends after {written} of {size} bytes", show(path))));
        }
        apply_fd(f.as_fd(), m).map_err(|(what, err)| self.fs(path, what, err))?;
        if !replaced {
            self.cached = Some((parent.to_vec(), dir));
        }
        Ok(())
    }

    fn dir(&mut self, path: Vec<u8>, meta: Meta) -> Result<(), Error> {
        let st = if path.is_empty() {
            rustix::fs::fstat(&self.root).map_err(|e| self.fs(b".", "stat", e))?
        } else {
            let dir = self.parent_of(&path)?;
            let (_, name) = split(&path);
            let mode = Mode::from_raw_mode(0o700);
            match rustix::fs::mkdirat(&dir, os(name), mode) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let st = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.fs(&path, "stat", e))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                        remove(&dir, name).map_err(|e| self.fs(&path, "replace what is there", e))?;
                        rustix::fs::mkdirat(&dir, os(name), mode).map_err(|e| self.fs(&path, "create", e))?;
                    }
                }
                Err(e) => return Err(self.fs(&path, "create", e)),
            }
            rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW).map_err(|e| self.fs(&path, "stat", e))?
        };
        self.dirs.push(DirMeta { path, dev: st.st_dev, ino: st.st_ino, meta });
        Ok(())
    }

    fn symlink(&mut self, path: &[u8], target: &[u8], m: &Meta) -> Result<(), Error> {
        if path.is_empty() {
            self.stats.refused += 1;
            return Ok(());
        }
        let dir = self.parent_of(path)?;
        let (_, name) = split(path);
        match rustix::fs::symlinkat(os(target), &dir, os(name)) {
            Err(Errno::EXIST) => {
                remove(&dir, name).map_err(|e| self.fs(path, "replace what is there", e))?;
                rustix::fs::symlinkat(os(target), &dir, os(name))
            }
            r => r,
        }
        .map_err(|e| self.fs(path, "create symlink", e))?;
        rustix::fs::chownat(
            &dir,
            os(name),
            Some(Uid::from_raw(m.uid)),
            Some(Gid::from_raw(m.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.fs(path, "set its owner", e))?;
        let ts = Timestamps { last_access: m.mtime, last_modification: m.mtime };
        rustix::fs::utimensat(&dir, os(name), &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.fs(path, "set its times", e))
    }

    /// A hard link to `target`, which is opened inside the root (a symlink on the
    /// way cannot lead to a host file) and linked by descriptor.
    fn hardlink(&mut self, path: &[u8], target: &[u8]) -> Result<(), Error> {
        let what = format!("hard link to {}", show(target));
        let src = resolve(&self.root, target, OFlags::PATH | OFlags::NOFOLLOW, self.how)
            .map_err(|e| self.fs(path, &what, e))?;
        let src_st = rustix::fs::fstat(&src).map_err(|e| self.fs(path, &what, e))?;
        let dir = self.parent_of(path)?;
        let (_, name) = split(path);
        let link = || -> io::Result<()> {
            match rustix::fs::linkat(&src, "", &dir, os(name), AtFlags::EMPTY_PATH) {
                // Older kernels allow AT_EMPTY_PATH only with CAP_DAC_READ_SEARCH; the
                // descriptor's /proc name leads to the same (already resolved) file.
                Err(Errno::NOENT | Errno::PERM) if FileType::from_raw_mode(src_st.st_mode) != FileType::Symlink => {
                    rustix::fs::linkat(
                        rustix::fs::CWD,
                        proc_fd(src.as_fd()).as_str(),
                        &dir,
                        os(name),
                        AtFlags::SYMLINK_FOLLOW,
                    )
                    .map_err(Into::into)
                }
                r => r.map_err(Into::into),
            }
        };
        match link() {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let here = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.fs(path, "stat", e))?;
                if (here.st_dev, here.st_ino) == (src_st.st_dev, src_st.st_ino) {
                    return Ok(());
                }
                remove(&dir, name).map_err(|e| self.fs(path, "replace what is there", e))?;
                link().map_err(|e| self.fs(path, &what, e))
            }
            r => r.map_err(|e| self.fs(path, &what, e)),
        }
    }

    /// A fifo, or a device node (privileged only; checked by the caller).
    fn node(&mut self, path: &[u8], ft: FileType, dev: u64, m: &Meta) -> Result<(), Error> {
        if path.is_empty() {
            self.stats.refused += 1;
            return Ok(());
        }
        let dir = self.parent_of(path)?;
        let (_, name) = split(path);
        let mode = Mode::from_raw_mode(0o600);
        match rustix::fs::mknodat(&dir, os(name), ft, mode, dev) {
            Err(Errno::EXIST) => {
                remove(&dir, name).map_err(|e| self.fs(path, "replace what is there", e))?;
                rustix::fs::mknodat(&dir, os(name), ft, mode, dev)
            }
            r => r,
        }
        .map_err(|e| self.fs(path, "create", e))?;
        // Opening a fifo or device for real could block or reach a driver: an O_PATH
        // descriptor of the node itself is enough for chown, and its /proc name for chmod.
        let fd = rustix::fs::openat(&dir, os(name), OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| self.fs(path, "open", e))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.fs(path, "stat", e))?;
        if FileType::from_raw_mode(st.st_mode) != ft {
            return Err(self.fs(path, "open", "it changed while it was being made"));
        }
        rustix::fs::chownat(&fd, "", Some(Uid::from_raw(m.uid)), Some(Gid::from_raw(m.gid)), AtFlags::EMPTY_PATH)
            .map_err(|e| self.fs(path, "set its owner", e))?;
        rustix::fs::chmodat(
            rustix::fs::CWD,
            proc_fd(fd.as_fd()).as_str(),
            Mode::from_raw_mode(m.mode),
            AtFlags::empty(),
        )
        .map_err(|e| self.fs(path, "set its mode", e))?;
        let ts = Timestamps { last_access: m.mtime, last_modification: m.mtime };
        rustix::fs::utimensat(&dir, os(name), &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| self.fs(path, "set its times", e))
    }

    /// Applies the directories' attributes, deepest first (the last entry for a path
    /// wins). A directory replaced by a later entry is left alone.
    fn finish_dirs(&mut self) -> Result<(), Error> {
        let mut dirs = std::mem::take(&mut self.dirs);
        // Stable: entries for the same path stay in archive order.
        dirs.sort_by(|a, b| b.path.cmp(&a.path));
        for (i, d) in dirs.iter().enumerate() {
            if dirs.get(i + 1).is_some_and(|next| next.path == d.path) {
                continue;
            }
            let fd = match resolve(&self.root, &d.path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW, self.how)
            {
                Ok(fd) => fd,
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(self.fs(&d.path, "open", e)),
            };
            let st = rustix::fs::fstat(&fd).map_err(|e| self.fs(&d.path, "stat", e))?;
            if (st.st_dev, st.st_ino) != (d.dev, d.ino) {
                continue;
            }
            let shown: &[u8] = if d.path.is_empty() { b"." } else { &d.path };
            apply_fd(fd.as_fd(), &d.meta).map_err(|(what, err)| self.fs(shown, what, err))?;
        }
        Ok(())
    }
}

/// A PAX time: seconds, optionally with a fraction (`1700000000.123456789`).
pub(super) fn parse_pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = sec.parse().ok()?;
    if tv_sec < 0 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    Some(Timespec { tv_sec, tv_nsec: digits.parse().ok()? })
}
