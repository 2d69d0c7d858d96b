//! `hutch copy SRC[/SNAP] DST`: a new container from another one's rootfs (as it is
//! now, or as a snapshot holds it), sharing data where the storage can: a btrfs
//! snapshot, reflinked layers or files. The copy gets its own identity (hostname,
//! machine-id, MACs, address reservations) so it boots beside the original; published
//! host ports stay with the original (they would clash) and snapshots are not copied.
//!
//! Built in a staging directory and renamed into place when complete, as `create`
//! does, so an interrupted copy leaves nothing the next command does not clear.

use std::path::{Path, PathBuf};

use super::create::{Reserved, Staging, put_in_place, staging_dir};
use super::lifecycle::lock;
use super::observe::{Status, reconcile};
use super::snapshots::Frozen;
use super::{Error, Notices, io_err};
use crate::base::fsutil;
use crate::base::paths::Paths;
use crate::config::Config;
use crate::rootfs::copy::{Stats, copy_into, copy_tree};
use crate::storage::{self, Kind, Layers, btrfs, snapshot};

/// What to copy: a container, or one of its snapshots.
pub struct From<'a> {
    pub name: &'a str,
    pub snap: Option<&'a str>,
}

impl<'a> From<'a> {
    /// `NAME` or `NAME/SNAP`.
    pub fn parse(s: &'a str) -> From<'a> {
        match s.split_once('/') {
            Some((name, snap)) => From { name, snap: Some(snap) },
            None => From { name: s, snap: None },
        }
    }
}

/// The tree a copy reads: a directory, or a chain of overlay layers.
enum Tree {
    Dir(PathBuf),
    Layers(Layers),
}

pub fn copy(paths: &Paths, from: &From, dst: &str, kind: Option<Kind>, ephemeral: bool) -> Result<Notices, Error> {
    super::require_exists(paths, from.name)?;
    crate::base::name::validate(dst)?;
    if let Some(s) = from.snap {
        crate::base::name::validate(s)
            .map_err(|e| Error::BadSnapshotName { snap: s.into(), message: e.to_string() })?;
    }
    if from.name == dst {
        return Err(Error::Exists { name: dst.into() });
    }
    // Both locks, in name order, so two copies between the same containers never
    // wait for each other.
    let (first, second) = if from.name < dst { (from.name, dst) } else { (dst, from.name) };
    let _locks = (lock(paths, first)?, lock(paths, second)?);
    if paths.container(dst).exists() {
        return Err(Error::Exists { name: dst.into() });
    }
    let mut notices = Notices::new();
    let src_config = Config::load(&paths.config(from.name))?;
    let obs = reconcile(paths, from.name, Some(&src_config), &mut notices)?;
    let src_dir = paths.container(from.name);
    let (tree, mut config) = source(paths, from, &src_dir, &src_config)?;
    let src_kind = src_config.rootfs.storage;
    let kind = kind.unwrap_or(src_kind);
    if kind == Kind::Overlay && !matches!(tree, Tree::Layers(_)) {
        return Err(Error::Other {
            action: "copy",
            name: from.name.into(),
            message: format!(
                "overlay storage needs an image below it, and {} is {} storage",
                from.name,
                src_kind.as_str()
            ),
        });
    }
    let frozen = match (from.snap, obs.status) {
        (None, Status::Stopped) => None,
        (None, status) => Some(Frozen::new(paths, from.name, status)?),
        (Some(_), _) => None,
    };
    if let Some(f) = &frozen {
        f.sync(&src_dir)?;
    }

    let staging = Staging { path: staging_dir(paths, dst), armed: true };
    if staging.path.exists() {
        fsutil::remove_tree(&staging.path).map_err(io_err("remove", &staging.path))?;
    }
    fsutil::ensure_dir(&staging.path, 0o700).map_err(io_err("create", &staging.path))?;
    let stats = copy_rootfs(&tree, kind, &staging.path, &mut config)?;
    drop(frozen);
    if !stats.all_cloned() && stats.files_with_data > 0 {
        notices.push(format!(
            "this filesystem cannot share data: {} of data was copied",
            crate::base::output::bytes(stats.bytes)
        ));
    }

    new_identity(paths, dst, &mut config, ephemeral, &mut notices);
    personalize(paths, dst, &staging.path, &config)?;
    crate::network::attach::reserve_all(paths, dst, &mut config.nics)?;
    let nics = config.nics.clone();
    let reserved = Reserved { paths, name: dst, nics: &nics, armed: true };
    put_in_place(paths, dst, staging, reserved, &config)?;
    Ok(notices)
}

/// The tree to copy and the configuration that goes with it (a snapshot's own, when
/// it can be read).
fn source(paths: &Paths, from: &From, src_dir: &Path, current: &Config) -> Result<(Tree, Config), Error> {
    let layers = current.layers(paths, src_dir);
    let Some(snap) = from.snap else {
        let tree = match layers {
            Some(l) => Tree::Layers(l),
            None => Tree::Dir(current.rootfs_path(src_dir)),
        };
        return Ok((tree, current.clone()));
    };
    let s = snapshot::list(src_dir)?
        .into_iter()
        .find(|s| s.name == snap)
        .ok_or_else(|| Error::SnapshotNotFound { name: from.name.into(), snap: snap.into() })?;
    let dir = snapshot::path(src_dir, snap);
    let config = Config::load(&dir.join(snapshot::CONFIG)).unwrap_or_else(|_| current.clone());
    let tree = match (s.record.storage, layers) {
        (Kind::Overlay, Some(l)) => Tree::Layers(Layers::frozen(l.lower, l.rw, &s.record.layers)),
        _ => Tree::Dir(dir.join("rootfs")),
    };
    Ok((tree, config))
}

/// Makes `staging/rootfs` (and for overlay `staging/overlay`) from `tree` by `kind`,
/// and records in `config` how it is stored.
fn copy_rootfs(tree: &Tree, kind: Kind, staging: &Path, config: &mut Config) -> Result<Stats, Error> {
    let rootfs = staging.join("rootfs");
    let raw = |src: &Path, dst: &Path| copy_tree(src, dst, true).map_err(io_err("copy", src));
    let mut stats = Stats::default();
    let mut add = |s: Stats| {
        stats.bytes += s.bytes;
        stats.cloned += s.cloned;
        stats.files_with_data += s.files_with_data;
    };
    match (tree, kind) {
        (Tree::Layers(l), Kind::Overlay) => {
            // The same chain under the same names; a snapshot's gets a fresh upper layer.
            let rw = staging.join("overlay");
            std::fs::create_dir(&rw).map_err(io_err("create", &rw))?;
            let mut chain = l.layers.clone();
            let upper = if l.frozen {
                chain.push(l.upper.clone());
                let fresh = storage::new_layer_name();
                std::fs::create_dir(rw.join(&fresh)).map_err(io_err("create", rw.join(&fresh)))?;
                fresh
            } else {
                l.upper.clone()
            };
            for name in chain.iter().chain((!l.frozen).then_some(&upper)) {
                add(raw(&l.rw.join(name), &rw.join(name))?);
            }
            std::fs::create_dir(rw.join("work")).map_err(io_err("create", rw.join("work")))?;
            std::fs::create_dir(&rootfs).map_err(io_err("create", &rootfs))?;
            std::fs::set_permissions(&rootfs, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(io_err("set the mode of", &rootfs))?;
            (config.rootfs.layers, config.rootfs.upper) = (chain, upper);
        }
        (Tree::Dir(src), Kind::Btrfs) if btrfs::is_subvolume(src) => btrfs::snapshot(src, &rootfs)?,
        (Tree::Dir(src), Kind::Dir) => add(raw(src, &rootfs)?),
        (tree, kind) => {
            // Across kinds: the tree as the container sees it, copied in full.
            let mut into = |root: &Path| -> Result<(), String> {
                let r = if kind == Kind::Btrfs {
                    btrfs::create_subvolume(&rootfs).map_err(|e| e.to_string())?;
                    copy_into(root, &rootfs, true)
                } else {
                    copy_tree(root, &rootfs, true)
                };
                r.map(&mut add).map_err(|e| format!("failed to copy {}: {e}", root.display()))
            };
            match tree {
                Tree::Dir(src) => into(src).map_err(|message| Error::Other {
                    action: "copy",
                    name: src.display().to_string(),
                    message,
                })?,
                Tree::Layers(l) => {
                    let view = staging.join("view");
                    std::fs::create_dir(&view).map_err(io_err("create", &view))?;
                    let frozen = Layers { frozen: true, ..l.clone() };
                    storage::overlay::with_merged(&frozen, &view, into)?;
                    std::fs::remove_dir(&view).map_err(io_err("remove", &view))?;
                }
            }
            config.rootfs.layers.clear();
            config.rootfs.upper = storage::DEFAULT_UPPER.into();
        }
    }
    config.rootfs.storage = kind;
    config.rootfs.path = "rootfs".into();
    Ok(stats)
}

/// A copy's own name on the network: new MACs and (at reserve) addresses; no ports.
pub(super) fn new_identity(paths: &Paths, dst: &str, config: &mut Config, ephemeral: bool, notices: &mut Notices) {
    let _ = paths;
    config.hostname = None;
    config.ephemeral = ephemeral;
    for nic in &mut config.nics {
        let fresh = crate::network::attach::new_nic(&nic.network, &nic.name, dst);
        if matches!(nic.ipv4, crate::network::addr::Ipv4Mode::Fixed(_)) {
            notices.push(format!("{} had a fixed address; the copy's {} takes one from the pool", dst, nic.name));
        }
        *nic = crate::config::Nic { name: nic.name.clone(), ..fresh };
    }
    if !config.ports.is_empty() {
        notices.push(format!(
            "{} published ports are not copied (they would clash with the original's)",
            config.ports.len()
        ));
        config.ports.clear();
    }
}

/// Writes the copy's hostname, hosts and a fresh machine-id into its rootfs.
pub(super) fn personalize(paths: &Paths, dst: &str, staging: &Path, config: &Config) -> Result<(), Error> {
    let rootfs = staging.join("rootfs");
    let layers = config.layers(paths, staging);
    let view = layers.as_ref().map_or(rootfs.clone(), |l| l.lower.clone());
    let distro = crate::image::cache::os_release(&view);
    let (init, family) = crate::rootfs::detect_init(&view).unwrap_or((config.init.clone(), "unknown"));
    let custom = super::customize::plan(dst, distro.as_ref(), init, family, config.nics.len())?;
    match &layers {
        Some(l) => storage::overlay::with_merged(l, &rootfs, |root| custom.apply(root).map_err(|e| e.to_string()))?,
        None => custom.apply(&rootfs)?,
    }
    Ok(())
}
