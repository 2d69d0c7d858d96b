//! The table format (`distro-configs/*.toml`) and how a release's overrides merge over
//! the base. Everything is checked when a table is loaded, for the base and for every
//! release, so [`super::DistroConfig::for_release`] cannot fail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::base::signal::Signal;
use crate::config::{Init, Ready};

/// One table file. Every section but `distro` may also appear under
/// `[releases.NAME]`, where it overrides the base.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TableFile {
    pub distro: String,
    #[serde(default)]
    pub init: InitLayer,
    #[serde(default)]
    pub network: NetworkLayer,
    #[serde(default)]
    pub systemd: Option<SystemdLayer>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub set: Vec<SetSpec>,
    #[serde(default)]
    pub releases: BTreeMap<String, ReleaseLayer>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReleaseLayer {
    /// Other names for the release (`"24.04"` for `noble`).
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub init: InitLayer,
    #[serde(default)]
    pub network: NetworkLayer,
    #[serde(default)]
    pub systemd: Option<SystemdLayer>,
    #[serde(default)]
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub set: Vec<SetSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct InitLayer {
    pub command: Option<Vec<String>>,
    pub halt_signal: Option<String>,
    pub reboot_signal: Option<String>,
    pub ready: Option<Ready>,
    pub stop_timeout: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NetworkLayer {
    pub style: Option<OneOrMany<Style>>,
    pub interface: Option<String>,
    pub nm_controlled: Option<bool>,
    pub enable: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SystemdLayer {
    pub mask: Option<Vec<String>>,
    /// An empty string turns the base's getty off.
    pub getty: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// How the rootfs configures its network; each writes DHCP on the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// `/etc/netplan/10-hutch.yaml` (Ubuntu; netplan's generator renders it for networkd).
    Netplan,
    /// `/etc/network/interfaces` and `interfaces.d` (Debian's ifupdown).
    Ifupdown,
    /// `/etc/sysconfig/network-scripts/ifcfg-*` and `/etc/sysconfig/network` (EL 7 and 8).
    Ifcfg,
    /// `/etc/NetworkManager/system-connections/*.nmconnection`.
    NmKeyfile,
    /// `/etc/systemd/network/10-hutch-*.network`.
    Networkd,
    /// `/etc/network/interfaces` for Alpine's ifupdown-ng or busybox ifup.
    AlpineInterfaces,
    /// Nothing is written.
    None,
}

/// A static file written into the rootfs; `{name}`, `{hostname}` and `{interface}` in
/// `content` are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub path: String,
    pub content: String,
    #[serde(default = "default_file_mode")]
    pub mode: u32,
    /// Written only if this path exists in the rootfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_exists: Option<String>,
    /// Written only if this path does not exist in the rootfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub if_missing: Option<String>,
}

/// `key=value` set in an existing shell-style file: the first active assignment of
/// `key` is replaced, else the first commented-out one (`#key=`), else the line is
/// appended. A missing file is left alone. `{name}`, `{hostname}` and `{interface}` in
/// `value` are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSpec {
    pub path: String,
    pub key: String,
    pub value: String,
}

fn default_file_mode() -> u32 {
    0o644
}

/// A distro's table with one release's overrides merged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    pub distro: String,
    /// The release table that matched, by its key; `None` when only the base applies.
    pub release: Option<String>,
    pub init: InitSpec,
    pub network: NetworkSpec,
    /// `None` for distros whose init is not systemd.
    pub systemd: Option<SystemdSpec>,
    pub files: Vec<FileSpec>,
    pub set: Vec<SetSpec>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InitSpec {
    pub command: Vec<String>,
    pub halt_signal: Signal,
    pub reboot_signal: Signal,
    pub ready: Ready,
    pub stop_timeout: u64,
}

impl InitSpec {
    /// The `[init]` of a container configuration.
    pub fn to_config(&self) -> Init {
        Init {
            command: self.command.clone(),
            halt_signal: self.halt_signal.clone(),
            ready: self.ready,
            stop_timeout: self.stop_timeout,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NetworkSpec {
    /// Candidates in order: the first whose tools are in the rootfs is used, else the
    /// first. A single style is used as is.
    pub styles: Vec<Style>,
    pub interface: String,
    /// `NM_CONTROLLED=` in ifcfg files; absent when `None`.
    pub nm_controlled: Option<bool>,
    /// Enable the service that reads the style's files, when the rootfs has it.
    pub enable: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemdSpec {
    /// Linked to /dev/null in /etc/systemd/system.
    pub mask: Vec<String>,
    /// Enabled in getty.target.wants if the rootfs has its unit file.
    pub getty: Option<String>,
}

/// The merge: a release's scalars replace the base's, its `mask` list replaces the
/// base's, its files and settings replace the base's with the same path (and key),
/// others are added.
pub(super) fn merge(base: &TableFile, release: Option<(&str, &ReleaseLayer)>) -> Result<Effective, (String, String)> {
    let r = release.map(|(_, r)| r);
    let prefix = release.map_or(String::new(), |(name, _)| format!("releases.{name}."));
    let missing = |key: &str| Err((format!("{prefix}{key}"), "is required (in the base table or the release)".into()));
    let pick =
        |get: fn(&InitLayer) -> &Option<String>| r.and_then(|r| get(&r.init).clone()).or(get(&base.init).clone());

    let Some(command) = r.and_then(|r| r.init.command.clone()).or(base.init.command.clone()) else {
        return missing("init.command");
    };
    let signal = |key: &str, text: Option<String>| match text {
        None => Err((format!("{prefix}{key}"), "is required (in the base table or the release)".to_string())),
        Some(t) => t.parse::<Signal>().map_err(|e| (format!("{prefix}{key}"), e.to_string())),
    };
    let halt_signal = signal("init.halt_signal", pick(|i| &i.halt_signal))?;
    let reboot_signal = signal("init.reboot_signal", pick(|i| &i.reboot_signal))?;
    let Some(ready) = r.and_then(|r| r.init.ready).or(base.init.ready) else { return missing("init.ready") };
    let stop_timeout = r.and_then(|r| r.init.stop_timeout).or(base.init.stop_timeout).unwrap_or(30);

    let net = |get: fn(&NetworkLayer) -> Option<bool>| r.and_then(|r| get(&r.network)).or(get(&base.network));
    let Some(styles) = r.and_then(|r| r.network.style.as_ref()).or(base.network.style.as_ref()).map(OneOrMany::to_vec)
    else {
        return missing("network.style");
    };
    let interface =
        r.and_then(|r| r.network.interface.clone()).or(base.network.interface.clone()).unwrap_or_else(|| "eth0".into());

    let systemd = match (base.systemd.as_ref(), r.and_then(|r| r.systemd.as_ref())) {
        (None, None) => None,
        (b, o) => {
            let mask = o.and_then(|o| o.mask.clone()).or(b.and_then(|b| b.mask.clone())).unwrap_or_default();
            let getty = o.and_then(|o| o.getty.clone()).or(b.and_then(|b| b.getty.clone())).filter(|g| !g.is_empty());
            Some(SystemdSpec { mask, getty })
        }
    };

    let mut files = base.files.clone();
    let mut set = base.set.clone();
    if let Some(r) = r {
        for f in &r.files {
            let same = |g: &FileSpec| g.path == f.path && g.if_exists == f.if_exists && g.if_missing == f.if_missing;
            match files.iter_mut().find(|g| same(g)) {
                Some(g) => *g = f.clone(),
                None => files.push(f.clone()),
            }
        }
        for s in &r.set {
            match set.iter_mut().find(|t| t.path == s.path && t.key == s.key) {
                Some(t) => *t = s.clone(),
                None => set.push(s.clone()),
            }
        }
    }

    let eff = Effective {
        distro: base.distro.clone(),
        release: release.map(|(n, _)| n.to_string()),
        init: InitSpec { command, halt_signal, reboot_signal, ready, stop_timeout },
        network: NetworkSpec {
            styles,
            interface,
            nm_controlled: net(|n| n.nm_controlled),
            enable: net(|n| n.enable).unwrap_or(false),
        },
        systemd,
        files,
        set,
    };
    validate(&eff).map_err(|(k, m)| (format!("{prefix}{k}"), m))?;
    Ok(eff)
}

/// Checks an effective table; returns the offending key and why.
fn validate(e: &Effective) -> Result<(), (String, String)> {
    let bad = |k: &str, m: String| Err((k.to_string(), m));
    match e.init.command.first() {
        None => return bad("init.command", "must name a program".into()),
        Some(p) if !p.starts_with('/') => return bad("init.command", format!("{p:?} must be an absolute path")),
        _ => {}
    }
    if e.init.command.iter().any(|a| a.contains('\0')) {
        return bad("init.command", "arguments cannot contain NUL".into());
    }
    if !(1..=86_400).contains(&e.init.stop_timeout) {
        return bad("init.stop_timeout", format!("{} is not between 1 and 86400 seconds", e.init.stop_timeout));
    }
    if e.network.styles.is_empty() {
        return bad("network.style", "must name at least one style".into());
    }
    let i = &e.network.interface;
    if i.is_empty() || i.len() > 15 || !i.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) || i == "." {
        return bad("network.interface", format!("{i:?} is not an interface name (1-15 of a-z, 0-9, '-', '_', '.')"));
    }
    if let Some(sd) = &e.systemd {
        for u in sd.mask.iter().chain(&sd.getty) {
            check_unit(u).map_err(|m| ("systemd".to_string(), m))?;
        }
    }
    for f in &e.files {
        check_path(&f.path).map_err(|m| ("files.path".to_string(), m))?;
        for cond in f.if_exists.iter().chain(&f.if_missing) {
            check_path(cond).map_err(|m| ("files.if_exists/if_missing".to_string(), m))?;
        }
        if f.mode > 0o777 {
            return bad("files.mode", format!("{:#o} for {} is not a permission mode up to 0o777", f.mode, f.path));
        }
    }
    for s in &e.set {
        check_path(&s.path).map_err(|m| ("set.path".to_string(), m))?;
        let k = &s.key;
        if k.is_empty()
            || k.starts_with(|c: char| c.is_ascii_digit())
            || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return bad("set.key", format!("{k:?} is not a shell variable name"));
        }
        if s.value.contains(['\n', '\0']) {
            return bad("set.value", format!("the value for {k} cannot contain a newline or NUL"));
        }
    }
    Ok(())
}

/// A unit name usable as a file name in /etc/systemd/system.
fn check_unit(u: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c);
    if u.is_empty() || u.len() > 255 || !u.contains('.') || u.starts_with('.') || !u.chars().all(ok_char) {
        return Err(format!("{u:?} is not a unit name such as getty.target or auditd.service"));
    }
    Ok(())
}

/// An absolute, normal path inside the rootfs (no `.`, `..` or empty components).
fn check_path(p: &str) -> Result<(), String> {
    let normal = p.starts_with('/')
        && p.len() > 1
        && !p.contains('\0')
        && p[1..].split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if normal { Ok(()) } else { Err(format!("{p:?} must be an absolute path without '.', '..' or '//'")) }
}
