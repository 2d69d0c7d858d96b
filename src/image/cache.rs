//! The image cache: `images/ID/{rootfs/, image.toml}`. Each image is fetched,
//! checked and unpacked once, in a staging directory renamed into place only when
//! complete, so a failed or interrupted pull leaves nothing behind (and the next
//! pull removes any staging directory a killed one left).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Error;
use crate::base::fsutil;
use crate::base::paths::Paths;

/// `image.toml`: what an image is and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub id: String,
    pub distro: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
    /// The server's build (`YYYYMMDD_HH:MM`) or when hutch built the image.
    pub build: String,
    /// image-server, debootstrap, dnf, busybox, import or publish.
    pub source: String,
    /// Server URL, mirror, file or container it came from.
    pub origin: String,
    /// SHA-256 of the archive it was unpacked from, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Seconds since the epoch.
    pub created: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl Meta {
    pub fn describe(&self) -> String {
        format!("{}:{} ({}, {})", self.distro, self.release, self.arch, self.variant)
    }
}

pub struct Cache<'a> {
    paths: &'a Paths,
}

/// A staging directory in the cache, removed on drop unless committed.
pub struct Staging {
    pub dir: PathBuf,
    armed: bool,
}

impl Staging {
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.armed {
            let _ = fsutil::remove_tree(&self.dir);
        }
    }
}

impl<'a> Cache<'a> {
    pub fn new(paths: &'a Paths) -> Cache<'a> {
        Cache { paths }
    }

    pub fn dir(&self) -> PathBuf {
        self.paths.images()
    }

    /// Every complete image, oldest first.
    pub fn list(&self) -> Result<Vec<Meta>, Error> {
        let dir = self.dir();
        let entries = match std::fs::read_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            r => r.map_err(|e| Error::Io { action: "read", path: dir.clone(), source: e })?,
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            out.push(self.load(&name)?);
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    fn load(&self, id: &str) -> Result<Meta, Error> {
        let path = self.paths.image(id).join("image.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| Error::Io { action: "read", path: path.clone(), source: e })?;
        toml::from_str(&text).map_err(|e| Error::Corrupt { path, message: e.message().to_string() })
    }

    /// The newest cached image of a distro release for an arch and variant that
    /// `accept` takes.
    pub fn find(
        &self,
        distro: &str,
        release: &str,
        arch: &str,
        variant: &str,
        accept: impl Fn(&Meta) -> bool,
    ) -> Result<Option<Meta>, Error> {
        Ok(self.list()?.into_iter().rev().find(|m| {
            m.distro == distro
                && m.release.eq_ignore_ascii_case(release)
                && m.arch == arch
                && m.variant == variant
                && accept(m)
        }))
    }

    /// An image by id, alias, `DISTRO[:RELEASE]` (the newest), or unique id prefix.
    pub fn resolve(&self, what: &str) -> Result<Meta, Error> {
        let all = self.list()?;
        if let Some(m) = all.iter().find(|m| m.id == what || m.aliases.iter().any(|a| a == what)) {
            return Ok(m.clone());
        }
        // DISTRO or DISTRO:RELEASE: the newest such image.
        let (distro, release) = what.split_once(':').map_or((what, None), |(d, r)| (d, Some(r)));
        let host = super::template::host_arch();
        if let Some(m) = all
            .iter()
            .rev()
            .find(|m| m.distro == distro && m.arch == host && release.is_none_or(|r| m.release.eq_ignore_ascii_case(r)))
        {
            return Ok(m.clone());
        }
        let by_prefix: Vec<&Meta> = all.iter().filter(|m| what.len() >= 4 && m.id.starts_with(what)).collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(Error::NoSuchImage { what: what.to_string() }),
            _ => Err(Error::Ambiguous { what: what.to_string() }),
        }
    }

    /// A fresh staging directory (`images/.staging-<random>`); leftovers of killed
    /// pulls are removed first and reported.
    pub fn stage(&self, notices: &mut Vec<String>) -> Result<Staging, Error> {
        let dir = self.dir();
        fsutil::ensure_dir(&dir, 0o700).map_err(|e| Error::Io { action: "create", path: dir.clone(), source: e })?;
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::Io { action: "read", path: dir.clone(), source: e })? {
            let entry = entry.map_err(|e| Error::Io { action: "read", path: dir.clone(), source: e })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".staging-") {
                fsutil::remove_tree(&entry.path()).map_err(|e| Error::Io {
                    action: "remove",
                    path: entry.path(),
                    source: e,
                })?;
                notices.push(format!("removed {} left by an interrupted image pull", entry.path().display()));
            }
        }
        let staging = dir.join(format!(".staging-{}", &crate::sys::random_hex128()[..12]));
        std::fs::create_dir(&staging).map_err(|e| Error::Io { action: "create", path: staging.clone(), source: e })?;
        Ok(Staging { dir: staging, armed: true })
    }

    /// Moves a complete staging directory into place as image `meta.id`, once its
    /// contents are on disk.
    pub fn commit(&self, mut staging: Staging, meta: &Meta) -> Result<(), Error> {
        if let Some((field, value)) = meta.unsafe_field() {
            return Err(Error::UnsafeField { field, value: value.to_string() });
        }
        let dir = std::fs::File::open(&staging.dir).map_err(|e| Error::Io {
            action: "open",
            path: staging.dir.clone(),
            source: e,
        })?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::Io {
            action: "sync",
            path: staging.dir.clone(),
            source: e.into(),
        })?;
        let text = toml::to_string(meta).expect("image metadata serialises");
        let file = staging.dir.join("image.toml");
        fsutil::atomic_write(&file, text.as_bytes(), 0o644).map_err(|e| Error::Io {
            action: "write",
            path: file.clone(),
            source: e,
        })?;
        let dst = self.paths.image(&meta.id);
        std::fs::rename(&staging.dir, &dst).map_err(|e| Error::Io {
            action: "move into place",
            path: dst,
            source: e,
        })?;
        staging.armed = false;
        Ok(())
    }

    /// Rewrites an image's metadata (aliases) atomically.
    pub fn save(&self, meta: &Meta) -> Result<(), Error> {
        let file = self.paths.image(&meta.id).join("image.toml");
        let text = toml::to_string(meta).expect("image metadata serialises");
        fsutil::atomic_write(&file, text.as_bytes(), 0o644).map_err(|e| Error::Io {
            action: "write",
            path: file,
            source: e,
        })
    }

    /// Removes an image. Refused while a container's overlay stands on it.
    pub fn remove(&self, meta: &Meta) -> Result<(), Error> {
        let users = self.users(&meta.id)?;
        if !users.is_empty() {
            return Err(Error::InUse { id: meta.id.clone(), containers: users.join(", ") });
        }
        let dir = self.paths.image(&meta.id);
        // Renamed out of the way first, so a crash mid-removal leaves no half image.
        let doomed = self.dir().join(format!(".staging-rm-{}", meta.id));
        std::fs::rename(&dir, &doomed).map_err(|e| Error::Io { action: "remove", path: dir.clone(), source: e })?;
        fsutil::remove_tree(&doomed).map_err(|e| Error::Io { action: "remove", path: doomed, source: e })
    }

    /// Containers whose overlay lower layer is image `id`.
    pub fn users(&self, id: &str) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        let dir = self.paths.containers();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Ok(out);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match crate::config::Config::load(&entry.path().join("config.toml")) {
                Ok(cfg)
                    if cfg.rootfs.storage == crate::storage::Kind::Overlay
                        && cfg.rootfs.image.as_deref() == Some(id) =>
                {
                    out.push(name)
                }
                Ok(_) => {}
                // Cannot tell: count it, rather than pull an image from under it.
                Err(_) => out.push(format!("{name} (unreadable config)")),
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Whether `s` can name a directory level of the cache and of an exported tree:
/// 1-64 characters of letters, digits and `. _ : + -`, not starting with a dot. Image
/// metadata comes from servers and from os-release files, both untrusted.
pub(crate) fn safe_component(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:+-".contains(&b))
}

impl Meta {
    /// The first field that is not a [`safe_component`], with its value.
    pub fn unsafe_field(&self) -> Option<(&'static str, &str)> {
        [
            ("id", self.id.as_str()),
            ("distro", &self.distro),
            ("release", &self.release),
            ("arch", &self.arch),
            ("variant", &self.variant),
            ("build", &self.build),
        ]
        .into_iter()
        .find(|(_, v)| !safe_component(v))
    }
}

/// A new image id: 12 hex digits (from the archive's checksum when there is one).
pub(crate) fn new_id(sha256: Option<&str>) -> String {
    match sha256 {
        Some(s) if s.len() >= 12 => s[..12].to_string(),
        _ => crate::sys::random_hex128()[..12].to_string(),
    }
}

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `YYYYMMDD_HH:MM` (UTC) for `secs`, the build format of image servers.
pub(crate) fn build_stamp(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let (y, m, d) = civil_from_days(days);
    let rem = secs % 86400;
    format!("{y:04}{m:02}{d:02}_{:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `ID` and `VERSION_CODENAME` (or `VERSION_ID`) from a rootfs's os-release, resolved
/// inside the rootfs.
pub(crate) fn os_release(rootfs: &Path) -> Option<(String, String)> {
    let text = ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|p| crate::rootfs::read_file_in_root(rootfs, p, 1 << 20).ok())?;
    let text = String::from_utf8_lossy(&text);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .map(|v| v.trim().trim_matches('"').to_string())
    };
    let id = get("ID").filter(|v| safe_component(v))?;
    let release = get("VERSION_CODENAME")
        .filter(|v| safe_component(v))
        .or_else(|| get("VERSION_ID").filter(|v| safe_component(v)))?;
    Some((id, release))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_stamps_are_utc_dates() {
        assert_eq!(build_stamp(0), "19700101_00:00");
        assert_eq!(build_stamp(1_795_451_672), "20261123_16:34");
        assert_eq!(build_stamp(951_782_400), "20000229_00:00");
    }

    #[test]
    fn staging_is_removed_unless_committed_and_leftovers_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(Some(d.path()));
        let cache = Cache::new(&paths);
        let mut notices = Vec::new();
        let s = cache.stage(&mut notices).unwrap();
        let left = s.dir.clone();
        std::mem::forget(s); // as if killed
        assert!(left.exists());
        let s = cache.stage(&mut notices).unwrap();
        assert!(!left.exists());
        assert_eq!(notices.len(), 1, "{notices:?}");
        std::fs::create_dir(s.rootfs()).unwrap();
        let meta = Meta {
            id: "abcdef012345".into(),
            distro: "debian".into(),
            release: "bookworm".into(),
            arch: "amd64".into(),
            variant: "default".into(),
            build: build_stamp(now()),
            source: "import".into(),
            origin: "x.tar".into(),
            sha256: None,
            created: now(),
            aliases: vec!["deb".into()],
        };
        cache.commit(s, &meta).unwrap();
        assert_eq!(cache.list().unwrap(), vec![meta.clone()]);
        assert_eq!(cache.resolve("deb").unwrap().id, meta.id);
        assert_eq!(cache.resolve("abcd").unwrap().id, meta.id);
        assert!(matches!(cache.resolve("nope"), Err(Error::NoSuchImage { .. })));
        assert_eq!(cache.find("debian", "Bookworm", "amd64", "default", |_| true).unwrap().unwrap().id, meta.id);
        let s = cache.stage(&mut notices).unwrap();
        let dir = s.dir.clone();
        drop(s);
        assert!(!dir.exists());
        cache.remove(&meta).unwrap();
        assert!(cache.list().unwrap().is_empty());
    }

    #[test]
    fn unsafe_metadata_is_refused_before_it_names_a_directory() {
        for ok in ["bookworm", "9-Stream", "3.20", "20261123_16:43", "amd64", "default"] {
            assert!(safe_component(ok), "{ok}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a b", "x\0", &"a".repeat(65)] {
            assert!(!safe_component(bad), "{bad:?}");
        }
        let d = tempfile::tempdir().unwrap();
        let paths = Paths::new(Some(d.path()));
        let cache = Cache::new(&paths);
        let s = cache.stage(&mut Vec::new()).unwrap();
        let mut meta = sample();
        meta.build = "../../../../victim".into();
        let err = cache.commit(s, &meta).unwrap_err();
        assert!(matches!(err, Error::UnsafeField { field: "build", .. }), "{err}");
        assert!(cache.list().unwrap().is_empty());
        std::fs::create_dir_all(d.path().join("r/etc")).unwrap();
        std::fs::write(d.path().join("r/etc/os-release"), "ID=debian\nVERSION_CODENAME=../../x\nVERSION_ID=12\n")
            .unwrap();
        assert_eq!(os_release(&d.path().join("r")), Some(("debian".into(), "12".into())));
    }

    fn sample() -> Meta {
        Meta {
            id: "abcdef012345".into(),
            distro: "debian".into(),
            release: "bookworm".into(),
            arch: "amd64".into(),
            variant: "default".into(),
            build: "20261123_16:43".into(),
            source: "import".into(),
            origin: "x.tar".into(),
            sha256: None,
            created: 1,
            aliases: vec![],
        }
    }

    #[test]
    fn os_release_reads_codename_or_version() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc")).unwrap();
        std::fs::write(d.path().join("etc/os-release"), "ID=debian\nVERSION_CODENAME=bookworm\n").unwrap();
        assert_eq!(os_release(d.path()), Some(("debian".into(), "bookworm".into())));
        std::fs::write(d.path().join("etc/os-release"), "ID=\"alpine\"\nVERSION_ID=3.20.3\n").unwrap();
        assert_eq!(os_release(d.path()), Some(("alpine".into(), "3.20.3".into())));
    }
}
