//! The per-container configuration, `containers/NAME/config.toml`.
//!
//! The file is versioned (`schema = 1`), parsed strictly (unknown keys and wrong types
//! are refused with file:line:column), validated as a whole before any use, and always
//! written atomically. `keys` implements `config get/set` on top of it.

mod keys;
pub mod mounts;

pub(crate) use keys::{KEYS, get, set};
pub use mounts::Mount;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::base::signal::Signal;
use crate::base::size::Size;
use crate::idmap::IdMap;
use crate::network::addr::{Ipv4Mode, Mac};
use crate::network::nft::Proto;

/// The only schema this version of hutch reads and writes.
pub(crate) const SCHEMA: u32 = 1;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("failed to parse {path}:{line}:{col}: {message}")]
    Parse { path: PathBuf, line: usize, col: usize, message: String },
    #[error("invalid {key} in {path}: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
    #[error("failed to write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("unknown configuration key {key:?}")]
    UnknownKey { key: String },
    #[error("invalid value {value:?} for {key}: expected {expected}")]
    BadValue { key: String, value: String, expected: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::UnknownKey { key } if key.starts_with("limits.io") => Some(
                "per-device I/O limits are [[limits.io]] tables (device, read_bps, write_bps, read_iops, write_iops): edit the config file"
                    .into(),
            ),
            Error::UnknownKey { .. } => {
                let limits = crate::cgroup::limits::KEYS.iter().map(|(k, _)| *k);
                Some(format!(
                    "known keys: {}",
                    KEYS.iter().map(|k| k.name).chain(limits).collect::<Vec<_>>().join(", ")
                ))
            }
            Error::BadValue { key, .. } => keys::help(key).map(|h| format!("{key}: {h}")),
            Error::Parse { .. } | Error::Invalid { .. } => {
                Some("fix the file with `hutch config edit NAME`, or see docs/config.md".into())
            }
            _ => None,
        }
    }
}

/// How hutch knows that init has finished booting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// Init sends `READY=1` on `$NOTIFY_SOCKET` (systemd does, as under nspawn).
    Notify,
    /// Booted as soon as init has been executed (busybox init, OpenRC, sysvinit).
    Exec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub schema: u32,
    /// Defaults to the container's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    pub rootfs: Rootfs,
    pub init: Init,
    #[serde(default)]
    pub security: Security,
    /// Pins the id map; without it, root's range in /etc/subuid and /etc/subgid is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idmap: Option<IdMap>,
    #[serde(default)]
    pub console: Console,
    /// Extra variables in init's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Network interfaces, each a veth pair onto a managed network's bridge.
    #[serde(default, rename = "nic", skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<Nic>,
    /// Resource limits, applied at start and changed live by `config set`.
    #[serde(default, skip_serializing_if = "crate::cgroup::limits::Limits::is_empty")]
    pub limits: crate::cgroup::limits::Limits,
    /// Host ports published to the container while it runs.
    #[serde(default, rename = "port", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Host folders and files shared with the container (`hutch mount`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// A dev box: the host user who is the same user inside (`create --devbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devbox: Option<Devbox>,
    /// Destroyed when it stops (`hutch stop`, a poweroff inside); a reboot inside keeps it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ephemeral: bool,
    /// Started by `hutch autostart` (at host boot), in order.
    #[serde(default, skip_serializing_if = "Autostart::is_default")]
    pub autostart: Autostart,
    /// What the monitor does when init ends unexpectedly.
    #[serde(default, skip_serializing_if = "Restart::is_no")]
    pub restart: Restart,
}

/// `[autostart]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Autostart {
    #[serde(default)]
    pub enabled: bool,
    /// Lower starts first (containers of one order start together); `--stop` reverses it.
    #[serde(default)]
    pub order: i64,
    /// Seconds to wait after starting this one, before the next order.
    #[serde(default)]
    pub delay: u64,
}

impl Autostart {
    fn is_default(&self) -> bool {
        *self == Autostart::default()
    }
}

/// `restart`: Docker's policies. "Unexpected" is any end of init that is neither a
/// stop by hutch nor a poweroff, halt or reboot from inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    No,
    /// When init exits non-zero or is killed by a signal.
    OnFailure,
    /// Also when init exits with status 0.
    Always,
}

impl Restart {
    fn is_no(&self) -> bool {
        *self == Restart::No
    }
}

/// `[devbox]`: set by `create --devbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devbox {
    /// The host user who is the same user inside (uid and gid map to themselves).
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    /// Its home directory, shared at the same path.
    pub home: PathBuf,
    /// Whether the first boot has installed sudo (when the rootfs lacked it).
    #[serde(default)]
    pub sudo_checked: bool,
    /// What `shell` and `exec` pass in from the caller: `ssh-agent` (the socket of
    /// `$SSH_AUTH_SOCK`), `term` (`TERM`, `COLORTERM`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<Forward>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Forward {
    SshAgent,
    Term,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// The managed network (see `hutch network list`).
    pub network: String,
    /// The interface's name inside the container.
    #[serde(default = "default_nic_name")]
    pub name: String,
    /// Stable MAC address, generated at create.
    pub mac: Mac,
    /// "auto" (a reservation from the network's pool, made at create) or a fixed
    /// address in the network's subnet.
    #[serde(default)]
    pub ipv4: Ipv4Mode,
    /// The address reserved for this NIC (filled in by hutch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Host address to listen on; all of the host's addresses when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    #[serde(default = "default_proto")]
    pub proto: Proto,
}

fn default_nic_name() -> String {
    "eth0".into()
}
fn default_proto() -> Proto {
    Proto::Tcp
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rootfs {
    /// Relative to the container's directory, or absolute. For overlay storage, the
    /// mountpoint of the merged view.
    pub path: String,
    /// How the rootfs is stored: `dir` (a full copy), `overlay` (over a cached image),
    /// `btrfs` (a snapshot of a cached image).
    #[serde(default)]
    pub storage: crate::storage::Kind,
    /// The id of the cached image the rootfs was made from; for overlay storage its
    /// rootfs is the lower layer, so the image is kept while this container exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// overlay: the frozen layers between the image and the upper layer, oldest first,
    /// each a directory under `overlay/` (made by `hutch snapshot`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layers: Vec<String>,
    /// overlay: the directory under `overlay/` that takes the container's changes.
    #[serde(default = "default_upper", skip_serializing_if = "is_default_upper")]
    pub upper: String,
}

fn default_upper() -> String {
    crate::storage::DEFAULT_UPPER.into()
}
fn is_default_upper(s: &str) -> bool {
    s == crate::storage::DEFAULT_UPPER
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Init {
    /// Program and arguments, run as PID 1.
    #[serde(deserialize_with = "string_or_list")]
    pub command: Vec<String>,
    /// Sent to init by `hutch stop` (SIGRTMIN+3 for systemd, SIGUSR1 for busybox init).
    pub halt_signal: Signal,
    pub ready: Ready,
    /// Seconds `stop` waits after the halt signal before killing everything.
    #[serde(default = "default_stop_timeout")]
    pub stop_timeout: u64,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Run without a user namespace: container root is host root. Explicit opt-in.
    #[serde(default)]
    pub privileged: bool,
    /// Let the container run container runtimes (Incus's key): proc and sysfs as
    /// nested user namespaces need them, /dev/fuse. See docs/config.md.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nesting: bool,
    /// Bind LXCFS's /proc files over the container's (`crate::runtime::lxcfs`).
    #[serde(default, skip_serializing_if = "Lxcfs::is_auto")]
    pub lxcfs: Lxcfs,
}

/// `security.lxcfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lxcfs {
    /// When LXCFS runs on the host (a notice otherwise).
    #[default]
    Auto,
    /// Always: a start fails without it.
    On,
    Off,
}

impl Lxcfs {
    fn is_auto(&self) -> bool {
        *self == Lxcfs::Auto
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Console {
    /// Bound on the console log kept in `logs/console.log` (one older file is kept too).
    #[serde(default = "default_log_size")]
    pub log_size: Size,
}

impl Default for Console {
    fn default() -> Self {
        Console { log_size: default_log_size() }
    }
}

fn default_stop_timeout() -> u64 {
    30
}
fn default_log_size() -> Size {
    "1MiB".parse().expect("a valid size")
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Config {
    /// A new configuration for a rootfs whose init was detected as `init`.
    pub fn new(init: Init, privileged: bool) -> Config {
        Config {
            schema: SCHEMA,
            hostname: None,
            rootfs: Rootfs {
                path: "rootfs".into(),
                storage: crate::storage::Kind::Dir,
                image: None,
                layers: Vec::new(),
                upper: default_upper(),
            },
            init,
            security: Security { privileged, nesting: false, lxcfs: Lxcfs::Auto },
            idmap: None,
            console: Console::default(),
            env: BTreeMap::new(),
            nics: Vec::new(),
            ports: Vec::new(),
            limits: Default::default(),
            mounts: Vec::new(),
            devbox: None,
            ephemeral: false,
            autostart: Autostart::default(),
            restart: Restart::No,
        }
    }

    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
        Config::parse(path, &text)
    }

    /// Parses and validates `text` (the contents of `path`, named in errors).
    pub fn parse(path: &Path, text: &str) -> Result<Config, Error> {
        // A schema we do not know is reported as such, before field errors it would cause.
        if let Ok(table) = text.parse::<toml::Table>() {
            match table.get("schema") {
                Some(toml::Value::Integer(n)) if *n != i64::from(SCHEMA) => {
                    return Err(Error::Invalid {
                        path: path.to_path_buf(),
                        key: "schema".into(),
                        message: format!("schema {n} is not supported; this hutch reads schema {SCHEMA}"),
                    });
                }
                _ => {}
            }
        }
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
            Error::Parse { path: path.to_path_buf(), line, col, message: e.message().trim().to_string() }
        })?;
        config.validate().map_err(|(key, message)| Error::Invalid { path: path.to_path_buf(), key, message })?;
        Ok(config)
    }

    /// Checks every value; returns the offending key and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((k.to_string(), m));
        if self.schema != SCHEMA {
            return bad("schema", format!("schema {} is not supported; this hutch reads schema {SCHEMA}", self.schema));
        }
        if let Some(h) = &self.hostname {
            if let Err(e) = crate::base::name::validate(h) {
                return bad("hostname", e.to_string().replace("container name", "hostname"));
            }
        }
        if self.rootfs.path.is_empty() || self.rootfs.path.contains('\0') {
            return bad("rootfs.path", "must be a non-empty path".into());
        }
        if let Some(id) = &self.rootfs.image {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return bad("rootfs.image", format!("{id:?} is not an image id (letters, digits, '-' and '_')"));
            }
        }
        if self.rootfs.storage == crate::storage::Kind::Overlay && self.rootfs.image.is_none() {
            return bad("rootfs.image", "overlay storage needs the id of the image below it".into());
        }
        for (key, layer) in
            self.rootfs.layers.iter().map(|l| ("rootfs.layers", l)).chain([("rootfs.upper", &self.rootfs.upper)])
        {
            if !crate::storage::is_layer_name(layer) {
                return bad(key, format!("{layer:?} is not a layer of hutch's (upper, or L- and 16 hex digits)"));
            }
        }
        let mut all: Vec<&String> = self.rootfs.layers.iter().chain([&self.rootfs.upper]).collect();
        all.sort();
        if all.windows(2).any(|w| w[0] == w[1]) {
            return bad("rootfs.layers", "a layer is listed twice".into());
        }
        if self.rootfs.storage != crate::storage::Kind::Overlay
            && (!self.rootfs.layers.is_empty() || !is_default_upper(&self.rootfs.upper))
        {
            return bad("rootfs.layers", "layers are for overlay storage only".into());
        }
        match self.init.command.first() {
            None => return bad("init.command", "must name a program".into()),
            Some(p) if !p.starts_with('/') => {
                return bad("init.command", format!("{p:?} must be an absolute path inside the container"));
            }
            _ => {}
        }
        if self.init.command.iter().any(|a| a.contains('\0')) {
            return bad("init.command", "arguments cannot contain NUL".into());
        }
        if !(1..=86_400).contains(&self.init.stop_timeout) {
            return bad("init.stop_timeout", format!("{} is not between 1 and 86400 seconds", self.init.stop_timeout));
        }
        if let Some(m) = &self.idmap {
            if m.uid == 0 || m.gid == 0 {
                return bad("idmap", "uid and gid must not be 0 (that would map container root to host root; use security.privileged instead)".into());
            }
            if m.size == 0
                || u64::from(m.uid) + u64::from(m.size) > u64::from(u32::MAX)
                || u64::from(m.gid) + u64::from(m.size) > u64::from(u32::MAX)
            {
                return bad(
                    "idmap.size",
                    format!("{} ids from uid {} / gid {} do not fit below 2^32", m.size, m.uid, m.gid),
                );
            }
            for (key, id, start) in
                [("idmap.identity_uid", m.identity_uid, m.uid), ("idmap.identity_gid", m.identity_gid, m.gid)]
            {
                let Some(id) = id else { continue };
                if id == 0 || id >= m.size || (start..start.saturating_add(m.size)).contains(&id) {
                    return bad(
                        key,
                        format!("{id} must be between 1 and {} and outside the mapped host range", m.size - 1),
                    );
                }
            }
        }
        if self.console.log_size.bytes() < 4096 {
            return bad("console.log_size", "must be at least 4KiB".into());
        }
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') || v.contains('\0') {
                return bad(
                    &format!("env.{k}"),
                    "names cannot be empty or contain '=' or NUL; values cannot contain NUL".into(),
                );
            }
        }
        validate_network(self)?;
        mounts::validate(&self.mounts)?;
        self.limits.validate(&crate::cgroup::limits::Host::detect()).map_err(|e| match &e {
            crate::cgroup::limits::Error::Invalid { key, .. } => (key.clone(), e.to_string()),
            _ => ("limits".to_string(), e.to_string()),
        })
    }

    /// The file's text: a header comment, then the TOML.
    pub fn render(&self) -> String {
        let body = toml::to_string_pretty(self).expect("a Config always serialises");
        format!("# hutch container configuration (see docs/config.md)\n{body}")
    }

    /// Writes the configuration atomically.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        crate::base::fsutil::atomic_write(path, self.render().as_bytes(), 0o644)
            .map_err(|source| Error::Write { path: path.to_path_buf(), source })
    }

    /// The rootfs directory on the host.
    pub fn rootfs_path(&self, container_dir: &Path) -> PathBuf {
        let p = Path::new(&self.rootfs.path);
        if p.is_absolute() { p.to_path_buf() } else { container_dir.join(p) }
    }

    /// The overlay layers of the rootfs, for overlay storage.
    pub fn layers(&self, paths: &crate::base::paths::Paths, container_dir: &Path) -> Option<crate::storage::Layers> {
        match (self.rootfs.storage, &self.rootfs.image) {
            (crate::storage::Kind::Overlay, Some(id)) => Some(crate::storage::Layers {
                lower: paths.image_rootfs(id),
                rw: container_dir.join("overlay"),
                layers: self.rootfs.layers.clone(),
                upper: self.rootfs.upper.clone(),
                frozen: false,
            }),
            _ => None,
        }
    }

    pub fn halt_signal(&self) -> i32 {
        self.init.halt_signal.number()
    }

    pub fn log_size(&self) -> u64 {
        self.console.log_size.bytes()
    }
}

/// `[[nic]]` and `[[port]]`: well-formed values; subnets and reservations are the
/// network's to check.
fn validate_network(c: &Config) -> Result<(), (String, String)> {
    let bad = |k: String, m: String| Err((k, m));
    let mut names = Vec::new();
    for (i, nic) in c.nics.iter().enumerate() {
        let k = |f: &str| format!("nic[{i}].{f}");
        if let Err(e) = crate::base::name::validate(&nic.network) {
            return bad(k("network"), e.to_string().replace("container name", "network name"));
        }
        if let Err(e) = crate::network::addr::validate_ifname(&nic.name) {
            return bad(k("name"), e.to_string());
        }
        if names.contains(&&nic.name) {
            return bad(k("name"), format!("{} is used by another nic", nic.name));
        }
        names.push(&nic.name);
    }
    let mut seen = Vec::new();
    for (i, p) in c.ports.iter().enumerate() {
        let k = |f: &str| format!("port[{i}].{f}");
        if p.host_port == 0 || p.container_port == 0 {
            return bad(k("host_port"), "ports are 1-65535".into());
        }
        let key = (p.host_ip, p.host_port, p.proto);
        if seen.contains(&key) {
            return bad(k("host_port"), format!("{}/{} is published twice", p.host_port, p.proto));
        }
        seen.push(key);
    }
    if !c.ports.is_empty() && c.nics.is_empty() {
        return bad("port".into(), "published ports need a nic".into());
    }
    Ok(())
}

/// 1-based line and column of byte offset `pos` (for parse errors in any TOML file).
pub(crate) fn line_col(text: &str, pos: usize) -> (usize, usize) {
    let before = &text[..pos.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests;
