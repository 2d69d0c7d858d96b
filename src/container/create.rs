//! `hutch create`: builds the container in a staging directory next to its final
//! place and renames it in only when complete, so an interrupted create leaves no
//! half-made container (the staging directory is removed by the next create of that
//! name, which holds the same lock).

use std::path::{Path, PathBuf};

use super::{Error, Notices, io_err};
use crate::base::fsutil;
use crate::base::lock::Lock;
use crate::base::paths::Paths;
use crate::config::Config;
use crate::rootfs;
use crate::storage;

#[derive(Debug, Clone)]
pub enum Source {
    Dir(PathBuf),
    Tar(PathBuf),
    /// A cached image, cloned by the given storage (default: by the cache's filesystem).
    Image {
        meta: Box<crate::image::cache::Meta>,
        storage: Option<storage::Kind>,
    },
}

#[derive(Debug)]
pub struct Created {
    pub init_family: &'static str,
    /// The distro-config applied, if hutch knows the distribution.
    pub distro: Option<String>,
    pub config: Config,
    pub notices: Notices,
}

/// Releases a create's address reservations unless disarmed.
pub(super) struct Reserved<'a> {
    pub paths: &'a Paths,
    pub name: &'a str,
    pub nics: &'a [crate::config::Nic],
    pub armed: bool,
}

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        if self.armed {
            crate::network::attach::release_all(self.paths, self.name, self.nics);
        }
    }
}

/// Removes its directory unless disarmed.
pub(super) struct Staging {
    pub path: PathBuf,
    pub armed: bool,
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            let _ = fsutil::remove_tree(&self.path);
        }
    }
}

pub fn staging_dir(paths: &Paths, name: &str) -> PathBuf {
    paths.containers().join(format!(".staging-{name}"))
}

/// `opts.networks`: a NIC on each (eth0, eth1...); empty for none (`opts.storage` is
/// the image source's).
pub fn create(
    paths: &Paths,
    name: &str,
    source: &Source,
    opts: &super::images::CreateOptions<'_>,
) -> Result<Created, Error> {
    let (privileged, networks, ipv4, devbox) = (opts.privileged, opts.networks, opts.ipv4, opts.devbox);
    crate::base::name::validate(name)?;
    let mut notices = Notices::new();
    if devbox.is_some() && privileged {
        return Err(super::devbox::DevboxError::User {
            user: devbox.map(|u| u.name.clone()).unwrap_or_default(),
            why: "a dev box is unprivileged (its user is the host user, root is not)".into(),
        }
        .into());
    }
    // Check the input before creating anything.
    match source {
        Source::Dir(dir) => {
            rootfs::check_dir(dir)?;
            rootfs::detect_init(dir)?;
        }
        Source::Image { .. } => {}
        Source::Tar(file) => {
            let md = std::fs::metadata(file).map_err(|source| rootfs::Error::Read { path: file.clone(), source })?;
            if !md.is_file() {
                return Err(rootfs::Error::Unpack {
                    archive: file.clone(),
                    message: "it is not a regular file".into(),
                }
                .into());
            }
        }
    }
    if !privileged {
        let (_, added) = crate::idmap::root_map(Path::new("/etc/subuid"), Path::new("/etc/subgid"))?;
        notices.extend(added);
    }

    fsutil::ensure_dir(&paths.containers(), 0o700).map_err(io_err("create", paths.containers()))?;
    let _lock = Lock::acquire(&paths.lock(name)).map_err(io_err("lock", paths.lock(name)))?;
    let final_dir = paths.container(name);
    if final_dir.exists() {
        return Err(Error::Exists { name: name.into() });
    }
    let staging = Staging { path: staging_dir(paths, name), armed: true };
    if staging.path.exists() {
        fsutil::remove_tree(&staging.path).map_err(io_err("remove", &staging.path))?;
        notices.push(format!("removed {} left by an interrupted create", staging.path.display()));
    }
    fsutil::ensure_dir(&staging.path, 0o700).map_err(io_err("create", &staging.path))?;
    let rootfs = staging.path.join("rootfs");
    let mut kind = storage::Kind::Dir;
    match source {
        Source::Image { meta, storage: wanted } => {
            let image_rootfs = paths.image_rootfs(&meta.id);
            kind = wanted.unwrap_or_else(|| storage::default_for(&image_rootfs));
            storage::clone_image(kind, &image_rootfs, &staging.path, privileged)?;
        }
        Source::Dir(dir) => {
            let stats = rootfs::copy::copy_tree(dir, &rootfs, privileged)
                .map_err(|source| rootfs::Error::Copy { path: dir.clone(), source })?;
            if stats.skipped > 0 {
                notices.push(format!(
                    "left out {} device nodes and sockets (an unprivileged container gets its /dev from hutch)",
                    stats.skipped
                ));
            }
        }
        Source::Tar(file) => {
            std::fs::create_dir(&rootfs).map_err(io_err("create", &rootfs))?;
            let stats = rootfs::unpack::unpack(file, &rootfs, privileged)?;
            if stats.devices_skipped > 0 {
                notices.push(format!(
                    "skipped {} device nodes in the archive (an unprivileged container gets its /dev from hutch)",
                    stats.devices_skipped
                ));
            }
            if stats.refused > 0 {
                notices.push(format!(
                    "refused {} archive entries that pointed outside the root filesystem",
                    stats.refused
                ));
            }
        }
    }
    // The rootfs as it will look inside, for reading: an overlay's starts as its image.
    let layers = match source {
        Source::Image { meta, .. } if kind == storage::Kind::Overlay => {
            Some(storage::Layers::new(paths.image_rootfs(&meta.id), staging.path.join("overlay")))
        }
        _ => None,
    };
    let view = layers.as_ref().map_or(rootfs.clone(), |l| l.lower.clone());
    let (init, family) = rootfs::detect_init(&view).map_err(|e| match e {
        rootfs::Error::NoInit { tried, .. } => rootfs::Error::NoInit {
            path: match source {
                Source::Dir(d) => d.clone(),
                Source::Tar(t) => t.clone(),
                Source::Image { meta, .. } => paths.image_rootfs(&meta.id),
            },
            tried,
        },
        other => other,
    })?;
    let distro = match source {
        Source::Image { meta, .. } => Some((meta.distro.clone(), meta.release.clone())),
        _ => crate::image::cache::os_release(&view),
    };
    // No NICs yet: networking is configured when a container gets one.
    let mut nics: Vec<crate::config::Nic> = networks
        .iter()
        .enumerate()
        .map(|(i, n)| crate::network::attach::new_nic(n, &format!("eth{i}"), name))
        .collect();
    if let (Some(first), Some(ip)) = (nics.first_mut(), ipv4) {
        first.ipv4 = ip.parse().map_err(|e: crate::network::addr::Error| crate::network::Error::BadAddress {
            address: ip.to_string(),
            network: first.network.clone(),
            message: e.to_string(),
        })?;
    }
    let custom = super::customize::plan(name, distro.as_ref(), init, family, nics.len())?;
    let customize = |root: &Path| -> Result<(), Error> {
        custom.apply(root)?;
        if let Some(user) = devbox {
            super::devbox::apply(root, user)?;
        }
        Ok(())
    };
    match &layers {
        Some(l) => storage::overlay::with_merged(l, &rootfs, |root| customize(root).map_err(|e| e.to_string()))?,
        None => customize(&rootfs)?,
    }
    let (init, family) = (custom.init.clone(), custom.family);
    let distro = custom.distro().map(str::to_string);
    // Addresses are reserved now, so they are known before the guest asks; released
    // again if the create goes no further.
    crate::network::attach::reserve_all(paths, name, &mut nics)?;
    let reserved = Reserved { paths, name, nics: &nics, armed: true };
    let mut config = Config::new(init, privileged);
    config.rootfs.storage = kind;
    if let Source::Image { meta, .. } = source {
        config.rootfs.image = Some(meta.id.clone());
    }
    config.nics = nics.clone();
    config.ephemeral = opts.ephemeral;
    if let Some(user) = devbox {
        let (mut map, _) = crate::idmap::root_map(Path::new("/etc/subuid"), Path::new("/etc/subgid"))?;
        (map.identity_uid, map.identity_gid) = (Some(user.uid), Some(user.gid));
        config.idmap = Some(map);
        config.mounts.push(user.home_mount());
        config.devbox = Some(user.config());
    }
    put_in_place(paths, name, staging, reserved, &config)?;
    Ok(Created { init_family: family, distro, config, notices })
}

/// The last steps of making container `name` in `staging` (create, copy, import): its
/// configuration validated and saved, its logs directory, the rename into place. Only
/// then are the staging directory and the address reservations kept.
pub(super) fn put_in_place(
    paths: &Paths,
    name: &str,
    mut staging: Staging,
    mut reserved: Reserved<'_>,
    config: &Config,
) -> Result<(), Error> {
    config.validate().map_err(|(key, message)| crate::config::Error::Invalid {
        path: staging.path.join("config.toml"),
        key,
        message,
    })?;
    config.save(&staging.path.join("config.toml"))?;
    fsutil::ensure_dir(&staging.path.join("logs"), 0o750).map_err(io_err("create", staging.path.join("logs")))?;
    let final_dir = paths.container(name);
    rename_noreplace(&staging.path, &final_dir).map_err(|e| match e.raw_os_error() {
        Some(libc::EEXIST) => Error::Exists { name: name.into() },
        _ => Error::Io { action: "move into place", path: final_dir.clone(), source: e },
    })?;
    staging.armed = false;
    reserved.armed = false;
    Ok(())
}

pub(super) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    rustix::fs::renameat_with(rustix::fs::CWD, from, rustix::fs::CWD, to, rustix::fs::RenameFlags::NOREPLACE)?;
    std::fs::File::open(to.parent().unwrap_or(Path::new("/")))?.sync_all()
}
