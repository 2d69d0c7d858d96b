//! What `create` writes into a new container's rootfs so its distribution boots well
//! in a container: the distro-config of its distribution (hostname, hosts, a fresh
//! machine-id, units to mask, the console getty, network configuration) when hutch
//! knows the distribution, else just the hostname. Every write resolves inside the
//! rootfs.
//!
//! Network configuration is written only for NICs the container has: a config for an
//! absent eth0 makes ifupdown's networking.service fail, and the boot `degraded`.

use std::path::Path;

use super::Error;
use crate::config::Init;
use crate::distro::{self, Effective, Style};
use crate::rootfs;

pub struct Customization {
    /// The init to put in the container's configuration.
    pub init: Init,
    pub family: &'static str,
    name: String,
    distro: Option<Effective>,
}

/// Decides what to write for container `name` of `distro` (os-release id and release,
/// when known), whose init was detected as `detected`.
pub fn plan(
    name: &str,
    distro: Option<&(String, String)>,
    detected: Init,
    family: &'static str,
    nics: usize,
) -> Result<Customization, Error> {
    let eff = match distro {
        Some((id, release)) if distro::known().contains(&id.as_str()) || override_exists(id) => {
            let mut eff = distro::load(id, Some(Path::new(distro::DEFAULT_OVERRIDE_DIR)))?.for_release(release);
            if nics == 0 {
                eff.network.styles = vec![Style::None];
            }
            Some(eff)
        }
        _ => None,
    };
    let init = match &eff {
        Some(e) => Init { stop_timeout: detected.stop_timeout, ..e.init.to_config() },
        None => detected,
    };
    Ok(Customization { init, family, name: name.to_string(), distro: eff })
}

fn override_exists(id: &str) -> bool {
    crate::base::name::validate(id).is_ok()
        && Path::new(distro::DEFAULT_OVERRIDE_DIR).join(format!("{id}.toml")).is_file()
}

impl Customization {
    /// Which distro-config applies, if any.
    pub fn distro(&self) -> Option<&str> {
        self.distro.as_ref().map(|e| e.distro.as_str())
    }

    /// Writes into the rootfs at `root` (its host path, or its merged overlay view).
    pub fn apply(&self, root: &Path) -> Result<(), Error> {
        self.apply_with(root, false)
    }

    /// `apply`, keeping the machine-id the rootfs has when `keep_machine_id` and it is a
    /// valid one (a renamed container is still the same machine).
    pub fn apply_with(&self, root: &Path, keep_machine_id: bool) -> Result<(), Error> {
        match &self.distro {
            Some(eff) => {
                let mut ctx =
                    distro::Context::new(&self.name, &self.name).map_err(super::io_err("read", "/dev/urandom"))?;
                if keep_machine_id {
                    if let Some(id) = current_machine_id(root) {
                        ctx.machine_id = id;
                    }
                }
                distro::apply(root, eff, &ctx)?;
                Ok(())
            }
            // systemd applies /etc/hostname over the hostname it is given, so write it.
            None => rootfs::write_file(root, "/etc/hostname", format!("{}\n", self.name).as_bytes(), 0o644)
                .map_err(super::io_err("write /etc/hostname in", root)),
        }
    }
}

/// The rootfs's /etc/machine-id, read inside it, when it holds 32 lowercase hex digits.
fn current_machine_id(root: &Path) -> Option<String> {
    let bytes = rootfs::in_root::read_file_in_root(root, "/etc/machine-id", 64).ok()?;
    let id = String::from_utf8(bytes).ok()?.trim().to_string();
    (id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then_some(id)
}
