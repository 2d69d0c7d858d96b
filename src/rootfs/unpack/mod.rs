//! `--from-tar`: unpacks a root filesystem archive (.tar, .tar.gz, .tar.xz, .tar.zst,
//! recognised by content, not by name). Owners (numeric, as stored: the container
//! sees them through an idmapped mount), permission bits (setuid included),
//! timestamps and extended attributes (file capabilities included) are kept.
//!
//! The archive is hostile input. Every entry's parent directory is resolved inside
//! the destination with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so a
//! symlink in the way (`l -> /`, `l -> ..`) leads somewhere inside it, never out; the
//! entry itself is then made relative to that directory with `*at` calls that never
//! follow a final symlink (a symlink already at the name is replaced, not followed).
//! Paths with `..` are refused, a leading `/` is dropped, hard links are made from
//! their target opened inside the root, device nodes are made only for privileged
//! containers (an unprivileged container gets its /dev from hutch), and the file data
//! written is capped by the free space of the destination, so a decompression bomb
//! stops with an error instead of filling the disk.
//!
//! Decompression runs on its own thread, a few chunks ahead of the writes.
//!
//! `unpack_stream` takes an uncompressed stream from another process instead (the
//! files `hutch file` copies), entry by entry, each placed where its caller says. On
//! the host side of a copy out of a container it is stricter still: no symlink below
//! the root is followed at all, and no hard links, device nodes, extended attributes
//! or setuid/setgid bits are made.

#[cfg(test)]
mod tests;

mod entries;
mod stream;

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;

use rustix::fs::{Mode, OFlags};

use entries::Unpacker;
pub(crate) use entries::normalize;
pub(crate) use stream::free_bytes;
use stream::{COPY_BUF, Chunks, Plain, QUEUE, pump};

use super::Error;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Entries read from the archive.
    pub entries: u64,
    /// Device nodes left out (unprivileged).
    pub devices_skipped: u64,
    /// Entries whose path or link target had a `..` component.
    pub refused: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Make device nodes (only a privileged container can use them).
    pub privileged: bool,
    /// The most file data to write. `None`: the free space of the destination's
    /// filesystem when unpacking starts, less a margin (1% of its size, at least 64 MiB).
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

/// Recognises the compression from the first bytes.
pub(crate) fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Unpacks `archive` into the existing directory `dst`.
pub(crate) fn unpack(archive: &Path, dst: &Path, privileged: bool) -> Result<Stats, Error> {
    unpack_with(archive, dst, &Options { privileged, max_bytes: None }, None)
}

/// Unpacks `archive` into the existing directory `dst`, calling `progress` with the
/// number of bytes of the archive file consumed so far. On error the tree may be
/// partly written (the caller removes it); nothing is written outside `dst`.
pub(crate) fn unpack_with(
    archive: &Path,
    dst: &Path,
    opts: &Options,
    progress: Option<&mut dyn FnMut(u64)>,
) -> Result<Stats, Error> {
    let file = File::open(archive).map_err(|source| Error::Read { path: archive.to_path_buf(), source })?;
    let root = rustix::fs::open(dst, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| Error::Read { path: dst.to_path_buf(), source: e.into() })?;
    let limit = match opts.max_bytes {
        Some(n) => n,
        None => free_bytes(&root).map_err(|source| Error::Read { path: dst.to_path_buf(), source })?,
    };
    let consumed = AtomicU64::new(0);
    let consumed = &consumed;
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let (spent_tx, spent_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("hutch-unpack".into())
            .spawn_scoped(s, move || pump(file, consumed, &tx, &spent_rx))
            .map_err(|e| Error::Unpack { archive: archive.to_path_buf(), message: format!("start a thread: {e}") })?;
        let chunks = Chunks { rx, spent: spent_tx, cur: None, pos: 0, hit_eof: false, consumed, progress };
        let mut u = Unpacker {
            archive,
            dst,
            root,
            privileged: opts.privileged,
            limit,
            stats: Stats::default(),
            dirs: Vec::new(),
            cached: None,
            buf: vec![0; COPY_BUF],
            how: entries::IN_ROOT,
            to_host: false,
            place: None,
        };
        u.run(chunks)?;
        Ok(u.stats)
    })
}

/// How `unpack_stream` places a tar stream that another process sends.
pub(crate) struct Placement<'a> {
    /// Names the stream in errors ("the files from web").
    pub label: &'a Path,
    /// Where it goes, for the no-space error.
    pub dst: &'a Path,
    /// The stream comes from a container and the root is on the host: no symlink below
    /// the root is followed (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`), and no extended
    /// attributes, setuid or setgid bits, hard links or device nodes are made. Otherwise
    /// the root is a container's tree: symlinks in it are followed inside it.
    pub to_host: bool,
    /// Where each entry goes: its normalized path in, its path under the root out
    /// (`None` refuses it; refused entries are counted in `Stats::refused`).
    pub place: &'a entries::Place<'a>,
    /// The most file data to write (`None`: the root's free space, as for archives).
    pub max_bytes: Option<u64>,
}

/// Unpacks an uncompressed tar stream (a pipe) into the directory `root`, entry by
/// entry as it arrives, with the same containment as `unpack` (plus `placement`'s).
/// Device nodes are never made. On error the tree may be partly written.
pub(crate) fn unpack_stream(stream: impl std::io::Read, root: OwnedFd, placement: &Placement) -> Result<Stats, Error> {
    let limit = match placement.max_bytes {
        Some(n) => n,
        None => free_bytes(&root).map_err(|source| Error::Read { path: placement.dst.to_path_buf(), source })?,
    };
    let mut u = Unpacker {
        archive: placement.label,
        dst: placement.dst,
        root,
        privileged: false,
        limit,
        stats: Stats::default(),
        dirs: Vec::new(),
        cached: None,
        buf: vec![0; COPY_BUF],
        how: if placement.to_host { entries::NO_SYMLINKS } else { entries::IN_ROOT },
        to_host: placement.to_host,
        place: Some(placement.place),
    };
    u.run(Plain { inner: stream, hit_eof: false })?;
    Ok(u.stats)
}
