//! Snapshots on disk: `<container>/snapshots/<NAME>/`, each with `snapshot.toml` (when
//! it was taken, by which storage, and for overlay the chain of layers it is) and
//! `config.toml` (the configuration at that moment), plus for `dir` and `btrfs` its
//! `rootfs/` (a copy, or a subvolume snapshot).
//!
//! Per storage kind:
//! - `overlay`: a stopped container's upper layer is frozen in place: it becomes one
//!   more read-only layer of the container's chain and of the snapshot's, and an empty
//!   upper layer takes its place, so taking and restoring are a few renames and a
//!   config write, whatever the rootfs holds. A running container's upper layer is in
//!   use by its mount, so it is copied (reflinked where the filesystem can) instead.
//!   Layers nothing refers to any more are collected (`collect`).
//! - `btrfs`: subvolume snapshots, both ways.
//! - `dir`: copies, reflinked where the filesystem can (else a full copy, and the
//!   caller says so).
//!
//! A snapshot is made in `snapshots/.staging-<NAME>` and renamed into place when
//! complete; a restore makes the new tree beside the rootfs and exchanges the two
//! atomically. Whatever an interrupted command left is cleared by `recover`, under
//! the container's lock. All of it runs with the container's lock held, on a
//! container that is stopped or frozen (the caller sees to both).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Kind, Layers, btrfs, io_err};
use crate::base::fsutil;

pub const RECORD: &str = "snapshot.toml";
pub const CONFIG: &str = "config.toml";
const STAGING: &str = ".staging-";
const TRASH: &str = ".trash-";
/// Beside the rootfs while a restore makes its replacement.
const NEW_ROOTFS: &str = ".rootfs-new";

/// `snapshot.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Unix time in milliseconds.
    pub created_ms: u64,
    pub storage: Kind,
    /// overlay: the layers under `overlay/` the snapshot is, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Snapshot {
    pub name: String,
    pub record: Record,
}

/// What a new snapshot of an overlay container changed in its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Chain {
    pub layers: Vec<String>,
    pub upper: String,
}

pub fn root(container_dir: &Path) -> PathBuf {
    container_dir.join("snapshots")
}

pub fn path(container_dir: &Path, name: &str) -> PathBuf {
    root(container_dir).join(name)
}

/// The container's snapshots, oldest first. A snapshot whose record cannot be read
/// is an error (it is reported, never taken for absent).
pub fn list(container_dir: &Path) -> Result<Vec<Snapshot>, Error> {
    let dir = root(container_dir);
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::Io { action: "read", path: dir, source: e }),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(io_err("read", &dir))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        out.push(Snapshot { record: read_record(&e.path())?, name });
    }
    out.sort_by(|a, b| (a.record.created_ms, &a.name).cmp(&(b.record.created_ms, &b.name)));
    Ok(out)
}

pub fn read_record(snapshot_dir: &Path) -> Result<Record, Error> {
    let p = snapshot_dir.join(RECORD);
    let text = std::fs::read_to_string(&p).map_err(io_err("read", &p))?;
    toml::from_str(&text).map_err(|e| Error::BadRecord { path: p, message: e.message().to_string() })
}

pub fn write_record(snapshot_dir: &Path, record: &Record) -> Result<(), Error> {
    let p = snapshot_dir.join(RECORD);
    let text = toml::to_string(record).expect("a record serializes");
    fsutil::atomic_write(&p, text.as_bytes(), 0o600).map_err(io_err("write", &p))
}

/// The next default name: `snapN` for the smallest N above every existing `snapN`.
pub fn next_name(existing: &[Snapshot]) -> String {
    let n = existing.iter().filter_map(|s| s.name.strip_prefix("snap")?.parse::<u64>().ok()).max();
    format!("snap{}", n.map_or(0, |n| n + 1))
}

/// Takes snapshot `name` of the rootfs (at `rootfs`, or `layers` for overlay), with the
/// configuration text `config`. `live`: the container runs (frozen by the caller), so
/// an overlay's upper layer is copied, not frozen in place. Returns the new chain the
/// caller must save in the configuration *before* calling `publish`, when there is
/// one, and whether the data was copied in full (no reflinks).
pub fn take(
    container_dir: &Path,
    name: &str,
    kind: Kind,
    rootfs: &Path,
    layers: Option<&Layers>,
    config: &str,
    live: bool,
) -> Result<Taken, Error> {
    let staging = root(container_dir).join(format!("{STAGING}{name}"));
    fsutil::ensure_dir(&root(container_dir), 0o700).map_err(io_err("create", root(container_dir)))?;
    if staging.exists() {
        remove_any(&staging)?;
    }
    std::fs::create_dir(&staging).map_err(io_err("create", &staging))?;
    let mut taken = Taken { staging: staging.clone(), chain: None, full_copy: false };
    let mut record = Record { created_ms: fsutil::now_ms(), storage: kind, layers: Vec::new() };
    match (kind, layers) {
        (Kind::Overlay, Some(l)) if live => {
            let copy = super::new_layer_name();
            let stats = copy_tree(&l.upper(), &l.rw.join(&copy))?;
            taken.full_copy = !stats.all_cloned();
            record.layers = l.layers.iter().cloned().chain([copy]).collect();
        }
        (Kind::Overlay, Some(l)) => {
            let fresh = super::new_layer_name();
            std::fs::create_dir(l.rw.join(&fresh)).map_err(io_err("create", l.rw.join(&fresh)))?;
            copy_owner(&l.upper(), &l.rw.join(&fresh))?;
            record.layers = l.layers.iter().cloned().chain([l.upper.clone()]).collect();
            taken.chain = Some(Chain { layers: record.layers.clone(), upper: fresh });
        }
        (Kind::Overlay, None) => return Err(Error::NoLayers { path: container_dir.to_path_buf() }),
        (Kind::Btrfs, _) => btrfs::snapshot(rootfs, &staging.join("rootfs"))?,
        (Kind::Dir, _) => {
            let stats = copy_tree(rootfs, &staging.join("rootfs"))?;
            taken.full_copy = !stats.all_cloned();
        }
    }
    let cfg = staging.join(CONFIG);
    fsutil::atomic_write(&cfg, config.as_bytes(), 0o600).map_err(io_err("write", &cfg))?;
    write_record(&staging, &record)?;
    Ok(taken)
}

/// A snapshot made but not yet in place.
#[derive(Debug)]
pub struct Taken {
    staging: PathBuf,
    /// overlay, stopped: the chain to save in the configuration before `publish`.
    pub chain: Option<Chain>,
    /// The data was copied, not shared (dir or a live overlay, without reflinks).
    pub full_copy: bool,
}

/// Puts a taken snapshot in place as `name`.
pub fn publish(container_dir: &Path, taken: Taken, name: &str) -> Result<(), Error> {
    rename_noreplace(&taken.staging, &path(container_dir, name)).map_err(|e| {
        if e.raw_os_error() == Some(libc::EEXIST) {
            Error::SnapshotExists { name: name.into() }
        } else {
            Error::Io { action: "move into place", path: taken.staging.clone(), source: e }
        }
    })
}

/// Discards a taken snapshot that will not be published (a later step failed).
pub fn discard(taken: Taken) {
    let _ = remove_any(&taken.staging);
}

/// Restores the rootfs to snapshot `snap`. For overlay, returns the chain to save in
/// the configuration (then `collect` removes the layers nothing refers to); for dir
/// and btrfs the rootfs is replaced here, atomically.
pub fn restore(
    container_dir: &Path,
    snap: &Snapshot,
    rootfs: &Path,
    layers: Option<&Layers>,
) -> Result<RestoreOutcome, Error> {
    let from = path(container_dir, &snap.name);
    match (snap.record.storage, layers) {
        (Kind::Overlay, Some(l)) => {
            let fresh = super::new_layer_name();
            std::fs::create_dir(l.rw.join(&fresh)).map_err(io_err("create", l.rw.join(&fresh)))?;
            copy_owner(&l.upper(), &l.rw.join(&fresh))?;
            Ok(RestoreOutcome {
                chain: Some(Chain { layers: snap.record.layers.clone(), upper: fresh }),
                full_copy: false,
            })
        }
        (Kind::Overlay, None) => Err(Error::NoLayers { path: container_dir.to_path_buf() }),
        (kind, _) => {
            let new = rootfs.with_file_name(NEW_ROOTFS);
            if new.exists() {
                remove_any(&new)?;
            }
            let mut full_copy = false;
            if kind == Kind::Btrfs {
                btrfs::snapshot(&from.join("rootfs"), &new)?;
            } else {
                full_copy = !copy_tree(&from.join("rootfs"), &new)?.all_cloned();
            }
            rustix::fs::renameat_with(
                rustix::fs::CWD,
                &new,
                rustix::fs::CWD,
                rootfs,
                rustix::fs::RenameFlags::EXCHANGE,
            )
            .map_err(|e| Error::Io { action: "exchange", path: rootfs.to_path_buf(), source: e.into() })?;
            // The restore is complete. Deleting the tree it replaced takes the longest
            // (a btrfs subvolume drops all its cached pages): it goes to the trash, which
            // a background process empties (and `recover` does, should that be killed).
            let trash = root(container_dir).join(format!("{TRASH}rootfs-{}", super::new_layer_name()));
            match std::fs::rename(&new, &trash) {
                Ok(()) => remove_in_background(&trash),
                Err(_) => remove_any(&new)?,
            }
            Ok(RestoreOutcome { chain: None, full_copy })
        }
    }
}

#[derive(Debug)]
pub struct RestoreOutcome {
    pub chain: Option<Chain>,
    pub full_copy: bool,
}

/// Removes snapshot `name` (an overlay's layers go with `collect`).
pub fn delete(container_dir: &Path, name: &str) -> Result<(), Error> {
    let p = path(container_dir, name);
    let trash = root(container_dir).join(format!("{TRASH}{name}"));
    std::fs::rename(&p, &trash).map_err(io_err("move aside", &p))?;
    if trash.join("rootfs").exists() {
        remove_any(&trash.join("rootfs"))?;
    }
    remove_any(&trash)
}

pub fn rename(container_dir: &Path, old: &str, new: &str) -> Result<(), Error> {
    rename_noreplace(&path(container_dir, old), &path(container_dir, new)).map_err(|e| {
        if e.raw_os_error() == Some(libc::EEXIST) {
            Error::SnapshotExists { name: new.into() }
        } else {
            Error::Io { action: "rename", path: path(container_dir, old), source: e }
        }
    })
}

/// Removes what an interrupted snapshot command left: staging and trash directories,
/// a restore's half-made rootfs. An overlay snapshot whose chain the configuration
/// already holds (the command died after its commit point) is put in place instead.
/// Returns what it did, for notices.
pub fn recover(container_dir: &Path, rootfs: &Path, chain: Option<&[String]>) -> Vec<String> {
    let mut done = Vec::new();
    let new = rootfs.with_file_name(NEW_ROOTFS);
    if new.exists() && remove_any(&new).is_ok() {
        done.push(format!("removed {} left by an interrupted restore", new.display()));
    }
    let Ok(rd) = std::fs::read_dir(root(container_dir)) else { return done };
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(snap) = n.strip_prefix(STAGING) {
            let committed = read_record(&e.path()).is_ok_and(|r| {
                r.storage == Kind::Overlay && chain.is_some_and(|c| !r.layers.is_empty() && c.starts_with(&r.layers))
            });
            if committed && rename_noreplace(&e.path(), &path(container_dir, snap)).is_ok() {
                done.push(format!("completed snapshot {snap}, which an interrupted command had taken"));
                continue;
            }
        } else if !n.starts_with(TRASH) {
            continue;
        }
        if remove_any(&e.path()).is_ok() {
            done.push(format!("removed {} left by an interrupted command", e.path().display()));
        }
    }
    done
}

/// Removes the overlay layers that neither the container's chain nor any snapshot
/// refers to. Does nothing when a snapshot's record cannot be read (state hutch cannot
/// read is never deleted). Returns the names removed.
pub fn collect(container_dir: &Path, layers: &Layers) -> Result<Vec<String>, Error> {
    let mut used: Vec<String> = layers.layers.iter().cloned().chain([layers.upper.clone()]).collect();
    for s in list(container_dir)? {
        used.extend(s.record.layers);
    }
    let mut removed = Vec::new();
    let rd = std::fs::read_dir(&layers.rw).map_err(io_err("read", &layers.rw))?;
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if super::is_layer_name(&n) && !used.contains(&n) && e.file_type().is_ok_and(|t| t.is_dir()) {
            fsutil::remove_tree(&e.path()).map_err(io_err("remove", e.path()))?;
            removed.push(n);
        }
    }
    Ok(removed)
}

/// Disk space (allocated blocks) used by the tree at `path`, each inode counted once.
pub fn disk_usage(path: &Path) -> u64 {
    fn walk(p: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let Ok(md) = std::fs::symlink_metadata(p) else { return 0 };
        if md.nlink() > 1 && !md.is_dir() && !seen.insert((md.dev(), md.ino())) {
            return 0;
        }
        let mut n = md.blocks() * 512;
        if md.is_dir() {
            for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                n += walk(&e.path(), seen);
            }
        }
        n
    }
    walk(path, &mut Default::default())
}

/// The space a snapshot holds of its own: its tree (dir, btrfs: all of it, shared
/// extents included), or the layer it froze (overlay).
pub fn own_usage(container_dir: &Path, snap: &Snapshot, rw: Option<&Path>) -> u64 {
    match (snap.record.storage, rw, snap.record.layers.last()) {
        (Kind::Overlay, Some(rw), Some(top)) => disk_usage(&rw.join(top)),
        _ => disk_usage(&path(container_dir, &snap.name).join("rootfs")),
    }
}

/// A faithful copy of an on-disk tree (every file kind, owners as stored, xattrs such
/// as overlayfs's own), reflinked where the filesystem can.
fn copy_tree(src: &Path, dst: &Path) -> Result<crate::rootfs::copy::Stats, Error> {
    crate::rootfs::copy::copy_tree(src, dst, true).map_err(io_err("copy", src))
}

/// Gives a new upper layer the owner and mode of the one it replaces (the root
/// directory of the merged view takes them from the upper layer).
fn copy_owner(from: &Path, to: &Path) -> Result<(), Error> {
    let md = std::fs::metadata(from).map_err(io_err("read", from))?;
    std::os::unix::fs::chown(to, Some(md.uid()), Some(md.gid())).map_err(io_err("set the owner of", to))?;
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777))
        .map_err(io_err("set the mode of", to))
}

/// Removes `p` in a child process the caller does not wait for (in place when it
/// cannot fork). The child keeps the caller's descriptors, the container's lock among
/// them, so the next command on the container waits for the removal to end; its
/// standard input and output go to /dev/null, so whoever reads the caller's output
/// (`out=$(hutch ...)`) does not wait for it.
fn remove_in_background(p: &Path) {
    match crate::sys::clone3_for("remove a replaced rootfs in the background", 0, None) {
        Ok(crate::sys::Forked::Child) => {
            if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                for fd in 0..3 {
                    // SAFETY: dup2 on a descriptor this process owns; the standard
                    // descriptors it replaces are not used as Rust objects here.
                    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
                }
            }
            let _ = remove_any(p);
            crate::sys::exit_now(0)
        }
        Ok(crate::sys::Forked::Parent { .. }) => {}
        Err(_) => {
            let _ = remove_any(p);
        }
    }
}

/// Removes a tree, as a btrfs subvolume when it is one.
pub fn remove_any(p: &Path) -> Result<(), Error> {
    if btrfs::is_subvolume(p) && btrfs::delete_subvolume(p).is_ok() {
        return Ok(());
    }
    fsutil::remove_tree(p).map_err(io_err("remove", p))
}

fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, rustix::fs::RenameFlags::NOREPLACE)?;
    std::fs::File::open(to.parent().unwrap_or(Path::new("/")))?.sync_all()
}

#[cfg(test)]
mod tests;
