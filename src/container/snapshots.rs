//! `hutch snapshot`: create, list, restore, delete and rename a container's snapshots,
//! each under the container's lock. A running container is frozen while its
//! snapshot is taken, with its filesystem synced first, so the snapshot is what a
//! power cut at that instant would have left on disk; a restore needs it stopped
//! (`--stop` stops it, restores and starts it again). The on-disk side is
//! crate::storage::snapshot.

use serde::Serialize;

use super::lifecycle::{lock, stop_locked};
use super::observe::{Status, reconcile};
use super::{Error, Notices};
use crate::base::paths::Paths;
use crate::config::Config;
use crate::storage::{self, Kind, snapshot};

#[derive(Debug, Serialize)]
pub struct Info {
    pub name: String,
    /// Unix time in milliseconds.
    pub created_ms: u64,
    /// Bytes of disk the snapshot holds of its own (see `storage::snapshot::own_usage`).
    pub size: u64,
}

/// A container loaded for a snapshot command, with what interrupted commands left
/// cleared away.
struct Opened {
    dir: std::path::PathBuf,
    config: Config,
    status: Status,
}

fn open(paths: &Paths, name: &str, notices: &mut Notices) -> Result<Opened, Error> {
    let config = Config::load(&paths.config(name))?;
    let obs = reconcile(paths, name, Some(&config), notices)?;
    let dir = paths.container(name);
    let chain: Option<Vec<String>> = config.layers(paths, &dir).map(|l| l.layers);
    notices.extend(snapshot::recover(&dir, &config.rootfs_path(&dir), chain.as_deref()));
    Ok(Opened { dir, config, status: obs.status })
}

fn find(o: &Opened, name: &str, snap: &str) -> Result<snapshot::Snapshot, Error> {
    snapshot::list(&o.dir)?
        .into_iter()
        .find(|s| s.name == snap)
        .ok_or_else(|| Error::SnapshotNotFound { name: name.into(), snap: snap.into() })
}

/// Takes snapshot `snap` (default: the next `snapN`) of container `name`; returns its name.
pub fn create(paths: &Paths, name: &str, snap: Option<&str>) -> Result<(String, Notices), Error> {
    super::require_exists(paths, name)?;
    if let Some(s) = snap {
        crate::base::name::validate(s)
            .map_err(|e| Error::BadSnapshotName { snap: s.into(), message: e.to_string() })?;
    }
    let _lock = lock(paths, name)?;
    let mut notices = Notices::new();
    let mut o = open(paths, name, &mut notices)?;
    let existing = snapshot::list(&o.dir)?;
    let snap = snap.map_or_else(|| snapshot::next_name(&existing), str::to_string);
    if existing.iter().any(|s| s.name == snap) {
        return Err(Error::SnapshotExists { name: name.into(), snap });
    }
    let live = match o.status {
        Status::Stopped => None,
        Status::Stopping => {
            return Err(Error::WrongState {
                action: "snapshot",
                name: name.into(),
                state: super::Conflict::StillStopping,
            });
        }
        _ => Some(Frozen::new(paths, name, o.status)?),
    };
    let rootfs = o.config.rootfs_path(&o.dir);
    let layers = o.config.layers(paths, &o.dir);
    if let Some(f) = &live {
        f.sync(layers.as_ref().map_or(&rootfs, |l| &l.rw))?;
    }
    let text = std::fs::read_to_string(paths.config(name)).map_err(super::io_err("read", paths.config(name)))?;
    let taken =
        snapshot::take(&o.dir, &snap, o.config.rootfs.storage, &rootfs, layers.as_ref(), &text, live.is_some())?;
    drop(live);
    if taken.full_copy {
        notices.push(format!(
            "{} storage cannot share data here: the snapshot is a full copy",
            o.config.rootfs.storage.as_str()
        ));
    }
    if let Some(chain) = &taken.chain {
        // The commit point: from here the chain is the container's (recover completes
        // the snapshot if this command dies before it is in place).
        (o.config.rootfs.layers, o.config.rootfs.upper) = (chain.layers.clone(), chain.upper.clone());
        if let Err(e) = o.config.save(&paths.config(name)) {
            snapshot::discard(taken);
            return Err(e.into());
        }
    }
    snapshot::publish(&o.dir, taken, &snap)?;
    Ok((snap, notices))
}

/// A running container frozen for the length of a snapshot (thawed on drop, unless it
/// was frozen before).
pub(crate) struct Frozen {
    cgroup: Option<crate::cgroup::ContainerCgroup>,
}

impl Frozen {
    pub(crate) fn new(paths: &Paths, name: &str, status: Status) -> Result<Frozen, Error> {
        let obs = super::observe(paths, name);
        let state = obs.state.ok_or_else(|| Error::NotRunning { action: "snapshot", name: name.into() })?;
        if status == Status::Frozen {
            return Ok(Frozen { cgroup: None });
        }
        state.cgroup.set_frozen(true)?;
        Ok(Frozen { cgroup: Some(state.cgroup) })
    }

    /// Writes the container's dirty data to disk (the filesystem holding `dir`).
    pub(crate) fn sync(&self, dir: &std::path::Path) -> Result<(), Error> {
        let f = std::fs::File::open(dir).map_err(super::io_err("open", dir))?;
        rustix::fs::syncfs(&f).map_err(|e| super::io_err("sync the filesystem of", dir)(e.into()))
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            if let Err(e) = cg.set_frozen(false) {
                tracing::error!("failed to thaw after a snapshot: {e}");
            }
        }
    }
}

pub fn list(paths: &Paths, name: &str) -> Result<Vec<Info>, Error> {
    super::require_exists(paths, name)?;
    let config = Config::load(&paths.config(name))?;
    let dir = paths.container(name);
    let rw = config.layers(paths, &dir).map(|l| l.rw);
    Ok(snapshot::list(&dir)?
        .into_iter()
        .map(|s| Info {
            size: snapshot::own_usage(&dir, &s, rw.as_deref()),
            created_ms: s.record.created_ms,
            name: s.name,
        })
        .collect())
}

/// The number of snapshots (for `list`), `None` when they cannot be read.
pub fn count(paths: &Paths, name: &str) -> Option<usize> {
    snapshot::list(&paths.container(name)).ok().map(|v| v.len())
}

/// Restores snapshot `snap`. A running container is refused unless `stop`: then it is
/// stopped, restored and started again. Newer snapshots are kept.
pub fn restore(paths: &Paths, name: &str, snap: &str, stop: bool) -> Result<(bool, Notices), Error> {
    super::require_exists(paths, name)?;
    let guard = lock(paths, name)?;
    let mut notices = Notices::new();
    let mut o = open(paths, name, &mut notices)?;
    let s = find(&o, name, snap)?;
    if s.record.storage != o.config.rootfs.storage {
        return Err(Error::Other {
            action: "restore",
            name: name.into(),
            message: format!(
                "snapshot {snap} was taken with {} storage and the container now uses {}",
                s.record.storage.as_str(),
                o.config.rootfs.storage.as_str()
            ),
        });
    }
    let was_up = o.status.is_up();
    if was_up {
        if !stop {
            return Err(Error::RestoreRunning { name: name.into(), snap: snap.into() });
        }
        let (_, more) = stop_locked(paths, name, Some(&o.config), None, false)?;
        notices.extend(more);
    }
    let rootfs = o.config.rootfs_path(&o.dir);
    let layers = o.config.layers(paths, &o.dir);
    let outcome = snapshot::restore(&o.dir, &s, &rootfs, layers.as_ref())?;
    if outcome.full_copy {
        notices.push("dir storage cannot share data here: the restore copied the snapshot in full".into());
    }
    if let Some(chain) = outcome.chain {
        (o.config.rootfs.layers, o.config.rootfs.upper) = (chain.layers, chain.upper);
        o.config.save(&paths.config(name))?;
        collect_layers(paths, name, &o.config, &mut notices);
    }
    drop(guard);
    if was_up {
        let started = super::start(paths, name, false)?;
        notices.extend(started.notices);
    }
    Ok((was_up, notices))
}

pub fn delete(paths: &Paths, name: &str, snap: &str) -> Result<Notices, Error> {
    super::require_exists(paths, name)?;
    let _lock = lock(paths, name)?;
    let mut notices = Notices::new();
    let o = open(paths, name, &mut notices)?;
    find(&o, name, snap)?;
    snapshot::delete(&o.dir, snap)?;
    if o.config.rootfs.storage == Kind::Overlay {
        collect_layers(paths, name, &o.config, &mut notices);
    }
    Ok(notices)
}

pub fn rename(paths: &Paths, name: &str, old: &str, new: &str) -> Result<Notices, Error> {
    super::require_exists(paths, name)?;
    crate::base::name::validate(new)
        .map_err(|e| Error::BadSnapshotName { snap: new.into(), message: e.to_string() })?;
    let _lock = lock(paths, name)?;
    let mut notices = Notices::new();
    let o = open(paths, name, &mut notices)?;
    find(&o, name, old)?;
    if find(&o, name, new).is_ok() {
        return Err(Error::SnapshotExists { name: name.into(), snap: new.into() });
    }
    snapshot::rename(&o.dir, old, new)?;
    Ok(notices)
}

/// Removes the overlay layers nothing uses any more; a failure is a notice (the
/// layers stay, and the next snapshot command tries again).
fn collect_layers(paths: &Paths, name: &str, config: &Config, notices: &mut Notices) {
    let dir = paths.container(name);
    if let Some(layers) = config.layers(paths, &dir) {
        if let Err(e) = storage::snapshot::collect(&dir, &layers) {
            notices.push(format!("kept layers that may be unused: {e}"));
        }
    }
}

/// A container's disk use: its own data and each snapshot's.
#[derive(Debug, Serialize)]
pub struct Usage {
    pub storage: Kind,
    /// Bytes: dir and btrfs, the rootfs; overlay, the upper layer and the layers no
    /// snapshot holds (the image below is shared and not counted).
    pub own: u64,
    pub snapshots: Vec<Info>,
}

pub fn usage(paths: &Paths, name: &str, config: &Config) -> Result<Usage, Error> {
    let dir = paths.container(name);
    let snapshots = list(paths, name)?;
    let own = match config.layers(paths, &dir) {
        Some(l) => {
            let held: Vec<String> = snapshot::list(&dir)?.into_iter().flat_map(|s| s.record.layers).collect();
            let mine = l.layers.iter().filter(|n| !held.contains(n)).chain([&l.upper]);
            mine.map(|n| snapshot::disk_usage(&l.rw.join(n))).sum()
        }
        None => snapshot::disk_usage(&config.rootfs_path(&dir)),
    };
    Ok(Usage { storage: config.rootfs.storage, own, snapshots })
}
