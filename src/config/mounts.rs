//! `[[mounts]]`: host directories and files shared with a container (Incus's disk
//! devices with `shift`, nspawn's `--bind`). Checked here for what the text alone can
//! tell (absolute paths, no `..`, one mount per target, no target where hutch mounts
//! its own filesystems); what the host filesystem says (the source exists, is not `/`
//! or hutch's state) is checked on the opened source at every use
//! (crate::runtime::mounts).

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What to make at the target when the container lacks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Create {
    /// A directory (and its missing parents).
    Dir,
    /// An empty file (parents as directories).
    File,
    /// Nothing: the target must exist.
    None,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    /// Absolute host path of a directory or regular file.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub path: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub readonly: bool,
    /// Unprivileged containers: an idmapped mount bound to the container's user
    /// namespace, so host uid U is uid U inside (and writes land as U). Without it,
    /// files keep their host ids, seen through the container's id map.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub shift: bool,
    /// What to create at a missing target; by default what the source is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Create>,
    /// A missing source is skipped with a notice instead of failing the start.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

fn yes() -> bool {
    true
}
fn is_true(b: &bool) -> bool {
    *b
}
fn is_false(b: &bool) -> bool {
    !*b
}

/// At most this many shared folders: their binds travel in one message at start (the
/// kernel bounds one message's descriptors at 253).
pub const MAX_MOUNTS: usize = 64;

/// Where hutch mounts its own filesystems at every start; a shared folder there would
/// be hidden, or would hide what init needs.
pub const RESERVED_TARGETS: [&str; 4] = ["/proc", "/sys", "/dev", "/run"];

impl Mount {
    /// `source` shared at `path` with the defaults the config file has.
    pub fn new(source: impl Into<PathBuf>, path: impl Into<String>) -> Mount {
        Mount { source: source.into(), path: path.into(), readonly: false, shift: true, create: None, optional: false }
    }

    /// The target as a canonical absolute path (`/srv/data`, no trailing slash).
    pub fn target(&self) -> String {
        normalize(&self.path)
    }
}

/// `path` with empty and `.` components dropped.
pub fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    format!("/{}", parts.join("/"))
}

/// Checks one mount; the error is (field, why).
pub fn check(m: &Mount) -> Result<(), (&'static str, String)> {
    check_source(&m.source).map_err(|e| ("source", e))?;
    check_target(&m.path).map_err(|e| ("path", e))
}

pub fn check_source(source: &Path) -> Result<(), String> {
    let shown = source.display();
    if !source.is_absolute() {
        return Err(format!("{shown} is not an absolute host path (give the whole path, e.g. $PWD/{shown})"));
    }
    if source.components().any(|c| c == Component::ParentDir) {
        return Err(format!("{shown} must not contain '..'"));
    }
    if source.as_os_str().as_encoded_bytes().contains(&0) {
        return Err("the source contains a NUL byte".into());
    }
    Ok(())
}

pub fn check_target(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!("{path:?} is not an absolute path inside the container"));
    }
    if path.contains('\0') {
        return Err("the path contains a NUL byte".into());
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("{path} must not contain '..'"));
    }
    let target = normalize(path);
    if target == "/" {
        return Err("/ is the container's root filesystem; share a folder below it".into());
    }
    if let Some(r) = RESERVED_TARGETS.iter().find(|r| target == **r || target.starts_with(&format!("{r}/"))) {
        return Err(format!("{target} is under {r}, which hutch mounts anew at every start"));
    }
    Ok(())
}

/// Every mount, then no two on one target; the error is (key, why).
pub fn validate(mounts: &[Mount]) -> Result<(), (String, String)> {
    if mounts.len() > MAX_MOUNTS {
        return Err(("mounts".into(), format!("{} mounts; at most {MAX_MOUNTS} are supported", mounts.len())));
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        check(m).map_err(|(field, why)| (format!("mounts[{i}].{field}"), why))?;
        let target = m.target();
        if seen.contains(&target) {
            return Err((format!("mounts[{i}].path"), format!("{target} is the target of another mount")));
        }
        seen.push(target);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_targets_must_be_absolute_and_plain() {
        assert!(check(&Mount::new("/srv/data", "/data")).is_ok());
        let e = check(&Mount::new("srv/data", "/data")).unwrap_err();
        assert_eq!(e.0, "source");
        assert!(e.1.contains("not an absolute host path"), "{e:?}");
        assert_eq!(check(&Mount::new("/srv/../etc", "/data")).unwrap_err().0, "source");
        assert_eq!(check(&Mount::new("/srv", "data")).unwrap_err().0, "path");
        assert_eq!(check(&Mount::new("/srv", "/a/../../etc")).unwrap_err().0, "path");
        assert!(check(&Mount::new("/srv", "//")).unwrap_err().1.contains("root filesystem"));
    }

    #[test]
    fn targets_hutch_mounts_over_are_refused() {
        for t in ["/proc", "/proc/sys", "/dev/x", "/run/y", "/sys/"] {
            let e = check(&Mount::new("/srv", t)).unwrap_err();
            assert!(e.1.contains("hutch mounts anew"), "{t}: {e:?}");
        }
        // A name that only starts like a reserved one is fine.
        assert!(check(&Mount::new("/srv", "/devel")).is_ok());
        assert!(check(&Mount::new("/srv", "/running/x")).is_ok());
    }

    #[test]
    fn one_mount_per_target_however_it_is_spelled() {
        let ok = [Mount::new("/a", "/data"), Mount::new("/b", "/data/sub")];
        assert!(validate(&ok).is_ok());
        let dup = [Mount::new("/a", "/data"), Mount::new("/b", "/data/./")];
        let (key, why) = validate(&dup).unwrap_err();
        assert_eq!(key, "mounts[1].path");
        assert!(why.contains("/data is the target of another mount"), "{why}");
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let m: Mount = toml::from_str("source = \"/srv\"\npath = \"/data\"\n").unwrap();
        assert!(m.shift && !m.readonly && !m.optional && m.create.is_none());
        assert_eq!(toml::to_string(&m).unwrap(), "source = \"/srv\"\npath = \"/data\"\n");
        let m: Mount = toml::from_str("source = \"/srv\"\npath = \"/d\"\nshift = false\ncreate = \"file\"\n").unwrap();
        assert_eq!((m.shift, m.create), (false, Some(Create::File)));
        assert!(toml::from_str::<Mount>("source = \"/srv\"\npath = \"/d\"\nbogus = 1\n").is_err());
    }
}
