//! `hutch rename OLD NEW`: a stopped container takes a new name. Its directory is
//! renamed, its address reservations move to the new name (so its DNS name follows
//! and its addresses stay), and, unless the configuration pins a hostname, the
//! hostname written in its rootfs becomes the new name (its machine-id is kept: it is
//! the same machine).

use std::path::Path;

use super::create::rename_noreplace;
use super::lifecycle::lock;
use super::observe::reconcile;
use super::{Error, Notices, io_err};
use crate::base::paths::Paths;
use crate::config::Config;
use crate::storage;

pub fn rename(paths: &Paths, old: &str, new: &str) -> Result<Notices, Error> {
    super::require_exists(paths, old)?;
    crate::base::name::validate(new)?;
    if old == new {
        return Err(Error::Exists { name: new.into() });
    }
    let (first, second) = if old < new { (old, new) } else { (new, old) };
    let locks = (lock(paths, first)?, lock(paths, second)?);
    let mut notices = Notices::new();
    let config = Config::load(&paths.config(old))?;
    let obs = reconcile(paths, old, Some(&config), &mut notices)?;
    if obs.status.is_up() {
        return Err(Error::WrongState { action: "rename", name: old.into(), state: super::Conflict::Up(obs.status) });
    }
    if paths.container(new).exists() {
        return Err(Error::Exists { name: new.into() });
    }
    rename_noreplace(&paths.container(old), &paths.container(new)).map_err(|e| match e.raw_os_error() {
        Some(libc::EEXIST) => Error::Exists { name: new.into() },
        _ => Error::Io { action: "rename", path: paths.container(old), source: e },
    })?;
    // From here the container is `new`: what follows repairs what points at it.
    let mut networks: Vec<&str> = config.nics.iter().map(|n| n.network.as_str()).collect();
    networks.dedup();
    for net in networks {
        if let Err(e) = crate::network::net::rename_reservations(paths, net, old, new) {
            notices.push(format!("failed to move the reservations on {net} to {new}: {e}"));
        }
    }
    let _ = crate::network::attach::remove_ports(paths, old);
    if config.hostname.is_none() {
        if let Err(e) = rewrite_hostname(paths, new, &config) {
            notices.push(format!("the rootfs still names the container {old}: {e}"));
        }
    }
    let _ = crate::base::fsutil::remove_tree_atomically(&paths.runtime(old));
    let (a, b) = locks;
    let old_lock = if first == old { a } else { b };
    old_lock.remove_file().map_err(io_err("remove", paths.lock(old)))?;
    Ok(notices)
}

fn rewrite_hostname(paths: &Paths, name: &str, config: &Config) -> Result<(), Error> {
    let dir = paths.container(name);
    let rootfs = config.rootfs_path(&dir);
    let layers = config.layers(paths, &dir);
    let view = layers.as_ref().map_or(rootfs.clone(), |l| l.lower.clone());
    let distro = crate::image::cache::os_release(&view);
    let family = crate::rootfs::detect_init(&view).map(|(_, f)| f).unwrap_or("unknown");
    let custom = super::customize::plan(name, distro.as_ref(), config.init.clone(), family, config.nics.len())?;
    let apply = |root: &Path| custom.apply_with(root, true);
    match &layers {
        Some(l) => storage::overlay::with_merged(l, &rootfs, |root| apply(root).map_err(|e| e.to_string()))?,
        None => apply(&rootfs)?,
    }
    Ok(())
}
