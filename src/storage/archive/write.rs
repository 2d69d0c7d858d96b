//! Writing an archive: entries go to the compressor and, as the same bytes, to a
//! thread that reads them back as tar and computes their manifest lines with the code
//! the importer checks them with. Written to a hidden file beside the destination and
//! renamed into place when complete; dropped unfinished, the file is removed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use super::{Compression, Error, MANIFEST, io_err, manifest};

enum Out {
    Plain(BufWriter<File>),
    Zstd(zstd::Encoder<'static, BufWriter<File>>),
    Xz(liblzma::write::XzEncoder<BufWriter<File>>),
}

impl Out {
    fn finish(self) -> io::Result<File> {
        let buf = match self {
            Out::Plain(b) => b,
            Out::Zstd(z) => z.finish()?,
            Out::Xz(x) => x.finish()?,
        };
        buf.into_inner().map_err(|e| e.into_error())
    }
}

/// The output, and a copy of every byte for the manifest thread.
struct Tee {
    out: Out,
    copy: Option<SyncSender<Vec<u8>>>,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match &mut self.out {
            Out::Plain(w) => w.write(buf)?,
            Out::Zstd(w) => w.write(buf)?,
            Out::Xz(w) => w.write(buf)?,
        };
        if let Some(tx) = &self.copy {
            tx.send(buf[..n].to_vec()).map_err(|_| io::Error::other("the manifest thread stopped"))?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.out {
            Out::Plain(w) => w.flush(),
            Out::Zstd(w) => w.flush(),
            Out::Xz(w) => w.flush(),
        }
    }
}

/// Reads what the channel brings.
struct Chan {
    rx: Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl io::Read for Chan {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(v) => (self.cur, self.pos) = (v, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

pub struct Writer {
    tar: Option<tar::Builder<Tee>>,
    lines: Option<JoinHandle<Result<Vec<String>, String>>>,
    /// The file being written, for naming it at the end.
    handle: File,
    /// Where it is written when the filesystem has no unnamed files (`O_TMPFILE`).
    named: Option<PathBuf>,
    /// For messages: `named`, or the destination.
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

/// A file with no name in the directory of `dest` (it vanishes if hutch is killed),
/// or, where the filesystem cannot, a hidden one beside it (and its name).
fn open_unnamed(dest: &Path) -> io::Result<(File, Option<PathBuf>)> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    match std::fs::OpenOptions::new().write(true).mode(0o600).custom_flags(libc::O_TMPFILE).open(dir) {
        Ok(f) => Ok((f, None)),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR)) => {
            let name = dest.file_name().unwrap_or_default().to_string_lossy();
            let tmp = dest.with_file_name(format!(".{name}.hutch-partial"));
            let _ = std::fs::remove_file(&tmp);
            let f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            Ok((f, Some(tmp)))
        }
        Err(e) => Err(e),
    }
}

impl Writer {
    /// Starts an archive that `finish` puts at `dest` (which must not exist).
    pub fn create(dest: &Path, compression: Compression) -> Result<Writer, Error> {
        if dest.symlink_metadata().is_ok() {
            return Err(Error::DestinationExists { path: dest.to_path_buf() });
        }
        dest.file_name().ok_or_else(|| Error::Io {
            action: "write",
            path: dest.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "it names no file"),
        })?;
        let (file, named) = open_unnamed(dest).map_err(io_err("create", dest))?;
        let tmp = named.clone().unwrap_or_else(|| dest.to_path_buf());
        let handle = file.try_clone().map_err(io_err("create", dest))?;
        let buf = BufWriter::with_capacity(1 << 20, file);
        let out = match compression {
            Compression::None => Out::Plain(buf),
            Compression::Zstd => {
                let mut z = zstd::Encoder::new(buf, 3).map_err(io_err("compress", &tmp))?;
                z.include_checksum(true).map_err(io_err("compress", &tmp))?;
                Out::Zstd(z)
            }
            Compression::Xz => {
                let threads = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
                let stream = liblzma::stream::MtStreamBuilder::new()
                    .threads(threads)
                    .preset(6)
                    .check(liblzma::stream::Check::Crc64)
                    .encoder()
                    .map_err(|e| Error::Io { action: "compress", path: tmp.clone(), source: io::Error::other(e) })?;
                Out::Xz(liblzma::write::XzEncoder::new_stream(buf, stream))
            }
        };
        let (tx, rx) = sync_channel::<Vec<u8>>(32);
        let lines = std::thread::Builder::new()
            .name("hutch-manifest".into())
            .spawn(move || {
                let mut lines = Vec::new();
                let chan = Chan { rx, cur: Vec::new(), pos: 0 };
                manifest::scan(chan, &|_| None, &mut |seen| {
                    lines.push(seen.line);
                    Ok(())
                })?;
                Ok(lines)
            })
            .map_err(io_err("start a thread for", &tmp))?;
        let mut tar = tar::Builder::new(Tee { out, copy: Some(tx) });
        tar.follow_symlinks(false);
        Ok(Writer { tar: Some(tar), lines: Some(lines), handle, named, tmp, dest: dest.to_path_buf(), done: false })
    }

    fn tar(&mut self) -> &mut tar::Builder<Tee> {
        self.tar.as_mut().expect("the archive is open until finish")
    }

    /// A small file of hutch's own (mode 0600, owned by root).
    pub fn add_file(&mut self, name: &str, data: &[u8]) -> Result<(), Error> {
        let tmp = self.tmp.clone();
        append_own(self.tar(), name, data).map_err(io_err("write", &tmp))
    }

    /// The tree at `root` under the name `prefix`; returns the number of entries.
    pub fn add_tree(&mut self, prefix: &str, root: &Path) -> Result<u64, Error> {
        crate::image::pack::pack_into(self.tar(), root, Path::new(prefix)).map_err(io_err("archive", root))
    }

    /// Writes the manifest, completes the archive and puts it in place; returns its size.
    pub fn finish(mut self) -> Result<u64, Error> {
        let tmp = self.tmp.clone();
        let mut tar = self.tar.take().expect("finish is called once");
        tar.get_mut().copy = None;
        let lines = self.lines.take().expect("finish is called once").join();
        let lines = match lines {
            Ok(Ok(l)) => l,
            Ok(Err(message)) => {
                return Err(Error::Io {
                    action: "check what was written to",
                    path: tmp,
                    source: io::Error::other(message),
                });
            }
            Err(_) => {
                return Err(Error::Io {
                    action: "write",
                    path: tmp,
                    source: io::Error::other("the manifest thread panicked"),
                });
            }
        };
        let text = manifest::render(&lines);
        append_own(&mut tar, MANIFEST, &text).map_err(io_err("write", &tmp))?;
        let tee = tar.into_inner().map_err(io_err("write", &tmp))?;
        let file = tee.out.finish().map_err(io_err("write", &tmp))?;
        file.sync_all().map_err(io_err("write", &tmp))?;
        let size = file.metadata().map_err(io_err("write", &tmp))?.len();
        drop(file);
        let placed = match &self.named {
            Some(tmp) => rustix::fs::renameat_with(
                rustix::fs::CWD,
                tmp,
                rustix::fs::CWD,
                &self.dest,
                rustix::fs::RenameFlags::NOREPLACE,
            ),
            None => rustix::fs::linkat(
                rustix::fs::CWD,
                format!("/proc/self/fd/{}", self.handle.as_raw_fd()),
                rustix::fs::CWD,
                &self.dest,
                rustix::fs::AtFlags::SYMLINK_FOLLOW,
            ),
        };
        placed.map_err(|e| match e {
            rustix::io::Errno::EXIST => Error::DestinationExists { path: self.dest.clone() },
            e => Error::Io { action: "move into place", path: self.dest.clone(), source: e.into() },
        })?;
        self.done = true;
        if let Some(dir) = self.dest.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(size)
    }
}

/// Appends a small file of hutch's own: mode 0600, owned by root, dated now.
fn append_own(tar: &mut tar::Builder<Tee>, name: &str, data: &[u8]) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o600);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(crate::base::fsutil::now_ms() / 1000);
    h.set_size(data.len() as u64);
    tar.append_data(&mut h, name, data)
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Unfinished: stop the manifest thread, drop the file.
        if let Some(mut tar) = self.tar.take() {
            tar.get_mut().copy = None;
            drop(tar);
        }
        if let Some(t) = self.lines.take() {
            let _ = t.join();
        }
        if let Some(tmp) = &self.named {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
