//! The archive `hutch export` writes and `hutch import` reads (format 1): one tar
//! stream, compressed as a whole with zstd or xz (or not at all; recognised by its
//! first bytes on reading), holding in this order
//!
//! | entry | what it is |
//! |---|---|
//! | `hutch-export.toml` | `format = 1`, the container's name, when it was exported, by which hutch, its storage kind, and the snapshots the archive holds (name and when each was taken, oldest first) |
//! | `config.toml` | the container's configuration, as hutch saved it |
//! | `rootfs/...` | the root filesystem as the container sees it (an overlay's layers merged): numeric owners as stored, modes, mtimes, hard links, extended attributes as PAX `SCHILY.xattr.*` records |
//! | `snapshots/<SNAP>/config.toml`, `snapshots/<SNAP>/rootfs/...` | each snapshot's configuration and tree, the same way |
//! | `MANIFEST` | one line for each entry above, then `end <COUNT> <SHA256>` |
//!
//! A manifest line is `KIND MODE UID GID MTIME SIZE SHA256 XATTRS PATH [TARGET]`:
//! `KIND` one of `f d l h c b p` (file, directory, symlink, hard link, character and
//! block device, fifo), `MODE` in octal, `SHA256` of a file's data (`-` for the other
//! kinds), `XATTRS` the SHA-256 of its extended attributes (`-` for none), `TARGET` a
//! link's target or a device's `MAJOR,MINOR`. Paths and targets are written with every
//! byte outside `!`..`~` and `%` itself as `%XX`. The last line's `SHA256` is the
//! digest of the lines before it.
//!
//! Reading is two passes over the file. `verify` reads all of it and writes nothing:
//! every entry must be one of the above (no `..`, no absolute path, no other kind of
//! entry, a hard link only to an entry of its own tree), the manifest must describe
//! exactly the entries read, and their data must hash to it. `extract` then unpacks one
//! tree at a time with the hostile-archive rules of `--from-tar` (every path resolved
//! inside the tree, written data capped by the free space), and fails if the file is not
//! byte for byte the one `verify` read.

mod manifest;
mod read;
mod write;

#[cfg(test)]
mod tests;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Kind;

pub use read::{Verified, extract, verify};
pub use write::Writer;

/// The format this hutch writes and reads.
pub const FORMAT: u32 = 1;
pub const HEADER: &str = "hutch-export.toml";
pub const CONFIG: &str = "config.toml";
pub const ROOTFS: &str = "rootfs";
pub const SNAPSHOTS: &str = "snapshots";
pub const MANIFEST: &str = "MANIFEST";

/// The most `hutch-export.toml` or a `config.toml` may hold.
const SMALL_MAX: u64 = 1 << 20;
/// The most the manifest may hold (a line is about 150 bytes).
const MANIFEST_MAX: u64 = 512 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Compression {
    #[default]
    Zstd,
    Xz,
    None,
}

/// `hutch-export.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    pub name: String,
    /// Unix time in milliseconds.
    pub exported_ms: u64,
    /// The version of hutch that wrote it.
    pub hutch: String,
    pub storage: Kind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<SnapshotEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotEntry {
    pub name: String,
    pub created_ms: u64,
}

/// A tree the archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tree {
    Rootfs,
    Snapshot(String),
}

impl Tree {
    /// Its path in the archive.
    pub fn prefix(&self) -> String {
        match self {
            Tree::Rootfs => ROOTFS.into(),
            Tree::Snapshot(s) => format!("{SNAPSHOTS}/{s}/{ROOTFS}"),
        }
    }
}

/// What an entry of the archive is, by its (normalized) path.
#[derive(Debug, PartialEq, Eq)]
enum Part {
    Header,
    Config,
    Manifest,
    SnapshotConfig(String),
    /// In a tree: the tree, and the path below its root (empty for the root itself).
    InTree(Tree, Vec<u8>),
}

fn classify(path: &[u8]) -> Option<Part> {
    let below = |p: &[u8], prefix: &[u8]| -> Option<Vec<u8>> {
        if p == prefix {
            return Some(Vec::new());
        }
        let rest = p.strip_prefix(prefix)?.strip_prefix(b"/")?;
        Some(rest.to_vec())
    };
    match path {
        p if p == HEADER.as_bytes() => return Some(Part::Header),
        p if p == CONFIG.as_bytes() => return Some(Part::Config),
        p if p == MANIFEST.as_bytes() => return Some(Part::Manifest),
        _ => {}
    }
    if let Some(rest) = below(path, ROOTFS.as_bytes()) {
        return Some(Part::InTree(Tree::Rootfs, rest));
    }
    let rest = path.strip_prefix(SNAPSHOTS.as_bytes())?.strip_prefix(b"/")?;
    let (snap, rest) = match rest.iter().position(|b| *b == b'/') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => return None,
    };
    let snap = std::str::from_utf8(snap).ok()?.to_string();
    crate::base::name::validate(&snap).ok()?;
    if rest == CONFIG.as_bytes() {
        return Some(Part::SnapshotConfig(snap));
    }
    below(rest, ROOTFS.as_bytes()).map(|r| Part::InTree(Tree::Snapshot(snap), r))
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: std::io::Error },
    #[error("failed to read the archive {path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("failed to read the archive {path}: it is format {found}, and this hutch reads format {FORMAT}")]
    Version { path: PathBuf, found: u32 },
    #[error("failed to export to {path}: it already exists")]
    DestinationExists { path: PathBuf },
    #[error(transparent)]
    Unpack(#[from] crate::rootfs::Error),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Corrupt { .. } => Some(
                "the file is damaged, cut short or not made by `hutch export`; nothing was imported from it".into(),
            ),
            Error::Version { .. } => Some("import it with the newer hutch that exported it".into()),
            Error::DestinationExists { .. } => Some("choose another file name, or remove the old file".into()),
            Error::Unpack(e) => e.hint(),
            Error::Io { .. } => None,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a std::path::Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_path_buf(), source }
}
