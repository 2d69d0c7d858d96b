//! User-namespace id maps for unprivileged containers.
//!
//! Container ids 0..65536 map onto a range that `/etc/subuid` and `/etc/subgid` give to
//! root (the same files shadow's `newuidmap` and LXC read). When root has no range,
//! hutch adds one that overlaps no existing entry, and says so. The file paths are
//! parameters so all of this is tested against temp files.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Ids per container: the whole 16-bit range that distributions' packages assume.
pub const DEFAULT_SIZE: u32 = 65536;
/// Where newly added ranges start (the common LXC/shadow convention).
const FIRST_START: u64 = 100_000;

#[derive(Debug, Error)]
pub enum Error {
    #[error("failed to read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("failed to parse {path}:{line}: expected NAME:START:COUNT, found {text:?}")]
    Parse { path: String, line: usize, text: String },
    #[error("failed to use root's range in {path}: {start}:{count} has fewer than the {size} ids a container needs")]
    TooSmall { path: String, start: u64, count: u64, size: u32 },
    #[error("failed to add a subordinate id range for root to {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("failed to find a free subordinate id range of {0} ids below 2^32")]
    Exhausted(u32),
}

impl Error {
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::TooSmall { path, .. } => Some(format!(
                "extend root's line in {path} to at least {DEFAULT_SIZE} ids, or remove it and hutch will add one"
            )),
            _ => None,
        }
    }
}

/// One `owner:start:count` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubIdEntry {
    pub owner: String,
    pub start: u64,
    pub count: u64,
}

impl SubIdEntry {
    fn overlaps(&self, start: u64, count: u64) -> bool {
        start < self.start + self.count && self.start < start + count
    }
}

/// The map a container runs with: container ids `0..size` are host ids
/// `uid..uid+size` and `gid..gid+size`, except the identity ids of a dev box: that
/// uid and gid are themselves on both sides (the host user is the same user inside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdMap {
    pub uid: u32,
    pub gid: u32,
    pub size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_gid: Option<u32>,
}

impl IdMap {
    /// A plain map of `size` ids from `uid` and `gid`.
    pub fn range(uid: u32, gid: u32, size: u32) -> IdMap {
        IdMap { uid, gid, size, identity_uid: None, identity_gid: None }
    }

    /// The lines written to `/proc/PID/uid_map`.
    pub fn uid_map(&self) -> String {
        map_lines(self.uid, self.size, self.identity_uid)
    }
    /// The lines written to `/proc/PID/gid_map`.
    pub fn gid_map(&self) -> String {
        map_lines(self.gid, self.size, self.identity_gid)
    }
    /// Host uid of container uid `id` (None when outside the map).
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        host_id(self.uid, self.size, self.identity_uid, id)
    }
    /// Host gid of container gid `id` (None when outside the map).
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        host_id(self.gid, self.size, self.identity_gid, id)
    }
}

fn host_id(start: u32, size: u32, identity: Option<u32>, id: u32) -> Option<u32> {
    match identity {
        Some(i) if i == id => Some(i),
        _ => (id < size).then(|| start + id),
    }
}

/// `0 START SIZE`, or with an identity id I: `0 START I`, `I I 1`, then the rest.
fn map_lines(start: u32, size: u32, identity: Option<u32>) -> String {
    match identity {
        Some(i) if i > 0 && i < size => {
            let mut out = format!("0 {start} {i}\n{i} {i} 1\n");
            if i + 1 < size {
                out.push_str(&format!("{} {} {}\n", i + 1, start + i + 1, size - i - 1));
            }
            out
        }
        _ => format!("0 {start} {size}\n"),
    }
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uid 0-{} -> {}-{}, gid 0-{} -> {}-{}",
            self.size - 1,
            self.uid,
            u64::from(self.uid) + u64::from(self.size) - 1,
            self.size - 1,
            self.gid,
            u64::from(self.gid) + u64::from(self.size) - 1
        )?;
        if let Some(u) = self.identity_uid {
            write!(f, "; uid {u} is itself")?;
        }
        if let Some(g) = self.identity_gid {
            write!(f, "; gid {g} is itself")?;
        }
        Ok(())
    }
}

/// Parses a subuid/subgid file; blank lines and `#` comments are skipped.
pub fn parse(path: &str, text: &str) -> Result<Vec<SubIdEntry>, Error> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || Error::Parse { path: path.to_string(), line: i + 1, text: raw.to_string() };
        let mut parts = line.split(':');
        let (Some(owner), Some(start), Some(count), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let start: u64 = start.parse().map_err(|_| bad())?;
        let count: u64 = count.parse().map_err(|_| bad())?;
        if owner.is_empty() || count == 0 {
            return Err(bad());
        }
        out.push(SubIdEntry { owner: owner.to_string(), start, count });
    }
    Ok(out)
}

fn is_root(owner: &str) -> bool {
    owner == "root" || owner == "0"
}

/// Root's first range, checked to hold `size` ids.
fn root_range(path: &str, entries: &[SubIdEntry], size: u32) -> Result<Option<u64>, Error> {
    match entries.iter().find(|e| is_root(&e.owner)) {
        None => Ok(None),
        Some(e) if e.count < u64::from(size) || e.start + u64::from(size) > u64::from(u32::MAX) => {
            Err(Error::TooSmall { path: path.to_string(), start: e.start, count: e.count, size })
        }
        Some(e) => Ok(Some(e.start)),
    }
}

/// The lowest start (from 100000, in steps of 65536) free in every file's entries.
pub fn free_start(files: &[&[SubIdEntry]], size: u32) -> Result<u64, Error> {
    let size64 = u64::from(size);
    let mut start = FIRST_START;
    while start + size64 <= u64::from(u32::MAX) {
        if files.iter().all(|entries| entries.iter().all(|e| !e.overlaps(start, size64))) {
            return Ok(start);
        }
        start += u64::from(DEFAULT_SIZE);
    }
    Err(Error::Exhausted(size))
}

/// The map for root's containers, from `subuid` and `subgid`; adds a range for root to
/// a file that has none. Returns the map and a notice for each file it changed.
pub fn root_map(subuid: &Path, subgid: &Path) -> Result<(IdMap, Vec<String>), Error> {
    let size = DEFAULT_SIZE;
    // Two first runs at once must not both append: hold a lock on the directory (the
    // files themselves are replaced by rename, so they cannot carry the lock).
    let dir = subuid.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let _guard = std::fs::File::open(dir)
        .ok()
        .and_then(|f| nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusive).ok());
    let read = |p: &Path| -> Result<String, Error> {
        match std::fs::read_to_string(p) {
            Ok(s) => Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(Error::Read { path: p.display().to_string(), source }),
        }
    };
    let (uid_text, gid_text) = (read(subuid)?, read(subgid)?);
    let (uid_path, gid_path) = (subuid.display().to_string(), subgid.display().to_string());
    let uid_entries = parse(&uid_path, &uid_text)?;
    let gid_entries = parse(&gid_path, &gid_text)?;
    let mut uid = root_range(&uid_path, &uid_entries, size)?;
    let mut gid = root_range(&gid_path, &gid_entries, size)?;
    let mut notices = Vec::new();
    if uid.is_none() || gid.is_none() {
        // One start free in both files, so uids and gids line up.
        let start = free_start(&[&uid_entries, &gid_entries], size)?;
        for (slot, path, text) in [(&mut uid, subuid, &uid_text), (&mut gid, subgid, &gid_text)] {
            if slot.is_none() {
                append_range(path, text, start, size)?;
                notices.push(format!(
                    "added the subordinate id range root:{start}:{size} to {} (root had none; unprivileged containers map their ids there)",
                    path.display()
                ));
                *slot = Some(start);
            }
        }
    }
    let (uid, gid) = (uid.unwrap_or_default(), gid.unwrap_or_default());
    Ok((IdMap::range(uid as u32, gid as u32, size), notices))
}

fn append_range(path: &Path, old: &str, start: u64, size: u32) -> Result<(), Error> {
    let mut text = old.to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!("root:{start}:{size}\n"));
    crate::base::fsutil::atomic_write(path, text.as_bytes(), 0o644)
        .map_err(|source| Error::Write { path: path.display().to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_with_line_numbers() {
        let e = parse("f", "# c\n\nalice:100000:65536\nroot:165536:65536\n").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[1], SubIdEntry { owner: "root".into(), start: 165536, count: 65536 });
        let err = parse("/etc/subuid", "alice:1:2\nbroken\n").unwrap_err().to_string();
        assert!(err.contains("/etc/subuid:2"), "{err}");
        assert!(parse("f", "a:1:0").is_err());
        assert!(parse("f", "a:x:1").is_err());
        assert!(parse("f", "a:1:2:3").is_err());
    }

    #[test]
    fn free_start_skips_taken_ranges_in_every_file() {
        let a = parse("a", "alice:100000:65536\n").unwrap();
        let b = parse("b", "bob:165536:10\n").unwrap();
        assert_eq!(free_start(&[&a, &b], 65536).unwrap(), 100000 + 2 * 65536);
        assert_eq!(free_start(&[&[], &[]], 65536).unwrap(), 100000);
    }

    #[test]
    fn uses_roots_existing_range() {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "root:200000:65536\n").unwrap();
        std::fs::write(&g, "root:300000:100000\n").unwrap();
        let (map, notices) = root_map(&u, &g).unwrap();
        assert_eq!(map, IdMap::range(200000, 300000, 65536));
        assert!(notices.is_empty());
        assert_eq!(map.uid_map(), "0 200000 65536\n");
        assert_eq!(map.host_gid(5), Some(300005));
        assert_eq!(map.host_uid(65536), None);
    }

    #[test]
    fn adds_a_range_when_root_has_none_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "alice:100000:65536").unwrap(); // no trailing newline
        let (map, notices) = root_map(&u, &g).unwrap();
        assert_eq!(map, IdMap::range(165536, 165536, 65536));
        assert_eq!(notices.len(), 2);
        assert!(notices[0].contains("root:165536:65536"));
        assert_eq!(std::fs::read_to_string(&u).unwrap(), "alice:100000:65536\nroot:165536:65536\n");
        assert_eq!(std::fs::read_to_string(&g).unwrap(), "root:165536:65536\n");
        // Second call finds it and changes nothing.
        let (again, notices) = root_map(&u, &g).unwrap();
        assert_eq!(again, map);
        assert!(notices.is_empty());
    }

    #[test]
    fn too_small_range_is_an_error_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let (u, g) = (dir.path().join("subuid"), dir.path().join("subgid"));
        std::fs::write(&u, "root:100000:1000\n").unwrap();
        let err = root_map(&u, &g).unwrap_err();
        assert!(err.to_string().contains("fewer than the 65536"));
        assert!(err.hint().unwrap().contains("extend"));
    }

    #[test]
    fn a_dev_box_user_is_itself_on_both_sides() {
        let mut m = IdMap::range(100000, 100000, 65536);
        m.identity_uid = Some(1000);
        m.identity_gid = Some(1001);
        assert_eq!(m.uid_map(), "0 100000 1000\n1000 1000 1\n1001 101001 64535\n");
        assert_eq!(m.gid_map(), "0 100000 1001\n1001 1001 1\n1002 101002 64534\n");
        assert_eq!((m.host_uid(0), m.host_uid(1000), m.host_uid(1001)), (Some(100000), Some(1000), Some(101001)));
        assert_eq!(m.host_gid(1001), Some(1001));
        assert!(m.to_string().ends_with("; uid 1000 is itself; gid 1001 is itself"), "{m}");
        let plain = IdMap::range(100000, 100000, 65536);
        assert_eq!(plain.uid_map(), "0 100000 65536\n");
    }
}
