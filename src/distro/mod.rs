//! Distro tables: what a distribution's rootfs needs written so that its own init
//! boots cleanly as PID 1 in hutch's unprivileged container and brings up DHCP on
//! eth0; and [`apply`], which writes it.
//!
//! The tables are plain data in `distro-configs/NAME.toml`, built into the binary; a
//! file `NAME.toml` in [`DEFAULT_OVERRIDE_DIR`] (or the directory given to [`load`])
//! replaces the built-in one, and may describe a distro hutch does not know.
//!
//! Schema (unknown keys are refused):
//!
//! ```toml
//! distro = "ubuntu"                 # must match the file name
//! [init]                            # the container's [init]
//! command = ["/sbin/init"]
//! halt_signal = "SIGRTMIN+3"        # systemd SIGRTMIN+3, busybox/OpenRC SIGUSR1, sysvinit SIGPWR
//! reboot_signal = "SIGINT"          # systemd SIGINT, busybox SIGTERM
//! ready = "notify"                  # "notify" (READY=1 on $NOTIFY_SOCKET) or "exec"
//! stop_timeout = 30                 # optional
//! [network]
//! style = ["netplan", "networkd"]   # one style, or candidates: the first whose tools
//!                                   # the rootfs has (else the first); netplan, ifupdown,
//!                                   # ifcfg, nm-keyfile, networkd, alpine-interfaces, none
//! interface = "eth0"                # optional
//! nm_controlled = false             # optional, ifcfg only: NM_CONTROLLED=no
//! enable = true                     # enable the style's service when the rootfs has it
//! [systemd]                         # only for systemd distros
//! mask = ["auditd.service"]         # /etc/systemd/system/UNIT -> /dev/null
//! getty = "console-getty.service"   # linked in getty.target.wants if its unit file exists
//! [[files]]                         # static files; {name}, {hostname}, {interface} replaced
//! path = "/etc/inittab"
//! mode = 0o644                      # optional
//! content = "..."
//! if_exists = "/sbin/openrc"        # optional conditions on the rootfs
//! if_missing = "/sbin/openrc"
//! [[set]]                           # KEY=VALUE in an existing shell-style file
//! path = "/etc/rc.conf"
//! key = "rc_sys"
//! value = '"lxc"'
//! [releases."8-Stream"]             # overrides for one release
//! aliases = ["8"]                   # other names that select it
//! network = { style = "ifcfg" }     # any section above; scalars and `mask` replace the
//!                                   # base's, files and sets with the same path add or replace
//! ```
//!
//! Every write resolves its path inside the rootfs (`crate::rootfs`): the rootfs is
//! untrusted, and a symlink in it can never send a write to the host.

mod apply;
mod network;
mod schema;

#[cfg(test)]
mod tests;

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::Init;
pub use schema::{Effective, FileSpec, InitSpec, NetworkSpec, SetSpec, Style, SystemdSpec};

/// Where an administrator's tables replace the built-in ones.
pub(crate) const DEFAULT_OVERRIDE_DIR: &str = "/etc/hutch/distro-configs";

const BUILT_IN: &[(&str, &str)] = &[
    ("alpine", include_str!("../../distro-configs/alpine.toml")),
    ("busybox", include_str!("../../distro-configs/busybox.toml")),
    ("centos", include_str!("../../distro-configs/centos.toml")),
    ("debian", include_str!("../../distro-configs/debian.toml")),
    ("fedora", include_str!("../../distro-configs/fedora.toml")),
    ("ubuntu", include_str!("../../distro-configs/ubuntu.toml")),
];

const KNOWN: &[&str] = &["alpine", "busybox", "centos", "debian", "fedora", "ubuntu"];

/// The distros with a built-in table.
pub(crate) fn known() -> &'static [&'static str] {
    KNOWN
}

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to find a table for distro {distro:?}: the known distros are {known}")]
    Unknown { distro: String, known: String },
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("failed to parse {origin}:{line}:{col}: {message}")]
    Parse { origin: String, line: usize, col: usize, message: String },
    #[error("failed to load {origin}: {key}: {message}")]
    Invalid { origin: String, key: String, message: String },
    #[error("failed to use {what} {value:?}: {message}")]
    Context { what: &'static str, value: String, message: String },
    #[error("failed to {action} {path} in {rootfs}: {source}")]
    Apply { action: &'static str, path: String, rootfs: PathBuf, source: io::Error },
}

impl Error {
    fn apply(action: &'static str, path: &str, rootfs: &Path, source: io::Error) -> Error {
        Error::Apply { action, path: path.to_string(), rootfs: rootfs.to_path_buf(), source }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Unknown { distro, .. } => Some(format!(
                "use one of {}, or describe {distro} in {DEFAULT_OVERRIDE_DIR}/{distro}.toml",
                KNOWN.join(", ")
            )),
            Error::Parse { .. } | Error::Invalid { .. } => Some(format!(
                "fix the table (its keys are described in src/distro/mod.rs), or remove the file from {DEFAULT_OVERRIDE_DIR} to use the built-in one"
            )),
            Error::Context { .. } => {
                Some(format!("hostnames follow the container name rule ({}); machine ids are 32 lowercase hex digits", crate::base::name::RULE))
            }
            Error::Apply { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                Some("run as root, or check who owns the root filesystem".into())
            }
            Error::Apply { source, .. } if source.kind() == io::ErrorKind::NotFound => Some(
                "a symlink in the root filesystem leads somewhere it does not have; paths are resolved inside it, never on the host".into(),
            ),
            _ => None,
        }
    }
}

/// A distro's table: the base and its releases, each already merged and checked.
#[derive(Debug, Clone)]
pub struct DistroConfig {
    distro: String,
    origin: String,
    base: Effective,
    releases: Vec<(String, Vec<String>, Effective)>,
}

impl DistroConfig {
    /// Parses the table `text` for `distro`; `origin` names it in errors.
    pub fn parse(distro: &str, origin: &str, text: &str) -> Result<DistroConfig, Error> {
        let table: schema::TableFile = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| crate::config::line_col(text, s.start)).unwrap_or((1, 1));
            Error::Parse { origin: origin.into(), line, col, message: e.message().trim().to_string() }
        })?;
        let invalid = |(key, message): (String, String)| Error::Invalid { origin: origin.into(), key, message };
        if table.distro != distro {
            return Err(invalid((
                "distro".into(),
                format!("{:?} does not match the table's name {distro:?}", table.distro),
            )));
        }
        let base = schema::merge(&table, None).map_err(invalid)?;
        let mut releases = Vec::new();
        for (name, r) in &table.releases {
            releases.push((name.clone(), r.aliases.clone(), schema::merge(&table, Some((name, r))).map_err(invalid)?));
        }
        Ok(DistroConfig { distro: distro.into(), origin: origin.into(), base, releases })
    }

    pub fn distro(&self) -> &str {
        &self.distro
    }

    /// Where the table came from: an override file's path, or the built-in table.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The releases with their own table.
    pub fn releases(&self) -> impl Iterator<Item = &str> {
        self.releases.iter().map(|(n, _, _)| n.as_str())
    }

    /// The table for `release`: its overrides merged over the base, matched by name,
    /// then by alias, then either ignoring case; the base alone if none matches.
    pub fn for_release(&self, release: &str) -> Effective {
        let exact = |s: &String| s == release;
        let folded = |s: &String| s.eq_ignore_ascii_case(release);
        let find = |m: &dyn Fn(&String) -> bool| self.releases.iter().find(|(n, a, _)| m(n) || a.iter().any(m));
        find(&exact).or_else(|| find(&folded)).map_or_else(|| self.base.clone(), |(_, _, e)| e.clone())
    }
}

/// The table for `distro`: `override_dir/DISTRO.toml` if it exists, else the built-in
/// one.
pub(crate) fn load(distro: &str, override_dir: Option<&Path>) -> Result<DistroConfig, Error> {
    let unknown = || Error::Unknown { distro: distro.into(), known: KNOWN.join(", ") };
    // The name becomes a file name.
    if crate::base::name::validate(distro).is_err() {
        return Err(unknown());
    }
    if let Some(dir) = override_dir {
        let path = dir.join(format!("{distro}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => return DistroConfig::parse(distro, &path.display().to_string(), &text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Read { path, source }),
        }
    }
    let (_, text) = BUILT_IN.iter().find(|(n, _)| *n == distro).ok_or_else(unknown)?;
    DistroConfig::parse(distro, &format!("distro-configs/{distro}.toml (built in)"), text)
}

/// What varies per container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub hostname: String,
    /// 32 lowercase hex digits, see [`random_machine_id`].
    pub machine_id: String,
}

impl Context {
    /// A context with a fresh machine id.
    pub fn new(name: &str, hostname: &str) -> io::Result<Context> {
        Ok(Context { name: name.into(), hostname: hostname.into(), machine_id: random_machine_id()? })
    }

    fn validate(&self) -> Result<(), Error> {
        for (what, value) in [("container name", &self.name), ("hostname", &self.hostname)] {
            if let Err(e) = crate::base::name::validate(value) {
                return Err(Error::Context { what, value: value.clone(), message: e.to_string() });
            }
        }
        let id = &self.machine_id;
        if id.len() != 32
            || !id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            || id.bytes().all(|b| b == b'0')
        {
            return Err(Error::Context {
                what: "machine id",
                value: id.clone(),
                message: "must be 32 lowercase hex digits, not all zero".into(),
            });
        }
        Ok(())
    }

    fn substitute(&self, text: &str, interface: &str) -> String {
        text.replace("{name}", &self.name).replace("{hostname}", &self.hostname).replace("{interface}", interface)
    }
}

/// A random machine id, formatted as systemd makes them (a version 4 UUID's 128 bits as
/// 32 lowercase hex digits).
pub(crate) fn random_machine_id() -> io::Result<String> {
    let mut b = [0u8; 16];
    io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// What [`apply`] did, and the init to put in the container's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Files and links written, as paths inside the rootfs, in order.
    pub written: Vec<String>,
    /// What the table asked for but the rootfs could not take, and why.
    pub skipped: Vec<String>,
    /// The network style used.
    pub network: Style,
    pub init: Init,
    /// Not part of `Init` yet: what `hutch` sends for a reboot.
    pub reboot_signal: String,
}

/// Writes `eff` into `rootfs` for the container `ctx`: /etc/hostname, /etc/hosts, a
/// fresh /etc/machine-id, DHCP on the interface, unit masks, the console getty, the
/// table's files and settings.
pub(crate) fn apply(rootfs: &Path, eff: &Effective, ctx: &Context) -> Result<Applied, Error> {
    apply::apply(rootfs, eff, ctx)
}
