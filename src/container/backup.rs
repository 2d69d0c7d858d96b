//! `hutch export NAME FILE` and `hutch import FILE [NAME]`: a container (and, with
//! `--snapshots`, its snapshots) as one archive of the format `storage::archive`
//! documents, and back, on this hutch root or another.
//!
//! Export reads the rootfs as the container sees it (an overlay's layers merged in a
//! detached mount that goes away with the command); a running container is frozen and
//! its filesystem synced for the time it takes, as for a snapshot.
//!
//! Import verifies the whole archive before it creates anything, then builds the
//! container in a staging directory and renames it into place, as `create` does: an
//! interrupted import leaves nothing the next command does not clear. The rootfs and
//! each snapshot become `dir` storage (`btrfs` subvolumes when the hutch root is on
//! btrfs). Imported under its own name the container keeps its identity (hostname,
//! machine-id, MACs); under another name it is a copy and gets its own, as
//! `hutch copy` gives.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::create::{Reserved, Staging, put_in_place, staging_dir};
use super::lifecycle::lock;
use super::observe::{Status, reconcile};
use super::snapshots::Frozen;
use super::{Error, Notices, io_err};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::config::Config;
use crate::storage::archive::{self, Compression, Header, SnapshotEntry, Tree, Writer};
use crate::storage::{self, Kind, Layers, btrfs, snapshot};

/// What an export wrote.
#[derive(Debug)]
pub struct Exported {
    pub snapshots: usize,
    pub entries: u64,
    pub size: u64,
}

pub fn export(
    paths: &Paths,
    name: &str,
    file: &Path,
    with_snapshots: bool,
    compression: Compression,
) -> Result<(Exported, Notices), Error> {
    super::require_exists(paths, name)?;
    let _lock = lock(paths, name)?;
    let mut notices = Notices::new();
    // Read once: parsed here, archived as it is.
    let path = paths.config(name);
    let text =
        std::fs::read_to_string(&path).map_err(|source| crate::config::Error::Read { path: path.clone(), source })?;
    let config = Config::parse(&path, &text)?;
    let obs = reconcile(paths, name, Some(&config), &mut notices)?;
    let dir = paths.container(name);
    let layers = config.layers(paths, &dir);
    let snaps = if with_snapshots { snapshot::list(&dir)? } else { Vec::new() };
    let header = Header {
        format: archive::FORMAT,
        name: name.into(),
        exported_ms: fsutil::now_ms(),
        hutch: env!("CARGO_PKG_VERSION").into(),
        storage: config.rootfs.storage,
        snapshots: snaps
            .iter()
            .map(|s| SnapshotEntry { name: s.name.clone(), created_ms: s.record.created_ms })
            .collect(),
    };
    let mut w = Writer::create(file, compression)?;
    w.add_file(archive::HEADER, toml::to_string(&header).expect("a header serializes").as_bytes())?;
    w.add_file(archive::CONFIG, text.as_bytes())?;

    let mut frozen = match obs.status {
        Status::Stopped => None,
        status => Some(Frozen::new(paths, name, status)?),
    };
    if let Some(f) = &frozen {
        f.sync(&dir)?;
    }
    let mut entries = 0;
    // A running overlay container's upper layer is in use by its mount, and overlayfs
    // leaves it undefined to read one as the lower layer of another: the frozen
    // container's upper layer is copied (reflinked where the filesystem can), as a live
    // snapshot does, and the container thawed before the long part, the archiving.
    let mut copied = None;
    let current = match &layers {
        Some(l) if frozen.is_some() => {
            let copy = TempLayer::copy_of(l)?;
            drop(frozen.take());
            let view =
                Layers::frozen(l.lower.clone(), l.rw.clone(), &[l.layers.clone(), vec![copy.name.clone()]].concat());
            copied = Some(copy);
            View::merged(&view, &dir)?
        }
        Some(l) => View::merged(&Layers { frozen: true, ..l.clone() }, &dir)?,
        None => View::Dir(config.rootfs_path(&dir)),
    };
    entries += w.add_tree(archive::ROOTFS, &current.path())?;
    drop(current);
    drop(copied);
    drop(frozen);
    for s in &snaps {
        let sdir = snapshot::path(&dir, &s.name);
        let text = std::fs::read_to_string(sdir.join(snapshot::CONFIG)).unwrap_or_else(|_| text.clone());
        w.add_file(&format!("{}/{}/{}", archive::SNAPSHOTS, s.name, archive::CONFIG), text.as_bytes())?;
        let view = match (&layers, s.record.storage) {
            (Some(l), Kind::Overlay) => {
                View::merged(&Layers::frozen(l.lower.clone(), l.rw.clone(), &s.record.layers), &dir)?
            }
            _ => View::Dir(sdir.join("rootfs")),
        };
        entries += w.add_tree(&Tree::Snapshot(s.name.clone()).prefix(), &view.path())?;
    }
    let size = w.finish()?;
    Ok((Exported { snapshots: snaps.len(), entries, size }, notices))
}

/// A copy of an overlay container's upper layer under `overlay/`, removed when dropped
/// (one a killed export leaves is an unreferenced layer, which `snapshot::collect`
/// removes).
struct TempLayer {
    path: PathBuf,
    name: String,
}

impl TempLayer {
    fn copy_of(l: &Layers) -> Result<TempLayer, Error> {
        let name = storage::new_layer_name();
        let path = l.rw.join(&name);
        let layer = TempLayer { path: path.clone(), name };
        crate::rootfs::copy::copy_tree(&l.upper(), &path, true).map_err(io_err("copy", l.upper()))?;
        Ok(layer)
    }
}

impl Drop for TempLayer {
    fn drop(&mut self) {
        let _ = fsutil::remove_tree(&self.path);
    }
}

/// A tree to read: a directory, or an overlay mounted detached (gone when dropped).
enum View {
    Dir(PathBuf),
    Mount(OwnedFd),
}

impl View {
    fn merged(layers: &Layers, scratch: &Path) -> Result<View, Error> {
        Ok(View::Mount(storage::overlay::mount(layers, None, scratch, false)?))
    }

    fn path(&self) -> PathBuf {
        match self {
            View::Dir(p) => p.clone(),
            View::Mount(fd) => PathBuf::from(format!("/proc/self/fd/{}/.", fd.as_raw_fd())),
        }
    }
}

pub fn import(paths: &Paths, file: &Path, name: Option<&str>, kind: Option<Kind>) -> Result<(String, Notices), Error> {
    let mut notices = Notices::new();
    let f = File::open(file).map_err(io_err("open", file))?;
    let v = archive::verify(&f, file)?;
    let label = |what: &str| PathBuf::from(format!("{}:{what}", file.display()));
    let mut config = Config::parse(&label(archive::CONFIG), &v.config)?;
    let mut snap_configs = Vec::new();
    for s in &v.header.snapshots {
        let p = label(&format!("{}/{}/{}", archive::SNAPSHOTS, s.name, archive::CONFIG));
        snap_configs.push((s, Config::parse(&p, &v.snapshot_configs[&s.name])?));
    }
    let name = name.unwrap_or(&v.header.name).to_string();
    crate::base::name::validate(&name)?;
    let kind = storage_kind(paths, kind)?;

    let _lock = lock(paths, &name)?;
    if paths.container(&name).exists() {
        return Err(Error::Exists { name });
    }
    fsutil::ensure_dir(&paths.containers(), 0o711).map_err(io_err("create", paths.containers()))?;
    check_space(paths, &v)?;
    let staging = Staging { path: staging_dir(paths, &name), armed: true };
    if staging.path.exists() {
        fsutil::remove_tree(&staging.path).map_err(io_err("remove", &staging.path))?;
    }
    fsutil::ensure_dir(&staging.path, 0o700).map_err(io_err("create", &staging.path))?;
    unpack_tree(&f, file, &v, &Tree::Rootfs, &staging.path.join("rootfs"), kind)?;
    for (s, snap_config) in &mut snap_configs {
        let sdir = snapshot::path(&staging.path, &s.name);
        fsutil::ensure_dir(&snapshot::root(&staging.path), 0o700).map_err(io_err("create", &sdir))?;
        std::fs::create_dir(&sdir).map_err(io_err("create", &sdir))?;
        unpack_tree(&f, file, &v, &Tree::Snapshot(s.name.clone()), &sdir.join("rootfs"), kind)?;
        as_stored(snap_config, kind);
        snap_config.save(&sdir.join(snapshot::CONFIG))?;
        let record = snapshot::Record { created_ms: s.created_ms, storage: kind, layers: Vec::new() };
        snapshot::write_record(&sdir, &record)?;
    }
    as_stored(&mut config, kind);
    if name != v.header.name {
        let ephemeral = config.ephemeral;
        super::copy::new_identity(paths, &name, &mut config, ephemeral, &mut notices);
        super::copy::personalize(paths, &name, &staging.path, &config)?;
    }
    crate::network::attach::reserve_all(paths, &name, &mut config.nics)?;
    let nics = config.nics.clone();
    let reserved = Reserved { paths, name: &name, nics: &nics, armed: true };
    put_in_place(paths, &name, staging, reserved, &config)?;
    Ok((name, notices))
}

/// `dir`, or `btrfs` when the hutch root is on btrfs; overlay needs an image below it.
fn storage_kind(paths: &Paths, kind: Option<Kind>) -> Result<Kind, Error> {
    let root = paths.containers();
    let on = if root.exists() { root } else { paths.containers().parent().map(Path::to_path_buf).unwrap_or_default() };
    match kind {
        Some(Kind::Overlay) => Err(Error::Other {
            action: "import",
            name: "with overlay storage".into(),
            message: "overlay needs an image below it, and an archive holds whole trees (use --storage dir or btrfs)"
                .into(),
        }),
        Some(k) => Ok(k),
        None if btrfs::is_btrfs(&on) => Ok(Kind::Btrfs),
        None => Ok(Kind::Dir),
    }
}

/// The trees' data must fit, with a margin, before anything is written.
fn check_space(paths: &Paths, v: &archive::Verified) -> Result<(), Error> {
    let root = paths.containers();
    let dir = File::open(&root).map_err(io_err("open", &root))?;
    let free = crate::rootfs::unpack::free_bytes(&dir).map_err(io_err("read the free space of", &root))?;
    if v.data_bytes > free {
        return Err(Error::Other {
            action: "import",
            name: v.header.name.clone(),
            message: format!(
                "it holds {} of data and {} has {} free",
                crate::base::output::bytes(v.data_bytes),
                root.display(),
                crate::base::output::bytes(free)
            ),
        });
    }
    Ok(())
}

/// Makes `dst` (a subvolume for btrfs) and unpacks `tree` into it.
fn unpack_tree(f: &File, file: &Path, v: &archive::Verified, tree: &Tree, dst: &Path, kind: Kind) -> Result<(), Error> {
    if kind == Kind::Btrfs {
        btrfs::create_subvolume(dst)?;
    } else {
        std::fs::create_dir(dst).map_err(io_err("create", dst))?;
    }
    let root = rustix::fs::open(
        dst,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| io_err("open", dst)(e.into()))?;
    archive::extract(f, file, v, tree, root, dst)?;
    Ok(())
}

/// How the imported tree is stored, in place of how the exporter stored it.
fn as_stored(config: &mut Config, kind: Kind) {
    config.rootfs.storage = kind;
    config.rootfs.path = "rootfs".into();
    config.rootfs.layers.clear();
    config.rootfs.upper = storage::DEFAULT_UPPER.into();
}
