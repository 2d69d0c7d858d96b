//! The decompressing side: compression sniffed from the first bytes, the decoders, and
//! the thread that decompresses a few chunks ahead of the writer.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use super::{Compression, sniff};

/// Decompressed chunks handed from the decompressing thread to the writer.
pub(super) const CHUNK: usize = 1 << 20;
/// How many chunks the decompressing thread may run ahead.
pub(super) const QUEUE: usize = 4;
pub(super) const COPY_BUF: usize = 1 << 20;
/// After the end-of-archive marker, at most this much more is decompressed to check
/// that the compressed stream ends cleanly (tar pads to a record; anything longer is
/// left unread rather than decompressed forever).
pub(super) const TAIL_CHECK: u64 = 16 << 20;
/// liblzma's memory limit: far above any real dictionary, far below the RAM a
/// crafted header could ask for.
pub(super) const XZ_MEMLIMIT: u64 = 1 << 30;

/// Free space on the filesystem of `dir`, less a margin for metadata and for
/// everyone else (1% of its size, at least 64 MiB).
pub(crate) fn free_bytes(dir: impl rustix::fd::AsFd) -> io::Result<u64> {
    let st = rustix::fs::fstatvfs(dir)?;
    if st.f_blocks == 0 {
        // No size to speak of (tmpfs with size=0, some network filesystems).
        return Ok(u64::MAX);
    }
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let margin = (st.f_blocks.saturating_mul(st.f_frsize) / 100).max(64 << 20);
    Ok(free.saturating_sub(margin))
}

/// A decompressing reader for `file`, chosen by its first bytes.
pub(super) fn decoder<'a>(file: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 20, file);
    let head = r.fill_buf()?.to_vec();
    Ok(match sniff(&head) {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Xz => Box::new(Xz { dec: Some(liblzma::bufread::XzDecoder::new_stream(r, xz_stream()?)) }),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::with_buffer(r)
                .map_err(|e| io::Error::new(e.kind(), format!("bad zstd stream: {e}")))?,
        ),
    })
}

/// liblzma's multithreaded decoder (it splits the work only for archives compressed
/// in blocks, as `xz -T` makes them; otherwise it decodes on one thread).
pub(super) fn xz_stream() -> io::Result<liblzma::stream::Stream> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8) as u32;
    liblzma::stream::MtStreamBuilder::new()
        .threads(threads)
        .memlimit_threading(XZ_MEMLIMIT / 2)
        .memlimit_stop(XZ_MEMLIMIT)
        .decoder()
        .map_err(io::Error::other)
}

/// Concatenated .xz streams (with the zero padding xz allows between them), decoded
/// one after the other as `xz -d` does.
pub(super) struct Xz<R: BufRead> {
    dec: Option<liblzma::bufread::XzDecoder<R>>,
}

impl<R: BufRead> Read for Xz<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(dec) = self.dec.as_mut() else { return Ok(0) };
            let n = dec.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            let mut r = self.dec.take().expect("checked above").into_inner();
            loop {
                let b = r.fill_buf()?;
                if b.is_empty() {
                    return Ok(0);
                }
                let zeros = b.iter().take_while(|c| **c == 0).count();
                if zeros == 0 {
                    break;
                }
                r.consume(zeros);
            }
            self.dec = Some(liblzma::bufread::XzDecoder::new_stream(r, xz_stream()?));
        }
    }
}

/// Counts the bytes read from the archive file.
pub(super) struct Counting<'a> {
    file: File,
    consumed: &'a AtomicU64,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

pub(super) struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

/// The decompressing thread: fills chunks and sends them until the end of the stream
/// (then drops `tx`), a decompression error (sent), or the writer hanging up.
pub(super) fn pump(
    file: File,
    consumed: &AtomicU64,
    tx: &mpsc::SyncSender<io::Result<Chunk>>,
    spent: &mpsc::Receiver<Vec<u8>>,
) {
    let mut dec = match decoder(Counting { file, consumed }) {
        Ok(d) => d,
        Err(e) => {
            let _ = tx.send(Err(e));
            return;
        }
    };
    loop {
        let mut buf = spent.try_recv().unwrap_or_else(|_| vec![0; CHUNK]);
        let mut len = 0;
        let mut failed = None;
        while len < CHUNK {
            match dec.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if len > 0 && tx.send(Ok(Chunk { buf, len })).is_err() {
            return;
        }
        if let Some(e) = failed {
            let _ = tx.send(Err(e));
            return;
        }
        if len < CHUNK {
            return;
        }
    }
}

/// The writer's end: the decompressed archive as a reader. Records whether the end
/// of the stream was reached (tar stops at its end-of-archive marker without reading
/// on, so reaching it while reading entries means the marker is missing).
pub(super) struct Chunks<'c, 'p> {
    pub(super) rx: mpsc::Receiver<io::Result<Chunk>>,
    pub(super) spent: mpsc::Sender<Vec<u8>>,
    pub(super) cur: Option<Chunk>,
    pub(super) pos: usize,
    pub(super) hit_eof: bool,
    pub(super) consumed: &'c AtomicU64,
    pub(super) progress: Option<&'p mut dyn FnMut(u64)>,
}

impl Read for Chunks<'_, '_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(c) = &self.cur
                && self.pos < c.len
            {
                let n = out.len().min(c.len - self.pos);
                out[..n].copy_from_slice(&c.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.hit_eof {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(c)) => {
                    if let Some(old) = self.cur.replace(c) {
                        let _ = self.spent.send(old.buf);
                    }
                    self.pos = 0;
                    if let Some(p) = self.progress.as_mut() {
                        p(self.consumed.load(Ordering::Relaxed));
                    }
                }
                Ok(Err(e)) => {
                    self.hit_eof = true;
                    return Err(e);
                }
                Err(mpsc::RecvError) => {
                    self.hit_eof = true;
                    return Ok(0);
                }
            }
        }
    }
}

/// What the writer reads entries from: the decompressed archive, or a plain stream.
pub(super) trait Source: Read {
    /// Whether a read reached the end of the stream.
    fn hit_eof(&self) -> bool;
    /// Called once everything has been read.
    fn done(&mut self) {}
}

impl Source for Chunks<'_, '_> {
    fn hit_eof(&self) -> bool {
        self.hit_eof
    }

    fn done(&mut self) {
        if let Some(p) = self.progress.as_mut() {
            p(self.consumed.load(Ordering::Relaxed));
        }
    }
}

/// An uncompressed stream (a pipe from another process), read as it comes.
pub(super) struct Plain<R: Read> {
    pub(super) inner: R,
    pub(super) hit_eof: bool,
}

impl<R: Read> Read for Plain<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(out)?;
        if n == 0 && !out.is_empty() {
            self.hit_eof = true;
        }
        Ok(n)
    }
}

impl<R: Read> Source for Plain<R> {
    fn hit_eof(&self) -> bool {
        self.hit_eof
    }
}
