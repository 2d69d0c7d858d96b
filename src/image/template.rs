//! Templates: where each distribution comes from, in order of preference.
//!
//! One TOML file per distribution, `templates/DISTRO.toml`, embedded in the binary; a
//! file of the same name in the override directory (default `/etc/hutch/templates`)
//! replaces the embedded one, and a new name there adds a distribution. Schema
//! (unknown keys are refused):
//!
//! ```toml
//! distro = "ubuntu"                 # must match the file name
//! default_release = "resolute"      # what `-t ubuntu` means
//! [[releases]]
//! name = "noble"                    # what sources use as the release / suite name
//! aliases = ["24.04"]               # also accepted (all matching is case-insensitive)
//! version = "24.04"                 # {version} in patterns, dnf --releasever; default: name
//! lts = true                        # default false
//! # sources = [...]                 # replaces the distribution's sources for this release
//! [[sources]]                       # tried in order
//! kind = "image-server"             # an LXC-format image server (hutch's configured one)
//! dist = "ubuntu"                   # name in the server's index; default: distro
//! variant = "default"               # default "default"
//! [[sources]]
//! kind = "debootstrap"
//! mirror = "host-apt"               # or "config": see `MirrorFrom`
//! variant = "minbase"               # optional
//! components = ["main", "universe"]
//! include = ["systemd-sysv"]        # optional; exclude likewise
//! host_suites = ["bionic"]          # optional: more suites that identify this archive on the host
//! [[sources]]
//! kind = "dnf"                      # dnf --installroot --releasever={version}
//! mirror = "host-dnf"               # or "config"
//! host_ids = ["fedora"]             # os-release IDs whose own dnf repos may be used
//! packages = ["systemd"]
//! repos = [{ name = "fedora", baseurl = "{mirror}/releases/{version}/Everything/{arch}/os/" }]
//! [[sources]]
//! kind = "busybox"                  # a rootfs around the host's static busybox; no network
//! paths = ["/bin/busybox"]          # where to look, in order
//! [[sources]]
//! kind = "tar"                      # a root tarball
//! mirror = "config"
//! url = "{mirror}/v{release}/rootfs-{arch}.tar.gz"
//! checksums = "{mirror}/v{release}/SHA256SUMS"   # sha256sum format, lists the tarball's file name
//! arch_map = { amd64 = "x86_64" }   # optional: the source's arch names; a missing arch is unsupported
//! ```
//!
//! Patterns may use `{mirror}` (without its trailing slash), `{release}`, `{version}` and
//! `{arch}` (see [`Source::arch_for`]). Templates never name a package-registry host.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use thiserror::Error;

/// Where template files that replace or add to the embedded ones live by default.
pub(crate) const OVERRIDE_DIR: &str = "/etc/hutch/templates";

const EMBEDDED: &[(&str, &str)] = &[
    ("alpine", include_str!("../../templates/alpine.toml")),
    ("busybox", include_str!("../../templates/busybox.toml")),
    ("centos", include_str!("../../templates/centos.toml")),
    ("debian", include_str!("../../templates/debian.toml")),
    ("fedora", include_str!("../../templates/fedora.toml")),
    ("ubuntu", include_str!("../../templates/ubuntu.toml")),
];

/// Architectures by their Debian/LXC names, the names hutch uses everywhere.
pub(crate) const ARCHES: &[&str] = &["amd64", "arm64", "armhf", "i386", "ppc64el", "s390x", "riscv64", "loong64"];

const PLACEHOLDERS: &[&str] = &["mirror", "release", "version", "arch"];

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to read the image name {input:?}: {reason}")]
    BadRef { input: String, reason: String },
    #[error("failed to find a template for {distro:?}: hutch does not know that distribution")]
    UnknownDistro { distro: String, known: Vec<String> },
    #[error("failed to find release {release:?} of {distro}: the template does not list it")]
    UnknownRelease { distro: String, release: String, releases: String },
    #[error("failed to use architecture {arch:?}: hutch does not know it")]
    UnknownArch { arch: String },
    #[error("failed to read the template {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("failed to parse the template {origin}:{line}:{col}: {message}")]
    Parse { origin: String, line: usize, col: usize, message: String },
    #[error("failed to load the template {origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::BadRef { .. } => Some("write DISTRO or DISTRO:RELEASE, for example ubuntu:24.04 or debian".into()),
            Error::UnknownDistro { known, .. } => {
                Some(format!("known distributions: {}; a DISTRO.toml in {OVERRIDE_DIR} adds one", known.join(", ")))
            }
            Error::UnknownRelease { distro, releases, .. } => Some(format!("releases of {distro}: {releases}")),
            Error::UnknownArch { .. } => Some(format!("known architectures: {}", ARCHES.join(", "))),
            Error::Parse { origin, .. } | Error::Invalid { origin, .. } if !origin.starts_with("built-in") => {
                Some("fix the file, or remove it to use the built-in template".into())
            }
            _ => None,
        }
    }
}

/// What the user asked for: `DISTRO` or `DISTRO:RELEASE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Lowercased.
    pub distro: String,
    /// As typed; `None` means the template's default release.
    pub release: Option<String>,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.release {
            Some(r) => write!(f, "{}:{r}", self.distro),
            None => f.write_str(&self.distro),
        }
    }
}

/// A name made of ASCII letters, digits, `.`, `-`, `_` and `+`, starting with a letter or digit.
fn is_name(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'))
}

/// Parses `ubuntu`, `ubuntu:24.04`, `centos:9-Stream`.
pub(crate) fn parse_ref(s: &str) -> Result<ImageRef, Error> {
    let bad = |reason: &str| Err(Error::BadRef { input: s.to_string(), reason: reason.to_string() });
    if s.is_empty() {
        return bad("it is empty");
    }
    let (distro, release) = match s.split_once(':') {
        None => (s, None),
        Some((d, r)) => (d, Some(r)),
    };
    if release.is_some_and(|r| r.contains(':')) {
        return bad("it has more than one ':'");
    }
    if distro.is_empty() {
        return bad("no distribution before ':'");
    }
    if release == Some("") {
        return bad("no release after ':'");
    }
    if !is_name(distro) {
        return bad("a distribution is letters, digits, '.', '-' and '_'");
    }
    if release.is_some_and(|r| !is_name(r)) {
        return bad("a release is letters, digits, '.', '-', '_' and '+'");
    }
    Ok(ImageRef { distro: distro.to_ascii_lowercase(), release: release.map(str::to_string) })
}

/// The distributions built into this binary.
pub(crate) fn known() -> Vec<&'static str> {
    EMBEDDED.iter().map(|(n, _)| *n).collect()
}

/// The built-in distributions plus those the override directory adds, sorted.
pub(crate) fn known_in(override_dir: Option<&Path>) -> Vec<String> {
    let mut names: Vec<String> = known().into_iter().map(str::to_string).collect();
    if let Some(rd) = override_dir.and_then(|d| std::fs::read_dir(d).ok()) {
        for entry in rd.flatten() {
            let name = entry.file_name();
            if let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".toml")) {
                if is_name(stem) && !names.iter().any(|n| n == stem) {
                    names.push(stem.to_string());
                }
            }
        }
    }
    names.sort();
    names
}

/// The template for `distro`: `override_dir/DISTRO.toml` if it exists, else the built-in one.
pub(crate) fn load(distro: &str, override_dir: Option<&Path>) -> Result<Template, Error> {
    let unknown = || Error::UnknownDistro { distro: distro.to_string(), known: known_in(override_dir) };
    if !is_name(distro) {
        return Err(unknown());
    }
    if let Some(dir) = override_dir {
        let path = dir.join(format!("{distro}.toml"));
        match std::fs::read_to_string(&path) {
            Ok(text) => return Template::parse(distro, &path.display().to_string(), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::Read { path, source }),
        }
    }
    match EMBEDDED.iter().find(|(n, _)| *n == distro) {
        Some((n, text)) => Template::parse(n, &format!("built-in {n}.toml"), text),
        None => Err(unknown()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    pub distro: String,
    pub default_release: String,
    pub releases: Vec<Release>,
    /// Used by every release that has no `sources` of its own.
    #[serde(default)]
    pub sources: Vec<Source>,
    /// Where the template came from, for messages: a path, or `built-in NAME.toml`.
    #[serde(skip)]
    pub origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `{version}` in patterns and dnf's `--releasever`; defaults to the name.
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub lts: bool,
    /// Replaces the distribution's sources for this release.
    #[serde(default)]
    pub sources: Option<Vec<Source>>,
}

impl Release {
    pub fn version(&self) -> &str {
        self.version.as_deref().unwrap_or(&self.name)
    }

    /// Whether `s` names this release (its name or an alias, ignoring case).
    pub fn matches(&self, s: &str) -> bool {
        self.name.eq_ignore_ascii_case(s) || self.aliases.iter().any(|a| a.eq_ignore_ascii_case(s))
    }
}

/// Where a source's mirror comes from. Whatever the value, a `--mirror` given on the
/// command line wins, then hutch's configured mirror for the distribution, then:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MirrorFrom {
    /// The host's apt sources (`mirror::from_apt` with [`Template::apt_suites`]).
    HostApt,
    /// The host's own dnf repositories, when the host's os-release ID is in `host_ids`.
    HostDnf,
    /// Nothing more: without `--mirror` or a configured mirror the source is skipped.
    Config,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnfRepo {
    pub name: String,
    /// A pattern, e.g. `{mirror}/{version}-stream/BaseOS/{arch}/os/`.
    pub baseurl: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Source {
    /// An LXC-format image server; the release is looked up by the release's name.
    ImageServer {
        /// The name in the server's index; filled with the distribution when absent.
        #[serde(default)]
        dist: String,
        #[serde(default = "default_variant")]
        variant: String,
    },
    /// `debootstrap [--variant V] [--components C] [--include I] [--exclude E] RELEASE DIR MIRROR`.
    Debootstrap {
        mirror: MirrorFrom,
        #[serde(default)]
        variant: Option<String>,
        components: Vec<String>,
        #[serde(default)]
        include: Vec<String>,
        #[serde(default)]
        exclude: Vec<String>,
        /// More suites that identify this distribution's archive in the host's apt sources.
        #[serde(default)]
        host_suites: Vec<String>,
    },
    /// `dnf --installroot DIR --releasever VERSION install PACKAGES`.
    Dnf {
        mirror: MirrorFrom,
        /// os-release IDs of hosts whose own repositories serve this distribution.
        #[serde(default)]
        host_ids: Vec<String>,
        /// Used with a `--mirror` or configured mirror.
        repos: Vec<DnfRepo>,
        packages: Vec<String>,
    },
    /// A rootfs assembled around the host's static busybox.
    Busybox { paths: Vec<String> },
    /// A root tarball and a sha256sum-format file that lists it.
    Tar {
        mirror: MirrorFrom,
        url: String,
        checksums: String,
        #[serde(default)]
        arch_map: BTreeMap<String, String>,
    },
}

fn default_variant() -> String {
    "default".into()
}

/// A kind of source, as `--source` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceKind {
    ImageServer,
    Debootstrap,
    Dnf,
    Busybox,
    Tar,
}

impl SourceKind {
    /// The name `Source::kind` gives (and image metadata records).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::ImageServer => "image-server",
            SourceKind::Debootstrap => "debootstrap",
            SourceKind::Dnf => "dnf",
            SourceKind::Busybox => "busybox",
            SourceKind::Tar => "tar",
        }
    }
}

impl Source {
    pub fn kind(&self) -> &'static str {
        match self {
            Source::ImageServer { .. } => "image-server",
            Source::Debootstrap { .. } => "debootstrap",
            Source::Dnf { .. } => "dnf",
            Source::Busybox { .. } => "busybox",
            Source::Tar { .. } => "tar",
        }
    }

    /// This source's name for `arch` (a Debian/LXC name), for `{arch}`: the RPM name for
    /// dnf, `arch_map`'s for tar (`None` if the map does not list it), else unchanged.
    pub fn arch_for(&self, arch: &str) -> Option<String> {
        match self {
            Source::Dnf { .. } => rpm_arch(arch).ok().map(str::to_string),
            Source::Tar { arch_map, .. } if !arch_map.is_empty() => arch_map.get(arch).cloned(),
            _ => Some(arch.to_string()),
        }
    }

    fn validate(&mut self, distro: &str) -> Result<(), String> {
        let patterns: Vec<&str> = match self {
            Source::ImageServer { dist, variant } => {
                if dist.is_empty() {
                    *dist = distro.to_string();
                }
                if variant.is_empty() {
                    return Err("an image-server source has an empty variant".into());
                }
                vec![]
            }
            Source::Debootstrap { mirror, components, .. } => {
                if *mirror == MirrorFrom::HostDnf {
                    return Err("a debootstrap source takes mirror = \"host-apt\" or \"config\"".into());
                }
                if components.is_empty() {
                    return Err("a debootstrap source needs components".into());
                }
                vec![]
            }
            Source::Dnf { mirror, host_ids, repos, packages } => {
                if *mirror == MirrorFrom::HostApt {
                    return Err("a dnf source takes mirror = \"host-dnf\" or \"config\"".into());
                }
                if *mirror == MirrorFrom::HostDnf && host_ids.is_empty() {
                    return Err("a dnf source with mirror = \"host-dnf\" needs host_ids".into());
                }
                if repos.is_empty() || packages.is_empty() {
                    return Err("a dnf source needs repos and packages".into());
                }
                repos.iter().map(|r| r.baseurl.as_str()).collect()
            }
            Source::Busybox { paths } => {
                if paths.is_empty() || paths.iter().any(|p| !p.starts_with('/')) {
                    return Err("a busybox source needs paths, all absolute".into());
                }
                vec![]
            }
            Source::Tar { mirror, url, checksums, arch_map } => {
                if *mirror != MirrorFrom::Config {
                    return Err("a tar source takes mirror = \"config\"".into());
                }
                if let Some(a) = arch_map.keys().find(|a| !ARCHES.contains(&a.as_str())) {
                    return Err(format!("arch_map has {a:?}, which is not one of {}", ARCHES.join(", ")));
                }
                vec![url.as_str(), checksums.as_str()]
            }
        };
        patterns.into_iter().try_for_each(check_pattern)
    }
}

fn check_pattern(p: &str) -> Result<(), String> {
    let mut rest = p;
    while let Some(i) = rest.find(['{', '}']) {
        let tail = &rest[i..];
        let end = tail.find('}').filter(|_| tail.starts_with('{'));
        let Some(end) = end else { return Err(format!("unbalanced braces in {p:?}")) };
        let name = &tail[1..end];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!("unknown placeholder {{{name}}} in {p:?}; known: {{{}}}", PLACEHOLDERS.join("}, {")));
        }
        rest = &tail[end + 1..];
    }
    Ok(())
}

/// Fills a pattern. `arch` is the source's name for it ([`Source::arch_for`]).
pub(crate) fn expand(pattern: &str, mirror: &str, release: &Release, arch: &str) -> String {
    pattern
        .replace("{mirror}", mirror.trim_end_matches('/'))
        .replace("{release}", &release.name)
        .replace("{version}", release.version())
        .replace("{arch}", arch)
}

impl Template {
    /// Parses and validates `text`, the template for `distro` (from `origin`, for messages).
    pub fn parse(distro: &str, origin: &str, text: &str) -> Result<Template, Error> {
        let mut t: Template = toml::from_str(text).map_err(|e| {
            let (line, col) = e.span().map(|s| crate::config::line_col(text, s.start)).unwrap_or((1, 1));
            Error::Parse { origin: origin.to_string(), line, col, message: e.message().trim().to_string() }
        })?;
        t.origin = origin.to_string();
        t.validate(distro).map_err(|message| Error::Invalid { origin: origin.to_string(), message })?;
        Ok(t)
    }

    fn validate(&mut self, distro: &str) -> Result<(), String> {
        if self.distro != distro {
            return Err(format!("distro = {:?}, but the file is for {distro:?}", self.distro));
        }
        if self.releases.is_empty() {
            return Err("no releases".into());
        }
        let mut seen: Vec<(String, &str)> = Vec::new();
        for r in &self.releases {
            for n in std::iter::once(&r.name).chain(&r.aliases) {
                if !is_name(n) {
                    return Err(format!("release name or alias {n:?} is not letters, digits, '.', '-', '_', '+'"));
                }
                let key = n.to_ascii_lowercase();
                if let Some((_, other)) = seen.iter().find(|(k, _)| *k == key) {
                    return Err(format!("{n:?} names both {other} and {}", r.name));
                }
                seen.push((key, &r.name));
            }
            if r.sources.as_ref().unwrap_or(&self.sources).is_empty() {
                return Err(format!("release {} has no sources", r.name));
            }
        }
        if !self.releases.iter().any(|r| r.matches(&self.default_release)) {
            return Err(format!("default_release {:?} is not one of the releases", self.default_release));
        }
        let distro = self.distro.clone();
        let all = self.sources.iter_mut().chain(self.releases.iter_mut().flat_map(|r| r.sources.iter_mut().flatten()));
        for s in all {
            s.validate(&distro).map_err(|m| format!("{} source: {m}", s.kind()))?;
        }
        Ok(())
    }

    /// The release `wanted` names (name or alias, any case), or the default release.
    pub fn release(&self, wanted: Option<&str>) -> Result<&Release, Error> {
        let w = wanted.unwrap_or(&self.default_release);
        self.releases.iter().find(|r| r.matches(w)).ok_or_else(|| Error::UnknownRelease {
            distro: self.distro.clone(),
            release: w.to_string(),
            releases: self.describe_releases(),
        })
    }

    pub fn sources_for<'a>(&'a self, rel: &'a Release) -> &'a [Source] {
        rel.sources.as_deref().unwrap_or(&self.sources)
    }

    /// `noble (24.04, LTS), resolute (26.04, LTS, default)`-style list for messages.
    pub fn describe_releases(&self) -> String {
        let default = self.releases.iter().find(|r| r.matches(&self.default_release)).map(|r| &r.name);
        let parts: Vec<String> = self
            .releases
            .iter()
            .map(|r| {
                let mut notes: Vec<&str> = r.aliases.iter().map(String::as_str).collect();
                if r.lts {
                    notes.push("LTS");
                }
                if Some(&r.name) == default {
                    notes.push("default");
                }
                if notes.is_empty() { r.name.clone() } else { format!("{} ({})", r.name, notes.join(", ")) }
            })
            .collect();
        parts.join(", ")
    }

    /// Suite names that identify this distribution's archive in the host's apt sources:
    /// release names, aliases with a letter in them (`stable`, not `12`), and every
    /// debootstrap source's `host_suites`.
    pub fn apt_suites(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |s: &str| {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        };
        for r in &self.releases {
            add(&r.name);
            r.aliases.iter().filter(|a| a.chars().any(|c| c.is_ascii_alphabetic())).for_each(|a| add(a));
        }
        let all = self.sources.iter().chain(self.releases.iter().flat_map(|r| r.sources.iter().flatten()));
        for s in all {
            if let Source::Debootstrap { host_suites, .. } = s {
                host_suites.iter().for_each(|h| add(h));
            }
        }
        out
    }
}

/// The host's architecture by its Debian/LXC name.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "x86" => "i386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64el",
        "loongarch64" => "loong64",
        other => other, // s390x, riscv64 and anything else by the kernel's name
    }
}

/// The Debian/LXC name of an architecture given by any common name (`x86_64`, `aarch64`,
/// `armv7l`, `i686`, `ppc64le`, ...), ignoring case.
pub(crate) fn normalize_arch(s: &str) -> Result<&'static str, Error> {
    let a = match s.to_ascii_lowercase().as_str() {
        "amd64" | "x86_64" | "x86-64" | "x64" => "amd64",
        "arm64" | "aarch64" | "armv8" | "armv8l" => "arm64",
        "armhf" | "armv7" | "armv7l" | "armv7hl" | "arm" => "armhf",
        "i386" | "i486" | "i586" | "i686" | "x86" => "i386",
        "ppc64el" | "ppc64le" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "loong64" | "loongarch64" => "loong64",
        _ => return Err(Error::UnknownArch { arch: s.to_string() }),
    };
    Ok(a)
}

/// The RPM (dnf) name of an architecture given by any common name.
pub(crate) fn rpm_arch(s: &str) -> Result<&'static str, Error> {
    Ok(match normalize_arch(s)? {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "armhf" => "armv7hl",
        "i386" => "i686",
        "ppc64el" => "ppc64le",
        "loong64" => "loongarch64",
        other => other, // s390x, riscv64
    })
}

#[cfg(test)]
mod tests;
