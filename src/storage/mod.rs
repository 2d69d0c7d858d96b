//! Where a container's root filesystem lives on disk and how it becomes a mount.
//!
//! - `dir`: a full copy in `<container>/rootfs`.
//! - `overlay`: the cached image's rootfs is the lower layer, shared by every container
//!   made from it; the container's changes go to `<container>/overlay/{upper,work}`.
//! - `btrfs`: `<container>/rootfs` is a snapshot of the image's subvolume.
//!
//! On disk every layer keeps the distribution's own ids (root-owned). An unprivileged
//! container sees them through idmapped mounts: for `dir` and `btrfs` the rootfs mount
//! itself is idmapped; for `overlay` each layer is (overlayfs accepts idmapped layers
//! since Linux 5.19, and an overlay mount cannot be idmapped itself). One cached image
//! thus serves containers with any id map, and nothing is ever chowned.

pub mod archive;
pub mod btrfs;
pub mod overlay;
pub mod snapshot;

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::mount::OpenTreeFlags;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::sys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Dir,
    Overlay,
    Btrfs,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::Overlay => "overlay",
            Kind::Btrfs => "btrfs",
        }
    }
    pub fn parse(s: &str) -> Result<Kind, Error> {
        match s {
            "dir" => Ok(Kind::Dir),
            "overlay" => Ok(Kind::Overlay),
            "btrfs" => Ok(Kind::Btrfs),
            other => Err(Error::UnknownKind(other.to_string())),
        }
    }
    pub fn is_dir(&self) -> bool {
        *self == Kind::Dir
    }
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to use storage {0:?}: it is not one of overlay, btrfs, dir")]
    UnknownKind(String),
    #[error("failed to use btrfs storage for {path}: it is not on a btrfs filesystem")]
    NotBtrfs { path: PathBuf },
    #[error("failed to {action} {path}: {source}")]
    Io { action: &'static str, path: PathBuf, source: io::Error },
    #[error("failed to mount the overlay for {path}: {message}")]
    Overlay { path: PathBuf, message: String },
    /// A failure in the merged view (it comes from the process that works there).
    #[error("{source} (in the merged view of {path})")]
    InMerged { path: PathBuf, source: crate::runtime::wire::WireError },
    #[error("failed to open the root filesystem {path}: {source}")]
    OpenRoot { path: PathBuf, source: io::Error },
    #[error("failed to read the snapshot record {path}: {message}")]
    BadRecord { path: PathBuf, message: String },
    #[error("failed to find the overlay layers of {path}: its configuration names no image")]
    NoLayers { path: PathBuf },
    #[error("failed to name snapshot {name}: a snapshot of that name exists")]
    SnapshotExists { name: String },
    #[error("failed to create an idmapped mount of {path} (filesystem magic {fstype}): {source}")]
    NoIdmappedMount { path: PathBuf, fstype: String, source: io::Error },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::NotBtrfs { .. } => Some("use --storage overlay or --storage dir".into()),
            Error::BadRecord { .. } => {
                Some("the snapshot was not written by this hutch; fix or remove its directory by hand".into())
            }
            Error::SnapshotExists { .. } => Some("choose another name (see `hutch snapshot list NAME`)".into()),
            Error::InMerged { source, .. } => source.hint(),
            Error::NoIdmappedMount { .. } => Some(
                "idmapped mounts need Linux 5.12 or later and a filesystem that supports them (ext4, xfs, btrfs, \
                 tmpfs); or create the container with --privileged"
                    .into(),
            ),
            Error::Overlay { .. } => Some(
                "overlayfs needs Linux 5.19 or later for unprivileged containers; or create with --storage dir".into(),
            ),
            _ => None,
        }
    }
}

pub(crate) fn io_err(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { action, path, source }
}

/// The storage a new container from an image gets when none is asked for: a btrfs
/// snapshot when the image cache is a btrfs subvolume, an overlay otherwise.
pub fn default_for(image_rootfs: &Path) -> Kind {
    if btrfs::is_subvolume(image_rootfs) { Kind::Btrfs } else { Kind::Overlay }
}

/// The upper layer of an overlay container that has never been snapshotted.
pub const DEFAULT_UPPER: &str = "upper";

/// Whether `name` is one of hutch's layer directories under `overlay/`: `upper`, or
/// `L-` and 16 lowercase hex digits (a layer made by a snapshot).
pub fn is_layer_name(name: &str) -> bool {
    name == DEFAULT_UPPER
        || name
            .strip_prefix("L-")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// A fresh name for a layer.
pub fn new_layer_name() -> String {
    format!("L-{}", &crate::sys::random_hex128()[..16])
}

/// The overlay layers of a container: the image's rootfs below; above it the frozen
/// layers snapshots made (oldest first), then the upper layer, all directories in the
/// container's `overlay/` beside `work/` (one directory, since overlayfs wants upper
/// and work on the same mount, and one idmapped attachment of it serves every layer).
#[derive(Debug, Clone)]
pub struct Layers {
    pub lower: PathBuf,
    pub rw: PathBuf,
    /// Names under `rw`, oldest first.
    pub layers: Vec<String>,
    /// Name under `rw`.
    pub upper: String,
    /// A read-only view (a snapshot's): `upper` is one more read-only layer, and
    /// nothing is written anywhere.
    pub frozen: bool,
}

impl Layers {
    /// A container's layers before any snapshot: the image, then `upper/`.
    pub fn new(lower: PathBuf, rw: PathBuf) -> Layers {
        Layers { lower, rw, layers: Vec::new(), upper: DEFAULT_UPPER.into(), frozen: false }
    }
    /// The read-only view of a chain of layers (oldest first, at least one).
    pub fn frozen(lower: PathBuf, rw: PathBuf, chain: &[String]) -> Layers {
        let (upper, layers) = chain.split_last().map(|(u, l)| (u.clone(), l.to_vec())).unwrap_or_default();
        Layers { lower, rw, layers, upper, frozen: true }
    }
    pub fn upper(&self) -> PathBuf {
        self.rw.join(&self.upper)
    }
    pub fn work(&self) -> PathBuf {
        self.rw.join("work")
    }
    /// The read-only layers as overlayfs takes them, topmost first, with `rw` and
    /// `lower` standing where those directories are seen.
    pub fn lowers(&self, lower: &Path, rw: &Path) -> Vec<PathBuf> {
        let top = self.frozen.then_some(&self.upper);
        top.into_iter().chain(self.layers.iter().rev()).map(|l| rw.join(l)).chain([lower.to_path_buf()]).collect()
    }
}

/// Makes the container's root filesystem at `container_dir/rootfs` from an image's
/// rootfs, by the given kind.
pub fn clone_image(kind: Kind, image_rootfs: &Path, container_dir: &Path, privileged: bool) -> Result<(), Error> {
    let rootfs = container_dir.join("rootfs");
    match kind {
        Kind::Dir => {
            crate::rootfs::copy::copy_tree(image_rootfs, &rootfs, privileged).map_err(io_err("copy", image_rootfs))?;
        }
        Kind::Overlay => {
            let rw = container_dir.join("overlay");
            for d in [&rootfs, &rw, &rw.join(DEFAULT_UPPER), &rw.join("work")] {
                std::fs::create_dir(d).map_err(io_err("create", d))?;
            }
            // The merged root takes the lower root's mode and owner from overlayfs;
            // the mountpoint itself stays private to root.
            std::fs::set_permissions(&rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(io_err("set the mode of", &rootfs))?;
        }
        Kind::Btrfs => {
            if !btrfs::is_subvolume(image_rootfs) {
                return Err(Error::NotBtrfs { path: image_rootfs.to_path_buf() });
            }
            btrfs::snapshot(image_rootfs, &rootfs)?;
        }
    }
    Ok(())
}

/// A detached mount of the container's root filesystem, idmapped to `userns` when
/// one is given, and `nodev`. `scratch` is an empty directory the overlay layers can
/// be attached on while the overlay is made (in the caller's private mount namespace).
pub fn root_mount(
    rootfs: &Path,
    layers: Option<&Layers>,
    userns: Option<overlay::Userns<'_>>,
    scratch: &Path,
) -> Result<OwnedFd, Error> {
    if let Some(layers) = layers {
        return overlay::mount(layers, userns, scratch, true);
    }
    let tree = rustix::mount::open_tree(
        rustix::fs::CWD,
        rootfs,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC | OpenTreeFlags::AT_RECURSIVE,
    )
    .map_err(|e| Error::OpenRoot { path: rootfs.to_path_buf(), source: e.into() })?;
    if let Some(userns) = userns {
        idmap(&tree, userns.fd).map_err(|e| idmap_error(rootfs, e))?;
    }
    Ok(tree)
}

/// Makes a detached mount idmapped (to `userns`) and nodev.
pub(crate) fn idmap(tree: &OwnedFd, userns: BorrowedFd<'_>) -> io::Result<()> {
    sys::mount_setattr(tree.as_fd(), true, sys::MOUNT_ATTR_IDMAP | sys::MOUNT_ATTR_NODEV, 0, Some(userns))
}

pub(crate) fn idmap_error(path: &Path, source: io::Error) -> Error {
    let fstype = rustix::fs::statfs(path).map(|s| format!("{:#x}", s.f_type)).unwrap_or_else(|_| "unknown".into());
    Error::NoIdmappedMount { path: path.to_path_buf(), fstype, source }
}
